"""The tool-calling turn logic, without ms-swift: parse a model turn's tool calls, run them, build the ``tool``
turns that answer them, and say whether the trajectory ends.

ms-swift's scheduler (:mod:`swift_ext.bridge.multi_turn`) is a thin shell over :class:`ToolAgent`: after each
assistant turn it calls :meth:`ToolAgent.turn` and appends the messages it returns.

One turn, in order:

1. the calls are read with the one tool-call parser (:func:`swift_ext.tools.parse.parse_text`: Qwen/Hermes
   ``<tool_call>`` JSON, Qwen3-Coder XML, several per turn; reasoning before ``</think>`` is ignored);
2. no call at all: the turn is the **final answer** and the trajectory ends (``stop_reason="answer"``);
3. the turn is the last one allowed (``max_turns``) or the trajectory already made ``max_calls`` calls: it ends
   without running them (``"max_turns"`` / ``"max_calls"``);
4. else each call is run in order and answered by one ``tool`` message: a call that could not be read, an unknown
   tool, bad arguments, a crash or a call past ``call_timeout`` are answered with an ``error: ...`` message
   (never an exception); calls past the ``max_calls`` budget within the turn are answered ``error: not run``.
   A tool's images are added to the trajectory's images and shown by ``<image>`` tags in its message.

Every call is recorded (:class:`CallRecord`); :meth:`Trajectory.info` is the summary the trajectory rewards read
(``rollout_infos["swift_ext_agent"]``: calls, successes, errors, stop reason).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from ..errors import ParamError, UnknownNameError
from ..params import Param, bind, parse_spec
from ..rewards.trajectory import INFO_KEY
from ..tools.base import Tool, ToolContext, ToolResult, build_tool
from ..tools.parse import ToolCall, parse_text

#: stop reasons of a trajectory
ANSWER, MAX_CALLS, MAX_TURNS, LENGTH = "answer", "max_calls", "max_turns", "length"
IMAGE_TAG = "<image>"


@dataclass
class CallRecord:
    """One call of a trajectory: the tool's ``name`` (None when unreadable), whether it parsed and ran (``ok``),
    the error text when not, its turn and seconds."""

    name: Optional[str]
    ok: bool
    error: Optional[str] = None
    turn: int = 0
    seconds: float = 0.0

    def as_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "error": self.error, "turn": self.turn,
                "seconds": round(self.seconds, 4)}


@dataclass
class Trajectory:
    """What the agent keeps for one trajectory: its dataset ``row``, the tools' ``state`` (a python session), the
    calls made, the images tools returned and how it ended."""

    id: str
    row: Dict[str, Any] = field(default_factory=dict)
    state: Dict[str, Any] = field(default_factory=dict)
    calls: List[CallRecord] = field(default_factory=list)
    images: List[str] = field(default_factory=list)
    turns: int = 0
    stop_reason: Optional[str] = None
    workdir: str = ""

    def info(self) -> Dict[str, Any]:
        """The JSON-able summary written into ``rollout_infos[INFO_KEY]``."""
        ok = sum(c.ok for c in self.calls)
        return {"calls": len(self.calls), "ok": ok, "failed": len(self.calls) - ok,
                "tools": [c.name for c in self.calls], "errors": [c.error for c in self.calls if c.error],
                "turns": self.turns, "stop_reason": self.stop_reason}


@dataclass
class TurnOutcome:
    """What one assistant turn leads to: the ``messages`` to append (``tool`` turns), ``done`` and why, and the
    calls of this turn."""

    messages: List[Dict[str, Any]]
    done: bool
    stop_reason: Optional[str] = None
    calls: List[CallRecord] = field(default_factory=list)
    images: List[str] = field(default_factory=list)


_POOL: Optional[ThreadPoolExecutor] = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """Threads that run tool calls under a deadline (a call past it is abandoned, its thread left to finish)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=32, thread_name_prefix="swift-ext-tool")
        return _POOL


