"""Catchable signals (SIGTERM/SIGHUP: Slurm pre-emption; SIGINT: Ctrl-C) stop convert / validate / mix cleanly:
no output, no temporary file, exit status 128 + signal; a later run deletes the temp files of a dead run.
Real subprocesses, real signals, files and PIDs checked on disk and in /proc."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from swift_ext.io import STALE_UNOWNED_SECONDS, AtomicFile, sweep_stale_temps

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fdinfo"), reason="needs Linux /proc")

ROW = {"messages": [{"role": "user", "content": "What is 2 + 2? " * 20},
                    {"role": "assistant", "content": "<answer>4</answer>"}]}


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """400k rows (1 in 1000 broken, so a reject file is being written too): seconds of work."""
    src = tmp_path_factory.mktemp("in") / "big.jsonl"
    line = (json.dumps(ROW) + "\n").encode()
    with open(src, "wb") as fh:
        for i in range(400_000):
            fh.write(line if i % 1000 else b"{bad\n")
    return src


def _reading(pid: int, path: Path) -> bool:
    """Whether process ``pid`` has ``path`` open and has read into it (its fd position is past 0)."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == str(path):
                pos = int(open(f"/proc/{pid}/fdinfo/{fd}").read().split("pos:")[1].split()[0])
                if pos > 0:
                    return True
        except (OSError, IndexError, ValueError):
            continue
    return False


def _children(pid: int):
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as fh:
            out += [int(x) for x in fh.read().split()]
    return out


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _start(args, tmp_path, new_session=False):
    env = dict(os.environ, TMPDIR=str(tmp_path / "tmp"), PYTHONPATH=os.pathsep.join(sys.path))
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "swift_ext", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env, start_new_session=new_session)


