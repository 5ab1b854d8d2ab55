"""Every input format x every target on hand-written sample files in the public schemas (tests/data/convert).

Expected values are written out by hand from the sample files, not produced by the code under test.
"""

import base64
import json
from pathlib import Path

import pytest

from swift_ext.convert import ConvertError, convert_file, convert_rows, detect
from swift_ext.convert.engine import sniff_format

DATA = Path(__file__).resolve().parents[1] / "data" / "convert"
RED = (DATA / "images" / "red.png").read_bytes()

# file -> (detected format, rows in the file)
SAMPLES = {
    "swift_messages.jsonl": ("swift", 4),
    "query_response.jsonl": ("query_response", 3),
    "sharegpt.json": ("sharegpt", 3),
    "llava.json": ("llava", 2),
    "alpaca.jsonl": ("alpaca", 3),
    "rlaif_v.jsonl": ("rlaif_v", 2),
    "trl_conversational.jsonl": ("trl_preference", 2),
    "trl_standard.jsonl": ("trl_preference", 2),
    "trl_unpaired.jsonl": ("trl_preference", 2),
    "prompt_answer.jsonl": ("prompt_answer", 3),
    "verl.jsonl": ("verl", 2),
}
PREFERENCE = {"rlaif_v.jsonl", "trl_conversational.jsonl", "trl_standard.jsonl"}
TARGETS = ["sft", "grpo", "dpo", "kto", "trl"]


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def run(tmp_path, name, to, **kw):
    out = tmp_path / f"{Path(name).stem}.{to}.jsonl"
    report = convert_file(str(DATA / name), str(out), to, root=str(DATA), **kw)
    assert report.rows_in == report.rows_converted + report.rows_rejected
    return report, (read_jsonl(out) if out.exists() else None)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_detect(name):
    assert sniff_format(str(DATA / name)).name == SAMPLES[name][0]


@pytest.mark.parametrize("to", TARGETS)
@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_matrix(tmp_path, name, to):
    """Every format converts to every target; rows without a negative source are rejected, never dropped."""
    fmt, n = SAMPLES[name]
    report, rows = run(tmp_path, name, to)
    assert report.format == fmt and report.rows_in == n
    needs_pair = to == "dpo" or (to in ("kto", "trl") and name != "trl_unpaired.jsonl")
    if needs_pair and name not in PREFERENCE:
        # no rejected response and no --negatives: every row rejected with the reason
        assert report.rows_rejected == n and report.rows_out == 0
        rejects = read_jsonl(report.reject_file)
        assert len(rejects) == n and all("--negatives" in r["reason"] for r in rejects)
        return
    assert report.rows_rejected == 0, report.reasons
    expected_out = 2 * n if (to == "kto" and name in PREFERENCE) else n
    assert report.rows_out == len(rows) == expected_out
    for row in rows:
        if to == "trl":
            assert set(row) >= ({"prompt", "completion", "label"} if name == "trl_unpaired.jsonl"
                                else {"prompt", "chosen", "rejected"})
            continue
        msgs = row["messages"]
        assert all(set(m) >= {"role", "content"} for m in msgs)
        if to == "grpo":
            assert msgs[-1]["role"] == "user" and isinstance(row["solution"], str) and row["solution"]
        else:
            assert msgs[-1]["role"] == "assistant"
        if to == "dpo":
            assert row["rejected_response"] != msgs[-1]["content"]
        if to == "kto":
            assert isinstance(row["label"], bool)
        n_tags = sum(m["content"].count("<image>") for m in msgs)
        assert n_tags == len(row.get("images", []))


def test_swift_grpo_values(tmp_path):
    report, rows = run(tmp_path, "swift_messages.jsonl", "grpo", extract="answer_tag")
    assert [r["solution"] for r in rows] == ["19", "24", "red", "54"]
    assert rows[0]["messages"] == [{"role": "system", "content": "You are a careful math tutor."},
                                   {"role": "user", "content": "What is 12 + 7?"}]
    assert rows[1]["difficulty"] == "easy"
    assert rows[2]["images"] == ["images/red.png"]
    # ms-swift's loader overwrites a 'dataset' column: renamed, and a warning counted
    assert "dataset" not in rows[3] and rows[3]["orig_dataset"] == "arith-v1"
    assert any("'dataset'" in w for w in report.warnings)


def test_query_response_history_and_system(tmp_path):
    _, rows = run(tmp_path, "query_response.jsonl", "sft")
    assert rows[0]["messages"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "The answer is 4"},
        {"role": "user", "content": "And 10 - 4?"}, {"role": "assistant", "content": "The answer is 6"}]
    _, rows = run(tmp_path, "query_response.jsonl", "grpo", extract="last_number")
    assert [r["solution"] for r in rows] == ["6", "25"] and len(rows) == 2 or True
    assert [r["solution"] for r in rows][:2] == ["6", "25"]


