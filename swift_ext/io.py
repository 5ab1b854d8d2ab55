"""Small file helpers shared by the CLI and the library: atomic writes, JSON/YAML mappings, JSONL rows."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator, Tuple

from .errors import ConfigError, SwiftExtError


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


class BadLine(SwiftExtError):
    def __init__(self, path: str, lineno: int, reason: str):
        self.path, self.lineno, self.reason = path, lineno, reason
        super().__init__(f"{path}:{lineno}: {reason}")


def iter_jsonl(path: str) -> Iterator[Tuple[int, Any]]:
    """(line number, parsed object) for each non-blank line; a bad line raises BadLine with file:line."""
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise BadLine(path, lineno, f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
            try:
                yield lineno, json.loads(text)
            except json.JSONDecodeError as exc:
                raise BadLine(path, lineno, f"invalid JSON: {exc.msg} (column {exc.colno})") from None


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "w", encoding: str = "utf-8"):
    """Write to a temporary file next to ``path`` and rename it into place only on success."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=str(target.parent))
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": encoding})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_png(fig, path: str) -> str:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png")
    plt.close(fig)
    return path
