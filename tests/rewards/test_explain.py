"""``Reward.explain`` and ``swift-ext rewards explain``: every explanation's score is what the reward gives,
and its numbers recompute that score (independently of the reward's own code)."""

import json

import pytest
from click.testing import CliRunner

from swift_ext.cli import cli
from swift_ext.rewards import build


def call(reward, completion, row):
    """One completion scored as ms-swift calls a reward (async rewards awaited): the one scoring path's call."""
    from swift_ext.scoring.score import call_reward

    return call_reward("r", reward, [completion], {k: [v] for k, v in row.items()})[0]


def box_iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


# Qwen frames: Qwen2-VL / Qwen3-VL answer in 0..1000 of the image, Qwen2.5-VL in pixels of the smart-resized
# image (640x480 -> 644x476: 23 and 17 patches of 28), the gold in pixels of the original image.
FRAMES = [
    ("qwen2_vl", '<|box_start|>(100,200),(500,700)<|box_end|>', (1000.0, 1000.0)),
    ("qwen3_vl", '[{"bbox_2d": [100, 200, 500, 700], "label": "cat"}]', (1000.0, 1000.0)),
    ("qwen2_5_vl", '{"bbox_2d": [64, 95, 322, 333]}', (644.0, 476.0)),
]


@pytest.mark.parametrize("frame,completion,divide_by", FRAMES)
def test_iou_explanation_recomputes_the_score_in_each_qwen_frame(frame, completion, divide_by):
    reward = build(f"iou:frame={frame}")
    row = {"solution": "[70, 90, 330, 340]", "image_size": [640, 480]}
    ex = reward.explain(completion, **row)
    assert ex["score"] == call(reward, completion, row)
    assert ex["frame_conversion"]["divide_by"] == list(divide_by)
    assert ex["gold_frame_conversion"]["divide_by"] == [640.0, 480.0] and ex["image_size_from"] == "image_size"
    raw = ex["predicted"][0]["box"]
    unit_pred = [raw[0] / divide_by[0], raw[1] / divide_by[1], raw[2] / divide_by[0], raw[3] / divide_by[1]]
    unit_gold = [70 / 640, 90 / 480, 330 / 640, 340 / 480]
    assert ex["unit_predicted"][0] == pytest.approx(unit_pred)
    assert ex["unit_gold"][0] == pytest.approx(unit_gold)
    assert ex["score"] == pytest.approx(box_iou(unit_pred, unit_gold))
    if frame == "qwen2_5_vl":
        assert ex["frame_conversion"]["resized_size"] == [644, 476]
        assert ex["frame_conversion"]["resize_policy"]["factor"] == 28


def test_iou_explains_abstaining_and_zero():
    reward = build("iou:frame=qwen2_5_vl")
    ex = reward.explain("[1, 2, 3, 4]", solution="[0, 0, 10, 10]")          # pixels need the image size
    assert ex["score"] is None and "image size" in ex["reason"]
    ex = reward.explain("no box here", solution="[0, 0, 10, 10]", image_size=[100, 100])
    assert ex["score"] == 0.0 and "no box" in ex["reason"]


def test_box_f1_explanation_lists_the_matched_pairs():
    reward = build("box_f1:gold_frame=same")
    gold = "[[0,0,10,10],[20,20,30,30]]"
    completion = "[0,0,10,10] [50,50,60,60] [21,20,30,30]"
    ex = reward.explain(completion, solution=gold)
    assert ex["score"] == call(reward, completion, {"solution": gold})
    assert sorted((p["predicted"], p["gold"]) for p in ex["matched_pairs"]) == [(0, 0), (2, 1)]
    for p in ex["matched_pairs"]:
        assert p["iou"] == pytest.approx(box_iou(ex["unit_predicted"][p["predicted"]], ex["unit_gold"][p["gold"]]))
    precision, recall = 2 / 3, 2 / 2
    assert ex["score"] == pytest.approx(2 * precision * recall / (precision + recall))


def test_point_in_box_explanation():
    reward = build("point_in_box:frame=norm1000,gold_frame=pixels")
    row = {"solution": "[0, 0, 100, 100]", "image_size": [200, 100]}
    ex = reward.explain("click(250, 500)", **row)
    assert ex["score"] == 1.0 == call(reward, "click(250, 500)", row)
    assert ex["unit_point"] == pytest.approx([0.25, 0.5]) and ex["unit_gold"][0] == pytest.approx([0, 0, 0.5, 1])


