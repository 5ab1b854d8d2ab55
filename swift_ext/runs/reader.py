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
import logging
import math
import os
import re
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from ..errors import ConfigError
from ..io import BadLine, iter_jsonl
from ..io.jsonl import READ_CHUNK, parse_json_line
from ..scoring.results import VISION as _VISION, Results, group_indices, split_trajectory, table_rows
from ..tools.parse import parse_text

LOGGING_FILE = "logging.jsonl"
COMPLETIONS_FILE = "completions.jsonl"
ARGS_FILE = "args.json"
#: completion-table columns that are not reward scores
NOT_REWARDS = frozenset({"step", "prompt", "completion", "advantages", "solution", "num_turns", "entropy", "image",
                         "images"})
_REWARD_MEAN = re.compile(r"^rewards/(.+)/mean$")
_USER_TURN = re.compile(r"<\|im_start\|>user\n(.*?)<\|im_end\|>", re.S)
#: a step beyond this is not a step (a 400-digit "global_step"): the row reads as a summary row
MAX_STEP = 1 << 53
logger = logging.getLogger(__name__)


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
        head = value.split("/")[0]
        return int(head) if len(head) < 16 and int(head) <= MAX_STEP else None
    step = row.get("step")
    return step if isinstance(step, int) and not isinstance(step, bool) and 0 <= step <= MAX_STEP else None


def max_steps_of(rows: Iterable[Dict[str, Any]]) -> Optional[int]:
    for row in rows:
        value = row.get("global_step/max_steps")
        if isinstance(value, str) and value.count("/") == 1 and value.split("/")[1].isdigit() \
                and len(value.split("/")[1]) < 16:
            return int(value.split("/")[1])
    return None


