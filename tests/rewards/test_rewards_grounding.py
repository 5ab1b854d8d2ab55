"""Grounding rewards (iou, giou, iou_threshold, box_f1, point_in_box) and their box parsing / frames.

Every expected value is worked out by hand in the comment next to it.
"""

import doctest
import importlib.util
import pickle

import pytest

from swift_ext.errors import ParamError
from swift_ext.rewards import boxes, build, configure, grounding
from swift_ext.rewards.boxes import Frame, gold_boxes, parse_boxes, parse_point, pixel_bounds, row_image_size, \
    smart_resize
from swift_ext.rewards.grounding import GIoU, BoxF1, IoU, IoUThreshold, PointInBox


def test_doctests():
    for mod in (boxes, grounding):
        result = doctest.testmod(mod)
        assert result.attempted > 0 and result.failed == 0, mod.__name__


# -- parsing ----------------------------------------------------------------------------------------------
class TestParseBoxes:
    @pytest.mark.parametrize("text,expected", [
        ('[{"bbox_2d": [1, 2, 3, 4], "label": "cat"}]', [((1, 2, 3, 4), "cat")]),               # Qwen2.5-VL JSON
        ("```json\n[{'bbox_2d': [1, 2, 3, 4], 'label': 'cat'}]\n```", [((1, 2, 3, 4), "cat")]),  # single quotes, fenced
        ('[{"bbox_2d": [1, 2, 3, 4], "label": "a"}, {"bbox_2d": [5, 6, 7, 8], "label": "b"', # cut off mid-object
         [((1, 2, 3, 4), "a"), ((5, 6, 7, 8), "b")]),
        ('{"bbox_2d": [1.5, 2.25, 3e2, 4]}', [((1.5, 2.25, 300.0, 4.0), None)]),                # floats, exponent
        ("<|object_ref_start|>dog<|object_ref_end|><|box_start|>(10,20),(30,40)<|box_end|>",
         [((10, 20, 30, 40), "dog")]),                                                          # Qwen2-VL tokens
        ("<|box_start|>(10, 20), (30, 40)<|box_end|><|box_start|>(1,1),(2,2)<|box_end|>",
         [((10, 20, 30, 40), None), ((1, 1, 2, 2), None)]),
        ("dog(10,20),(30,40)", [((10, 20, 30, 40), None)]),                                     # tokens skipped on decode
        ("The box is [10, 20, 30, 40].", [((10, 20, 30, 40), None)]),                           # bare list
        ("[-5, 0, 10, 10]", [((-5, 0, 10, 10), None)]),                                         # negative kept
        ("[1, 2, 3]", []),                                                                      # three numbers
        ("[1, 2, 3, 4, 5]", []),                                                                # five numbers
        ("[a, b, c, d]", []),                                                                   # not numbers
        ('{"bbox_2d": [1, 2, "x", 4]}', []),                                                    # malformed value
        ('{"bbox_2d": }', []),
        ("[1e999, 0, 1, 1]", []),                                                               # overflow -> inf: dropped
        ("", []),
        ("<|box_start|>garbage<|box_end|>", []),
    ])
    def test_formats(self, text, expected):
        got, total = parse_boxes(text)
        assert [(tuple(map(float, b)), lab) for b, lab in got] == [(tuple(map(float, b)), lab) for b, lab in expected]
        assert total == len(expected)

    def test_limit_counts_the_rest(self):
        text = " ".join(f"[{i}, {i}, {i + 1}, {i + 1}]" for i in range(50))
        got, total = parse_boxes(text, limit=5)
        assert len(got) == 5 and total == 50

    @pytest.mark.parametrize("text,expected", [
        ('{"point_2d": [120, 45]}', (120.0, 45.0)),
        ("click(0.5, 0.25)", (0.5, 0.25)),
        ("[30, 40]", (30.0, 40.0)),
        ("[0, 0, 100, 50]", (50.0, 25.0)),                   # a box: its centre (0+100)/2, (0+50)/2
        ("no point", None),
        ("(1, 2, 3)", None),
    ])
    def test_points(self, text, expected):
        assert parse_point(text) == expected

    @pytest.mark.parametrize("value,expected", [
        ([1, 2, 3, 4], [((1.0, 2.0, 3.0, 4.0), None)]),
        ([[1, 2, 3, 4], [5, 6, 7, 8]], [((1.0, 2.0, 3.0, 4.0), None), ((5.0, 6.0, 7.0, 8.0), None)]),
        ('[{"bbox_2d": [1,2,3,4], "label": "x"}]', [((1.0, 2.0, 3.0, 4.0), "x")]),
        ({"bbox_2d": [1, 2, 3, 4], "label": "y"}, [((1.0, 2.0, 3.0, 4.0), "y")]),
        ({"ref": ["a", "b"], "bbox": [[0, 0, 1, 1], [1, 1, 2, 2]], "bbox_type": "real"},
         [((0.0, 0.0, 1.0, 1.0), "a"), ((1.0, 1.0, 2.0, 2.0), "b")]),                          # ms-swift objects
        ("<answer>[1, 2, 3, 4]</answer>", [((1.0, 2.0, 3.0, 4.0), None)]),                        # SFT-style gold
        ("[]", []), ("None", []), ([], []),                                                      # explicit "no objects"
        (None, None), ("", None), ("no box here", None), ([1, 2, 3], None), ([1, 2, "3", 4], None),
        ([[1, 2, 3, 4], "junk"], None), (True, None), ({"bbox_2d": [1, 2]}, None), (float("nan"), None),
        ([float("nan"), 0, 1, 1], None),
    ])
    def test_gold(self, value, expected):
        assert gold_boxes(value) == expected


