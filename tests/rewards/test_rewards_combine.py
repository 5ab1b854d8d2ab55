"""gated and cosine_scaled: rewards built from other rewards."""

import math

import pytest

from runtime_rewards import Counted
from swift_ext.errors import ParamError
from swift_ext.rewards import build
from swift_ext.testing import make_plugin

GOOD = "<think>because</think><answer>dog</answer>"
NO_THINK = "<answer>dog</answer>"
WRONG = "<think>hm</think><answer>cat</answer>"


def test_gate_decides_whether_the_reward_counts():
    r = build("gated:gate=think_format,reward=exact_match")
    assert r([GOOD, NO_THINK, WRONG], solution=["dog"] * 3) == [1.0, 0.0, 0.0]
    assert build("gated:gate=think_format,reward=exact_match,otherwise=-1")([NO_THINK], solution=["dog"]) == [-1.0]


def test_reward_is_not_computed_where_the_gate_fails(register_plugin):
    register_plugin(make_plugin("counted", register_rewards=lambda register: register(Counted)))
    Counted.seen.clear()
    build("gated:gate=think_format,reward=test_counted")([GOOD, NO_THINK, WRONG])
    assert Counted.seen == [GOOD, WRONG]


def test_min_and_product_and_abstaining_parts():
    comps, gold = [GOOD, NO_THINK], ["dog", "dog"]
    assert build("gated:gate=think_format,reward=exact_match,combine=min")(comps, solution=gold) == [1.0, 0.0]
    assert build("gated:gate=exact_match,reward=think_format,combine=product")(comps, solution=gold) == [1.0, 0.0]
    # the gate abstains (no gold): None; the reward abstains where the gate passed: None
    assert build("gated:gate=exact_match,reward=think_format")([GOOD], solution=[None]) == [None]
    assert build("gated:gate=think_format,reward=exact_match")([GOOD], solution=[None]) == [None]


def test_sub_scores_are_kept():
    r = build("gated:gate=think_format,reward=exact_match")
    r([GOOD, NO_THINK], solution=["dog"] * 2)
    assert r.last_details == [{"gate": 1.0, "reward": 1.0}, {"gate": 0.0, "reward": None}]


def test_bad_parts_fail_at_configuration():
    with pytest.raises(ParamError, match="gate='no_such_reward'"):
        build("gated:gate=no_such_reward")
    with pytest.raises(ParamError, match="async"):
        build("gated:reward=judge")


def cos_score(length, max_len, correct):
    c = math.cos(min(length, max_len) / max_len * math.pi)
    return 0.5 + 0.5 * (1 + c) / 2 if correct else -0.5 - 0.5 * (1 + c) / 2


def test_cosine_scale_ends_and_clamp():
    r = build("cosine_scaled:reward=exact_match,max_len=100")
    comps = ["<answer>4</answer>", "<answer>5</answer>"] * 3
    ids = [[]] * 2 + [[0] * 100] * 2 + [[0] * 5000] * 2
    assert r(comps, solution=["4"] * 6, response_token_ids=ids) == [1.0, -1.0, 0.5, -0.5, 0.5, -0.5]
    mid = r(["<answer>4</answer>"], solution=["4"], response_token_ids=[[0] * 30])
    assert mid == [pytest.approx(cos_score(30, 100, True))]


def test_cosine_without_token_ids_uses_characters_over_four():
    text = "<answer>4</answer>" + " " * 182                         # 200 characters: 50 "tokens"
    assert build("cosine_scaled:max_len=100")([text], solution=["4"]) == [pytest.approx(cos_score(50, 100, True))]


def test_cosine_abstains_with_its_accuracy_reward():
    assert build("cosine_scaled")(["<answer>4</answer>"], solution=[None]) == [None]


def test_parts_may_be_math_accuracy():
    pytest.importorskip("math_verify")
    r = build("cosine_scaled:reward=math_accuracy,max_len=10")
    assert r(["<answer>\\frac{1}{2}</answer>"], solution=["0.5"], response_token_ids=[[0] * 10]) == [0.5]
