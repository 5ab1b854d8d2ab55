"""Offline scoring: run rewards over a JSONL of rows with completions, before spending GPU hours.

A row holds the dataset columns ms-swift would pass (``solution``, ``images``, your own) and either
``completions`` (a list: one group, as GRPO's ``num_generations`` samples) or ``completion`` /
``response`` (one string; rows with the same prompt form a group). The report gives each reward's
mean, std, abstentions and the fraction of groups whose scores do not vary (GRPO learns nothing from
those: every advantage is zero).
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

from .errors import SwiftExtError
from .io import BadLine, iter_jsonl

COMPLETION_KEYS = ("completions", "completion", "response")


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

    def as_dict(self) -> Dict[str, Any]:
        return {"rows": self.rows, "completions": self.completions,
                "rewards": [s.as_dict() for s in self.stats]}


def _resolve(spec: str, plugin_files: Sequence[str]) -> tuple:
    """(display name, callable reward) for a swift-ext spec or an ms-swift orms name."""
    from . import plugins
    from .params import parse_spec
    from .rewards import aliases, configure

    name, _ = parse_spec(spec)
    if name in plugins.registry("reward") or name in aliases():
        cls = configure(spec)
        return spec, cls()
    from . import swift_bridge

    for f in plugin_files:
        swift_bridge.load_orm_file(f)
    cls = swift_bridge.get_orm(spec)
    return spec, cls()


def _groups(records: List[Dict[str, Any]]) -> List[List[int]]:
    by_key: Dict[str, List[int]] = {}
    for i, rec in enumerate(records):
        by_key.setdefault(rec["_group"], []).append(i)
    return list(by_key.values())


def load_records(path: str, completion_key: Optional[str] = None) -> tuple:
    """Flatten a JSONL file into one record per completion; returns (records, n_rows)."""
    records: List[Dict[str, Any]] = []
    n_rows = 0
    for lineno, row in iter_jsonl(path):
        if not isinstance(row, dict):
            raise BadLine(path, lineno, f"expected a JSON object, got {type(row).__name__}")
        n_rows += 1
        key = completion_key or next((k for k in COMPLETION_KEYS if k in row), None)
        if key is None or key not in row:
            raise BadLine(path, lineno, f"no completion column (looked for {completion_key or COMPLETION_KEYS})")
        value = row.pop(key)
        columns = {k: v for k, v in row.items()}
        if isinstance(value, list):
            group = f"row{lineno}"
            comps = value
        else:
            prompt = columns.get("messages") or columns.get("prompt") or columns.get("query") or lineno
            if isinstance(prompt, list) and prompt and isinstance(prompt[-1], dict) \
                    and prompt[-1].get("role") == "assistant":
                prompt = prompt[:-1]
            group = json.dumps(prompt, sort_keys=True, ensure_ascii=False, default=str)
            comps = [value]
        for c in comps:
            records.append({"_line": lineno, "_group": group, "completion": c, "columns": columns})
    return records, n_rows


def score_records(records: List[Dict[str, Any]], specs: Sequence[str], plugin_files: Sequence[str] = (),
                  batch_size: int = 256, on_batch: Optional[Callable[[int], None]] = None) -> ScoreReport:
    import asyncio

    rewards = [_resolve(s, plugin_files) for s in specs]
    per_reward: Dict[str, List[Optional[float]]] = {name: [] for name, _ in rewards}
    for start in range(0, len(records), batch_size):
        batch = records[start:start + batch_size]
        comps = [r["completion"] for r in batch]
        keys = set().union(*(r["columns"].keys() for r in batch)) if batch else set()
        columns = {k: [r["columns"].get(k) for r in batch] for k in keys}
        for name, fn in rewards:
            out = fn(comps, **columns)
            if asyncio.iscoroutine(out):
                out = asyncio.run(out)
            out = list(out)
            if len(out) != len(comps):
                raise SwiftExtError(f"reward {name} returned {len(out)} scores for {len(comps)} completions")
            per_reward[name].extend(None if v is None or (isinstance(v, float) and math.isnan(v))
                                    else float(v) for v in out)
        if on_batch:
            on_batch(len(batch))
    report = ScoreReport(rows=len({r["_line"] for r in records}), completions=len(records))
    groups = _groups(records)
    for name, values in per_reward.items():
        report.stats.append(summarise(name, values, groups))
    for i, rec in enumerate(records):
        report.scores.append({"line": rec["_line"], **{n: per_reward[n][i] for n in per_reward}})
    return report


def summarise(name: str, values: Sequence[Optional[float]], groups: Iterable[Sequence[int]]) -> RewardStats:
    got = [v for v in values if v is not None]
    s = RewardStats(name=name, n=len(values), abstained=len(values) - len(got))
    if got:
        s.mean = statistics.fmean(got)
        s.std = statistics.pstdev(got) if len(got) > 1 else 0.0
        s.min, s.max = min(got), max(got)
    for idx in groups:
        vals = [values[i] for i in idx if values[i] is not None]
        if len(vals) < 2:
            continue
        s.groups += 1
        if max(vals) - min(vals) < 1e-12:
            s.zero_std_groups += 1
    return s


def score_file(path: str, specs: Sequence[str], plugin_files: Sequence[str] = (),
               completion_key: Optional[str] = None, **kwargs) -> ScoreReport:
    records, n_rows = load_records(path, completion_key)
    report = score_records(records, specs, plugin_files, **kwargs)
    report.rows = n_rows
    return report
