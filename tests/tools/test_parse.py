"""The tool-call parser and matcher, including against ms-swift's own agent templates (the text its Hermes / Qwen3-Coder
templates render from ``tool_call`` rows is read back into the same calls, and agrees with ms-swift's get_toolcall)."""

import json
import random

import pytest

from swift_ext.tools import (ToolCall, match_exact, parse_calls, parse_gold, parse_messages, parse_text, parse_tools,
                             values_equal)
from swift_ext.tools.parse import tool_call_blocks


def _pairs(calls):
    return [(c.name, c.arguments) for c in calls]


def test_several_blocks_whitespace_and_unclosed_last():
    text = ('Let me check.\n<tool_call>\n  {"name": "a", "arguments": {"x": 1}}  \n</tool_call>\n\n'
            '<tool_call>{"name": "b",\n "arguments": {\n  "y": [1, 2]\n }\n}</tool_call>'
            '<tool_call>\n{"name": "c", "arguments": {}}')
    assert _pairs(parse_text(text)) == [("a", {"x": 1}), ("b", {"y": [1, 2]}), ("c", {})]


def test_open_block_runs_to_the_next_open_tag():
    assert tool_call_blocks("<tool_call>1<tool_call>2</tool_call>") == ["1", "2"]


def test_several_objects_in_one_block_and_a_list():
    assert _pairs(parse_text('<tool_call>\n{"name": "a", "arguments": {}}\n{"name": "b", "arguments": {}}\n'
                             '</tool_call><tool_call>[{"name": "c"}, {"name": "d", "parameters": {"k": 1}}]'
                             '</tool_call>')) == [("a", {}), ("b", {}), ("c", {}), ("d", {"k": 1})]


def test_fenced_block():
    assert _pairs(parse_text('<tool_call>\n```json\n{"name": "a", "arguments": {"x": 1}}\n```\n</tool_call>')) == [
        ("a", {"x": 1})]


@pytest.mark.parametrize("block, why", [
    ('{"name": "a", "arguments": {"x": 1,}}', "invalid JSON"),
    ('{"name": "a", "arguments": {"x": 1}', "invalid JSON"),
    ("{'name': 'a'}", "invalid JSON"),
    ('{"arguments": {}}', "no function name"),
    ('{"name": 3, "arguments": {}}', "non-empty string"),
    ('{"name": "a", "arguments": [1]}', "must be a JSON object"),
    ('{"name": "a", "arguments": "{x"}', "arguments are not valid JSON"),
    ('"just a string"', "must be a JSON object"),
    ("", "empty <tool_call> block"),
    ('{"name": "a", "arguments": {}} trailing', "invalid JSON"),
    ("[" * 100_000, "invalid JSON"),
])
def test_malformed_is_reported_not_raised(block, why):
    calls = parse_text(f"<tool_call>{block}</tool_call>")
    assert calls and not calls[-1].ok and why in calls[-1].error


def test_reasoning_is_ignored():
    text = '<think><tool_call>{"name": "no"}</tool_call></think><tool_call>{"name": "yes"}</tool_call>'
    assert [c.name for c in parse_text(text)] == ["yes"]
    assert [c.name for c in parse_text(text, strip_reasoning=False)] == ["no", "yes"]


def test_openai_messages_and_swift_rows():
    msgs = [{"role": "user", "content": "hi <tool_call>{\"name\": \"user_text\"}</tool_call>"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "1", "type": "function", "function": {"name": "a", "arguments": '{"x": 1}'}},
                {"id": "2", "type": "function", "function": {"name": "b", "arguments": {"y": 2}}}]},
            {"role": "tool", "content": "42"},
            {"role": "tool_call", "content": '{"name": "c", "arguments": "{\\"z\\": 3}"}'},
            {"role": "assistant", "content": '<tool_call>{"name": "d", "arguments": {}}</tool_call>'}]
    calls = parse_messages(msgs)
    assert _pairs(calls) == [("a", {"x": 1}), ("b", {"y": 2}), ("c", {"z": 3}), ("d", {})]
    assert [c.id for c in calls[:2]] == ["1", "2"]
    assert _pairs(parse_calls(msgs[1])) == _pairs(calls[:2])


def test_gold_forms():
    assert parse_gold(None) is None and parse_gold("  ") is None and parse_gold("[]") == []
    assert _pairs(parse_gold("{'name': 'a', 'arguments': {'x': True}}")) == [("a", {"x": True})]
    assert _pairs(parse_gold('<tool_call>{"name": "a"}</tool_call>')) == [("a", {})]
    assert not parse_gold("nonsense")[0].ok


