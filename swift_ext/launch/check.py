"""Checks of a :class:`~swift_ext.launch.plan.LaunchPlan` before anything starts (``swift-ext launch``).

A typo'd flag, a missing dataset file or a generation batch GRPO cannot split otherwise reach ``swift`` and
fail only after the rollout server has spent minutes loading. :func:`check_plan` reads every step's argv:

* each ``--flag`` must be a field of the installed ms-swift's argument dataclass for that subcommand
  (:func:`swift_ext.bridge.arguments.swift_fields`; the nearest name is suggested, and a ``swift rollout`` flag given to the trainer,
  or the reverse, is named as such);
* local dataset files (``--dataset``, ``--val_dataset``, ``--chord_sft_dataset``) must exist; hub ids are
  left alone;
* GRPO batch arithmetic is :func:`swift_ext.chord.count_steps` (the checks ``swift-ext chord plan`` makes).
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


def grpo_arithmetic(flags: Mapping[str, List[str]], processes: int) -> None:
    """GRPO's batch arithmetic for this many trainer processes (ms-swift 4.6 defaults for missing flags)."""
    if (flags.get("rlhf_type") or [""])[0] != "grpo":
        return
    from ..chord import count_steps

    count_steps(10 ** 9,  # the row count is not known here: the arithmetic is what counts
                _int(flags, "per_device_train_batch_size", 1), _int(flags, "gradient_accumulation_steps", 1),
                processes, _int(flags, "num_generations", 8), 1.0, _int(flags, "steps_per_generation", None),
                _int(flags, "generation_batch_size", None), _int(flags, "num_iterations", 1))


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
                grpo_arithmetic(dict(flags), _processes(step))
            except ConfigError as exc:
                errors.append(f"{step.name}: {exc}")
    return errors, warnings
