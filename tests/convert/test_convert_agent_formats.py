"""The function_calling and ifeval input formats, and tool_call turns as an answer (in-process; ms-swift reads the
outputs in test_convert_agent_load.py)."""

import json
import re
from pathlib import Path

import pytest

from swift_ext.convert import convert_file
from swift_ext.convert.formats import detect, read_row
from swift_ext.convert.function_calling import parameters_schema
from swift_ext.convert.rows import RowError
from swift_ext.rewards import build

DATA = Path(__file__).resolve().parents[1] / "data" / "convert"


def _rows(path):
    return [json.loads(x) for x in Path(path).read_text().splitlines()]


def test_detection():
    assert detect({"query": "q", "tools": "[]", "answers": "[]"}).name == "function_calling"
    assert detect({"prompt": "p", "instruction_id_list": [], "kwargs": []}).name == "ifeval"
    assert detect({"query": "q", "response": "r"}).name == "query_response"


def test_xlam_parameters_become_a_json_schema():
    schema = parameters_schema({"numbers": {"type": "List[float]", "description": "n"},
                                "reverse": {"type": "bool, optional", "default": False},
                                "mode": {"type": "Literal['a', 'b']"}, "opts": {"type": "Dict[str, Any]"}})
    assert schema == {"type": "object", "properties": {
        "numbers": {"type": "array", "description": "n"}, "reverse": {"type": "boolean", "default": False},
        "mode": {}, "opts": {"type": "object"}}, "required": ["numbers", "mode", "opts"]}
    kept = {"type": "object", "properties": {"x": {"type": "integer"}}}
    assert parameters_schema(json.dumps(kept)) == kept


@pytest.mark.parametrize("task", ["sft", "grpo"])
def test_function_calling_file(tmp_path, task):
    out = tmp_path / f"fc.{task}.jsonl"
    report = convert_file(str(DATA / "function_calling.jsonl"), str(out), task)
    assert report.rows_rejected == 0
    rows, src = _rows(out), _rows(DATA / "function_calling.jsonl")
    for row, raw in zip(rows, src):
        gold = raw["answers"] if isinstance(raw["answers"], list) else json.loads(raw["answers"])
        assert json.loads(row["solution"]) == gold
        assert [t["type"] for t in json.loads(row["tools"])] == ["function"] * len(json.loads(row["tools"]))
        assert row["id"] == raw["id"]                                          # other columns pass through
        if task == "sft":
            assert [json.loads(m["content"]) for m in row["messages"] if m["role"] == "tool_call"] == gold
        else:
            assert row["messages"][-1]["role"] == "user"
    assert rows[3]["messages"][0] == {"role": "system", "content": "You are a helpful assistant with tools."}
    # the converted gold and tools grade the gold calls as right, and validate them against the schemas
    if task == "grpo":
        completions = ["".join(f"<tool_call>{json.dumps(c)}</tool_call>" for c in json.loads(r["solution"]))
                       for r in rows]
        cols = {"solution": [r["solution"] for r in rows], "tools": [r["tools"] for r in rows]}
        assert build("tool_call")(completions, **cols) == [1.0] * 4
        assert build("tool_call:mode=schema")(completions, **cols) == [1.0] * 4


@pytest.mark.parametrize("row, why", [
    ({"query": "q", "tools": "[]", "answers": "[]"}, "non-empty list of tools"),
    ({"query": "q", "tools": '[{"name": "f"}]', "answers": '[{"name": "g", "arguments": {}}]'}, "does not define"),
    ({"query": "q", "tools": '[{"name": "f"}]', "answers": '[{"name": "f", "arguments": "{x"}]'}, "answers[0]"),
    ({"query": "q", "tools": '[{"name": "f"}]', "answers": "not json"}, "answers[0]"),
    ({"tools": '[{"name": "f"}]', "answers": "[]"}, "no prompt"),
    ({"query": "q", "tools": '[{"description": "x"}]', "answers": "[]"}, "has no name"),
    ({"query": "q", "tools": '[{"name": "f", "parameters": {"x": 3}}]', "answers": "[]"}, "tools[0].parameters.x"),
])
def test_function_calling_rejects_with_a_reason(row, why):
    with pytest.raises(RowError, match=re.escape(why)):
        read_row(row)


def test_ifeval_file(tmp_path):
    out = tmp_path / "ifeval.grpo.jsonl"
    report = convert_file(str(DATA / "ifeval.jsonl"), str(out), "grpo")
    assert report.rows_rejected == 0
    rows, src = _rows(out), _rows(DATA / "ifeval.jsonl")
    for row, raw in zip(rows, src):
        assert row["instruction_id_list"] == raw["instruction_id_list"] and row["kwargs"] == raw["kwargs"]
        assert row["messages"] == [{"role": "user", "content": raw["prompt"]}] and "solution" not in row


@pytest.mark.parametrize("row, why", [
    ({"prompt": "p", "instruction_id_list": ["keywords:nope"], "kwargs": [{}]}, "unknown instruction id"),
    ({"prompt": "p", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}, {}]}, "one entry per"),
    ({"prompt": "p", "instruction_id_list": ["length_constraints:number_words"], "kwargs": [{"num_words": 3}]},
     "relation"),
    ({"prompt": "p", "instruction_id_list": [], "kwargs": []}, "non-empty list"),
])
def test_ifeval_rows_that_cannot_be_checked_are_rejected(row, why):
    with pytest.raises(RowError, match=re.escape(why)):
        read_row(row)


def test_swift_rows_ending_in_tool_calls(tmp_path):
    src = tmp_path / "agent.jsonl"
    call = {"name": "w", "arguments": {"c": "P"}}
    src.write_text(json.dumps({"messages": [
        {"role": "user", "content": "Weather?"}, {"role": "tool_call", "content": json.dumps(call)},
        {"role": "tool_call", "content": "{'name': 'x', 'arguments': {}}"}], "tools": '[{"name": "w"}]'}) + "\n")
    for task in ("sft", "grpo"):
        assert convert_file(str(src), str(tmp_path / f"o.{task}.jsonl"), task).rows_rejected == 0
    grpo = _rows(tmp_path / "o.grpo.jsonl")[0]
    assert grpo["messages"] == [{"role": "user", "content": "Weather?"}]
    assert json.loads(grpo["solution"]) == [call, {"name": "x", "arguments": {}}]
    assert _rows(tmp_path / "o.sft.jsonl")[0]["messages"][-1]["role"] == "tool_call"
