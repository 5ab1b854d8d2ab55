"""swift-ext validate: each check fires on a hand-made row, clean files pass, exit code and --json report."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from swift_ext.convert.validate import ValidateOptions, check_row, validate_file

DATA = Path(__file__).resolve().parents[1] / "data" / "convert"
RED = str(DATA / "images" / "red.png")


def names(checks):
    return sorted(n for n, _, _ in checks)


def msgs(*pairs):
    return [{"role": r, "content": c} for r, c in pairs]


def test_clean_rows_have_no_findings():
    row = {"messages": msgs(("user", "<image>colour?"), ("assistant", "red")), "images": [RED]}
    assert check_row(row, task="sft") == []
    assert check_row({"messages": msgs(("user", "q")), "solution": "1"}, task="grpo") == []


@pytest.mark.parametrize("row,task,expected", [
    ({"messages": msgs(("user", "<image><image>q"), ("assistant", "a")), "images": [RED]}, "sft", ["tags"]),
    ({"messages": msgs(("user", "q"), ("assistant", "a")), "images": [RED]}, "sft", ["tags_missing"]),
    ({"messages": msgs(("user", "<image>q"), ("assistant", "a")), "images": ["missing.png"]}, "sft",
     ["media_missing"]),
    ({"messages": msgs(("user", "q"), ("system", "s"), ("assistant", "a"))}, "sft", ["role_order"]),
    ({"messages": msgs(("user", "q"), ("user", "q2"), ("assistant", "a"))}, "sft", ["role_order"]),
    ({"messages": msgs(("user", " "), ("assistant", "a"))}, "sft", ["empty_turn"]),
    ({"messages": msgs(("user", "q"), ("assistant", "a")), "dataset": "x"}, "sft", ["reserved_column_dataset"]),
    ({"messages": msgs(("user", "q")), "solution": "1", "request_id": 1}, "grpo", ["reserved_column"]),
    ({"messages": msgs(("user", "q")), "answer": "1"}, "grpo", ["solution"]),
    ({"messages": msgs(("user", "q"))}, "sft", ["response"]),
    ({"messages": msgs(("user", "q"), ("assistant", "a"))}, "dpo", ["rejected"]),
    ({"messages": msgs(("user", "q"), ("assistant", "a")), "rejected_response": "a"}, "dpo", ["rejected"]),
    ({"messages": msgs(("user", "q"), ("assistant", "a")), "label": "maybe"}, "kto", ["format"]),
    ({"messages": msgs(("user", "q"), ("assistant", "a"))}, "kto", ["label"]),
    ({"messages": [{"role": "wizard", "content": "x"}]}, None, ["format"]),
    ([1, 2], None, ["parse"]),
])
def test_each_check(row, task, expected):
    assert names(check_row(row, task=task)) == expected


def test_solution_hint_names_the_answer_column():
    (_, _, message), = check_row({"messages": msgs(("user", "q")), "answer": "1"}, task="grpo")
    assert "'answer' is renamed to the response and dropped by GRPO" in message


def test_root_resolves_relative_paths():
    row = {"messages": msgs(("user", "<image>q"), ("assistant", "a")), "images": ["images/red.png"]}
    assert names(check_row(row, task="sft")) == ["media_missing"]
    assert check_row(row, task="sft", root=str(DATA)) == []


def test_decode_images_opt_in(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n but not a png")     # an image header (the media check), no image
    row = {"messages": msgs(("user", "<image>q"), ("assistant", "a")), "images": [str(bad)]}
    assert check_row(row, task="sft") == []
    assert names(check_row(row, task="sft", decode=True)) == ["media_decode"]


def test_file_report_duplicates_and_counts(tmp_path):
    rows = [{"messages": msgs(("user", "q"), ("assistant", "a"))}] * 3 + [{"messages": msgs(("user", "q2"))}]
    p = tmp_path / "d.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n{bad\n")
    report = validate_file(str(p), ValidateOptions(task="sft"))
    # rows 2 and 3 duplicate row 1 (warnings); row 4 has no response, row 5 does not parse (errors)
    assert report.rows == 5 and report.rows_with_errors == 2 and report.rows_with_warnings == 2
    assert report.checks["duplicate"]["count"] == 2 and report.checks["response"]["count"] == 1
    assert report.checks["parse"]["examples"][0]["where"] == f"{p}:5"
    assert not report.ok


def test_converted_samples_validate_clean(tmp_path):
    from swift_ext.convert import convert_file

    for to, task in (("sft", "sft"), ("grpo", "grpo"), ("dpo", "dpo"), ("kto", "kto")):
        out = tmp_path / f"{to}.jsonl"
        convert_file(str(DATA / "rlaif_v.jsonl"), str(out), to, root=str(DATA))
        report = validate_file(str(out), ValidateOptions(task=task, root=str(DATA)))
        assert report.ok, (to, report.checks)


def test_cli_exit_code_and_json(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"messages": msgs(("user", "q")), "solution": "1"}) + "\n")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": msgs(("user", "q")), "answer": "1"}) + "\n")
    ok = subprocess.run([sys.executable, "-m", "swift_ext", "validate", str(good), "--task", "grpo"],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "OK" in ok.stderr
    res = subprocess.run([sys.executable, "-m", "swift_ext", "validate", str(bad), "--task", "grpo", "--json"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and "FAILED" in res.stderr
    report = json.loads(res.stdout)
    assert report["ok"] is False and report["checks"]["solution"]["count"] == 1
