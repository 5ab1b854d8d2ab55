"""``swift-ext demo``: a short, real GRPO run with swift-ext rewards, as a list of steps.

With no arguments it needs no network and no GPU, and shows a reward being learned: it builds a tiny
random-weight Qwen3 text model in the work folder, converts the bundled SFT rows of a toy task ("chant ka
three times", answer in ``<answer>``) to GRPO rows with ``swift-ext convert``, runs 40 steps of
``swift rlhf --rlhf_type grpo --use_vllm false`` (full tuning, 8 generations of 12 tokens) as a subprocess
with swift-ext rewards loaded through the plugin file (``teacher_similarity:metric=chrf`` scores the
similarity to the gold chant and rises; ``think_format`` scores the format the prompt asks for), reads each
reward's mean per step from the run's own ``logging.jsonl`` and writes the run's HTML report
(:mod:`swift_ext.report`). ``quick=True`` is the 2-step smoke run on a tiny Qwen2-VL model with images.
``model``/``dataset`` point it at real ones (on a GPU node).

    >>> from swift_ext.demo import DemoConfig, run_demo
    >>> result = run_demo(DemoConfig(workdir="/tmp/demo"))   # a real swift run, about a minute  # doctest: +SKIP
    >>> result.learned["first"], result.learned["last"]                                 # doctest: +SKIP
    (0.07, 0.33)

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

from ..errors import ConfigError, SwiftExtError

DATA_DIR = Path(__file__).resolve().parent / "data"
#: the learning run (default): the first reward is the one that rises
DEFAULT_REWARDS = ("teacher_similarity:metric=chrf", "think_format")
DEFAULT_KIND = "text"
#: the 2-step smoke run (``quick=True``)
QUICK_REWARDS = ("exact_match:extract=last_number", "think_format", "random:seed=7")
QUICK_KIND = "qwen2_vl"
#: settings that differ between the learning run and the smoke run: (learning, quick)
MODE_DEFAULTS = {"tiny_kind": (DEFAULT_KIND, QUICK_KIND), "rewards": (DEFAULT_REWARDS, QUICK_REWARDS),
                 "max_steps": (40, 2), "num_generations": (8, 2), "batch_size": (8, 4),
                 "max_completion_length": (12, 16), "tuner_type": ("full", "lora"), "learning_rate": (3e-2, 1e-4)}
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
    """What the demo runs. Every field has a CPU-friendly default; ``None`` fields take the learning run's
    value, or the smoke run's with ``quick=True`` (:data:`MODE_DEFAULTS`)."""

    workdir: Optional[os.PathLike] = None
    model: Optional[str] = None  # None: build the tiny model of ``tiny_kind``
    model_type: Optional[str] = None
    template: Optional[str] = None
    dataset: Optional[str] = None  # None: the bundled sample rows
    quick: bool = False
    tiny_kind: Optional[str] = None
    rewards: Optional[Sequence[str]] = None
    max_steps: Optional[int] = None
    num_generations: Optional[int] = None
    batch_size: Optional[int] = None
    max_completion_length: Optional[int] = None
    use_vllm: bool = False
    tuner_type: Optional[str] = None
    learning_rate: Optional[float] = None
    report: bool = True  # write the run's HTML report (swift_ext.report)
    swift_args: Sequence[str] = ()  # appended last, so they override the demo's own flags
    swift: Optional[str] = None  # the swift executable (default: next to this Python, else PATH)
    timeout: Optional[float] = None

    def __post_init__(self):
        for name, (learning, quick) in MODE_DEFAULTS.items():
            if getattr(self, name) is None:
                setattr(self, name, quick if self.quick else learning)

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
    samples: List[Dict[str, Any]] = field(default_factory=list)
    report: Optional[Path] = None
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
        from .. import cpu_compat
        from ..testing import tiny

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
        from ..testing import tiny

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

    # the learning run's rows ask for what its rewards score: the chant in <answer> after <think>

    def run(self, ctx: DemoContext) -> None:
        if ctx.config.dataset is not None:  # swift runs in the run folder: make local paths absolute
            local = Path(ctx.config.dataset).expanduser()
            if local.is_file() and local.suffix.lower() in (".jsonl", ".json"):
                # its media paths too: resolved against the dataset's folder, as convert and validate do
                from ..convert.media import absolutize_media_file

                ctx.dataset = absolutize_media_file(str(local), str(ctx.workdir / "data"))
            else:  # a hub id, a folder or a `path#N` spec
                ctx.dataset = str(local.resolve()) if local.exists() else ctx.config.dataset
            return
        path, report = convert_sample_dataset(ctx.workdir / "data", vl=ctx.is_vl, task=sample_task(ctx.config))
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


