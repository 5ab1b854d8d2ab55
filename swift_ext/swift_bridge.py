"""The one module that talks to ms-swift internals.

ms-swift loads extensions only from files passed as ``--external_plugins``; the file swift-ext ships
(``swift-ext plugin-path``) calls :func:`install`, which puts every swift-ext reward into
``swift.rewards.orms`` (``swift.plugin.orms`` on ms-swift 3.x), every swift-ext callback into
``swift.callbacks.callbacks_map``, and applies a custom CHORD mu schedule when one is selected.

Parametrised reward names (``length_budget:max_tokens=512``) cannot be registered ahead of time, so
:func:`install` also registers each such name it finds in the run's ``--reward_funcs`` (read from the
arguments object that is importing the plugin, or from ``sys.argv``), in ``SWIFT_EXT_REWARDS`` and in
the ``SWIFT_EXT_CONFIG`` file's aliases.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

from . import plugins
from .errors import BridgeError, DuplicateNameError

logger = logging.getLogger("swift_ext.bridge")

PLUGIN_FILE = Path(__file__).parent / "_swift_plugin" / "swift_ext_plugin.py"
REWARDS_ENV = "SWIFT_EXT_REWARDS"
_MARK = "_swift_ext_source"


def plugin_path() -> str:
    """Absolute path of the file to pass to ``--external_plugins``."""
    return str(PLUGIN_FILE.resolve())


def swift_version() -> Optional[str]:
    try:
        from importlib.metadata import version

        return version("ms-swift")
    except Exception:
        return None


# -- registries -----------------------------------------------------------------------------------
def _is_v3() -> bool:
    import importlib.util

    if importlib.util.find_spec("swift") is None:
        raise BridgeError("ms-swift is not installed: pip install 'ms-swift>=4.6,<5'")
    return importlib.util.find_spec("swift.rewards") is None and importlib.util.find_spec("swift.plugin") is not None


def get_orms() -> Dict[str, Any]:
    """ms-swift's reward registry: ``swift.rewards.orms`` (4.x) or ``swift.plugin.orms`` (3.x).

    Import errors from inside ms-swift (a broken torchvision, say) propagate unchanged.
    """
    if _is_v3():
        from swift.plugin import orms  # ms-swift 3.x
    else:
        from swift.rewards import orms  # ms-swift 4.x
    return orms


def _orm_bases(reward_cls: type) -> tuple:
    """ms-swift's ORM/AsyncORM base, mixed in so that isinstance checks in ms-swift code hold."""
    from .rewards import is_async

    if _is_v3():
        from swift.plugin import ORM

        AsyncORM = getattr(__import__("swift.plugin", fromlist=["AsyncORM"]), "AsyncORM", ORM)
    else:
        from swift.rewards import AsyncORM, ORM
    return (AsyncORM,) if is_async(reward_cls) else (ORM,)


def swift_reward_class(spec: str, alias: Optional[str] = None) -> type:
    """The class ms-swift will instantiate for ``spec`` (named ``alias`` if given): the configured reward
    plus ms-swift's ORM base."""
    from .rewards import configure

    cls = configure(spec, alias=alias)
    bases = tuple(b for b in _orm_bases(cls) if not issubclass(cls, b))
    if bases:
        cls = type(cls.__name__, (cls, *bases), {"__module__": cls.__module__, "__qualname__": cls.__name__})
    setattr(cls, _MARK, True)
    return cls


def _register_orm(orms: Dict[str, Any], name: str, spec: str) -> bool:
    existing = orms.get(name)
    if existing is not None:
        if getattr(existing, _MARK, False):
            return False  # installed already (plugin imported twice, dataloader replay)
        source = plugins.registry("reward").source(spec.split(":", 1)[0]) \
            if spec.split(":", 1)[0] in plugins.registry("reward") else "swift-ext"
        raise DuplicateNameError("reward", name, f"ms-swift's orms ({getattr(existing, '__module__', '?')})",
                                 source)
    orms[name] = swift_reward_class(spec, alias=name if name != spec else None)
    return True


