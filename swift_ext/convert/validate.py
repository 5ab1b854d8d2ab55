"""``swift-ext validate``: check a dataset file before it costs hours on a GPU node.

The checks are the rule set of :mod:`.rules` (the one ``convert`` enforces on what it writes); errors make
the exit code non-zero, warnings do not. On top of them, file level: ``duplicate`` [warning], the same
prompt+response (and media) seen on an earlier row (a 64-bit fingerprint per row in an open-addressing
table: 11-22 bytes per row, 16.8 at 1 M rows, measured by ``bench/bench_validate_memory.py``).

>>> checks = check_row({"messages": [{"role": "user", "content": "<image><image>hi"}], "images": ["a.png"]},
...                    task="grpo", check_media=False)
>>> sorted(name for name, _, _ in checks)
['solution', 'tags']
"""

from __future__ import annotations

import hashlib
import time
from array import array
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ..errors import ConfigError
from ..io import Progress
from . import sources
from .formats import InputFormat, get_format, read_row
from .rows import RowError
from .rules import SEVERITY, TASKS, Check, check_canonical, infer_task  # noqa: F401  (public names)


def check_row(row: Any, fmt: Optional[InputFormat] = None, task: Optional[str] = None, **kw) -> List[Check]:
    """Checks for one raw row (format detected when not given)."""
    try:
        _, c = read_row(row, fmt)
    except RowError as exc:
        return [(exc.check or "format", "error", exc.reason)]
    return check_canonical(c, row, task, **kw)


def _fingerprint(c: Dict[str, Any]) -> int:
    h = hashlib.blake2b(digest_size=8)
    for m in c["messages"]:
        h.update(m["role"].encode())
        h.update(b"\0")
        h.update(m["content"].encode("utf-8", "surrogatepass"))
        h.update(b"\1")
    for item in c["images"] + c["videos"]:
        h.update(repr(item if isinstance(item, str) else (item.get("path") if isinstance(item, dict) else 0))
                 .encode("utf-8", "surrogatepass"))
    return int.from_bytes(h.digest(), "little")


class FingerprintSet:
    """A set of 64-bit fingerprints in one flat array (linear probing, at most 3/4 full): 8 bytes per slot, so
    11-22 bytes per row, where a Python ``set`` of 8-byte ``bytes`` costs about 75.

    >>> s = FingerprintSet()
    >>> s.add(5), s.add(7), s.add(5), len(s)
    (False, False, True, 2)
    """

    def __init__(self, slots: int = 1024):
        self.table = array("Q", [0]) * slots  # no temporary bytes object of the same size
        self.mask = slots - 1
        self.n = 0

    def __len__(self) -> int:
        return self.n

    def add(self, fp: int) -> bool:
        """Add ``fp``; True when it was already there."""
        fp = fp or 1  # 0 marks an empty slot
        table, mask = self.table, self.mask
        i = fp & mask
        while True:
            v = table[i]
            if not v:
                break
            if v == fp:
                return True
            i = (i + 1) & mask
        table[i] = fp
        self.n += 1
        if self.n * 4 > mask * 3:
            self._grow()
        return False

    def _grow(self) -> None:
        old = self.table
        self.table = array("Q", [0]) * (2 * len(old))
        self.mask = 2 * len(old) - 1
        table, mask = self.table, self.mask
        for fp in old:
            if fp:
                i = fp & mask
                while table[i]:
                    i = (i + 1) & mask
                table[i] = fp