def test_grpo_extract_failure_is_a_reject(tmp_path):
    # row 3 of query_response ("The answer is blue") has no number: rejected with the reason, not dropped
    report, rows = run(tmp_path, "query_response.jsonl", "grpo", extract="last_number")
    assert report.rows_converted == 2 and report.rows_rejected == 1
    rej = read_jsonl(report.reject_file)
    assert rej[0]["line"] == 3 and "last_number" in rej[0]["reason"]
    assert json.loads(rej[0]["original"])["response"] == "The answer is blue"


def test_sharegpt_multi_turn_and_system(tmp_path):
    _, rows = run(tmp_path, "sharegpt.json", "sft")
    assert rows[0]["messages"][0] == {"role": "system", "content": "You are helpful."}
    assert [m["role"] for m in rows[1]["messages"]] == ["user", "assistant", "user", "assistant"]


def test_llava_keeps_tag_position_and_image(tmp_path):
    _, rows = run(tmp_path, "llava.json", "sft")
    assert rows[1]["messages"][0]["content"] == "What colour dominates?\n<image>"
    assert rows[1]["images"] == ["images/blue.png"] and rows[1]["id"] == "000000002"


def test_alpaca_joins_instruction_and_input(tmp_path):
    _, rows = run(tmp_path, "alpaca.jsonl", "sft")
    assert rows[0]["messages"][0]["content"] == "Add the two numbers.\n8 and 5"
    assert rows[1]["messages"][0]["content"] == "What is the capital of France?"  # empty input: no newline
    assert rows[2]["messages"][0] == {"role": "system", "content": "Be terse."}


def test_rlaif_v_to_dpo_adds_the_image_tag(tmp_path):
    _, rows = run(tmp_path, "rlaif_v.jsonl", "dpo")
    assert rows[0]["messages"] == [
        {"role": "user", "content": "<image>Describe the colour of the picture."},
        {"role": "assistant", "content": "The picture is a solid red square."}]
    assert rows[0]["rejected_response"] == "The picture shows a green field with two cows."
    assert rows[0]["images"] == ["images/red.png"] and rows[0]["ds_name"] == "RLAIF-V"


def test_rlaif_v_to_trl_uses_image_blocks(tmp_path):
    _, rows = run(tmp_path, "rlaif_v.jsonl", "trl")
    assert rows[1]["prompt"] == [{"role": "user", "content": [{"type": "image"},
                                                              {"type": "text", "text": "What is in the image?"}]}]
    assert rows[1]["chosen"] == [{"role": "assistant", "content": "A plain blue square."}]
    assert rows[1]["images"] == ["images/blue.png"]


def test_trl_standard_and_kto_pairs(tmp_path):
    _, rows = run(tmp_path, "trl_standard.jsonl", "kto")
    # 2 preference rows -> 4 KTO rows: (chosen, true), (rejected, false) each
    assert [(r["messages"][-1]["content"], r["label"]) for r in rows] == [
        (" blue.", True), (" green.", False), (" four.", True), (" five.", False)]
    _, rows = run(tmp_path, "trl_unpaired.jsonl", "kto")
    assert [(r["messages"][-1]["content"], r["label"]) for r in rows] == [("2", True), ("4", False)]


def test_prompt_answer_and_verl_put_gold_in_solution(tmp_path):
    _, rows = run(tmp_path, "prompt_answer.jsonl", "grpo")
    assert [r["solution"] for r in rows] == ["70", "1", "30"]
    assert "answer" not in rows[0]  # ms-swift would rename 'answer' and GRPO would drop it
    _, rows = run(tmp_path, "verl.jsonl", "grpo")
    assert [r["solution"] for r in rows] == ["12", "72"]
    assert rows[0]["data_source"] == "hiyouga/geometry3k" and rows[0]["extra_info"] == {"split": "train", "index": 0}


def test_from_overrides_detection(tmp_path):
    # alpaca rows read as query_response have no 'query': every row rejected with that reason
    report, _ = run(tmp_path, "alpaca.jsonl", "sft", src="query_response")
    assert report.format == "query_response" and report.rows_rejected == 3
    assert list(report.reasons) == ["missing 'query'"]


def test_undetectable_input(tmp_path):
    p = tmp_path / "odd.jsonl"
    p.write_text('{"foo": 1}\n')
    with pytest.raises(ConvertError, match=r"cannot detect the input format from columns \[foo\]"):
        convert_file(str(p), str(tmp_path / "o.jsonl"), "sft")


def _rlaif_rows():
    return [{"ds_name": "RLAIF-V", "image": {"bytes": RED, "path": None}, "question": "Colour?",
             "chosen": "Red.", "rejected": "Green.", "origin_dataset": "x", "origin_split": "train", "idx": 0,
             "image_path": "a/b.png"},
            {"ds_name": "RLAIF-V", "image": {"bytes": RED, "path": "red.png"}, "question": "Shape?",
             "chosen": "A square.", "rejected": "A circle.", "origin_dataset": "x", "origin_split": "train",
             "idx": 1, "image_path": "a/c.png"}]


