"""``swift-ext plugin-path``, ``swift-ext plugins`` and ``swift-ext doctor``."""

from __future__ import annotations

import click

from ._common import console, echo_json


@click.command("plugin-path")
def plugin_path_cmd():
    """Print the file to pass to ``swift rlhf --external_plugins``."""
    from ..bridge import plugin_path

    click.echo(plugin_path())


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="JSON on stdout")
def plugins_cmd(as_json):
    """List loaded swift-ext plugins (built-in and installed) and the hooks they implement."""
    from rich.table import Table

    from .. import plugins

    rows = plugins.list_plugins()
    if as_json:
        echo_json(rows)
        return
    table = Table("plugin", "source", "hooks")
    for r in rows:
        table.add_row(r["name"], r["source"], ", ".join(r["hooks"]))
    console.print(table)


@click.command("doctor")
@click.option("--gpu", is_flag=True, help="check for a GPU training node: CUDA devices, vLLM and DeepSpeed required")
@click.option("--port", "ports", multiple=True, type=int, help="also check that this port is free; repeatable")
@click.option("--json", "as_json", is_flag=True, help="the checks as JSON on stdout")
def doctor_cmd(gpu, ports, as_json):
    """Check that this machine can run swift-ext and ms-swift: torch / torchvision match, the CPU shim, GPUs,
    ms-swift, vLLM / DeepSpeed / flash-attn against the versions that fit ms-swift 4.6, free ports for the
    rollout server and its NCCL group, installed plugins. Exits 1 when something required is missing.
    """
    from rich.markup import escape
    from rich.table import Table

    from ..launch import doctor

    checks = doctor.run_checks(gpu=gpu, ports=ports)
    if as_json:
        echo_json([c.as_dict() for c in checks])
    else:
        colour = {"ok": "green", "warn": "yellow", "fail": "red"}
        table = Table("check", "status", "found", "what to do", title="swift-ext doctor" + (" (GPU node)" if gpu else ""))
        for c in checks:
            table.add_row(c.name, f"[{colour[c.status]}]{c.status}[/]", escape(c.value), escape(c.detail))
        console.print(table)
    bad = doctor.failed(checks)
    if bad:
        console.print(f"[red]{len(bad)} required check(s) failed:[/] {', '.join(c.name for c in bad)}")
        raise SystemExit(1)


def register(cli):
    cli.add_command(plugin_path_cmd)
    cli.add_command(plugins_cmd)
    cli.add_command(doctor_cmd)
