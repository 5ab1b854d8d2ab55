"""`swift-ext eval -m reward:R` and `swift-ext rewards score -r R` read a file the same way and score it
through the same code: identical per-row scores for every registered reward on every accepted completion
shape (issue "One core"). Both commands run as a user runs them (the CLI), on real files with real images."""

import json

import pytest
from click.testing import CliRunner
from PIL import Image

from swift_ext import plugins


def run_cli(args):
    from swift_ext.cli import cli

    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res


def _groups(image):
    """(prompt, gold, completions): numeric, MCQ, yes/no, JSON and grounding rows."""
    return [
        ("What is 6*7?", "42", ["<think>6*7</think><answer>42</answer>", "41", "The answer is 42.0", "forty two"]),
        ("What is 1/2 + 1/4?", "\\frac{3}{4}", ["<answer>0.75</answer>", "\\boxed{\\frac{3}{4}}", "1", ""]),
        ("Pick one: (A) cat (B) dog", "B", ["(B)", "A", "<answer>B</answer>", "I do not know"]),
        ("Is there a dog?", "yes", ["Yes, there is.", "no", "<answer>yes</answer>", "maybe"]),
        ("Give JSON", '{"a": 1}', ['{"a": 1}', '{"a": ', '```json\n{"a": 2}\n```', "none"]),
        ("Find the box", [0, 0, 100, 50], ["[0, 0, 500, 500]", "[0, 0, 250, 500]",
                                           "<think>here</think><answer>[10, 10, 20, 20]</answer>", "no box"]),
        ("Count the dots", "3", ["3", "three", "<answer>2</answer>", "1, 2, 3 and 4"]),
    ], image


