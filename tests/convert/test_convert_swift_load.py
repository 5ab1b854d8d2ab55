"""Converted files are loaded by ms-swift itself: its dataset loader, then its template's encode on the tiny
local models (text: Qwen3; files with images: Qwen2-VL), in the mode each task trains in.

ms-swift runs in a real subprocess (the CPU torchvision shim applied there, as for `swift` commands). Any
encode error is reported, not resampled: ms-swift's trainer would silently swap such a row for another one.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from swift_ext.convert import convert_file

DATA = Path(__file__).resolve().parents[1] / "data" / "convert"

SCRIPT = r'''
import json, sys
from swift_ext import cpu_compat
cpu_compat.apply()
from swift import get_processor, get_template, load_dataset

cases = json.load(open(sys.argv[1]))
models = json.load(open(sys.argv[2]))
processors, results = {}, []
MODE = {"sft": "train", "dpo": "rlhf", "kto": "kto", "grpo": "transformers"}
for case in cases:
    res = {"file": case["file"], "task": case["task"], "errors": []}
    try:
        ds, _ = load_dataset([case["file"]], remove_unused_columns=case["task"] != "grpo", num_proc=1)
        res["rows"] = len(ds)
        res["columns"] = sorted(ds.column_names)
        m = models[case["model"]]
        if case["model"] not in processors:
            processors[case["model"]] = get_processor(m["path"], model_type=m["model_type"], download_model=False)
        template = get_template(processors[case["model"]], template_type=m["template"],
                                remove_unused_columns=case["task"] != "grpo")
        template.set_mode(MODE[case["task"]])
        res["keys"] = []
        for i, row in enumerate(ds):
            try:
                enc = template.encode(row)
                res["keys"].append(sorted(k for k, v in enc.items() if v is not None))
                ids = enc.get("input_ids")
                res.setdefault("texts", []).append(template.tokenizer.decode(ids) if ids is not None else None)
                if "label" in enc:
                    res.setdefault("labels", []).append(bool(enc["label"]))
            except Exception as exc:
                res["errors"].append(f"row {i}: {type(exc).__name__}: {exc}")
        res["solutions"] = list(ds["solution"]) if "solution" in ds.column_names else None
    except Exception as exc:
        res["errors"].append(f"load: {type(exc).__name__}: {exc}")
    results.append(res)
import dataclasses
from swift.rl_core.data import OnPolicySample
from swift.dataset.preprocessor.core import RowPreprocessor
print("FIELDS=" + json.dumps({"sample": [f.name for f in dataclasses.fields(OnPolicySample)],
                              "standard": list(RowPreprocessor.standard_keys)}))
print("RESULTS=" + json.dumps(results))
'''

# (sample, targets ms-swift trains on) — trl output is for TRL, not ms-swift
CASES = {
    "swift_messages.jsonl": ["sft", "grpo"],
    "query_response.jsonl": ["sft", "grpo"],
    "sharegpt.json": ["sft", "grpo"],
    "llava.json": ["sft", "grpo"],
    "alpaca.jsonl": ["sft", "grpo"],
    "rlaif_v.jsonl": ["sft", "grpo", "dpo", "kto"],
    "trl_conversational.jsonl": ["sft", "grpo", "dpo", "kto"],
    "trl_standard.jsonl": ["dpo"],
    "trl_unpaired.jsonl": ["kto"],
    "prompt_answer.jsonl": ["sft", "grpo"],
    "verl.jsonl": ["grpo"],
    # ms-swift grounding rows (objects + <ref-object> / <bbox>) and COCO / RefCOCO annotation files
    "grounding_objects.jsonl": ["sft", "grpo"],
    "coco_instances.json": ["sft", "grpo"],
    "refcoco.json": ["sft", "grpo"],
}
GROUNDING = {"grounding_objects", "coco_instances", "refcoco"}
NEGATIVE_CASES = {"swift_messages.jsonl": ["dpo", "kto"]}  # via --negatives auto


@pytest.mark.e2e
@pytest.mark.vl
def test_ms_swift_loads_and_encodes_every_conversion(tmp_path, tiny_models, swift_env):
    cases, expected_rows = [], {}
    for name, tasks in list(CASES.items()) + list(NEGATIVE_CASES.items()):
        for task in tasks:
            out = tmp_path / f"{Path(name).stem}.{task}.jsonl"
            if out.exists():
                continue
            report = convert_file(str(DATA / name), str(out), task, root=str(DATA),
                                  negatives="auto" if name in NEGATIVE_CASES and task in ("dpo", "kto") else None,
                                  extract="answer_tag" if name == "swift_messages.jsonl" else None)
            assert report.rows_rejected == 0, (name, task, report.reasons)
            has_images = any("images" in json.loads(x) for x in out.read_text().splitlines())
            cases.append({"file": str(out), "task": task, "model": "qwen2_vl" if has_images else "text"})
            expected_rows[str(out)] = report.rows_out
    models = {k: {"path": tiny_models[k].path, "model_type": tiny_models[k].model_type,
                  "template": tiny_models[k].template} for k in ("text", "qwen2_vl")}
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    (tmp_path / "models.json").write_text(json.dumps(models))
    (tmp_path / "check.py").write_text(SCRIPT)
    env = {**swift_env, "ROOT_IMAGE_DIR": str(DATA)}  # relative image paths, as ms-swift resolves them
    proc = subprocess.run([sys.executable, str(tmp_path / "check.py"), str(tmp_path / "cases.json"),
                           str(tmp_path / "models.json")], capture_output=True, text=True, env=env, timeout=900,
                          cwd=tmp_path)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULTS=")), None)
    assert line, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads(line[len("RESULTS="):])
    assert len(results) == len(cases)
    for res in results:
        where = f"{Path(res['file']).name} ({res['task']})"
        assert res["errors"] == [], (where, res["errors"])
        # ms-swift kept every row (it drops rows it cannot preprocess, and rows whose rejected == chosen)
        assert res["rows"] == expected_rows[res["file"]], where
        for keys in res["keys"]:
            if res["task"] == "dpo":
                assert "chosen_input_ids" in keys and "rejected_input_ids" in keys, where
            elif res["task"] == "kto":
                assert "label" in keys and "chosen_input_ids" in keys, (where, keys)
            else:
                assert "input_ids" in keys, where
        if res["task"] == "kto":  # ms-swift read the same labels the converter wrote
            written = [json.loads(x)["label"] for x in Path(res["file"]).read_text().splitlines()]
            assert res["labels"] == written and True in written and False in written, where
        if res["task"] == "grpo":
            # the reference answer reached ms-swift's GRPO dataset under 'solution' for every row
            assert res["solutions"] is not None and all(s for s in res["solutions"]), where
    # our list of GRPO-reserved column names covers every OnPolicySample field that is not a standard dataset key
    from swift_ext.convert.targets import GRPO_RESERVED

    fields = json.loads(next(x for x in proc.stdout.splitlines() if x.startswith("FIELDS="))[len("FIELDS="):])
    sample_only = set(fields["sample"]) - set(fields["standard"]) - {"messages"}
    assert sample_only <= GRPO_RESERVED, sample_only - GRPO_RESERVED
    # images were really loaded by the VL template: pixel values in the encoded rows of an image file
    rl = next(r for r in results if Path(r["file"]).name == "rlaif_v.dpo.jsonl")
    assert all(any(k.endswith("pixel_values") for k in keys) for keys in rl["keys"]), rl["keys"]
    sft = next(r for r in results if Path(r["file"]).name == "llava.sft.jsonl")
    assert all("pixel_values" in keys for keys in sft["keys"]), sft["keys"]
    # grounding: the template replaced every placeholder (none is left as text) with the row's objects, and the
    # GRPO prompt kept its refs for the template (the answer's boxes went to the solution)
    for res in results:
        if Path(res["file"]).stem.split(".")[0] not in GROUNDING:
            continue
        for text in res["texts"]:
            assert "<ref-object>" not in text and "<bbox>" not in text, (res["file"], text)
        if res["task"] == "grpo":
            rows = [json.loads(x) for x in Path(res["file"]).read_text().splitlines()]
            for row, text in zip(rows, res["texts"]):
                for ref in (row.get("objects") or {}).get("ref", []):
                    assert ref in text, (res["file"], ref, text)
    refs = next(r for r in results if Path(r["file"]).name == "refcoco.grpo.jsonl")
    assert any("<|object_ref_start|>the red square<|object_ref_end|>" in t for t in refs["texts"]), refs["texts"]
