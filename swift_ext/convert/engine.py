"""The conversion engine: row accounting, reject file, atomic outputs, progress, ``--num-proc``.

Library use::

    from swift_ext.convert import convert_file, convert_rows
    report = convert_file("sft.jsonl", "grpo.jsonl", to="grpo", extract="last_number")
    assert report.rows_in == report.rows_converted + report.rows_rejected
    rows = list(convert_rows([{"query": "2+2?", "response": "4"}], to="grpo"))

Every input row is either converted (giving one or more output rows) or rejected with a reason
naming the file and line (JSONL) or row index; rejected rows go to the reject file
(``<output>.rejected.jsonl`` by default), one JSON object per line::

    {"file": "in.jsonl", "line": 7, "reason": "invalid JSON: ...", "original": "<the line as text>"}

(``"row": i`` instead of ``"line"`` for JSON arrays, Parquet and datasets; ``"original_base64"`` holds
the exact bytes when the line is not UTF-8). Output and reject file are written to temporary files and
renamed into place at the end, so an interrupted run leaves neither.
"""

from __future__ import annotations

import contextlib
import gc
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional

from ..errors import ConfigError, SwiftExtError
from . import sources
from .formats import InputFormat, describe_columns, detect, get_format
from .media import MediaWriter, looks_base64, needs_conversion
from .rows import RowError
from .formats import _PLAIN_ROLES, _SWIFT_USED, read_swift
from .targets import GRPO_RESERVED, LOADER_OVERWRITTEN, Options, Target, get_target, to_grpo, to_sft
from ..extract import extract_answer

# columns that need the generic path (media, preference fields, names ms-swift treats specially)
_SPECIAL_KEYS = frozenset((_SWIFT_USED | GRPO_RESERVED | LOADER_OVERWRITTEN) - {"messages"})
_SPECIAL_NO_IMAGES = _SPECIAL_KEYS - {"images"}
_PROMPT_END = frozenset(("user", "tool_response", "tool"))

try:
    import msgspec

    _encode = msgspec.json.encode
except ImportError:  # pragma: no cover
    import json

    def _encode(obj):
        return json.dumps(obj, ensure_ascii=False).encode("utf-8")

_MAX_REASONS = 200


class ConvertError(SwiftExtError):
    """A conversion stopped (``--strict`` and a bad row, or an unusable input)."""


@dataclass
class Report:
    """What a conversion did. Invariant: ``rows_in == rows_converted + rows_rejected``."""

    input: str = ""
    output: str = ""
    reject_file: Optional[str] = None
    format: Optional[str] = None
    target: str = ""
    rows_in: int = 0
    rows_converted: int = 0
    rows_rejected: int = 0
    rows_out: int = 0
    reasons: Dict[str, int] = field(default_factory=dict)
    warnings: Dict[str, int] = field(default_factory=dict)
    media_written: int = 0
    seconds: float = 0.0

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["rows_per_second"] = round(self.rows_in / self.seconds, 1) if self.seconds else None
        return d

    @property
    def balanced(self) -> bool:
        return self.rows_in == self.rows_converted + self.rows_rejected


def _count(counter: Dict[str, int], key: str) -> None:
    if key in counter or len(counter) < _MAX_REASONS:
        counter[key] = counter.get(key, 0) + 1
    else:
        counter["(other reasons)"] = counter.get("(other reasons)", 0) + 1


def _reason_key(reason: str) -> str:
    """Group similar reasons in the summary: drop the varying tail (columns, values)."""
    for sep in (" (column", " (", ": '", ': "'):
        i = reason.find(sep)
        if i > 0:
            reason = reason[:i]
    return reason[:120]


