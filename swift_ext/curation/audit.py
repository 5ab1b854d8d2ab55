"""Health and reward-hacking detectors over a GRPO run's own files.

Each detector reads ms-swift's ``logging.jsonl`` (and ``completions.jsonl`` when the run logged completions)
and compares the **last quarter** of the run with the **first quarter**, or looks at the last quarter alone.
It reports ``ok``, ``warn`` or ``error`` with the value it measured and its thresholds, or ``skipped`` with
the reason (too few steps, metric not logged, no completions file). The same detectors run during training
as the ``audit`` callback (metrics only).

=====================  ====================================================================  ===============
detector               measures                                                              warn / error
=====================  ====================================================================  ===============
``length_drift``       mean completion length, last quarter / first quarter                  1.5x / 2.5x
``clipped``            ``completions/clipped_ratio``, last-quarter mean                       0.3 / 0.8
``dominant_reward``    share of one reward in the weighted sum of the rewards' std            0.8 / 0.95
                       (GRPO's advantage is driven by spread, not by the mean)
``format_vs_accuracy`` a format-type reward's rise while every accuracy-type reward is flat    rise 0.2 / 0.5,
                       (flat: rose less than 0.02)                                             accuracy flat
``repetition``         repeated 3-grams in completions (``ngram_repetition``), rise           0.1 / 0.3
``zero_std``           ``frac_reward_zero_std``, last-quarter mean                            0.5 / 0.9
``std_collapse``       ``reward_std``, last quarter / first quarter                           0.25 / 0.05
``identical_groups``   prompt groups whose completions are all identical, last quarter       0.2 / 0.5
``tool_spam``          tool calls per trajectory rising while every accuracy-type reward    rise 0.5 / 1.5
                       is flat (calls counted in the logged multi-turn completions, else    calls, accuracy
                       ``num_turns`` - 1 from the metrics)                                  flat
=====================  ====================================================================  ===============

Example::

    >>> trend([(1, 1.0), (2, 1.0), (3, 2.0), (4, 2.0)])
    (1.0, 2.0)
"""

from __future__ import annotations

import hashlib
import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..runs import Completion, Run, iter_completions, latest_run

#: reward families (swift-ext) and ms-swift names read as "format-type" and "accuracy-type"
FORMAT_FAMILIES = {"format", "shaping", "structured"}
ACCURACY_FAMILIES = {"accuracy", "answers", "grounding", "distill"}
SWIFT_FORMAT = {"format", "react_format", "repetition", "soft_overlong",  # names, and the class names it logs
                "Format", "ReActFormat", "RepetitionPenalty", "SoftOverlong"}
SWIFT_ACCURACY = {"accuracy", "cosine", "math", "toolbench", "MathAccuracy", "CosineReward", "MathORM", "ReactORM"}
#: trajectory rewards that score the task (the final answer), not the tool use
TRAJECTORY_ACCURACY = {"final_answer"}
MIN_STEPS = 4
SEVERITY = {"ok": 0, "skipped": 0, "warn": 1, "error": 2}


@dataclass
class Finding:
    detector: str
    status: str  # ok | warn | error | skipped
    value: Optional[float] = None
    message: str = ""
    warn: Optional[float] = None
    error: Optional[float] = None

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


