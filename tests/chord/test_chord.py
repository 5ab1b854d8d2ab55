"""CHORD planning: step arithmetic, every shape, validation, plans, plugin shapes and the CLI.

Expected values are computed by hand in the comments (formula in swift_ext/chord/plan.py's docstring).
"""

import json

import pytest
from click.testing import CliRunner

from swift_ext import plugins
from swift_ext.chord import plan as chord
from swift_ext.errors import ConfigError, ParamError
from swift_ext.hookspecs import hookimpl
from swift_ext.params import Param


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def sft_rows(n, answer=True):
    rows = []
    for i in range(n):
        msgs = [{"role": "user", "content": f"q{i}"}]
        if answer:
            msgs.append({"role": "assistant", "content": f"a{i}"})
        rows.append({"messages": msgs})
    return rows


def rl_rows(n, start=0):
    return [{"messages": [{"role": "user", "content": f"q{i}"}], "solution": str(i)} for i in range(start, start + n)]


# -- step arithmetic ------------------------------------------------------------------------------
def test_steps_measured_case():
    # measured with a real `swift rlhf --rlhf_type grpo` run (12 rows, batch 2, G 2, GA 1, 1 epoch): 12 steps.
    # spg = GA = 1; gbs = 2*1*1 = 2; P = 2/2 = 1 prompt per round; rounds = 12; micro = 12; steps = 12/1 = 12
    s = chord.count_steps(12, per_device_batch=2, grad_accum=1, gpus=1, num_generations=2)
    assert (s.prompts_per_round, s.micro_batches_per_epoch, s.steps_per_epoch, s.total_steps) == (1, 12, 12, 12)


def test_steps_with_grad_accum_and_gpus():
    # B=8, W=2, GA=4, G=8: spg=4, gbs=8*2*4=64, P=64/8=8 prompts/round; N=100 -> rounds=12 (4 rows dropped);
    # micro = 12*4 = 48; steps/epoch = 48/4 = 12; 3 epochs -> 36
    s = chord.count_steps(100, per_device_batch=8, grad_accum=4, gpus=2, num_generations=8, epochs=3)
    assert (s.generation_batch_size, s.prompts_per_round, s.dropped_rows) == (64, 8, 4)
    assert (s.steps_per_epoch, s.total_steps, s.prompts_per_step) == (12, 36, 8)


def test_steps_fractional_epochs_and_max_steps():
    # N=10, B=4, G=2, GA=1: P=2, rounds=5, 5 steps/epoch; 1.5 epochs -> ceil(7.5) = 8
    assert chord.count_steps(10, 4, 1, 1, 2, epochs=1.5).total_steps == 8
    assert chord.count_steps(10, 4, 1, 1, 2, epochs=1.5, max_steps=3).total_steps == 3


def test_steps_generation_batch_size_and_iterations():
    # B=2, W=1, G=4, generation_batch_size=8 -> spg = 8/2 = 4; P = 8/4 = 2; N=10 -> rounds=5;
    # num_iterations=2 -> micro = 5*4*2 = 40; GA=2 -> 20 steps
    s = chord.count_steps(10, 2, grad_accum=2, num_generations=4, generation_batch_size=8, num_iterations=2)
    assert (s.steps_per_generation, s.prompts_per_round, s.total_steps) == (4, 2, 20)


def test_steps_split_ratio():
    # 100 rows, ratio 0.05 -> ceil(5) val rows -> 95 train; B=4, G=4, GA=1 -> P=1 -> 95 steps
    assert chord.count_steps(100, 4, num_generations=4, split_dataset_ratio=0.05).total_steps == 95


