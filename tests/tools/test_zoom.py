"""The ``zoom`` tool on real images (PIL): the box is read in the model's frame (the grounding rewards' frames), the
crop is cut where the box says, sized as the Qwen-VL image processor would size it (checked with transformers'
own ``Qwen2VLImageProcessor``: it keeps the crop as it is), and every hostile box is an error result naming why."""

import math

import pytest
from PIL import Image, ImageStat

from swift_ext.tools.base import ToolContext, build_tool
from swift_ext.tools.parse import image_files

W, H = 640, 480
RECT = (200, 120, 360, 280)  # the white rectangle, in pixels of the original image


@pytest.fixture
def image(tmp_path):
    img = Image.new("RGB", (W, H), (0, 0, 0))
    img.paste((255, 255, 255), RECT)
    path = tmp_path / "scene.png"
    img.save(path)
    return str(path)


def _ctx(tmp_path, image, **row):
    return ToolContext(row={"images": [image], **row}, trajectory_id="t1", workdir=str(tmp_path / "work"))


def _pixels(result):
    assert result.ok, result.text
    with Image.open(result.images[0]) as im:
        return im.convert("L"), im.size


def _mean(img, box=None):
    return ImageStat.Stat(img.crop(box) if box else img).mean[0]


# Qwen2.5-VL's frame is the smart-resized image: 640x480 -> 644x476 (qwen-vl-utils: multiples of 28, nearest)
@pytest.mark.parametrize("frame,box", [
    ("pixels", [200, 120, 360, 280]),
    ("norm1000", [200 / W * 1000, 120 / H * 1000, 360 / W * 1000, 280 / H * 1000]),
    ("qwen2_vl", [312.5, 250, 562.5, 583.3334]),
    ("norm1", [200 / W, 120 / H, 360 / W, 280 / H]),
    ("qwen2_5_vl", [200 * 644 / W, 120 * 476 / H, 360 * 644 / W, 280 * 476 / H]),
])
def test_the_box_is_read_in_the_models_frame(tmp_path, image, frame, box):
    zoom = build_tool(f"zoom:frame={frame}")
    img, size = _pixels(zoom({"bbox_2d": box}, _ctx(tmp_path, image)))
    assert _mean(img) > 250, (frame, _mean(img))  # the crop is the white rectangle, no black border
    assert size[0] % 28 == 0 and size[1] % 28 == 0


