"""``swift-ext rewards list``, ``score``, ``explain`` and ``test``."""

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
def score_cmd(as_json, **flags):
    """Score completions in INPUT.jsonl with rewards and report mean / std / zero-variance groups.

    Rows carry the dataset columns (solution, images, ...) and either `completions` (a list: one GRPO
    group) or `completion` (rows sharing a prompt form a group). A reward whose scores never vary
    within a group gives GRPO nothing to learn from: check `frac_zero_std` before a real run.
    `swift-ext eval -m reward:NAME` reads the file the same way and gives the same per-row scores.
    """
    from rich.table import Table

    from ..scoring import score as scoring

    # streamed: per-completion scores go to --output as they are computed, statistics fold prompt groups as
    # they close, so memory stays bounded whatever the file's size
    opts = scoring.ScoreOptions(**flags)          # every flag but --json is a ScoreOptions field
    input_path = opts.input_path
    with progress() as bar:
        task = bar.add_task("scoring", total=None)
        report = scoring.run(opts, on_batch=lambda n: bar.advance(task, n))
    for line, why in report.rejected[:10]:
        console.print(f"[yellow]rejected[/yellow] {input_path}:{line}: {escape(why)}")
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


@rewards_group.command("explain")
@click.argument("input_path", metavar="[INPUT.jsonl]", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("-r", "--reward", "specs", multiple=True, required=True,
              help="reward name, parametrised name (iou:frame=qwen2_5_vl) or ms-swift orms name; repeatable")
@click.option("--completion", "completion", default=None,
              help="explain this one completion instead of a file (with --row / --column for its dataset columns)")
@click.option("--row", "row_json", default=None, help="the dataset columns of --completion as a JSON object")
@click.option("-c", "--column", "columns", multiple=True, metavar="KEY=VALUE",
              help="one dataset column of --completion (VALUE read as JSON when it parses); repeatable")
@click.option("--plugin", "plugin_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="an ms-swift ORM plugin file whose rewards to use; repeatable")
@click.option("--completion-key", default=None, help="column with the completion(s) (as for rewards score)")
@click.option("--ref-key", default=None, help="column with the reference answer, handed to rewards as `solution`")
@click.option("-n", "--limit", type=int, default=20, show_default=True, help="explain the first N completions "
              "of the file (0: all)")
def explain_cmd(**flags):
    """Show per completion and per reward how the score came about: the extracted answer and the rule that
    found it, the gold and its normalisation, parsed boxes with their frame and conversion (image size,
    resize policy), the matched box pairs, the JSON / schema error, and why a score is 0 or None.

    Reads a completion file (as `swift-ext rewards score` does) or one --completion with its columns.
    A table goes to stderr, the full explanations as JSON to stdout.

    \b
    Example:
        swift-ext rewards explain -r iou:frame=qwen2_5_vl --completion '[10, 20, 200, 240]' \\
            -c solution='[12, 20, 210, 230]' -c image_size='[640, 480]'
    """
    from rich.table import Table

    from ..scoring import explain

    def show_rejected(res):  # a file's rejected rows, before any reward is built
        for line, why in res.rejected[:10] if opts.input_path is not None else ():
            console.print(f"[yellow]rejected[/yellow] {opts.input_path}:{line}: {escape(why)}")

    opts = explain.ExplainOptions(**flags)        # every flag is an ExplainOptions field
    # --limit N reads only as far as the first N completions (in batches), never the whole file
    got = explain.run(opts, on_read=show_rejected)
    table = Table("line", "reward", "score", "reason", "details", title="why each score", show_lines=True)
    for item in got:
        for spec, ex in item["explanations"].items():
            details = {k: ex[k] for k in explain.DETAIL_KEYS if ex.get(k) not in (None, [], {})}
            score = ex.get("score")
            table.add_row(str(item["line"]), escape(spec), "None" if score is None else f"{score:.4g}",
                          escape(str(ex.get("reason", ""))),
                          escape(json.dumps(details, ensure_ascii=False, default=str)[:600]))
    console.print(table)
    echo_json(got)


@rewards_group.command("test")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--plugin", "plugin_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="a swift-ext plugin file (a module with a register_rewards hook, or Reward classes with a "
                   "`name`): test its rewards; repeatable")
@click.option("--json", "as_json", is_flag=True, help="one JSON array on stdout instead of JSON lines")
def test_cmd(names, plugin_files, as_json):
    """Check the reward contract on each reward's declared examples: every example scores as declared,
    the same input twice gives the same score, the class and an instance pickle, each call ends within the
    reward's deadline, and explain() gives the call's score. Exits 1 on any failure.

    NAME selects registered rewards (default: all of them, built-in and installed plugins; with --plugin:
    the plugin files' rewards). A table goes to stderr, one JSON line per check to stdout.

    \b
    Example:
        swift-ext rewards test exact_match iou
        swift-ext rewards test --plugin my_rewards.py
    """
    from rich.table import Table

    from ..rewards import contract

    results = contract.run(names, plugin_files)
    table = Table("reward", "check", "ok", "detail", title="reward contract")
    for r in results:
        if not r.ok or r.check in ("examples",):
            table.add_row(escape(r.reward), r.check, "[green]ok[/]" if r.ok else "[red]FAIL[/]", escape(r.detail))
    bad = contract.failed(results)
    console.print(table)
    console.print(f"{len({r.reward for r in results})} rewards, {len(results)} checks, "
                  + (f"[red]{len(bad)} failed[/]" if bad else "[green]all passed[/]"))
    if as_json:
        echo_json([r.as_dict() for r in results])
    else:
        for r in results:
            click.echo(json.dumps(r.as_dict(), ensure_ascii=False))
    if bad:
        raise SystemExit(1)


def register(cli):
    cli.add_command(rewards_group)
