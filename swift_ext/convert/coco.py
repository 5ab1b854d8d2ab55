"""COCO and RefCOCO annotation files as ms-swift grounding rows (``messages`` + ``images`` + ``objects``).

An annotation file is one JSON object, not a row per line; :func:`iter_coco` turns it into rows that the
one convert loop then reads as ``swift`` rows, so every target applies (``sft`` keeps the grounding row as
ms-swift trains on it; ``grpo`` turns the answer's boxes into the ``solution`` the ``map`` / ``iou`` rewards
read, see :mod:`.objects`). Three shapes are recognised:

- COCO instances (``images``, ``annotations``, ``categories``): one detection row per image, the categories
  present listed in the prompt and every box in the answer (``<ref-object><bbox>`` per box, as ms-swift's own
  COCO preprocessor writes it), crowd regions flagged in ``objects.iscrowd``;
- RefCOCO / RefCOCO+ / RefCOCOg in the refer toolkit's form (a ``refs`` list beside ``images`` and
  ``annotations``: ``ref_id``, ``ann_id``, ``image_id``, ``split``, ``sentences[].sent``): one row per referring
  expression (``<image>Find <ref-object>`` -> ``<bbox>``, ms-swift's RefCOCO grounding row); ``--split``
  keeps one split;
- referring expressions in MDETR / GLIP form (``images`` entries carrying a ``caption``, their boxes in
  ``annotations``): one row per image entry.

Boxes go from COCO's ``[x, y, width, height]`` to ms-swift's ``[x1, y1, x2, y2]`` in pixels (``bbox_type``
real); each row also gets the image's ``width`` / ``height`` columns (the rewards' frame conversion reads
them instead of opening the image). Image paths are the files' ``file_name``: pass ``--root`` to resolve them.

>>> data = {"images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}],
...         "annotations": [{"id": 7, "image_id": 1, "category_id": 3, "bbox": [1, 2, 10, 20], "iscrowd": 0}],
...         "categories": [{"id": 3, "name": "cat"}]}
>>> [row for _, row, _, _ in coco_rows(data)][0]["objects"]
{'ref': ['cat'], 'bbox': [[1, 2, 11, 22]], 'bbox_type': 'real'}
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

from ..errors import ConfigError

_HEAD = 1 << 20
_COCO_KEYS = re.compile(rb'"(?:annotations|refs)"\s*:\s*\[')

DETECT_PROMPT = "<image>Detect every object of these categories in the image: {categories}."
REFER_PROMPT = "<image>Find <ref-object>"


def looks_like_coco(path: str) -> bool:
    """Whether a ``.json`` file that opens with ``{`` is an annotation file rather than JSON lines: its first
    line is not a complete row by itself (a pretty-printed document), or it is one holding COCO's ``images``
    and ``annotations`` lists (or the head of a huge one-line file shows an ``annotations`` / ``refs`` list)."""
    with open(path, "rb") as fh:
        head = fh.read(_HEAD)
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    line, newline, _ = head.lstrip().partition(b"\n")
    if not newline and len(head) == _HEAD:                 # one line longer than the head
        return bool(_COCO_KEYS.search(head)) and b'"messages"' not in head
    try:
        obj = json.loads(line)
    except ValueError:
        return True                                         # a document over several lines, not JSON lines
    return isinstance(obj, dict) and isinstance(obj.get("images"), list) and \
        (isinstance(obj.get("annotations"), list) or isinstance(obj.get("refs"), list))


def _box(bbox: Any) -> Optional[List[float]]:
    """COCO ``[x, y, w, h]`` as ``[x1, y1, x2, y2]`` (integers stay integers); None when malformed or empty."""
    if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4 and
            all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in bbox)):
        return None
    x, y, w, h = bbox
    if w <= 0 or h <= 0:
        return None
    return [x, y, x + w, y + h]


def _image_row(img: Dict[str, Any]) -> Dict[str, Any]:
    row: Dict[str, Any] = {"images": [img.get("file_name") or img.get("coco_url")]}
    for key in ("width", "height"):
        if isinstance(img.get(key), (int, float)) and not isinstance(img.get(key), bool):
            row[key] = img[key]
    return row


def coco_rows(data: Dict[str, Any], split: Optional[str] = None) -> Iterator[tuple]:
    """``(index, row, b"", error)`` items (as :mod:`.sources` yields them) for an annotation file's object."""
    images = {img.get("id"): img for img in data.get("images") or [] if isinstance(img, dict)}
    anns_by_id: Dict[Any, Dict[str, Any]] = {}
    by_image: Dict[Any, List[Dict[str, Any]]] = {}
    for ann in data.get("annotations") or []:
        if isinstance(ann, dict):
            anns_by_id[ann.get("id")] = ann
            by_image.setdefault(ann.get("image_id"), []).append(ann)
    if isinstance(data.get("refs"), list):
        yield from _refer_rows(data["refs"], images, anns_by_id, split)
    elif any(isinstance(img.get("caption"), str) for img in images.values()):
        yield from _caption_rows(images, by_image)
    else:
        cats = {c.get("id"): c.get("name") for c in data.get("categories") or [] if isinstance(c, dict)}
        yield from _detection_rows(images, by_image, cats)


def _detection_rows(images, by_image, cats) -> Iterator[tuple]:
    for i, (image_id, img) in enumerate(images.items()):
        anns = by_image.get(image_id, [])
        refs, boxes, crowd, bad = [], [], [], None
        for ann in anns:
            box, name = _box(ann.get("bbox")), cats.get(ann.get("category_id"))
            if box is None or not isinstance(name, str):
                bad = bad or (f"annotation {ann.get('id')!r}: " + ("bbox is not a positive [x, y, w, h]" if box is None
                                                                   else f"unknown category {ann.get('category_id')!r}"))
                continue
            refs.append(name)
            boxes.append(box)
            crowd.append(int(bool(ann.get("iscrowd"))))
        if not boxes:
            yield i, None, b"", bad or f"image {image_id!r} has no annotated box"
            continue
        names = list(dict.fromkeys(refs))
        row = {"messages": [{"role": "user", "content": DETECT_PROMPT.format(categories=", ".join(names))},
                            {"role": "assistant", "content": "\n".join(["<ref-object><bbox>"] * len(boxes))}],
               **_image_row(img), "objects": {"ref": refs, "bbox": boxes, "bbox_type": "real"}}
        if any(crowd):
            row["objects"]["iscrowd"] = crowd
        yield i, row, b"", None


def _refer_row(img: Dict[str, Any], sentence: str, boxes: List[List[float]]) -> Dict[str, Any]:
    return {"messages": [{"role": "user", "content": REFER_PROMPT},
                         {"role": "assistant", "content": "".join(["<bbox>"] * len(boxes))}],
            **_image_row(img), "objects": {"ref": [sentence], "bbox": boxes, "bbox_type": "real"}}


def _refer_rows(refs, images, anns_by_id, split) -> Iterator[tuple]:
    i = 0
    for ref in refs:
        if not isinstance(ref, dict) or (split is not None and ref.get("split") != split):
            continue
        sentences = [s.get("sent") if isinstance(s, dict) else s for s in ref.get("sentences") or []]
        sentences = [s for s in sentences if isinstance(s, str) and s.strip()]
        ann = anns_by_id.get(ref.get("ann_id"))
        img = images.get(ref.get("image_id"))
        box = _box(ann.get("bbox")) if isinstance(ann, dict) else None
        problem = ("no sentences" if not sentences else f"unknown image {ref.get('image_id')!r}" if img is None
                   else f"annotation {ref.get('ann_id')!r} missing or without a positive box" if box is None else None)
        for sentence in sentences or [None]:
            if problem:
                yield i, None, b"", f"ref {ref.get('ref_id')!r}: {problem}"
            else:
                yield i, _refer_row(img, sentence, [box]), b"", None
            i += 1


def _caption_rows(images, by_image) -> Iterator[tuple]:
    for i, (image_id, img) in enumerate(images.items()):
        caption = img.get("caption")
        boxes = [b for b in (_box(a.get("bbox")) for a in by_image.get(image_id, [])) if b is not None]
        if not isinstance(caption, str) or not caption.strip():
            yield i, None, b"", f"image {image_id!r} has no caption"
        elif not boxes:
            yield i, None, b"", f"image {image_id!r} has no annotated box"
        else:
            yield i, _refer_row(img, caption, boxes), b"", None


def iter_coco(path: str, on_bytes=None, split: Optional[str] = None) -> Iterator[tuple]:
    """The rows of a COCO / RefCOCO annotation file (see the module docstring)."""
    data_bytes = Path(path).read_bytes()
    try:
        data = json.loads(data_bytes)
    except ValueError as exc:
        raise ConfigError(f"{path}: not a JSON document ({exc})") from None
    if on_bytes is not None:
        on_bytes(len(data_bytes))
    del data_bytes
    if not (isinstance(data, dict) and isinstance(data.get("images"), list)):
        raise ConfigError(f"{path}: a JSON object that is not a COCO / RefCOCO annotation file (no 'images' list); "
                          f"convert reads rows from JSONL, a JSON array, Parquet, or such a file")
    return coco_rows(data, split)
