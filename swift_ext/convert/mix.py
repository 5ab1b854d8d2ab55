"""``swift-ext mix``: mix datasets by ratio, deterministically, with a train/val split.

``mix_files(["domain.jsonl:10", "general.jsonl:1"], "mix.jsonl", MixOptions(seed=0, val_ratio=0.05))``

How many rows are taken: with ``total`` each source gives ``total * ratio / sum(ratios)`` rows
(largest remainders round); without it the source that runs out first is used whole and the others
in proportion (``domain:10 general:1`` with 1000 domain rows takes 100 general rows). Asking for more
rows than a source has is an error unless ``upsample=True`` (whole copies, then a sample). Rows are
picked with ``random.Random(f"{seed}:{source_index}")`` and the mixture is shuffled with the seed, so
the same inputs and seed give byte-identical outputs. Rows are copied as they are (mix files of
the same format; convert first). Rows that do not parse go to the reject file. Memory: the selected
rows are held (as bytes) to shuffle them.

>>> allocate([1000, 5000], [10, 1], None)
[1000, 100]
>>> allocate([1000, 5000], [10, 1], 110)
[100, 10]
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from ..errors import ConfigError
from ..io import JsonlWriter, Progress, RejectFile, default_reject_path, encode_json
from . import sources


def parse_source(spec: str) -> Tuple[str, float]:
    """``path:ratio`` (ratio defaults to 1); the split is on the last ``:`` so paths may contain colons."""
    path, sep, ratio = spec.rpartition(":")
    if not sep or not path or os.sep in ratio:
        return spec, 1.0
    try:
        value = float(ratio)
    except ValueError:
        return spec, 1.0
    if not value > 0:
        raise ConfigError(f"{spec}: the ratio must be > 0")
    return path, value


def allocate(counts: List[int], ratios: List[float], total: Optional[int]) -> List[int]:
    """Rows to take from each source (see the module doc)."""
    if total is None:
        scale = min(c / r for c, r in zip(counts, ratios))
        return [min(c, int(scale * r + 1e-9)) for c, r in zip(counts, ratios)]
    s = sum(ratios)
    exact = [total * r / s for r in ratios]
    takes = [int(x) for x in exact]
    order = sorted(range(len(exact)), key=lambda i: -(exact[i] - takes[i]))
    for i in order[:total - sum(takes)]:
        takes[i] += 1
    return takes


@dataclass
class MixReport:
    output: str
    val_output: Optional[str]
    reject_file: Optional[str] = None
    seed: int = 0
    sources: List[Dict[str, Any]] = field(default_factory=list)
    rows_train: int = 0
    rows_val: int = 0
    rows_rejected: int = 0
    seconds: float = 0.0

    def to_dict(self) -> Dict[str, Any]:
        return dict(self.__dict__)


def _valid_rows(path: str, show_progress: bool = False, what: str = ""):
    """The rows of ``path``; a row that is not a JSON object gets a reason like a row that does not parse."""
    total, unit = sources.progress_total(path) if show_progress else (0, "rows")
    with Progress(show_progress, total, unit, f"{what} {os.path.basename(path)}") as bar:
        for num, obj, raw, err in sources.iter_source(path, on_bytes=bar.on_bytes):
            if err is None and not isinstance(obj, dict):
                err = f"a row must be a JSON object, got {type(obj).__name__}"
            yield num, obj, raw, err


@dataclass(frozen=True)
class MixOptions:
    """Every setting of ``swift-ext mix``, one field per flag by the same name (tests/meta/test_options.py
    checks they agree); the sources and the output are the arguments of :func:`mix_files`.

    >>> MixOptions(val_ratio=1.0)
    Traceback (most recent call last):
    ...
    swift_ext.errors.ConfigError: --val-ratio must be in [0, 1)
    """

    seed: int = 0                            # seed of the row picks and the shuffle
    val_ratio: float = 0.0                   # fraction of the mixture held out for validation
    val_output: Optional[str] = None         # validation file (default: OUTPUT-stem.val.jsonl)
    total: Optional[int] = None              # rows in the mixture (default: the limiting source is used whole)
    upsample: bool = False                   # a source too small for its share repeats rows
    reject_path: Optional[str] = None        # reject file (--reject-file; default: OUTPUT-stem.rejected.jsonl)

    def __post_init__(self):
        if not 0.0 <= self.val_ratio < 1.0:
            raise ConfigError("--val-ratio must be in [0, 1)")


def mix_files(specs: List[str], output: str, options: Optional[MixOptions] = None, *,
              show_progress: bool = False) -> MixReport:
    """Mix the sources ``specs`` (``path:ratio``) into ``output`` with the settings in ``options`` (default: seed 0,
    no validation split, the limiting source used whole); see the module doc."""
    o = options or MixOptions()
    seed, val_ratio, val_output, total, upsample = o.seed, o.val_ratio, o.val_output, o.total, o.upsample
    t0 = time.perf_counter()
    if not specs:
        raise ConfigError("mix needs at least one source (path:ratio)")
    parsed = [parse_source(s) for s in specs]
    for path, _ in parsed:
        sources.input_kind(path)  # raises for a missing file
    if val_ratio > 0 and val_output is None:
        stem = output[:-6] if output.endswith(".jsonl") else output
        val_output = f"{stem}.val.jsonl"
    reject_path = o.reject_path or default_reject_path(output)
    report = MixReport(output=output, val_output=val_output if val_ratio > 0 else None, seed=seed)
    rej = RejectFile(reject_path)
    try:
        counts = []
        for path, _ in parsed:  # pass 1: count usable rows, reject the rest
            n = 0
            kind = sources.where_kind(path)
            for num, obj, raw, err in _valid_rows(path, show_progress, "count"):
                if err is None:
                    n += 1
                else:
                    rej.add(path, kind, num, err, raw, obj)
            counts.append(n)
        if any(c == 0 for c in counts):
            empty = [p for (p, _), c in zip(parsed, counts) if c == 0]
            raise ConfigError(f"no usable rows in {', '.join(empty)}")
        takes = allocate(counts, [r for _, r in parsed], total)
        picks: List[Dict[int, int]] = []
        for i, ((path, ratio), count, take) in enumerate(zip(parsed, counts, takes)):
            if take > count and not upsample:
                raise ConfigError(f"{path}: {take} rows needed for ratio {ratio:g} but only {count} usable rows "
                                  f"(lower --total, or --upsample to repeat rows)")
            rng = random.Random(f"{seed}:{i}")
            chosen: Dict[int, int] = {}
            copies, rest = divmod(take, count)
            if copies:
                chosen = {j: copies for j in range(count)}
            for j in rng.sample(range(count), rest):
                chosen[j] = chosen.get(j, 0) + 1
            picks.append(chosen)
        rows: List[Tuple[int, bytes]] = []
        for i, (path, _) in enumerate(parsed):  # pass 2: collect the picked rows
            j = 0
            for _, obj, raw, err in _valid_rows(path, show_progress, "pick"):
                if err is not None:
                    continue
                k = picks[i].get(j)
                if k:
                    data = raw.rstrip(b"\r\n") if raw else encode_json(obj)
                    rows.extend([(i, data)] * k)
                j += 1
        random.Random(f"{seed}:shuffle").shuffle(rows)
        n_val = int(round(len(rows) * val_ratio))
        val, train = rows[:n_val], rows[n_val:]
        outs = [(output, train)] + ([(val_output, val)] if val_ratio > 0 else [])
        files = []
        try:
            for path, part in outs:
                f = JsonlWriter(path)
                files.append(f)
                f.write_many([data for _, data in part])
        except BaseException:
            for f in files:
                f.abort()
            raise
        for f in files:
            f.commit()
    except BaseException:
        rej.abort()
        raise
    n_rejected = rej.n
    report.reject_file = rej.finish()
    for i, ((path, ratio), count, take) in enumerate(zip(parsed, counts, takes)):
        report.sources.append({"path": path, "ratio": ratio, "rows_available": count, "rows_taken": take,
                               "train": sum(1 for s, _ in train if s == i), "val": sum(1 for s, _ in val if s == i),
                               "upsampled": take > count})
    report.rows_rejected = n_rejected
    report.rows_train, report.rows_val = len(train), len(val)
    report.seconds = time.perf_counter() - t0
    return report


def print_mix(report: MixReport, console=None) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console(stderr=True)
    table = Table(title=f"mix (seed {report.seed})")
    for col in ("source", "ratio", "available", "taken", "train", "val"):
        table.add_column(col)
    for s in report.sources:
        if "path" in s:
            table.add_row(escape(s["path"]), f"{s['ratio']:g}", str(s["rows_available"]),
                          str(s["rows_taken"]) + (" (upsampled)" if s["upsampled"] else ""), str(s["train"]),
                          str(s["val"]))
    console.print(table)
    console.print(escape(f"train: {report.rows_train} rows -> {report.output}"
                         + (f"; val: {report.rows_val} rows -> {report.val_output}" if report.val_output else "")))
    if report.reject_file:
        console.print(f"[yellow]rows that did not parse -> {escape(report.reject_file)}[/]")
