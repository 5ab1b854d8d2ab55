"""The ``local`` backend: each program a child process of this one, isolated as well as this machine allows
(:mod:`.isolation`), in a fresh working directory removed afterwards.

One run: write the program into a new folder (owned by the run's user id when swift-ext is root), start the
isolation command (bwrap / unshare / none) + ``setpriv`` + ``prlimit`` + the interpreter in a session and
process group of its own with an empty environment; feed standard input; read standard output and error up to
``Limits.output_bytes`` each; at the wall deadline, on too much output, or as soon as the program has
exited, kill whatever is left (the process group; the PID namespace ends by itself; without namespaces,
every process of the run's user id); remove the folder and, without a file-system namespace, any file the
run's user id left in ``/tmp``, ``/var/tmp`` or ``/dev/shm``.
"""

from __future__ import annotations

import atexit
import os
import resource
import selectors
import shutil
import signal
import subprocess
import tempfile
import threading
import logging
import time
from typing import Dict, List, Optional, Tuple

from . import isolation as iso_mod
from .base import ERROR, KILLED, OK, OUTPUT_LIMIT, SANDBOX_ERROR, TIMEOUT, Limits, Program, RunResult, Sandbox
from .runners import PythonRunner, Runner, get_runner

logger = logging.getLogger("swift_ext.sandbox")

#: the environment every program gets (nothing of the trainer's: no API keys, no HF_TOKEN)
BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8",
            # one thread per math library: a process limit of 32 must not break `import numpy` on a 64-core node
            "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
#: where the runs' working folders go (default: the system's temporary folder; a tmpfs is a good choice)
TMP_ENV = "SWIFT_EXT_SANDBOX_TMP"
#: seconds to keep reading after the program exited, for output still in the pipes
DRAIN = 0.05
_SHARED_TMP = ("/tmp", "/var/tmp", "/dev/shm")
_PIPE_MAX = 60000


