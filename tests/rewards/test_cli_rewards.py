"""`swift-ext rewards list|score`, `plugin-path`, `plugins` through the real click CLI."""

import json
import textwrap

import pytest
from click.testing import CliRunner

from swift_ext.cli import cli


@pytest.fixture
def run():
    def _run(*args):
        return CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return _run


def test_rewards_list_json(run):
    res = run("rewards", "list", "--json")
    assert res.exit_code == 0
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert {"think_format", "exact_match", "math_accuracy", "random"} <= set(rows)
    assert rows["exact_match"]["params"]["extract"]["default"] == "auto"
    assert rows["exact_match"]["abstains"].startswith("when the gold")
    assert rows["random"]["source"].startswith("swift-ext built-in")


def test_rewards_list_table_goes_to_stderr(run):
    res = run("rewards", "list")
    assert res.exit_code == 0 and res.stdout == "" and "think_format" in res.stderr


def test_plugin_path(run):
    res = run("plugin-path")
    assert res.stdout.strip().endswith("swift_ext_plugin.py")


@pytest.fixture
def completions_file(tmp_path):
    p = tmp_path / "c.jsonl"
    rows = [
        {"messages": [{"role": "user", "content": "2+2?"}], "solution": "4",
         "completions": ["<answer>4</answer>", "<answer>5</answer>"]},
        {"messages": [{"role": "user", "content": "3+4?"}], "solution": "7",
         "completions": ["<answer>7</answer>", "<answer>7</answer>"]},
    ]
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return p


def test_score_reports_mean_std_and_zero_variance_groups(run, completions_file, tmp_path):
    out = tmp_path / "scores.jsonl"
    res = run("rewards", "score", str(completions_file), "-r", "exact_match", "-r", "random:low=1,high=1",
              "--json", "-o", str(out))
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["rows"] == 2 and report["completions"] == 4
    em, rnd = report["rewards"]
    # exact_match scores [1, 0] and [1, 1]: mean 3/4, population std sqrt(3/16) = 0.4330
    assert em["mean"] == pytest.approx(0.75) and em["std"] == pytest.approx(0.4330127)
    assert (em["groups"], em["zero_std_groups"]) == (2, 1)         # the second group never varies
    assert rnd["name"] == "random:low=1,high=1" and rnd["mean"] == 1.0 and rnd["zero_std_groups"] == 2
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["exact_match"] for line in lines] == [1.0, 0.0, 1.0, 1.0]


def test_score_with_a_third_party_orm_file(run, completions_file, tmp_path):
    plugin = tmp_path / "len_plugin.py"
    plugin.write_text(textwrap.dedent('''
        from swift.rewards import ORM, orms
        class LenReward(ORM):
            def __call__(self, completions, **kwargs):
                return [float(len(c)) for c in completions]
        orms['len_cli_test'] = LenReward
    '''))
    res = run("rewards", "score", str(completions_file), "-r", "len_cli_test", "--plugin", str(plugin), "--json")
    assert res.exit_code == 0, res.output
    (stats,) = json.loads(res.stdout)["rewards"]
    assert stats["mean"] == 18.0          # len("<answer>4</answer>") = 8 + 1 + 9 for every completion
    assert stats["zero_std_groups"] == 2


def test_score_bad_line_names_file_and_line(run, tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"completion": "a", "solution": "a"}\n{"completion": "b", \n')
    res = CliRunner().invoke(cli, ["rewards", "score", str(p), "-r", "exact_match"])
    assert res.exit_code == 1
    assert f"{p}:2: invalid JSON" in res.stderr


def test_score_unknown_reward(run, completions_file):
    res = CliRunner().invoke(cli, ["rewards", "score", str(completions_file), "-r", "nope_reward"])
    assert res.exit_code == 1 and "unknown reward 'nope_reward'" in res.stderr


def test_score_bad_param(run, completions_file):
    res = CliRunner().invoke(cli, ["rewards", "score", str(completions_file), "-r", "exact_match:extract=zz"])
    assert res.exit_code == 1 and "choose one of" in res.stderr


def test_plugins_json(run):
    res = run("plugins", "--json")
    names = [p["name"] for p in json.loads(res.stdout)]
    assert "swift_ext.default_plugins.rewards" in names
