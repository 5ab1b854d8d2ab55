"""A pool of killable worker processes for reward code that can hang (math-verify, third-party rewards).

One pool per process, started on first use (importing swift-ext starts nothing), kept warm between
calls and sized to the machine: ``SWIFT_EXT_REWARD_WORKERS`` workers busy at once if set, else the CPUs
this process may use divided by the ranks on the node (``LOCAL_WORLD_SIZE``), between 1 and 8; plus one
warm spare, so a killed worker's place is taken at once.

A worker is a plain ``python -c "...pool.main()"`` child speaking length-prefixed pickle frames on its
stdin/stdout, not a ``multiprocessing`` child: spawn would re-import the trainer's ``__main__`` (ms-swift's
whole import chain, seconds and gigabytes) in every worker. A job names a module-level function
(``"package.module:function"``) and its arguments.

Each worker runs under a small *keeper* process (the process :class:`_Worker` starts, in a session of its
own): the keeper is a child subreaper (``PR_SET_CHILD_SUBREAPER``), so whatever the worker starts stays below
it even after ``setsid`` or a double fork, and it gets ``SIGTERM`` when the trainer dies
(``PR_SET_PDEATHSIG``), whereupon it kills everything below it. The worker itself gets ``SIGKILL`` when its
keeper dies, and an address-space limit (``RLIMIT_AS``, ``SWIFT_EXT_REWARD_WORKER_MEMORY`` or
:data:`DEFAULT_MEMORY`). A function that forks and returns in both processes does not add a worker: the
copy exits before it reads or writes a frame.

:meth:`Pool.run` gives a batch of jobs one deadline for all of them (and optionally a limit per job):
jobs go to whichever worker is ready, a worker past its limit is killed (its whole process group) and
replaced in the background, and a call never waits for a replacement that is still starting beyond its
own deadline. Workers die with their parent (``PR_SET_PDEATHSIG``, and EOF on stdin), so a killed
trainer leaves no worker behind, and neither does anything a worker started.
"""

from __future__ import annotations

import atexit
import importlib
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

#: True inside a reward worker process: rewards unpickled there score in that process
IN_WORKER = False

WORKERS_ENV = "SWIFT_EXT_REWARD_WORKERS"
#: the variable setting each worker's address-space limit in MiB (0: no limit)
MEMORY_ENV = "SWIFT_EXT_REWARD_WORKER_MEMORY"
#: default address-space limit of one worker, in MiB: enough for math-verify, sympy and a tokenizer, not for a
#: runaway allocation to take the node's memory
DEFAULT_MEMORY = 8192
_HEADER = struct.Struct("<I")
#: how long the first worker of a pool may take to start (not counted against a call's deadline)
START_TIMEOUT = 60.0
#: workers dying in a row before saying ready, after which the pool stops starting new ones
MAX_FAILED_STARTS = 3

Job = Tuple[str, tuple]          # ("module:function", args)
Result = Tuple[str, Any]         # ("ok", value) | ("error", text) | ("lost", text) | ("timeout", None)
# "error": the function raised in the worker (or its job or result did not pickle); "lost": the job was not
# done, its worker died under it or its answer could not be read here; "timeout": not done within the time.


