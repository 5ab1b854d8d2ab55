"""`swift-ext audit` and the `audit` callback: detectors over a run's own files.

The detector rules are checked on metric series written here with the expected values worked out by hand;
the files of real tiny GRPO runs (a sound one, and one whose reward is dominated by a mis-scaled reward) show
the intended detector firing on the one and not the other, the CLI's exit codes, and the callback logging
`audit/*` inside a real `swift rlhf` run."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from swift_ext import bridge
from swift_ext.curation import audit
from swift_ext.testing import tiny
from swift_ext.runs import Run, latest_run as load_run


def _run(rows, **args):
    run = Run(path=Path("."), name="t", rows=[{"step": i + 1, **r} for i, r in enumerate(rows)], args=args)
    run.refresh()
    return run


def _by_name(findings):
    return {f.detector: f for f in findings}


def test_length_drift_and_clipped():
    # 8 steps: first quarter (2 steps) length 10, last quarter 30 -> ratio 3.0 >= 2.5: error
    run = _run([{"loss": 0, "completions/mean_length": v, "completions/clipped_ratio": c}
                for v, c in [(10, 0), (10, 0), (15, 0), (20, 0), (20, 0), (25, 0.2), (30, 0.4), (30, 0.4)]])
    f = _by_name(audit.METRIC_DETECTORS[i](run) for i in range(2))
    assert (f["length_drift"].status, f["length_drift"].value) == ("error", 3.0)
    assert (f["clipped"].status, f["clipped"].value) == ("warn", 0.4)   # 0.3 <= 0.4 < 0.8


def test_format_rising_while_accuracy_flat():
    rows = [{"loss": 0, "rewards/think_format/mean": f, "rewards/exact_match/mean": 0.1} for f in
            [0.0, 0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.0]]
    f = audit.format_vs_accuracy(_run(rows))
    assert (f.status, f.value) == ("error", 1.0)                         # rose 0 -> 1, accuracy +0.000
    rows = [{**r, "rewards/exact_match/mean": 0.1 + r["rewards/think_format/mean"] / 10} for r in rows]
    assert audit.format_vs_accuracy(_run(rows)).status == "ok"           # accuracy rose 0.1 too


def test_dominant_reward_uses_the_weights():
    # std 0.1 and 0.1: 50 % each; weights 1 and 19 -> 1.9 / 2.0 = 95 %
    rows = [{"loss": 0, "rewards/a/std": 0.1, "rewards/a/mean": 0, "rewards/b/std": 0.1, "rewards/b/mean": 0}] * 4
    assert audit.dominant_reward(_run(rows)).value == 0.5
    f = audit.dominant_reward(_run(rows, reward_weights=[1, 19]))
    assert (f.status, f.value) == ("error", 0.95)


def test_zero_std_and_std_collapse():
    rows = [{"loss": 0, "frac_reward_zero_std": z, "reward_std": s}
            for z, s in [(0, 0.4), (0, 0.4), (0.5, 0.2), (0.9, 0.01), (1.0, 0.01), (1.0, 0.01), (1.0, 0.01), (1.0, 0.01)]]
    f = _by_name([audit.zero_std(_run(rows)), audit.std_collapse(_run(rows))])
    assert (f["zero_std"].status, f["zero_std"].value) == ("error", 1.0)
    assert (f["std_collapse"].status, f["std_collapse"].value) == ("error", 0.025)   # 0.01 / 0.4


def test_too_short_a_run_is_skipped_not_judged():
    f = audit.length_drift(_run([{"loss": 0, "completions/mean_length": 5}] * 3))
    assert f.status == "skipped" and "needs 4" in f.message
    assert audit.worst([f]) == "ok"


def test_completion_detectors_read_completions_jsonl(tmp_path):
    """ms-swift's --log_completions layout: one line per step, a list per column."""
    (tmp_path / "logging.jsonl").write_text("".join(
        json.dumps({"loss": 0, "global_step/max_steps": f"{s}/8"}) + "\n" for s in range(1, 9)))
    lines = []
    for step in range(1, 9):
        # steps 1-2: varied words; steps 7-8: both groups repeat one answer, made of one repeated 3-gram
        comps = ([f"w{step} a b c {i}" for i in range(4)] if step <= 6 else ["x y z x y z x y z"] * 4)
        lines.append({"step": [str(step)] * 4, "prompt": ["p", "p", "q", "q"], "completion": comps,
                      "r": [1.0] * 4, "advantages": [0.0] * 4})
    (tmp_path / "completions.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    f = _by_name(audit.audit(load_run(tmp_path)))
    assert (f["identical_groups"].status, f["identical_groups"].value) == ("error", 1.0)
    # "x y z x y z x y z": 7 trigrams, 3 distinct -> 1 - 3/7 repeated; "w1 a b c 0": 3 distinct of 3 -> 0
    assert f["repetition"].value == pytest.approx(1 - 3 / 7) and f["repetition"].status == "error"


# -- real runs ------------------------------------------------------------------------------------
def _grpo(model, dataset, out, rewards, *extra):
    return ["--rlhf_type", "grpo", *tiny.common_flags(model), "--dataset", dataset,
            "--external_plugins", bridge.plugin_path(), "--reward_funcs", *rewards, "--use_vllm", "false",
            "--num_generations", "2", "--max_completion_length", "8", "--temperature", "1.0",
            "--tuner_type", "lora", "--lora_rank", "4", "--lora_alpha", "8", "--max_steps", "6",
            "--per_device_train_batch_size", "4", "--learning_rate", "1e-3", "--max_length", "256",
            "--logging_steps", "1", "--save_strategy", "no", "--log_completions", "true", "--beta", "0.0",
            "--output_dir", str(out), *extra]


def _cli(*args):
    exe = Path(sys.executable).with_name("swift-ext")
    return subprocess.run([str(exe), "audit", *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.mark.e2e
def test_audit_on_real_runs_and_the_callback(tiny_models, run_swift, tmp_path):
    model = tiny_models["text"]
    dataset = tiny.write_jsonl(tmp_path / "grpo.jsonl", tiny.grpo_rows(8))
    sound = run_swift("rlhf", _grpo(model, dataset, tmp_path / "sound", ["random:seed=1", "random:seed=2"]),
                      cwd=tmp_path)
    assert sound.returncode == 0, sound.tail()
    # the same two rewards, one on a 0..20 scale: it carries ~95 % of the reward spread
    skewed = run_swift("rlhf", _grpo(model, dataset, tmp_path / "skewed", ["random:seed=1", "random:seed=2,high=20"],
                                     "--callbacks", "audit:every_steps=2"), cwd=tmp_path)
    assert skewed.returncode == 0, skewed.tail()

    ok, bad = _by_name(audit.audit(load_run(tmp_path / "sound"))), _by_name(audit.audit(load_run(tmp_path / "skewed")))
    assert ok["dominant_reward"].status == "ok" and bad["dominant_reward"].status in ("warn", "error")
    assert bad["dominant_reward"].value > 0.8 > ok["dominant_reward"].value
    # a random tiny model never emits its end token: every completion is cut at max_completion_length
    assert ok["clipped"].status == "error" and ok["clipped"].value == 1.0
    assert ok["repetition"].status != "skipped" and ok["identical_groups"].status != "skipped"

    res = _cli(tmp_path / "skewed", "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["steps"] == 6 and report["status"] == "error"
    assert _cli(tmp_path / "skewed", "--fail-on", "warn").returncode == 1
    assert "dominant_reward" in _cli(tmp_path / "skewed").stderr

    logged = [r for r in tiny.logging_rows(tmp_path / "skewed") if "audit/dominant_reward" in r]
    assert logged, "the audit callback logged nothing"
    assert all(r["audit/dominant_reward"] > 0.8 and r["audit/dominant_reward/level"] >= 1 for r in logged)
    assert "audit " in skewed.output and "dominant_reward" in skewed.output   # warned once in the run's log
