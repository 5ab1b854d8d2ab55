"""Boxes and points: parse what Qwen-VL models emit, find the image size, convert coordinate frames.

Qwen-VL models answer grounding questions in three shapes, all understood here:

- JSON objects (Qwen2.5-VL / Qwen3-VL cookbook): ``[{"bbox_2d": [x1, y1, x2, y2], "label": "cat"}]``,
  fenced or bare, also cut off mid-list or with single quotes;
- Qwen2-VL box tokens: ``<|object_ref_start|>cat<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)<|box_end|>``
  (the same pairs without the special tokens when they were skipped on decoding);
- bare lists ``[x1, y1, x2, y2]``.

And each model has its own coordinate frame:

============  =====================================================================================
frame         meaning
============  =====================================================================================
norm1000      0-1000 relative to the image (Qwen2-VL, Qwen3-VL); aliases ``qwen2_vl``, ``qwen3_vl``
resized       absolute pixels of the image *after* the model's smart resize (Qwen2.5-VL);
              alias ``qwen2_5_vl``
pixels        absolute pixels of the original image (most detection datasets)
norm1         0-1 relative to the image
============  =====================================================================================

Every box is converted to the unit square (``norm1``) before comparing. IoU, GIoU and point-in-box
do not change under a per-axis scaling, so comparing in the unit square gives the same numbers as
comparing in either side's pixels.

Nothing here raises on bad input: parsers return ``[]`` and converters ``None``.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..extract import answer_tag, strip_think

Box = Tuple[float, float, float, float]
Point = Tuple[float, float]
Labeled = Tuple[Box, Optional[str]]
#: a predicted box with its label and confidence (``score`` / ``confidence`` key of a JSON object, else None)
Detection = Tuple[Box, Optional[str], Optional[float]]
#: a reference box with its label and whether it is a crowd region (COCO ``iscrowd``)
GoldObject = Tuple[Box, Optional[str], bool]

FRAMES = ("norm1000", "resized", "pixels", "norm1", "qwen2_vl", "qwen2_5_vl", "qwen3_vl")
GOLD_FRAMES = FRAMES + ("same",)
FRAME_ALIASES = {"qwen2_vl": "norm1000", "qwen3_vl": "norm1000", "qwen2_5_vl": "resized"}

#: qwen-vl-utils defaults: 14-pixel patches merged 2x2 -> factor 28; 4 .. 16384 merged patches
DEFAULT_FACTOR = 28
DEFAULT_MIN_TOKENS = 4
DEFAULT_MAX_TOKENS = 16384
MAX_RATIO = 200
HARD_CAP = 10_000  # boxes parsed from one completion at most (the rest are counted, not kept)

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_SEP = r"\s*,\s*"
_LIST4 = re.compile(r"\[\s*(" + _NUM + ")" + _SEP + "(" + _NUM + ")" + _SEP + "(" + _NUM + ")" + _SEP
                    + "(" + _NUM + r")\s*\]")
_PAIRS = re.compile(r"\(\s*(" + _NUM + ")" + _SEP + "(" + _NUM + r")\s*\)\s*,?\s*\(\s*(" + _NUM + ")" + _SEP
                    + "(" + _NUM + r")\s*\)")
_BOX_TOKEN = re.compile(r"(?:<\|object_ref_start\|>(?P<label>[^<>]{0,500})<\|object_ref_end\|>\s*)?<\|box_start\|>"
                        r"(?P<body>[^<>]{0,500})<\|box_end\|>")  # bounded spans: linear on "<|box_start|>"*n
_WINDOW = 2000  # characters searched around a bbox key for its object's braces and label
_BBOX_KEY = re.compile(r"""["'](?:bbox_2d|bbox|box|Position|position)["']\s*:\s*""")
_LABEL_KEY = re.compile(r"""["'](?:label|ref|name|category)["']\s*:\s*["']([^"']*)["']""")
_SCORE_KEY = re.compile(r"""["'](?:score|confidence|conf)["']\s*:\s*(""" + _NUM + ")")
_POINT_KEY = re.compile(r"""["'](?:point_2d|point|click|coordinate)["']\s*:\s*\[\s*(""" + _NUM + ")" + _SEP
                        + "(" + _NUM + r")\s*\]")
_POINT_LIST = re.compile(r"\[\s*(" + _NUM + ")" + _SEP + "(" + _NUM + r")\s*\]")
_POINT_PAREN = re.compile(r"\(\s*(" + _NUM + ")" + _SEP + "(" + _NUM + r")\s*\)")
_EMPTY_WORDS = {"none", "null", "[]", "no objects", "no object", "nothing", "无"}


# -- parsing ----------------------------------------------------------------------------------------
def _floats(groups: Sequence[str]) -> Optional[Tuple[float, ...]]:
    try:
        vals = tuple(float(g) for g in groups)
    except (TypeError, ValueError, OverflowError):
        return None
    return vals if all(math.isfinite(v) for v in vals) else None


def scope(text: str, extract: str = "auto") -> str:
    """The part of a completion to look in: the ``<answer>`` content (``answer_tag``), that or the text
    after reasoning (``auto``), or everything (``none``)."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    if extract == "none":
        return text
    if extract == "answer_tag":
        return answer_tag(text) or ""
    body = strip_think(text)
    inner = answer_tag(body)
    return inner if inner is not None else body


def parse_boxes(text: str, limit: int = HARD_CAP) -> Tuple[List[Labeled], int]:
    """``(boxes, total)``: the first ``limit`` boxes found, each ``((x1, y1, x2, y2), label)``, and how many
    there were in all. The first format that occurs wins: box tokens, then ``bbox_2d`` objects, then
    ``[x1,y1,x2,y2]`` lists, then ``(x1,y1),(x2,y2)`` pairs. Coordinates stay in the model's frame.

    >>> parse_boxes('```json\\n[{"bbox_2d": [10, 20, 30, 40], "label": "cat"}]\\n```')
    ([((10.0, 20.0, 30.0, 40.0), 'cat')], 1)
    >>> parse_boxes("<|object_ref_start|>dog<|object_ref_end|><|box_start|>(1,2),(3,4)<|box_end|>")
    ([((1.0, 2.0, 3.0, 4.0), 'dog')], 1)
    >>> parse_boxes("the box is [5, 6, 7]")   # three numbers are no box
    ([], 0)
    """
    return _scan_boxes(text, limit, False)  # type: ignore[return-value]


def parse_detections(text: str, limit: int = HARD_CAP) -> Tuple[List[Detection], int]:
    """:func:`parse_boxes` with each box's confidence: ``((x1, y1, x2, y2), label, score)``, the score read
    from a ``score`` / ``confidence`` / ``conf`` key of the box's JSON object (None when it has none, and
    for box tokens and bare lists).

    >>> parse_detections('[{"bbox_2d": [1, 2, 3, 4], "label": "cat", "score": 0.9}, [5, 6, 7, 8]]')
    ([((1.0, 2.0, 3.0, 4.0), 'cat', 0.9)], 1)
    >>> parse_detections("[5, 6, 7, 8]")
    ([((5.0, 6.0, 7.0, 8.0), None, None)], 1)
    """
    return _scan_boxes(text, limit, True)  # type: ignore[return-value]


def _scan_boxes(text: str, limit: int, scored: bool) -> Tuple[list, int]:
    """The one box scanner behind :func:`parse_boxes` (pairs) and :func:`parse_detections` (triples)."""
    if not isinstance(text, str) or not text:
        return [], 0
    out: list = []
    total = 0

    def add(vals, label, score=None):
        nonlocal total
        if vals is None:
            return
        total += 1
        if len(out) < limit:
            label = label.strip() if isinstance(label, str) else None
            out.append((vals, label, score) if scored else (vals, label))

    if "<|box_start|>" in text:
        for m in _BOX_TOKEN.finditer(text):
            body = m.group("body")
            p = _PAIRS.search(body) or _LIST4.search(body)
            add(_floats(p.groups()) if p else None, m.group("label"))
        if total:
            return out, total
    if _BBOX_KEY.search(text):
        for k in _BBOX_KEY.finditer(text):  # each key, with the label of its own (innermost) object
            if total >= HARD_CAP:
                break
            b = _LIST4.match(text, k.end())
            start = text.rfind("{", max(0, k.start() - _WINDOW), k.start())
            end = text.find("}", k.end(), k.end() + _WINDOW)
            span = text[start if start >= 0 else k.start(): end if end >= 0 else k.end() + _WINDOW]
            lab = _LABEL_KEY.search(span)
            score = None
            if scored:
                sm = _SCORE_KEY.search(span)
                got = _floats(sm.groups()) if sm else None
                score = got[0] if got else None
            add(_floats(b.groups()) if b else None, lab.group(1) if lab else None, score)
        if total:
            return out, total
    for m in _LIST4.finditer(text):
        add(_floats(m.groups()), None)
    if total:
        return out, total
    for m in _PAIRS.finditer(text):
        add(_floats(m.groups()), None)
    return out, total


def parse_point(text: str) -> Optional[Point]:
    """The first point: ``{"point_2d": [x, y]}``, ``[x, y]``, ``(x, y)``; else the centre of the first box.

    >>> parse_point('{"point_2d": [120, 45]}')
    (120.0, 45.0)
    >>> parse_point("click(0.5, 0.25)")
    (0.5, 0.25)
    >>> parse_point("[0, 0, 100, 50]")   # a box: its centre
    (50.0, 25.0)
    """
    if not isinstance(text, str) or not text:
        return None
    m = _POINT_KEY.search(text)
    if m:
        return _floats(m.groups())  # type: ignore[return-value]
    boxes, _ = parse_boxes(text, limit=1)
    if boxes:
        x1, y1, x2, y2 = boxes[0][0]
        return ((x1 + x2) / 2, (y1 + y2) / 2)
    for rx in (_POINT_LIST, _POINT_PAREN):
        m = rx.search(text)
        if m:
            pt = _floats(m.groups())
            if pt is not None:
                return pt  # type: ignore[return-value]
    return None


def _box_of(value: Any) -> Optional[Box]:
    if isinstance(value, (list, tuple)) and len(value) == 4 and \
            all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        vals = tuple(float(v) for v in value)
        return vals if all(math.isfinite(v) for v in vals) else None  # type: ignore[return-value]
    return None


def _crowd(value: Any) -> bool:
    """A COCO ``iscrowd`` value (0 / 1, a boolean, "1") as a boolean."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true")
    return bool(value) if isinstance(value, (bool, int, float)) and value == value else False


