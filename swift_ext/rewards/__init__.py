"""Rewards: the base class, the registry view and parametrised names.

``configure("length_budget:max_tokens=512")`` returns a subclass of the registered reward with those
parameters bound and ``__name__`` set to the spelling given, so ms-swift (which logs a reward under
its class name) logs two configurations of one reward apart.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from .. import components, plugins
from ..components import CONFIG_ENV  # noqa: F401  (the variable naming the aliases file)
from ..errors import ParamError
from .base import AsyncReward, Reward, Score, as_text, is_async, split_rows
from .contract import Example

__all__ = ["Reward", "AsyncReward", "Example", "Score", "as_text", "is_async", "split_rows", "configure",
           "get_reward", "reward_names", "aliases", "build"]


def reward_names() -> list:
    return list(plugins.registry("reward"))


def get_reward(name: str) -> type:
    """The registered reward class called ``name`` (no parameters)."""
    return plugins.registry("reward").get(name)


def aliases(path: Optional[str] = None) -> Dict[str, str]:
    """Named reward configurations from the ``SWIFT_EXT_CONFIG`` file (YAML or JSON)::

        rewards:
          strict_iou: {reward: iou, threshold: 0.75}

    Returns ``{alias: "iou:threshold=0.75"}``.
    """
    return components.aliases("reward", path)


def configure(spec: str, *, alias: Optional[str] = None, bases: Tuple[type, ...] = ()) -> type:
    """A reward class for ``spec`` (``name`` or ``name:key=value,...``) with parameters bound.

    The class is named ``alias or spec``; parameter errors are raised here, before any training starts. One
    class per spec (and ``bases``), made once; it pickles by spec (:func:`swift_ext.components.configure`).
    """
    return components.configure("reward", spec, alias=alias, bases=bases)


def build(spec: str, args: Any = None) -> Reward:
    """An instance ready to call: ``build("random:seed=1")(["a", "b"])``."""
    return configure(spec)(args=args)


__all__ += ["ParamError"]
