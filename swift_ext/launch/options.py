"""What ``swift-ext launch`` takes, declared once: :class:`LaunchOptions` (one field per flag; the command's flags
are checked against the fields by tests/meta/test_options.py), and the library functions the command is a thin
shell over: :func:`plan_launch` (the checked plan, nothing started), :func:`sbatch` (the ``--slurm`` script) and
:func:`launch` (run the plan).

    >>> from swift_ext.launch.options import LaunchOptions, plan_launch
    >>> plan = plan_launch(LaunchOptions("sft", sets=("dataset=data.jsonl",), gpus="0-3", dry_run=True,
    ...                                  no_check=True, swift_cmd="swift"))
    >>> plan.steps[0].env["CUDA_VISIBLE_DEVICES"]
    '0,1,2,3'
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Mapping, Optional, Tuple, Union

from ..errors import ConfigError
from .plan import LaunchPlan

Warn = Callable[[str], None]


@dataclass
class LaunchOptions:
    """One launch of a recipe (``sft``, ``dpo``, ``grpo``, ``chord``, ``rollout``, ``export``): its template
    (``template``: a YAML file instead of the recipe's own), ``--set`` values, extra swift flags, the devices
    (ids or a count, for training and for the rollout server; ``device="cpu"`` runs on CPU even where GPUs
    exist), the nodes, what to print instead of running
    (``dry_run``, ``as_json``, ``slurm``) and how to run (``log_dir``, the swift command, ``grace``)."""

    recipe: str
    extra: Tuple[str, ...] = ()
    template: Optional[str] = None
    sets: Tuple[str, ...] = ()
    gpus: Optional[str] = None
    num_gpus: Optional[int] = None
    rollout_gpus: Optional[str] = None
    num_rollout_gpus: Optional[int] = None
    nproc: Optional[int] = None
    device: str = "auto"  # auto | gpu | cpu: cpu runs on CPU even where GPUs exist
    nnodes: int = 1
    node_rank: int = 0
    master_addr: Optional[str] = None
    master_port: int = 29500
    rollout_host: Optional[str] = None
    dry_run: bool = False
    as_json: bool = False
    slurm: bool = False
    gpus_per_node: int = 8
    partition: Optional[str] = None
    time_limit: Optional[str] = None
    log_dir: Optional[str] = None
    swift_cmd: Optional[str] = None
    grace: float = 10.0
    no_check: bool = False

    def __post_init__(self) -> None:
        self.extra = tuple(e for e in self.extra if e != "--")
        for ids, count in (("gpus", "num_gpus"), ("rollout_gpus", "num_rollout_gpus")):
            if getattr(self, ids) is not None and getattr(self, count) is not None:
                raise ConfigError(f"give --{ids.replace('_', '-')} (device ids) or --{count.replace('_', '-')} "
                                  f"(a count), not both")

    @property
    def render_only(self) -> bool:
        """Nothing runs: a script or the plan is printed."""
        return self.dry_run or self.as_json or self.slurm

    def swift(self) -> List[str]:
        """The swift command line: ``swift_cmd``, else ``swift`` next to this Python (plain ``swift`` in scripts)."""
        if self.swift_cmd:
            return shlex.split(self.swift_cmd)
        here = Path(sys.executable).with_name("swift")
        return [str(here) if here.exists() and not self.render_only else "swift"]

    def devices(self) -> Tuple[Union[str, int, None], Union[str, int, None]]:
        """(trainer devices, rollout devices): ids (a string) or a count (an int), or None."""
        return (self.num_gpus if self.num_gpus is not None else self.gpus,
                self.num_rollout_gpus if self.num_rollout_gpus is not None else self.rollout_gpus)

    def logs(self) -> str:
        """``log_dir``, else ``swift-ext-logs/RECIPE-TIMESTAMP`` (``-nodeN`` added with several nodes: nodes that
        share a file system, or are simulated on one machine, never mix their logs)."""
        node = f"-node{self.node_rank}" if self.nnodes > 1 else ""
        return self.log_dir or os.path.join("swift-ext-logs",
                                            f"{self.recipe}-{time.strftime('%Y%m%d-%H%M%S')}{node}")


def sbatch(opts: LaunchOptions) -> str:
    """The ``--slurm`` script: an sbatch job for ``nnodes`` nodes (the last one runs the rollout server)."""
    from .slurm import render_sbatch
    from .templates import load_template

    return render_sbatch(opts.recipe, load_template(opts.template or opts.recipe), nodes=opts.nnodes,
                         gpus_per_node=opts.gpus_per_node, sets=opts.sets, extra=opts.extra, partition=opts.partition,
                         time_limit=opts.time_limit, master_port=opts.master_port, swift=opts.swift())


def plan_launch(opts: LaunchOptions, warn: Optional[Warn] = None,
                env: Optional[Mapping[str, str]] = None) -> LaunchPlan:
    """The plan of ``opts``, checked before anything starts (unless ``no_check``): flag names against the
    installed ms-swift's arguments, local dataset files (only a warning when nothing runs), GRPO's batch
    arithmetic. Devices not given are detected (``SWIFT_EXT_GPUS``, ``CUDA_VISIBLE_DEVICES``, ``nvidia-smi``,
    else CPU). Raises ConfigError with every reason; notes go to ``plan.warnings``."""
    from .gpus import detect_gpus
    from .plan import Nodes, build_plan
    from .templates import load_template

    tpl = load_template(opts.template or opts.recipe)
    gpus, rollout_gpus = opts.devices()
    if gpus is None and opts.device != "cpu":
        found = detect_gpus(warn=warn or (lambda _: None))
        gpus = ",".join(map(str, found)) + "," if found else None
    plan = build_plan(opts.recipe, tpl, sets=opts.sets, extra=list(opts.extra), gpus=gpus, rollout_gpus=rollout_gpus,
                      nproc=opts.nproc, nodes=Nodes(opts.nnodes, opts.node_rank, opts.master_addr, opts.master_port),
                      rollout_host=opts.rollout_host, swift=opts.swift(),
                      base_env=os.environ if env is None else env, device=opts.device)
    if not opts.no_check:
        from ..bridge.arguments import swift_fields
        from .check import check_plan

        errors, notes = check_plan(plan, fields=swift_fields(), render_only=opts.dry_run or opts.as_json)
        plan.warnings.extend(notes)
        if errors:
            raise ConfigError(f"launch {opts.recipe}: " + ("\n  ".join(["refused before starting anything:", *errors]))
                              + "\n(--no-check skips these checks)")
    return plan


def launch(opts: LaunchOptions, plan: LaunchPlan, log_dir: Optional[str] = None) -> int:
    """Run ``plan`` (from :func:`plan_launch`): rollout server first when there is one, logs under ``log_dir``
    (default :meth:`LaunchOptions.logs`), SIGTERM then SIGKILL after ``grace`` seconds; returns the exit code."""
    from .runner import run_plan

    swift = opts.swift()[0]
    if not shutil.which(swift):
        raise ConfigError(f"{swift!r} not found on PATH: pip install 'ms-swift>=4.6,<5' (or pass --swift)")
    return run_plan(plan, log_dir=log_dir or opts.logs(), grace=opts.grace)


__all__ = ["LaunchOptions", "plan_launch", "sbatch", "launch"]
