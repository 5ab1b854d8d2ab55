"""``swift-ext plugin-path`` and ``swift-ext plugins``."""

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


def register(cli):
    cli.add_command(plugin_path_cmd)
    cli.add_command(plugins_cmd)
