"""The ``swift-ext`` command line: a thin layer over the library.

Machine-readable output goes to stdout, messages and progress to stderr. Library errors
(:class:`swift_ext.errors.SwiftExtError`) become one ``Error: ...`` line and exit code 1.
"""

from __future__ import annotations

import importlib
import sys

import click

from ..errors import SwiftExtError

# each module defines register(cli) and adds its commands
COMMAND_MODULES = ("rewards", "misc", "demo", "data", "chord", "evaluate", "launch", "audit", "filter", "report")

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SwiftExtError as exc:
            raise click.ClickException(str(exc)) from exc
        except KeyboardInterrupt:  # Ctrl-C: the shell convention 128 + SIGINT, not click's "Aborted!" exit 1
            click.echo("interrupted", err=True)
            raise SystemExit(130) from None


@click.group(cls=_Group, context_settings=CONTEXT_SETTINGS)
@click.version_option(package_name="swift-ext")
def cli():
    """swift-ext: rewards, dataset converters, CHORD schedules, evaluation hooks and launchers for ms-swift.

    \b
    Quick start:
        swift-ext demo                      # tiny real GRPO run on bundled sample data (CPU, no network)
        swift-ext rewards list              # the reward catalogue
        swift rlhf --rlhf_type grpo --external_plugins "$(swift-ext plugin-path)" \\
            --reward_funcs think_format exact_match:extract=last_number ...
    """


for _name in COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_name}").register(cli)


def _register_plugin_commands() -> None:
    from .. import plugins

    plugins.get_pm().hook.register_commands(cli=cli)


def main(argv=None) -> None:
    from .. import cpu_compat

    cpu_compat.apply()  # CPU-only torch + CUDA torchvision: commands that import ms-swift would fail otherwise
    try:
        _register_plugin_commands()
    except SwiftExtError as exc:  # a broken plugin: one line, like every other error
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    cli.main(args=argv, prog_name="swift-ext")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