@dataclass
class ValidationReport:
    file: str
    format: Optional[str] = None
    task: Optional[str] = None
    rows: int = 0
    rows_with_errors: int = 0
    rows_with_warnings: int = 0
    checks: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.rows_with_errors == 0

    def add(self, where: str, name: str, severity: str, message: str, max_examples: int) -> None:
        entry = self.checks.setdefault(name, {"severity": severity, "count": 0, "examples": []})
        entry["count"] += 1
        if len(entry["examples"]) < max_examples:
            entry["examples"].append({"where": where, "message": message})

    def to_dict(self) -> Dict[str, Any]:
        return {"file": self.file, "format": self.format, "task": self.task, "ok": self.ok, "rows": self.rows,
                "rows_with_errors": self.rows_with_errors, "rows_with_warnings": self.rows_with_warnings,
                "checks": self.checks, "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class ValidateOptions:
    """Every setting of ``swift-ext validate``, one field per flag by the same name (tests/meta/test_options.py
    checks they agree; ``check_media`` and ``duplicates`` are the negated ``--no-check-media`` / ``--no-duplicates``).

    >>> ValidateOptions(task="sft").duplicates
    True
    """

    task: Optional[str] = None               # the training task the file is for (a TASKS name); None: per row
    src: Optional[str] = None                # input format (--from); None: detected
    root: Optional[str] = None               # base of relative media paths; media must stay inside it
    allow_outside_root: bool = False         # root only as the base: media paths may leave it
    decode_images: bool = False              # open every image with PIL (slow)
    check_media: bool = True                 # check media paths (existence, root confinement)
    duplicates: bool = True                  # warn about rows repeating an earlier row (11-22 bytes per row)
    split: Optional[str] = None              # split of a saved DatasetDict
    max_examples: int = 5                    # examples kept per check

    def __post_init__(self):
        if self.task is not None and self.task not in TASKS:
            raise ConfigError(f"--task {self.task!r}: choose one of {', '.join(TASKS)}")


def validate_file(path: str, options: Optional[ValidateOptions] = None, *,
                  show_progress: bool = False) -> ValidationReport:
    """Run every check on every row of ``path`` with the settings in ``options`` (default: all checks, the task
    inferred per row; streamed, duplicate detection keeps 11-22 bytes per row). With ``options.root``, media paths
    must resolve inside it (``media_outside``) unless ``options.allow_outside_root``."""
    o = options or ValidateOptions()
    t0 = time.perf_counter()
    fmt = get_format(o.src) if o.src else None
    report = ValidationReport(file=str(path), task=o.task)
    kind = sources.where_kind(path)
    total, unit = sources.progress_total(path, o.split)
    with Progress(show_progress, total, unit, "validate") as bar:
        _validate_rows(path, kind, fmt, o.task, report, o.split, bar, o.root, o.check_media, o.decode_images,
                       o.duplicates, o.max_examples, bool(o.root) and not o.allow_outside_root)
    report.seconds = time.perf_counter() - t0
    return report


def _validate_rows(path, kind, fmt, task, report, split, bar, root, check_media, decode_images, duplicates,
                   max_examples, confine) -> None:
    seen = FingerprintSet()
    for num, obj, _, err in sources.iter_source(path, on_bytes=bar.on_bytes, split=split):
        report.rows += 1
        loc = f"{path}:{num}" if kind == "line" else f"{path} row {num}"
        if err is not None:
            checks: List[Check] = [("parse", "error", err)]
        else:
            try:
                fmt, c = read_row(obj, fmt)
            except RowError as exc:
                checks = [(exc.check or "format", "error", exc.reason)]
            else:
                report.format = fmt.name
                checks = check_canonical(c, obj, task, root=root, check_media=check_media, decode=decode_images,
                                         confine=confine)
                if duplicates and seen.add(_fingerprint(c)):
                    checks.append(("duplicate", "warning", "same messages and media as an earlier row"))
        sev = {s for _, s, _ in checks}
        report.rows_with_errors += "error" in sev
        report.rows_with_warnings += "warning" in sev and "error" not in sev
        for name, severity, message in checks:
            report.add(loc, name, severity, message, max_examples)


def print_report(report: ValidationReport, console=None) -> None:
    """Summary table on stderr."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console(stderr=True)
    table = Table(title=escape(f"{report.file} ({report.format or '?'}, {report.rows} rows)"))
    for col in ("check", "severity", "rows", "first example"):
        table.add_column(col)
    for name, entry in sorted(report.checks.items(), key=lambda kv: (kv[1]["severity"] != "error", kv[0])):
        ex = entry["examples"][0] if entry["examples"] else {"where": "", "message": ""}
        style = "red" if entry["severity"] == "error" else "yellow"
        table.add_row(escape(name), f"[{style}]{entry['severity']}[/]", str(entry["count"]),
                      escape(f"{ex['where']}: {ex['message']}"[:160]))
    if report.checks:
        console.print(table)
    verdict = "[green]OK[/]" if report.ok else "[red]FAILED[/]"
    console.print(f"{verdict}: {report.rows} rows, {report.rows_with_errors} with errors, "
                  f"{report.rows_with_warnings} with warnings only")