# -- image sizes and frames -------------------------------------------------------------------------------
class TestFrames:
    @pytest.mark.parametrize("h,w,kw,expected", [
        # 480/28 = 17.14 -> 17*28 = 476; 640/28 = 22.86 -> 23*28 = 644; 476*644 = 306544 within bounds
        (480, 640, {}, (476, 644)),
        # 56/28 = 2 -> 56 each; 56*56 = 3136 is not below min 3136: unchanged
        (56, 56, {"min_pixels": 3136, "max_pixels": 12544}, (56, 56)),
        # max bound: round gives 1008 x 1512 = 1524096 > 100352 -> beta = sqrt(1000*1500/100352) = 3.866184;
        # 1000/3.866184 = 258.66 -> floor(258.66/28) = 9 -> 252; 1500/3.866184 = 387.98 -> 13 -> 364
        (1000, 1500, {"max_pixels": 100352}, (252, 364)),
        # min bound: round gives 28 x 28 = 784 < 3136 -> beta = sqrt(3136/600) = 2.28619;
        # 20*2.28619 = 45.72 -> ceil(45.72/28) = 2 -> 56; 30*2.28619 = 68.59 -> ceil(2.449) = 3 -> 84
        (20, 30, {"min_pixels": 3136}, (56, 84)),
        (1, 500, {}, None),                                 # aspect ratio 500 > 200: qwen-vl-utils refuses
        (0, 10, {}, None),
    ])
    def test_smart_resize(self, h, w, kw, expected):
        assert smart_resize(h, w, 28, **kw) == expected

    @pytest.mark.vl
    def test_smart_resize_matches_qwen_vl_utils(self):
        if importlib.util.find_spec("qwen_vl_utils") is None:
            pytest.skip("qwen-vl-utils not installed")
        try:
            from qwen_vl_utils.vision_process import smart_resize as reference
        except Exception as exc:  # torchvision unusable here
            pytest.skip(f"qwen_vl_utils not importable: {exc!r}")
        for h in (28, 56, 97, 333, 480, 1080, 2000):
            for w in (28, 64, 100, 640, 1920, 4000):
                for mn, mx in ((3136, 12544), (3136, 12845056), (100352, 1003520)):
                    assert smart_resize(h, w, 28, mn, mx) == tuple(reference(h, w, 28, mn, mx)), (h, w, mn, mx)

    def test_pixel_bounds_follow_env_like_ms_swift(self, monkeypatch):
        monkeypatch.setenv("MAX_PIXELS", "12600")   # 12600 // 784 = 16 tokens -> 12544
        monkeypatch.setenv("MIN_PIXELS", "3136")    # 4 tokens -> 3136
        assert pixel_bounds(28, None, None) == (3136, 12544)
        # parameters win over the environment: 1000 // 784 = 1 -> 784; 2000000 // 784 = 2551 -> 2551*784 = 1999984
        assert pixel_bounds(28, 1000, 2000000) == (784, 1999984)

    def test_frame_scale(self):
        assert Frame("norm1000").scale(None) == (1000.0, 1000.0)
        assert Frame("qwen2_vl").name == "norm1000" and Frame("qwen3_vl").name == "norm1000"
        assert Frame("pixels").scale((640, 480)) == (640.0, 480.0)
        assert Frame("pixels").scale(None) is None
        # Qwen2.5-VL: 640x480 resized to 644x476 (see test_smart_resize)
        assert Frame("qwen2_5_vl", min_pixels=3136, max_pixels=12845056).scale((640, 480)) == (644.0, 476.0)

    def test_image_header_read_once_per_path(self, tmp_path, monkeypatch):
        from PIL import Image

        p = tmp_path / "once.png"
        Image.new("RGB", (30, 20)).save(p)
        reads = []
        real = boxes._read_size
        monkeypatch.setattr(boxes, "_read_size", lambda src: reads.append(src) or real(src))
        cache = boxes.SizeCache(maxsize=2)
        for _ in range(3):   # a GRPO group: the same image for every generation
            assert row_image_size({"images": [str(p)]}, cache) == (30, 20)
        assert len(reads) == 1
        for i in range(3):   # LRU of 2: the first path is evicted and read again
            q = tmp_path / f"other{i}.png"
            Image.new("RGB", (1 + i, 1)).save(q)
            row_image_size({"images": [str(q)]}, cache)
        row_image_size({"images": [str(p)]}, cache)
        assert len(reads) == 5

    def test_image_size_sources(self, tmp_path):
        from PIL import Image

        p = tmp_path / "img.png"
        Image.new("RGB", (123, 45)).save(p)
        assert row_image_size({"images": [str(p)]}) == (123, 45)
        assert row_image_size({"images": [{"bytes": None, "path": str(p)}]}) == (123, 45)   # ms-swift's dict form
        assert row_image_size({"images": [{"bytes": p.read_bytes(), "path": None}]}) == (123, 45)
        assert row_image_size({"images": str(p)}) == (123, 45)
        assert row_image_size({"image_size": {"width": 10, "height": 20}}) == (10, 20)
        assert row_image_size({"image_size": "640x480"}) == (640, 480)
        assert row_image_size({"image_size": [0, 5]}) is None                 # not a size
        assert row_image_size({"images": [str(tmp_path / "missing.png")]}) is None
        assert row_image_size({"images": ["http://example.com/x.png"]}) is None   # never fetched
        assert row_image_size({"images": []}) is None
        (tmp_path / "bad.png").write_bytes(b"not an image")
        assert row_image_size({"images": [str(tmp_path / "bad.png")]}) is None


