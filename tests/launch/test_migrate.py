"""ms-swift 3.x -> 4.x flag migration: argv, whole scripts, the CLI, and the table checked against the
real ms-swift 4.6 argument dataclasses."""

from __future__ import annotations

import os
import textwrap

import pytest
from click.testing import CliRunner

from swift_ext.cli import cli
from swift_ext.errors import ConfigError
from swift_ext.launch.migrate import REMOVED, RENAMED, migrate_argv, migrate_script, split_flags

OLD_SCRIPT = textwrap.dedent("""\
    #!/bin/bash
    # GRPO on 8 GPUs (ms-swift 3.x)
    CUDA_VISIBLE_DEVICES=6,7 swift rollout --model Qwen/Qwen2.5-7B --tensor_parallel_size 2 \\
        --gpu_memory_utilization 0.9 &
    NPROC_PER_NODE=6 swift rlhf \\
        --rlhf_type grpo \\
        --train_type lora \\
        --metric acc \\
        --scale_rewards false \\
        --custom_register_path plugin.py
    swift infer --metric acc --val_dataset x.jsonl
    swift megatron sft --train_type full
    echo --train_type is not a swift flag here
    """)


def test_argv_renames_with_warnings():
    argv, notes = migrate_argv("rlhf", ["--train_type", "lora", "--metric=acc", "--tensor_parallel_size", "2",
                                        "--scale_rewards", "true", "--lora_rank", "8"])
    assert argv == ["--tuner_type", "lora", "--eval_metric=acc", "--vllm_tensor_parallel_size", "2",
                    "--scale_rewards", "group", "--lora_rank", "8"]
    assert len(notes) == 4  # train_type, metric, tensor_parallel_size, scale_rewards value


def test_metric_stays_for_infer_and_vllm_prefix_only_for_vllm_commands():
    assert migrate_argv("infer", ["--metric", "acc"])[0] == ["--metric", "acc"]
    assert migrate_argv("sft", ["--tensor_parallel_size", "2"])[0] == ["--tensor_parallel_size", "2"]
    assert migrate_argv("sft", ["--sft_type", "full"])[0] == ["--tuner_type", "full"]


@pytest.mark.parametrize("flag, replacement", [("context_manager", "--multi_turn_scheduler"),
                                               ("use_flash_attn", "--attn_impl flash_attn"),
                                               ("vllm_device", "swift rollout"),
                                               ("num_infer_workers", "--vllm_mode")])
def test_removed_flags_are_refused_with_the_replacement(flag, replacement):
    with pytest.raises(ConfigError, match=f"--{flag} is removed.*{replacement}"):
        migrate_argv("rlhf", [f"--{flag}", "x"])


def test_script_rewrite_keeps_everything_else():
    new, notes = migrate_script(OLD_SCRIPT, "old.sh")
    expected = textwrap.dedent("""\
        #!/bin/bash
        # GRPO on 8 GPUs (ms-swift 3.x)
        CUDA_VISIBLE_DEVICES=6,7 swift rollout --model Qwen/Qwen2.5-7B --vllm_tensor_parallel_size 2 \\
            --vllm_gpu_memory_utilization 0.9 &
        NPROC_PER_NODE=6 swift rlhf \\
            --rlhf_type grpo \\
            --tuner_type lora \\
            --eval_metric acc \\
            --scale_rewards none \\
            --external_plugins plugin.py
        swift infer --metric acc --val_dataset x.jsonl
        megatron sft --tuner_type full
        echo --train_type is not a swift flag here
        """)
    assert new == expected
    assert "old.sh:3: --tensor_parallel_size -> --vllm_tensor_parallel_size" in notes[0]
    assert sum("old.sh:12" in n for n in notes) == 2  # megatron entry point + --train_type
    assert not any("old.sh:13" in n for n in notes)


def test_script_with_removed_flag_names_file_and_line():
    with pytest.raises(ConfigError, match=r"s\.sh:2: --context_manager is removed"):
        migrate_script("swift rollout --model m \\\n  --context_manager x\n", "s.sh")


