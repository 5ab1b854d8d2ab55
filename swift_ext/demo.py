"""``swift-ext demo``: a short, real GRPO run with swift-ext rewards, as a list of steps.

With no arguments it needs no network and no GPU: it builds a tiny random-weight Qwen2-VL model in the
work folder, converts the bundled SFT sample rows (shapes with images) to GRPO rows with ``swift-ext
convert`` (the ``<answer>`` goes to ``solution``), runs
``swift rlhf --rlhf_type grpo --use_vllm false`` as a subprocess with swift-ext rewards loaded through the
plugin file (one of them parametrised on the command line), and reads each reward's mean per step from the
run's own ``logging.jsonl``. ``model``/``dataset`` point it at real ones (on a GPU node).

    >>> from swift_ext.demo import DemoConfig, run_demo
    >>> result = run_demo(DemoConfig(workdir="/tmp/demo"))   # a real swift run, ~30 s  # doctest: +SKIP
    >>> result.steps[0]["rewards"]                                                     # doctest: +SKIP
    {'exact_match:extract=last_number': 0.0, 'think_format': 0.0, 'random:seed=7': 0.29951316}

The run is a list of :class:`Step` objects sharing a :class:`DemoContext`; later features add steps
(convert a dataset first, CHORD, evaluation afterwards) by passing ``steps=[...]`` or inserting into
:data:`DEFAULT_STEPS` without rewriting the others.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .errors import ConfigError, SwiftExtError

DATA_DIR = Path(__file__).resolve().parent / "data" / "demo"
DEFAULT_REWARDS = ("exact_match:extract=last_number", "think_format", "random:seed=7")
DEFAULT_KIND = "qwen2_vl"
WORKDIR_ENV = "SWIFT_EXT_DEMO_DIR"


class DemoError(SwiftExtError):
    """A demo step failed; ``log_tail`` holds the end of the swift log when swift was the one failing."""

    def __init__(self, message: str, log_tail: str = "", log_path: Optional[str] = None):
        super().__init__(message)
        self.log_tail, self.log_path = log_tail, log_path


def default_workdir() -> Path:
    """``$SWIFT_EXT_DEMO_DIR`` or ``~/.cache/swift-ext/demo``."""
    env = os.environ.get(WORKDIR_ENV)
    return Path(env) if env else Path.home() / ".cache" / "swift-ext" / "demo"


@dataclass
class DemoConfig:
    """What the demo runs. Every field has a CPU-friendly default."""

    workdir: Optional[os.PathLike] = None
    model: Optional[str] = None  # None: build the tiny model of ``tiny_kind``
    model_type: Optional[str] = None
    template: Optional[str] = None
    dataset: Optional[str] = None  # None: the bundled sample rows
    tiny_kind: str = DEFAULT_KIND
    rewards: Sequence[str] = DEFAULT_REWARDS
    max_steps: int = 2
    num_generations: int = 2
    batch_size: int = 4
    max_completion_length: int = 16
    use_vllm: bool = False
    tuner_type: str = "lora"
    swift_args: Sequence[str] = ()  # appended last, so they override the demo's own flags
    swift: Optional[str] = None  # the swift executable (default: next to this Python, else PATH)
    timeout: Optional[float] = None

    def resolved_workdir(self) -> Path:
        return Path(self.workdir).expanduser().resolve() if self.workdir else default_workdir()


@dataclass
class DemoContext:
    """State shared by the steps of one demo run."""

    config: DemoConfig
    reporter: "Reporter"
    workdir: Path
    env: Dict[str, str] = field(default_factory=lambda: dict(os.environ))
    model_flags: List[str] = field(default_factory=list)
    model_desc: str = ""
    is_vl: bool = True
    dataset: Optional[str] = None
    run_dir: Optional[Path] = None
    log_path: Optional[Path] = None
    returncode: Optional[int] = None
    steps: List[Dict[str, Any]] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    timings: Dict[str, float] = field(default_factory=dict)

    def note(self, message: str) -> None:
        self.notes.append(message)
        self.reporter.note(message)


class Reporter:
    """Receives progress from the demo; the CLI subclasses it with a rich display. Default: silent."""

    def step_started(self, step: "Step", index: int, total: int) -> None: ...

    def step_done(self, step: "Step", seconds: float) -> None: ...

    def note(self, message: str) -> None: ...

    def swift_progress(self, done: int, total: int, last_line: str) -> None: ...


class Step:
    """One phase of the demo. Subclasses set ``name``/``title`` and implement :meth:`run`."""

    name = "step"
    title = "step"

    def skip_reason(self, ctx: DemoContext) -> Optional[str]:
        return None

    def run(self, ctx: DemoContext) -> None:
        raise NotImplementedError


# -- steps ------------------------------------------------------------------------------------------
class PrepareEnvironment(Step):
    """Offline variables for the tiny model; the CPU torchvision shim where CPU-only torch needs it."""

    name, title = "environment", "Checking torch / torchvision"

    def run(self, ctx: DemoContext) -> None:
        from . import cpu_compat, tiny

        env = dict(os.environ)
        if ctx.config.model is None:
            env = tiny.offline_env(env)
        if cpu_compat.needed():
            cpu_compat.apply()  # this process builds the tiny VL processor, which imports torchvision
            env = cpu_compat.subprocess_env(env)
            ctx.note(f"{cpu_compat.explanation()}; applied to this process and the swift subprocess.")
        ctx.env = env


class PrepareModel(Step):
    """Build (or reuse) the tiny model in the work folder, or take the user's ``--model``."""

    name, title = "model", "Building the tiny random-weight model"

    def run(self, ctx: DemoContext) -> None:
        from . import tiny

        cfg = ctx.config
        if cfg.model is not None:
            local = Path(cfg.model).expanduser()
            flags = ["--model", str(local.resolve()) if local.exists() else cfg.model]
            flags += ["--model_type", cfg.model_type] if cfg.model_type else []
            flags += ["--template", cfg.template] if cfg.template else []
            ctx.model_flags, ctx.model_desc = flags, cfg.model
            ctx.is_vl = "vl" in f"{cfg.model_type or ''} {cfg.template or ''} {cfg.model}".lower()
            return
        if cfg.tiny_kind not in tiny.KINDS:
            raise ConfigError(f"unknown tiny model kind {cfg.tiny_kind!r}; known: {', '.join(tiny.KINDS)}")
        model = tiny.ensure(cfg.tiny_kind, root=ctx.workdir / "models")
        ctx.model_flags = tiny.common_flags(model)
        ctx.model_desc = f"tiny random-weight {model.model_type} at {model.path}"
        ctx.is_vl = model.is_vl


