"""The README documents everything users can select: every reward, hook, CLI command and schedule/callback name."""

from pathlib import Path

import click
import pytest

from swift_ext import hookspecs, plugins
from swift_ext.cli import cli

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def commands(group, prefix=()):
    for name, cmd in group.commands.items():
        path = (*prefix, name)
        yield path, cmd
        if isinstance(cmd, click.Group):
            yield from commands(cmd, path)


@pytest.mark.parametrize("kind", ["reward", "schedule", "callback", "metric"])
def test_every_registered_name_is_documented(kind):
    missing = [name for name in plugins.registry(kind) if f"`{name}" not in README]
    assert not missing, f"{kind}s missing from README.md: {missing}"


def test_every_hook_is_documented():
    hooks = [n for n in dir(hookspecs) if n.startswith("register_")]
    assert len(hooks) >= 7
    assert not [h for h in hooks if f"`{h}" not in README]


def test_every_command_is_documented_and_has_help():
    for path, cmd in commands(cli):
        assert f"swift-ext {' '.join(path)}" in README, f"`swift-ext {' '.join(path)}` not in README.md"
        assert (cmd.help or "").strip(), f"`swift-ext {' '.join(path)}` has no help text"


def test_readme_commands_for_ci_are_present():
    assert "<!-- ci:demo -->" in README and "swift-ext demo" in README
    assert "<!-- ci:test -->" in README and "pytest" in README
