"""The converter kinds and views on the ``converter`` and ``negative`` plugin registries
(built-ins: ``default_plugins.converters``).

Converters share one namespace: input formats (:class:`InputFormat`) and targets (:class:`Target`).
Negatives are callables ``fn(text, rng) -> str | None``.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional

from .. import plugins
from ..errors import PluginError, UnknownNameError


class InputFormat:
    """A named reader: ``detect(row) -> bool`` and ``read(row) -> canonical row`` (raises RowError)."""

    kind = "format"

    def __init__(self, name: str, detect: Callable[[Dict[str, Any]], bool],
                 read: Callable[[Dict[str, Any]], Dict[str, Any]], help: str = "", priority: int = 50):
        self.name, self.detect, self.read, self.help, self.priority = name, detect, read, help, priority

    def __repr__(self) -> str:
        return f"InputFormat({self.name!r})"


class Target:
    """A named writer ``fn(canonical_row, index, options) -> [output rows]`` (raises RowError).

    ``task``: the ``swift-ext validate --task`` whose rules every output row must pass (rows that fail are
    rejected with the validator's reason); None (a plugin's default) skips that check. ``output``: the
    input format that reads the output rows back (``swift`` messages, ``trl_preference``). ``fast``: input
    format name -> ``fn(raw_row, converter) -> [output rows] | None``, a fused path for plain rows that
    gives exactly what the generic path gives, or None to send the row to the generic path."""

    kind = "target"

    def __init__(self, name: str, fn: Callable, help: str = "", needs_pool: bool = False,
                 task: Optional[str] = None, output: str = "swift", fast: Optional[Dict[str, Callable]] = None):
        self.name, self.fn, self.help, self.needs_pool = name, fn, help, needs_pool
        self.task, self.output, self.fast = task, output, dict(fast or {})

    def __call__(self, c, index, opts):
        return self.fn(c, index, opts)

    def __repr__(self) -> str:
        return f"Target({self.name!r})"


def check_converter(name: str, obj: Any) -> None:
    """What the plugin host checks of a registered format or target (after its type)."""
    if obj.name != name:
        raise PluginError(f"converter object named {obj.name!r} was registered as {name!r}")


def check_negative(name: str, obj: Any) -> None:
    """What the plugin host checks of a registered negative generator."""
    if not callable(obj):
        raise PluginError(f"negative {name!r} must be callable fn(text, rng) -> str | None, got {obj!r}")


def converters():
    return plugins.registry("converter").items()


def get(name: str, cls: type) -> Any:
    """The registered converter ``name`` that is an instance of ``cls`` (format or target)."""
    reg = plugins.registry("converter")
    obj = reg._items.get(name)
    if not isinstance(obj, cls):
        known = [n for n, o in reg.items() if isinstance(o, cls)]
        raise UnknownNameError("input format" if cls is InputFormat else "target", name, known)
    return obj


def negatives():
    return plugins.registry("negative")