def _gold_item(item: Any) -> Optional[GoldObject]:
    box = _box_of(item)
    if box is not None:
        return box, None, False
    if isinstance(item, dict):
        for key in ("bbox_2d", "bbox", "box", "Position", "position"):
            if key in item:
                box = _box_of(item[key])
                if box is None:
                    return None
                label = item.get("label", item.get("ref"))
                return box, (str(label).strip() if label is not None else None), \
                    _crowd(item.get("iscrowd", item.get("crowd")))
    return None


def gold_boxes(value: Any) -> Optional[List[Labeled]]:
    """The reference boxes in a dataset column value; ``[]`` for an explicit "no objects"; ``None`` when
    the value is missing or malformed (a reward then abstains).

    Accepts a box, a list of boxes, ``bbox_2d`` dicts, ms-swift's ``objects`` dict
    (``{"ref": [...], "bbox": [[...]]}``), or a string holding any of these or a completion-style answer.

    >>> gold_boxes("[1, 2, 3, 4]")
    [((1.0, 2.0, 3.0, 4.0), None)]
    >>> gold_boxes({"ref": ["cat"], "bbox": [[0, 0, 5, 5]], "bbox_type": "real"})
    [((0.0, 0.0, 5.0, 5.0), 'cat')]
    >>> gold_boxes("[]"), gold_boxes("no"), gold_boxes(None)
    ([], None, None)
    """
    got = gold_objects(value)
    return None if got is None else [(b, lab) for b, lab, _ in got]