# -- rewards ------------------------------------------------------------------------------------------------
class TestIoU:
    def test_same_frame_table(self):
        r = IoU(gold_frame="same")
        gold = "[0, 0, 10, 10]"
        cases = [
            ("[0, 0, 10, 10]", 1.0),                        # identical
            ("[5, 0, 15, 10]", 50 / 150),                   # inter 5*10 = 50, union 100 + 100 - 50 = 150
            ("[20, 20, 30, 30]", 0.0),                      # disjoint
            ("[10, 0, 20, 10]", 0.0),                       # touching edge: zero-area intersection
            ("[10, 10, 0, 0]", 0.0),                        # inverted box: invalid
            ("[0, 0, 0, 0]", 0.0),                          # zero area
            ("[0, 0, 10, 10] [20, 20, 30, 30]", 1.0),       # the first box counts
            ("[20, 20, 30, 30] [0, 0, 10, 10]", 0.0),
            ("no box", 0.0),
            ("[0, 0, 10", 0.0),                             # truncated
            ('{"bbox_2d": [0, 0, 1e308, 1e308]}', 0.0),   # area overflows to inf: union inf -> 0, not NaN
            ("<answer>[0, 0, 5, 10]</answer>", 0.5),        # inter 50, union 100
            ("<think>[0, 0, 10, 10]</think><answer>[0, 0, 5, 10]</answer>", 0.5),   # reasoning box ignored
        ]
        got = r([c for c, _ in cases], solution=[gold] * len(cases))
        assert got == pytest.approx([e for _, e in cases])

    @pytest.mark.parametrize("gold", [None, "", "no box", "[1, 2, 3]", "[10, 10, 0, 0]", "[]", [], 42, {"a": 1}])
    def test_unusable_gold_abstains(self, gold):
        assert IoU(gold_frame="same")(["[0, 0, 10, 10]"], solution=[gold]) == [None]

    def test_truncated_gold_string_is_read_like_a_completion(self):
        # '[[0,0,1,1],' is not JSON, but holds one box: iou with (0,0,10,10) = 1/100
        assert IoU(gold_frame="same")(["[0, 0, 10, 10]"], solution=["[[0,0,1,1],"]) == [0.01]

    def test_pick(self):
        text = "[20, 20, 30, 30] [0, 0, 10, 10] [0, 0, 5, 10]"
        gold = ["[0, 0, 10, 10]"]
        assert IoU(gold_frame="same", pick="first")([text], solution=gold) == [0.0]
        assert IoU(gold_frame="same", pick="last")([text], solution=gold) == [0.5]
        assert IoU(gold_frame="same", pick="best")([text], solution=gold) == [1.0]

    def test_several_gold_boxes_best_overlap(self):
        assert IoU(gold_frame="same")(["[0, 0, 10, 10]"], solution=[[[50, 50, 60, 60], [0, 0, 10, 10]]]) == [1.0]

    def test_qwen2_vl_norm1000_vs_pixel_gold(self):
        # 200x100 image; gold pixels [20, 10, 100, 50] = unit (.1, .1, .5, .5) = norm1000 (100, 100, 500, 500)
        r = IoU(frame="qwen2_vl", gold_frame="pixels")
        got = r(["<|box_start|>(100,100),(500,500)<|box_end|>", "[20, 10, 100, 50]"],
                solution=["[20, 10, 100, 50]"] * 2, image_size=[[200, 100]] * 2)
        # second: the pixel box read as norm1000 = unit (.02, .01, .1, .05); inter with (.1,.1,.5,.5) = 0
        assert got == pytest.approx([1.0, 0.0])

    def test_qwen2_5_vl_resized_vs_pixel_gold(self):
        # 640x480 image resized to 644x476. Gold pixels [64, 48, 320, 240] = unit (.1, .1, .5, .5).
        # In the resized frame that box is (64.4, 47.6, 322, 238).
        r = IoU(frame="qwen2_5_vl", gold_frame="pixels", min_pixels=3136, max_pixels=12845056)
        exact = "[64.4, 47.6, 322, 238]"
        # The original-pixel box read as resized: unit (64/644, 48/476, 320/644, 240/476)
        #   = (.0993789, .1008403, .4968944, .5042017); intersection with (.1, .1, .5, .5):
        #   x .1 -> .4968944 = .3968944, y .1008403 -> .5 = .3991597 -> inter .1584243
        #   area pred .3975155 * .4033614 = .1603424; union .16 + .1603424 - .1584243 = .1619181 -> .97842
        got = r([exact, "[64, 48, 320, 240]"], solution=["[64, 48, 320, 240]"] * 2, image_size=[[640, 480]] * 2)
        assert got == pytest.approx([1.0, 0.97842], abs=1e-5)   # hand arithmetic kept to 5 decimals

    def test_size_from_image_file(self, tmp_path):
        from PIL import Image

        p = tmp_path / "a.png"
        Image.new("RGB", (200, 100)).save(p)
        r = IoU(frame="norm1000", gold_frame="pixels")
        assert r(["[100, 100, 500, 500]"], solution=["[20, 10, 100, 50]"], images=[[{"path": str(p), "bytes": None}]]) \
            == pytest.approx([1.0])

    def test_missing_size_abstains(self):
        r = IoU(frame="norm1000", gold_frame="pixels")
        assert r(["[100, 100, 500, 500]"], solution=["[20, 10, 100, 50]"]) == [None]
        assert r(["[100, 100, 500, 500]"], solution=["[20, 10, 100, 50]"], images=[["/nonexistent.png"]]) == [None]

    def test_gold_outside_the_image_is_flagged_once(self, caplog):
        # a 0-1000 gold read as pixels of a 200x100 image lands far outside it: scored, and one warning
        r = IoU(frame="norm1000", gold_frame="pixels")
        with caplog.at_level("WARNING", logger="swift_ext.rewards"):
            got = r(["[100, 100, 500, 500]"] * 2, solution=["[100, 100, 500, 500]"] * 2, image_size=[[200, 100]] * 2)
        assert got == [0.0, 0.0]
        assert sum("outside its image" in m for m in caplog.messages) == 1

    def test_norm_frames_need_no_size(self):
        # norm1 (.1,.1,.5,.5) vs norm1000 (100,100,500,500): the same box, no image needed
        r = IoU(frame="norm1000", gold_frame="norm1")
        assert r(["[100, 100, 500, 500]"], solution=[[0.1, 0.1, 0.5, 0.5]]) == pytest.approx([1.0])

    def test_objects_column_declares_its_frame(self):
        # objects bbox_type=real: pixels of a 200x100 image -> (20,10,100,50) = norm1000 (100,100,500,500)
        r = IoU(frame="norm1000", gold_frame="norm1", gold_key="objects")
        objs = {"ref": ["cat"], "bbox": [[20, 10, 100, 50]], "bbox_type": "real"}
        assert r(["[100, 100, 500, 500]"], objects=[objs], image_size=[[200, 100]]) == pytest.approx([1.0])

    def test_bad_params(self):
        with pytest.raises(ParamError):
            configure("iou:frame=qwen9")
        with pytest.raises(ParamError):
            configure("iou:min_pixels=0")
        with pytest.raises(ParamError):
            build("iou:min_pixels=5000,max_pixels=4000")

    def test_parametrised_name_and_pickle(self):
        r = build("iou:frame=qwen2_5_vl,gold_frame=same")
        assert r.frame == "qwen2_5_vl" and type(r).__name__ == "iou:frame=qwen2_5_vl,gold_frame=same"
        plain = IoU(gold_frame="same")
        again = pickle.loads(pickle.dumps(plain))
        assert again(["[0, 0, 5, 10]"], solution=["[0, 0, 10, 10]"]) == [0.5]


