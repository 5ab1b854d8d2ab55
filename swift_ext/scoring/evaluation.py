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
* ``reward:SPEC`` -- any registered reward (``reward:think_format``), mean and accuracy at ``threshold``: the
  metric ``reward`` wrapping a reward spec, configured by :func:`swift_ext.components.configure` like any other

A file is read as a stream (:class:`swift_ext.scoring.results.Stream`): each metric folds its summary with an
accumulator (:class:`MetricAccumulator`, over :mod:`swift_ext.scoring.stats`), so memory does not grow with
the file.

Every metric except third-party ones scores through :func:`swift_ext.scoring.score.score_results`, so
``eval -m reward:R`` and ``rewards score -r R`` give the same per-completion scores.

Every metric also reports ``pass@k`` (unbiased estimator, Chen et al. 2021) for each k up to the
smallest group size when groups hold several completions, and ``mean@k``.

Example::

    >>> pass_at_k(n=4, c=1, k=2)   # 1 - C(3,2)/C(4,2) = 1 - 3/6
    0.5
"""

from __future__ import annotations


import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from . import results
from .. import plugins
from ..errors import ConfigError, ParamError
from ..components import Component, Configured, configure
from ..io import JsonlWriter, save_png
from ..params import Param, format_spec
from .results import Results
from ..rewards.answers import YesNo
from .score import BATCH_SIZE, resolve, score_results
from .stats import GroupedAccumulators, default_ks, pass_at_k, summarise_groups  # noqa: F401  (re-exported)


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
#: completions a metric that only has the list form of :meth:`Metric.summary` may hold (see :class:`Buffered`)
BUFFER_LIMIT = 200_000


class MetricAccumulator:
    """Folds one metric's per-completion scores into its summary as a streamed read hands them out: prompt
    groups go through :class:`swift_ext.scoring.stats.GroupedAccumulators` (mean, accuracy at the metric's
    ``threshold``, pass@k, mean@k), so memory holds the open groups' scores only. A metric with more statistics
    subclasses this (override :meth:`add` and :meth:`result`, call ``super()``) and returns it from
    :meth:`Metric.accumulator`."""

    def __init__(self, metric: "Metric"):
        self.metric = metric
        self._groups = GroupedAccumulators(["score"], metric.threshold, open_groups=results.OPEN_GROUPS)

    def add(self, group: int, score: Optional[float], completion: str, row: Dict[str, Any]) -> None:
        """One completion: its prompt group id (ids in order of first appearance), score, text and columns."""
        self._groups.add(group, {"score": score})

    def result(self) -> Dict[str, float]:
        return self._groups.summaries()["score"].metrics()


class Buffered(MetricAccumulator):
    """For a plugin metric that defines only the list form ``summary(scores, groups, completions, rows)``: its
    completions are kept (at most ``metric.buffer_limit``, default :data:`BUFFER_LIMIT`; more is a ConfigError
    naming the metric, not a swap storm) and handed to that method at the end."""

    def __init__(self, metric: "Metric"):
        self.metric = metric
        self.limit = int(getattr(metric, "buffer_limit", BUFFER_LIMIT))
        self.scores: List[Optional[float]] = []
        self.group_of: List[int] = []
        self.completions: List[str] = []
        self.rows: List[Dict[str, Any]] = []

    def add(self, group, score, completion, row):
        if len(self.scores) >= self.limit:
            raise ConfigError(
                f"metric {metric_label(self.metric)} summarises whole lists (it defines summary(scores, groups, "
                f"completions, rows) and no accumulator()), so eval holds its completions: more than "
                f"{self.limit:,} is too many. Give the metric an accumulator() (docs: Evaluation, 'Metrics that "
                "stream') or raise its buffer_limit")
        self.scores.append(score)
        self.group_of.append(group)
        self.completions.append(completion)
        self.rows.append(row)

    def result(self):
        groups = results.group_indices(self.group_of)
        return self.metric.summary(self.scores, groups, self.completions, self.rows)


def metric_label(metric: "Metric") -> str:
    return type(metric).__name__ if isinstance(type(metric), Configured) else (metric.name or type(metric).__name__)


class Metric(Component):
    """A per-completion score plus a summary. Subclasses set ``name``, ``params``, ``threshold`` and
    implement :meth:`item` (one completion -> a score in [0, 1], or None to abstain). The reference answer
    is the row's ``solution`` (:mod:`swift_ext.scoring.results` puts the file's reference column there).

    ``swift-ext eval`` reads its input as a stream: a metric's summary is folded by :meth:`accumulator`
    (:class:`MetricAccumulator`: mean, accuracy at ``threshold``, pass@k, mean@k; subclass it for more). A
    metric that overrides only the list form :meth:`summary` still works: eval keeps its completions, at most
    ``buffer_limit`` (:class:`Buffered`)."""

    kind = "metric"
    threshold = 1.0
    buffer_limit = BUFFER_LIMIT

    def __init__(self, **params: Any):
        self.bind_params(params)
        self.setup()

    def item(self, completion: str, row: Dict[str, Any]) -> Optional[float]:
        raise NotImplementedError

    def items(self, completions: Sequence[str], rows: Sequence[Dict[str, Any]]) -> List[Optional[float]]:
        return [self.item(c, r) for c, r in zip(completions, rows)]

    def score(self, res: Results) -> List[Optional[float]]:
        """Per-completion scores of loaded completions (a whole file, or one batch of a stream)."""
        return self.items(res.completions, res.rows)

    def accumulator(self) -> MetricAccumulator:
        """A fresh fold of this metric's summary (:class:`Buffered` for a metric with only the list form)."""
        if type(self).summary is not Metric.summary:
            return Buffered(self)
        return MetricAccumulator(self)

    def summary(self, scores: List[Optional[float]], groups: List[List[int]], completions: Sequence[str],
                rows: Sequence[Dict[str, Any]]) -> Dict[str, float]:
        """The summary of whole lists (``groups``: indices per prompt), computed by :meth:`accumulator`; a
        subclass overriding this list form may call ``super().summary(...)`` for the default statistics."""
        acc = self.accumulator()
        if isinstance(acc, Buffered):  # called from an override of this method: the default fold, not itself
            acc = MetricAccumulator(self)
        for gi, members in enumerate(groups):
            for i in members:
                acc.add(gi, scores[i], completions[i], rows[i])
        return acc.result()


