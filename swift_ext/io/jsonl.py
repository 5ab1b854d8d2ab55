"""JSON lines: reading rows with their line numbers and reasons, writing rows and reject files atomically."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from ..errors import SwiftExtError
from .atomic import AtomicFile, _Transaction


try:
    import msgspec

    _decode = msgspec.json.decode
    _encode = msgspec.json.encode
    _DecodeError: Any = msgspec.DecodeError
except ImportError:  # pragma: no cover - msgspec is a dependency
    msgspec = None
    _decode = json.loads
    _DecodeError = ValueError

    def _encode(obj):
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# -- JSON lines: reading ----------------------------------------------------------------------------
Item = Tuple[int, Any, bytes, Optional[str]]  # (line number, object, raw line, error reason or None)


class BadLine(SwiftExtError):
    def __init__(self, path: str, lineno: int, reason: str):
        self.path, self.lineno, self.reason = path, lineno, reason
        super().__init__(f"{path}:{lineno}: {reason}")


# encode_json(obj) -> bytes: compact UTF-8 JSON (msgspec, called directly on the hot path); raises TypeError /
# ValueError / OverflowError for what JSON cannot hold
encode_json = _encode


def parse_json_line(raw: bytes) -> Tuple[Any, Optional[str]]:
    """(object, None) or (None, reason) for one JSON text (a JSONL line)."""
    try:
        return _decode(raw), None
    except (_DecodeError, UnicodeDecodeError, ValueError):
        pass
    except RecursionError:
        return None, "invalid JSON: nested too deeply"
    try:  # slow path, only for bad lines: the standard library's messages are clearer
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 ({exc.reason} at byte {exc.start})"
    text = text.rstrip("\r\n")  # the line ending is not part of the row: a truncated row ends where its text ends
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}" if exc.lineno > 1 else f"column {exc.colno}"
        return None, f"invalid JSON: {exc.msg} ({where})"
    except (ValueError, RecursionError) as exc:
        return None, f"invalid JSON: {exc}"


#: bytes of lines read at a time by :func:`iter_jsonl_rows` (the reader's memory, whatever the file's size)
READ_CHUNK = 1 << 22


def iter_jsonl_rows(path: str, on_bytes: Optional[Callable[[int], None]] = None) -> Iterator[Item]:
    """Every non-blank line of ``path`` as ``(line number, object, raw line, error)``; a line that does not
    parse comes with ``object=None`` and the reason. ``on_bytes(n)`` is called per chunk read (progress)."""
    decode = _decode
    errors = (_DecodeError, UnicodeDecodeError, ValueError, RecursionError)
    with open(path, "rb", buffering=1 << 20) as fh:
        lineno = 0
        while True:
            lines = fh.readlines(READ_CHUNK)
            if not lines:
                break
            if on_bytes is not None:
                on_bytes(sum(map(len, lines)))
            for raw in lines:
                lineno += 1
                try:  # hot path: one decode, no copies
                    yield lineno, decode(raw), raw, None
                    continue
                except errors:
                    pass
                if not raw.strip():
                    continue
                if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
                obj, err = parse_json_line(raw)
                yield lineno, obj, raw, err


def iter_jsonl(path: str) -> Iterator[Tuple[int, Any]]:
    """(line number, parsed object) for each non-blank line; a bad line raises BadLine with file:line."""
    for lineno, obj, _, err in iter_jsonl_rows(path):
        if err is not None:
            raise BadLine(path, lineno, err)
        yield lineno, obj


def raw_text(raw: bytes, obj: Any) -> Tuple[str, Optional[str]]:
    """A row as text for a reject file: (text, base64 of the exact bytes when they are not UTF-8).
    ``raw`` is the original line (JSONL) or empty, then ``obj`` is dumped."""
    if raw:
        raw = raw.rstrip(b"\r\n")
        try:
            return raw.decode("utf-8"), None
        except UnicodeDecodeError:
            return raw.decode("utf-8", "backslashreplace"), base64.b64encode(raw).decode("ascii")
    try:
        data = _encode(obj)
    except Exception:
        data = json.dumps(obj, default=str, ensure_ascii=False).encode("utf-8")
    return data.decode("utf-8", "backslashreplace"), None


class JsonlWriter(_Transaction):
    """JSON rows into an atomic file: one per line, or a JSON array when ``path`` ends in ``.json``.
    Rows are written as given (``write``) or already encoded (``write_encoded``)."""

    def __init__(self, path: str):
        self.file = AtomicFile(path)
        self.array = str(path).endswith(".json")
        self.n = 0
        if self.array:
            self.file.fh.write(b"[\n")

    def write(self, row: Any) -> None:
        self.write_encoded(_encode(row))

    def write_encoded(self, data: bytes) -> None:
        fh = self.file.fh
        if self.array:
            if self.n:
                fh.write(b",\n")
            fh.write(data)
        else:
            fh.write(data + b"\n")
        self.n += 1

    def write_many(self, encoded: List[bytes]) -> None:
        """Already-encoded rows, in one write."""
        if not encoded:
            return
        if self.array:
            self.file.fh.write((b",\n" if self.n else b"") + b",\n".join(encoded))
        else:
            self.file.fh.write(b"\n".join(encoded) + b"\n")
        self.n += len(encoded)

    def commit(self) -> None:
        if self.array:
            self.file.fh.write(b"\n]\n")
        self.file.commit()

    def abort(self) -> None:
        self.file.abort()


def default_reject_path(output: str) -> str:
    """``out.jsonl`` -> ``out.rejected.jsonl`` (also for ``.json`` and other names)."""
    p = Path(output)
    name = p.name[:-6] if p.name.endswith(".jsonl") else (p.name[:-5] if p.name.endswith(".json") else p.name)
    return str(p.with_name(f"{name}.rejected.jsonl"))


class RejectFile:
    """Rejected rows, one JSON object per line, written atomically::

        {"file": "in.jsonl", "line": 7, "reason": "invalid JSON: ...", "original": "<the line as text>"}

    (``"row": i`` instead of ``"line"`` for rows that are not JSONL lines; ``"original_base64"`` holds the
    exact bytes when the line is not UTF-8). ``finish()`` keeps the file only when a row was rejected, and
    removes a stale one left at the default path by an earlier run (it would contradict "0 rejected")."""

    def __init__(self, path: str, default: bool = False):
        self.path = str(path)
        self.default = default
        self.file = AtomicFile(path)
        self.n = 0

    def add(self, file: str, kind: str, num: int, reason: str, raw: bytes = b"", obj: Any = None, *,
            text: Optional[str] = None, original_base64: Optional[str] = None) -> None:
        """One rejected row: its original from ``raw`` / ``obj``, or given as ``text`` (+ ``original_base64``)."""
        if text is None:
            text, original_base64 = raw_text(raw, obj)
        rec: Dict[str, Any] = {"file": file, kind: num, "reason": reason, "original": text}
        if original_base64:
            rec["original_base64"] = original_base64
        self.file.fh.write(_encode(rec) + b"\n")
        self.n += 1

    def finish(self) -> Optional[str]:
        """Commit (returns the path) when rows were rejected, else discard (returns None)."""
        if self.n:
            self.file.commit()
            return self.path
        self.file.abort()
        if self.default and os.path.exists(self.path):
            os.unlink(self.path)
        return None

    def abort(self) -> None:
        self.file.abort()


