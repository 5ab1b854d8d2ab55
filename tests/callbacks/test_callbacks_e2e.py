"""The callbacks inside real tiny `swift rlhf --rlhf_type grpo` and `swift sft` runs (CPU, --use_vllm false)."""

import json

import pytest

from swift_ext import bridge
from swift_ext.testing import tiny

pytestmark = pytest.mark.e2e


def _samples(out):
    files = list(out.rglob("swift_ext_samples.jsonl"))
    assert len(files) == 1, files
    return [json.loads(line) for line in files[0].read_text().splitlines()]


def test_grpo_eval_callbacks(tiny_models, run_swift, tmp_path):
    model = tiny_models["text"]
    rl = tiny.write_jsonl(tmp_path / "rl.jsonl", tiny.grpo_rows(8))
    val = tiny.write_jsonl(tmp_path / "val.jsonl", tiny.grpo_rows(10)[8:])
    out = tmp_path / "out"
    run = run_swift("rlhf", [
        "--rlhf_type", "grpo", *tiny.common_flags(model), "--dataset", rl, "--val_dataset", val,
        "--external_plugins", bridge.plugin_path(),
        "--callbacks", "reward_eval:threshold=0.5", "train_sanity:n=2,k=2", "sample_logger",
        "plateau_stop:metric=eval_ext/Format/mean,patience=1",
        "--reward_funcs", "format", "random", "--use_vllm", "false", "--num_generations", "2",
        "--num_generations_eval", "2", "--max_completion_length", "4", "--max_length", "128",
        "--per_device_train_batch_size", "2", "--per_device_eval_batch_size", "2", "--max_steps", "3",
        "--tuner_type", "lora", "--logging_steps", "1", "--save_strategy", "no",
        "--eval_strategy", "steps", "--eval_steps", "1", "--output_dir", str(out)], cwd=tmp_path)
    assert run.returncode == 0, run.tail()
    logs = tiny.logging_rows(out)
    ext = [r for r in logs if "eval_ext/random/mean" in r]
    ours = {r["global_step/max_steps"]: r for r in ext}
    # plateau_stop: Format is 0 for every random completion, so the 2nd evaluation brings no improvement and
    # (patience 1) training stops at step 2 of 3
    assert sorted(ours) == ["1/3", "2/3"], sorted(ours)
    assert not any(r.get("global_step/max_steps") == "3/3" for r in logs)
    assert "plateau_stop: eval_ext/Format/mean has not improved" in run.output

    rows = _samples(out)
    evals = [r for r in rows if r["split"] == "eval"]
    sanity = [r for r in rows if r["split"] == "train_sanity"]
    # per evaluation: 2 val prompts x 2 generations; sanity: n=2 rows x k=2; two evaluations
    assert len(evals) == 8 and len(sanity) == 8
    assert all(set(r["rewards"]) == {"Format", "random"} and r["prompt"] and isinstance(r["completion"], str)
               for r in rows)
    assert {r["solution"] for r in evals} == {"35", "39"}  # 17+18, 19+20: the val rows' solutions

    for step in (1, 2):
        logged = ours[f"{step}/3"]
        batch = [r for r in evals if r["step"] == step]
        scores = [r["rewards"]["random"] for r in batch]
        # recomputed from the sample file by the formulas: mean; accuracy = share >= 0.5;
        # pass@2 = share of prompt groups (2 samples each) with at least one score >= 0.5
        groups = {}
        for r in batch:
            groups.setdefault(r["group"], []).append(r["rewards"]["random"])
        assert logged["eval_ext/random/mean"] == pytest.approx(sum(scores) / 4, abs=1e-6)
        assert logged["eval_ext/random/accuracy"] == pytest.approx(sum(s >= 0.5 for s in scores) / 4)
        assert logged["eval_ext/random/pass@2"] == pytest.approx(
            sum(any(s >= 0.5 for s in g) for g in groups.values()) / len(groups))
        assert logged["eval_ext/Format/mean"] == 0.0 and logged["eval_ext/prompts"] == 2
        # ms-swift's own eval mean of the same rollouts agrees
        own = next(r for r in logs if r.get("global_step/max_steps") == f"{step}/3" and "eval_reward" in r)
        assert own["eval_rewards/random/mean"] == pytest.approx(logged["eval_ext/random/mean"], abs=1e-6)
        sanity_row = next(r for r in logs if r.get("global_step/max_steps") == f"{step}/3"
                          and "train_sanity/random/mean" in r)
        s_scores = [r["rewards"]["random"] for r in sanity if r["step"] == step]
        assert sanity_row["train_sanity/random/mean"] == pytest.approx(sum(s_scores) / 4, abs=1e-6)
        assert sanity_row["train_sanity/prompts"] == 2


