"""Detection rewards: COCO average precision of a completion's labelled boxes (``map``, ``ap50``).

The number is what pycocotools' ``COCOeval`` (``iouType="bbox"``) reports as ``stats[0]`` (AP at IoU
.50:.05:.95) or ``stats[1]`` (AP at IoU .50) for the one image a completion answers: boxes grouped by
label (categories), predictions sorted by confidence and cut at ``max_dets`` per category, greedy
matching per IoU threshold (a crowd reference box absorbs any number of predictions, which are then
neither right nor wrong), precision made monotone and read at the 101 recall points 0, .01, ..., 1,
averaged over thresholds, recall points and the categories that have a reference box that is not crowd.
:func:`coco_average_precision` gives the same over many images (one ``COCOeval`` over a data set); the
tests compare both with pycocotools itself.

Boxes are read and put into one frame by the grounding machinery (:mod:`.grounding`, :mod:`.boxes`): the
same ``frame`` / ``gold_frame`` names, image-size columns and Qwen2.5-VL smart-resize policy as ``iou``.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from ..params import Param
from .base import Score
from .contract import Example
from .boxes import HARD_CAP, Box, gold_objects, parse_detections
from .grounding import FRAME_PARAMS, _Grounded

#: COCO's area range "all": predictions and references whose area lies outside are ignored
AREA_ALL = (0.0, 1e10)
_EPS = 2.220446049250313e-16        # np.spacing(1), as COCOeval.accumulate adds it to tp + fp
_GRID: Dict[str, List[float]] = {}


def coco_grid(name: str) -> List[float]:
    """COCOeval's own thresholds, made the way ``pycocotools.cocoeval.Params`` makes them (``np.linspace``, so
    the floats are bit-identical: 0.8999999999999999 is one of them): ``iou`` (.50:.05:.95), ``iou50`` ([.5])
    or ``recall`` (0:.01:1, 101 points)."""
    got = _GRID.get(name)
    if got is None:
        import numpy as np

        if name == "iou":
            got = np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1, endpoint=True).tolist()
        elif name == "iou50":
            got = [0.5]
        elif name == "recall":
            got = np.linspace(.0, 1.00, int(np.round((1.00 - .0) / .01)) + 1, endpoint=True).tolist()
        else:
            raise ValueError(f"unknown COCO grid {name!r}")
        _GRID[name] = got
    return got


def box_iou(d: Box, g: Box, crowd: bool = False) -> float:
    """IoU of a predicted box ``d`` and a reference box ``g`` (``x1, y1, x2, y2``) computed as pycocotools'
    ``maskUtils.iou`` does for boxes (``bbIou``, on ``x, y, w, h``): for a crowd reference the union is the
    prediction's own area. A box with no overlap (or no positive width / height) gives 0.

    >>> box_iou((0, 0, 2, 2), (1, 1, 3, 3)), box_iou((0, 0, 2, 2), (0, 0, 4, 4), crowd=True)
    (0.14285714285714285, 1.0)
    """
    dw, dh, gw, gh = d[2] - d[0], d[3] - d[1], g[2] - g[0], g[3] - g[1]
    w = min(dw + d[0], gw + g[0]) - max(d[0], g[0])
    if w <= 0:
        return 0.0
    h = min(dh + d[1], gh + g[1]) - max(d[1], g[1])
    if h <= 0:
        return 0.0
    i = w * h
    u = dw * dh if crowd else dw * dh + gw * gh - i
    return i / u


class ImageEval:
    """COCOeval.evaluateImg for one image and one category (area range "all"): the predictions kept (sorted by
    confidence, at most ``max_dets``), per IoU threshold which of them matched a reference (``matched``) and
    which are ignored (matched a crowd box, or an area outside the range), and the references that count.
    ``limits`` are the thresholds as COCO compares with them, ``min(t, 1 - 1e-10)``. A threshold whose outcome
    equals the previous one's shares its lists (:func:`accumulate` then reuses its result)."""

    __slots__ = ("scores", "matched", "ignored", "counted")

    def __init__(self, dets: Sequence[Tuple[Box, float]], gts: Sequence[Tuple[Box, bool]],
                 limits: Sequence[float], max_dets: int):
        lo, hi = AREA_ALL
        gt_ignore = [bool(c) or not (lo <= (b[2] - b[0]) * (b[3] - b[1]) <= hi) for b, c in gts]
        order = sorted(range(len(gts)), key=gt_ignore.__getitem__)          # stable: counted ones first
        gts = [gts[i] for i in order]
        g_ig = [gt_ignore[i] for i in order]
        dets = sorted(dets, key=lambda x: -x[1])[:max_dets]                # stable, as mergesort
        self.scores = [s for _, s in dets]
        self.counted = g_ig.count(False)
        floor = min(limits)
        # the references each prediction could match at the lowest threshold, in reference order
        cands = []
        for di, (d, _) in enumerate(dets):
            row = []
            for j, (g, c) in enumerate(gts):
                v = box_iou(d, g, c)
                if v >= floor:
                    row.append((j, v))
            if row:
                cands.append((di, row))
        # an unmatched prediction is ignored when its area lies outside the range
        outside = [not (lo <= (d[2] - d[0]) * (d[3] - d[1]) <= hi) for d, _ in dets]
        self.matched: List[List[bool]] = []
        self.ignored: List[List[bool]] = []
        if not cands:
            unmatched = [False] * len(dets)
            self.matched = [unmatched] * len(limits)
            self.ignored = [outside] * len(limits)
            return
        crowd = [c for _, c in gts]
        for limit in limits:
            taken = [False] * len(gts)
            matched = [False] * len(dets)
            ignored = list(outside)
            for di, row in cands:
                best, m = limit, -1
                for j, v in row:
                    if taken[j] and not crowd[j]:
                        continue
                    if m > -1 and not g_ig[m] and g_ig[j]:
                        break
                    if v < best:
                        continue
                    best, m = v, j
                if m == -1:
                    continue
                ignored[di] = g_ig[m]
                matched[di] = True
                taken[m] = True
            if self.matched and matched == self.matched[-1] and ignored == self.ignored[-1]:
                matched, ignored = self.matched[-1], self.ignored[-1]
            self.matched.append(matched)
            self.ignored.append(ignored)


