"""CHORD planning: how many optimizer steps a GRPO run has, and which mu (SFT weight) each step gets.

CHORD mixes the GRPO loss with an SFT loss on expert data: ``loss = (1 - mu) * grpo + mu * sft``.
ms-swift 4.6 reads ``--chord_mu_warmup_steps/--chord_mu_decay_steps/--chord_mu_peak/--chord_mu_valley``
every step and feeds them to a hard-coded warmup + cosine shape. This module

* computes the total number of optimizer steps of a GRPO run from the data sizes and batch settings
  (:func:`count_steps`, formula below),
* defines mu *shapes* (built-in ``warmup_cosine``, ``constant``, ``linear_decay``, ``step`` plus any a
  plugin registers through ``register_schedules``) and checks their settings against the run length,
* builds a :class:`ChordPlan`: the complete ``--chord_*`` flags, the ``SWIFT_EXT_CHORD_SCHEDULE``
  variable that makes the swift-ext plugin apply a non-native shape inside ms-swift, the mu table and a plot.

Step arithmetic (ms-swift 4.6 GRPO, HF ``Trainer`` loop; ``N`` = training rows after the validation split,
``B`` = ``per_device_train_batch_size`` (completions per device per micro-batch), ``W`` = number of GPUs
(processes), ``GA`` = ``gradient_accumulation_steps``, ``G`` = ``num_generations``)::

    steps_per_generation  spg = --steps_per_generation or --generation_batch_size / (B*W) or GA
    generation batch      gbs = B * W * spg              (completions per generation round)
    prompts per round     P   = gbs / G                  (gbs must be divisible by G)
    micro-batches/epoch   M   = floor(N / P) * spg * num_iterations   (a last partial round is dropped)
    steps per epoch       S   = ceil(M / GA)
    total steps           T   = ceil(epochs * S)   (or --max_steps when it is > 0)

With the defaults (``spg = GA``, one iteration) one optimizer step consumes ``B*W*GA/G`` prompts.

Example::

    >>> s = count_steps(train_rows=100, per_device_batch=8, grad_accum=2, gpus=1, num_generations=4)
    >>> (s.prompts_per_step, s.steps_per_epoch, s.total_steps)
    (4, 25, 25)
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .. import components, plugins
from ..errors import ConfigError, PluginError
from ..convert.formats import read_row
from ..convert.rows import RowError
from ..io import iter_jsonl, save_png
from ..params import Param, format_spec
from ..scoring.results import messages_key

SCHEDULE_ENV = "SWIFT_EXT_CHORD_SCHEDULE"
MU_KEY = "chord/mu"

#: ``--chord_mu_*`` argument -> schedule parameter of the same meaning
SWIFT_ARG_OF_PARAM = {
    "warmup_steps": "chord_mu_warmup_steps",
    "decay_steps": "chord_mu_decay_steps",
    "peak": "chord_mu_peak",
    "valley": "chord_mu_valley",
}

# -- step arithmetic ------------------------------------------------------------------------------
@dataclass(frozen=True)
class StepCount:
    """Inputs and results of :func:`count_steps` (see the module docstring for the formula)."""

    train_rows: int
    epochs: float
    per_device_batch: int
    grad_accum: int
    gpus: int
    num_generations: int
    steps_per_generation: int
    generation_batch_size: int
    num_iterations: int
    prompts_per_round: int
    micro_batches_per_epoch: int
    steps_per_epoch: int
    total_steps: int
    dropped_rows: int
    max_steps: int = -1

    @property
    def prompts_per_step(self) -> int:
        """Distinct prompts per optimizer step (may be fractional with a custom spg; rounded down)."""
        return (self.per_device_batch * self.gpus * self.grad_accum) // (self.num_generations * self.num_iterations)

    def as_dict(self) -> Dict[str, Any]:
        d = dict(self.__dict__)
        d["prompts_per_step"] = self.prompts_per_step
        return d


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return value


def count_steps(train_rows: int, per_device_batch: int, grad_accum: int = 1, gpus: int = 1,
                num_generations: int = 8, epochs: float = 1.0, steps_per_generation: Optional[int] = None,
                generation_batch_size: Optional[int] = None, num_iterations: int = 1,
                max_steps: int = -1, split_dataset_ratio: float = 0.0) -> StepCount:
    """Total optimizer steps of an ms-swift GRPO run; refuses settings ms-swift itself would refuse.

    ``train_rows`` is the size of ``--dataset``; with ``split_dataset_ratio`` > 0 the validation rows
    (``ceil(ratio * rows)``, as ``datasets.train_test_split`` does) are taken off first.
    """
    rows = _positive_int("dataset rows", train_rows)
    b = _positive_int("per_device_train_batch_size", per_device_batch)
    ga = _positive_int("gradient_accumulation_steps", grad_accum)
    w = _positive_int("number of GPUs", gpus)
    g = _positive_int("num_generations", num_generations)
    it = _positive_int("num_iterations", num_iterations)
    if g < 2:
        raise ConfigError("num_generations must be >= 2 for GRPO (ms-swift refuses 1)")
    if not (isinstance(epochs, (int, float)) and epochs > 0 and math.isfinite(epochs)):
        raise ConfigError(f"num_train_epochs must be > 0, got {epochs!r}")
    if not (0.0 <= split_dataset_ratio < 1.0):
        raise ConfigError(f"split_dataset_ratio must be in [0, 1), got {split_dataset_ratio!r}")
    if split_dataset_ratio > 0:
        rows -= math.ceil(split_dataset_ratio * rows)
        if rows < 1:
            raise ConfigError(f"split_dataset_ratio {split_dataset_ratio} leaves no training rows")
    global_batch = b * w
    if steps_per_generation is not None and generation_batch_size is not None:
        if generation_batch_size != global_batch * steps_per_generation:
            raise ConfigError(f"generation_batch_size ({generation_batch_size}) must equal per_device_train_batch_size"
                              f" * GPUs * steps_per_generation = {global_batch * steps_per_generation}")
    if steps_per_generation is None:
        if generation_batch_size is not None:
            if generation_batch_size % global_batch:
                raise ConfigError(f"generation_batch_size ({generation_batch_size}) must be divisible by the global "
                                  f"batch size per_device_train_batch_size * GPUs = {global_batch}")
            steps_per_generation = generation_batch_size // global_batch
        else:
            steps_per_generation = ga
    spg = _positive_int("steps_per_generation", steps_per_generation)
    gbs = global_batch * spg
    if gbs % g:
        valid = [n for n in range(2, gbs + 1) if gbs % n == 0]
        raise ConfigError(f"generation batch ({gbs} = per_device_train_batch_size {b} x GPUs {w} x "
                          f"steps_per_generation {spg}) must be divisible by num_generations ({g}); "
                          f"valid num_generations: {valid}")
    prompts = gbs // g
    rounds = rows // prompts
    if rounds == 0:
        raise ConfigError(f"the dataset has {rows} training rows but one generation round needs {prompts} prompts "
                          f"({gbs} completions / {g} generations): no optimizer step would run")
    micro = rounds * spg * it
    per_epoch = micro // ga + int(micro % ga > 0)
    total = math.ceil(epochs * per_epoch)
    if max_steps is not None and max_steps > 0:
        total = int(max_steps)
    return StepCount(train_rows=rows, epochs=float(epochs), per_device_batch=b, grad_accum=ga, gpus=w,
                     num_generations=g, steps_per_generation=spg, generation_batch_size=gbs, num_iterations=it,
                     prompts_per_round=prompts, micro_batches_per_epoch=micro, steps_per_epoch=per_epoch,
                     total_steps=total, dropped_rows=rows - rounds * prompts,
                     max_steps=int(max_steps) if max_steps else -1)


# -- shapes ---------------------------------------------------------------------------------------
_COMMON = {
    "peak": Param(None, "highest mu (the SFT weight at the end of warmup)", type=float, min=0.0, max=1.0),
    "valley": Param(None, "final mu, held after the decay", type=float, min=0.0, max=1.0),
    "warmup_steps": Param(0, "steps of linear warmup 0 -> peak", type=int, min=0),
    "decay_steps": Param(None, "steps from peak to valley after the warmup", type=int, min=0),
}


def schedule(params: Optional[Dict[str, Param]] = None, native: bool = False) -> Callable[[Callable], Callable]:
    """Declare a mu shape ``fn(step, total_steps, **params) -> float`` for ``register_schedules``.

    ``params`` declares the parameters a user may set (``linear_decay:peak=0.9,decay_steps=100``);
    ``peak/valley/warmup_steps/decay_steps``, when declared, default to the run's ``--chord_mu_*``
    arguments. ``native=True`` marks shapes ms-swift computes by itself from those four arguments
    (no patching needed).

    Example (a plugin)::

        @hookimpl
        def register_schedules(register):
            @schedule(params={"peak": Param(0.5, type=float, min=0, max=1)})
            def half_life(step, total_steps, peak, **_):
                return peak * 0.5 ** (step / max(total_steps, 1))
            register("half_life", half_life)
    """
    def deco(fn: Callable) -> Callable:
        fn.params = dict(params or {})
        fn.native = native
        return fn
    return deco


def _warmup(step: int, warmup: int, peak: float) -> Optional[float]:
    return (step / warmup) * peak if step < warmup else None


@schedule(params=dict(_COMMON), native=True)
def warmup_cosine(step: int, total_steps: int, peak: float, valley: float, warmup_steps: int, decay_steps: int,
                  **_: Any) -> float:
    """ms-swift's own shape: linear warmup 0 -> peak, cosine decay peak -> valley, then valley."""
    w = _warmup(step, warmup_steps, peak)
    if w is not None:
        return w
    if step >= warmup_steps + decay_steps:
        return valley
    return (peak - valley) * 0.5 * (1 + math.cos(math.pi * (step - warmup_steps) / decay_steps)) + valley