class ToolAgent:
    """The turn logic of the ``tools`` scheduler (see the module docstring).

    ``tools``: tool specs (``"python"``, ``"python:timeout=5"``, an alias) or :class:`Tool` instances;
    ``max_calls``: calls per trajectory; ``max_turns``: assistant turns per trajectory (None: no limit here; ms-swift
    applies ``--max_turns`` too); ``call_timeout``: seconds a call may take before it is answered with an error
    (a tool's own ``timeout`` is usually shorter); ``workdir``: where per-trajectory folders go (default: a
    temporary folder removed at exit)."""

    def __init__(self, tools: Sequence[Any], *, max_calls: int = 4, max_turns: Optional[int] = None,
                 call_timeout: float = 30.0, workdir: Optional[str] = None, max_trajectories: int = 100_000):
        self.tools: Dict[str, Tool] = {}
        for t in tools:
            tool = t if isinstance(t, Tool) else build_tool(t)
            self.tools[tool.name] = tool
        self.max_calls, self.max_turns, self.call_timeout = max_calls, max_turns, call_timeout
        self.schemas = {name: tool.arguments for name, tool in self.tools.items()}
        self._root = workdir
        self._own_root = False
        self._live: Dict[str, Trajectory] = {}
        self.max_trajectories = max_trajectories
        self._lock = threading.Lock()

    # -- trajectories ------------------------------------------------------------------------------
    def tool_schemas(self) -> List[Dict[str, Any]]:
        """The OpenAI function schemas of the tools (a dataset's ``tools`` column)."""
        return [tool.schema() for tool in self.tools.values()]

    def trajectory(self, key: str, row: Optional[Dict[str, Any]] = None) -> Trajectory:
        """The live trajectory ``key`` (made on first use with its dataset ``row``)."""
        with self._lock:
            traj = self._live.get(key)
            if traj is None:
                if len(self._live) >= self.max_trajectories:       # never finished (a crashed rollout): drop
                    self._live.pop(next(iter(self._live)))
                traj = self._live[key] = Trajectory(id=key, row=dict(row or {}))
            return traj

    def finish(self, key: str) -> Optional[Trajectory]:
        """Forget trajectory ``key`` (its folder stays: images in it are read when the batch is encoded)."""
        with self._lock:
            return self._live.pop(key, None)

    def root(self) -> str:
        with self._lock:
            if self._root is None:
                self._root = tempfile.mkdtemp(prefix="swift-ext-agent-")
                self._own_root = True
                atexit.register(shutil.rmtree, self._root, True)
            os.makedirs(self._root, exist_ok=True)
            return self._root

    def _workdir(self, traj: Trajectory) -> str:
        if not traj.workdir:
            safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in traj.id)[:80] or "t"
            traj.workdir = tempfile.mkdtemp(prefix=f"{safe}-", dir=self.root())
        return traj.workdir

    # -- one turn ----------------------------------------------------------------------------------
    def turn(self, traj: Trajectory, text: Any, *, turn: int, truncated: bool = False) -> TurnOutcome:
        """Handle one assistant turn of ``traj`` (its ``turn``-th, from 1); ``truncated``: the turn was cut at the
        token limit (the trajectory ends). Never raises for anything the model wrote."""
        traj.turns = turn
        if truncated:
            return self._end(traj, LENGTH)
        calls = parse_text(text if isinstance(text, str) else ("" if text is None else str(text)),
                           schemas=self.schemas)
        if not calls:
            return self._end(traj, ANSWER)
        if self.max_turns is not None and turn >= self.max_turns:
            return self._end(traj, MAX_TURNS)
        if len(traj.calls) >= self.max_calls:
            return self._end(traj, MAX_CALLS)
        messages: List[Dict[str, Any]] = []
        records: List[CallRecord] = []
        images: List[str] = []
        for call in calls:
            start = time.perf_counter()
            if len(traj.calls) >= self.max_calls:
                result = ToolResult(f"error: not run: this conversation's budget of {self.max_calls} tool calls "
                                    f"is spent", ok=False)
            else:
                result = self.run_call(traj, call)
            record = CallRecord(call.name, result.ok, None if result.ok else _first_line(result.text), turn,
                                time.perf_counter() - start)
            traj.calls.append(record)
            records.append(record)
            content = result.text
            if result.images:
                images.extend(result.images)
                content = IMAGE_TAG * len(result.images) + content
            messages.append({"role": "tool", "content": content})
        traj.images.extend(images)
        return TurnOutcome(messages, False, None, records, images)

    def _end(self, traj: Trajectory, reason: str) -> TurnOutcome:
        traj.stop_reason = reason
        return TurnOutcome([], True, reason)

    def run_call(self, traj: Trajectory, call: ToolCall) -> ToolResult:
        """One call's result: an error result for an unreadable call, an unknown tool or a call past
        ``call_timeout``; else what the tool returned."""
        if not call.ok:
            return ToolResult(f"error: could not read the tool call: {call.error}", ok=False)
        tool = self.tools.get(call.name)
        if tool is None:
            return ToolResult(f"error: unknown tool {call.name!r}; available: {', '.join(self.tools) or 'none'}",
                              ok=False)
        deadline = time.monotonic() + self.call_timeout
        context = ToolContext(row=traj.row, trajectory_id=traj.id, state=traj.state, workdir=self._workdir(traj),
                              deadline=deadline)
        future = _pool().submit(tool, call.arguments, context)
        try:
            return future.result(timeout=self.call_timeout + 1.0)
        except FutureTimeout:
            return ToolResult(f"error: {call.name} timed out after {self.call_timeout:g} s", ok=False)
        except Exception as exc:  # Tool.__call__ never raises; a tool overriding it might
            return ToolResult(f"error: {call.name} failed: {type(exc).__name__}: {exc}", ok=False)


