"""The pure half of ``swift-ext launch``: template + overrides + GPU split -> a :class:`LaunchPlan`.

Nothing here starts a process or reads the machine; :mod:`swift_ext.launch.runner` executes a plan and
``--dry-run`` prints :func:`swift_ext.launch.shell.render_plan` of the plan.

    >>> from swift_ext.launch.templates import load_template
    >>> plan = build_plan("grpo", load_template("grpo"), sets=["dataset=train.jsonl"], gpus="0-7",
    ...                   rollout_gpus="6,7", plugin="/p/plugin.py")
    >>> [s.name for s in plan.steps]
    ['rollout', 'train']
    >>> plan.steps[0].env["CUDA_VISIBLE_DEVICES"], plan.steps[1].env["NPROC_PER_NODE"]
    ('6,7', '6')
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

from ..errors import ConfigError
from .gpus import GpuSplit, rollout_sizes, parse_devices, plan_split
from .migrate import migrate_argv, migrate_flag, migrate_value, split_flags
from .templates import apply_sets, validate

PROXY_VARS = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
DEFAULT_PORT, DEFAULT_GROUP_PORT = 8000, 51216
# flags of the trainer that the rollout server must share (same weights, same chat template)
SHARED_WITH_ROLLOUT = ("model", "model_type", "template", "torch_dtype", "model_kwargs", "max_pixels",
                       "use_hf", "revision")
# media preprocessing read from the environment by ms-swift's templates (get_env_args: the upper-case name);
# the trainer and the rollout server must agree, or the server builds prompts with other image token counts
MEDIA_ENV = ("MAX_PIXELS", "MIN_PIXELS", "IMAGE_FACTOR", "VIDEO_MAX_PIXELS", "VIDEO_MIN_PIXELS",
             "VIDEO_TOTAL_PIXELS", "FPS", "FPS_MIN_FRAMES", "FPS_MAX_FRAMES", "NFRAMES", "NUM_FRAMES",
             "MAX_NUM_FRAMES", "MAX_SLICE_NUMS", "VIDEO_MAX_SLICE_NUMS", "HD_NUM", "MAX_NUM", "VIDEO_MAX_NUM",
             "VIDEO_SEGMENTS", "NUM_CROPS", "SAMPLING_RATE")
# swift-ext's default for every command that builds prompts (the shipped templates spell it out too)
MEDIA_DEFAULTS = {"MAX_PIXELS": "1003520"}
MEDIA_COMMANDS = ("sft", "pt", "rlhf", "rollout", "infer", "deploy", "eval", "sample")
#: ``swift`` subcommands that train (torchrun ranks; the swift-ext plugin ends each rank cleanly)
TRAIN_COMMANDS = ("sft", "pt", "rlhf")
DEVICES = ("auto", "gpu", "cpu")
#: what CPU ranks need: without ``--use_cpu true`` accelerate finds no accelerator and leaves the run
#: undistributed (accelerate/state.py ``_prepare_backend``), so each rank trains alone, or, with
#: ``--ddp_backend gloo`` alone, ms-swift's GRPO fails ``assert len(local_advantages) == len(samples)``
CPU_RANK_ARGS = {"use_cpu": True, "ddp_backend": "gloo"}
CPU_RANK_REASON = ("CPU ranks need --use_cpu true --ddp_backend gloo: without --use_cpu, accelerate sees no "
                   "accelerator and leaves the run undistributed (accelerate/state.py _prepare_backend), so every "
                   "rank trains alone on the whole dataset (or, with --ddp_backend gloo, ms-swift's GRPO fails "
                   "`assert len(local_advantages) == len(samples)`, swift/rlhf_trainers/grpo_trainer.py:241)")
API_KEY_REASON = ("--api_key on the rollout server would break training: ms-swift 4.6's trainer-side VLLMClient "
                  "sends no Authorization header, so every call after /health gets 401. Keep the rollout "
                  "server on a private network (swift-ext binds it to 127.0.0.1 on a single node) instead")


@dataclass
class Nodes:
    """torchrun's multi-node environment for this node (``NNODES/NODE_RANK/MASTER_ADDR/MASTER_PORT``)."""

    nnodes: int = 1
    node_rank: int = 0
    master_addr: Optional[str] = None
    master_port: int = 29500

    def env(self) -> Dict[str, str]:
        if self.nnodes <= 1:
            return {}
        if not self.master_addr:
            raise ConfigError(f"--nnodes {self.nnodes} needs --master-addr (the address of node 0)")
        if not 0 <= self.node_rank < self.nnodes:
            raise ConfigError(f"--node-rank {self.node_rank} must be in 0..{self.nnodes - 1}")
        return {"NNODES": str(self.nnodes), "NODE_RANK": str(self.node_rank),
                "MASTER_ADDR": self.master_addr, "MASTER_PORT": str(self.master_port)}