def accumulate(evals: Sequence[ImageEval], n_thresholds: int) -> Optional[List[float]]:
    """COCOeval.accumulate for one category, over the images' evaluations in order: per IoU threshold, the mean
    of the interpolated precision at the 101 recall points (the AP at that threshold); None when no reference
    counts (COCO's -1).

    COCO fills a table ``q[r]`` with the precision, made monotone from the right, at the first detection whose
    recall reaches ``rec_thrs[r]`` (``np.searchsorted(rc, rec_thrs, "left")``; 0 past the last). The same sum
    is taken here without the table: detection ``i`` serves the recall points in ``(rc[i-1], rc[i]]``, counted by
    bisection on COCO's own recall grid, so the comparisons are COCO's."""
    counted = sum(e.counted for e in evals)
    if counted == 0:
        return None
    rec_thrs = coco_grid("recall")
    n_rec = len(rec_thrs)
    if len(evals) == 1:
        order = None
    else:
        scores = [s for e in evals for s in e.scores]
        order = sorted(range(len(scores)), key=lambda i: -scores[i])        # stable, as mergesort
    out: List[float] = []
    for t in range(n_thresholds):
        if order is None:
            matched, ignored = evals[0].matched[t], evals[0].ignored[t]
            if t and matched is evals[0].matched[t - 1] and ignored is evals[0].ignored[t - 1]:
                out.append(out[-1])                 # the same outcome as the previous threshold
                continue
        else:
            matched = [m for e in evals for m in e.matched[t]]
            ignored = [g for e in evals for g in e.ignored[t]]
            matched = [matched[i] for i in order]
            ignored = [ignored[i] for i in order]
        tp = fp = 0
        rc: List[float] = []
        pr: List[float] = []
        for m, ig in zip(matched, ignored):
            if not ig:
                if m:
                    tp += 1
                else:
                    fp += 1
            rc.append(tp / counted)
            pr.append(tp / (fp + tp + _EPS))
        total, best = 0.0, 0.0
        upto = bisect_right(rec_thrs, rc[-1]) if rc else 0
        for i in range(len(rc) - 1, -1, -1):
            if pr[i] > best:                        # precision made monotone from the right
                best = pr[i]
            lower = bisect_right(rec_thrs, rc[i - 1]) if i else 0
            if upto > lower:
                total += (upto - lower) * best
                upto = lower
        out.append(total / n_rec)
    return out


