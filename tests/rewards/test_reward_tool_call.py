"""tool_call: ToolRL's correctness score reproduced (partial), the hand-defined fixture (exact), schema mode, the row
contract.

The reference for ``partial`` is ToolRL's ``verl/utils/reward_score/rlla.py`` (qiancheng0/ToolRL, Apache-2.0; the
reward issue 20 calls "verl rlla.py"). It cannot be installed: it is not on PyPI, and verl's own package does not
ship it. :func:`rlla_correctness` below re-derives its published correctness reward from that file's definition
(``customize_correctness_reward_tool`` with ``compute_tool_call_reward`` and ``match_score``), on its own data
format: the first ``<tool_call>`` block, one JSON object per line, ``{"name", "parameters"}``, values compared
with Python ``==``, any parse failure scoring the minimum. It is called with ``max_possible_reward=1`` and
``min_possible_reward=0``, the [0, 1] scale swift-ext reports.
"""

import json
import random
from collections import Counter

import pytest

from swift_ext.rewards import build
from swift_ext.rewards.tool_call import ToolCallReward

from tool_call_cases import FIXTURE, generate


# -- the reference, re-derived -------------------------------------------------------------------
def _overlap(a, b):
    """rlla's match_score: equal lists 1; an empty side 0; else |a & b| / (|a| + |b| - |a & b|) over multisets."""
    if a == b:
        return 1.0
    if not a or not b:
        return 0.0
    shared = sum((Counter(a) & Counter(b)).values())
    return shared / (len(a) + len(b) - shared)


def _rlla_tools(gt, pd, hi, lo):
    if gt == pd:
        return hi
    points = _overlap([t["name"] for t in gt], [t["name"] for t in pd])
    most = 1.0
    taken = set()
    for g in gt:
        most += 1.0 + len(g["parameters"])
        best, where = 0.0, None
        for j, p in enumerate(pd):
            if j in taken or p["name"] != g["name"]:
                continue
            value = _overlap(list(g["parameters"]), list(p["parameters"]))
            value += sum(1.0 for k, v in g["parameters"].items() if k in p["parameters"] and p["parameters"][k] == v)
            if value > best:
                best, where = value, j
        if where is not None:
            taken.add(where)
            points += best
    return (hi - lo) * points / most + lo


def _first_block_lines(text):
    return text.split("<tool_call>")[1].split("</tool_call>")[0].strip().split("\n")


def rlla_correctness(response, answer, hi=1.0, lo=0.0):
    """ToolRL's tool-call correctness reward of one response against its answer text."""
    if "<tool_call>" not in answer:
        return 0.0
    gt = [json.loads(line) for line in _first_block_lines(answer)]
    try:
        if "<tool_call>" not in response or "</tool_call>" not in response:
            return lo
        pd = [json.loads(line) for line in _first_block_lines(response)]
        return _rlla_tools(gt, pd, hi, lo)
    except Exception:
        return lo


# -- cases in ToolRL's format ---------------------------------------------------------------------
NAMES = ["search", "get_weather", "book", "convert", "lookup"]
KEYS = ["query", "city", "days", "limit", "unit", "date", "ids", "opts"]
VALUES = [1, 2, 3, 2.5, 0.1, "Paris", "paris", "2024-01-01", "kg", [1, 2], [2, 1], {"a": 1}, {"a": 2}, None, "", 0]


def _call(rng):
    keys = rng.sample(KEYS, rng.randint(0, 4))
    return {"name": rng.choice(NAMES), "parameters": {k: rng.choice(VALUES) for k in keys}}


def _perturb(rng, calls):
    calls = json.loads(json.dumps(calls))
    for _ in range(rng.randint(0, 3)):
        kind = rng.random()
        if kind < 0.15 and calls:
            calls.pop(rng.randrange(len(calls)))
        elif kind < 0.3:
            calls.append(_call(rng) if rng.random() < 0.5 or not calls else json.loads(json.dumps(rng.choice(calls))))
        elif kind < 0.45 and calls:
            rng.choice(calls)["name"] = rng.choice(NAMES)
        elif kind < 0.6 and calls:
            c = rng.choice(calls)
            if c["parameters"]:
                c["parameters"].pop(rng.choice(sorted(c["parameters"])))
        elif kind < 0.75 and calls:
            rng.choice(calls)["parameters"][rng.choice(KEYS)] = rng.choice(VALUES)
        elif kind < 0.9:
            rng.shuffle(calls)
        elif calls:
            c = rng.choice(calls)
            c["parameters"] = dict(reversed(list(c["parameters"].items())))
    return calls


