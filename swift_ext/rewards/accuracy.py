"""Accuracy rewards: compare the extracted answer with the gold answer in a dataset column."""

from __future__ import annotations

import importlib.util
import re
from collections import OrderedDict
from fractions import Fraction
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..params import Param
from . import pool
from .contract import Example
from .base import Reward, Score, column
from ..extract import MODES, answer_rule, extract_answer, normalize


def gold_values(value: Any) -> Optional[List[str]]:
    """The usable gold answers in a column value (a string, a number or a list of them); None if none."""
    if value is None:
        return None
    if isinstance(value, (list, tuple, set)):
        out = [str(v).strip() for v in value if v is not None and str(v).strip()]
        return out or None
    if isinstance(value, bool):
        return None
    text = str(value).strip()
    return [text] if text else None


class ExactMatch(Reward):
    """1.0 when the extracted answer equals the gold answer after normalisation, else 0.0.

    Gold comes from the ``gold_key`` column (default ``solution``); a list of golds matches any of them.
    The gold is passed through the same extraction, so an SFT-style ``<answer>Paris</answer>`` gold works.

    Abstains (``None``) when the row has no usable gold answer (missing, empty, not a string or number).

    On the command line: ``--reward_funcs exact_match:extract=last_number``.

    Example:
        >>> ExactMatch()(["<answer>The Paris.</answer>", "<answer>Rome</answer>"], solution=["paris", "paris"])
        [1.0, 0.0]
        >>> ExactMatch()(["<answer>x</answer>"], solution=[None])
        [None]
    """

    name = "exact_match"
    examples = (
        Example("full", "<answer>The Paris.</answer>", 1.0, solution="paris"),
        Example("zero", "<answer>Rome</answer>", 0.0, solution="paris"),
        Example("malformed", "<answer>x</answer>", None, solution=None),
    )
    abstains = "when the gold column is missing or empty"
    params = {
        "extract": Param("auto", "how to find the answer in the completion", choices=MODES),
        "gold_key": Param("solution", "dataset column holding the gold answer"),
        "case_sensitive": Param(False, "compare case-sensitively"),
    }

    def needed_columns(self):
        return (self.gold_key,)

    def score(self, completion: str, **row: Any) -> Score:
        golds = gold_values(row.get(self.gold_key))
        if golds is None:
            return None
        pred = extract_answer(completion, self.extract)
        if pred is None:
            return 0.0
        p = normalize(pred, case_sensitive=self.case_sensitive)
        for g in golds:
            g_ext = extract_answer(g, "auto") or g
            if p == normalize(g_ext, case_sensitive=self.case_sensitive):
                return 1.0
        return 0.0

    def explain(self, completion: str, **row: Any) -> dict:
        out = super().explain(completion, **row)
        golds = gold_values(row.get(self.gold_key))
        pred = extract_answer(completion, self.extract)
        p = normalize(pred, case_sensitive=self.case_sensitive) if pred is not None else None
        normalised = [normalize(extract_answer(g, "auto") or g, case_sensitive=self.case_sensitive)
                      for g in golds or []]
        out.update(extracted=pred, rule=answer_rule(completion, self.extract), normalised=p,
                   gold=row.get(self.gold_key), gold_normalised=normalised,
                   matched_gold=next((g for g, n in zip(golds or [], normalised) if n == p), None))
        if golds is None:
            out["reason"] = f"abstained: no usable gold in column {self.gold_key!r}"
        elif pred is None:
            out["reason"] = f"no answer found (extract={self.extract}): 0"
        elif out["matched_gold"] is not None:
            out["reason"] = f"normalised answer {p!r} equals gold {out['matched_gold']!r}: 1"
        else:
            out["reason"] = f"normalised answer {p!r} equals none of {normalised}: 0"
        return out


_RATIONAL = re.compile(r"([+-]?)(?:(\d+(?:\.\d+)?)|(\d+)\s*/\s*(\d+)|\\[dt]?frac\{(\d+)\}\{(\d+)\})")


def exact_rational(text: str) -> Optional[Fraction]:
    """The value of a plain number, ``a/b`` or ``\\frac{a}{b}`` (optionally in ``$...$``), else None.

    >>> exact_rational("$-\\\\frac{3}{4}$"), exact_rational("0.75"), exact_rational("x/2")
    (Fraction(-3, 4), Fraction(3, 4), None)
    """
    t = text.strip().strip("$").strip()
    if len(t) > 64:
        return None
    m = _RATIONAL.fullmatch(t)
    if m is None:
        return None
    sign, dec, num, den, fnum, fden = m.groups()
    try:
        value = Fraction(dec) if dec is not None else Fraction(int(num or fnum), int(den or fden))
    except ZeroDivisionError:
        return None
    return -value if sign == "-" else value