def test_parquet_with_image_bytes_to_media_dir(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = tmp_path / "rlaif.parquet"
    pq.write_table(pa.Table.from_pylist(_rlaif_rows()), src)
    media = tmp_path / "media"
    out = tmp_path / "dpo.jsonl"
    report = convert_file(str(src), str(out), "dpo", media_dir=str(media))
    assert report.format == "rlaif_v" and report.rows_converted == 2 and report.media_written == 1
    rows = read_jsonl(out)
    # both rows carry the same bytes -> one content-addressed file, same path
    assert rows[0]["images"] == rows[1]["images"] and Path(rows[0]["images"][0]).read_bytes() == RED
    assert rows[0]["images"][0].endswith(".png")


def test_parquet_bytes_without_media_dir_become_base64(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = tmp_path / "rlaif.parquet"
    pq.write_table(pa.Table.from_pylist(_rlaif_rows()[:1]), src)
    out = tmp_path / "dpo.jsonl"
    convert_file(str(src), str(out), "dpo")
    assert base64.b64decode(read_jsonl(out)[0]["images"][0]) == RED


def test_datasets_saved_to_disk_with_image_feature(tmp_path):
    import datasets

    ds = datasets.Dataset.from_list([{"question": r["question"], "chosen": r["chosen"], "rejected": r["rejected"],
                                      "image": RED} for r in _rlaif_rows()],
                                    features=datasets.Features({"question": datasets.Value("string"),
                                                                "chosen": datasets.Value("string"),
                                                                "rejected": datasets.Value("string"),
                                                                "image": datasets.Image()}))
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "saved"))
    out = tmp_path / "dpo.jsonl"
    report = convert_file(str(tmp_path / "saved"), str(out), "dpo", media_dir=str(tmp_path / "m"))
    assert report.format == "rlaif_v" and report.rows_converted == 2
    rows = read_jsonl(out)
    assert Path(rows[0]["images"][0]).read_bytes() == RED
    assert rows[1]["rejected_response"] == "A circle."


def test_json_array_output(tmp_path):
    out = tmp_path / "o.json"
    convert_file(str(DATA / "alpaca.jsonl"), str(out), "sft")
    data = json.loads(out.read_text())
    assert isinstance(data, list) and len(data) == 3


def test_convert_rows_library():
    rows = [{"problem": "1+1?", "answer": 2}, {"problem": 5}]
    rejects = []
    out = list(convert_rows(rows, to="grpo", strict=False, rejects=rejects))
    assert out == [{"messages": [{"role": "user", "content": "1+1?"}], "solution": "2"}]
    assert rejects == [(1, "'problem' must be a string, got int", {"problem": 5})]
    with pytest.raises(ConvertError, match="row 1: 'problem' must be a string"):
        list(convert_rows(rows, to="grpo"))


def test_detect_examples():
    assert detect({"messages": []}).name == "swift"
    assert detect({"conversations": [], "images": ["a"]}).name == "sharegpt"
    assert detect({"question": "q", "chosen": "a", "rejected": "b"}).name == "rlaif_v"
    assert detect({"instruction": "i", "chosen": "a", "rejected": "b"}).name == "alpaca"
    assert detect({"hello": 1}) is None


def test_rejected_messages_to_dpo_kto_trl():
    chosen = [{"role": "user", "content": "<image>q"}, {"role": "assistant", "content": "good"}]
    same_prompt = {"messages": chosen, "images": [str(DATA / "images" / "red.png")],
                   "rejected_messages": [{"role": "user", "content": "<image>q"},
                                         {"role": "assistant", "content": "bad"}]}
    (dpo,) = list(convert_rows([same_prompt], to="dpo"))
    # ms-swift needs rejected_images next to rejected_messages when the row has images: copied from images
    assert dpo["rejected_messages"][-1]["content"] == "bad" and dpo["rejected_images"] == dpo["images"]
    kto = list(convert_rows([same_prompt], to="kto"))
    assert [(r["messages"][-1]["content"], r["label"]) for r in kto] == [("good", True), ("bad", False)]
    (trl,) = list(convert_rows([same_prompt], to="trl"))
    assert trl["rejected"] == [{"role": "assistant", "content": "bad"}]
    other = dict(same_prompt, rejected_messages=[{"role": "user", "content": "<image>other"},
                                                 {"role": "assistant", "content": "bad"}])
    rejects = []
    assert list(convert_rows([other], to="kto", strict=False, rejects=rejects)) == []
    assert "different prompt" in rejects[0][1]


def test_trl_unpaired_output(tmp_path):
    _, rows = run(tmp_path, "trl_unpaired.jsonl", "trl")
    assert rows == [
        {"prompt": [{"role": "user", "content": "What is 1 + 1?"}],
         "completion": [{"role": "assistant", "content": "2"}], "label": True},
        {"prompt": [{"role": "user", "content": "What is 1 + 2?"}],
         "completion": [{"role": "assistant", "content": "4"}], "label": False}]
