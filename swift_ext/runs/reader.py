"""The one reader of a training run's own files: ``logging.jsonl`` (metrics per logged step), ``completions.jsonl``
(``--log_completions true``) and ``args.json``, all written by ms-swift itself, so a run that never loaded
swift-ext reads the same.

``completions.jsonl`` holds one JSON object per logging step in ms-swift 4.6's column layout
(``{"step": [...], "prompt": [...], "completion": [...], "<reward>": [...], "advantages": [...],
"solution": [...]}``: lists of equal length); rows with one completion per line (``{"step": 3, "prompt": ...,
"completion": ...}``) read the same.

    >>> from swift_ext.runs import metric_series
    >>> metric_series([{"global_step/max_steps": "1/2", "loss": 0.5, "reward": 1.0},
    ...                {"global_step/max_steps": "2/2", "loss": float("nan"), "reward": 0.5},
    ...                {"train_runtime": 1.0}])
    {'loss': [[1, 0.5]], 'reward': [[1, 1.0], [2, 0.5]]}
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from ..errors import ConfigError
from ..io import BadLine, iter_jsonl
from ..scoring.results import group_indices

LOGGING_FILE = "logging.jsonl"
COMPLETIONS_FILE = "completions.jsonl"
ARGS_FILE = "args.json"
#: completion-table columns that are not reward scores
NOT_REWARDS = frozenset({"step", "prompt", "completion", "advantages", "solution", "num_turns", "entropy", "image",
                         "images"})
_REWARD_MEAN = re.compile(r"^rewards/(.+)/mean$")
_VISION = re.compile(r"<\|vision_start\|>.*?<\|vision_end\|>|<image>|<video>|<\|image_pad\|>|<\|video_pad\|>", re.S)
_USER_TURN = re.compile(r"<\|im_start\|>user\n(.*?)<\|im_end\|>", re.S)


def find_run_dirs(path: "str | Path") -> List[Path]:
    """The run folders under ``path``: ``path`` itself when it holds a ``logging.jsonl`` or
    ``completions.jsonl``, else every folder below it that does (ms-swift's ``<output_dir>/v<N>-<time>``),
    oldest first."""
    root = Path(path).expanduser()
    if not root.exists():
        raise ConfigError(f"{path}: no such run folder")
    if root.is_file():
        if root.name not in (LOGGING_FILE, COMPLETIONS_FILE):
            raise ConfigError(f"{path}: not a run folder (give the folder that holds {LOGGING_FILE}, or one above it)")
        root = root.parent
    if (root / LOGGING_FILE).is_file() or (root / COMPLETIONS_FILE).is_file():
        return [root]
    found = {p.parent for name in (LOGGING_FILE, COMPLETIONS_FILE) for p in root.rglob(name)}
    if not found:
        raise ConfigError(f"{path}: no {LOGGING_FILE} or {COMPLETIONS_FILE} in this folder or below "
                          f"(is it a swift output_dir?)")
    return sorted(found, key=lambda p: (p.stat().st_mtime, str(p)))


def step_of(row: Dict[str, Any]) -> Optional[int]:
    """The optimizer step of a ``logging.jsonl`` row (``global_step/max_steps`` "3/40", else an integer
    ``step``), None for summary rows (the final ``train_runtime`` row, the trainer-state dump).

    >>> step_of({"global_step/max_steps": "3/40"}), step_of({"step": 2, "loss": 1.0}), step_of({"loss": 1.0})
    (3, 2, None)
    """
    if "train_runtime" in row:
        return None
    value = row.get("global_step/max_steps")
    if isinstance(value, str) and value.split("/")[0].isdigit():
        return int(value.split("/")[0])
    step = row.get("step")
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def max_steps_of(rows: Iterable[Dict[str, Any]]) -> Optional[int]:
    for row in rows:
        value = row.get("global_step/max_steps")
        if isinstance(value, str) and value.count("/") == 1 and value.split("/")[1].isdigit():
            return int(value.split("/")[1])
    return None


def number(value: Any) -> Optional[float]:
    """A logged value as a finite float, or None (NaN, inf, text, booleans)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def metric_series(rows: Iterable[Dict[str, Any]]) -> Dict[str, List[List[float]]]:
    """Every numeric metric of the step rows as ``{key: [[step, value], ...]}`` (NaN/inf and non-numbers
    left out; rows without a step, like the final summary, skipped)."""
    out: Dict[str, List[List[float]]] = {}
    for row in rows:
        step = step_of(row)
        if step is None:
            continue
        for key, value in row.items():
            v = number(value)
            if v is not None and key != "step":
                out.setdefault(key, []).append([step, v])
    return out


def read_logging(path: Path) -> List[Dict[str, Any]]:
    """The rows of one ``logging.jsonl``; a line being written right now (no newline yet) is left out."""
    rows = []
    with open(path, "rb") as fh:
        data = fh.read()
    complete, _, _ = data.rpartition(b"\n")
    for lineno, raw in enumerate(complete.split(b"\n"), 1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadLine(str(path), lineno, f"not a JSON row ({exc})") from None
        if isinstance(row, dict):
            rows.append(row)
    return rows


@dataclass
class Completion:
    step: int
    prompt: str
    text: str
    scores: Dict[str, Optional[float]]
    advantage: Optional[float] = None
    gold: Any = None
    line: int = 0


def iter_completions(path: Path) -> Iterable[Completion]:
    """Each logged completion of a ``completions.jsonl`` (column tables or one row per line). A table equal to
    the one before it is read once: ms-swift 4.6 writes the last step's table again when training ends (its
    final ``log()`` call finds the same completions still buffered)."""
    previous = None
    for lineno, obj in iter_jsonl(str(path)):
        if not isinstance(obj, dict):
            raise BadLine(str(path), lineno, f"expected a JSON object, got {type(obj).__name__}")
        if obj == previous:
            continue
        previous = obj
        lists = {k: v for k, v in obj.items() if isinstance(v, list)}
        if "completion" in lists:  # ms-swift's column table: every column one value per completion
            n = len(lists["completion"])
            bad = [k for k, v in lists.items() if len(v) != n]
            if bad:
                raise BadLine(str(path), lineno, f"columns {bad} do not have {n} values like 'completion'")
            rows = [{k: (v[i] if isinstance(v, list) else v) for k, v in obj.items()} for i in range(n)]
        else:
            rows = [obj]
        for row in rows:
            if "completion" not in row:
                raise BadLine(str(path), lineno, "no 'completion' column")
            step = row.get("step")
            try:
                step = int(step)
            except (TypeError, ValueError):
                raise BadLine(str(path), lineno, f"'step' is {step!r}, not a step number") from None
            scores = {k: number(v) for k, v in row.items()
                      if k not in NOT_REWARDS and (number(v) is not None or v is None)}
            yield Completion(step=step, prompt=_text(row.get("prompt")), text=_text(row.get("completion")),
                             scores=scores, advantage=number(row.get("advantages")), gold=row.get("solution"),
                             line=lineno)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and isinstance(value[-1], dict):  # a message list
        return str(value[-1].get("content", ""))
    return json.dumps(value, ensure_ascii=False)


def prompt_text(prompt: str) -> str:
    """The last user turn of a templated prompt, without image placeholders (for matching dataset rows)."""
    turns = _USER_TURN.findall(prompt)
    text = turns[-1] if turns else prompt
    return " ".join(_VISION.sub(" ", text).split())


@dataclass
class Run:
    """One run folder: its metrics per step and where its completions are."""

    path: Path
    name: str
    args: Dict[str, Any] = field(default_factory=dict)
    rows: List[Dict[str, Any]] = field(default_factory=list)
    series: Dict[str, List[List[float]]] = field(default_factory=dict)
    completions_path: Optional[Path] = None

    @property
    def reward_names(self) -> List[str]:
        """Reward names in logging order (``rewards/<name>/mean``), else the run's ``--reward_funcs``."""
        names = [m.group(1) for key in self.series for m in [_REWARD_MEAN.match(key)] if m]
        if names:
            return names
        funcs = self.args.get("reward_funcs") or []
        return [str(f) for f in funcs] if isinstance(funcs, list) else []

    @property
    def steps(self) -> List[int]:
        return sorted({int(s) for points in self.series.values() for s, _ in points})

    @property
    def max_steps(self) -> Optional[int]:
        return max_steps_of(self.rows)

    def completions(self) -> List[Completion]:
        return list(iter_completions(self.completions_path)) if self.completions_path else []

    def reward_weights(self) -> Dict[str, float]:
        """``--reward_weights`` by logged reward name (ms-swift logs rewards in ``--reward_funcs`` order;
        1.0 each when unset or when the counts differ)."""
        names = self.reward_names
        weights = self.args.get("reward_weights") or []
        if len(weights) != len(names):
            weights = [1.0] * len(names)
        return {n: float(w) for n, w in zip(names, weights)}

    def refresh(self) -> None:
        """Recompute :attr:`series` from :attr:`rows` (after appending rows, as the audit callback does)."""
        self.series = metric_series(self.rows)

    def dataset_files(self) -> List[Path]:
        """The run's local JSONL datasets (``--dataset``), where they still exist."""
        out = []
        for spec in self.args.get("dataset") or []:
            path = Path(str(spec).split("#")[0]).expanduser()
            if path.suffix.lower() == ".jsonl" and path.is_file():
                out.append(path)
        return out


def load_run(path: "str | Path", name: Optional[str] = None) -> Run:
    """Read one run folder (see :func:`find_run_dirs` for which folder that is)."""
    folder = Path(path)
    run = Run(path=folder, name=name or folder.name)
    args_file = folder / ARGS_FILE
    if args_file.is_file():
        try:
            loaded = json.loads(args_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{args_file}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
        run.args = loaded if isinstance(loaded, dict) else {}
    if (folder / LOGGING_FILE).is_file():
        run.rows = read_logging(folder / LOGGING_FILE)
        run.series = metric_series(run.rows)
    if (folder / COMPLETIONS_FILE).is_file():
        run.completions_path = folder / COMPLETIONS_FILE
    return run


def latest_run(path: "str | Path") -> Run:
    """The newest run folder at or under ``path``."""
    return load_run(find_run_dirs(path)[-1])


def logging_rows(output_dir: "str | Path") -> List[Dict[str, Any]]:
    """The rows of every ``logging.jsonl`` at or under ``output_dir``, oldest run first ([] when there is none)."""
    root = Path(output_dir)
    if not root.exists():
        return []
    try:
        folders = find_run_dirs(root)
    except ConfigError:
        return []
    return [row for folder in folders if (folder / LOGGING_FILE).is_file()
            for row in read_logging(folder / LOGGING_FILE)]


def load_runs(paths: Sequence["str | Path"]) -> List[Run]:
    """Every run under ``paths``, named by their folder (made unique with the parent's name)."""
    if not paths:
        raise ConfigError("no run folder given")
    folders = [folder for p in paths for folder in find_run_dirs(p)]
    names: List[str] = []
    for folder in folders:
        name = folder.name
        if name in names or (name.startswith("v") and len(folders) > 1):
            name = f"{folder.parent.name}/{folder.name}"
        while name in names:
            name += "'"
        names.append(name)
    return [load_run(folder, name) for folder, name in zip(folders, names)]


def dataset_images(files: Sequence[Path]) -> Dict[Tuple[str, str], List[List[str]]]:
    """``(user text, gold)`` -> the distinct image lists of the dataset rows with that prompt text and gold
    (``solution``), also under ``(user text, "")`` for every gold; the user text as :func:`prompt_text` gives
    it. Rows without images are left out."""
    found: Dict[Tuple[str, str], List[List[str]]] = {}
    for path in files:
        for _, row in iter_jsonl(str(path)):
            if not isinstance(row, dict) or not row.get("images"):
                continue
            turns = [m for m in row.get("messages") or [] if isinstance(m, dict) and m.get("role") == "user"]
            if not turns or not isinstance(turns[-1].get("content"), str):
                continue
            text = " ".join(_VISION.sub(" ", turns[-1]["content"]).split())
            images = []
            for item in row["images"]:
                image = item if isinstance(item, str) else (item or {}).get("path") if isinstance(item, dict) else None
                if not image:
                    continue
                if not Path(image).is_absolute() and (path.parent / image).is_file():
                    image = str((path.parent / image).resolve())
                images.append(image)
            for key in ((text, gold_text(row.get("solution"))), (text, "")):
                if images not in found.setdefault(key, []):
                    found[key].append(images)
    return found


def gold_text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def group_by_prompt(items: Sequence[Completion]) -> List[List[int]]:
    """Indices of ``items`` grouped by (step, prompt), in order of first appearance."""
    return group_indices((c.step, c.prompt) for c in items)


__all__ = ["Run", "Completion", "load_run", "load_runs", "latest_run", "find_run_dirs", "metric_series",
           "iter_completions", "prompt_text", "dataset_images", "group_by_prompt", "step_of", "number", "logging_rows"]