def _same_text(a: str, b: str) -> bool:
    """Identical up to spaces and ``$`` (a stricter test than :func:`normalize`, which drops signs and slashes)."""
    return a.replace("$", "").split() == b.replace("$", "").split()


class MathAccuracy(Reward):
    """1.0 when the answer is mathematically equal to the gold (math-verify), else 0.0.

    The answer is taken from ``<answer>`` tags or ``\\boxed{}`` (the last one), after any ``</think>``.
    math-verify runs in the pool of killable worker processes: the whole call gets ``timeout`` seconds per
    GRPO group (and one check at most ``timeout``); a check not finished in time scores 0.0, and one log
    line says how many. Each gold answer is parsed once per worker; identical answers within a call are
    checked once, and verdicts are remembered across calls. Answers identical to the gold (up to spaces),
    or equal plain numbers and fractions (``0.5`` and ``\\frac{1}{2}``), score 1.0 without math-verify.
    Needs ``pip install 'swift-ext[math]'``.

    Abstains (``None``) when the gold answer is missing or is not math that math-verify parses: a gold
    written in words (``forty two``) abstains for every completion of its row, whatever the completion says.

    On the command line: ``--reward_funcs math_accuracy:timeout=2``.

    Example:
        >>> r = MathAccuracy()
        >>> r(["<answer>\\\\frac{1}{2}</answer>", "<answer>0.5</answer>", "<answer>3</answer>"],
        ...   solution=["$0.5$", "1/2", "4"])
        [1.0, 1.0, 0.0]
        >>> r(["<answer>forty two</answer>", "<answer>42</answer>"], solution=["forty two"] * 2)
        [None, None]
    """

    name = "math_accuracy"
    examples = (
        Example("full", "<answer>\\frac{1}{2}</answer>", 1.0, solution="0.5"),
        Example("zero", "<answer>3</answer>", 0.0, solution="\\frac{1}{2}"),
        Example("malformed", "<answer>42</answer>", None, solution=None),
    )
    abstains = "when the gold answer is missing or is not math that math-verify parses (words, broken LaTeX)"
    default_timeout = 1.0
    may_hang = True
    own_deadline = True
    timeout_score = 0.0
    params = {
        "extract": Param("auto", "how to find the answer in the completion", choices=MODES),
        "gold_key": Param("solution", "dataset column holding the gold answer"),
    }
    #: verdicts remembered per instance (gold, answer) -> True / False / None
    CACHE_SIZE = 65536

    def needed_columns(self):
        return (self.gold_key,)

    def setup(self) -> None:
        if importlib.util.find_spec("math_verify") is None:
            raise ImportError("reward math_accuracy needs math-verify: pip install 'swift-ext[math]'")
        self._golds: "OrderedDict[str, Optional[bool]]" = OrderedDict()      # gold -> parses?
        self._verdicts: "OrderedDict[Tuple[str, str], Optional[bool]]" = OrderedDict()

    def __getstate__(self):
        state = super().__getstate__()
        state["_golds"], state["_verdicts"] = OrderedDict(), OrderedDict()
        return state

    @staticmethod
    def _gold_text(value: Any) -> Optional[str]:
        golds = gold_values(value)
        if golds is None:
            return None
        return extract_answer(golds[0], "auto") or golds[0]

    def score_batch(self, completions: Sequence[str], rows: Sequence[Dict[str, Any]]) -> List[Score]:
        out: List[Score] = [None] * len(completions)
        items = []                                   # (row, gold, answer or None)
        last_raw, gold = object(), None
        for i, (c, raw) in enumerate(zip(completions, column(rows, self.gold_key))):
            if raw is not last_raw:                  # a GRPO group shares its gold object
                last_raw, gold = raw, self._gold_text(raw)
            if gold is not None:
                items.append((i, gold, extract_answer(c if isinstance(c, str) else "", self.extract)))
        if not items:
            return out
        # what only math-verify can decide, each question once
        golds, verdicts = self._golds, self._verdicts
        quick: Dict[Tuple[str, str], bool] = {}
        pairs: Dict[Tuple[str, str], None] = {}
        for _, g, p in items:
            if g not in golds and exact_rational(g) is not None:
                golds[g] = True
            if p is None:
                continue
            key = (g, p)
            if key in verdicts or key in quick or key in pairs:
                continue
            if _same_text(g, p):
                quick[key] = True
                continue
            gv = exact_rational(g)
            if gv is not None:
                pv = exact_rational(p)
                if pv is not None and pv == gv:
                    quick[key] = True
                    continue
                if pv is not None and "." not in g + p and abs(pv - gv) > abs(gv) / 1000 + Fraction(1, 1000):
                    verdicts[key] = False            # two exact numbers far apart: math-verify agrees
                    continue
            pairs[key] = None
        asked = set(g for g, _ in pairs)
        gold_jobs = [g for g in dict.fromkeys(g for _, g, _ in items) if g not in golds and g not in asked]
        late = self._decide(list(pairs), gold_jobs, len(completions))
        for i, g, p in items:
            ok = golds.get(g)
            if ok is False:
                out[i] = None
            elif p is None:
                out[i] = 0.0 if ok else (self.timeout_score if g in late else None)
            elif (g, p) in quick:
                out[i] = 1.0 if ok else (self.timeout_score if g in late else None)
            elif (g, p) in verdicts:
                v = verdicts[(g, p)]
                out[i] = None if v is None else float(v)
            else:                                    # not decided in time
                out[i] = self.timeout_score
        while len(verdicts) > self.CACHE_SIZE:
            verdicts.popitem(last=False)
        while len(golds) > self.CACHE_SIZE:
            golds.popitem(last=False)
        return out

    def _decide(self, pairs: List[Tuple[str, str]], gold_jobs: List[str], n: int) -> set:
        """Run math-verify on ``pairs`` and on ``gold_jobs`` (golds to check alone); fill the caches.
        Returns the golds whose check did not finish in time."""
        from . import _math_worker as mw

        jobs = [("swift_ext.rewards._math_worker:verify", pair) for pair in pairs] + \
               [("swift_ext.rewards._math_worker:gold_ok", (g,)) for g in gold_jobs]
        if not jobs:
            return set()
        budget = self.budget(n)
        if self.isolate and not pool.IN_WORKER:
            workers = pool.get_pool()
            workers.need(["swift_ext.rewards._math_worker"])
            results = workers.run(jobs, budget, job_limit=self.timeout)
        else:                                        # isolate=false: in this process, unbounded
            results = []
            for path, args in jobs:
                try:
                    results.append(("ok", getattr(mw, path.rsplit(":", 1)[1])(*args)))
                except Exception as exc:
                    results.append(("error", repr(exc)))
        late, missed = set(), 0
        for (path, args), (status, value) in zip(jobs, results):
            if path.endswith(":verify"):
                g = args[0]
                if status == "ok":
                    self._verdicts[args] = value
                    self._golds[g] = value is not None
                elif status in ("timeout", "lost"):      # not decided (a worker that died): not remembered
                    missed += 1
                else:                                # math-verify raised: "not shown equal"
                    self._verdicts[args] = False
            else:
                g = args[0]
                if status == "ok":
                    self._golds[g] = bool(value)
                elif status in ("timeout", "lost"):
                    late.add(g)
                    missed += 1
                else:
                    self._golds[g] = False
        self.report_timeouts(missed, n, budget, " (math-verify checks)")
        return late

    def explain(self, completion: str, **row: Any) -> dict:
        out = super().explain(completion, **row)
        golds = gold_values(row.get(self.gold_key))
        gold = (extract_answer(golds[0], "auto") or golds[0]) if golds else None
        pred = extract_answer(completion if isinstance(completion, str) else "", self.extract)
        same = pred is not None and gold is not None and normalize(gold) != "" and normalize(pred) == normalize(gold)
        out.update(extracted=pred, rule=answer_rule(completion, self.extract), gold=row.get(self.gold_key),
                   gold_answer=gold, normalised=None if pred is None else normalize(pred),
                   gold_normalised=None if gold is None else normalize(gold),
                   checked_by="string" if same else ("math-verify" if pred is not None and gold is not None else None))
        if gold is None:
            out["reason"] = f"abstained: no usable gold in column {self.gold_key!r}"
        elif pred is None:
            out["reason"] = f"no answer found (extract={self.extract}): 0"
        elif same:
            out["reason"] = "identical after normalisation: 1 (math-verify not called)"
        elif out["score"] is None:
            out["reason"] = "abstained: math-verify could not parse the gold"
        else:
            out["reason"] = (f"math-verify says {'equal' if out['score'] == 1.0 else 'not equal'} (or the check ran "
                             f"past timeout={self.timeout}s: 0)")
        return out