class CollectSamples(Step):
    """A few logged completions with their scores (``completions.jsonl``): the first step's first one and the
    last step's best one by the first reward."""

    name, title = "samples", "Reading sample completions"

    def run(self, ctx: DemoContext) -> None:
        ctx.samples = sample_completions(ctx.run_dir, ctx.config.rewards)


class WriteReport(Step):
    """The run's HTML report next to its files (``swift-ext report``)."""

    name, title = "report", "Writing the HTML report"

    def skip_reason(self, ctx: DemoContext) -> Optional[str]:
        return None if ctx.config.report else "report=False"

    def run(self, ctx: DemoContext) -> None:
        from ..report import write_report

        folders = sorted({p.parent for p in ctx.run_dir.rglob("logging.jsonl")})
        folder = folders[-1] if folders else ctx.run_dir
        try:
            info = write_report([folder], folder / "report.html", title=f"swift-ext demo: {folder.name}")
        except ConfigError as exc:  # plotly not installed: the run itself is fine
            ctx.note(f"no HTML report: {exc}")
            return
        ctx.report = Path(info.path)


DEFAULT_STEPS: List[Step] = [PrepareEnvironment(), PrepareModel(), PrepareDataset(), RunGRPO(), CollectMetrics(),
                             CollectSamples(), WriteReport()]


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
    report: Optional[str] = None
    samples: List[Dict[str, Any]] = field(default_factory=list)
    learned: Optional[Dict[str, Any]] = None  # the first reward's first- and last-quarter means
    zeros: List[str] = field(default_factory=list)  # why metrics are 0 on a tiny random model

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
                      steps=ctx.steps, notes=ctx.notes, timings=ctx.timings,
                      report=str(ctx.report) if ctx.report else None, samples=ctx.samples,
                      learned=learning_summary(ctx.steps, config.rewards[0]) if ctx.steps else None,
                      zeros=zero_explanations(ctx.steps, config))


def validate(config: DemoConfig) -> None:
    from ..params import parse_spec

    if not config.rewards:
        raise ConfigError("the demo needs at least one reward")
    for spec in config.rewards:
        parse_spec(spec)  # raises ParamError on a malformed name
    for name in ("max_steps", "num_generations", "batch_size", "max_completion_length"):
        if not isinstance(getattr(config, name), int):
            raise ConfigError(f"{name} must be a whole number, got {getattr(config, name)!r}")
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


def sample_task(config: DemoConfig) -> str:
    """Which bundled rows a run uses: ``chant`` for the learning run, ``shapes``/``sums`` for the smoke run."""
    return "chant" if not config.quick else "shapes_or_sums"


def write_sample_dataset(out_dir: Path, vl: bool = True, task: str = "shapes_or_sums") -> Path:
    """The bundled sample rows as a GRPO file (see :func:`convert_sample_dataset`)."""
    return convert_sample_dataset(out_dir, vl, task)[0]


def convert_sample_dataset(out_dir: Path, vl: bool = True, task: str = "shapes_or_sums"):
    """Copy the bundled SFT sample rows (images next to them, paths made absolute) and turn them into GRPO
    rows with ``swift-ext convert``: prompt-only messages, the ``<answer>`` of the SFT reply in ``solution``.
    ``task="chant"``: the learning run's rows ("chant ka three times"; text only); otherwise shape
    questions with images (``vl``) or sums.

    Returns ``(grpo_path, convert_report)``.
    """
    from ..convert import convert_file
    from ..testing.tiny import write_jsonl

    out_dir.mkdir(parents=True, exist_ok=True)
    source = DATA_DIR / ("sft_chant.jsonl" if task == "chant" else "sft_vl.jsonl" if vl else "sft_text.jsonl")
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
    from ..bridge import plugin_path

    cfg = ctx.config
    argv = [swift_executable(cfg), "rlhf", "--rlhf_type", "grpo", *ctx.model_flags, "--dataset", str(ctx.dataset),
            "--external_plugins", plugin_path(), "--reward_funcs", *cfg.rewards,
            "--use_vllm", "true" if cfg.use_vllm else "false",
            "--num_generations", str(cfg.num_generations), "--per_device_train_batch_size", str(cfg.batch_size),
            "--max_completion_length", str(cfg.max_completion_length), "--max_steps", str(cfg.max_steps),
            "--temperature", "1.0", "--tuner_type", cfg.tuner_type, "--learning_rate", str(cfg.learning_rate),
            "--logging_steps", "1", "--log_completions", "true", "--save_steps", str(cfg.max_steps),
            "--save_total_limit", "1", "--output_dir", str(ctx.run_dir)]
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


#: GRPO health metrics the demo reports per step (when logged)
HEALTH_KEYS = ("kl", "completions/clipped_ratio", "clip_ratio/region_mean", "frac_reward_zero_std")


