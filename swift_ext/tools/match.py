"""The one comparison of tool calls: argument values as canonical JSON, and parallel calls as a multiset.

Canonical JSON equality: objects are equal whatever their key order; lists are equal element by element in order;
numbers are equal by value (``1`` equals ``1.0``); ``true`` / ``false`` equal only booleans (JSON has no ``true == 1``);
strings equal only strings. Two options loosen it:

* ``coerce``: a string holding a number (``"5"``, ``" 2.50 "``, ``"1e3"``) counts as that number, on either side,
  at any depth;
* ``rel_tol`` / ``abs_tol``: numbers are equal when ``|a - b| <= max(abs_tol, rel_tol * max(|a|, |b|))``.

Parallel calls are matched as a multiset: the predicted calls equal the gold calls when some one-to-one pairing
(a perfect bipartite matching) pairs every gold call with an equal predicted call, whatever their order.
"""

from __future__ import annotations

import math
import re
from typing import Any, List, Optional, Sequence, Tuple

from .parse import ToolCall

_NUM = re.compile(r"\s*[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\s*\Z")
_NUMBER_TYPES = (int, float)


def _as_number(value: Any) -> Any:
    if type(value) is str and _NUM.match(value):
        text = value.strip()
        try:
            if re.fullmatch(r"[-+]?\d+", text):
                return int(text)
            f = float(text)
        except (ValueError, OverflowError):
            return value
        return f if math.isfinite(f) else value
    return value


def values_equal(a: Any, b: Any, coerce: bool = False, rel_tol: float = 0.0, abs_tol: float = 0.0) -> bool:
    """Whether two JSON values are equal as canonical JSON (see the module docstring).

    >>> values_equal({"a": 1, "b": [1, 2]}, {"b": [1.0, 2], "a": 1}), values_equal(True, 1)
    (True, False)
    >>> values_equal("5", 5), values_equal("5", 5, coerce=True), values_equal(0.1 + 0.2, 0.3, abs_tol=1e-9)
    (False, True, True)
    """
    if not (coerce or rel_tol or abs_tol):
        return a == b and same_kinds(a, b)              # Python's == is canonical JSON's but for true == 1
    if coerce:
        a, b = _as_number(a), _as_number(b)
    ta, tb = type(a), type(b)
    if ta is bool or tb is bool:
        return ta is tb and a == b
    if ta in _NUMBER_TYPES and tb in _NUMBER_TYPES:
        if a == b:
            return True
        if rel_tol or abs_tol:
            try:
                return abs(a - b) <= max(abs_tol, rel_tol * max(abs(a), abs(b)))
            except OverflowError:
                return False
        return False
    if ta is str or tb is str:
        return ta is tb and a == b
    if isinstance(a, dict):
        if not isinstance(b, dict) or len(a) != len(b):
            return False
        for k, v in a.items():
            if k not in b or not values_equal(v, b[k], coerce, rel_tol, abs_tol):
                return False
        return True
    if isinstance(a, (list, tuple)):
        if not isinstance(b, (list, tuple)) or len(a) != len(b):
            return False
        return all(values_equal(x, y, coerce, rel_tol, abs_tol) for x, y in zip(a, b))
    if a is None or b is None:
        return a is b
    return False


def same_kinds(a: Any, b: Any) -> bool:
    """For ``a == b`` (Python): whether no boolean stands where the other side has a number."""
    ta, tb = type(a), type(b)
    if ta is dict and tb is dict:
        for k, v in a.items():
            w = b[k]
            tv = type(v)
            if tv is type(w) and tv is not dict and tv is not list:
                continue                                  # same scalar type: nothing to check (the usual case)
            if not same_kinds(v, w):
                return False
        return True
    if ta is tb:
        if ta is list:
            for v, w in zip(a, b):
                tv = type(v)
                if not (tv is type(w) and tv is not dict and tv is not list) and not same_kinds(v, w):
                    return False
        return True
    if ta is bool or tb is bool:
        return False
    if isinstance(a, dict):
        return all(same_kinds(v, b[k]) for k, v in a.items())
    if isinstance(a, (list, tuple)):
        return all(map(same_kinds, a, b))
    return True


def calls_equal(gold: ToolCall, pred: ToolCall, coerce: bool = False, rel_tol: float = 0.0,
                abs_tol: float = 0.0) -> bool:
    """Same function name and canonically equal arguments (a call that could not be read equals nothing)."""
    if not gold.ok or not pred.ok or gold.name != pred.name:
        return False
    return values_equal(gold.arguments, pred.arguments, coerce, rel_tol, abs_tol)


def match_exact(gold: Sequence[ToolCall], pred: Sequence[ToolCall], coerce: bool = False, rel_tol: float = 0.0,
                abs_tol: float = 0.0) -> Optional[List[Tuple[int, int]]]:
    """The ``(gold index, predicted index)`` pairs of a perfect matching of equal calls, or None when there is none
    (a different number of calls, or some gold call without an equal partner).

    >>> f1, f2 = ToolCall("f", {"x": 1}), ToolCall("f", {"x": 2})
    >>> match_exact([f1, f2], [f2, f1]), match_exact([f1, f1], [f1, f2])
    ([(0, 1), (1, 0)], None)
    """
    n = len(gold)
    if n != len(pred):
        return None
    if all(calls_equal(g, p, coerce, rel_tol, abs_tol) for g, p in zip(gold, pred)):
        return [(i, i) for i in range(n)]
    eq = [[calls_equal(g, p, coerce, rel_tol, abs_tol) for p in pred] for g in gold]
    if not all(any(row) for row in eq) or not all(any(col) for col in zip(*eq)):
        return None
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(np.array(eq, dtype=float), maximize=True)
    pairs = [(int(r), int(c)) for r, c in zip(rows, cols)]
    return pairs if all(eq[r][c] for r, c in pairs) else None


__all__ = ["values_equal", "calls_equal", "match_exact", "same_kinds"]
