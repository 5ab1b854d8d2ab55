"""The one media-path check: what a dataset row may name as an image, video or audio file.

Every command that opens a media path a row names (``convert``, ``validate``, the judge, ``filter``,
``report``) asks :func:`check_path` first, and reads through :func:`read_media`. A row is hostile input: it may
name ``/proc/self/environ`` (the process's secrets), ``/dev/zero`` (endless), a FIFO (blocks forever), a file
outside the dataset's ``--root``, or a string built to look like something else (a 2,000-character path, a
path whose first characters decode as base64 of an image). The rules, with no shortcut around them:

* a value is inline data only when it *is* data: an ``http(s)://`` or ``data:`` URL, or a string that decodes
  *whole* as base64 to a known image/video header and is not an existing path (:func:`classify`); anything
  else is a path and is checked, however long;
* a path has no NUL byte and is not longer than the system allows;
* with a root, it resolves (``..`` and every symlink followed) inside the resolved root;
* it names a regular file (not a device, FIFO, socket or directory; ``/proc`` files are refused too);
* it is at most ``max_bytes`` long (:data:`MAX_MEDIA_BYTES` by default);
* an image starts with a known image header (PNG, JPEG, GIF, WebP, BMP, TIFF, ICO).

:func:`read_media` re-checks the opened file descriptor (``fstat``), opens without blocking (a FIFO swapped
in after the check does not hang) and never reads past the cap.

>>> classify("https://x.org/a.png"), classify("data:image/png;base64,AAAA"), classify("a/b.png")
('url', 'url', 'path')
>>> classify("iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB")
'base64'
>>> classify("iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB/outside/secret.png")
'path'
"""

from __future__ import annotations

import base64
import binascii
import errno
import os
import stat
from typing import Any, Optional, Tuple

from ..errors import SwiftExtError

#: the largest media file any command reads (bytes); a longer one is refused
MAX_MEDIA_BYTES = 64 * 1024 * 1024
MEDIA_KINDS = ("image", "video", "audio")
#: the swift-format columns holding media, and the kind of media each holds
MEDIA_COLUMNS = {"images": "image", "rejected_images": "image", "videos": "video", "audios": "audio"}

