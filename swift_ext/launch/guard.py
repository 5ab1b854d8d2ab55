"""No orphans: a parent-death signal for every child and a sweep of whole process trees through ``/proc``.

``swift-ext launch`` starts each step as ``python guard.py --grace S -- swift ...`` (this file run as a
script: standard library only, nothing of swift_ext is imported). The guard

* gets ``SIGTERM`` when the launcher dies, even by ``SIGKILL`` (``prctl(PR_SET_PDEATHSIG)`` set by the
  launcher in ``preexec_fn``), and sets the same on the command it starts;
* is a *child subreaper* (``PR_SET_CHILD_SUBREAPER``): a grandchild whose parent exits, or that left the
  process group with ``setsid``, is re-parented to the guard and so stays in its tree;
* on ``SIGTERM``/``SIGINT``/``SIGHUP``, and after the command exits, stops every descendant it still has
  (``SIGTERM``, ``grace`` seconds, ``SIGKILL``) and exits with the command's code (128 + N for a signal).

The launcher adds :data:`RUN_ENV` to every child's environment and, when it stops, sweeps every process
that still carries its token (:func:`marked`), wherever it was re-parented.

Linux only for the prctl parts; elsewhere the guard still sweeps what ``/proc`` (if any) shows.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
RUN_ENV = "SWIFT_EXT_LAUNCH_RUN"
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _prctl():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def parent_death_signal(sig: int = signal.SIGTERM):
    """A ``preexec_fn``: the child receives ``sig`` when the process that started it dies (any way, SIGKILL
    included). If that parent is already gone when the child starts, the child signals itself."""
    prctl = _prctl()
    parent = os.getpid()

    def preexec() -> None:
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), sig)

    return preexec


def set_subreaper(on: bool = True) -> bool:
    """Make orphaned descendants re-parent to this process; returns False where prctl is unavailable."""
    prctl = _prctl()
    return prctl is not None and prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0


def _stat(pid: int):
    """(state, ppid) of ``pid``, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode("utf-8", "replace")
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[0], int(fields[1])


def _pids():
    try:
        return [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return []


def alive(pid: int) -> bool:
    """Running (a zombie holds no resources and runs no code: it counts as gone)."""
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def descendants(root: int):
    """Every live process below ``root`` (children, grandchildren, ...), read from ``/proc``."""
    children = {}
    for pid in _pids():
        st = _stat(pid)
        if st and st[0] not in ("Z", "X"):
            children.setdefault(st[1], []).append(pid)
    out, todo = [], list(children.get(root, ()))
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def marked(token: str, exclude=()):
    """Live processes whose environment carries ``RUN_ENV=token`` (inherited by every descendant)."""
    needle = f"{RUN_ENV}={token}".encode()
    found = []
    for pid in _pids():
        if pid in exclude:
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                env = fh.read()
        except OSError:
            continue
        if needle in env.split(b"\0") and alive(pid):
            found.append(pid)
    return found


def sweep(find, grace: float) -> int:
    """SIGTERM what ``find()`` returns, re-reading it until it is empty or ``grace`` s passed, then SIGKILL
    what is left. Returns how many processes were signalled."""
    seen = set()
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        deadline = time.monotonic() + wait
        while True:
            pids = find()
            if not pids:
                return len(seen)
            for pid in pids:
                if sig == signal.SIGKILL or pid not in seen:
                    try:
                        os.kill(pid, sig)
                    except (ProcessLookupError, PermissionError):
                        pass
                seen.add(pid)
            _reap(seen)
            if time.monotonic() >= deadline:
                break
            time.sleep(0.1)
    return len(seen)


def _reap(pids) -> None:
    """Collect the exit status of those of ``pids`` that are (re-parented) children of this process, so no
    zombie is left; never ``waitpid(-1)``, which would steal the status of a ``Popen`` of the caller."""
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except (ChildProcessError, OSError):
            pass


def main(argv=None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    grace = 10.0
    if args[:1] == ["--grace"]:
        grace, args = float(args[1]), args[2:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print("usage: guard.py [--grace S] -- COMMAND ...", file=sys.stderr)
        return 2
    set_subreaper()
    stop = []
    for s in _STOP_SIGNALS:
        signal.signal(s, lambda signum, frame: stop.append(signum))
    try:
        proc = subprocess.Popen(args, preexec_fn=parent_death_signal(signal.SIGKILL))
    except OSError as exc:
        print(f"swift-ext: cannot start {args[0]!r}: {exc}", file=sys.stderr, flush=True)
        return 127
    me = os.getpid()
    while not stop:
        try:
            code = proc.wait(timeout=0.2)
            break
        except subprocess.TimeoutExpired:
            continue
    if stop:
        sweep(lambda: descendants(me), grace)
        proc.wait()
        return 128 + stop[0]
    left = sweep(lambda: descendants(me), grace)
    if left:
        print(f"swift-ext: stopped {left} process(es) {args[0]} left behind", file=sys.stderr, flush=True)
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main())
