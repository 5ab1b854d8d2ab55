"""``swift-ext report``: reading ms-swift's run files, the page's data, the live server, the PNG, the CLI, and
the page itself in a real headless Chromium (on run files written here in ms-swift 4.6's layout; the real
training runs are in test_report_e2e.py)."""

import json
import re
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

import report_browser
from swift_ext.testing import tiny
from swift_ext.errors import ConfigError
from swift_ext.io import BadLine
from swift_ext.report import page as report_page
from swift_ext import runs as report_runs
from swift_ext.report import live as report_live
from swift_ext.report import write_report

SWIFT_EXT = str(Path(sys.executable).with_name("swift-ext"))
NASTY = "</script><script>window.__pwned=1</script><!-- & \u2028"


def write_run(folder: Path, steps=3, rewards=("acc", "fmt"), images=None, mu=False, prompts=2, gens=2):
    """A run folder as ms-swift 4.6 writes it: step rows (and the final summary row) in logging.jsonl, one
    column table per step in completions.jsonl, args.json naming the dataset."""
    folder.mkdir(parents=True)
    rows = []
    for s in range(1, steps + 1):
        row = {"loss": 0.1 * s, "grad_norm": 1.0 / s, "learning_rate": 1e-3, "kl": 0.01 * s, "reward": 0.0,
               "reward_std": 0.2, "frac_reward_zero_std": 0.5, "completions/clipped_ratio": 0.25,
               "completions/mean_length": 10.0 + s, "global_step/max_steps": f"{s}/{steps}",
               "train_sanity/acc/mean": 0.5}
        for i, name in enumerate(rewards):
            row[f"rewards/{name}/mean"] = s / 10 + i
            row[f"rewards/{name}/std"] = 0.05
            row["reward"] += s / 10 + i
        if mu:
            row["chord/mu"] = 0.5 / s
        rows.append(row)
    rows.append({"train_runtime": 3.0, "train_loss": 0.2, "global_step/max_steps": f"{steps}/{steps}"})
    (folder / "logging.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    dataset = []
    with open(folder / "completions.jsonl", "w") as fh:
        for s in range(1, steps + 1):
            table = {k: [] for k in ("step", "prompt", "completion", *rewards, "advantages", "solution")}
            for p in range(prompts):
                for g in range(gens):
                    table["step"].append(str(s))
                    table["prompt"].append(f"<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Q{p}?"
                                           f"<|im_end|>\n<|im_start|>assistant\n")
                    table["completion"].append(f"step {s} prompt {p} sample {g}" + (NASTY if g == 1 else ""))
                    for i, name in enumerate(rewards):
                        table[name].append(round(0.1 * g + i + s / 100, 4))
                    table["advantages"].append(1.0 if g else -1.0)
                    table["solution"].append(f"gold {p}")
            fh.write(json.dumps(table) + "\n")
    for p in range(prompts):
        row = {"messages": [{"role": "user", "content": f"<image>Q{p}?"}], "solution": f"gold {p}"}
        if images:
            row["images"] = [images[p % len(images)]]
        dataset.append(row)
    tiny.write_jsonl(folder / "data.jsonl", dataset)
    args = {"reward_funcs": list(rewards), "dataset": [str(folder / "data.jsonl")], "num_generations": gens}
    if mu:
        args.update(chord_sft_dataset=["sft.jsonl"], chord_mu_warmup_steps=0, chord_mu_decay_steps=steps,
                    chord_mu_peak=0.5, chord_mu_valley=0.1)
    (folder / "args.json").write_text(json.dumps(args))
    return folder


# -- reading ------------------------------------------------------------------------------------------
def test_a_run_is_read_from_its_own_files(tmp_path):
    run = report_runs.load_run(write_run(tmp_path / "v0-1", steps=3, mu=True))
    assert run.reward_names == ["acc", "fmt"]
    assert run.steps == [1, 2, 3] and run.max_steps == 3
    # the final summary row (train_runtime) is not a step
    assert "train_runtime" not in run.series and run.series["loss"] == [[1, 0.1], [2, 0.2], [3, 0.30000000000000004]]
    items = run.completions()
    assert len(items) == 3 * 2 * 2
    first = items[0]
    assert (first.step, first.text, first.scores, first.advantage, first.gold) == \
        (1, "step 1 prompt 0 sample 0", {"acc": 0.01, "fmt": 1.01}, -1.0, "gold 0")
    assert [len(g) for g in report_runs.group_by_prompt(items)] == [2] * 6


def test_run_folders_are_found_below_an_output_dir(tmp_path):
    write_run(tmp_path / "out" / "v0-a")
    write_run(tmp_path / "out" / "v1-b")
    assert [p.name for p in report_runs.find_run_dirs(tmp_path / "out")] == ["v0-a", "v1-b"]
    runs = report_runs.load_runs([tmp_path / "out"])
    assert [r.name for r in runs] == ["out/v0-a", "out/v1-b"]  # unique names across runs
    with pytest.raises(ConfigError, match="x: no such run folder"):
        report_runs.find_run_dirs(tmp_path / "x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="empty: no logging.jsonl or completions.jsonl"):
        report_runs.find_run_dirs(tmp_path / "empty")


def test_bad_completion_lines_name_file_and_line(tmp_path):
    path = tmp_path / "completions.jsonl"
    path.write_text('{"step": ["1"], "completion": ["a"]}\n{"step": ["1", "2"], "completion": ["a"]}\n')
    with pytest.raises(BadLine, match=r"completions.jsonl:2: columns \['step'\] do not have 1 values"):
        list(report_runs.iter_completions(path))
    path.write_text('{"step": "x", "completion": "a"}\n')
    with pytest.raises(BadLine, match="completions.jsonl:1: 'step' is 'x'"):
        list(report_runs.iter_completions(path))
    # one completion per line reads like the column table
    path.write_text('{"step": 2, "prompt": "p", "completion": "c", "acc": 1.0}\n')
    (item,) = report_runs.iter_completions(path)
    assert (item.step, item.prompt, item.text, item.scores) == (2, "p", "c", {"acc": 1.0})


def test_the_last_table_written_again_at_the_end_of_training_is_read_once(tmp_path):
    # ms-swift 4.6's final log() call (the train summary) writes the last step's buffered table again
    run = write_run(tmp_path / "v0", steps=2)
    with open(run / "completions.jsonl") as fh:
        last = fh.read().splitlines()[-1]
    with open(run / "completions.jsonl", "a") as fh:
        fh.write(last + "\n")
    items = report_runs.load_run(run).completions()
    assert [c.step for c in items] == [1] * 4 + [2] * 4


def test_a_line_being_written_is_skipped(tmp_path):
    run = write_run(tmp_path / "v0", steps=2)
    with open(run / "logging.jsonl", "a") as fh:
        fh.write('{"loss": 0.5, "global_st')  # training is still writing this line
    assert report_runs.load_run(run).steps == [1, 2]


def test_charts_cover_rewards_health_chord_and_callbacks(tmp_path):
    runs = [report_runs.load_run(write_run(tmp_path / "a", mu=True)),
            report_runs.load_run(write_run(tmp_path / "b", rewards=("acc", "other")))]
    charts = {c.id: c for c in report_page.chart_specs(runs)}
    assert list(charts)[:4] == ["reward-acc", "reward-fmt", "reward-other", "reward-total"]
    assert charts["reward-acc"].bands == {"rewards/acc/mean": "rewards/acc/std"}
    assert charts["chord-mu"].keys == ["chord/mu", report_page.PLANNED_MU_KEY]
    for cid in ("frac-reward-zero-std", "clipped-ratio", "completion-length", "loss", "kl", "grad-norm",
                "learning-rate", "cb-train-sanity-acc-mean"):
        assert cid in charts, cid
    assert charts["cb-train-sanity-acc-mean"].section == "swift-ext callbacks"
    # planned mu: warmup 0, cosine from 0.5 down to 0.1 over 3 steps, logged at step s+1
    planned = report_page.planned_mu(runs[0])
    assert [p[0] for p in planned] == [1, 2, 3] and planned[0][1] == pytest.approx(0.5)
    assert report_page.planned_mu(runs[1]) == []  # not a CHORD run


def test_the_page_is_self_contained_and_text_cannot_break_out(tmp_path):
    images = tiny.sample_images(tmp_path / "img")
    info = write_report([write_run(tmp_path / "v0", images=images)], tmp_path / "r.html", title="T")
    text = (tmp_path / "r.html").read_text()
    assert info.completions == 12 and info.bytes == len(text.encode())
    assert 'src="http' not in text and "<link" not in text  # nothing fetched from the network
    assert "Plotly" in text  # plotly.js inlined
    assert NASTY not in text and "</script><script>window.__pwned" not in text
    assert text.count('type="application/json" id="c-0-') == 3  # one lazily parsed block per step
    # the two prompts' images are thumbnails (data: URIs), matched through the dataset named in args.json
    images_block = re.search(r'id="report-images">(.*?)</script>', text).group(1)
    assert sorted(json.loads(images_block).values())[0].startswith("data:image/png;base64,")
    assert len(json.loads(images_block)) == 2


def test_png_of_the_curves(tmp_path):
    runs = [report_runs.load_run(write_run(tmp_path / "v0", mu=True))]
    out = report_page.save_curves_png(runs, tmp_path / "c.png")
    assert Path(out).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_live_server_rereads_a_growing_run(tmp_path):
    run = write_run(tmp_path / "out" / "v0", steps=2)
    server = report_live.make_server([tmp_path / "out"], port=0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}/"
    try:
        def get(path):
            with urllib.request.urlopen(base + path, timeout=30) as resp:
                return resp.read().decode()

        page = get("")
        assert '"live":true' in page and 'id="c-0-' not in page  # completions come from the API
        model = json.loads(get("api/model"))
        assert model["runs"][0]["completion_steps"] == [1, 2]
        chunk = json.loads(get("api/completions?run=0&step=2"))
        assert [len(g["items"]) for g in chunk["groups"]] == [2, 2]
        # training goes on: a third step appears
        with open(run / "logging.jsonl", "a") as fh:
            fh.write(json.dumps({"loss": 9.0, "global_step/max_steps": "3/3"}) + "\n")
        model = json.loads(get("api/model"))
        assert model["series"][0]["loss"][-1] == [3, 9.0]
        with pytest.raises(urllib.error.HTTPError):
            get("api/completions?run=x&step=1")
        if report_browser.chromium():  # the served page fetches the step's completions from the API
            dom, stderr = report_browser.load(base + "#step=2")
            page = report_browser.read(dom)
            assert page.ready and page.selfcheck["errors"] == [] and not report_browser.console_errors(stderr)
            assert [r["text"] for r in page.rows] == [f"step 2 prompt {p} sample {g}" + (NASTY if g else "")
                                                      for p in range(2) for g in range(2)]
    finally:
        server.shutdown()
        server.server_close()


def test_cli_writes_the_report_and_prints_its_path(tmp_path):
    run = write_run(tmp_path / "v0")
    proc = subprocess.run([SWIFT_EXT, "report", str(run), "-o", str(tmp_path / "r.html"), "--png",
                           str(tmp_path / "c.png"), "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["path"] == str((tmp_path / "r.html").resolve()) and out["completions"] == 12
    assert (tmp_path / "c.png").is_file() and "report:" in proc.stderr
    bad = subprocess.run([SWIFT_EXT, "report", str(tmp_path / "c.png"), "-o", str(tmp_path / "x.html")],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "c.png: not a run folder" in bad.stderr


# -- the page in a real browser ------------------------------------------------------------------------
needs_chromium = pytest.mark.skipif(report_browser.chromium() is None, reason="chromium is not installed "
                                    "(apt-get install chromium; .ci/run installs it)")


@needs_chromium
def test_a_served_page_polls_and_redraws_what_training_appended_in_a_browser(tmp_path):
    """The live page in Chromium: its polls ask for ``/api/model?since=VERSION``; a poll after training
    appended a step gets the new model and the loss chart redraws with the new point; the other polls get a
    204 (nothing sent again)."""
    run = write_run(tmp_path / "out" / "v0", steps=2)
    server = report_live.make_server([tmp_path / "out"], port=0)
    asked = []
    handler = server.RequestHandlerClass

    class Recording(handler):
        def do_GET(self):  # noqa: N802
            asked.append(self.path)
            if self.path.startswith("/api/model") and len([a for a in asked if a.startswith("/api/model")]) == 1:
                with open(run / "logging.jsonl", "a") as fh:  # training logs step 3 before the first poll
                    fh.write(json.dumps({"loss": 9.0, "global_step/max_steps": "3/3"}) + "\n")
            super().do_GET()

    server.RequestHandlerClass = Recording
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        dom, stderr = report_browser.load(f"http://127.0.0.1:{server.server_port}/")
    finally:
        server.shutdown()
        server.server_close()
    page = report_browser.read(dom)
    assert page.ready and page.selfcheck["errors"] == [] and not report_browser.console_errors(stderr)
    polls = [a for a in asked if a.startswith("/api/model")]
    assert len(polls) >= 2 and all(p.startswith("/api/model?since=") for p in polls), asked
    assert polls[0] == "/api/model?since=1" and polls[1] == "/api/model?since=2", polls  # the page took version 2
    assert page.points["loss"] == [3], page.points  # step 3, appended after the page loaded, is drawn


@needs_chromium
def test_two_runs_side_by_side_in_a_browser(tmp_path):
    a = write_run(tmp_path / "runs" / "grpo", steps=4)
    b = write_run(tmp_path / "runs" / "chord", steps=3, mu=True)
    write_report([a, b], tmp_path / "r.html")
    url = (tmp_path / "r.html").as_uri()
    dom, stderr = report_browser.load(url + "#run=1&step=2&fr=acc&min=0.1")
    page = report_browser.read(dom)
    assert page.ready and page.selfcheck["errors"] == [] and not report_browser.console_errors(stderr)
    # one marker per logged step, per run, on the same chart
    assert page.points["reward-acc"] == [0, 0, 4, 0, 0, 3]  # band, band, mean for each run
    assert page.points["chord-mu"] == [3, 3]  # logged and planned (chord run only)
    # run 1, step 2, acc >= 0.1: sample 1 of each prompt (acc 0.1 + 0.02), not sample 0 (0.02)
    assert [r["text"] for r in page.rows] == [f"step 2 prompt {p} sample 1{NASTY}" for p in range(2)]
    assert all(r["scores"] == {"acc": 0.12, "fmt": 1.12} for r in page.rows)
    assert "window.__pwned" not in json.dumps(page.selfcheck) and "showing 2 of 2" in page.status
