"""The pure command/environment builder of ``swift-ext launch``: every recipe and GPU split.

Expected argv/env values are written by hand from the shipped templates and ms-swift's conventions
(``NPROC_PER_NODE`` -> torchrun, ``CUDA_VISIBLE_DEVICES``, trainer flags ``--vllm_server_host/port``).
"""

from __future__ import annotations

import json
import subprocess

import pytest
from click.testing import CliRunner

from swift_ext.cli import cli
from swift_ext.errors import ConfigError
from swift_ext.launch import Nodes, build_plan, load_template
from swift_ext.launch.plan import PROXY_VARS
from swift_ext.launch.shell import render_plan

PLUGIN = "/opt/swift_ext_plugin.py"


def plan(recipe, sets=(), **kw):
    kw.setdefault("plugin", PLUGIN)
    defaults = {"sft": ["dataset=d.jsonl"], "dpo": ["dataset=d.jsonl"], "grpo": ["dataset=d.jsonl"],
                "chord": ["dataset=d.jsonl", "chord_sft_dataset=s.jsonl"], "rollout": [],
                "export": ["adapters=ckpt"]}[recipe]
    return build_plan(recipe, load_template(recipe), sets=[*defaults, *sets], **kw)


def flag(argv, name):
    """Values following --name (up to the next flag)."""
    i = argv.index(f"--{name}")
    out = []
    for tok in argv[i + 1:]:
        if tok.startswith("--"):
            break
        out.append(tok)
    return out


# -- sft / dpo / export ------------------------------------------------------------------------------
def test_sft_on_four_gpus_uses_torchrun_through_nproc():
    p = plan("sft", gpus="0-3")
    (step,) = p.steps
    assert step.argv[:2] == ["swift", "sft"]
    assert step.env["CUDA_VISIBLE_DEVICES"] == "0,1,2,3" and step.env["NPROC_PER_NODE"] == "4"
    assert flag(step.argv, "dataset") == ["d.jsonl"] and flag(step.argv, "tuner_type") == ["lora"]
    assert flag(step.argv, "freeze_vit") == ["true"]
    # several ranks: the plugin ends each rank cleanly (bridge/teardown.py); a GPU run gets no CPU flags
    assert flag(step.argv, "external_plugins") == [PLUGIN]
    assert "--use_cpu" not in step.argv and "--ddp_backend" not in step.argv
    assert step.env["MAX_PIXELS"] == "1003520"
    (one,) = plan("sft", gpus="0,").steps
    assert "--external_plugins" not in one.argv  # one process: sft needs nothing of swift-ext


def test_sft_single_gpu_by_count_runs_without_torchrun():
    (step,) = plan("sft", gpus=1).steps  # a count: one GPU, device 0
    assert step.env["CUDA_VISIBLE_DEVICES"] == "0" and "NPROC_PER_NODE" not in step.env


def test_sft_without_gpus_leaves_devices_to_the_environment_and_nproc_forces_torchrun():
    (step,) = plan("sft").steps
    assert "CUDA_VISIBLE_DEVICES" not in step.env and "NPROC_PER_NODE" not in step.env
    (step,) = plan("sft", nproc=2).steps  # CPU: torchrun with 2 gloo processes
    assert step.env["NPROC_PER_NODE"] == "2" and "CUDA_VISIBLE_DEVICES" not in step.env


def test_dpo_gets_the_plugin_once_next_to_user_plugins():
    (step,) = plan("dpo", extra=["--external_plugins", "mine.py"], gpus="0,1").steps
    assert step.argv[:4] == ["swift", "rlhf", "--rlhf_type", "dpo"]
    assert flag(step.argv, "external_plugins") == ["mine.py", PLUGIN]
    assert step.argv.count("--external_plugins") == 1
    (step,) = plan("dpo", extra=["--external_plugins", PLUGIN]).steps
    assert flag(step.argv, "external_plugins") == [PLUGIN]


def test_export_merges_the_given_adapter():
    (step,) = plan("export").steps
    assert step.argv == ["swift", "export", "--adapters", "ckpt", "--merge_lora", "true"]


