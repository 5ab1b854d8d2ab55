"""The impure half of ``swift-ext launch``: run a :class:`LaunchPlan`, supervise, clean up.

Every child starts in its own session (process group) under a guard process (:mod:`.guard`), so stopping
it stops everything it spawned (torchrun workers, vLLM engines), also what left the group with ``setsid``.
On trainer exit, error, Ctrl-C, SIGTERM or SIGHUP the runner sends SIGTERM to each group, waits ``grace``
seconds, then SIGKILLs what is left, and finally sweeps every process that still carries this run's
token in its environment. If the launcher itself is killed (SIGKILL included), each guard receives a
parent-death signal and stops its whole tree. Output of every child goes to ``<log_dir>/<step>.log`` and,
prefixed with ``[step]``, to the console. The return value is the trainer's exit code (128 + signal number
when the launcher itself was signalled).
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Mapping, Optional, TextIO

from . import guard
from .plan import LaunchPlan, Step
from .rollout import check_ports_free, crash_hint, port_from_log, wait_healthy

_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
SWIFT_EXES = ("swift", "megatron")


class _Stop(BaseException):
    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class Child:
    """One supervised process group with a log file and a prefixed console stream."""

    def __init__(self, step: Step, argv: List[str], env: Dict[str, str], log_path: Path, out: TextIO,
                 lock: threading.Lock, grace: float = 10.0):
        self.step, self.out, self.lock = step, out, lock
        self.tail = collections.deque(maxlen=40)
        self.port_seen: Optional[int] = None
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        self._log = open(log_path, "wb")
        try:
            self.proc = subprocess.Popen(guarded(argv, grace), env=env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                                         preexec_fn=guard.parent_death_signal(signal.SIGTERM))
        except OSError:
            self._log.close()
            raise
        self._thread = threading.Thread(target=self._pump, name=f"pump-{step.name}", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        prefix = f"[{self.step.name}] "
        for raw in iter(self.proc.stdout.readline, b""):
            self._log.write(raw)
            self._log.flush()
            text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            self.tail.append(text)
            port = port_from_log(text)
            if port:
                self.port_seen = port
            with self.lock:
                self.out.write(prefix + text + "\n")
                self.out.flush()
        self._log.close()

    def tail_text(self) -> str:
        time.sleep(0.2)  # let the pump catch the last lines of a crash
        return "\n".join(self.tail) or "(no output)"

    def stop(self, grace: float) -> None:
        stop_group(self.proc, grace)
        self._thread.join(timeout=5)


def guarded(argv: List[str], grace: float) -> List[str]:
    """``argv`` run under :mod:`.guard` (a script: it imports nothing of swift_ext)."""
    return [sys.executable, os.path.abspath(guard.__file__), "--grace", str(grace), "--", *argv]


def _group_alive(pgid: int) -> bool:
    """Any non-zombie process left in the group? (/proc where available, else killpg(0))."""
    proc = Path("/proc")
    if proc.is_dir():
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2:].split()
            if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z":
                return True
        return False
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def stop_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the process group led by ``proc``, wait up to ``grace`` s, then SIGKILL what is left."""
    pgid = proc.pid
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if proc.poll() is not None and not _group_alive(pgid):
                return
            time.sleep(0.1)
    proc.poll()


def step_env(base: Mapping[str, str], step: Step) -> Dict[str, str]:
    env = {k: v for k, v in base.items() if k not in step.unset}
    env.update(step.env)
    return env


def patch_flag(argv: List[str], flag: str, value: str) -> List[str]:
    """Replace the value after ``--flag`` (the trainer is pointed at the port the server really bound)."""
    out = list(argv)
    if f"--{flag}" in out:
        i = out.index(f"--{flag}")
        if i + 1 < len(out):
            out[i + 1] = value
    return out


def _cpu_env(env: Dict[str, str]) -> Dict[str, str]:
    try:
        from ..cpu_compat import subprocess_env
    except ImportError:
        return env
    return subprocess_env(env)


