"""``swift-ext demo``: a short real GRPO run with swift-ext rewards (tiny local model by default)."""

from __future__ import annotations

import click

from ..testing.tiny import KINDS
from ._common import console, echo_json


class _RichReporter:
    """Shows each demo step and swift's training progress on stderr."""

    def __init__(self, progress):
        self.progress = progress
        self.task = None

    def step_started(self, step, index, total):
        self.task = self.progress.add_task(f"[{index}/{total}] {step.title}", total=None, status="")

    def step_done(self, step, seconds):
        task = self.progress.tasks[-1]
        self.progress.update(self.task, total=task.total or 1, completed=task.total or 1, status=f"{seconds:.1f} s")

    def note(self, message):
        self.progress.console.print(f"[yellow]note:[/] {message}", soft_wrap=True)

    def swift_progress(self, done, total, last_line):
        self.progress.update(self.task, total=total, completed=done, status=last_line[-70:])


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=20),
                    MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("[dim]{task.fields[status]}"),
                    console=console)


def _table(result, max_columns: int = 10):
    """Rewards as rows, training steps as columns (a subset of steps when there are many)."""
    from rich.table import Table

    steps = result.steps
    if len(steps) > max_columns:  # first, last and evenly spaced steps in between
        picks = sorted({round(i * (len(steps) - 1) / (max_columns - 1)) for i in range(max_columns)})
        steps = [steps[i] for i in picks]
    table = Table(title="reward means per training step (from the run's logging.jsonl)",
                  caption=None if steps is result.steps else "a subset of the steps; --json has all of them")
    table.add_column("reward", no_wrap=True)
    for row in steps:
        table.add_column(f"step {row['step']}", justify="right", no_wrap=True)

    def fmt(value):
        return "-" if value is None else f"{value:.4g}"

    for name in result.rewards:
        table.add_row(name, *(fmt(row["rewards"].get(name)) for row in steps))
    table.add_row("[bold]reward[/] (weighted sum)", *(fmt(row["reward"]) for row in steps), end_section=False)
    table.add_row("loss", *(fmt(row["loss"]) for row in steps))
    return table


def _learning(result):
    """The compact terminal story of the run: curves, samples, clipping, zeros, the report."""
    from ..demo import sparkline

    con = console
    con.print("[bold]reward curves[/] (each scaled to its own min..max; first → last quarter mean):")
    width = max(len(n) for n in [*result.rewards, "reward"])
    for name in result.rewards:
        values = [s["rewards"].get(name) for s in result.steps]
        first_last = _quarters(values)
        con.print(f"  {name:<{width}}  {sparkline(values)}  {first_last}", highlight=False)
    learned = result.learned
    if learned:
        delta = learned["last"] - learned["first"]
        verdict = "rose" if delta > 0.02 else "did not rise"
        con.print(f"[bold]{learned['reward']}[/] {verdict}: {learned['first']:.3f} in the first quarter of "
                  f"{learned['steps']} steps, {learned['last']:.3f} in the last", highlight=False)
    for sample in result.samples:
        scores = ", ".join(f"{k}={'-' if v is None else f'{v:.3f}'}" for k, v in sample["scores"].items())
        text = " ".join(str(sample["completion"]).split())
        text = text if len(text) <= 90 else text[:89] + "…"
        con.print(f"[bold]step {sample['step']} sample[/] (gold {sample['gold']!r}): {text!r}", highlight=False,
                  markup=True)
        con.print(f"    {scores}", highlight=False)
    health = [s.get("health", {}) for s in result.steps]
    clipped = [h.get("completions/clipped_ratio") for h in health if h.get("completions/clipped_ratio") is not None]
    ratio = [h.get("clip_ratio/region_mean") for h in health if h.get("clip_ratio/region_mean") is not None]
    if clipped:
        con.print(f"clipped ratio: {sum(clipped) / len(clipped):.0%} of completions hit --max_completion_length "
                  f"(a random model rarely ends early); policy-ratio clipping {max(ratio or [0]):.3g} at most",
                  highlight=False)
    if result.zeros:
        con.print("0 by construction on a tiny random model: " + "; ".join(result.zeros), highlight=False)


def _quarters(values):
    from ..demo import quarter_means

    means = quarter_means(values)
    return "" if means is None else f"{means[0]:.3f} → {means[1]:.3f}"


@click.command("demo", context_settings={"ignore_unknown_options": False})
@click.option("--workdir", type=click.Path(file_okay=False), default=None,
              help="work folder for the model, data and runs [default: $SWIFT_EXT_DEMO_DIR or ~/.cache/swift-ext/demo]")
