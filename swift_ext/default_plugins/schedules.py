"""Built-in CHORD mu shapes: ``warmup_cosine`` (ms-swift's own), ``constant``, ``linear_decay``, ``step``.

The shapes live in :mod:`swift_ext.chord`; ``swift-ext chord plan --shape NAME`` and
``SWIFT_EXT_CHORD_SCHEDULE=NAME:key=value`` select them.
"""

from swift_ext.hookspecs import hookimpl


@hookimpl
def register_schedules(register):
    from swift_ext.chord import BUILTIN_SHAPES

    for name, fn in BUILTIN_SHAPES.items():
        register(name, fn)
