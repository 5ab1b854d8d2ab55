"""The Run-report issue's proof: reports of REAL tiny training runs (a text CHORD/GRPO run with swift-ext
callbacks, a Qwen2-VL GRPO run on image rows), loaded from disk in a real headless Chromium. What the page
rendered is compared with the run's own ``logging.jsonl`` / ``completions.jsonl``, read here independently."""

import json
from pathlib import Path
from urllib.parse import quote

import pytest

import report_browser
from swift_ext import bridge
from swift_ext.testing import tiny
from swift_ext.report import write_report

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(report_browser.chromium() is None,
                                 reason="chromium is not installed (apt-get install chromium; .ci/run installs it)")]


def grpo_flags(model, dataset, out, rewards, steps):
    return ["--rlhf_type", "grpo", *tiny.common_flags(model), "--dataset", dataset,
            "--external_plugins", bridge.plugin_path(), "--reward_funcs", *rewards, "--use_vllm", "false",
            "--num_generations", "4", "--per_device_train_batch_size", "8", "--max_completion_length", "8",
            "--max_length", "256", "--temperature", "1.0", "--tuner_type", "lora", "--lora_rank", "4",
            "--lora_alpha", "8", "--learning_rate", "1e-3", "--max_steps", str(steps), "--logging_steps", "1",
            "--save_strategy", "no", "--log_completions", "true", "--output_dir", str(out)]


def logged(out: Path):
    """(step rows of logging.jsonl, completions.jsonl as one dict per completion), read without swift-ext."""
    (log,) = out.rglob("logging.jsonl")
    rows = [r for r in map(json.loads, log.read_text().splitlines()) if "global_step/max_steps" in r
            and "train_runtime" not in r]
    (comp,) = out.rglob("completions.jsonl")
    tables = [json.loads(line) for line in comp.read_text().splitlines()]
    # ms-swift 4.6 writes the last step's table a second time when training ends (its final log() call):
    # the same completions, not new ones
    assert tables[-1] == tables[-2]
    completions = []
    for table in tables[:-1]:
        completions += [{k: v[i] for k, v in table.items()} for i in range(len(table["completion"]))]
    for n, c in enumerate(completions):
        c["n"] = n
    return rows, completions


def load(report: Path, state: str = ""):
    dom, stderr = report_browser.load(report.as_uri() + ("#" + state if state else ""))
    page = report_browser.read(dom)
    assert page.ready, "the page's script did not finish"
    assert page.selfcheck["errors"] == [], page.selfcheck["errors"]
    assert report_browser.console_errors(stderr) == []
    return page