# -- reading the run's arguments (the plugin file is imported from BaseArguments.__post_init__) --------------
def _caller_attr(name: str) -> Any:
    """``name`` of the ms-swift arguments object whose ``__post_init__`` imports the plugin file (or None)."""
    frame = sys._getframe(1)
    for _ in range(60):
        if frame is None:
            break
        obj = frame.f_locals.get("self")
        if obj is not None and hasattr(obj, "output_dir") and hasattr(obj, name):
            return getattr(obj, name)
        frame = frame.f_back
    return None


def _argv_values(flag: str, argv: Optional[List[str]] = None) -> List[str]:
    argv = sys.argv[1:] if argv is None else argv
    out: List[str] = []
    for i, tok in enumerate(argv):
        if tok == flag:
            for value in argv[i + 1:]:
                if value.startswith("--"):
                    break
                out.append(value)
        elif tok.startswith(flag + "="):
            out += tok.split("=", 1)[1].split()
    return out


def requested_reward_specs(argv: Optional[List[str]] = None) -> List[str]:
    """Reward names this run asks for: the importing arguments object, ``argv``, ``SWIFT_EXT_REWARDS``."""
    found = [f for f in (_caller_attr("reward_funcs") or []) if isinstance(f, str)]
    found += _argv_values("--reward_funcs", argv)
    found += (os.environ.get(REWARDS_ENV) or "").split()
    return list(dict.fromkeys(found))


def install_rewards(specs: Iterable[str] = ()) -> List[str]:
    """Register every swift-ext reward, every alias and each parametrised ``spec`` into ms-swift's orms."""
    from .rewards import aliases
    from .params import parse_spec

    orms = get_orms()
    added = []
    registry = plugins.registry("reward")
    for name in registry:
        if _register_orm(orms, name, name):
            added.append(name)
    known_aliases = aliases()
    for alias, spec in known_aliases.items():
        if _register_orm(orms, alias, spec):
            added.append(alias)
    for spec in specs:
        name, params = parse_spec(spec)
        if not params or spec in orms:
            continue
        if name in registry or name in known_aliases:
            if _register_orm(orms, spec, spec):
                added.append(spec)
    return added


# -- third-party ORM files (the seed recipe's plugin files) -----------------------------------------
def load_orm_file(path: str) -> List[str]:
    """Import an ms-swift plugin file the way ``--external_plugins`` does; return the orms names it added."""
    orms = get_orms()
    before = set(orms)
    try:
        from swift.utils import import_external_file
    except ImportError:  # 3.x
        import importlib.util

        def import_external_file(file_path):
            spec = importlib.util.spec_from_file_location(Path(file_path).stem, file_path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)

    if not Path(path).is_file():
        raise BridgeError(f"{path}: no such plugin file")
    import_external_file(os.path.abspath(path))
    return sorted(set(orms) - before)


def get_orm(name: str) -> Any:
    """An ms-swift reward class by its ``--reward_funcs`` name (built-in or from a loaded plugin file)."""
    from .errors import UnknownNameError

    orms = get_orms()
    if name not in orms:
        raise UnknownNameError("reward", name, orms)
    return orms[name]


# -- callbacks ----------------------------------------------------------------------------------------
def install_callbacks() -> List[str]:
    """Register swift-ext trainer callbacks into ``swift.callbacks.callbacks_map`` (``--callbacks NAME``)."""
    registry = plugins.registry("callback")
    if not len(registry):
        return []
    try:
        from swift.callbacks import callbacks_map
    except ImportError:
        logger.warning("swift.callbacks not importable (ms-swift < 4?); swift-ext callbacks not registered")
        return []
    added = []
    for name, cls in registry.items():
        existing = callbacks_map.get(name)
        if existing is cls:
            continue
        if existing is not None:
            raise DuplicateNameError("callback", name, "ms-swift's callbacks_map", registry.source(name))
        callbacks_map[name] = cls
        added.append(name)
    return added


