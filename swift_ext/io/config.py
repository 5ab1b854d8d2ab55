"""Configuration files: YAML or JSON mappings, YAML read with a bound on alias expansion."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

from ..errors import ConfigError


def load_mapping(path: str) -> Dict[str, Any]:
    """Read a YAML or JSON file that must hold a mapping."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            data = load_yaml(text)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except Exception as exc:
        raise ConfigError(f"{path}: not valid {'JSON' if p.suffix.lower() == '.json' else 'YAML'}: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


#: a YAML file may expand (aliases followed) to at most this many nodes: a 1 KB "billion laughs" file
#: expands to billions, and reading it would hang every process that loads the file
YAML_MAX_NODES = 100_000


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` that refuses alias bombs and recursive aliases (ConfigError) instead of hanging.

    >>> load_yaml("a: &x [1, 2]\\nb: *x")
    {'a': [1, 2], 'b': [1, 2]}
    """
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        size = _expanded_size(node, {}, set())
        if size > YAML_MAX_NODES:
            raise ConfigError(f"YAML aliases expand this file to {size:,} nodes (limit {YAML_MAX_NODES:,}): "
                              f"refusing to read it")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _expanded_size(node: Any, memo: Dict[int, int], active: set) -> int:
    key = id(node)
    if key in memo:
        return memo[key]
    if key in active:
        raise ConfigError("a YAML alias refers to itself (recursive structure): refusing to read it")
    active.add(key)
    value = node.value
    if isinstance(value, list):  # sequence: nodes; mapping: (key, value) node pairs
        total = 1
        for item in value:
            for child in (item if isinstance(item, tuple) else (item,)):
                total += _expanded_size(child, memo, active)
                if total > YAML_MAX_NODES:
                    break
    else:
        total = 1
    active.discard(key)
    memo[key] = total
    return total


