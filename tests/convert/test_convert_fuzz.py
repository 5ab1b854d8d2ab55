"""Fuzz: thousands of malformed rows. No crash, every problem has a reason, and in = converted + rejected."""

import json
import random
from pathlib import Path

import pytest

from swift_ext.convert import convert_file
from swift_ext.convert.validate import validate_file

DATA = Path(__file__).resolve().parents[1] / "data" / "convert"
RED = str(DATA / "images" / "red.png")


def make_rows(n: int, seed: int):
    """(lines, n_valid_sft): a mix of valid rows and many kinds of broken ones, built deterministically."""
    rng = random.Random(seed)
    lines, valid = [], 0
    junk_values = [None, 1, 1.5, True, [], {}, [1, 2], {"a": 1}, "", "x" * 10]
    for i in range(n):
        kind = rng.randrange(14)
        if kind == 0:  # valid text row
            lines.append(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                                  {"role": "assistant", "content": f"a {i}"}]}))
            valid += 1
        elif kind == 1:  # valid image row
            lines.append(json.dumps({"messages": [{"role": "user", "content": "<image>what?"},
                                                  {"role": "assistant", "content": "red"}], "images": [RED]}))
            valid += 1
        elif kind == 2:  # truncated JSON
            good = json.dumps({"messages": [{"role": "user", "content": "q"}]})
            lines.append(good[: rng.randrange(1, len(good))])
        elif kind == 3:  # non-UTF-8 bytes
            lines.append(b'{"messages": [{"role": "user", "content": "\xff\xfe"}]}')
        elif kind == 4:  # wrong types in messages
            lines.append(json.dumps({"messages": rng.choice(junk_values)}))
        elif kind == 5:  # wrong type of a message
            lines.append(json.dumps({"messages": [rng.choice(junk_values[:4]), {"role": "assistant", "content": "a"}]}))
        elif kind == 6:  # wrong content type
            lines.append(json.dumps({"messages": [{"role": "user", "content": rng.choice([1, None, {"x": 1}, [1]])},
                                                  {"role": "assistant", "content": "a"}]}))
        elif kind == 7:  # missing image file
            lines.append(json.dumps({"messages": [{"role": "user", "content": "<image>q"},
                                                  {"role": "assistant", "content": "a"}],
                                     "images": [f"/nonexistent/{i}.png"]}))
        elif kind == 8:  # more tags than images
            lines.append(json.dumps({"messages": [{"role": "user", "content": "<image>" * rng.randrange(1, 5)},
                                                  {"role": "assistant", "content": "a"}]}))
        elif kind == 9:  # huge string (valid row)
            lines.append(json.dumps({"messages": [{"role": "user", "content": "z" * 200_000},
                                                  {"role": "assistant", "content": "ok"}]}))
            valid += 1
        elif kind == 10:  # top-level non-object
            lines.append(json.dumps(rng.choice([[1], "s", 3, None, True])))
        elif kind == 11:  # unknown role / prompt-only (no assistant: rejected for sft)
            lines.append(json.dumps({"messages": [{"role": rng.choice(["wizard", "user"]), "content": "q"}]}))
        elif kind == 12:  # bad images type
            lines.append(json.dumps({"messages": [{"role": "user", "content": "q"},
                                                  {"role": "assistant", "content": "a"}],
                                     "images": rng.choice([5, [None], [3.5], {"bytes": 5}])}))
        else:  # deeply nested garbage
            lines.append("[" * 5000 + "]" * 5000)
    return lines, valid


@pytest.mark.parametrize("to", ["sft", "grpo", "dpo", "kto"])
def test_fuzz_accounting(tmp_path, to):
    lines, valid = make_rows(3000, seed=11)
    src = tmp_path / "fuzz.jsonl"
    with open(src, "wb") as fh:
        # the first row decides detection: put a valid one first
        fh.write(json.dumps({"messages": [{"role": "user", "content": "q"},
                                          {"role": "assistant", "content": "the answer is 42"}]}).encode() + b"\n")
        for line in lines:
            fh.write((line if isinstance(line, bytes) else line.encode()) + b"\n")
    out = tmp_path / "out.jsonl"
    report = convert_file(str(src), str(out), to, negatives="truncate" if to in ("dpo", "kto") else None)
    assert report.rows_in == 3001
    assert report.rows_in == report.rows_converted + report.rows_rejected
    if to == "sft":
        assert report.rows_converted == valid + 1
    out_lines = out.read_text(encoding="utf-8").splitlines()
    assert len(out_lines) == report.rows_out
    for line in out_lines:
        json.loads(line)
    rejects = [json.loads(x) for x in Path(report.reject_file).read_text(encoding="utf-8").splitlines()]
    assert len(rejects) == report.rows_rejected
    assert all(r["reason"] and r["file"] == str(src) and r["line"] >= 2 for r in rejects)
    assert len({r["line"] for r in rejects}) == len(rejects)


def test_fuzz_validate_never_crashes(tmp_path):
    lines, valid = make_rows(1500, seed=5)
    src = tmp_path / "fuzz.jsonl"
    with open(src, "wb") as fh:
        for line in lines:
            fh.write((line if isinstance(line, bytes) else line.encode()) + b"\n")
    report = validate_file(str(src), src="swift")
    assert report.rows == 1500
    assert report.rows_with_errors >= 1500 - valid
    assert not report.ok


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from swift_ext.convert.formats import BUILTIN_FORMATS  # noqa: E402
from swift_ext.convert.rows import RowError  # noqa: E402
from swift_ext.convert.targets import BUILTIN_TARGETS, Options  # noqa: E402

_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                     lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3),
                     max_leaves=8)
_message = st.fixed_dictionaries({}, optional={"role": st.sampled_from(["user", "assistant", "system", "human",
                                                                        "gpt", "wizard", 3]),
                                               "content": _json | st.text(max_size=10),
                                               "from": st.sampled_from(["human", "gpt", "x"]),
                                               "value": _json | st.text(max_size=10)})
_columns = ["messages", "conversations", "query", "response", "history", "system", "instruction", "input", "output",
            "question", "chosen", "rejected", "prompt", "completion", "label", "problem", "answer", "solution",
            "images", "image", "videos", "rejected_response", "rejected_messages", "rejected_images", "reward_model"]
_rows = st.dictionaries(st.sampled_from(_columns), _json | st.lists(_message, max_size=3) | st.text(max_size=10),
                        max_size=6)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(row=_rows, fmt_i=st.integers(0, len(BUILTIN_FORMATS) - 1), tgt_i=st.integers(0, len(BUILTIN_TARGETS) - 1))
def test_readers_and_targets_raise_only_row_errors(row, fmt_i, tgt_i):
    """Any row: a reader returns a canonical row or raises RowError (a reason), never another exception."""
    fmt, target = BUILTIN_FORMATS[fmt_i], BUILTIN_TARGETS[tgt_i]
    try:
        c = fmt.read(row)
    except RowError as exc:
        assert exc.reason
        return
    assert isinstance(c["messages"], list) and all(isinstance(m["content"], str) for m in c["messages"])
    if target.needs_pool:
        return
    try:
        out = target(c, 0, Options())
    except RowError as exc:
        assert exc.reason
        return
    assert isinstance(out, list) and all(isinstance(r, dict) for r in out)