def test_missing_required_values_name_the_key():
    with pytest.raises(ConfigError, match=r"dataset must be given \(--set dataset=\.\.\."):
        build_plan("sft", load_template("sft"))
    with pytest.raises(ConfigError, match="chord_sft_dataset"):
        build_plan("chord", load_template("chord"), sets=["dataset=d.jsonl"], plugin=PLUGIN)
    with pytest.raises(ConfigError, match="adapters"):
        build_plan("export", load_template("export"))


def test_extra_flags_win_over_the_template_and_old_names_are_translated():
    p = plan("sft", extra=["--lora_rank", "16", "--train_type", "full", "--metric", "acc"])
    argv = p.steps[0].argv
    assert flag(argv, "lora_rank") == ["16"] and argv.count("--lora_rank") == 1
    assert flag(argv, "tuner_type") == ["full"] and argv.count("--tuner_type") == 1
    assert flag(argv, "eval_metric") == ["acc"] and "--metric" not in argv and "--train_type" not in argv
    assert any("--train_type -> --tuner_type" in w for w in p.warnings)


def test_set_overrides_flags_env_and_rollout_and_deletes_with_empty_value():
    p = plan("sft", sets=["lora_rank=32", "env.MAX_PIXELS=12544", "gradient_checkpointing=", "args.seed=7"])
    (step,) = p.steps
    assert flag(step.argv, "lora_rank") == ["32"] and flag(step.argv, "seed") == ["7"]
    assert "--gradient_checkpointing" not in step.argv
    assert step.env["MAX_PIXELS"] == "12544"
    with pytest.raises(ConfigError, match="unknown section 'bogus'"):
        plan("sft", sets=["bogus.x=1"])
    with pytest.raises(ConfigError, match="expected key=value"):
        plan("sft", sets=["lora_rank"])
    with pytest.raises(ConfigError, match="unknown rollout key 'prot'"):
        plan("grpo", sets=["rollout.prot=1"])


# -- grpo / chord: rollout server splits -------------------------------------------------------------
def test_grpo_server_split_six_plus_two():
    p = plan("grpo", gpus="0-7", rollout_gpus="6,7")
    server, train = p.steps
    assert (server.name, server.kind, train.name, train.kind) == ("rollout", "serve", "train", "run")
    assert server.argv[:2] == ["swift", "rollout"]
    assert server.env["CUDA_VISIBLE_DEVICES"] == "6,7" and "NPROC_PER_NODE" not in server.env
    assert flag(server.argv, "vllm_tensor_parallel_size") == ["1"]
    assert flag(server.argv, "vllm_data_parallel_size") == ["2"]
    assert flag(server.argv, "host") == ["127.0.0.1"] and flag(server.argv, "port") == ["8000"]
    assert flag(server.argv, "model") == flag(train.argv, "model")
    assert server.health_url == "http://127.0.0.1:8000/health"
    assert server.free_ports == [8000, 51216]
    assert "--api_key" not in server.argv
    assert train.env["CUDA_VISIBLE_DEVICES"] == "0,1,2,3,4,5" and train.env["NPROC_PER_NODE"] == "6"
    assert flag(train.argv, "use_vllm") == ["true"] and flag(train.argv, "vllm_mode") == ["server"]
    assert flag(train.argv, "vllm_server_host") == ["127.0.0.1"]
    assert flag(train.argv, "vllm_server_port") == ["8000"]
    assert "--vllm_server_group_port" not in train.argv  # 51216 is ms-swift's default
    assert PLUGIN in flag(train.argv, "external_plugins") and "--external_plugins" not in server.argv
    for step in (server, train):
        assert set(step.unset) == set(PROXY_VARS)
        assert {"127.0.0.1", "localhost", "::1"} <= set(step.env["NO_PROXY"].split(","))


