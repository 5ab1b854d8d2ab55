"""A clean end for every rank: the process group is destroyed after ms-swift's pipeline returns, and a CPU (gloo)
rank of the ``swift`` command line leaves without interpreter finalization.

Why: ms-swift 4.6's ``swift sft`` / ``swift rlhf`` never call ``torch.distributed.destroy_process_group()``
(``swift/pipelines/base.py`` ``SwiftPipeline.main``, L49-54; only ``megatron sft`` does, in
``swift/megatron/pipelines/train/sft.py`` L85-88). With the gloo backend (CPU ranks) a gloo worker thread
(``c10d::ProcessGroupGloo::runLoop``) that drops a finished work object during interpreter finalization
decrefs its tensors' Python objects, cannot take the GIL any more and ends the process with ``terminate
called without an active exception`` / SIGABRT (a core's backtrace: ``~AsyncAllgatherWork`` ->
``decref_pyobject`` -> ``take_gil`` -> ``pthread_exit`` -> ``std::terminate``; torch issue #190489, the atexit
fix in torch PR #179291 was abandoned). torchrun then reports the whole job failed although every step ran.

``destroy_process_group()`` alone narrows the window but does not close it: it calls the group's
``shutdown()``, but gloo's worker threads live until the last reference to the group is gone, and ms-swift's
DDP-wrapped model keeps one until finalization. So a gloo rank of the ``swift`` CLI (``__main__`` is
``swift/cli/{sft,pt,rlhf}.py``) finishes as Python would but without the finalization step: it waits for its
non-daemon threads, runs the ``atexit`` handlers, flushes stdout / stderr and leaves with ``os._exit(0)``.
Rates measured with ``bench/bench_ws2_aborts.py``: docs/scaling.md.

What: :func:`install_teardown` (called by the ``--external_plugins`` file in every rank) wraps
``SwiftPipeline.main``. After the outermost ``main`` *returned* (never after an exception: a rank that dies
must not block in a shutdown, the reason ms-swift's megatron path gives for the same placement) this
process's reward workers are stopped, the process group is destroyed and, for a gloo CLI rank, the process
exits as above. Called in-process (``rlhf_main()`` from your own script) nothing exits.
``SWIFT_EXT_DIST_TEARDOWN=0`` turns all of it off (the benchmark measures the rate without it).
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from typing import Any, Callable

logger = logging.getLogger("swift_ext.bridge")

TEARDOWN_ENV = "SWIFT_EXT_DIST_TEARDOWN"
#: set to 1 to have every rank say on stderr how it ended (bench/bench_ws2_aborts.py does)
TRACE_ENV = "SWIFT_EXT_TEARDOWN_TRACE"
#: the ``swift`` CLI scripts that run a training pipeline as ``__main__`` (under torchrun)
CLI_SCRIPTS = ("sft.py", "pt.py", "rlhf.py")
_MARK = "_swift_ext_teardown"
_depth = [0]


def enabled(env=None) -> bool:
    """False when ``SWIFT_EXT_DIST_TEARDOWN`` is ``0``/``false``/``no``/``off``."""
    value = (os.environ if env is None else env).get(TEARDOWN_ENV, "1").strip().lower()
    return value not in ("0", "false", "no", "off")


def _trace(msg: str) -> None:
    if os.environ.get(TRACE_ENV) == "1":
        print(f"[swift-ext teardown] rank {os.environ.get('RANK', '?')}: {msg}", file=sys.stderr, flush=True)


def finish_rank() -> str:
    """Stop this process's reward workers and destroy every process group if one is up. Returns the backend
    of the destroyed default group (``"gloo"``, ``"nccl"``, ...) or ``""`` when there was none."""
    from ..rewards import pool

    pool.shutdown()
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch is always there under ms-swift
        return ""
    if not (dist.is_available() and dist.is_initialized()):
        return ""
    backend = str(dist.get_backend())
    dist.destroy_process_group()
    return backend


def cli_rank(main_module: Any = None) -> bool:
    """True when this process is a ``swift sft|pt|rlhf`` command-line process (its ``__main__`` is one of
    ms-swift's CLI scripts), where nothing runs after the pipeline returns."""
    main_module = sys.modules.get("__main__") if main_module is None else main_module
    path = os.path.abspath(getattr(main_module, "__file__", None) or "")
    return os.path.basename(path) in CLI_SCRIPTS and os.path.basename(os.path.dirname(path)) == "cli" and \
        os.path.basename(os.path.dirname(os.path.dirname(path))) == "swift"


def exit_without_finalization(code: int = 0, join_timeout: float = 30.0) -> None:
    """Leave the process as Python would, minus finalization: run the threading exit hooks (as
    ``threading._shutdown`` does first: they tell ``concurrent.futures`` pools, such as the one HTTP client's,
    to let their idle workers go), join the non-daemon threads, run the ``atexit`` handlers, flush stdout /
    stderr, then ``os._exit(code)``.

    Unlike Python, the join is bounded: a thread still running after ``join_timeout`` seconds in all is named
    in a warning and left behind (``os._exit`` ends it), so a stuck thread cannot keep a finished rank, and
    with it the whole torchrun job, alive."""
    import atexit
    import threading
    import time

    for hook in reversed(list(getattr(threading, "_threading_atexits", ()))):
        try:
            hook()
        except Exception as exc:  # one library's hook must not keep the others from running
            logger.warning("swift-ext: a threading exit hook failed: %r", exc)
    me = threading.current_thread()
    deadline = time.monotonic() + join_timeout
    for thread in threading.enumerate():
        if thread is not me and not thread.daemon:
            thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [t.name for t in threading.enumerate() if t is not me and not t.daemon and t.is_alive()]
    if stuck:
        logger.warning("swift-ext: leaving with %d thread(s) still running after %.0f s: %s", len(stuck),
                       join_timeout, ", ".join(stuck))
        _trace(f"left {len(stuck)} stuck thread(s)")
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a closed stream
            pass
    os._exit(code)


def wrap_main(main: Callable[..., Any], exit_fn: Callable[[int], None] = exit_without_finalization,
              is_cli: Callable[[], bool] = cli_rank) -> Callable[..., Any]:
    """``main`` followed by :func:`finish_rank` when the outermost call returns (an exception propagates
    untouched); a gloo rank of the ``swift`` CLI then leaves through ``exit_fn(0)``."""
    if getattr(main, _MARK, False):
        return main

    @functools.wraps(main)
    def run_then_finish(self, *args, **kwargs):
        _depth[0] += 1
        try:
            result = main(self, *args, **kwargs)
        finally:
            _depth[0] -= 1
        if _depth[0] or not enabled():
            return result
        try:
            backend = finish_rank()
        except Exception as exc:  # the run itself succeeded: say so, do not turn it into a failure
            logger.warning("swift-ext: destroying the process group after the run failed: %r", exc)
            return result
        if backend:
            logger.info("swift-ext: process group destroyed after the run (clean rank exit)")
            _trace("process group destroyed")
        if backend == "gloo" and is_cli():
            _trace("leaving without interpreter finalization")
            exit_fn(0)
        return result

    setattr(run_then_finish, _MARK, True)
    return run_then_finish


def install_teardown() -> bool:
    """Wrap ms-swift's ``SwiftPipeline.main`` (once per process). True when it is (now) wrapped."""
    if not enabled():
        return False
    from swift.pipelines.base import SwiftPipeline

    SwiftPipeline.main = wrap_main(SwiftPipeline.main)
    return True
