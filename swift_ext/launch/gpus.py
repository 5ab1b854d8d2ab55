"""GPU split planning: which devices train, which serve rollouts, and with what parallel sizes.

Pure functions (no CUDA, no subprocess) except :func:`detect_gpus`, which reads the environment and
``nvidia-smi`` and is called only by the CLI.

    >>> s = plan_split(parse_devices("0-7"), "6,7", mode="server")
    >>> s.train, s.rollout, s.nproc, s.rollout_tp, s.rollout_dp
    ((0, 1, 2, 3, 4, 5), (6, 7), 6, 1, 2)
    >>> plan_split(parse_devices(8), 2, mode="server", rollout_tp=2).rollout_dp   # counts: last 2 GPUs, TP 2
    1

Device ids and counts have separate spellings. Ids are strings: ranges and lists (``"0-3,6"``), a single
id with a trailing comma (``"7,"``). Counts are Python ints (``--num-gpus 8`` = devices 0..7,
``--num-rollout-gpus 2`` = the last two of them). A bare integer string (``--rollout-gpus 4``) could mean
either, so it is refused with both readings spelled out (``"0"`` has only one reading, GPU 0).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Sequence, Tuple

from ..errors import ConfigError

MODES = ("server", "colocate", "none")
_RANGE = re.compile(r"^(\d+)-(\d+)$")


@dataclass(frozen=True)
class GpuSplit:
    """The outcome of planning. Empty ``train`` means "GPUs not managed" (CPU, or left to the user's env)."""

    train: Tuple[int, ...] = ()
    rollout: Tuple[int, ...] = ()
    nproc: int = 1
    rollout_tp: int = 1
    rollout_dp: int = 1

    def train_env(self, multi_node: bool = False) -> Dict[str, str]:
        """``CUDA_VISIBLE_DEVICES`` / ``NPROC_PER_NODE`` for the trainer (torchrun only when it is needed)."""
        env = {}
        if self.train:
            env["CUDA_VISIBLE_DEVICES"] = _ids(self.train)
        if self.nproc > 1 or multi_node:
            env["NPROC_PER_NODE"] = str(self.nproc)
        return env

    def rollout_env(self) -> Dict[str, str]:
        return {"CUDA_VISIBLE_DEVICES": _ids(self.rollout)} if self.rollout else {}

    def describe(self) -> str:
        parts = [f"trainer: {self.nproc} process(es)" + (f" on GPUs {_ids(self.train)}" if self.train else "")]
        parts = parts if self.nproc else []
        if self.rollout:
            parts.append(f"rollout: GPUs {_ids(self.rollout)} (TP {self.rollout_tp} x DP {self.rollout_dp})")
        return "; ".join(parts)


def _ids(ids: Sequence[int]) -> str:
    return ",".join(str(i) for i in ids)


def parse_devices(spec, available: Optional[Sequence[int]] = None, *, flag: str = "--gpus",
                  count_flag: str = "--num-gpus") -> Tuple[int, ...]:
    """``"0-3,6"`` -> (0, 1, 2, 3, 6); ``4`` (an int: a count) -> the first 4 of ``available`` (or 0..3).

    >>> parse_devices("0-3,6"), parse_devices(2), parse_devices("5,"), parse_devices(3, available=[4, 5, 6, 7])
    ((0, 1, 2, 3, 6), (0, 1), (5,), (4, 5, 6))

    A bare integer *string* is refused (``flag``/``count_flag`` name the two spellings in the message).
    """
    if isinstance(spec, int) and not isinstance(spec, bool):
        return _first(spec, available, str(spec))
    text = str(spec).strip()
    if re.fullmatch(r"\d+", text) and int(text) > 0:
        n = int(text)
        raise ConfigError(f"{flag} {text} is ambiguous: write {flag} {n}, for the single GPU id {n}, or "
                          f"{count_flag} {n} for {n} GPUs (ids {_ids(range(n))})")
    ids = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        m = _RANGE.match(part)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            if hi < lo:
                raise ConfigError(f"GPU range {part!r} runs backwards; write {hi}-{lo}")
            ids.extend(range(lo, hi + 1))
        elif part.isdigit():
            ids.append(int(part))
        else:
            raise ConfigError(f"bad GPU list {text!r}: use ids and ranges like 0-5,7 or a count like 8")
    if not ids:
        raise ConfigError(f"bad GPU list {text!r}: no device ids")
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ConfigError(f"GPU {dup[0]} is listed twice in {text!r}")
    return tuple(ids)


def _first(n: int, available: Optional[Sequence[int]], text: str) -> Tuple[int, ...]:
    if n < 1:
        raise ConfigError(f"GPU count {text!r} must be at least 1")
    pool = tuple(available) if available is not None else tuple(range(n))
    if n > len(pool):
        raise ConfigError(f"asked for {n} GPUs but only {len(pool)} are available ({_ids(pool) or 'none'})")
    return pool[:n]


def plan_split(gpus: Optional[Sequence[int]], rollout_gpus=None, *, mode: str = "none", nproc: Optional[int] = None,
               rollout_tp: Optional[int] = None, rollout_dp: Optional[int] = None,
               colocate_tp: Optional[int] = None) -> GpuSplit:
    """Split ``gpus`` between trainer and rollout server; raise :class:`ConfigError` for impossible splits.

    ``mode``: ``server`` (a separate ``swift rollout`` on ``rollout_gpus``; default: the last quarter),
    ``colocate`` (vLLM inside the trainer processes) or ``none`` (no rollout at all).
    ``nproc`` forces the trainer process count (CPU runs, where no GPU list exists).
    """
    if mode not in MODES:
        raise ConfigError(f"unknown rollout mode {mode!r}; use one of {', '.join(MODES)}")
    gpus = tuple(gpus) if gpus else ()
    if rollout_gpus is not None and mode != "server":
        raise ConfigError(f"--rollout-gpus needs rollout mode 'server' (this recipe's mode is {mode!r}: "
                          + ("vLLM runs inside the trainer processes" if mode == "colocate" else "no rollout")
                          + ")")
    rollout = _rollout_devices(gpus, rollout_gpus) if mode == "server" else ()
    train = tuple(g for g in gpus if g not in rollout)
    if gpus and not train:
        raise ConfigError(f"all GPUs ({_ids(gpus)}) went to the rollout server; none are left for the trainer")
    procs = _nproc(train, nproc)
    tp, dp = rollout_sizes(rollout, rollout_tp, rollout_dp) if mode == "server" else (1, 1)
    if mode == "colocate" and colocate_tp and procs % colocate_tp:
        raise ConfigError(f"colocate mode: vllm_tensor_parallel_size {colocate_tp} must divide the "
                          f"{procs} trainer processes")
    return GpuSplit(train=train, rollout=rollout, nproc=procs, rollout_tp=tp, rollout_dp=dp)


def _rollout_devices(gpus: Tuple[int, ...], spec) -> Tuple[int, ...]:
    if spec is None:
        if not gpus:
            return ()  # not managed: the user's environment decides (single-node CPU tests, remote server)
        if len(gpus) < 2:
            raise ConfigError(f"server mode needs one GPU for the trainer and one for the rollout server, but "
                              f"only GPU {_ids(gpus)} is given; add GPUs or use --set rollout.mode=colocate")
        spec = max(1, len(gpus) // 4)
    if isinstance(spec, int) and not isinstance(spec, bool):  # a count: the last N of --gpus
        n = spec
        if not gpus:
            raise ConfigError("--num-rollout-gpus needs --gpus or --num-gpus (which devices to take them from)")
        if n < 1 or n >= len(gpus):
            raise ConfigError(f"--num-rollout-gpus {n}: must be between 1 and {len(gpus) - 1} with {len(gpus)} "
                              f"GPUs (at least one GPU has to stay with the trainer)")
        return gpus[-n:]
    text = str(spec).strip()
    if re.fullmatch(r"\d+", text) and int(text) > 0 and gpus:
        n = int(text)
        readings = [f"write --rollout-gpus {n}, for GPU id {n}"
                    + ("" if n in gpus else f" (not in --gpus {_ids(gpus)})")]
        if n < len(gpus):
            readings.append(f"--num-rollout-gpus {n} for the last {n} of --gpus (GPUs {_ids(gpus[-n:])})")
        raise ConfigError(f"--rollout-gpus {n} is ambiguous: " + ", or ".join(readings))
    ids = parse_devices(text, flag="--rollout-gpus", count_flag="--num-rollout-gpus")
    if not gpus:
        raise ConfigError("--rollout-gpus as device ids needs --gpus too (the full list of devices to split)")
    stray = [i for i in ids if i not in gpus]
    if stray:
        raise ConfigError(f"--rollout-gpus {text}: GPU {stray[0]} is not in --gpus {_ids(gpus)}")
    return ids


def _nproc(train: Tuple[int, ...], nproc: Optional[int]) -> int:
    if nproc is None:
        return max(1, len(train))
    if nproc < 1:
        raise ConfigError(f"--nproc {nproc}: must be at least 1")
    if train and nproc != len(train):
        raise ConfigError(f"--nproc {nproc} does not match the {len(train)} trainer GPUs ({_ids(train)}); "
                          f"ms-swift runs one process per GPU (GRPO with vLLM refuses device_map)")
    return nproc


def rollout_sizes(rollout: Tuple[int, ...], tp: Optional[int], dp: Optional[int]) -> Tuple[int, int]:
    n = len(rollout)
    for name, v in (("tensor", tp), ("data", dp)):
        if v is not None and int(v) < 1:
            raise ConfigError(f"rollout {name}-parallel size {v} must be at least 1")
    if not n:  # devices not managed here: trust the given sizes
        return int(tp or 1), int(dp or 1)
    if tp and dp:
        if int(tp) * int(dp) != n:
            raise ConfigError(f"rollout TP {tp} x DP {dp} = {int(tp) * int(dp)} GPUs, but {n} rollout GPUs are "
                              f"given ({_ids(rollout)}); swift rollout needs TP x DP = its visible GPUs")
        return int(tp), int(dp)
    if dp:
        if n % int(dp):
            raise ConfigError(f"{n} rollout GPUs cannot be split into {dp} data-parallel replicas")
        return n // int(dp), int(dp)
    tp = int(tp or 1)
    if n % tp:
        raise ConfigError(f"{n} rollout GPUs ({_ids(rollout)}) cannot be split into tensor-parallel groups of "
                          f"{tp}; give a multiple of {tp} GPUs")
    return tp, n // tp


def detect_gpus(env: Optional[Mapping[str, str]] = None, warn=None) -> Optional[Tuple[int, ...]]:
    """Devices visible here: ``SWIFT_EXT_GPUS`` -> ``CUDA_VISIBLE_DEVICES`` -> ``nvidia-smi -L`` -> None (CPU).

    A malformed variable produces a warning (through ``warn``), not a crash.
    """
    env = os.environ if env is None else env
    for key in ("SWIFT_EXT_GPUS", "CUDA_VISIBLE_DEVICES"):
        value = env.get(key)
        if value is None:
            continue
        if not value.strip():
            return None
        try:
            return parse_devices(value if "," in value or "-" in value else value + ",")
        except ConfigError as exc:
            if warn:
                warn(f"ignoring {key}={value!r}: {exc}")
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    n = sum(1 for line in out.splitlines() if line.startswith("GPU "))
    return tuple(range(n)) or None