def test_grpo_default_share_is_a_quarter_and_counts_take_the_last_gpus():
    server, train = plan("grpo", gpus="0-7").steps  # 8 // 4 = 2 rollout GPUs: the last two
    assert server.env["CUDA_VISIBLE_DEVICES"] == "6,7" and train.env["NPROC_PER_NODE"] == "6"
    server, train = plan("grpo", gpus="0-3").steps  # 4 // 4 = 1
    assert server.env["CUDA_VISIBLE_DEVICES"] == "3" and train.env["CUDA_VISIBLE_DEVICES"] == "0,1,2"
    server, train = plan("grpo", gpus=8, rollout_gpus=4, sets=["rollout.args.vllm_tensor_parallel_size=2"]).steps
    assert server.env["CUDA_VISIBLE_DEVICES"] == "4,5,6,7"
    assert flag(server.argv, "vllm_tensor_parallel_size") == ["2"]  # 4 GPUs / TP 2 = DP 2
    assert flag(server.argv, "vllm_data_parallel_size") == ["2"]
    assert "NPROC_PER_NODE" in train.env and train.env["NPROC_PER_NODE"] == "4"


@pytest.mark.parametrize("kw, sets, message", [
    ({"gpus": "0,"}, [], "only GPU 0 is given; add GPUs or use --set rollout.mode=colocate"),
    ({"gpus": "0-7", "rollout_gpus": 8}, [], "must be between 1 and 7"),
    ({"gpus": "0-7", "rollout_gpus": "0,1,2,3,4,5,6,7"}, [], "none are left for the trainer"),
    ({"gpus": "0-3", "rollout_gpus": 8}, [], "must be between 1 and 3"),
    ({"gpus": "0-3", "rollout_gpus": "5,"}, [], "GPU 5 is not in --gpus 0,1,2,3"),
    ({"gpus": "0-7", "rollout_gpus": "5-7"}, ["rollout.args.vllm_tensor_parallel_size=2"],
     "3 rollout GPUs .* cannot be split into tensor-parallel groups of 2"),
    ({"gpus": "0-7", "rollout_gpus": "4-7"}, ["rollout.args.vllm_tensor_parallel_size=2",
                                               "rollout.args.vllm_data_parallel_size=1"], "TP 2 x DP 1 = 2 GPUs"),
    ({"gpus": "0,1,1"}, [], "GPU 1 is listed twice"),
    ({"gpus": "0-7", "nproc": 4, "rollout_gpus": "6,7"}, [], "--nproc 4 does not match the 6 trainer GPUs"),
    ({"gpus": "0-3", "rollout_gpus": "3,"}, ["rollout.mode=colocate"], "needs rollout mode 'server'"),
    ({"gpus": "0-2"}, ["rollout.mode=colocate", "vllm_tensor_parallel_size=2"], "must divide the 3 trainer"),
    ({"gpus": "7-0"}, [], "runs backwards"),
])
def test_impossible_splits_are_refused_clearly(kw, sets, message):
    with pytest.raises(ConfigError, match=message):
        plan("grpo", sets=sets, **kw)


def test_grpo_colocate_keeps_vllm_in_the_trainer():
    (train,) = plan("grpo", gpus="0-3", sets=["rollout.mode=colocate"]).steps
    assert flag(train.argv, "vllm_mode") == ["colocate"] and flag(train.argv, "use_vllm") == ["true"]
    assert flag(train.argv, "vllm_gpu_memory_utilization") == ["0.9"]
    assert train.env["NPROC_PER_NODE"] == "4" and "--vllm_server_host" not in train.argv


def test_grpo_without_vllm_is_one_process_with_a_warning():
    p = plan("grpo", sets=["use_vllm=false"], nproc=2)
    (train,) = p.steps
    assert flag(train.argv, "use_vllm") == ["false"] and "--vllm_mode" not in train.argv
    assert any("use_vllm is false" in w for w in p.warnings)


def test_grpo_remote_rollout_host_only_waits_and_trains_on_every_gpu():
    wait, train = plan("grpo", gpus="0-7", rollout_host="10.0.0.5").steps
    assert wait.kind == "wait" and wait.argv == [] and wait.health_url == "http://10.0.0.5:8000/health"
    assert train.env["CUDA_VISIBLE_DEVICES"] == "0,1,2,3,4,5,6,7" and train.env["NPROC_PER_NODE"] == "8"
    assert flag(train.argv, "vllm_server_host") == ["10.0.0.5"]
    assert "10.0.0.5" in train.env["NO_PROXY"].split(",")
    with pytest.raises(ConfigError, match="rollout host is remote"):
        plan("grpo", gpus="0-7", rollout_gpus="6,7", rollout_host="10.0.0.5")