@schedule(params={"mu": Param(None, "the constant SFT weight", type=float, min=0.0, max=1.0)}, native=True)
def constant(step: int, total_steps: int, mu: float, **_: Any) -> float:
    """mu is the same on every step (ms-swift: peak = valley, no warmup, no decay)."""
    return mu


@schedule(params=dict(_COMMON))
def linear_decay(step: int, total_steps: int, peak: float, valley: float, warmup_steps: int, decay_steps: int,
                 **_: Any) -> float:
    """Linear warmup 0 -> peak, linear decay peak -> valley over decay_steps, then valley."""
    w = _warmup(step, warmup_steps, peak)
    if w is not None:
        return w
    if step >= warmup_steps + decay_steps:
        return valley
    return peak - (peak - valley) * (step - warmup_steps) / decay_steps


@schedule(params={**_COMMON, "drops": Param(1, "number of equal drops from peak to valley", type=int, min=1)})
def staircase(step: int, total_steps: int, peak: float, valley: float, warmup_steps: int, decay_steps: int,
              drops: int = 1, **_: Any) -> float:
    """Staircase: linear warmup, then peak, falling in ``drops`` equal drops spaced evenly over decay_steps."""
    w = _warmup(step, warmup_steps, peak)
    if w is not None:
        return w
    if step >= warmup_steps + decay_steps:
        return valley
    done = math.floor((step - warmup_steps) * drops / decay_steps)  # drops taken so far (0 .. drops-1)
    return peak - (peak - valley) * done / drops


