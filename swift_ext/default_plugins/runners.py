"""The built-in code-sandbox runner (Python), registered through the same hook as a plugin's."""

from ..hookspecs import hookimpl


@hookimpl
def register_runners(register):
    from ..sandbox.runners import PythonRunner

    register(PythonRunner())
