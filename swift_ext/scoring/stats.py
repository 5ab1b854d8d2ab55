"""The one place summary statistics of scores are computed: ``rewards score`` (mean, std, abstentions, groups
whose scores never vary), ``eval`` and the ``reward_eval`` callback (accuracy, pass@k, mean@k) and ``filter``
(zero-variance prompts) all fold their scores through :class:`Accumulator`, so the same scores give the same
numbers everywhere.

The accumulator takes one prompt group at a time and keeps O(1) state per statistic (no list of scores), so a
caller that reads its input as a stream summarises it in bounded memory. ``None`` (and NaN) means "abstained"
and is left out of every statistic.

>>> acc = Accumulator(threshold=1.0)
>>> acc.add_group([1.0, 0.0]); acc.add_group([0.0, 0.0, None])
>>> s = acc.summary()
>>> (s.n, s.abstained, s.mean, s.groups, s.zero_std_groups)
(4, 1, 0.25, 2, 1)
>>> s.metrics(ks=[1, 2])
{'n': 4, 'abstained': 1, 'mean': 0.25, 'accuracy': 0.25, 'pass@1': 0.25, 'pass@2': 0.5, 'mean@2': 0.25}
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence

Score = Optional[float]

#: two scores closer than this are "the same" when deciding whether a group's scores vary
ZERO_STD_EPS = 1e-12


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n (c correct) is correct."""
    if not (0 <= c <= n) or k < 1 or k > n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def default_ks(min_group: int) -> List[int]:
    """1, powers of two, and the group size itself: the ks worth reporting for groups of ``min_group``."""
    ks = {1, min_group}
    k = 2
    while k < min_group:
        ks.add(k)
        k *= 2
    return sorted(x for x in ks if x >= 1)


def _add_exact(partials: List[float], x: float) -> None:
    """Add ``x`` to the exact running sum held in ``partials`` (Shewchuk's algorithm, the one behind
    ``math.fsum``; the list stays a handful of floats long), so a streamed mean equals ``statistics.fmean``."""
    i = 0
    for y in partials:
        if abs(x) < abs(y):
            x, y = y, x
        hi = x + y
        lo = y - (hi - x)
        if lo:
            partials[i] = lo
            i += 1
        x = hi
    partials[i:] = [x]


def _scored(values: Iterable[Score]) -> List[float]:
    return [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]


@dataclass
class Summary:
    """What :meth:`Accumulator.summary` returns. ``std`` is the population standard deviation."""

    n: int = 0
    abstained: int = 0
    mean: Optional[float] = None
    std: Optional[float] = None
    min: Optional[float] = None
    max: Optional[float] = None
    groups: int = 0  # groups with at least two scored completions (the only ones whose scores can vary)
    zero_std_groups: int = 0
    threshold: Optional[float] = None
    correct: int = 0
    min_group: int = 0  # size of the smallest non-empty group (scored completions)
    max_group: int = 0
    nonempty_groups: int = 0
    pass_sums: Dict[int, float] = field(default_factory=dict)  # k -> sum of pass@k over groups with >= k scored
    pass_counts: Dict[int, int] = field(default_factory=dict)
    group_mean_sum: float = 0.0

    @property
    def frac_zero_std(self) -> Optional[float]:
        return self.zero_std_groups / self.groups if self.groups else None

    def metrics(self, ks: Optional[Sequence[int]] = None) -> Dict[str, float]:
        """n, abstained, mean, accuracy (score >= threshold), pass@k and mean@k (k = the largest group), as
        ``swift-ext eval`` and the ``reward_eval`` callback report them. ``ks`` default: :func:`default_ks` of
        the smallest group, when some group has more than one scored completion."""
        out: Dict[str, float] = {"n": self.n, "abstained": self.abstained}
        if not self.n:
            return out
        out["mean"] = self.mean
        out["accuracy"] = self.correct / self.n
        if ks is None:
            ks = default_ks(self.min_group) if self.max_group > 1 else []
        for k in ks:
            if self.pass_counts.get(k):
                out[f"pass@{k}"] = self.pass_sums[k] / self.pass_counts[k]
        if self.max_group > 1:
            out[f"mean@{self.max_group}"] = self.group_mean_sum / self.nonempty_groups
        return out


