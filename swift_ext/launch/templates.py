"""Launch recipes: YAML templates in ``templates/`` (one per recipe) and ``--set key=value`` overrides.

A template has ``command`` (the ``swift`` subcommand), ``args`` (flags, without dashes), optional ``env``
and, for GRPO-like recipes, a ``rollout`` block (``mode``: server/colocate/none, ``host``, ``port``,
``group_port``, ``health_timeout``, ``args`` for ``swift rollout``).

    >>> t = {"command": "sft", "args": {"lora_rank": 8}, "env": {}}
    >>> apply_sets(t, ["lora_rank=16", "env.MAX_PIXELS=1003520", "args.learning_rate=1e-4"])["args"]
    {'lora_rank': 16, 'learning_rate': '1e-4'}
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Dict, Iterable, List

import yaml

from ..errors import ConfigError

RECIPES = ("sft", "dpo", "grpo", "chord", "rollout", "export")
TOP_KEYS = ("description", "command", "env", "args", "rollout", "notes")
ROLLOUT_KEYS = ("mode", "host", "port", "group_port", "health_timeout", "args")
COMMANDS = ("sft", "pt", "rlhf", "rollout", "export", "infer", "deploy", "eval", "sample")


def template_path(name_or_path: str) -> Path:
    """A recipe name (``grpo``) -> the shipped ``templates/grpo.yaml``; an existing path is used as is."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    from ..resources import resource_dir

    candidate = resource_dir("templates") / f"{name_or_path}.yaml"
    if not candidate.exists():
        known = sorted(q.stem for q in resource_dir("templates").glob("*.yaml"))
        raise ConfigError(f"no launch template {name_or_path!r}; shipped: {', '.join(known)} "
                          f"(or give a path to a .yaml file)")
    return candidate


def load_template(name_or_path: str) -> Dict[str, Any]:
    """Read and validate a template (file:key errors on bad structure)."""
    path = template_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return validate(data, str(path))


def validate(data: Any, source: str = "<template>") -> Dict[str, Any]:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a launch template is a mapping with command/args/env/rollout")
    unknown = sorted(set(data) - set(TOP_KEYS))
    if unknown:
        raise ConfigError(f"{source}: unknown key {unknown[0]!r}; allowed: {', '.join(TOP_KEYS)}")
    if data.get("command") not in COMMANDS:
        raise ConfigError(f"{source}: 'command' must be one of {', '.join(COMMANDS)}, got {data.get('command')!r}")
    out = copy.deepcopy(data)
    for key in ("args", "env"):
        out[key] = out.get(key) or {}
        if not isinstance(out[key], dict):
            raise ConfigError(f"{source}: {key!r} must be a mapping")
    if "rollout" in out:
        ro = out["rollout"] or {}
        if not isinstance(ro, dict):
            raise ConfigError(f"{source}: 'rollout' must be a mapping")
        bad = sorted(set(ro) - set(ROLLOUT_KEYS))
        if bad:
            raise ConfigError(f"{source}: unknown rollout key {bad[0]!r}; allowed: {', '.join(ROLLOUT_KEYS)}")
        ro["args"] = ro.get("args") or {}
        out["rollout"] = ro
    return out


def parse_value(text: str) -> Any:
    """YAML scalar typing for ``--set`` values: ``true`` -> True, ``16`` -> 16, ``[a, b]`` -> list."""
    try:
        return yaml.safe_load(text) if text != "" else ""
    except yaml.YAMLError:
        return text


def apply_sets(template: Dict[str, Any], sets: Iterable[str]) -> Dict[str, Any]:
    """Apply ``key=value`` overrides. A bare key is a flag (``args.<key>``); dotted keys address
    ``env.X``, ``rollout.port``, ``rollout.args.vllm_max_model_len``. ``key=`` (empty) deletes a flag."""
    out = copy.deepcopy(template)
    for item in sets:
        key, eq, raw = item.partition("=")
        key = key.strip().lstrip("-")
        if not eq or not key:
            raise ConfigError(f"--set {item!r}: expected key=value (e.g. --set lora_rank=16)")
        path = key.split(".")
        if len(path) == 1:
            path = ["args", path[0]]
        if path[0] not in TOP_KEYS:
            raise ConfigError(f"--set {item!r}: unknown section {path[0]!r}; use a flag name, "
                              f"env.NAME, rollout.<{'|'.join(ROLLOUT_KEYS)}> or args.NAME")
        if path[0] == "rollout" and path[1:] and path[1] not in ROLLOUT_KEYS:
            raise ConfigError(f"--set {item!r}: unknown rollout key {path[1]!r}; allowed: {', '.join(ROLLOUT_KEYS)}")
        _assign(out, path, parse_value(raw), item)
    return out


def _assign(tree: Dict[str, Any], path: List[str], value: Any, item: str) -> None:
    node = tree
    for part in path[:-1]:
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"--set {item!r}: {part!r} is not a mapping")
        node = nxt
    if value == "" and path[0] == "env":
        node[path[-1]] = None  # unset: also removes a swift-ext default (MAX_PIXELS)
    elif value == "" and path[0] in ("args", "rollout"):
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value


def list_templates() -> List[Dict[str, str]]:
    from ..resources import resource_dir

    rows = []
    for p in sorted(resource_dir("templates").glob("*.yaml")):
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        rows.append({"name": p.stem, "command": str(data.get("command", "")),
                     "description": str(data.get("description", "")).strip().splitlines()[0:1][0]
                     if data.get("description") else ""})
    return rows