def install(argv: Optional[List[str]] = None) -> Dict[str, List[str]]:
    """Everything the ``--external_plugins`` file does. Safe to call more than once."""
    done = {"rewards": install_rewards(requested_reward_specs(argv)), "callbacks": install_callbacks()}
    done["callbacks"] += install_callback_specs(argv)  # chord-eval: parametrised --callbacks names
    done["chord"] = install_chord(argv)  # chord-eval: validate --chord_* and apply SWIFT_EXT_CHORD_SCHEDULE
    logger.info("swift-ext installed into ms-swift: %s", done)
    return done


# == CHORD and evaluation hooks ====================================================================
# Levers used, all on ms-swift 4.6 internals read in the installed code:
# * swift.rlhf_trainers.utils.mu_schedule_function: looked up at call time by compute_chord_loss, so
#   replacing the module attribute changes the mu every CHORD step uses;
# * swift.rlhf_trainers.grpo_trainer.compute_chord_loss: wrapped (same signature) only to know which
#   trainer is asking (total steps for plugin shapes);
# * GRPOTrainer._compute_rewards_per_func / _rollout_samples / reward_func_names: read by the
#   evaluation callbacks (per-completion rewards of the eval rollouts, sanity rollouts).
CALLBACKS_ENV = "SWIFT_EXT_CALLBACKS"
_CHORD_STATE: Dict[str, Any] = {"spec": None, "patched": False, "trainer": None, "orig_mu": None}


def chord_mu_args(obj: Any) -> Dict[str, Any]:
    """``{"chord_mu_peak": ..., ...}`` of an arguments / training-arguments object."""
    from .chord import SWIFT_ARG_OF_PARAM

    return {arg: getattr(obj, arg, None) for arg in SWIFT_ARG_OF_PARAM.values()}


def _mu_fn(global_step, mu_warmup_steps, mu_decay_steps, mu_peak, mu_valley) -> float:
    """Drop-in for ms-swift's ``mu_schedule_function``: the selected swift-ext shape (or ms-swift's own)."""
    from . import chord

    spec = _CHORD_STATE["spec"]
    if spec:
        trainer = _CHORD_STATE["trainer"]
        total = int(getattr(getattr(trainer, "state", None), "max_steps", 0) or 0)
        mu = chord.runtime_mu(spec, int(global_step), total, {
            "chord_mu_warmup_steps": mu_warmup_steps, "chord_mu_decay_steps": mu_decay_steps,
            "chord_mu_peak": mu_peak, "chord_mu_valley": mu_valley})
    else:
        mu = float(_CHORD_STATE["orig_mu"](global_step, mu_warmup_steps, mu_decay_steps, mu_peak, mu_valley))
    chord.MU_TRACE[int(global_step)] = mu
    if len(chord.MU_TRACE) > 4096:  # nobody reads it without the chord_mu callback: keep it bounded
        del chord.MU_TRACE[min(chord.MU_TRACE)]
    return mu


def _patch_chord() -> None:
    if _CHORD_STATE["patched"]:
        return
    import swift.rlhf_trainers.grpo_trainer as grpo_mod
    import swift.rlhf_trainers.utils as utils_mod

    _CHORD_STATE["orig_mu"] = utils_mod.mu_schedule_function
    orig_loss = grpo_mod.compute_chord_loss

    def compute_chord_loss(trainer, grpo_loss):
        _CHORD_STATE["trainer"] = trainer
        return orig_loss(trainer, grpo_loss)

    compute_chord_loss.__wrapped__ = orig_loss
    utils_mod.mu_schedule_function = _mu_fn
    grpo_mod.compute_chord_loss = compute_chord_loss
    _CHORD_STATE["patched"] = True