def quarters(values: Sequence[float]) -> Tuple[List[float], List[float]]:
    """First and last quarter of a series (at least one value each)."""
    q = max(1, len(values) // 4)
    return list(values[:q]), list(values[-q:])


def mean(values: Sequence[float]) -> float:
    """The mean of finite values, also where their sum would overflow (a logged std of 1e308)."""
    try:
        return statistics.fmean(values)
    except OverflowError:
        return math.fsum(v / len(values) for v in values)


def trend(series: Sequence[Tuple[int, float]]) -> Tuple[float, float]:
    """(first-quarter mean, last-quarter mean) of ``[(step, value), ...]``."""
    first, last = quarters([v for _, v in series])
    return mean(first), mean(last)


def _grade(name: str, value: float, warn: float, error: float, message: str, higher_is_worse: bool = True) -> Finding:
    if not math.isfinite(value):  # metrics near the float limit (1e308): the measure itself overflows
        return Finding(name, "skipped", message=f"the measure overflows ({value}): the logged values are out "
                                               f"of range")
    if higher_is_worse:
        status = "error" if value >= error else "warn" if value >= warn else "ok"
    else:
        status = "error" if value <= error else "warn" if value <= warn else "ok"
    return Finding(name, status, round(value, 6), message, warn, error)


def _series_or_skip(run: Run, name: str, key: str) -> Tuple[Optional[List[Tuple[int, float]]], Optional[Finding]]:
    s = run.series.get(key, [])
    if len(s) < MIN_STEPS:
        return None, Finding(name, "skipped", message=f"{key} logged on {len(s)} steps (needs {MIN_STEPS})")
    return s, None


# -- detectors over logging.jsonl -------------------------------------------------------------------
def length_drift(run: Run) -> Finding:
    s, skip = _series_or_skip(run, "length_drift", "completions/mean_length")
    if skip:
        return skip
    first, last = trend(s)
    ratio = last / first if first > 0 else 1.0
    return _grade("length_drift", ratio, 1.5, 2.5,
                  f"mean completion length {first:.1f} -> {last:.1f} tokens (first -> last quarter)")


def _last_quarter(run: Run, name: str, key: str, warn: float, error: float, says: str) -> Finding:
    """Grade the last-quarter mean of metric ``key``; ``says`` formats it (``{v:.0%}``)."""
    s, skip = _series_or_skip(run, name, key)
    if skip:
        return skip
    _, last = trend(s)
    return _grade(name, last, warn, error, says.format(v=last))


def clipped(run: Run) -> Finding:
    return _last_quarter(run, "clipped", "completions/clipped_ratio", 0.3, 0.8,
                         "{v:.0%} of completions hit max_completion_length in the last quarter (their ends are "
                         "cut: rewards read truncated answers)")


def dominant_reward(run: Run) -> Finding:
    weights = run.reward_weights()
    shares = {}
    for name in run.reward_names:
        s = run.series.get(f"rewards/{name}/std", [])
        if s:
            shares[name] = abs(weights.get(name, 1.0)) * mean(quarters([v for _, v in s])[1])
    total = sum(shares.values())
    if len(shares) < 2 or total <= 0:
        return Finding("dominant_reward", "skipped", message="needs two or more rewards with a logged, non-zero std")
    name, top = max(shares.items(), key=lambda kv: kv[1])
    share = top / total
    flat = [n for n, v in shares.items() if v == 0]
    why = (f"{', '.join(flat)} never vary (constant scores add nothing to the advantages)" if flat else
           "the others barely move the advantages; check --reward_weights")
    return _grade("dominant_reward", share, 0.8, 0.95, f"{name} carries {share:.0%} of the weighted reward "
                  f"spread: {why}")


def _kind(name: str) -> Optional[str]:
    from .. import plugins

    base = name.split(":", 1)[0]
    if base in TRAJECTORY_ACCURACY:
        return "accuracy"
    if base in SWIFT_FORMAT:
        return "format"
    if base in SWIFT_ACCURACY:
        return "accuracy"
    registry = plugins.registry("reward")
    if base not in registry:
        return None
    family = registry.get(base).__module__.rsplit(".", 1)[-1]
    return "format" if family in FORMAT_FAMILIES else "accuracy" if family in ACCURACY_FAMILIES else None


def _rises(run: Run) -> Dict[str, Dict[str, float]]:
    """Last- minus first-quarter mean of each format-type and accuracy-type reward logged on enough steps."""
    rises: Dict[str, Dict[str, float]] = {"format": {}, "accuracy": {}}
    for name in run.reward_names:
        kind = _kind(name)
        s = run.series.get(f"rewards/{name}/mean", [])
        if kind and len(s) >= MIN_STEPS:
            first, last = trend(s)
            rises[kind][name] = last - first
    return rises


def format_vs_accuracy(run: Run) -> Finding:
    rises = _rises(run)
    if not rises["format"] or not rises["accuracy"]:
        return Finding("format_vs_accuracy", "skipped",
                       message="needs a format-type and an accuracy-type reward logged on enough steps")
    fmt, rise = max(rises["format"].items(), key=lambda kv: kv[1])
    if max(rises["accuracy"].values()) >= 0.02:
        return Finding("format_vs_accuracy", "ok", round(rise, 6),
                       f"accuracy-type rewards rise too ({', '.join(f'{n} {r:+.3f}' for n, r in rises['accuracy'].items())})",
                       0.2, 0.5)
    accuracy = ", ".join(f"{n} {r:+.3f}" for n, r in rises["accuracy"].items())
    found = _grade("format_vs_accuracy", rise, 0.2, 0.5,
                   f"{fmt} rose {rise:+.3f} while every accuracy-type reward stayed flat ({accuracy}): the format "
                   f"is being learned, the task is not")
    if found.status == "ok":
        found.message = f"no format-type reward outpaces the accuracy-type ones ({fmt} {rise:+.3f}; {accuracy})"
    return found


def tool_spam(run: Run, fold: Optional["CompletionFold"] = None) -> Finding:
    """Tool calls per trajectory rising while the task's accuracy stays flat: the policy learned to call tools,
    not to answer better (counted in the multi-turn completions of ``fold``, else from ms-swift's ``num_turns``
    metric: a tool turn follows every model turn but the last)."""
    series = fold.calls_series() if fold is not None else []
    source = "tool calls per trajectory"
    if len(series) < MIN_STEPS:
        turns = run.series.get("num_turns", [])
        if len(turns) < MIN_STEPS:
            return Finding("tool_spam", "skipped", message=f"needs multi-turn completions or the num_turns metric "
                                                           f"over {MIN_STEPS}+ steps")
        series, source = [(step, value - 1) for step, value in turns], "model turns - 1 per trajectory (num_turns)"
    first, last = trend(series)
    rise = last - first
    accuracy = _rises(run)["accuracy"]
    if not accuracy:
        return Finding("tool_spam", "skipped", message=f"{source} {first:.2f} -> {last:.2f}; needs an accuracy-type "
                                                       f"reward (final_answer, accuracy...) logged on enough steps")
    said = ", ".join(f"{n} {r:+.3f}" for n, r in accuracy.items())
    if max(accuracy.values()) >= 0.02:
        return Finding("tool_spam", "ok", round(rise, 6), f"{source} {first:.2f} -> {last:.2f}, and accuracy-type "
                                                          f"rewards rise too ({said})", 0.5, 1.5)
    found = _grade("tool_spam", rise, 0.5, 1.5, f"{source} {first:.2f} -> {last:.2f} (first -> last quarter) while "
                   f"every accuracy-type reward stayed flat ({said}): the policy learned to call tools, not to "
                   f"answer better (cap them: max_calls, turn_budget)")
    if found.status == "ok":
        found.message = f"{source} {first:.2f} -> {last:.2f} (first -> last quarter); accuracy {said}"
    return found


def zero_std(run: Run) -> Finding:
    return _last_quarter(run, "zero_std", "frac_reward_zero_std", 0.5, 0.9,
                         "{v:.0%} of prompt groups scored every completion the same in the last quarter (zero "
                         "advantage: no learning signal)")


def std_collapse(run: Run) -> Finding:
    s, skip = _series_or_skip(run, "std_collapse", "reward_std")
    if skip:
        return skip
    first, last = trend(s)
    if first <= 0:
        return Finding("std_collapse", "skipped", message="reward_std is 0 from the start (see zero_std)")
    ratio = last / first
    return _grade("std_collapse", ratio, 0.25, 0.05, f"reward std {first:.4f} -> {last:.4f} (first -> last quarter)",
                  higher_is_worse=False)


# -- detectors over completions.jsonl ---------------------------------------------------------------
def repetition(run: Run, fold: Optional["CompletionFold"] = None) -> Finding:
    """Repeated 3-grams rising, from the completions folded as they stream (``fold``, else read from ``run``)."""
    series = (fold or fold_completions(run)).repetition_series()
    if len(series) < MIN_STEPS:
        return Finding("repetition", "skipped", message="needs completions.jsonl (--log_completions true) over "
                                                       f"{MIN_STEPS}+ steps")
    first, last = trend(series)
    return _grade("repetition", last - first, 0.1, 0.3,
                  f"repeated 3-gram share {first:.3f} -> {last:.3f} (first -> last quarter)")


def identical_groups(run: Run, fold: Optional["CompletionFold"] = None) -> Finding:
    """Prompt groups whose completions are all identical, from the completions folded as they stream."""
    series = (fold or fold_completions(run)).identical_series()
    if len(series) < MIN_STEPS:
        return Finding("identical_groups", "skipped", message="needs completions.jsonl (--log_completions true) "
                                                             f"over {MIN_STEPS}+ steps")
    _, last = trend(series)
    return _grade("identical_groups", last, 0.2, 0.5,
                  f"{last:.0%} of prompt groups had all completions identical in the last quarter (the policy "
                  f"collapsed to one answer per prompt)")


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class CompletionFold:
    """What the completion detectors need from ``completions.jsonl``, folded as the completions stream by
    (bounded memory: per step a sum and a count of repetition scores, and per prompt group one text hash and
    whether every completion so far matched it, never the texts). Gives the same series as computing them over
    every completion held in memory (tests/report/test_report_stream.py)."""

    def __init__(self, batch: int = 1024):
        from ..rewards import build

        self.reward = build("ngram_repetition:n=3,max_penalty=-1")  # the catalogue's own measure
        self.batch, self.pending = batch, []  # (step, text) waiting to be scored together
        self.repeat: Dict[int, List[float]] = {}  # step -> [sum of scores, count]
        self.groups: Dict[int, Dict[bytes, List[Any]]] = {}  # step -> prompt hash -> [first text hash, all same, n]
        self.calls: Dict[int, List[int]] = {}  # step -> [tool calls, trajectories]
        self.multi_turn = False  # a completion with turns before it (or a num_turns column) was seen

    def add(self, rec: Completion) -> None:
        self.repeat.setdefault(rec.step, [0.0, 0])
        self.multi_turn = self.multi_turn or bool(rec.turns) or rec.num_turns is not None
        calls = self.calls.setdefault(rec.step, [0, 0])
        calls[0] += rec.tool_calls
        calls[1] += 1
        prompt = _digest(rec.prompt)
        group = self.groups.setdefault(rec.step, {}).get(prompt)
        digest = _digest(rec.text)
        if group is None:
            self.groups[rec.step][prompt] = [digest, True, 1]
        else:
            group[1] = group[1] and group[0] == digest
            group[2] += 1
        self.pending.append((rec.step, rec.text))
        if len(self.pending) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        scores = self.reward([t for _, t in self.pending])
        for (step, _), score in zip(self.pending, scores):
            if score is not None:
                acc = self.repeat[step]
                acc[0] += score
                acc[1] += 1
        self.pending = []

    def repetition_series(self) -> List[Tuple[int, float]]:
        self.flush()
        return [(step, -(acc[0] / acc[1]) if acc[1] else 0.0) for step, acc in sorted(self.repeat.items())]

    def calls_series(self) -> List[Tuple[int, float]]:
        """Mean tool calls per trajectory per step ([] when no completion was multi-turn)."""
        if not self.multi_turn:
            return []
        return [(step, c[0] / c[1]) for step, c in sorted(self.calls.items()) if c[1]]

    def identical_series(self) -> List[Tuple[int, float]]:
        out = []
        for step in sorted(self.groups):
            groups = [g for g in self.groups[step].values() if g[2] > 1]
            out.append((step, sum(g[1] for g in groups) / len(groups) if groups else 0.0))
        return out


def fold_completions(run: Run) -> CompletionFold:
    fold = CompletionFold()
    if run.completions_path:
        for rec in iter_completions(run.completions_path):
            fold.add(rec)
    fold.flush()
    return fold


METRIC_DETECTORS: Tuple[Callable[[Run], Finding], ...] = (length_drift, clipped, dominant_reward,
                                                          format_vs_accuracy, zero_std, std_collapse, tool_spam)


def audit(run: Run) -> List[Finding]:
    """Every detector on a run (the completion detectors stream ``completions.jsonl`` once)."""
    findings = [d(run) for d in METRIC_DETECTORS if d is not tool_spam]
    fold = fold_completions(run)
    findings += [tool_spam(run, fold=fold), repetition(run, fold=fold), identical_groups(run, fold=fold)]
    return findings


def worst(findings: Sequence[Finding]) -> str:
    """``error``, ``warn`` or ``ok`` (skipped detectors count as ok)."""
    status = max((f.status for f in findings), key=lambda s: SEVERITY[s], default="ok")
    return "ok" if status == "skipped" else status


@dataclass
class AuditOptions:
    """What ``swift-ext audit`` takes, one field per flag (tests/meta/test_options.py checks they agree)."""

    run_dir: str                                # an ms-swift output_dir or a folder above it: its newest run
    fail_on: str = "never"                      # warn | error | never: the level that makes the audit fail


@dataclass
class AuditResult:
    """The audited run, every detector's finding, the worst level and whether it reaches ``fail_on``."""

    run: Run
    findings: List[Finding]
    level: str                                  # worst(findings)
    failed: bool                                # level is fail_on or worse (never with fail_on "never")

    def as_dict(self) -> Dict[str, Any]:
        """``swift-ext audit --json``."""
        return {"run": str(self.run.path), "steps": len(self.run.steps), "status": self.level,
                "findings": [f.as_dict() for f in self.findings]}


def run_audit(opts: AuditOptions) -> AuditResult:
    """``swift-ext audit``: :func:`audit` the newest run at or under ``opts.run_dir``."""
    run = latest_run(opts.run_dir)
    findings = audit(run)
    level = worst(findings)
    return AuditResult(run, findings, level,
                       failed=opts.fail_on != "never" and SEVERITY[level] >= SEVERITY[opts.fail_on])


__all__ = ["Finding", "audit", "worst", "trend", "METRIC_DETECTORS", "AuditOptions", "AuditResult", "run_audit"]
