"""The tool-call fixture: gold calls, a completion made from them by one named change, and the verdicts that change
implies by definition (``python tool_call_cases.py`` rewrites ``tests/data/tool_calls.jsonl``).

The verdicts are not computed by swift-ext: each change below states what it does to equality, e.g. "a number
written as a string" is unequal under canonical JSON, equal once numeric strings are coerced, unequal with only
a float tolerance. Three verdicts per case: ``exact`` (defaults), ``coerce`` (``coerce=true``), ``tol``
(``abs_tol=1e-6``). ``readable`` says whether every call of the completion can be read.
"""

from __future__ import annotations

import copy
import json
import os
import random
from typing import Any, Dict, List, Tuple

FIXTURE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "tool_calls.jsonl")

GOLDS: List[List[Dict[str, Any]]] = [
    [{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}],
    [{"name": "get_weather", "arguments": {"city": "Paris", "days": 3, "unit": "celsius"}},
     {"name": "get_time", "arguments": {"timezone": "Europe/Paris"}}],
    [{"name": "search_flights", "arguments": {"from": "SFO", "to": "JFK", "date": "2025-05-01", "passengers": 2,
                                              "max_price": 450.5}}],
    [{"name": "create_event", "arguments": {"title": "Standup", "attendees": ["ann", "bob"],
                                            "when": {"start": "09:00", "end": "09:15", "tz": "UTC"},
                                            "reminder": True, "notes": None}}],
    [{"name": "math.add", "arguments": {"a": 2, "b": 0.3}}, {"name": "math.add", "arguments": {"a": 5, "b": 7}},
     {"name": "math.mul", "arguments": {"a": 1.5, "b": 4}}],
    [{"name": "send_email", "arguments": {"to": "x@y.z", "body": "Hi, \"friend\"\nSee you", "cc": []}}],
    [{"name": "list_files", "arguments": {}}],
    [{"name": "set_config", "arguments": {"opts": {"depth": {"max": 10, "min": 1}, "tags": [{"k": "a", "v": 1}]},
                                          "dry_run": False}}],
    [{"name": "lookup", "arguments": {"id": 42}}, {"name": "lookup", "arguments": {"id": 42}}],
    [{"name": "translate", "arguments": {"text": "héllo wörld 你好", "target": "de"}}],
]

# change -> (exact, coerce, tol, readable)
VERDICTS = {
    "identical": (1, 1, 1, True),
    "reordered_keys": (1, 1, 1, True),
    "reordered_calls": (1, 1, 1, True),
    "pretty_printed": (1, 1, 1, True),
    "one_block_per_line": (1, 1, 1, True),
    "arguments_as_json_string": (1, 1, 1, True),
    "parameters_key": (1, 1, 1, True),
    "int_as_float": (1, 1, 1, True),
    "unclosed_last_tag": (1, 1, 1, True),
    "with_reasoning_decoy": (1, 1, 1, True),
    "nested_reordered": (1, 1, 1, True),
    "number_as_string": (0, 1, 0, True),
    "float_off_by_1e-9": (0, 0, 1, True),
    "float_off_by_0.01": (0, 0, 0, True),
    "changed_string": (0, 0, 0, True),
    "changed_nested_value": (0, 0, 0, True),
    "list_reordered": (0, 0, 0, True),
    "missing_argument": (0, 0, 0, True),
    "extra_argument": (0, 0, 0, True),
    "wrong_name": (0, 0, 0, True),
    "missing_call": (0, 0, 0, True),
    "extra_call": (0, 0, 0, True),
    "bool_as_int": (0, 0, 0, True),
    "bool_as_string": (0, 0, 0, True),
    "null_as_string": (0, 0, 0, True),
    "no_call": (0, 0, 0, True),
    "truncated_json": (0, 0, 0, False),
    "trailing_comma": (0, 0, 0, False),
    "single_quotes": (0, 0, 0, False),
    "arguments_not_object": (0, 0, 0, False),
    "no_name": (0, 0, 0, False),
}


def _dump(call: Dict[str, Any], **kw) -> str:
    return json.dumps(call, ensure_ascii=False, **kw)


def _text(calls: List[Dict[str, Any]], rng: random.Random) -> str:
    sep = rng.choice(["\n", "", "\n\n"])
    return sep.join(f"<tool_call>\n{_dump(c)}\n</tool_call>" for c in calls)