class TestGIoU:
    def test_table(self):
        gold = "[0, 0, 1, 1]"
        cases = [
            ("[0, 0, 1, 1]", 1.0),                      # giou 1 -> (1+1)/2
            ("[2, 0, 3, 1]", (1 - 1 / 3) / 2),          # iou 0, hull 3, union 2: giou -1/3 -> 1/3
            ("[0, 0, 2, 1]", (0.5 + 1) / 2),            # inter 1, union 2, hull 2: giou .5 -> .75
            ("[5, 5, 4, 4]", 0.0),                      # invalid: giou -1 -> 0
            ("none", 0.0),
        ]
        assert GIoU(frame="norm1", gold_frame="same")([c for c, _ in cases], solution=[gold] * 5) == \
            pytest.approx([e for _, e in cases])

    def test_signed(self):
        r = GIoU(frame="norm1", gold_frame="same", range="signed")
        assert r(["[2, 0, 3, 1]", "nothing"], solution=["[0, 0, 1, 1]"] * 2) == pytest.approx([-1 / 3, -1.0])


class TestIoUThreshold:
    @pytest.mark.parametrize("threshold,pred,expected", [
        (0.5, "[0, 0, 10, 10]", 1.0),
        (0.5, "[0, 0, 5, 10]", 1.0),       # iou exactly .5 reaches .5
        (0.51, "[0, 0, 5, 10]", 0.0),
        (0.75, "[0, 0, 8, 10]", 1.0),      # 80 / 100
        (0.0, "no box", 0.0),              # no box is never a hit
    ])
    def test_table(self, threshold, pred, expected):
        assert IoUThreshold(threshold=threshold, gold_frame="same")([pred], solution=["[0,0,10,10]"]) == [expected]

    def test_threshold_from_name(self):
        r = build("iou_threshold:threshold=0.9,gold_frame=same")
        assert r(["[0, 0, 8, 10]"], solution=["[0,0,10,10]"]) == [0.0]
        with pytest.raises(ParamError):
            configure("iou_threshold:threshold=1.5")


