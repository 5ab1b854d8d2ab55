"""How a program's output is compared with the expected output (in the parent: the program never sees it).

Standard output against an expected text (:func:`same_output`):

1. both texts have ``\\r\\n`` read as ``\\n``, leading and trailing blank lines dropped, and each line stripped of
   leading and trailing whitespace; equal lists of lines pass (open-r1 and LiveCodeBench compare lines this
   way; APPS/verl's first check too);
2. otherwise, with ``float_tol > 0``, lines are split into whitespace-separated tokens: the same number of
   lines and of tokens per line pass when every token is equal as text or both are numbers with
   ``|got - expected| <= float_tol * max(1, |expected|)`` (an absolute error for small values, a relative one
   for large ones, as contest checkers do). ``float_tol = 0`` compares text only.

A call-based result against the expected value (:func:`same_value`): equal as Python values (a tuple counts
as a list), floats within ``float_tol`` as above; an expected value wrapped in a one-element list (APPS and
TACO store ``[answer]``) also matches the bare answer.

>>> same_output("1 2\\n3  \\n\\n", "1 2\\n3"), same_output("0.3333333", "0.333333", 1e-6), same_output("1\\n2", "1")
(True, True, False)
>>> same_value([1, [2, 3]], [1, (2, 3)]), same_value(0.1 + 0.2, 0.3, 1e-9), same_value(5, [5])
(True, True, True)
"""

from __future__ import annotations

import math
from typing import Any, List, Optional


def lines_of(text: str) -> List[str]:
    """Stripped lines, leading and trailing blank lines dropped."""
    return [line.strip() for line in text.replace("\r\n", "\n").strip().split("\n")]


def _number(token: str) -> Optional[float]:
    try:
        value = float(token)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def close(got: float, expected: float, tol: float) -> bool:
    return got == expected or abs(got - expected) <= tol * max(1.0, abs(expected))


def same_output(got: str, expected: str, float_tol: float = 0.0) -> bool:
    """Whether standard output ``got`` matches ``expected`` (rules in the module docstring)."""
    a, b = lines_of(got), lines_of(expected)
    if a == b:
        return True
    if float_tol <= 0 or len(a) != len(b):
        return False
    for la, lb in zip(a, b):
        if la == lb:
            continue
        ta, tb = la.split(), lb.split()
        if len(ta) != len(tb):
            return False
        for x, y in zip(ta, tb):
            if x == y:
                continue
            nx, ny = _number(x), _number(y)
            if nx is None or ny is None or not close(nx, ny, float_tol):
                return False
    return True


def _equal(got: Any, expected: Any, tol: float) -> bool:
    if isinstance(got, tuple):
        got = list(got)
    if isinstance(expected, tuple):
        expected = list(expected)
    if isinstance(got, float) or isinstance(expected, float):
        if isinstance(got, (int, float)) and isinstance(expected, (int, float)) \
                and not isinstance(got, bool) and not isinstance(expected, bool):
            return close(float(got), float(expected), tol) if tol > 0 else float(got) == float(expected)
        return False
    if isinstance(got, list) and isinstance(expected, list):
        return len(got) == len(expected) and all(_equal(x, y, tol) for x, y in zip(got, expected))
    if isinstance(got, dict) and isinstance(expected, dict):
        if len(got) != len(expected):
            return False
        keyed = {str(k): v for k, v in got.items()}          # JSON keys are strings
        return all(str(k) in keyed and _equal(keyed[str(k)], v, tol) for k, v in expected.items())
    try:
        return bool(got == expected)
    except Exception:  # noqa: BLE001 - an exotic value that cannot be compared
        return False


def same_value(got: Any, expected: Any, float_tol: float = 0.0) -> bool:
    """Whether a call-based result matches the expected value (rules in the module docstring)."""
    if _equal(got, expected, float_tol):
        return True
    return isinstance(expected, list) and len(expected) == 1 and _equal(got, expected[0], float_tol)


__all__ = ["same_output", "same_value", "lines_of", "close"]
