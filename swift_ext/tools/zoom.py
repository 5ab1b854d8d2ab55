"""``zoom``: crop the row's image to a box the model gives and show it the crop ("thinking with images", as
DeepEyes does).

The box is read in the model's coordinate frame, with the frame names and conversions of the grounding rewards
(:class:`swift_ext.rewards.boxes.Frame`: ``norm1000`` for Qwen2-VL / Qwen3-VL, ``resized`` for Qwen2.5-VL, whose
boxes are pixels of the smart-resized image, ``pixels``, ``norm1``), so a box the model would be rewarded for
crops the region it names. The crop is cut from the original image and resized the way ms-swift's Qwen-VL
templates resize an image (qwen-vl-utils' ``smart_resize``: sides multiples of ``factor``, the pixel count within
``min_pixels`` .. ``max_pixels``, default ``$MIN_PIXELS`` / ``$MAX_PIXELS`` as ms-swift reads them): the model
sees it at the resolution the template would give it, and a small region is enlarged to at least ``min_pixels``.
The crop is written as ``zoom-<n>.png`` under the trajectory's ``workdir``, and the result text names that file
(``[image file: PATH]``, :data:`swift_ext.tools.parse.IMAGE_FILE_NOTE`) so the run's completion log, where
ms-swift keeps the image only as a placeholder, links the crop to its file: ``swift-ext report`` shows it.

A box that cannot be cut (not four finite numbers, inverted, zero-area, outside the image, smaller than
``min_size`` pixels of the image, an extreme aspect ratio) is an error result that says why, never an exception;
a box partly outside the image is clipped to it (``clip=false``: an error).

    >>> from swift_ext.tools.zoom import read_box
    >>> read_box([10, 20, 30, 40]), read_box([1, 2, 3])
    ((10.0, 20.0, 30.0, 40.0), 'bbox_2d must be 4 numbers [x1, y1, x2, y2], got 3 values')
"""

from __future__ import annotations

import io
import math
import os
import tempfile
from typing import Any, Dict, Optional, Tuple, Union

from ..errors import ParamError
from ..io.media import MediaError, read_media
from ..params import Param
from ..rewards.boxes import FRAMES, Frame, smart_resize
from .base import Tool, ToolContext, ToolResult
from .parse import IMAGE_FILE_NOTE

Box = Tuple[float, float, float, float]


def read_box(value: Any) -> Union[Box, str]:
    """The box of a call's ``bbox_2d`` as four floats, or why it is not one (text for the model)."""
    if isinstance(value, str):  # '[1, 2, 3, 4]' written as a string
        import json

        try:
            value = json.loads(value)
        except ValueError:
            return f"bbox_2d must be a list of 4 numbers [x1, y1, x2, y2], got the text {value[:40]!r}"
    if not isinstance(value, (list, tuple)):
        return f"bbox_2d must be a list of 4 numbers [x1, y1, x2, y2], got {type(value).__name__}"
    if len(value) != 4:
        return f"bbox_2d must be 4 numbers [x1, y1, x2, y2], got {len(value)} values"
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return f"bbox_2d must hold numbers, got {type(v).__name__} {str(v)[:20]!r}"
        try:
            f = float(v)
        except OverflowError:
            return "bbox_2d holds a number too large for a coordinate"
        if not math.isfinite(f):
            return f"bbox_2d must hold finite numbers, got {v}"
        out.append(f)
    x1, y1, x2, y2 = out
    if x2 <= x1 or y2 <= y1:
        what = "zero-area" if (x2 == x1 or y2 == y1) else "inverted"
        return f"bbox_2d {_show(out)} is {what}: x2 must be greater than x1 and y2 greater than y1"
    return x1, y1, x2, y2


def _show(box: Any) -> str:
    return "[" + ", ".join(f"{v:g}" for v in box) + "]"


