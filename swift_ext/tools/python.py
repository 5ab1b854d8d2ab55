"""The ``python`` tool: runs the model's code in the code sandbox (:mod:`swift_ext.sandbox`) and returns what it
printed.

Each call is one program in a fresh process of the sandbox's ``local`` backend (bubblewrap, else namespaces, else
resource limits; an empty environment, its own working folder), within ``timeout`` seconds (capped by the call's
deadline), its standard output and error capped at ``max_output`` characters (the cut is marked).

**Sessions.** With ``session=true`` (the default) a trajectory's calls behave like cells of one notebook: the
trajectory's earlier *successful* cells are replayed, their output silenced, before the new one runs, so a
variable or an import defined in one call is there in the next. Replay is re-execution, not a live process: a cell
is run again each time (its side effects and time repeat), so the replayed cells count against ``timeout`` and at
most ``max_cells`` of them are kept (the oldest dropped). A cell that failed is not replayed. ``session=false``:
every call starts from nothing.

The code may come fenced (```` ```python ... ``` ````): the fence is removed. The answer is the output text; an
exception gives ``ok=False`` with the traceback's last lines, a timeout ``ok=False`` with ``timed out after N s``.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Dict, List

from ..params import Param
from .base import Tool, ToolContext, ToolResult

_FENCE = re.compile(r"^\s*```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)\n?```\s*$", re.S | re.I)
#: the state key holding a trajectory's successful cells
CELLS_KEY = "python_cells"


def strip_fence(code: str) -> str:
    """The code inside a Markdown fence, or the text as it is.

    >>> strip_fence("```python\\nprint(1)\\n```")
    'print(1)'
    """
    m = _FENCE.match(code)
    return m.group(1) if m else code


def session_program(cells: List[str], code: str) -> str:
    """A program that replays ``cells`` silently, then runs ``code`` with its output shown. Each cell is
    compiled under its own name, so a traceback names ``<cell 3>`` and its line (the replay's own frame left out)."""
    lines = ["import contextlib as _c, io as _io", "_g = globals()"]
    for i, cell in enumerate(cells):
        lines.append(f"with _c.redirect_stdout(_io.StringIO()), _c.redirect_stderr(_io.StringIO()):\n"
                     f"    exec(compile({cell!r}, '<cell {i}>', 'exec'), _g)")
    lines.append(f"try:\n    exec(compile({code!r}, '<cell {len(cells)}>', 'exec'), _g)\n"
                 f"except SystemExit:\n    raise\n"
                 f"except BaseException as _e:\n    import sys as _s, traceback as _t\n"
                 f"    _t.print_exception(type(_e), _e, _e.__traceback__.tb_next)\n    _s.exit(1)")
    return "\n".join(lines) + "\n"


def cap(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters (head and tail kept, the cut marked).

    >>> cap("abcdefghij", 6)
    'abc\\n[... 4 characters cut ...]\\nij'
    """
    if len(text) <= limit:
        return text
    cut = len(text) - limit
    head = max(0, limit // 2)
    tail = max(0, limit - head - 1)
    return f"{text[:head]}\n[... {cut} characters cut ...]\n{text[len(text) - tail:] if tail else ''}"


class Python(Tool):
    """Run Python code in the code sandbox (output capped, per-call deadline, optional per-trajectory session).

    Each call is a fresh process of the sandbox's ``local`` backend (bubblewrap, else namespaces, else resource
    limits; an empty environment) that must end within ``timeout`` seconds; what it prints comes back, cut to
    ``max_output`` characters. With ``session=true`` the trajectory's earlier successful cells are replayed
    silently before the new one, so variables and imports carry over (replay repeats their time and side effects;
    at most ``max_cells`` are kept). A ```` ```python ```` fence around the code is removed. An exception, a
    timeout or too much output is an ``error`` result (``ok=False``) with the traceback's last lines.

    Arguments: ``{"code": "print(2**100)"}``.
    """

    name = "python"
    description = ("Run Python 3 code and return what it prints (use print() to see values). Variables and "
                   "imports from earlier successful calls in this conversation are kept.")
    arguments = {"type": "object",
                 "properties": {"code": {"type": "string", "description": "the Python code to run"}},
                 "required": ["code"]}
    params = {
        "timeout": Param(10.0, "seconds one call may run (replayed cells included)", min=0.1),
        "max_output": Param(4000, "characters of output returned to the model", type=int, min=100),
        "session": Param(True, "replay the trajectory's earlier successful cells before each call"),
        "max_cells": Param(16, "earlier cells replayed at most (the oldest dropped)", type=int, min=0),
        "memory_mb": Param(1024, "memory limit of the program (MB)", type=int, min=64),
        "isolation": Param("auto", "local sandbox isolation", choices=("auto", "bwrap", "unshare", "rlimits")),
        "python": Param("", "interpreter for the programs (empty: the trainer's own)"),
    }

    def setup(self) -> None:
        self._box = None
        self._lock = threading.Lock()

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("_box", "_lock")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.setup()

    def sandbox(self):
        with self._lock:
            if self._box is None:
                from ..sandbox import get_sandbox

                self._box = get_sandbox("local", isolation=self.isolation, python=self.python or None)
            return self._box

    def run(self, arguments: Dict[str, Any], context: ToolContext) -> ToolResult:
        from ..sandbox import Limits, Program

        code = arguments.get("code")
        if not isinstance(code, str):
            return ToolResult(f"error: python: 'code' must be a string, got {type(code).__name__}", ok=False)
        code = strip_fence(code)
        if not code.strip():
            return ToolResult("error: python: empty code", ok=False)
        seconds = context.seconds_left(self.timeout)
        if seconds <= 0.05:
            return ToolResult("error: python: no time left for this call (the trajectory's deadline passed)",
                              ok=False)
        cells: List[str] = context.state.setdefault(CELLS_KEY, []) if self.session else []
        program = session_program(cells[-self.max_cells:] if self.max_cells else [], code) if cells else code
        limits = Limits(time=seconds, memory_mb=self.memory_mb, output_bytes=max(self.max_output * 4, 1 << 16))
        got = self.sandbox().run(Program(program), limits)
        return self._result(got, seconds, code, cells)

    def _result(self, got: Any, seconds: float, code: str, cells: List[str]) -> ToolResult:
        out = (got.stdout or "")
        err = (got.stderr or "")
        if got.status == "ok":
            if self.session:
                cells.append(code)
            text = "\n".join(x for x in (out.rstrip("\n"), err.rstrip("\n")) if x)
            return ToolResult(cap(text, self.max_output) if text.strip() else "(no output)")
        if got.status == "timeout":
            why = f"error: timed out after {seconds:.3g} s"
        elif got.status == "output_limit":
            why = "error: too much output"
        elif got.status == "error":
            why = f"error: exit code {got.exit_code}"
        elif got.status == "killed":
            why = f"error: killed (signal {got.signal}; memory or file size limit)"
        else:
            why = f"error: {got.status}: {got.message}".rstrip(": ")
        body = "\n".join(x for x in (out.rstrip("\n"), err.rstrip("\n")) if x)
        return ToolResult(cap(f"{body}\n{why}" if body else why, self.max_output), ok=False)


__all__ = ["Python", "strip_fence", "session_program", "cap", "CELLS_KEY"]
