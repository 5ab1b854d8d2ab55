"""CHORD inside ms-swift: the run's ``--chord_*`` arguments checked at start-up, and one runtime object that
holds the μ lever and the trace of the μ values ms-swift used.

Levers, read in ms-swift 4.6's installed code:

* ``swift.rlhf_trainers.utils.mu_schedule_function`` is looked up at call time by ``compute_chord_loss``,
  so replacing the module attribute changes the μ every CHORD step uses;
* ``swift.rlhf_trainers.grpo_trainer.compute_chord_loss`` is wrapped (same signature) only to know which
  trainer is asking (its total steps, for shapes that depend on the run length).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Dict, List, Optional

from ..chord import plan as chord
from ..errors import ConfigError
from .context import CHORD_MU_ARGS, RunContext

logger = logging.getLogger("swift_ext.bridge")

#: at most this many μ values are kept when nothing reads them (no ``chord_mu`` callback)
TRACE_LIMIT = 4096


class ChordRuntime:
    """The process's CHORD state: the selected shape, the patch into ms-swift and the μ trace.

    ``mu(...)`` is the drop-in for ms-swift's ``mu_schedule_function``; ``pop(step)`` hands the μ used at
    ``step`` to the ``chord_mu`` callback."""

    def __init__(self) -> None:
        self.spec: Optional[str] = None
        self.trainer: Any = None
        self.native_fn: Optional[Callable[..., float]] = None
        self.trace: Dict[int, float] = {}

    @property
    def patched(self) -> bool:
        return self.native_fn is not None

    def mu(self, global_step, mu_warmup_steps, mu_decay_steps, mu_peak, mu_valley) -> float:
        if self.spec:
            total = int(getattr(getattr(self.trainer, "state", None), "max_steps", 0) or 0)
            value = chord.runtime_mu(self.spec, int(global_step), total, {
                "chord_mu_warmup_steps": mu_warmup_steps, "chord_mu_decay_steps": mu_decay_steps,
                "chord_mu_peak": mu_peak, "chord_mu_valley": mu_valley})
        else:
            value = float(self._native()(global_step, mu_warmup_steps, mu_decay_steps, mu_peak, mu_valley))
        self.record(int(global_step), value)
        return value

    def record(self, step: int, value: float) -> None:
        self.trace[step] = value
        if len(self.trace) > TRACE_LIMIT:
            del self.trace[min(self.trace)]

    def pop(self, step: int) -> Optional[float]:
        return self.trace.pop(step, None)

    def patch(self) -> None:
        """Put :meth:`mu` in place of ms-swift's schedule function (once)."""
        if self.patched:
            return
        import swift.rlhf_trainers.grpo_trainer as grpo_mod
        import swift.rlhf_trainers.utils as utils_mod

        self.native_fn = utils_mod.mu_schedule_function
        orig_loss = grpo_mod.compute_chord_loss
        runtime = self

        def compute_chord_loss(trainer, grpo_loss):
            runtime.trainer = trainer
            return orig_loss(trainer, grpo_loss)

        compute_chord_loss.__wrapped__ = orig_loss
        utils_mod.mu_schedule_function = self.mu
        grpo_mod.compute_chord_loss = compute_chord_loss

    def _native(self) -> Callable[..., float]:
        if self.native_fn is not None:
            return self.native_fn
        from swift.rlhf_trainers.utils import mu_schedule_function

        return mu_schedule_function

    def native_mu(self, args: Any, global_step: int) -> Optional[float]:
        """μ ms-swift's own schedule gives ``global_step`` for these arguments (None when CHORD is off)."""
        values = {a: getattr(args, a, None) for a in CHORD_MU_ARGS}
        if not getattr(args, "chord_sft_dataset", None) or any(v is None for v in values.values()):
            return None
        return float(self._native()(global_step, *(values[a] for a in CHORD_MU_ARGS)))


RUNTIME = ChordRuntime()


def install_chord(ctx: RunContext, runtime: ChordRuntime = RUNTIME) -> List[str]:
    """Validate the run's ``--chord_*`` arguments and apply ``SWIFT_EXT_CHORD_SCHEDULE`` inside ms-swift.

    Without ``--chord_sft_dataset`` nothing is patched (a set schedule variable is reported and ignored).
    Errors (unset μ arguments, valley > peak, SFT rows without an answer) raise ConfigError before any
    model is loaded. Returns the applied spec in a list (empty when ms-swift's own schedule is used).
    """
    spec = chord.schedule_from_env()
    if not ctx.chord_sft_dataset:
        if spec:
            logger.warning("%s=%s is set but the run has no --chord_sft_dataset: the schedule is ignored",
                           chord.SCHEDULE_ENV, spec)
        return []
    missing = [f"--{a}" for a, v in ctx.chord_mu.items() if v is None] if not spec else []
    if ctx.chord_sft_batch_size is None:
        missing.append("--chord_sft_per_device_train_batch_size")
    if missing:
        raise ConfigError(f"CHORD (--chord_sft_dataset is set) needs {', '.join(missing)}; ms-swift has no default "
                          f"for them and would fail with a TypeError mid-training. `swift-ext chord plan` prints a "
                          f"complete, checked set")
    sched = chord.resolve(spec or "warmup_cosine", dict(ctx.chord_mu))  # ConfigError names unset μ arguments
    for warning in chord.check_values(sched):
        logger.warning("CHORD: %s", warning)
    local_sft = [p for p in ctx.chord_sft_dataset if os.path.isfile(p)]
    if local_sft:
        report = chord.check_datasets(local_sft, [p for p in ctx.dataset if os.path.isfile(p)])
        for warning in report.warnings:
            logger.warning("CHORD: %s", warning)
    if not spec:
        runtime.spec = None  # ms-swift's own schedule (the lever, if an earlier run set it, is transparent)
        return []
    runtime.patch()
    runtime.spec = sched.spec
    logger.info("swift-ext CHORD mu schedule: %s", sched.spec)
    return [sched.spec]
