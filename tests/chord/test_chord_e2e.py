"""Real tiny CHORD runs (`swift rlhf --rlhf_type grpo --chord_sft_dataset ...`, CPU, --use_vllm false) with the
swift-ext plugin: a custom mu shape is applied inside ms-swift's loss and logged each step, and bad settings
stop the run before any model is loaded."""

import math

import pytest

from swift_ext import bridge
from swift_ext.chord import plan as chord
from swift_ext.testing import tiny

pytestmark = pytest.mark.e2e


def _grpo_flags(model, rl, sft, out):
    return ["--rlhf_type", "grpo", *tiny.common_flags(model), "--dataset", rl,
            "--external_plugins", bridge.plugin_path(), "--reward_funcs", "format", "--use_vllm", "false",
            "--num_generations", "2", "--max_completion_length", "4", "--max_length", "128",
            "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "2", "--num_train_epochs", "1",
            "--tuner_type", "lora", "--logging_steps", "1", "--save_strategy", "no", "--eval_strategy", "no",
            "--chord_sft_dataset", sft, "--output_dir", str(out)]


def _sft_rows(n):
    return [{"messages": [{"role": "user", "content": f"What is {i} + 1?"},
                          {"role": "assistant", "content": str(i + 1)}]} for i in range(n)]


def test_custom_shape_applied_in_training(tiny_models, run_swift, tmp_path):
    model = tiny_models["text"]
    rl = tiny.write_jsonl(tmp_path / "rl.jsonl", tiny.grpo_rows(8))
    sft = tiny.write_jsonl(tmp_path / "sft.jsonl", _sft_rows(6))
    # the plan: 8 rows, batch 2, G 2, GA 2 -> spg 2, 4 completions = 2 prompts per round, 4 rounds,
    # 8 micro-batches / GA 2 = 4 optimizer steps
    steps = chord.count_steps(8, per_device_batch=2, grad_accum=2, gpus=1, num_generations=2)
    plan = chord.make_plan("linear_decay:peak=0.9,valley=0.1,decay_steps=3", steps, [sft], [rl])
    assert steps.total_steps == 4
    # ms-swift's own arguments ask for a constant 0.5 (peak = valley); the swift-ext shape must win
    run = run_swift("rlhf", [*_grpo_flags(model, rl, sft, tmp_path / "out"), "--callbacks", "chord_mu",
                             "--chord_sft_per_device_train_batch_size", "1", "--chord_mu_warmup_steps", "0",
                             "--chord_mu_decay_steps", "3", "--chord_mu_peak", "0.5", "--chord_mu_valley", "0.5"],
                    cwd=tmp_path, env=plan.env())
    assert run.returncode == 0, run.tail()
    rows = [r for r in tiny.logging_rows(tmp_path / "out") if "loss" in r and "step" not in r]
    logged = [r[chord.MU_KEY] for r in rows]
    # linear decay 0.9 -> 0.1 over 3 steps: 0.9, 0.9 - 0.8/3 = 0.6333, 0.9 - 1.6/3 = 0.3667, then 0.1
    assert logged == pytest.approx([0.9, 0.9 - 0.8 / 3, 0.9 - 1.6 / 3, 0.1])
    assert logged == pytest.approx([m for _, m in plan.table()])
    assert len(rows) == steps.total_steps  # the run has as many optimizer steps as planned
    # the mu really weights the loss: the format reward is 0 for every completion, so the GRPO term is ~0 and
    # loss ~= mu * SFT cross-entropy of a random tiny model ~= mu * ln(vocab 3026) = mu * 8.0
    ratios = [r["loss"] / r[chord.MU_KEY] for r in rows]
    assert all(abs(x - math.log(3026)) < 0.5 for x in ratios), ratios


def test_unset_mu_argument_stops_before_training(tiny_models, run_swift, tmp_path):
    model = tiny_models["text"]
    rl = tiny.write_jsonl(tmp_path / "rl.jsonl", tiny.grpo_rows(4))
    sft = tiny.write_jsonl(tmp_path / "sft.jsonl", _sft_rows(2))
    run = run_swift("rlhf", [*_grpo_flags(model, rl, sft, tmp_path / "out"),
                             "--chord_sft_per_device_train_batch_size", "1", "--chord_mu_warmup_steps", "0",
                             "--chord_mu_decay_steps", "3", "--chord_mu_valley", "0.1"], cwd=tmp_path)
    assert run.returncode != 0
    assert "needs --chord_mu_peak" in run.output
    assert "Train:" not in run.output and not list((tmp_path / "out").rglob("logging.jsonl"))
