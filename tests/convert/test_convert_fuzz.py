"""Fuzz: thousands of malformed rows. No crash, every problem has a reason, and in = converted + rejected."""

import json
import random
from pathlib import Path

import pytest

from swift_ext.convert import convert_file
from swift_ext.convert.validate import ValidateOptions, validate_file

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
    report = validate_file(str(src), ValidateOptions(src="swift"))
    assert report.rows == 1500
    assert report.rows_with_errors >= 1500 - valid
    assert not report.ok


from hypothesis import HealthCheck, event, given, settings  # noqa: E402
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


# -- Parquet and JSON-array inputs --------------------------------------------------------------------
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from swift_ext.convert import ConvertError  # noqa: E402
from swift_ext.errors import ConfigError  # noqa: E402

_FORMAT_NAMES = [None] + [f.name for f in BUILTIN_FORMATS]
_FILE_TARGETS = ["sft", "grpo", "dpo", "kto", "trl"]


def _convert_or_refuse(src, out, to, fmt):
    """A balanced report with every reject named, or a whole-file refusal (format not detected) naming the file."""
    try:
        report = convert_file(str(src), str(out), to, fmt, negatives="truncate" if to in ("dpo", "kto") else None,
                              require_solution=False)
    except (ConvertError, ConfigError) as exc:
        assert str(src) in str(exc)
        event("refused (format not detected)")
        return None
    event("some rows converted" if report.rows_converted else "every row rejected")
    assert report.rows_in == report.rows_converted + report.rows_rejected
    if report.written:
        lines = Path(out).read_bytes().splitlines()
        assert len(lines) == report.rows_out
        for line in lines:
            json.loads(line)
    else:
        assert report.rows_converted == 0 and not Path(out).exists()
    rejects = [json.loads(x) for x in Path(report.reject_file).read_bytes().splitlines()] \
        if report.reject_file else []
    assert len(rejects) == report.rows_rejected
    assert all(r["reason"] and r["file"] == str(src) for r in rejects)
    return report, rejects


def _outputs(report_rejects, out):
    if report_rejects is None:
        return None
    report, rejects = report_rejects
    body = Path(out).read_bytes() if report.written else None
    return (report.rows_in, report.rows_converted, report.rows_out, body,
            [(r.get("line", r.get("row")), r["reason"]) for r in rejects])


_text = st.text(min_size=1, max_size=8)
# rows of the known formats (so that conversions happen), each template one format
_TEMPLATES = [
    st.builds(lambda q, a: {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]},
              _text, _text),
    st.builds(lambda q, r: {"query": q, "response": r}, _text, _text),
    st.builds(lambda q, r: {"conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": r}]},
              _text, _text),
    st.builds(lambda i, o: {"instruction": i, "input": "", "output": o}, _text, _text),
    st.builds(lambda p, c, r: {"prompt": p, "chosen": c, "rejected": r}, _text, _text, _text),
    st.builds(lambda p, a: {"problem": p, "answer": a}, _text, _text),
]
_valid = st.one_of(_TEMPLATES)
_mutated = st.builds(lambda row, extra: {**row, **extra}, _valid,
                     st.dictionaries(st.sampled_from(_columns), _json, max_size=1))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.one_of(_valid, _mutated, _rows), max_size=6), fmt=st.sampled_from(_FORMAT_NAMES),
       to=st.sampled_from(_FILE_TARGETS))
def test_json_array_input_converts_like_the_same_rows_as_jsonl(tmp_path_factory, rows, fmt, to):
    """A JSON array of any rows: nothing but row rejects or a whole-file refusal, and exactly what the same rows
    as JSONL give (rows numbered from 0 instead of lines from 1)."""
    d = tmp_path_factory.mktemp("arr")
    arr, jsonl = d / "in.json", d / "in.jsonl"
    arr.write_text(json.dumps(rows), encoding="utf-8")
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    a = _convert_or_refuse(arr, d / "a.jsonl", to, fmt)
    b = _convert_or_refuse(jsonl, d / "b.jsonl", to, fmt)
    assert (a is None) == (b is None)
    if a is not None:
        assert a[0].rows_in == len(rows)
        oa, ob = _outputs(a, d / "a.jsonl"), _outputs(b, d / "b.jsonl")
        assert oa[:4] == ob[:4]
        assert [(n + 1, why) for n, why in oa[4]] == ob[4]


