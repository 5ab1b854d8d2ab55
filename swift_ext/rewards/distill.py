"""Distillation reward: how close the completion is to a teacher's answer (ROUGE-L, chrF or token F1).

Distilling a large (VL) teacher into a small student is a common CHORD use: the teacher's answer sits in
``solution`` and the student is rewarded for similar answers, on a [0, 1] scale.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..params import Param
from .contract import Example
from .base import Reward, Score
from ..extract import normalize
from .shaping import SCOPES, part, words

_TAG = re.compile(r"</?[A-Za-z][\w-]{0,30}>")  # <think>, </answer>: markup, not words


def lcs_length(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Length of the longest common subsequence, bit-parallel (Hyyrö 2004): one pass over ``b`` with
    integer bit operations over ``len(a)`` bits, so about ``len(b)`` big-int steps instead of
    ``len(a) * len(b)`` Python steps.

    >>> lcs_length("ABCBDAB", "BDCABA")   # BCBA
    4
    """
    if not a or not b:
        return 0
    masks: Dict[Any, int] = {}
    for i, t in enumerate(a):
        masks[t] = masks.get(t, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for t in b:
        m = masks.get(t)
        if m:
            u = v & m
            v = ((v + u) | (v - u)) & full
    return len(a) - bin(v).count("1")


def rouge_l(pred: Sequence[Any], ref: Sequence[Any]) -> float:
    """ROUGE-L F1: ``2PR / (P + R)`` with ``P = LCS / len(pred)``, ``R = LCS / len(ref)``.

    >>> rouge_l("the cat sat".split(), "the cat sat down".split())   # LCS 3: P 1, R .75 -> 6/7
    0.8571428571428571
    """
    lcs = lcs_length(ref, pred)
    if lcs == 0:
        return 0.0
    p, r = lcs / len(pred), lcs / len(ref)
    return 2 * p * r / (p + r)


def token_f1(pred: Sequence[Any], ref: Sequence[Any]) -> float:
    """SQuAD token F1 (bag of tokens).

    >>> round(token_f1("a b b c".split(), "b c d".split()), 6)   # common b, c = 2: P 2/4, R 2/3 -> 4/7
    0.571429
    """
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    p, r = common / len(pred), common / len(ref)
    return 2 * p * r / (p + r)


def char_ngrams(text: str, max_n: int) -> List[Counter]:
    """Character n-gram counts for n = 1..max_n of ``text`` (whitespace removed)."""
    s = "".join(text.split())
    return [Counter(s[i:i + n] for i in range(len(s) - n + 1)) if n > 1 else Counter(s)
            for n in range(1, max_n + 1)]


def chrf(pred: Any, ref: Any, max_n: int = 6, beta: float = 2.0) -> float:
    """chrF: the F-beta of character n-gram precision and recall, averaged over n = 1..max_n, as nltk's
    ``sentence_chrf`` computes it; orders longer than either text are left out of the average (nltk
    scores them as 0, so short texts differ).

    ``pred`` / ``ref`` are strings or precomputed :func:`char_ngrams` lists.

    >>> round(chrf("the cat", "the cat"), 6)
    1.0
    >>> round(chrf("ab", "abc", max_n=2), 4)   # n=1: P 1, R 2/3 -> 5*(2/3)/(4+2/3) = .7143; n=2: P 1, R 1/2 -> .5556
    0.6349
    """
    p_grams = pred if isinstance(pred, list) else char_ngrams(pred, max_n)
    r_grams = ref if isinstance(ref, list) else char_ngrams(ref, max_n)
    b2 = beta * beta
    total, orders = 0.0, 0
    for pg, rg in zip(p_grams, r_grams):
        np_, nr = sum(pg.values()), sum(rg.values())
        if np_ == 0 or nr == 0:
            continue
        orders += 1
        tp = sum((pg & rg).values())
        if tp == 0:
            continue
        prec, rec = tp / np_, tp / nr
        total += (1 + b2) * prec * rec / (b2 * prec + rec)
    return total / orders if orders else 0.0


_PRIME = 1_000_003
_ORDER_SHIFT = 58                      # the order n sits in the top bits of each 64-bit n-gram hash
_LOW = (1 << _ORDER_SHIFT) - 1


class CharGrams:
    """All character n-grams (n = 1..max_n, whitespace removed) of a text as sorted 64-bit hashes with counts,
    tagged by order, so that the overlap of two texts for every order is one vectorised intersection.

    numpy does the work; the hash is a polynomial over code points, so a false match needs a 58-bit
    collision between two n-grams of the same order (negligible).
    """

    __slots__ = ("length", "keys", "counts")

    def __init__(self, text: str, max_n: int):
        import numpy as np

        s = "".join(text.split())
        self.length = len(s)
        a = np.frombuffer(s.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        prime, parts = np.uint64(_PRIME), []
        h = np.zeros(len(a), dtype=np.uint64)
        for n in range(1, min(max_n, len(a)) + 1):
            h = h[: len(a) - n + 1] * prime + a[n - 1:]   # polynomial hash of the n-gram starting at each index
            parts.append(h)
        if parts:
            tags = np.repeat(np.arange(1, len(parts) + 1, dtype=np.uint64) << np.uint64(_ORDER_SHIFT),
                             [len(x) for x in parts])
            keys = (np.concatenate(parts) & np.uint64(_LOW)) | tags
        else:
            keys = np.zeros(0, dtype=np.uint64)
        self.keys, self.counts = np.unique(keys, return_counts=True)

    def total(self, n: int) -> int:
        return max(0, self.length - n + 1)


def chrf_fast(pred: CharGrams, ref: CharGrams, max_n: int = 6, beta: float = 2.0) -> float:
    """:func:`chrf` on precomputed :class:`CharGrams` (same definition, vectorised)."""
    import numpy as np

    tp = np.zeros(max_n + 1)
    if len(pred.keys) and len(ref.keys):
        idx = np.minimum(np.searchsorted(ref.keys, pred.keys), len(ref.keys) - 1)
        hit = ref.keys[idx] == pred.keys
        if hit.any():
            orders = (pred.keys[hit] >> np.uint64(_ORDER_SHIFT)).astype(np.int64)
            tp = np.bincount(orders, weights=np.minimum(pred.counts[hit], ref.counts[idx[hit]]), minlength=max_n + 1)
    tp = tp.tolist()
    b2 = beta * beta
    total, orders = 0.0, 0
    for n in range(1, max_n + 1):
        np_, nr = pred.total(n), ref.total(n)
        if np_ == 0 or nr == 0:
            continue
        orders += 1
        if tp[n] == 0:
            continue
        prec, rec = tp[n] / np_, tp[n] / nr
        total += (1 + b2) * prec * rec / (b2 * prec + rec)
    return float(total / orders) if orders else 0.0


class TeacherSimilarity(Reward):
    """Similarity (0 to 1) to a teacher's answer in ``solution``: ROUGE-L, chrF or token F1.

    ``metric``: ``rouge_l`` (default; ROUGE-L F1 over words), ``chrf`` (character n-gram F-score,
    ``chrf_order`` and ``chrf_beta``), ``token_f1`` (SQuAD token F1). Words are lower-cased,
    punctuation-free, and each CJK character is a word, so Chinese answers compare by character.
    ``scope=answer`` (default) compares the ``<answer>`` content / the text after ``</think>`` on both
    sides; ``all`` compares everything (tags such as ``<think>`` are dropped). At most ``max_tokens`` words per side are compared.

    Made for distilling a large VL teacher, for example in a CHORD run. ROUGE-L uses a bit-parallel LCS;
    chrF averages the character n-gram F-beta over orders as nltk's ``sentence_chrf`` does.

    Bad input: an empty completion scores 0.

    On the command line: ``--reward_funcs teacher_similarity:metric=chrf``.

    Example:
        >>> r = TeacherSimilarity()
        >>> r(["<answer>The cat sat.</answer>", "<answer>a dog</answer>", ""], solution=["the cat sat down"] * 3)
        [0.8571428571428571, 0.0, 0.0]
        >>> TeacherSimilarity(metric="token_f1")(["猫坐着"], solution=["猫在坐着"])   # 3 common: P 1, R 3/4
        [0.8571428571428571]
    """

    name = "teacher_similarity"
    examples = (
        Example("full", "<answer>the cat sat down</answer>", 1.0, solution="the cat sat down"),
        Example("zero", "<answer>a dog</answer>", 0.0, solution="the cat sat down"),
        Example("malformed", "", 0.0, solution="the cat sat down"),
        Example("malformed", "the cat", None, solution=""),
    )
    abstains = "when the teacher answer (gold column) is missing or has no words"
    params = {
        "metric": Param("rouge_l", "similarity measure", choices=("rouge_l", "chrf", "token_f1")),
        "scope": Param("answer", "part of both texts to compare", choices=SCOPES),
        "gold_key": Param("solution", "dataset column holding the teacher's answer"),
        "max_tokens": Param(2048, "words compared per side at most", min=1, max=1_000_000),
        "chrf_order": Param(6, "chrF: longest character n-gram", min=1, max=12),
        "chrf_beta": Param(2.0, "chrF: weight of recall over precision", min=0.0, max=100.0),
    }

    def setup(self) -> None:
        self._memo: Tuple[Optional[str], Any] = (None, None)

    def _prepare(self, text: str) -> Any:
        text = _TAG.sub(" ", part(text, self.scope))
        if self.metric == "chrf":
            return CharGrams(normalize(text, drop_articles=False)[: self.max_tokens * 8], self.chrf_order)
        return words(normalize(text, drop_articles=False))[: self.max_tokens]

    def _gold(self, row: Dict[str, Any]) -> Any:
        raw = row.get(self.gold_key)
        if isinstance(raw, (list, tuple)) and len(raw) == 1:
            raw = raw[0]
        if not isinstance(raw, (str, int, float)) or isinstance(raw, bool):
            return None
        raw = str(raw)
        if self._memo[0] == raw:  # a GRPO group shares its teacher answer
            return self._memo[1]
        prepared = self._prepare(raw)
        empty = prepared.length == 0 if self.metric == "chrf" else not prepared
        value = None if empty else prepared
        self._memo = (raw, value)
        return value

    def score(self, completion: str, **row: Any) -> Score:
        gold = self._gold(row)
        if gold is None:
            return None
        pred = self._prepare(completion)
        if self.metric == "chrf":
            return chrf_fast(pred, gold, self.chrf_order, self.chrf_beta) if pred.length else 0.0
        if not pred:
            return 0.0
        return rouge_l(pred, gold) if self.metric == "rouge_l" else token_f1(pred, gold)