def run_plan(plan: LaunchPlan, *, env: Optional[Mapping[str, str]] = None, log_dir: str = "swift-ext-logs",
             out: TextIO = sys.stderr, grace: float = 10.0, cpu_compat: bool = True,
             poll_interval: float = 1.0) -> int:
    """Run ``plan``'s steps in order; return the last foreground step's exit code."""
    base = dict(os.environ if env is None else env)
    token = f"{os.getpid()}-{os.urandom(6).hex()}"
    base[guard.RUN_ENV] = token  # inherited by every descendant: the final sweep finds them by it
    if cpu_compat and any(s.argv and os.path.basename(s.argv[0]) in SWIFT_EXES for s in plan.steps):
        base = _cpu_env(base)  # only real ms-swift processes need the CPU torchvision shim
    lock = threading.Lock()
    children: List[Child] = []
    state = {"signalled": False, "critical": False, "pending": None}

    def say(msg: str) -> None:
        with lock:
            out.write(f"[swift-ext] {msg}\n")
            out.flush()

    def on_signal(signum, frame):
        if state["signalled"]:  # later signals must not interrupt the cleanup
            return
        state["signalled"] = True
        if state["critical"]:  # between Popen and registering the child: raise right after
            state["pending"] = signum
            return
        raise _Stop(signum)

    main = threading.current_thread() is threading.main_thread()
    old = {s: signal.signal(s, on_signal) for s in _SIGNALS} if main else {}
    try:
        return _run_steps(plan, base, Path(log_dir), out, lock, children, say, poll_interval, state, grace)
    except _Stop as stop:
        say(f"received {signal.Signals(stop.signum).name}: stopping {len(children)} process group(s)")
        return 128 + stop.signum
    finally:
        for child in reversed(children):
            child.stop(grace)
        left = guard.sweep(lambda: guard.marked(token), min(grace, 3.0))
        if left:
            say(f"stopped {left} leftover process(es) of this run")
        for s, h in old.items():
            signal.signal(s, h)


def _run_steps(plan, base, log_dir, out, lock, children, say, poll_interval, state, grace) -> int:
    overrides: Dict[str, str] = {}
    rc = 0
    for step in plan.steps:
        if step.free_ports:
            check_ports_free(step.free_ports, who=f"{step.name} server" if step.kind != "run" else step.name)
        if step.kind == "wait":
            say(f"{step.note or 'waiting for ' + step.health_url}")
            wait_healthy(step.health_url, step.health_timeout, interval=poll_interval, name=f"{step.name} server")
            continue
        argv = step.argv
        for flag, value in overrides.items():
            argv = patch_flag(argv, flag, value)
        say(f"starting {step.name}" + (f" ({step.note})" if step.note else "") + f"; log: {log_dir / step.name}.log")
        state["critical"] = True  # a signal now must not lose track of the process being started
        try:
            child = Child(step, argv, step_env(base, step), log_dir / f"{step.name}.log", out, lock, grace)
            children.append(child)
        finally:
            state["critical"] = False
        if state["pending"] is not None:
            raise _Stop(state["pending"])
        if step.kind == "serve":
            _await_server(step, child, overrides, say, poll_interval)
            continue
        rc = _supervise(child, [c for c in children if c.step.kind == "serve"], say, grace)
        rc = 128 - rc if rc < 0 else rc  # killed by signal N: report 128+N like a shell
        say(f"{step.name} exited with code {rc}")
        if rc != 0:
            hint = crash_hint("\n".join(child.tail))
            if hint:
                say(f"hint: {hint}")
            break
    return rc


def _await_server(step: Step, child: Child, overrides: Dict[str, str], say, poll_interval: float) -> None:
    planned = step.health_url

    def url_now() -> str:
        if child.port_seen and f":{child.port_seen}/" not in planned:
            return planned.rsplit(":", 1)[0] + f":{child.port_seen}/health"
        return planned

    url = wait_healthy(planned, step.health_timeout, alive=child.proc.poll, log_tail=child.tail_text,
                       url_now=url_now, interval=poll_interval, name=f"{step.name} server")
    if url != planned and step.port_flag:
        say(f"{step.name} server moved to {url}; pointing the trainer there")
        overrides[step.port_flag] = str(child.port_seen)
    say(f"{step.name} server healthy at {url}")


def _supervise(child: Child, servers: List[Child], say, grace: float) -> int:
    while True:
        try:
            return child.proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
        for server in servers:
            code = server.proc.poll()
            if code is not None:
                say(f"{server.step.name} server exited with code {code} during {child.step.name}; "
                    f"stopping {child.step.name}. Last server log lines:\n{server.tail_text()}")
                stop_group(child.proc, grace)
                return child.proc.returncode or 1
