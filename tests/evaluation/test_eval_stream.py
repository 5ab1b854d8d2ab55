"""`swift-ext eval` reads its input as a stream (issue "Beyond one process", part 3) and `reward:SPEC` is an
ordinary metric component (issue "The house finished", part 1).

The oracle of the streamed numbers is the whole-file implementation eval had before (0.2): the file read at once
by `results.load`, every metric scored over all of it, and the summaries computed from lists. Its summary code is
kept here, frozen, so the streamed accumulators are compared with an independent computation."""

import json
import pickle
import random
import tracemalloc

import pytest
from click.testing import CliRunner

from swift_ext import components
from swift_ext.errors import ConfigError, ParamError, UnknownNameError
from swift_ext.scoring import evaluation, results
from swift_ext.scoring.stats import summarise_groups
from swift_ext.rewards.answers import YesNo
from swift_ext.testing import make_plugin


# -- the 0.2 implementation (before streaming), frozen as the oracle ---------------------------------------------
def _old_group_stats(groups, threshold):
    return summarise_groups(groups, threshold, ()).metrics(None)


def _old_summary(metric, scores, groups, completions, rows):
    out = _old_group_stats([[scores[i] for i in g] for g in groups], metric.threshold)
    if isinstance(metric, evaluation.IoUMetric) and "accuracy" in out:
        out[f"acc@{metric.threshold:g}"] = out.pop("accuracy")
        out["mean_iou"] = out.pop("mean")
    if isinstance(metric, evaluation.YesNoMetric):
        gold_key = getattr(metric.reward, "gold_key", "solution")
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
            else:
                fn += gold == "yes"
                tn += gold == "no"
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        out.update({"precision": precision, "recall": recall,
                    "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
                    "yes_ratio": yes / answered if answered else 0.0, "unparsed": unparsed})
    return out


def _old_evaluate(path, metrics, ref_key=None):
    data = results.load(path, ref_key=ref_key)
    out = {}
    per_item = [{"line": ln, "group": gi} for ln, gi in zip(data.lines, data.group_of)]
    for spec in metrics:
        metric = evaluation.build_metric(spec)
        scores = metric.score(data)  # the whole file at once
        out[spec] = _old_summary(metric, scores, data.groups, data.completions, data.rows)
        for entry, s in zip(per_item, scores):
            entry[spec] = s
    return {"path": path, "rows_in": data.rows_in, "completions": len(data.completions),
            "groups": len(data.groups), "ref_key": data.ref_key, "metrics": out,
            "rejected": [{"line": n, "reason": r} for n, r in data.rejected]}, per_item


# -- generated files -------------------------------------------------------------------------------------------
def _rows(n_prompts, seed=0):
    """Prompts with 1-8 samples (rows repeating the prompt, or one `completions` list), yes/no golds, boxes,
    answers with and without the think format, and a few rows that are rejected."""
    rnd = random.Random(seed)
    rows = []
    for p in range(n_prompts):
        kind = rnd.choice(["num", "yes_no", "box"])
        k = rnd.choice([1, 2, 4, 8, 3])
        if kind == "num":
            gold = str(rnd.randint(0, 9))
            answers = [gold if rnd.random() < 0.4 else str(rnd.randint(0, 9)) for _ in range(k)]
            answers = [f"<think>t</think><answer>{a}</answer>" if rnd.random() < 0.6 else a for a in answers]
        elif kind == "yes_no":
            gold = rnd.choice(["yes", "no"])
            answers = [rnd.choice(["Yes.", "no", "No, there is not.", "yes it is", "unsure"]) for _ in range(k)]
        else:
            x = rnd.randint(0, 500)
            gold = [x, x, x + 100, x + 100]
            answers = [json.dumps([x + rnd.randint(-60, 60), x, x + 100, x + 100 + rnd.randint(-50, 50)])
                       if rnd.random() < 0.8 else "no box" for _ in range(k)]
        if rnd.random() < 0.3:
            rows.append({"prompt": f"q{p}", "completions": answers, "answer": gold})
        else:
            rows.extend({"prompt": f"q{p}", "response": a, "answer": gold} for a in answers)
        if rnd.random() < 0.02:
            rows.append({"prompt": f"q{p}", "answer": gold})  # no completion: rejected
    return rows


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return str(path)


