"""``swift-ext audit RUN_DIR``: health and reward-hacking detectors over a run's own files."""

from __future__ import annotations

import click

from ._common import console, echo_json


@click.command("audit")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--fail-on", type=click.Choice(["warn", "error", "never"]), default="never", show_default=True,
              help="exit 1 when a detector reports this level or worse (for CI and schedulers)")
@click.option("--json", "as_json", is_flag=True, help="the findings as JSON on stdout")
def audit_cmd(as_json, **flags):
    """Check a GRPO run for health problems and reward hacking: completion-length drift, clipped completions,
    one reward dominating the weighted sum, a format reward rising while accuracy stays flat, repetition
    rising, zero-std groups, reward std collapse, identical completions within groups.

    \b
    RUN_DIR is an ms-swift output_dir (or a folder above it): logging.jsonl is read, and completions.jsonl
    when the run used --log_completions true. The newest run under RUN_DIR is audited.
        swift-ext audit output/v0-20261130-101500 --fail-on error
    """
    from rich.markup import escape
    from rich.table import Table

    from ..curation import audit

    opts = audit.AuditOptions(**flags)            # every flag but --json is an AuditOptions field
    result = audit.run_audit(opts)
    run, findings, level = result.run, result.findings, result.level
    if as_json:
        echo_json(result.as_dict())
    else:
        colour = {"ok": "green", "warn": "yellow", "error": "red", "skipped": "dim"}
        table = Table("detector", "status", "value", "warn / error", "what it means",
                      title=f"swift-ext audit: {run.path} ({len(run.steps)} steps)")
        for f in findings:
            limits = "-" if f.warn is None else f"{f.warn:g} / {f.error:g}"
            table.add_row(f.detector, f"[{colour[f.status]}]{f.status}[/]",
                          "-" if f.value is None else f"{f.value:.4g}", limits, escape(f.message))
        console.print(table)
    if result.failed:
        console.print(f"[red]audit: {level}[/] (--fail-on {opts.fail_on})")
        raise SystemExit(1)


def register(cli):
    cli.add_command(audit_cmd)