BUILTIN_SHAPES = {"warmup_cosine": warmup_cosine, "constant": constant, "linear_decay": linear_decay, "step": staircase}


def check_schedule(name: str, obj: Any) -> None:
    """What the plugin host checks of a registered mu shape."""
    if not callable(obj):
        raise PluginError(f"schedule {name!r} must be a callable fn(step, total_steps, **params), got {obj!r}")
    params = getattr(obj, "params", {})
    if not isinstance(params, dict) or not all(isinstance(p, Param) for p in params.values()):
        raise PluginError(f"schedule {name!r}: .params must map names to swift_ext.params.Param")


def shape_names() -> List[str]:
    return list(plugins.registry("schedule"))


def get_shape(name: str) -> Callable:
    return plugins.registry("schedule").get(name)


# -- resolved schedules ---------------------------------------------------------------------------
@dataclass
class Schedule:
    """A shape with every parameter bound: ``Schedule.mu(step, total_steps)``."""

    name: str
    fn: Callable
    params: Dict[str, Any]

    @property
    def native(self) -> bool:
        return bool(getattr(self.fn, "native", False))

    @property
    def spec(self) -> str:
        return format_spec(self.name, {k: v for k, v in self.params.items() if v is not None})

    def mu(self, step: int, total_steps: int) -> float:
        value = float(self.fn(step, total_steps, **self.params))
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise ConfigError(f"schedule {self.spec} gave mu={value!r} at step {step}; mu must be in [0, 1]")
        return value

    def table(self, total_steps: int) -> List[Tuple[int, float]]:
        """(optimizer step, mu) for steps 0 .. total_steps-1 (ms-swift uses mu(global_step) for the update
        that takes global_step from s to s+1, so row s is logged at step s+1)."""
        return [(s, self.mu(s, total_steps)) for s in range(total_steps)]

    def swift_args(self, total_steps: int) -> Dict[str, Any]:
        """The four ``--chord_mu_*`` values: exact for native shapes, descriptive (peak/valley = max/min of
        the table, warmup/decay from the parameters) for the others, so that every argument is set."""
        p = self.params
        if self.name == "constant":
            return {"chord_mu_warmup_steps": 0, "chord_mu_decay_steps": 0,
                    "chord_mu_peak": p["mu"], "chord_mu_valley": p["mu"]}
        values = [m for _, m in self.table(total_steps)] or [0.0]
        out = {
            "chord_mu_warmup_steps": int(p.get("warmup_steps") or 0),
            "chord_mu_decay_steps": int(p["decay_steps"]) if p.get("decay_steps") is not None else total_steps,
            "chord_mu_peak": p["peak"] if p.get("peak") is not None else round(max(values), 6),
            "chord_mu_valley": p["valley"] if p.get("valley") is not None else round(min(values), 6),
        }
        return out