class PrepareDataset(Step):
    """Convert the bundled SFT sample rows to GRPO rows with ``swift-ext convert`` (or take ``--dataset``)."""

    name, title = "data", "Converting the sample SFT rows to GRPO"

    def run(self, ctx: DemoContext) -> None:
        if ctx.config.dataset is not None:  # swift runs in the run folder: make local paths absolute
            local = Path(ctx.config.dataset).expanduser()
            ctx.dataset = str(local.resolve()) if local.exists() else ctx.config.dataset
            return
        path, report = convert_sample_dataset(ctx.workdir / "data", vl=ctx.is_vl)
        ctx.dataset = str(path)
        ctx.note(f"swift-ext convert --to grpo --extract answer_tag: {report.rows_in} SFT rows in = "
                 f"{report.rows_converted} GRPO rows + {report.rows_rejected} rejected (answer -> solution)")


class RunGRPO(Step):
    """``swift rlhf --rlhf_type grpo`` in a subprocess; its log goes to ``<run>/swift-rlhf.log``."""

    name, title = "grpo", "Running swift rlhf --rlhf_type grpo"

    def run(self, ctx: DemoContext) -> None:
        ctx.run_dir = ctx.workdir / "runs" / time.strftime("%Y%m%d-%H%M%S")
        suffix = 1
        while ctx.run_dir.exists():
            suffix += 1
            ctx.run_dir = ctx.workdir / "runs" / f"{time.strftime('%Y%m%d-%H%M%S')}-{suffix}"
        ctx.run_dir.mkdir(parents=True)
        ctx.log_path = ctx.run_dir / "swift-rlhf.log"
        argv = grpo_argv(ctx)
        ctx.returncode = stream_process(argv, ctx.log_path, ctx.env, ctx.run_dir, ctx.config.max_steps,
                                        ctx.reporter, ctx.config.timeout)
        if ctx.returncode != 0:
            raise DemoError(f"swift rlhf failed with exit code {ctx.returncode} ({error_line(ctx.log_path)}); "
                            f"full log: {ctx.log_path}",
                            log_tail=tail(ctx.log_path), log_path=str(ctx.log_path))


