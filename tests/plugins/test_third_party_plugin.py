"""A third-party plugin package (plugins/swift-ext-example) really installed, discovered through the
``swift_ext`` entry-point group by a fresh process, listed by the CLI and used in a real GRPO run."""

import json
import os
from pathlib import Path

import pytest

from swift_ext.testing import tiny
from swift_ext.testing import (grpo_args, install_package as pip_install_target, plugin_package, run_cli as cli,
                               step_rows, with_path)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "plugins" / "swift-ext-example"


@pytest.fixture(scope="module")
def example_site(tmp_path_factory):
    target = tmp_path_factory.mktemp("site") / "lib"
    pip_install_target(EXAMPLE, target)
    return target


def test_installed_plugin_appears_in_rewards_list(example_site):
    res = cli(["rewards", "list", "--json"], with_path(os.environ, example_site))
    assert res.returncode == 0, res.stderr
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert rows["keyword_hit"]["source"] == "plugin 'example' from swift-ext-example 0.1.0"
    assert rows["keyword_hit"]["params"]["keywords"]["default"] == ["yes"]
    assert "think_format" in rows                                   # built-ins are still there


def test_plugin_reward_scores_offline(example_site, tmp_path):
    data = tmp_path / "c.jsonl"
    data.write_text(json.dumps({"completions": ["a cat", "cat and dog", "none"]}) + "\n")
    res = cli(["rewards", "score", str(data), "-r", "keyword_hit:keywords=cat|dog", "--json"],
              with_path(os.environ, example_site))
    assert res.returncode == 0, res.stderr
    (stats,) = json.loads(res.stdout)["rewards"]
    assert stats["mean"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)    # 1 of 2, 2 of 2, 0 of 2 keywords


def test_allow_list_env_hides_plugin(example_site):
    env = with_path(os.environ, example_site)
    env["SWIFT_EXT_LOAD_PLUGINS"] = ""
    names = [r["name"] for r in json.loads(cli(["rewards", "list", "--json"], env).stdout)]
    assert "keyword_hit" not in names and "think_format" in names


def test_broken_plugin_fails_loudly(tmp_path):
    src = plugin_package(tmp_path, "broken", "import module_that_does_not_exist\n")
    target = tmp_path / "lib"
    pip_install_target(src, target)
    res = cli(["rewards", "list"], with_path(os.environ, target))
    assert res.returncode == 1
    assert "entry-point plugin failed to load" in res.stderr and "module_that_does_not_exist" in res.stderr


@pytest.mark.e2e
def test_plugin_reward_in_a_real_grpo_run(example_site, tiny_models, run_swift, swift_env, tmp_path):
    model = tiny_models["text"]
    dataset = tiny.write_jsonl(tmp_path / "grpo.jsonl", tiny.grpo_rows(8))
    rewards = ["keyword_hit:keywords=the|a", "random:seed=2"]
    run = run_swift("rlhf", grpo_args(model, dataset, tmp_path / "out", rewards), cwd=tmp_path,
                    env=with_path(swift_env, example_site))
    assert run.returncode == 0, run.tail()
    rows = step_rows(tmp_path / "out")
    assert len(rows) == 2
    for row in rows:
        value = row["rewards/keyword_hit:keywords=the|a/mean"]
        # 4 completions x 2 keywords: the mean is a multiple of 1/8 in [0, 1]
        assert 0.0 <= value <= 1.0 and value * 8 == pytest.approx(round(value * 8))
