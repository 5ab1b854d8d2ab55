"""Vision grounding rewards: IoU / GIoU, thresholded IoU, Hungarian multi-box F1, point-in-box.

Predicted boxes are parsed from the completion (see :mod:`swift_ext.rewards.boxes` for the formats)
in the model's coordinate frame (``frame``); reference boxes come from a dataset column
(``gold_key``, default ``solution``) in ``gold_frame``. Both are mapped to the unit square using the
row's image size (an ``image_size`` / ``width`` + ``height`` column, or the image file in ``images``,
read once and cached) and, for Qwen2.5-VL's ``resized`` frame, the smart-resize policy
(``min_pixels`` / ``max_pixels``, default ``MIN_PIXELS`` / ``MAX_PIXELS`` from the environment like
ms-swift, else qwen-vl-utils' defaults).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from ..errors import ParamError
from ..params import Param
from .contract import Example
from .base import Reward, Score, logger
from .boxes import (FRAMES, GOLD_FRAMES, HARD_CAP, Frame, Labeled, SizeCache, giou, gold_boxes, gold_frame_of, iou,
                    parse_boxes, parse_point, point_in, row_image_size, scope, valid)

_MISSING = object()

FRAME_PARAMS: Dict[str, Param] = {
    "frame": Param("norm1000", "coordinate frame of the model's boxes: norm1000 (Qwen2-VL, Qwen3-VL), resized "
                   "(Qwen2.5-VL: pixels of the smart-resized image), pixels, norm1; or a model name "
                   "qwen2_vl / qwen2_5_vl / qwen3_vl", choices=FRAMES),
    "gold_frame": Param("pixels", "frame of the reference boxes: pixels (of the original image), norm1, norm1000, "
                        "resized, or same (already in the model's frame: no conversion)", choices=GOLD_FRAMES),
    "gold_key": Param("solution", "dataset column holding the reference box(es)"),
    "extract": Param("auto", "where to look for boxes: auto (<answer> content, else the text after </think>), "
                     "answer_tag (only inside <answer>), none (whole completion)",
                     choices=("auto", "answer_tag", "none")),
    "min_pixels": Param(None, "smart-resize lower bound for frame=resized (default: $MIN_PIXELS, else 3136)",
                        type=int, min=1),
    "max_pixels": Param(None, "smart-resize upper bound for frame=resized (default: $MAX_PIXELS, else 12845056)",
                        type=int, min=1),
    "factor": Param(28, "smart-resize factor: patch size x merge size (28 for Qwen2/2.5-VL)", min=1, max=1024),
}


class _Grounded(Reward):
    """Shared machinery: parse predictions and references and map both to the unit square.

    Predicted and reference items are tuples whose first element is the box: ``(box, label)`` from
    :func:`parse_boxes` / :func:`gold_boxes`; a subclass may read richer items (``detection`` reads
    confidences and crowd flags) by setting ``read_predictions`` / ``read_gold``: conversion keeps the rest
    of each tuple."""

    abstains = ("when the reference box column is missing or malformed, or when a frame conversion needs the "
                "image size and the row has none")
    params = FRAME_PARAMS
    #: ``(text, limit) -> (items, total)``: the predicted boxes of a completion's answer
    read_predictions = staticmethod(parse_boxes)
    #: ``value -> items | None``: the reference boxes of a column value
    read_gold = staticmethod(gold_boxes)
    #: names of the items' fields after the box, in explanations (predicted, reference)
    item_fields: Tuple[Tuple[str, ...], Tuple[str, ...]] = (("label",), ("label",))

    def setup(self) -> None:
        if self.min_pixels is not None and self.max_pixels is not None and self.min_pixels > self.max_pixels:
            raise ParamError(f"reward {self.name}: min_pixels={self.min_pixels} is above max_pixels={self.max_pixels}")
        self._pred_frame = Frame(self.frame, self.factor, self.min_pixels, self.max_pixels)
        self._frames: Dict[str, Frame] = {"same": self._pred_frame}
        self._sizes = SizeCache()
        self._size_warned = False
        self._frame_warned = False
        self._gold_memo: Dict[str, Optional[List[Labeled]]] = {}
        self._frame_memo: Dict[str, Optional[str]] = {}

    def _gold_frame(self, value: Any) -> Frame:
        if isinstance(value, str):   # a group repeats its gold: the JSON of an objects dict is read once
            declared = self._frame_memo.get(value, _MISSING)
            if declared is _MISSING:
                declared = gold_frame_of(value)
                if len(self._frame_memo) > 1024:
                    self._frame_memo.clear()
                self._frame_memo[value] = declared
        else:
            declared = gold_frame_of(value)
        name = declared or self.gold_frame
        frame = self._frames.get(name)
        if frame is None:
            frame = self._frames[name] = Frame(name, self.factor, self.min_pixels, self.max_pixels)
        return frame

    def _golds(self, raw: Any) -> Optional[List[Labeled]]:
        """The reference boxes of a column value; a GRPO group repeats its value, so strings are memoised."""
        if not isinstance(raw, str):
            return self.read_gold(raw)
        got = self._gold_memo.get(raw, _MISSING)
        if got is _MISSING:
            got = self.read_gold(raw)
            if len(self._gold_memo) > 1024:
                self._gold_memo.clear()
            self._gold_memo[raw] = got
        return got  # type: ignore[return-value]

    def _size(self, row: Dict[str, Any], pred: Frame, gold: Frame) -> Tuple[bool, Optional[Tuple[int, int]]]:
        """(ok, size): ok is False when a conversion is needed and the size is unknown."""
        if self._same_scale(pred, gold):
            return True, None  # same frame: compared as they are (IoU does not depend on the scale)
        if not (pred.needs_size or gold.needs_size):
            return True, None
        size = row_image_size(row, self._sizes)
        if size is None and not self._size_warned:
            self._size_warned = True
            self._warn_size()
        return size is not None, size

    def _warn_size(self) -> None:
        logger.warning(
            "reward %s: frame=%s / gold_frame=%s needs the image size, but a row has no image_size/width/height "
            "column and no readable image; such rows are not scored (logged once)", self.name, self.frame,
            self.gold_frame)

    def _same_scale(self, pred: Frame, gold: Frame) -> bool:
        return gold is pred or (pred.name == gold.name and pred.name in ("pixels", "resized"))

    def unit_pairs(self, completion: str, row: Dict[str, Any], limit: int = HARD_CAP
                   ) -> Optional[Tuple[List[Labeled], int, List[Labeled]]]:
        """``(predicted, n_predicted_total, references)`` in the unit square, or None to abstain (items as
        ``read_predictions`` / ``read_gold`` give them, the box first)."""
        raw = row.get(self.gold_key)
        golds = self._golds(raw)
        if golds is None or not all(valid(x[0]) for x in golds):
            return None
        gold_frame = self._gold_frame(raw)
        ok, size = self._size(row, self._pred_frame, gold_frame)
        if not ok:
            return None
        preds, total = self.read_predictions(scope(completion, self.extract), limit)
        if self._same_scale(self._pred_frame, gold_frame):
            return preds, total, golds
        to_unit = gold_frame.to_unit
        g = [(to_unit(x[0], size),) + x[1:] for x in golds]
        if any(x[0] is None for x in g):
            return None
        if not self._frame_warned and any(min(x[0]) < -0.05 or max(x[0]) > 1.05 for x in g):
            self._frame_warned = True
            logger.warning("reward %s: a reference box lies outside its image once read as gold_frame=%s (%s); "
                           "is gold_frame right? (logged once)", self.name, self.gold_frame, golds[0][0])
        to_unit = self._pred_frame.to_unit
        p = [(to_unit(x[0], size),) + x[1:] for x in preds]
        return [x for x in p if x[0] is not None], total, g  # type: ignore[misc]

    def _explain_boxes(self, completion: str, row: Dict[str, Any], limit: int = HARD_CAP) -> Dict[str, Any]:
        """What :meth:`unit_pairs` sees, step by step: parsed boxes in their frames, the image size and where
        it came from, the scale each frame divides by (the smart-resized size for ``resized``), the boxes in
        the unit square, and ``abstain`` (why not, when the reward abstains)."""
        raw = row.get(self.gold_key)
        golds = self._golds(raw)
        text = scope(completion, self.extract)
        preds, total = self.read_predictions(text, limit)
        info: Dict[str, Any] = {
            "scope": text, "predicted": [self._item_info(x, 0) for x in preds], "predicted_total": total,
            "frame": self._pred_frame.name, "gold": raw,
            "gold_boxes": None if golds is None else [self._item_info(x, 1) for x in golds],
            "abstain": None}
        if golds is None:
            info["abstain"] = f"no reference box in column {self.gold_key!r}"
            return info
        if not all(valid(x[0]) for x in golds):
            info["abstain"] = "a reference box is inverted or has zero area"
            return info
        gold_frame = self._gold_frame(raw)
        info["gold_frame"] = "same" if gold_frame is self._pred_frame else gold_frame.name
        same = self._same_scale(self._pred_frame, gold_frame)
        info["same_scale"] = same
        if same:
            info["conversion"] = "none: both sides in the same frame (IoU does not depend on the scale)"
            info["unit_predicted"], info["unit_gold"] = [list(x[0]) for x in preds], [list(x[0]) for x in golds]
            return info
        size = row_image_size(row, self._sizes) if (self._pred_frame.needs_size or gold_frame.needs_size) else None
        source = ("image_size" if row.get("image_size") is not None else "width/height" if
                  row.get("width") is not None and row.get("height") is not None else
                  "images" if row.get("images") or row.get("image") else None)
        info.update(image_size=None if size is None else list(size), image_size_from=source if size else None)
        if size is None and (self._pred_frame.needs_size or gold_frame.needs_size):
            info["abstain"] = "the frames need the image size and the row has none (image_size, width/height, images)"
            return info
        for side, frame in (("frame", self._pred_frame), ("gold_frame", gold_frame)):
            sc = frame.scale(size)
            entry: Dict[str, Any] = {"name": frame.name, "divide_by": None if sc is None else list(sc)}
            if frame.name == "resized":
                entry["resize_policy"] = {"factor": frame.factor, "min_pixels": frame.min_pixels,
                                          "max_pixels": frame.max_pixels}
                entry["resized_size"] = None if sc is None else [int(sc[0]), int(sc[1])]
            info[f"{side}_conversion"] = entry
        got = self.unit_pairs(completion, row, limit)
        if got is None:
            info["abstain"] = "a frame conversion failed (image aspect ratio over 200?)"
            return info
        info["unit_predicted"] = [list(x[0]) for x in got[0]]
        info["unit_gold"] = [list(x[0]) for x in got[2]]
        return info

    def _item_info(self, item: tuple, side: int) -> Dict[str, Any]:
        """A parsed item for an explanation: ``{"box": [...], "label": ...}`` and the other fields it has."""
        return {"box": list(item[0]), **dict(zip(self.item_fields[side], item[1:]))}


class IoU(_Grounded):
    """IoU (0 to 1) between the predicted box and the reference box, frame-aware.

    The first predicted box is scored (``pick=first``; ``last`` also works; ``best`` takes the best of
    every predicted box and is easy to game by listing many). With several reference boxes the
    predicted box is compared with the one it overlaps most. No box in the completion scores 0.

    Bad input: no box, an inverted or zero-area box, or coordinates that overflow score 0. A reference box
    that lands outside its image after conversion is still scored, with one warning asking whether
    ``gold_frame`` is right. When the reference is missing, malformed or inverted, or the image size is
    needed but unknown, the reward abstains and logs it once.

    On the command line: ``--reward_funcs iou:frame=qwen2_5_vl``.

    Example:
        >>> r = IoU(frame="norm1000", gold_frame="same")
        >>> r(['{"bbox_2d": [0, 0, 200, 200]}', "[100, 100, 300, 300]", "no box"], solution=["[0, 0, 200, 200]"] * 3)
        [1.0, 0.14285714285714285, 0.0]
    """

    name = "iou"
    examples = (
        Example("full", '{"bbox_2d": [0, 0, 200, 200]}', 1.0, params="gold_frame=same", solution="[0, 0, 200, 200]"),
        Example("zero", "[300, 300, 400, 400]", 0.0, params="gold_frame=same", solution="[0, 0, 200, 200]"),
        Example("malformed", "no box", 0.0, params="gold_frame=same", solution="[0, 0, 200, 200]"),
        Example("malformed", "[0, 0, 200, 200]", None, params="gold_frame=same", solution="not a box"),
    )
    params = {**FRAME_PARAMS,
              "pick": Param("first", "which predicted box to score", choices=("first", "last", "best"))}

    def _metric(self, a, b) -> float:
        return iou(a, b)

    def _empty(self) -> float:
        return 0.0

    def score(self, completion: str, **row: Any) -> Score:
        got = self.unit_pairs(completion, row, limit=HARD_CAP if self.pick != "first" else 1)
        if got is None:
            return None
        preds, _, golds = got
        if not golds:
            return None  # one box is expected; an empty reference cannot be scored
        if not preds:
            return self._empty()
        if self.pick == "first":
            cands = preds[:1]
        elif self.pick == "last":
            cands = preds[-1:]
        else:
            cands = preds
        return max(self._metric(p, g) for p, _ in cands for g, _ in golds)

    def explain(self, completion: str, **row: Any) -> Dict[str, Any]:
        out = super().explain(completion, **row)
        info = self._explain_boxes(completion, row, limit=HARD_CAP if self.pick != "first" else 1)
        out.update(info)
        if info["abstain"]:
            out["reason"] = f"abstained: {info['abstain']}"
            return out
        preds, golds = info["unit_predicted"], info["unit_gold"]
        if not golds:
            out["reason"] = "abstained: the reference holds no box"
            return out
        if not preds:
            out["reason"] = f"no box found in the answer: {self._empty():g}"
            return out
        cands = preds[:1] if self.pick == "first" else preds[-1:] if self.pick == "last" else preds
        pairs = [{"predicted": p, "gold": g, "value": self._metric(tuple(p), tuple(g))} for p in cands for g in golds]
        best = max(pairs, key=lambda x: x["value"])
        out.update(pick=self.pick, pairs=pairs, best=best, iou=iou(tuple(best["predicted"]), tuple(best["gold"])))
        out["reason"] = f"{self.name} of the {self.pick} predicted box with its best reference: {best['value']:g}"
        return out


class GIoU(IoU):
    """Generalised IoU between the predicted and the reference box, rescaled to 0..1 as (GIoU + 1) / 2.

    Unlike IoU it still ranks boxes that do not overlap (by how far apart they are), which gives a
    gradient early in training. ``range=signed`` returns the raw GIoU in [-1, 1]. No box scores the
    minimum (0.0, or -1.0 signed).

    Bad input: otherwise as ``iou``.

    On the command line: ``--reward_funcs giou:range=signed``.

    Example:
        >>> r = GIoU(frame="norm1", gold_frame="same")
        >>> r(["[0, 0, 1, 1]", "[2, 0, 3, 1]"], solution=["[0, 0, 1, 1]"] * 2)   # (1+1)/2; (-1/3+1)/2
        [1.0, 0.33333333333333337]
    """

    name = "giou"
    examples = (
        Example("full", "[0, 0, 1, 1]", 1.0, params="frame=norm1,gold_frame=same", solution="[0, 0, 1, 1]"),
        Example("full", "[2, 0, 3, 1]", 1 / 3, params="frame=norm1,gold_frame=same", solution="[0, 0, 1, 1]"),
        Example("zero", "no box", 0.0, params="frame=norm1,gold_frame=same", solution="[0, 0, 1, 1]"),
        Example("malformed", "[0, 0, 1, 1]", None, params="frame=norm1,gold_frame=same", solution=None),
    )
    params = {**IoU.params, "range": Param("unit", "unit: (GIoU+1)/2 in [0, 1]; signed: GIoU in [-1, 1]",
                                           choices=("unit", "signed"))}

    def _metric(self, a, b) -> float:
        v = giou(a, b)
        return v if self.range == "signed" else (v + 1.0) / 2.0

    def _empty(self) -> float:
        return -1.0 if self.range == "signed" else 0.0


class IoUThreshold(IoU):
    """1.0 when the IoU of the predicted box with the reference reaches ``threshold``, else 0.0.

    Bad input: as ``iou``.

    On the command line: ``--reward_funcs iou_threshold:threshold=0.75``.

    Example:
        >>> r = IoUThreshold(threshold=0.5, gold_frame="same")
        >>> r(["[0, 0, 100, 100]", "[0, 0, 100, 40]"], solution=["[0, 0, 100, 80]"] * 2)  # iou .8; 40/80=.5
        [1.0, 1.0]
    """

    name = "iou_threshold"
    examples = (
        Example("full", "[0, 0, 100, 100]", 1.0, params="gold_frame=same", solution="[0, 0, 100, 80]"),
        Example("zero", "[0, 0, 100, 20]", 0.0, params="gold_frame=same", solution="[0, 0, 100, 80]"),
        Example("malformed", "no box", 0.0, params="gold_frame=same", solution="[0, 0, 100, 80]"),
    )
    params = {**IoU.params, "threshold": Param(0.5, "IoU needed for a score of 1", min=0.0, max=1.0)}

    def _metric(self, a, b) -> float:
        return 1.0 if iou(a, b) >= self.threshold else 0.0


class BoxF1(_Grounded):
    """Detection F1 (or precision / recall / soft IoU / count) over boxes matched by the Hungarian algorithm.

    Predicted and reference boxes are matched one-to-one to maximise the summed IoU; a match counts
    when its IoU reaches ``threshold``.

    ``metric``: ``f1`` (default), ``precision``, ``recall``, ``soft`` (sum of matched IoUs divided by
    max(#predicted, #reference): penalises both extra and missing boxes, as Visual-RFT), or ``count``
    (1 - |#predicted - #reference| / max(...), counting only). With ``match_labels`` a pair counts only
    when both labels agree (case-insensitive; a box without a label matches any). An empty reference
    (``[]``, ``"none"``) and no predicted box scores 1.0; any predicted box against it scores 0.0. Predictions beyond ``max_boxes`` are not
    matched but still count as predictions (so they lower precision).

    The matching uses scipy's ``linear_sum_assignment``. Bad input: otherwise as ``iou``.

    On the command line: ``--reward_funcs box_f1:metric=soft,match_labels=true``.

    Example:
        >>> r = BoxF1(gold_frame="same")
        >>> gold = "[[0,0,10,10],[20,20,30,30]]"
        >>> r(["[0,0,10,10] [20,20,30,30]", "[0,0,10,10]", "[0,0,10,10] [20,20,30,30] [50,50,60,60]"],
        ...   solution=[gold] * 3)   # P=R=1; P=1,R=.5 -> 2/3; P=2/3,R=1 -> .8
        [1.0, 0.6666666666666666, 0.8]
    """

    name = "box_f1"
    examples = (
        Example("full", "[0,0,10,10] [20,20,30,30]", 1.0, params="gold_frame=same",
                solution="[[0,0,10,10],[20,20,30,30]]"),
        Example("zero", "[50,50,60,60]", 0.0, params="gold_frame=same", solution="[[0,0,10,10],[20,20,30,30]]"),
        Example("malformed", "no boxes at all", 0.0, params="gold_frame=same",
                solution="[[0,0,10,10],[20,20,30,30]]"),
    )
    params = {**FRAME_PARAMS,
              "threshold": Param(0.5, "IoU a matched pair needs to count as a hit", min=0.0, max=1.0),
              "metric": Param("f1", "what to return", choices=("f1", "precision", "recall", "soft", "count")),
              "match_labels": Param(False, "a pair counts only if the labels agree"),
              "max_boxes": Param(100, "predicted boxes matched at most (the rest count as misses)", min=1,
                                 max=HARD_CAP)}

    def _labels_ok(self, a: Optional[str], b: Optional[str]) -> bool:
        if not self.match_labels or a is None or b is None:
            return True
        return a.strip().lower() == b.strip().lower()

    def score(self, completion: str, **row: Any) -> Score:
        got = self.unit_pairs(completion, row, limit=self.max_boxes)
        if got is None:
            return None
        preds, n_pred, golds = got
        n_gold = len(golds)
        if self.metric == "count":
            top = max(n_pred, n_gold)
            return 1.0 if top == 0 else 1.0 - abs(n_pred - n_gold) / top
        if n_gold == 0 and n_pred == 0:
            return 1.0
        if n_gold == 0 or n_pred == 0:
            return 0.0
        hits, iou_sum = self._match(preds, golds)
        precision, recall = hits / n_pred, hits / n_gold
        if self.metric == "precision":
            return precision
        if self.metric == "recall":
            return recall
        if self.metric == "soft":
            return iou_sum / max(n_pred, n_gold)
        return 0.0 if hits == 0 else 2 * precision * recall / (precision + recall)

    def _match(self, preds: List[Labeled], golds: List[Labeled]) -> Tuple[int, float]:
        """(matched pairs at or above the threshold, sum of their IoUs) under the optimal assignment.

        Only pairs reaching the threshold can count, so when no box has two such candidates the
        assignment is forced and read off directly; otherwise scipy's Hungarian solver decides.
        """
        golds = golds[:HARD_CAP]
        thr = self.threshold
        g_area = [(g[2] - g[0]) * (g[3] - g[1]) for g, _ in golds]
        cand: Dict[Tuple[int, int], float] = {}
        row_hits = [0] * len(preds)
        col_hits = [0] * len(golds)
        for i, (p, pl) in enumerate(preds):
            if not (p[2] > p[0] and p[3] > p[1]):
                continue
            pa = (p[2] - p[0]) * (p[3] - p[1])
            for j, (g, gl) in enumerate(golds):
                iw = min(p[2], g[2]) - max(p[0], g[0])
                if iw <= 0:
                    continue
                ih = min(p[3], g[3]) - max(p[1], g[1])
                if ih <= 0:
                    continue
                inter = iw * ih
                union = pa + g_area[j] - inter
                v = inter / union if union > 0 and union != float("inf") else 0.0
                if v >= thr and v > 0 and self._labels_ok(pl, gl):
                    cand[(i, j)] = v
                    row_hits[i] += 1
                    col_hits[j] += 1
        if not cand:
            return 0, 0.0
        if max(row_hits) <= 1 and max(col_hits) <= 1:
            return len(cand), float(sum(cand.values()))
        import numpy as np
        from scipy.optimize import linear_sum_assignment

        m = np.zeros((len(preds), len(golds)))
        for (i, j), v in cand.items():
            m[i, j] = v
        rows, cols = linear_sum_assignment(m, maximize=True)
        vals = m[rows, cols]
        vals = vals[vals > 0]
        return int(len(vals)), float(vals.sum())

    def explain(self, completion: str, **row: Any) -> Dict[str, Any]:
        out = super().explain(completion, **row)
        info = self._explain_boxes(completion, row, limit=self.max_boxes)
        out.update(info)
        if info["abstain"]:
            out["reason"] = f"abstained: {info['abstain']}"
            return out
        preds = [(tuple(b), d["label"]) for b, d in zip(info["unit_predicted"], info["predicted"])]
        golds = [(tuple(b), d["label"]) for b, d in zip(info["unit_gold"], info["gold_boxes"])]
        n_pred, n_gold = info["predicted_total"], len(golds)
        out.update(n_predicted=n_pred, n_gold=n_gold, threshold=self.threshold, metric=self.metric)
        if self.metric == "count" or n_pred == 0 or n_gold == 0:
            out["reason"] = f"{n_pred} predicted and {n_gold} reference boxes ({self.metric})"
            return out
        import numpy as np
        from scipy.optimize import linear_sum_assignment

        m = np.zeros((len(preds), len(golds)))
        for i, (p, pl) in enumerate(preds):
            for j, (g, gl) in enumerate(golds):
                v = iou(p, g)
                m[i, j] = v if v >= self.threshold and v > 0 and self._labels_ok(pl, gl) else 0.0
        rows_, cols = linear_sum_assignment(m, maximize=True)
        pairs = [{"predicted": int(i), "gold": int(j), "iou": float(m[i, j])} for i, j in zip(rows_, cols) if m[i, j] > 0]
        hits = len(pairs)
        precision, recall = hits / n_pred, hits / n_gold
        out.update(matched_pairs=pairs, hits=hits, precision=precision, recall=recall,
                   iou_sum=float(sum(p["iou"] for p in pairs)))
        out["reason"] = (f"{hits} of {n_pred} predicted boxes matched {n_gold} reference boxes at IoU >= "
                         f"{self.threshold:g}: precision {precision:g}, recall {recall:g}")
        return out


class PointInBox(_Grounded):
    """1.0 when the predicted click point lies inside the reference box (GUI / click grounding), else 0.0.

    The point is ``{"point_2d": [x, y]}``, ``[x, y]``, ``(x, y)``, or the centre of a predicted box,
    in the model's ``frame``. With several reference boxes any of them counts. A point on the border
    counts as inside.

    Bad input: no point scores 0; otherwise as ``iou``.

    On the command line: ``--reward_funcs point_in_box:frame=qwen2_5_vl``.

    Example:
        >>> r = PointInBox(frame="norm1000", gold_frame="pixels")
        >>> r(["click(250, 500)", "(900, 100)"], solution=["[0, 0, 100, 100]"] * 2, image_size=[[200, 100]] * 2)
        [1.0, 0.0]
    """

    name = "point_in_box"
    examples = (
        Example("full", "click(250, 500)", 1.0, solution="[0, 0, 100, 100]", image_size=[200, 100]),
        Example("zero", "(900, 100)", 0.0, solution="[0, 0, 100, 100]", image_size=[200, 100]),
        Example("malformed", "no point", 0.0, solution="[0, 0, 100, 100]", image_size=[200, 100]),
    )
    params = FRAME_PARAMS

    def score(self, completion: str, **row: Any) -> Score:
        raw = row.get(self.gold_key)
        golds = self._golds(raw)
        if not golds or not all(valid(b) for b, _ in golds):
            return None
        gold_frame = self._gold_frame(raw)
        ok, size = self._size(row, self._pred_frame, gold_frame)
        if not ok:
            return None
        pt = parse_point(scope(completion, self.extract))
        if pt is None:
            return 0.0
        if not self._same_scale(self._pred_frame, gold_frame):
            pt = self._pred_frame.point_to_unit(pt, size)
            golds = [(gold_frame.to_unit(b, size), lab) for b, lab in golds]
            if pt is None or any(b is None for b, _ in golds):
                return None
        return 1.0 if any(point_in(pt, b) for b, _ in golds) else 0.0

    def explain(self, completion: str, **row: Any) -> Dict[str, Any]:
        out = super().explain(completion, **row)
        info = self._explain_boxes(completion, row, limit=1)
        info.pop("predicted", None), info.pop("predicted_total", None), info.pop("unit_predicted", None)
        out.update(info)
        pt = parse_point(scope(completion, self.extract))
        out["point"] = None if pt is None else list(pt)
        if info["abstain"] or not info.get("gold_boxes"):
            out["reason"] = f"abstained: {info['abstain'] or 'the reference holds no box'}"
            return out
        if pt is None:
            out["reason"] = "no point found in the answer: 0"
            return out
        size = tuple(info["image_size"]) if info.get("image_size") else None
        unit = list(pt) if info["same_scale"] else list(self._pred_frame.point_to_unit(pt, size) or [])
        out["unit_point"] = unit
        inside = [g for g in info["unit_gold"] if unit and point_in(tuple(unit), tuple(g))]
        out["inside"] = inside
        out["reason"] = "the point lies in a reference box: 1" if inside else "the point lies in no reference box: 0"
        return out
