"""``map`` / ``ap50``: equal to pycocotools' ``COCOeval`` (the reference, installed as a test dependency) on
generated images: labelled boxes with and without confidences, crowd boxes, images with no prediction and
with no reference, duplicates, boxes of labels the reference lacks, inverted boxes, more predictions than
``maxDets``, and integer boxes whose IoU lands exactly on a threshold. Per image (the reward) and over the
whole set (``coco_average_precision``), within 1e-6."""

import contextlib
import io
import json
import random

import pytest

from swift_ext.rewards import build
from swift_ext.rewards.detection import box_iou, coco_average_precision, coco_grid

pycocotools = pytest.importorskip("pycocotools")
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval, Params  # noqa: E402

LABELS = ["cat", "dog", "person", "car", "bus"]


def make_images(n, seed):
    """Per image: (width, height, predictions [(box, label, score|None)], references [(box, label, crowd)])."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        w, h = rng.choice([(640, 480), (500, 375), (1000, 700), (333, 444)])
        integer = rng.random() < 0.5
        kind = rng.random()

        def coord(lo, hi):
            return rng.randint(int(lo), int(hi)) if integer else rng.uniform(lo, hi)

        golds = []
        n_gold = 0 if kind < 0.08 else rng.randint(1, 8)
        for _ in range(n_gold):
            x1, y1 = coord(0, w - 40), coord(0, h - 40)
            box = (x1, y1, x1 + coord(5, min(200, w - x1)), y1 + coord(5, min(200, h - y1)))
            golds.append((box, rng.choice(LABELS[:3] if rng.random() < 0.8 else LABELS), rng.random() < 0.1))
        ties = []
        if integer and golds and rng.random() < 0.3:     # a 20 x 10 box and one whose IoU is exactly k / 20
            x1, y1 = rng.randint(0, w - 40), rng.randint(0, h - 40)
            golds.append(((x1, y1, x1 + 20, y1 + 10), "cat", False))
            ties.append(((x1, y1, x1 + rng.randint(9, 20), y1 + 10), "cat"))
        preds = []
        if kind >= 0.16:                                           # 8 % no reference, 8 % no prediction
            for box, label, _ in golds:
                for _ in range(rng.choice([0, 1, 1, 1, 2])):          # missed, found, duplicated
                    sx, sy = max(1, (box[2] - box[0]) // 10), max(1, (box[3] - box[1]) // 10)
                    j = [coord(-sx, sx), coord(-sy, sy), coord(-sx, sx), coord(-sy, sy)]
                    pb = (box[0] + j[0], box[1] + j[1], box[2] + j[2], box[3] + j[3])
                    lab = label if rng.random() < 0.85 else rng.choice(LABELS)
                    preds.append([pb, lab.upper() if rng.random() < 0.1 else lab])
            for _ in range(rng.choice([0, 0, 1, 3, 120 if rng.random() < 0.05 else 2])):   # false alarms
                x1, y1 = coord(0, w - 20), coord(0, h - 20)
                preds.append([(x1, y1, x1 + coord(1, 150), y1 + coord(1, 150)), rng.choice(LABELS)])
            preds += [list(t) for t in ties]
            if preds and rng.random() < 0.05:                     # an inverted box
                b = preds[0][0]
                preds[0][0] = (b[2], b[1], b[0], b[3])
            rng.shuffle(preds)
            scored = rng.random()
            for p in preds:
                if scored < 0.3:
                    p.append(None)                                  # no confidences: the order given
                elif scored < 0.6:
                    p.append(round(rng.random(), 1))                # many ties
                else:
                    p.append(rng.random())
        out.append((w, h, [tuple(p) for p in preds], golds))
    return out


def xywh(b):
    return [b[0], b[1], b[2] - b[0], b[3] - b[1]]


def coco_stats(images, max_dets=100, ids=None):
    """pycocotools' stats[0], stats[1] over ``images`` (labels compared case-insensitively, as the reward does)."""
    ids = ids or list(range(1, len(images) + 1))
    cats = [{"id": k + 1, "name": lab} for k, lab in enumerate(LABELS)]
    cat_id = {lab: k + 1 for k, lab in enumerate(LABELS)}
    gt = {"images": [{"id": i, "width": w, "height": h} for i, (w, h, _, _) in zip(ids, images)],
          "categories": cats, "annotations": []}
    dt = {"images": gt["images"], "categories": cats, "annotations": []}
    for i, (_, _, preds, golds) in zip(ids, images):
        for box, label, crowd in golds:
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": i, "category_id": cat_id[label],
                                      "bbox": xywh(box), "area": (box[2] - box[0]) * (box[3] - box[1]),
                                      "iscrowd": int(crowd)})
        for box, label, score in preds:           # as COCO.loadRes builds result annotations
            bb = xywh(box)
            dt["annotations"].append({"id": len(dt["annotations"]) + 1, "image_id": i,
                                      "category_id": cat_id[label.lower()], "bbox": bb, "area": bb[2] * bb[3],
                                      "score": 1.0 if score is None else score, "iscrowd": 0})
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt, coco_dt = COCO(), COCO()
        coco_gt.dataset, coco_dt.dataset = gt, dt
        coco_gt.createIndex()
        coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.params.maxDets = [1, 10, max_dets]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    # summarize() reads stats[0] at maxDets=100 whatever maxDets says: read the precision table at maxDets[2]
    prec = ev.eval["precision"][:, :, :, 0, 2]
    m = prec[prec > -1].mean() if (prec > -1).any() else -1.0
    p50 = prec[0][prec[0] > -1]
    m50 = p50.mean() if p50.size else -1.0
    if max_dets == 100:
        assert (m, m50) == (ev.stats[0], ev.stats[1])
    return float(m), float(m50)


