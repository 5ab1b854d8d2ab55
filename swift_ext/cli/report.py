"""``swift-ext report``: an offline HTML report of one or more training runs."""

from __future__ import annotations

import click

from ._common import console, echo_json


@click.command("report")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("-o", "--output", default="report.html", show_default=True, type=click.Path(dir_okay=False),
              help="the HTML file to write")
@click.option("--title", default=None, help="page title [default: the run names]")
@click.option("--png", default=None, type=click.Path(dir_okay=False), help="also draw the curves into this PNG file")
@click.option("--serve", is_flag=True, help="serve a live report on 127.0.0.1 instead (re-reads the files; Ctrl-C stops)")
@click.option("--port", default=8765, show_default=True, type=int, help="port for --serve (0: any free port)")
@click.option("--json", "as_json", is_flag=True, help="what was written, as JSON on stdout")
def report_cmd(as_json, **flags):
    """Write one self-contained HTML report (works offline) for the runs in RUN_DIR...

    \b
    A RUN_DIR is a swift output folder: the v<N>-<time> folder holding logging.jsonl, or any folder above
    it (every run below it is included). The page has each reward's mean with a ± std band, the weighted
    total, frac_reward_zero_std, clipping, completion length, loss / KL / grad norm / learning rate, CHORD
    mu, swift-ext callback metrics, and a completion browser (train with --log_completions true). Several
    runs share each chart, aligned by step. It reads ms-swift's own files: no swift-ext needed in the run.
    \b
    Examples:
        swift-ext report output/v0-20260101-120000 -o report.html
        swift-ext report output/grpo output/chord -o compare.html --png curves.png
        swift-ext report output --serve           # watch a run while it trains
    """
    from ..report import ReportOptions, run_report

    opts = ReportOptions(**flags)                 # every flag but --json is a ReportOptions field
    if opts.serve:
        console.print("[bold]swift-ext report[/] live report (Ctrl-C stops):")
        run_report(opts, ready=lambda url: console.print(url))
        return
    info = run_report(opts)
    console.print(f"report: {info.path} ({info.bytes / 1e6:.1f} MB, {info.charts} charts, "
                  f"{info.completions} completions, {len(info.runs)} run(s), {info.seconds:.1f} s)")
    if opts.png:
        console.print(f"curves: {opts.png}")
    if as_json:
        echo_json({**info.to_json(), "png": opts.png})
    else:
        click.echo(info.path)  # stdout: the path alone, for scripts


def register(cli):
    cli.add_command(report_cmd)
