"""Converted files in real tiny ms-swift training runs: `swift sft`, `swift rlhf --rlhf_type dpo`, and
`swift rlhf --rlhf_type grpo` (2 steps each, tiny local Qwen3, CPU). The conversions run through the real
`swift-ext convert` CLI; the assertions read each run's own logging.jsonl.
"""

import json
import math
import subprocess
import sys

import pytest

from swift_ext import bridge
from swift_ext.testing import tiny

pytestmark = pytest.mark.e2e

# hand-written SFT rows (ms-swift messages) with the answer in <answer> tags
SFT_ROWS = [{"messages": [{"role": "user", "content": f"What is {a} + {b}?"},
                          {"role": "assistant", "content": f"<think>{a} + {b} = {a + b}</think><answer>{a + b}</answer>"}]}
            for a, b in [(1, 2), (3, 4), (5, 6), (7, 8), (10, 11), (12, 13), (20, 5), (9, 9)]]


def convert(tmp_path, to, *extra):
    src = tmp_path / "sft_in.jsonl"
    if not src.exists():
        tiny.write_jsonl(src, SFT_ROWS)
    out = tmp_path / f"{to}.jsonl"
    proc = subprocess.run([sys.executable, "-m", "swift_ext", "convert", str(src), "--to", to, "-o", str(out),
                           "--json", *extra], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["rows_in"] == 8 and summary["rows_rejected"] == 0
    return str(out)


def train_flags(model, dataset, out):
    return [*tiny.common_flags(model), "--dataset", dataset, "--tuner_type", "lora", "--lora_rank", "4",
            "--lora_alpha", "8", "--max_steps", "2", "--learning_rate", "1e-3", "--max_length", "256",
            "--logging_steps", "1", "--save_steps", "2", "--save_total_limit", "1", "--output_dir", str(out)]


def loss_rows(out):
    return [r for r in tiny.logging_rows(out) if "loss" in r]


def test_sft_on_converted_alpaca(tiny_models, run_swift, tmp_path):
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "data" / "convert" / "alpaca.jsonl"
    out = tmp_path / "sft.jsonl"
    proc = subprocess.run([sys.executable, "-m", "swift_ext", "convert", str(src), "--to", "sft", "-o", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    run = run_swift("sft", [*train_flags(tiny_models["text"], str(out), tmp_path / "run"),
                            "--per_device_train_batch_size", "2"], cwd=tmp_path)
    assert run.returncode == 0, run.tail()
    rows = loss_rows(tmp_path / "run")
    assert len(rows) == 2 and all(math.isfinite(r["loss"]) for r in rows)


def test_dpo_on_rule_based_negatives(tiny_models, run_swift, tmp_path):
    dataset = convert(tmp_path, "dpo", "--negatives", "number", "--seed", "0")
    rows = [json.loads(x) for x in open(dataset)]
    assert all(r["rejected_response"] != r["messages"][-1]["content"] for r in rows)
    run = run_swift("rlhf", ["--rlhf_type", "dpo", "--beta", "0.1",
                             *train_flags(tiny_models["text"], dataset, tmp_path / "run"),
                             "--per_device_train_batch_size", "2"], cwd=tmp_path)
    assert run.returncode == 0, run.tail()
    rows = loss_rows(tmp_path / "run")
    assert len(rows) == 2 and all(math.isfinite(r["loss"]) for r in rows)
    assert all("rewards/chosen" in r and "rewards/rejected" in r for r in rows), rows


def test_grpo_solution_reaches_the_reward(tiny_models, run_swift, tmp_path):
    dataset = convert(tmp_path, "grpo", "--extract", "answer_tag")
    assert [json.loads(x)["solution"] for x in open(dataset)] == ["3", "7", "11", "15", "21", "25", "25", "18"]
    run = run_swift("rlhf", ["--rlhf_type", "grpo", *train_flags(tiny_models["text"], dataset, tmp_path / "run"),
                             "--external_plugins", bridge.plugin_path(),
                             "--reward_funcs", "exact_match:extract=last_number", "--use_vllm", "false",
                             "--num_generations", "2", "--max_completion_length", "16", "--temperature", "1.0",
                             "--per_device_train_batch_size", "4", "--beta", "0.04"], cwd=tmp_path)
    assert run.returncode == 0, run.tail()
    rows = [r for r in tiny.logging_rows(tmp_path / "run") if "reward" in r]
    assert len(rows) == 2
    for r in rows:
        # exact_match abstains (NaN) when the gold column is missing: a finite mean means `solution` arrived
        value = r["rewards/exact_match:extract=last_number/mean"]
        assert math.isfinite(value) and 0.0 <= value <= 1.0


@pytest.mark.vl
def test_dpo_qwen2_vl_on_rlaif_v_parquet_with_image_bytes(tiny_models, sample_images, run_swift, tmp_path):
    """RLAIF-V rows with the image as parquet bytes -> --media-dir files -> a real VL DPO run."""
    from pathlib import Path

    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"ds_name": "RLAIF-V", "image": {"bytes": Path(p).read_bytes(), "path": None},
             "question": "What shape is drawn?", "chosen": f"A shape number {i}.", "rejected": "A green cow.",
             "origin_dataset": "synthetic", "origin_split": "train", "idx": i, "image_path": f"img/{i}.png"}
            for i, p in enumerate(sample_images)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "rlaif.parquet")
    out = tmp_path / "dpo.jsonl"
    proc = subprocess.run([sys.executable, "-m", "swift_ext", "convert", str(tmp_path / "rlaif.parquet"), "--to",
                           "dpo", "-o", str(out), "--media-dir", str(tmp_path / "media"), "--json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["rows_converted"] == len(sample_images)
    converted = [json.loads(x) for x in out.read_text().splitlines()]
    assert all(Path(r["images"][0]).read_bytes() == Path(p).read_bytes() for r, p in zip(converted, sample_images))
    run = run_swift("rlhf", ["--rlhf_type", "dpo", "--beta", "0.1",
                             *train_flags(tiny_models["qwen2_vl"], str(out), tmp_path / "run"),
                             "--per_device_train_batch_size", "2"], cwd=tmp_path)
    assert run.returncode == 0, run.tail()
    losses = loss_rows(tmp_path / "run")
    assert len(losses) == 2 and all(math.isfinite(r["loss"]) for r in losses)
