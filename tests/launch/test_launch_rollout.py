"""Rollout-server lifecycle of ``swift-ext launch grpo`` with REAL processes.

vLLM (hence a real ``swift rollout``) cannot run on this CPU machine, so ``--swift`` points at
``tests/rollout_standin.py``: a real HTTP server process answering ``/health`` like ms-swift's rollout
server, and a stand-in trainer that polls that server the way ms-swift's VLLMClient does (stand-ins for
what cannot run here, as the project rules allow). The launcher itself is the real ``swift-ext`` CLI in a
subprocess; PIDs recorded by the stand-ins are checked in /proc after it exits.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

STANDIN = Path(__file__).with_name("rollout_standin.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dead(pid: int) -> bool:
    """Gone, or a zombie waiting for a reaper (it holds no resources and runs no code)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2] == "Z"


def wait_dead(pids, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(dead(p) for p in pids):
        time.sleep(0.1)
    return {p: dead(p) for p in pids}


@pytest.fixture
def launch(tmp_path):
    record = tmp_path / "record"
    record.mkdir()
    port, group_port = free_port(), free_port()

    (tmp_path / "train.jsonl").write_text('{"messages": [{"role": "user", "content": "1+1?"}], "solution": "2"}\n')

    def start(mode="healthy", train="exit=0", timeout=60, extra_env=None, sets=()):
        env = dict(os.environ, STANDIN_MODE=mode, STANDIN_TRAIN=train, STANDIN_RECORD=str(record),
                   # a dead proxy: the launcher and its children must not use it for localhost
                   http_proxy="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9", NO_PROXY="", no_proxy="")
        env.update(extra_env or {})
        cmd = [sys.executable, "-m", "swift_ext", "launch", "grpo", "--swift", f"{sys.executable} {STANDIN}",
               "--set", "dataset=train.jsonl", "--set", f"rollout.port={port}",
               "--set", f"rollout.group_port={group_port}", "--set", f"rollout.health_timeout={timeout}",
               "--log-dir", str(tmp_path / "logs"), "--grace", "3", *sum((["--set", s] for s in sets), [])]
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                cwd=tmp_path)

    start.record, start.port, start.group_port, start.logs = record, port, group_port, tmp_path / "logs"
    return start


def rec(folder: Path, role: str):
    p = folder / f"{role}.json"
    return json.loads(p.read_text()) if p.exists() else None


def test_healthy_server_then_trainer_exit_code_is_the_trainers(launch):
    proc = launch(train="exit=7")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 7, out  # the stand-in trainer exits 7: the launcher must return exactly that
    server, trainer = rec(launch.record, "rollout"), rec(launch.record, "train")
    assert server and trainer, out
    # the trainer was pointed at the real port and reached /health through no proxy
    argv = trainer["argv"]
    assert argv[argv.index("--vllm_server_port") + 1] == str(launch.port)
    assert argv[argv.index("--vllm_server_host") + 1] == "127.0.0.1"
    assert trainer["health"] == 200, trainer
    assert "http_proxy" not in trainer["env"] and "HTTP_PROXY" not in trainer["env"]
    assert "127.0.0.1" in trainer["env"]["NO_PROXY"].split(",")
    assert "http_proxy" not in server["env"]
    # the swift-ext plugin is added for rlhf recipes
    assert any(a.endswith("swift_ext_plugin.py") for a in argv)
    # the server was bound to localhost on the planned port, and stopped with its child afterwards
    sargv = server["argv"]
    assert sargv[sargv.index("--port") + 1] == str(launch.port)
    assert all(wait_dead([server["pid"], server["child"], trainer["pid"]]).values())
    # logs on disk, prefixed lines on the console
    assert "Uvicorn running on" in (launch.logs / "rollout.log").read_text()
    assert "stand-in trainer: /health -> 200" in (launch.logs / "train.log").read_text()
    assert "[rollout] INFO:" in out and "[train] stand-in trainer" in out


def test_crash_during_start_is_reported_with_log_tail_not_as_timeout(launch):
    t0 = time.monotonic()
    proc = launch(mode="crash", timeout=120)
    out, _ = proc.communicate(timeout=120)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 1, out
    assert "exited with code 3 before becoming healthy" in out
    assert "CUDA out of memory (stand-in)" in out  # the tail of its log
    assert elapsed < 60, elapsed  # reported at once, far below the 120 s health timeout
    assert rec(launch.record, "train") is None  # the trainer was never started


def test_never_healthy_times_out_and_stops_the_server(launch):
    proc = launch(mode="never", timeout=4)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1, out
    assert "did not answer" in out and "within 4s" in out
    assert rec(launch.record, "train") is None
    server = rec(launch.record, "rollout")
    assert all(wait_dead([server["pid"], server["child"]]).values())