class RowConverter:
    """Picklable per-row converter: read (detect) -> media -> tag check -> target. Raises RowError."""

    def __init__(self, target: Target, fmt: Optional[InputFormat] = None, opts: Optional[Options] = None,
                 media_dir: Optional[str] = None, check_media: bool = True, root: Optional[str] = None):
        self.target, self.fmt = target, fmt
        self.opts = opts or Options()
        self.media_dir = media_dir
        self.media = MediaWriter(media_dir)
        self.check_media = check_media
        self.root = root
        self._exists: Dict[str, bool] = {}
        self.warnings: Dict[str, int] = {}
        self.opts.warn = self._warn
        self._fastpath = None  # fused hot path, same output as the generic one (tests compare them)
        self.fast = True

    def _warn(self, msg: str) -> None:
        _count(self.warnings, msg)

    @property
    def fast(self) -> bool:
        return self._fast

    @fast.setter
    def fast(self, value: bool) -> None:
        self._fast = value
        self._set_fastpath()

    def _set_fastpath(self) -> None:
        fmt = self.fmt
        ok = (self._fast and fmt is not None and fmt.read is read_swift and self.target.fn in (to_sft, to_grpo))
        self._fastpath = self._fast_swift if ok else None
        self._is_sft = self.target.fn is to_sft

    def _fmt_for(self, obj: Dict[str, Any]) -> InputFormat:
        if self.fmt is None:
            fmt = detect(obj)
            if fmt is None:
                raise RowError(f"cannot detect the input format from {describe_columns(obj)}; pass --from")
            self.fmt = fmt
            self._set_fastpath()
        return self.fmt

    def _path_ok(self, p: str) -> bool:
        if p.startswith(("http://", "https://", "data:")) or len(p) >= 2000:
            return True
        full = p if os.path.isabs(p) or not self.root else os.path.join(self.root, p)
        ok = self._exists.get(full)
        if ok is None:
            ok = os.path.exists(full)
            if len(self._exists) > 100_000:
                self._exists.clear()
            self._exists[full] = ok
        return ok

    def _media(self, c: Dict[str, Any]) -> None:
        for key in ("images", "videos", "rejected_images"):
            items = c[key]
            if not items:
                continue
            if self.check_media:
                for item in items:
                    if isinstance(item, str) and not self._path_ok(item) and not looks_base64(item):
                        raise RowError(f"{key}: file not found: {item!r}"
                                       + ("" if self.root or os.path.isabs(item) else " (relative paths: --root)"))
            if needs_conversion(items, self.media_dir):
                c[key] = self.media.convert_list(items)

    def _tags(self, c: Dict[str, Any]) -> None:
        self._check_tags(c, "messages", c["images"], c["videos"])
        if c["rejected_messages"]:
            images = c["rejected_images"] if c["rejected_images"] is not None else c["images"]
            self._check_tags(c, "rejected_messages", images, c["videos"])

    def _check_tags(self, c: Dict[str, Any], where: str, images: list, videos: list) -> None:
        msgs = c[where]
        if not images and not videos:  # fast path for text rows: any tag at all is an error
            for m in msgs:
                content = m["content"]
                if "<image>" in content or "<video>" in content:
                    break
            else:
                return
        for tag, media, what in (("<image>", images, "images"), ("<video>", videos, "videos")):
            n_media = len(media)
            n_tags = 0
            for m in msgs:
                if tag in m["content"]:
                    n_tags += m["content"].count(tag)
            if n_tags > n_media:
                raise RowError(f"{where}: {n_tags} {tag} tag(s) but {n_media} {what} "
                               f"(ms-swift would replace only the first ones and leave the rest as text)")
            if n_tags < n_media:
                i = next((i for i, m in enumerate(msgs) if m["role"] == "user"), None)
                if i is None:
                    raise RowError(f"{where}: {n_media} {what} but no user turn to hold the {tag} tags")
                msgs = list(msgs)  # copies: never modify the caller's rows
                msgs[i] = {**msgs[i], "content": tag * (n_media - n_tags) + msgs[i]["content"]}
                c[where] = msgs
                self._warn(f"added missing {tag} tags at the start of the first user turn "
                           f"(tag count must equal the number of {what}; ms-swift does the same silently)")

    def _fast_swift(self, obj: Dict[str, Any]) -> Optional[List[Dict[str, Any]]]:
        """swift messages -> grpo / sft for plain rows (text, or image paths), fused; None sends the row to the
        generic path, which gives the same output (or the reason for a reject)."""
        try:
            msgs = obj["messages"]
            if type(msgs) is not list or not msgs:
                return None
            n_tags = 0
            for m in msgs:
                if type(m) is not dict or len(m) != 2:
                    return None
                content = m["content"]
                if type(content) is not str or m["role"] not in _PLAIN_ROLES or "<video>" in content:
                    return None
                if "<image>" in content:
                    n_tags += content.count("<image>")
        except KeyError:
            return None
        n = len(obj)
        images = None
        if n > 1:
            if not _SPECIAL_NO_IMAGES.isdisjoint(obj):
                return None
            images = obj.get("images")
        if images is not None:
            if type(images) is not list or not images or n_tags != len(images) or self.media_dir:
                return None
            for p in images:
                if type(p) is not str or (self.check_media and not self._path_ok(p)):
                    return None
        elif n_tags:
            return None
        if msgs[-1]["role"] != "assistant":
            return None
        if self._is_sft:
            return [obj]
        end = len(msgs) - 1
        while end and msgs[end - 1]["role"] == "assistant":
            end -= 1
        if not end or msgs[end - 1]["role"] not in _PROMPT_END:
            return None
        gold = msgs[-1]["content"]
        if self.opts.extract:
            gold = extract_answer(gold, mode=self.opts.extract)
            if gold is None:
                return None
        if not gold.strip():
            return None
        out = {"messages": msgs[:end]}
        if images is not None:
            out["images"] = images
        out["solution"] = gold
        if n > 1:
            for k, v in obj.items():
                if k != "messages" and k != "images":
                    out[k] = v
        return [out]

    def __call__(self, obj: Any, index: int) -> List[Dict[str, Any]]:
        fastpath = self._fastpath
        if fastpath is not None and type(obj) is dict:
            out = fastpath(obj)
            if out is not None:
                return out
        if not isinstance(obj, dict):
            raise RowError(f"a row must be a JSON object, got {type(obj).__name__}")
        fmt = self._fmt_for(obj)
        try:
            c = fmt.read(obj)
            if c["images"] or c["videos"] or c["rejected_images"]:
                self._media(c)
            self._tags(c)
            return self.target(c, index, self.opts)
        except RowError:
            raise
        except RecursionError:
            raise RowError("row nested too deeply") from None
        except Exception as exc:  # a plugin reader/target must not take the whole conversion down
            raise RowError(f"{fmt.name} -> {self.target.name} failed: {type(exc).__name__}: {exc}") from None