def default_size() -> int:
    """Workers busy at once for this process: ``SWIFT_EXT_REWARD_WORKERS``, else usable CPUs / ranks on
    the node (1..8). One more process is kept as a warm spare."""
    env = os.environ.get(WORKERS_ENV, "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise ValueError(f"{WORKERS_ENV}={env!r}: expected a whole number of worker processes") from None
    return min(8, cpus_per_rank())


def cpus_per_rank() -> int:
    """The CPUs this process may use divided by the ranks on the node (``LOCAL_WORLD_SIZE``), at least 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    try:
        ranks = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        ranks = 1
    return max(1, cpus // ranks)


def default_memory() -> int:
    """Each worker's address-space limit in MiB: ``SWIFT_EXT_REWARD_WORKER_MEMORY``, else :data:`DEFAULT_MEMORY`
    (0: no limit)."""
    env = os.environ.get(MEMORY_ENV, "").strip()
    if not env:
        return DEFAULT_MEMORY
    try:
        return max(0, int(env))
    except ValueError:
        raise ValueError(f"{MEMORY_ENV}={env!r}: expected a whole number of MiB (0: no limit)") from None


# -- the worker side -------------------------------------------------------------------------------
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


def _prctl(option: int, value: int) -> bool:
    """``prctl(option, value)`` (Linux); False where it is not available."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, value, 0, 0, 0) == 0
    except Exception:  # not Linux: stdin EOF still ends the worker
        return False


def _die_with_parent(parent: int, sig: int = signal.SIGKILL) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent dies (Linux), then check it has not already."""
    _prctl(PR_SET_PDEATHSIG, sig)
    if os.getppid() != parent:
        os._exit(0)


def _read_exact(stream, size: int) -> Optional[bytes]:
    """``size`` bytes from ``stream`` (a pipe: one read returns at most what the pipe holds, 64 KiB), or None
    at EOF before that many."""
    parts, left = [], size
    while left:
        chunk = stream.read(min(left, 1 << 20))
        if not chunk:
            return None
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _read_frame(stream) -> Optional[bytes]:
    """One frame's payload, read until complete; None at EOF (or a frame cut short by it)."""
    head = _read_exact(stream, _HEADER.size)
    if head is None:
        return None
    (size,) = _HEADER.unpack(head)
    return _read_exact(stream, size)


def _write_all(stream, data: bytes) -> None:
    """All of ``data`` to an unbuffered ``stream`` (a raw write may take only part of it)."""
    view = memoryview(data)
    while view:
        n = stream.write(view)
        view = view[n if n is not None else 0:]


def _frame(obj: Any) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


_FUNCS: Dict[str, Any] = {}


def _function(path: str):
    fn = _FUNCS.get(path)
    if fn is None:
        module, _, name = path.partition(":")
        fn = _FUNCS[path] = getattr(importlib.import_module(module), name)
    return fn


def _descendants(root: int) -> List[int]:
    """Live processes below ``root`` (from /proc; zombies left out), nearest first."""
    children: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != b"Z":
            children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            out.append(child)
            todo.append(child)
    return out


def kill_tree(root: int, include_root: bool = True) -> None:
    """SIGKILL every process below ``root`` until none is left running (then ``root``). Below a subreaper (a
    keeper) nothing escapes by ``setsid`` or a double fork: orphans are re-parented to the keeper, so a few
    scans find them all; the root goes last, so that nothing is orphaned out of reach first."""
    for attempt in range(200):
        found = _descendants(root)
        if not found:
            break
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if attempt:
            time.sleep(0.001)                           # still exiting: give the kernel a moment
    if include_root:
        try:
            os.kill(root, signal.SIGKILL)
        except OSError:
            pass


def main(argv: Optional[Sequence[str]] = None) -> None:
    """The keeper: ``argv`` is the parent's pid, the worker's memory limit in MiB, then modules to import.

    Started by the pool (``python -c``, so no module is run twice and no ``RuntimeWarning`` reaches the
    training log). It becomes a subreaper, forks the worker, and waits: when the trainer dies (``SIGTERM``
    through ``PR_SET_PDEATHSIG``) or the worker ends, it kills everything below it and exits."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parent = int(argv[0]) if argv else os.getppid()
    memory = int(argv[1]) if len(argv) > 1 else 0
    signal.signal(signal.SIGINT, signal.SIG_IGN)        # Ctrl-C is the parent's to handle
    _prctl(PR_SET_CHILD_SUBREAPER, 1)

    def end(*_: Any) -> None:
        kill_tree(os.getpid(), include_root=False)
        os._exit(0)

    signal.signal(signal.SIGTERM, end)
    _die_with_parent(parent, signal.SIGTERM)
    keeper = os.getpid()
    worker = os.fork()
    if worker == 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _die_with_parent(keeper)
        _limit_memory(memory)
        serve(argv[2:])
        os._exit(0)
    null = os.open(os.devnull, os.O_RDWR)               # the pipes are the worker's: its EOF must reach the parent
    os.dup2(null, 0)
    os.dup2(null, 1)
    while True:
        try:
            pid, _ = os.wait()
        except ChildProcessError:
            end()
        if pid == worker:
            end()


def _limit_memory(mib: int) -> None:
    if mib > 0:
        import resource

        cap = mib << 20
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            cap = min(cap, hard)
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


def serve(argv: Sequence[str]) -> None:
    """The worker loop: ``argv`` lists modules to import (and ``warm_up()``) before saying ready."""
    me = os.getpid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)        # Ctrl-C is the parent's to handle
    proto = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())   # anything a library prints goes to stderr
    sys.stdout = sys.stderr
    source = os.fdopen(os.dup(sys.stdin.fileno()), "rb", buffering=0)
    null = os.open(os.devnull, os.O_RDONLY)             # what the rewards start does not share the job pipe
    os.dup2(null, sys.stdin.fileno())
    os.close(null)
    global IN_WORKER
    IN_WORKER = True                                    # a reward unpickled here scores in this process
    for module in argv:
        try:
            warm = getattr(importlib.import_module(module), "warm_up", None)
            if warm is not None:
                warm()
        except Exception:                               # the job that needs it reports the error
            pass
    _write_all(proto, _frame(("ready", me)))
    while True:
        data = _read_frame(source)
        if data is None:
            return
        try:
            path, args = pickle.loads(data)
            answer: Result = ("ok", _function(path)(*args))
        except BaseException as exc:  # noqa: BLE001 - report anything, the parent decides
            answer = ("error", f"{type(exc).__name__}: {exc}")
        if os.getpid() != me:                           # a forked copy came back here: it is not a worker
            os._exit(0)
        try:
            out = _frame(answer)
        except Exception as exc:  # an unpicklable result
            out = _frame(("error", f"result not picklable: {exc!r}"))
        _write_all(proto, out)


# -- the parent side -------------------------------------------------------------------------------
class _Worker:
    """One worker process; ``ready`` once it said so; reads frames without blocking on a partial one."""

    def __init__(self, modules: Iterable[str], memory: int = 0):
        self.proc = subprocess.Popen([sys.executable, "-c", ENTRY, str(os.getpid()), str(memory), *modules],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
                                     start_new_session=True, close_fds=True)
        self.fd = self.proc.stdout.fileno()
        self.ready = False
        self.pid: Optional[int] = None        # the worker's own pid (``proc`` is its keeper), once ready
        self.started = time.monotonic()
        self.buf = b""
        self.job: Optional[int] = None        # index of the job it is running
        self.job_started = 0.0
        self.keys: Set[str] = set()           # objects this worker already holds (see :func:`cached`)

    def send(self, job: Job) -> None:
        _write_all(self.proc.stdin, _frame(job))

    def poll_frames(self) -> Optional[List[Any]]:
        """Frames now readable; None when the worker closed its end (died)."""
        try:
            chunk = os.read(self.fd, 1 << 20)
        except OSError:
            chunk = b""
        if not chunk:
            return None
        self.buf += chunk
        out = []
        while len(self.buf) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(self.buf)
            if len(self.buf) < _HEADER.size + size:
                break
            try:
                out.append(pickle.loads(self.buf[_HEADER.size:_HEADER.size + size]))
            except BaseException as exc:  # noqa: BLE001 - a result this process cannot rebuild is that job's loss
                out.append(("lost", f"result not readable here: {type(exc).__name__}: {exc}"))
            self.buf = self.buf[_HEADER.size + size:]
        return out

    def kill(self) -> None:
        """The worker and everything it started (its keeper holds even what left its session), then the keeper."""
        if self.proc.poll() is None:
            kill_tree(self.proc.pid)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)   # what is left of the keeper's process group
        except (ProcessLookupError, PermissionError):
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL is not ignorable
            pass

    def close(self) -> None:
        """Ask politely (EOF), then make sure."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(0.5)
        except subprocess.TimeoutExpired:
            pass
        self.kill()


class Pool:
    """Worker processes shared by every reward of this process (see the module docstring)."""

    def __init__(self, size: Optional[int] = None, memory: Optional[int] = None):
        self.size = size or default_size()
        #: each worker's address-space limit in MiB (0: none)
        self.memory = default_memory() if memory is None else max(0, int(memory))
        self.modules: List[str] = []
        self.workers: List[_Worker] = []
        self.lock = threading.Lock()
        self.kills = 0
        self.started = 0
        self.ever_ready = False
        self.failed_starts = 0

    # -- workers ---------------------------------------------------------------------------------
    def _spawn(self) -> _Worker:
        w = _Worker(self.modules, self.memory)
        self.workers.append(w)
        self.started += 1
        return w

    def _fill(self) -> None:
        """Keep ``size`` workers plus one warm spare alive: after a kill the spare takes the next job at once.
        Workers that keep dying before they are ready are not restarted for ever (see ``failed_starts``)."""
        self.workers = [w for w in self.workers if w.proc.poll() is None or w.job is not None]
        while len(self.workers) < self.size + 1 and self.failed_starts < MAX_FAILED_STARTS:
            self._spawn()

    def _retire(self, w: _Worker) -> None:
        w.kill()
        if w in self.workers:
            self.workers.remove(w)

    def need(self, modules: Iterable[str]) -> None:
        """Modules every worker imports (and whose ``warm_up()`` it calls) before it says ready; workers
        already running import them with their next job."""
        for m in modules:
            if m not in self.modules:
                self.modules.append(m)

    def pids(self) -> List[int]:
        """The pids of the workers that said ready and whose keeper is alive."""
        return [w.pid for w in self.workers if w.pid is not None and w.proc.poll() is None]

    def keepers(self) -> List[int]:
        """The pids of the processes this pool started (one keeper per worker)."""
        return [w.proc.pid for w in self.workers if w.proc.poll() is None]

    def _wait_first_ready(self) -> None:
        """Start the pool if needed and, the first time only, wait (at most START_TIMEOUT) until one worker
        is ready; later calls never wait for a replacement beyond their own deadline."""
        self._fill()
        if self.ever_ready or any(w.ready for w in self.workers):
            self.ever_ready = True
            return
        end = time.monotonic() + START_TIMEOUT
        while time.monotonic() < end and self.failed_starts < MAX_FAILED_STARTS:
            self._pump(end - time.monotonic(), {}, [])
            if any(w.ready for w in self.workers):
                self.ever_ready = True
                return
            self._fill()
        if self.failed_starts >= MAX_FAILED_STARTS:
            raise RuntimeError(f"reward workers ({sys.executable} -m {__name__}) died {self.failed_starts} times "
                               f"before starting; see their messages above")
        raise RuntimeError(f"no reward worker started within {START_TIMEOUT:.0f} s")

    def _pump(self, wait: float, jobs: Dict[int, Any], results: List[Optional[Result]]) -> bool:
        """Wait up to ``wait`` seconds for any worker to say something; handle it. True if anything came."""
        fds = {w.fd: w for w in self.workers if not w.proc.stdout.closed}
        if not fds:
            time.sleep(max(0.0, min(wait, 0.05)))
            return False
        readable, _, _ = select.select(list(fds), [], [], max(0.0, wait))
        for fd in readable:
            w = fds[fd]
            frames = w.poll_frames()
            if frames is None:                       # died (a crash, or killed from outside)
                if not w.ready:
                    self.failed_starts += 1
                if w.job is not None and w.job < len(results):
                    results[w.job] = ("lost", "reward worker died")
                    jobs.pop(w.job, None)
                w.job = None
                self._retire(w)
                continue
            for frame in frames:
                if not w.ready:
                    w.ready = isinstance(frame, tuple) and len(frame) == 2 and frame[0] == "ready"
                    w.pid = frame[1] if w.ready else None
                    self.failed_starts = 0 if w.ready else self.failed_starts
                    continue
                if w.job is not None:
                    results[w.job] = frame
                    jobs.pop(w.job, None)
                    w.job = None
        return bool(readable)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> bool:
        """Start the pool if needed and wait until every worker is ready (benchmarks, tests). True if so."""
        with self.lock:
            self._fill()
            end = time.monotonic() + timeout
            while not all(w.ready for w in self.workers) and time.monotonic() < end:
                self._pump(min(0.2, end - time.monotonic()), {}, [])
                self._fill()
            self.ever_ready = self.ever_ready or any(w.ready for w in self.workers)
            return all(w.ready for w in self.workers)

    # -- running jobs ----------------------------------------------------------------------------
    def run(self, jobs: Sequence[Job], deadline: float, job_limit: Optional[float] = None) -> List[Result]:
        """Results of ``jobs`` (in order) within ``deadline`` seconds from now (after the pool's first
        start-up); a job still running after ``job_limit`` seconds, or at the deadline, is killed with
        its worker and reported ``("timeout", None)``; one never started reports the same."""
        with self.lock:
            return self._run(list(jobs), deadline, job_limit)

    def _run(self, jobs: List[Job], budget: float, job_limit: Optional[float]) -> List[Result]:
        results: List[Optional[Result]] = [None] * len(jobs)
        if not jobs:
            return []
        self._wait_first_ready()
        end = time.monotonic() + budget
        todo = list(range(len(jobs)))
        todo.reverse()                                      # pop() from the end: first job first
        running: Dict[int, _Worker] = {}
        while todo or running:
            now = time.monotonic()
            if now >= end:
                break
            for w in list(self.workers):
                if not todo or len(running) >= self.size:
                    break
                if w.ready and w.job is None and w.proc.poll() is None:
                    i = todo.pop()
                    job, key = self._prepare(w, jobs[i])
                    try:
                        w.send(job)
                    except (OSError, ValueError):           # died while idle: replace it, retry the job
                        todo.append(i)
                        self._retire(w)
                        continue
                    except Exception as exc:                # the job's arguments cannot be pickled
                        results[i] = ("error", f"job not picklable: {exc!r}")
                        continue
                    if key is not None:
                        w.keys.add(key)
                    w.job, w.job_started = i, now
                    running[i] = w
            self._fill()
            wait = end - now
            if job_limit is not None and running:
                wait = min(wait, min(w.job_started for w in running.values()) + job_limit - now)
            self._pump(max(0.0, wait), running, results)
            if job_limit is not None:
                now = time.monotonic()
                for i, w in list(running.items()):
                    if now - w.job_started >= job_limit:
                        self._timeout(i, w, running, results)
        for i, w in list(running.items()):
            self._timeout(i, w, running, results)
        self._fill()                                        # replacements start now, not at the next call
        return [r if r is not None else ("timeout", None) for r in results]

    def _timeout(self, i: int, w: _Worker, running: Dict[int, _Worker], results: List[Optional[Result]]) -> None:
        running.pop(i, None)
        results[i] = ("timeout", None)
        w.job = None
        self.kills += 1
        self._retire(w)

    @staticmethod
    def _prepare(w: _Worker, job: Job) -> Tuple[Job, Optional[str]]:
        """The job as sent to ``w`` (an object it holds already is not sent again), and the key it will hold."""
        path, args = job
        if path != CACHED:
            return job, None
        if args[0] in w.keys:
            return (path, (args[0], None, (), *args[3:])), None
        return job, args[0]

    def close(self) -> None:
        with self.lock:
            for w in self.workers:
                w.close()
            self.workers = []


# -- objects kept in the workers ------------------------------------------------------------------
CACHED = f"{__name__}:_call_cached"
_OBJECTS: Dict[str, Any] = {}


def _call_cached(key: str, blob: Optional[bytes], paths: Sequence[str], method: str, *args: Any) -> Any:
    """Worker side: ``getattr(object, method)(*args)`` on an object built once from ``blob``, a pickled
    ``(factory, args, kwargs)``; ``paths``: the parent's ``sys.path`` (a plugin's folder, say)."""
    obj = _OBJECTS.get(key)
    if obj is None:
        if blob is None:
            raise RuntimeError(f"worker lost object {key}")
        sys.path.extend(p for p in paths if p not in sys.path)
        factory, fargs, fkwargs = pickle.loads(blob)
        obj = _OBJECTS[key] = factory(*fargs, **fkwargs)
        if len(_OBJECTS) > 64:
            _OBJECTS.pop(next(iter(_OBJECTS)))
    return getattr(obj, method)(*args)


def cached_job(key: str, blob: bytes, method: str, *args: Any) -> Job:
    """A job calling ``method`` on an object each worker builds once (keyed by ``key``) from ``blob``, a
    pickled ``(factory, args, kwargs)``."""
    return CACHED, (key, blob, [p for p in sys.path if p], method, *args)


_POOL: Optional[Pool] = None
_POOL_LOCK = threading.Lock()


def get_pool() -> Pool:
    """This process's pool (created, not started, on first use; workers start on the first run)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL.__dict__.get("_pid") != os.getpid():
            _POOL = Pool()
            _POOL._pid = os.getpid()
            atexit.register(_POOL.close)
        return _POOL


def shutdown() -> None:
    """Stop this process's workers (they also stop with the process)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is not None:
            _POOL.close()
        _POOL = None


#: how the pool starts a worker's keeper: ``-c`` rather than ``-m``, which would run this module a second time
#: (``RuntimeWarning: 'swift_ext.rewards.pool' found in sys.modules``) in every worker
ENTRY = f"import {__name__} as p; p.main()"

if __name__ == "__main__":
    main()
