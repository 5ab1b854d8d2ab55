"""Tool-call correctness: the calls a completion makes against the row's gold calls, or against the row's tools.

Calls are read by :mod:`swift_ext.tools.parse` (Qwen / Hermes ``<tool_call>`` blocks, Qwen3-Coder XML) and compared
by :mod:`swift_ext.tools.match` (arguments as canonical JSON, parallel calls as a multiset).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..params import Param
from ..tools.match import same_kinds, calls_equal, match_exact, values_equal
from ..tools.parse import ToolCall, parse_gold, parse_text, parse_tools
from .base import Reward, Score, column
from .contract import Example

_CACHE_SIZE = 64


def name_overlap(a: Sequence[Any], b: Sequence[Any]) -> float:
    """ToolRL's ``match_score``: 1 for equal lists, 0 when one is empty, else the multiset Jaccard index
    ``|a ∩ b| / (|a| + |b| - |a ∩ b|)``.

    >>> name_overlap(["f", "g"], ["g", "f"]), name_overlap(["f"], ["f", "g"]), name_overlap([], [])
    (1.0, 0.5, 1.0)
    """
    if a == b:
        return 1.0
    if not a or not b:
        return 0.0
    rest = list(b)
    inter = 0
    for x in a:                                  # the multiset intersection, without building two Counters
        if x in rest:
            rest.remove(x)
            inter += 1
    return inter / (len(a) + len(b) - inter)


def _gold_info(value: Any) -> Optional[Tuple[List[ToolCall], List[str], List[Tuple[str, Any]], float]]:
    """The parsed gold calls with what partial mode needs of them every time: names, (name, arguments) pairs and
    ToolRL's maximum ``1 + sum(1 + n_args)`` (computed once per gold; a GRPO group shares it)."""
    gold = parse_gold(value)
    if gold is None:
        return None
    ok = all(g.ok for g in gold)
    top = 1.0
    for g in gold:                                          # accumulated in order, as ToolRL does
        top += 1.0 + (len(g.arguments) if ok else 0)
    return gold, [g.name for g in gold], [(g.name, g.arguments) for g in gold], top