def step_metrics(run_dir: Optional[Path], rewards: Sequence[str]) -> List[Dict[str, Any]]:
    """``[{"step": 1, "rewards": {name: mean}, "reward": total, "loss": l, "health": {key: value}}, ...]``
    from ``logging.jsonl`` (``health``: the :data:`HEALTH_KEYS` the row has)."""
    if run_dir is None:
        return []
    from ..runs.reader import logging_rows, number, step_of

    out = []
    for row in logging_rows(run_dir):
        if "reward" not in row:
            continue  # the final train summary row
        out.append({"step": step_of(row) or len(out) + 1,
                    "rewards": {name: number(row.get(f"rewards/{name}/mean")) for name in rewards
                                if f"rewards/{name}/mean" in row},
                    "reward": number(row.get("reward")), "loss": number(row.get("loss")),
                    "health": {k: number(row[k]) for k in HEALTH_KEYS if k in row}})
    return out


# -- what the terminal shows ----------------------------------------------------------------------------
def quarter_means(values: Sequence[Optional[float]]) -> Optional[tuple]:
    """(mean of the first quarter, mean of the last quarter) of the finite values (the quarters
    ``swift-ext audit`` compares); None with under 4."""
    from ..curation.audit import quarters

    xs = [v for v in values if v is not None]
    if len(xs) < 4:
        return None
    first, last = quarters(xs)
    return sum(first) / len(first), sum(last) / len(last)


def learning_summary(steps: Sequence[Dict[str, Any]], reward: str) -> Optional[Dict[str, Any]]:
    """The first reward's first- and last-quarter means over the logged steps."""
    means = quarter_means([s["rewards"].get(reward) for s in steps])
    if means is None:
        return None
    return {"reward": reward, "first": round(means[0], 4), "last": round(means[1], 4),
            "steps": len(steps)}


SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[Optional[float]], width: int = 40) -> str:
    """A one-line curve of ``values`` (resampled to at most ``width`` points, scaled min..max).

    >>> sparkline([0, 1, 2, 3, 4, 5, 6, 7])
    '▁▂▃▄▅▆▇█'
    >>> sparkline([2, 2, None])
    '▁▁ '
    """
    if len(values) > width:
        values = [values[round(i * (len(values) - 1) / (width - 1))] for i in range(width)]
    xs = [v for v in values if v is not None]
    if not xs:
        return " " * len(values)
    lo, hi = min(xs), max(xs)
    span = (hi - lo) or 1.0
    return "".join(" " if v is None else SPARK[min(len(SPARK) - 1, int((v - lo) / span * len(SPARK)))]
                   for v in values)


def sample_completions(run_dir: Optional[Path], rewards: Sequence[str]) -> List[Dict[str, Any]]:
    """The first logged completion of the first step, and the best one (by the first reward) of the last
    step, with every reward's score; empty when the run logged no completions."""
    if run_dir is None:
        return []
    from ..runs.reader import iter_completions

    files = sorted(Path(run_dir).rglob("completions.jsonl"))
    if not files:
        return []
    items = list(iter_completions(files[-1]))
    if not items:
        return []
    first_step, last_step = items[0].step, items[-1].step
    first = items[0]
    last = max((c for c in items if c.step == last_step),
               key=lambda c: -math.inf if c.scores.get(rewards[0]) is None else c.scores[rewards[0]])
    picks = [first] if first_step == last_step else [first, last]
    return [{"step": c.step, "completion": c.text, "gold": c.gold,
             "scores": {r: c.scores.get(r) for r in rewards}} for c in picks]


#: metric -> why it is 0 on a tiny random model (shown when every logged step has it at 0)
ZERO_REASONS = {
    "clip_ratio/region_mean": "clip_ratio (one policy update per batch: the new/old probability ratio is exactly 1)",
    "think_format": "think_format (a random model does not write the <answer>...</answer> the prompt asks for)",
    "exact_match:extract=last_number": "exact_match (a random model does not write the right number)",
}


def zero_explanations(steps: Sequence[Dict[str, Any]], config: DemoConfig) -> List[str]:
    """Short reasons for the metrics that stayed exactly 0 in every logged step and are 0 by construction or
    by a random model's nature; read from the steps' ``rewards`` and ``health`` values."""
    if not steps:
        return []
    out = []
    for key, reason in ZERO_REASONS.items():
        values = [s.get("health", {}).get(key, s["rewards"].get(key)) for s in steps]
        if values and all(v == 0.0 for v in values):
            out.append(reason)
    if steps[0].get("health", {}).get("kl") == 0.0:
        out.append("kl at step 1 (the policy still equals the reference model)")
    if steps[0].get("loss") is not None and abs(steps[0]["loss"]) < 1e-5:
        out.append("loss at step 1 (GRPO advantages average to 0 within each prompt group and the ratio is 1)")
    return out
