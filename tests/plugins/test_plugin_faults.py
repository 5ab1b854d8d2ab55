"""Hostile configuration and broken plugins (issue 10, "Config and plugins" and "Offline scoring"): each gives
one clear line naming the culprit, quickly, instead of a hang, a traceback or silence. Plugins are real
installed packages; the CLI runs as a user runs it (a subprocess)."""

import json
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from swift_ext import plugins
from swift_ext.errors import ConfigError, PluginError, UnknownNameError
from swift_ext.io import load_mapping
from swift_ext.testing import install_package as pip_install_target, plugin_package, run_cli as cli, with_path

BOMB = "\n".join(["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
                 + [f"{c}: &{c} [{', '.join(['*' + p] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi")]
                 + ["rewards:", "  x: {reward: random, seed: *i}"]) + "\n"


def _plugin_package(tmp_path, name, module_source):
    target = tmp_path / f"lib-{name}"
    pip_install_target(plugin_package(tmp_path, name, module_source), target)
    return with_path(os.environ, target)


def _one_error_line(res):
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1, res.stderr
    return errors[0]


# -- SWIFT_EXT_CONFIG -----------------------------------------------------------------------------
def test_yaml_alias_bomb_is_refused_quickly(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    assert len(BOMB) < 1200  # a 1 KB file that expands to 9**9 list items
    start = time.monotonic()
    with pytest.raises(ConfigError, match=r"bomb.yaml: YAML aliases expand this file to .* nodes"):
        load_mapping(str(path))
    assert time.monotonic() - start < 5


def test_recursive_alias_is_refused(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("a: &a [1, *a]\n")
    with pytest.raises(ConfigError, match="loop.yaml: a YAML alias refers to itself"):
        load_mapping(str(path))


def test_ordinary_aliases_still_work(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("base: &b {reward: iou, threshold: 0.5}\nrewards:\n  strict: *b\n")
    assert load_mapping(str(path))["rewards"]["strict"] == {"reward": "iou", "threshold": 0.5}


def test_alias_section_that_is_not_a_mapping_names_the_file(tmp_path, monkeypatch):
    from swift_ext import components

    path = tmp_path / "list.yaml"
    path.write_text("rewards: [1, 2, 3]\n")
    monkeypatch.setenv("SWIFT_EXT_CONFIG", str(path))
    with pytest.raises(ConfigError, match=r"list.yaml: 'rewards:' must map alias names to settings, got list"):
        components.configure("reward", "strict")


def test_config_errors_reach_the_cli_as_one_line(tmp_path):
    bomb, data = tmp_path / "bomb.yaml", tmp_path / "c.jsonl"
    bomb.write_text(BOMB)
    data.write_text(json.dumps({"completions": ["a", "b"]}) + "\n")
    res = cli(["rewards", "score", str(data), "-r", "x"], {**os.environ, "SWIFT_EXT_CONFIG": str(bomb)}, timeout=60)
    assert "YAML aliases expand" in _one_error_line(res)


# -- broken plugins -------------------------------------------------------------------------------
def test_plugin_with_a_missing_module_gives_one_line(tmp_path):
    env = _plugin_package(tmp_path, "missing", "import module_that_does_not_exist\n")
    line = _one_error_line(cli(["rewards", "list"], env))
    assert "plugin 'missing'" in line and "swift-ext-missing 0.0.1" in line and "module_that_does_not_exist" in line
    assert "SWIFT_EXT_DISABLED_PLUGINS=missing" in line


def test_plugin_calling_sys_exit_is_named(tmp_path):
    env = _plugin_package(tmp_path, "quitter", "import sys\nsys.exit(3)\n")
    line = _one_error_line(cli(["rewards", "list"], env))
    assert "plugin 'quitter'" in line and "sys.exit(3)" in line


def test_plugin_registering_a_non_reward_is_named(tmp_path):
    env = _plugin_package(tmp_path, "notareward", '''
        from swift_ext import hookimpl

        class NotAReward:
            name = "nope"

        @hookimpl
        def register_rewards(register):
            register("nope", NotAReward)
    ''')
    line = _one_error_line(cli(["rewards", "list"], env))
    assert "reward 'nope' must be a subclass of swift_ext.rewards.Reward" in line


def test_typo_in_a_hook_name_is_named_with_the_nearest(tmp_path):
    env = _plugin_package(tmp_path, "typo", '''
        from swift_ext import hookimpl

        @hookimpl
        def register_reward(register):
            pass
    ''')
    line = _one_error_line(cli(["rewards", "list"], env))
    assert "unknown hook 'register_reward'" in line and "did you mean 'register_rewards'" in line


def test_typo_hook_in_process(register_plugin):
    from swift_ext.testing import make_plugin

    with pytest.raises(PluginError, match="unknown hook 'register_metric'.*'register_metrics'"):
        register_plugin(make_plugin("typo", register_metric=lambda register: None))
        plugins.reset_registries()
        plugins._check_hooks(plugins.get_pm())


# -- SWIFT_EXT_REWARDS ----------------------------------------------------------------------------
def test_unknown_plain_name_in_swift_ext_rewards_is_an_error(monkeypatch):
    from swift_ext import bridge
    from swift_ext.bridge.context import RunContext

    monkeypatch.setenv("SWIFT_EXT_REWARDS", "exact_mach")
    with pytest.raises(UnknownNameError, match=r"reward \(in SWIFT_EXT_REWARDS\) 'exact_mach'; did you mean "
                                               r"'exact_match'"):
        bridge.install(ctx=RunContext.from_argv([]))
    monkeypatch.setenv("SWIFT_EXT_REWARDS", "exact_match:extract=last_number accuracy")  # ours, and ms-swift's
    assert "exact_match:extract=last_number" in bridge.install(ctx=RunContext.from_argv([]))["rewards"]


# -- offline scoring ------------------------------------------------------------------------------
def test_reward_typo_suggests_without_importing_ms_swift(tmp_path):
    data = tmp_path / "c.jsonl"
    data.write_text(json.dumps({"completions": ["a", "b"], "solution": "a"}) + "\n")
    probe = textwrap.dedent(f'''
        import sys
        from swift_ext.scoring import score as scoring
        try:
            scoring.score_file({str(data)!r}, ["exact_mach"])
        except Exception as exc:
            print(type(exc).__name__, exc)
        print("swift imported:", "swift" in sys.modules)
    ''')
    import subprocess

    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120).stdout
    assert "did you mean 'exact_match'" in out and "swift imported: False" in out


def test_ms_swift_reward_scores_offline_without_tracebacks(tmp_path):
    """ms-swift's own `format` reward through `rewards score` and `eval`: the CPU shim is applied first."""
    data = tmp_path / "c.jsonl"
    data.write_text(json.dumps({"completions": ["<think>a</think>\n<answer>b</answer>", "b"]}) + "\n")
    res = cli(["rewards", "score", str(data), "-r", "format", "--json"], dict(os.environ), timeout=300)
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    assert json.loads(res.stdout)["rewards"][0]["mean"] == 0.5
    res = cli(["eval", str(data), "-m", "reward:format"], dict(os.environ), timeout=300)
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    assert json.loads(res.stdout)["metrics"]["reward:format"]["mean"] == 0.5


def test_eval_takes_a_plugin_file(tmp_path):
    plugin = tmp_path / "my_orm.py"
    plugin.write_text(textwrap.dedent('''
        from swift.rewards import ORM, orms

        class CharCount(ORM):
            def __call__(self, completions, **kwargs):
                return [float(len(c)) for c in completions]

        orms["char_count_eval_test"] = CharCount
    '''))
    data = tmp_path / "c.jsonl"
    data.write_text(json.dumps({"completions": ["ab", "abcd"]}) + "\n")
    res = cli(["eval", str(data), "--plugin", str(plugin), "-m", "reward:char_count_eval_test"], dict(os.environ),
              timeout=300)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["metrics"]["reward:char_count_eval_test"]["mean"] == 3.0


def test_ctrl_c_exits_130_for_every_command(tmp_path):
    """SIGINT during a command that waits (here `report --serve`): exit 130, the shell convention."""
    import signal
    import subprocess

    run = tmp_path / "run"
    run.mkdir()
    (run / "logging.jsonl").write_text(json.dumps({"loss": 1.0, "global_step/max_steps": "1/1"}) + "\n")
    exe = Path(sys.executable).with_name("swift-ext")
    proc = subprocess.Popen([str(exe), "report", str(run), "--serve", "--port", "0"], stderr=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(6)
        assert proc.poll() is None, proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
