"""The built-in tools (``calculator``, ``python``), the ``register_tools`` hook and the Tool contract."""

import random
from fractions import Fraction

import pytest

from swift_ext import plugins
from swift_ext.components import configure
from swift_ext.errors import PluginError
from swift_ext.testing import make_plugin
from swift_ext.tools.base import Tool, ToolContext, ToolResult, build_tool
from swift_ext.tools.calculator import CalcError, calculate, format_value
from swift_ext.tools.python import cap, session_program, strip_fence


# -- calculator ----------------------------------------------------------------------------------------
class _F(Fraction):
    """Python's Fraction, with ``//`` kept a Fraction (Python's gives an int, and int / int a float)."""

    def __floordiv__(self, other):
        return _F(Fraction.__floordiv__(self, other))

    def __rfloordiv__(self, other):
        return _F(Fraction.__rfloordiv__(self, other))


def _python_fraction_value(expr: str) -> Fraction:
    """The oracle: Python's own arithmetic over Fractions (the literals wrapped, nothing else rewritten)."""
    import re

    wrapped = re.sub(r"(\d+(?:\.\d+)?)", r"F('\1')", expr)
    return eval(wrapped, {"F": _F})  # noqa: S307 - test oracle on generated arithmetic only


def _random_expr(rng: random.Random, depth: int = 0) -> str:
    if depth > 3 or rng.random() < 0.3:
        return rng.choice([str(rng.randint(0, 99)), f"{rng.randint(0, 99)}.{rng.randint(0, 99):02d}"])
    op = rng.choice(["+", "-", "*", "/", "//", "%"])
    return f"({_random_expr(rng, depth + 1)} {op} {_random_expr(rng, depth + 1)})"


def test_calculator_agrees_with_python_fractions_on_generated_expressions():
    rng = random.Random(7)
    checked = 0
    for _ in range(400):
        expr = _random_expr(rng)
        try:
            want = _python_fraction_value(expr)
        except ZeroDivisionError:
            with pytest.raises(CalcError, match="division by zero"):
                calculate(expr)
            continue
        assert calculate(expr) == want, expr
        checked += 1
    assert checked > 300


@pytest.mark.parametrize("expr,text", [
    ("0.1 + 0.2", "0.3"), ("1/3 + 1/6", "0.5"), ("2^10", "1024"), ("-(3)**2", "-9"), ("4**0.5", "2"),
    ("sqrt(16/9)", "1/3 = 0.333333333333".replace("1/3", "4/3").replace("0.333333333333", "1.333333333333")),
    ("factorial(5) / 7", "120/7 = 17.142857142857"), ("round(2/3, 2)", "0.67"), ("gcd(12, 18)", "6"),
    ("1e-3 * 3", "0.003"), ("7 % -3", "-2"),
])
def test_calculator_answers_exactly(expr, text):
    assert format_value(calculate(expr)) == text


@pytest.mark.parametrize("expr,why", [
    ("9**9**9", "exponent 387420489"), ("10**6000", "more than 5000 digits"), ("factorial(10**6)", "factorial takes"),
    ("__import__('os').system('x')", "not allowed"), ("open('/etc/passwd')", "unknown function 'open'"),
    ("(lambda: 1)()", "not allowed"), ("x + 1", "not allowed"), ("1/0", "division by zero"), ("sqrt(2)", "irrational"),
    ("'a' * 3", "not a number"), ("(" * 300 + "1" + ")" * 300, "nested too deeply|cannot read"), ("-" * 990 + "1", "nested too deeply|cannot read|^-?1$"), ("", "empty"),
    ("1" * 2000, "longer than 1000"), ("True + 1", "not a number"),
])
def test_calculator_refuses_hostile_or_huge_input_quickly(expr, why):
    import re
    import time

    start = time.monotonic()
    with pytest.raises(CalcError) as err:
        calculate(expr)
    assert re.search(why, str(err.value)), str(err.value)
    assert time.monotonic() - start < 1.0