def test_crop_content_follows_the_box(tmp_path, image):
    # left half outside the rectangle (black), right half inside (white)
    zoom = build_tool("zoom:frame=pixels")
    img, (w, h) = _pixels(zoom({"bbox_2d": [120, 120, 280, 280]}, _ctx(tmp_path, image)))
    assert _mean(img, (0, 0, w // 2 - 2, h)) < 5 and _mean(img, (w // 2 + 2, 0, w, h)) > 250


def test_crop_is_sized_within_the_templates_pixel_limits(tmp_path, image, monkeypatch):
    # ms-swift's environment sets the Qwen-VL limits; the tool reads them as ms-swift does
    monkeypatch.setenv("MAX_PIXELS", str(64 * 28 * 28))
    monkeypatch.setenv("MIN_PIXELS", str(16 * 28 * 28))
    zoom = build_tool("zoom:frame=pixels")
    big, (bw, bh) = _pixels(zoom({"bbox_2d": [0, 0, 640, 480]}, _ctx(tmp_path, image)))
    small, (sw, sh) = _pixels(zoom({"bbox_2d": [200, 120, 210, 130]}, _ctx(tmp_path, image)))
    for w, h in ((bw, bh), (sw, sh)):
        assert 16 * 784 <= w * h <= 64 * 784 and w % 28 == 0 and h % 28 == 0
    assert (sw, sh) == (112, 112)  # a 10x10 region is enlarged to the minimum: that is the zoom
    # the Qwen2-VL image processor (transformers) with the same limits keeps each crop as it is
    from transformers import Qwen2VLImageProcessor

    proc = Qwen2VLImageProcessor(min_pixels=16 * 784, max_pixels=64 * 784)
    for img, (w, h) in ((big, (bw, bh)), (small, (sw, sh))):
        grid = proc(images=[img.convert("RGB")], return_tensors="np")["image_grid_thw"][0].tolist()
        assert grid == [1, h // 14, w // 14]


def test_result_names_the_crop_file_and_counts_crops(tmp_path, image):
    zoom = build_tool("zoom:frame=pixels,max_crops=2")
    ctx = _ctx(tmp_path, image)
    first = zoom({"bbox_2d": [0, 0, 100, 100], "label": "corner"}, ctx)
    second = zoom({"bbox_2d": [0, 0, 100, 100]}, ctx)
    assert first.images == [str(tmp_path / "work" / "zoom-1.png")] and image_files(first.text) == first.images
    assert "(corner)" in first.text and second.images == [str(tmp_path / "work" / "zoom-2.png")]
    third = zoom({"bbox_2d": [0, 0, 100, 100]}, ctx)
    assert not third.ok and "at most 2 crops" in third.text
    quiet = build_tool("zoom:frame=pixels,name_file=false")({"bbox_2d": [0, 0, 100, 100]}, _ctx(tmp_path, image))
    assert quiet.ok and image_files(quiet.text) == [] and str(tmp_path) not in quiet.text


def test_ms_swift_image_dicts_are_read(tmp_path, image):
    with open(image, "rb") as fh:
        data = fh.read()
    zoom = build_tool("zoom:frame=pixels")
    for item in ({"bytes": data, "path": None}, {"bytes": None, "path": image}, "file://" + image):
        res = zoom({"bbox_2d": list(RECT)}, _ctx(tmp_path, item))
        assert res.ok and _mean(_pixels(res)[0]) > 250, item


@pytest.mark.parametrize("box,says", [
    (None, "must be a list of 4 numbers"),
    ("zoom in please", "got the text"),
    ([1, 2, 3], "got 3 values"),
    ([1, 2, 3, "4"], "must hold numbers"),
    ([True, 0, 100, 100], "must hold numbers"),
    ([float("nan"), 0, 100, 100], "finite"),
    ([0, 0, float("inf"), 100], "finite"),
    ([0, 0, 10 ** 400, 100], "too large"),
    ([300, 100, 200, 200], "inverted"),
    ([100, 100, 100, 200], "zero-area"),
    ([700, 500, 900, 700], "lies outside the image"),
    ([-500, -500, -100, -100], "lies outside the image"),
    ([200, 120, 201, 300], "covers 1x180 pixels"),
    ([0, 0, 640, 3], "too thin"),
])
def test_hostile_boxes_are_clear_errors(tmp_path, image, box, says):
    zoom = build_tool("zoom:frame=pixels,min_size=2")
    res = zoom({"bbox_2d": box}, _ctx(tmp_path, image))
    assert not res.ok and res.images == [] and says in res.text and res.text.startswith("error: zoom")
    assert not (tmp_path / "work").exists() or not list((tmp_path / "work").iterdir())


def test_huge_box_is_clipped_or_refused(tmp_path, image):
    res = build_tool("zoom:frame=pixels")({"bbox_2d": [0, 0, 1e300, 1e300]}, _ctx(tmp_path, image))
    assert res.ok and "clipped" in res.text
    img, (w, h) = _pixels(res)
    assert w * h <= 12845056 and math.isclose(w / h, W / H, rel_tol=0.1)
    res = build_tool("zoom:frame=pixels,clip=false")({"bbox_2d": [600, 400, 700, 500]}, _ctx(tmp_path, image))
    assert not res.ok and "reaches outside the image" in res.text


def test_bad_images_and_indices(tmp_path, image):
    zoom = build_tool("zoom:frame=pixels")
    box = {"bbox_2d": [0, 0, 100, 100]}
    assert "no image" in zoom(box, ToolContext(row={}, workdir=str(tmp_path))).text
    assert "out of range" in zoom({**box, "image_index": 1}, _ctx(tmp_path, image)).text
    assert "whole number" in zoom({**box, "image_index": -1}, _ctx(tmp_path, image)).text
    assert "whole number" in zoom({**box, "image_index": "0"}, _ctx(tmp_path, image)).text
    fake = tmp_path / "fake.png"
    fake.write_text("not an image")
    assert "cannot be read" in zoom(box, _ctx(tmp_path, str(fake))).text
    assert "cannot be read" in zoom(box, _ctx(tmp_path, str(tmp_path / "missing.png"))).text
    # a decompression bomb: 195 M pixels in a small PNG is refused, not decoded
    bomb = tmp_path / "bomb.png"
    Image.new("1", (15000, 13000)).save(bomb)
    res = zoom(box, _ctx(tmp_path, str(bomb)))
    assert not res.ok and "DecompressionBomb" in res.text


def test_min_above_max_pixels_is_a_parameter_error():
    from swift_ext.errors import ParamError

    with pytest.raises(ParamError, match="min_pixels"):
        build_tool("zoom:min_pixels=10000,max_pixels=5000")