def test_grpo_custom_ports_reach_both_sides():
    server, train = plan("grpo", gpus="0,1", sets=["rollout.port=8123", "rollout.group_port=52000"]).steps
    assert flag(server.argv, "port") == ["8123"] and server.free_ports == [8123, 52000]
    assert flag(train.argv, "vllm_server_port") == ["8123"] and flag(train.argv, "vllm_server_group_port") == ["52000"]


def test_multi_node_environment_per_node():
    wait, train = plan("grpo", gpus="0-7", rollout_host="node9",
                       nodes=Nodes(nnodes=2, node_rank=1, master_addr="node0", master_port=29555)).steps
    assert {k: train.env[k] for k in ("NNODES", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT", "NPROC_PER_NODE")} == \
        {"NNODES": "2", "NODE_RANK": "1", "MASTER_ADDR": "node0", "MASTER_PORT": "29555", "NPROC_PER_NODE": "8"}
    (step,) = plan("sft", gpus=1, nodes=Nodes(nnodes=2, node_rank=0, master_addr="n0")).steps
    assert step.env["NPROC_PER_NODE"] == "1"  # multi-node always goes through torchrun
    with pytest.raises(ConfigError, match="needs --master-addr"):
        plan("sft", nodes=Nodes(nnodes=2))
    with pytest.raises(ConfigError, match="must be in 0..1"):
        plan("sft", nodes=Nodes(nnodes=2, node_rank=2, master_addr="n0"))
    with pytest.raises(ConfigError, match="--rollout-host"):
        plan("grpo", gpus="0-7", nodes=Nodes(nnodes=2, master_addr="n0"))


def test_api_key_is_refused_for_the_46_trainer():
    for recipe, sets in (("grpo", ["rollout.args.api_key=s"]), ("rollout", ["api_key=s"])):
        with pytest.raises(ConfigError, match="sends no Authorization header"):
            plan(recipe, sets=sets, gpus="0-3")


def test_chord_is_grpo_plus_chord_flags():
    server, train = plan("chord", gpus="0-3").steps
    assert flag(train.argv, "rlhf_type") == ["grpo"]
    assert flag(train.argv, "chord_sft_dataset") == ["s.jsonl"] and flag(train.argv, "chord_mu_peak") == ["0.9"]
    assert server.env["CUDA_VISIBLE_DEVICES"] == "3"


def test_rollout_recipe_alone_splits_tp_dp_and_never_uses_torchrun():
    (step,) = plan("rollout", gpus="0-3", sets=["vllm_tensor_parallel_size=2"]).steps
    assert step.argv[:2] == ["swift", "rollout"] and step.kind == "run"
    assert step.env == {"MAX_PIXELS": "1003520", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}  # MAX_PIXELS as the trainer
    assert flag(step.argv, "vllm_tensor_parallel_size") == ["2"] and flag(step.argv, "vllm_data_parallel_size") == ["2"]
    assert step.free_ports == [8000, 51216]
    with pytest.raises(ConfigError, match="cannot be split into tensor-parallel groups of 3"):
        plan("rollout", gpus="0-3", sets=["vllm_tensor_parallel_size=3"])


# -- rendering ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("recipe, kw", [("sft", {"gpus": "0-3"}), ("dpo", {}), ("grpo", {"gpus": "0-7"}),
                                         ("grpo", {"rollout_host": "10.1.1.1"}), ("chord", {"gpus": "0-3"}),
                                         ("rollout", {"gpus": "0,1"}), ("export", {})])
def test_dry_run_scripts_are_valid_bash(recipe, kw, tmp_path):
    script = render_plan(plan(recipe, **kw), "logs")
    path = tmp_path / "s.sh"
    path.write_text(script)
    res = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr + script
    assert script.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in script


