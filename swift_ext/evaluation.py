"""Evaluation metrics: offline scoring of result files (``swift-ext eval``) and the group statistics
the training callbacks log (accuracy at a threshold, pass@k, mean@k).

Input rows (a ``swift infer --result_path`` file, or any JSONL) hold a completion -- ``response``,
``completion``, or a list in ``completions`` / ``responses`` (several samples of one prompt) -- and a
reference column (``solution``, ``labels``, ``answer``, ``reference``, ``ground_truth``; first found, or
``ref_key``). Rows sharing a prompt (``prompt_id``, else ``prompt``/``query``, else the user turns of
``messages``) form one group, so pass@k works with one row per sample as well as with lists.

Metrics (``plugins.registry("metric")``; a metric spec may carry parameters, ``iou:gold_frame=pixels``):

* ``accuracy``  -- normalised answer match (the ``exact_match`` reward)
* ``yes_no``    -- accuracy, precision / recall / F1 of "yes" and the yes-ratio, as POPE-style
  hallucination benchmarks report them
* ``mcq``       -- option-letter accuracy (the ``mcq`` reward)
* ``iou``       -- mean IoU and accuracy at IoU >= 0.5 (the ``iou`` reward; reference in the model's frame
  unless ``gold_frame=`` says otherwise)
* ``reward:SPEC`` -- any registered reward (``reward:think_format``), mean and accuracy at ``threshold``

Every metric also reports ``pass@k`` (unbiased estimator, Chen et al. 2021) for each k up to the
smallest group size when groups hold several completions, and ``mean@k``.

Example::

    >>> pass_at_k(n=4, c=1, k=2)   # 1 - C(3,2)/C(4,2) = 1 - 3/6
    0.5
"""

from __future__ import annotations

import json
import math
import re
import statistics
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from . import plugins
from .errors import ConfigError, PluginError
from .params import Param, bind, parse_spec

REF_KEYS = ("solution", "labels", "answer", "reference", "ground_truth", "gold")
PROMPT_KEYS = ("prompt_id", "prompt", "query", "question", "problem")


# -- group statistics (shared with the training callbacks) ----------------------------------------
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


def group_stats(groups: Sequence[Sequence[Optional[float]]], threshold: float = 1.0,
                ks: Optional[Sequence[int]] = None) -> Dict[str, float]:
    """mean, accuracy (score >= threshold), abstained, pass@k and mean@k over prompt groups.

    ``None`` scores (abstentions) are left out of every statistic; pass@k/mean@k use the groups with at
    least k scored samples.

    >>> group_stats([[1.0, 0.0], [0.0, 0.0]], threshold=1.0, ks=[1, 2])
    {'n': 4, 'abstained': 0, 'mean': 0.25, 'accuracy': 0.25, 'pass@1': 0.25, 'pass@2': 0.5, 'mean@2': 0.25}
    """
    scored = [[float(s) for s in g if s is not None and not (isinstance(s, float) and math.isnan(s))]
              for g in groups]
    flat = [s for g in scored for s in g]
    total = sum(len(g) for g in groups)
    out: Dict[str, float] = {"n": len(flat), "abstained": total - len(flat)}
    if not flat:
        return out
    out["mean"] = statistics.fmean(flat)
    out["accuracy"] = sum(s >= threshold for s in flat) / len(flat)
    nonempty = [g for g in scored if g]
    if ks is None:
        ks = default_ks(min(len(g) for g in nonempty)) if max(len(g) for g in nonempty) > 1 else []
    for k in ks:
        eligible = [g for g in nonempty if len(g) >= k]
        if eligible:
            out[f"pass@{k}"] = statistics.fmean(pass_at_k(len(g), sum(s >= threshold for s in g), k)
                                                for g in eligible)
    # mean@k (k = largest group size): the mean score of a prompt's k samples, averaged over prompts
    k_max = max(len(g) for g in nonempty)
    if k_max > 1:
        out[f"mean@{k_max}"] = statistics.fmean(statistics.fmean(g) for g in nonempty)
    return out


def group_by_prompt(records: Sequence[Dict[str, Any]], key: Callable[[Dict[str, Any]], Any]) -> List[List[int]]:
    """Indices of ``records`` grouped by ``key(record)``, in order of first appearance."""
    groups: Dict[Any, List[int]] = {}
    for i, rec in enumerate(records):
        groups.setdefault(key(rec), []).append(i)
    return list(groups.values())


