"""swift-ext trainer callbacks in ms-swift's ``swift.callbacks.callbacks_map`` (read by ``--callbacks``)."""

from __future__ import annotations

from typing import Iterable, List

from .. import plugins
from ..components import configure
from ..errors import DuplicateNameError
from ..params import parse_spec


def install_callbacks(specs: Iterable[str] = ()) -> List[str]:
    """Register every swift-ext callback, and each parametrised name in ``specs``
    (``reward_eval:threshold=0.5``), into ``callbacks_map``."""
    from swift.callbacks import callbacks_map

    registry = plugins.registry("callback")
    added = []
    for name, cls in registry.items():
        existing = callbacks_map.get(name)
        if existing is cls:
            continue
        if existing is not None:
            raise DuplicateNameError("callback", name, "ms-swift's callbacks_map", registry.source(name))
        callbacks_map[name] = cls
        added.append(name)
    for spec in dict.fromkeys(specs):
        name, params = parse_spec(spec)
        if params and spec not in callbacks_map and name in registry:
            callbacks_map[spec] = configure("callback", spec)
            added.append(spec)
    return added
