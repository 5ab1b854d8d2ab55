"""Each command's flags are declared once, by its options dataclass: the click flags and the dataclass fields
agree by name (with the renames and CLI-only flags the command declares)."""

import dataclasses

from swift_ext.cli import cli
from swift_ext.chord import PlanOptions
from swift_ext.cli.chord import PLAN_CLI_ONLY
from swift_ext.cli.data import CONVERT_CLI_ONLY, CONVERT_RENAMED, MIX_CLI_ONLY, VALIDATE_CLI_ONLY, VALIDATE_NEGATED
from swift_ext.cli.filter import SAMPLER_FLAGS
from swift_ext.cli.launch import MEMORY_CLI_ONLY, MEMORY_RENAMED
from swift_ext.convert import MixOptions, ValidateOptions
from swift_ext.convert.options import ConvertOptions
from swift_ext.curation.audit import AuditOptions
from swift_ext.demo import DemoConfig
from swift_ext.curation.filter import FilterOptions, Sampling
from swift_ext.launch.memory import MemoryInput
from swift_ext.launch.options import LaunchOptions
from swift_ext.report import ReportOptions
from swift_ext.scoring.evaluation import EvalOptions
from swift_ext.scoring.explain import ExplainOptions
from swift_ext.scoring.score import ScoreOptions


def _flags(name):
    return {p.name for p in cli.commands[name].params}


def test_convert_flags_are_convert_options_fields():
    fields = {CONVERT_RENAMED.get(f.name, f.name) for f in dataclasses.fields(ConvertOptions)}
    assert _flags("convert") == fields | set(CONVERT_CLI_ONLY)


def test_filter_flags_are_filter_options_and_sampling_fields():
    fields = {f.name for f in dataclasses.fields(FilterOptions)} - {"sampling", "chunk"}   # chunk: library only
    fields |= {f.name for f in dataclasses.fields(Sampling)}
    assert _flags("filter") == fields | set(SAMPLER_FLAGS)


def test_plan_memory_flags_are_memory_input_fields():
    fields = {MEMORY_RENAMED.get(f.name, f.name) for f in dataclasses.fields(MemoryInput)}
    assert {p.name for p in cli.commands["plan"].commands["memory"].params} == fields | set(MEMORY_CLI_ONLY)


def test_chord_plan_flags_are_plan_options_fields():
    fields = {f.name for f in dataclasses.fields(PlanOptions)}
    assert {p.name for p in cli.commands["chord"].commands["plan"].params} == fields | set(PLAN_CLI_ONLY)


def test_rewards_score_flags_are_score_options_fields():
    fields = {f.name for f in dataclasses.fields(ScoreOptions)} - {"batch_size"}   # batch_size: library only
    assert {p.name for p in cli.commands["rewards"].commands["score"].params} == fields | {"as_json"}


def test_launch_flags_are_launch_options_fields():
    assert _flags("launch") == {f.name for f in dataclasses.fields(LaunchOptions)}


def test_eval_flags_are_eval_options_fields():
    fields = {f.name for f in dataclasses.fields(EvalOptions)} - {"batch_size"}   # batch_size: library only
    assert _flags("eval") == fields


def test_rewards_explain_flags_are_explain_options_fields():
    fields = {f.name for f in dataclasses.fields(ExplainOptions)}
    assert {p.name for p in cli.commands["rewards"].commands["explain"].params} == fields


def test_report_flags_are_report_options_fields():
    assert _flags("report") == {f.name for f in dataclasses.fields(ReportOptions)} | {"as_json"}


def test_audit_flags_are_audit_options_fields():
    assert _flags("audit") == {f.name for f in dataclasses.fields(AuditOptions)} | {"as_json"}


def test_demo_flags_are_demo_config_fields():
    fields = {f.name for f in dataclasses.fields(DemoConfig)} - {"swift"}   # swift: the executable, library only
    assert _flags("demo") == fields | {"as_json"}


def test_validate_flags_are_validate_options_fields():
    fields = {VALIDATE_NEGATED.get(f.name, f.name) for f in dataclasses.fields(ValidateOptions)}
    assert _flags("validate") == fields | set(VALIDATE_CLI_ONLY)


def test_mix_flags_are_mix_options_fields():
    assert _flags("mix") == {f.name for f in dataclasses.fields(MixOptions)} | set(MIX_CLI_ONLY)
