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
import tempfile
from pathlib import Path
from typing import Any, List, Optional

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
    if looks_base64(value) and not os.path.exists(value):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None
    return None


def looks_base64(value: str) -> bool:
    """True for a string that decodes as base64 to a known image/video header (what ms-swift accepts)."""
    if len(value) < 16 or len(value) % 4:
        return False
    try:
        head = base64.b64decode(value[:64], validate=True)
    except (binascii.Error, ValueError):
        return False
    return sniff_ext(head) != "bin"


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
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=str(self.media_dir))
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, target)
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
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
