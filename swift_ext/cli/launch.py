"""``swift-ext launch``, ``swift-ext migrate`` and ``swift-ext plan memory`` (logic in :mod:`swift_ext.launch`)."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import sys

import click

from ..errors import ConfigError
from ._common import console, echo_json

RECIPES = ("sft", "dpo", "grpo", "chord", "rollout", "export")


def _warn(msg: str) -> None:
    console.print(f"[yellow]warning:[/] {msg}", highlight=False)


@click.command("launch", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": True})
@click.argument("recipe", type=click.Choice(RECIPES))
@click.argument("extra", nargs=-1, type=click.UNPROCESSED)
@click.option("--recipe-file", "template", metavar="YAML",
              help="your own template file (default: the shipped templates/RECIPE.yaml)")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="override a template value: lora_rank=16, env.MAX_PIXELS=..., rollout.port=8001")
@click.option("--gpus", metavar="IDS",
              help="device ids of this node: 0-7, 0,1,4, or one id with a trailing comma (4,); default: "
                   "SWIFT_EXT_GPUS, CUDA_VISIBLE_DEVICES, nvidia-smi -L, else none (CPU). A bare number (4) is "
                   "refused as ambiguous: use 4, for GPU 4 or --num-gpus 4 for GPUs 0-3")
@click.option("--num-gpus", type=int, metavar="N", help="a count: the first N devices (0..N-1)")
@click.option("--rollout-gpus", metavar="IDS",
              help="device ids for the rollout server, e.g. 6,7 or 4, (ids from --gpus)")
@click.option("--num-rollout-gpus", type=int, metavar="N", help="a count: the last N devices of --gpus")
@click.option("--nproc", type=int, help="trainer processes per node (CPU runs; normally = trainer GPUs)")
@click.option("--device", type=click.Choice(["auto", "gpu", "cpu"]), default="auto", show_default=True,
              help="cpu: run on CPU even where GPUs exist (CUDA_VISIBLE_DEVICES emptied; with several ranks "
                   "--use_cpu true --ddp_backend gloo are added); auto: CPU when no GPU is given or found")
@click.option("--nnodes", type=int, default=1, show_default=True, help="training nodes (torchrun via ms-swift)")
@click.option("--node-rank", type=int, default=0, show_default=True)
@click.option("--master-addr", help="address of node 0 (multi-node)")
@click.option("--master-port", type=int, default=29500, show_default=True)
@click.option("--rollout-host", help="rollout server started elsewhere: only wait for its /health")
@click.option("--dry-run", is_flag=True, help="print the commands as a bash script; run nothing")
@click.option("--json", "as_json", is_flag=True, help="print the plan as JSON; run nothing")
@click.option("--slurm", is_flag=True, help="print an sbatch script for --nnodes nodes (last node: rollout server)")
@click.option("--gpus-per-node", type=int, default=8, show_default=True, help="with --slurm")
@click.option("--partition", help="with --slurm")
@click.option("--time", "time_limit", help="with --slurm, e.g. 24:00:00")
@click.option("--log-dir", default=None, help="default: swift-ext-logs/RECIPE-TIMESTAMP")
@click.option("--swift", "swift_cmd", default=None, envvar="SWIFT_EXT_SWIFT",
              help="the swift executable (a command line; default: swift)")
@click.option("--grace", type=float, default=10.0, show_default=True, help="seconds between SIGTERM and SIGKILL")
@click.option("--no-check", is_flag=True,
              help="skip the checks made before anything starts: flag names against the installed ms-swift's "
                   "arguments, local dataset files, GRPO batch arithmetic")
def launch_cmd(**flags):
    """Run a recipe (sft, dpo, grpo, chord, rollout, export) from its YAML template.

    \b
    Extra swift flags go after the recipe (or after --) and win over the template;
    3.x flag names are translated with a warning.
    \b
    Before anything starts (also for --dry-run / --json), every rendered flag is checked against the
    installed ms-swift's argument dataclasses (a typo gets the nearest name; a `swift rollout` flag given
    to the trainer is named as such), local dataset files must exist (hub ids are not checked; with
    --dry-run / --json a missing file only warns) and GRPO's batch arithmetic is checked like
    `swift-ext chord plan` does. --no-check skips this.
    \b
        swift-ext launch sft --set dataset=data.jsonl --gpus 0-3 -- --max_steps 100
        swift-ext launch grpo --gpus 0-7 --rollout-gpus 6,7 --set dataset=math.jsonl --dry-run
        swift-ext launch grpo --num-gpus 8 --num-rollout-gpus 2 --set dataset=math.jsonl --dry-run
        swift-ext launch rollout --gpus 4, --set model=Qwen/Qwen2.5-7B-Instruct
        swift-ext launch grpo --slurm --nnodes 3 --set dataset=math.jsonl > job.sbatch
        swift-ext launch grpo --device cpu --nproc 2 --set dataset=math.jsonl --set use_vllm=false
    \b
    Several nodes: run the same command on every node with its own --node-rank (docs/scaling.md).
    """
    from ..launch.options import LaunchOptions, launch, plan_launch, sbatch
    from ..launch.shell import render_plan

    try:
        opts = LaunchOptions(**flags)                # every flag is a LaunchOptions field
    except ConfigError as exc:                       # two flags that exclude each other
        raise click.UsageError(str(exc)) from None
    if opts.slurm:
        click.echo(sbatch(opts), nl=False)
        return
    plan = plan_launch(opts, warn=_warn)
    for w in plan.warnings:
        _warn(w)
    log_dir = opts.logs()
    if opts.as_json:
        echo_json(plan.to_dict())
        return
    if opts.dry_run:
        click.echo(render_plan(plan, log_dir), nl=False)
        return
    sys.exit(launch(opts, plan, log_dir))


@click.command("migrate")
@click.argument("script", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="write here instead of rewriting SCRIPT")
@click.option("--check", is_flag=True, help="only report; exit 1 when the file needs changes or has problems")
def migrate_cmd(script, output, check):
    """Rewrite an ms-swift 3.x (or 2.x) launch script or plugin file for 4.x.

    \b
    A shell script: flags are renamed (--train_type -> --tuner_type, --dtype -> --torch_dtype, ...);
    removed flags, and flags the installed ms-swift does not know, are all listed (file:line, with the
    nearest name) and nothing is rewritten.
    \b
    A .py plugin file (rewards, multi-turn schedulers, ...): imports move to the 4.x packages
    (from swift.plugin import ORM, orms -> from swift.rewards import ORM, orms; swift.llm names to
    swift.template / swift.dataset / swift.infer_engine / ...), renamed registries are renamed
    (loss_mapping -> loss_map, ...) and ORM subclasses' __init__ accept args=/**kwargs; what cannot be
    rewritten (a tokenizer argument, extra_callbacks, context managers) is reported as file:line
    problems (exit 1).
    \b
    SCRIPT is rewritten atomically and the original kept as SCRIPT.bak, unless -o is given.
    """
    from ..io import atomic_write
    from ..launch.migrate import migrate_plugin, migrate_script

    with open(script, encoding="utf-8") as fh:
        text = fh.read()
    problems = []
    if script.endswith(".py"):
        new, notes, problems = migrate_plugin(text, source=script)
    else:
        from ..bridge.arguments import swift_fields

        new, notes = migrate_script(text, source=script, fields=swift_fields())
    for n in notes:
        _warn(n)
    for p in problems:
        console.print(f"[red]cannot migrate:[/] {p}", highlight=False)
    if check:
        sys.exit(1 if new != text or problems else 0)
    target = output or script
    if new == text and not output:
        console.print(f"{script}: nothing to change")
        sys.exit(1 if problems else 0)
    mode = os.stat(script).st_mode & 0o777
    if not output:
        shutil.copy2(script, script + ".bak")
    with atomic_write(target) as fh:
        fh.write(new)
    os.chmod(target, mode)
    console.print(f"{target}: {len(notes)} change(s)" + ("" if output else f"; original kept as {script}.bak")
                  + (f"; {len(problems)} problem(s) left to fix by hand" if problems else ""))
    if problems:
        sys.exit(1)


_SIZE = re.compile(r"^\s*([0-9.]+(?:e[0-9]+)?)\s*([kmbt]?)\s*$", re.IGNORECASE)


#: ``plan memory`` flags named otherwise than their MemoryInput field (field -> flag); flags that are no field
MEMORY_RENAMED = {"gpu_mem_gb": "gpu_mem", "rollout": "rollout_mode"}
MEMORY_CLI_ONLY = ("model_dir", "as_json")


def parse_params(text: str) -> float:
    """``8B`` -> 8e9, ``500M`` -> 5e8, ``7.6e9`` -> 7.6e9."""
    m = _SIZE.match(str(text))
    if not m:
        raise click.BadParameter(f"{text!r}: use a count like 8B, 500M or 7.6e9")
    return float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}[m.group(2).lower()]


@click.group("plan")
def plan_group():
    """Planning helpers (GPU memory)."""


@plan_group.command("memory")
@click.option("--params", help="parameter count: 8B, 500M, 7.6e9")
@click.option("--model", "model_dir", type=click.Path(exists=True, file_okay=False),
              help="local model dir: params from safetensors headers, sizes from config.json")
@click.option("--tuning", type=click.Choice(["full", "lora", "qlora"]), default="lora", show_default=True)
@click.option("--dtype", default="bf16", show_default=True, help="bf16, fp16, fp32")
@click.option("--rlhf", type=click.Choice(["sft", "dpo", "grpo", "chord"]), default="sft", show_default=True)
@click.option("--beta", type=float, help="GRPO beta (a reference model only when > 0; ms-swift default 0.04)")
@click.option("--ref-model", type=click.Choice(["auto", "separate", "shared", "none"]), default="auto",
              show_default=True, help="auto: separate copy for full tuning, adapter-disabled base for LoRA")
@click.option("--trainable-fraction", type=float, help="LoRA/QLoRA trained share of params (default 0.005)")
@click.option("--optimizer", default="adamw", show_default=True)
@click.option("--optim-dtype", help="optimizer state dtype (default: --dtype)")
@click.option("--zero", type=click.IntRange(0, 3), default=0, show_default=True, help="DeepSpeed ZeRO stage")
@click.option("--n-gpus", type=int,
              help="data-parallel trainer GPUs (ZeRO sharding, gradient accumulation); default: the trainer share "
                   "of --total-gpus, else 1")
@click.option("--seq-len", type=int, help="max_length, for the activation estimate")
@click.option("--hidden-size", type=int)
@click.option("--num-layers", type=int)
@click.option("--vocab-size", type=int)
@click.option("--gpu-mem", type=float, default=80.0, show_default=True, help="GB per GPU")
@click.option("--global-batch", type=int, default=16, show_default=True)
@click.option("--total-gpus", type=int, help="GPUs of the node (GRPO: recommend the rollout share)")
@click.option("--num-kv-heads", type=int, help="KV heads (with --head-dim; default from --model, else = hidden)")
@click.option("--head-dim", type=int)
@click.option("--vision-params", help="vision tower + aligner parameters, e.g. 0.6B (default: counted from --model)")
@click.option("--freeze-vit/--no-freeze-vit", default=True, show_default=True,
              help="the vision tower trains nothing (ms-swift's default)")
@click.option("--rollout", "rollout_mode", type=click.Choice(["server", "colocate", "none"]),
              help="GRPO/CHORD generation: a vLLM server on its own GPUs (default), vLLM colocated in the "
                   "trainer, or HF generate in the trainer")
@click.option("--vllm-max-model-len", type=int, default=8192, show_default=True,
              help="the KV cache of one sequence this long must fit on the vLLM side")
@click.option("--vllm-tp", type=int, help="vLLM tensor-parallel size (default: recommended / 1)")
@click.option("--num-generations", type=int, default=8, show_default=True, help="GRPO completions per prompt")
@click.option("--json", "as_json", is_flag=True)
def memory_cmd(**flags):
    """Estimate GPU memory per device for full / LoRA / QLoRA training (an estimate: see docs/launching.md).

    \b
    Counted: weights, gradients, optimizer states, the reference model (DPO; GRPO/CHORD with beta > 0:
    a separate copy for full tuning, the adapter-disabled base for LoRA), activations (with the model's
    shape; x2 for DPO's chosen + rejected), GRPO generation (--rollout: the vLLM server's GPUs apart,
    vLLM colocated on every trainer GPU, or HF generate's KV cache) with the KV cache of
    --vllm-max-model-len tokens, and a frozen vision tower (weights only). Gradient accumulation is
    computed for the trainer GPUs actually used (--n-gpus, else the trainer share of --total-gpus).
    """
    from ..launch.memory import MemoryInput, estimate, model_facts

    facts = model_facts(flags["model_dir"]) if flags["model_dir"] else {}
    if flags["params"] is None and not facts:
        raise click.UsageError("give --params (e.g. 8B) or --model DIR")
    # the flags are MemoryInput's fields (tests/meta/test_options.py): only sizes and the model's shape need work
    values = {f.name: flags[MEMORY_RENAMED.get(f.name, f.name)] for f in dataclasses.fields(MemoryInput)}
    values["params"] = parse_params(values["params"]) if values["params"] else facts["params"]
    values["vision_params"] = parse_params(values["vision_params"]) if values["vision_params"] \
        else facts.get("vision_params", 0.0)
    values["rlhf"] = None if values["rlhf"] == "sft" else values["rlhf"]
    for shape in ("hidden_size", "num_layers", "vocab_size", "num_kv_heads", "head_dim"):
        values[shape] = values[shape] or facts.get(shape)
    inp = MemoryInput(**values)
    est = estimate(inp)
    if flags["as_json"]:
        echo_json({"input": inp.__dict__, **est.to_dict()})
        return
    _print_estimate(inp, est)


def _gb(v: float) -> str:
    return f"{v:.2f}" if v == 0 or v >= 0.01 else f"{v:.2e}"


def _print_estimate(inp, est) -> None:
    from rich.table import Table

    table = Table("part", "GB per GPU", title=f"{inp.params / 1e9:.2f}B params, {inp.tuning}, {inp.dtype}"
                  + (f", {inp.rlhf}" if inp.rlhf else "") + (f", ZeRO-{inp.zero} x {inp.n_gpus}" if inp.zero else ""))
    for k, v in est.parts_gb.items():
        table.add_row(k, _gb(v))
    table.add_row("[b]fixed total[/]", f"[b]{_gb(est.fixed_gb)}[/]")
    if est.act_per_seq_gb:
        table.add_row("activations / sequence", f"{_gb(est.act_per_seq_gb)} ({_gb(est.act_per_seq_ckpt_gb)} with "
                      "gradient checkpointing)")
    console.print(table)
    if est.rollout_gpu:
        ro = est.rollout_gpu
        kv = (f"KV cache {_gb(ro['kv_cache_per_sequence_gb'])} GB per {inp.vllm_max_model_len}-token sequence, "
              f"{ro['max_concurrent_sequences']} sequence(s) at once" if "kv_cache_per_sequence_gb" in ro
              else f"KV cache {ro['kv_cache']}")
        console.print(f"rollout server GPU (vLLM, TP {ro['tp']}): weights {_gb(ro['weights_gb'])} GB; {kv}",
                      highlight=False)
    for n in est.notes:
        console.print(f"note: {n}", highlight=False)
    for k, v in est.recommendation.items():
        console.print(f"{k}: {v}", highlight=False)


def register(cli):
    cli.add_command(launch_cmd)
    cli.add_command(migrate_cmd)
    existing = cli.commands.get("plan")
    if isinstance(existing, click.Group):
        existing.add_command(plan_group.commands["memory"])
    else:
        cli.add_command(plan_group)