@pytest.mark.parametrize("kwargs, needle", [
    (dict(train_rows=10, per_device_batch=3, num_generations=2), "divisible by num_generations"),
    (dict(train_rows=1, per_device_batch=8, num_generations=2), "no optimizer step"),
    (dict(train_rows=10, per_device_batch=2, num_generations=1), "num_generations must be >= 2"),
    (dict(train_rows=10, per_device_batch=0, num_generations=2), "per_device_train_batch_size"),
    (dict(train_rows=10, per_device_batch=2, num_generations=2, generation_batch_size=3), "divisible by the global"),
    (dict(train_rows=10, per_device_batch=2, num_generations=2, generation_batch_size=8, steps_per_generation=2),
     "must equal"),
    (dict(train_rows=10, per_device_batch=2, num_generations=2, epochs=0), "num_train_epochs"),
])
def test_steps_refused(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        chord.count_steps(**kwargs)


# -- shapes ---------------------------------------------------------------------------------------
def table(spec, total, **swift):
    return [round(m, 6) for _, m in chord.resolve(spec, swift or None).table(total)]


def test_warmup_cosine_matches_ms_swift_values():
    # verified values from the ms-swift notes: mu(s, 10, 100, 0.9, 0.05) for s = 0, 5, 10, 60, 110
    s = chord.resolve("warmup_cosine:warmup_steps=10,decay_steps=100,peak=0.9,valley=0.05")
    assert [round(s.mu(x, 500), 6) for x in (0, 5, 10, 60, 110, 499)] == [0.0, 0.45, 0.9, 0.475, 0.05, 0.05]


def test_warmup_cosine_equals_ms_swift_function():
    from swift_ext import cpu_compat

    cpu_compat.apply()
    pytest.importorskip("msgspec")
    from swift.rlhf_trainers import utils

    from swift_ext.bridge.chord import RUNTIME

    fn = RUNTIME.native_fn or utils.mu_schedule_function  # ms-swift's own, even if the bridge patched it
    s = chord.resolve("warmup_cosine:warmup_steps=3,decay_steps=7,peak=0.8,valley=0.1")
    assert [s.mu(x, 12) for x in range(12)] == pytest.approx([fn(x, 3, 7, 0.8, 0.1) for x in range(12)])


def test_linear_decay():
    # warmup 2 to 0.8: 0, 0.4; then 0.8 -> 0.2 over 3 steps: 0.8, 0.6, 0.4; then 0.2
    assert table("linear_decay:peak=0.8,valley=0.2,warmup_steps=2,decay_steps=3", 7) == \
        [0.0, 0.4, 0.8, 0.6, 0.4, 0.2, 0.2]


def test_step_shape():
    # 2 drops over 4 decay steps from 0.9 to 0.1: 0.9, 0.9, 0.5, 0.5, then 0.1
    assert table("step:peak=0.9,valley=0.1,decay_steps=4,drops=2", 6) == [0.9, 0.9, 0.5, 0.5, 0.1, 0.1]
    # one drop (default): peak for the whole decay window, then valley
    assert table("step:peak=0.6,valley=0.0,decay_steps=2", 4) == [0.6, 0.6, 0.0, 0.0]


def test_constant():
    assert table("constant:mu=0.3", 3) == [0.3, 0.3, 0.3]
    s = chord.resolve("constant:mu=0.3")
    # ms-swift reproduces a constant with peak = valley and no warmup/decay
    assert s.swift_args(3) == {"chord_mu_warmup_steps": 0, "chord_mu_decay_steps": 0,
                               "chord_mu_peak": 0.3, "chord_mu_valley": 0.3}
    assert s.native


def test_params_fall_back_to_swift_args_and_spec_wins():
    swift = {"chord_mu_peak": 0.5, "chord_mu_valley": 0.1, "chord_mu_warmup_steps": 0, "chord_mu_decay_steps": 2}
    # peak from the spec (1.0), the rest from the arguments: 1.0, (1.0+0.1)/2 = 0.55, 0.1
    assert table("linear_decay:peak=1.0", 3, **swift) == [1.0, 0.55, 0.1]


def test_unset_and_bad_params():
    with pytest.raises(ConfigError, match="unset mu argument.*peak"):
        chord.resolve("linear_decay:valley=0.1,decay_steps=3")
    with pytest.raises(ParamError, match="must be <= 1"):
        chord.resolve("linear_decay:peak=1.5,valley=0.1,decay_steps=3")
    with pytest.raises(ParamError, match="unknown parameter"):
        chord.resolve("constant:mu=0.1,speed=3")
    with pytest.raises(Exception, match="unknown schedule 'zigzag'"):
        chord.resolve("zigzag")


def test_checks():
    with pytest.raises(ConfigError, match=r"valley \(0.5\) > peak \(0.2\)"):
        chord.check(chord.resolve("linear_decay:peak=0.2,valley=0.5,decay_steps=2"), 10)
    with pytest.raises(ConfigError, match="longer than the run"):
        chord.check(chord.resolve("warmup_cosine:peak=0.9,valley=0.05,warmup_steps=5,decay_steps=200"), 100)
    warn = chord.check(chord.resolve("constant:mu=0"), 5)
    assert any("never used" in w for w in warn)


# -- datasets and plans ---------------------------------------------------------------------------
def test_check_datasets(tmp_path):
    good = _write(tmp_path / "sft.jsonl", sft_rows(4))
    bad = _write(tmp_path / "bad.jsonl", sft_rows(2) + sft_rows(1, answer=False))
    rl = _write(tmp_path / "rl.jsonl", rl_rows(3, start=2))  # q2, q3 shared with the SFT set, q4 not
    with pytest.raises(ConfigError, match=r"1 of 3 CHORD SFT rows have no assistant answer.*bad.jsonl:3"):
        chord.check_datasets([bad])
    with pytest.raises(ConfigError, match="needs an SFT dataset"):
        chord.check_datasets([])
    report = chord.check_datasets([good], [rl])
    assert (report.sft_rows, report.rl_rows, report.shared_prompts) == (4, 3, 2)
    assert "2 of 3 RL prompts also appear in the SFT set" in report.warnings[0]


def test_make_plan(tmp_path):
    sft = _write(tmp_path / "sft.jsonl", sft_rows(3))
    rl = _write(tmp_path / "rl.jsonl", rl_rows(8, start=100))
    steps = chord.count_steps(8, 2, 2, 1, 2)  # P = 2*1*2/2 = 2 prompts -> 4 rounds, micro 8, /GA 2 = 4 steps
    plan = chord.make_plan("linear_decay:peak=0.9,valley=0.1,decay_steps=3", steps, [sft], [rl], sft_batch_size=2)
    assert steps.total_steps == 4
    args = plan.swift_args()
    assert args["chord_sft_dataset"] == [sft] and args["chord_sft_per_device_train_batch_size"] == 2
    assert (args["chord_mu_peak"], args["chord_mu_valley"], args["chord_mu_decay_steps"]) == (0.9, 0.1, 3)
    assert plan.env() == {chord.SCHEDULE_ENV: "linear_decay:decay_steps=3,peak=0.9,valley=0.1,warmup_steps=0"}
    flags = plan.flags()
    assert "--external_plugins" in flags and flags[flags.index("--chord_mu_peak") + 1] == "0.9"
    # 0.9, 0.9 - 0.8/3, 0.9 - 1.6/3, 0.1
    assert [m for _, m in plan.table()] == pytest.approx([0.9, 0.9 - 0.8 / 3, 0.9 - 1.6 / 3, 0.1])
    native = chord.make_plan("warmup_cosine:peak=0.9,valley=0.1,decay_steps=3", steps, [sft])
    assert native.env() == {} and "--external_plugins" not in native.flags()


def test_make_plan_refuses_missing_sft(tmp_path):
    steps = chord.count_steps(8, 2, 1, 1, 2)
    with pytest.raises(ConfigError, match="needs an SFT dataset"):
        chord.make_plan("constant:mu=0.5", steps, [])
    with pytest.raises(ConfigError, match="no such dataset file"):
        chord.make_plan("constant:mu=0.5", steps, [str(tmp_path / "missing.jsonl")])


def test_plot(tmp_path):
    out = chord.plot([chord.resolve("linear_decay:peak=0.9,valley=0.1,decay_steps=5"),
                      chord.resolve("constant:mu=0.4")], 8, str(tmp_path / "mu.png"))
    data = open(out, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000


def test_runtime_mu_matches_plan():
    swift = {"chord_mu_peak": 0.5, "chord_mu_valley": 0.5, "chord_mu_warmup_steps": 0, "chord_mu_decay_steps": 3}
    got = [chord.runtime_mu("linear_decay:peak=0.9,valley=0.1,decay_steps=2", s, 4, swift) for s in range(4)]
    assert got == pytest.approx([0.9, 0.5, 0.1, 0.1])  # 0.9 - 0.8*s/2 for s < 2


# -- plugin shapes --------------------------------------------------------------------------------
class HalvingPlugin:
    @hookimpl
    def register_schedules(self, register):
        @chord.schedule(params={"start": Param(0.8, type=float, min=0.0, max=1.0)})
        def halving(step, total_steps, start, **_):
            """Halves mu every step."""
            return start * 0.5 ** step

        register("halving", halving)


class BrokenPlugin:
    @hookimpl
    def register_schedules(self, register):
        register("not_callable", 42)


@pytest.fixture
def fresh_plugins():
    plugins.reset()
    yield plugins.get_pm()
    plugins.reset()


def test_plugin_shape(fresh_plugins, tmp_path):
    fresh_plugins.register(HalvingPlugin(), name="halving-test")
    assert "halving" in chord.shape_names()
    assert table("halving:start=0.8", 4) == [0.8, 0.4, 0.2, 0.1]
    sched = chord.resolve("halving:start=0.8")
    assert not sched.native
    # peak/valley of a plugin shape are the max/min of its table: 0.8 and 0.8/2**3 = 0.1
    assert sched.swift_args(4)["chord_mu_peak"] == 0.8 and sched.swift_args(4)["chord_mu_valley"] == 0.1


def test_plugin_shape_validated(fresh_plugins):
    fresh_plugins.register(BrokenPlugin(), name="broken-test")
    with pytest.raises(Exception, match="schedule 'not_callable' must be a callable"):
        plugins.registry("schedule")


def test_plugin_shape_out_of_range(fresh_plugins):
    class Bad:
        @hookimpl
        def register_schedules(self, register):
            register("too_big", lambda step, total_steps, **_: 1.5)

    fresh_plugins.register(Bad(), name="bad-range")
    with pytest.raises(ConfigError, match=r"mu=1.5 at step 0; mu must be in \[0, 1\]"):
        chord.check(chord.resolve("too_big"), 3)


# -- CLI ------------------------------------------------------------------------------------------
def run_cli(args):
    from swift_ext.cli import cli

    return CliRunner().invoke(cli, args, catch_exceptions=False)


def test_cli_plan_args(tmp_path):
    sft = _write(tmp_path / "sft.jsonl", sft_rows(3))
    rl = _write(tmp_path / "rl.jsonl", rl_rows(12, start=50))
    png = tmp_path / "mu.png"
    res = run_cli(["chord", "plan", "--dataset", rl, "--sft-dataset", sft, "--per-device-batch", "2",
                   "--num-generations", "2", "--shape", "linear_decay", "--peak", "0.9", "--valley", "0.1",
                   "--args", "--plot", str(png)])
    assert res.exit_code == 0, res.output
    # 12 rows, 1 prompt per step -> 12 steps; decay defaults to the rest of the run (12)
    assert "export SWIFT_EXT_CHORD_SCHEDULE=linear_decay:decay_steps=12,peak=0.9,valley=0.1,warmup_steps=0" \
        in res.stdout
    assert "--chord_mu_decay_steps 12" in res.stdout and f"--chord_sft_dataset {sft}" in res.stdout
    assert png.stat().st_size > 2000


def test_cli_plan_json(tmp_path):
    sft = _write(tmp_path / "sft.jsonl", sft_rows(3))
    res = run_cli(["chord", "plan", "--rows", "6", "--sft-dataset", sft, "--per-device-batch", "4",
                   "--num-generations", "4", "--shape", "constant:mu=0.25", "--json"])
    assert res.exit_code == 0, res.output
    plan = json.loads(res.stdout)
    assert plan["steps"]["total_steps"] == 6 and plan["mu"] == [0.25] * 6 and plan["env"] == {}


@pytest.mark.parametrize("extra, needle", [
    (["--peak", "0.1", "--valley", "0.5"], "valley (0.5) > peak (0.1)"),
    (["--peak", "0.9", "--valley", "0.1", "--decay-steps", "50"], "longer than the run"),
    (["--valley", "0.1"], "unset mu argument"),
    (["--peak", "0.9", "--valley", "0.1", "--no-sft"], "needs an SFT dataset"),
])
def test_cli_plan_refuses(tmp_path, extra, needle):
    sft = _write(tmp_path / "sft.jsonl", sft_rows(3))
    args = ["chord", "plan", "--rows", "8", "--per-device-batch", "2", "--num-generations", "2"]
    if "--no-sft" in extra:
        extra = [e for e in extra if e != "--no-sft"]
    else:
        args += ["--sft-dataset", sft]
    res = run_cli(args + extra)
    assert res.exit_code == 1 and needle in res.output, res.output


def test_cli_shapes():
    res = run_cli(["chord", "shapes", "--json"])
    names = {r["name"]: r for r in json.loads(res.stdout)}
    assert set(names) >= {"warmup_cosine", "constant", "linear_decay", "step"}
    assert names["warmup_cosine"]["native"] and not names["linear_decay"]["native"]