def test_calculator_tool_turns_errors_into_results():
    tool = build_tool("calculator")
    assert tool({"expression": "6*7"}, ToolContext()) == ToolResult("42")
    bad = tool({"expression": "1/0"}, ToolContext())
    assert not bad.ok and bad.text == "error: division by zero"
    assert tool({}, ToolContext()).text == "error: calculator: missing required argument: expression"
    assert tool("not a dict", ToolContext()).ok is False


# -- python ----------------------------------------------------------------------------------------------
def test_python_helpers():
    assert strip_fence("```python\nprint(1)\n```") == "print(1)"
    assert strip_fence("print(1)") == "print(1)"
    text = cap("x" * 10_000, 200)
    assert len(text) < 260 and "characters cut" in text


def test_session_program_replays_silently(tmp_path):
    import subprocess
    import sys

    program = session_program(["print('noise')\ny = 2"], "print(y * 21)")
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert out.stdout == "42\n"


def test_python_tool_runs_in_the_sandbox_with_capped_output_and_parameters():
    tool = configure("tool", "python:max_output=200,timeout=5")()
    ctx = ToolContext()
    long = tool({"code": "print('y' * 10000)"}, ctx)
    assert long.ok and len(long.text) < 260 and "characters cut" in long.text
    flood = tool({"code": "while True: print('y' * 10000)"}, ctx)        # stopped at the sandbox's output limit
    assert not flood.ok and flood.text.endswith("error: too much output") and len(flood.text) < 260
    env = tool({"code": "import os; print(sorted(k for k in os.environ if 'KEY' in k or 'TOKEN' in k))"}, ctx)
    assert env.text.strip() == "[]"           # the trainer's environment does not reach the program
    assert tool({"code": "```python\nprint(3)\n```"}, ctx).text.strip() == "3"
    assert tool({"code": "   "}, ctx).text == "error: python: empty code"
    no_time = tool({"code": "print(1)"}, ToolContext(deadline=0.0))
    assert not no_time.ok and "no time left" in no_time.text


def test_python_tool_without_session_forgets():
    tool = configure("tool", "python:session=false")()
    ctx = ToolContext()
    tool({"code": "z = 1"}, ctx)
    assert "NameError" in tool({"code": "print(z)"}, ctx).text


def test_tool_instances_pickle_by_spec():
    import pickle

    tool = configure("tool", "python:timeout=3")()
    tool.sandbox()
    again = pickle.loads(pickle.dumps(tool))
    assert again.timeout == 3.0 and again({"code": "print(5)"}, ToolContext()).text.strip() == "5"


# -- registry ---------------------------------------------------------------------------------------------
def test_builtin_tools_are_registered():
    assert {"python", "calculator"} <= set(plugins.registry("tool"))


class Echo(Tool):
    """Say it back."""

    name = "echo"
    description = "Repeat the text."
    arguments = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"],
                 "additionalProperties": False}

    def run(self, arguments, context):
        return ToolResult(arguments["text"])


def test_a_third_party_tool_registers_through_the_hook(register_plugin):
    register_plugin(make_plugin("echo_tools", register_tools=lambda register: register(Echo)))
    tool = build_tool("echo")
    assert tool({"text": "hi"}, ToolContext()).text == "hi"
    assert tool({"text": "hi", "x": 1}, ToolContext()).text == "error: echo: unknown argument: x"
    assert tool.schema() == {"type": "function", "function": {"name": "echo", "description": "Repeat the text.",
                                                               "parameters": Echo.arguments}}


def test_a_tool_that_is_not_a_tool_class_is_refused(register_plugin):
    register_plugin(make_plugin("bad_tools", register_tools=lambda register: register("nope", object)))
    with pytest.raises(PluginError, match="must be a subclass of swift_ext.tools.base.Tool"):
        plugins.registry("tool")
