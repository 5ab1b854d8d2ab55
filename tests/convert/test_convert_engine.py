"""Engine behaviour: accounting, reject file, --strict, atomic output, media, tag checks, --num-proc, CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from swift_ext.convert import ConvertError, convert_file

DATA = Path(__file__).resolve().parents[1] / "data" / "convert"
RED = DATA / "images" / "red.png"


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def write_lines(path, lines):
    with open(path, "wb") as fh:
        for line in lines:
            fh.write((line if isinstance(line, bytes) else line.encode("utf-8")) + b"\n")
    return str(path)


GOOD = '{"query": "What is 2+2?", "response": "4"}'
MIXED = [GOOD, "{not json", "", '["a list"]', b'{"query": "caf\xe9", "response": "x"}', '{"query": 5, "response": "x"}',
         GOOD]
# non-blank lines: 1 (good), 2 (bad JSON), 4 (array), 5 (latin-1 byte), 6 (query not a string), 7 (good)


def test_rejects_name_file_line_and_reason(tmp_path):
    src = write_lines(tmp_path / "in.jsonl", MIXED)
    report = convert_file(src, str(tmp_path / "out.jsonl"), "sft")
    assert (report.rows_in, report.rows_converted, report.rows_rejected, report.rows_out) == (6, 2, 4, 2)
    rej = read_jsonl(report.reject_file)
    assert report.reject_file == str(tmp_path / "out.rejected.jsonl")
    assert [r["line"] for r in rej] == [2, 4, 5, 6]
    assert all(r["file"] == src for r in rej)
    assert rej[0]["reason"].startswith("invalid JSON") and rej[0]["original"] == "{not json"
    assert rej[1]["reason"] == "a row must be a JSON object, got list"
    assert rej[2]["reason"].startswith("not UTF-8") and "original_base64" in rej[2]
    import base64
    assert base64.b64decode(rej[2]["original_base64"]) == b'{"query": "caf\xe9", "response": "x"}'
    assert rej[3]["reason"] == "'query' must be a string, got int"


def test_strict_stops_with_the_message_and_writes_nothing(tmp_path):
    src = write_lines(tmp_path / "in.jsonl", MIXED)
    out = tmp_path / "out.jsonl"
    with pytest.raises(ConvertError, match=r"in.jsonl:2: invalid JSON"):
        convert_file(src, str(out), "sft", strict=True)
    assert sorted(os.listdir(tmp_path)) == ["in.jsonl"]  # no output, no reject file, no temp files


def test_no_rejects_removes_stale_reject_file(tmp_path):
    src = write_lines(tmp_path / "in.jsonl", [GOOD])
    stale = tmp_path / "out.rejected.jsonl"
    stale.write_text("old\n")
    report = convert_file(src, str(tmp_path / "out.jsonl"), "sft")
    assert report.reject_file is None and not stale.exists()


def test_same_input_and_output_refused(tmp_path):
    src = write_lines(tmp_path / "in.jsonl", [GOOD])
    with pytest.raises(Exception, match="three different paths"):
        convert_file(src, src, "sft")


def test_tag_count_checks(tmp_path):
    img = str(RED)
    lines = [
        json.dumps({"messages": [{"role": "user", "content": "<image><image>two tags"},
                                 {"role": "assistant", "content": "a"}], "images": [img]}),
        json.dumps({"messages": [{"role": "user", "content": "no tag"},
                                 {"role": "assistant", "content": "b"}], "images": [img]}),
        json.dumps({"messages": [{"role": "user", "content": "<image>missing file"},
                                 {"role": "assistant", "content": "c"}], "images": ["nope/absent.png"]}),
    ]
    report = convert_file(write_lines(tmp_path / "in.jsonl", lines), str(tmp_path / "o.jsonl"), "sft")
    rej = read_jsonl(report.reject_file)
    assert [r["line"] for r in rej] == [1, 3]
    assert rej[0]["reason"].startswith("messages: 2 <image> tag(s) but 1 images")
    assert "file not found: 'nope/absent.png'" in rej[1]["reason"]
    out = read_jsonl(tmp_path / "o.jsonl")
    # fewer tags than images: the tag is added explicitly (what ms-swift would do silently) and counted
    assert out[0]["messages"][0]["content"] == "<image>no tag"
    assert any("added missing <image>" in w for w in report.warnings)


def test_media_dir_writes_base64_and_data_uri(tmp_path):
    import base64

    b64 = base64.b64encode(RED.read_bytes()).decode()
    lines = [json.dumps({"query": "a", "response": "x", "images": [b64]}),
             json.dumps({"query": "b", "response": "y", "images": ["data:image/png;base64," + b64]})]
    media = tmp_path / "media"
    report = convert_file(write_lines(tmp_path / "in.jsonl", lines), str(tmp_path / "o.jsonl"), "sft",
                          media_dir=str(media))
    out = read_jsonl(tmp_path / "o.jsonl")
    assert report.media_written == 1 and out[0]["images"] == out[1]["images"]
    assert Path(out[0]["images"][0]).read_bytes() == RED.read_bytes()
    assert [p.name for p in media.iterdir()] == [Path(out[0]["images"][0]).name]


def test_reserved_grpo_column_renamed(tmp_path):
    line = json.dumps({"messages": [{"role": "user", "content": "q"}], "solution": "1", "finish_reason": "stop",
                       "request_id": 3})
    report = convert_file(write_lines(tmp_path / "in.jsonl", [line]), str(tmp_path / "o.jsonl"), "grpo")
    row = read_jsonl(tmp_path / "o.jsonl")[0]
    assert row == {"messages": [{"role": "user", "content": "q"}], "solution": "1", "orig_finish_reason": "stop",
                   "orig_request_id": 3}
    assert len(report.warnings) == 2


def test_grpo_without_gold(tmp_path):
    line = json.dumps({"messages": [{"role": "user", "content": "q"}]})
    src = write_lines(tmp_path / "in.jsonl", [line])
    report = convert_file(src, str(tmp_path / "o.jsonl"), "grpo")
    assert report.rows_rejected == 1 and "no reference answer" in next(iter(report.reasons))
    report = convert_file(src, str(tmp_path / "o2.jsonl"), "grpo", require_solution=False)
    assert report.rows_converted == 1 and read_jsonl(tmp_path / "o2.jsonl")[0] == json.loads(line)


def _fuzzish(tmp_path, n=400):
    lines = []
    for i in range(n):
        k = i % 4
        if k == 0:
            lines.append(json.dumps({"query": f"q{i}", "response": f"the answer is {i}"}))
        elif k == 1:
            lines.append("{broken")
        elif k == 2:
            lines.append(json.dumps({"query": f"q{i}", "response": None}))  # prompt-only: rejected by sft
        else:
            lines.append(json.dumps({"query": f"<image>q{i}", "response": "r", "images": [str(RED)]}))
    return write_lines(tmp_path / "in.jsonl", lines)


def test_num_proc_matches_serial(tmp_path):
    src = _fuzzish(tmp_path)
    a = convert_file(src, str(tmp_path / "serial.jsonl"), "sft", reject_path=str(tmp_path / "serial.rej.jsonl"))
    b = convert_file(src, str(tmp_path / "par.jsonl"), "sft", num_proc=2, reject_path=str(tmp_path / "par.rej.jsonl"))
    # 400 lines: 100 good text + 100 good image rows converted; 100 broken JSON + 100 prompt-only rejected
    assert (a.rows_in, a.rows_converted, a.rows_rejected) == (400, 200, 200)
    assert (b.rows_in, b.rows_converted, b.rows_rejected) == (400, 200, 200)
    assert (tmp_path / "serial.jsonl").read_bytes() == (tmp_path / "par.jsonl").read_bytes()
    assert read_jsonl(tmp_path / "serial.rej.jsonl") == read_jsonl(tmp_path / "par.rej.jsonl")


def test_cli_summary_and_json(tmp_path):
    src = write_lines(tmp_path / "in.jsonl", MIXED)
    proc = subprocess.run([sys.executable, "-m", "swift_ext", "convert", src, "--to", "sft", "-o",
                           str(tmp_path / "o.jsonl"), "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "rows in 6 = converted 2 + rejected 4" in proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["rows_in"] == 6 and summary["rows_rejected"] == 4
    proc = subprocess.run([sys.executable, "-m", "swift_ext", "convert", src, "--to", "sft", "-o",
                           str(tmp_path / "o2.jsonl"), "--strict"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "in.jsonl:2: invalid JSON" in proc.stderr
    assert not (tmp_path / "o2.jsonl").exists()


ROWS_FOR_PATHS = [
    {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "<answer>1</answer>"}]},
    {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"},
                  {"role": "assistant", "content": "a 2"}], "id": 7, "meta": {"x": [1]}},
    {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"},
                  {"role": "assistant", "content": "b 3"}]},
    {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "  "}]},
    {"messages": [{"role": "user", "content": "q"}]},
    {"messages": [{"role": "assistant", "content": "only 4"}]},
    {"messages": [{"role": "tool_response", "content": "t"}, {"role": "assistant", "content": "r 5"}]},
    {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "6", "loss": True}]},
    {"messages": [{"role": "user", "content": "q <image>"}, {"role": "assistant", "content": "7"}]},
    {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "8"}], "dataset": "d"},
    {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "9"}], "solution": "nine"},
    {"messages": [{"role": "human", "content": "q"}, {"role": "gpt", "content": "10"}]},
    {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "no number"}]},
    {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "11"}], "request_id": "r"},
    {"images": [str(RED)], "messages": [{"role": "user", "content": "<image>q"},
                                        {"role": "assistant", "content": "12"}], "k": 1},
    {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "13"}], "images": [str(RED)]},
    {"messages": [{"role": "user", "content": "<image><image>q"}, {"role": "assistant", "content": "14"}],
     "images": [str(RED)]},
    {"messages": [{"role": "user", "content": "<image>q"}, {"role": "assistant", "content": "15"}],
     "images": ["missing.png"]},
    {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "16"}], "images": []},
    {"messages": [{"role": "user", "content": "<image>q"}, {"role": "assistant", "content": "17"}],
     "images": [{"path": str(RED)}]},
]


@pytest.mark.parametrize("to,extract", [("sft", None), ("grpo", None), ("grpo", "last_number"),
                                        ("grpo", "answer_tag")])
def test_fast_path_equals_generic_path(to, extract):
    """The fused hot path for swift->sft/grpo gives exactly what the generic reader+target path gives."""
    from swift_ext.convert import ConvertOptions, RowConverter
    from swift_ext.convert.rows import RowError

    def outcome(fast, row, i):
        conv = RowConverter(ConvertOptions(to=to, src="swift", extract=extract))
        conv.fast = fast
        try:
            return conv(json.loads(json.dumps(row)), i), sorted(conv.warnings)
        except RowError as exc:
            return "reject: " + exc.reason, sorted(conv.warnings)

    for i, row in enumerate(ROWS_FOR_PATHS):
        assert outcome(True, row, i) == outcome(False, row, i), row


def test_converter_registry_validates_plugins():
    from swift_ext.errors import PluginError
    from swift_ext.plugins import validate

    with pytest.raises(PluginError, match=r"must be an instance of swift_ext\.convert\.registry\.InputFormat or an "
                                          r"instance of swift_ext\.convert\.registry\.Target"):
        validate("converter", "x", object())
    from swift_ext.convert.registry import Target
    with pytest.raises(PluginError, match="registered as 'y'"):
        validate("converter", "y", Target("z", lambda c, i, o: []))
    with pytest.raises(PluginError):
        validate("negative", "n", 3)


def test_num_proc_on_parquet_and_saved_dataset(tmp_path):
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"problem": f"p{i}", "answer": str(i) if i % 5 else None, "images": [str(RED)] if i % 2 else []}
            for i in range(40)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in.parquet")
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "saved"))
    for src in (tmp_path / "in.parquet", tmp_path / "saved"):
        a = convert_file(str(src), str(tmp_path / "a.jsonl"), "grpo", reject_path=str(tmp_path / "a.rej.jsonl"))
        b = convert_file(str(src), str(tmp_path / "b.jsonl"), "grpo", num_proc=2,
                         reject_path=str(tmp_path / "b.rej.jsonl"))
        # rows 0, 5, ..., 35 have no answer: 8 rejected, 32 converted
        assert (a.rows_converted, a.rows_rejected) == (b.rows_converted, b.rows_rejected) == (32, 8)
        assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
        assert [r["row"] for r in read_jsonl(tmp_path / "b.rej.jsonl")] == [0, 5, 10, 15, 20, 25, 30, 35]


def test_convert_rows_does_not_modify_the_callers_rows():
    from swift_ext.convert import convert_rows

    row = {"messages": [{"role": "user", "content": "what?"}, {"role": "assistant", "content": "red"}],
           "images": [str(RED)]}
    before = json.dumps(row)
    out = list(convert_rows([row], to="sft"))
    assert out[0]["messages"][0]["content"] == "<image>what?"
    assert json.dumps(row) == before


def test_unsupported_output_suffix(tmp_path):
    src = write_lines(tmp_path / "in.jsonl", [GOOD])
    with pytest.raises(Exception, match=r"writes JSONL \(.jsonl\) or a JSON array"):
        convert_file(src, str(tmp_path / "o.parquet"), "sft")
