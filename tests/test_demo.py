"""``swift-ext demo``: the library pieces, a real failing swift run, and one real full demo run."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from swift_ext import cpu_compat
from swift_ext import demo
from swift_ext.errors import ConfigError, ParamError

SWIFT_EXT = str(Path(sys.executable).with_name("swift-ext"))


def _cli(args, tmp_path, timeout=900):
    return subprocess.run([SWIFT_EXT, "demo", "--workdir", str(tmp_path / "work"), *args], capture_output=True,
                          text=True, timeout=timeout)


# -- library pieces (no swift process) ----------------------------------------------------------------
def test_bundled_sample_rows_are_copied_with_absolute_image_paths(tmp_path):
    path = demo.write_sample_dataset(tmp_path / "data", vl=True)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 8
    # images cycle circle (0 sides), square (4), triangle (3), circle (0)
    assert [r["solution"] for r in rows] == ["0", "4", "3", "0"] * 2
    for row in rows:
        (image,) = row["images"]
        assert Path(image).is_absolute() and Path(image).is_file()
        assert Path(image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert row["messages"][0]["content"].startswith("<image>")
    text = [json.loads(line) for line in demo.write_sample_dataset(tmp_path / "t", vl=False).read_text().splitlines()]
    # row i asks (1+2i) + (2+2i) = 3 + 4i
    assert [r["solution"] for r in text] == [str(3 + 4 * i) for i in range(8)]
    # the learning run's rows ask for the chant in <answer> after <think>, and the gold is the chant
    chant = [json.loads(line) for line in
             demo.write_sample_dataset(tmp_path / "c", vl=False, task="chant").read_text().splitlines()]
    assert len(chant) == 8 and {r["solution"] for r in chant} == {"ka ka", "ka ka ka", "ka ka ka ka"}
    for row in chant:
        (turn,) = row["messages"]
        assert "<think></think>" in turn["content"] and "<answer></answer>" in turn["content"]
        assert row["solution"] in turn["content"] or "ka" in turn["content"]


@pytest.mark.parametrize("change, error, match", [
    ({"batch_size": 3}, ConfigError, "multiple of num_generations"),
    ({"max_steps": 0}, ConfigError, "max_steps must be at least 1"),
    ({"rewards": ()}, ConfigError, "at least one reward"),
    ({"rewards": ("random:low",)}, ParamError, "low"),
    ({"dataset": "/no/such/file.jsonl"}, ConfigError, "no such dataset file"),
])
def test_bad_settings_are_clear_errors_before_anything_runs(tmp_path, change, error, match):
    config = demo.DemoConfig(workdir=tmp_path / "w", **change)
    with pytest.raises(error, match=match):
        demo.run_demo(config)
    assert not (tmp_path / "w").exists()  # nothing was built or written


def test_a_hub_dataset_id_is_not_mistaken_for_a_missing_file():
    demo.validate(demo.DemoConfig(dataset="AI-MO/NuminaMath-TIR#1000"))


def test_steps_are_pluggable_and_timed(tmp_path):
    seen = []

    class Mark(demo.Step):
        name, title = "mark", "Marking"

        def run(self, ctx):
            seen.append(ctx.workdir)
            ctx.note("marked")

    class Skipped(demo.Step):
        name, title = "skipped", "Never runs"

        def skip_reason(self, ctx):
            return "not today"

        def run(self, ctx):
            raise AssertionError("a skipped step ran")

    result = demo.run_demo(demo.DemoConfig(workdir=tmp_path / "w"), steps=[Mark(), Skipped()])
    assert seen == [tmp_path / "w"]
    assert result.notes == ["marked", "Never runs: skipped (not today)"]
    assert set(result.timings) == {"mark", "total"}


def test_step_metrics_reads_each_reward_per_step(tmp_path):
    run = tmp_path / "v0-x"
    run.mkdir()
    rows = [{"loss": 0.5, "reward": 1.25, "rewards/a/mean": 1.0, "rewards/b:k=1/mean": 0.25,
             "global_step/max_steps": "1/2"},
            {"loss": float("nan"), "reward": 0.5, "rewards/a/mean": 0.5, "global_step/max_steps": "2/2"},
            {"train_runtime": 1.0, "train_loss": 0.2}]
    (run / "logging.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert demo.step_metrics(tmp_path, ["a", "b:k=1"]) == [
        {"step": 1, "rewards": {"a": 1.0, "b:k=1": 0.25}, "reward": 1.25, "loss": 0.5, "health": {}},
        {"step": 2, "rewards": {"a": 0.5}, "reward": 0.5, "loss": None, "health": {}},  # NaN loss -> None
    ]


def test_the_two_modes_and_their_defaults():
    learn, quick = demo.DemoConfig(), demo.DemoConfig(quick=True)
    assert (learn.tiny_kind, learn.max_steps, learn.num_generations, learn.max_completion_length,
            learn.tuner_type) == ("text", 40, 8, 12, "full")
    assert learn.rewards[0] == "teacher_similarity:metric=chrf"  # the reward that is learned comes first
    assert (quick.tiny_kind, quick.max_steps, quick.rewards, quick.tuner_type) == \
        ("qwen2_vl", 2, demo.QUICK_REWARDS, "lora")
    assert demo.DemoConfig(quick=True, max_steps=5).max_steps == 5  # an explicit value wins in both modes


def test_what_the_terminal_shows_is_computed_from_the_steps():
    assert demo.quarter_means([1, 1, None, 2, 3, 3, 5, 9, 7]) == (1.0, 8.0)  # 8 values: quarters of 2
    assert demo.quarter_means([1, 2, 3]) is None
    steps = [{"step": s, "rewards": {"t": 0.1 * s, "think_format": 0.0}, "loss": 0.0 if s == 1 else 0.2,
              "health": {"kl": 0.0 if s == 1 else 0.1, "clip_ratio/region_mean": 0.0}} for s in range(1, 9)]
    assert demo.learning_summary(steps, "t") == {"reward": "t", "first": 0.15, "last": 0.75, "steps": 8}
    zeros = demo.zero_explanations(steps, demo.DemoConfig())
    assert [z.split(" (")[0] for z in zeros] == ["clip_ratio", "think_format", "kl at step 1", "loss at step 1"]


def test_log_helpers(tmp_path):
    log = tmp_path / "log"
    log.write_text("a\nTrain:  50%|##  | 1/2\rTrain: 100%|####| 2/2\n\nTraceback (most recent call last):\n"
                   "  File x\nValueError: bad thing\n[INFO] shutting down\n")
    assert demo.last_line("x\ny\r\n\n") == "y"
    assert demo.last_line("z" * 300, width=10) == "z" * 9 + "…"
    assert demo.error_line(log) == "ValueError: bad thing"
    assert demo.tail(log, 2).splitlines()[-1] == "[INFO] shutting down"


def test_cli_help_lists_the_real_model_options():
    proc = subprocess.run([SWIFT_EXT, "demo", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    for option in ("--model", "--model-type", "--template", "--dataset", "--use-vllm", "--max-steps", "--json"):
        assert option in proc.stdout


# -- real swift processes ------------------------------------------------------------------------------
@pytest.mark.e2e
def test_a_failing_swift_run_exits_non_zero_with_the_log_tail(tmp_path):
    # a real swift process that rejects an unknown flag, on the tiny text model (cheapest)
    proc = _cli(["--tiny-kind", "text", "--", "--no_such_flag_for_swift", "1"], tmp_path, timeout=600)
    assert proc.returncode == 1
    assert "Error: swift rlhf failed with exit code" in proc.stderr
    assert "--- last lines of the swift log" in proc.stderr
    assert "no_such_flag_for_swift" in proc.stderr  # swift's own complaint is shown
    assert proc.stdout == ""


@pytest.mark.e2e
@pytest.mark.vl
def test_quick_demo_end_to_end_on_tiny_qwen2_vl(tmp_path):
    proc = _cli(["--quick", "--json"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout)
    rewards = ["exact_match:extract=last_number", "think_format", "random:seed=7"]
    assert result["rewards"] == rewards
    assert [s["step"] for s in result["steps"]] == [1, 2]  # --max-steps 2, logging every step
    for step in result["steps"]:
        assert set(step["rewards"]) == set(rewards)
        assert all(math.isfinite(v) for v in step["rewards"].values())
        # all reward weights are 1: the total is the sum of the means
        assert step["reward"] == pytest.approx(sum(step["rewards"].values()), abs=1e-4)
    # the JSON agrees with the run's own logging.jsonl, read here independently
    (logging_file,) = Path(result["run_dir"]).rglob("logging.jsonl")
    logged = [row for row in map(json.loads, logging_file.read_text().splitlines()) if "reward" in row]
    assert [[row[f"rewards/{n}/mean"] for n in rewards] for row in logged] == \
        [[s["rewards"][n] for n in rewards] for s in result["steps"]]
    # the tiny model is Qwen2-VL and the rows carry images
    assert "qwen2_vl" in result["model"]
    assert all(json.loads(line)["images"] for line in Path(result["dataset"]).read_text().splitlines())
    # the human table on stderr names every reward; the CPU shim is announced where it was needed
    for name in rewards:
        assert name in proc.stderr
    assert ("installed packages untouched" in proc.stderr) == cpu_compat.needed()
    assert (cpu_compat.explanation() in " ".join(result["notes"])) == cpu_compat.needed()


def test_relative_model_and_dataset_paths_become_absolute(tmp_path, monkeypatch):
    # swift runs inside the run folder, so a relative path must be resolved against the caller's cwd
    monkeypatch.chdir(tmp_path)
    Path("m").mkdir()
    Path("data").mkdir()
    Path("data/cat.png").write_bytes(b"png")
    Path("data/rows.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "<image>q"}],
                                                   "images": ["cat.png"]}) + "\n")
    config = demo.DemoConfig(workdir=tmp_path / "w", model="m", model_type="qwen3", template="qwen3",
                             dataset="data/rows.jsonl")
    ctx = demo.DemoContext(config=config, reporter=demo.Reporter(), workdir=tmp_path / "w")
    demo.PrepareModel().run(ctx)
    demo.PrepareDataset().run(ctx)
    assert ctx.model_flags == ["--model", str(tmp_path / "m"), "--model_type", "qwen3", "--template", "qwen3"]
    # a copy in the work folder whose image path (relative to the dataset file) is now absolute
    (row,) = [json.loads(line) for line in Path(ctx.dataset).read_text().splitlines()]
    assert Path(ctx.dataset).is_absolute() and row["images"] == [str(tmp_path / "data" / "cat.png")]
    assert ctx.is_vl is False
    hub = demo.DemoContext(config=demo.DemoConfig(model="Qwen/Qwen2-VL-2B-Instruct", dataset="AI-MO/x"),
                           reporter=demo.Reporter(), workdir=tmp_path / "w")
    demo.PrepareModel().run(hub)
    demo.PrepareDataset().run(hub)
    assert hub.model_flags == ["--model", "Qwen/Qwen2-VL-2B-Instruct"] and hub.dataset == "AI-MO/x"
    assert hub.is_vl is True


def test_grpo_argv_sets_a_vllm_mode_only_with_vllm(tmp_path):
    def argv(**kw):
        ctx = demo.DemoContext(config=demo.DemoConfig(swift="swift", **kw), reporter=demo.Reporter(),
                               workdir=tmp_path, model_flags=["--model", "M"], dataset="d.jsonl",
                               run_dir=tmp_path / "run")
        return demo.grpo_argv(ctx)

    cpu = argv()
    # ms-swift 4.6 rejects --vllm_mode with --use_vllm false, and requires it with --use_vllm true
    assert "--vllm_mode" not in cpu and cpu[cpu.index("--use_vllm") + 1] == "false"
    gpu = argv(use_vllm=True, swift_args=("--vllm_mode", "server"))
    assert gpu[gpu.index("--use_vllm") + 1] == "true"
    assert gpu[gpu.index("--vllm_mode") + 1] == "colocate"
    assert gpu[-2:] == ["--vllm_mode", "server"]  # the user's own flags come last and win
    start = cpu.index("--reward_funcs") + 1
    assert cpu[:3] == ["swift", "rlhf", "--rlhf_type"] and \
        cpu[start:start + len(demo.DEFAULT_REWARDS)] == list(demo.DEFAULT_REWARDS)
    assert cpu[cpu.index("--log_completions") + 1] == "true"  # the report's completion browser needs them


@pytest.mark.e2e
def test_the_default_demo_learns_and_writes_its_report(tmp_path):
    """The README's first command: a reward rises over the run, read from the run's own logging.jsonl."""
    proc = _cli(["--json"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout)
    (logging_file,) = Path(result["run_dir"]).rglob("logging.jsonl")
    rows = [r for r in map(json.loads, logging_file.read_text().splitlines())
            if "global_step/max_steps" in r and "train_runtime" not in r]
    assert len(rows) == 40
    learned = [r["rewards/teacher_similarity:metric=chrf/mean"] for r in rows]
    first, last = sum(learned[:10]) / 10, sum(learned[-10:]) / 10
    assert last > first + 0.05, (first, last, learned)
    assert (result["learned"]["first"], result["learned"]["last"]) == (round(first, 4), round(last, 4))
    # the terminal told the story: curve, samples with scores, clipping, zeros, the report
    for text in ("rose:", "step 1 sample", "teacher_similarity:metric=chrf=", "clipped ratio:",
                 "0 by construction", "report:"):
        assert text in proc.stderr, text
    report = Path(result["report"])
    assert report.is_file() and report.parent == logging_file.parent
    import report_browser

    if report_browser.chromium():
        dom, _ = report_browser.load(report.as_uri())
        page = report_browser.read(dom)
        assert page.ready and page.selfcheck["errors"] == []
        assert 40 in page.points["reward-teacher-similarity-metric-chrf"]
        assert len(page.rows) == 8  # the last step's 8 completions
