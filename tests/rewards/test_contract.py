"""The reward contract (``swift-ext rewards test``): every built-in passes it; deliberately broken plugin files
fail it, naming the check."""

import json
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from swift_ext import plugins
from swift_ext.cli import cli
from swift_ext.rewards import contract, reward_names


def test_every_builtin_passes_its_contract():
    results = contract.run()
    names = {r.reward for r in results}
    assert names == set(reward_names())
    assert not contract.failed(results), [r.as_dict() for r in contract.failed(results)]
    # each built-in scored at least its declared examples (not just the declaration check)
    scored = {r.reward for r in results if r.check == "example"}
    assert scored == names


def test_cli_runs_named_builtins():
    res = CliRunner().invoke(cli, ["rewards", "test", "exact_match", "ngram_repetition"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert {r["reward"] for r in rows} == {"exact_match", "ngram_repetition"}
    assert {"examples", "example", "deterministic", "picklable", "deadline", "explain"} <= {r["check"] for r in rows}
    assert all(r["ok"] for r in rows)


BROKEN = textwrap.dedent('''
    import random
    from swift_ext.rewards import Example, Reward

    CASES = (Example("full", "yes", 1.0), Example("zero", "no", 0.0), Example("malformed", "", 0.0))


    class NeverFull(Reward):
        """Gives 0.5 to its own full-credit case."""
        name = "never_full"
        examples = CASES

        def score(self, completion, **row):
            return 0.5 if completion == "yes" else 0.0


    class Flaky(Reward):
        """A fresh random score each call (right on average, never the same twice)."""
        name = "flaky"
        examples = tuple(Example(e.kind, e.completion, e.score, tol=1.0) for e in CASES)

        def score(self, completion, **row):
            return random.random()


    class Unpicklable(Reward):
        """Keeps a lambda: neither the instance nor anything holding it pickles."""
        name = "unpicklable"
        examples = CASES

        def setup(self):
            self.rule = lambda c: float(c == "yes")

        def score(self, completion, **row):
            return self.rule(completion)
''')


@pytest.mark.parametrize("reward, check", [("never_full", "example"), ("flaky", "deterministic"),
                                           ("unpicklable", "picklable")])
def test_broken_plugin_file_fails_naming_the_check(tmp_path, reward, check):
    path = tmp_path / "broken_rewards.py"
    path.write_text(BROKEN)
    # a real process, as a plugin author's CI runs it
    proc = subprocess.run([sys.executable, "-m", "swift_ext", "rewards", "test", "--plugin", str(path), reward],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    failed = {r["check"] for r in rows if not r["ok"]}
    assert check in failed, rows
    assert {r["reward"] for r in rows} == {reward}
    assert "FAIL" in proc.stderr and check in proc.stderr


def test_plugin_package_with_register_hook(tmp_path, register_plugin):
    """A plugin module with a register_rewards hook is tested through the registry, as a run would use it."""
    path = tmp_path / "good_plugin.py"
    path.write_text(textwrap.dedent('''
        from swift_ext.hookspecs import hookimpl
        from swift_ext.rewards import Example, Reward

        class Shouting(Reward):
            """1.0 for an all-caps completion."""
            name = "shouting_contract"
            columns = ()
            examples = (Example("full", "HELLO", 1.0), Example("zero", "hello", 0.0),
                        Example("malformed", "", 0.0))

            def score(self, completion, **row):
                return float(bool(completion) and completion.isupper())

        @hookimpl
        def register_rewards(register):
            register(Shouting)
    '''))
    results = contract.run(plugin_files=[str(path)])
    assert {r.reward for r in results} == {"shouting_contract"}
    assert not contract.failed(results), [r.as_dict() for r in results]
    assert "shouting_contract" in plugins.registry("reward")


def test_missing_kinds_fail_the_declaration_check():
    from swift_ext.rewards import Reward

    class Bare(Reward):
        name = "bare"

        def score(self, completion, **row):
            return 1.0

    got = contract.check("bare", Bare)
    assert got[0].check == "examples" and not got[0].ok
    assert "full, zero, malformed" in got[0].detail