class TestBoxF1:
    GOLD = '[{"bbox_2d": [0,0,10,10], "label": "cat"}, {"bbox_2d": [20,20,30,30], "label": "dog"}]'

    def score(self, preds, **kw):
        return BoxF1(gold_frame="same", **kw)(preds, solution=[self.GOLD] * len(preds))

    def test_f1_table(self):
        cases = [
            ("[0,0,10,10] [20,20,30,30]", 1.0),                                  # both found
            ("[20,20,30,30] [0,0,10,10]", 1.0),                                  # order does not matter
            ("[0,0,10,10]", 2 / 3),                                              # P 1, R 1/2 -> 2/3
            ("[0,0,10,10] [20,20,30,30] [50,50,60,60]", 0.8),                    # P 2/3, R 1 -> .8
            ("[0,0,10,10] [0,0,10,10]", 0.5),                                    # a duplicate matches once: P 1/2, R 1/2 -> .5
            ("[0,0,5,10] [20,20,30,30]", 1.0),                                   # iou .5 reaches .5
            ("[0,0,4,10] [20,20,30,30]", 0.5),                                   # iou .4 misses: P 1/2, R 1/2 -> .5
            ("nothing", 0.0),
        ]
        assert self.score([c for c, _ in cases]) == pytest.approx([e for _, e in cases])

    def test_hungarian_beats_greedy(self):
        # gold A = (0,0,10,10), B = (6,0,16,10). pred p1 = (3,0,13,10) overlaps both:
        #   iou(p1, A) = 7*10 / (100+100-70) = 70/130 = .538; iou(p1, B) = 7*10/130 = .538 (tie)
        # pred p2 = (0,0,9,10): iou(p2, A) = 90/100 = .9, iou(p2, B) = 3*10/(90+100-30) = 30/160 = .1875
        # greedy in prediction order gives p1->A, then p2->B (.1875 < .5): 1 hit.
        # the optimal assignment gives p1->B (.538), p2->A (.9): 2 hits -> F1 1.0
        gold = [[[0, 0, 10, 10], [6, 0, 16, 10]]]
        assert BoxF1(gold_frame="same")(["[3,0,13,10] [0,0,9,10]"], solution=gold) == [1.0]

    def test_metrics(self):
        pred = ["[0,0,10,10] [50,50,60,60] [70,70,80,80]"]
        assert self.score(pred, metric="precision") == pytest.approx([1 / 3])
        assert self.score(pred, metric="recall") == pytest.approx([1 / 2])
        assert self.score(pred, metric="count") == pytest.approx([1 - 1 / 3])     # |3-2| / 3
        # soft: matched IoUs summed / max(3, 2) = (1.0) / 3
        assert self.score(pred, metric="soft") == pytest.approx([1 / 3])
        # soft with a partial match: (0,0,5,10) iou .5 + (20,20,30,30) iou 1 -> 1.5 / 2
        assert self.score(["[0,0,5,10] [20,20,30,30]"], metric="soft") == pytest.approx([0.75])

    def test_labels(self):
        swapped = '[{"bbox_2d": [0,0,10,10], "label": "dog"}, {"bbox_2d": [20,20,30,30], "label": "cat"}]'
        assert self.score([swapped]) == [1.0]                          # labels ignored by default
        assert self.score([swapped], match_labels=True) == [0.0]       # both pairs have the wrong label
        right = '[{"bbox_2d": [0,0,10,10], "label": "Cat"}, {"bbox_2d": [20,20,30,30]}]'
        assert self.score([right], match_labels=True) == [1.0]         # case-insensitive; no label matches any

    def test_empty_gold(self):
        r = BoxF1(gold_frame="same")
        assert r(["no objects", "[0,0,1,1]"], solution=["[]", "None"]) == [1.0, 0.0]
        assert r(["[0,0,1,1]"], solution=[None]) == [None]

    def test_max_boxes_extra_predictions_still_count(self):
        # 2 matches among the first 2 predictions, 48 more boxes beyond max_boxes=2: P = 2/50, R = 1
        many = "[0,0,10,10] [20,20,30,30] " + " ".join("[100,100,110,110]" for _ in range(48))
        got = self.score([many], max_boxes=2)
        p, r_ = 2 / 50, 1.0
        assert got == pytest.approx([2 * p * r_ / (p + r_)])

    def test_frames(self):
        # 200x100 image, gold pixels; predictions in norm1000
        r = BoxF1(frame="norm1000", gold_frame="pixels")
        got = r(["[0,0,500,1000] [500,0,1000,1000]"], solution=[[[0, 0, 100, 100], [100, 0, 200, 100]]],
                width=[200], height=[100])
        assert got == [1.0]


