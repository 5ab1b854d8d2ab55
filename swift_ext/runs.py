"""A training run's own files, read once: ms-swift's ``logging.jsonl`` (one metrics row per logging step),
``completions.jsonl`` (``--log_completions true``: one row per step, each column a list over that step's
completions) and ``args.json``. Works on any ms-swift 4.x run, with or without swift-ext loaded.

Example::

    >>> step_of({"global_step/max_steps": "3/40"}), step_of({"loss": 1.0})
    (3, None)
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

from .errors import ConfigError
from .io import iter_jsonl

#: columns of a completions.jsonl row that are not rewards
COMPLETION_META = ("step", "prompt", "completion", "advantages", "solution", "images", "messages", "prompt_id")


def find_runs(path: os.PathLike) -> List[Path]:
    """The run folders (holding a ``logging.jsonl``) at or under ``path``, oldest first."""
    root = Path(path)
    if (root / "logging.jsonl").is_file():
        return [root]
    found = sorted({p.parent for p in root.rglob("logging.jsonl")}, key=lambda p: (p / "logging.jsonl").stat().st_mtime)
    if not found:
        raise ConfigError(f"{path}: no logging.jsonl at or under it (is it an ms-swift output_dir?)")
    return found


def step_of(row: Dict[str, Any]) -> Optional[int]:
    """The global step of a ``logging.jsonl`` row (``"global_step/max_steps": "3/40"``), None when absent."""
    head = str(row.get("global_step/max_steps", "")).split("/")[0]
    return int(head) if head.isdigit() else None


def number(value: Any) -> Optional[float]:
    """A finite float, or None."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def logging_rows(output_dir: os.PathLike) -> List[dict]:
    """The rows of every ``logging.jsonl`` a swift run wrote at or under ``output_dir`` (newest run last)."""
    rows: List[dict] = []
    try:
        found = find_runs(output_dir)
    except ConfigError:  # no run (yet)
        return rows
    for run in found:
        rows += [obj for _, obj in iter_jsonl(str(run / "logging.jsonl")) if isinstance(obj, dict)]
    return rows


@dataclass
class Run:
    """One run folder: training rows (those with a step and a loss or reward), evaluation rows, arguments."""

    path: Path
    train: List[Dict[str, Any]] = field(default_factory=list)
    eval: List[Dict[str, Any]] = field(default_factory=list)
    args: Dict[str, Any] = field(default_factory=dict)

    @property
    def reward_names(self) -> List[str]:
        names = [k[len("rewards/"):-len("/mean")] for k in self._keys() if k.startswith("rewards/") and k.endswith("/mean")]
        return list(dict.fromkeys(names))

    def _keys(self) -> List[str]:
        return list(dict.fromkeys(k for row in self.train for k in row))

    def series(self, key: str) -> List[tuple]:
        """``[(step, value), ...]`` of a training metric, skipping rows without a finite value."""
        out = []
        for row in self.train:
            v = number(row.get(key))
            if v is not None:
                out.append((row["step"], v))
        return out

    def reward_weights(self) -> Dict[str, float]:
        """``--reward_weights`` by logged reward name (ms-swift logs rewards in ``--reward_funcs`` order;
        1.0 each when unset or when the counts differ)."""
        names = self.reward_names
        weights = self.args.get("reward_weights") or []
        if len(weights) != len(names):
            weights = [1.0] * len(names)
        return {n: float(w) for n, w in zip(names, weights)}

    def completions_path(self) -> Optional[Path]:
        p = self.path / "completions.jsonl"
        return p if p.is_file() else None

    def completions(self) -> Iterator[Dict[str, Any]]:
        """One dict per logged completion: ``step``, ``prompt``, ``completion``, ``rewards`` {name: score},
        ``advantage`` and the extra dataset columns; streamed (a 100 k-line file is not held in memory)."""
        path = self.completions_path()
        if path is None:
            return
        for _, row in iter_jsonl(str(path)):
            if not isinstance(row, dict):
                continue
            comps = row.get("completion")
            if not isinstance(comps, list):
                comps = [comps]
            n = len(comps)
            per = {k: (v if isinstance(v, list) and len(v) == n else [v] * n) for k, v in row.items()}
            rewards = [k for k in row if k not in COMPLETION_META]
            for i in range(n):
                yield {"step": int(number(per.get("step", [None] * n)[i]) or 0),
                       "prompt": per.get("prompt", [None] * n)[i],
                       "completion": comps[i],
                       "rewards": {k: number(per[k][i]) for k in rewards},
                       "advantage": number(per.get("advantages", [None] * n)[i]),
                       **{k: per[k][i] for k in ("solution", "images") if k in per}}


def load_run(path: os.PathLike) -> Run:
    """A :class:`Run` from a run folder (the newest one when ``path`` holds several)."""
    folder = find_runs(path)[-1]
    run = Run(path=folder)
    for _, row in iter_jsonl(str(folder / "logging.jsonl")):
        if not isinstance(row, dict):
            continue
        step = step_of(row)
        if step is None:
            continue
        row = {**row, "step": step}
        if any(k.startswith("eval_") for k in row):
            run.eval.append(row)
        elif "loss" in row or "reward" in row:
            run.train.append(row)
    args = folder / "args.json"
    if args.is_file():
        try:
            run.args = json.loads(args.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            run.args = {}
    return run


__all__ = ["Run", "load_run", "find_runs", "logging_rows", "step_of", "number"]
