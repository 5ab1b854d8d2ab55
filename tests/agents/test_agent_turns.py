"""The ``tools`` scheduler's turn logic (:class:`swift_ext.agents.ToolAgent`) on scripted model turns, with the real
built-in tools (the python tool runs in the real code sandbox)."""

import json
import time

import pytest

from swift_ext.agents import ANSWER, MAX_CALLS, MAX_TURNS, ToolAgent, scheduler_config, split_tools
from swift_ext.errors import ParamError, UnknownNameError
from swift_ext.tools.base import Tool, ToolResult


def call(name, **arguments):
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


class Sleepy(Tool):
    """A tool that never returns in time (a third-party tool that ignores its deadline)."""

    name = "sleepy"
    description = "sleeps"
    arguments = {"type": "object", "properties": {"seconds": {"type": "number"}}, "required": ["seconds"]}

    def run(self, arguments, context):
        time.sleep(arguments["seconds"])
        return ToolResult("woke up")


class Crashy(Tool):
    name = "crashy"
    description = "raises"

    def run(self, arguments, context):
        raise RuntimeError("boom")


def test_well_formed_call_runs_and_answers_with_a_tool_turn():
    agent = ToolAgent(["calculator"])
    traj = agent.trajectory("t1", {"solution": "42"})
    out = agent.turn(traj, "<think>let me compute</think>" + call("calculator", expression="6*7"), turn=1)
    assert not out.done
    assert out.messages == [{"role": "tool", "content": "42"}]
    assert [(c.name, c.ok) for c in out.calls] == [("calculator", True)]
    final = agent.turn(traj, "The answer is <answer>42</answer>", turn=2)
    assert final.done and final.stop_reason == ANSWER and final.messages == []
    info = traj.info()
    assert info["calls"] == 1 and info["ok"] == 1 and info["stop_reason"] == "answer" and info["turns"] == 2


def test_several_calls_in_one_turn_are_answered_in_order():
    agent = ToolAgent(["calculator", "python"])
    traj = agent.trajectory("t2")
    text = call("calculator", expression="1/3 + 1/6") + "\n" + call("python", code="print(sum(range(5)))") + \
        call("calculator", expression="2**10")
    out = agent.turn(traj, text, turn=1)
    assert [m["content"].strip() for m in out.messages] == ["0.5", "10", "1024"]
    assert all(m["role"] == "tool" for m in out.messages)
    assert traj.info()["tools"] == ["calculator", "python", "calculator"]


def test_malformed_json_gets_an_error_turn_not_an_exception():
    agent = ToolAgent(["calculator"])
    traj = agent.trajectory("t3")
    out = agent.turn(traj, '<tool_call>{"name": "calculator", "arguments": {"expression": "1+1"</tool_call>', turn=1)
    assert not out.done
    assert len(out.messages) == 1 and out.messages[0]["content"].startswith("error: could not read the tool call")
    assert out.calls[0].ok is False and traj.info()["failed"] == 1


def test_unknown_tool_and_bad_arguments_are_error_turns():
    agent = ToolAgent(["calculator"])
    traj = agent.trajectory("t4")
    out = agent.turn(traj, call("browser", url="x") + call("calculator", expr="1+1"), turn=1)
    assert out.messages[0]["content"] == "error: unknown tool 'browser'; available: calculator"
    assert out.messages[1]["content"] == "error: calculator: missing required argument: expression"
    assert traj.info() | {"errors": None} == {"calls": 2, "ok": 0, "failed": 2, "tools": ["browser", "calculator"],
                                              "errors": None, "turns": 1, "stop_reason": None}


def test_a_tool_that_raises_is_an_error_turn():
    agent = ToolAgent([Crashy()])
    traj = agent.trajectory("t5")
    out = agent.turn(traj, call("crashy"), turn=1)
    assert out.messages[0]["content"] == "error: crashy failed: RuntimeError: boom"


