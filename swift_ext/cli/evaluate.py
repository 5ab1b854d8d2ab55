"""``swift-ext eval``: score result files (``swift infer`` output or any JSONL with completions and
references) with task metrics and registered rewards; compare two files side by side."""

from __future__ import annotations

import click
from rich.markup import escape

from ._common import console, echo_json, progress


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


@click.command("eval")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("-m", "--metric", "metrics", multiple=True,
              help="accuracy | yes_no | mcq | iou[:threshold=0.5] | reward:SPEC (any registered reward); "
                   "repeatable (default: accuracy)")
@click.option("--ref-key", default=None,
              help="column with the reference answer (default: first of solution, labels, answer, reference, "
                   "ground_truth)")
@click.option("--plugin", "plugin_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="an ms-swift ORM plugin file (as for --external_plugins) whose rewards `-m reward:NAME` may use")
@click.option("--completion-key", default=None, help="column with the completion(s) (default: completions, "
              "responses, completion or response)")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="write the JSON report to this file")
@click.option("--per-item", type=click.Path(dir_okay=False), help="write per-completion scores as JSONL")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="bar chart PNG of the [0,1] metrics")
@click.option("--label", "labels", multiple=True, help="names of the files in tables and plots (e.g. sft chord)")
def eval_cmd(**flags):
    """Score FILE with task metrics; with two files, compare them side by side (before/after).

    \b
    Examples:
        swift infer --adapters ckpt --val_dataset test.jsonl --result_path res.jsonl ...
        swift-ext eval res.jsonl -m accuracy -m reward:think_format
        swift-ext eval pope_sft.jsonl pope_chord.jsonl -m yes_no --label sft --label chord --plot cmp.png

    Several completions of one prompt (a `completions` list, or rows repeating the prompt) give pass@k.
    The file is read as a stream (bounded memory at any size); a prompt's rows should stay together.
    JSON goes to stdout, tables to stderr.
    """
    from rich.table import Table

    from ..scoring import evaluation

    def file_progress(path):
        task = bar.add_task(f"scoring {path}", total=None)
        return lambda n: bar.advance(task, n)

    def show(result):  # every file scored: the bar goes, the tables come (before the plot and -o are written)
        bar.stop()
        labels = result.labels
        for rep, lab in zip(result.reports, labels):
            console.print(f"[bold]{lab}[/bold]: {rep.rows_in} rows, {rep.completions} completions in {rep.groups} "
                          f"prompt groups, reference column '{rep.ref_key}', {len(rep.rejected)} rows rejected")
            for line, why in rep.rejected[:10]:
                console.print(f"  [yellow]rejected[/yellow] {rep.path}:{line}: {escape(why)}")
        if result.comparison is None:
            table = Table("metric", "statistic", "value", title=f"swift-ext eval: {labels[0]}")
            for spec, stats in result.reports[0].metrics.items():
                for stat, v in stats.items():
                    table.add_row(spec, stat, _fmt(v))
        else:
            table = Table("metric", "statistic", labels[0], labels[1], "delta", title="swift-ext eval: comparison")
            for r in result.comparison:
                color = "green" if r["delta"] > 0 else "red" if r["delta"] < 0 else ""
                delta = f"{r['delta']:+.4f}"
                table.add_row(r["metric"], r["stat"], _fmt(r["a"]), _fmt(r["b"]),
                              f"[{color}]{delta}[/{color}]" if color else delta)
        console.print(table)

    opts = evaluation.EvalOptions(**flags)        # every flag is an EvalOptions field
    # streamed: each file is read in batches, per-completion scores go to --per-item as they are computed and
    # every metric folds its summary as prompt groups close, so memory stays bounded whatever the file's size
    with progress() as bar:
        result = evaluation.run(opts, progress=file_progress, on_scored=show)
    if opts.plot_path:
        console.print(f"plot: {opts.plot_path}")
    echo_json(result.as_dict())


def register(cli):
    cli.add_command(eval_cmd)