def sniff_format(path: str, split: Optional[str] = None, max_rows: int = 200) -> InputFormat:
    """The format of the first parseable object row among the first ``max_rows`` rows."""
    first = None
    kind = sources.where_kind(path)
    for n, (num, obj, _, err) in enumerate(sources.iter_source(path, split=split)):
        if n >= max_rows:
            break
        if err is None and isinstance(obj, dict):
            fmt = detect(obj)
            if fmt is not None:
                return fmt
            first = first or (f"{kind} {num}", obj)
    if first is None:
        raise ConvertError(f"{path}: no parseable JSON object row in the first {max_rows} rows")
    raise ConvertError(f"{path}: cannot detect the input format from {describe_columns(first[1])} "
                       f"({first[0]}); pass --from (one of: {', '.join(f.name for f in _formats())})")


def _formats():
    from .formats import formats

    return formats()


def build_options(target: Target, *, extract=None, negatives=None, completions=None, reward=None, seed=0,
                  require_solution=True, n_choices=4) -> Options:
    from ..extract import MODES

    if extract is not None and extract not in MODES:
        raise ConfigError(f"--extract {extract!r}: choose one of {', '.join(MODES)}")
    opts = Options(extract=extract, require_solution=require_solution, seed=seed, n_choices=n_choices)
    if negatives:
        from .negatives import Corruptor

        opts.corruptor = Corruptor(negatives, seed=seed)
    if completions or reward:
        if not (completions and reward):
            raise ConfigError("--completions and --reward go together (sampled completions ranked by a reward)")
        from .negatives import CompletionPicker

        opts.picker = CompletionPicker(completions, reward)
    if n_choices < 2 or n_choices > 10:
        raise ConfigError("--choices must be between 2 and 10")
    return opts