@pytest.mark.parametrize("which", ["http", "group"])
def test_busy_port_is_refused_before_anything_starts(launch, which):
    port = launch.port if which == "http" else launch.group_port
    with socket.socket() as holder:
        holder.bind(("0.0.0.0", port))
        holder.listen()
        proc = launch()
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, out
    assert f"port {port} is already in use" in out
    assert rec(launch.record, "rollout") is None and rec(launch.record, "train") is None


def test_trainer_is_pointed_at_the_port_the_server_really_bound(launch):
    moved = free_port()
    proc = launch(train="exit=0", extra_env={"STANDIN_MOVE_TO": str(moved)})
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    trainer = rec(launch.record, "train")
    argv = trainer["argv"]
    assert argv[argv.index("--vllm_server_port") + 1] == str(moved) != str(launch.port)
    assert trainer["health"] == 200
    assert f"moved to http://127.0.0.1:{moved}/health" in out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_to_launcher_leaves_no_child(launch, sig):
    proc = launch(train="sleep")
    deadline = time.monotonic() + 90
    while rec(launch.record, "train") is None and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    server, trainer = rec(launch.record, "rollout"), rec(launch.record, "train")
    assert server and trainer, proc.communicate(timeout=10)[0]
    pids = [server["pid"], server["child"], trainer["pid"], trainer["child"]]
    assert not any(dead(p) for p in pids)  # all four really run before the signal
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, out
    assert f"received {sig.name}" in out
    assert wait_dead(pids) == {p: True for p in pids}


def _all_running(launch, proc):
    deadline = time.monotonic() + 90
    while rec(launch.record, "train") is None and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    server, trainer = rec(launch.record, "rollout"), rec(launch.record, "train")
    assert server and trainer, proc.communicate(timeout=10)[0]
    pids = [server["pid"], server["child"], trainer["pid"], trainer["child"]]
    assert not any(dead(p) for p in pids)  # all four really run before the fault
    return pids


def test_sigkill_of_the_launcher_leaves_no_child(launch):
    """issue 10: a SIGKILL cannot be caught; every guard gets a parent-death signal and stops its tree."""
    proc = launch(train="sleep")
    pids = _all_running(launch, proc)
    proc.kill()
    proc.communicate(timeout=30)
    assert wait_dead(pids, timeout=30) == {p: True for p in pids}


def test_setsid_grandchildren_do_not_survive_a_clean_sigterm(launch):
    """issue 10: a grandchild that left the process group (setsid) is found through /proc and stopped."""
    proc = launch(train="sleep", extra_env={"STANDIN_SETSID": "1"})
    pids = _all_running(launch, proc)
    for p in pids[1::2]:  # the two grandchildren really are in sessions of their own
        assert os.getsid(p) == p
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert wait_dead(pids, timeout=30) == {p: True for p in pids}


def test_setsid_grandchild_left_behind_by_a_finished_trainer_is_stopped(launch):
    proc = launch(train="exit=0", extra_env={"STANDIN_SETSID": "1"})
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    server, trainer = rec(launch.record, "rollout"), rec(launch.record, "train")
    pids = [server["pid"], server["child"], trainer["pid"], trainer["child"]]
    assert wait_dead(pids, timeout=30) == {p: True for p in pids}


def test_server_dying_during_training_stops_the_trainer(launch):
    proc = launch(mode="die_after=3", train="sleep")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0, out
    assert "rollout server exited with code 5 during train" in out
    trainer = rec(launch.record, "train")
    assert all(wait_dead([trainer["pid"], trainer["child"]]).values())


def test_api_key_is_refused_with_the_reason(launch):
    proc = launch(sets=["rollout.args.api_key=secret"])
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "--api_key" in out and "Authorization" in out
    assert rec(launch.record, "rollout") is None


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
def test_missing_vllm_gives_the_gpu_extra_hint(tmp_path, tiny_models):
    """issue 10: the REAL `swift rollout` (ms-swift 4.6, no vllm on this machine) crashes at import; the
    launcher's crash report ends with the install hint."""
    from swift_ext import cpu_compat
    from swift_ext.testing import tiny

    (tmp_path / "train.jsonl").write_text('{"messages": [{"role": "user", "content": "1+1?"}], "solution": "2"}\n')
    env = tiny.offline_env(cpu_compat.subprocess_env(os.environ))
    cmd = [sys.executable, "-m", "swift_ext", "launch", "grpo", "--set", f"model={tiny_models['text'].path}",
           "--set", "dataset=train.jsonl", "--set", f"rollout.port={free_port()}",
           "--set", f"rollout.group_port={free_port()}", "--set", "rollout.health_timeout=300",
           "--log-dir", str(tmp_path / "logs"), "--grace", "3"]
    res = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=400)
    out = res.stdout + res.stderr
    assert res.returncode == 1, out[-3000:]
    assert "No module named 'vllm'" in out and "exited with code" in out
    assert "hint: vllm is not installed in the environment that runs swift: pip install 'swift-ext[gpu]'" in out
    assert not (tmp_path / "logs" / "train.log").exists()  # the trainer never started
