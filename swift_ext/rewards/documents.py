"""Document and chart rewards: ANLS (DocVQA, InfographicVQA), character / word error rate (OCR) and
relaxed accuracy (ChartQA), each computed as the reference implementation people compare numbers with.

- ``anls``: lmms-eval's ``anls`` (``lmms_eval/api/metrics.py``, itself the DocVQA / InfographicVQA
  evaluation script): lower-cased, whitespace-collapsed Levenshtein distance over the longer of the two
  *raw* strings' lengths, the best gold answer, 0 below the threshold;
- ``cer`` / ``wer``: jiwer's ``cer`` / ``wer`` with their default transforms, as a reward ``1 - error``
  clipped to [0, 1];
- ``relaxed_accuracy``: the ChartQA formula (pix2struct's ``relaxed_correctness``, copied by Qwen-VL and
  lmms-eval): numbers within 5 % of the gold (``%`` read as a fraction), anything else an exact,
  case-insensitive match.

One edit distance serves them all: :func:`edit_distance` (rapidfuzz's C++ Levenshtein, on characters or on
word lists). The tests compare each reward with the reference itself on generated pairs.
"""

from __future__ import annotations

import json
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..extract import MODES, answer_rule, answer_tag, extract_answer
from ..params import Param
from .base import Reward, Score, column
from .contract import Example

_LEVENSHTEIN: Any = None
_MULTI_SPACE = re.compile(r"\s\s+")


def edit_distance(a: Sequence[Any], b: Sequence[Any], cutoff: Optional[int] = None) -> int:
    """Levenshtein distance (unit insert / delete / substitute) between two strings (characters) or two lists
    of words: the one implementation behind ``anls``, ``cer`` and ``wer`` (rapidfuzz, imported on first use).
    With ``cutoff`` a distance above it comes back as ``cutoff + 1`` (a lower bound), computed in time that
    grows with the cutoff rather than with the product of the lengths (so a million-character answer against
    a short gold costs nothing).

    >>> edit_distance("kitten", "sitting"), edit_distance(["a", "b", "c"], ["a", "c"])
    (3, 1)
    """
    global _LEVENSHTEIN
    if _LEVENSHTEIN is None:
        from rapidfuzz.distance import Levenshtein

        _LEVENSHTEIN = Levenshtein.distance
    return _LEVENSHTEIN(a, b, score_cutoff=cutoff)


# -- ANLS ------------------------------------------------------------------------------------------------
def anls(prediction: str, references: Sequence[str], threshold: float = 0.5, strict: bool = False) -> float:
    """Average-normalised-Levenshtein similarity of one prediction against its gold answers, as lmms-eval's
    ``anls`` computes it: per answer ``NL = d / max(len(answer.upper()), len(prediction.upper()))`` with ``d``
    the edit distance between the stripped, lower-cased, whitespace-collapsed strings (the length is the raw
    strings', as the DocVQA script has it); the score is ``1 - min(NL)``, or 0 when it is below ``threshold``.
    ``strict=True`` also zeroes a score equal to the threshold (the ST-VQA paper's ``NL < tau``; lmms-eval and
    the DocVQA script keep it). ``references`` must not be empty.

    >>> anls("Paris", ["paris"]), anls("Pari", ["paris"]), anls("Rome", ["paris", "rome"])
    (1.0, 0.8, 1.0)
    >>> anls("ab", ["cd", "ax"]), anls("ab", ["ax"], strict=True)     # NL = 1/2: kept, or not with strict
    (0.5, 0.0)
    """
    det = " ".join(prediction.strip().lower().split())
    det_len = len(prediction.upper())
    best = None
    for answer in references:
        gt = " ".join(answer.strip().lower().split())
        length = max(len(answer.upper()), det_len)
        # a distance past (1 - threshold) * length scores 0 whatever it is: computed up to one edit beyond that
        # (a lower bound past it keeps every verdict, and the min over the answers, what the exact value gives)
        value = 0.0 if length == 0 else edit_distance(gt, det, int((1 - threshold) * length) + 1) / length
        if best is None or value < best:
            best = value
    if best is None:
        raise ValueError("anls needs at least one reference answer")
    score = 1 - best
    if score < threshold or (strict and score <= threshold):
        return 0.0
    return score