def gold_objects(value: Any) -> Optional[List[GoldObject]]:
    """:func:`gold_boxes` with each box's crowd flag: ``((x1, y1, x2, y2), label, iscrowd)``. The flag comes
    from an ``iscrowd`` (or ``crowd``) key of a box's object, or an ``iscrowd`` list beside the ``bbox`` list
    of an ``objects`` dict (what ``swift-ext convert`` writes from COCO annotations).

    >>> gold_objects('{"ref": ["person", "person"], "bbox": [[0, 0, 5, 5], [5, 5, 9, 9]], "iscrowd": [0, 1]}')
    [((0.0, 0.0, 5.0, 5.0), 'person', False), ((5.0, 5.0, 9.0, 9.0), 'person', True)]
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if text.lower() in _EMPTY_WORDS:
            return []
        if text[0] in "[{" and len(text) < 1_000_000:
            try:
                parsed = json.loads(text)
            except (ValueError, RecursionError):
                parsed = None
            if parsed is not None:
                got = gold_objects(parsed)
                if got is not None:
                    return got
        boxes, _ = parse_boxes(scope(text, "auto"))
        return [(b, lab, False) for b, lab in boxes] or None
    if isinstance(value, dict):
        if "bbox" in value and isinstance(value.get("bbox"), (list, tuple)) and \
                (not value["bbox"] or isinstance(value["bbox"][0], (list, tuple))):  # ms-swift objects
            refs = value.get("ref") or []
            crowd = value.get("iscrowd")
            crowd = crowd if isinstance(crowd, (list, tuple)) else ()
            out = []
            for i, b in enumerate(value["bbox"]):
                box = _box_of(b)
                if box is None:
                    return None
                ref = refs[i] if isinstance(refs, (list, tuple)) and i < len(refs) else None
                out.append((box, str(ref).strip() if ref is not None else None,
                            _crowd(crowd[i]) if i < len(crowd) else False))
            return out
        item = _gold_item(value)
        return [item] if item is not None else None
    if isinstance(value, (list, tuple)):
        if not value:
            return []
        single = _gold_item(value)
        if single is not None:
            return [single]
        out = []
        for v in value:
            item = _gold_item(v)
            if item is None:
                if isinstance(v, str):  # a list column of strings, e.g. ["[1,2,3,4]"]
                    got = gold_objects(v)
                    if got:
                        out.extend(got)
                        continue
                return None
            out.append(item)
        return out
    return None


def gold_frame_of(value: Any) -> Optional[str]:
    """The frame an ms-swift ``objects`` value declares (``bbox_type`` real -> pixels, norm1 -> norm1), also
    when the value is that dict's JSON text (a converted GRPO row's ``solution``).

    >>> gold_frame_of({"ref": ["cat"], "bbox": [[0.1, 0.2, 0.5, 0.6]], "bbox_type": "norm1"})
    'norm1'
    >>> gold_frame_of('{"ref": ["cat"], "bbox": [[1, 2, 30, 40]], "bbox_type": "real"}'), gold_frame_of("[1, 2, 3, 4]")
    ('pixels', None)
    """
    if isinstance(value, str):
        if '"bbox_type"' not in value or len(value) >= 1_000_000:
            return None
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return None
    if isinstance(value, dict):
        bt = value.get("bbox_type")
        if bt == "real":
            return "pixels"
        if bt in ("norm1", "norm1000"):
            return bt
    return None


def valid(box: Box) -> bool:
    """A box with positive width and height."""
    x1, y1, x2, y2 = box
    return x2 > x1 and y2 > y1


# -- image sizes -------------------------------------------------------------------------------------
class SizeCache:
    """``(width, height)`` of images by path or bytes, read from the file header with PIL, kept LRU."""

    def __init__(self, maxsize: int = 4096):
        self.maxsize = maxsize
        self._data: "OrderedDict[Any, Optional[Tuple[int, int]]]" = OrderedDict()

    def get(self, image: Any) -> Optional[Tuple[int, int]]:
        key: Any
        if isinstance(image, dict):
            if image.get("bytes"):
                image = image["bytes"]
            else:
                image = image.get("path") or image.get("image") or image.get("url")
        if hasattr(image, "size") and not isinstance(image, (str, bytes)):
            size = getattr(image, "size")
            return _size_pair(size)
        if isinstance(image, (bytes, bytearray)):
            key = ("bytes", len(image), hash(bytes(image[:4096])), hash(bytes(image[-4096:])))
        elif isinstance(image, str) and image:
            key = image[7:] if image.startswith("file://") else image
            if key.startswith(("http://", "https://")):
                return None  # never fetch from a reward
        else:
            return None
        if key in self._data:
            self._data.move_to_end(key)
            return self._data[key]
        size = _read_size(image if isinstance(image, (bytes, bytearray)) else key)
        self._data[key] = size
        if len(self._data) > self.maxsize:
            self._data.popitem(last=False)
        return size

    def __getstate__(self):  # picklable, without the cache
        return {"maxsize": self.maxsize}

    def __setstate__(self, state):
        self.__init__(state.get("maxsize", 4096))


def _read_size(src: Any) -> Optional[Tuple[int, int]]:
    try:
        from PIL import Image
    except ImportError:
        return None
    try:
        if isinstance(src, (bytes, bytearray)):
            with Image.open(io.BytesIO(bytes(src))) as im:
                return _size_pair(im.size)
        if isinstance(src, str) and src.startswith("data:image") and "base64," in src:
            import base64

            return _read_size(base64.b64decode(src.split("base64,", 1)[1]))
        root = os.environ.get("ROOT_IMAGE_DIR")
        path = src if os.path.isabs(src) or not root else os.path.join(root, src)
        with Image.open(path) as im:
            return _size_pair(im.size)
    except Exception:
        return None


def _size_pair(size: Any) -> Optional[Tuple[int, int]]:
    try:
        w, h = size
        w, h = float(w), float(h)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(w) and math.isfinite(h)) or w < 1 or h < 1 or w > 1e6 or h > 1e6:
        return None
    return int(round(w)), int(round(h))


def row_image_size(row: Dict[str, Any], cache: Optional[SizeCache] = None, index: int = 0) -> Optional[Tuple[int, int]]:
    """``(width, height)`` of the row's image: an ``image_size`` column (``[w, h]``, ``{"width", "height"}``,
    ``"WxH"``), ``width`` / ``height`` columns, or the ``index``-th entry of ``images`` opened with PIL.

    >>> row_image_size({"image_size": [640, 480]})
    (640, 480)
    >>> row_image_size({"width": "800", "height": 600})
    (800, 600)
    >>> row_image_size({"images": ["/no/such/file.png"]}) is None
    True
    """
    size = row.get("image_size")
    if size is not None:
        if isinstance(size, dict):
            size = (size.get("width"), size.get("height"))
        elif isinstance(size, str):
            m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*[xX×,]\s*(\d+(?:\.\d+)?)\s*", size)
            size = (m.group(1), m.group(2)) if m else None
        got = _size_pair(size) if size is not None else None
        if got is not None:
            return got
    if row.get("width") is not None and row.get("height") is not None:
        got = _size_pair((row.get("width"), row.get("height")))
        if got is not None:
            return got
    images = row.get("images")
    if images is None:
        images = row.get("image")
    if images is None:
        return None
    if isinstance(images, (list, tuple)):
        if not images or index >= len(images):
            return None
        images = images[index]
    return (cache or _DEFAULT_CACHE).get(images)


_DEFAULT_CACHE = SizeCache()


# -- frames --------------------------------------------------------------------------------------------
def _round_by(x: float, f: int) -> int:
    return round(x / f) * f


def _floor_by(x: float, f: int) -> int:
    return math.floor(x / f) * f


def _ceil_by(x: float, f: int) -> int:
    return math.ceil(x / f) * f


def smart_resize(height: int, width: int, factor: int = DEFAULT_FACTOR, min_pixels: Optional[int] = None,
                 max_pixels: Optional[int] = None) -> Optional[Tuple[int, int]]:
    """``(height, width)`` after qwen-vl-utils' resize: multiples of ``factor`` with the pixel count in
    ``[min_pixels, max_pixels]``, aspect ratio kept as well as possible. ``None`` for an aspect ratio
    over 200 (qwen-vl-utils raises there). Same arithmetic as ``qwen_vl_utils.smart_resize``.

    >>> smart_resize(480, 640)      # 480/28 = 17.14 -> 17*28 = 476; 640/28 = 22.86 -> 23*28 = 644
    (476, 644)
    """
    max_pixels = max_pixels if max_pixels is not None else DEFAULT_MAX_TOKENS * factor ** 2
    min_pixels = min_pixels if min_pixels is not None else DEFAULT_MIN_TOKENS * factor ** 2
    if height <= 0 or width <= 0 or max_pixels < min_pixels or max(height, width) / min(height, width) > MAX_RATIO:
        return None
    h_bar = max(factor, _round_by(height, factor))
    w_bar = max(factor, _round_by(width, factor))
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = _floor_by(height / beta, factor)
        w_bar = _floor_by(width / beta, factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = _ceil_by(height * beta, factor)
        w_bar = _ceil_by(width * beta, factor)
    return h_bar, w_bar


def pixel_bounds(factor: int, min_pixels: Optional[int], max_pixels: Optional[int]) -> Tuple[int, int]:
    """The ``(min_pixels, max_pixels)`` qwen-vl-utils really uses under ms-swift: the ``MIN_PIXELS`` /
    ``MAX_PIXELS`` values (parameter, else environment, else the defaults) are turned into a token count
    by integer division by ``factor**2`` and back (ms-swift's ``compat_qwen_vl_utils``).

    >>> pixel_bounds(28, None, 12544)    # 12544 // 784 = 16 tokens -> 16 * 784
    (3136, 12544)
    >>> pixel_bounds(28, 3000, 13000)    # 3000 // 784 = 3 -> 2352; 13000 // 784 = 16 -> 12544
    (2352, 12544)
    """
    f2 = factor * factor

    def pick(value, env, default_tokens):
        if value is None:
            raw = os.environ.get(env)
            try:
                value = int(raw) if raw else None
            except ValueError:
                value = None
        return (int(value) // f2) * f2 if value is not None else default_tokens * f2

    return pick(min_pixels, "MIN_PIXELS", DEFAULT_MIN_TOKENS), pick(max_pixels, "MAX_PIXELS", DEFAULT_MAX_TOKENS)


class Frame:
    """A coordinate frame plus the resize policy, able to map boxes and points to the unit square.

    >>> Frame("qwen2_5_vl", min_pixels=3136, max_pixels=12845056).scale((640, 480))   # resized 644 x 476
    (644.0, 476.0)
    >>> Frame("norm1000").to_unit((100, 200, 300, 400), None)
    (0.1, 0.2, 0.3, 0.4)
    """

    def __init__(self, name: str, factor: int = DEFAULT_FACTOR, min_pixels: Optional[int] = None,
                 max_pixels: Optional[int] = None):
        self.name = FRAME_ALIASES.get(name, name)
        self.factor = factor
        self.min_pixels, self.max_pixels = pixel_bounds(factor, min_pixels, max_pixels)
        self._resized: Dict[Tuple[int, int], Tuple[float, float]] = {}  # image size -> resized (w, h)

    @property
    def needs_size(self) -> bool:
        return self.name in ("pixels", "resized")

    def scale(self, size: Optional[Tuple[int, int]]) -> Optional[Tuple[float, float]]:
        """``(sx, sy)``: what a coordinate is divided by to land in [0, 1]; None if the size is needed but unknown."""
        if self.name == "norm1":
            return 1.0, 1.0
        if self.name == "norm1000":
            return 1000.0, 1000.0
        if size is None:
            return None
        w, h = size
        if self.name == "pixels":
            return float(w), float(h)
        got = self._resized.get(size)
        if got is None:
            rs = smart_resize(h, w, self.factor, self.min_pixels, self.max_pixels)
            got = (float(rs[1]), float(rs[0])) if rs is not None else (0.0, 0.0)
            if len(self._resized) > 4096:
                self._resized.clear()
            self._resized[size] = got
        return got if got[0] else None

    def to_unit(self, box: Box, size: Optional[Tuple[int, int]]) -> Optional[Box]:
        s = self.scale(size)
        if s is None:
            return None
        sx, sy = s
        return (box[0] / sx, box[1] / sy, box[2] / sx, box[3] / sy)

    def point_to_unit(self, pt: Point, size: Optional[Tuple[int, int]]) -> Optional[Point]:
        s = self.scale(size)
        if s is None:
            return None
        return (pt[0] / s[0], pt[1] / s[1])


# -- geometry ------------------------------------------------------------------------------------------
def iou(a: Box, b: Box) -> float:
    """Intersection over union; 0.0 for an empty or inverted box.

    >>> iou((0, 0, 2, 2), (1, 1, 3, 3))   # inter 1, union 4 + 4 - 1 = 7
    0.14285714285714285
    """
    if not (valid(a) and valid(b)):
        return 0.0
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    inter = iw * ih if iw > 0 and ih > 0 else 0.0
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    if not (union > 0) or not math.isfinite(union):
        return 0.0
    v = inter / union
    return v if math.isfinite(v) else 0.0


def giou(a: Box, b: Box) -> float:
    """Generalised IoU in [-1, 1]: IoU minus the share of the enclosing box that neither covers.
    An empty or inverted box scores -1.

    >>> giou((0, 0, 1, 1), (2, 0, 3, 1))   # iou 0; enclosing 3, union 2 -> 0 - (3-2)/3
    -0.3333333333333333
    """
    if not (valid(a) and valid(b)):
        return -1.0
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    inter = iw * ih if iw > 0 and ih > 0 else 0.0
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    hull = (max(a[2], b[2]) - min(a[0], b[0])) * (max(a[3], b[3]) - min(a[1], b[1]))
    if not (union > 0 and hull > 0) or not (math.isfinite(union) and math.isfinite(hull)):
        return -1.0
    v = inter / union - (hull - union) / hull
    return max(-1.0, min(1.0, v)) if math.isfinite(v) else -1.0


def point_in(pt: Point, box: Box) -> bool:
    """Inside or on the border of a valid box."""
    return valid(box) and box[0] <= pt[0] <= box[2] and box[1] <= pt[1] <= box[3]