def _key(label: Optional[str]) -> Optional[str]:
    return label.strip().lower() if isinstance(label, str) else None


def coco_average_precision(images: Iterable[Tuple[Sequence[tuple], Sequence[tuple]]],
                           thresholds: Optional[Sequence[float]] = None, max_dets: int = 100,
                           per_category: Optional[Dict[Any, Optional[List[float]]]] = None) -> Optional[float]:
    """COCO box AP over images, equal to pycocotools' ``COCOeval`` ``stats[0]`` (``thresholds`` None: .50:.05:.95)
    or ``stats[1]`` (``thresholds=[0.5]``) with ``maxDets = [1, 10, max_dets]`` (for ``max_dets`` other than 100:
    the mean of COCOeval's precision table at that maxDets; its ``summarize`` reads ``stats[0]`` at 100 only).

    Each image is ``(detections, references)``: detections ``(box, label, score)`` (score None: the order given,
    as equal confidences), references ``(box, label, iscrowd)``; boxes ``(x1, y1, x2, y2)`` in one frame; a label
    is a category (compared stripped and case-insensitively; None is a category of its own). Images count in the
    order given (it breaks ties of confidence between images, as COCO's image ids do). None when no category has
    a reference box that is not crowd (COCOeval reports -1). The value is rounded to 12 decimals (COCO adds
    2.2e-16 to every precision's denominator, which would make a perfect answer 0.9999999999999998).
    ``per_category`` (a dict) receives each category's AP per IoU threshold (None for a category without a
    counted reference).

    >>> gold = [((0, 0, 10, 10), "cat", False), ((20, 20, 30, 30), "dog", False)]
    >>> coco_average_precision([([((0, 0, 10, 10), "cat", 0.9), ((50, 50, 60, 60), "dog", 0.8)], gold)])
    0.5
    """
    thresholds = list(coco_grid("iou") if thresholds is None else thresholds)
    limits = [min(t, 1 - 1e-10) for t in thresholds]
    by_cat: Dict[Any, List[ImageEval]] = {}
    for dets, gts in images:
        groups: Dict[Any, Tuple[list, list]] = {}
        for k, (box, label, score) in enumerate(dets):
            groups.setdefault(_key(label), ([], []))[0].append((box, 1.0 if score is None else score))
        for box, label, crowd in gts:
            groups.setdefault(_key(label), ([], []))[1].append((box, bool(crowd)))
        for cat, (d, g) in groups.items():
            by_cat.setdefault(cat, []).append(ImageEval(d, g, limits, max_dets))
    tables = []
    for cat, evals in by_cat.items():
        per_t = accumulate(evals, len(thresholds))
        if per_category is not None:
            per_category[cat] = per_t
        if per_t is not None:
            tables.append(math.fsum(per_t) / len(per_t))
    if not tables:
        return None
    # rounded: COCO's tp / (tp + fp + 2.2e-16) makes a perfect answer 0.9999999999999998
    return round(math.fsum(tables) / len(tables), 12)