_msg_type = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
_img_type = pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
_COLUMN_TYPES = {
    "string": (pa.string(), st.none() | st.text(max_size=10)),
    "int": (pa.int64(), st.none() | st.integers(-5, 5)),
    "bool": (pa.bool_(), st.none() | st.booleans()),
    "messages": (_msg_type, st.none() | st.lists(st.fixed_dictionaries(
        {"role": st.none() | st.sampled_from(["user", "assistant", "system", "human", "gpt", "wizard"]),
         "content": st.none() | st.text(max_size=8) | st.just("<image>q")}), max_size=3)),
    "strings": (pa.list_(pa.string()), st.none() | st.lists(st.none() | st.text(max_size=6), max_size=3)),
    "images": (_img_type, st.none() | st.lists(st.fixed_dictionaries(
        {"bytes": st.none() | st.binary(max_size=12) | st.just(RED and Path(RED).read_bytes()),
         "path": st.none() | st.just(RED) | st.text(max_size=6)}), max_size=2)),
}


@st.composite
def _tables(draw):
    """Typed random columns, or rows of one known format (some values null) plus a typed random column."""
    n = draw(st.integers(0, 6))
    data, fields = {}, []
    if draw(st.integers(0, 2)):
        template = draw(st.sampled_from(_TEMPLATES))
        rows = [draw(template) for _ in range(n)]
        if rows:
            for key in rows[0]:
                values = [draw(st.sampled_from([r[key], r[key], r[key], None])) for r in rows]
                data[key] = values
                fields.append(pa.field(key, pa.array(values).type if any(v is not None for v in values)
                                       else pa.string()))
    names = draw(st.lists(st.sampled_from([c for c in _columns if c not in data]), min_size=0 if data else 1,
                          max_size=1 if data else 5, unique=True))
    for name in names:
        arrow_type, values = _COLUMN_TYPES[draw(st.sampled_from(sorted(_COLUMN_TYPES)))]
        data[name] = draw(st.lists(values, min_size=n, max_size=n))
        fields.append(pa.field(name, arrow_type))
    return pa.Table.from_pydict(data, schema=pa.schema(fields))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(table=_tables(), fmt=st.sampled_from(_FORMAT_NAMES), to=st.sampled_from(_FILE_TARGETS))
def test_parquet_input_converts_like_its_rows_as_jsonl(tmp_path_factory, table, fmt, to):
    """A Parquet file of typed columns (nulls, nested structs, image bytes): nothing but row rejects or a whole-file
    refusal, every row accounted for, and the same output as its rows (as pyarrow reads them) written as JSONL."""
    d = tmp_path_factory.mktemp("pq")
    src = d / "in.parquet"
    pq.write_table(table, src)
    rows = pq.read_table(src).to_pylist()
    jsonl = d / "in.jsonl"
    with open(jsonl, "w", encoding="utf-8") as fh:
        for r in rows:  # bytes cannot go through JSON: as base64, which the readers take for bytes too
            fh.write(json.dumps(r, default=lambda b: __import__("base64").b64encode(b).decode()) + "\n")
    a = _convert_or_refuse(src, d / "a.jsonl", to, fmt)
    if a is None:
        return
    assert a[0].rows_in == table.num_rows
    assert sorted(r["row"] for r in a[1]) == sorted({r["row"] for r in a[1]})
    assert all(0 <= r["row"] < table.num_rows for r in a[1])
    b = _convert_or_refuse(jsonl, d / "b.jsonl", to, fmt)
    if b is not None and not any(isinstance(v, dict) and v.get("bytes") for r in rows for c in r.values()
                                 if isinstance(c, list) for v in c):
        assert _outputs(a, d / "a.jsonl")[:4] == _outputs(b, d / "b.jsonl")[:4]
