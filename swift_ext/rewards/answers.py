"""Task-answer rewards: numbers with a tolerance, multiple-choice letters, yes/no, counts, answer sets.

Each reward looks for the answer in the ``<answer>`` content when there is one (else ``\\boxed{}``,
else the text after ``</think>``), reads the gold answer from a dataset column (``gold_key``, default
``solution``; the gold may carry ``<answer>`` tags too) and abstains (``None``) when that gold is
unusable.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, List, Optional, Tuple

from ..params import Param
from .contract import Example
from .base import Reward, Score
from ..extract import answer_rule, answer_tag, extract_answer, normalize, strip_think

_SCAN = 100_000  # characters looked at from the end of a completion

_N = r"[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+−]?\.\d+(?:[eE][-+]?\d+)?"
_NUMBER = re.compile(
    r"\\[dt]?frac\s*\{\s*(?P<fn>" + _N + r")\s*\}\s*\{\s*(?P<fd>" + _N + r")\s*\}"
    r"|(?<![\w.])(?P<num>" + _N + r")(?:\s*/\s*(?P<den>" + _N + r")(?![\w.]))?(?P<pct>\s*(?:%|\\%|percent\b))?")
_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}
_WORDS.update({c: i for i, c in enumerate("零一二三四五六七八九十")})
_WORDS["两"] = 2
_WORD_RE = re.compile(r"\b(" + "|".join(sorted((w for w in _WORDS if w.isascii()), key=len, reverse=True))
                      + r")\b|([零一二两三四五六七八九十])(?:个|只|辆|人|位|张|件|条|头|本|块)", re.I)


def answer_scope(text: Any) -> str:
    """The part of a completion that holds the answer: ``<answer>`` content, else ``\\boxed{}``, else the
    text after reasoning.

    >>> answer_scope("<think>maybe 3</think><answer>4</answer>")
    '4'
    """
    return extract_answer(text, "auto") or ""


def _to_float(s: str) -> Optional[float]:
    try:
        v = float(s.replace(",", "").replace("−", "-"))
    except (ValueError, OverflowError):
        return None
    return v if math.isfinite(v) else None


def parse_number(text: Any) -> Optional[Tuple[float, bool]]:
    """``(value, had_percent)`` of the last number in ``text``: integers, decimals, ``1,234``, ``3e5``,
    ``3/4``, ``\\frac{3}{4}``, ``50%``; None when there is none (or it is infinite).

    >>> parse_number("so x = -1,250.5")
    (-1250.5, False)
    >>> parse_number(r"$\\frac{3}{4}$"), parse_number("about 12.5%")
    ((0.75, False), (12.5, True))
    """
    if isinstance(text, bool) or text is None:
        return None
    if isinstance(text, (int, float)):
        try:
            v = float(text)
        except OverflowError:  # an int beyond float range: no finite number, as for the same digits in a string
            return None
        return (v, False) if math.isfinite(v) else None
    text = str(text)[-_SCAN:]
    last = None
    for m in _NUMBER.finditer(text):
        last = m
    if last is None:
        return None
    if last.group("fn") is not None:
        num, den = _to_float(last.group("fn")), _to_float(last.group("fd"))
    else:
        num = _to_float(last.group("num"))
        den = _to_float(last.group("den")) if last.group("den") else 1.0
    if num is None or den is None or den == 0:
        return None
    v = num / den
    if not math.isfinite(v):
        return None
    return v, bool(last.group("pct") if last.group("fn") is None else False)


def _gold_text(value: Any) -> Optional[str]:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (list, tuple)):
        value = value[0] if len(value) == 1 else None
        if value is None:
            return None
    text = str(value).strip()
    return text or None


class Numeric(Reward):
    """1.0 when the answer's number equals the gold number within a tolerance, else 0.0.

    Equal means ``|pred - gold| <= max(abs_tol, rel_tol * |gold|)``. The last number in the answer
    counts; ``1,234``, ``3e5``, ``3/4``, ``\\frac{3}{4}`` are understood. When exactly one side has a
    percent sign, both ``50%`` = ``50`` and ``50%`` = ``0.5`` are accepted. ``mode=relative`` gives
    partial credit ``max(0, 1 - |pred - gold| / |gold|)`` instead (1.0 still needs the tolerance).

    Also understood: a Unicode minus (``−2``).

    Bad input: no number in the answer, or ``inf`` / ``NaN`` / ``1/0`` there, scores 0.

    On the command line: ``--reward_funcs numeric:rel_tol=0.01``.

    Example:
        >>> Numeric()(["<answer>1,250</answer>", "x = 0.5", "<answer>12%</answer>", "none"],
        ...           solution=["1250", "1/2", "0.12", "3"])
        [1.0, 1.0, 1.0, 0.0]
        >>> Numeric(mode="relative")(["<answer>90</answer>"], solution=["100"])   # 1 - 10/100
        [0.9]
    """

    name = "numeric"
    examples = (
        Example("full", "<answer>1,250</answer>", 1.0, solution="1250"),
        Example("full", "<answer>90</answer>", 0.9, params="mode=relative", solution="100"),
        Example("zero", "<answer>12</answer>", 0.0, solution="13"),
        Example("malformed", "none", 0.0, solution="13"),
        Example("malformed", "<answer>13</answer>", None, solution="n/a"),
    )
    abstains = "when the gold column is missing or holds no finite number"
    params = {
        "abs_tol": Param(1e-6, "absolute tolerance", min=0.0),
        "rel_tol": Param(0.0, "relative tolerance (fraction of |gold|)", min=0.0),
        "mode": Param("binary", "binary: 1/0; relative: 1 - relative error, floored at 0",
                      choices=("binary", "relative")),
        "gold_key": Param("solution", "dataset column holding the gold answer"),
    }

    def score(self, completion: str, **row: Any) -> Score:
        gold_raw = row.get(self.gold_key)
        if isinstance(gold_raw, str):
            gold_raw = answer_scope(gold_raw)
        gold = parse_number(_gold_text(gold_raw) if not isinstance(gold_raw, (int, float)) else gold_raw)
        if gold is None:
            return None
        pred = parse_number(answer_scope(completion))
        if pred is None:
            return 0.0
        (p, p_pct), (g, g_pct) = pred, gold
        cands = [p]
        if p_pct != g_pct:
            cands.append(p / 100 if p_pct else p * 100)
        tol = max(self.abs_tol, self.rel_tol * abs(g))
        err = min(abs(c - g) for c in cands)
        if err <= tol:
            return 1.0
        if self.mode == "relative" and g != 0:
            return max(0.0, 1.0 - err / abs(g))
        return 0.0

    def explain(self, completion: str, **row: Any) -> dict:
        out = super().explain(completion, **row)
        gold_raw = row.get(self.gold_key)
        gold_scope = answer_scope(gold_raw) if isinstance(gold_raw, str) else gold_raw
        gold = parse_number(_gold_text(gold_scope) if not isinstance(gold_scope, (int, float)) else gold_scope)
        ans = answer_scope(completion)
        pred = parse_number(ans)
        out.update(extracted=ans, rule=answer_rule(completion), gold=gold_raw, gold_normalised=gold_scope,
                   gold_number=None if gold is None else gold[0], gold_percent=None if gold is None else gold[1],
                   number=None if pred is None else pred[0], percent=None if pred is None else pred[1])
        if gold is None:
            out["reason"] = f"abstained: no finite number in the gold column {self.gold_key!r} ({gold_raw!r})"
            return out
        if pred is None:
            out["reason"] = "no number in the answer: 0"
            return out
        (p, p_pct), (g, g_pct) = pred, gold
        cands = [p] + ([p / 100 if p_pct else p * 100] if p_pct != g_pct else [])
        tol = max(self.abs_tol, self.rel_tol * abs(g))
        err = min(abs(c - g) for c in cands)
        out.update(candidates=cands, abs_error=err, tolerance=tol)
        if err <= tol:
            out["reason"] = f"|{p:g} - {g:g}| = {err:g} <= tolerance {tol:g}: 1"
        elif self.mode == "relative" and g != 0:
            out["reason"] = f"relative mode: max(0, 1 - {err:g} / {abs(g):g})"
        else:
            out["reason"] = f"|answer - gold| = {err:g} > tolerance {tol:g}: 0"
        return out


# -- multiple choice -----------------------------------------------------------------------------------
_LEAD = re.compile(r"^\s*[(\[（]?\s*([A-Za-z])\s*[)\]）]?\s*(?:[.:：、),，]|$|\s(?!\s*[a-z]))")
_EXPLICIT = re.compile(
    r"(?:answer|option|choice)\s*(?:is|:|=|would be|should be)?\s*[:：]?\s*[(\[（]?([A-Za-z])\b(?![-'’])"
    r"|答案\s*(?:是|为|选)?\s*[:：]?\s*[(\[（]?\s*([A-Z])"
    r"|选(?:项|择)?\s*[(\[（]?\s*([A-Z])", re.I)
_PAREN = re.compile(r"[(\[（]\s*([A-Z])\s*[)\]）]")
_BARE = re.compile(r"(?<![\w'’-])([A-Z])(?![\w'’-])(?!\s+[a-z])")
_HEDGE = re.compile(r"(?<![\w'’-])[(\[（]?[A-Z][)\]）]?\s*(?:,|，|、|/|&|\band\b|\bor\b|和|或)\s*[(\[（]?[A-Z][)\]）]?(?![\w'’-])")


def extract_choice(text: Any, letters: str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ") -> Optional[str]:
    """The option letter an answer picks: a leading ``B`` / ``(B)`` / ``B.`` / ``B) Paris``, else the last
    ``answer is B`` / ``option B`` / ``答案是B`` / ``选B``, else the last ``(B)``, else the last stand-alone
    capital letter (not ``A`` or ``I`` used as a word: ``A cat``, ``I think``). Only ``letters`` count.

    >>> [extract_choice(t) for t in ["(B)", "B. Paris", "I think the answer is option c.", "答案是D", "nothing"]]
    ['B', 'B', 'C', 'D', None]
    """
    return _find_choice(text, letters)[0]


def _find_choice(text: Any, letters: str) -> Tuple[Optional[str], Optional[str]]:
    """(letter, rule that found it) for :func:`extract_choice` and :func:`choice_rule`; (None, None)."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    text = text[-_SCAN:]
    m = _LEAD.match(text)
    if m and m.group(1).upper() in letters and (m.group(1).isupper() or len(text.strip()) <= 3):
        return m.group(1).upper(), "leading"
    for rx, name, upper in ((_EXPLICIT, "explicit", True), (_PAREN, "parenthesised", False), (_BARE, "bare", False)):
        found = None
        for m in rx.finditer(text):
            g = next((x for x in m.groups() if x), None)
            if g and g.upper() in letters:
                found = g.upper() if upper else g
        if found and found in letters:
            return found, name
    return None, None


