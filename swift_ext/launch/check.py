"""Checks of a :class:`~swift_ext.launch.plan.LaunchPlan` before anything starts (``swift-ext launch``).

A typo'd flag, a missing dataset file or a generation batch GRPO cannot split otherwise reach ``swift`` and
fail only after the rollout server has spent minutes loading. :func:`check_plan` reads every step's argv:

* each ``--flag`` must be a field of the installed ms-swift's argument dataclass for that subcommand
  (:func:`swift_fields`; the nearest name is suggested, and a ``swift rollout`` flag given to the trainer,
  or the reverse, is named as such);
* local dataset files (``--dataset``, ``--val_dataset``, ``--chord_sft_dataset``) must exist; hub ids are
  left alone;
* GRPO batch arithmetic is :func:`swift_ext.chord.count_steps` (the checks ``swift-ext chord plan`` makes).
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

from ..errors import ConfigError
from .migrate import split_flags
from .plan import LaunchPlan, Step

# swift subcommand -> argument dataclass in swift.arguments
ARGUMENT_CLASSES = {"sft": "SftArguments", "pt": "PretrainArguments", "rlhf": "RLHFArguments",
                    "rollout": "RolloutArguments", "export": "ExportArguments", "infer": "InferArguments",
                    "deploy": "DeployArguments", "eval": "EvalArguments", "sample": "SamplingArguments"}
DATASET_FLAGS = ("dataset", "val_dataset", "chord_sft_dataset")
LOCAL_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".txt", ".parquet", ".arrow")

_PROBE = """
import dataclasses, json, sys
import swift.arguments as a
out = {}
for cmd, name in json.loads(sys.argv[1]).items():
    cls = getattr(a, name, None)
    if cls is None:
        continue
    names = set()
    for f in dataclasses.fields(cls):
        names.add(f.name)
        aliases = f.metadata.get("aliases", []) if f.metadata else []
        names.update(a.lstrip("-") for a in ([aliases] if isinstance(aliases, str) else aliases))
        if "bool" in str(f.type) and f.default is True:
            names.add("no_" + f.name)  # HfArgumentParser's negation of a True-by-default bool
    out[cmd] = sorted(names)
print("SWIFT_FIELDS=" + json.dumps(out))
"""


def _swift_version() -> Optional[Tuple[str, str]]:
    """(version, location) of the installed ms-swift without importing it, or None when it is absent."""
    import importlib.metadata
    import importlib.util

    spec = importlib.util.find_spec("swift")
    if spec is None or not spec.submodule_search_locations:
        return None
    try:
        version = importlib.metadata.version("ms-swift")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return version, str(list(spec.submodule_search_locations)[0])


def _cache_file(version: str, location: str) -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "swift-ext"
    stamp = int(os.stat(os.path.join(location, "arguments")).st_mtime)
    return root / f"swift-fields-v2-{version}-{stamp}.json"


def swift_fields(python: Optional[str] = None) -> Optional[Dict[str, FrozenSet[str]]]:
    """Flag names per swift subcommand, from the installed ms-swift's argument dataclasses
    (``swift.arguments.RLHFArguments`` etc.), or None when ms-swift is not installed here.

    ms-swift is imported lazily, in a subprocess with the CPU torchvision shim (importing it takes ~10 s and
    loads torch, which the launcher itself never needs); the result is cached per ms-swift version under
    ``~/.cache/swift-ext``.
    """
    found = _swift_version()
    if found is None:
        return None
    cache = _cache_file(*found)
    try:
        data = json.loads(cache.read_text())
    except (OSError, ValueError):
        data = _probe(python or sys.executable)
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data))
            os.replace(tmp, cache)
        except OSError:
            pass
    return {cmd: frozenset(names) for cmd, names in data.items()}


def _probe(python: str) -> Dict[str, List[str]]:
    from .. import cpu_compat

    env = cpu_compat.subprocess_env(os.environ)
    res = subprocess.run([python, "-c", _PROBE, json.dumps(ARGUMENT_CLASSES)], env=env, capture_output=True,
                         text=True, timeout=600)
    line = next((x for x in res.stdout.splitlines() if x.startswith("SWIFT_FIELDS=")), None)
    if line is None:
        tail = "\n".join(res.stderr.splitlines()[-15:])
        raise ConfigError(f"could not read ms-swift's argument dataclasses (import swift.arguments failed); "
                          f"pass --no-check to launch without the flag check. Last lines:\n{tail}")
    return json.loads(line[len("SWIFT_FIELDS="):])


def _command_of(argv: Sequence[str]) -> Tuple[Optional[str], List[str]]:
    """(swift subcommand, its flags) of a step's argv ``[*swift, command, *flags]``."""
    for i, tok in enumerate(argv):
        if tok in ARGUMENT_CLASSES or tok in ("merge-lora", "app", "web-ui"):
            return tok, list(argv[i + 1:])
    return None, []


def unknown_flag(name: str, command: str, fields: Mapping[str, FrozenSet[str]]) -> Optional[str]:
    """Why ``--name`` is not a flag of ``swift <command>`` (with the nearest name), or None when it is.

    >>> f = {"rlhf": frozenset({"lora_rank", "beta"}), "rollout": frozenset({"port", "vllm_max_model_len"})}
    >>> unknown_flag("lora_rnk", "rlhf", f)
    '--lora_rnk is not a flag of `swift rlhf`; did you mean --lora_rank?'
    >>> unknown_flag("port", "rlhf", f)
    '--port is a `swift rollout` flag, not one of `swift rlhf`: give it to the rollout server with --set rollout.args.port=VALUE'
    """
    own = fields.get(command)
    if own is None:
        return None
    key = name.replace("-", "_")
    if key in own:
        return None
    if command == "rlhf" and key in fields.get("rollout", ()):
        return (f"--{name} is a `swift rollout` flag, not one of `swift rlhf`: give it to the rollout server with "
                f"--set rollout.args.{key}=VALUE")
    if command == "rollout" and key in fields.get("rlhf", ()):
        return f"--{name} is a trainer flag (`swift rlhf`), not one of `swift rollout`"
    near = difflib.get_close_matches(key, sorted(own), n=1, cutoff=0.6)
    return f"--{name} is not a flag of `swift {command}`" + (f"; did you mean --{near[0]}?" if near else "")


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
    """(errors, warnings) for ``plan``; ``fields`` as from :func:`swift_fields` (None: flags not checked).
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