IMAGE_MAGIC = ((b"\x89PNG", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"),
               (b"BM", "image/bmp"), (b"II*\x00", "image/tiff"), (b"MM\x00*", "image/tiff"),
               (b"\x00\x00\x01\x00", "image/x-icon"))
_PATH_MAX = 4096


class MediaError(SwiftExtError, ValueError):
    """A media value a command refuses to open; ``code`` names the rule (``media_outside``, ``media_missing``,
    ``media_not_file``, ``media_too_large``, ``media_not_image``, ``media_invalid``)."""

    def __init__(self, message: str, code: str = "media_invalid"):
        super().__init__(message)
        self.code = code


def image_mime(data: bytes) -> Optional[str]:
    """The MIME type of image bytes from their header, or None when they are not a known image.

    >>> image_mime(b"\\x89PNG\\r\\n\\x1a\\n"), image_mime(b"RIFF\\x00\\x00\\x00\\x00WEBPVP8 "), image_mime(b"root:x")
    ('image/png', 'image/webp', None)
    """
    for magic, mime in IMAGE_MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _video_head(data: bytes) -> bool:
    return data[4:8] == b"ftyp" or data.startswith(b"\x1a\x45\xdf\xa3") or (data[:4] == b"RIFF" and
                                                                           data[8:11] == b"AVI")


def classify(value: Any) -> str:
    """``"url"`` (http(s) / ``data:``), ``"base64"`` (the whole string decodes to an image or video header and
    is not an existing path), ``"path"`` for any other string, ``"other"`` for a non-string."""
    if not isinstance(value, str):
        return "other"
    if value.startswith(("http://", "https://", "data:")):
        return "url"
    if len(value) >= 16 and len(value) % 4 == 0 and "\x00" not in value:
        try:
            head = base64.b64decode(value[:64], validate=True)
            # a prefix is not enough: the whole value must be base64 (a path after an image-like prefix is a path)
            whole = head and (image_mime(head) or _video_head(head)) and base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            whole = None
        if whole:
            try:
                exists = len(value) <= _PATH_MAX and os.path.lexists(value)
            except (OSError, ValueError):
                exists = False
            if not exists:
                return "base64"
    return "path"


def locate(item: str, root: Optional[str] = None, confine: bool = False) -> Tuple[str, Optional[str]]:
    """``(path to open, None)``, or ``(path, reason)`` when ``confine`` and the path leaves ``root``.

    Relative paths resolve against ``root`` (the working directory without one). With ``confine`` the path
    is resolved (``..`` and every symlink followed) and must lie inside the resolved ``root``; the reason
    names the path as written and never says whether a file exists there.

    >>> locate("a/b.png", "/data")
    ('/data/a/b.png', None)
    >>> locate("../etc/passwd", "/data", confine=True)[1]
    "'../etc/passwd' is outside --root (resolved, symlinks followed)"
    """
    full = item if os.path.isabs(item) or not root else os.path.join(root, item)
    if confine and root:
        real_root = os.path.realpath(root)
        real = os.path.realpath(full)
        if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
            return full, f"{_show(item)} is outside --root (resolved, symlinks followed)"
    return full, None


def _show(item: str) -> str:
    return repr(item if len(item) <= 200 else item[:100] + "..." + item[-60:])


def _check_name(item: str) -> None:
    if "\x00" in item:
        raise MediaError(f"{_show(item)}: a path with a NUL byte", "media_invalid")
    if len(item) > _PATH_MAX:
        raise MediaError(f"{_show(item)}: a path of {len(item)} characters (longer than any file name the system "
                         f"accepts)", "media_invalid")


def _check_stat(st: os.stat_result, full: str, item: str, max_bytes: int) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise MediaError(f"{_show(item)} is not a regular file", "media_not_file")
    if st.st_size > max_bytes:
        raise MediaError(f"{_show(item)} is {st.st_size} bytes, over the {max_bytes}-byte media limit",
                         "media_too_large")
    real = os.path.realpath(full)
    if real == "/proc" or real.startswith(("/proc/", "/sys/", "/dev/")):
        raise MediaError(f"{_show(item)} is a kernel file, not media", "media_not_file")


def check_path(item: str, *, root: Optional[str] = None, confine: bool = False, kind: Optional[str] = "image",
               max_bytes: int = MAX_MEDIA_BYTES, magic: bool = True) -> str:
    """The path to open for the media path ``item`` after every rule above (``kind``: image, video, audio, or
    None for any; ``magic=False`` skips the image header check, e.g. when a cached lookup only needs
    existence); raises :class:`MediaError` with the rule broken. Relative paths resolve against ``root``."""
    if not isinstance(item, str) or not item:
        raise MediaError("a media path must be a non-empty string", "media_invalid")
    _check_name(item)
    full, outside = locate(item, root, confine)
    if outside:
        raise MediaError(outside, "media_outside")
    try:
        st = os.stat(full)
    except FileNotFoundError:
        raise MediaError(f"file not found: {_show(full)}", "media_missing") from None
    except OSError as exc:
        code = "media_missing" if exc.errno in (errno.ENOTDIR, errno.ENAMETOOLONG, errno.ELOOP) else "media_invalid"
        raise MediaError(f"{_show(item)}: {exc.strerror or exc}", code) from None
    _check_stat(st, full, item, max_bytes)
    if magic and kind == "image":
        _read(full, item, max_bytes, head=16, kind=kind)
    return full


def _read(full: str, item: str, max_bytes: int, head: Optional[int], kind: Optional[str]) -> bytes:
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(full, flags)
    except OSError as exc:
        raise MediaError(f"{_show(item)}: {exc.strerror or exc}", "media_missing") from None
    try:
        _check_stat(os.fstat(fd), full, item, max_bytes)     # what was opened, not what was checked
        want = head if head is not None else max_bytes + 1
        chunks, got = [], 0
        while got < want:
            chunk = os.read(fd, min(1 << 20, want - got))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if head is None and len(data) > max_bytes:
        raise MediaError(f"{_show(item)} grew past the {max_bytes}-byte media limit", "media_too_large")
    if kind == "image" and image_mime(data[:16]) is None:
        raise MediaError(f"{_show(item)} is not an image (no PNG, JPEG, GIF, WebP, BMP, TIFF or ICO header)",
                         "media_not_image")
    return data


def check_value(item: Any, *, kind: Optional[str] = "image", root: Optional[str] = None, confine: bool = False,
                max_bytes: int = MAX_MEDIA_BYTES) -> None:
    """Check one media value of a row as ms-swift accepts it (a path, URL, base64 string, ``{"bytes", "path"}``
    dict, or a video's list of frames): paths go through :func:`check_path`; raises :class:`MediaError`."""
    if isinstance(item, list) and kind == "video":
        for x in item:
            check_value(x, kind="image", root=root, confine=confine, max_bytes=max_bytes)
        return
    if isinstance(item, dict):
        data = item.get("bytes")
        if isinstance(data, (bytes, bytearray, str)) and data:
            return
        if data is not None or not isinstance(item.get("path"), str):
            raise MediaError("an object needs bytes or a string path", "media_invalid")
        item = item["path"]
    if isinstance(item, (bytes, bytearray)) and item:
        return
    if not isinstance(item, str):
        raise MediaError(f"a media value of type {type(item).__name__}", "media_invalid")
    if classify(item) == "path":
        check_path(item[7:] if item.startswith("file://") else item, root=root, confine=confine, kind=kind,
                   max_bytes=max_bytes)


def read_media(item: str, *, root: Optional[str] = None, confine: bool = False, kind: Optional[str] = "image",
               max_bytes: int = MAX_MEDIA_BYTES) -> bytes:
    """The bytes of the media file ``item`` names, after :func:`check_path`'s rules (applied again to the open
    file); raises :class:`MediaError`."""
    full = check_path(item, root=root, confine=confine, kind=kind, max_bytes=max_bytes, magic=False)
    return _read(full, item, max_bytes, head=None, kind=kind)


__all__ = ["MAX_MEDIA_BYTES", "MEDIA_KINDS", "MEDIA_COLUMNS", "IMAGE_MAGIC", "MediaError", "image_mime", "classify",
           "locate", "check_path", "check_value", "read_media"]