@dataclass
class Step:
    """One process to start. ``kind``: ``run`` (foreground; the last one's exit code is the launch's),
    ``serve`` (a background server the later steps need), ``wait`` (poll a remote server's /health)."""

    name: str
    argv: List[str]
    env: Dict[str, str] = field(default_factory=dict)
    unset: List[str] = field(default_factory=list)
    kind: str = "run"
    health_url: Optional[str] = None
    health_timeout: float = 0.0
    free_ports: List[int] = field(default_factory=list)
    port_flag: Optional[str] = None
    note: str = ""


@dataclass
class LaunchPlan:
    recipe: str
    steps: List[Step]
    split: GpuSplit
    warnings: List[str] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        return {"recipe": self.recipe, "split": asdict(self.split), "warnings": list(self.warnings),
                "steps": [asdict(s) for s in self.steps]}


def render_args(args: Mapping[str, Any]) -> List[str]:
    """``{"lora_rank": 8, "reward_funcs": ["a", "b"], "x": True}`` -> ``--lora_rank 8 --reward_funcs a b --x true``."""
    out: List[str] = []
    for key, value in args.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            out += [f"--{key}", *(_scalar(v) for v in value)]
        else:
            out += [f"--{key}", _scalar(value)]
    return out


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return json.dumps(v, ensure_ascii=False)
    return str(v)


