"""JSON lines: reading rows with their line numbers and reasons, writing rows and reject files atomically, and
appending rows to a log that stays readable while it grows (:class:`JsonlAppender`)."""

from __future__ import annotations

import base64
import contextlib
import fcntl
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


def encode_row(obj: Any) -> bytes:
    """:func:`encode_json`, or for what it cannot hold (numpy numbers, paths, other objects) ``json.dumps`` with
    ``str()`` of each such value: a log row is written whatever it holds."""
    try:
        return _encode(obj)
    except (TypeError, ValueError, OverflowError):
        return json.dumps(obj, ensure_ascii=False, default=str).encode("utf-8")


def _torn_tail(fd: int, size: int) -> int:
    """The offset just after the last newline of the first ``size`` bytes of ``fd`` (0 when there is none)."""
    end = size
    while end > 0:
        start = max(0, end - (1 << 16))
        chunk = os.pread(fd, end - start, start)
        i = chunk.rfind(b"\n")
        if i >= 0:
            return start + i + 1
        end = start
    return 0


class JsonlAppender:
    """Rows appended to a JSON lines file that others may read while it grows (a training run's sample log, a
    resumable checkpoint). Opened with ``O_APPEND``: each :meth:`write` / :meth:`write_many` puts whole lines at
    the end of the file in one ``write`` (retried until all bytes are out; no buffer held back), under an
    exclusive ``flock`` of the file (so appenders in several processes never interleave or cut each other's
    lines), then ``fsync`` when ``fsync=True``. A line cut short by a kill (the file does not end in a newline) is cut off when the file
    is opened, so the next row starts a line of its own; ``keep=OFFSET`` keeps only the file's first ``OFFSET``
    bytes instead (a reader that checked the lines knows where the last good one ends). Readers skip a torn
    final line (:func:`iter_jsonl_rows` reports it, :class:`swift_ext.runs.MetricLog` waits for its newline).

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "log.jsonl")
    >>> _ = open(path, "wb").write(b'{"a":1}\\n{"a":')          # a run killed in the middle of a line
    >>> with JsonlAppender(path) as log:
    ...     log.write_many([{"a": 2}, {"a": 3}])
    >>> open(path).read()
    '{"a":1}\\n{"a":2}\\n{"a":3}\\n'
    """

    def __init__(self, path: str, *, fsync: bool = False, keep: Optional[int] = None, mkdir: bool = True):
        self.path = str(path)
        self.fsync = fsync
        if mkdir:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self.fd: Optional[int] = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            with self._locked():          # not while another appender is half-way through its write
                size = os.fstat(self.fd).st_size
                end = min(keep, size) if keep is not None else size
                if keep is None and size and os.pread(self.fd, 1, size - 1) != b"\n":
                    end = _torn_tail(self.fd, size)
                if end != size:
                    os.ftruncate(self.fd, end)
        except BaseException:
            self.close()
            raise
        self.n = 0

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """An exclusive ``flock`` on the file while a write (or the torn-tail check) runs: appenders in other
        processes never see, and cut off, a line another is still writing."""
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def write(self, row: Any) -> None:
        self.write_encoded([encode_row(row)])

    def write_many(self, rows: List[Any]) -> None:
        """Rows in one write (a reader sees all of them or a torn last one, never a mix of two writers' lines)."""
        self.write_encoded([encode_row(r) for r in rows])

    def write_encoded(self, lines: List[bytes]) -> None:
        """Already-encoded rows (no newlines inside), in one write."""
        if not lines:
            return
        if self.fd is None:
            raise ValueError(f"{self.path}: the appender is closed")
        view = memoryview(b"\n".join(lines) + b"\n")
        with self._locked():
            while view:                  # O_APPEND: every write lands at the end of the file
                view = view[os.write(self.fd, view):]
            if self.fsync:
                os.fsync(self.fd)
        self.n += len(lines)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "JsonlAppender":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


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