def _as_text(calls, rng):
    lines = "\n".join(json.dumps(c) for c in calls)
    return rng.choice(["", "<think>I should call a tool.</think>\n"]) + f"<tool_call>\n{lines}\n</tool_call>"


def rlla_cases(n=3000, seed=7):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        gold = [_call(rng) for _ in range(rng.randint(1, 3))]
        answer = "<think>plan</think>\n<tool_call>\n" + "\n".join(json.dumps(c) for c in gold) + "\n</tool_call>"
        pick = rng.random()
        if pick < 0.05:
            response = rng.choice(["No tool needed.", "<tool_call>\n", "<response>hi</response>"])
        elif pick < 0.1:
            response = _as_text(gold, rng).replace('"}', '"', 1)           # malformed JSON
        elif pick < 0.15:
            response = _as_text([], rng)                                   # an empty block
        else:
            response = _as_text(_perturb(rng, gold) if pick > 0.25 else gold, rng)
        out.append((response, answer))
    return out


def test_partial_reproduces_toolrl_exactly():
    reward = ToolCallReward(mode="partial")
    cases = rlla_cases()
    ours = reward([r for r, _ in cases], solution=[a for _, a in cases])
    ref = [rlla_correctness(r, a) for r, a in cases]
    diffs = [(c, o, e) for c, o, e in zip(cases, ours, ref) if o != e]
    assert not diffs, f"{len(diffs)} of {len(cases)} differ from ToolRL; first: {diffs[0]}"
    values = Counter(round(v, 6) for v in ref)
    assert len(values) > 30 and values[1.0] and values[0.0]          # the cases reach many partial scores


@pytest.mark.parametrize("response, expected", [
    # one gold call f(a=1, b=2): max = 1 (names) + (1 + 2) = 4
    ('<tool_call>\n{"name": "f", "parameters": {"a": 1, "b": 2}}\n</tool_call>', 1.0),
    # right name (1) + keys equal (1) + one value right (1) = 3 of 4
    ('<tool_call>\n{"name": "f", "parameters": {"a": 1, "b": 3}}\n</tool_call>', 0.75),
    # name 1 + keys {a} vs {a, b}: 1/2 + value a: 1 = 2.5 of 4
    ('<tool_call>\n{"name": "f", "parameters": {"a": 1}}\n</tool_call>', 0.625),
    # names [f] vs [f, g]: 1/2; f matched fully 3 -> 3.5 of 4
    ('<tool_call>\n{"name": "f", "parameters": {"a": 1, "b": 2}}\n{"name": "g", "parameters": {}}\n</tool_call>',
     0.875),
    ('<tool_call>\n{"name": "g", "parameters": {"a": 1, "b": 2}}\n</tool_call>', 0.0),
    ('<tool_call>\n{"name": "f", "parameters": {"a": 1, "b": 2}\n</tool_call>', 0.0),
])
def test_partial_hand_computed(response, expected):
    answer = '<tool_call>\n{"name": "f", "parameters": {"a": 1, "b": 2}}\n</tool_call>'
    assert rlla_correctness(response, answer) == expected
    assert ToolCallReward(mode="partial")([response], solution=[answer]) == [expected]