class CollectMetrics(Step):
    """Each reward's mean per training step, from the run's ``logging.jsonl``."""

    name, title = "metrics", "Reading per-step reward metrics"

    def run(self, ctx: DemoContext) -> None:
        ctx.steps = step_metrics(ctx.run_dir, ctx.config.rewards)
        if not ctx.steps:
            raise DemoError(f"swift wrote no per-step metrics under {ctx.run_dir}", log_tail=tail(ctx.log_path),
                            log_path=str(ctx.log_path))
        missing = [r for r in ctx.config.rewards if any(r not in s["rewards"] for s in ctx.steps)]
        if missing:
            raise DemoError(f"rewards missing from swift's metrics: {', '.join(missing)}",
                            log_tail=tail(ctx.log_path), log_path=str(ctx.log_path))


DEFAULT_STEPS: List[Step] = [PrepareEnvironment(), PrepareModel(), PrepareDataset(), RunGRPO(), CollectMetrics()]


# -- running ----------------------------------------------------------------------------------------
@dataclass
class DemoResult:
    workdir: str
    model: str
    dataset: str
    run_dir: Optional[str]
    log: Optional[str]
    rewards: List[str]
    steps: List[Dict[str, Any]]
    notes: List[str]
    timings: Dict[str, float]

    def to_json(self) -> Dict[str, Any]:
        return dict(self.__dict__)


def run_demo(config: Optional[DemoConfig] = None, steps: Optional[Sequence[Step]] = None,
             reporter: Optional[Reporter] = None) -> DemoResult:
    """Run every step in order; raises :class:`DemoError` (with the swift log's tail) on failure."""
    config = config or DemoConfig()
    validate(config)
    steps = list(DEFAULT_STEPS if steps is None else steps)
    reporter = reporter or Reporter()
    workdir = config.resolved_workdir()
    workdir.mkdir(parents=True, exist_ok=True)
    ctx = DemoContext(config=config, reporter=reporter, workdir=workdir)
    start = time.perf_counter()
    for index, step in enumerate(steps, 1):
        reason = step.skip_reason(ctx)
        if reason:
            ctx.note(f"{step.title}: skipped ({reason})")
            continue
        reporter.step_started(step, index, len(steps))
        t0 = time.perf_counter()
        step.run(ctx)
        ctx.timings[step.name] = round(time.perf_counter() - t0, 3)
        reporter.step_done(step, ctx.timings[step.name])
    ctx.timings["total"] = round(time.perf_counter() - start, 3)
    return DemoResult(workdir=str(workdir), model=ctx.model_desc, dataset=str(ctx.dataset),
                      run_dir=str(ctx.run_dir) if ctx.run_dir else None,
                      log=str(ctx.log_path) if ctx.log_path else None, rewards=list(config.rewards),
                      steps=ctx.steps, notes=ctx.notes, timings=ctx.timings)


