"""``swift-ext eval``: score result files (``swift infer`` output or any JSONL with completions and
references) with task metrics and registered rewards; compare two files side by side."""

from __future__ import annotations

import contextlib

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
def eval_cmd(files, metrics, ref_key, plugin_files, completion_key, output, per_item, plot_path, labels):
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
    from ..errors import ConfigError
    from ..io import JsonlWriter, atomic_write

    if len(files) > 2:
        raise ConfigError("give one result file, or two to compare")
    if per_item and len(files) > 1:
        raise ConfigError("--per-item works with one file")
    metrics = list(metrics) or ["accuracy"]
    labels = list(labels) or [str(f) for f in files]
    if len(labels) != len(files):
        raise ConfigError(f"{len(labels)} --label for {len(files)} files")
    reports = []
    # streamed: each file is read in batches, per-completion scores go to --per-item as they are computed and
    # every metric folds its summary as prompt groups close, so memory stays bounded whatever the file's size
    with contextlib.ExitStack() as stack:
        writer = stack.enter_context(JsonlWriter(per_item)) if per_item else None
        bar = stack.enter_context(progress())
        for f in files:
            task = bar.add_task(f"scoring {f}", total=None)
            reports.append(evaluation.evaluate(f, metrics, ref_key, progress=lambda n: bar.advance(task, n),
                                               completion_key=completion_key, plugin_files=plugin_files,
                                               per_item=writer.write if writer else None))
    for rep, lab in zip(reports, labels):
        console.print(f"[bold]{lab}[/bold]: {rep.rows_in} rows, {rep.completions} completions in {rep.groups} "
                      f"prompt groups, reference column '{rep.ref_key}', {len(rep.rejected)} rows rejected")
        for line, why in rep.rejected[:10]:
            console.print(f"  [yellow]rejected[/yellow] {rep.path}:{line}: {escape(why)}")
    if len(reports) == 1:
        rep = reports[0]
        table = Table("metric", "statistic", "value", title=f"swift-ext eval: {labels[0]}")
        for spec, stats in rep.metrics.items():
            for stat, v in stats.items():
                table.add_row(spec, stat, _fmt(v))
        console.print(table)
        result = rep.as_dict()
    else:
        rows = evaluation.compare(reports[0], reports[1])
        table = Table("metric", "statistic", labels[0], labels[1], "delta", title="swift-ext eval: comparison")
        for r in rows:
            color = "green" if r["delta"] > 0 else "red" if r["delta"] < 0 else ""
            delta = f"{r['delta']:+.4f}"
            table.add_row(r["metric"], r["stat"], _fmt(r["a"]), _fmt(r["b"]),
                          f"[{color}]{delta}[/{color}]" if color else delta)
        console.print(table)
        result = {"files": [r.as_dict() for r in reports], "labels": labels, "comparison": rows}
    if plot_path:
        evaluation.plot_reports(reports, plot_path, labels)
        console.print(f"plot: {plot_path}")
    if output:
        import json

        with atomic_write(output) as fh:
            fh.write(json.dumps(result, ensure_ascii=False, indent=2, default=str) + "\n")
    echo_json(result)


def register(cli):
    cli.add_command(eval_cmd)
