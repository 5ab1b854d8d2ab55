"""Offline scoring: run rewards over completions before spending GPU hours.

The one scoring path: ``swift-ext rewards score``, ``swift-ext eval`` (every metric backed by a reward) and
the curation tools call :func:`score_results`, so the same rows get the same per-completion scores
everywhere. Rows are read by :mod:`swift_ext.scoring.results`. The summary gives each reward's mean, std,
abstentions and the fraction of groups whose scores do not vary (GRPO learns nothing from those: every
advantage is zero).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

from .. import plugins
from . import results as results_mod
from .stats import GroupedAccumulators, Summary, summarise_groups
from ..bridge.rewards import get_orm, load_orm_file
from ..errors import SwiftExtError, UnknownNameError
from ..params import parse_spec
from ..rewards import aliases, configure

Score = Optional[float]
BATCH_SIZE = 256


@dataclass
class RewardStats:
    name: str
    n: int = 0
    abstained: int = 0
    mean: Optional[float] = None
    std: Optional[float] = None
    min: Optional[float] = None
    max: Optional[float] = None
    groups: int = 0
    zero_std_groups: int = 0

    @property
    def frac_zero_std(self) -> Optional[float]:
        return self.zero_std_groups / self.groups if self.groups else None

    def as_dict(self) -> Dict[str, Any]:
        d = dict(self.__dict__)
        d["frac_zero_std"] = self.frac_zero_std
        return d


@dataclass
class ScoreReport:
    rows: int
    completions: int
    stats: List[RewardStats] = field(default_factory=list)
    scores: List[Dict[str, Any]] = field(default_factory=list)  # one per completion
    rejected: List[Any] = field(default_factory=list)  # (line, reason)

    def as_dict(self) -> Dict[str, Any]:
        return {"rows": self.rows, "completions": self.completions,
                "rewards": [s.as_dict() for s in self.stats],
                "rejected": [{"line": n, "reason": r} for n, r in self.rejected]}


def resolve(spec: str, plugin_files: Sequence[str] = ()) -> Callable:
    """A callable reward for a swift-ext spec or alias (``iou:threshold=0.7``) or an ms-swift orms name
    (built-in, or from one of ``plugin_files``)."""
    name, _ = parse_spec(spec)
    registry = plugins.registry("reward")
    if name in registry or name in aliases():
        return configure(spec)()
    if not plugin_files and name not in plugins.SWIFT_BUILTIN_REWARDS:  # a typo: say so before importing ms-swift
        raise UnknownNameError("reward", name, [*registry, *aliases(), *plugins.SWIFT_BUILTIN_REWARDS])
    for f in plugin_files:
        load_orm_file(f)
    return get_orm(spec)()


def call_reward(name: str, fn: Callable, completions: List[str], columns: Dict[str, List[Any]]) -> List[Score]:
    """One reward call as ms-swift makes it (``fn(completions, **columns)``, awaited when async); NaN and
    ``None`` both mean "abstained"."""
    out = fn(completions, **columns)
    if asyncio.iscoroutine(out):
        out = asyncio.run(out)
    out = list(out)
    if len(out) != len(completions):
        raise SwiftExtError(f"reward {name} returned {len(out)} scores for {len(completions)} completions")
    return [None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v) for v in out]


def score_results(res: "results_mod.Results", specs: Sequence[str], plugin_files: Sequence[str] = (),
                  batch_size: int = BATCH_SIZE, on_batch: Optional[Callable[[int], None]] = None,
                  rewards: Optional[Dict[str, Callable]] = None,
                  details: Optional[Dict[str, List[Any]]] = None) -> Dict[str, List[Score]]:
    """Per-completion scores ``{spec: [score, ...]}`` for every reward spec, in batches of ``batch_size``
    completions (``rewards`` may hand in callables built already). ``details``, when given, receives
    ``{spec: [dict or None, ...]}`` for rewards that keep per-completion details (a judge's rationale)."""
    rewards = dict(rewards or {})
    for spec in specs:
        if spec not in rewards:
            rewards[spec] = resolve(spec, plugin_files)
    scores: Dict[str, List[Score]] = {spec: [] for spec in specs}
    for start in range(0, len(res.completions), batch_size):
        comps = res.completions[start:start + batch_size]
        columns = res.columns(start, start + batch_size)
        for spec in specs:
            scores[spec].extend(call_reward(spec, rewards[spec], comps, columns))
            kept = getattr(rewards[spec], "last_details", None)
            if details is not None and isinstance(kept, list) and len(kept) == len(comps):
                details.setdefault(spec, [None] * start).extend(kept)
        if on_batch:
            on_batch(len(comps))
    return scores


def summarise(name: str, values: Sequence[Score], groups: Iterable[Sequence[int]]) -> RewardStats:
    """``rewards score``'s statistics of one reward (:mod:`swift_ext.scoring.stats`, the one summary)."""
    return _reward_stats(name, summarise_groups([values[i] for i in idx] for idx in groups))


def _reward_stats(name: str, s: Summary) -> RewardStats:
    return RewardStats(name=name, n=s.n + s.abstained, abstained=s.abstained, mean=s.mean, std=s.std, min=s.min,
                       max=s.max, groups=s.groups, zero_std_groups=s.zero_std_groups)


def score_file(path: str, specs: Sequence[str], plugin_files: Sequence[str] = (),
               completion_key: Optional[str] = None, ref_key: Optional[str] = None,
               on_batch: Optional[Callable[[int], None]] = None, batch_size: int = BATCH_SIZE) -> ScoreReport:
    """Score every completion of a completion file (:func:`swift_ext.scoring.results.load`) with ``specs``."""
    res = results_mod.load(path, completion_key=completion_key, ref_key=ref_key)
    return report(res, score_results(res, specs, plugin_files, batch_size, on_batch))


def score_stream(path: str, specs: Sequence[str], plugin_files: Sequence[str] = (),
                 completion_key: Optional[str] = None, ref_key: Optional[str] = None,
                 on_batch: Optional[Callable[[int], None]] = None, batch_size: int = BATCH_SIZE,
                 sink: Optional[Callable[[Dict[str, Any]], None]] = None) -> ScoreReport:
    """:func:`score_file` in bounded memory: the file is read in batches (:class:`swift_ext.scoring.results.Stream`),
    each completion's ``{"line", spec: score, ...}`` goes to ``sink`` as it is scored (not kept), and the
    statistics fold prompt groups as they close. The same numbers as :func:`score_file` for files that keep a
    prompt's rows together (see ``results.OPEN_GROUPS``)."""
    rewards = {spec: resolve(spec, plugin_files) for spec in specs}
    stream = results_mod.Stream(path, completion_key=completion_key, ref_key=ref_key, batch_size=batch_size)
    folder = GroupedAccumulators(specs, open_groups=results_mod.OPEN_GROUPS)
    for batch in stream.batches():
        details: Dict[str, List[Any]] = {}
        scores = score_results(batch, specs, rewards=rewards, batch_size=batch_size, details=details)
        for i, (line, group) in enumerate(zip(batch.lines, batch.group_of)):
            row = {spec: scores[spec][i] for spec in specs}
            folder.add(group, row)
            if sink is not None:
                extra = {n: d[i] for n, d in details.items() if i < len(d) and d[i]}
                sink({"line": line, **row, **({"details": extra} if extra else {})})
        if on_batch:
            on_batch(len(batch.completions))
    out = ScoreReport(rows=stream.rows_in, completions=stream.completions, rejected=sorted(stream.rejected))
    for spec, s in folder.summaries().items():
        out.stats.append(_reward_stats(spec, s))
    return out


def report(res: "results_mod.Results", scores: Dict[str, List[Score]],
           details: Optional[Dict[str, List[Any]]] = None) -> ScoreReport:
    out = ScoreReport(rows=res.rows_in, completions=len(res.completions), rejected=list(res.rejected))
    for name, values in scores.items():
        out.stats.append(summarise(name, values, res.groups))
    for i, line in enumerate(res.lines):
        extra = {n: d[i] for n, d in (details or {}).items() if i < len(d) and d[i]}
        out.scores.append({"line": line, **{n: scores[n][i] for n in scores}, **({"details": extra} if extra else {})})
    return out


__all__ = ["resolve", "call_reward", "score_results", "score_file", "score_stream", "summarise", "report", "RewardStats",
           "ScoreReport"]
