"""Checks of a :class:`~swift_ext.launch.plan.LaunchPlan` before anything starts (``swift-ext launch``).

A typo'd flag, a missing dataset file or a generation batch GRPO cannot split otherwise reach ``swift`` and
fail only after the rollout server has spent minutes loading. :func:`check_plan` reads every step's argv:

* each ``--flag`` must be a field of the installed ms-swift's argument dataclass for that subcommand
  (:func:`swift_ext.bridge.arguments.swift_fields`; the nearest name is suggested, and a ``swift rollout`` flag given to the trainer,
  or the reverse, is named as such);
* local dataset files (``--dataset``, ``--val_dataset``, ``--chord_sft_dataset``) must exist; hub ids are
  left alone;
* GRPO batch arithmetic for the run's world size (``NPROC_PER_NODE`` x ``NNODES``) is
  :func:`swift_ext.chord.count_steps` (the checks ``swift-ext chord plan`` makes, with the rows of local
  ``.jsonl`` datasets), plus the evaluation batch ms-swift checks when there is validation data
  (``swift/rlhf_trainers/args_mixin.py`` L232-243: the global eval batch must be divisible by
  ``num_generations_eval``; ``swift/rlhf_trainers/grpo_trainer.py`` L124-129: the validation set must hold one
  global eval batch of prompts). A world size no batch fits is refused here, before a rollout server loads
  for minutes and the trainer fails on its first step.
"""

from __future__ import annotations

import os
from typing import FrozenSet, List, Mapping, Optional, Sequence, Tuple

from ..bridge.arguments import ARGUMENT_CLASSES, unknown_flag
from ..errors import ConfigError
from .migrate import split_flags
from .plan import LaunchPlan, Step

DATASET_FLAGS = ("dataset", "val_dataset", "chord_sft_dataset")
LOCAL_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".txt", ".parquet", ".arrow")


def _command_of(argv: Sequence[str]) -> Tuple[Optional[str], List[str]]:
    """(swift subcommand, its flags) of a step's argv ``[*swift, command, *flags]``."""
    for i, tok in enumerate(argv):
        if tok in ARGUMENT_CLASSES or tok in ("merge-lora", "app", "web-ui"):
            return tok, list(argv[i + 1:])
    return None, []


def _looks_local(value: str, cwd: str) -> bool:
    """A path, not a hub id: ``./x``, ``/x``, ``~/x``, a data-file suffix, or ``dir/x`` with ``dir`` here."""
    v = value.split("#", 1)[0]
    return (v.startswith(("/", "./", "../", "~")) or v.lower().endswith(LOCAL_SUFFIXES)
            or "/" in v and os.path.isdir(os.path.join(cwd, v.split("/", 1)[0])))


def missing_datasets(flags: Sequence[Tuple[str, List[str]]], cwd: str) -> List[str]:
    """Local dataset files that do not exist (``path#N`` sampling suffixes allowed; hub ids untouched)."""
    out = []
    for name, values in flags:
        if name not in DATASET_FLAGS:
            continue
        for value in values:
            if not _looks_local(value, cwd):
                continue
            path = os.path.expanduser(value.split("#", 1)[0])
            if not os.path.exists(os.path.join(cwd, path)):
                out.append(f"--{name} {value}: no such file (relative to {cwd})")
    return out


def _int(flags: Mapping[str, List[str]], name: str, default: Optional[int]) -> Optional[int]:
    values = flags.get(name)
    if not values:
        return default
    try:
        return int(values[0])
    except ValueError:
        raise ConfigError(f"--{name} {values[0]!r}: expected an integer") from None


#: row counting is skipped for local files larger than this (the arithmetic is still checked)
COUNT_LIMIT = 256 << 20


def local_rows(values: Sequence[str], cwd: str) -> Optional[int]:
    """Rows of local ``.jsonl`` datasets (non-blank lines), or None when any value is something else (a hub id,
    a ``#N`` sample, another format) or too large to count quickly. An upper bound of what ms-swift trains on."""
    total = 0
    for value in values:
        path = os.path.join(cwd, os.path.expanduser(value))
        if "#" in value or not value.lower().endswith(".jsonl") or not os.path.isfile(path):
            return None
        if os.path.getsize(path) > COUNT_LIMIT:
            return None
        with open(path, "rb") as fh:
            total += sum(1 for line in fh if line.strip())
    return total


