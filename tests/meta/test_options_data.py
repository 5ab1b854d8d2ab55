"""``validate`` and ``mix`` declare their flags once, by their options dataclasses: the click flags and the
dataclass fields agree by name (with the negated and CLI-only flags the command declares)."""

import dataclasses

from swift_ext.cli import cli
from swift_ext.cli.data import MIX_CLI_ONLY, VALIDATE_CLI_ONLY, VALIDATE_NEGATED
from swift_ext.convert import MixOptions, ValidateOptions


def _flags(name):
    return {p.name for p in cli.commands[name].params}


def test_validate_flags_are_validate_options_fields():
    fields = {VALIDATE_NEGATED.get(f.name, f.name) for f in dataclasses.fields(ValidateOptions)}
    assert _flags("validate") == fields | set(VALIDATE_CLI_ONLY)


def test_mix_flags_are_mix_options_fields():
    assert _flags("mix") == {f.name for f in dataclasses.fields(MixOptions)} | set(MIX_CLI_ONLY)