def number(value: Any) -> Optional[float]:
    """A logged value as a finite float, or None (NaN, inf, an integer too large for a float, text, booleans).

    >>> number(1), number(float("inf")), number(10 ** 400), number("1")
    (1.0, None, None, None)
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:  # a 400-digit integer: as unusable as inf
        return None
    return value if math.isfinite(value) else None


class Points:
    """The ``[step, value]`` pairs of one metric, kept in two arrays (16 bytes a point instead of about 120 as
    Python lists, so a long run's metrics fit in memory). Reads like the list of pairs it replaces: ``len``,
    iteration, indexing and slicing give ``[step, value]`` lists, and it compares equal to such a list."""

    __slots__ = ("steps", "values")

    def __init__(self, pairs: Iterable[Sequence[float]] = ()):
        self.steps, self.values = array("q"), array("d")
        for step, value in pairs:
            self.append((step, value))

    def append(self, pair: Sequence[float]) -> None:
        self.steps.append(int(pair[0]))
        self.values.append(float(pair[1]))

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Iterator[List[float]]:
        return map(list, zip(self.steps, self.values))

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [list(p) for p in zip(self.steps[index], self.values[index])]
        return [self.steps[index], self.values[index]]

    def __eq__(self, other: Any) -> bool:
        return list(self) == list(other) if isinstance(other, (Points, list, tuple)) else NotImplemented

    def __repr__(self) -> str:
        return repr(list(self))

    def json(self) -> str:
        """The pairs as a JSON array (what ``json.dumps(list(points))`` writes)."""
        return json.dumps(list(self), allow_nan=False, separators=(",", ":"))


class MetricLog:
    """One ``logging.jsonl`` read incrementally: :meth:`read` reads what was appended since the last call
    (complete lines only: a line still being written is read once its newline is there), folding each step
    row into :attr:`series` (compact :class:`Points`) without keeping the rows. A line in the middle that is
    not a JSON row (torn by a crash, nested 100k deep) is skipped with a warning naming ``file:line``; the
    file being replaced or truncated starts the reading over. :attr:`offset` is how far the file was read."""

    def __init__(self, path: "str | Path"):
        self.path = Path(path)
        self._reset()

    def _reset(self) -> None:
        self.offset = 0
        self.lineno = 0
        self.series: Dict[str, Points] = {}
        self.max_steps: Optional[int] = None
        self.skipped: List[Tuple[int, str]] = []
        self._identity: Optional[Tuple[int, int]] = None

    def read(self) -> int:
        """Read what was appended; the number of bytes read."""
        with open(self.path, "rb") as fh:
            st = os.fstat(fh.fileno())
            if self._identity not in (None, (st.st_dev, st.st_ino)) or st.st_size < self.offset:
                self._reset()
            self._identity = (st.st_dev, st.st_ino)
            fh.seek(self.offset)
            read = 0
            while True:
                lines = fh.readlines(READ_CHUNK)
                if not lines:
                    break
                if not lines[-1].endswith(b"\n"):  # the line training is writing right now
                    lines.pop()
                    if not lines:
                        break
                    for raw in lines:
                        read += len(raw)
                        self._line(raw)
                    break
                for raw in lines:
                    read += len(raw)
                    self._line(raw)
            self.offset += read
        return read

    def _line(self, raw: bytes) -> None:
        self.lineno += 1
        if not raw.strip():
            return
        row, err = parse_json_line(raw)
        if err is not None:
            self.skipped.append((self.lineno, err))
            logger.warning("%s:%d: %s; line skipped", self.path, self.lineno, err)
            return
        if not isinstance(row, dict):
            return
        if self.max_steps is None:
            self.max_steps = max_steps_of([row])
        for key, step, v in row_points(row):
            points = self.series.get(key)
            if points is None:
                points = self.series[key] = Points()
            points.steps.append(step)
            points.values.append(v)


def metric_series(rows: Iterable[Dict[str, Any]]) -> Dict[str, List[List[float]]]:
    """Every numeric metric of the step rows as ``{key: [[step, value], ...]}`` (NaN/inf and non-numbers
    left out; rows without a step, like the final summary, skipped)."""
    out: Dict[str, List[List[float]]] = {}
    for row in rows:
        for key, step, v in row_points(row):
            out.setdefault(key, []).append([step, v])
    return out


def row_points(row: Dict[str, Any]) -> Iterator[Tuple[str, int, float]]:
    """``(key, step, value)`` for every finite numeric metric of a step row (none for a row without a step)."""
    step = step_of(row)
    if step is None:
        return
    for key, value in row.items():
        v = number(value)
        if v is not None and key != "step":
            yield key, step, v


def read_logging(path: Path) -> List[Dict[str, Any]]:
    """The rows of one ``logging.jsonl``; a line being written right now (no newline yet) is left out, and a
    line in the middle that is not a JSON row is skipped with a warning naming ``file:line`` (as
    :class:`MetricLog` does)."""
    rows = []
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if not raw.endswith(b"\n") or not raw.strip():
                continue
            row, err = parse_json_line(raw)
            if err is not None:
                logger.warning("%s:%d: %s; line skipped", path, lineno, err)
            elif isinstance(row, dict):
                rows.append(row)
    return rows


@dataclass
class Completion:
    """One completion of a run's ``completions.jsonl``, as :func:`iter_completions` streams them (one at a time,
    so a report or an audit reads any size of log in bounded memory).

    A view of one entry of :class:`~swift_ext.scoring.results.Results`, the one record of scored completions:
    ``text`` is ``completions[i]``; ``prompt``, ``gold`` (``solution``), ``step`` and ``advantage``
    (``advantages``) are its columns ``rows[i]``; ``scores[name]`` is ``scores[name][i]``; its prompt group is
    (step, prompt). :func:`as_results` turns completions into that record (and :mod:`swift_ext.scoring.stats`
    summarises it as ``rewards score``, ``eval`` and the callbacks do).

    A multi-turn rollout's ``prompt`` is the prompt it started from (as a single-turn
    run logs it, so a group's trajectories share it) and ``turns`` the assistant and tool turns before the
    final completion ``text`` (:class:`swift_ext.scoring.results.Trajectory`); ``num_turns`` as logged."""

    step: int
    prompt: str
    text: str
    scores: Dict[str, Optional[float]]
    advantage: Optional[float] = None
    gold: Any = None
    line: int = 0
    turns: List[Dict[str, Any]] = field(default_factory=list)
    num_turns: Optional[int] = None

    @property
    def tool_calls(self) -> int:
        """Tool calls the trajectory made: those of its assistant turns and of the final completion."""
        return sum(len(t.get("calls") or ()) for t in self.turns if t.get("role") == "assistant") \
            + len(parse_text(self.text))


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
        try:  # ms-swift's column table: every column one value per completion
            rows = table_rows(obj, require_step=False) or [obj]
        except ValueError as exc:
            raise BadLine(str(path), lineno, str(exc)) from None
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
            num_turns = row.get("num_turns")
            num_turns = num_turns if isinstance(num_turns, int) and not isinstance(num_turns, bool) else None
            prompt, turns = row.get("prompt"), []
            if isinstance(prompt, (str, list)):
                traj = split_trajectory(prompt, num_turns)
                prompt, turns = traj.prompt, traj.turns
            yield Completion(step=step, prompt=_text(prompt), text=_text(row.get("completion")),
                             scores=scores, advantage=number(row.get("advantages")), gold=row.get("solution"),
                             line=lineno, turns=turns, num_turns=num_turns)


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
    series: Dict[str, Any] = field(default_factory=dict)  # key -> [[step, value], ...] (lists or Points)
    completions_path: Optional[Path] = None
    log: Optional[MetricLog] = None  # where series came from (load_run): rows are not kept

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
        found: set = set()
        for points in self.series.values():
            found.update(points.steps if isinstance(points, Points) else (int(s) for s, _ in points))
        return sorted(found)

    @property
    def max_steps(self) -> Optional[int]:
        if self.rows or self.log is None:
            return max_steps_of(self.rows)
        return self.log.max_steps

    def reload(self) -> int:
        """Read what was appended to the run's ``logging.jsonl`` since it was loaded (bytes read)."""
        if self.log is None:
            return 0
        read = self.log.read()
        self.series = self.log.series
        return read

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
        run.log = MetricLog(folder / LOGGING_FILE)
        run.reload()
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


def as_results(items: Iterable[Completion], path: str = "<completions.jsonl>") -> Results:
    """Logged completions as :class:`~swift_ext.scoring.results.Results` (see :class:`Completion`): grouped by
    (step, prompt) as :func:`group_by_prompt` groups them, each logged reward a score column.

    >>> res = as_results([Completion(1, "2+2?", "4", {"acc": 1.0}, gold="4"), Completion(1, "2+2?", "5", {"acc": 0.0})])
    >>> res.completions, res.groups, res.scores, res.rows[0]["solution"]
    (['4', '5'], [[0, 1]], {'acc': [1.0, 0.0]}, '4')
    """
    out = Results(path=path)
    for c in items:
        out.add(c.text, {"step": c.step, "prompt": c.prompt, "solution": c.gold, "advantages": c.advantage},
                (c.step, c.prompt), line=c.line, scores=c.scores)
    return out


__all__ = ["Run", "Completion", "MetricLog", "Points", "load_run", "load_runs", "latest_run", "find_run_dirs",
           "metric_series",
           "iter_completions", "as_results", "prompt_text", "dataset_images", "group_by_prompt", "step_of", "number",
           "logging_rows"]

