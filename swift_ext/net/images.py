"""The one image -> ``image_url`` encoder for requests to OpenAI-compatible endpoints (the judge, filter).

A path is read through :func:`swift_ext.io.media.read_media` (a regular image file within the size cap:
never ``/proc/self/environ``, ``/etc/passwd``, ``/dev/zero`` or a FIFO); bytes must carry an image header;
``http(s)://`` and ``data:image/`` URLs pass as they are; a bare base64 image string becomes a data URL.

>>> image_url("https://x.org/a.png"), image_url({"bytes": b"\\x89PNG...", "path": None})[:22]
('https://x.org/a.png', 'data:image/png;base64,')
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Optional

from ..io.media import MAX_MEDIA_BYTES, MediaError, classify, image_mime, read_media


def data_url(data: bytes) -> str:
    """Image bytes as a ``data:`` URL (the MIME type from their header); MediaError when they are no image."""
    mime = image_mime(bytes(data[:16]))
    if mime is None:
        raise MediaError("bytes that are not an image (no known image header)", "media_not_image")
    return f"data:{mime};base64,{base64.b64encode(bytes(data)).decode('ascii')}"


def image_url(item: Any, *, root: Optional[str] = None, confine: bool = False,
              max_bytes: int = MAX_MEDIA_BYTES) -> Optional[str]:
    """An image as an OpenAI ``image_url`` URL: a data URL for a path, bytes or base64 (ms-swift's
    ``{"bytes", "path"}`` dicts included), http(s) and ``data:image/`` URLs as they are; None for an empty
    value. Raises :class:`~swift_ext.io.media.MediaError` for anything the media check refuses (relative
    paths resolve against ``root``; ``confine`` keeps them inside it)."""
    if isinstance(item, dict):
        if item.get("bytes"):
            return image_url(item["bytes"], root=root, confine=confine, max_bytes=max_bytes)
        return image_url(item.get("path") or item.get("url") or item.get("image"), root=root, confine=confine,
                         max_bytes=max_bytes)
    if isinstance(item, (bytes, bytearray)):
        if len(item) > max_bytes:
            raise MediaError(f"an image of {len(item)} bytes, over the {max_bytes}-byte media limit",
                             "media_too_large")
        return data_url(bytes(item))
    if item is None or item == "":
        return None
    if not isinstance(item, str):
        raise MediaError(f"an image value of type {type(item).__name__}", "media_invalid")
    kind = classify(item)
    if kind == "url":
        if item.startswith("data:") and not item.startswith("data:image/"):
            raise MediaError("a data: URL that is not an image", "media_not_image")
        return item
    if kind == "base64":
        try:
            return data_url(base64.b64decode(item, validate=True))
        except (binascii.Error, ValueError):
            raise MediaError("a base64 string that does not decode", "media_invalid") from None
    path = item[7:] if item.startswith("file://") else item
    return data_url(read_media(path, root=root, confine=confine, kind="image", max_bytes=max_bytes))


__all__ = ["data_url", "image_url"]