def resolve(spec: str, swift_args: Optional[Dict[str, Any]] = None) -> Schedule:
    """Bind a shape spec (``linear_decay:peak=0.9,decay_steps=40``); parameters the spec leaves out come
    from ``swift_args`` (``{"chord_mu_peak": ..., ...}``, the run's ``--chord_mu_*`` values), then defaults."""
    name, raw = components.resolve_spec("schedule", spec)
    declared: Dict[str, Param] = getattr(get_shape(name), "params", {})
    given: Dict[str, Any] = {}
    for key, arg in SWIFT_ARG_OF_PARAM.items():
        if key in declared and swift_args and swift_args.get(arg) is not None:
            given[key] = swift_args[arg]
    if name == "constant" and "mu" not in raw and swift_args and swift_args.get("chord_mu_peak") is not None:
        given["mu"] = swift_args["chord_mu_peak"]
    name, fn, params, _ = components.lookup("schedule", spec, given)
    missing = [k for k, v in params.items() if v is None]
    if missing:
        flags = ", ".join(f"{k}=..." if k not in SWIFT_ARG_OF_PARAM else f"{k}=... (or --{SWIFT_ARG_OF_PARAM[k]})"
                          for k in missing)
        raise ConfigError(f"schedule {name}: unset mu argument(s): {flags}")
    return Schedule(name, fn, params)


def check_values(sched: Schedule) -> List[str]:
    """Checks that need no run length: valley <= peak (ConfigError); warnings for odd but legal settings."""
    p, warnings = sched.params, []
    peak, valley = p.get("peak"), p.get("valley")
    if peak is not None and valley is not None and valley > peak:
        raise ConfigError(f"valley ({valley}) > peak ({peak}): mu would rise after the decay; "
                          f"swap them or use a constant schedule")
    if p.get("decay_steps") == 0 and peak is not None and valley is not None and peak != valley:
        warnings.append(f"decay_steps=0: mu jumps from peak {peak} to valley {valley} right after the warmup")
    return warnings


def check(sched: Schedule, total_steps: int) -> List[str]:
    """Refuse inconsistent settings (ConfigError); return warnings for legal but suspicious ones."""
    p = sched.params
    warnings = check_values(sched)
    warm, decay = p.get("warmup_steps") or 0, p.get("decay_steps")
    if decay is not None and warm + decay > total_steps:
        raise ConfigError(f"warmup_steps ({warm}) + decay_steps ({decay}) = {warm + decay} is longer than the run "
                          f"({total_steps} optimizer steps): mu would never reach the valley. "
                          f"Use decay_steps <= {max(total_steps - warm, 0)}")
    sched.table(total_steps)  # every value must be a finite mu in [0, 1]
    if total_steps and all(m == 0.0 for _, m in sched.table(total_steps)):
        warnings.append("mu is 0 on every step: the SFT data is never used (this is plain GRPO)")
    return warnings


# -- SFT / RL dataset checks ----------------------------------------------------------------------
def _canonical(row: Any) -> Optional[Dict[str, Any]]:
    """A dataset row of any format ``swift-ext convert`` reads, as its canonical messages (None: unreadable)."""
    try:
        return read_row(row)[1]
    except RowError:
        return None