def prompt_key(row: Dict[str, Any]) -> str:
    """What identifies a row's prompt: prompt_id / prompt / query, else the non-assistant turns."""
    for k in PROMPT_KEYS:
        if row.get(k) not in (None, ""):
            return f"{k}={row[k]}"
    msgs = row.get("messages")
    if isinstance(msgs, list):
        turns = [m for m in msgs if isinstance(m, dict)]
        while turns and turns[-1].get("role") == "assistant":
            turns = turns[:-1]
        return json.dumps(turns, ensure_ascii=False, sort_keys=True, default=str) + json.dumps(row.get("images"),
                                                                                              default=str)
    return json.dumps(row, sort_keys=True, default=str)


# -- metrics --------------------------------------------------------------------------------------
class Metric:
    """A per-completion score plus a summary. Subclasses set ``name``, ``params``, ``threshold`` and
    implement :meth:`item` (one completion -> a score in [0, 1], or None to abstain)."""

    name = ""
    params: Dict[str, Param] = {}
    threshold = 1.0

    def __init__(self, ref_key: str = "solution", **params: Any):
        self.ref_key = ref_key
        self.config = bind(self.params, params, owner=f"metric {self.name}")
        self.setup()

    def setup(self) -> None:
        pass

    def item(self, completion: str, row: Dict[str, Any]) -> Optional[float]:
        raise NotImplementedError

    def items(self, completions: Sequence[str], rows: Sequence[Dict[str, Any]]) -> List[Optional[float]]:
        return [self.item(c, r) for c, r in zip(completions, rows)]

    def summary(self, scores: List[Optional[float]], groups: List[List[int]], completions: Sequence[str],
                rows: Sequence[Dict[str, Any]]) -> Dict[str, float]:
        return group_stats([[scores[i] for i in g] for g in groups], threshold=self.threshold)


class RewardMetric(Metric):
    """Scores with a registered swift-ext reward (``reward:SPEC``); reference read from ``ref_key``."""

    name = "reward"
    reward_spec = ""
    params = {"threshold": Param(1.0, "score counted as a success (accuracy, pass@k)", type=float)}

    def __init__(self, ref_key: str = "solution", spec: Optional[str] = None, **params: Any):
        threshold = params.pop("threshold", None)
        super().__init__(ref_key, **({"threshold": threshold} if threshold is not None else {}))
        self.threshold = self.config["threshold"]
        self.spec = spec or self.reward_spec
        from .rewards import build, get_reward

        name, raw = parse_spec(self.spec)
        declared = getattr(get_reward(name), "params", {})
        if "gold_key" in declared and "gold_key" not in raw:
            raw["gold_key"] = ref_key
        raw.update({k: v for k, v in params.items()})
        from .params import format_spec

        self.reward = build(format_spec(name, raw))

    def items(self, completions, rows):
        return list(self.reward(list(completions), **_columns(rows)))


def _columns(rows: Sequence[Dict[str, Any]]) -> Dict[str, List[Any]]:
    keys = sorted({k for r in rows for k in r})
    return {k: [r.get(k) for r in rows] for k in keys}


def _reward_available(name: str) -> bool:
    return name in plugins.registry("reward")


class Accuracy(RewardMetric):
    """Normalised answer match against the reference (reward ``exact_match``)."""

    name = "accuracy"
    reward_spec = "exact_match"


class MCQ(RewardMetric):
    """Option-letter accuracy (reward ``mcq``)."""

    name = "mcq"
    reward_spec = "mcq"


class IoUMetric(RewardMetric):
    """Mean IoU and accuracy at IoU >= 0.5 (reward ``iou``; default ``gold_frame=same``)."""

    name = "iou"
    reward_spec = "iou:gold_frame=same"
    params = {"threshold": Param(0.5, "IoU counted as a hit", type=float, min=0.0, max=1.0)}

    def summary(self, scores, groups, completions, rows):
        out = super().summary(scores, groups, completions, rows)
        if "accuracy" in out:
            out[f"acc@{self.threshold:g}"] = out.pop("accuracy")
            out["mean_iou"] = out.pop("mean")
        return out


_YES = re.compile(r"\b(yes|true|correct)\b", re.I)
_NO = re.compile(r"\b(no|false|incorrect)\b", re.I)


def _yes_no_fallback(text: Any) -> Optional[str]:
    if isinstance(text, bool):
        return "yes" if text else "no"
    if isinstance(text, (list, tuple)) and len(text) == 1:
        return _yes_no_fallback(text[0])
    s = "" if text is None else str(text)
    y, n = _YES.search(s), _NO.search(s)
    if y and (not n or y.start() < n.start()):
        return "yes"
    if n:
        return "no"
    return None


