"""Rewards: the base class, the registry view and parametrised names.

``configure("length_budget:max_tokens=512")`` returns a subclass of the registered reward with those
parameters bound and ``__name__`` set to the spelling given, so ms-swift (which logs a reward under
its class name) logs two configurations of one reward apart.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional

from .. import plugins
from ..errors import ConfigError, ParamError, PluginError
from ..params import bind, parse_spec
from .base import AsyncReward, Reward, Score, as_text, is_async, split_rows

__all__ = ["Reward", "AsyncReward", "Score", "as_text", "is_async", "split_rows", "configure",
           "get_reward", "reward_names", "aliases", "build"]

CONFIG_ENV = "SWIFT_EXT_CONFIG"


def _validate(name: str, obj: Any) -> None:
    if not (isinstance(obj, type) and issubclass(obj, Reward)):
        raise PluginError(f"reward {name!r} must be a subclass of swift_ext.rewards.Reward, got {obj!r}")
    if obj.name and obj.name != name:
        raise PluginError(f"reward class {obj.__name__} has name={obj.name!r} but was registered as {name!r}")
    for key, param in obj.params.items():  # defaults must pass their own checks
        if param.default is not None:
            param.coerce(f"{name}.{key}", param.default)


plugins.set_validator("reward", _validate)


def reward_names() -> list:
    return list(plugins.registry("reward"))


def get_reward(name: str) -> type:
    """The registered reward class called ``name`` (no parameters)."""
    return plugins.registry("reward").get(name)


def aliases(path: Optional[str] = None) -> Dict[str, str]:
    """Named configurations from the ``SWIFT_EXT_CONFIG`` file (YAML or JSON)::

        rewards:
          strict_iou: {reward: iou, threshold: 0.75}

    Returns ``{alias: "iou:threshold=0.75"}``.
    """
    path = path or os.environ.get(CONFIG_ENV)
    if not path:
        return {}
    from ..io import load_mapping
    from ..params import format_spec

    data = load_mapping(path)
    out = {}
    for alias, cfg in (data.get("rewards") or {}).items():
        if not isinstance(cfg, dict) or "reward" not in cfg:
            raise ConfigError(f"{path}: rewards.{alias} needs a 'reward:' key naming a registered reward")
        cfg = dict(cfg)
        out[alias] = format_spec(cfg.pop("reward"), cfg)
    return out


def configure(spec: str, *, alias: Optional[str] = None) -> type:
    """A reward class for ``spec`` (``name`` or ``name:key=value,...``) with parameters bound.

    The class is named ``alias or spec``; parameter errors are raised here, before any training starts.
    """
    name, raw = parse_spec(spec)
    known = aliases()
    if name in known and name not in plugins.registry("reward"):
        if raw:
            base_name, base_raw = parse_spec(known[name])
            raw = {**base_raw, **raw}
            name = base_name
        else:
            return configure(known[name], alias=alias or spec)
    cls = get_reward(name)
    params = bind(cls.params, raw, owner=f"reward {name}")  # raises ParamError on bad values
    bound = {k: v for k, v in params.items() if k in raw}
    label = alias or spec
    return type(label, (cls,), {"_bound_params": bound, "_spec": (spec, alias), "__module__": cls.__module__,
                                "__qualname__": label, "__doc__": cls.__doc__, "__reduce__": _reduce})


def _reduce(self):
    """Pickle a configured reward by its spec (its class is made at run time, so not importable by name)."""
    spec, alias = type(self)._spec
    return _rebuild, (spec, alias, self.args)


def _rebuild(spec: str, alias: Optional[str], args: Any) -> Reward:
    return configure(spec, alias=alias)(args=args)


def build(spec: str, args: Any = None) -> Reward:
    """An instance ready to call: ``build("random:seed=1")(["a", "b"])``."""
    return configure(spec)(args=args)


__all__ += ["ParamError"]
