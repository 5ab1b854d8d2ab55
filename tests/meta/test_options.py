"""Each command's flags are declared once, by its options dataclass: the click flags and the dataclass fields
agree by name (with the renames and CLI-only flags the command declares)."""

import dataclasses

from swift_ext.cli import cli
from swift_ext.cli.data import CONVERT_CLI_ONLY, CONVERT_RENAMED
from swift_ext.cli.filter import SAMPLER_FLAGS
from swift_ext.convert.options import ConvertOptions
from swift_ext.curation.filter import FilterOptions, Sampling


def _flags(name):
    return {p.name for p in cli.commands[name].params}


def test_convert_flags_are_convert_options_fields():
    fields = {CONVERT_RENAMED.get(f.name, f.name) for f in dataclasses.fields(ConvertOptions)}
    assert _flags("convert") == fields | set(CONVERT_CLI_ONLY)


def test_filter_flags_are_filter_options_and_sampling_fields():
    fields = {f.name for f in dataclasses.fields(FilterOptions)} - {"sampling", "chunk"}   # chunk: library only
    fields |= {f.name for f in dataclasses.fields(Sampling)}
    assert _flags("filter") == fields | set(SAMPLER_FLAGS)
