"""ms-swift grounding rows: the ``objects`` column and its ``<ref-object>`` / ``<bbox>`` placeholders.

ms-swift's grounding format (``swift/template/base.py``, ``swift/dataset/preprocessor/core.py``)::

    {"messages": [{"role": "user", "content": "<image>Find <ref-object>"},
                  {"role": "assistant", "content": "<bbox>"}],
     "images": ["cat.jpg"],
     "objects": {"ref": ["the black cat"], "bbox": [[12, 30, 200, 180]], "bbox_type": "real"}}

The template replaces the i-th ``<ref-object>`` of the conversation with ``ref[i]`` and the i-th ``<bbox>``
with ``bbox[i]`` written in the model's own frame (Qwen2-VL 0-1000 tokens, Qwen2.5-VL pixels, ...);
``bbox_type`` says the boxes' frame (``real``: pixels of the image, the default; ``norm1``: 0-1), ``image_id``
which image each box belongs to. ms-swift swaps inverted coordinates and drops unknown keys.

For GRPO the answer turn goes, so its placeholders must become the gold: :func:`grpo_objects` splits the
objects at the end of the prompt. The prompt keeps its placeholders and the objects they use (the
template still renders them for the model); the answer's boxes become the ``solution`` as an objects dict
(``{"ref", "bbox", "bbox_type"}`` JSON, which the grounding and detection rewards read, frame included),
or, when the answer names objects without boxes (a region caption), the answer's text with the refs in.
"""

from __future__ import annotations

import json
import math
from typing import Any, Dict, List, Optional, Tuple

from .rows import RowError

OBJECTS = "objects"
REF, BBOX = "<ref-object>", "<bbox>"
BBOX_TYPES = ("real", "norm1")
_KEYS = ("ref", "bbox", "bbox_type", "image_id", "iscrowd")


