"""Offline evaluation (`swift-ext eval`): pass@k, task metrics, result-file loading, comparison, CLI."""

import json

import pytest
from click.testing import CliRunner

from swift_ext import plugins
from swift_ext.scoring import evaluation
from swift_ext.errors import ConfigError


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def run_cli(args):
    from swift_ext.cli import cli

    return CliRunner().invoke(cli, args, catch_exceptions=False)


@pytest.mark.parametrize("n, c, k, expected", [
    (4, 1, 1, 0.25),                 # c/n
    (4, 1, 2, 1 - 3 / 6),            # 1 - C(3,2)/C(4,2)
    (5, 2, 3, 1 - 1 / 10),           # 1 - C(3,3)/C(5,3)
    (4, 0, 4, 0.0),
    (3, 2, 2, 1.0),                  # n - c < k: every draw of 2 contains a correct one
])
def test_pass_at_k(n, c, k, expected):
    assert evaluation.pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_k_bad():
    with pytest.raises(ValueError):
        evaluation.pass_at_k(2, 3, 1)


def test_group_stats_single_samples_have_no_pass_at_k():
    out = evaluation.group_stats([[1.0], [0.0], [None]])
    assert out == {"n": 2, "abstained": 1, "mean": 0.5, "accuracy": 0.5}


def test_default_ks():
    assert evaluation.default_ks(8) == [1, 2, 4, 8] and evaluation.default_ks(3) == [1, 2, 3]


def test_metrics_registered():
    assert set(plugins.registry("metric")) >= {"accuracy", "yes_no", "mcq", "iou"}


def test_yes_no_precision_recall(tmp_path):
    # gold / answer: (yes, yes) TP, (yes, no) FN, (no, yes) FP, (no, no) TN, (no, "unsure") unparsed -> not positive
    rows = [("yes", "Yes, there is."), ("yes", "No."), ("no", "yes"), ("no", "no it is not"), ("no", "unsure")]
    path = _write(tmp_path / "r.jsonl", [{"prompt": f"q{i}", "response": a, "solution": g}
                                         for i, (g, a) in enumerate(rows)])
    m = evaluation.evaluate(path, ["yes_no"]).metrics["yes_no"]
    # TP=1 FP=1 FN=1 -> P = 1/2, R = 1/2, F1 = 1/2; accuracy: TP+TN = 2 of 5; yes-ratio: 2 yes of 4 parsed
    assert (m["precision"], m["recall"], m["f1"]) == (0.5, 0.5, 0.5)
    assert m["accuracy"] == pytest.approx(2 / 5) and m["yes_ratio"] == 0.5 and m["unparsed"] == 1


def test_accuracy_pass_at_k_with_groups(tmp_path):
    # prompt a: 4 samples, 1 correct; prompt b: 4 samples, 2 correct (one row with a completions list)
    rows = [{"prompt": "a", "response": r, "solution": "7"} for r in ["7", "8", "9", "6"]]
    rows.append({"prompt": "b", "completions": ["<answer>3</answer>", "3", "4", "5"], "solution": "3"})
    m = evaluation.evaluate(_write(tmp_path / "r.jsonl", rows), ["accuracy"]).metrics["accuracy"]
    assert m["accuracy"] == 3 / 8
    # pass@2: a: 1 - C(3,2)/C(4,2) = 1/2; b: 1 - C(2,2)/C(4,2) = 5/6 -> mean 2/3
    assert m["pass@2"] == pytest.approx((0.5 + 5 / 6) / 2)
    assert m["pass@4"] == 1.0 and m["mean@4"] == pytest.approx((0.25 + 0.5) / 2)


def test_mcq_and_reward_metric(tmp_path):
    pytest.importorskip("swift_ext.rewards.answers")
    if "mcq" not in plugins.registry("reward"):
        pytest.skip("the mcq reward is not registered yet")
    rows = [{"prompt": "1", "response": "The answer is (B).", "answer": "B"},
            {"prompt": "2", "response": "C", "answer": "(A)"},
            {"prompt": "3", "response": "<answer>D</answer>", "answer": "D"}]
    rep = evaluation.evaluate(_write(tmp_path / "r.jsonl", rows), ["mcq", "reward:think_format"])
    assert rep.ref_key == "answer"
    assert rep.metrics["mcq"]["accuracy"] == pytest.approx(2 / 3)
    assert rep.metrics["reward:think_format"]["mean"] == 0.0