class MeanAP(_Grounded):
    """COCO mAP (AP at IoU .50:.05:.95, 101-point interpolation) of the predicted labelled boxes, frame-aware.

    The completion lists boxes with labels and optionally confidences, e.g.
    ``[{"bbox_2d": [x1, y1, x2, y2], "label": "cat", "score": 0.9}]`` (the formats ``iou`` reads; a box without
    a confidence ranks by its position in the list). The reference (``gold_key``) holds labelled boxes: a list
    of ``bbox_2d`` objects, or an ms-swift ``objects`` dict ``{"ref", "bbox", "bbox_type"}`` (what ``swift-ext
    convert`` writes from COCO / RefCOCO and ms-swift grounding rows), with optional ``iscrowd`` flags. The score
    equals pycocotools' ``COCOeval`` ``stats[0]`` on this one image: per category (label, compared
    case-insensitively), greedy matching by confidence, crowd boxes ignored, categories without a non-crowd
    reference box not averaged (so a box of a label the reference lacks costs nothing under COCO rules: use
    ``overprediction=length``).

    ``overprediction=length`` multiplies the AP by ``min(1, #reference / #predicted)`` (VLM-R1's odLength
    reward), so listing many boxes to raise recall costs. ``match_labels=false`` puts every box in one category
    (class-agnostic AP); it is also what happens when the reference has no labels.

    No reference box and no predicted box scores 1.0; predicted boxes against an empty reference, or no box
    against a non-empty one, score 0.0 (VLM-R1's convention; COCOeval reports -1 or 0 there). A reference
    with crowd boxes only is undefined under COCO: the reward abstains.

    Bad input: no parseable box scores 0 (or 1 against an empty reference); abstains as ``iou`` on a missing,
    malformed or inverted reference, or a frame conversion without the image size.

    On the command line: ``--reward_funcs map:frame=qwen2_5_vl,overprediction=length``.

    Example:
        >>> r = MeanAP(gold_frame="same")
        >>> gold = '[{"bbox_2d": [0, 0, 100, 100], "label": "cat"}, {"bbox_2d": [200, 200, 300, 300], "label": "dog"}]'
        >>> r(['[{"bbox_2d": [0, 0, 100, 100], "label": "cat"}, {"bbox_2d": [200, 200, 300, 300], "label": "dog"}]',
        ...    '[{"bbox_2d": [0, 0, 100, 100], "label": "cat"}]', "no boxes"], solution=[gold] * 3)
        [1.0, 0.5, 0.0]
    """

    name = "map"
    examples = (  # IoU 0.9 passes 9 of the 10 thresholds 0.50:0.05:0.95
        Example("full", '[{"bbox_2d": [0, 0, 100, 100], "label": "cat"}]', 1.0, params="gold_frame=same", solution='[{"bbox_2d": [0, 0, 100, 100], "label": "cat"}]'),
        Example("full", '[{"bbox_2d": [0, 0, 100, 90], "label": "cat"}]', 0.9, params="gold_frame=same",
                solution='[{"bbox_2d": [0, 0, 100, 100], "label": "cat"}]'),
        Example("zero", '[{"bbox_2d": [500, 500, 600, 600], "label": "cat"}]', 0.0, params="gold_frame=same",
                solution='[{"bbox_2d": [0, 0, 100, 100], "label": "cat"}]'),
        Example("malformed", "no boxes", 0.0, params="gold_frame=same", solution='[{"bbox_2d": [0, 0, 100, 100], "label": "cat"}]'),
        Example("malformed", '[{"bbox_2d": [0, 0, 100, 100], "label": "cat"}]', None, params="gold_frame=same", solution="not boxes"),
    )
    abstains = ("when the reference column is missing or malformed, holds only crowd boxes, or a frame conversion "
                "needs the image size and the row has none")
    params = {**FRAME_PARAMS,
              "max_dets": Param(100, "predictions kept per category, highest confidence first (COCO maxDets)",
                                min=1, max=HARD_CAP),
              "match_labels": Param(True, "one category per label (false: class-agnostic AP)"),
              "overprediction": Param("none", "none: the AP as COCO computes it; length: times min(1, #reference / "
                                      "#predicted) (VLM-R1)", choices=("none", "length"))}
    read_predictions = staticmethod(parse_detections)
    read_gold = staticmethod(gold_objects)
    item_fields = (("label", "score"), ("label", "iscrowd"))
    #: ``None``: COCO's .50:.05:.95; a subclass sets its own
    thresholds: Optional[Tuple[float, ...]] = None

    def _thresholds(self) -> List[float]:
        return list(self.thresholds) if self.thresholds is not None else coco_grid("iou")

    def _evaluate(self, completion: str, row: Dict[str, Any], per_category: Optional[dict] = None
                  ) -> Tuple[Optional[float], str, Optional[tuple]]:
        """(score, why, (predicted, total, references) in one frame)."""
        got = self.unit_pairs(completion, row)
        if got is None:
            return None, "abstain", None
        preds, total, golds = got
        if not any(not crowd for _, _, crowd in golds):
            if golds:
                return None, "crowd_only", got
            return (1.0 if total == 0 else 0.0), "empty_reference", got
        if total == 0:
            return 0.0, "no_prediction", got
        if not self.match_labels or all(lab is None for _, lab, _ in golds):
            preds = [(b, None, s) for b, _, s in preds]
            golds = [(b, None, c) for b, _, c in golds]
        ap = coco_average_precision([(preds, golds)], self._thresholds(), self.max_dets, per_category)
        if ap is None:      # cannot happen: a counted reference box exists
            return None, "crowd_only", got
        if self.overprediction == "length" and total > len(golds):
            ap *= len(golds) / total
        return ap, "ap", got

    def score(self, completion: str, **row: Any) -> Score:
        return self._evaluate(completion, row)[0]

    def explain(self, completion: str, **row: Any) -> Dict[str, Any]:
        out = super().explain(completion, **row)
        info = self._explain_boxes(completion, row)
        out.update(info)
        tables: Dict[Any, Any] = {}
        value, why, got = self._evaluate(completion, row, tables)
        out.update(iou_thresholds=self._thresholds(), max_dets=self.max_dets, match_labels=self.match_labels,
                   overprediction=self.overprediction)
        if why == "abstain":
            out["reason"] = f"abstained: {info['abstain']}"
            return out
        _, total, golds = got  # type: ignore[misc]
        n_gold = len(golds)
        if why == "crowd_only":
            out["reason"] = "abstained: every reference box is a crowd region (COCO leaves the AP undefined)"
        elif why == "empty_reference":
            out["reason"] = f"the reference holds no box and the answer {'none' if total == 0 else f'{total}'}: {value:g}"
        elif why == "no_prediction":
            out["reason"] = f"no box in the answer, {n_gold} reference boxes: 0"
        else:
            cats = {}
            for cat, per_t in tables.items():
                cats["(no label)" if cat is None else cat] = None if per_t is None else {
                    "ap": math.fsum(per_t) / len(per_t), "ap_per_threshold": per_t}
            counted = [c for c, v in cats.items() if v is not None]
            out.update(categories=cats, n_predicted=total, n_gold=n_gold)
            mean = math.fsum(cats[c]["ap"] for c in counted) / len(counted)
            out["ap"] = mean
            out["reason"] = (f"mean AP over {len(counted)} categories with a counted reference box: {mean:g}"
                             + (f"; times min(1, {n_gold}/{total}) for over-prediction" if
                                self.overprediction == "length" and total > n_gold else ""))
        return out