def ours(images, thresholds=None, max_dets=100):
    got = coco_average_precision([(p, g) for _, _, p, g in images], thresholds, max_dets)
    return -1.0 if got is None else got


def completion(preds):
    items = []
    for box, label, score in preds:
        item = {"bbox_2d": list(box), "label": label}
        if score is not None:
            item["score"] = score
        items.append(item)
    return "<answer>" + json.dumps(items) + "</answer>"


def gold_column(golds):
    return json.dumps([{"bbox_2d": list(b), "label": lab, "iscrowd": int(c)} for b, lab, c in golds])


IMAGES = make_images(600, seed=7)


def test_the_grid_is_pycocotools_own():
    p = Params("bbox")
    assert coco_grid("iou") == p.iouThrs.tolist() and coco_grid("recall") == p.recThrs.tolist()


def test_box_iou_is_pycocotools_mask_iou():
    from pycocotools import mask

    rng = random.Random(1)
    for _ in range(2000):
        d = [rng.randint(0, 50) for _ in range(2)]
        d += [d[0] + rng.randint(-5, 40), d[1] + rng.randint(-5, 40)]
        g = [rng.uniform(0, 50) for _ in range(2)]
        g += [g[0] + rng.uniform(1, 40), g[1] + rng.uniform(1, 40)]
        for crowd in (0, 1):
            ref = mask.iou([xywh(d)], [xywh(g)], [crowd])[0][0]
            assert box_iou(d, g, bool(crowd)) == ref


def test_generated_cases_cover_the_boundaries():
    """The generator really produces what the docstring promises (so the comparisons below test them)."""
    assert sum(1 for _, _, p, _ in IMAGES if not p) >= 40 and sum(1 for _, _, _, g in IMAGES if not g) >= 30
    assert sum(1 for _, _, _, g in IMAGES for _, _, c in g if c) >= 100
    assert any(len(p) > 100 for _, _, p, _ in IMAGES)
    ties = 0
    for _, _, preds, golds in IMAGES:
        for b, _, _ in preds:
            for g, _, c in golds:
                if box_iou(b, g, c) in coco_grid("iou"):
                    ties += 1
    assert ties >= 20                               # IoU exactly on a threshold (integer boxes)


@pytest.mark.parametrize("max_dets", [100, 20])
def test_dataset_ap_equals_cocoeval(max_dets):
    m, m50 = coco_stats(IMAGES, max_dets)
    assert ours(IMAGES, max_dets=max_dets) == pytest.approx(m, abs=1e-6)
    assert ours(IMAGES, [0.5], max_dets) == pytest.approx(m50, abs=1e-6)
    assert 0.2 < m < 0.9                            # a meaningful AP, not a degenerate one


def test_per_image_ap_equals_cocoeval_on_each_image():
    undefined = 0
    for img in IMAGES:
        m, m50 = coco_stats([img])
        assert ours([img]) == pytest.approx(m, abs=1e-6), img
        assert ours([img], [0.5]) == pytest.approx(m50, abs=1e-6), img
        undefined += m == -1
    assert undefined >= 30                         # COCO's -1 (no counted reference) met and agreed on


@pytest.mark.parametrize("spec,stat", [("map", 0), ("ap50", 1)])
def test_reward_on_completions_equals_cocoeval_per_image(spec, stat):
    """The reward end to end on completion text and a gold column (boxes in pixels on both sides), mapped to
    COCO's number where COCO defines one; its own documented conventions where COCO reports -1."""
    reward = build(f"{spec}:frame=pixels,gold_frame=pixels")
    comps = [completion(p) for _, _, p, _ in IMAGES]
    golds = [gold_column(g) for _, _, _, g in IMAGES]
    scores = reward(comps, solution=golds, image_size=[[w, h] for w, h, _, _ in IMAGES])
    for img, got in zip(IMAGES, scores):
        want = coco_stats([img])[stat]
        _, _, preds, golds_ = img
        if want == -1:                              # no non-crowd reference box
            if golds_:
                assert got is None                  # crowd boxes only: undefined, abstains
            else:
                assert got == (1.0 if not preds else 0.0)
        else:
            assert got == pytest.approx(want, abs=1e-6)


