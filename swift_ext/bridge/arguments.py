"""ms-swift's command-line arguments, read from the installed ms-swift: the flag names of each ``swift``
subcommand (its argument dataclass in ``swift.arguments``), and why a flag is not one of them.

ms-swift is imported in a subprocess (importing it takes ~10 s and loads torch, which the launcher and
``migrate`` never need); the result is cached per ms-swift version under ``~/.cache/swift-ext``.
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, FrozenSet, List, Mapping, Optional, Tuple

from ..errors import ConfigError

# swift subcommand -> argument dataclass in swift.arguments
ARGUMENT_CLASSES = {"sft": "SftArguments", "pt": "PretrainArguments", "rlhf": "RLHFArguments",
                    "rollout": "RolloutArguments", "export": "ExportArguments", "infer": "InferArguments",
                    "deploy": "DeployArguments", "eval": "EvalArguments", "sample": "SamplingArguments"}

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
