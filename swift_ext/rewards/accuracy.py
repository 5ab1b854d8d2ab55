"""Accuracy rewards: compare the extracted answer with the gold answer in a dataset column."""

from __future__ import annotations

import importlib.util
from typing import Any, Dict, List, Optional, Sequence

from ..params import Param
from .base import Reward, Score
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


class MathAccuracy(Reward):
    """1.0 when the answer is mathematically equal to the gold (math-verify), else 0.0.

    The answer is taken from ``<answer>`` tags or ``\\boxed{}`` (the last one), after any ``</think>``.
    Every completion is verified in a separate process with a hard limit of ``timeout`` seconds; one
    over the limit scores 0.0. Identical normalised strings score 1.0 without calling math-verify.
    Needs ``pip install 'swift-ext[math]'``.

    Abstains (``None``) when the gold answer is missing or math-verify cannot parse it.

    On the command line: ``--reward_funcs math_accuracy:timeout=2``.

    Example:
        >>> r = MathAccuracy()
        >>> r(["<answer>\\\\frac{1}{2}</answer>", "<answer>0.5</answer>", "<answer>3</answer>"],
        ...   solution=["$0.5$", "1/2", "4"])
        [1.0, 1.0, 0.0]
    """

    name = "math_accuracy"
    abstains = "when the gold answer is missing or math-verify cannot parse it"
    params = {
        "timeout": Param(1.0, "hard limit in seconds per completion (a killed check scores 0)", min=0.05, max=60),
        "extract": Param("auto", "how to find the answer in the completion", choices=MODES),
        "gold_key": Param("solution", "dataset column holding the gold answer"),
    }

    def needed_columns(self):
        return (self.gold_key,)

    def setup(self) -> None:
        if importlib.util.find_spec("math_verify") is None:
            raise ImportError("reward math_accuracy needs math-verify: pip install 'swift-ext[math]'")
        self._judge = None

    @property
    def judge(self):
        if self._judge is None:
            from ._math_worker import MathJudge

            self._judge = MathJudge(timeout=self.timeout)
        return self._judge

    def score_batch(self, completions: Sequence[str], rows: List[Dict[str, Any]]) -> List[Score]:
        out: List[Score] = [None] * len(completions)
        todo = []
        for i, (c, row) in enumerate(zip(completions, rows)):
            golds = gold_values(row.get(self.gold_key))
            if golds is None:
                continue
            gold = extract_answer(golds[0], "auto") or golds[0]
            pred = extract_answer(c if isinstance(c, str) else "", self.extract)
            if pred is None:
                out[i] = 0.0
            elif normalize(pred) == normalize(gold) and normalize(gold):
                out[i] = 1.0
            else:
                todo.append((i, gold, pred))
        if todo:
            try:
                verdicts = self.judge.judge([(g, p) for _, g, p in todo])
            except Exception as exc:  # the worker itself failed: score 0, never crash training
                self._warn(f"math-verify worker failed: {exc!r}")
                verdicts = [("error", None)] * len(todo)
            for (i, _, _), (status, value) in zip(todo, verdicts):
                if status == "ok":
                    out[i] = None if value is None else float(value)
                else:
                    out[i] = 0.0
        return out

    def score(self, completion: str, **row: Any) -> Score:
        return self.score_batch([completion], [row])[0]

    def __del__(self):
        judge = getattr(self, "_judge", None)
        if judge is not None:
            try:
                judge.close()
            except Exception:  # interpreter shutdown: modules may already be gone
                pass

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
