"""Benchmark: the ``tools`` multi-turn scheduler's own cost per turn, and the tools' round trips.

    python bench/bench_scheduler.py                    # 2000 turns per case, python tool 20 calls, best of 3
    python bench/bench_scheduler.py --markdown .notes/bench-scheduler.md

1. Scheduler overhead per turn, the tool itself excluded (a no-op tool that returns at once): parse the turn's
   calls, dispatch each (argument check, the per-call deadline thread), build the ``tool`` messages and the
   trajectory record. Measured on :meth:`ToolAgent.turn` alone and on the ms-swift shell (``on_turn_end`` awaited
   in an event loop, as ms-swift's colocate loop does, then ``step``), with 1 and 3 calls per turn and for a final
   answer (no call). Against the obvious hand-written scheduler (a regex for ``<tool_call>``, ``json.loads``, a
   direct function call, no deadline, no error handling) on the same turns.
2. Round trips: ``calculator`` and ``python`` (``print(1)`` in the code sandbox; with a session of 4 earlier cells
   replayed) through :meth:`ToolAgent.turn`, against the sandbox alone running the same program and a bare
   ``subprocess.run([python, "-c", ...])``.
Markdown goes to stdout (and ``--markdown``); progress to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from swift_ext.agents import ToolAgent  # noqa: E402
from swift_ext.tools.base import Tool, ToolResult  # noqa: E402


class Noop(Tool):
    """Returns at once: what is left is the scheduler's own cost."""

    name = "noop"
    description = "does nothing"
    arguments = {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}

    def run(self, arguments, context):
        return ToolResult(str(arguments["x"]))


def turn_text(calls: int) -> str:
    head = "<think>\nI should call the tool to be sure of the value here.\n</think>\n\n"
    return head + "\n".join(f'<tool_call>\n{{"name": "noop", "arguments": {{"x": {i}}}}}\n</tool_call>'
                            for i in range(calls)) if calls else head + "The answer is <answer>42</answer>"


_BLOCK = re.compile(r"<tool_call>(.*?)</tool_call>", re.S)


def hand_written(text: str, functions) -> list:
    """What a scheduler written by hand does: regex, json.loads, call the function, append the message."""
    out = []
    for block in _BLOCK.findall(text):
        obj = json.loads(block)
        out.append({"role": "tool", "content": str(functions[obj["name"]](**obj["arguments"]))})
    return out


