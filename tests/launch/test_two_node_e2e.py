"""Two nodes simulated on one machine: two ``swift-ext launch`` processes, ``--nnodes 2 --node-rank 0|1
--master-addr 127.0.0.1 --device cpu --nproc 1``, each rendering the command a two-node GPU job renders
except the device settings (tests/launch/test_launch_plan.py compares the plans), and each starting its own
torchrun; together one world of 2 gloo ranks.

* a real CHORD run across the two nodes (the one CHORD world-size-2 run of the suite): both nodes train,
  the μ each rank used inside its loss at each step equals the plan, rank 0 alone writes the run folder;
* SIGKILL of node 1's launcher mid-training: no process of either node is left (read from /proc).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from swift_ext.chord import plan as chord
from swift_ext.launch import guard
from swift_ext.testing import tiny

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node(recipe, rank, port, work, env, sets, extra):
    """One node's launcher (its own log folder, like a node of a real cluster)."""
    cmd = [sys.executable, "-m", "swift_ext", "launch", recipe, "--device", "cpu", "--nproc", "1", "--nnodes", "2",
           "--node-rank", str(rank), "--master-addr", "127.0.0.1", "--master-port", str(port), "--grace", "3",
           "--log-dir", str(work / f"node{rank}"), "--set", "use_vllm=false", "--set", "gradient_checkpointing=false",
           *sum((["--set", s] for s in sets), []), "--", *extra]
    log = open(work / f"launcher{rank}.log", "w")
    return subprocess.Popen(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)


def sft_rows(n):
    return [{"messages": [{"role": "user", "content": f"What is {i} + 1?"},
                          {"role": "assistant", "content": str(i + 1)}]} for i in range(n)]


def test_chord_across_two_nodes_mu_on_every_rank_equals_the_plan(tiny_models, swift_env, tmp_path):
    model = tiny_models["text"]
    rl = tiny.write_jsonl(tmp_path / "rl.jsonl", tiny.grpo_rows(6))
    sft = tiny.write_jsonl(tmp_path / "sft.jsonl", sft_rows(6))
    # the plan for 2 ranks: 6 rows, batch 2 per rank, G 2 -> 4 completions = 2 prompts per round: 3 steps
    steps = chord.count_steps(6, per_device_batch=2, grad_accum=1, gpus=2, num_generations=2)
    plan = chord.make_plan("linear_decay:peak=0.9,valley=0.1,decay_steps=2", steps, [sft], [rl])
    assert steps.total_steps == 3
    port, trace = free_port(), tmp_path / "mu"
    out = tmp_path / "out"
    extra = [*tiny.common_flags(model), "--reward_funcs", "think_format", "--callbacks", f"chord_mu:trace={trace}",
             "--num_generations", "2", "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1",
             "--max_completion_length", "4", "--max_length", "128", "--save_strategy", "no", "--logging_steps", "1",
             "--chord_sft_per_device_train_batch_size", "1", "--chord_mu_warmup_steps", "0",
             "--chord_mu_decay_steps", "2", "--chord_mu_peak", "0.5", "--chord_mu_valley", "0.5",
             "--lora_rank", "4", "--lora_alpha", "8", "--output_dir", str(out)]
    env = {**swift_env, **plan.env()}
    sets = [f"dataset={rl}", f"chord_sft_dataset={sft}"]
    procs = [node("chord", r, port, tmp_path, env, sets, extra) for r in (0, 1)]
    codes = [p.wait(timeout=900) for p in procs]
    logs = [(tmp_path / f"launcher{r}.log").read_text(errors="replace") for r in (0, 1)]
    assert codes == [0, 0], "\n".join(log[-3000:] for log in logs)
    for r, log in enumerate(logs):
        run_sh = next(line for line in log.splitlines() if "run sh:" in line)
        assert f"--nnodes 2 --node_rank {r} --master_addr 127.0.0.1" in run_sh
        assert "--use_cpu true --ddp_backend gloo" in run_sh
    assert "world_size: 2, local_world_size: 1" in logs[0]
    # both nodes trained: each rank wrote the mu its own loss used at every step, and it is the plan's
    expected = [m for _, m in plan.table()]
    for rank in (0, 1):
        rows = [json.loads(x) for x in Path(f"{trace}.rank{rank}.jsonl").read_text().splitlines()]
        assert [r["step"] for r in rows] == [1, 2, 3] and all(r["from_loss"] for r in rows)
        assert [r["mu"] for r in rows] == pytest.approx(expected)
    # rank 0 alone wrote the run folder: one v* folder, one row per step, mu as planned
    (run_dir,) = [p.parent for p in out.rglob("logging.jsonl")]
    rows = [r for r in tiny.logging_rows(out) if "loss" in r and "train_runtime" not in r]
    assert [r[chord.MU_KEY] for r in rows] == pytest.approx(expected)
    assert len(list(out.glob("v*"))) == 1


def _node_processes(launchers):
    """Live processes started by these launchers (their run token starts with the launcher's pid), and the
    launchers themselves."""
    tokens = [f"{guard.RUN_ENV}={p.pid}-".encode() for p in launchers]
    found = []
    for pid in guard._pids():
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                env = fh.read().split(b"\0")
        except OSError:
            continue
        if any(v.startswith(t) for v in env for t in tokens) and guard.alive(pid):
            found.append(pid)
    return found + [p.pid for p in launchers if guard.alive(p.pid)]


def test_sigkill_of_one_nodes_launcher_leaves_no_process_on_either_node(tiny_models, swift_env, tmp_path):
    model = tiny_models["text"]
    data = tiny.write_jsonl(tmp_path / "grpo.jsonl", tiny.grpo_rows(16))
    port = free_port()
    extra = [*tiny.common_flags(model), "--reward_funcs", "think_format", "--num_generations", "2",
             "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1",
             "--max_completion_length", "8", "--max_length", "128", "--max_steps", "500", "--save_strategy", "no",
             "--logging_steps", "1", "--lora_rank", "4", "--lora_alpha", "8", "--output_dir", str(tmp_path / "out")]
    procs = [node("grpo", r, port, tmp_path, swift_env, [f"dataset={data}"], extra) for r in (0, 1)]
    try:
        deadline = time.monotonic() + 600
        # both nodes are training once a step is logged: every step syncs the gradients of both ranks (only
        # global rank 0, on node 0, prints progress and step rows)
        log0 = tmp_path / "node0" / "train.log"
        while not (log0.exists() and "global_step/max_steps" in log0.read_text(errors="replace")):
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), \
                (tmp_path / "launcher1.log").read_text()[-3000:]
            time.sleep(0.5)
        during = _node_processes(procs)
        assert len(during) >= 8, during  # per node: launcher, guard, torchrun agent, rank (+ their helpers)
        os.kill(procs[1].pid, signal.SIGKILL)
        # node 1's guard stops its tree; node 0's rank loses its gloo peer and node 0's launcher ends
        code0 = procs[0].wait(timeout=180)
        procs[1].wait(timeout=10)
        left = []
        for _ in range(100):
            left = _node_processes(procs)
            if not left:
                break
            time.sleep(0.2)
        assert left == [], [Path(f"/proc/{p}/cmdline").read_bytes() for p in left if Path(f"/proc/{p}").exists()]
        assert code0 != 0  # node 0's training failed: its peer is gone
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for pid in _node_processes(procs):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