def validate(config: DemoConfig) -> None:
    from .params import parse_spec

    if not config.rewards:
        raise ConfigError("the demo needs at least one reward")
    for spec in config.rewards:
        parse_spec(spec)  # raises ParamError on a malformed name
    for name in ("max_steps", "num_generations", "batch_size", "max_completion_length"):
        if int(getattr(config, name)) < 1:
            raise ConfigError(f"{name} must be at least 1, got {getattr(config, name)}")
    if config.batch_size % config.num_generations:
        raise ConfigError(f"batch size {config.batch_size} must be a multiple of num_generations "
                          f"{config.num_generations} (ms-swift GRPO groups completions per prompt)")
    if config.dataset is not None and _looks_like_file(config.dataset) and not Path(config.dataset).is_file():
        raise ConfigError(f"{config.dataset}: no such dataset file")


def _looks_like_file(text: str) -> bool:
    """A local path rather than a hub dataset id (``AI-MO/NuminaMath-TIR#1000``)."""
    return text.startswith((".", "/", "~")) or Path(text).suffix.lower() in {".jsonl", ".json", ".csv", ".parquet"}


def write_sample_dataset(out_dir: Path, vl: bool = True) -> Path:
    """The bundled sample rows as a GRPO file (see :func:`convert_sample_dataset`)."""
    return convert_sample_dataset(out_dir, vl)[0]


