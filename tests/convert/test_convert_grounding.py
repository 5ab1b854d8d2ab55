"""ms-swift grounding rows (``objects`` + ``<ref-object>`` / ``<bbox>``) and COCO / RefCOCO annotation files
through ``swift-ext convert``: the GRPO rows hold the answer's boxes as the gold the box rewards read (frame
included), the prompt keeps the placeholders ms-swift's template fills, bad objects are rejected with a reason
(by ``validate`` too), and the rewards score the converted rows (the gold itself as the answer scores 1).
ms-swift's own loader and template read every output in tests/convert/test_convert_swift_load.py."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from swift_ext.cli import cli
from swift_ext.convert import convert_file, convert_rows
from swift_ext.convert.sources import input_kind
from swift_ext.errors import ConfigError
from swift_ext.rewards import build

DATA = Path(__file__).resolve().parents[1] / "data" / "convert"


def rec(ref="the cat", box=(30, 40, 10, 20), answer="<bbox>", prompt="<image>Find <ref-object>", **objects):
    return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
            "images": ["images/red.png"], "objects": {"ref": [ref], "bbox": [list(box)], **objects}}


def grpo(rows, **kw):
    rejects = []
    out = list(convert_rows(rows, to="grpo", strict=False, rejects=rejects, root=str(DATA), **kw))
    return out, rejects


def test_rec_row_answer_box_becomes_the_gold_and_the_prompt_keeps_its_ref():
    (row,), _ = grpo([rec()])
    assert row["messages"] == [{"role": "user", "content": "<image>Find <ref-object>"}]
    # ms-swift swaps inverted coordinates; the box is labelled with the prompt's one ref
    assert json.loads(row["solution"]) == {"ref": ["the cat"], "bbox": [[10, 20, 30, 40]], "bbox_type": "real"}
    assert row["objects"] == {"ref": ["the cat"], "bbox": [], "bbox_type": "real"}


def test_labels_follow_the_answers_refs():
    rows = [
        {**rec(), "messages": [{"role": "user", "content": "<image>Ground it."},
                               {"role": "assistant", "content": "<ref-object><bbox> and <ref-object><bbox>"}],
         "objects": {"ref": ["cat", "dog"], "bbox": [[0, 0, 5, 5], [5, 5, 9, 9]], "bbox_type": "norm1"}},
        {**rec(), "messages": [{"role": "user", "content": "<image>Where are the cats?"},
                               {"role": "assistant", "content": "<ref-object>: <bbox> <bbox>"}],
         "objects": {"ref": ["cats"], "bbox": [[0, 0, 5, 5], [5, 5, 9, 9]]}},
        {**rec(), "messages": [{"role": "user", "content": "<image>Boxes?"},
                               {"role": "assistant", "content": "<bbox> <bbox>"}],
         "objects": {"ref": [], "bbox": [[0, 0, 5, 5], [5, 5, 9, 9]]}},
    ]
    out, rejects = grpo(rows)
    assert rejects == []
    golds = [json.loads(r["solution"]) for r in out]
    assert golds[0] == {"ref": ["cat", "dog"], "bbox": [[0, 0, 5, 5], [5, 5, 9, 9]], "bbox_type": "norm1"}
    assert golds[1]["ref"] == ["cats", "cats"] and golds[2]["ref"] == [None, None]
    assert all("objects" not in r for r in out)       # no placeholder left in the prompts


def test_region_caption_gold_is_the_answer_text():
    row = rec(prompt="<image>What is at <bbox>?", answer="It is <ref-object>.", ref="a dog", box=(1, 2, 30, 40))
    (out,), _ = grpo([row])
    assert out["solution"] == "It is a dog."
    assert out["objects"] == {"ref": [], "bbox": [[1, 2, 30, 40]], "bbox_type": "real"}


def test_an_explicit_solution_wins():
    (out,), _ = grpo([{**rec(), "solution": "[1, 2, 3, 4]"}])
    assert out["solution"] == "[1, 2, 3, 4]"


@pytest.mark.parametrize("objects,reason", [
    ({"ref": ["x"], "bbox": [[1, 2]]}, "is a point"),
    ({"ref": ["x"], "bbox": [[1, 2, 3, 4]], "image_id": [1]}, "image other than the first"),
    ({"ref": ["x"], "bbox": []}, "more placeholders than objects"),
    ({"ref": ["x"], "bbox": [[1, 2, 3]]}, r"must be \[x, y\] or \[x1, y1, x2, y2\]"),
    ({"ref": ["x"], "bbox": [[1, 2, 3, float("nan")]]}, "finite numbers"),
    ({"ref": "x", "bbox": [[1, 2, 3, 4]]}, "list of strings"),
    ({"ref": ["x"], "bbox": [[1, 2, 3, 4]], "bbox_type": "norm1000"}, "real .pixels. and norm1"),
    ("not json", "not JSON"),
    ([1, 2], "must be an object"),
])
def test_bad_objects_are_rejected_with_a_reason(objects, reason):
    import re

    row = rec()
    row["objects"] = objects
    out, rejects = grpo([row])
    assert out == [] and len(rejects) == 1 and re.search(reason, rejects[0][1]), rejects


def test_every_target_checks_the_placeholders(tmp_path):
    """More placeholders than objects is rejected for SFT too (ms-swift would train on the literal '<bbox>')."""
    bad = rec(answer="<bbox> <bbox>")
    good = rec()
    src = tmp_path / "g.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in (good, bad)))
    for target in ("sft", "grpo"):
        report = convert_file(str(src), str(tmp_path / f"{target}.jsonl"), target, root=str(DATA))
        assert (report.rows_converted, report.rows_rejected) == (1, 1), report.reasons
    # the SFT row is written as ms-swift reads it: objects untouched
    assert json.loads((tmp_path / "sft.jsonl").read_text())["objects"] == good["objects"]
    res = CliRunner().invoke(cli, ["validate", str(src), "--task", "sft", "--root", str(DATA), "--json"])
    assert res.exit_code == 1 and "2 <bbox> placeholder(s) but 1 objects.bbox" in res.output


def test_coco_instances_become_one_detection_row_per_image(tmp_path):
    out = tmp_path / "det.jsonl"
    report = convert_file(str(DATA / "coco_instances.json"), str(out), "grpo", root=str(DATA))
    assert (report.rows_in, report.rows_rejected, report.format) == (2, 0, "swift")
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert rows[0]["messages"][0]["content"] == \
        "<image>Detect every object of these categories in the image: square, background."
    assert (rows[0]["width"], rows[0]["height"], rows[0]["images"]) == (56, 56, ["images/red.png"])
    # COCO [x, y, w, h] -> [x1, y1, x2, y2] in pixels; the crowd region flagged
    assert json.loads(rows[0]["solution"]) == {"ref": ["square", "background"], "bbox": [[7, 7, 49, 49], [0, 0, 56, 56]],
                                               "bbox_type": "real", "iscrowd": [0, 1]}
    assert json.loads(rows[1]["solution"])["bbox"] == [[7.5, 7.5, 48.5, 48.5], [0, 0, 10, 10]]
    sft = tmp_path / "det.sft.jsonl"
    convert_file(str(DATA / "coco_instances.json"), str(sft), "sft", root=str(DATA))
    first = json.loads(sft.read_text().splitlines()[0])
    assert first["messages"][1]["content"] == "<ref-object><bbox>\n<ref-object><bbox>"   # ms-swift's COCO answer


def test_refcoco_refs_give_one_row_per_sentence_and_split_filters(tmp_path):
    out = tmp_path / "ref.jsonl"
    report = convert_file(str(DATA / "refcoco.json"), str(out), "grpo", root=str(DATA))
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert report.rows_out == 4
    assert [r["objects"]["ref"] for r in rows] == [["the red square"], ["square in the middle"], ["blue square"],
                                                   ["top left corner"]]
    assert json.loads(rows[2]["solution"]) == {"ref": ["blue square"], "bbox": [[7.5, 7.5, 48.5, 48.5]],
                                               "bbox_type": "real"}
    val = tmp_path / "val.jsonl"
    convert_file(str(DATA / "refcoco.json"), str(val), "grpo", root=str(DATA), split="val")
    assert [json.loads(x)["objects"]["ref"] for x in val.read_text().splitlines()] == [["top left corner"]]


def test_mdetr_style_captions_and_rows_without_boxes(tmp_path):
    data = {"images": [{"id": 1, "file_name": "images/red.png", "width": 56, "height": 56, "caption": "red square"},
                       {"id": 2, "file_name": "images/blue.png", "width": 56, "height": 56, "caption": "nothing"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [7, 7, 42, 42]},
                            {"id": 2, "image_id": 2, "category_id": 1, "bbox": [7, 7, 0, 42]}]}
    src = tmp_path / "final_refcoco_train.json"
    src.write_text(json.dumps(data, indent=2))
    report = convert_file(str(src), str(tmp_path / "out.jsonl"), "grpo", root=str(DATA))
    assert (report.rows_converted, report.rows_rejected) == (1, 1)
    assert report.reasons == {"image 2 has no annotated box": 1}


def test_annotation_files_are_told_apart_from_json_lines(tmp_path):
    coco = {"images": [], "annotations": []}
    one_line = tmp_path / "one_line.json"
    one_line.write_text(json.dumps(coco))
    pretty = tmp_path / "pretty.json"
    pretty.write_text(json.dumps(coco, indent=2))
    lines = tmp_path / "rows.json"                    # JSON lines named .json, first key "images"
    lines.write_text(json.dumps({"images": ["a.png"], "messages": []}) + "\n" + json.dumps({"messages": []}) + "\n")
    assert [input_kind(str(p)) for p in (one_line, pretty, lines)] == ["coco", "coco", "jsonl"]
    other = tmp_path / "config.json"
    other.write_text(json.dumps({"lr": 1}, indent=2))
    with pytest.raises(ConfigError, match="not a COCO / RefCOCO annotation file"):
        convert_file(str(other), str(tmp_path / "o.jsonl"), "grpo")


def test_rewards_read_the_converted_rows(tmp_path):
    """The gold written back as a model answer scores 1 under the detection and grounding rewards, in the
    row's own frame (pixels from COCO, norm1 from an objects row), with the image size from the row."""
    det = tmp_path / "det.jsonl"
    convert_file(str(DATA / "coco_instances.json"), str(det), "grpo", root=str(DATA))
    ref = tmp_path / "ref.jsonl"
    convert_file(str(DATA / "refcoco.json"), str(ref), "grpo", root=str(DATA))
    objs = tmp_path / "objs.jsonl"
    convert_file(str(DATA / "grounding_objects.jsonl"), str(objs), "grpo", root=str(DATA))

    def answers(rows, scale=1.0):
        out = []
        for r in rows:
            g = json.loads(r["solution"])
            out.append(json.dumps([{"bbox_2d": [v * scale for v in b], "label": lab}
                                   for b, lab in zip(g["bbox"], g["ref"])]))
        return out

    rows = [json.loads(x) for x in det.read_text().splitlines()]
    cols = {k: [r.get(k) for r in rows] for k in ("solution", "width", "height", "images")}
    assert build("map:frame=pixels")(answers(rows), **cols) == [1.0, 1.0]
    assert build("map:frame=norm1")(answers(rows, 1 / 56), **cols) == [1.0, 1.0]
    rows = [json.loads(x) for x in ref.read_text().splitlines()]
    cols = {k: [r.get(k) for r in rows] for k in ("solution", "width", "height")}
    assert build("iou:frame=qwen2_vl")(answers(rows, 1000 / 56), **cols) == pytest.approx([1.0] * 4)
    rows = [json.loads(x) for x in objs.read_text().splitlines()]
    box_rows = [r for r in rows if r["solution"].startswith("{")]
    # the norm1 gold (bbox_type) read in its own frame; the image size comes from the image file itself
    got = build("box_f1:frame=pixels")(answers(box_rows[1:], 56), solution=[r["solution"] for r in box_rows[1:]],
                                       images=[[str(DATA / r["images"][0])] for r in box_rows[1:]])
    assert got == [1.0]