class ToolCallReward(Reward):
    """Tool-call correctness against the gold calls in ``solution`` (or validity against the row's ``tools``).

    The completion's calls are read from Qwen / Hermes ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``
    blocks (several per turn, one JSON object per line or pretty-printed, the last block may be unclosed) and from
    Qwen3-Coder ``<function=...>`` XML; reasoning before ``</think>`` is ignored. The gold (``gold_key``, default
    ``solution``) is a JSON list of calls (a string or a list: ``[{"name": ..., "arguments": {...}}]``, OpenAI
    ``{"type": "function", "function": {...}}`` objects too) or ``<tool_call>`` text; ``[]`` means "no call
    expected". Arguments compare as canonical JSON: key order never matters, ``1`` equals ``1.0``; ``coerce``
    makes ``"5"`` equal ``5``; ``rel_tol`` / ``abs_tol`` give numbers a tolerance. Parallel calls match as a
    multiset (order does not matter) through a best bipartite matching.

    Modes:

    * ``exact`` (default): 1 when the calls equal the gold calls one to one, else 0.
    * ``partial``: ToolRL's (``rlla.py``) correctness score mapped to [0, 1]: the name overlap of the call lists,
      plus for each gold call its best same-name predicted call's argument-key overlap and number of equal
      argument values, over ``1 + sum(1 + n_args)``. Gold calls pick their partner greedily in order, as ToolRL
      does (``matching=optimal``: the pairing with the highest total).
    * ``schema``: the fraction of the completion's calls that name a tool of the row's ``tools`` (``tools_key``)
      and whose arguments validate against its JSON schema (needs no gold).

    No call where the gold expects one scores 0; with gold ``[]``, no call scores 1 and any call 0 (``exact`` and
    ``partial``). A call that cannot be read (malformed JSON, no name, arguments that are not an object) makes the
    completion score 0, with the reason in ``swift-ext rewards explain``.

    On the command line: ``--reward_funcs tool_call`` or ``tool_call:mode=partial,coerce=true``.

    Example:
        >>> r = ToolCallReward()
        >>> gold = '[{"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}]'
        >>> r(['<tool_call>\\n{"name": "get_weather", "arguments": {"days": 2, "city": "Paris"}}\\n</tool_call>',
        ...    '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris", "days": "2"}}</tool_call>',
        ...    '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris", "days": 2</tool_call>'],
        ...   solution=[gold] * 3)
        [1.0, 0.0, 0.0]
        >>> ToolCallReward(mode="partial")(['<tool_call>{"name": "get_weather", "arguments": {"city": "Rome", "days": 2}}'
        ...                            '</tool_call>'], solution=[gold])   # (1 + 1 + 1) / (1 + 1 + 2)
        [0.75]
    """

    name = "tool_call"
    examples = (  # the gold call; another tool; JSON that does not parse (a reasoned 0)
        Example("full", '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>', 1.0,
                solution='[{"name": "get_weather", "arguments": {"city": "Paris"}}]'),
        Example("zero", '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>', 0.0, solution='[{"name": "get_weather", "arguments": {"city": "Paris"}}]'),
        Example("malformed", '<tool_call>{"name": broken</tool_call>', 0.0, solution='[{"name": "get_weather", "arguments": {"city": "Paris"}}]'),
    )
    abstains = ("when the gold column is missing or unreadable (exact, partial), or when the row has no usable "
                "tools or a tool schema that is not a valid JSON schema (schema)")
    params = {
        "mode": Param("exact", "exact: all calls right (1/0); partial: ToolRL's name + argument-key + argument-value "
                      "score; schema: fraction of calls valid against the row's tools", choices=("exact", "partial",
                                                                                                  "schema")),
        "gold_key": Param("solution", "dataset column holding the gold calls (JSON list of calls, or <tool_call> text)"),
        "tools_key": Param("tools", "dataset column holding the tools (JSON schemas; schema mode, Qwen3-Coder types)"),
        "coerce": Param(False, "a string holding a number equals that number (\"5\" == 5)"),
        "rel_tol": Param(0.0, "relative tolerance for numbers", min=0.0),
        "abs_tol": Param(0.0, "absolute tolerance for numbers", min=0.0),
        "matching": Param("greedy", "partial mode: greedy (gold calls in order pick their best partner, as ToolRL) "
                          "or optimal (the best total pairing)", choices=("greedy", "optimal")),
    }

    def setup(self) -> None:
        if self.mode == "schema":
            try:
                import jsonschema  # noqa: F401
            except ImportError:
                raise ImportError("reward tool_call:mode=schema needs jsonschema: pip install jsonschema") from None
        self._gold_cache: "OrderedDict[str, Any]" = OrderedDict()
        self._tools_cache: "OrderedDict[str, Any]" = OrderedDict()
        self._validators: "OrderedDict[str, Any]" = OrderedDict()

    def __getstate__(self):
        state = super().__getstate__()
        for key in ("_gold_cache", "_tools_cache", "_validators"):
            state[key] = OrderedDict()
        return state

    def needed_columns(self):
        return (self.gold_key, self.tools_key)

    # -- reading the row ------------------------------------------------------------------------------
    def _cached(self, cache: "OrderedDict[str, Any]", value: Any, parse) -> Any:
        if not isinstance(value, str):
            return parse(value)
        got = cache.get(value, cache)
        if got is cache:
            got = cache[value] = parse(value)
            if len(cache) > _CACHE_SIZE:
                cache.popitem(last=False)
        return got

    # -- scoring --------------------------------------------------------------------------------------
    def score(self, completion: str, **row: Any) -> Score:
        return self.judge(completion, row)[0]

    def score_batch(self, completions: Sequence[str], rows) -> List[Score]:
        judge = self._grade
        return [judge(c, g, t)[0] for c, g, t in zip(completions, column(rows, self.gold_key),
                                                     column(rows, self.tools_key))]

    def judge(self, completion: str, row: Dict[str, Any], detail: bool = False) -> Tuple[Score, Dict[str, Any]]:
        """``(score, details)``; the details (``detail=True``) say what was parsed and compared, and why."""
        return self._grade(completion, row.get(self.gold_key), row.get(self.tools_key), detail)

    def _grade(self, completion: str, gold_value: Any, tools_value: Any,
               detail: bool = False) -> Tuple[Score, Dict[str, Any]]:
        tools = self._cached(self._tools_cache, tools_value, parse_tools) if tools_value is not None else None
        calls = parse_text(completion, schemas=tools)
        info: Dict[str, Any] = {}
        if detail:
            info["calls"] = [c.to_dict() for c in calls]
        bad = [i for i, c in enumerate(calls) if c.error is not None]
        if self.mode == "schema":
            return self._judge_schema(calls, tools, info, detail)
        gold_info = self._cached(self._gold_cache, gold_value, _gold_info)
        gold = gold_info[0] if gold_info is not None else None
        if detail:
            info["gold_calls"] = None if gold is None else [c.to_dict() for c in gold]
        if gold is None:
            info["reason"] = f"abstained: no gold calls in column {self.gold_key!r}"
            return None, info
        gold_bad = [c for c in gold if not c.ok]
        if gold_bad:
            info["reason"] = f"abstained: a gold call cannot be read ({gold_bad[0].error})"
            return None, info
        if bad:
            info["reason"] = f"call {bad[0] + 1} cannot be read: {calls[bad[0]].error}: 0"
            return 0.0, info
        if not gold:
            ok = not calls
            info["reason"] = ("no call expected and none made: 1" if ok else
                              f"no call expected, {len(calls)} made: 0")
            return float(ok), info
        if not calls:
            info["reason"] = f"no tool call in the completion ({len(gold)} expected): 0"
            return 0.0, info
        opts = (self.coerce, self.rel_tol, self.abs_tol)
        if self.mode == "exact":
            pairs = match_exact(gold, calls, *opts)
            if detail:
                info["matched_pairs"] = pairs
            if pairs is not None:
                info["reason"] = f"all {len(gold)} call(s) match the gold: 1"
                return 1.0, info
            info["reason"] = self._why_not(gold, calls, opts)
            return 0.0, info
        return self._judge_partial(gold_info, calls, opts, info, detail)

    def _why_not(self, gold: List[ToolCall], calls: List[ToolCall], opts) -> str:
        if len(gold) != len(calls):
            return f"{len(calls)} call(s) made, {len(gold)} expected: 0"
        for g in gold:
            if not any(calls_equal(g, c, *opts) for c in calls):
                same = [c for c in calls if c.name == g.name]
                if not same:
                    return f"no call of {g.name!r}: 0"
                keys = sorted(set(g.arguments) ^ set(same[0].arguments))
                if keys:
                    return f"{g.name!r} called with argument keys differing in {keys}: 0"
                diff = [k for k in g.arguments if not values_equal(g.arguments[k], same[0].arguments[k], *opts)]
                return (f"{g.name!r} called with {diff[0]}={json.dumps(same[0].arguments[diff[0]])}, expected "
                        f"{json.dumps(g.arguments[diff[0]])}: 0")
        return "the calls cannot be paired one to one with the gold calls: 0"

    def _pair_score(self, g: ToolCall, p: ToolCall, opts) -> float:
        ga, pa = g.arguments, p.arguments
        right = 0
        for k, v in ga.items():
            if k in pa and values_equal(pa[k], v, *opts):
                right += 1
        return name_overlap(list(ga), list(pa)) + right

    def _judge_partial(self, gold_info, calls, opts, info, detail) -> Tuple[Score, Dict[str, Any]]:
        gold, names, pairs_in_order, top = gold_info
        in_order = len(gold) == len(calls)
        if not in_order:
            pass
        elif any(opts):
            in_order = all(calls_equal(g, c, *opts) for g, c in zip(gold, calls))
        else:                                    # ToolRL's gt_tools == pd_tools, without its true == 1
            in_order = [(c.name, c.arguments) for c in calls] == pairs_in_order
            if in_order:
                for g, c in zip(gold, calls):
                    if not same_kinds(g.arguments, c.arguments):
                        in_order = False
                        break
        if in_order:
            info["reason"] = "the calls equal the gold calls in order: 1"
            return 1.0, info
        total = name_overlap(names, [c.name for c in calls])
        pairs: List[Tuple[int, int, float]] = []
        if self.matching == "greedy":
            used = set()
            for gi, g in enumerate(gold):
                best, best_i = 0.0, -1
                for i, c in enumerate(calls):
                    if i in used or c.name != g.name:
                        continue
                    s = self._pair_score(g, c, opts)
                    if s > best:
                        best, best_i = s, i
                if best_i >= 0:
                    used.add(best_i)
                    pairs.append((gi, best_i, best))
        else:
            import numpy as np
            from scipy.optimize import linear_sum_assignment

            m = np.array([[self._pair_score(g, c, opts) if c.name == g.name else 0.0 for c in calls] for g in gold])
            rows, cols = linear_sum_assignment(m, maximize=True)
            pairs = [(int(r), int(c), float(m[r, c])) for r, c in zip(rows, cols) if m[r, c] > 0]
        name_part = total
        for _, _, s in pairs:                    # added one by one in gold order, as ToolRL does (same rounding)
            total += s
        score = total / top
        if detail:
            info.update(name_overlap=name_part, matched_pairs=[[g, c, round(s, 6)] for g, c, s in pairs],
                        points=total, max_points=top)
            info["reason"] = (f"name overlap {name_part:g} + argument points {total - name_part:g} of "
                              f"1 + {top - 1:g}: {score:g}")
        return score, info

    def _judge_schema(self, calls, tools, info, detail) -> Tuple[Score, Dict[str, Any]]:
        if not tools:
            info["reason"] = f"abstained: no usable tools in column {self.tools_key!r}"
            return None, info
        if not calls:
            info["reason"] = "no tool call in the completion: 0"
            return 0.0, info
        valid, problems = 0, []
        for i, c in enumerate(calls):
            if not c.ok:
                problems.append(f"call {i + 1}: {c.error}")
                continue
            if c.name not in tools:
                problems.append(f"call {i + 1}: no tool named {c.name!r}")
                continue
            validator = self._validator(tools[c.name])
            if validator is None:
                info["reason"] = f"abstained: the schema of tool {c.name!r} is not a valid JSON schema"
                return None, info
            try:
                error = next(iter(validator.iter_errors(c.arguments)), None)
            except Exception as exc:  # a schema that cannot be evaluated (an unresolvable $ref, a slow pattern)
                info["reason"] = f"abstained: the schema of tool {c.name!r} cannot be evaluated ({type(exc).__name__})"
                return None, info
            if error is None:
                valid += 1
            else:
                path = "/".join(map(str, error.path))
                problems.append(f"call {i + 1} ({c.name}): {path + ': ' if path else ''}{error.message}")
        score = valid / len(calls)
        if detail:
            info["schema_errors"] = problems
        info["reason"] = (f"{valid} of {len(calls)} call(s) valid against the tools: {score:g}"
                          + (f" ({problems[0]})" if problems else ""))
        return score, info

    def _validator(self, schema: Any) -> Optional[Any]:
        key = json.dumps(schema, sort_keys=True, default=str)
        got = self._validators.get(key, self._validators)
        if got is not self._validators:
            return got
        from jsonschema import exceptions
        from jsonschema.validators import validator_for

        from .structured import bounded_validator

        try:
            cls = validator_for(schema)
            cls.check_schema(schema)
            if '"pattern' in key:
                cls = bounded_validator(cls)
            got = cls(schema)
        except (exceptions.SchemaError, TypeError, ValueError, RecursionError, LookupError):
            got = None
        self._validators[key] = got
        if len(self._validators) > 256:
            self._validators.popitem(last=False)
        return got

    def explain(self, completion: str, **row: Any) -> dict:
        out = super().explain(completion, **row)
        _, info = self.judge(completion, row, detail=True)
        out.update(mode=self.mode, **info)
        return out


__all__ = ["ToolCallReward", "name_overlap"]