class AP50(MeanAP):
    """COCO AP at IoU 0.5 (``stats[1]``, PASCAL-style threshold, 101-point interpolation) of the labelled boxes.

    Everything else as ``map``: frames, labels, confidences, crowd boxes, ``max_dets``, ``overprediction``.

    Bad input: as ``map``.

    On the command line: ``--reward_funcs ap50:frame=qwen2_vl,gold_frame=pixels``.

    Example:
        >>> r = AP50(gold_frame="same")
        >>> r(['[{"bbox_2d": [0, 0, 100, 80], "label": "cat"}]'], solution=['[{"bbox_2d": [0, 0, 100, 100], "label": "cat"}]'])
        [1.0]
    """

    name = "ap50"
    examples = (  # IoU 0.9 >= 0.5: a hit
        Example("full", '[{"bbox_2d": [0, 0, 100, 90], "label": "cat"}]', 1.0, params="gold_frame=same",
                solution='[{"bbox_2d": [0, 0, 100, 100], "label": "cat"}]'),
        Example("zero", '[{"bbox_2d": [500, 500, 600, 600], "label": "cat"}]', 0.0, params="gold_frame=same",
                solution='[{"bbox_2d": [0, 0, 100, 100], "label": "cat"}]'),
        Example("malformed", "no boxes", 0.0, params="gold_frame=same", solution='[{"bbox_2d": [0, 0, 100, 100], "label": "cat"}]'),
        Example("malformed", '[{"bbox_2d": [0, 0, 100, 100], "label": "cat"}]', None, params="gold_frame=same", solution="not boxes"),
    )
    thresholds = (0.5,)
