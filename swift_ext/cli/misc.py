"""``swift-ext plugin-path``, ``swift-ext plugins`` and ``swift-ext doctor``."""

from __future__ import annotations

import os

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


@click.command("doctor")
@click.option("--gpu", is_flag=True, help="check for a GPU training node: CUDA devices, vLLM and DeepSpeed required")
@click.option("--port", "ports", multiple=True, type=int, help="also check that this port is free; repeatable")
@click.option("--json", "as_json", is_flag=True, help="the checks as JSON on stdout")
@click.option("--smoke", is_flag=True,
              help="run the end-to-end smoke run instead (no network): tiny model built here, swift rollout (vLLM) "
                   "through the launcher, 5 GRPO steps with swift-ext rewards, filter on 32 prompts; on a node "
                   "without GPU or vLLM the vLLM parts are skipped and the rest runs on CPU")
@click.option("--work", type=click.Path(file_okay=False), default=None,
              help="with --smoke: folder for its data, outputs and logs (default: a new temporary folder)")
@click.option("--timeout", type=float, default=1200.0, show_default=True, help="with --smoke: seconds per step")
def doctor_cmd(gpu, ports, as_json, smoke, work, timeout):
    """Check that this machine can run swift-ext and ms-swift: torch / torchvision match, the CPU shim, GPUs,
    ms-swift, vLLM / DeepSpeed / flash-attn against the versions that fit ms-swift 4.6, free ports for the
    rollout server and its NCCL group, installed plugins. Exits 1 when something required is missing.

    \b
    --smoke runs the real thing end to end and prints one table of what passed (exit 1 if a step failed):
        swift-ext doctor --smoke --work /tmp/smoke       # bench/gpu_smoke.sh on a GPU node
    """
    if smoke:
        _smoke(work, timeout, as_json)
        return
    from rich.markup import escape
    from rich.table import Table

    from ..launch import doctor

    checks = doctor.run_checks(gpu=gpu, ports=ports)
    if as_json:
        echo_json([c.as_dict() for c in checks])
    else:
        colour = {"ok": "green", "warn": "yellow", "fail": "red"}
        table = Table("check", "status", "found", "what to do", title="swift-ext doctor" + (" (GPU node)" if gpu else ""))
        for c in checks:
            table.add_row(c.name, f"[{colour[c.status]}]{c.status}[/]", escape(c.value), escape(c.detail))
        console.print(table)
    bad = doctor.failed(checks)
    if bad:
        console.print(f"[red]{len(bad)} required check(s) failed:[/] {', '.join(c.name for c in bad)}")
        raise SystemExit(1)


def _smoke(work, timeout, as_json):
    import tempfile
    import time
    from pathlib import Path

    from rich.markup import escape
    from rich.table import Table

    from .. import cpu_compat
    from ..launch import smoke
    from ..launch.gpus import detect_gpus
    from ..testing import tiny

    folder = Path(work or tempfile.mkdtemp(prefix="swift-ext-smoke-")).resolve()
    gpus = len(detect_gpus() or ())
    vllm = smoke.vllm_available()
    t0 = time.monotonic()
    build = smoke.SmokeStep("tiny model built locally (no hub)")
    try:
        model = tiny.ensure("text", folder / "tiny")
        build.status, build.detail = "passed", model.path
    except Exception as exc:  # reported in the table
        build.status, build.detail = "failed", f"{type(exc).__name__}: {exc}"
    build.seconds = round(time.monotonic() - t0, 1)
    steps = [build]
    if build.status == "passed":
        if not (gpus and vllm):
            console.print(f"[yellow]{escape(smoke.SKIP_VLLM)}[/] ({gpus} GPU(s), vLLM "
                          f"{'installed' if vllm else 'not installed'}); the other steps run on CPU", highlight=False)
        plan = smoke.plan_smoke({"path": model.path, "model_type": model.model_type, "template": model.template},
                                folder, gpus, vllm)
        env = tiny.offline_env(cpu_compat.subprocess_env(os.environ))
        if plan.on_gpu:
            env.pop("CUDA_VISIBLE_DEVICES", None)  # offline_env hides GPUs for CPU tests; the launcher picks them
        steps += smoke.run_smoke(plan, env, timeout=timeout, say=lambda m: console.print(m, highlight=False))
    if as_json:
        echo_json({"work": str(folder), "gpus": gpus, "vllm": vllm, "steps": [s.as_dict() for s in steps]})
    colour = {"passed": "green", "failed": "red", "skipped": "yellow", "pending": "yellow"}
    table = Table("step", "status", "seconds", "detail", title=f"swift-ext smoke ({gpus} GPU(s), vLLM "
                  f"{'yes' if vllm else 'no'}; {folder})")
    for s in steps:
        table.add_row(s.name, f"[{colour[s.status]}]{s.status}[/]", f"{s.seconds:.1f}", escape(s.detail))
    console.print(table)
    if any(s.status == "failed" for s in steps):
        raise SystemExit(1)


def register(cli):
    cli.add_command(plugin_path_cmd)
    cli.add_command(plugins_cmd)
    cli.add_command(doctor_cmd)
