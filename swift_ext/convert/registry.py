"""Views on the ``converter`` and ``negative`` plugin registries (built-ins: ``default_plugins.converters``).

Converters share one namespace: input formats (:class:`.formats.InputFormat`) and targets
(:class:`.targets.Target`). Negatives are callables ``fn(text, rng) -> str | None``.
"""

from __future__ import annotations

from typing import Any

from .. import plugins
from ..errors import PluginError, UnknownNameError


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
        raise UnknownNameError("input format" if cls.__name__ == "InputFormat" else "target", name, known)
    return obj


def negatives():
    return plugins.registry("negative")
