"""ms-swift 3.x (and 2.x) -> 4.x flag translation, for argv lists and whole launch scripts.

Renamed flags are translated with a warning; removed flags raise :class:`ConfigError` naming what replaces
them. Every new name in :data:`RENAMED` is checked against ms-swift 4.6's real argument dataclasses in
``tests/test_migrate.py``.

    >>> migrate_argv("sft", ["--train_type", "lora", "--metric", "acc"])
    (['--tuner_type', 'lora', '--eval_metric', 'acc'], ['--train_type -> --tuner_type (renamed in ms-swift 4.0)', '--metric -> --eval_metric (renamed in ms-swift 4.0)'])
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Dict, FrozenSet, List, Optional, Sequence, Tuple

from ..errors import ConfigError

TRAIN = frozenset({"sft", "pt", "rlhf"})
VLLM = frozenset({"rollout", "infer", "deploy", "rlhf", "eval", "sample"})


@dataclass(frozen=True)
class Rename:
    new: str
    why: str
    commands: Optional[FrozenSet[str]] = None  # None: every swift subcommand

    def applies(self, command: Optional[str]) -> bool:
        return self.commands is None or command is None or command in self.commands


RENAMED: Dict[str, Rename] = {
    "train_type": Rename("tuner_type", "renamed in ms-swift 4.0"),
    "sft_type": Rename("tuner_type", "2.x name; 3.x called it --train_type, 4.x --tuner_type"),
    "metric": Rename("eval_metric", "renamed in ms-swift 4.0", TRAIN),  # `swift infer --metric` still exists
    "tensor_parallel_size": Rename("vllm_tensor_parallel_size", "vLLM flags carry the vllm_ prefix", VLLM),
    "data_parallel_size": Rename("vllm_data_parallel_size", "vLLM flags carry the vllm_ prefix", VLLM),
    "gpu_memory_utilization": Rename("vllm_gpu_memory_utilization", "vLLM flags carry the vllm_ prefix", VLLM),
    "enforce_eager": Rename("vllm_enforce_eager", "vLLM flags carry the vllm_ prefix", VLLM),
    "limit_mm_per_prompt": Rename("vllm_limit_mm_per_prompt", "vLLM flags carry the vllm_ prefix", VLLM),
    "custom_register_path": Rename("external_plugins", "old alias of --external_plugins"),
    "model_id_or_path": Rename("model", "2.x name"),
    "lora_target_modules": Rename("target_modules", "2.x name"),
}

REMOVED: Dict[str, str] = {
    "context_manager": ("removed in ms-swift 4.x: implement history changes in a MultiTurnScheduler subclass "
                        "(override step/run) and pass --multi_turn_scheduler NAME"),
    "num_infer_workers": ("removed: use --use_vllm true --vllm_mode colocate (vLLM inside the trainer) or "
                          "--vllm_mode server with a `swift rollout` server"),
    "vllm_device": ("removed: colocate mode places vLLM on the trainer's own GPU; server mode uses "
                    "`CUDA_VISIBLE_DEVICES=... swift rollout` (swift-ext launch grpo --rollout-gpus)"),
    "use_flash_attn": "removed: use --attn_impl flash_attn",
}

# flags whose *values* changed meaning
VALUES: Dict[str, Dict[str, str]] = {
    # 3.10 turned scale_rewards from a bool into 'group'|'batch'|'none'|'gdpo'
    "scale_rewards": {"true": "group", "false": "none"},
}


def migrate_flag(command: Optional[str], name: str) -> Tuple[str, Optional[str]]:
    """One flag name (no dashes) -> (4.x name, warning or None). Raises ConfigError for removed flags."""
    if name in REMOVED:
        raise ConfigError(f"--{name} is {REMOVED[name]}")
    rename = RENAMED.get(name)
    if rename and rename.applies(command):
        return rename.new, f"--{name} -> --{rename.new} ({rename.why})"
    return name, None


def migrate_value(name: str, value: str) -> Tuple[str, Optional[str]]:
    new = VALUES.get(name, {}).get(str(value).lower())
    if new is None:
        return value, None
    return new, f"--{name} {value} -> --{name} {new} (value meaning changed in ms-swift 3.10)"


def migrate_argv(command: Optional[str], argv: Sequence[str]) -> Tuple[List[str], List[str]]:
    """Translate ``argv`` (``["--flag", "value", ...]``) for ``swift <command>``; returns (argv, warnings)."""
    out: List[str] = []
    notes: List[str] = []
    current = None
    for tok in argv:
        if tok.startswith("--") and len(tok) > 2:
            flag, eq, val = tok[2:].partition("=")
            new, note = migrate_flag(command, flag)
            current = new
            if note:
                notes.append(note)
            if eq:
                val, vnote = migrate_value(new, val)
                notes += [vnote] if vnote else []
            out.append(f"--{new}" + (f"={val}" if eq else ""))
            continue
        if current is not None:
            tok, vnote = migrate_value(current, tok)
            notes += [vnote] if vnote else []
        out.append(tok)
    return out, notes


# -- whole scripts ---------------------------------------------------------------------------------
# only real swift routes (swift/cli/main.py ROUTE_MAPPING, plus 3.x's `swift megatron X`)
_SWIFT_CMD = re.compile(r"(?:^|[\s;&|(/])swift\s+(megatron\s+)?"
                        r"(pt|sft|rlhf|rollout|infer|deploy|export|eval|sample|merge[-_]lora|app|web[-_]ui)\b")
_FLAG = re.compile(r"(?<![\w-])--([A-Za-z_][\w]*)(?=[\s=\\]|$)")


def migrate_script(text: str, source: str = "<script>") -> Tuple[str, List[str]]:
    """Rewrite every ``swift <cmd> ...`` command (with its ``\\`` continuation lines) in a shell script.

    Returns (new text, warnings with line numbers). Removed flags raise :class:`ConfigError` naming
    ``source:line``, and nothing is rewritten. ``swift megatron X`` becomes ``megatron X`` (4.x entry point).
    """
    lines = text.splitlines(keepends=True)
    notes: List[str] = []
    command = None  # the swift subcommand whose continuation lines we are in
    for i, line in enumerate(lines):
        m = _SWIFT_CMD.search(line)
        if m and not line.lstrip().startswith("#"):
            command = m.group(2).replace("-", "_")
            if m.group(1):
                start = line.index("swift", m.start())
                line = line[:start] + "megatron " + m.group(2) + line[m.end():]
                notes.append(f"{source}:{i + 1}: `swift megatron {m.group(2)}` -> `megatron {m.group(2)}` "
                             f"(ms-swift 4.x entry point)")
        if command is not None and not line.lstrip().startswith("#"):
            line = _rewrite_line(line, command, source, i + 1, notes)
        lines[i] = line
        if command is not None and not line.rstrip("\r\n").endswith("\\"):
            command = None
    return "".join(lines), notes


def _rewrite_line(line: str, command: str, source: str, lineno: int, notes: List[str]) -> str:
    def sub(m):
        try:
            new, note = migrate_flag(command, m.group(1))
        except ConfigError as exc:
            raise ConfigError(f"{source}:{lineno}: {exc}") from None
        if note:
            notes.append(f"{source}:{lineno}: {note}")
        return f"--{new}"

    line = _FLAG.sub(sub, line)
    for name, mapping in VALUES.items():
        for old, new in mapping.items():
            pat = re.compile(rf"(--{name}[ =])({old})\b", re.IGNORECASE)
            if pat.search(line):
                line = pat.sub(lambda m: m.group(1) + new, line)
                notes.append(f"{source}:{lineno}: --{name} {old} -> --{name} {new} (value meaning changed)")
    return line


def split_flags(argv: Sequence[str]) -> List[Tuple[str, List[str]]]:
    """``["--a", "1", "--b", "x", "y", "--c=3"]`` -> [("a", ["1"]), ("b", ["x", "y"]), ("c", ["3"])].

    Raises ConfigError for a stray value before the first flag.
    """
    pairs: List[Tuple[str, List[str]]] = []
    for tok in argv:
        if tok.startswith("--") and len(tok) > 2:
            name, eq, val = tok[2:].partition("=")
            pairs.append((name, [val] if eq else []))
        elif not pairs:
            raise ConfigError(f"extra swift argument {tok!r} is not a --flag (pass extra flags as --name value)")
        else:
            pairs[-1][1].append(tok)
    return pairs


def quote_argv(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)