SPECS = ["accuracy", "yes_no", "iou:gold_frame=same", "reward:think_format",
         "reward:length_budget:max_length=6,unit=char,threshold=0", "mcq"]


def _cli(args):
    from swift_ext.cli import cli

    return CliRunner().invoke(cli, args, catch_exceptions=False)


def test_streamed_eval_equals_the_whole_file_implementation(tmp_path):
    path = _write(tmp_path / "r.jsonl", _rows(400) + ["[1, 2]"])
    old, old_items = _old_evaluate(path, SPECS)
    items = tmp_path / "items.jsonl"
    res = _cli(["eval", path, *sum((["-m", s] for s in SPECS), []), "--per-item", str(items)])
    assert res.exit_code == 0, res.output
    new = json.loads(res.stdout)
    assert new == old  # every statistic, counts, reference column and rejected rows, bit for bit
    assert [json.loads(line) for line in items.read_text().splitlines()] == old_items
    # the numbers are not trivial: groups of several sizes, abstentions, partial credit
    acc = new["metrics"]["accuracy"]
    assert 0 < acc["accuracy"] < 1 and "mean@8" in acc and new["groups"] < new["completions"]
    assert 0 < new["metrics"]["yes_no"]["f1"] < 1 and new["metrics"]["yes_no"]["unparsed"] > 0
    assert new["rejected"] and new["metrics"]["iou:gold_frame=same"]["abstained"] >= 0
    # small batches: groups cut across batch boundaries give the same numbers
    rep = evaluation.evaluate(path, SPECS, batch_size=7, keep_items=True)
    assert rep.as_dict() == old and rep.per_item == old_items


def test_interleaved_prompts_give_the_same_groups(tmp_path):
    """Rows of a prompt spread over neighbouring rows (ranks writing alternately) still form one group each."""
    rows = _rows(300, seed=5)
    rnd = random.Random(0)
    for start in range(0, len(rows), 40):  # shuffle within windows of 40 rows
        window = rows[start:start + 40]
        rnd.shuffle(window)
        rows[start:start + 40] = window
    path = _write(tmp_path / "r.jsonl", rows)
    specs = ["accuracy", "yes_no", "reward:think_format"]
    old, old_items = _old_evaluate(path, specs)
    rep = evaluation.evaluate(path, specs, keep_items=True, batch_size=16)
    new = rep.as_dict()
    assert rep.per_item == old_items and new["groups"] == old["groups"]
    for spec in specs:  # the groups fold in another order: sums of floats may differ in the last bit
        assert new["metrics"][spec] == pytest.approx(old["metrics"][spec], rel=1e-12)
    assert {k: v for k, v in new.items() if k != "metrics"} == {k: v for k, v in old.items() if k != "metrics"}


def test_compare_and_plot_of_streamed_reports_equal_the_old_ones(tmp_path):
    a = _write(tmp_path / "a.jsonl", _rows(150, seed=1))
    b = _write(tmp_path / "b.jsonl", _rows(150, seed=2))
    specs = ["accuracy", "yes_no"]
    res = _cli(["eval", a, b, "-m", "accuracy", "-m", "yes_no", "--label", "x", "--label", "y",
                "--plot", str(tmp_path / "p.png")])
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    old = [_old_evaluate(p, specs)[0] for p in (a, b)]
    assert got["files"] == old
    expected = [{"metric": spec, "stat": stat, "a": va, "b": old[1]["metrics"][spec][stat],
                 "delta": old[1]["metrics"][spec][stat] - va}
                for spec in specs for stat, va in old[0]["metrics"][spec].items() if stat in old[1]["metrics"][spec]]
    assert got["comparison"] == expected
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def _peak(path):
    tracemalloc.start()
    evaluation.evaluate(path, ["accuracy", "yes_no"], per_item=lambda entry: None)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_memory_of_eval_does_not_grow_with_the_file(tmp_path, monkeypatch):
    from swift_ext.io import jsonl

    monkeypatch.setattr(results, "OPEN_GROUPS", 256)  # both files hold more groups than stay open
    monkeypatch.setattr(jsonl, "READ_CHUNK", 1 << 16)  # and more bytes than one read
    small = _write(tmp_path / "s.jsonl", _rows(1000, seed=3))
    large = _write(tmp_path / "l.jsonl", _rows(8000, seed=3))
    _peak(small)  # imports and caches out of the way
    p_small, p_large = _peak(small), _peak(large)
    # 8x the rows: the whole-file reader held every row (several MB here), the stream a batch and open groups
    assert p_large < 1.3 * p_small, (p_small, p_large)


