"""``swift-ext validate``: check a dataset file before it costs hours on a GPU node.

Checks (severity in brackets; errors make the exit code non-zero):

- ``parse`` [error]: the row is not valid JSON / UTF-8, or not an object;
- ``format`` [error]: the row does not read as the file's format (missing/mistyped fields, unknown role);
- ``tags`` [error]: more ``<image>``/``<video>`` tags than media (ms-swift leaves the extra tags as text);
  ``tags_missing`` [warning]: fewer tags than media (ms-swift silently prepends them to the first turn);
- ``media_missing`` [error]: a media path does not exist (relative paths resolve against ``--root``,
  ms-swift's ``ROOT_IMAGE_DIR``); ``media_invalid`` [error]: neither bytes nor a path;
  ``media_decode`` [error, opt-in ``--decode-images``]: PIL cannot open it;
- ``role_order`` [error]: system not first, no user turn first, two user/assistant turns in a row;
- ``empty_turn`` [error]: a user/assistant turn with empty content;
- ``reserved_column`` [error for GRPO sample fields, warning for ``dataset``];
- ``solution`` [error, GRPO]: no ``solution`` column (an ``answer`` column is renamed and then dropped);
- ``response`` [error, SFT/DPO/KTO]: no final assistant turn; ``rejected`` [error, DPO]: no rejected
  response, or it equals the chosen one (ms-swift drops the row); ``label`` [error, KTO]: not a boolean;
- ``duplicate`` [warning]: the same prompt+response (and media) seen on an earlier row.

>>> checks = check_row({"messages": [{"role": "user", "content": "<image><image>hi"}], "images": ["a.png"]},
...                    task="grpo", check_media=False)
>>> sorted(name for name, _, _ in checks)
['solution', 'tags']
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from . import sources
from .formats import InputFormat, detect, get_format
from .rows import RowError
from .targets import GRPO_RESERVED, LOADER_OVERWRITTEN

TASKS = ("sft", "grpo", "dpo", "kto")
SEVERITY = {
    "parse": "error", "format": "error", "tags": "error", "tags_missing": "warning", "media_missing": "error",
    "media_decode": "error", "media_invalid": "error", "role_order": "error", "empty_turn": "error",
    "reserved_column": "error",
    "reserved_column_dataset": "warning", "solution": "error", "response": "error", "rejected": "error",
    "label": "error", "duplicate": "warning",
}
Check = Tuple[str, str, str]  # (check name, severity, message)


def infer_task(c: Dict[str, Any]) -> str:
    if c["rejected"] is not None or c["rejected_messages"] is not None:
        return "dpo"
    if c["label"] is not None:
        return "kto"
    if not c["messages"] or c["messages"][-1]["role"] != "assistant":
        return "grpo"
    return "sft"


def _role_problems(msgs: List[Dict[str, Any]]) -> List[str]:
    out = []
    prev = None
    for i, m in enumerate(msgs):
        role = m["role"]
        if role == "system" and i != 0:
            out.append(f"messages[{i}]: system turn not at the start")
        elif role == "user" and prev == "user":
            out.append(f"messages[{i}]: two user turns in a row")
        elif role == "assistant" and prev in ("assistant", "system", None):
            out.append(f"messages[{i}]: assistant turn without a user turn before it")
        if role != "system":
            prev = role
    if prev is None:
        out.append("no user turn")
    return out


def _media_checks(c, root, decode) -> List[Check]:
    out = []
    for key in ("images", "videos", "rejected_images"):
        for j, item in enumerate(c[key] or []):
            if isinstance(item, dict):
                data = item.get("bytes")
                if isinstance(data, (bytes, str)) and data:
                    continue
                if data is not None or not isinstance(item.get("path"), str):
                    out.append(("media_invalid", "error", f"{key}[{j}]: an object needs bytes or a string path"))
                    continue
                item = item.get("path")
            elif not isinstance(item, (str, list)):
                out.append(("media_invalid", "error", f"{key}[{j}]: unsupported {type(item).__name__}"))
                continue
            if not isinstance(item, str) or item.startswith(("http://", "https://", "data:")) or len(item) >= 2000:
                continue
            full = item if os.path.isabs(item) or not root else os.path.join(root, item)
            if not os.path.exists(full):
                out.append(("media_missing", "error", f"{key}[{j}]: not found: {full}"
                            + ("" if root or os.path.isabs(item) else " (relative paths resolve against --root)")))
            elif decode and key != "videos":
                try:
                    from PIL import Image

                    with Image.open(full) as im:
                        im.verify()
                except Exception as exc:
                    out.append(("media_decode", "error", f"{key}[{j}]: cannot decode {full}: {exc}"))
    return out


def check_canonical(c: Dict[str, Any], raw: Dict[str, Any], task: Optional[str] = None, *, root=None,
                    check_media=True, decode=False) -> List[Check]:
    """Every check on one row already read into the canonical form (``raw`` is the original row)."""
    task = task or infer_task(c)
    out: List[Check] = []
    msgs = c["messages"]
    for tag, key in (("<image>", "images"), ("<video>", "videos")):
        n_tags = sum(m["content"].count(tag) for m in msgs)
        n_media = len(c[key])
        if n_tags > n_media:
            out.append(("tags", "error", f"{n_tags} {tag} tag(s) but {n_media} {key}"))
        elif n_tags < n_media:
            out.append(("tags_missing", "warning", f"{n_tags} {tag} tag(s) for {n_media} {key} "
                        f"(ms-swift prepends the missing tags to the first turn)"))
    if check_media:
        out += _media_checks(c, root, decode)
    out += [("role_order", "error", p) for p in _role_problems(msgs)]
    for i, m in enumerate(msgs):
        if m["role"] in ("user", "assistant") and not m["content"].strip():
            out.append(("empty_turn", "error", f"messages[{i}] ({m['role']}) is empty"))
    for k in raw:
        if k in LOADER_OVERWRITTEN:
            out.append(("reserved_column_dataset", "warning",
                        f"column {k!r} is overwritten by ms-swift's loader with the dataset name"))
        elif task == "grpo" and k in GRPO_RESERVED:
            out.append(("reserved_column", "error", f"column {k!r} is an ms-swift GRPO sample field; "
                        f"rewards would not see it (rename it)"))
    if task == "grpo" and "solution" not in raw:
        hint = next((k for k in ("answer", "response", "output", "ground_truth", "target") if k in raw), None)
        out.append(("solution", "error", "no 'solution' column for GRPO" + (
            f" ('{hint}' is renamed to the response and dropped by GRPO; convert with "
            f"`swift-ext convert --to grpo` or pass --columns '{{\"{hint}\": \"solution\"}}')" if hint else "")))
    if task in ("sft", "dpo", "kto") and (not msgs or msgs[-1]["role"] != "assistant"):
        out.append(("response", "error", f"{task}: the last turn is not an assistant response"))
    if task == "dpo":
        if c["rejected"] is None and c["rejected_messages"] is None and not c["rejected_images"]:
            out.append(("rejected", "error", "dpo: no rejected_response / rejected_messages / rejected_images"))
        elif c["rejected"] is not None and msgs and msgs[-1]["role"] == "assistant" \
                and c["rejected"] == msgs[-1]["content"]:
            out.append(("rejected", "error", "rejected_response equals the chosen response (ms-swift drops the row)"))
    if task == "kto" and not isinstance(raw.get("label"), bool):
        out.append(("label", "error", f"kto: 'label' must be true/false, got {raw.get('label')!r}"))
    return out


def check_row(row: Any, fmt: Optional[InputFormat] = None, task: Optional[str] = None, **kw) -> List[Check]:
    """Checks for one raw row (format detected when not given)."""
    if not isinstance(row, dict):
        return [("parse", "error", f"a row must be a JSON object, got {type(row).__name__}")]
    fmt = fmt or detect(row)
    if fmt is None:
        return [("format", "error", "cannot detect the format from its columns")]
    try:
        c = fmt.read(row)
    except RowError as exc:
        return [("format", "error", f"{fmt.name}: {exc.reason}")]
    except RecursionError:
        return [("format", "error", "row nested too deeply")]
    return check_canonical(c, row, task, **kw)


def _fingerprint(c: Dict[str, Any]) -> bytes:
    h = hashlib.blake2b(digest_size=8)
    for m in c["messages"]:
        h.update(m["role"].encode())
        h.update(b"\0")
        h.update(m["content"].encode("utf-8", "surrogatepass"))
        h.update(b"\1")
    for item in c["images"] + c["videos"]:
        h.update(repr(item if isinstance(item, str) else (item.get("path") if isinstance(item, dict) else 0))
                 .encode("utf-8", "surrogatepass"))
    return h.digest()


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


def validate_file(path: str, task: Optional[str] = None, src: Optional[str] = None, *, root: Optional[str] = None,
                  check_media: bool = True, decode_images: bool = False, split: Optional[str] = None,
                  max_examples: int = 5, duplicates: bool = True, show_progress: bool = False) -> ValidationReport:
    """Run every check on every row of ``path`` (streamed; duplicate detection keeps 8 bytes per row)."""
    from ..errors import ConfigError

    if task is not None and task not in TASKS:
        raise ConfigError(f"--task {task!r}: choose one of {', '.join(TASKS)}")
    t0 = time.perf_counter()
    fmt = get_format(src) if src else None
    report = ValidationReport(file=str(path), task=task)
    kind = sources.where_kind(path)
    from .engine import _Progress

    total, unit = sources.progress_total(path, split)
    bar = _Progress(show_progress, total, unit, "validate")
    try:
        _validate_rows(path, kind, fmt, task, report, split, bar, root, check_media, decode_images, duplicates,
                       max_examples)
    finally:
        bar.close()
    report.seconds = time.perf_counter() - t0
    return report


def _validate_rows(path, kind, fmt, task, report, split, bar, root, check_media, decode_images, duplicates,
                   max_examples) -> None:
    seen = set()
    for num, obj, _, err in sources.iter_source(path, on_bytes=bar.advance if bar.bar else None, split=split):
        report.rows += 1
        loc = f"{path}:{num}" if kind == "line" else f"{path} row {num}"
        if err is not None:
            checks: List[Check] = [("parse", "error", err)]
        elif not isinstance(obj, dict):
            checks = [("parse", "error", f"a row must be a JSON object, got {type(obj).__name__}")]
        else:
            if fmt is None:
                fmt = detect(obj)
            if fmt is None:
                checks = [("format", "error", "cannot detect the format from its columns; pass --from")]
            else:
                report.format = fmt.name
                try:
                    c = fmt.read(obj)
                except RowError as exc:
                    checks = [("format", "error", f"{fmt.name}: {exc.reason}")]
                except RecursionError:
                    checks = [("format", "error", "row nested too deeply")]
                else:
                    checks = check_canonical(c, obj, task, root=root, check_media=check_media,
                                             decode=decode_images)
                    if duplicates:
                        fp = _fingerprint(c)
                        if fp in seen:
                            checks.append(("duplicate", "warning", "same messages and media as an earlier row"))
                        seen.add(fp)
        sev = {s for _, s, _ in checks}
        report.rows_with_errors += "error" in sev
        report.rows_with_warnings += "warning" in sev and "error" not in sev
        for name, severity, message in checks:
            report.add(loc, name, severity, message, max_examples)


def print_report(report: ValidationReport, console=None) -> None:
    """Summary table on stderr."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console(stderr=True)
    table = Table(title=f"{report.file} ({report.format or '?'}, {report.rows} rows)")
    for col in ("check", "severity", "rows", "first example"):
        table.add_column(col)
    for name, entry in sorted(report.checks.items(), key=lambda kv: (kv[1]["severity"] != "error", kv[0])):
        ex = entry["examples"][0] if entry["examples"] else {"where": "", "message": ""}
        style = "red" if entry["severity"] == "error" else "yellow"
        table.add_row(name, f"[{style}]{entry['severity']}[/]", str(entry["count"]),
                      f"{ex['where']}: {ex['message']}"[:160])
    if report.checks:
        console.print(table)
    verdict = "[green]OK[/]" if report.ok else "[red]FAILED[/]"
    console.print(f"{verdict}: {report.rows} rows, {report.rows_with_errors} with errors, "
                  f"{report.rows_with_warnings} with warnings only")
