"""Evaluation metrics: offline scoring of result files (``swift-ext eval``) and the group statistics
the training callbacks log (accuracy at a threshold, pass@k, mean@k).

Input files (a ``swift infer --result_path`` file, or any JSONL with completions) are read by
:mod:`swift_ext.scoring.results`, the same reader ``swift-ext rewards score`` uses: completions, the reference
column, and prompt groups (so pass@k works with one row per sample as well as with lists).

Metrics (``plugins.registry("metric")``; a metric spec may carry parameters, ``iou:gold_frame=pixels``):

* ``accuracy``  -- normalised answer match (the ``exact_match`` reward)
* ``yes_no``    -- accuracy, precision / recall / F1 of "yes" and the yes-ratio, as POPE-style
  hallucination benchmarks report them
* ``mcq``       -- option-letter accuracy (the ``mcq`` reward)
* ``iou``       -- mean IoU and accuracy at IoU >= 0.5 (the ``iou`` reward with its defaults: reference
  boxes in pixels of the original image unless ``gold_frame=`` says otherwise)
* ``reward:SPEC`` -- any registered reward (``reward:think_format``), mean and accuracy at ``threshold``

Every metric except third-party ones scores through :func:`swift_ext.scoring.score.score_results`, so
``eval -m reward:R`` and ``rewards score -r R`` give the same per-completion scores.

Every metric also reports ``pass@k`` (unbiased estimator, Chen et al. 2021) for each k up to the
smallest group size when groups hold several completions, and ``mean@k``.

Example::

    >>> pass_at_k(n=4, c=1, k=2)   # 1 - C(3,2)/C(4,2) = 1 - 3/6
    0.5
"""

from __future__ import annotations


from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from . import results
from ..errors import ConfigError
from ..components import Component, configure
from ..io import JsonlWriter, save_png
from ..params import Param, format_spec, parse_spec
from .results import Results
from ..rewards import get_reward
from ..rewards.answers import YesNo
from .score import resolve, score_results
from .stats import default_ks, pass_at_k, summarise_groups  # noqa: F401  (pass_at_k, default_ks: re-exported)


# -- group statistics (shared with the training callbacks) ----------------------------------------
def group_stats(groups: Sequence[Sequence[Optional[float]]], threshold: float = 1.0,
                ks: Optional[Sequence[int]] = None) -> Dict[str, float]:
    """mean, accuracy (score >= threshold), abstained, pass@k and mean@k over prompt groups
    (:meth:`swift_ext.scoring.stats.Summary.metrics`: the one summary behind eval, rewards score, filter and the
    callbacks).

    ``None`` scores (abstentions) are left out of every statistic; pass@k/mean@k use the groups with at
    least k scored samples.

    >>> group_stats([[1.0, 0.0], [0.0, 0.0]], threshold=1.0, ks=[1, 2])
    {'n': 4, 'abstained': 0, 'mean': 0.25, 'accuracy': 0.25, 'pass@1': 0.25, 'pass@2': 0.5, 'mean@2': 0.25}
    """
    return summarise_groups(groups, threshold, ks or ()).metrics(ks)


# -- metrics --------------------------------------------------------------------------------------
class Metric(Component):
    """A per-completion score plus a summary. Subclasses set ``name``, ``params``, ``threshold`` and
    implement :meth:`item` (one completion -> a score in [0, 1], or None to abstain). The reference answer
    is the row's ``solution`` (:mod:`swift_ext.scoring.results` puts the file's reference column there)."""

    kind = "metric"
    threshold = 1.0

    def __init__(self, **params: Any):
        self.bind_params(params)
        self.setup()

    def item(self, completion: str, row: Dict[str, Any]) -> Optional[float]:
        raise NotImplementedError

    def items(self, completions: Sequence[str], rows: Sequence[Dict[str, Any]]) -> List[Optional[float]]:
        return [self.item(c, r) for c, r in zip(completions, rows)]

    def score(self, res: Results) -> List[Optional[float]]:
        """Per-completion scores of a loaded completion file."""
        return self.items(res.completions, res.rows)

    def summary(self, scores: List[Optional[float]], groups: List[List[int]], completions: Sequence[str],
                rows: Sequence[Dict[str, Any]]) -> Dict[str, float]:
        return group_stats([[scores[i] for i in g] for g in groups], threshold=self.threshold)


