"""A clean end for every rank: the process group is destroyed after ms-swift's pipeline returns.

Why: ms-swift 4.6's ``swift sft`` / ``swift rlhf`` never call ``torch.distributed.destroy_process_group()``
(``swift/pipelines/base.py`` ``SwiftPipeline.main``, L49-54; only ``megatron sft`` does, in
``swift/megatron/pipelines/train/sft.py`` L85-88). With the gloo backend (CPU ranks) torch then tears the
process group down during interpreter finalization, where a gloo worker thread still holding work objects
ends the process with ``terminate called without an active exception`` / SIGABRT (torch issue #190489; the
atexit fix in torch PR #179291 was abandoned). torchrun reports the whole job failed although every step
ran. Measured with ``bench/bench_ws2_aborts.py``: see docs/scaling.md.

What: :func:`install_teardown` (called by the ``--external_plugins`` file in every rank) wraps
``SwiftPipeline.main`` so that, after ``main`` *returned* (never on an exception: a rank that dies must not
block in a collective shutdown, the reason ms-swift's megatron path gives for the same placement), this
process's reward workers are stopped and the default process group is destroyed. ``SWIFT_EXT_DIST_TEARDOWN=0``
turns it off (used by the benchmark to measure the rate without it).
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any, Callable

logger = logging.getLogger("swift_ext.bridge")

TEARDOWN_ENV = "SWIFT_EXT_DIST_TEARDOWN"
_MARK = "_swift_ext_teardown"


def enabled(env=None) -> bool:
    """False when ``SWIFT_EXT_DIST_TEARDOWN`` is ``0``/``false``/``no``/``off``."""
    value = (os.environ if env is None else env).get(TEARDOWN_ENV, "1").strip().lower()
    return value not in ("0", "false", "no", "off")


def finish_rank() -> bool:
    """Stop this process's reward workers and destroy the default process group if one is up.
    True when a process group was destroyed."""
    from ..rewards import pool

    pool.shutdown()
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch is always there under ms-swift
        return False
    if not (dist.is_available() and dist.is_initialized()):
        return False
    dist.destroy_process_group()
    return True


def wrap_main(main: Callable[..., Any]) -> Callable[..., Any]:
    """``main`` followed by :func:`finish_rank` when it returns (an exception propagates untouched)."""
    if getattr(main, _MARK, False):
        return main

    @functools.wraps(main)
    def run_then_finish(self, *args, **kwargs):
        result = main(self, *args, **kwargs)
        if enabled():
            try:
                if finish_rank():
                    logger.info("swift-ext: process group destroyed after the run (clean rank exit)")
            except Exception as exc:  # the run itself succeeded: say so, do not turn it into a failure
                logger.warning("swift-ext: destroying the process group after the run failed: %r", exc)
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
