"""The Tool base class: what the agent scheduler calls when a model writes a tool call.

A tool is a small :class:`~swift_ext.components.Component` (kind ``tool``): ``name``, a ``description`` and the
JSON schema of its call's ``arguments`` (so a dataset's ``tools`` column can be written from it, see
:meth:`Tool.schema`), and :meth:`Tool.__call__` that runs one call. ``params`` stay the component's *spec*
parameters (the python tool's ``timeout``), set as ``python:timeout=5`` through :func:`swift_ext.components.configure`
or a ``tools:`` alias in the ``SWIFT_EXT_CONFIG`` file.

A call never raises: what goes wrong (bad arguments, a crash, the deadline) is a ``ToolResult(ok=False, text=...)``
the model reads in its next turn. Third-party tools register through the ``register_tools`` hook::

    from swift_ext import hookimpl
    from swift_ext.tools.base import Tool, ToolResult

    class Echo(Tool):
        '''Say the text back.'''
        name = "echo"
        description = "Repeat the given text."
        arguments = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}

        def run(self, arguments, context):
            return ToolResult(str(arguments["text"]))

    @hookimpl
    def register_tools(register):
        register(Echo)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, List, Optional

from ..components import Component, configure

logger = logging.getLogger("swift_ext.tools")


@dataclass
class ToolResult:
    """What one call gave: ``text`` for the model, ``images`` (image file paths) shown to it as images, and
    ``ok`` (False: the call failed, ``text`` says why)."""

    text: str
    images: list = field(default_factory=list)
    ok: bool = True


@dataclass
class ToolContext:
    """Where a call runs: the trajectory's dataset ``row`` (``images``, ``solution``...), its id, a per-trajectory
    ``state`` dict (a python session, say), a per-trajectory ``workdir`` a tool may write files (crops) into, and
    the call's ``deadline`` (``time.monotonic()`` value; None: the tool's own limit only)."""

    row: dict = field(default_factory=dict)
    trajectory_id: str = ""
    state: dict = field(default_factory=dict)
    workdir: str = ""
    deadline: Optional[float] = None

    def seconds_left(self, default: float) -> float:
        """``default`` capped by the time left to the deadline (0 when it has passed)."""
        if self.deadline is None:
            return default
        return max(0.0, min(default, self.deadline - time.monotonic()))


class Tool(Component):
    """Base of every tool. Subclasses set ``name``, ``description``, ``arguments`` (a JSON schema object) and
    implement :meth:`run`; :meth:`__call__` checks the arguments' required keys and turns anything :meth:`run`
    raises into an error result."""

    kind: ClassVar[str] = "tool"
    description: ClassVar[str] = ""
    #: JSON schema of the call's arguments (``{"type": "object", "properties": {...}, "required": [...]}``)
    arguments: ClassVar[Dict[str, Any]] = {"type": "object", "properties": {}}

    def __init__(self, **params: Any):
        self.bind_params(params)
        self.setup()

    def schema(self) -> Dict[str, Any]:
        """The OpenAI function schema of this tool (one entry of a dataset's ``tools`` column)."""
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": self.arguments}}

    def run(self, arguments: Dict[str, Any], context: ToolContext) -> ToolResult:
        raise NotImplementedError

    def check_arguments(self, arguments: Any) -> Optional[str]:
        """Why ``arguments`` cannot be used (None: they can): not an object, a required key missing, a key
        the schema does not know (when it sets ``additionalProperties: false``)."""
        if not isinstance(arguments, dict):
            return f"arguments must be a JSON object, got {type(arguments).__name__}"
        schema = self.arguments or {}
        missing = [k for k in schema.get("required", ()) if k not in arguments]
        if missing:
            return f"missing required argument{'s' if len(missing) > 1 else ''}: {', '.join(missing)}"
        if schema.get("additionalProperties") is False:
            extra = sorted(set(arguments) - set(schema.get("properties", {})))
            if extra:
                return f"unknown argument{'s' if len(extra) > 1 else ''}: {', '.join(extra)}"
        return None

    def __call__(self, arguments: dict, context: ToolContext) -> ToolResult:
        why = self.check_arguments(arguments)
        if why is not None:
            return ToolResult(f"error: {self.name}: {why}", ok=False)
        try:
            got = self.run(arguments, context)
        except Exception as exc:  # a tool's bug is the model's error message, never the trainer's exception
            logger.debug("tool %s raised", self.name, exc_info=True)
            return ToolResult(f"error: {self.name} failed: {type(exc).__name__}: {exc}", ok=False)
        if not isinstance(got, ToolResult):
            return ToolResult(f"error: {self.name} returned {type(got).__name__}, not a ToolResult", ok=False)
        return got

    @classmethod
    def summary(cls) -> str:
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else cls.description


def tool_names() -> List[str]:
    """Registered tool names."""
    from .. import plugins

    return list(plugins.registry("tool"))


def build_tool(spec: str) -> Tool:
    """The tool for ``spec`` (``python``, ``python:timeout=5`` or an alias from ``SWIFT_EXT_CONFIG``'s
    ``tools:`` section), its parameters checked now."""
    return configure("tool", spec)()


def tool_schemas(specs) -> List[Dict[str, Any]]:
    """The OpenAI function schemas of the tools ``specs`` (names, specs or aliases; ``"python+calculator"`` too):
    a dataset's ``tools`` column, matching what the scheduler checks calls against."""
    if isinstance(specs, str):
        specs = [p.strip() for p in specs.replace("|", "+").split("+") if p.strip()]
    return [build_tool(spec).schema() for spec in specs]


__all__ = ["Tool", "ToolResult", "ToolContext", "build_tool", "tool_names", "tool_schemas"]