@click.option("--quick", is_flag=True,
              help="the 2-step smoke run instead: tiny Qwen2-VL, image rows, LoRA (proves the wiring in ~30 s)")
@click.option("--model", default=None, help="a real model dir or hub id (default: build a tiny random-weight one)")
@click.option("--model-type", default=None, help="ms-swift --model_type for --model")
@click.option("--template", default=None, help="ms-swift --template for --model")
@click.option("--tiny-kind", default=None, type=click.Choice(list(KINDS)),
              help="which tiny model to build without --model [default: text; --quick: qwen2_vl]")
@click.option("--dataset", default=None, help="GRPO dataset (file or hub id; default: bundled sample rows)")
@click.option("--reward", "rewards", multiple=True, metavar="SPEC",
              help="reward name, parametrised as name:key=value,... (repeatable) "
                   "[default: teacher_similarity:metric=chrf, think_format; --quick: "
                   "exact_match:extract=last_number, think_format, random:seed=7]")
@click.option("--max-steps", default=None, type=int, help="[default: 40; --quick: 2]")
@click.option("--num-generations", default=None, type=int, help="[default: 8; --quick: 2]")
@click.option("--batch-size", default=None, type=int,
              help="per-device train batch (completions) [default: 8; --quick: 4]")
@click.option("--max-completion-length", default=None, type=int, help="[default: 12; --quick: 16]")
@click.option("--learning-rate", default=None, type=float, help="[default: 3e-2; --quick: 1e-4]")
@click.option("--use-vllm/--no-use-vllm", default=False, show_default=True, help="vLLM rollouts (GPU only)")
@click.option("--tuner-type", default=None, type=click.Choice(["lora", "full"]),
              help="[default: full; --quick: lora]")
@click.option("--report/--no-report", default=True, show_default=True, help="write the run's HTML report")
@click.option("--timeout", default=None, type=float, help="kill swift after this many seconds")
@click.option("--json", "as_json", is_flag=True, help="print the per-step metrics as JSON on stdout")
@click.argument("swift_args", nargs=-1, type=click.UNPROCESSED)
def demo_cmd(as_json, rewards, swift_args, **flags):
    """Run a short real GRPO training with swift-ext rewards and watch a reward being learned.

    \b
    With no options: no network, no GPU, about a minute of training on 2 CPU cores. Builds a tiny
    random-weight Qwen3 text model in the work folder, converts the bundled toy task ("chant ka three
    times", answer in <answer>) to GRPO rows, runs 40 steps of `swift rlhf --rlhf_type grpo --use_vllm false`
    with rewards loaded through swift-ext's plugin file, then shows each reward's curve, sample completions
    with their scores, and the path of the run's HTML report (`swift-ext report`).
    \b
    Examples:
        swift-ext demo
        swift-ext demo --quick                 # 2 steps on a tiny Qwen2-VL with images: the wiring only
        swift-ext demo --json > metrics.json
        swift-ext demo --model Qwen/Qwen2.5-VL-3B-Instruct --dataset my.jsonl --use-vllm --max-steps 20
        swift-ext demo -- --beta 0.0          # anything after -- goes to swift as-is
    """
    from ..demo import DemoConfig, DemoError, run_demo

    # every flag but --json is a DemoConfig field (tests/meta/test_options.py); swift= is library only
    config = DemoConfig(rewards=tuple(rewards) or None, swift_args=tuple(swift_args), **flags)
    console.print(f"[bold]swift-ext demo[/] work folder: {config.resolved_workdir()}")
    try:
        with _progress() as progress:
            result = run_demo(config, reporter=_RichReporter(progress))
    except DemoError as exc:
        if exc.log_tail:
            console.print(f"[red]--- last lines of the swift log ({exc.log_path}) ---[/]")
            console.print(exc.log_tail, markup=False, highlight=False)
        raise
    console.print(_table(result))
    if len(result.steps) >= 4:
        _learning(result)
    elif result.zeros:
        console.print("0 by construction on a tiny random model: " + "; ".join(result.zeros), highlight=False)
    console.print(f"model: {result.model}\ndataset: {result.dataset}\nrun: {result.run_dir}\nswift log: {result.log}")
    console.print("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items()))
    if result.report:
        console.print(f"[bold]report:[/] {result.report}  (open it in a browser; `swift-ext report` makes one "
                      f"for any swift run)")
    if as_json:
        echo_json(result.to_json())


def register(cli):
    cli.add_command(demo_cmd)