def test_a_group_too_large_is_an_error_naming_it(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "MAX_GROUP", 10)
    path = _write(tmp_path / "g.jsonl", [{"prompt": "big", "response": str(i), "answer": "1"} for i in range(11)])
    with pytest.raises(ConfigError, match=r"g.jsonl:11: the prompt group 'prompt=big' has more than 10"):
        evaluation.evaluate(path, ["accuracy"])


# -- plugin metrics: the accumulator form, and the list form kept with a bound ---------------------------------------
class LongAnswers(evaluation.Metric):
    """Share of completions longer than ``min_chars`` (a plugin metric with only the 0.2 list summary)."""

    name = "long_answers"
    params = {"min_chars": evaluation.Param(3, "length counted as long", type=int)}

    def item(self, completion, row):
        return float(len(completion) >= self.min_chars)

    def summary(self, scores, groups, completions, rows):
        return {"share": sum(scores) / len(scores), "groups": len(groups),
                "longest": max(len(c) for c in completions)}


class LongAnswersExtended(evaluation.Metric):
    """A 0.2-style metric extending the default list summary with super(), as IoU and yes_no did in 0.2."""

    name = "long_answers_extended"
    params = LongAnswers.params
    item = LongAnswers.item

    def summary(self, scores, groups, completions, rows):
        return {**super().summary(scores, groups, completions, rows), "groups": len(groups)}


class LongAnswersStreamed(LongAnswers):
    """The same metric with an accumulator."""

    name = "long_answers_streamed"

    class Fold(evaluation.MetricAccumulator):
        def __init__(self, metric):
            super().__init__(metric)
            self.longest = 0

        def add(self, group, score, completion, row):
            super().add(group, score, completion, row)
            self.longest = max(self.longest, len(completion))

        def result(self):
            return {**super().result(), "longest": self.longest}

    def accumulator(self):
        return self.Fold(self)


@pytest.fixture
def plugin_metrics(register_plugin):
    def register_metrics(register):
        register(LongAnswers)
        register(LongAnswersExtended)
        register(LongAnswersStreamed)

    register_plugin(make_plugin("plugin_metrics_test", register_metrics=register_metrics))


def test_plugin_metric_with_the_list_summary_is_buffered(tmp_path, plugin_metrics):
    rows = [{"prompt": f"p{i // 2}", "response": "x" * (i % 5), "answer": "1"} for i in range(10)]
    path = _write(tmp_path / "r.jsonl", rows)
    m = evaluation.evaluate(path, ["long_answers:min_chars=2"]).metrics["long_answers:min_chars=2"]
    assert m == {"share": 6 / 10, "groups": 5, "longest": 4}  # lengths 0-4 twice: 2, 3, 4 are long
    extended = evaluation.evaluate(path, ["long_answers_extended:min_chars=2"]).metrics
    assert extended["long_answers_extended:min_chars=2"] == {
        "n": 10, "abstained": 0, "mean": 0.6, "accuracy": 0.6, "pass@1": 0.6, "pass@2": 0.8, "mean@2": 0.6,
        "groups": 5}  # pairs (0,1) (2,3) (4,0) (1,2) (3,4) long: 0, 2, 1, 1, 2 of 2 -> pass@2 = (0+1+1+1+1)/5
    streamed = evaluation.evaluate(path, ["long_answers_streamed:min_chars=2"]).metrics
    assert streamed["long_answers_streamed:min_chars=2"]["longest"] == 4
    assert streamed["long_answers_streamed:min_chars=2"]["mean"] == 6 / 10


def test_buffered_metric_beyond_its_bound_is_an_error_naming_it(tmp_path, plugin_metrics, monkeypatch):
    monkeypatch.setattr(LongAnswers, "buffer_limit", 5)
    path = _write(tmp_path / "r.jsonl", [{"prompt": str(i), "response": "abc", "answer": "1"} for i in range(6)])
    with pytest.raises(ConfigError, match=r"metric long_answers summarises whole lists .* more than 5"):
        evaluation.evaluate(path, ["long_answers"])


