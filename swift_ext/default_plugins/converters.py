"""Built-in converters (input formats and targets) and rule-based DPO negatives."""

from ..hookspecs import hookimpl


@hookimpl
def register_converters(register):
    from ..convert.formats import BUILTIN_FORMATS
    from ..convert.targets import BUILTIN_TARGETS

    for obj in BUILTIN_FORMATS + BUILTIN_TARGETS:
        register(obj.name, obj)


@hookimpl
def register_negatives(register):
    from ..convert.negatives import BUILTIN_NEGATIVES

    for name, fn in BUILTIN_NEGATIVES.items():
        register(name, fn)