def _migrate_mapping(command: str, args: Mapping[str, Any], warnings: List[str]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for key, value in args.items():
        new, note = migrate_flag(command, key)
        if isinstance(value, str):
            value, vnote = migrate_value(new, value)
            note = note or vnote
        if note:
            warnings.append(note)
        out[new] = value
    return out


def merge_extra(command: str, args: Dict[str, Any], extra: Sequence[str], warnings: List[str]) -> Dict[str, Any]:
    """Pass-through ``swift`` flags win over the template (after 3.x -> 4.x translation)."""
    argv, notes = migrate_argv(command, list(extra))
    warnings += notes
    out = dict(args)
    for name, values in split_flags(argv):
        out.pop(name, None)  # re-insert at the end: the order follows what the user typed
        out[name] = values[0] if len(values) == 1 else (values or "true")
    return out


def _require(args: Mapping[str, Any], recipe: str) -> None:
    missing = [k for k, v in args.items() if v is None]
    if missing:
        sets = " ".join(f"--set {k}=..." for k in missing)
        raise ConfigError(f"{recipe}: {', '.join(missing)} must be given ({sets}, or pass --{missing[0]} after --)")


def _with_plugin(args: Dict[str, Any], plugin: str) -> Dict[str, Any]:
    cur = args.get("external_plugins")
    items = [] if cur is None else ([cur] if isinstance(cur, str) else list(cur))
    if plugin not in items:
        items.append(plugin)
    args = dict(args)
    args["external_plugins"] = items
    return args


def _check_chord(args: Mapping[str, Any], env: Mapping[str, str]) -> List[str]:
    """CHORD settings checked before anything starts (the plugin checks them again inside swift):
    unset mu arguments, valley > peak, an unknown or badly parametrised SWIFT_EXT_CHORD_SCHEDULE shape."""
    if not args.get("chord_sft_dataset"):
        return []
    from ..chord import plan as chord

    if args.get("chord_sft_per_device_train_batch_size") is None:
        raise ConfigError("CHORD (chord_sft_dataset is set) needs chord_sft_per_device_train_batch_size")
    spec = env.get(chord.SCHEDULE_ENV) or "warmup_cosine"
    values = {arg: args.get(arg) for arg in chord.SWIFT_ARG_OF_PARAM.values()}
    return [f"CHORD: {w}" for w in chord.check_values(chord.resolve(spec, values))]


def _truthy(v: Any) -> bool:
    return v is True or str(v).lower() in ("true", "1", "yes")


def build_plan(recipe: str, template: Mapping[str, Any], *, sets: Sequence[str] = (), extra: Sequence[str] = (),
               gpus=None, rollout_gpus=None, nproc: Optional[int] = None, nodes: Optional[Nodes] = None,
               rollout_host: Optional[str] = None, swift: Sequence[str] = ("swift",),
               plugin: Optional[str] = None, base_env: Optional[Mapping[str, str]] = None,
               device: str = "auto") -> LaunchPlan:
    """Build the commands and environment for ``swift-ext launch <recipe>`` (pure: no I/O, no processes).

    ``gpus``/``rollout_gpus``: device specs (``"0-7"``, ``"6,7"`` or counts); ``nproc`` forces the trainer's
    process count (CPU runs); ``device``: ``gpu``, ``cpu`` (no GPU is touched: ``CUDA_VISIBLE_DEVICES`` is
    emptied) or ``auto`` (CPU when no GPUs are given). On CPU with more than one rank in all
    (``nproc`` x ``nnodes``) the trainer gets :data:`CPU_RANK_ARGS`; training commands with more than one
    rank get the swift-ext plugin (every rank then destroys its process group at the end:
    :mod:`swift_ext.bridge.teardown`), ``swift rlhf`` always does; ``plugin``: the swift-ext plugin file (default: the installed one) added to
    ``--external_plugins`` of ``swift rlhf``; ``base_env`` is only read to extend an existing ``NO_PROXY`` and
    for ``SWIFT_EXT_CHORD_SCHEDULE`` (CHORD settings are checked here, before anything starts).
    """
    tpl = validate(apply_sets(validate(dict(template), recipe), sets), recipe)
    command, warnings = tpl["command"], []
    args = merge_extra(command, _migrate_mapping(command, tpl["args"], warnings), extra, warnings)
    _require(args, recipe)
    nodes = nodes or Nodes()
    if device not in DEVICES:
        raise ConfigError(f"unknown device {device!r}; use one of {', '.join(DEVICES)}")
    devices = parse_devices(gpus) if gpus is not None else None
    if device == "cpu" and (devices or rollout_gpus is not None):
        raise ConfigError("--device cpu runs no process on a GPU: drop --gpus / --rollout-gpus (use --nproc N "
                          "for N CPU ranks per node)")
    if device == "gpu" and not devices:
        raise ConfigError("--device gpu needs GPUs: give --gpus / --num-gpus (none were found on this node)")
    on_cpu = device == "cpu" or (device == "auto" and not devices)
    common_env = _env(tpl)
    if command == "rollout":
        return _rollout_only(recipe, args, devices, common_env, swift, warnings)
    if command == "rlhf":
        warnings += _check_chord(args, {**(base_env or {}), **common_env})
    ro = dict(tpl.get("rollout") or {})
    mode = ro.get("mode", "none") if command == "rlhf" else "none"
    if mode != "none" and "use_vllm" in args and not _truthy(args["use_vllm"]):
        warnings.append(f"use_vllm is false: rollout mode {mode!r} ignored (generation runs inside the trainer)")
        mode = "none"
    ro_args = _migrate_mapping("rollout", ro.get("args") or {}, warnings)
    remote = mode == "server" and (rollout_host or ro.get("host") or "127.0.0.1") not in LOCAL_HOSTS
    if remote and rollout_gpus is not None:
        raise ConfigError("--rollout-gpus places a local rollout server, but the rollout host is remote "
                          f"({rollout_host or ro.get('host')}): its GPUs are chosen on that node")
    split = plan_split(devices, rollout_gpus, mode="none" if remote else mode, nproc=nproc,
                       rollout_tp=ro_args.get("vllm_tensor_parallel_size"),
                       rollout_dp=ro_args.get("vllm_data_parallel_size"),
                       colocate_tp=args.get("vllm_tensor_parallel_size") if mode == "colocate" else None)
    if mode == "colocate":
        args = {**args, "use_vllm": True, "vllm_mode": "colocate", **ro_args}
    ranks = split.nproc * nodes.nnodes
    if command == "rlhf" or (command in TRAIN_COMMANDS and ranks > 1):
        args = _with_plugin(args, plugin or _default_plugin())
    if command in TRAIN_COMMANDS and on_cpu and ranks > 1:
        args = _cpu_ranks(args)
    steps: List[Step] = []
    train_env = {**common_env, **split.train_env(nodes.nnodes > 1), **nodes.env()}
    if device == "cpu":
        train_env["CUDA_VISIBLE_DEVICES"] = ""  # a CPU run on a GPU node stays off its GPUs
    unset: List[str] = []
    if remote:
        media = {k: v for k, v in common_env.items() if k in MEDIA_ENV}
        warnings.append(f"the rollout server at {rollout_host or ro.get('host')} must preprocess media like the "
                        f"trainer: start it with the same {' '.join(f'{k}={v}' for k, v in media.items())} "
                        f"(swift-ext launch rollout applies {' '.join(f'{k}={v}' for k, v in MEDIA_DEFAULTS.items())}"
                        f" by default; add --set env.NAME=VALUE for the others)")
    if mode == "server":
        server, args, proxy_env = _server(args, ro, ro_args, split, nodes, rollout_host, swift, common_env,
                                          base_env or {})
        steps.append(server)
        train_env.update(proxy_env)
        unset = list(PROXY_VARS)
    note = split.describe() + (" on CPU (gloo)" if on_cpu and ranks > 1 and command in TRAIN_COMMANDS else "")
    steps.append(Step("train" if command != "export" else "export", [*swift, command, *render_args(args)],
                      env=train_env, unset=unset, note=note if command != "export" else ""))
    return LaunchPlan(recipe, steps, split, warnings)


def _cpu_ranks(args: Dict[str, Any]) -> Dict[str, Any]:
    """:data:`CPU_RANK_ARGS` added to the trainer's flags; a contradicting value the user set is refused."""
    out = dict(args)
    if "use_cpu" in out and not _truthy(out["use_cpu"]):
        raise ConfigError(f"--use_cpu {_scalar(out['use_cpu'])}: {CPU_RANK_REASON}")
    if str(out.get("ddp_backend", "gloo")).lower() not in ("gloo", "mpi"):
        raise ConfigError(f"--ddp_backend {out['ddp_backend']}: CPU ranks talk through gloo (or mpi); "
                          f"{out['ddp_backend']} needs GPUs")
    out["use_cpu"] = True
    out.setdefault("ddp_backend", CPU_RANK_ARGS["ddp_backend"])
    return out


def _env(tpl: Mapping[str, Any]) -> Dict[str, str]:
    """The template's env over :data:`MEDIA_DEFAULTS` (for commands that build prompts), as strings;
    ``--set env.MAX_PIXELS=`` (empty) removes a default."""
    env = dict(MEDIA_DEFAULTS) if tpl["command"] in MEDIA_COMMANDS else {}
    for k, v in tpl["env"].items():
        if v is None:
            env.pop(str(k), None)
        else:
            env[str(k)] = _scalar(v)
    return env


def _default_plugin() -> str:
    from ..bridge import plugin_path

    return plugin_path()


def _server(args, ro, ro_args, split: GpuSplit, nodes: Nodes, rollout_host, swift, common_env, base_env):
    for where in (ro_args, args):
        if "api_key" in where:
            raise ConfigError(API_KEY_REASON)
    host = rollout_host or ro.get("host") or "127.0.0.1"
    port = int(ro.get("port", ro_args.pop("port", DEFAULT_PORT)))
    group_port = int(ro.get("group_port", DEFAULT_GROUP_PORT))
    timeout = float(ro.get("health_timeout", 900))
    local = host in LOCAL_HOSTS
    if nodes.nnodes > 1 and local:
        raise ConfigError("multi-node training needs the rollout server's reachable address: "
                          "--rollout-host HOST (with --slurm, the last node serves rollouts)")
    trainer = {**args, "use_vllm": True, "vllm_mode": "server", "vllm_server_host": [host],
               "vllm_server_port": [port]}
    trainer.setdefault("vllm_server_timeout", int(timeout))
    if group_port != DEFAULT_GROUP_PORT:
        trainer["vllm_server_group_port"] = [group_port]
    hosts = [h for h in (*LOCAL_HOSTS, host) if h]
    existing = [h for h in base_env.get("NO_PROXY", base_env.get("no_proxy", "")).split(",") if h]
    no_proxy = ",".join(dict.fromkeys([*existing, *hosts]))
    proxy_env = {"NO_PROXY": no_proxy, "no_proxy": no_proxy}
    url = f"http://{'127.0.0.1' if local else host}:{port}/health"
    if not local:
        return (Step("rollout", [], env={}, kind="wait", health_url=url, health_timeout=timeout,
                     note=f"waiting for the rollout server at {host}:{port} (started elsewhere)"),
                trainer, proxy_env)
    server_args = {k: args[k] for k in SHARED_WITH_ROLLOUT if k in args}
    if ro_args.get("multi_turn_scheduler") and "external_plugins" in args:
        server_args["external_plugins"] = args["external_plugins"]
    server_args.update({"host": "127.0.0.1", "port": port})
    server_args.update(ro_args)
    if split.rollout:
        server_args["vllm_tensor_parallel_size"] = split.rollout_tp
        server_args["vllm_data_parallel_size"] = split.rollout_dp
    step = Step("rollout", [*swift, "rollout", *render_args(server_args)],
                env={**common_env, **split.rollout_env(), **proxy_env}, unset=list(PROXY_VARS), kind="serve",
                health_url=url, health_timeout=timeout, free_ports=[port, group_port],
                port_flag="vllm_server_port",
                note=(f"rollout server on GPUs {','.join(map(str, split.rollout))} "
                      f"(TP {split.rollout_tp} x DP {split.rollout_dp})" if split.rollout else "rollout server"))
    return step, trainer, proxy_env


def _rollout_only(recipe, args, devices, common_env, swift, warnings) -> LaunchPlan:
    if "api_key" in args:
        raise ConfigError(API_KEY_REASON)
    tp, dp = rollout_sizes(tuple(devices or ()), args.get("vllm_tensor_parallel_size"),
                            args.get("vllm_data_parallel_size"))
    split = GpuSplit(train=(), rollout=tuple(devices or ()), nproc=0, rollout_tp=tp, rollout_dp=dp)
    if devices:
        args = {**args, "vllm_tensor_parallel_size": tp, "vllm_data_parallel_size": dp}
    port = int(args.get("port", DEFAULT_PORT))
    step = Step("rollout", [*swift, "rollout", *render_args(args)], env={**common_env, **split.rollout_env()},
                kind="run", free_ports=[port, DEFAULT_GROUP_PORT], note=split.describe())
    return LaunchPlan(recipe, [step], split, warnings)


def build_server_plan(recipe: str, template: Mapping[str, Any], *, sets: Sequence[str] = (),
                      extra: Sequence[str] = (), gpus=None, swift: Sequence[str] = ("swift",)) -> LaunchPlan:
    """The rollout server of a GRPO-like recipe as a stand-alone plan for a *dedicated* node
    (binds 0.0.0.0, every GPU of ``gpus`` serves rollouts). Used by the Slurm renderer."""
    tpl = validate(apply_sets(validate(dict(template), recipe), sets), recipe)
    warnings: List[str] = []
    args = merge_extra(tpl["command"], _migrate_mapping(tpl["command"], tpl["args"], warnings), extra, warnings)
    ro = dict(tpl.get("rollout") or {})
    if ro.get("mode") != "server":
        raise ConfigError(f"{recipe}: rollout mode is {ro.get('mode', 'none')!r}, there is no rollout server to place")
    ro_args = _migrate_mapping("rollout", ro.get("args") or {}, warnings)
    if "api_key" in ro_args:
        raise ConfigError(API_KEY_REASON)
    server = {k: args[k] for k in SHARED_WITH_ROLLOUT if k in args}
    if ro_args.get("multi_turn_scheduler") and "external_plugins" in args:
        server["external_plugins"] = args["external_plugins"]
    server.update({"host": "0.0.0.0", "port": int(ro.get("port", DEFAULT_PORT))})
    server.update(ro_args)
    return _rollout_only(recipe, server, parse_devices(gpus) if gpus is not None else None, _env(tpl), swift,
                         warnings)