class Accumulator:
    """Folds prompt groups of scores into a :class:`Summary`, one group at a time.

    pass@k is kept for every k that :func:`default_ks` could ask for (1, powers of two, each group size seen)
    and for ``ks`` given up front, so the summary can be read with any of them at the end."""

    def __init__(self, threshold: Optional[float] = None, ks: Sequence[int] = ()):
        self.s = Summary(threshold=threshold)
        self.extra_ks = set(ks)
        self._total: List[float] = []  # exact running sum (mean = fsum / n, as statistics.fmean)
        self._mean = 0.0  # Welford's running mean / sum of squared deviations, for the std
        self._m2 = 0.0
        self._groups: Dict[int, List[int]] = {}  # scored size -> [(correct count) per group]: see add_group

    def add_group(self, values: Sequence[Score]) -> None:
        s = self.s
        vals = _scored(values)
        s.abstained += len(values) - len(vals)
        for v in vals:
            s.n += 1
            _add_exact(self._total, v)
            delta = v - self._mean
            self._mean += delta / s.n
            self._m2 += delta * (v - self._mean)
            s.min = v if s.min is None else min(s.min, v)
            s.max = v if s.max is None else max(s.max, v)
        if len(vals) >= 2:
            s.groups += 1
            if max(vals) - min(vals) < ZERO_STD_EPS:
                s.zero_std_groups += 1
        if not vals:
            return
        size = len(vals)
        s.nonempty_groups += 1
        s.min_group = size if s.nonempty_groups == 1 else min(s.min_group, size)
        s.max_group = max(s.max_group, size)
        s.group_mean_sum += math.fsum(vals) / size
        if s.threshold is not None:
            c = sum(v >= s.threshold for v in vals)
            s.correct += c
            # counts of (size, correct) are enough to compute pass@k for any k at the end
            self._groups.setdefault(size, [0] * (size + 1))[c] += 1

    def add_groups(self, groups: Iterable[Sequence[Score]]) -> "Accumulator":
        for g in groups:
            self.add_group(g)
        return self

    def summary(self) -> Summary:
        s = self.s
        if s.n:
            s.mean = math.fsum(self._total) / s.n
            s.std = math.sqrt(max(self._m2 / s.n, 0.0)) if s.n > 1 else 0.0
        ks = set(self.extra_ks) | set(default_ks(s.min_group) if s.min_group else [])
        s.pass_sums, s.pass_counts = {}, {}
        for k in sorted(ks):
            for size, by_correct in self._groups.items():
                if size < k:
                    continue
                for c, count in enumerate(by_correct):
                    if count:
                        s.pass_sums[k] = s.pass_sums.get(k, 0.0) + count * pass_at_k(size, c, k)
                        s.pass_counts[k] = s.pass_counts.get(k, 0) + count
        return s


class GroupedAccumulators:
    """One :class:`Accumulator` per name, fed completion by completion with a group id (as a streamed read hands
    them out): a group's scores are kept until the group is closed, then folded. At most ``open_groups`` groups
    stay open (least recently fed closed first), so memory is bounded by the open groups' scores."""

    def __init__(self, names: Sequence[str], threshold: Optional[float] = None, open_groups: int = 4096):
        self.acc = {name: Accumulator(threshold) for name in names}
        self.open_groups = open_groups
        self._open: Dict[int, Dict[str, List[Score]]] = {}

    def add(self, group: int, scores: Dict[str, Score]) -> None:
        g = self._open.pop(group, None)
        if g is None:
            g = {name: [] for name in self.acc}
        self._open[group] = g
        for name, value in scores.items():
            g[name].append(value)
        while len(self._open) > self.open_groups:
            self._fold(next(iter(self._open)))

    def _fold(self, group: int) -> None:
        for name, values in self._open.pop(group).items():
            self.acc[name].add_group(values)

    def summaries(self) -> Dict[str, Summary]:
        for group in list(self._open):
            self._fold(group)
        return {name: acc.summary() for name, acc in self.acc.items()}


def summarise_groups(groups: Iterable[Sequence[Score]], threshold: Optional[float] = None,
                     ks: Sequence[int] = ()) -> Summary:
    """The :class:`Summary` of prompt groups of scores."""
    return Accumulator(threshold, ks).add_groups(groups).summary()


__all__ = ["Accumulator", "GroupedAccumulators", "Summary", "summarise_groups", "pass_at_k", "default_ks", "ZERO_STD_EPS"]
