"""The Foundation issue's proof: real ``swift rlhf --rlhf_type grpo`` runs on tiny local models, with
swift-ext rewards loaded through the plugin file, parametrised from the swift command line.

Everything here is real: ms-swift 4.6 in a subprocess, HF generate (``--use_vllm false``), LoRA training on
CPU. The assertions read the run's own ``logging.jsonl``.
"""

import json
import math

import pytest

from swift_ext.testing import tiny
from swift_ext.testing import grpo_args, step_rows

pytestmark = pytest.mark.e2e


def check_rewards_logged(rows, rewards):
    assert len(rows) == 2, rows  # --max_steps 2 --logging_steps 1
    for row in rows:
        for name in rewards:
            value = row.get(f"rewards/{name}/mean")
            assert value is not None, f"rewards/{name}/mean missing from {sorted(row)}"
            assert math.isfinite(value), (name, value)
        # ms-swift's "reward" is the weighted sum (all weights 1) of the per-reward means
        assert row["reward"] == pytest.approx(sum(row[f"rewards/{n}/mean"] for n in rewards), abs=1e-4)
        assert math.isfinite(row["loss"])


def test_grpo_text_with_parametrised_swift_ext_rewards(tiny_models, run_swift, tmp_path):
    model = tiny_models["text"]
    dataset = tiny.write_jsonl(tmp_path / "grpo.jsonl", tiny.grpo_rows(8))
    rewards = ["think_format", "exact_match:extract=last_number", "random:low=5,high=5", "random:seed=1"]
    run = run_swift("rlhf", grpo_args(model, dataset, tmp_path / "out", rewards), cwd=tmp_path)
    assert run.returncode == 0, run.tail()

    rows = step_rows(tmp_path / "out")
    check_rewards_logged(rows, rewards)
    for row in rows:
        # random:low=5,high=5 draws from [5, 5]: every score is 5 + (5 - 5) * u = 5, so the mean is exactly 5.0
        assert row["rewards/random:low=5,high=5/mean"] == 5.0
        assert row["rewards/random:low=5,high=5/std"] == 0.0
        # 4 completions per step (2 prompts x 2 generations); 0/1 rewards average to a multiple of 1/4
        for name in ("think_format", "exact_match:extract=last_number"):
            assert row[f"rewards/{name}/mean"] * 4 == pytest.approx(round(row[f"rewards/{name}/mean"] * 4))
            assert 0.0 <= row[f"rewards/{name}/mean"] <= 1.0
        assert 0.0 <= row["rewards/random:seed=1/mean"] <= 1.0
    # the varying reward gives GRPO a non-zero advantage somewhere
    assert any(row["rewards/random:seed=1/std"] > 0 for row in rows)
    # a LoRA checkpoint was saved at step 2
    assert list((tmp_path / "out").glob("v*/checkpoint-2/adapter_model.safetensors"))


@pytest.mark.vl
def test_grpo_qwen2_vl_on_image_rows(tiny_models, sample_images, run_swift, tmp_path):
    model = tiny_models["qwen2_vl"]
    dataset = tiny.write_jsonl(tmp_path / "vl.jsonl", tiny.grpo_rows(8, images=sample_images))
    rewards = ["exact_match:extract=last_number", "random:low=5,high=5", "random:seed=1"]
    run = run_swift("rlhf", [*grpo_args(model, dataset, tmp_path / "out", rewards), "--log_completions", "true"],
                    cwd=tmp_path)
    assert run.returncode == 0, run.tail()
    rows = step_rows(tmp_path / "out")
    check_rewards_logged(rows, rewards)
    assert all(row["rewards/random:low=5,high=5/mean"] == 5.0 for row in rows)
    # --log_completions: the rewards saw the image rows' ground truth (sides of circle/square/triangle)
    logged = [json.loads(line) for path in (tmp_path / "out").rglob("completions.jsonl")
              for line in path.read_text().splitlines() if line.strip()]
    assert logged and {s for row in logged for s in row["solution"]} <= {"0", "4", "3"}
    assert all(row["random:low=5,high=5"] == [5.0] * len(row["completion"]) for row in logged)
    assert list((tmp_path / "out").glob("v*/checkpoint-2/adapter_model.safetensors"))
