"""``swift-ext launch``: reliable single-node, multi-GPU and multi-node launches of ``swift sft / rlhf / rollout``.

Pure planning (:func:`build_plan` -> :class:`LaunchPlan`, testable, printed by ``--dry-run``) is kept apart
from running (:func:`run_plan`: rollout-server lifecycle, log streaming, process-group cleanup).

    >>> from swift_ext.launch import build_plan, load_template
    >>> plan = build_plan("sft", load_template("sft"), sets=["dataset=data.jsonl"], gpus="0-3")
    >>> plan.steps[0].env
    {'MAX_PIXELS': '1003520', 'CUDA_VISIBLE_DEVICES': '0,1,2,3', 'NPROC_PER_NODE': '4'}
"""

from .gpus import GpuSplit, detect_gpus, parse_devices, plan_split
from .migrate import migrate_argv, migrate_script
from .plan import LaunchPlan, Nodes, Step, build_plan, build_server_plan
from .runner import run_plan
from .templates import apply_sets, load_template

__all__ = ["GpuSplit", "LaunchPlan", "Nodes", "Step", "apply_sets", "build_plan", "build_server_plan", "detect_gpus",
           "load_template", "migrate_argv", "migrate_script", "parse_devices", "plan_split", "run_plan"]