class _AtomicFile:
    """A temp file next to ``path``, renamed into place by ``commit()``, deleted by ``abort()``."""

    def __init__(self, path: str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=str(self.path.parent))
        self.fh = os.fdopen(fd, "wb", buffering=1 << 20)
        self.n = 0

    def commit(self) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        try:
            self.fh.close()
        finally:
            try:
                os.unlink(self.tmp)
            except OSError:
                pass


class _Writer:
    """JSONL (or a JSON array for ``.json`` outputs) into an atomic file."""

    def __init__(self, path: str):
        self.file = _AtomicFile(path)
        self.array = path.endswith(".json")
        self.n = 0
        if self.array:
            self.file.fh.write(b"[\n")

    def write_encoded(self, data: bytes) -> None:
        fh = self.file.fh
        if self.array and self.n:
            fh.write(b",\n")
        fh.write(data)
        if not self.array:
            fh.write(b"\n")
        self.n += 1

    def commit(self) -> None:
        if self.array:
            self.file.fh.write(b"\n]\n")
        self.file.commit()

    def abort(self) -> None:
        self.file.abort()


def default_reject_path(output: str) -> str:
    p = Path(output)
    name = p.name[:-6] if p.name.endswith(".jsonl") else (p.name[:-5] if p.name.endswith(".json") else p.name)
    return str(p.with_name(f"{name}.rejected.jsonl"))


def _reject_record(path: str, kind: str, num: int, reason: str, raw: bytes, obj: Any) -> bytes:
    rec: Dict[str, Any] = {"file": path, kind: num, "reason": reason}
    text, b64 = sources.raw_text(raw, obj)
    rec["original"] = text
    if b64 is not None:
        rec["original_base64"] = b64
    return _encode(rec)


class _Progress:
    """A rich bar on stderr (only when asked for and stderr is a terminal), advanced in chunks."""

    def __init__(self, enabled: bool, total: int, unit: str, description: str):
        self.bar = None
        if enabled:
            from rich.console import Console
            from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            console = Console(stderr=True)
            if console.is_terminal:
                count = DownloadColumn() if unit == "bytes" else MofNCompleteColumn()
                self.bar = Progress(TextColumn("{task.description}"), BarColumn(), count, TimeElapsedColumn(),
                                    TimeRemainingColumn(), console=console, transient=True)
                self.task = self.bar.add_task(description, total=total)
                self.bar.start()
        self.pending = 0

    def advance(self, n: int) -> None:
        if self.bar is not None:
            self.pending += n
            if self.pending >= 1 << 20 or n >= 1000:
                self.bar.advance(self.task, self.pending)
                self.pending = 0

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _collect_pool(path: str, conv: RowConverter, split: Optional[str]):
    """First pass for mcq/judge: the distinct reference answers of the whole input."""
    from .rewrite import AnswerPool
    from .targets import gold_answer

    pool = AnswerPool()
    for _, obj, _, err in sources.iter_source(path, split=split):
        if err is not None or not isinstance(obj, dict):
            continue
        try:
            pool.add(gold_answer(conv._fmt_for(obj).read(obj), conv.opts))
        except Exception:
            continue
    return pool