def _first_line(text: str, limit: int = 200) -> str:
    """The line of an error result that says what went wrong: its first when it starts with ``error``, else its
    last (a traceback's ``error: exit code 1`` line)."""
    lines = (text or "").strip().splitlines() or [""]
    return (lines[0] if lines[0].startswith("error") else lines[-1])[:limit]


def split_tools(value: Any) -> List[str]:
    """Tool names from a scheduler parameter: ``python+calculator`` or ``python|calculator`` (a list as it is).

    >>> split_tools("python+calculator")
    ['python', 'calculator']
    """
    if isinstance(value, (list, tuple)):
        parts: List[str] = []
        for v in value:
            parts.extend(split_tools(v))
        return parts
    return [p.strip() for p in str(value or "").replace("|", "+").split("+") if p.strip()]




# -- scheduler specs (``--multi_turn_scheduler tools:tools=python+calculator,max_calls=4``) ---------------------
#: the schedulers swift-ext provides and their spec parameters
SCHEDULER_PARAMS = {
    "tools": {
        "tools": Param("python+calculator", "tools the model may call, joined by + (names, or aliases from "
                       "SWIFT_EXT_CONFIG's tools: section)"),
        "max_calls": Param(4, "tool calls per trajectory; a turn calling past it ends the trajectory", type=int,
                           min=1),
        "call_timeout": Param(30.0, "seconds one call may take before it is answered with an error", min=0.1),
        "workdir": Param("", "folder for per-trajectory files such as crops (empty: a temporary folder)"),
    },
}


def scheduler_config(spec: str) -> Dict[str, Any]:
    """The bound parameters of a scheduler spec, checked now (ParamError / UnknownNameError say what is wrong);
    each named tool is built once to check its spec too.

    >>> scheduler_config("tools:tools=calculator,max_calls=2")["max_calls"]
    2
    """
    name, raw = parse_spec(spec)
    if name not in SCHEDULER_PARAMS:
        raise UnknownNameError("multi-turn scheduler", name, SCHEDULER_PARAMS)
    config = bind(SCHEDULER_PARAMS[name], raw, owner=f"multi-turn scheduler {name}")
    names = split_tools(config["tools"])
    if not names:
        raise ParamError(f"multi-turn scheduler {spec!r}: tools= names no tool")
    for tool in names:
        build_tool(tool)
    config["tools"] = names
    return config


def agent_from_spec(spec: str, max_turns: Optional[int] = None) -> ToolAgent:
    """The :class:`ToolAgent` of a ``tools:...`` spec."""
    config = scheduler_config(spec)
    return ToolAgent(config["tools"], max_calls=config["max_calls"], max_turns=max_turns,
                     call_timeout=config["call_timeout"], workdir=config["workdir"] or None)


__all__ = ["ToolAgent", "Trajectory", "TurnOutcome", "CallRecord", "split_tools", "INFO_KEY", "SCHEDULER_PARAMS",
           "scheduler_config", "agent_from_spec", "ANSWER", "MAX_CALLS", "MAX_TURNS", "LENGTH"]