def test_tool_timeout_is_an_error_turn_within_the_deadline():
    agent = ToolAgent([Sleepy()], call_timeout=0.3)
    traj = agent.trajectory("t6")
    start = time.monotonic()
    out = agent.turn(traj, call("sleepy", seconds=5), turn=1)
    took = time.monotonic() - start
    assert out.messages[0]["content"] == "error: sleepy timed out after 0.3 s"
    assert took < 3.0, took


def test_python_tool_timeout_is_the_sandbox_deadline():
    agent = ToolAgent(["python:timeout=1"])
    traj = agent.trajectory("t7")
    out = agent.turn(traj, call("python", code="while True:\n    pass"), turn=1)
    assert out.messages[0]["content"] == "error: timed out after 1 s"
    assert out.calls[0].ok is False


def test_python_session_keeps_state_between_calls_of_one_trajectory_only():
    agent = ToolAgent(["python"])
    a, b = agent.trajectory("a"), agent.trajectory("b")
    agent.turn(a, call("python", code="x = 41\nprint('set')"), turn=1)
    got = agent.turn(a, call("python", code="print(x + 1)"), turn=2)
    assert got.messages[0]["content"].strip() == "42"
    other = agent.turn(b, call("python", code="print(x + 1)"), turn=1)
    assert "NameError" in other.messages[0]["content"] and not other.calls[0].ok


def test_max_calls_reached_ends_the_trajectory():
    agent = ToolAgent(["calculator"], max_calls=2)
    traj = agent.trajectory("t8")
    out = agent.turn(traj, call("calculator", expression="1") + call("calculator", expression="2")
                     + call("calculator", expression="3"), turn=1)
    assert [m["content"] for m in out.messages[:2]] == ["1", "2"]
    assert out.messages[2]["content"].startswith("error: not run: this conversation's budget of 2 tool calls")
    assert not out.done                       # the model gets a turn to answer with what it has
    again = agent.turn(traj, call("calculator", expression="4"), turn=2)
    assert again.done and again.stop_reason == MAX_CALLS and again.messages == []


def test_max_turns_ends_without_running_the_last_turns_calls():
    agent = ToolAgent(["python"], max_turns=2)
    traj = agent.trajectory("t9")
    assert not agent.turn(traj, call("python", code="print(1)"), turn=1).done
    out = agent.turn(traj, call("python", code="print(2)"), turn=2)
    assert out.done and out.stop_reason == MAX_TURNS and len(traj.calls) == 1


def test_truncated_turn_ends_the_trajectory():
    agent = ToolAgent(["calculator"])
    traj = agent.trajectory("t10")
    out = agent.turn(traj, '<tool_call>{"name": "calculator", "argu', turn=1, truncated=True)
    assert out.done and out.stop_reason == "length"


def test_image_results_become_image_tags_and_trajectory_images(tmp_path):
    class Snap(Tool):
        name = "snap"
        description = "returns an image"

        def run(self, arguments, context):
            path = f"{context.workdir}/crop.png"
            open(path, "wb").write(b"png")
            return ToolResult("the crop", images=[path])

    agent = ToolAgent([Snap()], workdir=str(tmp_path))
    traj = agent.trajectory("img")
    out = agent.turn(traj, call("snap"), turn=1)
    assert out.messages[0]["content"] == "<image>the crop"
    assert out.images == traj.images and out.images[0].startswith(str(tmp_path))


def test_scheduler_spec_parameters_are_checked_up_front():
    cfg = scheduler_config("tools:tools=python+calculator,max_calls=3")
    assert cfg["tools"] == ["python", "calculator"] and cfg["max_calls"] == 3
    with pytest.raises(UnknownNameError):
        scheduler_config("tools:tools=python+nosuchtool")
    with pytest.raises(ParamError):
        scheduler_config("tools:max_calls=0")
    with pytest.raises(UnknownNameError):
        scheduler_config("toolz")
    assert split_tools("python|calculator") == ["python", "calculator"]


def test_tool_schemas_are_openai_function_schemas():
    schemas = ToolAgent(["python", "calculator"]).tool_schemas()
    assert [s["function"]["name"] for s in schemas] == ["python", "calculator"]
    assert all(s["type"] == "function" and s["function"]["parameters"]["type"] == "object" for s in schemas)