def test_iou_metric(tmp_path):
    if "iou" not in plugins.registry("reward"):
        pytest.skip("the iou reward is not registered yet")
    rows = [{"prompt": "a", "response": "[0, 0, 100, 100]", "solution": [0, 0, 100, 100]},   # IoU 1
            {"prompt": "b", "response": "[0, 0, 100, 100]", "solution": [50, 0, 150, 100]},  # 5000/15000 = 1/3
            {"prompt": "c", "response": "no box", "solution": [0, 0, 10, 10]}]               # 0
    # prediction and reference both in the model's 0-1000 frame: gold_frame=same (the iou reward's default,
    # and so the metric's, is pixels of the original image, which these image-less rows cannot use)
    m = evaluation.evaluate(_write(tmp_path / "r.jsonl", rows), ["iou:gold_frame=same"]).metrics["iou:gold_frame=same"]
    assert m["mean_iou"] == pytest.approx((1 + 1 / 3 + 0) / 3)
    assert m["acc@0.5"] == pytest.approx(1 / 3)


def test_iou_metric_reads_pixel_gold_like_the_reward(tmp_path):
    """`eval -m iou` is the iou reward with the reward's defaults: gold boxes in pixels of the image."""
    from PIL import Image

    img = tmp_path / "img.png"
    Image.new("RGB", (200, 100)).save(img)
    # pixel gold [0, 0, 100, 50] on a 200x100 image is [0, 0, 500, 500] in Qwen2-VL's 0-1000 frame
    rows = [{"prompt": "a", "response": "[0, 0, 500, 500]", "solution": [0, 0, 100, 50], "images": [str(img)]},
            {"prompt": "b", "response": "[0, 0, 250, 500]", "solution": [0, 0, 100, 50], "images": [str(img)]}]
    m = evaluation.evaluate(_write(tmp_path / "r.jsonl", rows), ["iou"]).metrics["iou"]
    assert m["mean_iou"] == pytest.approx((1 + 0.5) / 2)  # second box covers half the gold
    assert m["acc@0.5"] == 1.0


def test_rows_without_completion_are_rejected_not_dropped(tmp_path):
    path = _write(tmp_path / "r.jsonl", [{"prompt": "a", "response": "1", "solution": "1"},
                                         {"prompt": "b", "solution": "2"}, "[1, 2]",
                                         {"prompt": "c", "completions": [], "solution": "3"}])
    rep = evaluation.evaluate(path, ["accuracy"])
    assert rep.rows_in == 4 and rep.completions == 1
    assert [n for n, _ in rep.rejected] == [2, 3, 4]
    assert "no completion" in rep.rejected[0][1] and "JSON object" in rep.rejected[1][1]


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="no row with a completion"):
        evaluation.evaluate(_write(tmp_path / "e.jsonl", [{"prompt": "a"}]), ["accuracy"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"response": "1"}\n{oops\n')
    with pytest.raises(Exception, match=r"bad.jsonl:2: invalid JSON"):
        evaluation.evaluate(str(bad), ["accuracy"])
    with pytest.raises(Exception, match="unknown metric 'bleu'"):
        evaluation.evaluate(_write(tmp_path / "ok.jsonl", [{"response": "1", "solution": "1"}]), ["bleu"])


def test_cli_compare_and_plot(tmp_path):
    a = _write(tmp_path / "a.jsonl", [{"prompt": str(i), "response": "x", "solution": str(i)} for i in range(4)])
    b = _write(tmp_path / "b.jsonl", [{"prompt": str(i), "response": str(i) if i < 3 else "x",
                                       "solution": str(i)} for i in range(4)])
    png, out = tmp_path / "cmp.png", tmp_path / "cmp.json"
    res = run_cli(["eval", a, b, "-m", "accuracy", "--label", "sft", "--label", "chord", "--plot", str(png),
                   "-o", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    acc = next(r for r in data["comparison"] if r["stat"] == "accuracy")
    assert (acc["a"], acc["b"], acc["delta"]) == (0.0, 0.75, 0.75)  # 0/4 -> 3/4
    assert json.loads(out.read_text()) == data and png.read_bytes()[:4] == b"\x89PNG"


def test_cli_errors(tmp_path):
    a = _write(tmp_path / "a.jsonl", [{"response": "x", "solution": "1"}])
    res = run_cli(["eval", a, a, a])
    assert res.exit_code == 1 and "one result file, or two" in res.output
    res = run_cli(["eval", a, "-m", "iou:threshold=2"])
    assert res.exit_code == 1 and "must be <= 1" in res.output