def _write(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The same completions in every shape the results reader accepts."""
    d = tmp_path_factory.mktemp("agree")
    img = d / "img.png"
    Image.new("RGB", (200, 100), "white").save(img)
    groups, image = _groups(str(img))
    listed, single, infer, trl = [], [], [], []
    for prompt, gold, comps in groups:
        extra = {"images": [image]} if isinstance(gold, list) else {}
        listed.append({"prompt": prompt, "solution": gold, "completions": comps, **extra})
        msgs = [{"role": "user", "content": prompt}]
        for c in comps:
            single.append({"messages": msgs, "solution": gold, "completion": c, **extra})
            # swift infer --result_path: the dataset's own assistant turn in messages, gold in `labels`
            infer.append({"messages": msgs + [{"role": "assistant", "content": "reference"}], "response": c,
                          "labels": gold, **extra})
            trl.append({"prompt": prompt, "solution": gold, "completion": [{"role": "assistant", "content": c}],
                        **extra})
    return {"completions list": _write(d / "listed.jsonl", listed), "completion": _write(d / "single.jsonl", single),
            "swift infer": _write(d / "infer.jsonl", infer), "message list": _write(d / "trl.jsonl", trl)}


def _specs():
    """Every registered reward; `random` with a seed (unseeded it is random by definition)."""
    return [("random:seed=3" if name == "random" else name) for name in plugins.registry("reward")]


def _score_cli(path, spec, tmp_path):
    out = tmp_path / "scores.jsonl"
    run_cli(["rewards", "score", path, "-r", spec, "-o", str(out), "--json"])
    return [(r["line"], r[spec]) for r in map(json.loads, out.read_text().splitlines())]


def _eval_cli(path, metric, tmp_path):
    out = tmp_path / "items.jsonl"
    run_cli(["eval", path, "-m", metric, "--per-item", str(out)])
    return [(r["line"], r[metric]) for r in map(json.loads, out.read_text().splitlines())]


@pytest.mark.parametrize("spec", _specs())
def test_eval_reward_metric_equals_rewards_score(files, spec, tmp_path):
    per_shape = {}
    for shape, path in files.items():
        scored = _score_cli(path, spec, tmp_path)
        evaluated = _eval_cli(path, f"reward:{spec}", tmp_path)
        assert len(scored) == 28  # 7 prompts x 4 completions, nothing dropped
        assert evaluated == scored, f"{spec} on the {shape!r} file"
        per_shape[shape] = [s for _, s in scored]
    # the shape of the file never changes a completion's score
    first = next(iter(per_shape.values()))
    for shape, scores in per_shape.items():
        assert scores == first, f"{spec}: the {shape!r} file scores differently"


@pytest.mark.parametrize("metric, reward", [("accuracy", "exact_match"), ("mcq", "mcq"), ("iou", "iou"),
                                            ("yes_no", "yes_no"), ("iou:gold_frame=same", "iou:gold_frame=same")])
def test_task_metrics_are_their_rewards(files, metric, reward, tmp_path):
    for path in files.values():
        assert _eval_cli(path, metric, tmp_path) == _score_cli(path, reward, tmp_path)


def test_agreement_is_not_vacuous(files, tmp_path):
    """The rows give real, varied scores: the right answers score 1 and wrong ones 0 where a human can tell."""
    scores = dict(zip(["exact_match", "mcq", "iou", "yes_no"],
                      [[s for _, s in _score_cli(files["swift infer"], r, tmp_path)]
                       for r in ["exact_match", "mcq", "iou", "yes_no"]]))
    assert scores["exact_match"][0] == 1.0 and scores["exact_match"][1] == 0.0       # "<answer>42</answer>" / "41"
    assert scores["mcq"][8:12] == [1.0, 0.0, 1.0, 0.0]                                # (B), A, B, no letter
    assert scores["yes_no"][12:16] == [1.0, 0.0, 1.0, 0.0]                            # yes, no, yes, neither
    # pixel gold [0,0,100,50] on a 200x100 image = [0,0,500,500] in the 0-1000 frame: IoU 1, then 1/2
    assert scores["iou"][20:22] == [1.0, pytest.approx(0.5)]


def test_one_summary_behind_score_eval_filter_and_callbacks(files, tmp_path):
    """The same scores give the same summary numbers in `rewards score`, `eval`, the `reward_eval` callback and
    `filter` (all fold them through swift_ext.scoring.stats); checked against statistics computed here."""
    import math
    import statistics

    from swift_ext.scoring import score
    from swift_ext.trainer.callbacks import reward_metrics

    path = files["swift infer"]
    spec = "exact_match"
    out = tmp_path / "s.jsonl"
    stats = json.loads(run_cli(["rewards", "score", path, "-r", spec, "-o", str(out), "--json"]).stdout)["rewards"][0]
    per_row = [json.loads(line)[spec] for line in out.read_text().splitlines()]
    got = [s for s in per_row if s is not None]
    # independent: the 7 prompts hold 4 completions each, in file order
    groups = [per_row[i:i + 4] for i in range(0, 28, 4)]
    assert stats["mean"] == statistics.fmean(got) and stats["std"] == pytest.approx(statistics.pstdev(got))
    varied = [g for g in groups if len([v for v in g if v is not None]) > 1]
    assert stats["zero_std_groups"] == sum(max(g) == min(g) for g in varied) and stats["groups"] == len(varied)

    ev = json.loads(run_cli(["eval", path, "-m", f"reward:{spec}"]).stdout)
    metrics = (ev[0] if isinstance(ev, list) else ev)["metrics"][f"reward:{spec}"]
    assert metrics["mean"] == stats["mean"]
    pass2 = statistics.fmean(1 - math.comb(4 - sum(v >= 1 for v in g), 2) / math.comb(4, 2) for g in groups)
    assert metrics["pass@2"] == pytest.approx(pass2)

    # the reward_eval callback's records: the same scores give the same numbers as eval
    records = [{"group": 1 + i // 4, "rewards": {spec: s}} for i, s in enumerate(per_row)]
    cb = reward_metrics(records, [spec], 1.0, [2], "eval")
    assert cb["eval/exact_match/mean"] == metrics["mean"] and cb["eval/exact_match/pass@2"] == metrics["pass@2"]

    # filter's zero-variance count is rewards score's zero_std_groups
    assert score.summarise(spec, per_row, [list(range(i, i + 4)) for i in range(0, 28, 4)]).zero_std_groups \
        == stats["zero_std_groups"]
