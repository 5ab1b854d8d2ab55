"""The zoom agent end to end on CPU: the tiny Qwen2-VL, first taught by a short ``swift sft`` to answer with a
``zoom`` call (a random tiny model never writes one), then a real ``swift rlhf --rlhf_type grpo`` colocate run
(``--use_vllm false``) with ``--multi_turn_scheduler tools:tools=zoom`` on a dataset written by
``swift-ext convert --to grpo --tools zoom``. The run's own ``completions.jsonl``, read by the run reader, shows the
trajectory: the model's zoom call, the tool turn holding the crop (ms-swift's vision placeholder, linked to the crop
file the tool wrote), and ``swift-ext report`` puts the crop on the page."""

import json
from pathlib import Path

import pytest

from swift_ext import runs
from swift_ext.bridge import plugin_path
from swift_ext.convert import ConvertOptions, convert_file
from swift_ext.report import page as report_page
from swift_ext.testing import tiny

pytestmark = pytest.mark.e2e
# distinct digits: a tiny model memorises them more easily than a run of zeros
CALL = '<tool_call>\n{"name": "zoom", "arguments": {"bbox_2d": [120, 340, 560, 780]}}\n</tool_call>'


def test_zoom_agent_grpo_run_logs_crops(tmp_path, tiny_models, sample_images, run_swift):
    model = tiny_models["qwen2_vl"]
    questions = ["What is in the corner?", "Look closer: what colour?", "Which shape is it?", "Zoom in and tell."]
    rows = [{"messages": [{"role": "user", "content": "<image>" + q}, {"role": "assistant", "content": CALL}],
             "images": [sample_images[i % len(sample_images)]], "solution": "red"} for i, q in enumerate(questions)]
    raw = tiny.write_jsonl(tmp_path / "raw.jsonl", rows)
    # the SFT rows carry the same tools column as the GRPO rows: the model learns the call under the prompt it
    # will see in GRPO (the hermes template's system prompt listing the zoom schema)
    sft_data = str(tmp_path / "sft.jsonl")
    assert convert_file(raw, sft_data, ConvertOptions(to="sft", tools="zoom")).written
    sft = run_swift("sft", [*tiny.common_flags(model), "--dataset", sft_data, "--tuner_type", "full",
                            "--num_train_epochs", "100", "--learning_rate", "5e-3", "--per_device_train_batch_size", "4",
                            "--max_length", "2048", "--logging_steps", "10", "--save_steps", "100",
                            "--save_total_limit", "1", "--save_only_model", "true",
                            "--output_dir", str(tmp_path / "sft"), "--agent_template", "hermes",
                            "--loss_scale", "default"], timeout=600)
    assert sft.returncode == 0, sft.tail()
    sft_dir = next(p for p in (tmp_path / "sft").rglob("config.json") if "checkpoint" in str(p)).parent

    grpo_data = tmp_path / "grpo.jsonl"
    assert convert_file(raw, str(grpo_data), ConvertOptions(to="grpo", tools="zoom")).written
    flags = tiny.common_flags(model)
    flags[flags.index("--model") + 1] = str(sft_dir)
    out = tmp_path / "grpo"
    run = run_swift("rlhf", [
        "--rlhf_type", "grpo", *flags, "--dataset", str(grpo_data), "--external_plugins", plugin_path(),
        "--reward_funcs", "tool_success", "--use_vllm", "false", "--num_generations", "4",
        "--max_completion_length", "96", "--temperature", "0.1", "--tuner_type", "lora", "--lora_rank", "4",
        "--lora_alpha", "8", "--max_steps", "1", "--per_device_train_batch_size", "8", "--learning_rate", "1e-4",
        "--max_length", "4096", "--logging_steps", "1", "--save_strategy", "no", "--beta", "0.0",
        "--agent_template", "hermes",
        "--multi_turn_scheduler", f"tools:tools=zoom:frame=qwen2_vl,max_calls=1,workdir={tmp_path / 'tool-files'}",
        "--max_turns", "2", "--log_completions", "true", "--output_dir", str(out)], timeout=600)
    assert run.returncode == 0, run.tail(80)

    run_dir = runs.latest_run(out)
    items = run_dir.completions()
    assert items, "no completions logged"
    with_turns = [c for c in items if c.turns]
    assert with_turns, [c.text[:200] for c in items]
    tool_turns = [t for c in with_turns for t in c.turns if t["role"] == "tool"]
    crops = [p for t in tool_turns for p in t["images"] if p]
    # the model called zoom, the tool answered with the crop: ms-swift logged the image placeholder and the
    # tool's note naming the crop file, which exists and is the zoomed region
    assert any(t["calls"] and t["calls"][0].get("name") == "zoom" for c in with_turns for t in c.turns
               if t["role"] == "assistant")
    assert crops and all(Path(p).is_file() and Path(p).name.startswith("zoom-") for p in crops), tool_turns
    from PIL import Image

    with Image.open(crops[0]) as im:
        assert im.size[0] % 28 == 0 and im.size[0] * im.size[1] >= 3136
    assert all(c.num_turns == 1 + sum(1 for t in c.turns if t["role"] == "assistant") for c in with_turns)
    # the report shows the crop inline
    thumbs = report_page.Thumbnails()
    _, chunks, _ = report_page.step_chunks(run_dir, thumbs)
    views = [t for chunk in chunks.values() for g in chunk.data()["groups"] for it in g["items"]
             for t in it.get("turns", ())]
    assert any(i and i in thumbs.uris for t in views for i in t["img"])
    (tmp_path / "summary.json").write_text(json.dumps({"completions": len(items), "with_turns": len(with_turns),
                                                       "crops": crops}))
