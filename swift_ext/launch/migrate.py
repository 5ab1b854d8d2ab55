"""ms-swift 3.x (and 2.x) -> 4.x flag translation, for argv lists and whole launch scripts.

Renamed flags are translated with a warning; removed flags raise :class:`ConfigError` naming what replaces
them. Every new name in :data:`RENAMED` is checked against ms-swift 4.6's real argument dataclasses in
``tests/launch/test_migrate.py``.

    >>> migrate_argv("sft", ["--train_type", "lora", "--metric", "acc"])
    (['--tuner_type', 'lora', '--eval_metric', 'acc'], ['--train_type -> --tuner_type (renamed in ms-swift 4.0)', '--metric -> --eval_metric (renamed in ms-swift 4.0)'])
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from typing import Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

from ..bridge.arguments import unknown_flag
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
    "dtype": Rename("torch_dtype", "2.x name; ms-swift 4.6 refuses --dtype", TRAIN | VLLM | {"export", "pt"}),
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


def migrate_script(text: str, source: str = "<script>",
                   fields: Optional[Mapping[str, FrozenSet[str]]] = None) -> Tuple[str, List[str]]:
    """Rewrite every ``swift <cmd> ...`` command (with its ``\\`` continuation lines) in a shell script.

    Returns (new text, warnings with line numbers). Removed flags, and with ``fields`` (flag names per
    subcommand, :func:`swift_ext.bridge.arguments.swift_fields`) flags the installed ms-swift does not know,
    raise one :class:`ConfigError` listing every one of them with ``source:line``; nothing is rewritten then.
    ``swift megatron X`` becomes ``megatron X`` (4.x entry point).
    """
    lines = text.splitlines(keepends=True)
    notes: List[str] = []
    errors: List[str] = []
    command = None  # the swift subcommand whose continuation lines we are in
    for i, line in enumerate(lines):
        m = _SWIFT_CMD.search(line)
        if m and not line.lstrip().startswith("#"):
            command = m.group(2).replace("-", "_")
            if m.group(1):
                command = "megatron"
                start = line.index("swift", m.start())
                line = line[:start] + "megatron " + m.group(2) + line[m.end():]
                notes.append(f"{source}:{i + 1}: `swift megatron {m.group(2)}` -> `megatron {m.group(2)}` "
                             f"(ms-swift 4.x entry point)")
        if command is not None and not line.lstrip().startswith("#"):
            line = _rewrite_line(line, command, source, i + 1, notes, errors, fields)
        lines[i] = line
        if command is not None and not line.rstrip("\r\n").endswith("\\"):
            command = None
    if errors:
        raise ConfigError("\n".join(errors) if len(errors) == 1 else
                          f"{len(errors)} flags cannot be migrated:\n" + "\n".join(errors))
    return "".join(lines), notes


def _rewrite_line(line: str, command: str, source: str, lineno: int, notes: List[str], errors: List[str],
                  fields: Optional[Mapping[str, FrozenSet[str]]] = None) -> str:
    def sub(m):
        try:
            new, note = migrate_flag(command, m.group(1))
        except ConfigError as exc:
            errors.append(f"{source}:{lineno}: {exc}")
            return m.group(0)
        if note:
            notes.append(f"{source}:{lineno}: {note}")
        if fields is not None:
            why = unknown_flag(new, command, fields)
            if why:
                errors.append(f"{source}:{lineno}: {why} (ms-swift 4.x would refuse it)")
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


# -- reward / scheduler plugin files ---------------------------------------------------------------
# 3.x swift.plugin name -> (4.x module, 4.x name); from the 4.x package split (swift.plugin -> swift.rewards,
# swift.rollout, swift.loss, swift.metrics, ...; checked against the installed ms-swift in tests/launch/test_migrate.py)
PLUGIN_NAMES: Dict[str, Tuple[str, str]] = {
    **{n: ("swift.rewards", n) for n in ("ORM", "AsyncORM", "orms", "PRM", "prms", "rm_plugins")},
    **{n: ("swift.rollout", n) for n in ("multi_turns", "MultiTurnScheduler", "RolloutScheduler", "envs", "Env")},
    "loss_mapping": ("swift.loss", "loss_map"),
    "metric_mapping": ("swift.metrics", "eval_metrics_map"),
    **{n: ("swift.metrics", n) for n in ("InferStats", "MeanMetric", "Metric", "compute_acc", "compute_rouge_bleu")},
    "optimizers_map": ("swift.optimizers", "optimizers_map"),
    "extra_tuners": ("swift.tuner_plugin", "tuners_map"),
    **{n: ("swift.tuner_plugin", n) for n in ("Tuner", "PeftTuner")},
    "loss_scale_map": ("swift.loss_scale", "loss_scale_map"),
    "agent_templates": ("swift.agent_template", "agent_template_map"),
}
# what cannot be rewritten mechanically, and what to do instead
PLUGIN_REMOVED: Dict[str, str] = {
    "context_managers": "removed in 4.x: implement history changes in a MultiTurnScheduler subclass "
                        "(swift.rollout) and pass --multi_turn_scheduler NAME",
    "ContextManager": "removed in 4.x: subclass swift.rollout.MultiTurnScheduler instead",
    "extra_callbacks": "4.x has swift.callbacks.callbacks_map (name -> class taking (args, trainer)) selected with "
                       "--callbacks NAME, not a list of instances: register the class and pass --callbacks",
}
# whole modules that moved (prefix match)
MODULES: Dict[str, str] = {"swift.trainers.rlhf_trainer": "swift.rlhf_trainers", "swift.plugin.orm": "swift.rewards",
                           "swift.plugin.prm": "swift.rewards", "swift.plugin.rm_plugin": "swift.rewards",
                           "swift.plugin.multi_turn": "swift.rollout"}
# 4.x packages that replaced swift.llm (searched in the installed ms-swift for names of `from swift.llm import`)
LLM_PACKAGES = ("swift.infer_engine", "swift.template", "swift.dataset", "swift.model", "swift.arguments",
                "swift.pipelines", "swift.utils")
ORM_BASES = ("ORM", "AsyncORM")


def installed_exports(packages: Sequence[str] = LLM_PACKAGES) -> Dict[str, str]:
    """name -> 4.x package exporting it, read from the installed ms-swift's ``__init__.py`` files (parsed, not
    imported: importing ms-swift loads torch). Empty when ms-swift is not installed."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec("swift")
    if spec is None or not spec.submodule_search_locations:
        return {}
    root = list(spec.submodule_search_locations)[0]
    out: Dict[str, str] = {}
    for pkg in packages:
        path = os.path.join(root, *pkg.split(".")[1:], "__init__.py")
        try:
            tree = ast.parse(open(path, encoding="utf-8").read())
        except (OSError, SyntaxError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "_import_structure":
                try:
                    for names in ast.literal_eval(node.value).values():
                        for n in names:
                            out.setdefault(n, pkg)
                except ValueError:
                    pass
            elif isinstance(node, ast.ImportFrom) and node.level == 1:
                for a in node.names:
                    out.setdefault(a.asname or a.name, pkg)
    return out


def migrate_plugin(text: str, source: str = "<plugin>",
                   exports: Optional[Dict[str, str]] = None) -> Tuple[str, List[str], List[str]]:
    """Rewrite a 3.x plugin file (rewards, schedulers, ...) for ms-swift 4.x.

    Returns (new text, notes on what changed, problems it could not fix), each with ``source:line``:

    * ``from swift.plugin import ORM, orms`` -> ``from swift.rewards import ORM, orms`` (every 3.x
      ``swift.plugin`` name to its 4.x package; renamed registries are renamed where they are used);
    * ``from swift.llm import X`` -> the 4.x package that exports ``X`` (``swift.infer_engine``,
      ``swift.template``, ``swift.dataset``, ...: looked up in the installed ms-swift);
    * ``swift.trainers.rlhf_trainer`` -> ``swift.rlhf_trainers``;
    * an ORM subclass's ``__init__`` gets ``**kwargs`` (4.x constructs rewards as ``Cls(args=GRPOConfig)``);
      one that takes a ``tokenizer`` is reported (4.x passes none).

    >>> new, notes, problems = migrate_plugin("from swift.plugin import ORM, orms\\n", "r.py")
    >>> new, notes
    ('from swift.rewards import ORM, orms\\n', ['r.py:1: from swift.plugin import ORM, orms -> from swift.rewards import ORM, orms'])
    """
    import ast

    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise ConfigError(f"{source}:{exc.lineno}: not valid Python: {exc.msg}") from None
    lines = text.splitlines(keepends=True)
    notes: List[str] = []
    problems: List[str] = []
    renames: Dict[str, str] = {}  # identifiers to rename in the body (registries renamed in 4.x)
    edits: List[Tuple[int, int, str]] = []  # (first line, last line, replacement) of whole statements
    orm_names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            new = _migrate_import(node, source, problems, renames, exports)
            if new is not None:
                old = "".join(lines[node.lineno - 1:node.end_lineno]).strip()
                indent = lines[node.lineno - 1][:len(lines[node.lineno - 1]) - len(lines[node.lineno - 1].lstrip())]
                edits.append((node.lineno, node.end_lineno, indent + new + "\n"))
                notes.append(f"{source}:{node.lineno}: {' '.join(old.split())} -> {new}")
            if node.module in ("swift.plugin", "swift.rewards") or node.module.startswith("swift.plugin."):
                orm_names.update(a.asname or a.name for a in node.names if a.name in ORM_BASES)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "swift.plugin" or a.name.startswith(("swift.plugin.", "swift.llm")):
                    problems.append(f"{source}:{node.lineno}: `import {a.name}`: the module is gone in 4.x "
                                    f"(split into swift.rewards, swift.rollout, swift.template, ...); import the "
                                    f"names from their 4.x packages")
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and any(getattr(b, "id", getattr(b, "attr", None)) in orm_names | set(ORM_BASES)
                                                  for b in node.bases):
            _orm_init(node, lines, source, notes, problems, edits)
    edited = {i for first, last, _ in edits for i in range(first, last + 1)}
    for old, name in renames.items():
        pattern = re.compile(rf"(?<![\w.]){re.escape(old)}\b")
        for i, line in enumerate(lines, 1):
            if i in edited or line.lstrip().startswith(("from ", "import ")):
                continue
            lines[i - 1], n = pattern.subn(name, line)
            if n:
                notes.append(f"{source}:{i}: {old} -> {name} (renamed in ms-swift 4.0)")
    for first, last, repl in sorted(edits, key=lambda e: e[0], reverse=True):
        lines[first - 1:last] = [repl]
    new = "".join(lines)
    return new, notes, problems


def _migrate_import(node, source: str, problems: List[str], renames: Dict[str, str],
                    exports: Optional[Dict[str, str]]) -> Optional[str]:
    """The 4.x import statement(s) (joined by newlines) replacing ``node``, or None to keep it."""
    module = node.module
    moved = next((new for old, new in MODULES.items() if module == old or module.startswith(old + ".")), None)
    if moved is not None:
        target = moved + module[len(next(o for o in MODULES if module == o or module.startswith(o + "."))):]
        return f"from {target} import " + ", ".join(_alias(a) for a in node.names)
    if module not in ("swift.plugin", "swift.llm") and not module.startswith(("swift.plugin.", "swift.llm.")):
        return None
    by_module: Dict[str, List[str]] = {}
    for a in node.names:
        if module.startswith("swift.plugin") and a.name in PLUGIN_REMOVED:
            problems.append(f"{source}:{node.lineno}: {a.name} is {PLUGIN_REMOVED[a.name]}")
            continue
        target = PLUGIN_NAMES.get(a.name) if module.startswith("swift.plugin") else None
        if target is None:
            if exports is None:
                exports = installed_exports(LLM_PACKAGES + tuple(sorted({m for m, _ in PLUGIN_NAMES.values()})))
            pkg = exports.get(a.name)
            target = (pkg, a.name) if pkg else None
        if target is None:
            problems.append(f"{source}:{node.lineno}: `from {module} import {a.name}`: {module} is gone in 4.x and "
                            f"no 4.x package exports {a.name} (look it up in the ms-swift 4 source)")
            continue
        pkg, name = target
        if name != a.name:
            if a.asname:
                by_module.setdefault(pkg, []).append(f"{name} as {a.asname}")
                continue
            renames[a.name] = name
        by_module.setdefault(pkg, []).append(name if name != a.name else _alias(a))
    if not by_module:
        return None if any(p.startswith(f"{source}:{node.lineno}:") for p in problems) else ""
    return "\n".join(f"from {pkg} import {', '.join(names)}" for pkg, names in by_module.items())


def _alias(a) -> str:
    return f"{a.name} as {a.asname}" if a.asname else a.name


def _orm_init(cls, lines: List[str], source: str, notes: List[str], problems: List[str],
              edits: List[Tuple[int, int, str]]) -> None:
    init = next((n for n in cls.body if getattr(n, "name", None) == "__init__"), None)
    if init is None:
        return  # the base ORM.__init__ takes args=None, **kwargs
    a = init.args
    names = [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
    if "tokenizer" in names:
        problems.append(f"{source}:{init.lineno}: {cls.name}.__init__ takes a tokenizer, which ms-swift 4.x no longer "
                        f"passes (rewards are built as {cls.name}(args=GRPOConfig)); load one yourself, e.g. "
                        f"AutoTokenizer.from_pretrained(...) with the model path from an env var")
    if a.kwarg is not None:
        return
    ends = [n for n in (*a.posonlyargs, *a.args, *a.defaults, *a.kwonlyargs,
                        *(d for d in a.kw_defaults if d is not None), a.vararg) if n is not None]
    last = max(ends, key=lambda n: (n.end_lineno, n.end_col_offset))
    line = lines[last.end_lineno - 1]
    if any(e[0] <= last.end_lineno <= e[1] for e in edits):
        return
    extra = ", **kwargs" if "args" in names else ", args=None, **kwargs"
    pos = _byte_to_char(line, last.end_col_offset)
    edits.append((last.end_lineno, last.end_lineno, line[:pos] + extra + line[pos:]))
    notes.append(f"{source}:{init.lineno}: {cls.name}.__init__ accepts{extra[1:]} (ms-swift 4.x calls "
                 f"{cls.name}(args=GRPOConfig))")


def _byte_to_char(line: str, offset: int) -> int:
    return len(line.encode("utf-8")[:offset].decode("utf-8", "replace"))
