"""The completion browser shows a multi-turn completion turn by turn: the model's tool calls, the tool results and
the zoom crops inline (linked from the log by the tool's ``[image file: PATH]`` note, ms-swift itself logging the
image only as a vision placeholder), all of it escaped: the page is opened in a real headless Chromium with a local
beacon server counting the requests it makes (``test_report_security``'s standard)."""

import json
import re

import pytest
from PIL import Image

import report_browser
from swift_ext import runs
from swift_ext.report import page as report_page
from swift_ext.report import write_report
from swift_ext.tools.parse import IMAGE_FILE_NOTE

from test_report_security import Beacon  # noqa: E402  (the request-counting server of the security tests)

needs_chromium = pytest.mark.skipif(report_browser.chromium() is None, reason="chromium is not installed "
                                    "(apt-get install chromium; .ci/run installs it)")
VISION = "<|vision_start|>" + "<|image_pad|>" * 4 + "<|vision_end|>"


def _turn(role, text):
    return f"<|im_start|>{role}\n{text}<|im_end|>\n"


def write_agent_run(folder, crop, hostile):
    """A run folder as ms-swift 4.6 logs a zoom agent: the prompt column holds the templated trajectory before the
    final answer (the ``hermes`` rendering: tool results as ``<tool_response>`` user turns), ``num_turns`` the
    model turns."""
    folder.mkdir(parents=True)
    call = '<tool_call>\n{"name": "zoom", "arguments": {"bbox_2d": [10, 10, 40, 40]}}\n</tool_call>'
    bad_call = "<tool_call>{oops</tool_call>"
    result = f"Zoomed in on [10, 10, 40, 40] of image 0. {IMAGE_FILE_NOTE.format(crop)}"
    start = _turn("user", VISION + "What is in the corner?")
    table = {k: [] for k in ("step", "prompt", "completion", "acc", "advantages", "solution", "num_turns")}
    for g, (turns, answer, n) in enumerate([
            ([("assistant", call), ("user", "<tool_response>\n" + VISION + result + "\n</tool_response>")],
             "A red square.", 2),
            ([("assistant", hostile + bad_call), ("user", "<tool_response>\nerror: zoom: " + hostile +
                                                  "\n</tool_response>")], hostile, 2),
            ([], "A square.", 1)]):
        table["step"].append("1")
        table["prompt"].append(start + "".join(_turn(r, t) for r, t in turns) + "<|im_start|>assistant\n")
        table["completion"].append(answer)
        table["acc"].append(1.0 if g == 0 else 0.0)
        table["advantages"].append(1.0 - g)
        table["solution"].append("red square")
        table["num_turns"].append(n)
    (folder / "completions.jsonl").write_text(json.dumps(table) + "\n")
    (folder / "logging.jsonl").write_text(json.dumps({"loss": 0.1, "global_step/max_steps": "1/1",
                                                      "rewards/acc/mean": 0.33}) + "\n")
    (folder / "args.json").write_text(json.dumps({"reward_funcs": ["acc"], "num_generations": 3}))
    return folder


def test_turns_reach_the_browser_data(tmp_path):
    crop = tmp_path / "zoom-1.png"
    Image.new("RGB", (56, 56), (255, 0, 0)).save(crop)
    run = runs.load_run(write_agent_run(tmp_path / "v0", str(crop), "<b>x</b>"))
    rewards, chunks, count = report_page.step_chunks(run, thumbs := report_page.Thumbnails())
    groups = chunks[1].data()["groups"]
    assert count == 3 and len(groups) == 1  # the three trajectories share their starting prompt
    first, second, single = groups[0]["items"]
    assert [t["role"] for t in first["turns"]] == ["assistant", "tool"]
    assert first["turns"][0]["calls"] == ['zoom({"bbox_2d": [10, 10, 40, 40]})']
    assert first["turns"][1]["paths"] == [str(crop)] and first["turns"][1]["img"][0] in thumbs.uris
    assert second["turns"][0]["calls"][0].startswith("unreadable call: invalid JSON")
    assert "turns" not in single


@needs_chromium
def test_browser_shows_turns_and_crops_escaped(tmp_path):
    beacon = Beacon()
    try:
        hostile = f'<img src="{beacon.url}/img"><a href="{beacon.url}/link">click me</a><script>fetch("{beacon.url}/js")</script>'
        crop = tmp_path / "zoom-1.png"
        Image.new("RGB", (56, 56), (255, 0, 0)).save(crop)
        run = write_agent_run(tmp_path / "v0", str(crop), hostile)
        out = tmp_path / "r.html"
        write_report([run], out)
        dom, stderr = report_browser.load(out.as_uri() + "#step=1")
        page = report_browser.read(dom)
        assert page.ready and page.selfcheck["errors"] == [] and not report_browser.console_errors(stderr)
        assert beacon.hits == [], f"the report made requests: {beacon.hits}"
    finally:
        beacon.close()
    # turn by turn, before each completion row: the call, the tool result with its crop inline (a data: URI)
    turns = {(t["n"], t["role"]): t for t in page.turns}
    assert sorted(turns) == [(0, "assistant"), (0, "tool"), (1, "assistant"), (1, "tool")]
    assert turns[0, "assistant"]["calls"] == ['zoom({"bbox_2d": [10, 10, 40, 40]})']
    assert turns[0, "tool"]["text"].startswith("<image>Zoomed in on [10, 10, 40, 40]")
    assert len(turns[0, "tool"]["crops"]) == 1 and turns[0, "tool"]["crops"][0].startswith("data:image/png;base64,")
    # the hostile text is shown as text: no element came of it
    assert turns[1, "assistant"]["text"].startswith(hostile) and hostile in turns[1, "tool"]["text"]
    assert turns[1, "assistant"]["calls"][0].startswith("unreadable call")
    url = re.escape(beacon.url)
    assert not re.search(r'<a\s[^>]*href="' + url, dom) and not re.search(r'<img\s[^>]*src="' + url, dom)
    assert not re.search(r"<script>fetch", dom) and "&lt;script&gt;fetch" in dom
    assert [r["n"] for r in page.rows] == [0, 1, 2]


def test_serve_sends_the_crops_with_the_step(tmp_path):
    """``--serve``: a step's completions come from the API with the thumbnails its turns show."""
    from swift_ext.report import live as report_live

    crop = tmp_path / "zoom-1.png"
    Image.new("RGB", (56, 56), (255, 0, 0)).save(crop)
    write_agent_run(tmp_path / "out" / "v0", str(crop), "x")
    chunk = report_live.LiveReport([tmp_path / "out"]).chunk(0, 1)
    first = chunk["groups"][0]["items"][0]
    (crop_id,) = first["turns"][1]["img"]
    assert chunk["images"][crop_id].startswith("data:image/png;base64,")