class RewardMetric(Metric):
    """A metric backed by a registered reward (``reward:SPEC``, or a named metric's ``reward_spec``): its
    per-completion scores are the reward's, computed by :func:`swift_ext.scoring.score.score_results` exactly as
    ``swift-ext rewards score`` computes them. Parameters other than ``threshold`` go to the reward."""

    name = "reward"
    reward_spec = ""
    params = {"threshold": Param(1.0, "score counted as a success (accuracy, pass@k)", type=float)}

    @classmethod
    def declared_params(cls) -> Dict[str, Param]:
        """The metric's own parameters plus its reward's (``iou:gold_frame=same``)."""
        if not cls.reward_spec:
            return cls.params
        reward = get_reward(parse_spec(cls.reward_spec)[0])
        declared = reward.declared_params() if hasattr(reward, "declared_params") else getattr(reward, "params", {})
        return {**declared, **cls.params}

    def __init__(self, spec: Optional[str] = None, plugin_files: Sequence[str] = (), **params: Any):
        own = {k: params.pop(k) for k in list(params) if k in type(self).params}
        super().__init__(**own)
        name, raw = parse_spec(spec or self.reward_spec)  # reward:SPEC, or the named metric's reward
        raw.update({k: v for k, v in {**self._bound_params, **params}.items() if k not in type(self).params})
        self.spec = format_spec(name, raw) if raw else name
        self.reward = resolve(self.spec, plugin_files)

    def score(self, res: Results) -> List[Optional[float]]:
        return score_results(res, [self.spec], rewards={self.spec: self.reward})[self.spec]

    def items(self, completions, rows):
        return self.score(results_from_items(completions, rows))


def results_from_items(completions: Sequence[str], rows: Sequence[Dict[str, Any]]) -> Results:
    """A :class:`Results` over in-memory completions and their reward columns (one group per completion)."""
    n = len(completions)
    return Results(completions=list(completions), rows=[dict(r) for r in rows], lines=list(range(1, n + 1)),
                   group_of=list(range(n)), groups=[[i] for i in range(n)], rows_in=n)


class Accuracy(RewardMetric):
    """Normalised answer match against the reference (reward ``exact_match``)."""

    name = "accuracy"
    reward_spec = "exact_match"


class MCQ(RewardMetric):
    """Option-letter accuracy (reward ``mcq``)."""

    name = "mcq"
    reward_spec = "mcq"


class IoUMetric(RewardMetric):
    """Mean IoU and accuracy at IoU >= 0.5 (reward ``iou`` with its own defaults, so reference boxes are
    read in ``gold_frame=pixels`` unless the spec says otherwise: ``iou:gold_frame=same``)."""

    name = "iou"
    reward_spec = "iou"
    params = {"threshold": Param(0.5, "IoU counted as a hit", type=float, min=0.0, max=1.0)}

    def summary(self, scores, groups, completions, rows):
        out = super().summary(scores, groups, completions, rows)
        if "accuracy" in out:
            out[f"acc@{self.threshold:g}"] = out.pop("accuracy")
            out["mean_iou"] = out.pop("mean")
        return out


class YesNoMetric(RewardMetric):
    """Yes/no questions (POPE, AMBER discriminative): the ``yes_no`` reward's accuracy, plus precision,
    recall and F1 of the "yes" class, yes-ratio of the answers, and how many answers said neither."""

    name = "yes_no"
    reward_spec = "yes_no"

    def summary(self, scores, groups, completions, rows):
        out = super().summary(scores, groups, completions, rows)
        gold_key = getattr(self.reward, "gold_key", "solution")
        tp = fp = fn = tn = unparsed = yes = answered = 0
        for c, r in zip(completions, rows):
            gold = YesNo.gold_label(r.get(gold_key))
            if gold is None:
                continue
            pred = YesNo.answer_label(c)
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


def build_metric(spec: str, plugin_files: Sequence[str] = ()) -> Metric:
    """``accuracy``, ``iou:threshold=0.75``, ``reward:think_format`` or ``reward:length_budget:max_tokens=64``;
    ``reward:NAME`` may also name an ms-swift reward (``reward:accuracy``) or one from ``plugin_files``."""
    if spec.startswith("reward:"):
        return RewardMetric(spec=spec[len("reward:"):], plugin_files=plugin_files)
    return configure("metric", spec)()


# -- evaluating result files ----------------------------------------------------------------------
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
             progress: Optional[Callable[[int], None]] = None, completion_key: Optional[str] = None,
             plugin_files: Sequence[str] = ()) -> EvalReport:
    """Score the completion file ``path`` (read by :func:`swift_ext.scoring.results.load`) with every metric spec."""
    if not metrics:
        raise ConfigError("no metric given: pass --metric accuracy (or yes_no, mcq, iou, reward:NAME)")
    data = results.load(path, completion_key=completion_key, ref_key=ref_key)
    out: Dict[str, Dict[str, float]] = {}
    per_item = [{"line": ln, "group": gi} for ln, gi in zip(data.lines, data.group_of)]
    for spec in metrics:
        metric = build_metric(spec, plugin_files)
        scores = metric.score(data)
        out[spec] = metric.summary(scores, data.groups, data.completions, data.rows)
        for entry, s in zip(per_item, scores):
            entry[spec] = s
        if progress:
            progress(1)
    return EvalReport(path, data.rows_in, len(data.completions), len(data.groups), data.ref_key, out,
                      data.rejected, per_item)


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
    with JsonlWriter(path) as w:
        for entry in report.per_item:
            w.write(entry)
    return path


__all__ = ["pass_at_k", "group_stats", "default_ks", "Metric", "RewardMetric", "build_metric", "evaluate",
           "compare", "EvalReport", "plot_reports", "BUILTIN_METRICS"]
