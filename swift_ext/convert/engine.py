"""The conversion engine: one row loop for files (serial and ``--num-proc``) and in-memory rows.

Library use::

    from swift_ext.convert import ConvertOptions, convert_file, convert_rows
    report = convert_file("sft.jsonl", "grpo.jsonl", ConvertOptions(to="grpo", extract="last_number"))
    assert report.rows_in == report.rows_converted + report.rows_rejected
    rows = list(convert_rows([{"query": "2+2?", "response": "4"}], to="grpo"))

(``convert_file(input, output, "grpo", extract="last_number")`` builds the same options.)

Every input row is either converted (giving one or more output rows) or rejected with a reason
naming the file and line (JSONL) or row index. A converted row also passes the rules of
``swift-ext validate --task <target>`` (:mod:`.rules`); a row that would not is rejected with the
validator's message. Rejected rows go to the reject file (``<output>.rejected.jsonl`` by default,
format: :class:`swift_ext.io.RejectFile`). Output and reject file are written to temporary files and
renamed into place at the end, so an interrupted run leaves neither. When no row is converted, no output
is written (``report.written`` is False; the CLI exits 1).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Union

from ..errors import ConfigError, SwiftExtError
from ..io import JsonlWriter, Progress, RejectFile, default_reject_path, encode_json, parse_json_line, raw_text
from . import rules, sources
from .formats import InputFormat, describe_columns, detect, formats, get_format, read_row
from .media import MediaWriter, PathRewriter, needs_conversion
from .options import ConvertOptions
from .rewrite import AnswerPool
from .rows import RowError, gold_answer
from .targets import get_target

__all__ = ["ConvertError", "Report", "RowConverter", "convert_file", "convert_rows", "sniff_format",
           "print_summary", "default_reject_path"]

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
    written: bool = False  # False when no row was converted: then no output file is written

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


def _options(to: Union[str, ConvertOptions, None], src: Optional[str], settings: Dict[str, Any]) -> ConvertOptions:
    """``to`` as a ConvertOptions (given) or the options spelled as keyword arguments."""
    if isinstance(to, ConvertOptions):
        changes = dict(settings, **({"src": src} if src is not None else {}))
        return to.replace(**changes) if changes else to
    if to is None:
        raise ConfigError("no target: pass to='sft' (grpo, dpo, ...) or a ConvertOptions")
    return ConvertOptions(to=to, src=src, **settings)


class ToolColumn:
    """``--tools``: each output row's ``tools`` column, the chosen tools' OpenAI function schemas as JSON text (what
    ms-swift's agent templates read, as the ``function_calling`` format writes it). A row with tools of its own
    keeps them, the chosen ones are added after; a chosen tool whose name the row's tools already use is an error
    of the row (two different schemas under one name)."""

    def __init__(self, schemas: List[Dict[str, Any]]):
        self.schemas = schemas
        self.names = [s["function"]["name"] for s in schemas]
        self.text = json.dumps(schemas, ensure_ascii=False)

    def add(self, rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        from ..tools.parse import parse_tools

        out = []
        for row in rows:
            own = row.get("tools")
            if own in (None, "", []):
                out.append({**row, "tools": self.text})
                continue
            names = parse_tools(own)
            if names is None:
                raise RowError("the row's 'tools' column is not a list of function tools, and --tools would add "
                               "to it", "tools")
            clash = [n for n in self.names if n in names]
            if clash:
                raise RowError(f"the row's own tools already define {clash}: --tools would add a second schema "
                               f"under that name", "tools")
            listed = json.loads(own) if isinstance(own, str) else list(own)
            out.append({**row, "tools": json.dumps(list(listed) + self.schemas, ensure_ascii=False)})
        return out


class RowConverter:
    """Picklable per-row converter: read (detect) -> media -> tag check -> target -> the target's rules.
    Raises RowError. The target's fast path for the input format (if it declares one) runs first, once."""

    def __init__(self, options: ConvertOptions, fmt: Optional[InputFormat] = None, output: Optional[str] = None):
        self.options = options
        self.target = get_target(options.to)
        self.fmt = get_format(options.src) if options.src else fmt
        self.ctx = options.target_context()
        self.ctx.warn = self._warn
        self.media_dir, self.check_media, self.root = options.media_dir, options.check_media, options.root
        self.confine = bool(options.root) and not options.allow_outside_root
        self.media = MediaWriter(options.media_dir)
        self.paths = PathRewriter(options.media_paths, output or "out.jsonl", options.root)
        self._exists: Dict[Any, Any] = {}
        self.warnings: Dict[str, int] = {}
        task = self.target.task
        self._read_output = get_format(self.target.output).read if task else None
        self._ignore = () if options.require_solution else ("solution",)
        schemas = options.tool_schemas()
        self.tools = ToolColumn(schemas) if schemas else None
        self.fast = True

    def _warn(self, msg: str) -> None:
        _count(self.warnings, msg)

    @property
    def fast(self) -> bool:
        return self._fast

    @fast.setter
    def fast(self, value: bool) -> None:
        """False turns the target's fast path off (the tests compare both paths)."""
        self._fast = value
        self._fastpath = self.target.fast.get(self.fmt.name) if value and self.fmt is not None else None

    def path_ok(self, p: str) -> bool:
        """Whether a fast path may write media path ``p`` as it is: it passes the one media check (URLs and
        inline data count as present; cached), and paths are kept as given."""
        if p.startswith(("http://", "https://", "data:")):
            return True
        if self.paths.mode != "keep":
            return False
        return self._check_cached(p, "image") is None

    def _check_cached(self, item: Any, kind: str):
        """:func:`rules.media_check` of a path, remembered per path (one stat and a 16-byte read per file)."""
        if not isinstance(item, str):
            return rules.media_check(item, kind, self.root, self.confine)
        key = (item, kind)
        found = self._exists.get(key, False)
        if found is False:
            found = rules.media_check(item, kind, self.root, self.confine)
            if len(self._exists) > 100_000:
                self._exists.clear()
            self._exists[key] = found
        return found

    def _read(self, obj: Any):
        fmt, c = read_row(obj, self.fmt)
        if self.fmt is None:
            self.fmt = fmt
            self.fast = self._fast
        return fmt, c

    def _media(self, c: Dict[str, Any], audios: Any = None) -> None:
        if self.check_media:
            for name, _, message in rules.media_checks(c, self.root, check=self._check_cached, confine=self.confine,
                                                       audios=audios):
                raise RowError(message, name)
        rewrite = self.paths.rewrite if self.paths.mode != "keep" else None
        for key in ("images", "videos", "rejected_images"):
            items = c[key]
            if items and needs_conversion(items, self.media_dir):
                items = c[key] = self.media.convert_list(items)
            if items and rewrite is not None:
                c[key] = [rewrite(x) for x in items]

    def _tags(self, c: Dict[str, Any]) -> None:
        self._fix_tags(c, "messages", c["images"], c["videos"])
        if c["rejected_messages"]:
            images = c["rejected_images"] if c["rejected_images"] is not None else c["images"]
            self._fix_tags(c, "rejected_messages", images, c["videos"])

    def _fix_tags(self, c: Dict[str, Any], where: str, images: list, videos: list) -> None:
        """More tags than media: the row is rejected; fewer: the missing tags are prepended to the first user
        turn (what ms-swift does silently), with a warning."""
        msgs = c[where]
        checks = rules.tag_checks(msgs, images, videos, where)
        if not checks:
            return
        for name, _, message in checks:
            if name == "tags":
                raise RowError(message, name)
        for tag, media, what in (("<image>", images, "images"), ("<video>", videos, "videos")):
            n_tags = sum(m["content"].count(tag) for m in msgs)
            if n_tags < len(media):
                i = next((i for i, m in enumerate(msgs) if m["role"] == "user"), None)
                if i is None:
                    raise RowError(f"{where}: {len(media)} {what} but no user turn to hold the {tag} tags")
                msgs = list(msgs)  # copies: never modify the caller's rows
                msgs[i] = {**msgs[i], "content": tag * (len(media) - n_tags) + msgs[i]["content"]}
                c[where] = msgs
                self._warn(f"added missing {tag} tags at the start of the first user turn "
                           f"(tag count must equal the number of {what}; ms-swift does the same silently)")

    def build(self, obj: Any, index: int) -> List[Dict[str, Any]]:
        """The generic path: the target's output rows, before the validity rules are applied."""
        fmt, c = self._read(obj)
        try:
            audios = obj.get("audios") if isinstance(obj, dict) else None
            if c["images"] or c["videos"] or c["rejected_images"] or audios:
                self._media(c, audios)
            self._tags(c)
            return self.target(c, index, self.ctx)
        except RowError:
            raise
        except RecursionError:
            raise RowError("row nested too deeply") from None
        except Exception as exc:  # a plugin reader/target must not take the whole conversion down
            raise RowError(f"{fmt.name} -> {self.target.name} failed: {type(exc).__name__}: {exc}") from None

    def check(self, rows: List[Dict[str, Any]]) -> None:
        """The rules of ``validate --task <target>`` on output rows: a RowError with the first error's message."""
        read = self._read_output
        if read is None:
            return
        for row in rows:
            try:
                c = read(row)
            except RowError as exc:  # validate reads the output file with the same reader and says the same
                raise RowError(exc.reason, "format") from None
            for name, severity, message in rules.check_canonical(c, row, self.target.task, check_media=False):
                if severity == "error" and name not in self._ignore:
                    raise RowError(message, name)

    def generic(self, obj: Any, index: int) -> List[Dict[str, Any]]:
        """The generic path and the validity rules (for a row the fast path declined)."""
        rows = self.build(obj, index)
        self.check(rows)
        return rows

    def __call__(self, obj: Any, index: int) -> List[Dict[str, Any]]:
        fastpath = self._fastpath
        if fastpath is not None and type(obj) is dict:
            out = fastpath(obj, self)
            if out is not None:
                return self.tools.add(out) if self.tools is not None else out
        out = self.generic(obj, index)
        return self.tools.add(out) if self.tools is not None else out

    def collect_pool(self, rows: Iterable[Any]) -> AnswerPool:
        """The distinct reference answers of ``rows`` (first pass of mcq / judge); unreadable rows are skipped."""
        pool = AnswerPool()
        for obj in rows:
            try:
                pool.add(gold_answer(self._read(obj)[1], self.ctx))
            except RowError:
                continue
        return pool


def _outcomes(conv: RowConverter, items: Iterable[sources.Item], encode: Optional[Callable[[Any], bytes]],
              first: int = 0) -> Iterator[tuple]:
    """THE conversion loop: ``(num, obj, raw, rows, reason)`` per input item, ``rows`` None for a reject.
    Rows are encoded with ``encode`` when given (a row JSON cannot hold is a reject). The row index (the seed
    of negatives and rewrites) is the item's 0-based position in the input, ``num - first`` (``first=1`` for
    JSONL line numbers), so serial, ``--num-proc`` and in-memory runs give the same rows."""
    fastpath = conv._fastpath
    generic = conv.generic
    tools = conv.tools
    for num, obj, raw, err in items:
        rows = None
        if err is None:
            if fastpath is None:
                fastpath = conv._fastpath  # known once the format is detected
            try:
                if fastpath is not None and type(obj) is dict:  # conv(obj, index), inlined
                    rows = fastpath(obj, conv)
                if rows is None:
                    rows = generic(obj, num - first)
                if tools is not None:
                    rows = tools.add(rows)
            except RowError as exc:
                rows, err = None, exc.reason
            else:
                if encode is not None:
                    try:
                        rows = [encode(rows[0])] if len(rows) == 1 else [encode(r) for r in rows]
                    except (TypeError, ValueError, OverflowError) as exc:
                        rows, err = None, f"cannot write the converted row as JSON: {exc}"
        yield num, obj, raw, rows, err


class _Sink:
    """Where outcomes go: the output writer (buffered), the reject file and the report's counters."""

    def __init__(self, input: str, out: JsonlWriter, rej: RejectFile, report: Report, strict: bool):
        self.input, self.kind = input, sources.where_kind(input)
        self.out, self.rej, self.report, self.strict = out, rej, report, strict
        self.buf: List[bytes] = []
        self.converted = self.rows_out = 0

    def accept(self, encoded: List[bytes]) -> None:
        self.converted += 1
        self.rows_out += len(encoded)
        buf = self.buf
        buf += encoded
        if len(buf) > 4096:
            self.flush()

    def flush(self) -> None:
        """Write the buffered rows and bring the report's counters up to date."""
        if self.buf:
            self.out.write_many(self.buf)
            self.buf.clear()
        report = self.report
        report.rows_converted += self.converted
        report.rows_out += self.rows_out
        report.rows_in += self.converted
        self.converted = self.rows_out = 0

    def reject(self, num: int, reason: str, raw: bytes = b"", obj: Any = None, kind: Optional[str] = None,
               **original) -> None:
        kind = kind or self.kind
        if self.strict:
            where = f"{self.input}:{num}" if kind == "line" else f"{self.input} row {num}"
            raise ConvertError(f"{where}: {reason}")
        report = self.report
        report.rows_in += 1
        report.rows_rejected += 1
        _count(report.reasons, _reason_key(reason))
        self.rej.add(self.input, kind, num, reason, raw, obj, **original)


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


def _run_serial(input: str, conv: RowConverter, sink: _Sink, split: Optional[str], bar: Progress) -> None:
    items = sources.iter_source(input, on_bytes=bar.on_bytes, split=split)
    reject, flush, buf = sink.reject, sink.flush, sink.buf
    converted = rows_out = 0
    with _lazy_gc():
        try:
            for num, obj, raw, rows, err in _outcomes(conv, items, encode_json, 1 if sink.kind == "line" else 0):
                if rows is None:
                    reject(num, err, raw, obj)
                    continue
                converted += 1  # sink.accept(rows), inlined
                rows_out += len(rows)
                buf += rows
                if len(buf) > 4096:
                    flush()
        finally:
            sink.converted, sink.rows_out = converted, rows_out
            flush()


# -- --num-proc: the same loop inside datasets.Dataset.map(num_proc=N) -------------------------------
class _MapFn:
    """The batched map function (picklable): the conversion loop on a batch; JSON strings out, reasons and
    originals for rejects, the warnings each row raised."""

    def __init__(self, conv: RowConverter, text: bool):
        self.conv, self.text = conv, text

    def __call__(self, batch, indices):
        import pyarrow as pa

        if self.text:
            raws = [line.encode("latin-1") for line in batch["text"]]  # latin-1 keeps the exact bytes
            blank = [not raw.strip() for raw in raws]
            items = []
            for index, raw, is_blank in zip(indices, raws, blank):
                if not is_blank:
                    if index == 0 and raw.startswith(b"\xef\xbb\xbf"):  # as the serial reader does
                        raw = raw[3:]
                    obj, err = parse_json_line(raw)
                    items.append((index, obj, raw, err))
        else:
            rows = batch.to_pylist() if isinstance(batch, pa.Table) else [
                dict(zip(batch, vals)) for vals in zip(*batch.values())]
            blank = [False] * len(rows)
            items = [(index, row, b"", None) for index, row in zip(indices, rows)]
        cols: Dict[str, list] = {"o": [], "e": [], "r": [], "b": [], "s": [], "w": []}
        warnings = self.conv.warnings
        before = dict(warnings)
        results = _outcomes(self.conv, items, encode_json)  # items are numbered by their dataset index
        for is_blank in blank:
            if is_blank:
                out_rows, err, text, b64, new_w = [], None, "", None, []
            else:
                _, obj, raw, out_rows, err = next(results)
                new_w = [k for k, v in warnings.items() if v != before.get(k, 0)]
                if new_w:
                    before = dict(warnings)
                text, b64 = ("", None) if err is None else raw_text(raw, obj)
                out_rows = [r.decode("utf-8") for r in out_rows] if out_rows is not None else []
            for key, value in zip("oerbsw", (out_rows, err, text, b64, is_blank, new_w)):
                cols[key].append(value)
        return cols


def _run_parallel(input: str, conv: RowConverter, sink: _Sink, num_proc: int, split: Optional[str],
                  bar: Progress) -> None:
    import datasets
    import multiprocess.util  # the pool library of datasets

    # its temporary folder (manager sockets), made here so the forked helpers share it instead of each making
    # one that a signal would leave behind: this process removes it when it exits
    multiprocess.util.get_temp_dir()
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
                where, num = ("line", i + 1) if text else ("row", i)
                i += 1
                for msg in w:
                    _count(conv.warnings, msg)
                if s:
                    continue
                if e is not None:
                    sink.reject(num, e, kind=where, text=r, original_base64=b)
                else:
                    sink.accept([line.encode("utf-8") for line in o])
            bar.advance(len(chunk["o"]))
        sink.flush()


# -- files ------------------------------------------------------------------------------------------
def sniff_format(path: str, split: Optional[str] = None, max_rows: int = 200) -> Optional[InputFormat]:
    """The format of the first detectable row among the first ``max_rows`` parseable object rows (rows that
    do not parse are skipped, however many), or None when no row of the file is a parseable object (then
    every row is rejected with its own reason). A ConfigError when object rows exist but none is detected."""
    first = None
    kind = sources.where_kind(path)
    n = 0
    for num, obj, _, err in sources.iter_source(path, split=split):
        if err is None and isinstance(obj, dict):
            fmt = detect(obj)
            if fmt is not None:
                return fmt
            first = first or (f"{kind} {num}", obj)
            n += 1
            if n >= max_rows:
                break
    if first is None:
        return None
    raise ConvertError(f"{path}: cannot detect the input format from {describe_columns(first[1])} "
                       f"({first[0]}); pass --from (one of: {', '.join(f.name for f in formats())})")


def convert_file(input: str, output: str, to: Union[str, ConvertOptions, None] = None, src: Optional[str] = None, *,
                 show_progress: bool = False, **settings: Any) -> Report:
    """Convert ``input`` into ``output`` (JSONL, or a JSON array if it ends in ``.json``); see the module doc.
    ``to`` is a :class:`ConvertOptions`, or the target name with the other options as keyword arguments."""
    t0 = time.perf_counter()
    if Path(output).suffix.lower() in (".parquet", ".pq", ".arrow", ".csv", ".tsv"):
        raise ConfigError(f"{output}: convert writes JSONL (.jsonl) or a JSON array (.json), not {Path(output).suffix}")
    options = _options(to, src, settings)
    get_target(options.to)  # an unknown target fails before the input is read
    conv = RowConverter(options, None if options.src else sniff_format(input, options.split), output)
    target, fmt = conv.target, conv.fmt
    if target.needs_pool:
        conv.ctx.pool = conv.collect_pool(obj for _, obj, _, err in sources.iter_source(input, split=options.split)
                                          if err is None)
    default_rej = default_reject_path(output)
    reject_path = options.reject_path or default_rej
    if os.path.abspath(reject_path) == os.path.abspath(output) or os.path.abspath(input) in (
            os.path.abspath(output), os.path.abspath(reject_path)):
        raise ConfigError("input, output and reject file must be three different paths")
    report = Report(input=str(input), output=str(output), format=fmt.name if fmt else None, target=target.name)
    out = JsonlWriter(output)
    rej = RejectFile(reject_path, default=reject_path == default_rej)
    sink = _Sink(input, out, rej, report, options.strict)
    total, unit = sources.progress_total(input, options.split)
    try:
        with Progress(show_progress, total, unit, f"{fmt.name if fmt else '?'} -> {target.name}") as bar:
            if options.num_proc and options.num_proc > 1 and sources.input_kind(input) not in ("json", "coco"):
                _run_parallel(input, conv, sink, options.num_proc, options.split, bar)
            else:
                _run_serial(input, conv, sink, options.split, bar)
        report.reject_file = rej.finish()
        if report.rows_out:
            out.commit()
            report.written = True
        else:  # nothing converted: no empty output that a training run would read as a dataset
            out.abort()
    except BaseException:
        out.abort()
        rej.abort()
        raise
    report.format = report.format or (conv.fmt.name if conv.fmt else None)
    for k, v in conv.warnings.items():
        report.warnings[k] = report.warnings.get(k, 0) + v
    report.media_written += conv.media.written
    report.seconds = time.perf_counter() - t0
    assert report.balanced, report
    return report


# -- library API on in-memory rows ------------------------------------------------------------------
def convert_rows(rows: Iterable[Any], to: Union[str, ConvertOptions, None] = None, src: Optional[str] = None, *,
                 strict: bool = True, rejects: Optional[list] = None, **settings: Any) -> Iterator[Dict[str, Any]]:
    """Convert rows (dicts) lazily. ``strict=True`` raises ConvertError naming the row index; with
    ``strict=False`` each bad row is appended to ``rejects`` as ``(index, reason, row)``.

    >>> list(convert_rows([{"problem": "1+1?", "answer": "2"}], to="grpo"))
    [{'messages': [{'role': 'user', 'content': '1+1?'}], 'solution': '2'}]
    """
    conv = RowConverter(_options(to, src, settings))
    if conv.target.needs_pool:
        rows = list(rows)
        conv.ctx.pool = conv.collect_pool(rows)
    items = ((index, row, b"", None) for index, row in enumerate(rows))
    for index, row, _, out, reason in _outcomes(conv, items, None):
        if out is None:
            if strict:
                raise ConvertError(f"row {index}: {reason}")
            if rejects is not None:
                rejects.append((index, reason, row))
            continue
        yield from out


def print_summary(report: Report, console=None) -> None:
    """The human summary (stderr): rows in = converted + rejected, rows written, top reasons. Every text that
    comes from the data (paths, reasons, warnings) is escaped: ``[query, response]`` is printed, not eaten
    as rich markup."""
    from rich.console import Console
    from rich.markup import escape

    console = console or Console(stderr=True)
    console.print(f"[bold]{escape(report.input)}[/] ({escape(report.format or '?')}) -> "
                  f"[bold]{escape(report.output)}[/] ({escape(report.target)})")
    console.print(f"rows in {report.rows_in} = converted {report.rows_converted} + rejected {report.rows_rejected}; "
                  f"rows written {report.rows_out}; {report.seconds:.2f} s")
    if not report.written:
        console.print(f"[red]no row converted: {escape(report.output)} not written[/]")
    if report.rows_rejected:
        console.print(f"[yellow]rejected rows -> {escape(str(report.reject_file))}[/]")
        for reason, n in sorted(report.reasons.items(), key=lambda kv: -kv[1])[:10]:
            console.print(f"  {n:>8}  {escape(reason)}")
    for msg, n in sorted(report.warnings.items(), key=lambda kv: -kv[1])[:10]:
        console.print(f"[yellow]warning[/] ({n} rows): {escape(msg)}")
    if report.media_written:
        console.print(f"media files written: {report.media_written}")