def test_optimal_matching_never_below_greedy():
    greedy, optimal = ToolCallReward(mode="partial"), ToolCallReward(mode="partial", matching="optimal")
    cases = rlla_cases(800, seed=11)
    a = greedy([r for r, _ in cases], solution=[g for _, g in cases])
    b = optimal([r for r, _ in cases], solution=[g for _, g in cases])
    assert all(y >= x - 1e-12 for x, y in zip(a, b))
    # gold f(a=1,b=2), f(c=1); predicted f(a=1,b=2,c=1), f(a=1): greedy gives gold 1 its best partner (the first,
    # 2/3 + 2), leaving gold 2 nothing (0); optimal pairs gold 1 with the second (1/2 + 1) and gold 2 with the first
    # (1/3 + 1): (1 + 8/3) / 6 < (1 + 17/6) / 6
    gold = '[{"name": "f", "arguments": {"a": 1, "b": 2}}, {"name": "f", "arguments": {"c": 1}}]'
    text = ('<tool_call>{"name": "f", "arguments": {"a": 1, "b": 2, "c": 1}}</tool_call>'
            '<tool_call>{"name": "f", "arguments": {"a": 1}}</tool_call>')
    g, o = greedy([text], solution=[gold])[0], optimal([text], solution=[gold])[0]
    assert g == pytest.approx((1 + 2 / 3 + 2) / 6) and o == pytest.approx((1 + 1.5 + 1 / 3 + 1) / 6)
    assert o > g


# -- documented differences from ToolRL (what each does, on purpose) -------------------------------
def test_differences_from_toolrl_are_the_documented_ones():
    answer = '<tool_call>\n{"name": "f", "parameters": {"a": 1}}\n{"name": "g", "parameters": {"b": true}}\n</tool_call>'
    partial = ToolCallReward(mode="partial")
    # several <tool_call> blocks (Qwen / Hermes): ToolRL reads only the first block
    two_blocks = ('<tool_call>\n{"name": "f", "parameters": {"a": 1}}\n</tool_call>\n'
                  '<tool_call>\n{"name": "g", "parameters": {"b": true}}\n</tool_call>')
    assert partial([two_blocks], solution=[answer]) == [1.0] and rlla_correctness(two_blocks, answer) < 1.0
    # an unclosed last block (a completion cut short): ToolRL scores the minimum
    unclosed = '<tool_call>\n{"name": "f", "parameters": {"a": 1}}\n{"name": "g", "parameters": {"b": true}}'
    assert partial([unclosed], solution=[answer]) == [1.0] and rlla_correctness(unclosed, answer) == 0.0
    # JSON true vs 1: Python's True == 1 makes them equal in ToolRL, canonical JSON does not
    as_int = '<tool_call>\n{"name": "f", "parameters": {"a": 1}}\n{"name": "g", "parameters": {"b": 1}}\n</tool_call>'
    assert rlla_correctness(as_int, answer) == 1.0
    assert partial([as_int], solution=[answer]) == [(1 + (1 + 1) + (1 + 0)) / 5]    # names, f(a), g keys only
    # a gold answer without calls: ToolRL gives the constant 0 (no signal); swift-ext abstains (no signal)
    assert rlla_correctness(two_blocks, "<response>hi</response>") == 0.0
    assert partial([two_blocks], solution=["<response>hi</response>"]) == [None]


