"""``swift-ext chord plan`` (step count, validated ``--chord_*`` flags, mu table, plot) and
``swift-ext chord shapes``."""

from __future__ import annotations

import click

from ._common import console, echo_json


@click.group("chord")
def chord_group():
    """CHORD (GRPO + SFT in one loss): plan the mu schedule of a run."""


@chord_group.command("shapes")
@click.option("--json", "as_json", is_flag=True, help="JSON on stdout")
def shapes_cmd(as_json):
    """List the mu shapes (built-in and from plugins) and their parameters."""
    from rich.table import Table

    from .. import plugins
    from ..chord import plan as chord

    reg = plugins.registry("schedule")
    rows = []
    for name, fn in reg.items():
        params = getattr(fn, "params", {})
        rows.append({"name": name, "native": bool(getattr(fn, "native", False)),
                     "summary": ((fn.__doc__ or "").strip().splitlines() or [""])[0],
                     "params": {k: p.default for k, p in params.items()}, "source": reg.source(name)})
    if as_json:
        echo_json(rows)
        return
    table = Table("shape", "what", "parameters (default)", "needs plugin", "source",
                  title=f"CHORD mu shapes (swift-ext chord plan --shape NAME; in training: {chord.SCHEDULE_ENV})")
    for r in rows:
        table.add_row(r["name"], r["summary"], ", ".join(f"{k}={v}" for k, v in r["params"].items()) or "-",
                      "no" if r["native"] else "yes", "built-in" if "built-in" in r["source"] else r["source"])
    console.print(table)


@chord_group.command("plan")
@click.option("--dataset", "datasets", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="GRPO (RL) dataset JSONL, as --dataset; repeatable (its rows are counted)")
@click.option("--rows", type=int, default=None, help="RL dataset size, instead of --dataset")
@click.option("--sft-dataset", "sft_datasets", multiple=True, type=click.Path(dir_okay=False),
              help="CHORD SFT dataset JSONL with assistant answers (becomes --chord_sft_dataset); repeatable")
@click.option("--shape", default="warmup_cosine", show_default=True,
              help="mu shape, optionally with parameters: linear_decay:peak=0.9,valley=0.05 (see `chord shapes`)")
@click.option("--peak", type=float, default=None, help="mu after the warmup (--chord_mu_peak)")
@click.option("--valley", type=float, default=None, help="final mu (--chord_mu_valley)")
@click.option("--warmup-steps", type=int, default=None, help="warmup steps (--chord_mu_warmup_steps; default 0)")
@click.option("--decay-steps", type=int, default=None,
              help="decay steps (--chord_mu_decay_steps; default: the rest of the run)")
@click.option("--epochs", type=float, default=1.0, show_default=True, help="--num_train_epochs")
@click.option("--max-steps", type=int, default=-1, help="--max_steps (overrides epochs when > 0)")
@click.option("--per-device-batch", type=int, default=8, show_default=True,
              help="--per_device_train_batch_size (completions per device per micro-batch)")
@click.option("--grad-accum", type=int, default=1, show_default=True, help="--gradient_accumulation_steps")
@click.option("--gpus", type=int, default=1, show_default=True, help="training processes (NPROC_PER_NODE x nodes)")
@click.option("--num-generations", type=int, default=8, show_default=True, help="--num_generations")
@click.option("--steps-per-generation", type=int, default=None, help="--steps_per_generation")
@click.option("--generation-batch-size", type=int, default=None, help="--generation_batch_size")
@click.option("--num-iterations", type=int, default=1, show_default=True, help="--num_iterations")
@click.option("--split-dataset-ratio", type=float, default=0.0, help="--split_dataset_ratio")
@click.option("--sft-batch-size", type=int, default=1, show_default=True,
              help="--chord_sft_per_device_train_batch_size")
@click.option("--phi/--no-phi", default=False, help="--chord_enable_phi_function")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="write a PNG of mu by step")
@click.option("--args", "print_args", is_flag=True, help="print the flags to paste into `swift rlhf` on stdout")
@click.option("--json", "as_json", is_flag=True, help="the whole plan as JSON on stdout")
@click.option("--table-rows", type=int, default=20, show_default=True, help="rows of the mu table (0: every step)")
def plan_cmd(datasets, rows, sft_datasets, shape, peak, valley, warmup_steps, decay_steps, epochs, max_steps,
             per_device_batch, grad_accum, gpus, num_generations, steps_per_generation, generation_batch_size,
             num_iterations, split_dataset_ratio, sft_batch_size, phi, plot_path, print_args, as_json, table_rows):
    """Plan a CHORD run: total optimizer steps, a checked set of --chord_* flags, the mu of every step.

    \b
    Example:
        swift-ext chord plan --dataset rl.jsonl --sft-dataset sft.jsonl --per-device-batch 8 \\
            --num-generations 8 --grad-accum 2 --epochs 2 --shape linear_decay --peak 0.9 --valley 0.05 --args
    """
    from ..chord import plan as chord
    from ..errors import ConfigError

    if rows is None and not datasets:
        raise ConfigError("give the RL dataset (--dataset FILE) or its size (--rows N) to count the steps")
    n_rows = rows if rows is not None else sum(chord.count_jsonl_rows(p) for p in datasets)
    steps = chord.count_steps(n_rows, per_device_batch, grad_accum, gpus, num_generations, epochs,
                              steps_per_generation, generation_batch_size, num_iterations, max_steps,
                              split_dataset_ratio)
    warm = 0 if warmup_steps is None else warmup_steps
    swift_args = {"chord_mu_peak": peak, "chord_mu_valley": valley, "chord_mu_warmup_steps": warm,
                  "chord_mu_decay_steps": decay_steps if decay_steps is not None
                  else max(steps.total_steps - warm, 0)}
    plan = chord.make_plan(shape, steps, list(sft_datasets), list(datasets), sft_batch_size, phi,
                           swift_args=swift_args)
    _print_summary(plan, table_rows)
    if plot_path:
        chord.plot(plan, None, plot_path)
        console.print(f"plot: {plot_path}")
    if as_json:
        echo_json(plan.as_dict())
    elif print_args:
        click.echo(plan.shell())


def _print_summary(plan, table_rows: int) -> None:
    from rich.table import Table

    s = plan.steps
    console.print(f"[bold]steps[/bold]: {s.train_rows} rows / {s.prompts_per_round} prompts per generation round "
                  f"(= {s.per_device_batch} x {s.gpus} GPU x {s.steps_per_generation} spg / {s.num_generations} "
                  f"generations) -> {s.micro_batches_per_epoch} micro-batches / {s.grad_accum} GA = "
                  f"{s.steps_per_epoch} steps per epoch; total [bold]{s.total_steps}[/bold] optimizer steps")
    console.print(f"[bold]schedule[/bold]: {plan.schedule.spec}"
                  + ("" if plan.schedule.native else f"  (custom shape: the swift-ext plugin applies it; "
                                                     f"set {next(iter(plan.env()))})"))
    for w in plan.warnings:
        console.print(f"[yellow]warning[/yellow]: {w}")
    table_data = plan.table()
    if table_rows and len(table_data) > table_rows:
        stride = max(1, len(table_data) // table_rows)
        shown = table_data[::stride]
        if shown[-1] != table_data[-1]:
            shown.append(table_data[-1])
    else:
        shown = table_data
    table = Table("global_step", "logged at step", "mu", "GRPO weight 1-mu", title="mu by optimizer step")
    for step, mu in shown:
        table.add_row(str(step), str(step + 1), f"{mu:.4f}", f"{1 - mu:.4f}")
    console.print(table)


def register(cli):
    cli.add_command(chord_group)
