"""issue 10: ``swift-ext launch`` refuses, before anything starts, what ``swift`` would refuse only after the
rollout server has loaded: unknown flags (checked against the INSTALLED ms-swift's argument dataclasses),
missing local dataset files, GRPO batch arithmetic. The launcher runs as a real subprocess; ``--swift``
points at the rollout stand-in, whose record folder proves that nothing was started."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from swift_ext.errors import ConfigError
from swift_ext.launch import build_plan, load_template
from swift_ext.bridge.arguments import swift_fields, unknown_flag
from swift_ext.launch.check import check_plan, grpo_arithmetic, missing_datasets

STANDIN = Path(__file__).with_name("rollout_standin.py")


@pytest.fixture(scope="module")
def fields():
    f = swift_fields()
    assert f is not None, "ms-swift is installed in this environment"
    return f


def test_fields_are_ms_swift_46s(fields):
    assert {"lora_rank", "num_generations", "vllm_server_port", "external_plugins"} <= fields["rlhf"]
    assert {"port", "host", "vllm_max_model_len"} <= fields["rollout"]
    assert "port" not in fields["rlhf"] and "lora_rnk" not in fields["rlhf"]
    assert "tuner_type" in fields["sft"] and "train_type" not in fields["sft"]


def launch(tmp_path, *args, record=True):
    rec = tmp_path / "record"
    rec.mkdir(exist_ok=True)
    env = dict(os.environ, STANDIN_RECORD=str(rec), STANDIN_TRAIN="exit=0")
    cmd = [sys.executable, "-m", "swift_ext", "launch", *args, "--swift", f"{sys.executable} {STANDIN}",
           "--log-dir", str(tmp_path / "logs"), "--grace", "2"]
    res = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    return res, sorted(p.name for p in rec.iterdir())


@pytest.fixture
def data(tmp_path):
    row = '{"messages": [{"role": "user", "content": "1+1?"}], "solution": "2"}\n'
    (tmp_path / "train.jsonl").write_text(row * 8)  # one generation round of 6 processes x 4 / 8 = 3 prompts
    (tmp_path / "one.jsonl").write_text(row)
    return tmp_path


def test_typo_in_set_is_refused_with_the_nearest_name(data):
    res, started = launch(data, "sft", "--set", "dataset=train.jsonl", "--set", "lora_rnk=16")
    assert res.returncode == 1, res.stderr
    assert "train: --lora_rnk is not a flag of `swift sft`; did you mean --lora_rank?" in res.stderr
    assert started == []  # nothing ran


def test_missing_dataset_file_is_refused_and_hub_ids_are_left_alone(data, tmp_path):
    res, started = launch(data, "sft", "--set", "dataset=[train.jsonl, data/missing.jsonl]")
    assert res.returncode == 1 and started == []
    assert f"train: --dataset data/missing.jsonl: no such file (relative to {tmp_path})" in res.stderr
    assert "train.jsonl:" not in res.stderr.replace("missing.jsonl:", "")  # the existing file passes
    res, started = launch(data, "sft", "--set", "dataset=[AI-ModelScope/alpaca-gpt4-data-en#500, train.jsonl#1]")
    assert res.returncode == 0, res.stderr  # a hub id and a sampled local file
    assert started == ["train.json"]


def test_generation_batch_not_divisible_by_num_generations(data):
    res, started = launch(data, "grpo", "--set", "dataset=train.jsonl", "--set", "num_generations=3")
    assert res.returncode == 1 and started == []
    # template: per_device_train_batch_size 4 x 1 process x steps_per_generation 2 = 8 completions
    assert "must be divisible by num_generations (3); valid num_generations: [2, 4, 8]" in res.stderr


def test_rollout_only_flag_after_double_dash_is_named(data):
    res, started = launch(data, "grpo", "--set", "dataset=train.jsonl", "--", "--vllm_max_model_len", "4096",
                          "--served_model_name", "m")
    assert res.returncode == 1 and started == []
    assert ("--served_model_name is a `swift rollout` flag, not one of `swift rlhf`: give it to the rollout "
            "server with --set rollout.args.served_model_name=VALUE") in res.stderr
    assert "--vllm_max_model_len" not in res.stderr  # a real rlhf flag too (colocate mode)


def test_rollout_server_flags_are_checked_too(data):
    res, started = launch(data, "grpo", "--set", "dataset=train.jsonl", "--set", "rollout.args.vllm_max_modle_len=1")
    assert res.returncode == 1 and started == []
    assert "rollout: --vllm_max_modle_len is not a flag of `swift rollout`; did you mean --vllm_max_model_len?" \
        in res.stderr


def test_dry_run_refuses_bad_flags_but_only_warns_on_missing_files(data):
    res, _ = launch(data, "sft", "--set", "dataset=elsewhere.jsonl", "--dry-run")
    assert res.returncode == 0, res.stderr
    assert "# warning: train: --dataset elsewhere.jsonl: no such file" in res.stdout
    res, _ = launch(data, "sft", "--set", "dataset=elsewhere.jsonl", "--set", "lora_rnk=1", "--dry-run")
    assert res.returncode == 1
    res, _ = launch(data, "sft", "--set", "dataset=elsewhere.jsonl", "--set", "lora_rnk=1", "--dry-run", "--no-check")
    assert res.returncode == 0 and "--lora_rnk 1" in res.stdout


def test_a_good_plan_passes(fields, data):
    data_sets = ["dataset=train.jsonl"]
    for recipe, sets in (("sft", data_sets), ("dpo", data_sets), ("grpo", data_sets),
                         ("chord", [*data_sets, "chord_sft_dataset=train.jsonl"]), ("rollout", [])):
        plan = build_plan(recipe, load_template(recipe), sets=sets, gpus="0-7", plugin="/p.py")
        assert check_plan(plan, fields=fields, cwd=str(data)) == ([], []), recipe


def test_grpo_arithmetic_uses_the_trainer_process_count(fields, data):
    # 8 GPUs, 2 for rollouts: 6 trainer processes x 4 x steps_per_generation 2 = 48 completions; 48 % 8 == 0
    plan = build_plan("grpo", load_template("grpo"), sets=["dataset=train.jsonl"], gpus="0-7", plugin="/p.py")
    assert check_plan(plan, fields=fields, cwd=str(data))[0] == []
    plan = build_plan("grpo", load_template("grpo"), sets=["dataset=train.jsonl", "num_generations=32"],
                      gpus="0-7", plugin="/p.py")
    (err,) = check_plan(plan, fields=fields, cwd=str(data))[0]
    assert "generation batch (48 = per_device_train_batch_size 4 x GPUs 6 x steps_per_generation 2)" in err
    with pytest.raises(ConfigError, match="expected an integer"):
        grpo_arithmetic({"rlhf_type": ["grpo"], "num_generations": ["many"]}, 1)


def test_unknown_flag_without_a_near_name(fields):
    assert unknown_flag("zzz_qqq", "sft", fields) == "--zzz_qqq is not a flag of `swift sft`"
    assert unknown_flag("lora-rank", "sft", fields) is None  # HfArgumentParser's dash spelling
    assert unknown_flag("no_freeze_vit", "sft", fields) is None  # and its negation of a True-by-default bool
    assert missing_datasets([("dataset", ["org/name"]), ("model", ["x.jsonl"])], "/") == []


# -- world size x batch: what ms-swift's GRPO would refuse or trip on, refused before anything starts ------
def _grpo(*sets, nproc=2, nodes=None, **kw):
    from swift_ext.launch import Nodes

    return build_plan("grpo", load_template("grpo"), sets=["use_vllm=false", *sets], nproc=nproc, plugin="/p.py",
                      nodes=nodes or Nodes(), **kw)


def test_cpu_ranks_eval_batch_must_hold_whole_groups(fields, data):
    # 2 CPU ranks x per_device_eval_batch_size 1 = 2 completions, not divisible by 8 generations
    # (swift/rlhf_trainers/args_mixin.py:232 raises this only after the model is loaded)
    plan = _grpo("dataset=train.jsonl", "val_dataset=train.jsonl")
    (err,) = check_plan(plan, fields=fields, cwd=str(data))[0]
    assert "global eval batch (2 processes x per_device_eval_batch_size 1) must be divisible by " \
           "num_generations_eval (8); valid values: [1, 2]" in err
    fixed = _grpo("dataset=train.jsonl", "val_dataset=train.jsonl", "per_device_eval_batch_size=4")
    assert check_plan(fixed, fields=fields, cwd=str(data))[0] == []
    # no validation data: ms-swift does not evaluate, nothing to refuse
    assert check_plan(_grpo("dataset=train.jsonl"), fields=fields, cwd=str(data))[0] == []


def test_world_size_counts_every_node(fields, data):
    from swift_ext.launch import Nodes

    # 2 nodes x 1 rank x 4 x steps_per_generation 2 = 16 completions = 2 prompts: 8 rows are enough;
    # the single-row file is not (no optimizer step would ever run)
    two = Nodes(nnodes=2, node_rank=1, master_addr="127.0.0.1")
    assert check_plan(_grpo("dataset=train.jsonl", nproc=1, nodes=two), fields=fields, cwd=str(data))[0] == []
    (err,) = check_plan(_grpo("dataset=one.jsonl", nproc=1, nodes=two), fields=fields, cwd=str(data))[0]
    assert "the dataset has 1 training rows but one generation round needs 2 prompts" in err
    (err,) = check_plan(_grpo("dataset=train.jsonl", "num_generations=3", nproc=1, nodes=two), fields=fields,
                        cwd=str(data))[0]
    assert "generation batch (16 = per_device_train_batch_size 4 x GPUs 2 x steps_per_generation 2)" in err


def test_val_set_smaller_than_one_eval_batch_is_refused(fields, data):
    plan = _grpo("dataset=train.jsonl", "val_dataset=one.jsonl", "per_device_eval_batch_size=8",
                 "num_generations_eval=2")
    (err,) = check_plan(plan, fields=fields, cwd=str(data))[0]
    assert "the validation set has 1 rows but one global eval batch needs 8 prompts" in err


def test_cpu_ranks_get_use_cpu_and_gloo_and_a_contradiction_is_refused():
    (train,) = _grpo("dataset=d.jsonl").steps
    i = train.argv.index("--use_cpu")
    assert train.argv[i:i + 4] == ["--use_cpu", "true", "--ddp_backend", "gloo"]
    with pytest.raises(ConfigError, match=r"--use_cpu false: CPU ranks need --use_cpu true.*grpo_trainer.py:241"):
        _grpo("dataset=d.jsonl", "use_cpu=false")
    with pytest.raises(ConfigError, match="--ddp_backend nccl: CPU ranks talk through gloo"):
        _grpo("dataset=d.jsonl", "ddp_backend=nccl")
    (one,) = _grpo("dataset=d.jsonl", nproc=1).steps
    assert "--use_cpu" not in one.argv  # one process needs no process group