# -- the fixture: verdicts by definition ----------------------------------------------------------
def _fixture():
    with open(FIXTURE, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def test_fixture_is_current():
    assert _fixture() == json.loads(json.dumps(generate()))


def test_fixture_size():
    rows = _fixture()
    assert sum(len(r["gold"]) for r in rows) >= 300
    assert {r["change"] for r in rows} >= {"reordered_keys", "reordered_calls", "number_as_string", "truncated_json",
                                           "changed_nested_value", "nested_reordered"}


@pytest.mark.parametrize("spec, column", [("tool_call", "exact"), ("tool_call:coerce=true", "coerce"),
                                          ("tool_call:abs_tol=1e-6", "tol")])
def test_fixture_verdicts(spec, column):
    rows = _fixture()
    reward = build(spec)
    got = reward([r["completion"] for r in rows], solution=[json.dumps(r["gold"]) for r in rows])
    wrong = [(r["id"], r[column], g) for r, g in zip(rows, got) if g != r[column]]
    assert not wrong, f"{len(wrong)} verdicts differ: {wrong[:5]}"


def test_fixture_unreadable_calls_have_reasons():
    reward = ToolCallReward()
    for r in _fixture():
        if r["readable"]:
            continue
        out = reward.explain(r["completion"], solution=r["gold"])
        assert out["score"] == 0.0
        assert "cannot be read" in out["reason"], (r["id"], out["reason"])


# -- the row contract -----------------------------------------------------------------------------
GOLD = [{"name": "get_weather", "arguments": {"city": "Paris"}}]
CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'


@pytest.mark.parametrize("gold", [
    json.dumps(GOLD), GOLD, GOLD[0], json.dumps(GOLD[0]),
    [{"type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}],
    [{"role": "tool_call", "content": json.dumps(GOLD[0])}],
    "[{'name': 'get_weather', 'arguments': {'city': 'Paris'}}]",          # a Python literal, as ms-swift reads rows
    CALL,
])
def test_gold_shapes(gold):
    assert ToolCallReward()([CALL], solution=[gold]) == [1.0]


@pytest.mark.parametrize("gold", [None, "", "not json at all", '[{"arguments": {}}]'])
def test_unusable_gold_abstains(gold):
    assert ToolCallReward()([CALL], solution=[gold]) == [None]
    assert ToolCallReward(mode="partial")([CALL], solution=[gold]) == [None]


def test_no_call_expected():
    r = ToolCallReward()
    assert r(["The answer is 4.", CALL], solution=["[]", "[]"]) == [1.0, 0.0]


def test_gold_key_parameter():
    assert build("tool_call:gold_key=calls")([CALL], calls=[GOLD]) == [1.0]


def test_never_raises_on_hostile_completions():
    r = ToolCallReward(mode="partial")
    hostile = ["<tool_call>" + "[" * 100_000, "<tool_call>" * 10_000, "<tool_call>{" + '"a":' * 50_000,
               "<tool_call>" + "x" * 300_000 + "</tool_call>", None, 12, "<tool_call>\x00</tool_call>"]
    assert r(hostile, solution=[json.dumps(GOLD)] * len(hostile)) == [0.0] * len(hostile)


def test_explain_shows_calls_and_reason():
    out = ToolCallReward().explain('<tool_call>{"name": "get_weather", "arguments": {"city": "Rome"}}</tool_call>',
                                   solution=GOLD)
    assert out["score"] == 0.0
    assert out["calls"] == [{"name": "get_weather", "arguments": {"city": "Rome"}}]
    assert out["reason"] == "'get_weather' called with city=\"Rome\", expected \"Paris\": 0"


# -- schema mode ----------------------------------------------------------------------------------
TOOLS = json.dumps([{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
    "required": ["city"], "additionalProperties": False}}}])


@pytest.mark.parametrize("completion, expected", [
    (CALL, 1.0),
    ('<tool_call>{"name": "get_weather", "arguments": {"days": 2}}</tool_call>', 0.0),               # required
    ('<tool_call>{"name": "get_weather", "arguments": {"city": "P", "days": 0}}</tool_call>', 0.0),  # minimum
    ('<tool_call>{"name": "get_weather", "arguments": {"city": "P", "x": 1}}</tool_call>', 0.0),     # additional
    (CALL + '<tool_call>{"name": "nope", "arguments": {}}</tool_call>', 0.5),                         # unknown tool
    (CALL + '<tool_call>{"name": "get_weather", "arguments": {"city": </tool_call>', 0.5),            # unreadable
    ("no call", 0.0),
])
def test_schema_mode(completion, expected):
    assert build("tool_call:mode=schema")([completion], tools=[TOOLS]) == [expected]


def test_schema_mode_abstains_without_tools_or_with_a_bad_schema():
    r = build("tool_call:mode=schema")
    bad = json.dumps([{"name": "get_weather", "parameters": {"type": "objekt"}}])
    assert r([CALL, CALL], tools=[None, bad]) == [None, None]


def test_schema_mode_types_qwen3_coder_values_by_schema():
    xml = "<tool_call>\n<function=get_weather>\n<parameter=city>\n42\n</parameter>\n<parameter=days>\n3\n" \
          "</parameter>\n</function>\n</tool_call>"
    assert build("tool_call:mode=schema")([xml], tools=[TOOLS]) == [1.0]     # city stays "42", days becomes 3


def test_pickles_and_configures_by_spec():
    import pickle

    r = build("tool_call:mode=partial,coerce=true")
    clone = pickle.loads(pickle.dumps(r))
    assert clone.mode == "partial" and clone.coerce is True
    assert clone([CALL], solution=[GOLD]) == [1.0]