# -- error rates -----------------------------------------------------------------------------------------
def error_units(text: str, unit: str) -> Any:
    """What jiwer's default transforms make of a sentence: ``char``: the stripped string (its characters);
    ``word``: runs of 2+ whitespace characters made one space, stripped, split on spaces (so a lone tab or
    newline does not split words, as in jiwer).

    >>> error_units("  a  b\\tc ", "word"), error_units("  a  b ", "char")
    (['a', 'b\\tc'], 'a  b')
    """
    if unit == "char":
        return text.strip()
    return [w for w in _MULTI_SPACE.sub(" ", text).strip().split(" ") if w]


def error_rate(reference: str, hypothesis: str, unit: str = "char") -> float:
    """jiwer's ``cer`` (``unit="char"``) or ``wer`` (``unit="word"``) of one sentence pair: edit distance over
    the reference's length; for an empty reference the number of inserted units (jiwer's convention).

    >>> error_rate("hello world", "hallo world"), error_rate("hello world", "hello", "word"), error_rate("", "ab")
    (0.09090909090909091, 0.5, 2)
    """
    ref, hyp = error_units(reference, unit), error_units(hypothesis, unit)
    dist = edit_distance(ref, hyp)
    return dist / len(ref) if ref else dist


# -- relaxed accuracy --------------------------------------------------------------------------------------
_FLOAT_START = frozenset("+-.0123456789iInN")


def _to_float(text: str) -> Optional[float]:
    """The reference's ``_to_float`` (``float``, a trailing ``%`` divides by 100), None when ``float`` would raise.
    A text whose first non-space character cannot start a Python float (a sign, a digit of any script, ``.``,
    ``inf`` / ``nan``) is refused without raising, which is most of the time of a text answer."""
    head = text[:1]
    if head not in _FLOAT_START and not head.isdecimal():
        stripped = text.lstrip()
        head = stripped[:1]
        if not head or (head not in _FLOAT_START and not head.isdecimal()):
            return None
    try:
        if text.endswith("%"):
            return float(text.rstrip("%")) / 100.0
        return float(text)
    except ValueError:
        return None


def relaxed_correct(prediction: str, target: str, tolerance: float = 0.05) -> bool:
    """ChartQA's relaxed correctness: when both sides read as numbers (Python ``float``; a trailing ``%``
    divides by 100) and the target is not 0, ``|pred - target| / |target| <= tolerance``; otherwise the
    lower-cased strings must be equal. A target of 0 is compared as a string, as in the reference.

    >>> relaxed_correct("10.4", "10"), relaxed_correct("11", "10"), relaxed_correct("50%", "0.5")
    (True, False, True)
    >>> relaxed_correct("Yes", "yes"), relaxed_correct("0.0", "0")
    (True, False)
    """
    p, t = _to_float(prediction), _to_float(target)
    if p is not None and t:
        return abs(p - t) / abs(t) <= tolerance
    return prediction.lower() == target.lower()