def test_cli_rewrites_atomically_with_backup_and_mode(tmp_path):
    script = tmp_path / "train.sh"
    script.write_text(OLD_SCRIPT)
    script.chmod(0o755)
    res = CliRunner().invoke(cli, ["migrate", str(script)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "train.sh.bak").read_text() == OLD_SCRIPT
    assert "--tuner_type lora" in script.read_text() and "--train_type lora" not in script.read_text()
    assert script.stat().st_mode & 0o777 == 0o755
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    res = CliRunner().invoke(cli, ["migrate", str(script), "--check"])
    assert res.exit_code == 0  # already migrated


def test_cli_output_file_and_refusal_leave_the_source_untouched(tmp_path):
    script = tmp_path / "a.sh"
    script.write_text(OLD_SCRIPT)
    out = tmp_path / "b.sh"
    res = CliRunner().invoke(cli, ["migrate", str(script), "-o", str(out)])
    assert res.exit_code == 0 and script.read_text() == OLD_SCRIPT and "--eval_metric acc" in out.read_text()
    assert not (tmp_path / "a.sh.bak").exists()
    assert CliRunner().invoke(cli, ["migrate", str(script), "--check"]).exit_code == 1
    bad = tmp_path / "bad.sh"
    bad.write_text("swift rollout --context_manager x --train_type lora\n")
    res = CliRunner().invoke(cli, ["migrate", str(bad)])
    assert res.exit_code == 1 and "bad.sh:1: --context_manager is removed" in res.output
    assert bad.read_text() == "swift rollout --context_manager x --train_type lora\n"
    assert not (tmp_path / "bad.sh.bak").exists()


def test_split_flags():
    assert split_flags(["--a", "1", "--b", "x", "y", "--c=3", "--d"]) == [("a", ["1"]), ("b", ["x", "y"]),
                                                                         ("c", ["3"]), ("d", [])]
    with pytest.raises(ConfigError, match="not a --flag"):
        split_flags(["stray", "--a", "1"])


# -- against the installed ms-swift ------------------------------------------------------------------
@pytest.fixture(scope="module")
def swift_fields():
    """Field names of the installed ms-swift's argument dataclasses, by class name (the launcher's own reader)."""
    from swift_ext.bridge.arguments import ARGUMENT_CLASSES, swift_fields as read

    fields = read()
    assert fields is not None, "ms-swift is installed in this environment"
    return {ARGUMENT_CLASSES[cmd]: set(names) for cmd, names in fields.items()}


CLASS_OF = {"sft": "SftArguments", "rlhf": "RLHFArguments", "rollout": "RolloutArguments",
            "export": "ExportArguments", "infer": "InferArguments"}


def test_rename_table_matches_ms_swift_46(swift_fields):
    for old, rename in RENAMED.items():
        for cmd, cls in CLASS_OF.items():
            if not rename.applies(cmd):
                continue
            if rename.new in swift_fields[cls]:
                assert old not in swift_fields[cls] or old == "custom_register_path", (old, cls)
        # the new name exists in 4.6 wherever the rename applies to a training or rollout command
        targets = [CLASS_OF[c] for c in ("sft", "rlhf", "rollout") if rename.applies(c)]
        assert any(rename.new in swift_fields[c] for c in targets), (old, rename.new)
    for old in ("train_type", "sft_type", "tensor_parallel_size", "gpu_memory_utilization", "use_flash_attn",
                "num_infer_workers", "vllm_device", "lora_target_modules", "model_id_or_path"):
        assert all(old not in f for f in swift_fields.values()), old  # really gone in 4.6
    assert "metric" not in swift_fields["SftArguments"] and "metric" in swift_fields["InferArguments"]
    assert "context_manager" in REMOVED and "context_manager" in swift_fields["RolloutArguments"]  # raises there


def test_every_template_flag_is_a_46_argument(swift_fields):
    from swift_ext.launch import load_template

    cls = {"sft": "SftArguments", "dpo": "RLHFArguments", "grpo": "RLHFArguments", "chord": "RLHFArguments",
           "rollout": "RolloutArguments", "export": "ExportArguments"}
    for recipe, c in cls.items():
        tpl = load_template(recipe)
        unknown = sorted(set(tpl["args"]) - swift_fields[c])
        assert not unknown, (recipe, unknown)
        rollout_args = set((tpl.get("rollout") or {}).get("args", {}))
        assert not rollout_args - swift_fields["RolloutArguments"], recipe


# -- issue 10 ----------------------------------------------------------------------------------------
def test_2x_dtype_becomes_torch_dtype_and_check_fails_on_it(tmp_path):
    assert migrate_argv("sft", ["--dtype", "bf16"])[0] == ["--torch_dtype", "bf16"]
    script = tmp_path / "old.sh"
    script.write_text("swift sft --model m --dtype bf16 --dataset d.jsonl\n")
    res = CliRunner().invoke(cli, ["migrate", str(script), "--check"])
    assert res.exit_code == 1 and "--dtype -> --torch_dtype" in res.output
    assert CliRunner().invoke(cli, ["migrate", str(script)]).exit_code == 0
    assert script.read_text() == "swift sft --model m --torch_dtype bf16 --dataset d.jsonl\n"


def test_every_removed_flag_is_reported_in_one_run():
    text = "swift rlhf --use_flash_attn true \\\n  --vllm_device auto\nswift rollout --context_manager x\n"
    with pytest.raises(ConfigError) as exc:
        migrate_script(text, "s.sh")
    msg = str(exc.value)
    assert msg.startswith("3 flags cannot be migrated:")
    assert "s.sh:1: --use_flash_attn is removed" in msg and "s.sh:2: --vllm_device is removed" in msg
    assert "s.sh:3: --context_manager is removed" in msg


def test_check_refuses_flags_the_installed_ms_swift_does_not_know(tmp_path):
    script = tmp_path / "typo.sh"
    script.write_text("swift sft --model m \\\n  --lora_rnk 8 --tuner_type lora\nswift rollout --served_model m\n")
    res = CliRunner().invoke(cli, ["migrate", str(script), "--check"])
    assert res.exit_code == 1
    assert "typo.sh:2: --lora_rnk is not a flag of `swift sft`; did you mean --lora_rank?" in res.output


PLUGIN_3X = textwrap.dedent('''\
    # a 3.x reward plugin (ms-swift 3.x examples/train/grpo/plugin style)
    import random
    from typing import List

    from swift.plugin import ORM, orms, loss_mapping
    from swift.llm import InferRequest, RequestConfig, register_template


    class RandomReward(ORM):
        def __init__(self):
            self.rng = random.Random(0)

        def __call__(self, completions, **kwargs) -> List[float]:
            return [self.rng.random() for _ in completions]


    class LengthReward(ORM):
        def __init__(self, tokenizer, scale=1.0):
            self.tokenizer, self.scale = tokenizer, scale

        def __call__(self, completions, **kwargs):
            return [self.scale * len(self.tokenizer.encode(c)) for c in completions]


    orms["random_reward"] = RandomReward
    orms["length_reward"] = LengthReward
    loss_mapping["mine"] = None
    ''')


def test_plugin_file_imports_registries_and_orm_signatures():
    from swift_ext.launch.migrate import migrate_plugin

    new, notes, problems = migrate_plugin(PLUGIN_3X, "RandomReward.py")
    expected = PLUGIN_3X.replace(
        "from swift.plugin import ORM, orms, loss_mapping",
        "from swift.rewards import ORM, orms\nfrom swift.loss import loss_map").replace(
        "from swift.llm import InferRequest, RequestConfig, register_template",
        "from swift.infer_engine import InferRequest, RequestConfig\nfrom swift.template import register_template").replace(
        "def __init__(self):", "def __init__(self, args=None, **kwargs):").replace(
        "def __init__(self, tokenizer, scale=1.0):", "def __init__(self, tokenizer, scale=1.0, args=None, **kwargs):").replace(
        'loss_mapping["mine"]', 'loss_map["mine"]')
    assert new == expected
    assert "RandomReward.py:5: from swift.plugin import ORM, orms, loss_mapping -> from swift.rewards import ORM, " \
           "orms\nfrom swift.loss import loss_map" in notes
    assert "RandomReward.py:27: loss_mapping -> loss_map (renamed in ms-swift 4.0)" in notes
    (problem,) = problems
    assert problem.startswith("RandomReward.py:18: LengthReward.__init__ takes a tokenizer, which ms-swift 4.x no "
                              "longer passes")
    assert migrate_plugin(new, "RandomReward.py")[:2] == (new, [])  # idempotent


def test_plugin_file_reports_what_it_cannot_rewrite():
    from swift_ext.launch.migrate import migrate_plugin

    text = "import swift.plugin\nfrom swift.plugin import extra_callbacks, context_managers, orms\n" \
           "from swift.llm import no_such_name\n"
    new, notes, problems = migrate_plugin(text, "p.py")
    assert "from swift.rewards import orms\n" in new
    assert [p.split(":")[1] for p in problems] == ["1", "2", "2", "3"]
    assert "callbacks_map" in problems[1] and "MultiTurnScheduler" in problems[2]
    assert "no 4.x package exports no_such_name" in problems[3]


def test_plugin_cli_writes_and_exits_1_when_problems_are_left(tmp_path):
    plugin = tmp_path / "RandomReward.py"
    plugin.write_text(PLUGIN_3X)
    assert CliRunner().invoke(cli, ["migrate", str(plugin), "--check"]).exit_code == 1
    res = CliRunner().invoke(cli, ["migrate", str(plugin)])
    assert res.exit_code == 1 and "cannot migrate:" in res.output and "takes a tokenizer" in res.output
    assert "from swift.rewards import ORM, orms" in plugin.read_text()
    assert (tmp_path / "RandomReward.py.bak").read_text() == PLUGIN_3X


def test_plugin_name_table_matches_the_installed_ms_swift():
    from swift_ext.launch.migrate import MODULES, PLUGIN_NAMES, installed_exports

    exports = installed_exports(sorted({m for m, _ in PLUGIN_NAMES.values()}))
    for old, (module, name) in PLUGIN_NAMES.items():
        assert exports.get(name) == module, (old, module, name)
    import importlib.util

    for new in set(MODULES.values()):
        assert importlib.util.find_spec(new.split(".")[0]) and os.path.isdir(
            os.path.join(os.path.dirname(importlib.util.find_spec("swift").origin), *new.split(".")[1:])), new


@pytest.mark.e2e
def test_migrated_3x_plugin_file_trains_in_real_grpo(tiny_models, run_swift, tmp_path):
    """issue 10 proof: a 3.x reward plugin, migrated by `swift-ext migrate`, is loaded by a REAL ms-swift 4.6
    `swift rlhf --rlhf_type grpo` run on the tiny text model and its rewards are logged."""
    from swift_ext.testing import tiny

    plugin = tmp_path / "RandomReward.py"
    plugin.write_text(textwrap.dedent('''\
        import random
        from typing import List

        from swift.plugin import ORM, orms


        class RandomReward(ORM):
            def __init__(self):
                self.rng = random.Random(0)

            def __call__(self, completions, **kwargs) -> List[float]:
                return [self.rng.random() for _ in completions]


        orms["random_reward"] = RandomReward
        '''))
    res = CliRunner().invoke(cli, ["migrate", str(plugin)])
    assert res.exit_code == 0, res.output
    text = plugin.read_text()
    assert "from swift.rewards import ORM, orms" in text and "def __init__(self, args=None, **kwargs):" in text
    model = tiny_models["text"]
    dataset = tiny.write_jsonl(tmp_path / "grpo.jsonl", tiny.grpo_rows(8))
    run = run_swift("rlhf", ["--rlhf_type", "grpo", *tiny.common_flags(model), "--dataset", dataset,
                             "--external_plugins", str(plugin), "--reward_funcs", "random_reward",
                             "--use_vllm", "false", "--num_generations", "2", "--max_completion_length", "8",
                             "--tuner_type", "lora", "--lora_rank", "4", "--lora_alpha", "8", "--max_steps", "1",
                             "--per_device_train_batch_size", "4", "--max_length", "128", "--logging_steps", "1",
                             "--save_strategy", "no", "--beta", "0.0", "--output_dir", str(tmp_path / "out")],
                    cwd=tmp_path)
    assert run.returncode == 0, run.tail()
    rows = [r for r in tiny.logging_rows(tmp_path / "out") if "reward" in r]
    # ms-swift logs a class-based reward under its class name
    assert rows and all(0.0 <= r["rewards/RandomReward/mean"] <= 1.0 for r in rows), rows