def parse_yes_no(text: Any) -> Optional[str]:
    """'yes' / 'no' / None: the rewards module's parser (answer tag and think-aware) when present."""
    try:
        from .rewards.answers import answer_scope, yes_no
    except ImportError:
        return _yes_no_fallback(text)
    if isinstance(text, (list, tuple)) and len(text) == 1:
        text = text[0]
    if isinstance(text, str):
        text = answer_scope(text)
    return yes_no(text)


class YesNoMetric(Metric):
    """Yes/no questions (POPE, AMBER discriminative): accuracy, precision, recall and F1 of the "yes"
    class, yes-ratio of the answers, and how many answers said neither."""

    name = "yes_no"

    def item(self, completion, row):
        gold = parse_yes_no(row.get(self.ref_key))
        if gold is None:
            return None
        return 1.0 if parse_yes_no(completion) == gold else 0.0

    def summary(self, scores, groups, completions, rows):
        out = super().summary(scores, groups, completions, rows)
        tp = fp = fn = tn = unparsed = yes = answered = 0
        for c, r in zip(completions, rows):
            gold = parse_yes_no(r.get(self.ref_key))
            if gold is None:
                continue
            pred = parse_yes_no(c)
            if pred is None:
                unparsed += 1
            else:
                answered += 1
                yes += pred == "yes"
            if pred == "yes":
                tp += gold == "yes"
                fp += gold == "no"
            else:  # "no" or no answer: not a positive prediction
                fn += gold == "yes"
                tn += gold == "no"
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        out.update({"precision": precision, "recall": recall,
                    "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
                    "yes_ratio": yes / answered if answered else 0.0, "unparsed": unparsed})
        return out


BUILTIN_METRICS = {"accuracy": Accuracy, "yes_no": YesNoMetric, "mcq": MCQ, "iou": IoUMetric}


def _validate_metric(name: str, obj: Any) -> None:
    if not (isinstance(obj, type) and issubclass(obj, Metric)):
        raise PluginError(f"metric {name!r} must be a subclass of swift_ext.evaluation.Metric, got {obj!r}")


plugins.set_validator("metric", _validate_metric)


def build_metric(spec: str, ref_key: str = "solution") -> Metric:
    """``accuracy``, ``iou:threshold=0.75``, ``reward:think_format`` or ``reward:length_budget:max_tokens=64``."""
    if spec.startswith("reward:"):
        inner = spec[len("reward:"):]
        return RewardMetric(ref_key, spec=inner)
    name, raw = parse_spec(spec)
    cls = plugins.registry("metric").get(name)
    if issubclass(cls, RewardMetric):
        threshold = raw.pop("threshold", None)
        return cls(ref_key, **({"threshold": threshold} if threshold is not None else {}), **raw)
    return cls(ref_key, **raw)


# -- loading result files -------------------------------------------------------------------------
@dataclass
class Loaded:
    path: str
    completions: List[str] = field(default_factory=list)
    rows: List[Dict[str, Any]] = field(default_factory=list)  # one per completion
    lines: List[int] = field(default_factory=list)
    rejected: List[Tuple[int, str]] = field(default_factory=list)
    rows_in: int = 0
    ref_key: str = "solution"


def _completions_of(row: Dict[str, Any]) -> Optional[List[str]]:
    for key in ("completions", "responses"):
        v = row.get(key)
        if isinstance(v, list):
            return [x if isinstance(x, str) else json.dumps(x, ensure_ascii=False) for x in v]
    for key in ("response", "completion"):
        v = row.get(key)
        if isinstance(v, str):
            return [v]
    return None


def detect_ref_key(rows: Iterable[Dict[str, Any]]) -> Optional[str]:
    rows = list(rows)
    for key in REF_KEYS:
        if any(r.get(key) not in (None, "", []) for r in rows):
            return key
    return None


def load_results(path: str, ref_key: Optional[str] = None) -> Loaded:
    """Read a result JSONL: one entry per completion; rows without a completion are rejected with their
    line and reason (counts: ``rows_in`` = accepted rows + rejected)."""
    from .io import iter_jsonl

    out = Loaded(path=path)
    raw: List[Tuple[int, Dict[str, Any]]] = []
    try:
        for lineno, obj in iter_jsonl(path):
            out.rows_in += 1
            if not isinstance(obj, dict):
                out.rejected.append((lineno, f"expected a JSON object, got {type(obj).__name__}"))
                continue
            raw.append((lineno, obj))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    key = ref_key or detect_ref_key(r for _, r in raw) or "solution"
    out.ref_key = key
    for lineno, row in raw:
        comps = _completions_of(row)
        if comps is None:
            out.rejected.append((lineno, "no completion (response / completion / completions)"))
            continue
        if not comps:
            out.rejected.append((lineno, "empty completions list"))
            continue
        gid = prompt_key(row)
        for c in comps:
            r = {k: v for k, v in row.items() if k not in ("completions", "responses", "logprobs")}
            r["_group"] = gid
            out.completions.append(c)
            out.rows.append(r)
            out.lines.append(lineno)
    out.rejected.sort()
    if not out.completions:
        reasons = "; ".join(f"line {n}: {why}" for n, why in out.rejected[:3])
        raise ConfigError(f"{path}: no row with a completion ({out.rows_in} rows; {reasons or 'empty file'})")
    return out