@pytest.mark.parametrize("completion,gold,rule,letter", [
    ("<answer>(B)</answer>", "B", "answer_tag", "B"),
    ("<think>A? no</think>The answer is option c.", "C", "after_think", "C"),
    ("A or B", "B", "whole_text", None),
    ("nothing", "D", "whole_text", None),
])
def test_mcq_explanation(completion, gold, rule, letter):
    reward = build("mcq")
    ex = reward.explain(completion, solution=gold)
    assert ex["score"] == call(reward, completion, {"solution": gold})
    assert ex["rule"] == rule and ex["gold_letter"] == gold
    if ex["hedged"]:
        assert ex["score"] == 0.0
    else:
        assert ex["choice"] == letter and ex["score"] == float(ex["choice"] == ex["gold_letter"])


@pytest.mark.parametrize("completion,gold", [("<answer>1,250</answer>", "1250"), ("x = 0.5", "1/2"),
                                             ("<answer>12%</answer>", "0.12"), (r"so \boxed{7}", "8"),
                                             ("none", "3"), ("<answer>4</answer>", "n/a")])
def test_numeric_explanation_recomputes_the_score(completion, gold):
    reward = build("numeric:rel_tol=0.01")
    ex = reward.explain(completion, solution=gold)
    assert ex["score"] == call(reward, completion, {"solution": gold})
    if ex["gold_number"] is None:
        assert ex["score"] is None and "abstained" in ex["reason"]
    elif ex["number"] is None:
        assert ex["score"] == 0.0
    else:
        err = min(abs(c - ex["gold_number"]) for c in ex["candidates"])
        assert ex["abs_error"] == err
        assert ex["score"] == float(err <= max(1e-6, 0.01 * abs(ex["gold_number"])))


def test_exact_match_explains_rule_and_normalisation():
    reward = build("exact_match")
    ex = reward.explain("<answer>The Paris.</answer>", solution=["Rome", "paris"])
    assert ex["score"] == 1.0 and ex["rule"] == "answer_tag" and ex["normalised"] == "paris"
    assert ex["gold_normalised"] == ["rome", "paris"] and ex["matched_gold"] == "paris"