class TestPointInBox:
    def test_table(self):
        # 200x100 image; gold box pixels [0, 0, 100, 100] = unit (0, 0, .5, 1) = norm1000 (0, 0, 500, 1000)
        r = PointInBox(frame="norm1000", gold_frame="pixels")
        cases = [
            ('{"point_2d": [250, 500]}', 1.0),
            ("click(500, 1000)", 1.0),            # on the corner: inside
            ("(501, 10)", 0.0),                    # just right of it
            ("[0, 0, 400, 400]", 1.0),             # a box: its centre (200, 200)
            ("no point", 0.0),
        ]
        got = r([c for c, _ in cases], solution=["[0, 0, 100, 100]"] * 5, image_size=[(200, 100)] * 5)
        assert got == [e for _, e in cases]

    def test_abstains(self):
        r = PointInBox(frame="norm1000", gold_frame="pixels")
        assert r(["(1, 1)"], solution=["[0, 0, 100, 100]"]) == [None]         # no image size
        assert r(["(1, 1)"], solution=["junk"], image_size=[(10, 10)]) == [None]
        assert r(["(1, 1)"], solution=["[5, 5, 1, 1]"], image_size=[(10, 10)]) == [None]   # inverted gold


class TestOfflineScoringCommand:
    """``swift-ext rewards score`` (a real subprocess) with parametrised grounding rewards on image rows."""

    def test_score_jsonl(self, tmp_path):
        import json
        import subprocess
        import sys
        from pathlib import Path

        from PIL import Image

        img = tmp_path / "shape.png"
        Image.new("RGB", (200, 100)).save(img)
        rows = [
            # gold pixels (20,10,100,50) = norm1000 (100,100,500,500): IoU 1, then disjoint 0 -> mean .5
            {"images": [str(img)], "solution": "[20, 10, 100, 50]",
             "completions": ["<answer>[100, 100, 500, 500]</answer>", "<answer>[600, 600, 900, 900]</answer>"]},
            # no readable image: the frame conversion cannot be done -> both abstain
            {"images": [str(tmp_path / "missing.png")], "solution": "[20, 10, 100, 50]",
             "completions": ["<answer>[100, 100, 500, 500]</answer>", "nothing"]},
        ]
        data = tmp_path / "rows.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
        exe = Path(sys.executable).with_name("swift-ext")
        proc = subprocess.run([str(exe), "rewards", "score", str(data), "-r", "iou:frame=qwen2_vl,gold_frame=pixels",
                               "-r", "iou_threshold:threshold=0.9,gold_frame=pixels", "--json"],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        stats = {s["name"]: s for s in json.loads(proc.stdout)["rewards"]}
        iou = stats["iou:frame=qwen2_vl,gold_frame=pixels"]
        assert (iou["n"], iou["abstained"], iou["mean"]) == (4, 2, 0.5)
        thr = stats["iou_threshold:threshold=0.9,gold_frame=pixels"]
        assert (thr["abstained"], thr["mean"]) == (2, 0.5)            # 1.0 >= .9 and 0.0

    def test_bad_parameter_is_one_error_line(self, tmp_path):
        import subprocess
        import sys
        from pathlib import Path

        data = tmp_path / "rows.jsonl"
        data.write_text('{"solution": "[1,2,3,4]", "completion": "x"}\n')
        exe = Path(sys.executable).with_name("swift-ext")
        proc = subprocess.run([str(exe), "rewards", "score", str(data), "-r", "iou:frame=qwen9"],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1
        assert "frame" in proc.stderr and "qwen9" in proc.stderr and "Traceback" not in proc.stderr