@dataclass
class EvalReport:
    path: str
    rows_in: int
    completions: int
    groups: int
    ref_key: str
    metrics: Dict[str, Dict[str, float]]
    rejected: List[Tuple[int, str]]
    per_item: List[Dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> Dict[str, Any]:
        return {"path": self.path, "rows_in": self.rows_in, "completions": self.completions,
                "groups": self.groups, "ref_key": self.ref_key, "metrics": self.metrics,
                "rejected": [{"line": n, "reason": r} for n, r in self.rejected]}


def evaluate(path: str, metrics: Sequence[str], ref_key: Optional[str] = None,
             progress: Optional[Callable[[int], None]] = None) -> EvalReport:
    """Score ``path`` with every metric spec in ``metrics``."""
    if not metrics:
        raise ConfigError("no metric given: pass --metric accuracy (or yes_no, mcq, iou, reward:NAME)")
    data = load_results(path, ref_key)
    groups = group_by_prompt(data.rows, lambda r: r["_group"])
    results: Dict[str, Dict[str, float]] = {}
    per_item = [{"line": ln, "group": gi} for ln, gi in zip(data.lines, _group_index(groups, len(data.rows)))]
    for spec in metrics:
        metric = build_metric(spec, data.ref_key)
        scores = metric.items(data.completions, data.rows)
        results[spec] = metric.summary(scores, groups, data.completions, data.rows)
        for entry, s in zip(per_item, scores):
            entry[spec] = s
        if progress:
            progress(1)
    return EvalReport(path, data.rows_in, len(data.completions), len(groups), data.ref_key, results,
                      data.rejected, per_item)


def _group_index(groups: List[List[int]], n: int) -> List[int]:
    out = [0] * n
    for gi, g in enumerate(groups):
        for i in g:
            out[i] = gi
    return out


def compare(a: EvalReport, b: EvalReport) -> List[Dict[str, Any]]:
    """Rows ``{metric, stat, a, b, delta}`` for every statistic both reports have."""
    out = []
    for spec in a.metrics:
        if spec not in b.metrics:
            continue
        for stat, va in a.metrics[spec].items():
            vb = b.metrics[spec].get(stat)
            if vb is None:
                continue
            out.append({"metric": spec, "stat": stat, "a": va, "b": vb, "delta": vb - va})
    return out


def plot_reports(reports: Sequence[EvalReport], path: str, labels: Optional[Sequence[str]] = None) -> str:
    """Grouped bar chart of the [0, 1] statistics (accuracy, pass@k, f1, ...) of each report."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io import save_png

    labels = list(labels or [r.path for r in reports])
    keys: List[str] = []
    for r in reports:
        for spec, stats in r.metrics.items():
            for stat, v in stats.items():
                k = f"{spec}/{stat}"
                if stat not in ("n", "abstained", "unparsed") and 0.0 <= v <= 1.0 and k not in keys:
                    keys.append(k)
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(keys) * len(reports)), 4), dpi=100)
    width = 0.8 / max(len(reports), 1)
    for j, (r, lab) in enumerate(zip(reports, labels)):
        vals = []
        for k in keys:
            spec, stat = k.rsplit("/", 1)
            vals.append(r.metrics.get(spec, {}).get(stat, 0.0))
        ax.bar([i + j * width for i in range(len(keys))], vals, width=width, label=lab)
    ax.set_xticks([i + width * (len(reports) - 1) / 2 for i in range(len(keys))])
    ax.set_xticklabels(keys, rotation=45, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    return save_png(fig, path)


def write_per_item(report: EvalReport, path: str) -> str:
    from .io import atomic_write

    with atomic_write(path) as fh:
        for entry in report.per_item:
            fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
    return path


__all__ = ["pass_at_k", "group_stats", "default_ks", "Metric", "RewardMetric", "build_metric", "evaluate",
           "compare", "load_results", "EvalReport", "plot_reports", "BUILTIN_METRICS"]