class RewardMetric(Metric):
    """Any registered reward as a metric: ``reward:SPEC`` (``reward:think_format``,
    ``reward:length_budget:max_length=64,threshold=0``), an ms-swift reward name (``reward:accuracy``) or one
    from an ms-swift plugin file (``--plugin``). Its per-completion scores are the reward's, computed by
    :func:`swift_ext.scoring.score.score_results` exactly as ``swift-ext rewards score`` computes them; its
    summary is the mean, accuracy at ``threshold`` and pass@k. Parameters other than ``threshold`` go to the
    reward.

    Example:
        swift-ext eval res.jsonl -m reward:think_format -m reward:length_budget:max_length=64,threshold=0
    """

    name = "reward"
    wraps = "reward"  # reward:SPEC is this metric around the reward spec SPEC (swift_ext.components.configure)
    reward_name = ""  # the reward scored: set by wrap() for reward:SPEC, by a named metric (accuracy: exact_match)
    params = {"threshold": Param(1.0, "score counted as a success (accuracy, pass@k)", type=float)}

    @classmethod
    def wrap(cls, name: str) -> type:
        """The metric class around the reward ``name`` (one per name)."""
        made = cls.__dict__.get("_wrapped")
        if made is None:
            made = cls._wrapped = {}
        if name not in made:
            made[name] = type(f"{cls.__name__}[{name}]", (cls,), {
                "reward_name": name, "__module__": cls.__module__, "__doc__": cls.__doc__})
        return made[name]

    @classmethod
    def declared_params(cls) -> Dict[str, Param]:
        """The metric's own parameters plus its reward's (``iou:gold_frame=same``); a reward that is not a
        swift-ext component (ms-swift's, a plugin file's) takes none."""
        if not cls.reward_name:
            return cls.params
        registry = plugins.registry("reward")
        reward = registry.get(cls.reward_name) if cls.reward_name in registry else None
        declared = reward.declared_params() if isinstance(reward, type) and issubclass(reward, Component) \
            else getattr(reward, "params", {})
        return {**declared, **cls.params}

    def __init__(self, plugin_files: Sequence[str] = (), **params: Any):
        super().__init__(**params)
        if not self.reward_name:
            raise ParamError("metric 'reward' names a reward: reward:NAME or reward:NAME:key=value,...")
        given = {**type(self)._bound_params, **self._given}  # what the spec (or caller) set, coerced once
        own = type(self).params
        self.spec = format_spec(self.reward_name, {k: v for k, v in given.items() if k not in own})
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
    wraps = ""
    reward_name = "exact_match"


class MCQ(RewardMetric):
    """Option-letter accuracy (reward ``mcq``)."""

    name = "mcq"
    wraps = ""
    reward_name = "mcq"


class _IoUSummary(MetricAccumulator):
    def result(self):
        out = super().result()
        if "accuracy" in out:
            out[f"acc@{self.metric.threshold:g}"] = out.pop("accuracy")
            out["mean_iou"] = out.pop("mean")
        return out