def _prompt_key(row: Dict[str, Any]) -> Optional[str]:
    """The question a row asks: its user turns (system prompts and images aside), whatever the format."""
    c = _canonical(row)
    users = [m for m in (c or {}).get("messages", []) if m.get("role") == "user"]
    return messages_key(users) if users else None


def _has_answer(row: Dict[str, Any]) -> bool:
    """The row ends with a non-empty assistant turn (what CHORD's SFT loss trains on)."""
    msgs = (_canonical(row) or {}).get("messages") or []
    last = msgs[-1] if msgs else {}
    return last.get("role") == "assistant" and bool(str(last.get("content") or "").strip())


@dataclass
class DataCheck:
    sft_rows: int = 0
    rl_rows: int = 0
    shared_prompts: int = 0
    shared_examples: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)


def _read_rows(path: str) -> List[Tuple[int, Dict[str, Any]]]:
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: no such dataset file (CHORD plan reads local JSONL files)")
    rows = []
    for lineno, obj in iter_jsonl(path):
        if not isinstance(obj, dict):
            raise ConfigError(f"{path}:{lineno}: expected a JSON object per line, got {type(obj).__name__}")
        rows.append((lineno, obj))
    return rows


def check_datasets(sft_paths: Sequence[str], rl_paths: Sequence[str] = ()) -> DataCheck:
    """Every CHORD SFT row must end with an assistant answer (the SFT loss needs labels); prompts that
    also appear in the RL set are reported (the model is then trained to imitate the answer it is
    also being rewarded for discovering)."""
    if not sft_paths:
        raise ConfigError("CHORD needs an SFT dataset (--chord_sft_dataset / --sft_dataset): none given")
    out = DataCheck()
    sft_prompts: Dict[str, str] = {}
    bad: List[str] = []
    for path in sft_paths:
        for lineno, row in _read_rows(path):
            out.sft_rows += 1
            if not _has_answer(row):
                bad.append(f"{path}:{lineno}")
            key = _prompt_key(row)
            if key:
                sft_prompts.setdefault(key, f"{path}:{lineno}")
    if out.sft_rows == 0:
        raise ConfigError(f"the SFT dataset {', '.join(sft_paths)} is empty")
    if bad:
        shown = ", ".join(bad[:5]) + (f" (+{len(bad) - 5} more)" if len(bad) > 5 else "")
        raise ConfigError(f"{len(bad)} of {out.sft_rows} CHORD SFT rows have no assistant answer (the SFT loss "
                          f"needs one; messages must end with an assistant turn): {shown}")
    for path in rl_paths:
        for lineno, row in _read_rows(path):
            out.rl_rows += 1
            key = _prompt_key(row)
            if key and key in sft_prompts:
                out.shared_prompts += 1
                if len(out.shared_examples) < 3:
                    out.shared_examples.append(f"{path}:{lineno} = {sft_prompts[key]}")
    if out.shared_prompts:
        out.warnings.append(f"{out.shared_prompts} of {out.rl_rows} RL prompts also appear in the SFT set "
                            f"(e.g. {'; '.join(out.shared_examples)}): the SFT term then teaches the answers GRPO "
                            f"is rewarded for finding; keep the sets disjoint unless that is intended")
    return out


# -- the plan -------------------------------------------------------------------------------------
@dataclass
class ChordPlan:
    steps: StepCount
    schedule: Schedule
    sft_datasets: List[str]
    sft_batch_size: int
    enable_phi: bool = False
    warnings: List[str] = field(default_factory=list)
    data: Optional[DataCheck] = None

    @property
    def needs_plugin(self) -> bool:
        return not self.schedule.native

    def swift_args(self) -> Dict[str, Any]:
        args = {"chord_sft_dataset": list(self.sft_datasets),
                "chord_sft_per_device_train_batch_size": self.sft_batch_size,
                **self.schedule.swift_args(self.steps.total_steps),
                "chord_enable_phi_function": self.enable_phi}
        return args

    def env(self) -> Dict[str, str]:
        return {SCHEDULE_ENV: self.schedule.spec} if self.needs_plugin else {}

    def flags(self) -> List[str]:
        out: List[str] = []
        for key, value in self.swift_args().items():
            out.append(f"--{key}")
            if isinstance(value, list):
                out.extend(str(v) for v in value)
            elif isinstance(value, bool):
                out.append(str(value).lower())
            else:
                out.append(str(value))
        if self.needs_plugin:
            out += ["--external_plugins", _plugin_path()]
        return out

    def shell(self) -> str:
        """What to paste: the env assignment (custom shapes) and the flags, shell-quoted."""
        import shlex

        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env().items())
        flags = " ".join(shlex.quote(f) for f in self.flags())
        return (f"export {env}\n" if env else "") + flags

    def table(self) -> List[Tuple[int, float]]:
        return self.schedule.table(self.steps.total_steps)

    def as_dict(self) -> Dict[str, Any]:
        return {"steps": self.steps.as_dict(), "schedule": self.schedule.spec, "native": self.schedule.native,
                "swift_args": self.swift_args(), "env": self.env(), "flags": self.flags(),
                "mu": [m for _, m in self.table()], "warnings": list(self.warnings)}


