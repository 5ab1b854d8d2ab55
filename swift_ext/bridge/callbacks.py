"""swift-ext trainer callbacks in ms-swift's ``swift.callbacks.callbacks_map`` (read by ``--callbacks``)."""

from __future__ import annotations

from typing import Iterable, List

from .. import plugins
from ..components import configure
from ..errors import DuplicateNameError, UnknownNameError


def install_callbacks(specs: Iterable[str] = ()) -> List[str]:
    """Register every swift-ext callback, and each parametrised name or alias in ``specs``
    (``reward_eval:threshold=0.5``), into ``callbacks_map``; a bad parameter raises ParamError here."""
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
        if spec in callbacks_map:             # a plain name registered above, or one of ms-swift's own
            continue
        try:                                  # the one spec -> class path: parsed and checked once, cached
            callbacks_map[spec] = configure("callback", spec)
        except UnknownNameError:              # not a swift-ext callback: ms-swift says what it does not know
            continue
        added.append(spec)
    return added