def _paths(value: Any, path=()) -> List[Tuple[Any, ...]]:
    """Paths to the leaves (non-container values) of a JSON value."""
    if isinstance(value, dict):
        out = []
        for k, v in value.items():
            out += _paths(v, path + (k,))
        return out
    if isinstance(value, list):
        out = []
        for i, v in enumerate(value):
            out += _paths(v, path + (i,))
        return out
    return [path]


def _set(obj: Any, path, value) -> None:
    for p in path[:-1]:
        obj = obj[p]
    obj[path[-1]] = value


def _get(obj: Any, path) -> Any:
    for p in path:
        obj = obj[p]
    return obj


def _leaves(calls, pred) -> List[Tuple[int, Tuple[Any, ...]]]:
    return [(i, p) for i, c in enumerate(calls) for p in _paths(c["arguments"]) if p and pred(_get(c["arguments"], p))]


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def make(change: str, gold: List[Dict[str, Any]], rng: random.Random):
    """The completion text for ``change`` applied to ``gold``, or None when the change does not apply to it."""
    calls = copy.deepcopy(gold)
    if change == "identical":
        return _text(calls, rng)
    if change == "reordered_keys":
        if not any(len(c["arguments"]) > 1 for c in calls):
            return None
        calls = [{"arguments": dict(reversed(list(c["arguments"].items()))), "name": c["name"]} for c in calls]
        return _text(calls, rng)
    if change == "reordered_calls":
        if len(calls) < 2 or all(c == calls[0] for c in calls):
            return None
        return _text(list(reversed(calls)), rng)
    if change == "pretty_printed":
        return "".join(f"<tool_call>\n{_dump(c, indent=2)}\n</tool_call>\n" for c in calls)
    if change == "one_block_per_line":
        return "<tool_call>\n" + "\n".join(_dump(c) for c in calls) + "\n</tool_call>"
    if change == "arguments_as_json_string":
        return _text([{"name": c["name"], "arguments": _dump(c["arguments"])} for c in calls], rng)
    if change == "parameters_key":
        return _text([{"name": c["name"], "parameters": c["arguments"]} for c in calls], rng)
    if change == "int_as_float":
        leaves = _leaves(calls, lambda v: type(v) is int)
        if not leaves:
            return None
        i, p = rng.choice(leaves)
        _set(calls[i]["arguments"], p, float(_get(calls[i]["arguments"], p)))
        return _text(calls, rng)
    if change == "unclosed_last_tag":
        return _text(calls, rng).removesuffix("</tool_call>")
    if change == "with_reasoning_decoy":
        decoy = '<tool_call>{"name": "decoy", "arguments": {}}</tool_call>'
        return f"<think>maybe {decoy}? no.</think>\n" + _text(calls, rng)
    if change == "nested_reordered":
        nested = [(i, k) for i, c in enumerate(calls) for k, v in c["arguments"].items() if isinstance(v, dict)
                  and len(v) > 1]
        if not nested:
            return None
        i, k = rng.choice(nested)
        calls[i]["arguments"][k] = dict(reversed(list(calls[i]["arguments"][k].items())))
        return _text(calls, rng)
    if change == "number_as_string":
        leaves = _leaves(calls, _is_num)
        if not leaves:
            return None
        i, p = rng.choice(leaves)
        _set(calls[i]["arguments"], p, str(_get(calls[i]["arguments"], p)))
        return _text(calls, rng)
    if change in ("float_off_by_1e-9", "float_off_by_0.01"):
        leaves = _leaves(calls, _is_num)
        if not leaves:
            return None
        i, p = rng.choice(leaves)
        _set(calls[i]["arguments"], p, _get(calls[i]["arguments"], p) + (1e-9 if "1e-9" in change else 0.01))
        return _text(calls, rng)
    if change == "changed_string":
        leaves = _leaves(calls, lambda v: isinstance(v, str))
        if not leaves:
            return None
        i, p = rng.choice(leaves)
        _set(calls[i]["arguments"], p, _get(calls[i]["arguments"], p) + "x")
        return _text(calls, rng)
    if change == "changed_nested_value":
        leaves = [(i, p) for i, p in _leaves(calls, lambda v: True) if len(p) > 1]
        if not leaves:
            return None
        i, p = rng.choice(leaves)
        old = _get(calls[i]["arguments"], p)
        _set(calls[i]["arguments"], p, old + 1 if _is_num(old) else "changed")
        return _text(calls, rng)
    if change == "list_reordered":
        lists = [(i, k) for i, c in enumerate(calls) for k, v in c["arguments"].items() if isinstance(v, list)
                 and len(v) > 1 and v != v[::-1]]
        if not lists:
            return None
        i, k = rng.choice(lists)
        calls[i]["arguments"][k] = calls[i]["arguments"][k][::-1]
        return _text(calls, rng)
    if change == "missing_argument":
        with_args = [i for i, c in enumerate(calls) if c["arguments"]]
        if not with_args:
            return None
        i = rng.choice(with_args)
        calls[i]["arguments"].pop(rng.choice(sorted(calls[i]["arguments"])))
        return _text(calls, rng)
    if change == "extra_argument":
        i = rng.randrange(len(calls))
        calls[i]["arguments"]["verbose"] = True
        return _text(calls, rng)
    if change == "wrong_name":
        i = rng.randrange(len(calls))
        calls[i]["name"] = calls[i]["name"] + "_v2"
        return _text(calls, rng)
    if change == "missing_call":
        if len(calls) < 2:
            return None
        calls.pop(rng.randrange(len(calls)))
        return _text(calls, rng)
    if change == "extra_call":
        calls.append(copy.deepcopy(rng.choice(calls)))
        return _text(calls, rng)
    if change == "bool_as_int":
        leaves = _leaves(calls, lambda v: isinstance(v, bool))
        if not leaves:
            return None
        i, p = rng.choice(leaves)
        _set(calls[i]["arguments"], p, int(_get(calls[i]["arguments"], p)))
        return _text(calls, rng)
    if change == "bool_as_string":
        leaves = _leaves(calls, lambda v: isinstance(v, bool))
        if not leaves:
            return None
        i, p = rng.choice(leaves)
        _set(calls[i]["arguments"], p, str(_get(calls[i]["arguments"], p)).lower())
        return _text(calls, rng)
    if change == "null_as_string":
        leaves = _leaves(calls, lambda v: v is None)
        if not leaves:
            return None
        i, p = rng.choice(leaves)
        _set(calls[i]["arguments"], p, "null")
        return _text(calls, rng)
    if change == "no_call":
        return rng.choice(["I cannot help with that.", "", "<think>call get_weather?</think>The weather is fine."])
    if change == "truncated_json":
        text = _text(calls, rng)
        last = text.rfind("}")
        return text[:last - 1].rstrip() if last > 2 else None
    if change == "trailing_comma":
        i = rng.randrange(len(calls))
        blocks = [_dump(c) for c in calls]
        blocks[i] = blocks[i][:-1] + ",}"
        return "".join(f"<tool_call>\n{b}\n</tool_call>" for b in blocks)
    if change == "single_quotes":
        i = rng.randrange(len(calls))
        blocks = [_dump(c) for c in calls]
        blocks[i] = blocks[i].replace('"', "'")
        return "".join(f"<tool_call>\n{b}\n</tool_call>" for b in blocks)
    if change == "arguments_not_object":
        i = rng.randrange(len(calls))
        calls[i]["arguments"] = list(calls[i]["arguments"].values())
        return _text(calls, rng)
    if change == "no_name":
        i = rng.randrange(len(calls))
        calls[i].pop("name")
        return _text(calls, rng)
    raise KeyError(change)


def generate(seed: int = 0) -> List[Dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for rep in range(2):
        for g, gold in enumerate(GOLDS):
            for change, (exact, coerce, tol, readable) in VERDICTS.items():
                completion = make(change, gold, rng)
                if completion is None or (rep and change in ("identical", "no_call")):
                    continue
                rows.append({"id": f"{g}-{change}-{rep}", "change": change, "gold": gold,
                             "completion": completion, "exact": exact, "coerce": coerce, "tol": tol,
                             "readable": readable})
    return rows


if __name__ == "__main__":
    rows = generate()
    with open(FIXTURE, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(rows)} cases, {sum(len(r['gold']) for r in rows)} gold calls -> {FIXTURE}")