def convert_file(input: str, output: str, to: str, src: Optional[str] = None, *, reject_path: Optional[str] = None,
                 strict: bool = False, media_dir: Optional[str] = None, extract: Optional[str] = None,
                 negatives: Optional[str] = None, completions: Optional[str] = None, reward: Optional[str] = None,
                 seed: int = 0, require_solution: bool = True, check_media: bool = True, root: Optional[str] = None,
                 split: Optional[str] = None, num_proc: Optional[int] = None, n_choices: int = 4,
                 show_progress: bool = False) -> Report:
    """Convert ``input`` into ``output`` (JSONL, or a JSON array if it ends in ``.json``); see the module doc."""
    t0 = time.perf_counter()
    if Path(output).suffix.lower() in (".parquet", ".pq", ".arrow", ".csv", ".tsv"):
        raise ConfigError(f"{output}: convert writes JSONL (.jsonl) or a JSON array (.json), not {Path(output).suffix}")
    target = get_target(to)
    fmt = get_format(src) if src else sniff_format(input, split)
    opts = build_options(target, extract=extract, negatives=negatives, completions=completions, reward=reward,
                         seed=seed, require_solution=require_solution, n_choices=n_choices)
    conv = RowConverter(target, fmt, opts, media_dir=media_dir, check_media=check_media, root=root)
    if target.needs_pool:
        opts.pool = _collect_pool(input, conv, split)
    reject_path = reject_path or default_reject_path(output)
    if os.path.abspath(reject_path) == os.path.abspath(output) or os.path.abspath(input) in (
            os.path.abspath(output), os.path.abspath(reject_path)):
        raise ConfigError("input, output and reject file must be three different paths")
    report = Report(input=str(input), output=str(output), format=fmt.name, target=target.name)
    out = _Writer(output)
    rej = _AtomicFile(reject_path)
    total, unit = sources.progress_total(input, split)
    bar = _Progress(show_progress, total, unit, f"{fmt.name} -> {target.name}")
    try:
        if num_proc and num_proc > 1 and sources.input_kind(input) != "json":
            _run_parallel(input, conv, out, rej, report, strict, num_proc, split, bar)
        else:
            _run_serial(input, conv, out, rej, report, strict, split, bar)
    except BaseException:
        out.abort()
        rej.abort()
        raise
    finally:
        bar.close()
    if report.rows_rejected:
        rej.commit()
        report.reject_file = str(reject_path)
    else:
        rej.abort()
        if reject_path == default_reject_path(output) and os.path.exists(reject_path):
            os.unlink(reject_path)  # a stale reject file from an earlier run would contradict "0 rejected"
    out.commit()
    for k, v in conv.warnings.items():
        report.warnings[k] = report.warnings.get(k, 0) + v
    report.media_written += conv.media.written
    report.seconds = time.perf_counter() - t0
    assert report.balanced, report
    return report


def _reject(report: Report, rej: _AtomicFile, input: str, kind: str, num: int, reason: str, raw: bytes, obj: Any,
            strict: bool) -> None:
    if strict:
        raise ConvertError(f"{input}:{num}: {reason}" if kind == "line" else f"{input} row {num}: {reason}")
    report.rows_rejected += 1
    _count(report.reasons, _reason_key(reason))
    rej.fh.write(_reject_record(input, kind, num, reason, raw, obj))
    rej.fh.write(b"\n")


def _jsonl_items(path: str, bar: "_Progress") -> Iterator[tuple]:
    """JSONL rows for the serial loop: the progress bar is advanced from the file position in chunks."""
    decode = sources._decode
    errors = (sources._DecodeError, UnicodeDecodeError, ValueError, RecursionError)
    with open(path, "rb", buffering=1 << 20) as fh:
        lineno = 0
        while True:
            lines = fh.readlines(1 << 22)
            if not lines:
                break
            if bar.bar is not None:
                bar.advance(sum(map(len, lines)))
            for raw in lines:
                lineno += 1
                try:
                    yield lineno, decode(raw), raw, None
                    continue
                except errors:
                    pass
                if not raw.strip():
                    continue
                if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
                obj, err = sources.parse_line(raw)
                yield lineno, obj, raw, err


@contextlib.contextmanager
def _lazy_gc():
    """Fewer garbage-collector passes while streaming: rows die by reference counting, so the default
    gen-0 threshold (700 allocations) only costs time (~10 % measured); cycles are still collected."""
    old = gc.get_threshold()
    gc.set_threshold(100_000, 50, 1000)
    try:
        yield
    finally:
        gc.set_threshold(*old)


def _run_serial(input, conv, out, rej, report, strict, split, bar) -> None:
    with _lazy_gc():
        _serial_loop(input, conv, out, rej, report, strict, split, bar)


