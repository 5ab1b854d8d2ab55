"""The ``--dry-run`` script and the ``--slurm`` sbatch script.

The dry-run script of a GRPO plan is *executed* with bash, with ``swift`` on PATH being a wrapper around
``tests/rollout_standin.py`` (a real HTTP server process + a stand-in trainer; vLLM cannot run here), to
show the script really waits for /health, returns the trainer's exit code and stops the server.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from swift_ext.errors import ConfigError
from swift_ext.launch import build_plan, load_template
from swift_ext.launch.shell import render_plan
from swift_ext.launch.slurm import render_sbatch

STANDIN = Path(__file__).with_name("rollout_standin.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2] == "Z"


def test_dry_run_script_runs_server_then_trainer_and_cleans_up(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "swift").write_text(f"#!/bin/sh\nexec {sys.executable} {STANDIN} \"$@\"\n")
    (bindir / "swift").chmod(0o755)
    port, gport = free_port(), free_port()
    plan = build_plan("grpo", load_template("grpo"), plugin="/p.py",
                      sets=["dataset=d.jsonl", f"rollout.port={port}", f"rollout.group_port={gport}",
                            "rollout.health_timeout=30"])
    script = tmp_path / "run.sh"
    script.write_text(render_plan(plan, str(tmp_path / "logs")))
    record = tmp_path / "rec"
    record.mkdir()
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", STANDIN_RECORD=str(record), STANDIN_TRAIN="exit=4",
               http_proxy="http://127.0.0.1:9")
    res = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 4, res.stdout + res.stderr  # the stand-in trainer's exit code
    server = json.loads((record / "rollout.json").read_text())
    trainer = json.loads((record / "train.json").read_text())
    assert trainer["health"] == 200 and "http_proxy" not in trainer["env"]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not (gone(server["pid"]) and gone(server["child"])):
        time.sleep(0.1)
    assert gone(server["pid"]) and gone(server["child"])  # the trap stopped the server's process group
    assert "Uvicorn running" in (tmp_path / "logs" / "rollout.log").read_text()


def _bash_ok(text: str, tmp_path: Path) -> None:
    p = tmp_path / "job.sbatch"
    p.write_text(text)
    res = subprocess.run(["bash", "-n", str(p)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr + text


def test_slurm_grpo_last_node_serves_rollouts(tmp_path):
    text = render_sbatch("grpo", load_template("grpo"), nodes=3, gpus_per_node=8, sets=["dataset=d.jsonl"],
                         plugin="/p.py", partition="gpu", time_limit="12:00:00")
    _bash_ok(text, tmp_path)
    assert "#SBATCH --nodes=3" in text and "#SBATCH --partition=gpu" in text and "#SBATCH --time=12:00:00" in text
    assert 'export ROLLOUT_HOST="${NODES[-1]}"' in text
    assert 'srun --nodes=1 --ntasks=1 -w "$ROLLOUT_HOST"' in text and "--host 0.0.0.0" in text
    assert "CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7 swift rollout" in text  # the whole last node serves
    assert "--vllm_data_parallel_size 8" in text
    # 2 training nodes x 8 GPUs, rank from Slurm, torchrun through ms-swift's env variables
    assert "export NNODES=2" in text and "export NPROC_PER_NODE=8" in text
    assert "export NODE_RANK=$SLURM_PROCID" in text and 'export MASTER_ADDR="${NODES[0]}"' in text
    assert '--vllm_server_host "$ROLLOUT_HOST"' in text
    assert "srun --nodes=2 --ntasks=2 --ntasks-per-node=1" in text and "--kill-on-bad-exit=1" in text


def test_slurm_sft_uses_every_node_and_server_needs_two_nodes(tmp_path):
    text = render_sbatch("sft", load_template("sft"), nodes=2, gpus_per_node=4, sets=["dataset=d.jsonl"])
    _bash_ok(text, tmp_path)
    assert "export NNODES=2" in text and "ROLLOUT_HOST" not in text and "swift sft" in text
    with pytest.raises(ConfigError, match="at least 2 nodes"):
        render_sbatch("grpo", load_template("grpo"), nodes=1, gpus_per_node=8, sets=["dataset=d"], plugin="/p")


SHELL_DIR = Path(__file__).resolve().parents[2] / "shell"


@pytest.mark.parametrize("script, expect", [
    ("train_sft.sh", ["CUDA_VISIBLE_DEVICES=0,1,2,3 NPROC_PER_NODE=4 swift sft", "--dataset data/sft.jsonl"]),
    ("train_dpo.sh", ["swift rlhf", "--rlhf_type dpo", "--beta 0.1", "swift_ext_plugin.py"]),
    ("train_grpo.sh", ["CUDA_VISIBLE_DEVICES=6,7 setsid swift rollout", "--reward_funcs think_format math_accuracy",
                       "NPROC_PER_NODE=6 swift rlhf"]),
    ("train_chord.sh", ["--chord_sft_dataset data/sft.jsonl", "--chord_mu_decay_steps 200", "swift rollout"]),
    ("rollout.sh", ["CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7 swift rollout", "--vllm_data_parallel_size 8",
                    "--port 8000"]),
    ("merge_lora.sh", ["swift export", "--merge_lora true", "--adapters output/sft/"]),
])
def test_shell_scripts_are_thin_launch_calls(script, expect):
    path = SHELL_DIR / script
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    res = subprocess.run(["bash", str(path), "--dry-run"], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    for text in expect:
        assert text in res.stdout, (text, res.stdout)
    assert len(path.read_text().splitlines()) <= 35  # short and readable