class MultipleChoice(Reward):
    """1.0 when the chosen option letter equals the gold letter, else 0.0.

    Understands ``B``, ``(B)``, ``B.``, ``B) text``, ``option B``, ``the answer is B``, ``答案是B``,
    ``选B`` (see :func:`extract_choice`). Hedging with several letters (``A or B``, ``A, C``) scores 0
    when ``strict`` (default). The gold may be a letter in any of these forms.

    ``A`` and ``I`` used as ordinary words ("I think", "a cat") are not options. Chinese hedging such as
    ``B和C`` also scores 0 when ``strict``.

    Bad input: an answer with no option letter scores 0.

    On the command line: ``--reward_funcs mcq:letters=ABCD``.

    Example:
        >>> r = MultipleChoice()
        >>> r(["<answer>(B)</answer>", "The answer is b.", "答案是B", "A or B", "C"], solution=["B"] * 5)
        [1.0, 1.0, 1.0, 0.0, 0.0]
    """

    name = "mcq"
    examples = (
        Example("full", "The answer is b.", 1.0, solution="B"),
        Example("zero", "C", 0.0, solution="B"),
        Example("malformed", "A or B", 0.0, solution="B"),
        Example("malformed", "B", None, solution="no letter here"),
    )
    abstains = "when the gold column holds no option letter"
    params = {
        "letters": Param("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "the option letters that exist (e.g. ABCD)"),
        "strict": Param(True, "score 0 when the answer names several letters (A or B)"),
        "gold_key": Param("solution", "dataset column holding the gold letter"),
    }

    def setup(self) -> None:
        from ..errors import ParamError

        letters = "".join(ch for ch in self.letters.upper() if ch.isalpha() and ch.isascii())
        if not letters:
            raise ParamError(f"reward mcq: letters={self.letters!r} has no letter A-Z")
        self._letters = letters

    def score(self, completion: str, **row: Any) -> Score:
        gold_text = _gold_text(row.get(self.gold_key))
        if gold_text is None:
            return None
        gold = extract_choice(answer_scope(gold_text), self._letters)
        if gold is None:
            return None
        ans = answer_scope(completion)
        if self.strict and _HEDGE.search(ans[-_SCAN:]):
            return 0.0
        return 1.0 if extract_choice(ans, self._letters) == gold else 0.0

    def explain(self, completion: str, **row: Any) -> dict:
        out = super().explain(completion, **row)
        gold_text = _gold_text(row.get(self.gold_key))
        gold = extract_choice(answer_scope(gold_text), self._letters) if gold_text is not None else None
        ans = answer_scope(completion)
        letter = extract_choice(ans, self._letters)
        hedge = _HEDGE.search(ans[-_SCAN:]) if self.strict else None
        out.update(extracted=ans, rule=answer_rule(completion), choice=letter, choice_rule=choice_rule(ans, self._letters),
                   gold=row.get(self.gold_key), gold_letter=gold, letters=self._letters,
                   hedged=hedge.group(0) if hedge else None)
        if gold is None:
            out["reason"] = f"abstained: no option letter in the gold column {self.gold_key!r}"
        elif hedge:
            out["reason"] = f"hedged between letters ({hedge.group(0)!r}) with strict=true: 0"
        elif letter is None:
            out["reason"] = f"no option letter among {self._letters} in the answer: 0"
        else:
            out["reason"] = f"chose {letter}, gold {gold}: {'1' if letter == gold else '0'}"
        return out


# -- yes / no --------------------------------------------------------------------------------------------
_YES_NO = re.compile(r"\b(yes|no|true|false|correct|incorrect)\b", re.I)
_ZH_LEAD = re.compile(r"^\s*[“\"'（(]?\s*(不是|不对|不存在|没有|不|否|错|是的|是|对|有|存在)")
_YES_WORDS = {"yes", "true", "correct", "是的", "是", "对", "有", "存在"}


def yes_no(text: Any) -> Optional[str]:
    """``"yes"`` / ``"no"``: the first yes/no word (``yes no true false correct incorrect``), or a Chinese
    answer that starts with 是 / 对 / 有 / 存在 (yes) or 不是 / 不 / 否 / 没有 / 错 (no); None otherwise.

    >>> [yes_no(t) for t in ["Yes, there is a dog.", "No.", "不是，图中没有狗", "maybe"]]
    ['yes', 'no', 'no', None]
    """
    if isinstance(text, bool):
        return "yes" if text else "no"
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    m = _YES_NO.search(text[:_SCAN])
    if m:
        return "yes" if m.group(1).lower() in _YES_WORDS else "no"
    m = _ZH_LEAD.match(text)
    if m:
        return "yes" if m.group(1) in _YES_WORDS else "no"
    if text.strip() in ("1", "0"):
        return "yes" if text.strip() == "1" else "no"
    return None


class YesNo(Reward):
    """1.0 when the answer's yes/no agrees with the gold, else 0.0 (AMBER / POPE style; also an eval metric).

    Hallucination benchmarks such as AMBER and POPE score their discriminative questions this way.

    The first yes/no word of the answer counts (see :func:`yes_no`); an answer with none scores 0.
    The gold may be yes/no in any case, true/false, 1/0, a boolean, or 是/否.

    Words: yes / no / true / false / correct / incorrect. Chinese answers that start with 是 / 对 / 有
    (yes) or 不是 / 不 / 否 / 没有 (no) also count.

    On the command line: ``--reward_funcs yes_no``.

    Example:
        >>> YesNo()(["<answer>Yes</answer>", "No, it is not there.", "I cannot tell"], solution=["yes", True, "no"])
        [1.0, 0.0, 0.0]
    """

    name = "yes_no"
    examples = (
        Example("full", "<answer>Yes</answer>", 1.0, solution="yes"),
        Example("zero", "No, it is not there.", 0.0, solution=True),
        Example("malformed", "I cannot tell", 0.0, solution="no"),
        Example("malformed", "Yes", None, solution="maybe"),
    )
    abstains = "when the gold column is not a yes/no value"
    params = {"gold_key": Param("solution", "dataset column holding the gold yes/no")}

    @staticmethod
    def gold_label(raw: Any) -> Optional[str]:
        """'yes' / 'no' of a gold value, None when it is not a yes/no value."""
        if isinstance(raw, (list, tuple)) and len(raw) == 1:
            raw = raw[0]
        return yes_no(raw if isinstance(raw, bool) else answer_scope(raw) if isinstance(raw, str) else
                      (str(int(raw)) if isinstance(raw, (int, float)) and raw in (0, 1) else None))

    @staticmethod
    def answer_label(completion: str) -> Optional[str]:
        """'yes' / 'no' of a completion's answer, None when it says neither."""
        return yes_no(answer_scope(completion))

    def score(self, completion: str, **row: Any) -> Score:
        gold = self.gold_label(row.get(self.gold_key))
        if gold is None:
            return None
        return 1.0 if self.answer_label(completion) == gold else 0.0

    def explain(self, completion: str, **row: Any) -> dict:
        out = super().explain(completion, **row)
        gold = self.gold_label(row.get(self.gold_key))
        label = self.answer_label(completion)
        out.update(extracted=answer_scope(completion), rule=answer_rule(completion), label=label,
                   gold=row.get(self.gold_key), gold_label=gold)
        if gold is None:
            out["reason"] = f"abstained: the gold column {self.gold_key!r} is not a yes/no value"
        elif label is None:
            out["reason"] = "the answer says neither yes nor no: 0"
        else:
            out["reason"] = f"answered {label}, gold {gold}: {'1' if label == gold else '0'}"
        return out


# -- counting ----------------------------------------------------------------------------------------------
def parse_count(text: Any) -> Optional[int]:
    """The count an answer gives: the last number (``3``, ``3.0``), else the last number word
    (``three``, ``三个``). None if none, negative or not whole.

    >>> parse_count("There are 3 apples"), parse_count("I see three."), parse_count("2.5")
    (3, 3, None)
    """
    num = parse_number(text)
    if num is not None:
        v = num[0]
        return int(v) if v >= 0 and v == int(v) and v < 1e15 else None
    if not isinstance(text, str):
        return None
    last = None
    for m in _WORD_RE.finditer(text[-_SCAN:]):
        last = m
    if last is None:
        return None
    return _WORDS[(last.group(1) or last.group(2)).lower()]


class Counting(Reward):
    """1.0 when the count in ``<answer>`` equals the gold count ("How many ... in the image?"), else 0.0.

    As in ms-swift's counting GRPO recipes the count must be inside ``<answer>`` tags (``require_tag``;
    without a tag the completion scores 0). ``mode=relative`` gives ``max(0, 1 - |pred - gold| /
    max(gold, 1))`` instead, which still rewards near misses.

    The count is read from digits, ``3.0``, number words (``three``) and Chinese (``三个``).

    Bad input: no ``<answer>`` tag (when ``require_tag``), or a negative or non-whole count, scores 0.

    On the command line: ``--reward_funcs counting:mode=relative``.

    Example:
        >>> Counting()(["<think>I see cars</think><answer>3</answer>", "<answer>three</answer>", "3"],
        ...            solution=["3", 3, "3"])
        [1.0, 1.0, 0.0]
        >>> Counting(mode="relative")(["<answer>4</answer>"], solution=["5"])   # 1 - 1/5
        [0.8]
    """

    name = "counting"
    examples = (
        Example("full", "<think>I see cars</think><answer>3</answer>", 1.0, solution="3"),
        Example("full", "<answer>4</answer>", 0.8, params="mode=relative", solution="5"),
        Example("zero", "<answer>2</answer>", 0.0, solution="3"),
        Example("malformed", "3", 0.0, solution="3"),
        Example("malformed", "<answer>3</answer>", None, solution="-1"),
    )
    abstains = "when the gold column is not a whole number >= 0"
    params = {
        "require_tag": Param(True, "the count must be inside <answer>...</answer>"),
        "mode": Param("exact", "exact: 1/0; relative: 1 - |error| / max(gold, 1)", choices=("exact", "relative")),
        "gold_key": Param("solution", "dataset column holding the gold count"),
    }

    def score(self, completion: str, **row: Any) -> Score:
        raw = row.get(self.gold_key)
        if isinstance(raw, (list, tuple)) and len(raw) == 1:
            raw = raw[0]
        if isinstance(raw, bool) or raw is None:
            return None
        gold = parse_count(answer_scope(raw) if isinstance(raw, str) else raw)
        if gold is None:
            return None
        body = strip_think(completion)
        inner = answer_tag(body)
        if inner is None and self.require_tag:
            return 0.0
        pred = parse_count(inner if inner is not None else body)
        if pred is None:
            return 0.0
        if pred == gold:
            return 1.0
        if self.mode == "relative":
            return max(0.0, 1.0 - abs(pred - gold) / max(gold, 1))
        return 0.0

    def explain(self, completion: str, **row: Any) -> dict:
        out = super().explain(completion, **row)
        raw = row.get(self.gold_key)
        if isinstance(raw, (list, tuple)) and len(raw) == 1:
            raw = raw[0]
        gold = None if isinstance(raw, bool) or raw is None else parse_count(answer_scope(raw) if isinstance(raw, str)
                                                                             else raw)
        body = strip_think(completion)
        inner = answer_tag(body)
        pred = parse_count(inner if inner is not None else body)
        out.update(extracted=inner if inner is not None else body, rule="answer_tag" if inner is not None else
                   "after_think", count=pred, gold=row.get(self.gold_key), gold_count=gold)
        if gold is None:
            out["reason"] = f"abstained: the gold column {self.gold_key!r} is not a whole number >= 0"
        elif inner is None and self.require_tag:
            out["reason"] = "no <answer> tag and require_tag=true: 0"
        elif pred is None:
            out["reason"] = "no whole count >= 0 in the answer: 0"
        else:
            out["reason"] = f"counted {pred}, gold {gold}" + ("" if self.mode == "exact" or pred == gold else
                                                              f": relative 1 - {abs(pred - gold)} / {max(gold, 1)}")
        return out


# -- sets ------------------------------------------------------------------------------------------------
_SPLIT = re.compile(r"\s*(?:[,;，；、\n|]|\band\b|和)\s*", re.I)


def answer_items(value: Any) -> Optional[List[str]]:
    """Normalised items of a list answer: a list, a JSON list, or text split on ``, ; 、 | and 和`` and
    newlines. Empty items are dropped; None when ``value`` is None.

    >>> answer_items("Cat, dog and the Bird")
    ['cat', 'dog', 'bird']
    >>> answer_items('["A", "b"]')
    ['a', 'b']
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (list, tuple, set)):
        items = [str(v) for v in value if v is not None and not isinstance(v, (list, dict))]
    else:
        text = str(value).strip()
        items = None
        if text.startswith("[") and len(text) < 1_000_000:
            try:
                parsed = json.loads(text)
            except (ValueError, RecursionError):
                parsed = None
            if isinstance(parsed, list):
                items = [str(v) for v in parsed if v is not None and not isinstance(v, (list, dict))]
        if items is None:
            text = text.strip("[]{}")
            items = _SPLIT.split(text[:_SCAN])
    out = []
    for it in items:
        n = normalize(it) or normalize(it, drop_articles=False)  # keep "A" as an item
        if n:
            out.append(n)
    return out


class SetAccuracy(Reward):
    """Agreement (F1, Jaccard, exact, precision or recall) between the answer list and the gold list.

    ``metric``: ``f1`` (default), ``jaccard`` (|A∩B| / |A∪B|), ``exact`` (1 only for the same set),
    ``precision``, ``recall``. Items are compared after normalisation (case, punctuation, articles);
    duplicates count once. Gold is a list column, a JSON list or a separated string. An empty gold set
    and an empty answer score 1.0.

    The answer may be a JSON list, or text split on ``,`` ``;`` ``、`` ``|`` ``and`` ``和`` and
    newlines.

    On the command line: ``--reward_funcs set_accuracy:metric=jaccard``.

    Example:
        >>> r = SetAccuracy()
        >>> r(["<answer>cat, dog</answer>", "<answer>cat</answer>", "<answer>cat, dog, cow</answer>"],
        ...   solution=[["cat", "dog"]] * 3)   # 1; P=1 R=.5 -> 2/3; P=2/3 R=1 -> .8
        [1.0, 0.6666666666666666, 0.8]
    """

    name = "set_accuracy"
    examples = (
        Example("full", "<answer>cat, dog</answer>", 1.0, solution=["cat", "dog"]),
        Example("zero", "<answer>cow</answer>", 0.0, solution=["cat", "dog"]),
        Example("malformed", "<answer>cat</answer>", None, solution=None),
    )
    abstains = "when the gold column is missing"
    params = {
        "metric": Param("f1", "how to compare the sets",
                        choices=("f1", "jaccard", "exact", "precision", "recall")),
        "gold_key": Param("solution", "dataset column holding the gold list"),
    }

    def score(self, completion: str, **row: Any) -> Score:
        raw = row.get(self.gold_key)
        gold = answer_items(answer_scope(raw) if isinstance(raw, str) else raw)
        if gold is None:
            return None
        g = set(gold)
        p = set(answer_items(answer_scope(completion)) or [])
        if not g and not p:
            return 1.0
        hit = len(g & p)
        if self.metric == "exact":
            return 1.0 if g == p else 0.0
        if self.metric == "jaccard":
            return hit / len(g | p)
        precision = hit / len(p) if p else 0.0
        recall = hit / len(g) if g else 0.0
        if self.metric == "precision":
            return precision
        if self.metric == "recall":
            return recall
        return 0.0 if hit == 0 else 2 * precision * recall / (precision + recall)

    def explain(self, completion: str, **row: Any) -> dict:
        out = super().explain(completion, **row)
        raw = row.get(self.gold_key)
        gold = answer_items(answer_scope(raw) if isinstance(raw, str) else raw)
        items = answer_items(answer_scope(completion)) or []
        out.update(extracted=answer_scope(completion), rule=answer_rule(completion), items=sorted(set(items)),
                   gold=raw, gold_items=None if gold is None else sorted(set(gold)))
        if gold is None:
            out["reason"] = f"abstained: no gold list in column {self.gold_key!r}"
            return out
        g, p = set(gold), set(items)
        out.update(hits=sorted(g & p), missing=sorted(g - p), extra=sorted(p - g), metric=self.metric)
        out["reason"] = f"{len(g & p)} of {len(g)} gold items found, {len(p - g)} extra ({self.metric})"
        return out


def choice_rule(text: Any, letters: str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ") -> Optional[str]:
    """Which rule of :func:`extract_choice` picked the letter (for explanations): ``leading``, ``explicit``
    (answer is B / option B / 答案是B), ``parenthesised`` or ``bare``; None when no letter was found.

    >>> [choice_rule(t) for t in ["(B) Paris", "I think the answer is option c.", "between (A) and (C)", "so C"]]
    ['leading', 'explicit', 'parenthesised', 'bare']
    """
    return _find_choice(text, letters)[1]