# -- gold answers ------------------------------------------------------------------------------------------
def gold_answers(value: Any) -> Optional[List[str]]:
    """The gold answers of a column value: a string (an ``<answer>`` tag's content when it has one), a JSON list
    of strings, a list, or a number; kept as written (lmms-eval measures the raw answer's length). None when
    there is none (missing, empty, only blank answers).

    >>> gold_answers('["1,000", "1000"]'), gold_answers("<answer>Paris</answer>"), gold_answers(12.5)
    (['1,000', '1000'], ['Paris'], ['12.5'])
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value
        if text.lstrip().startswith("[") and len(text) < 1_000_000:
            try:
                parsed = json.loads(text)
            except (ValueError, RecursionError):
                parsed = None
            if isinstance(parsed, list) and parsed and all(isinstance(v, (str, int, float)) and
                                                           not isinstance(v, bool) for v in parsed):
                return gold_answers(parsed)
        if "<answer>" in text.lower():
            inner = answer_tag(text)
            text = inner if inner is not None else text
        return [text] if text.strip() else None
    if isinstance(value, (int, float)):
        return [str(value)]
    if isinstance(value, (list, tuple)):
        out = []
        for v in value:
            if isinstance(v, str) and v.strip():
                out.append(v)
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                out.append(str(v))
        return out or None
    return None


_MISSING = object()


class _TextAnswer(Reward):
    """Shared: the answer extracted from the completion, the row's gold answers prepared once per distinct gold
    value (a GRPO group repeats its gold), and a batch loop over both. A subclass implements :meth:`prepare`
    (gold answers -> what its comparison needs) and :meth:`compare` (answer, prepared -> score)."""

    abstains = "when the gold column is missing or holds no non-blank answer"
    params = {
        "extract": Param("auto", "where the answer is: auto (<answer> content, else \\boxed{}, else the text after "
                         "</think>), answer_tag, boxed, none (the whole completion), ...", choices=MODES),
        "gold_key": Param("solution", "dataset column holding the gold answer(s): a string, a list or a JSON list"),
    }

    def setup(self) -> None:
        self._memo: Dict[str, Any] = {}

    def needed_columns(self):
        return (self.gold_key,)

    def prepare(self, golds: List[str]) -> Any:
        return golds

    def compare(self, answer: str, prepared: Any) -> float:
        raise NotImplementedError

    def prepared(self, raw: Any) -> Any:
        """:meth:`prepare` of the gold answers in a column value (None when there are none), memoised."""
        if not isinstance(raw, str):
            golds = gold_answers(raw)
            return None if golds is None else self.prepare(golds)
        got = self._memo.get(raw, _MISSING)
        if got is _MISSING:
            golds = gold_answers(raw)
            got = None if golds is None else self.prepare(golds)
            if len(self._memo) > 1024:
                self._memo.clear()
            self._memo[raw] = got
        return got

    def golds(self, row: Dict[str, Any]) -> Optional[List[str]]:
        return gold_answers(row.get(self.gold_key))

    def answer(self, completion: str) -> str:
        return extract_answer(completion, self.extract) or ""

    def score(self, completion: str, **row: Any) -> Score:
        prep = self.prepared(row.get(self.gold_key))
        return None if prep is None else self.compare(self.answer(completion), prep)

    def score_batch(self, completions: Sequence[str], rows: Sequence[Dict[str, Any]]) -> List[Any]:
        extract, mode, prepared, compare = extract_answer, self.extract, self.prepared, self.compare
        out: List[Any] = []
        for c, raw in zip(completions, column(rows, self.gold_key)):
            prep = prepared(raw)
            out.append(None if prep is None else compare(extract(c, mode) or "", prep))
        return out

    def _explain_base(self, completion: str, row: Dict[str, Any]) -> Tuple[Dict[str, Any], Optional[List[str]], str]:
        out = super().explain(completion, **row)
        golds, ans = self.golds(row), self.answer(completion)
        out.update(extracted=ans, rule=answer_rule(completion, self.extract), gold=row.get(self.gold_key),
                   gold_answers=golds)
        if golds is None:
            out["reason"] = f"abstained: no gold answer in column {self.gold_key!r}"
        return out, golds, ans


class ANLS(_TextAnswer):
    """ANLS (DocVQA / InfographicVQA): 1 - normalised edit distance to the closest gold answer, 0 below 0.5.

    Computed as lmms-eval's ``anls`` (the DocVQA evaluation script): both strings stripped, lower-cased and
    their whitespace collapsed, the edit distance divided by the longer raw length; the best of several gold
    answers counts; a similarity below ``threshold`` scores 0. At the threshold itself (normalised distance
    exactly 0.5) the score is 0.5, as in lmms-eval and the DocVQA script; ``strict=true`` gives 0 there, as
    the ST-VQA paper's ``NL < tau`` does.

    The gold column may hold one answer, a list, or a JSON list (``["1,000", "1000"]``).

    Bad input: no answer in the completion is an empty answer (0 unless a gold answer is blank).

    On the command line: ``--reward_funcs anls:threshold=0.5``.

    Example:
        >>> ANLS()(["<answer>Paris</answer>", "<answer>pariss</answer>", "<answer>Lyon</answer>"],
        ...        solution=['["Paris", "City of Paris"]'] * 3)
        [1.0, 0.8333333333333334, 0.0]
    """

    name = "anls"
    examples = (  # case-folded equal; no character in common; no gold
        Example("full", "Paris", 1.0, solution="paris"),
        Example("zero", "London", 0.0, solution="paris"),
        Example("malformed", "Paris", None, solution=None),
    )
    params = {**_TextAnswer.params,
              "threshold": Param(0.5, "similarity below which the score is 0 (tau)", min=0.0, max=1.0),
              "strict": Param(False, "also score 0 at exactly the threshold (the paper's NL < tau; lmms-eval keeps "
                              "it)")}

    def compare(self, answer: str, golds: List[str]) -> float:
        return anls(answer, golds, self.threshold, self.strict)

    def explain(self, completion: str, **row: Any) -> Dict[str, Any]:
        out, golds, ans = self._explain_base(completion, row)
        if golds is None:
            return out
        det = " ".join(ans.strip().lower().split())
        per = []
        for g in golds:
            gt = " ".join(g.strip().lower().split())
            d = edit_distance(gt, det)
            length = max(len(g.upper()), len(ans.upper()))
            per.append({"gold": g, "normalised": gt, "distance": d, "length": length,
                        "nl": 0.0 if length == 0 else d / length})
        best = min(per, key=lambda x: x["nl"])
        out.update(normalised=det, per_gold=per, best=best, threshold=self.threshold, strict=self.strict)
        sim = 1 - best["nl"]
        out["reason"] = (f"closest gold {best['gold']!r}: distance {best['distance']} / length {best['length']}, "
                         f"similarity {sim:g}" + (f" below the threshold {self.threshold:g}: 0" if out["score"] == 0
                                                  and sim > 0 else ""))
        return out


class _ErrorRate(_TextAnswer):
    unit = "char"
    params = {**_TextAnswer.params,
              "lowercase": Param(False, "lower-case both sides first (jiwer's ToLowerCase)")}

    def prepare(self, golds: List[str]) -> List[Tuple[str, Any]]:
        return [(g, error_units(g.lower() if self.lowercase else g, self.unit)) for g in golds]

    def _pair(self, answer: str, prepared: List[Tuple[str, Any]]) -> Tuple[float, str]:
        """(lowest error rate over the gold answers, the gold answer giving it)."""
        hyp = error_units(answer.lower() if self.lowercase else answer, self.unit)
        best, which = None, prepared[0][0]
        for g, ref in prepared:
            dist = edit_distance(ref, hyp, len(ref))    # more edits than reference units scores 0 anyway
            e = dist / len(ref) if ref else dist
            if best is None or e < best:
                best, which = e, g
        return best, which  # type: ignore[return-value]

    def compare(self, answer: str, prepared: List[Tuple[str, Any]]) -> float:
        return max(0.0, 1.0 - self._pair(answer, prepared)[0])

    def explain(self, completion: str, **row: Any) -> Dict[str, Any]:
        out, golds, ans = self._explain_base(completion, row)
        if golds is None:
            return out
        err, which = self._pair(ans, self.prepare(golds))
        ref = error_units(which.lower() if self.lowercase else which, self.unit)
        hyp = error_units(ans.lower() if self.lowercase else ans, self.unit)
        dist = edit_distance(ref, hyp)
        out.update(reference=which, reference_units=len(ref), answer_units=len(hyp), distance=dist, error_rate=err,
                   unit=self.unit)
        out["reason"] = (f"{self.name} = {dist} edits / {len(ref)} reference {self.unit}s = {err:g}; "
                         f"score max(0, 1 - {err:g})")
        return out


class CER(_ErrorRate):
    """1 - character error rate (OCR transcription), clipped to [0, 1]: jiwer's ``cer`` as a reward.

    The error rate is the character edit distance to the gold text over the gold's length, both sides
    stripped as jiwer's default ``cer`` transform does (inner whitespace counts as characters). With several
    gold texts the lowest error counts. An error rate of 1 or more (more edits than gold characters) scores 0.

    Bad input: no answer is an empty transcription (score 0 against any non-blank gold).

    On the command line: ``--reward_funcs cer:extract=none``.

    Example:
        >>> CER(extract="none")(["hello world", "hallo world", ""], solution=["hello world"] * 3)
        [1.0, 0.9090909090909091, 0.0]
    """

    name = "cer"
    examples = (  # every character substituted: CER 1
        Example("full", "hello", 1.0, solution="hello"),
        Example("zero", "xxxxx", 0.0, solution="hello"),
        Example("malformed", "hello", None, solution=None),
    )
    unit = "char"


class WER(_ErrorRate):
    """1 - word error rate, clipped to [0, 1]: jiwer's ``wer`` (default transforms) as a reward.

    Words are what jiwer's default ``wer`` transform makes: runs of two or more whitespace characters become
    one space, the text is stripped and split on spaces. The error rate is the word edit distance over the
    gold's word count; the lowest over several gold texts counts.

    Bad input: as ``cer``.

    On the command line: ``--reward_funcs wer:lowercase=true``.

    Example:
        >>> WER(extract="none")(["the cat sat", "the cat sat down", "a dog"], solution=["the cat sat"] * 3)
        [1.0, 0.6666666666666667, 0.0]
    """

    name = "wer"
    examples = (  # every word substituted: WER 1
        Example("full", "a b c", 1.0, solution="a b c"),
        Example("zero", "x y z", 0.0, solution="a b c"),
        Example("malformed", "a b c", None, solution=None),
    )
    unit = "word"


class RelaxedAccuracy(_TextAnswer):
    """ChartQA relaxed accuracy: 1.0 when a numeric answer is within 5 % of the gold number, else an exact match.

    The formula of ChartQA's evaluation (pix2struct's ``relaxed_correctness``, as in lmms-eval and Qwen-VL):
    when the answer and the gold both read as numbers (``float``; a trailing ``%`` divides by 100) and the gold
    is not 0, the relative error must be at most ``tolerance``; otherwise the lower-cased strings must be
    equal. ``1,000`` or ``$5`` are not numbers to the reference, so they must match as text. Any of several
    gold answers may match.

    Bad input: no answer, or text that matches no gold, scores 0.

    On the command line: ``--reward_funcs relaxed_accuracy:tolerance=0.05``.

    Example:
        >>> RelaxedAccuracy()(["<answer>10.4</answer>", "<answer>11</answer>", "<answer>Yes</answer>"],
        ...                   solution=["10", "10", "yes"])
        [1.0, 0.0, 1.0]
    """

    name = "relaxed_accuracy"
    examples = (  # 104 is within 5 % of 100, 200 is not
        Example("full", "104", 1.0, solution="100"),
        Example("zero", "200", 0.0, solution="100"),
        Example("malformed", "12", None, solution=None),
    )
    params = {**_TextAnswer.params,
              "tolerance": Param(0.05, "largest relative error of a numeric answer that counts", min=0.0)}

    def prepare(self, golds: List[str]) -> List[Tuple[str, Optional[float], str]]:
        return [(g, _to_float(g), g.lower()) for g in golds]

    def compare(self, answer: str, prepared: List[Tuple[str, Optional[float], str]]) -> float:
        """:func:`relaxed_correct` against each gold, the golds' numbers read once."""
        p = _to_float(answer)
        low = None
        for _, t, g_low in prepared:
            if p is not None and t:
                if abs(p - t) / abs(t) <= self.tolerance:
                    return 1.0
            else:
                if low is None:
                    low = answer.lower()
                if low == g_low:
                    return 1.0
        return 0.0

    def explain(self, completion: str, **row: Any) -> Dict[str, Any]:
        out, golds, ans = self._explain_base(completion, row)
        if golds is None:
            return out
        p = _to_float(ans)
        per = []
        for g in golds:
            t = _to_float(g)
            numeric = p is not None and bool(t)
            per.append({"gold": g, "gold_number": t, "numeric": numeric,
                        "relative_error": abs(p - t) / abs(t) if numeric else None,  # type: ignore[operator]
                        "correct": relaxed_correct(ans, g, self.tolerance)})
        out.update(number=p, per_gold=per, tolerance=self.tolerance)
        hit = next((x for x in per if x["correct"]), None)
        if hit is None:
            out["reason"] = "no gold answer matches (numbers beyond the tolerance, or text not equal): 0"
        elif hit["numeric"]:
            out["reason"] = f"relative error {hit['relative_error']:g} <= {self.tolerance:g} against {hit['gold']!r}: 1"
        else:
            out["reason"] = f"equal to {hit['gold']!r} as text (case-insensitive): 1"
        return out