def native_mu(args: Any, global_step: int) -> Optional[float]:
    """mu ms-swift's own schedule gives ``global_step`` for these arguments (None when CHORD is off)."""
    values = chord_mu_args(args)
    if not getattr(args, "chord_sft_dataset", None) or any(v is None for v in values.values()):
        return None
    fn = _CHORD_STATE["orig_mu"]
    if fn is None:
        from swift.rlhf_trainers.utils import mu_schedule_function as fn
    return float(fn(global_step, values["chord_mu_warmup_steps"], values["chord_mu_decay_steps"],
                    values["chord_mu_peak"], values["chord_mu_valley"]))


def install_chord(argv: Optional[List[str]] = None, args: Any = None) -> List[str]:
    """Validate the run's ``--chord_*`` arguments and apply ``SWIFT_EXT_CHORD_SCHEDULE`` inside ms-swift.

    Without ``--chord_sft_dataset`` nothing is patched (a set schedule variable is reported and ignored).
    Errors (unset mu arguments, valley > peak, SFT rows without an answer) raise ConfigError before any
    model is loaded. Returns the applied spec in a list (empty when ms-swift's own schedule is used).
    """
    from . import chord

    if args is not None:
        sft = list(getattr(args, "chord_sft_dataset", None) or [])
        values = chord_mu_args(args)
        rl = list(getattr(args, "dataset", None) or [])
    else:
        sft = _caller_attr("chord_sft_dataset")
        if sft is None:
            sft = _argv_values("--chord_sft_dataset", argv)
            values = {a: (_argv_values(f"--{a}", argv) or [None])[0]
                      for a in chord.SWIFT_ARG_OF_PARAM.values()}
            rl = _argv_values("--dataset", argv)
        else:
            values = {a: _caller_attr(a) for a in chord.SWIFT_ARG_OF_PARAM.values()}
            rl = list(_caller_attr("dataset") or [])
        sft = list(sft or [])
    spec = chord.schedule_from_env()
    if not sft:
        if spec:
            logger.warning("%s=%s is set but the run has no --chord_sft_dataset: the schedule is ignored",
                           chord.SCHEDULE_ENV, spec)
        return []
    if args is not None:
        sft_bs = getattr(args, "chord_sft_per_device_train_batch_size", None)
    else:
        sft_bs = _caller_attr("chord_sft_per_device_train_batch_size") \
            or (_argv_values("--chord_sft_per_device_train_batch_size", argv) or [None])[0]
    missing = [f"--{a}" for a, v in values.items() if v is None] if not spec else []
    if sft_bs is None:
        missing.append("--chord_sft_per_device_train_batch_size")
    if missing:
        from .errors import ConfigError

        raise ConfigError(f"CHORD (--chord_sft_dataset is set) needs {', '.join(missing)}; ms-swift has no default "
                          f"for them and would fail with a TypeError mid-training. `swift-ext chord plan` prints a "
                          f"complete, checked set")
    sched = chord.resolve(spec or "warmup_cosine", values)  # ConfigError names unset mu arguments
    for warning in chord.check_values(sched):
        logger.warning("CHORD: %s", warning)
    local_sft = [p for p in sft if os.path.isfile(p)]
    if local_sft:
        report = chord.check_datasets(local_sft, [p for p in rl if os.path.isfile(p)])
        for warning in report.warnings:
            logger.warning("CHORD: %s", warning)
    if spec:
        _patch_chord()
        _CHORD_STATE["spec"] = sched.spec
        logger.info("swift-ext CHORD mu schedule: %s", sched.spec)
        return [sched.spec]
    return []


# -- evaluation capture (GRPO) ---------------------------------------------------------------------
def reward_func_names(trainer: Any) -> List[str]:
    return list(getattr(trainer, "reward_func_names", None) or [])