def _serial_loop(input, conv, out, rej, report, strict, split, bar) -> None:
    kind = sources.where_kind(input)
    index = rows_in = converted = rows_out = 0
    enc = _encode
    fast = not out.array
    buf: List[bytes] = []
    fh = out.file.fh
    items = _jsonl_items(input, bar) if kind == "line" else sources.iter_source(
        input, on_bytes=bar.advance if bar.bar else None, split=split)
    fastpath = conv._fastpath if conv.fmt is not None else None
    try:
        for num, obj, raw, err in items:
            rows_in += 1
            if err is None:
                try:
                    rows = (fastpath(obj) if fastpath is not None and type(obj) is dict else None) \
                        or conv(obj, index)
                    encoded = [enc(rows[0])] if len(rows) == 1 else [enc(r) for r in rows]
                except RowError as exc:
                    err = exc.reason
                except (TypeError, ValueError, OverflowError) as exc:  # output not encodable
                    err = f"cannot write the converted row as JSON: {exc}"
            index += 1
            if err is not None:
                _reject(report, rej, input, kind, num, err, raw, obj, strict)
                continue
            converted += 1
            rows_out += len(encoded)
            if fast:
                for data in encoded:
                    buf.append(data)
                    buf.append(b"\n")
                if len(buf) > 4096:
                    fh.write(b"".join(buf))
                    buf.clear()
            else:
                for data in encoded:
                    out.write_encoded(data)
    finally:
        if buf:
            fh.write(b"".join(buf))
        report.rows_in += rows_in
        report.rows_converted += converted
        report.rows_out += rows_out


# -- --num-proc: the same RowConverter inside datasets.Dataset.map(num_proc=N) ----------------------
class _MapFn:
    """The batched map function (picklable): parse + convert each row; JSON strings out, reasons for rejects."""

    def __init__(self, conv: RowConverter, text: bool):
        self.conv, self.text = conv, text

    def __call__(self, batch, indices):
        import pyarrow as pa

        if self.text:
            raws = [line.encode("latin-1") for line in batch["text"]]  # latin-1 keeps the exact bytes
            items = []
            for raw in raws:
                if not raw.strip():
                    items.append((None, None, raw, True))
                else:
                    obj, err = sources.parse_line(raw)
                    items.append((obj, err, raw, False))
        else:
            rows = batch.to_pylist() if isinstance(batch, pa.Table) else [
                dict(zip(batch, vals)) for vals in zip(*batch.values())]
            items = [(r, None, b"", False) for r in rows]
        o, e, r, b, s, w = [], [], [], [], [], []
        for (obj, err, raw, blank), index in zip(items, indices):
            out_rows: List[str] = []
            before = dict(self.conv.warnings)
            if not blank and err is None:
                try:
                    out_rows = [_encode(x).decode("utf-8") for x in self.conv(obj, index)]
                except RowError as exc:
                    err = exc.reason
                except (TypeError, ValueError, OverflowError) as exc:
                    err = f"cannot write the converted row as JSON: {exc}"
            new_w = [k for k, v in self.conv.warnings.items() if v != before.get(k, 0)]
            text, b64 = ("", None) if err is None else sources.raw_text(raw, obj)
            o.append(out_rows), e.append(err), r.append(text), b.append(b64), s.append(blank), w.append(new_w)
        return {"o": o, "e": e, "r": r, "b": b, "s": s, "w": w}


