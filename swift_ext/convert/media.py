"""Media values: bytes / base64 images written to files (``--media-dir``), JSON-safe otherwise.

ms-swift accepts a path, URL, ``data:`` URI, raw base64 string or ``{"bytes", "path"}`` dict. JSON
cannot carry bytes, so without a media dir raw bytes become a base64 string (which ms-swift reads);
with a media dir, bytes, data URIs and long base64 strings become content-addressed files
(``<sha1>.<ext>``, written atomically, identical images stored once).

>>> MediaWriter(None).convert({"bytes": None, "path": "a.png"})
'a.png'
>>> MediaWriter(None).convert({"bytes": b"\\x89PNG\\r\\n\\x1a\\nxx", "path": None})
'iVBORw0KGgp4eA=='
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..errors import ConfigError
from ..io.media import classify, locate  # noqa: F401  (locate: the one confinement rule, re-exported)
from ..io import AtomicFile, JsonlWriter, iter_jsonl_rows, parse_json_line
from .rows import RowError

_MAGIC = ((b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpg"), (b"GIF8", "gif"), (b"BM", "bmp"),
          (b"RIFF", "webp"))


def sniff_ext(data: bytes) -> str:
    for magic, ext in _MAGIC:
        if data.startswith(magic):
            return ext
    if data[4:12] in (b"ftypmp42", b"ftypisom"):
        return "mp4"
    return "bin"


def decode_inline(value: str) -> Optional[bytes]:
    """Bytes of a ``data:`` URI or a base64 image string; None when ``value`` looks like a path/URL."""
    if value.startswith("data:"):
        _, _, payload = value.partition(",")
        try:
            return base64.b64decode(payload, validate=False)
        except (binascii.Error, ValueError):
            raise RowError("media: a data: URI with invalid base64") from None
    if classify(value) == "base64":
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None
    return None


class MediaWriter:
    """Turn each media value into something JSON can hold; write bytes to ``media_dir`` when given."""

    def __init__(self, media_dir: Optional[str]):
        self.media_dir = Path(media_dir) if media_dir else None
        if self.media_dir is not None:
            self.media_dir.mkdir(parents=True, exist_ok=True)
        self.written = 0

    def _write(self, data: bytes) -> str:
        name = f"{hashlib.sha1(data).hexdigest()}.{sniff_ext(data)}"
        target = self.media_dir / name
        if not target.exists():
            with AtomicFile(str(target), sweep=False) as f:  # no directory scan per image
                f.fh.write(data)
            self.written += 1
        return str(target.resolve())

    def convert(self, item: Any) -> Any:
        if isinstance(item, str):
            if self.media_dir is not None:
                data = decode_inline(item)
                if data is not None:
                    return self._write(data)
            return item
        if isinstance(item, (bytes, bytearray)):
            data = bytes(item)
        elif isinstance(item, dict):
            data = item.get("bytes")
            if data is None:
                path = item.get("path")
                if not isinstance(path, str) or not path:
                    raise RowError("media: an object with neither 'bytes' nor a 'path'")
                return self.convert(path)
            if isinstance(data, str):  # bytes that went through JSON as base64
                try:
                    data = base64.b64decode(data)
                except (binascii.Error, ValueError):
                    raise RowError("media: 'bytes' is a string that is not base64") from None
            if not isinstance(data, (bytes, bytearray)):
                raise RowError(f"media: 'bytes' must be bytes, got {type(data).__name__}")
            data = bytes(data)
        elif isinstance(item, list):  # a video given as a list of frames
            return [self.convert(x) for x in item]
        else:
            raise RowError(f"media: unsupported value of type {type(item).__name__}")
        if not data:
            raise RowError("media: empty bytes")
        if self.media_dir is not None:
            return self._write(data)
        return base64.b64encode(data).decode("ascii")

    def convert_list(self, items: List[Any]) -> List[Any]:
        return [self.convert(x) for x in items]


def needs_conversion(items: List[Any], media_dir: Optional[str]) -> bool:
    """Fast path: plain path strings need nothing unless a media dir may turn base64 strings into files."""
    if media_dir:
        return bool(items)
    for x in items:
        if not isinstance(x, str):
            return True
    return False


# -- media paths: where a path points, confinement to a root, rewriting ----------------------------------
MEDIA_KEYS = ("images", "videos", "audios", "rejected_images")
PATH_MODES = ("keep", "absolute", "relative")


def is_path(item: Any) -> bool:
    """Whether a media value is a file path (not a URL, ``data:`` URI or base64 image; however long:
    :func:`swift_ext.io.media.classify`)."""
    return isinstance(item, str) and bool(item) and classify(item) == "path"


class PathRewriter:
    """Media paths written as ``keep`` (as given), ``absolute`` (resolved against ``root`` or the working
    directory) or ``relative`` (to the folder of ``output``: set ``ROOT_IMAGE_DIR`` to that folder, or
    run from it). URLs, ``data:`` URIs and base64 stay as they are.

    >>> PathRewriter("relative", "/data/out/sft.jsonl", root="/data").rewrite("img/a.png")
    '../img/a.png'
    """

    def __init__(self, mode: str, output: str, root: Optional[str] = None):
        if mode not in PATH_MODES:
            raise ConfigError(f"--media-paths {mode!r}: choose one of {', '.join(PATH_MODES)}")
        self.mode, self.root = mode, root
        self.out_dir = os.path.dirname(os.path.abspath(output))

    def rewrite(self, item: Any) -> Any:
        if self.mode == "keep":
            return item
        if isinstance(item, list):  # a video as frames
            return [self.rewrite(x) for x in item]
        if isinstance(item, dict) and item.get("bytes") is None and isinstance(item.get("path"), str):
            return {**item, "path": self.rewrite(item["path"])}
        if not is_path(item):
            return item
        full = os.path.abspath(locate(item, self.root)[0])
        return full if self.mode == "absolute" else os.path.relpath(full, self.out_dir)

    def rewrite_row(self, row: Dict[str, Any]) -> Dict[str, Any]:
        """A copy of ``row`` with the media paths of its swift-format media columns rewritten."""
        if self.mode == "keep" or not any(row.get(k) for k in MEDIA_KEYS):
            return row
        row = dict(row)
        for key in MEDIA_KEYS:
            value = row.get(key)
            if isinstance(value, list):
                row[key] = [self.rewrite(x) for x in value]
            elif isinstance(value, (str, dict)):
                row[key] = self.rewrite(value)
        return row


def absolutize_media_file(dataset: str, folder: str) -> str:
    """Copy the dataset file ``dataset`` (JSONL, or a JSON array ``.json``; swift format) into ``folder`` with
    every relative media path made absolute, and return the copy's path (written atomically).

    A relative path resolves against the dataset file's folder first, then the working directory (where
    ``convert`` / ``validate`` resolved it): the first that exists; a path found in neither is a ConfigError
    naming the line. Use it before running a tool in another working directory (``swift`` in a run folder).
    """
    base = os.path.dirname(os.path.abspath(dataset))
    cwd = os.getcwd()

    def resolve(item: str, where: str) -> str:
        if os.path.isabs(item):
            return item
        for cand in (os.path.join(base, item), os.path.join(cwd, item)):
            if os.path.exists(cand):
                return os.path.normpath(cand)
        raise ConfigError(f"{where}: media file {item!r} not found next to the dataset ({base}) "
                          f"nor in the working directory ({cwd})")

    class _Resolver(PathRewriter):
        def __init__(self):
            super().__init__("absolute", os.path.join(folder, "x"))

        def rewrite(self, item: Any) -> Any:
            if isinstance(item, str) and is_path(item):
                return resolve(item, self.where)
            return super().rewrite(item)

    rw = _Resolver()
    out = os.path.join(folder, os.path.basename(dataset))
    if os.path.abspath(out) == os.path.abspath(dataset):
        raise ConfigError(f"{dataset}: the copy would overwrite the dataset; pass another folder")
    if dataset.endswith(".json"):
        with open(dataset, "rb") as fh:
            rows, err = parse_json_line(fh.read())
        if err is not None or not isinstance(rows, list):
            raise ConfigError(f"{dataset}: not a JSON array of rows ({err or type(rows).__name__})")
        items = ((i, row, None) for i, row in enumerate(rows))
        kind = "row"
    else:
        items = ((n, obj, err) for n, obj, _, err in iter_jsonl_rows(dataset))
        kind = "line"
    with JsonlWriter(out) as w:
        for num, obj, err in items:
            where = f"{dataset}:{num}" if kind == "line" else f"{dataset} row {num}"
            if err is not None or not isinstance(obj, dict):
                raise ConfigError(f"{where}: {err or 'a row must be a JSON object'}")
            rw.where = where
            w.write(rw.rewrite_row(obj))
    return out