def _float(flags: Mapping[str, List[str]], name: str, default: float) -> float:
    values = flags.get(name)
    try:
        return float(values[0]) if values else default
    except ValueError:
        raise ConfigError(f"--{name} {values[0]!r}: expected a number") from None


def grpo_arithmetic(flags: Mapping[str, List[str]], processes: int, cwd: Optional[str] = None) -> None:
    """GRPO's batch arithmetic for this many trainer processes (ms-swift 4.6 defaults for missing flags);
    with ``cwd``, local ``.jsonl`` datasets are counted too."""
    if (flags.get("rlhf_type") or [""])[0] != "grpo":
        return
    from ..chord import count_steps

    rows = local_rows(flags.get("dataset") or [], cwd) if cwd and flags.get("dataset") else None
    split = _float(flags, "split_dataset_ratio", 0.0) if not flags.get("val_dataset") else 0.0
    generations = _int(flags, "num_generations", 8)
    count_steps(rows or 10 ** 9,  # unknown row count: the arithmetic is what counts
                _int(flags, "per_device_train_batch_size", 1), _int(flags, "gradient_accumulation_steps", 1),
                processes, generations, 1.0, _int(flags, "steps_per_generation", None),
                _int(flags, "generation_batch_size", None), _int(flags, "num_iterations", 1),
                split_dataset_ratio=split if rows else 0.0)
    # evaluation (ms-swift evaluates when there is validation data and eval_strategy, default save_strategy,
    # is not "no")
    evaluates = bool(flags.get("val_dataset")) or split > 0
    strategy = (flags.get("eval_strategy") or flags.get("save_strategy") or ["steps"])[0]
    if not evaluates or strategy == "no":
        return
    eval_batch = _int(flags, "per_device_eval_batch_size", 1)
    eval_gens = _int(flags, "num_generations_eval", None) or generations
    if (eval_batch * processes) % eval_gens:
        valid = [n for n in range(1, eval_batch * processes + 1) if (eval_batch * processes) % n == 0]
        raise ConfigError(f"the global eval batch ({processes} processes x per_device_eval_batch_size {eval_batch}) "
                          f"must be divisible by num_generations_eval ({eval_gens}); valid values: {valid} "
                          f"(ms-swift 4.6 swift/rlhf_trainers/args_mixin.py:232)")
    val_rows = local_rows(flags.get("val_dataset") or [], cwd) if cwd and flags.get("val_dataset") else None
    need = eval_batch * processes // eval_gens
    if val_rows is not None and val_rows < need:
        raise ConfigError(f"the validation set has {val_rows} rows but one global eval batch needs {need} prompts "
                          f"({processes} processes x per_device_eval_batch_size {eval_batch} / num_generations_eval "
                          f"{eval_gens}; ms-swift 4.6 swift/rlhf_trainers/grpo_trainer.py:126)")


def _processes(step: Step) -> int:
    return int(step.env.get("NPROC_PER_NODE", "1")) * int(step.env.get("NNODES", "1"))


def check_plan(plan: LaunchPlan, *, fields: Optional[Mapping[str, FrozenSet[str]]] = None,
               cwd: Optional[str] = None, render_only: bool = False) -> Tuple[List[str], List[str]]:
    """(errors, warnings) for ``plan``; ``fields`` as from :func:`swift_ext.bridge.arguments.swift_fields` (None: flags not checked).
    ``render_only`` (``--dry-run``/``--json``: the script may run elsewhere): missing files only warn."""
    cwd = cwd or os.getcwd()
    errors: List[str] = []
    warnings: List[str] = []
    if fields is None:
        warnings.append("ms-swift is not installed here: flag names were not checked against its arguments")
    for step in plan.steps:
        command, rest = _command_of(step.argv)
        if command is None:
            continue
        flags = split_flags(rest)
        if fields is not None:
            errors += [f"{step.name}: {why}" for why in
                       (unknown_flag(name, command, fields) for name, _ in flags) if why]
        (warnings if render_only else errors).extend(f"{step.name}: {why}" for why in missing_datasets(flags, cwd))
        if command == "rlhf":
            try:
                grpo_arithmetic(dict(flags), _processes(step), cwd)
            except ConfigError as exc:
                errors.append(f"{step.name}: {exc}")
    return errors, warnings