def _run_parallel(input, conv, out, rej, report, strict, num_proc, split, bar) -> None:
    import datasets

    kind = sources.input_kind(input)
    with tempfile.TemporaryDirectory(prefix="swift-ext-convert-") as tmp:
        if kind == "jsonl":
            ds = datasets.load_dataset("text", data_files=input, split="train", encoding="latin-1", cache_dir=tmp)
            text = True
        elif kind == "parquet":
            ds = datasets.load_dataset("parquet", data_files=input, split="train", cache_dir=tmp)
            text = False
        else:
            ds = sources.load_hf(input, split)
            text = False
        feats = datasets.Features({"o": datasets.List(datasets.Value("string")), "e": datasets.Value("string"),
                                   "r": datasets.Value("string"), "b": datasets.Value("string"),
                                   "s": datasets.Value("bool"), "w": datasets.List(datasets.Value("string"))})
        src = ds if text else ds.with_format("arrow")
        mapped = src.map(_MapFn(conv, text), batched=True, batch_size=1000, with_indices=True, num_proc=num_proc,
                         remove_columns=ds.column_names, features=feats, load_from_cache_file=False,
                         cache_file_name=os.path.join(tmp, "mapped.arrow"), desc="convert").with_format(None)
        i = 0
        for chunk in mapped.iter(batch_size=1000):
            for o, e, r, b, s, w in zip(chunk["o"], chunk["e"], chunk["r"], chunk["b"], chunk["s"], chunk["w"]):
                kind, num = ("line", i + 1) if text else ("row", i)
                i += 1
                for msg in w:
                    _count(conv.warnings, msg)
                if s:
                    continue
                report.rows_in += 1
                if e is not None:
                    if strict:
                        _reject(report, rej, input, kind, num, e, b"", None, True)
                    report.rows_rejected += 1
                    _count(report.reasons, _reason_key(e))
                    rec: Dict[str, Any] = {"file": input, kind: num, "reason": e, "original": r}
                    if b:
                        rec["original_base64"] = b
                    rej.fh.write(_encode(rec) + b"\n")
                    continue
                report.rows_converted += 1
                report.rows_out += len(o)
                for line in o:
                    out.write_encoded(line.encode("utf-8"))
            bar.advance(len(chunk["o"]))


# -- library API on in-memory rows ------------------------------------------------------------------
def convert_rows(rows: Iterable[Any], to: str, src: Optional[str] = None, *, strict: bool = True,
                 rejects: Optional[list] = None, **options: Any) -> Iterator[Dict[str, Any]]:
    """Convert rows (dicts) lazily. ``strict=True`` raises ConvertError naming the row index; with
    ``strict=False`` each bad row is appended to ``rejects`` as ``(index, reason, row)``.

    >>> list(convert_rows([{"problem": "1+1?", "answer": "2"}], to="grpo"))
    [{'messages': [{'role': 'user', 'content': '1+1?'}], 'solution': '2'}]
    """
    media_dir = options.pop("media_dir", None)
    check_media = options.pop("check_media", True)
    root = options.pop("root", None)
    target = get_target(to)
    conv = RowConverter(target, get_format(src) if src else None, build_options(target, **options),
                        media_dir=media_dir, check_media=check_media, root=root)
    if target.needs_pool:
        rows = list(rows)
        from .rewrite import AnswerPool
        from .targets import gold_answer

        pool = AnswerPool()
        for r in rows:
            try:
                pool.add(gold_answer(conv._fmt_for(r).read(r), conv.opts))
            except Exception:
                continue
        conv.opts.pool = pool
    for index, row in enumerate(rows):
        try:
            out = conv(row, index)
        except RowError as exc:
            if strict:
                raise ConvertError(f"row {index}: {exc.reason}") from None
            if rejects is not None:
                rejects.append((index, exc.reason, row))
            continue
        yield from out


def print_summary(report: Report, console=None) -> None:
    """The human summary (stderr): rows in = converted + rejected, rows written, top reasons."""
    from rich.console import Console

    console = console or Console(stderr=True)
    console.print(f"[bold]{report.input}[/] ({report.format}) -> [bold]{report.output}[/] ({report.target})")
    console.print(f"rows in {report.rows_in} = converted {report.rows_converted} + rejected {report.rows_rejected}; "
                  f"rows written {report.rows_out}; {report.seconds:.2f} s")
    if report.rows_rejected:
        console.print(f"[yellow]rejected rows -> {report.reject_file}[/]")
        for reason, n in sorted(report.reasons.items(), key=lambda kv: -kv[1])[:10]:
            console.print(f"  {n:>8}  {reason}")
    for msg, n in sorted(report.warnings.items(), key=lambda kv: -kv[1])[:10]:
        console.print(f"[yellow]warning[/] ({n} rows): {msg}")
    if report.media_written:
        console.print(f"media files written: {report.media_written}")
