"""The bridge against the real ms-swift registry (swift.rewards.orms), in this process."""

import textwrap

import pytest

from swift_ext import bridge
from swift_ext.bridge import rewards as bridge_rewards
from swift_ext.errors import DuplicateNameError

SEED_RECIPE = textwrap.dedent('''
    # the seed recipe's hand-written reward plugin, as users pass it to --external_plugins
    import random
    from swift.rewards import ORM, orms

    class MyLength(ORM):
        def __call__(self, completions, **kwargs):
            return [float(len(c)) for c in completions]

    orms['my_length_test'] = MyLength
''')


@pytest.fixture(scope="module")
def orms():
    return bridge_rewards.get_orms()


@pytest.fixture
def clean_orms(orms):
    before = dict(orms)
    yield orms
    for k in set(orms) - set(before):
        del orms[k]
    orms.update(before)


def test_install_registers_every_reward_and_requested_specs(clean_orms, monkeypatch):
    monkeypatch.setenv("SWIFT_EXT_REWARDS", "random:low=2,high=2")
    done = bridge.install(["--reward_funcs", "think_format", "exact_match:extract=last_number",
                                 "accuracy", "--beta", "0.1"])
    for name in ("think_format", "exact_match", "math_accuracy", "random",
                 "exact_match:extract=last_number", "random:low=2,high=2"):
        assert name in clean_orms and name in done["rewards"]
    assert "accuracy" not in done["rewards"]                         # ms-swift's own, untouched
    cls = clean_orms["exact_match:extract=last_number"]
    assert cls.__name__ == "exact_match:extract=last_number"        # ms-swift logs rewards/<class name>/mean
    from swift.rewards import ORM

    reward = cls(args=None)                                          # how GRPOTrainer._prepare_rewards builds it
    assert isinstance(reward, ORM)
    assert reward(["it is 12", "it is 13"], solution=["12", "12"], trainer_state=None) == [1.0, 0.0]
    assert clean_orms["random:low=2,high=2"](args=None)(["a"]) == [2.0]


def test_install_is_idempotent(clean_orms):
    bridge.install([])
    assert bridge.install([])["rewards"] == []


def test_specs_come_from_the_arguments_object_that_imports_the_plugin(clean_orms):
    class FakeArgsCaller:  # stands in for ms-swift's BaseArguments.__post_init__ frame (self.reward_funcs)
        reward_funcs = ["think_format:think=optional"]
        output_dir = "out"

        def _import_external_plugins(self):
            return bridge.install([])

    FakeArgsCaller()._import_external_plugins()
    assert clean_orms["think_format:think=optional"](args=None)(["<answer>1</answer>"]) == [1.0]


def test_name_taken_in_orms_by_someone_else_is_an_error(clean_orms):
    class Other:
        def __init__(self, args=None):
            pass

    clean_orms["think_format"] = Other
    with pytest.raises(DuplicateNameError, match="think_format.*ms-swift's orms.*swift-ext built-in"):
        bridge.install([])


def test_bad_parametrised_spec_fails_at_install(clean_orms):
    from swift_ext.errors import ParamError

    with pytest.raises(ParamError, match="timeout"):
        bridge.install(["--reward_funcs", "math_accuracy:timeout=-1"])


def test_alias_from_config_file(clean_orms, tmp_path, monkeypatch):
    cfg = tmp_path / "swift_ext.yaml"
    cfg.write_text("rewards:\n  lenient_em:\n    reward: exact_match\n    extract: last_number\n")
    monkeypatch.setenv("SWIFT_EXT_CONFIG", str(cfg))
    bridge.install([])
    cls = clean_orms["lenient_em"]
    assert cls.__name__ == "lenient_em"
    assert cls(args=None)(["so 7"], solution=["7"]) == [1.0]


def test_load_third_party_orm_file(clean_orms, tmp_path):
    plugin = tmp_path / "my_plugin.py"
    plugin.write_text(SEED_RECIPE)
    assert bridge_rewards.load_orm_file(str(plugin)) == ["my_length_test"]
    assert bridge_rewards.get_orm("my_length_test")()(["abc", ""]) == [3.0, 0.0]


def test_plugin_file_exists_and_only_calls_install():
    text = open(bridge.plugin_path()).read()
    code = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith((" ", '"', "#"))]
    assert code[-2:] == ["from swift_ext.bridge import install", "install()"]


def test_run_context_reads_the_same_run_from_arguments_and_argv(monkeypatch, tmp_path):
    """The arguments object and the command line it was parsed from give one context."""
    import types

    from swift_ext.bridge.context import RunContext

    monkeypatch.setenv("SWIFT_EXT_REWARDS", "random:seed=1")
    monkeypatch.delenv("SWIFT_EXT_CALLBACKS", raising=False)
    argv = ["--rlhf_type", "grpo", "--reward_funcs", "think_format", "iou:frame=norm1", "--callbacks", "chord_mu",
            "--dataset", "a.jsonl", "--chord_sft_dataset", "s.jsonl", "--chord_mu_peak", "0.5",
            "--chord_sft_per_device_train_batch_size", "2"]
    args = types.SimpleNamespace(output_dir="out", reward_funcs=["think_format", "iou:frame=norm1"],
                                 callbacks=["chord_mu"], dataset=["a.jsonl"], chord_sft_dataset=["s.jsonl"],
                                 chord_mu_peak="0.5", chord_mu_valley=None, chord_mu_warmup_steps=None,
                                 chord_mu_decay_steps=None, chord_sft_per_device_train_batch_size="2")
    from_argv, from_args = RunContext.from_argv(argv), RunContext.from_args(args)
    assert (from_argv.source, from_args.source) == ("argv", "arguments")
    assert from_argv.reward_funcs == from_args.reward_funcs == ("think_format", "iou:frame=norm1", "random:seed=1")
    for field in ("callbacks", "dataset", "chord_sft_dataset", "chord_sft_batch_size", "chord_mu"):
        assert getattr(from_argv, field) == getattr(from_args, field), field

    def post_init(self):  # ms-swift imports the plugin from BaseArguments.__post_init__
        return RunContext.discover(["--reward_funcs", "not_this_one"])

    found = post_init(args)
    assert found.source == "arguments" and found.args is args
    assert RunContext.discover(["--reward_funcs", "exact_match"]).reward_funcs == ("exact_match", "random:seed=1")


def test_an_isolated_reward_ms_swift_builds_scores_in_a_worker(register_plugin, caplog):
    """ms-swift instantiates swift_reward_class(spec): the reward plus ms-swift's ORM base, under the reward's
    own name. A worker must still be able to rebuild it (it used to be scored in-process, without its
    deadline, because that class cannot be pickled by name)."""
    import logging
    import os

    from runtime_rewards import PidReward

    from swift_ext.testing import make_plugin

    register_plugin(make_plugin("pid", register_rewards=lambda register: register(PidReward)))
    cls = bridge_rewards.swift_reward_class("test_pid:isolate=true,timeout=30")
    with caplog.at_level(logging.WARNING, logger="swift_ext.rewards"):
        pids = cls()(["a", "b", "c"])
    assert "cannot be sent to a worker process" not in caplog.text
    assert all(p != float(os.getpid()) for p in pids)
