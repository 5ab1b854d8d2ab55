"""A real tiny Qwen2-VL GRPO run scored by the grounding, detection (COCO mAP) and structured-output rewards.

ms-swift 4.6 runs in a subprocess (HF generate, ``--use_vllm false``, LoRA on CPU) on image rows whose
``solution`` is the shape's bounding box in pixels of the 56x56 image and whose ``schema`` column holds
a JSON schema. The rewards are loaded through swift-ext's plugin file, one of them parametrised from the
command line (``iou:frame=qwen2_vl,gold_frame=pixels``). The checks read the run's own ``logging.jsonl``
and ``completions.jsonl``: every reward is logged as ``rewards/<name>/mean``, finite, and each logged
per-completion score equals what the same reward gives offline for the logged completion.
"""

import json
import math

import pytest

from swift_ext import bridge
from swift_ext.testing import tiny
from swift_ext.rewards import configure

pytestmark = [pytest.mark.e2e, pytest.mark.vl]

# the shapes are drawn inside (size/8, size/8, size - size/8, size - size/8): for 56 px, (7, 7, 49, 49)
GOLD_BOX = [7, 7, 49, 49]
SCHEMA = {"type": "object", "required": ["label", "bbox_2d"],
          "properties": {"label": {"type": "string"},
                         "bbox_2d": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4}}}
REWARDS = ["iou:frame=qwen2_vl,gold_frame=pixels", "giou", "box_f1:threshold=0.3", "json_valid:repaired_score=0.5",
           "json_schema", "map:frame=qwen2_vl,gold_frame=pixels,overprediction=length"]
# counts ms-swift's response_token_ids: free up to 30 - 10 = 20 tokens, then -1/10 per token
LENGTH = "length_budget:max_length=30,soft_cache=10,unit=token"


def rows(images):
    out = []
    for i in range(8):
        out.append({"messages": [{"role": "user", "content": "<image>Locate the shape. Answer with JSON "
                                  '{"label": ..., "bbox_2d": [x1, y1, x2, y2]} in 0-1000 coordinates.'}],
                    "images": [images[i % len(images)]],
                    "solution": json.dumps(GOLD_BOX),
                    "schema": json.dumps(SCHEMA)})          # JSON text: a dict column would become a struct
    return out


def test_grpo_qwen2_vl_grounding_and_json_rewards(tiny_models, sample_images, run_swift, tmp_path):
    model = tiny_models["qwen2_vl"]
    dataset = tiny.write_jsonl(tmp_path / "ground.jsonl", rows(sample_images))
    out = tmp_path / "out"
    args = ["--rlhf_type", "grpo", *tiny.common_flags(model), "--dataset", dataset,
            "--external_plugins", bridge.plugin_path(), "--reward_funcs", *REWARDS, LENGTH,
            "--use_vllm", "false", "--num_generations", "2", "--max_completion_length", "24",
            "--temperature", "1.0", "--tuner_type", "lora", "--lora_rank", "4", "--lora_alpha", "8",
            "--max_steps", "2", "--per_device_train_batch_size", "4", "--learning_rate", "1e-3",
            "--max_length", "512", "--logging_steps", "1", "--save_steps", "2", "--save_total_limit", "1",
            "--beta", "0.04", "--log_completions", "true", "--output_dir", str(out)]
    run = run_swift("rlhf", args, cwd=tmp_path)
    assert run.returncode == 0, run.tail()

    steps = [r for r in tiny.logging_rows(out) if "reward" in r]
    assert len(steps) == 2, steps
    for row in steps:
        for name in REWARDS:
            value = row.get(f"rewards/{name}/mean")
            assert value is not None, f"rewards/{name}/mean missing from {sorted(row)}"
            assert math.isfinite(value), (name, value)
            assert 0.0 <= value <= 1.0
        assert row["reward"] == pytest.approx(sum(row[f"rewards/{n}/mean"] for n in REWARDS + [LENGTH]), abs=1e-4)
        # the random model never stops, so every completion has max_completion_length = 24 tokens:
        # (24 - 20) / 10 = 0.4 -> -0.4 (counting characters instead would give -1.0 for these long strings)
        if row.get("completions/clipped_ratio") == 1.0:
            assert row[f"rewards/{LENGTH}/mean"] == pytest.approx(-0.4)
            assert row[f"rewards/{LENGTH}/std"] == pytest.approx(0.0)

    # per completion: what ms-swift logged equals the reward recomputed offline on the logged text.
    # None of them abstained, so the frame conversion found the image size from ms-swift's `images`
    # column ({'bytes': ..., 'path': ...} dicts) and the schema column arrived as text.
    logged = [json.loads(line) for path in out.rglob("completions.jsonl")
              for line in path.read_text().splitlines() if line.strip()]
    assert logged, "no completions.jsonl written"
    offline = {name: configure(name)() for name in REWARDS}
    checked = 0
    for entry in logged:
        completions = entry["completion"]
        assert entry["solution"] == [json.dumps(GOLD_BOX)] * len(completions)
        for name, reward in offline.items():
            want = reward(completions, solution=entry["solution"], image_size=[[56, 56]] * len(completions),
                          schema=[json.dumps(SCHEMA)] * len(completions))
            got = entry[name]
            assert all(v is not None and math.isfinite(v) for v in got), (name, got)
            assert got == pytest.approx(want, abs=1e-6), (name, completions)
            checked += len(got)
        # ...and without an image size the pixel-frame rewards would have abstained (None -> NaN in the log)
        blind = offline[REWARDS[0]](completions, solution=entry["solution"])
        assert blind == [None] * len(completions)
    assert checked >= 2 * 4 * len(REWARDS)    # 2 steps x 4 completions x every reward
    assert list(out.glob("v*/checkpoint-2/adapter_model.safetensors"))