def best(fn, n: int, repeat: int) -> float:
    """Best-of-``repeat`` microseconds per call of ``fn`` over ``n`` calls."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - start) / n * 1e6)
    return min(times)


def overhead(n: int, repeat: int) -> list:
    rows = []
    agent = ToolAgent([Noop()], max_calls=10 ** 9)
    functions = {"noop": lambda x: x}
    shell = _shell()
    for calls in (0, 1, 3):
        text = turn_text(calls)
        traj = agent.trajectory(f"bench-{calls}")

        def library():
            agent.turn(traj, text, turn=1)
            traj.calls.clear()

        lib = best(library, n, repeat)
        hand = best(lambda: hand_written(text, functions), n, repeat)
        full = best(lambda: shell(text), max(1, n // 4), repeat) if shell else None
        rows.append((calls, lib, full, hand))
        print(f"calls={calls}: ToolAgent.turn {lib:.1f} us, ms-swift shell {full and round(full, 1)} us, "
              f"hand-written {hand:.1f} us", file=sys.stderr)
    return rows


def _shell():
    """One turn through the ms-swift scheduler class: ``on_turn_end`` awaited, then ``step`` (None without ms-swift)."""
    try:
        from swift_ext import cpu_compat

        cpu_compat.apply()
        from swift.infer_engine.protocol import (ChatCompletionResponseChoice, ChatMessage, RolloutInferRequest)
        from swift_ext.bridge.multi_turn import scheduler_class
    except Exception as exc:  # noqa: BLE001
        print(f"ms-swift shell not measured: {exc!r}", file=sys.stderr)
        return None
    from swift_ext.plugins import registry

    registry("tool")
    cls = scheduler_class("tools:tools=calculator,max_calls=1000000000")
    sched = cls(max_turns=None)
    sched.agent.tools = {"noop": Noop()}
    sched.agent.schemas = {"noop": Noop.arguments}
    loop = asyncio.new_event_loop()

    def one(text):
        req = RolloutInferRequest(messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": text}],
                                  uuid="b")
        choice = ChatCompletionResponseChoice(index=0, message=ChatMessage(role="assistant", content=text),
                                              finish_reason="stop")
        loop.run_until_complete(sched.on_turn_end(req, choice, 1))
        sched.step(req, choice, 1)
        sched.agent.finish(next(iter(sched.agent._live), ""))

    return one


def round_trips(n: int, repeat: int) -> list:
    from swift_ext.sandbox import Limits, Program, get_sandbox

    rows = []
    calc = ToolAgent(["calculator"], max_calls=10 ** 9)
    traj = calc.trajectory("calc")
    text = '<tool_call>\n{"name": "calculator", "arguments": {"expression": "(3/4 + 0.5) * 2**10"}}\n</tool_call>'
    rows.append(("calculator, one call", best(lambda: calc.turn(traj, text, turn=1), n * 50, repeat) / 1000, None))
    py = ToolAgent(["python:session=false"], max_calls=10 ** 9)
    traj = py.trajectory("py")
    code = '<tool_call>\n{"name": "python", "arguments": {"code": "print(1)"}}\n</tool_call>'
    rows.append(("python `print(1)`, no session", best(lambda: py.turn(traj, code, turn=1), n, repeat) / 1000, None))
    session = ToolAgent(["python"], max_calls=10 ** 9)
    straj = session.trajectory("session")
    for i in range(4):
        session.turn(straj, f'<tool_call>\n{{"name": "python", "arguments": {{"code": "v{i} = {i}"}}}}\n'
                            f'</tool_call>', turn=1)
    cells = list(straj.state["python_cells"])

    def with_session():
        session.turn(straj, code, turn=1)
        straj.state["python_cells"] = list(cells)

    rows.append(("python `print(1)`, 4 cells replayed", best(with_session, n, repeat) / 1000, None))
    box = get_sandbox("local")
    rows.append(("sandbox alone, `print(1)`", best(lambda: box.run(Program("print(1)"), Limits(time=10)), n, repeat)
                 / 1000, box.iso.mode))
    rows.append(("bare `subprocess.run([python, -c])`",
                 best(lambda: subprocess.run([sys.executable, "-c", "print(1)"], capture_output=True), n, repeat)
                 / 1000, "none"))
    for name, ms, _ in rows:
        print(f"{name}: {ms:.2f} ms", file=sys.stderr)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="turns per overhead case")
    parser.add_argument("--python-calls", type=int, default=20, help="python tool calls per round-trip case")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--markdown", help="also write the markdown here")
    args = parser.parse_args()
    over = overhead(args.n, args.repeat)
    trips = round_trips(args.python_calls, args.repeat)
    lines = ["*Scheduler overhead per turn, tool excluded (a no-op tool), best of %d x %d turns*" % (args.repeat, args.n),
             "", "| calls in the turn | `ToolAgent.turn` (µs) | ms-swift shell: `on_turn_end` + `step` (µs) | "
             "hand-written regex + json.loads + call (µs) | `ToolAgent.turn` / hand-written |",
             "|---:|---:|---:|---:|---:|"]
    for calls, lib, full, hand in over:
        lines.append(f"| {calls} | {lib:.1f} | {'n/a' if full is None else f'{full:.1f}'} | {hand:.1f} | "
                     f"{lib / hand:.1f}x |")
    lines += ["", f"*Tool round trips through `ToolAgent.turn`, best of {args.repeat}*", "",
              "| call | ms per call | isolation |", "|---|---:|---|"]
    for name, ms, iso in trips:
        lines.append(f"| {name} | {ms:.2f} | {iso or ''} |")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines += ["", f"cpu count: {os.cpu_count()}; load average at the end: {load:.1f}; python "
              f"{sys.version.split()[0]}"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
