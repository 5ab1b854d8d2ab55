"""Language runners: how a program in one language is run by each backend, and which test cases it supports.

A runner is registered through the ``register_runners`` hook (the built-in Python runner too, from
``swift_ext.default_plugins.runners``). A plugin adds a language by registering a :class:`Runner`::

    from swift_ext import hookimpl
    from swift_ext.sandbox.runners import Runner

    class Cpp(Runner):
        name, fences, main_file = "cpp", ("cpp", "c++"), "main.cpp"
        fusion_language, piston_language = "cpp", "c++"

        def command(self, main):
            return ["/bin/sh", "-c", f"g++ -O2 -o prog {main} && ./prog"]

        def tools(self):
            return ["/usr/bin/g++"]

    @hookimpl
    def register_runners(register):
        register(Cpp())

Stdin/stdout cases work for every runner; call-based and assert-style cases need :meth:`Runner.harness`
(the Python runner implements it with :mod:`swift_ext.sandbox.harness`).
"""

from __future__ import annotations

import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .. import plugins
from ..errors import PluginError
from . import harness as harness_mod


class Runner:
    """How to run one language. Subclass it and register an instance (see the module docstring)."""

    kind = "runner"
    #: the language name (``language=`` of the reward, ``verification_info.language``)
    name: str = ""
    #: code-fence tags that mark this language in a completion (```` ```python ````)
    fences: Tuple[str, ...] = ()
    #: the program's file name in the working directory (local backend)
    main_file: str = "main"
    #: language names of the HTTP backends (None: not supported there)
    fusion_language: Optional[str] = None
    piston_language: Optional[str] = None
    piston_version: str = "*"
    #: test-case modes this runner supports: stdio, call, assert
    modes: Tuple[str, ...] = ("stdio",)

    def command(self, main: str) -> List[str]:
        """argv that runs the program file ``main`` (relative to the working directory), local backend."""
        raise NotImplementedError

    def tools(self) -> List[str]:
        """Executables (absolute paths) the command needs: their folders are mounted read-only in a bwrap
        sandbox when they are not under ``/usr``."""
        return []

    def harness(self, source: str, spec: Dict[str, Any]) -> str:
        """Source of a program that runs ``source`` on one call-based or assert-style case ``spec`` and
        reports the outcome after a nonce read from its first input line (see :mod:`.harness`)."""
        raise NotImplementedError(f"runner {self.name} runs only stdin/stdout tests")

    def parse(self, stdout: str, nonce: str) -> Optional[str]:
        """What a harness reported, or None when it did not finish."""
        return harness_mod.parse(stdout, nonce)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class PythonRunner(Runner):
    """Python 3 with the interpreter given (default: the trainer's own, so its packages are importable)."""

    name = "python"
    fences = ("python", "py", "python3", "Python")
    main_file = "main.py"
    fusion_language = "python"
    piston_language = "python"
    piston_version = "3.*"
    modes = ("stdio", "call", "assert")

    def __init__(self, python: Optional[str] = None):
        self.python = python or sys.executable

    def command(self, main: str) -> List[str]:
        # -I: no user site, no PYTHON* variables, the script's folder not on sys.path; -B: no .pyc files
        return [self.python, "-I", "-B", main]

    def tools(self) -> List[str]:
        return [self.python]

    def harness(self, source: str, spec: Dict[str, Any]) -> str:
        return harness_mod.render(source, spec)


def check_runner(name: str, obj: Any) -> None:
    """What the plugin host checks of a registered runner."""
    if obj.name != name:
        raise PluginError(f"runner object named {obj.name!r} was registered as {name!r}")
    if not callable(getattr(obj, "command", None)):
        raise PluginError(f"runner {name!r} has no command()")


def runner_names() -> List[str]:
    return list(plugins.registry("runner"))


def get_runner(language: str) -> Runner:
    """The runner for ``language`` (its name, or one of its fence tags); UnknownNameError lists the known."""
    reg = plugins.registry("runner")
    if language in reg:
        return reg.get(language)
    low = language.lower()
    for _, runner in reg.items():
        if low == runner.name.lower() or low in (f.lower() for f in runner.fences):
            return runner
    return reg.get(language)  # raises, naming the known runners


def fences_of(language: str) -> Sequence[str]:
    try:
        runner = get_runner(language)
    except Exception:  # an unknown language: its own name is its fence
        return (language,)
    return tuple(dict.fromkeys((runner.name,) + tuple(runner.fences)))


__all__ = ["Runner", "PythonRunner", "get_runner", "runner_names", "check_runner", "fences_of"]
