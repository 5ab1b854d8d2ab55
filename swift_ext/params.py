"""Parameters of rewards and schedules, settable from a command line.

ms-swift has no CLI for reward parameters, so swift-ext puts them in the reward *name*:
``--reward_funcs length_budget:max_tokens=512,mode=soft`` selects the reward ``length_budget`` with two
parameters. The same spelling works for ``swift-ext rewards score --reward``. List values are
separated with ``|`` (``choices=A|B|C``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Sequence, Tuple

from .errors import ParamError

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f"}


@dataclass(frozen=True)
class Param:
    """One declared parameter: default, type, help text, optional choices and bounds."""

    default: Any
    help: str = ""
    type: Optional[type] = None
    choices: Optional[Sequence[Any]] = None
    min: Optional[float] = None
    max: Optional[float] = None
    extra: Dict[str, Any] = field(default_factory=dict)
    #: element type of a list or tuple parameter (``Param((), type=tuple, items=int, min=1)``: ``ks=1|4``);
    #: ``choices``, ``min`` and ``max`` then apply to each element
    items: Optional[type] = None

    @property
    def kind(self) -> type:
        if self.type is not None:
            return self.type
        return type(self.default) if self.default is not None else str

    def coerce(self, name: str, value: Any) -> Any:
        kind = self.kind
        try:
            value = _coerce(kind, value)
        except (TypeError, ValueError) as exc:
            raise ParamError(f"parameter {name}={value!r}: expected {kind.__name__} ({exc})") from None
        if value is None:
            return value
        if self.items is not None and isinstance(value, (list, tuple)):
            element = Param(None, type=self.items, choices=self.choices, min=self.min, max=self.max)
            return type(value)(element.coerce(name, v) for v in value)
        if self.choices is not None and value not in self.choices:
            raise ParamError(f"parameter {name}={value!r}: choose one of {list(self.choices)}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if isinstance(value, float) and not math.isfinite(value):
                raise ParamError(f"parameter {name}={value!r}: must be finite")
            if self.min is not None and value < self.min:
                raise ParamError(f"parameter {name}={value!r}: must be >= {self.min}")
            if self.max is not None and value > self.max:
                raise ParamError(f"parameter {name}={value!r}: must be <= {self.max}")
        return value


def _coerce(kind: type, value: Any) -> Any:
    if value is None:
        return None
    if kind is bool:
        if isinstance(value, bool):
            return value
        s = str(value).strip().lower()
        if s in _TRUE:
            return True
        if s in _FALSE:
            return False
        raise ValueError("not a boolean")
    if kind in (int, float):
        if isinstance(value, bool):
            raise ValueError("not a number")
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError("not an integer")
        if isinstance(value, str) and kind is int:
            f = float(value)
            if not f.is_integer():
                raise ValueError("not an integer")
            return int(f)
        return kind(value)
    if kind in (list, tuple):
        if isinstance(value, str):
            value = value.strip()
            if value.startswith("["):
                value = json.loads(value)
            else:
                value = [v for v in value.split("|") if v != ""]
        return kind(value)
    if kind is dict:
        if isinstance(value, str):
            value = json.loads(value)
        if not isinstance(value, dict):
            raise ValueError("not a mapping")
        return value
    if kind is str:
        return str(value)
    return kind(value)


def parse_spec(spec: str) -> Tuple[str, Dict[str, str]]:
    """Split ``name:key=value,key=value`` into ``(name, {key: value})``.

    >>> parse_spec("length_budget:max_tokens=512,mode=soft")
    ('length_budget', {'max_tokens': '512', 'mode': 'soft'})
    >>> parse_spec("think_format")
    ('think_format', {})
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ParamError(f"empty reward/schedule name {spec!r}")
    name, sep, rest = spec.strip().partition(":")
    params: Dict[str, str] = {}
    if sep:
        for item in rest.split(","):
            if not item.strip():
                continue
            key, eq, value = item.partition("=")
            if not eq or not key.strip():
                raise ParamError(f"{spec!r}: expected key=value after ':', got {item!r}")
            if key.strip() in params:
                raise ParamError(f"{spec!r}: parameter {key.strip()!r} given twice")
            params[key.strip()] = value.strip()
    return name.strip(), params


def format_spec(name: str, params: Dict[str, Any]) -> str:
    """Inverse of :func:`parse_spec` (keys sorted)."""
    if not params:
        return name
    def fmt(v):
        if isinstance(v, (list, tuple)):
            return "|".join(map(str, v))
        return str(v).lower() if isinstance(v, bool) else str(v)
    return name + ":" + ",".join(f"{k}={fmt(v)}" for k, v in sorted(params.items()))


def bind(declared: Dict[str, Param], given: Dict[str, Any], owner: str) -> Dict[str, Any]:
    """Defaults overlaid with ``given``, each value checked and coerced."""
    out = {key: p.default for key, p in declared.items()}
    out.update(bind_given(declared, given, owner))
    return out


def bind_given(declared: Dict[str, Param], given: Dict[str, Any], owner: str) -> Dict[str, Any]:
    """The ``given`` values alone, each checked and coerced (an unknown name is an error)."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        known = ", ".join(sorted(declared)) or "(none)"
        raise ParamError(f"{owner}: unknown parameter(s) {', '.join(unknown)}; known: {known}")
    out = {}
    for key, value in given.items():
        try:
            out[key] = declared[key].coerce(key, value)
        except ParamError as exc:
            raise ParamError(f"{owner}: {exc}") from None
    return out
