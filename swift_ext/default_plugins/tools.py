"""The built-in agent tools (``python``, ``calculator``), registered through the same hook as a plugin's."""

from ..hookspecs import hookimpl


@hookimpl
def register_tools(register):
    from ..tools.calculator import Calculator
    from ..tools.python import Python

    for cls in (Python, Calculator):
        register(cls)