class Zoom(Tool):
    """Crop the row's image to a box in the model's coordinate frame; the crop comes back as an image."""

    name = "zoom"
    description = ("Zoom in on a region of the image: give its bounding box and see that region at a higher "
                   "resolution.")
    arguments = {
        "type": "object",
        "properties": {
            "bbox_2d": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4,
                        "description": "the region as [x1, y1, x2, y2], in the coordinates you use for boxes"},
            "label": {"type": "string", "description": "what the region shows (optional)"},
            "image_index": {"type": "integer", "minimum": 0,
                            "description": "which image of the question to crop (0: the first; default 0)"},
        },
        "required": ["bbox_2d"],
    }
    params: Dict[str, Param] = {
        "frame": Param("qwen2_5_vl", "coordinate frame of the model's boxes, as the grounding rewards name them: "
                       "norm1000 (Qwen2-VL, Qwen3-VL), resized (Qwen2.5-VL), pixels, norm1; or a model name "
                       "qwen2_vl / qwen2_5_vl / qwen3_vl", choices=FRAMES),
        "factor": Param(28, "resize factor: patch size x merge size (28 for Qwen2/2.5-VL, 32 for Qwen3-VL)",
                        min=1, max=1024),
        "min_pixels": Param(None, "smallest crop shown, in pixels (default: $MIN_PIXELS, else 3136)", type=int,
                            min=1),
        "max_pixels": Param(None, "largest crop shown, in pixels (default: $MAX_PIXELS, else 12845056)", type=int,
                            min=1),
        "min_size": Param(4, "smallest box side, in pixels of the original image (a smaller box is an error)",
                          min=1),
        "clip": Param(True, "clip a box partly outside the image to it (false: such a box is an error)"),
        "max_crops": Param(16, "crops per trajectory (more is an error)", min=1),
        "name_file": Param(True, "end the result text with the crop's file ([image file: PATH]): ms-swift logs the "
                           "image as a placeholder, the note links it to its file for the report (false: the "
                           "model sees no path)"),
    }

    def setup(self) -> None:
        if self.min_pixels is not None and self.max_pixels is not None and self.min_pixels > self.max_pixels:
            raise ParamError(f"tool zoom: min_pixels={self.min_pixels} is above max_pixels={self.max_pixels}")
        self._frame = Frame(self.frame, self.factor, self.min_pixels, self.max_pixels)

    def run(self, arguments: Dict[str, Any], context: ToolContext) -> ToolResult:
        box = read_box(arguments.get("bbox_2d"))
        if isinstance(box, str):
            return ToolResult(f"error: zoom: {box}", ok=False)
        index = arguments.get("image_index", 0)
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            return ToolResult(f"error: zoom: image_index must be a whole number >= 0, got {index!r}", ok=False)
        crops = context.state.get("zoom_crops", 0)
        if crops >= self.max_crops:
            return ToolResult(f"error: zoom: at most {self.max_crops} crops per question", ok=False)
        image = _open_image(context.row, index)
        if isinstance(image, str):
            return ToolResult(f"error: zoom: {image}", ok=False)
        with image:
            w, h = image.size
            unit = self._frame.to_unit(box, (w, h))
            if unit is None:
                return ToolResult(f"error: zoom: the {self.frame} frame cannot be read for a {w}x{h} image", ok=False)
            px = (unit[0] * w, unit[1] * h, unit[2] * w, unit[3] * h)
            if not all(math.isfinite(v) for v in px):
                return ToolResult("error: zoom: bbox_2d holds a number too large for a coordinate", ok=False)
            clipped = (max(0.0, px[0]), max(0.0, px[1]), min(float(w), px[2]), min(float(h), px[3]))
            if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
                return ToolResult(f"error: zoom: bbox_2d {_show(box)} lies outside the image "
                                  f"({self._extent(w, h)})", ok=False)
            if clipped != px and not self.clip:
                return ToolResult(f"error: zoom: bbox_2d {_show(box)} reaches outside the image "
                                  f"({self._extent(w, h)})", ok=False)
            left, top = int(math.floor(clipped[0])), int(math.floor(clipped[1]))
            right, bottom = int(math.ceil(clipped[2])), int(math.ceil(clipped[3]))
            cw, ch = right - left, bottom - top
            if cw < self.min_size or ch < self.min_size:
                return ToolResult(f"error: zoom: bbox_2d {_show(box)} covers {cw}x{ch} pixels of the image; the "
                                  f"smallest region is {self.min_size}x{self.min_size}", ok=False)
            size = smart_resize(ch, cw, self.factor, self._frame.min_pixels, self._frame.max_pixels)
            if size is None:
                return ToolResult(f"error: zoom: bbox_2d {_show(box)} is {cw}x{ch} pixels: too thin a region "
                                  f"(aspect ratio above 200)", ok=False)
            crop = image.crop((left, top, right, bottom)).convert("RGB").resize((size[1], size[0]))
        path = os.path.join(_workdir(context), f"zoom-{crops + 1}.png")
        crop.save(path, format="PNG")
        context.state["zoom_crops"] = crops + 1
        note = " (clipped to the image)" if clipped != px else ""
        label = arguments.get("label")
        what = f" ({str(label)[:80]})" if isinstance(label, str) and label.strip() else ""
        text = f"Zoomed in on {_show(box)}{what} of image {index}{note}: the region is shown at {size[1]}x{size[0]} " \
               f"pixels."
        if self.name_file:
            text += " " + IMAGE_FILE_NOTE.format(path)
        return ToolResult(text, images=[path])

    def _extent(self, w: int, h: int) -> str:
        s = self._frame.scale((w, h))
        return f"the image spans [0, 0, {s[0]:g}, {s[1]:g}] in the {self.frame} frame" if s else f"{w}x{h}"


def _open_image(row: Dict[str, Any], index: int) -> Any:
    """The ``index``-th image of the row opened with PIL, or why it cannot be (text for the model)."""
    images = row.get("images") if isinstance(row, dict) else None
    if images is None and isinstance(row, dict):
        images = row.get("image")
    if isinstance(images, (str, dict, bytes)):
        images = [images]
    if not isinstance(images, (list, tuple)) or not images:
        return "this question has no image to zoom into"
    if index >= len(images):
        return f"image_index {index} is out of range: the question has {len(images)} image(s)"
    item = images[index]
    data: Optional[bytes] = None
    try:
        if isinstance(item, dict):  # ms-swift's {"bytes": ..., "path": ...}
            data = item.get("bytes") if isinstance(item.get("bytes"), (bytes, bytearray)) else None
            item = item.get("path") or item.get("image") if data is None else None
        if data is None:
            if not isinstance(item, str) or not item:
                return "the question's image is neither a file path nor image bytes"
            data = read_media(item[7:] if item.startswith("file://") else item, kind="image")
        from PIL import Image

        image = Image.open(io.BytesIO(bytes(data)))
        image.load()
        return image
    except MediaError as exc:
        return f"the question's image cannot be read ({exc})"
    except Exception as exc:  # PIL: not an image, a decompression bomb, a truncated file
        return f"the question's image cannot be read ({type(exc).__name__}: {str(exc)[:200]})"


def _workdir(context: ToolContext) -> str:
    folder = context.workdir or context.state.get("zoom_workdir")
    if not folder:
        folder = context.state["zoom_workdir"] = tempfile.mkdtemp(prefix="swift-ext-zoom-")
    os.makedirs(folder, exist_ok=True)
    return folder


__all__ = ["Zoom", "read_box"]