def _plugin_path() -> str:
    from pathlib import Path

    return str((Path(__file__).parents[1] / "_swift_plugin" / "swift_ext_plugin.py").resolve())


def make_plan(shape: str, steps: StepCount, sft_datasets: Sequence[str], rl_datasets: Sequence[str] = (),
              sft_batch_size: int = 1, enable_phi: bool = False, check_data: bool = True,
              swift_args: Optional[Dict[str, Any]] = None) -> ChordPlan:
    """Validate everything and return the plan (raises ConfigError / ParamError with the reason)."""
    if not sft_datasets:
        raise ConfigError("CHORD needs an SFT dataset with assistant answers: pass --sft-dataset FILE "
                          "(it becomes --chord_sft_dataset)")
    _positive_int("chord_sft_per_device_train_batch_size", sft_batch_size)
    sched = resolve(shape, swift_args)
    warnings = check(sched, steps.total_steps)
    data = check_datasets(sft_datasets, rl_datasets) if check_data else None
    if data:
        warnings += data.warnings
    if steps.dropped_rows:
        warnings.append(f"{steps.dropped_rows} training rows do not fill a whole generation round and are skipped "
                        f"each epoch")
    return ChordPlan(steps, sched, list(sft_datasets), sft_batch_size, enable_phi, warnings, data)


def count_jsonl_rows(path: str) -> int:
    return len(_read_rows(path))


# -- plot -----------------------------------------------------------------------------------------
def plot(plan_or_schedules: Any, total_steps: Optional[int], path: str, title: Optional[str] = None) -> str:
    """Write a PNG of mu by step (one line per schedule), atomically; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if isinstance(plan_or_schedules, ChordPlan):
        total_steps = plan_or_schedules.steps.total_steps
        scheds = [plan_or_schedules.schedule]
    else:
        scheds = list(plan_or_schedules)
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    for s in scheds:
        xs = list(range(total_steps))
        ax.plot(xs, [s.mu(x, total_steps) for x in xs], label=s.spec, drawstyle="default")
    ax.set_xlabel("optimizer step (global_step)")
    ax.set_ylabel("mu (SFT weight)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(title or "CHORD mu schedule")
    ax.legend(fontsize=8)
    return save_png(fig, path)


# -- what the swift-ext plugin applies inside ms-swift ---------------------------------------------
def schedule_from_env(env: Optional[Dict[str, str]] = None) -> Optional[str]:
    """The shape spec selected with ``SWIFT_EXT_CHORD_SCHEDULE`` (None when unset or empty)."""
    value = (env if env is not None else os.environ).get(SCHEDULE_ENV, "").strip()
    return value or None


def runtime_mu(spec: str, global_step: int, total_steps: int, swift_args: Dict[str, Any]) -> float:
    """mu for ``global_step`` as the plugin computes it during training (no caching of the spec, so a
    bad spec fails the first step with the reason rather than silently falling back)."""
    key = tuple(sorted((k, swift_args.get(k)) for k in SWIFT_ARG_OF_PARAM.values()))
    sched = _RESOLVED.get((spec, key))
    if sched is None:
        sched = _RESOLVED[(spec, key)] = resolve(spec, swift_args)
    return sched.mu(global_step, total_steps)


_RESOLVED: Dict[Tuple[str, tuple], Schedule] = {}


__all__ = ["count_steps", "StepCount", "schedule", "Schedule", "resolve", "check", "check_datasets", "make_plan",
           "ChordPlan", "plot", "check_values", "SCHEDULE_ENV", "MU_KEY", "BUILTIN_SHAPES", "shape_names",
           "get_shape", "schedule_from_env", "runtime_mu"]
