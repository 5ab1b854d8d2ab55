"""The sandbox interface every backend implements: a :class:`Program` in, a :class:`RunResult` out.

A program is source text in a language, plus the standard input of one run. A backend (``local``,
``sandbox_fusion``, ``piston``) runs it within :class:`Limits` and reports what happened; it never raises
for anything the program does (a crash, a hang, a flood of output, a fork bomb): those are results.
:meth:`Sandbox.run_many` runs a batch concurrently under one deadline for all of it.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional, Sequence

#: statuses of a :class:`RunResult`
OK, ERROR, TIMEOUT, KILLED, OUTPUT_LIMIT, NOT_RUN, SANDBOX_ERROR = \
    "ok", "error", "timeout", "killed", "output_limit", "not_run", "sandbox_error"
STATUSES = (OK, ERROR, TIMEOUT, KILLED, OUTPUT_LIMIT, NOT_RUN, SANDBOX_ERROR)


@dataclass(frozen=True)
class Limits:
    """What one run may use. ``time`` is wall-clock seconds; CPU time is capped at ``time`` + 1 s too."""

    time: float = 5.0
    memory_mb: int = 1024
    processes: int = 32
    file_mb: int = 64
    open_files: int = 128
    output_bytes: int = 1 << 20

    @property
    def cpu_seconds(self) -> int:
        return int(self.time) + 1


@dataclass
class Program:
    """One run: ``code`` in ``language`` (a registered runner's name), fed ``stdin``; ``files`` are extra
    files the program finds in its working directory (a test module, say)."""

    code: str
    language: str = "python"
    stdin: str = ""
    files: Dict[str, str] = field(default_factory=dict)


@dataclass
class RunResult:
    """What a run did. ``status``: ``ok`` (exit 0), ``error`` (non-zero exit), ``timeout`` (wall or CPU limit),
    ``killed`` (a signal: memory, file size), ``output_limit`` (more output than ``Limits.output_bytes``),
    ``not_run`` (the call's deadline came first), ``sandbox_error`` (the backend failed, not the program)."""

    status: str
    exit_code: Optional[int] = None
    signal: Optional[int] = None
    stdout: str = ""
    stderr: str = ""
    truncated: bool = False
    seconds: float = 0.0
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status == OK


def not_run(why: str = "the call's deadline came before this run started") -> RunResult:
    return RunResult(NOT_RUN, message=why)


class Sandbox:
    """A backend. Subclasses implement :meth:`run` (one program, within ``limits``, never raising)."""

    name = ""
    #: what this backend isolates, in words (``swift-ext doctor``, the docs)
    isolation = ""

    def run(self, program: Program, limits: Limits) -> RunResult:
        raise NotImplementedError

    def run_many(self, programs: Sequence[Program], limits: Limits, deadline: float,
                 concurrency: Optional[int] = None, groups: Optional[Sequence[int]] = None) -> List[RunResult]:
        """Results of ``programs`` (in order), at most ``concurrency`` at once, all within ``deadline``
        seconds from now: a run still going then is stopped (``timeout``), one not started is ``not_run``.
        Runs are started round-robin over ``groups`` (one id per program, e.g. its completion) so one slow
        completion does not starve the others of the deadline. Returns by ``deadline`` + a moment."""
        n = len(programs)
        if n == 0:
            return []
        end = time.monotonic() + max(0.0, deadline)
        order = _round_robin(groups if groups is not None else range(n))
        results: List[Optional[RunResult]] = [None] * n
        lock = threading.Lock()
        queue = list(reversed(order))
        size = max(1, min(concurrency or default_concurrency(), n))

        def worker():
            while True:
                with lock:
                    if not queue:
                        return
                    i = queue.pop()
                left = end - time.monotonic()
                if left <= 0.01:
                    results[i] = not_run()
                    continue
                lim = replace(limits, time=min(limits.time, left)) if left < limits.time else limits
                try:
                    got = self.run(programs[i], lim)
                except Exception as exc:  # a backend bug must not take the reward down
                    got = RunResult(SANDBOX_ERROR, message=f"{type(exc).__name__}: {exc}")
                if got.status == TIMEOUT and lim.time < limits.time:
                    got.message = got.message or "stopped at the call's deadline"
                results[i] = got

        pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="swift-ext-sandbox")
        futures = [pool.submit(worker) for _ in range(size)]
        pool.shutdown(wait=False)
        grace = end + 0.5                  # each run stops itself at the deadline; the grace covers its clean-up
        for f in futures:
            try:
                f.result(timeout=max(0.0, grace - time.monotonic()))
            except Exception:  # noqa: BLE001 - a worker still cleaning up after the grace: leave it
                pass
        with lock:
            queue.clear()
        return [r if r is not None else RunResult(TIMEOUT, message="stopped at the call's deadline")
                for r in results]

    def close(self) -> None:
        """Release what the backend holds (sessions, temporary folders)."""


def _round_robin(groups: Sequence[int]) -> List[int]:
    """Indices ordered round-robin over their group ids, first-seen group first.

    >>> _round_robin([0, 0, 0, 1, 1, 2])
    [0, 3, 5, 1, 4, 2]
    """
    by_group: Dict[int, List[int]] = {}
    for i, g in enumerate(groups):
        by_group.setdefault(g, []).append(i)
    lanes = list(by_group.values())
    out: List[int] = []
    depth = max(len(lane) for lane in lanes)
    for k in range(depth):
        out.extend(lane[k] for lane in lanes if k < len(lane))
    return out


def default_concurrency() -> int:
    """Programs run at once by one process: ``SWIFT_EXT_SANDBOX_CONCURRENCY`` if set, else the CPUs this
    process may use divided by the ranks on the node (``LOCAL_WORLD_SIZE``), at least 1."""
    env = os.environ.get("SWIFT_EXT_SANDBOX_CONCURRENCY", "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise ValueError(f"SWIFT_EXT_SANDBOX_CONCURRENCY={env!r}: expected a whole number") from None
    from ..rewards.pool import cpus_per_rank

    return cpus_per_rank()


__all__ = ["Limits", "Program", "RunResult", "Sandbox", "STATUSES", "default_concurrency", "not_run"]