def test_frames_convert_before_matching():
    """Predictions in Qwen2-VL's 0-1000 frame against references in pixels: COCOeval on the same boxes both put
    in the unit square by the test itself."""
    reward = build("map:frame=qwen2_vl,gold_frame=pixels")
    checked = 0
    for w, h, preds, golds in IMAGES[:150]:
        if not golds or not preds:
            continue
        p1000 = [((b[0] / w * 1000, b[1] / h * 1000, b[2] / w * 1000, b[3] / h * 1000), lab, s)
                 for b, lab, s in preds]
        unit_p = [((b[0] / 1000, b[1] / 1000, b[2] / 1000, b[3] / 1000), lab, s) for b, lab, s in p1000]
        unit_g = [((b[0] / w, b[1] / h, b[2] / w, b[3] / h), lab, c) for b, lab, c in golds]
        want = coco_stats([(1, 1, unit_p, unit_g)])[0]
        got = reward([completion(p1000)], solution=[gold_column(golds)], image_size=[[w, h]])[0]
        if want == -1:
            continue
        assert got == pytest.approx(want, abs=1e-6)
        checked += 1
    assert checked >= 100


def test_overprediction_penalty_is_vlm_r1s_length_factor():
    gold = json.dumps([{"bbox_2d": [0, 0, 10, 10], "label": "cat"}, {"bbox_2d": [20, 20, 30, 30], "label": "cat"}])
    right = [{"bbox_2d": [0, 0, 10, 10], "label": "cat"}, {"bbox_2d": [20, 20, 30, 30], "label": "cat"}]
    extra = right + [{"bbox_2d": [50, 50, 60, 60], "label": "dog"}, {"bbox_2d": [70, 70, 80, 80], "label": "dog"}]
    plain, penalised = build("map:gold_frame=same"), build("map:gold_frame=same,overprediction=length")
    # COCO: the two dog boxes have no dog reference, so they cost nothing; VLM-R1's factor 2/4 makes them cost
    assert plain([json.dumps(extra)], solution=[gold]) == [1.0]
    assert penalised([json.dumps(extra)], solution=[gold]) == [0.5]
    assert penalised([json.dumps(right)], solution=[gold]) == [1.0]


def test_labels_class_agnostic_and_unlabelled_reference():
    gold = json.dumps([{"bbox_2d": [0, 0, 10, 10], "label": "cat"}])
    wrong_label = json.dumps([{"bbox_2d": [0, 0, 10, 10], "label": "dog"}])
    assert build("map:gold_frame=same")([wrong_label], solution=[gold]) == [0.0]
    assert build("map:gold_frame=same,match_labels=false")([wrong_label], solution=[gold]) == [1.0]
    assert build("map:gold_frame=same")([wrong_label], solution=["[0, 0, 10, 10]"]) == [1.0]   # gold has no labels


def test_explain_recomputes_the_score():
    reward = build("map:gold_frame=same")
    gold = json.dumps([{"bbox_2d": [0, 0, 10, 10], "label": "cat"}, {"bbox_2d": [20, 20, 30, 30], "label": "dog"},
                       {"bbox_2d": [40, 40, 90, 90], "label": "dog", "iscrowd": 1}])
    comp = json.dumps([{"bbox_2d": [0, 0, 10, 9], "label": "cat", "score": 0.9},
                       {"bbox_2d": [45, 45, 60, 60], "label": "dog", "score": 0.8},
                       {"bbox_2d": [21, 20, 30, 30], "label": "dog", "score": 0.7}])
    ex = reward.explain(comp, solution=gold)
    assert ex["score"] == reward([comp], solution=[gold])[0]
    cats = ex["categories"]
    assert set(cats) == {"cat", "dog"}
    # cat: IoU .9 matches at thresholds .50-.90 (9 of 10); dog: the crowd-matched box is ignored, the other
    # (IoU .9) matches at 9 of 10 thresholds: the per-threshold APs the explanation lists average to the score
    for c in cats.values():
        assert c["ap_per_threshold"] == pytest.approx([1.0] * 9 + [0.0], abs=1e-12)
    assert ex["score"] == pytest.approx(sum(sum(c["ap_per_threshold"]) / 10 for c in cats.values()) / 2)
    assert ex["gold_boxes"][2]["iscrowd"] is True and ex["predicted"][0]["score"] == 0.9


def test_abstains_and_bad_input():
    r = build("map:gold_frame=same")
    crowd_only = json.dumps([{"bbox_2d": [0, 0, 10, 10], "label": "cat", "iscrowd": 1}])
    assert r(["[0, 0, 10, 10]", "x", "[0,0,10,10]"], solution=[crowd_only, None, "[5, 5, 1, 1]"]) == [None] * 3
    assert r(["nothing here", "[1, 2, 3, 4]"], solution=["[]", "[]"]) == [1.0, 0.0]
    assert r(['{"bbox_2d": [0, 0, 10, 10], "score": nan}', '[{"bbox_2d": [1e999, 0, 1, 1]}]'],
             solution=["[0, 0, 10, 10]"] * 2) == [1.0, 0.0]