def test_cli_dry_run_and_json():
    runner = CliRunner()
    res = runner.invoke(cli, ["launch", "grpo", "--gpus", "0-7", "--rollout-gpus", "6,7", "--set",
                              "dataset=d.jsonl", "--dry-run", "--log-dir", "L", "--", "--sft_type", "full"])
    assert res.exit_code == 0, res.output
    assert "CUDA_VISIBLE_DEVICES=6,7 setsid swift rollout" in res.stdout
    assert "CUDA_VISIBLE_DEVICES=0,1,2,3,4,5 NPROC_PER_NODE=6" in res.stdout
    assert "--tuner_type full" in res.stdout and "--sft_type full" not in res.stdout
    res = runner.invoke(cli, ["launch", "sft", "--set", "dataset=d.jsonl", "--json", "--gpus", "0,1"])
    data = json.loads(res.stdout)
    assert data["steps"][0]["env"]["NPROC_PER_NODE"] == "2" and data["split"]["train"] == [0, 1]
    res = runner.invoke(cli, ["launch", "grpo", "--gpus", "1,", "--set", "dataset=d", "--dry-run"])
    assert res.exit_code == 1 and "Error: server mode needs one GPU for the trainer" in res.output


def test_own_recipe_file_and_swift_flags_that_share_our_option_names(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text("command: sft\nargs:\n  model: m\n  dataset: d.jsonl\n  lora_rank: 2\n")
    res = CliRunner().invoke(cli, ["launch", "sft", "--recipe-file", str(mine), "--dry-run",
                                   "--template", "qwen3", "--model_type", "qwen3"])
    assert res.exit_code == 0, res.output
    assert "--template qwen3" in res.stdout and "--lora_rank 2" in res.stdout  # --template goes to swift
    bad = tmp_path / "bad.yaml"
    bad.write_text("command: sft\nargz: {}\n")
    res = CliRunner().invoke(cli, ["launch", "sft", "--recipe-file", str(bad), "--dry-run"])
    assert res.exit_code == 1 and f"{bad}: unknown key 'argz'" in res.output
    res = CliRunner().invoke(cli, ["launch", "sft", "--recipe-file", str(tmp_path / "none.yaml"), "--dry-run"])
    assert res.exit_code == 1 and "no launch template" in res.output


class TestChordRecipeChecks:
    """The chord recipe's settings are checked when the plan is built, before any process starts."""

    def _plan(self, *sets):
        from swift_ext.launch.templates import load_template

        return build_plan("chord", load_template("chord"), sets=["dataset=rl.jsonl", "chord_sft_dataset=sft.jsonl",
                                                                 *sets], gpus="0-3", rollout_gpus="3,",
                          base_env={})

    def test_default_recipe_passes(self):
        assert self._plan().steps[-1].name == "train"

    def test_valley_above_peak_refused(self):
        with pytest.raises(ConfigError, match=r"valley \(0.95\) > peak \(0.9\)"):
            self._plan("chord_mu_valley=0.95")

    def test_unset_mu_argument_refused(self):
        with pytest.raises(ConfigError, match="unset mu argument.*chord_mu_peak"):
            self._plan("chord_mu_peak=")

    def test_custom_shape_from_recipe_env(self):
        plan = self._plan("env.SWIFT_EXT_CHORD_SCHEDULE=linear_decay:decay_steps=0,peak=0.9,valley=0.1")
        assert any("decay_steps=0" in w for w in plan.warnings)


# -- issue 10: the trainer and a rollout server started elsewhere preprocess images alike -----------------
def _media(env):
    from swift_ext.launch.plan import MEDIA_ENV

    return {k: v for k, v in env.items() if k in MEDIA_ENV}


def test_launch_rollout_and_remote_grpo_trainer_get_the_same_image_env():
    (server,) = plan("rollout").steps
    remote = plan("grpo", rollout_host="10.0.0.2")
    trainer = remote.steps[-1]
    assert _media(server.env) == _media(trainer.env) == {"MAX_PIXELS": "1003520"}
    # a recipe file without any env still gets the same default on both sides
    bare = build_plan("rollout", {"command": "rollout", "args": {"model": "m"}, "env": {}})
    assert _media(bare.steps[0].env) == {"MAX_PIXELS": "1003520"}
    # the remote trainer is told what the server needs
    assert any("10.0.0.2 must preprocess media like the trainer" in w and "MAX_PIXELS=1003520" in w
               for w in remote.warnings)
    changed = plan("grpo", rollout_host="10.0.0.2", sets=["env.MAX_PIXELS=200704"])
    assert any("MAX_PIXELS=200704" in w for w in changed.warnings)
    assert _media(plan("rollout", sets=["env.MAX_PIXELS=200704"]).steps[0].env) == {"MAX_PIXELS": "200704"}
    assert _media(plan("rollout", sets=["env.MAX_PIXELS="]).steps[0].env) == {}  # explicit removal


def test_local_rollout_server_shares_the_trainers_image_env():
    server, trainer = plan("grpo", gpus="0-7", sets=["env.MIN_PIXELS=3136"]).steps
    assert _media(server.env) == _media(trainer.env) == {"MAX_PIXELS": "1003520", "MIN_PIXELS": "3136"}


# -- CPU ranks and the two-node simulation -------------------------------------------------------------
DEVICE_ENV = ("CUDA_VISIBLE_DEVICES", "NPROC_PER_NODE")
DEVICE_FLAGS = ("use_cpu", "ddp_backend")


def _without_device(step):
    argv, skip = [], False
    for tok in step.argv:
        if skip and not tok.startswith("--"):
            continue
        skip = tok[2:] in DEVICE_FLAGS if tok.startswith("--") else False
        if not skip:
            argv.append(tok)
    return argv, {k: v for k, v in step.env.items() if k not in DEVICE_ENV}


@pytest.mark.parametrize("recipe", ["sft", "dpo", "grpo", "chord"])
@pytest.mark.parametrize("rank", [0, 1])
def test_simulated_node_renders_the_gpu_nodes_command_but_device_settings(recipe, rank):
    sets = ["use_vllm=false"] if recipe in ("grpo", "chord") else []
    nodes = Nodes(nnodes=2, node_rank=rank, master_addr="127.0.0.1", master_port=29555)
    (gpu,) = plan(recipe, sets=sets, gpus="0-7", nodes=nodes).steps
    (cpu,) = plan(recipe, sets=sets, device="cpu", nproc=1, nodes=nodes).steps
    assert _without_device(cpu) == _without_device(gpu)
    assert gpu.env["CUDA_VISIBLE_DEVICES"] == "0,1,2,3,4,5,6,7" and gpu.env["NPROC_PER_NODE"] == "8"
    assert cpu.env["CUDA_VISIBLE_DEVICES"] == "" and cpu.env["NPROC_PER_NODE"] == "1"
    assert flag(cpu.argv, "use_cpu") == ["true"] and flag(cpu.argv, "ddp_backend") == ["gloo"]
    assert "--use_cpu" not in gpu.argv
    assert {k: cpu.env[k] for k in ("NNODES", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT")} == \
        {"NNODES": "2", "NODE_RANK": str(rank), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29555"}
    assert flag(cpu.argv, "external_plugins") == [PLUGIN]  # several ranks: every rank ends cleanly


def test_device_choices_are_checked():
    with pytest.raises(ConfigError, match="--device cpu runs no process on a GPU"):
        plan("sft", device="cpu", gpus="0,1")
    with pytest.raises(ConfigError, match="--device gpu needs GPUs"):
        plan("sft", device="gpu")
    with pytest.raises(ConfigError, match="unknown device"):
        plan("sft", device="tpu")
    (one,) = plan("sft", device="cpu").steps  # one CPU process: no process group, GPUs hidden
    assert one.env["CUDA_VISIBLE_DEVICES"] == "" and "--use_cpu" not in one.argv


def test_cli_log_folder_is_per_node(tmp_path):
    res = CliRunner().invoke(cli, ["launch", "sft", "--set", "dataset=d.jsonl", "--device", "cpu", "--nnodes", "2",
                                   "--node-rank", "1", "--master-addr", "127.0.0.1", "--dry-run", "--no-check"])
    assert res.exit_code == 0, res.output
    assert "LOG_DIR=swift-ext-logs/sft-" in res.output and "-node1\n" in res.output