# -- reward:SPEC is an ordinary metric component --------------------------------------------------------------------
def test_reward_spec_is_configured_like_any_metric():
    cls = components.configure("metric", "reward:length_budget:max_length=6,unit=char,threshold=0")
    assert cls is components.configure("metric", "reward:length_budget:max_length=6,unit=char,threshold=0")
    assert cls.__name__ == "reward:length_budget:max_length=6,unit=char,threshold=0"
    assert cls._bound_params == {"max_length": 6, "unit": "char", "threshold": 0.0}  # coerced once, by configure
    metric = evaluation.build_metric("reward:length_budget:max_length=6,unit=char,threshold=0")
    assert isinstance(metric, evaluation.RewardMetric) and metric.threshold == 0.0
    assert metric.spec == "length_budget:max_length=6,unit=char"  # threshold is the metric's, the rest the reward's
    assert pickle.loads(pickle.dumps(cls)) is cls
    assert type(pickle.loads(pickle.dumps(metric))) is cls


def test_reward_spec_parses_once(monkeypatch):
    """One grammar: the metric spec is split by `parse_spec` once (the wrapped reward spec), not a second time
    by the metric; the reward is then configured from its canonical spec."""
    from swift_ext import params

    calls = []
    real = params.parse_spec
    monkeypatch.setattr(components, "parse_spec", lambda spec: calls.append(spec) or real(spec))
    components._CONFIGURED.clear()
    evaluation.build_metric("reward:think_format:threshold=0.5")
    assert calls.count("think_format:threshold=0.5") == 1 and "reward:think_format:threshold=0.5" not in calls


@pytest.mark.parametrize("spec, error, message", [
    ("reward:think_format:foo=1", ParamError, r"metric reward:think_format: unknown parameter\(s\) foo; known: "),
    ("reward:length_budget:max_length=x", ParamError, r"metric reward:length_budget: .*max_length='x'"),
    ("reward:think_format:threshold=high", ParamError, r"metric reward:think_format: .*threshold='high'"),
    ("reward:think_format:oops", ParamError, r"expected key=value"),
    ("reward", ParamError, r"metric 'reward' names a reward"),
    ("reward:", ParamError, r"empty"),
    ("reward:no_such_reward", UnknownNameError, r"no_such_reward"),
    ("bleu", UnknownNameError, r"unknown metric 'bleu'"),
])
def test_reward_spec_errors_are_parameter_errors(spec, error, message):
    with pytest.raises(error, match=message):
        evaluation.build_metric(spec)


def test_reward_spec_cli_error_is_reported_like_any_parameter_error(tmp_path):
    path = _write(tmp_path / "r.jsonl", [{"prompt": "a", "response": "x", "answer": "1"}])
    for spec in ("reward:think_format:foo=1", "iou:foo=1"):
        res = _cli(["eval", path, "-m", spec])
        assert res.exit_code == 1 and "unknown parameter(s) foo" in res.output, res.output


def test_reward_spec_through_a_metric_alias(tmp_path, monkeypatch):
    cfg = tmp_path / "aliases.yaml"
    cfg.write_text("metrics:\n  lenient_len: {metric: 'reward:length_budget', max_length: 6, unit: char, "
                   "threshold: 0}\nrewards:\n  short: {reward: length_budget, max_length: 3, unit: char}\n")
    monkeypatch.setenv("SWIFT_EXT_CONFIG", str(cfg))
    m = evaluation.build_metric("lenient_len")
    assert (m.spec, m.threshold) == ("length_budget:max_length=6,unit=char", 0.0)
    m = evaluation.build_metric("reward:short:threshold=0")  # a reward alias inside reward:SPEC
    assert (m.spec, m.threshold) == ("length_budget:max_length=3,unit=char", 0.0)


def test_documented_reward_spellings_name_the_output(tmp_path):
    path = _write(tmp_path / "r.jsonl", [{"prompt": "a", "response": "<think>x</think><answer>1</answer>",
                                          "answer": "1"}])
    specs = ["reward:think_format", "reward:exact_match", "reward:length_budget:max_length=64,threshold=0"]
    res = _cli(["eval", path, *sum((["-m", s] for s in specs), [])])
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)["metrics"]
    assert list(got) == specs
    assert got["reward:think_format"]["mean"] == 1.0 and got["reward:exact_match"]["accuracy"] == 1.0
    assert got["reward:length_budget:max_length=64,threshold=0"]["accuracy"] == 1.0  # 0 penalty >= threshold 0
