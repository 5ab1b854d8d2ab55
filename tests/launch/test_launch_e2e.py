"""Real ``swift sft`` / ``swift rlhf --rlhf_type dpo`` runs on the tiny local model, started through
``swift-ext launch`` (a subprocess of the real CLI), including torchrun with two CPU processes (gloo)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from swift_ext.testing import tiny

pytestmark = pytest.mark.e2e

ROWS = 12
SMALL = ["--max_steps", "2", "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1",
         "--max_length", "128", "--save_steps", "2", "--eval_strategy", "no", "--lora_rank", "4", "--lora_alpha", "8",
         "--logging_steps", "1", "--learning_rate", "1e-3"]


def launch(recipe, tmp_path, swift_env, model, sets=(), extra=(), opts=()):
    cmd = [sys.executable, "-m", "swift_ext", "launch", recipe, "--log-dir", str(tmp_path / "logs"),
           "--set", "env.MAX_PIXELS=12544", "--set", "gradient_checkpointing=false", *opts,
           *sum((["--set", s] for s in sets), []), "--", *tiny.common_flags(model), *SMALL, *extra]
    return subprocess.run(cmd, cwd=tmp_path, env=swift_env, capture_output=True, text=True, timeout=900)


def sft_rows():
    return [{"messages": [{"role": "user", "content": f"What is {i} + {i}?"},
                          {"role": "assistant", "content": str(2 * i)}]} for i in range(ROWS)]


def last_epoch(out_dir: Path) -> float:
    return [r for r in tiny.logging_rows(out_dir) if "epoch" in r][-1]["epoch"]


def test_launch_real_sft(tiny_models, swift_env, tmp_path):
    data = tiny.write_jsonl(tmp_path / "sft.jsonl", sft_rows())
    res = launch("sft", tmp_path, swift_env, tiny_models["text"], sets=[f"dataset={data}"],
                 extra=["--output_dir", "out"])
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    assert list((tmp_path / "out").glob("v*/checkpoint-2/adapter_model.safetensors")), out[-2000:]
    assert "torch.distributed.run" not in out  # one process: no torchrun
    assert last_epoch(tmp_path / "out") == pytest.approx(2 * 2 / ROWS, abs=1e-3)  # 2 steps x 2 rows / 12 rows
    log = (tmp_path / "logs" / "train.log").read_text()
    assert "last_model_checkpoint" in log and "[train] " in out and "[swift-ext] train exited with code 0" in out


def test_launch_real_sft_two_cpu_processes_with_torchrun(tiny_models, swift_env, tmp_path):
    data = tiny.write_jsonl(tmp_path / "sft.jsonl", sft_rows())
    res = launch("sft", tmp_path, swift_env, tiny_models["text"], sets=[f"dataset={data}"], opts=["--nproc", "2"],
                 extra=["--output_dir", "out"])
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    assert "torch.distributed.run --nproc_per_node 2" in out
    assert re.search(r"rank: 0, local_rank: 0, world_size: 2", out)
    # two ranks share the data: 2 steps x 2 rows x 2 processes / 12 rows = 0.667 epoch (one process: 0.333)
    assert last_epoch(tmp_path / "out") == pytest.approx(2 * 2 * 2 / ROWS, abs=1e-3)


def test_launch_real_dpo_with_the_plugin(tiny_models, swift_env, tmp_path):
    rows = [{**r, "rejected_response": f"I think it is {2 * i + 5}."} for i, r in enumerate(sft_rows())]
    data = tiny.write_jsonl(tmp_path / "dpo.jsonl", rows)
    res = launch("dpo", tmp_path, swift_env, tiny_models["text"], sets=[f"dataset={data}"],
                 extra=["--output_dir", "out"])
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    run_sh = next(line for line in out.splitlines() if "run sh:" in line)
    assert "--rlhf_type dpo" in run_sh and "swift_ext_plugin.py" in run_sh  # the plugin was passed and loaded
    rows = tiny.logging_rows(tmp_path / "out")
    assert any("rewards/margins" in r for r in rows), rows[:2]
    assert list((tmp_path / "out").glob("v*/checkpoint-2/adapter_model.safetensors"))


def test_launch_failure_exit_code_is_swifts(tiny_models, swift_env, tmp_path):
    # --no-check: the missing file would otherwise be refused before swift starts (test_launch_check.py)
    res = launch("sft", tmp_path, swift_env, tiny_models["text"], sets=["dataset=/nonexistent/none.jsonl"],
                 opts=["--no-check"])
    out = res.stdout + res.stderr
    assert res.returncode not in (0, None), out[-2000:]
    assert f"[swift-ext] train exited with code {res.returncode}" in out


def test_launch_real_grpo_without_vllm(tiny_models, swift_env, tmp_path):
    """GRPO from the shipped template with generation inside the trainer (vLLM cannot run here)."""
    data = tiny.write_jsonl(tmp_path / "grpo.jsonl", tiny.grpo_rows(8))
    res = launch("grpo", tmp_path, swift_env, tiny_models["text"], sets=[f"dataset={data}", "use_vllm=false"],
                 extra=["--output_dir", "out", "--num_generations", "2", "--per_device_train_batch_size", "4",
                        "--max_completion_length", "16", "--reward_funcs", "format", "accuracy"])
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    assert "use_vllm is false: rollout mode 'server' ignored" in out
    assert "--vllm_mode" not in next(line for line in out.splitlines() if "run sh:" in line)
    rows = [r for r in tiny.logging_rows(tmp_path / "out") if "reward" in r]
    assert rows and all(r["reward"] == r["reward"] for r in rows)  # logged and not NaN