def _wait_until(proc, cond, what, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        assert proc.poll() is None, f"finished before {what}: make the input bigger ({proc.stderr.read()[-2000:]})"
        time.sleep(0.02)
    raise AssertionError(f"never {what}")


def _leftovers(folder: Path):
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)])
def test_convert_signal_leaves_nothing_and_exits_128_plus_signal(big, tmp_path, sig, code):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = _start(["convert", str(big), "--to", "grpo", "-o", str(out_dir / "grpo.jsonl")], tmp_path)
    try:
        _wait_until(proc, lambda: any(p.name.startswith(".grpo.jsonl.") and p.stat().st_size > 0
                                      for p in out_dir.iterdir()), "wrote its temp file")
        os.kill(proc.pid, sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, proc.stderr.read()[-2000:]
    assert _leftovers(out_dir) == []  # neither output, reject file, nor any hidden temp file
    assert _leftovers(tmp_path / "tmp") == []


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_convert_num_proc_signal_to_the_group_stops_every_worker(big, tmp_path, sig, code):
    """Slurm signals every process of the job: the parent and its --num-proc workers."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = _start(["convert", str(big), "--to", "grpo", "-o", str(out_dir / "grpo.jsonl"), "--num-proc", "2"],
                  tmp_path, new_session=True)
    workers = []
    try:
        def mapping():
            kids = [k for k in _children(proc.pid) if _alive(k)]
            if len(kids) >= 2:
                workers[:] = kids
                return True
            return False

        _wait_until(proc, mapping, "started its workers")
        time.sleep(0.3)
        os.killpg(proc.pid, sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == code, proc.stderr.read()[-3000:]
    deadline = time.time() + 10
    while any(_alive(w) for w in workers) and time.time() < deadline:
        time.sleep(0.05)
    assert not [w for w in workers if _alive(w)]
    assert _leftovers(out_dir) == []
    assert _leftovers(tmp_path / "tmp") == []  # the workers' map cache (a temporary folder) is gone too


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_validate_signal_exits_128_plus_signal(big, tmp_path, sig, code):
    proc = _start(["validate", str(big), "--task", "grpo"], tmp_path)
    try:
        _wait_until(proc, lambda: _reading(proc.pid, big), "read its input")
        os.kill(proc.pid, sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code
    assert _leftovers(tmp_path / "tmp") == []


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_mix_signal_leaves_nothing(big, tmp_path, sig, code):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = _start(["mix", f"{big}:1", "-o", str(out_dir / "mix.jsonl"), "--val-ratio", "0.1"], tmp_path)
    try:
        _wait_until(proc, lambda: _reading(proc.pid, big) and any(p.name.endswith(".tmp") for p in out_dir.iterdir()),
                    "read its input")
        os.kill(proc.pid, sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code
    assert _leftovers(out_dir) == []


def test_an_ignored_sighup_stays_ignored(big, tmp_path):
    """Under ``nohup`` (SIGHUP ignored) a hang-up does not stop the run."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, "-m", "swift_ext", "convert", str(big), "--to", "grpo", "-o",
                             str(out_dir / "grpo.jsonl")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    try:
        _wait_until(proc, lambda: any(p.name.startswith(".grpo.jsonl.") for p in out_dir.iterdir()),
                    "wrote its temp file")
        os.kill(proc.pid, signal.SIGHUP)
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, proc.stderr.read()[-2000:]
    assert _leftovers(out_dir) == ["grpo.jsonl", "grpo.rejected.jsonl"]
    assert len((out_dir / "grpo.rejected.jsonl").read_bytes().splitlines()) == 400


def test_a_later_run_deletes_the_temp_files_of_a_killed_run(big, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "grpo.jsonl"
    proc = _start(["convert", str(big), "--to", "grpo", "-o", str(out)], tmp_path)
    try:
        _wait_until(proc, lambda: any(p.name.startswith(".grpo.jsonl.") and p.stat().st_size > 0
                                      for p in out_dir.iterdir()), "wrote its temp file")
        os.kill(proc.pid, signal.SIGKILL)  # no chance to clean up
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    dead = proc.pid
    stale = [p.name for p in out_dir.iterdir()]
    assert len(stale) == 2 and all(p.startswith((".grpo.jsonl.", ".grpo.rejected.jsonl.")) and f".{dead}@" in p
                                   for p in stale), stale
    assert not _alive(dead)
    # a live run's temp file (this process) and one of another host (or PID namespace) are not touched
    host = f"{socket.gethostname().split('.')[0]}-{os.readlink('/proc/self/ns/pid')[5:-1]}"
    assert f"@{host}." in stale[0]
    live = out_dir / f".grpo.jsonl.{os.getpid()}@{host}.abcd1234.tmp"
    other_host = out_dir / f".grpo.jsonl.{dead}@another-node.abcd1234.tmp"
    live.write_bytes(b"x")
    other_host.write_bytes(b"x")
    small = tmp_path / "small.jsonl"
    small.write_text(json.dumps(ROW) + "\n")
    done = subprocess.run([sys.executable, "-m", "swift_ext", "convert", str(small), "--to", "grpo", "-o", str(out)],
                          capture_output=True, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(["grpo.jsonl", live.name, other_host.name])
    # the reject file's stale temp file was next to the reject file's name: swept when a reject file is next opened
    assert len(out.read_text().splitlines()) == 1


def test_sweep_owner_less_temp_files_by_age(tmp_path):
    """Temp files written before owners were recorded (``.NAME.XXXXXXXX.tmp``): removed once idle for an hour."""
    target = tmp_path / "x.jsonl"
    old, fresh = tmp_path / ".x.jsonl.k2j4_9zq.tmp", tmp_path / ".x.jsonl.p0o9i8u7.tmp"
    unrelated = tmp_path / ".x.jsonl.backup.tmp"
    for p in (old, fresh, unrelated):
        p.write_bytes(b"x")
    past = time.time() - STALE_UNOWNED_SECONDS - 60
    os.utime(old, (past, past))
    os.utime(unrelated, (past, past))
    assert sweep_stale_temps(str(target)) == [str(old)]
    with AtomicFile(str(target)) as f:
        f.fh.write(b"ok")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([fresh.name, unrelated.name, "x.jsonl"])
