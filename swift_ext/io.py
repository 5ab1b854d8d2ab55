"""File plumbing shared by the CLI and the library: JSON/YAML mappings, JSONL rows (read and write),
atomic outputs, reject files and a progress bar.

Every writer here writes to a temporary file next to its target and renames it into place only on
success, so an interrupted run leaves no half-written output.

>>> import os, tempfile
>>> d = tempfile.mkdtemp()
>>> with JsonlWriter(os.path.join(d, "out.jsonl")) as w:
...     w.write({"a": 1})
>>> open(os.path.join(d, "out.jsonl")).read()
'{"a":1}\\n'
>>> _ = open(os.path.join(d, "in.jsonl"), "wb").write(b'{"a": 1}\\n\\nnot json\\n')
>>> [(n, o, e) for n, o, _, e in iter_jsonl_rows(os.path.join(d, "in.jsonl"))]
[(1, {'a': 1}, None), (3, None, 'invalid JSON: Expecting value (column 1)')]
>>> default_reject_path("data/grpo.jsonl")
'data/grpo.rejected.jsonl'
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import socket
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from .errors import ConfigError, SwiftExtError

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


def load_mapping(path: str) -> Dict[str, Any]:
    """Read a YAML or JSON file that must hold a mapping."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            data = load_yaml(text)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except Exception as exc:
        raise ConfigError(f"{path}: not valid {'JSON' if p.suffix.lower() == '.json' else 'YAML'}: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


#: a YAML file may expand (aliases followed) to at most this many nodes: a 1 KB "billion laughs" file
#: expands to billions, and reading it would hang every process that loads the file
YAML_MAX_NODES = 100_000


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` that refuses alias bombs and recursive aliases (ConfigError) instead of hanging.

    >>> load_yaml("a: &x [1, 2]\\nb: *x")
    {'a': [1, 2], 'b': [1, 2]}
    """
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        size = _expanded_size(node, {}, set())
        if size > YAML_MAX_NODES:
            raise ConfigError(f"YAML aliases expand this file to {size:,} nodes (limit {YAML_MAX_NODES:,}): "
                              f"refusing to read it")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _expanded_size(node: Any, memo: Dict[int, int], active: set) -> int:
    key = id(node)
    if key in memo:
        return memo[key]
    if key in active:
        raise ConfigError("a YAML alias refers to itself (recursive structure): refusing to read it")
    active.add(key)
    value = node.value
    if isinstance(value, list):  # sequence: nodes; mapping: (key, value) node pairs
        total = 1
        for item in value:
            for child in (item if isinstance(item, tuple) else (item,)):
                total += _expanded_size(child, memo, active)
                if total > YAML_MAX_NODES:
                    break
    else:
        total = 1
    active.discard(key)
    memo[key] = total
    return total


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


def iter_jsonl_rows(path: str, on_bytes: Optional[Callable[[int], None]] = None) -> Iterator[Item]:
    """Every non-blank line of ``path`` as ``(line number, object, raw line, error)``; a line that does not
    parse comes with ``object=None`` and the reason. ``on_bytes(n)`` is called per chunk read (progress)."""
    decode = _decode
    errors = (_DecodeError, UnicodeDecodeError, ValueError, RecursionError)
    with open(path, "rb", buffering=1 << 20) as fh:
        lineno = 0
        while True:
            lines = fh.readlines(1 << 22)
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


# -- atomic outputs ---------------------------------------------------------------------------------
def _host() -> str:
    """This host and PID namespace (two containers may share a host name, not PIDs): ``node1-4026531836``."""
    host = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname().split(".")[0])[:40] or "host"
    try:
        ns = re.sub(r"\D", "", os.readlink("/proc/self/ns/pid"))
    except OSError:
        ns = ""
    return f"{host}-{ns}" if ns else host


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


#: a temp file whose name carries no owner (written before owners were recorded) is stale after this long
#: without a write
STALE_UNOWNED_SECONDS = 3600


def sweep_stale_temps(path: str) -> List[str]:
    """Delete the temporary files that dead runs left next to ``path`` (``.NAME.PID@HOST.XXXX.tmp``, the
    owner a process of this host and PID namespace that no longer exists; or an owner-less ``.NAME.XXXX.tmp`` untouched for
    :data:`STALE_UNOWNED_SECONDS`). Files of live runs and of other hosts are left alone. Returns the paths
    deleted."""
    p = Path(path)
    prefix, host = f".{p.name}.", _host()
    removed = []
    try:
        names = [n for n in os.listdir(p.parent or ".") if n.startswith(prefix) and n.endswith(".tmp")]
    except OSError:
        return removed
    now = time.time()
    for name in names:
        middle = name[len(prefix):-4]
        m = re.fullmatch(r"(\d+)@([A-Za-z0-9_-]+)\.[^.]+", middle)
        full = p.parent / name
        if m:
            if m.group(2) != host or _pid_alive(int(m.group(1))):
                continue
        else:
            if not re.fullmatch(r"[a-z0-9_]{8}", middle):  # tempfile's 8 random characters
                continue  # not a name this module writes
            try:
                if now - full.stat().st_mtime < STALE_UNOWNED_SECONDS:
                    continue
            except OSError:
                continue
        with contextlib.suppress(OSError):
            full.unlink()
            removed.append(str(full))
    return removed


class _Transaction:
    """``with`` commits on success and aborts (nothing left behind) on any exception."""

    def commit(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
        else:
            self.abort()


class AtomicFile(_Transaction):
    """A temporary file next to ``path`` (``.fh``), renamed into place by ``commit()``, deleted by ``abort()``.
    As a context manager: commit on success, abort on an exception.

    The temporary file is ``.NAME.PID@HOST.XXXX.tmp``: a run killed without a chance to clean up (SIGKILL,
    power loss) leaves it, and the next writer of the same ``path`` deletes it (``sweep=True``,
    :func:`sweep_stale_temps`). Catchable signals are cleaned up by :func:`signals_raise` + ``abort()``."""

    def __init__(self, path: str, mode: str = "wb", encoding: Optional[str] = None, sweep: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if sweep:
            sweep_stale_temps(str(self.path))
        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.{os.getpid()}@{_host()}.", suffix=".tmp",
                                        dir=str(self.path.parent))
        if "b" in mode:
            self.fh = os.fdopen(fd, mode, buffering=1 << 20)
        else:
            self.fh = os.fdopen(fd, mode, encoding=encoding or "utf-8")

    def commit(self) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        try:
            self.fh.close()
        finally:
            with contextlib.suppress(OSError):
                os.unlink(self.tmp)


# -- catchable signals ------------------------------------------------------------------------------
class Terminated(KeyboardInterrupt):
    """A termination signal (SIGTERM, SIGHUP: what Slurm pre-emption and a closed terminal send) raised as an
    exception, so ``except BaseException`` / ``finally`` blocks delete temporary files on the way out.
    A KeyboardInterrupt, so code that catches ``Exception`` does not swallow it. ``exit_code``: 128 + signal."""

    def __init__(self, signum: int):
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(signal.Signals(signum).name)


def exit_code(exc: KeyboardInterrupt) -> int:
    """The shell's exit status for a run stopped by ``exc``: 128 + the signal (SIGINT 130, SIGTERM 143,
    SIGHUP 129)."""
    return getattr(exc, "exit_code", 128 + signal.SIGINT)


@contextlib.contextmanager
def signals_raise(signums=(signal.SIGTERM, signal.SIGHUP)):
    """Inside the block, the signals in ``signums`` raise :class:`Terminated` in this process (SIGINT already
    raises KeyboardInterrupt), and the block ends with it even if clean-up code replaced it by another
    exception. Only one is raised: a second signal during the clean-up is ignored, so the
    clean-up finishes. Child processes forked inside the block (``--num-proc`` workers) get the default action
    back (they die, and the parent sees it). A signal already ignored (``nohup``) stays ignored. Outside the main
    thread this does nothing."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    owner = os.getpid()
    fired = []

    def handler(signum, frame):
        if os.getpid() != owner:  # a forked child: die as the signal says
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if fired:
            return
        fired.append(signum)
        raise Terminated(signum)

    # a signal the caller ignores stays ignored (``nohup`` sets SIGHUP to SIG_IGN: the run must go on)
    previous = {s: signal.signal(s, handler) for s in signums if signal.getsignal(s) is not signal.SIG_IGN}
    try:
        yield
    except BaseException as exc:
        # code on the way out may replace the exception (datasets' pool clean-up raises a TimeoutError):
        # a run a signal stopped still ends as Terminated
        if fired and not isinstance(exc, Terminated):
            raise Terminated(fired[0]) from exc
        raise
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "w", encoding: str = "utf-8"):
    """Write to a temporary file next to ``path`` and rename it into place only on success."""
    with AtomicFile(path, mode, encoding) as f:
        yield f.fh


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


# -- progress ---------------------------------------------------------------------------------------
def rich_progress(console: Any = None, unit: str = "items", rate: bool = False, **kwargs: Any) -> Any:
    """The one rich progress bar of swift-ext, on stderr: description, bar, done/total (``unit="bytes"``: sizes),
    elapsed; ``rate=True`` adds items per second and the time left. rich disables it when stderr is not a
    terminal."""
    from rich.console import Console
    from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task):
            speed = task.finished_speed or task.speed
            return Text(f"{speed:.2f}/s" if speed else "-/s")

    columns = [TextColumn("{task.description}"), BarColumn(),
               DownloadColumn() if unit == "bytes" else MofNCompleteColumn(), TimeElapsedColumn()]
    if rate:
        columns += [Rate()] if unit != "bytes" else []
        columns += [TextColumn("eta"), TimeRemainingColumn()]
    kwargs.setdefault("transient", True)
    return Progress(*columns, console=console or Console(stderr=True), **kwargs)


class Progress:
    """A rich bar on stderr (only when ``enabled`` and stderr is a terminal), advanced in chunks.
    ``on_bytes`` is the callback to hand to readers (None when no bar is shown)."""

    def __init__(self, enabled: bool, total: int, unit: str, description: str):
        self.bar = None
        if enabled:
            from rich.console import Console

            console = Console(stderr=True)
            if console.is_terminal:
                self.bar = rich_progress(console, unit=unit, rate=True)
                self.task = self.bar.add_task(description, total=total)
                self.bar.start()
        self.pending = 0

    @property
    def on_bytes(self) -> Optional[Callable[[int], None]]:
        return self.advance if self.bar is not None else None

    def advance(self, n: int) -> None:
        if self.bar is not None:
            self.pending += n
            if self.pending >= 1 << 20 or n >= 1000:
                self.bar.advance(self.task, self.pending)
                self.pending = 0

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def save_png(fig, path: str) -> str:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png")
    plt.close(fig)
    return path
