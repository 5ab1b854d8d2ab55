"""math-verify calls run inside a reward worker process (:mod:`swift_ext.rewards.pool`), where a pathological
expression can be killed: math-verify's own timeouts use SIGALRM, which only works in a main thread and
cannot stop C code; a separate process can always be stopped.

Each worker parses a gold answer once (an LRU of parsed golds), so a GRPO group's completions share it.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any, Optional

_LATEX_CHARS = set("\\^{}_")
#: letter runs that are math, not words (function names, constants)
_MATH_WORDS = {"pi", "sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "lg", "exp", "sqrt", "infty", "inf",
               "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "max", "min", "gcd", "lcm", "mod", "deg", "oo"}
_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")


def is_words(text: str) -> bool:
    """True when ``text`` (outside LaTeX commands) holds a run of letters that is not a math name:
    ``forty two`` is words, ``2x + 1``, ``\\pi r^2`` and ``sin(x)`` are not.

    >>> is_words("forty two"), is_words("2x+1"), is_words("\\\\frac{1}{2}"), is_words("sin(x)")
    (True, False, False, False)
    """
    return any(m.group(0).lower() not in _MATH_WORDS for m in _WORD.finditer(text))


def parse_math(text: str):
    """math-verify parse of an already isolated answer, or None when nothing parses.

    LaTeX-looking text is parsed as math mode first (bare ``2^{10}`` would otherwise be read as the number 2).
    Text that reads as words is never wrapped in ``$...$`` (``forty two`` would become a product of symbols).
    """
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    cfg = [LatexExtractionConfig(), ExprExtractionConfig()]
    stripped = text.strip()
    if stripped.startswith("$") or is_words(stripped):
        order = (text,)
    else:
        wrapped = f"${text}$"
        order = (wrapped, text) if _LATEX_CHARS & set(text) else (text, wrapped)
    partial = None
    for candidate in order:
        parsed = parse(candidate, extraction_config=cfg, parsing_timeout=None)
        if any(not isinstance(x, str) for x in parsed or ()):  # only the raw string back: nothing parsed
            if parsed[-1].strip() in (stripped, stripped.strip("$")) or len(order) == 1:
                return parsed
            partial = partial or parsed      # "1+x" read as its first number: try the other spelling first
    return partial


_GOLDS: "OrderedDict[str, Any]" = OrderedDict()
_QUIET = False


def _gold(gold: str):
    global _QUIET
    if not _QUIET:  # deadlines are enforced by killing this process: silence math-verify's warning about that
        import logging

        logging.getLogger("math_verify").setLevel(logging.ERROR)
        _QUIET = True
    if gold in _GOLDS:
        _GOLDS.move_to_end(gold)
        return _GOLDS[gold]
    parsed = _plain_gold(gold) or parse_math(gold) or None
    _GOLDS[gold] = parsed
    if len(_GOLDS) > 4096:
        _GOLDS.popitem(last=False)
    return parsed


_PLAIN = re.compile(r"([+-]?)(?:\\[dt]?frac\{(\d{1,18})\}\{(\d{1,18})\}|(\d{1,18}))")


def _plain_gold(gold: str):
    """What math-verify's parse gives for a gold ``\\frac{a}{b}`` or integer (a sympy Rational / Integer and
    the text), built directly: the LaTeX parser costs milliseconds per gold."""
    m = _PLAIN.fullmatch(gold.strip().strip("$").strip())
    if m is None:
        return None
    import sympy

    sign, num, den, whole = m.groups()
    if whole is not None:
        value = sympy.Integer(int(whole))
    elif int(den) == 0:
        return None
    else:
        value = sympy.Rational(int(num), int(den))
    return [-value if sign == "-" else value, gold]


def warm_up() -> None:
    """Called once when a worker starts: math-verify's lazy imports happen here, not in a timed job (the LaTeX
    parser too: its first use costs half a second, which a check with a 1 s deadline cannot pay)."""
    verify("\\frac{1}{2}", "0.5")
    verify("x^{2}+1", "\\sqrt{x}^2 + 1")
    _GOLDS.clear()


def gold_ok(gold: str) -> bool:
    """Whether the gold answer parses as math (else every completion of its row abstains)."""
    return _gold(gold) is not None


def verify(gold: str, pred: str) -> Optional[bool]:
    """True / False; None when the gold itself does not parse (abstain)."""
    from math_verify import verify as mv_verify

    g = _gold(gold)
    if g is None:
        return None
    p = parse_math(pred)
    if not p:
        return False
    try:
        return bool(mv_verify(g, p, timeout_seconds=None))
    except Exception:  # a comparison sympy cannot make means "not shown equal"
        return False