class IoUMetric(RewardMetric):
    """Mean IoU and accuracy at IoU >= 0.5 (reward ``iou`` with its own defaults, so reference boxes are
    read in ``gold_frame=pixels`` unless the spec says otherwise: ``iou:gold_frame=same``)."""

    name = "iou"
    wraps = ""
    reward_name = "iou"
    params = {"threshold": Param(0.5, "IoU counted as a hit", type=float, min=0.0, max=1.0)}

    def accumulator(self):
        return _IoUSummary(self)


class _YesNoSummary(MetricAccumulator):
    """Confusion counts of the "yes" class beside the group statistics (O(1) state)."""

    def __init__(self, metric):
        super().__init__(metric)
        self.gold_key = getattr(metric.reward, "gold_key", "solution")
        self.tp = self.fp = self.fn = self.tn = self.unparsed = self.yes = self.answered = 0

    def add(self, group, score, completion, row):
        super().add(group, score, completion, row)
        gold = YesNo.gold_label(row.get(self.gold_key))
        if gold is None:
            return
        pred = YesNo.answer_label(completion)
        if pred is None:
            self.unparsed += 1
        else:
            self.answered += 1
            self.yes += pred == "yes"
        if pred == "yes":
            self.tp += gold == "yes"
            self.fp += gold == "no"
        else:  # "no" or no answer: not a positive prediction
            self.fn += gold == "yes"
            self.tn += gold == "no"

    def result(self):
        out = super().result()
        tp, fp, fn = self.tp, self.fp, self.fn
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        out.update({"precision": precision, "recall": recall,
                    "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
                    "yes_ratio": self.yes / self.answered if self.answered else 0.0, "unparsed": self.unparsed})
        return out


class YesNoMetric(RewardMetric):
    """Yes/no questions (POPE, AMBER discriminative): the ``yes_no`` reward's accuracy, plus precision,
    recall and F1 of the "yes" class, yes-ratio of the answers, and how many answers said neither."""

    name = "yes_no"
    wraps = ""
    reward_name = "yes_no"

    def accumulator(self):
        return _YesNoSummary(self)


BUILTIN_METRICS = {"accuracy": Accuracy, "yes_no": YesNoMetric, "mcq": MCQ, "iou": IoUMetric,
                   "reward": RewardMetric}


def build_metric(spec: str, plugin_files: Sequence[str] = ()) -> Metric:
    """The metric of a spec, built through :func:`swift_ext.components.configure` (one grammar): ``accuracy``,
    ``iou:threshold=0.75``, ``reward:think_format`` or ``reward:length_budget:max_length=64``; ``reward:NAME``
    may also name an ms-swift reward (``reward:accuracy``) or one from ``plugin_files``."""
    cls = configure("metric", spec)
    if isinstance(cls, type) and issubclass(cls, RewardMetric):
        return cls(plugin_files=plugin_files)
    return cls()


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
    per_item: List[Dict[str, Any]] = field(default_factory=list)  # only with evaluate(keep_items=True)

    def as_dict(self) -> Dict[str, Any]:
        return {"path": self.path, "rows_in": self.rows_in, "completions": self.completions,
                "groups": self.groups, "ref_key": self.ref_key, "metrics": self.metrics,
                "rejected": [{"line": n, "reason": r} for n, r in self.rejected]}


def evaluate(path: str, metrics: Sequence[str], ref_key: Optional[str] = None,
             progress: Optional[Callable[[int], None]] = None, completion_key: Optional[str] = None,
             plugin_files: Sequence[str] = (), per_item: Optional[Callable[[Dict[str, Any]], None]] = None,
             keep_items: bool = False, batch_size: int = BATCH_SIZE) -> EvalReport:
    """Score the completion file ``path`` with every metric spec, reading it as a stream
    (:class:`swift_ext.scoring.results.Stream`, prompt groups formed as rows arrive): memory holds one batch and
    the open groups, whatever the file's size. Each completion's ``{"line", "group", spec: score, ...}`` goes to
    ``per_item`` as it is scored (and to ``report.per_item`` with ``keep_items``); ``progress`` gets the number
    of completions of each batch."""
    if not metrics:
        raise ConfigError("no metric given: pass --metric accuracy (or yes_no, mcq, iou, reward:NAME)")
    built = {spec: build_metric(spec, plugin_files) for spec in metrics}  # every spec checked before reading
    folds = {spec: m.accumulator() for spec, m in built.items()}
    stream = results.Stream(path, completion_key=completion_key, ref_key=ref_key, batch_size=batch_size)
    kept: List[Dict[str, Any]] = []
    for batch in stream.batches():
        scores = {spec: m.score(batch) for spec, m in built.items()}
        for spec, values in scores.items():
            fold = folds[spec]
            for i, (group, value) in enumerate(zip(batch.group_of, values)):
                fold.add(group, value, batch.completions[i], batch.rows[i])
        if per_item is not None or keep_items:
            for i, (line, group) in enumerate(zip(batch.lines, batch.group_of)):
                entry = {"line": line, "group": group, **{spec: scores[spec][i] for spec in built}}
                if per_item is not None:
                    per_item(entry)
                if keep_items:
                    kept.append(entry)
        if progress:
            progress(len(batch.completions))
    out = {spec: fold.result() for spec, fold in folds.items()}
    return EvalReport(path, stream.rows_in, stream.completions, stream.groups, stream.ref_key, out,
                      sorted(stream.rejected), kept)


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


