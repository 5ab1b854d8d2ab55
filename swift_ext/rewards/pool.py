"""A pool of killable worker processes for reward code that can hang (math-verify, third-party rewards).

One pool per process, started on first use (importing swift-ext starts nothing), kept warm between
calls and sized to the machine: ``SWIFT_EXT_REWARD_WORKERS`` workers busy at once if set, else the CPUs
this process may use divided by the ranks on the node (``LOCAL_WORLD_SIZE``), between 1 and 8; plus one
warm spare, so a killed worker's place is taken at once.

A worker is a plain ``python -m swift_ext.rewards.pool`` child speaking length-prefixed pickle frames on
its stdin/stdout, not a ``multiprocessing`` child: spawn would re-import the trainer's ``__main__``
(ms-swift's whole import chain, seconds and gigabytes) in every worker. A job names a module-level
function (``"package.module:function"``) and its arguments.

:meth:`Pool.run` gives a batch of jobs one deadline for all of them (and optionally a limit per job):
jobs go to whichever worker is ready, a worker past its limit is killed (its whole process group) and
replaced in the background, and a call never waits for a replacement that is still starting beyond its
own deadline. Workers die with their parent (``PR_SET_PDEATHSIG``, and EOF on stdin), so a killed
trainer leaves no worker behind.
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
_HEADER = struct.Struct("<I")
#: how long the first worker of a pool may take to start (not counted against a call's deadline)
START_TIMEOUT = 60.0
#: workers dying in a row before saying ready, after which the pool stops starting new ones
MAX_FAILED_STARTS = 3

Job = Tuple[str, tuple]          # ("module:function", args)
Result = Tuple[str, Any]         # ("ok", value) | ("error", text) | ("timeout", None)


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


# -- the worker side -------------------------------------------------------------------------------
def _die_with_parent(parent: int) -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux), then check it has not already."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:  # not Linux: stdin EOF still ends the worker
        pass
    if os.getppid() != parent:
        os._exit(0)


def _read_frame(stream) -> Optional[bytes]:
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(head)
    data = stream.read(size)
    return data if len(data) == size else None


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


def serve(argv: Sequence[str]) -> None:
    """The worker loop: ``argv`` is the parent's pid then modules to import before saying ready."""
    parent = int(argv[0]) if argv else os.getppid()
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)        # Ctrl-C is the parent's to handle
    proto = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())   # anything a library prints goes to stderr
    sys.stdout = sys.stderr
    source = os.fdopen(os.dup(sys.stdin.fileno()), "rb", buffering=0)
    global IN_WORKER
    IN_WORKER = True                                    # a reward unpickled here scores in this process
    for module in argv[1:]:
        try:
            warm = getattr(importlib.import_module(module), "warm_up", None)
            if warm is not None:
                warm()
        except Exception:                               # the job that needs it reports the error
            pass
    proto.write(_frame(("ready", os.getpid())))
    while True:
        data = _read_frame(source)
        if data is None:
            return
        try:
            path, args = pickle.loads(data)
            answer: Result = ("ok", _function(path)(*args))
        except BaseException as exc:  # noqa: BLE001 - report anything, the parent decides
            answer = ("error", f"{type(exc).__name__}: {exc}")
        try:
            out = _frame(answer)
        except Exception as exc:  # an unpicklable result
            out = _frame(("error", f"result not picklable: {exc!r}"))
        proto.write(out)


# -- the parent side -------------------------------------------------------------------------------
class _Worker:
    """One worker process; ``ready`` once it said so; reads frames without blocking on a partial one."""

    def __init__(self, modules: Iterable[str]):
        self.proc = subprocess.Popen([sys.executable, "-m", __name__, str(os.getpid()), *modules],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
                                     start_new_session=True, close_fds=True)
        self.fd = self.proc.stdout.fileno()
        self.ready = False
        self.started = time.monotonic()
        self.buf = b""
        self.job: Optional[int] = None        # index of the job it is running
        self.job_started = 0.0
        self.keys: Set[str] = set()           # objects this worker already holds (see :func:`cached`)

    def send(self, job: Job) -> None:
        self.proc.stdin.write(_frame(job))

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
            out.append(pickle.loads(self.buf[_HEADER.size:_HEADER.size + size]))
            self.buf = self.buf[_HEADER.size + size:]
        return out

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)   # the worker and anything it started
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

    def __init__(self, size: Optional[int] = None):
        self.size = size or default_size()
        self.modules: List[str] = []
        self.workers: List[_Worker] = []
        self.lock = threading.Lock()
        self.kills = 0
        self.started = 0
        self.ever_ready = False
        self.failed_starts = 0

    # -- workers ---------------------------------------------------------------------------------
    def _spawn(self) -> _Worker:
        w = _Worker(self.modules)
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
                    results[w.job] = ("error", "reward worker died")
                    jobs.pop(w.job, None)
                w.job = None
                self._retire(w)
                continue
            for frame in frames:
                if not w.ready:
                    w.ready = frame == ("ready", w.proc.pid)
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


if __name__ == "__main__":
    serve(sys.argv[1:])