SCHEMA = {"type": "object", "required": ["name", "age"],
          "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}


@pytest.mark.parametrize("completion", ['{"name": "Ann", "age": 3}', '{"name": "Ann", "age": "three"}',
                                        '{"nick": 1}', '{"name": "Ann", "age": }', "oops"])
def test_json_schema_explanation_recomputes_the_score(completion):
    reward = build("json_schema")
    ex = reward.explain(completion, schema=SCHEMA)
    assert ex["score"] == call(reward, completion, {"schema": SCHEMA})
    if ex["parsed"] == "invalid":
        assert ex["score"] == 0.0 and ex["json_error"]
    elif not ex["schema_errors"]:
        assert ex["score"] == 1.0
    else:
        value = json.loads(ex["candidate"])
        fraction = sum(1 for k, t in (("name", str), ("age", int)) if isinstance(value.get(k), t)) / 2
        assert ex["required_fraction"] == fraction and ex["score"] == pytest.approx(0.5 * fraction)


def test_json_valid_names_the_parse_error():
    ex = build("json_valid").explain('{"a": }')
    assert ex["score"] == 0.0 and ex["json_error"] == "Expecting value at line 1 column 7"


def test_the_default_explanation_of_any_reward_gives_its_score():
    reward = build("think_format")
    for c in ["<think>x</think>answer", "no tags"]:
        ex = reward.explain(c)
        assert ex["score"] == call(reward, c, {}) and ex["reason"].startswith("scored")


def run_cli(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_cli_explains_a_file_table_on_stderr_json_on_stdout(tmp_path):
    path = tmp_path / "c.jsonl"
    rows = [{"prompt": "2+2?", "completions": ["<answer>4</answer>", "<answer>5</answer>"], "solution": "4"},
            {"prompt": "box", "completion": "[0, 0, 10, 10]", "solution": "[0, 0, 10, 20]"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    res = run_cli("rewards", "explain", str(path), "-r", "numeric", "-r", "iou:gold_frame=same")
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert [g["line"] for g in got] == [1, 1, 2]
    assert [g["explanations"]["numeric"]["score"] for g in got[:2]] == [1.0, 0.0]
    assert got[2]["explanations"]["iou:gold_frame=same"]["score"] == pytest.approx(0.5)
    assert "why each score" in res.stderr


def test_cli_explains_one_completion_from_the_command_line():
    res = run_cli("rewards", "explain", "-r", "mcq:letters=ABCD", "--completion", "I pick (C)", "-c", "solution=C")
    assert res.exit_code == 0, res.output
    ex = json.loads(res.stdout)[0]["explanations"]["mcq:letters=ABCD"]
    assert ex["score"] == 1.0 and ex["choice_rule"] == "parenthesised"
    res = run_cli("rewards", "explain", "-r", "mcq")
    assert res.exit_code != 0 and "--completion" in res.output


def test_a_third_party_reward_explains_itself_through_the_cli(register_plugin):
    from swift_ext.params import Param
    from swift_ext.rewards import Reward
    from swift_ext.testing import make_plugin

    class Shouting(Reward):
        """1.0 for an all-caps completion."""

        name = "shouting_test"
        params = {"min_len": Param(1, "shortest completion that counts")}

        def score(self, completion, **row):
            return float(len(completion) >= self.min_len and completion.isupper())

        def explain(self, completion, **row):
            out = super().explain(completion, **row)
            out["upper"] = completion.isupper()
            return out

    register_plugin(make_plugin("shout", register_rewards=lambda register: register(Shouting)))
    res = run_cli("rewards", "explain", "-r", "shouting_test:min_len=3", "--completion", "HEY")
    ex = json.loads(res.stdout)[0]["explanations"]["shouting_test:min_len=3"]
    assert ex["score"] == 1.0 and ex["upper"] is True


def test_an_ms_swift_reward_without_explain_reports_its_score(tmp_path):
    plugin = tmp_path / "orm.py"
    plugin.write_text("from swift.rewards import ORM, orms\n\n\nclass Two(ORM):\n    def __call__(self, completions, "
                      "**kw):\n        return [2.0 for _ in completions]\n\n\norms['always_two'] = Two\n")
    res = run_cli("rewards", "explain", "-r", "always_two", "--plugin", str(plugin), "--completion", "x")
    assert res.exit_code == 0, res.output
    ex = json.loads(res.stdout)[0]["explanations"]["always_two"]
    assert ex["score"] == 2.0 and "no explain()" in ex["reason"]


def test_grounding_row_reads_the_image_size_from_the_image_file(tmp_path, sample_images):
    from PIL import Image

    reward = build("iou:frame=qwen2_5_vl")
    with Image.open(sample_images[0]) as im:
        size = list(im.size)
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"images": [sample_images[0]], "solution": "[5, 5, 40, 40]",
                                "completion": '{"bbox_2d": [5, 5, 40, 40]}'}) + "\n")
    res = run_cli("rewards", "explain", str(path), "-r", "iou:frame=qwen2_5_vl")
    ex = json.loads(res.stdout)[0]["explanations"]["iou:frame=qwen2_5_vl"]
    assert ex["image_size"] == size and ex["image_size_from"] == "images"
    rw, rh = ex["frame_conversion"]["resized_size"]
    assert rw % 28 == 0 and rh % 28 == 0
    unit_pred = [5 / rw, 5 / rh, 40 / rw, 40 / rh]
    unit_gold = [5 / size[0], 5 / size[1], 40 / size[0], 40 / size[1]]
    assert ex["score"] == pytest.approx(box_iou(unit_pred, unit_gold))
    assert ex["score"] == call(reward, '{"bbox_2d": [5, 5, 40, 40]}', {"images": [sample_images[0]],
                                                                        "solution": "[5, 5, 40, 40]"})


def test_math_accuracy_explains_which_check_decided():
    pytest.importorskip("math_verify")
    reward = build("math_accuracy")
    ex = reward.explain("<answer>0.5</answer>", solution="0.5")
    assert ex["score"] == 1.0 and ex["checked_by"] == "string"
    ex = reward.explain("<answer>\\frac{1}{2}</answer>", solution="$0.5$")
    assert ex["score"] == 1.0 and ex["checked_by"] == "math-verify" and ex["rule"] == "answer_tag"
    ex = reward.explain("no tags here 3", solution="4")
    assert ex["score"] == 0.0


# every registered reward (and the fuzz suite's variants) explains any input without raising, and its
# explanation carries the score the reward gives
from hypothesis import HealthCheck, given, settings  # noqa: E402
from test_rewards_fuzz import ALL, COMPLETIONS, ROWS, SLOW, VARIANTS  # noqa: E402

from swift_ext.rewards import as_text, configure  # noqa: E402

_built = {}


@pytest.mark.parametrize("spec", [n for n in ALL if n not in SLOW | {"random"}] + VARIANTS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                   HealthCheck.function_scoped_fixture])
@given(completion=COMPLETIONS, row=ROWS)
def test_explain_never_raises_and_agrees_with_the_reward(spec, completion, row):
    if spec not in _built:
        _built[spec] = configure(spec)()
    reward = _built[spec]
    text = as_text(completion)
    ex = reward.explain(text, **row)
    json.dumps(ex, default=str)
    assert ex["score"] == call(reward, text, row) and isinstance(ex["reason"], str)
