"""``swift-ext rewards list`` and ``swift-ext rewards score``."""

from __future__ import annotations

import json

import click
from rich.markup import escape

from ._common import console, echo_json, progress


@click.group("rewards")
def rewards_group():
    """The reward catalogue: list rewards, score completions offline."""


@rewards_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON on stdout, for scripts")
def list_cmd(as_json):
    """List every registered reward, its parameters and where it comes from."""
    from rich.table import Table

    from .. import plugins

    reg = plugins.registry("reward")
    rows = [{**cls.describe(), "source": reg.source(name)} for name, cls in reg.items()]
    if as_json:
        echo_json(rows)
        return
    table = Table("name", "family", "what it scores", "parameters (default)", "abstains", "source",
                  title="swift-ext rewards  (use as --reward_funcs NAME or NAME:key=value,...)")
    for r in rows:
        params = ", ".join(f"{k}={v['default']}" for k, v in r["params"].items())
        source = "built-in" if r["source"].startswith("swift-ext built-in") else r["source"]
        table.add_row(r["name"], r["family"], r["summary"], params or "-", r["abstains"], source)
    console.print(table)


@rewards_group.command("score")
@click.argument("input_path", metavar="INPUT.jsonl", type=click.Path(exists=True, dir_okay=False))
@click.option("-r", "--reward", "specs", multiple=True, required=True,
              help="reward name, parametrised name (iou:threshold=0.7), or an ms-swift orms name; repeatable")
@click.option("--plugin", "plugin_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="an ms-swift ORM plugin file (as for --external_plugins) whose rewards to use; repeatable")
@click.option("--completion-key", default=None, help="column with the completion(s) (default: completions, "
              "responses, completion or response)")
@click.option("--ref-key", default=None, help="column with the reference answer, handed to rewards as `solution` "
              "(default: solution, else the first of labels, answer, reference, ground_truth, gold)")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="write per-completion scores as JSONL")
@click.option("--json", "as_json", is_flag=True, help="the summary as JSON on stdout")
def score_cmd(input_path, specs, plugin_files, completion_key, ref_key, output, as_json):
    """Score completions in INPUT.jsonl with rewards and report mean / std / zero-variance groups.

    Rows carry the dataset columns (solution, images, ...) and either `completions` (a list: one GRPO
    group) or `completion` (rows sharing a prompt form a group). A reward whose scores never vary
    within a group gives GRPO nothing to learn from: check `frac_zero_std` before a real run.
    `swift-ext eval -m reward:NAME` reads the file the same way and gives the same per-row scores.
    """
    from rich.table import Table

    from .. import results, scoring
    from ..io import atomic_write

    res = results.load(input_path, completion_key=completion_key, ref_key=ref_key)
    for line, why in res.rejected[:10]:
        console.print(f"[yellow]rejected[/yellow] {input_path}:{line}: {escape(why)}")
    with progress() as bar:
        task = bar.add_task("scoring", total=len(res.completions) * len(specs))
        details: dict = {}
        scores = scoring.score_results(res, specs, plugin_files,
                                       on_batch=lambda n: bar.advance(task, n * len(specs)), details=details)
    report = scoring.report(res, scores, details)
    if output:
        with atomic_write(output) as fh:
            for row in report.scores:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    if as_json:
        echo_json(report.as_dict())
        return
    table = Table("reward", "n", "abstained", "mean", "std", "min", "max", "zero-std groups",
                  title=f"{input_path}: {report.rows} rows ({len(report.rejected)} rejected), "
                        f"{report.completions} completions")
    fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    for s in report.stats:
        frac = s.frac_zero_std
        table.add_row(s.name, str(s.n), str(s.abstained), fmt(s.mean), fmt(s.std), fmt(s.min), fmt(s.max),
                      "-" if frac is None else f"{s.zero_std_groups}/{s.groups} ({frac:.0%})")
    console.print(table)
    for s in report.stats:
        if s.frac_zero_std is not None and s.frac_zero_std > 0.5:
            console.print(f"[yellow]warning[/]: {s.name} gives identical scores within {s.frac_zero_std:.0%} of "
                          f"groups; GRPO advantages are zero there")


def register(cli):
    cli.add_command(rewards_group)