def test_report_of_a_real_chord_run_in_a_browser(tiny_models, run_swift, tmp_path):
    model = tiny_models["text"]
    rl = tiny.write_jsonl(tmp_path / "rl.jsonl", tiny.grpo_rows(8))
    sft = tiny.write_jsonl(tmp_path / "sft.jsonl", [
        {"messages": [{"role": "user", "content": f"What is {i} + 1?"}, {"role": "assistant", "content": str(i + 1)}]}
        for i in range(6)])
    rewards = ["exact_match:extract=last_number", "random:seed=3"]
    run = run_swift("rlhf", [*grpo_flags(model, rl, tmp_path / "out", rewards, steps=4),
                             "--chord_sft_dataset", sft, "--chord_sft_per_device_train_batch_size", "1",
                             "--chord_mu_warmup_steps", "0", "--chord_mu_decay_steps", "4", "--chord_mu_peak", "0.9",
                             "--chord_mu_valley", "0.1", "--callbacks", "chord_mu", "train_sanity:n=2,every_steps=2"],
                    cwd=tmp_path)
    assert run.returncode == 0, run.tail()
    rows, completions = logged(tmp_path / "out")
    assert len(rows) == 4
    info = write_report([tmp_path / "out"], tmp_path / "report.html")
    assert info.completions == len(completions)

    page = load(tmp_path / "report.html", "step=2")
    # every reward's chart has one marker per logged step (the band traces have none)
    for name, slug in zip(rewards, ["exact-match-extract-last-number", "random-seed-3"]):
        assert len(rows) in page.points[f"reward-{slug}"], (name, page.points)
    assert sorted(page.points["chord-mu"]) == [4, 4]  # logged by the chord_mu callback, and planned
    assert any(k.startswith("cb-train-sanity") for k in page.points)  # swift-ext callback metrics
    for chart in ("reward-total", "frac-reward-zero-std", "clipped-ratio", "loss", "kl", "grad-norm",
                  "learning-rate"):
        assert len(rows) in page.points[chart], chart
    # step 2 shows exactly the completions ms-swift logged for step 2, with their scores
    step2 = [c for c in completions if c["step"] == "2"]
    assert [r["n"] for r in page.rows] == [c["n"] for c in step2]
    assert [r["text"] for r in page.rows] == [c["completion"] for c in step2]
    assert [r["scores"] for r in page.rows] == [{n: c[n] for n in rewards} for c in step2]
    assert {g["gold"] for g in page.groups} == {c["solution"] for c in step2}

    # filter: random:seed=3 >= 0.5 at step 2
    kept = [c for c in step2 if c["random:seed=3"] >= 0.5]
    assert 0 < len(kept) < len(step2)  # the filter has something to remove (scores are uniform in [0, 1))
    page = load(tmp_path / "report.html", "step=2&fr=random%3Aseed%3D3&min=0.5")
    assert [r["n"] for r in page.rows] == [c["n"] for c in kept]
    # sort by the same reward, high first: within each prompt group
    page = load(tmp_path / "report.html", "step=2&sort=r%3Arandom%3Aseed%3D3&dir=desc")
    by_group = {}
    for r in page.rows:
        by_group.setdefault(next(c["prompt"] for c in step2 if c["n"] == r["n"]), []).append(r["scores"]["random:seed=3"])
    assert all(v == sorted(v, reverse=True) for v in by_group.values()) and len(page.rows) == len(step2)
    # search: a word of one completion finds the completions (or prompts, gold answers) that contain it
    word = max(step2[0]["completion"].split() or ["the"], key=len)
    page = load(tmp_path / "report.html", f"step=2&q={quote(word)}")
    expected = [c["n"] for c in step2 if word.lower() in (c["completion"] + c["prompt"] + c["solution"]).lower()]
    assert expected and [r["n"] for r in page.rows] == expected
    shot = report_browser.screenshot(tmp_path.as_uri() + "/report.html#step=2", tmp_path / "report.png")
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one; kept in the test's tmp dir


@pytest.mark.vl
def test_report_of_a_real_vl_run_shows_the_images(tiny_models, sample_images, run_swift, tmp_path):
    model = tiny_models["qwen2_vl"]
    data = tiny.grpo_rows(8, images=sample_images)
    dataset = tiny.write_jsonl(tmp_path / "vl.jsonl", data)
    rewards = ["exact_match:extract=last_number", "random:seed=1"]
    run = run_swift("rlhf", grpo_flags(model, dataset, tmp_path / "out", rewards, steps=2), cwd=tmp_path)
    assert run.returncode == 0, run.tail()
    rows, completions = logged(tmp_path / "out")
    write_report([tmp_path / "out"], tmp_path / "report.html")
    page = load(tmp_path / "report.html", "step=1")
    step1 = [c for c in completions if c["step"] == "1"]
    assert [r["text"] for r in page.rows] == [c["completion"] for c in step1]
    assert page.groups
    for group in page.groups:
        # every dataset image whose row has this gold answer (the prompt text is the same for all rows)
        expected = {tuple(r["images"]) for r in data if r["solution"] == group["gold"]}
        assert group["thumbs"] == len(expected) >= 1, group
    report_browser.screenshot((tmp_path / "report.html").as_uri() + "#step=1", tmp_path / "report.png")