def _sample_record(sample: Any, rewards: List[Optional[float]], names: List[str]) -> Dict[str, Any]:
    messages = list(getattr(sample, "messages", None) or [])
    completion = messages[-1].get("content") if messages and isinstance(messages[-1], dict) else None
    extra = dict(getattr(sample, "extra", None) or {})
    return {
        "prompt_id": getattr(sample, "prompt_id", None),
        "messages": messages[:-1],
        "completion": completion if isinstance(completion, str) else str(completion),
        "rewards": {n: (None if r is None or r != r else float(r)) for n, r in zip(names, rewards)},
        "solution": extra.get("solution"),
        "images": getattr(sample, "images", None) or None,
    }


def _local_rows(trainer: Any, rewards_per_func: Any, n_local: int) -> List[List[float]]:
    rows = rewards_per_func.detach().float().cpu().tolist()
    if len(rows) == n_local:
        return rows
    rank = int(getattr(getattr(trainer, "accelerator", None), "process_index", 0) or 0)
    return rows[rank * n_local:(rank + 1) * n_local]


def capture_grpo_eval(trainer: Any, sink: Any) -> bool:
    """Wrap ``trainer._compute_rewards_per_func`` so that each evaluation-mode call hands
    ``sink(records)`` one record per completion (prompt messages, completion, per-reward scores,
    solution). Returns False when the trainer is not an ms-swift GRPO trainer. Idempotent per sink."""
    original = getattr(trainer, "_compute_rewards_per_func", None)
    if original is None or not hasattr(trainer, "reward_func_names"):
        return False
    sinks = getattr(trainer, "_swift_ext_eval_sinks", None)
    if sinks is None:
        sinks = trainer._swift_ext_eval_sinks = []

        calls = [0]

        def wrapped(samples, *a, **kw):
            out = original(samples, *a, **kw)
            if not trainer.model.training and not getattr(trainer, "_swift_ext_in_sanity", False):
                names = reward_func_names(trainer)
                rows = _local_rows(trainer, out, len(samples))
                records = [_sample_record(s, r, names) for s, r in zip(samples, rows)]
                calls[0] += 1
                for rec in records:  # prompt ids restart with every eval batch: make the group key unique
                    rec["group"] = f"{calls[0]}:{rec['prompt_id']}"
                for fn in list(trainer._swift_ext_eval_sinks):
                    fn(records)
            return out

        trainer._compute_rewards_per_func = wrapped
    if sink not in sinks:
        sinks.append(sink)
    return True


def grpo_rollout(trainer: Any, rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Generate and score completions for raw dataset ``rows`` with the trainer's own rollout path and
    reward functions, in eval mode (one completion per row: repeat a row k times for k samples)."""
    import copy

    model = trainer.model
    was_training = model.training
    model.eval()
    trainer._swift_ext_in_sanity = True
    try:
        samples = trainer._rollout_samples([copy.deepcopy(r) for r in rows])
        rewards = trainer._compute_rewards_per_func(samples)
        names = reward_func_names(trainer)
        return [_sample_record(s, r, names) for s, r in zip(samples, _local_rows(trainer, rewards, len(samples)))]
    finally:
        trainer._swift_ext_in_sanity = False
        if was_training:
            model.train()


def install_callback_specs(argv: Optional[List[str]] = None) -> List[str]:
    """Register the parametrised callback names this run uses (``--callbacks reward_eval:threshold=0.5``,
    read from the importing arguments object, ``argv`` and ``SWIFT_EXT_CALLBACKS``)."""
    from .callbacks import configure_callback
    from .params import parse_spec

    specs = list(_caller_attr("callbacks") or []) + _argv_values("--callbacks", argv)
    specs += (os.environ.get(CALLBACKS_ENV) or "").split()
    try:
        from swift.callbacks import callbacks_map
    except ImportError:
        return []
    added = []
    for spec in dict.fromkeys(s for s in specs if isinstance(s, str)):
        name, params = parse_spec(spec)
        if not params or spec in callbacks_map or name not in plugins.registry("callback"):
            continue
        callbacks_map[spec] = configure_callback(spec)
        added.append(spec)
    return added