def convert_sample_dataset(out_dir: Path, vl: bool = True):
    """Copy the bundled SFT sample rows (images next to them, paths made absolute) and turn them into GRPO
    rows with ``swift-ext convert``: prompt-only messages, the ``<answer>`` of the SFT reply in ``solution``.

    Returns ``(grpo_path, convert_report)``.
    """
    from .convert import convert_file
    from .tiny import write_jsonl

    out_dir.mkdir(parents=True, exist_ok=True)
    source = DATA_DIR / ("sft_vl.jsonl" if vl else "sft_text.jsonl")
    rows = []
    with open(source, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            if row.get("images"):
                images = []
                for rel in row["images"]:
                    target = out_dir / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(DATA_DIR / rel, target)
                    images.append(str(target.resolve()))
                row["images"] = images
            rows.append(row)
    sft = write_jsonl(out_dir / source.name, rows)
    grpo = out_dir / source.name.replace("sft_", "grpo_")
    report = convert_file(sft, str(grpo), to="grpo", extract="answer_tag")
    if report.rows_rejected or report.rows_converted != len(rows):
        raise DemoError(f"converting the bundled sample rows rejected {report.rows_rejected} of {len(rows)}; "
                        f"reasons in {report.reject_file}")
    return grpo, report


def swift_executable(config: DemoConfig) -> str:
    if config.swift:
        return config.swift
    sibling = Path(sys.executable).with_name("swift")
    return str(sibling) if sibling.exists() else (shutil.which("swift") or "swift")


def grpo_argv(ctx: DemoContext) -> List[str]:
    """The full ``swift rlhf`` command line of the demo run."""
    from .bridge import plugin_path

    cfg = ctx.config
    argv = [swift_executable(cfg), "rlhf", "--rlhf_type", "grpo", *ctx.model_flags, "--dataset", str(ctx.dataset),
            "--external_plugins", plugin_path(), "--reward_funcs", *cfg.rewards,
            "--use_vllm", "true" if cfg.use_vllm else "false",
            "--num_generations", str(cfg.num_generations), "--per_device_train_batch_size", str(cfg.batch_size),
            "--max_completion_length", str(cfg.max_completion_length), "--max_steps", str(cfg.max_steps),
            "--temperature", "1.0", "--tuner_type", cfg.tuner_type, "--learning_rate", "1e-4",
            "--logging_steps", "1", "--save_steps", str(cfg.max_steps), "--save_total_limit", "1",
            "--output_dir", str(ctx.run_dir)]
    if cfg.use_vllm:  # ms-swift 4.6 requires a mode with --use_vllm true; colocate needs no rollout server
        argv += ["--vllm_mode", "colocate"]
    if cfg.tuner_type == "lora":
        argv += ["--lora_rank", "8", "--lora_alpha", "16"]
    if cfg.model is None:
        argv += ["--max_length", "512"]
    return argv + list(cfg.swift_args)


_STEP_RE = re.compile(r"'global_step/max_steps': '(\d+)/(\d+)'")
_TQDM_RE = re.compile(r"Train:\s+\d+%\|[^|\r\n]*\|\s*(\d+)/(\d+)")


def stream_process(argv: Sequence[str], log_path: Path, env: Dict[str, str], cwd: Path, total: int,
                   reporter: Reporter, timeout: Optional[float] = None) -> int:
    """Run ``argv`` with stdout+stderr into ``log_path``, reporting training progress while it runs."""
    with open(log_path, "wb") as out:
        out.write(("$ " + " ".join(argv) + "\n").encode())
        out.flush()
        try:
            proc = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        except OSError as exc:
            raise DemoError(f"cannot start {argv[0]}: {exc.strerror or exc} (is ms-swift installed? "
                            f"pip install 'ms-swift>=4.6,<5')") from None
        try:
            return _follow(proc, log_path, out, total, reporter, timeout)
        except BaseException:  # Ctrl-C or a reporter error: never leave swift running
            proc.kill()
            proc.wait()
            raise


def _follow(proc, log_path: Path, out, total: int, reporter: Reporter, timeout: Optional[float]) -> int:
    """Poll ``proc`` until it exits, feeding the reporter the step count and the log's last line."""
    done, buffer = 0, ""
    deadline = None if timeout is None else time.monotonic() + timeout
    with open(log_path, "rb") as reader:
        while True:
            code = proc.poll()
            chunk = reader.read().decode("utf-8", errors="replace")
            if chunk:
                buffer = (buffer + chunk)[-20000:]
                steps = [int(m.group(1)) for m in (*_STEP_RE.finditer(buffer), *_TQDM_RE.finditer(buffer))]
                done = max([done, *steps])
                reporter.swift_progress(min(done, total), total, last_line(buffer))
            if code is not None:
                return code
            if deadline is not None and time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                out.write(f"\n[swift-ext demo] killed after {timeout}s\n".encode())
                return -9
            time.sleep(0.3)


def last_line(text: str, width: int = 100) -> str:
    """The last non-empty line (tqdm's ``\\r`` updates count as lines), cut to ``width`` characters."""
    for line in reversed(re.split(r"[\r\n]+", text)):
        line = line.strip()
        if line:
            return line if len(line) <= width else line[:width - 1] + "…"
    return ""


def error_line(path: Optional[Path]) -> str:
    """The last line of the log that names an exception or an error, else its last line."""
    lines = [line.strip() for line in tail(path, 200).splitlines() if line.strip()]
    for line in reversed(lines):
        if re.match(r"^([\w.]+(Error|Exception|Exit)\b|Error\b|ERROR\b|Killed)", line):
            return line[:200]
    return lines[-1][:200] if lines else "no output"


def tail(path: Optional[Path], lines: int = 40) -> str:
    if path is None or not Path(path).is_file():
        return ""
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    return "\n".join(re.split(r"\r?\n", text.replace("\r", "\n"))[-lines:])


def step_metrics(run_dir: Optional[Path], rewards: Sequence[str]) -> List[Dict[str, Any]]:
    """``[{"step": 1, "rewards": {name: mean}, "reward": total, "loss": l}, ...]`` from ``logging.jsonl``."""
    if run_dir is None:
        return []
    from .runs import logging_rows, number, step_of

    out = []
    for row in logging_rows(run_dir):
        if "reward" not in row:
            continue  # the final train summary row
        out.append({"step": step_of(row) or len(out) + 1,
                    "rewards": {name: number(row.get(f"rewards/{name}/mean")) for name in rewards
                                if f"rewards/{name}/mean" in row},
                    "reward": number(row.get("reward")), "loss": number(row.get("loss"))})
    return out
