"""swift-ext rewards in ms-swift's reward registry (``swift.rewards.orms``, read by ``--reward_funcs``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

from .. import plugins
from ..errors import BridgeError, DuplicateNameError, UnknownNameError
from ..params import parse_spec
from ..rewards import aliases, configure, is_async
from .context import REWARDS_ENV

_MARK = "_swift_ext_source"


def get_orms() -> Dict[str, Any]:
    """ms-swift's reward registry. Import errors from inside ms-swift (a broken torchvision, say) propagate."""
    from swift.rewards import orms

    return orms


def swift_reward_class(spec: str, alias: Optional[str] = None) -> type:
    """The class ms-swift will instantiate for ``spec`` (named ``alias`` if given): the configured reward
    with ms-swift's ``ORM`` / ``AsyncORM`` as a second base, so isinstance checks in ms-swift hold. It is the
    one configured class of ``(spec, alias, base)``, made once by :func:`swift_ext.components.configure`, and
    pickles by spec (a fresh process rebuilds it through the same call)."""
    from swift.rewards import ORM, AsyncORM

    plain = configure(spec, alias=alias)
    base = AsyncORM if is_async(plain) else ORM
    cls = plain if issubclass(plain, base) else configure(spec, alias=alias, bases=(base,))
    if cls.__dict__.get(_MARK) is None:
        setattr(cls, _MARK, True)
    return cls


def _register(orms: Dict[str, Any], name: str, spec: str) -> bool:
    existing = orms.get(name)
    if existing is not None:
        if getattr(existing, _MARK, False):
            return False  # installed already (plugin imported twice, dataloader replay)
        base = parse_spec(spec)[0]
        registry = plugins.registry("reward")
        source = registry.source(base) if base in registry else "swift-ext"
        raise DuplicateNameError("reward", name, f"ms-swift's orms ({getattr(existing, '__module__', '?')})", source)
    orms[name] = swift_reward_class(spec, alias=name if name != spec else None)
    return True


def install_rewards(specs: Iterable[str] = (), strict: Iterable[str] = ()) -> List[str]:
    """Register every swift-ext reward, every alias and each parametrised ``spec`` into ms-swift's orms.

    Names in ``strict`` (those from ``SWIFT_EXT_REWARDS``) must name a swift-ext reward, an alias or an
    ms-swift reward: an unknown one is an error with the nearest names, not a silent no-op."""
    orms = get_orms()
    registry = plugins.registry("reward")
    known_aliases = aliases()
    for spec in strict:
        name = parse_spec(spec)[0]
        if name not in registry and name not in known_aliases and name not in orms:
            raise UnknownNameError(f"reward (in {REWARDS_ENV})", name, [*registry, *known_aliases, *orms])
    wanted = [(name, name) for name in registry] + list(known_aliases.items())
    for spec in specs:
        name, params = parse_spec(spec)
        if params and spec not in orms and (name in registry or name in known_aliases):
            wanted.append((spec, spec))
    return [name for name, spec in wanted if _register(orms, name, spec)]


def load_orm_file(path: str) -> List[str]:
    """Import an ms-swift plugin file the way ``--external_plugins`` does; return the orms names it added."""
    from swift.utils import import_external_file

    orms = get_orms()
    before = set(orms)
    if not Path(path).is_file():
        raise BridgeError(f"{path}: no such plugin file")
    import_external_file(os.path.abspath(path))
    return sorted(set(orms) - before)


def get_orm(name: str) -> Any:
    """An ms-swift reward class by its ``--reward_funcs`` name (built-in or from a loaded plugin file)."""
    orms = get_orms()
    if name not in orms:
        raise UnknownNameError("reward", name, orms)
    return orms[name]
