"""The plugin manager: built-ins through the same hooks, duplicate names, broken plugins."""


import pytest

from swift_ext import plugins
from swift_ext.errors import DuplicateNameError, PluginError, UnknownNameError
from swift_ext.params import Param
from swift_ext.rewards import Reward
from swift_ext.testing import make_plugin


class Echo(Reward):
    """1.0 if the completion is non-empty."""

    name = "echo_test"

    def score(self, completion, **row):
        return float(bool(completion))


@pytest.fixture
def pm(register_plugin):
    return register_plugin


def test_builtins_register_through_hooks():
    reg = plugins.registry("reward")
    for name in ("think_format", "exact_match", "math_accuracy", "random"):
        assert name in reg
        assert reg.source(name) == "swift-ext built-in (swift_ext.default_plugins.rewards)"


def test_third_party_reward_is_listed_with_its_source(pm):
    pm(make_plugin("my_plugin", register_rewards=lambda register: register("echo_test", Echo)))
    reg = plugins.registry("reward")
    assert reg.get("echo_test") is Echo
    assert reg.source("echo_test") == "plugin 'my_plugin'"


def test_duplicate_of_builtin_names_both_sources(pm):
    class Clash(Echo):
        name = "exact_match"

    pm(make_plugin("clashing", register_rewards=lambda register: register("exact_match", Clash)))
    with pytest.raises(DuplicateNameError) as err:
        plugins.registry("reward")
    msg = str(err.value)
    assert "swift-ext built-in (swift_ext.default_plugins.rewards)" in msg and "plugin 'clashing'" in msg


@pytest.mark.parametrize("taken", ["accuracy", "format", "cosine", "repetition", "soft_overlong"])
def test_ms_swift_builtin_names_are_reserved(pm, taken):
    class Clash(Echo):
        name = taken

    pm(make_plugin("shadow", register_rewards=lambda register: register(taken, Clash)))
    with pytest.raises(DuplicateNameError, match="ms-swift's built-in rewards.*plugin 'shadow'"):
        plugins.registry("reward")


def test_non_reward_class_is_refused(pm):
    pm(make_plugin("bad", register_rewards=lambda register: register("fn_reward", lambda c, **k: [1.0])))
    with pytest.raises(PluginError, match="must be a subclass of swift_ext.rewards.Reward"):
        plugins.registry("reward")


def test_bad_default_parameter_is_refused(pm):
    class BadDefault(Echo):
        name = "bad_default"
        params = {"k": Param(5, min=10)}

    pm(make_plugin("bad2", register_rewards=lambda register: register("bad_default", BadDefault)))
    with pytest.raises(Exception, match="must be >= 10"):
        plugins.registry("reward")


def test_hook_that_raises_fails_loudly_with_plugin_name(pm):
    def boom(register):
        raise RuntimeError("kaboom")

    pm(make_plugin("exploding", register_rewards=boom))
    with pytest.raises(PluginError, match="plugin 'exploding' failed in register_rewards.*kaboom"):
        plugins.registry("reward")


@pytest.mark.parametrize("bad", ["has space", "a:b", "a,b", "a=b", ""])
def test_invalid_names(pm, bad):
    pm(make_plugin("naming", register_rewards=lambda register: register(bad, Echo)))
    with pytest.raises(PluginError, match="invalid name"):
        plugins.registry("reward")


def test_unknown_name_lists_known():
    with pytest.raises(UnknownNameError, match="unknown reward 'nope'; known: .*exact_match"):
        plugins.registry("reward").get("nope")


def test_disabled_plugins_env_blocks(monkeypatch):
    monkeypatch.setenv("SWIFT_EXT_DISABLED_PLUGINS", "swift_ext.default_plugins.rewards")
    plugins.reset()
    try:
        reg = plugins.registry("reward")
        assert "think_format" not in reg and "exact_match" not in reg   # the blocked plugin registered nothing
        assert "swift_ext.default_plugins.rewards" not in [p["name"] for p in plugins.list_plugins()]
    finally:
        monkeypatch.delenv("SWIFT_EXT_DISABLED_PLUGINS")
        plugins.reset()


def test_register_with_the_class_name(pm):
    """register(cls) registers under the class's own name: one spelling to keep in sync."""
    pm(make_plugin("by_class", register_rewards=lambda register: register(Echo)))
    assert plugins.registry("reward").get("echo_test") is Echo


def test_installed_entry_points_stay_out_of_the_test_process(monkeypatch):
    """The suite sets sys._called_from_test: only SWIFT_EXT_LOAD_PLUGINS names entry points here."""
    import sys

    assert getattr(sys, "_called_from_test", False)
    calls = []
    monkeypatch.delenv("SWIFT_EXT_LOAD_PLUGINS", raising=False)
    plugins.reset()
    real = plugins.pluggy.PluginManager.load_setuptools_entrypoints
    monkeypatch.setattr(plugins.pluggy.PluginManager, "load_setuptools_entrypoints",
                        lambda self, group, name=None: calls.append((group, name)) or real(self, group, name))
    try:
        plugins.get_pm()
    finally:
        plugins.reset()
    assert calls == []