def test_sft_sanity_callback(tiny_models, run_swift, tmp_path):
    model = tiny_models["text"]
    data = tiny.write_jsonl(tmp_path / "sft.jsonl", [
        {"messages": [{"role": "user", "content": f"What is {i} + 1?"}, {"role": "assistant", "content": str(i + 1)}]}
        for i in range(6)])
    out = tmp_path / "out"
    run = run_swift("sft", [*tiny.common_flags(model), "--dataset", data, "--external_plugins",
                            bridge.plugin_path(), "--callbacks", "train_sanity:n=3,every_steps=2",
                            "sample_logger", "chord_mu", "--per_device_train_batch_size", "2", "--max_steps", "4",
                            "--learning_rate", "1e-3", "--tuner_type", "lora", "--logging_steps", "1",
                            "--save_strategy", "no", "--eval_strategy", "no", "--max_length", "128",
                            "--output_dir", str(out)], cwd=tmp_path)
    assert run.returncode == 0, run.tail()
    logs = [r for r in tiny.logging_rows(out) if "train_sanity/loss" in r]
    assert [r["global_step/max_steps"] for r in logs] == ["2/4", "4/4"]
    assert all(0.0 <= r["train_sanity/token_acc"] <= 1.0 and r["train_sanity/rows"] == 3 for r in logs)
    # the fixed sample is part of the training set: 4 LoRA steps at lr 1e-3 must lower its loss
    assert logs[1]["train_sanity/loss"] < logs[0]["train_sanity/loss"]
    rows = _samples(out)
    assert [r["step"] for r in rows] == [2, 2, 2, 4, 4, 4]
    assert rows[0]["prompt_id"] == rows[3]["prompt_id"]  # the same fixed rows each time
    assert all(r["reference"].startswith(str(int(r["prompt"].split("What is ")[1].split(" ")[0]) + 1))
               for r in rows)
    assert "chord_mu: this run uses no CHORD" in run.output


@pytest.mark.vl
def test_grpo_eval_callbacks_vl(tiny_models, sample_images, run_swift, tmp_path):
    model = tiny_models["qwen2_vl"]
    rl = tiny.write_jsonl(tmp_path / "rl.jsonl", tiny.grpo_rows(4, sample_images))
    val = tiny.write_jsonl(tmp_path / "val.jsonl", tiny.grpo_rows(2, sample_images))
    out = tmp_path / "out"
    run = run_swift("rlhf", [
        "--rlhf_type", "grpo", *tiny.common_flags(model), "--dataset", rl, "--val_dataset", val,
        "--external_plugins", bridge.plugin_path(), "--callbacks", "reward_eval", "sample_logger",
        "--reward_funcs", "format", "random", "--use_vllm", "false", "--num_generations", "2",
        "--max_completion_length", "4", "--max_length", "256", "--per_device_train_batch_size", "2",
        "--per_device_eval_batch_size", "2", "--max_steps", "1", "--tuner_type", "lora", "--logging_steps", "1",
        "--save_strategy", "no", "--eval_strategy", "steps", "--eval_steps", "1", "--output_dir", str(out)],
        cwd=tmp_path)
    assert run.returncode == 0, run.tail()
    rows = _samples(out)
    assert len(rows) == 4 and all(r["split"] == "eval" for r in rows)  # 2 val prompts x 2 generations
    # each sample keeps its image: the val rows cycle through the sample images
    assert sorted(r["images"][0] for r in rows) == sorted([sample_images[0]] * 2 + [sample_images[1]] * 2)
    logged = next(r for r in tiny.logging_rows(out) if "eval_ext/random/mean" in r)
    assert logged["eval_ext/random/mean"] == pytest.approx(sum(r["rewards"]["random"] for r in rows) / 4, abs=1e-6)