class _Slots:
    """Small integers for the runs in flight (each maps to a user id of its own when root)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.free: List[int] = []
        self.next = 0

    def take(self) -> int:
        with self.lock:
            if self.free:
                return self.free.pop()
            self.next += 1
            return self.next - 1

    def give(self, slot: int) -> None:
        with self.lock:
            self.free.append(slot)


class LocalSandbox(Sandbox):
    """Runs programs on this machine (see the module docstring). ``isolation``: ``auto`` (the strongest that
    works here), ``bwrap``, ``unshare`` or ``rlimits``; ``python``: the interpreter for Python programs
    (default: the one running swift-ext); ``tmp``: where the working folders go (default:
    ``SWIFT_EXT_SANDBOX_TMP``, else the system's). The folders are removed after each run, their parent at
    exit."""

    name = "local"

    def __init__(self, isolation: str = "auto", python: Optional[str] = None, tmp: Optional[str] = None):
        self.iso = iso_mod.detect(isolation)
        self.python = python
        self._tmp = tmp
        self._root: Optional[str] = None
        self._slots = _Slots()
        self._lock = threading.Lock()
        self._own_user: Dict[str, bool] = {}
        self._warned_python = False
        if iso_mod.is_root() and not self.iso.drop_user:
            raise iso_mod.SandboxUnavailable("swift-ext runs as root and setpriv (util-linux) is missing: programs "
                                             "would run as root; install util-linux")

    @property
    def isolation(self) -> str:  # type: ignore[override]
        return self.iso.describe()

    # -- set-up --------------------------------------------------------------------------------
    def root(self) -> str:
        with self._lock:
            if self._root is None or not os.path.isdir(self._root):
                where = self._tmp or os.environ.get(TMP_ENV) or None
                self._root = tempfile.mkdtemp(prefix="swift-ext-sandbox-", dir=where)
                os.chmod(self._root, 0o711)          # runs under their own user ids reach their folder
                atexit.register(self.close)
            return self._root

    def runner(self, language: str) -> Runner:
        """The language's runner; as root without bwrap, one whose tools a run's own user id can reach."""
        python = language.lower() in ("python", "py", "python3")
        runner = PythonRunner(self.python) if self.python and python else get_runner(language)
        if not self.iso.drop_user or self.iso.mode == "bwrap" or self._reachable(runner.tools()):
            return runner
        if isinstance(runner, PythonRunner):            # e.g. a pyenv build under /root (mode 0700)
            for alt in _system_pythons():
                if self._reachable([alt]):
                    if not self._warned_python:
                        logger.warning("code sandbox: %s is not readable by other users; programs run with %s "
                                       "(isolation=%s as root runs each program under a user id of its own)",
                                       runner.python, alt, self.iso.mode)
                        self._warned_python = True
                    return PythonRunner(alt)
        raise iso_mod.SandboxUnavailable(
            f"runner {runner.name}: {', '.join(runner.tools())} cannot be run by another user, and as root "
            f"without bubblewrap programs run under a user id of their own; install bubblewrap or pass an "
            f"interpreter every user may run")

    def _reachable(self, tools: List[str]) -> bool:
        key = "\0".join(tools)
        if key not in self._own_user:
            self._own_user[key] = all(iso_mod.reachable_by_others(t) for t in tools)
        return self._own_user[key]

    def uid(self, slot: int, runner: Runner) -> Optional[int]:
        """The run's own user id (root only), or None to run as this process's user."""
        if not self.iso.drop_user:
            return None
        return iso_mod.UID_BASE + ((os.getpid() % (1 << 22)) << 6) + (slot % 64)

    def command(self, runner: Runner, workdir: str, uid: Optional[int], limits: Limits) -> Tuple[List[str], str]:
        """(argv, cwd) of one run."""
        tools = self.iso.tools
        argv = runner.command(runner.main_file)
        inner: List[str] = []
        if uid is not None:
            inner += iso_mod.setpriv_args(tools["setpriv"], uid)
        if "prlimit" in tools:
            processes = limits.processes
            inner += iso_mod.rlimit_args(tools["prlimit"], limits.cpu_seconds, limits.memory_mb, processes,
                                         limits.file_mb, limits.open_files)
        if self.iso.mode == "bwrap":
            dirs: List[str] = []
            for tool in runner.tools():
                dirs += iso_mod.interpreter_dirs(tool)
            return iso_mod.bwrap_args(tools["bwrap"], workdir, dirs) + inner + argv, workdir
        if self.iso.mode == "unshare":
            return iso_mod.unshare_args(tools["unshare"]) + inner + argv, workdir
        return inner + argv, workdir

    # -- one run ---------------------------------------------------------------------------------
    def run(self, program: Program, limits: Limits) -> RunResult:
        try:
            runner = self.runner(program.language)
        except Exception as exc:
            return RunResult(SANDBOX_ERROR, message=str(exc))
        slot = self._slots.take()
        workdir = None
        uid = None
        try:
            uid = self.uid(slot, runner)
            workdir = tempfile.mkdtemp(prefix="run-", dir=self.root())
            self._write(workdir, runner.main_file, program.code)
            for name, text in program.files.items():
                self._write(workdir, name, text)
            if uid is not None:
                os.chown(workdir, uid, uid)
                os.chmod(workdir, 0o700)
            cmd, cwd = self.command(runner, workdir, uid, limits)
            return self._execute(cmd, cwd, program.stdin, limits, uid)
        except Exception as exc:  # the machine failed us (disk full, no such interpreter): not the program
            return RunResult(SANDBOX_ERROR, message=f"{type(exc).__name__}: {exc}")
        finally:
            if uid is not None and self.iso.mode != "bwrap":
                self._sweep(uid)
            if workdir is not None:
                _remove(workdir)
            self._slots.give(slot)

    @staticmethod
    def _write(workdir: str, name: str, text: str) -> None:
        path = os.path.normpath(os.path.join(workdir, name))
        if not path.startswith(workdir + os.sep):
            raise ValueError(f"file name {name!r} leaves the working directory")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(path, 0o644)

    def _preexec(self, limits: Limits):
        """Limits set in the child before exec, when prlimit is missing (slower: no vfork)."""
        if "prlimit" in self.iso.tools:
            return None
        mb = 1 << 20

        def setup():
            for what, value in ((resource.RLIMIT_CPU, limits.cpu_seconds), (resource.RLIMIT_AS, limits.memory_mb * mb),
                                (resource.RLIMIT_FSIZE, limits.file_mb * mb), (resource.RLIMIT_NOFILE, limits.open_files),
                                (resource.RLIMIT_CORE, 0)):
                resource.setrlimit(what, (value, value))
        return setup

    def _stdin(self, text: str):
        data = text.encode("utf-8", "replace")
        if len(data) <= _PIPE_MAX:                      # fits in the pipe: written at once, never blocks
            r, w = os.pipe()
            os.write(w, data)
            os.close(w)
            return r
        fh = tempfile.TemporaryFile()
        fh.write(data)
        fh.seek(0)
        return fh

    def _execute(self, cmd: List[str], cwd: str, stdin: str, limits: Limits, uid: Optional[int]) -> RunResult:
        src = self._stdin(stdin)
        env = dict(BASE_ENV, HOME=cwd if self.iso.mode != "bwrap" else iso_mod.SANDBOX_CWD,
                   TMPDIR=cwd if self.iso.mode != "bwrap" else "/tmp")
        start = time.monotonic()
        try:
            proc = subprocess.Popen(cmd, stdin=src, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, env=env,
                                    start_new_session=True, close_fds=True, preexec_fn=self._preexec(limits))
        finally:
            if isinstance(src, int):
                os.close(src)
            else:
                src.close()
        try:
            status, out, err = self._collect(proc, start + limits.time, limits.output_bytes)
        finally:
            _kill_group(proc)
            for stream in (proc.stdout, proc.stderr):
                stream.close()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL cannot be ignored
                pass
        seconds = time.monotonic() - start
        rc = proc.returncode
        sig = -rc if rc is not None and rc < 0 else None
        if sig is None and rc is not None and self.iso.mode != "rlimits" and 128 < rc <= 128 + 64:
            sig = rc - 128                              # bwrap / unshare report a signal as 128 + n
        truncated = len(out) > limits.output_bytes or len(err) > limits.output_bytes
        result = RunResult(status or OK, exit_code=rc, signal=sig,
                           stdout=out[:limits.output_bytes].decode("utf-8", "replace"),
                           stderr=err[:limits.output_bytes].decode("utf-8", "replace"),
                           truncated=truncated, seconds=seconds)
        if status is None:
            if sig == signal.SIGXCPU or (sig == signal.SIGKILL and seconds >= limits.cpu_seconds):
                result.status, result.message = TIMEOUT, "CPU time limit"
            elif sig is not None:
                result.status = KILLED
                result.message = {signal.SIGXFSZ: "file size limit", signal.SIGKILL: "killed (memory or a "
                                  "limit)", signal.SIGSEGV: "segmentation fault"}.get(sig, f"signal {sig}")
            elif rc != 0:
                result.status = ERROR
        elif status == TIMEOUT:
            result.message = f"wall time limit ({limits.time:.3g} s)"
        elif status == OUTPUT_LIMIT:
            result.message = f"more than {limits.output_bytes} bytes of output"
        return result

    @staticmethod
    def _collect(proc: subprocess.Popen, deadline: float, cap: int) -> Tuple[Optional[str], bytes, bytes]:
        """(status or None, stdout, stderr): read both pipes until they close, the deadline, too much output,
        or shortly after the program exited (a process it left behind may hold them open)."""
        bufs = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
        sel = selectors.DefaultSelector()
        for fd in bufs:
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_READ)
        try:
            pidfd = os.pidfd_open(proc.pid)
            sel.register(pidfd, selectors.EVENT_READ)
        except (AttributeError, OSError):
            pidfd = None
        exited_at: Optional[float] = None
        status: Optional[str] = None
        try:
            while len(sel.get_map()) > (1 if pidfd is not None and exited_at is None else 0):
                now = time.monotonic()
                if now >= deadline:
                    status = TIMEOUT
                    break
                wait = deadline - now
                if exited_at is not None:
                    if now - exited_at >= DRAIN:
                        break
                    wait = min(wait, exited_at + DRAIN - now)
                elif pidfd is None:
                    wait = min(wait, 0.05)
                    if proc.poll() is not None:
                        exited_at = now
                for key, _ in sel.select(wait):
                    fd = key.fd
                    if fd == pidfd:
                        sel.unregister(pidfd)
                        exited_at = time.monotonic()
                        continue
                    try:
                        chunk = os.read(fd, 1 << 16)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        sel.unregister(fd)
                        continue
                    bufs[fd] += chunk
                    if len(bufs[fd]) > cap:
                        status = OUTPUT_LIMIT
                if status is not None:
                    break
        finally:
            sel.close()
            if pidfd is not None:
                os.close(pidfd)
        return status, bytes(bufs[proc.stdout.fileno()]), bytes(bufs[proc.stderr.fileno()])

    def _sweep(self, uid: int) -> None:
        """Without namespaces: kill every process of the run's own user id, remove its files in shared temp
        folders."""
        tools = self.iso.tools
        if "setpriv" in tools and "kill" in tools:
            subprocess.run(iso_mod.setpriv_args(tools["setpriv"], uid) + [tools["kill"], "-9", "-1"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={"PATH": os.defpath})
        for top in _SHARED_TMP:
            _remove_owned(top, uid)

    def close(self) -> None:
        with self._lock:
            if self._root is not None:
                _remove(self._root)
                self._root = None


def _system_pythons() -> List[str]:
    import sys

    found = [getattr(sys, "_base_executable", "")] + [shutil.which(n, path="/usr/local/bin:/usr/bin:/bin") or ""
                                                      for n in ("python3", "python")]
    return [p for p in dict.fromkeys(found) if p and os.path.exists(p)]


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _remove(path: str) -> None:
    """Remove a folder whatever the program did to its permissions."""
    def fix(func, p, _exc):
        try:
            os.chmod(os.path.dirname(p), 0o700)
            os.chmod(p, 0o700)
            func(p)
        except OSError:
            pass
    shutil.rmtree(path, onerror=fix)


def _remove_owned(top: str, uid: int) -> None:
    try:
        entries = list(os.scandir(top))
    except OSError:
        return
    for entry in entries:
        try:
            if entry.stat(follow_symlinks=False).st_uid != uid:
                continue
            if entry.is_dir(follow_symlinks=False):
                _remove(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            continue


__all__ = ["LocalSandbox", "BASE_ENV"]