def _count(messages: List[Dict[str, Any]], tag: str) -> int:
    return sum(m["content"].count(tag) for m in messages if isinstance(m.get("content"), str))


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def read_objects(value: Any) -> Dict[str, Any]:
    """An ``objects`` value checked as ms-swift reads it: a dict (or its JSON text) with a ``bbox`` list of
    ``[x, y]`` points or ``[x1, y1, x2, y2]`` boxes (inverted coordinates swapped, as ms-swift does), an
    optional ``ref`` list of strings, ``bbox_type`` real / norm1, ``image_id`` and ``iscrowd`` lists.
    A RowError says what is wrong (ms-swift would drop the row or fail on it)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise RowError("'objects' is a string that is not JSON") from None
    if not isinstance(value, dict):
        raise RowError(f"'objects' must be an object {{ref, bbox, bbox_type}}, got {type(value).__name__}")
    bbox = value.get("bbox")
    if not isinstance(bbox, list):
        raise RowError("'objects' has no 'bbox' list")
    boxes = []
    for i, b in enumerate(bbox):
        if not (isinstance(b, (list, tuple)) and len(b) in (2, 4) and all(map(_number, b))):
            raise RowError(f"objects.bbox[{i}] must be [x, y] or [x1, y1, x2, y2] of finite numbers, got {b!r}")
        b = list(b)
        if len(b) == 4:
            if b[0] > b[2]:
                b[0], b[2] = b[2], b[0]
            if b[1] > b[3]:
                b[1], b[3] = b[3], b[1]
        boxes.append(b)
    refs = value.get("ref")
    if refs is None:
        refs = []
    if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
        raise RowError("objects.ref must be a list of strings")
    bbox_type = value.get("bbox_type") or "real"
    if bbox_type not in BBOX_TYPES:
        raise RowError(f"objects.bbox_type {bbox_type!r}: ms-swift knows real (pixels) and norm1")
    out: Dict[str, Any] = {"ref": refs, "bbox": boxes, "bbox_type": bbox_type}
    for key in ("image_id", "iscrowd"):
        v = value.get(key)
        if v is not None:
            if not isinstance(v, list) or not all(isinstance(x, (int, bool)) for x in v):
                raise RowError(f"objects.{key} must be a list of integers")
            out[key] = v
    return out


def object_checks(messages: List[Dict[str, Any]], value: Any) -> List[Tuple[str, str, str]]:
    """The ``objects`` rule of ``validate`` / ``convert``: a malformed value, or more placeholders than refs /
    boxes (ms-swift leaves the extra ones as literal text) is an error; fewer is a warning."""
    try:
        obj = read_objects(value)
    except RowError as exc:
        return [("objects", "error", exc.reason)]
    out = []
    for tag, key in ((REF, "ref"), (BBOX, "bbox")):
        n, have = _count(messages, tag), len(obj[key])
        if n > have:
            out.append(("objects", "error", f"{n} {tag} placeholder(s) but {have} objects.{key} (ms-swift would "
                        f"leave the rest as text)"))
        elif n < have:
            out.append(("objects_unused", "warning", f"{have} objects.{key} but {n} {tag} placeholder(s)"))
    return out


def _fill(text: str, refs: List[str]) -> str:
    """``text`` with its ``<ref-object>`` placeholders replaced by ``refs`` in order."""
    parts = text.split(REF)
    out = [parts[0]]
    for i, part in enumerate(parts[1:]):
        out.append(refs[i] if i < len(refs) else REF)
        out.append(part)
    return "".join(out)


def grpo_objects(messages: List[Dict[str, Any]], value: Any) -> Tuple[Optional[str], Optional[Dict[str, Any]]]:
    """``(solution, prompt_objects)`` of a grounding row whose final turn is the answer.

    ``solution``: the answer's boxes as the JSON of an objects dict ``{"ref": [label per box], "bbox", "bbox_type"}``
    (+ ``iscrowd``), each box labelled by the answer's ref with the same index when the answer has as many refs
    as boxes, by the answer's one ref when it has one, by the prompt's one ref when the answer has none and
    the prompt one (``Find <ref-object>`` -> ``<bbox>``), else without a label; the answer's text with its refs
    filled in when it has refs but no box (a region caption); None when the answer has no placeholder (the
    row's answer is the gold as usual). ``prompt_objects``: the refs and boxes the prompt's placeholders use,
    None when it has none. A RowError for an answer box that is a point, or a box on an image other than the
    first (the rewards measure against the first image's size).

    >>> msgs = [{"role": "user", "content": "<image>Find <ref-object>"}, {"role": "assistant", "content": "<bbox>"}]
    >>> grpo_objects(msgs, {"ref": ["the cat"], "bbox": [[30, 40, 10, 20]]})
    ('{"ref": ["the cat"], "bbox": [[10, 20, 30, 40]], "bbox_type": "real"}', {'ref': ['the cat'], 'bbox': [], 'bbox_type': 'real'})
    """
    obj = read_objects(value)
    if not messages or messages[-1]["role"] != "assistant":
        prompt, answer = messages, ""
    else:
        prompt, answer = messages[:-1], messages[-1]["content"]
    n_ref, n_box = _count(prompt, REF), _count(prompt, BBOX)
    refs, boxes = obj["ref"], obj["bbox"]
    if n_ref > len(refs) or n_box > len(boxes):
        raise RowError(f"the prompt has more placeholders than objects ({n_ref} {REF} for {len(refs)} refs, "
                       f"{n_box} {BBOX} for {len(boxes)} boxes)")
    prompt_obj: Optional[Dict[str, Any]] = None
    if n_ref or n_box:
        prompt_obj = {"ref": refs[:n_ref], "bbox": boxes[:n_box], "bbox_type": obj["bbox_type"]}
        if "image_id" in obj:
            prompt_obj["image_id"] = obj["image_id"][:n_box]
    a_ref, a_box = answer.count(REF), answer.count(BBOX)
    ans_refs = refs[n_ref:n_ref + a_ref]
    if a_ref > len(ans_refs) or a_box > len(boxes) - n_box:
        raise RowError(f"the answer has more placeholders than objects left after the prompt's "
                       f"({a_ref} {REF}, {a_box} {BBOX})")
    if not a_box:
        return (_fill(answer, ans_refs) if a_ref else None), prompt_obj
    span = range(n_box, n_box + a_box)
    gold_boxes = [boxes[i] for i in span]
    for i, b in zip(span, gold_boxes):
        if len(b) != 4:
            raise RowError(f"objects.bbox[{i}] in the answer is a point [x, y]: the box rewards need boxes")
    image_ids = obj.get("image_id") or []
    if any(i < len(image_ids) and image_ids[i] != 0 for i in span):
        raise RowError("an answer box lies on an image other than the first (objects.image_id): the box rewards "
                       "measure against the first image")
    if len(ans_refs) == a_box:
        labels: List[Optional[str]] = list(ans_refs)
    elif len(ans_refs) == 1:
        labels = ans_refs * a_box
    elif not ans_refs and n_ref == 1:
        labels = refs[:1] * a_box
    else:
        labels = [None] * a_box
    gold: Dict[str, Any] = {"ref": labels, "bbox": gold_boxes, "bbox_type": obj["bbox_type"]}
    crowd = obj.get("iscrowd")
    if crowd and any(crowd[i] for i in span if i < len(crowd)):
        gold["iscrowd"] = [int(bool(crowd[i])) if i < len(crowd) else 0 for i in span]
    return json.dumps(gold, ensure_ascii=False), prompt_obj