def test_tools_forms():
    wrapped = {"type": "function", "function": {"name": "f", "parameters": '{"type": "object"}'}}
    assert parse_tools([wrapped, json.dumps({"name": "g", "parameters": {"type": "object"}}), {"name": "h"}]) == {
        "f": {"type": "object"}, "g": {"type": "object"}, "h": {}}
    assert parse_tools("") is None and parse_tools("[1, 2]") is None and parse_tools("{") is None


def test_values_equal_canonical_json():
    assert values_equal({"a": [1, {"b": 2.0}]}, {"a": [1.0, {"b": 2}]})
    assert not values_equal([1, 2], [2, 1])
    assert not values_equal(True, 1) and not values_equal(0, False) and not values_equal(None, "null")
    assert values_equal(" 12 ", 12, coerce=True) and values_equal("1e3", 1000, coerce=True)
    assert not values_equal("12a", 12, coerce=True) and not values_equal("nan", float("nan"), coerce=True)
    assert values_equal(100.0, 100.5, rel_tol=0.01) and not values_equal(100.0, 102, rel_tol=0.01)
    assert not values_equal(10 ** 400, 1e308, abs_tol=1.0)


def test_match_exact_is_a_multiset_matching():
    f = [ToolCall("f", {"x": i}) for i in range(4)]
    assert match_exact(f, list(reversed(f))) == [(0, 3), (1, 2), (2, 1), (3, 0)]
    assert match_exact(f[:2], f[1:3]) is None
    assert match_exact([f[0], f[0]], [f[0], f[0]]) == [(0, 0), (1, 1)]
    # with a tolerance equality is not transitive: gold 1.0 and 1.1 against predicted 1.05 and 1.15 (tol 0.06)
    gold = [ToolCall("g", {"v": 1.0}), ToolCall("g", {"v": 1.1})]
    pred = [ToolCall("g", {"v": 1.05}), ToolCall("g", {"v": 1.15})]
    assert match_exact(gold, pred, abs_tol=0.06) == [(0, 0), (1, 1)]
    assert match_exact(gold, list(reversed(pred)), abs_tol=0.06) == [(0, 1), (1, 0)]


# -- ms-swift's agent templates (real parts) -------------------------------------------------------
def _random_calls(rng, n):
    names = ["get_weather", "search", "book_flight"]
    values = [1, 2.5, "Paris", "a \"quoted\" word", True, None, [1, "x"], {"k": {"n": 1}}, "多语言"]
    return [{"name": rng.choice(names),
             "arguments": {f"p{i}": rng.choice(values) for i in range(rng.randint(0, 4))}} for _ in range(n)]


def test_reads_what_swift_hermes_template_renders():
    agent = pytest.importorskip("swift.agent_template")
    template = agent.agent_template_map["hermes"]()
    rng = random.Random(0)
    for _ in range(200):
        calls = _random_calls(rng, rng.randint(1, 3))
        rows = [{"role": "tool_call", "content": json.dumps(c, ensure_ascii=False)} for c in calls]
        text = template._format_tool_calls(rows)
        assert _pairs(parse_text(text)) == [(c["name"], c["arguments"]) for c in calls]
        assert _pairs(parse_messages(rows)) == [(c["name"], c["arguments"]) for c in calls]
        theirs = template.get_toolcall(text)
        assert [(f.name, f.arguments if isinstance(f.arguments, dict) else json.loads(f.arguments))
                for f in theirs] == _pairs(parse_text(text))


def test_reads_what_swift_qwen3_coder_template_renders():
    agent = pytest.importorskip("swift.agent_template")
    template = agent.agent_template_map["qwen3_coder"]()
    rows = [{"role": "tool_call", "content": json.dumps({"name": "get_weather", "arguments": {
        "city": "Paris", "days": 3, "opts": {"unit": "C"}}})}]
    text = template._format_tool_calls(rows)
    schemas = {"get_weather": {"type": "object", "properties": {"city": {"type": "string"},
                                                                "days": {"type": "integer"}}}}
    assert _pairs(parse_text(text, schemas=schemas)) == [("get_weather", {"city": "Paris", "days": 3,
                                                                          "opts": {"unit": "C"}})]
    assert [f.name for f in template.get_toolcall(text)] == ["get_weather"]
