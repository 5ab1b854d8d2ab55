"""The built-in agent tools (``python``, ``calculator``, ``zoom``), registered through the same hook as a plugin's."""

from ..hookspecs import hookimpl


@hookimpl
def register_tools(register):
    from ..tools.calculator import Calculator
    from ..tools.python import Python
    from ..tools.zoom import Zoom

    for cls in (Python, Calculator, Zoom):
        register(cls)