@dataclass
class EvalOptions:
    """What ``swift-ext eval`` takes, one field per flag (tests/meta/test_options.py checks they agree)."""

    files: Tuple[str, ...]                      # one result file, or two to compare side by side
    metrics: Tuple[str, ...] = ()               # metric specs (-m); none: accuracy
    ref_key: Optional[str] = None               # reference column (default: solution, labels, answer, ...)
    plugin_files: Tuple[str, ...] = ()          # ms-swift ORM plugin files whose rewards ``reward:NAME`` may use
    completion_key: Optional[str] = None        # completion column (default: completions, responses, ...)
    output: Optional[str] = None                # the JSON report goes to this file
    per_item: Optional[str] = None              # per-completion scores as JSONL (one file only)
    plot_path: Optional[str] = None             # bar chart PNG of the [0, 1] metrics
    labels: Tuple[str, ...] = ()                # names of the files in tables and plots (default: the paths)
    batch_size: int = BATCH_SIZE                # library only: completions scored per batch

    def __post_init__(self):  # checked on construction: the CLI fails before its progress bar starts
        if len(self.files) > 2:
            raise ConfigError("give one result file, or two to compare")
        if self.per_item and len(self.files) > 1:
            raise ConfigError("--per-item works with one file")
        if self.labels and len(self.labels) != len(self.files):
            raise ConfigError(f"{len(self.labels)} --label for {len(self.files)} files")


@dataclass
class EvalResult:
    """What :func:`run` found: one report per file, the files' labels and, for two files, the comparison."""

    reports: List[EvalReport]
    labels: List[str]
    comparison: Optional[List[Dict[str, Any]]] = None  # compare(reports[0], reports[1]) for two files

    def as_dict(self) -> Dict[str, Any]:
        """``swift-ext eval``'s JSON: the one report, or both with their labels and the comparison."""
        if len(self.reports) == 1:
            return self.reports[0].as_dict()
        return {"files": [r.as_dict() for r in self.reports], "labels": self.labels, "comparison": self.comparison}


def run(opts: EvalOptions, progress: Optional[Callable[[str], Optional[Callable[[int], None]]]] = None,
        on_scored: Optional[Callable[[EvalResult], None]] = None) -> EvalResult:
    """``swift-ext eval``: :func:`evaluate` each of ``opts.files`` (streamed; per-completion scores written to
    ``opts.per_item`` as they are computed), compare two files, then draw ``opts.plot_path`` and write the JSON
    report to ``opts.output``. ``progress(path)`` is called before each file is read and returns the callback
    that gets each batch's completion count; ``on_scored(result)`` is called once every file is scored, before
    the plot and the report are written."""
    import json

    from ..io import atomic_write

    files = list(opts.files)
    metrics = list(opts.metrics) or ["accuracy"]
    labels = list(opts.labels) or [str(f) for f in files]
    reports = []
    with JsonlWriter(opts.per_item) if opts.per_item else contextlib.nullcontext() as writer:
        for f in files:
            reports.append(evaluate(f, metrics, opts.ref_key, progress=progress(f) if progress else None,
                                    completion_key=opts.completion_key, plugin_files=opts.plugin_files,
                                    per_item=writer.write if writer else None, batch_size=opts.batch_size))
    result = EvalResult(reports, labels, compare(reports[0], reports[1]) if len(reports) > 1 else None)
    if on_scored:
        on_scored(result)
    if opts.plot_path:
        plot_reports(reports, opts.plot_path, labels)
    if opts.output:
        with atomic_write(opts.output) as fh:
            fh.write(json.dumps(result.as_dict(), ensure_ascii=False, indent=2, default=str) + "\n")
    return result


def write_per_item(report: EvalReport, path: str) -> str:
    """The per-completion scores of a report made with ``keep_items=True`` as JSONL (``swift-ext eval
    --per-item`` writes the same lines while it streams, through ``evaluate(per_item=writer.write)``)."""
    with JsonlWriter(path) as w:
        for entry in report.per_item:
            w.write(entry)
    return path


__all__ = ["pass_at_k", "group_stats", "default_ks", "Metric", "MetricAccumulator", "Buffered", "RewardMetric",
           "build_metric", "evaluate", "compare", "EvalReport", "EvalOptions", "EvalResult", "run", "plot_reports",
           "write_per_item", "BUILTIN_METRICS", "BUFFER_LIMIT"]
