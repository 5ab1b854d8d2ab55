"""The foundation's rewards (think_format, exact_match, math_accuracy, random), extraction and the base class."""

import asyncio
import importlib.util
import math
import pickle

import pytest

from swift_ext.errors import ParamError
from swift_ext.rewards import AsyncReward, Reward, build, configure, split_rows
from swift_ext.rewards.base import column
from swift_ext.extract import extract_answer, normalize, strip_think

require_math = pytest.mark.skipif(importlib.util.find_spec("math_verify") is None, reason="needs math-verify")


class TestExtract:
    @pytest.mark.parametrize("text,mode,expected", [
        ("<answer> 42 </answer>", "answer_tag", "42"),
        ("<answer>1</answer> then <answer>2</answer>", "answer_tag", "2"),            # the last tag wins
        ("<answer>unclosed 7", "answer_tag", "unclosed 7"),                             # unclosed: take the rest
        ("no tags", "answer_tag", None),
        (r"\boxed{\frac{1}{2}}", "boxed", r"\frac{1}{2}"),                              # nested braces
        (r"\boxed{1} and \boxed{2}", "boxed", "2"),
        (r"\boxed{unbalanced", "boxed", None),
        (r"\boxed 5", "boxed", "5"),
        ("x = 3, y = -1,234.5", "last_number", "-1234.5"),                               # thousands separators
        ("growth of 12%", "last_number", "12%"),
        ("no digits", "last_number", None),
        ("I pick (B)", "last_letter", "B"),
        ("Answer: C.", "last_letter", "C"),
        ("答案是D", "last_letter", "D"),
        ("lowercase b only", "last_letter", None),
        ("<think>A is tempting</think><answer>B</answer>", "last_letter", "B"),        # reasoning is skipped
        ("<think>x</think><answer>\\boxed{9}</answer>", "auto", "9"),                  # boxed inside answer
        ("reasoning</think> final: 5", "auto", "final: 5"),                            # pre-filled <think>
        ("", "auto", None),
        ("  raw  ", "none", "raw"),
    ])
    def test_modes(self, text, mode, expected):
        assert extract_answer(text, mode) == expected

    def test_unknown_mode(self):
        with pytest.raises(ValueError):
            extract_answer("x", "bogus")

    def test_strip_think(self):
        assert strip_think("<think>a</think>b") == "b"
        assert strip_think("a</think>b</think>c") == "c"      # last close wins
        assert strip_think("plain") == "plain"

    @pytest.mark.parametrize("a,b", [
        ("Paris", " paris. "), ("The Eiffel Tower", "eiffel tower"), ("Ｐａｒｉｓ", "paris"),
        (r"\text{yes}", "Yes"), ("$5$", "5"),
    ])
    def test_normalize_equal(self, a, b):
        assert normalize(a) == normalize(b)


class TestThinkFormat:
    R = build("think_format")

    @pytest.mark.parametrize("completion,expected", [
        ("<think>2+2=4</think><answer>4</answer>", 1.0),
        ("<think>\n2+2\n</think>\n\n<answer>4</answer>\n", 1.0),      # whitespace around blocks
        ("2+2=4</think>\n<answer>4</answer>", 1.0),                   # template pre-filled <think>
        ("<think></think><answer>4</answer>", 1.0),                   # empty reasoning (non-thinking Qwen3)
        ("<answer>4</answer>", 0.0),                                  # no reasoning, think required
        ("<think>a</think><answer>4</answer> trailing", 0.0),         # text after </answer>
        ("<think>a</think><answer> </answer>", 0.0),                  # empty answer
        ("<think>a</think><think>b</think><answer>4</answer>", 0.0),  # repeated tags
        ("<think>a</think><answer>4</answer><answer>5</answer>", 0.0),
        ("<think>a<answer>4</answer>", 0.0),                          # think never closed
        ("x<think>a</think><answer>4</answer>", 0.0),                 # text before <think>
        ("<answer>4</answer><think>a</think>", 0.0),                  # wrong order
        ("", 0.0), (None, 0.0),
    ])
    def test_cases(self, completion, expected):
        assert self.R([completion]) == [expected]

    def test_optional_think_and_no_prefill(self):
        assert build("think_format:think=optional")(["<answer>4</answer>"]) == [1.0]
        assert build("think_format:allow_prefilled=false")(["a</think><answer>4</answer>"]) == [0.0]


class TestExactMatch:
    @pytest.mark.parametrize("spec,completion,gold,expected", [
        ("exact_match", "<answer>Paris</answer>", "paris", 1.0),
        ("exact_match", "<answer>The Paris.</answer>", "Paris", 1.0),       # article and punctuation dropped
        ("exact_match", "<answer>Rome</answer>", "Paris", 0.0),
        ("exact_match", "<answer>Rome</answer>", ["Paris", "Rome"], 1.0),   # a list of golds: any matches
        ("exact_match", "<answer>x</answer>", "<answer>x</answer>", 1.0),   # SFT-style gold is extracted too
        ("exact_match", "no tags at all but Paris", "Paris", 0.0),          # auto: whole text, not equal
        ("exact_match:extract=last_number", "so it is 1,200 total", "1200", 1.0),
        ("exact_match:extract=last_letter", "I choose (C).", "C", 1.0),
        ("exact_match:case_sensitive=true", "<answer>paris</answer>", "Paris", 0.0),
        ("exact_match:extract=answer_tag", "Paris", "Paris", 0.0),           # no tag -> nothing extracted
        ("exact_match", "<answer>4</answer>", 4, 1.0),                       # numeric gold
    ])
    def test_cases(self, spec, completion, gold, expected):
        assert build(spec)([completion], solution=[gold]) == [expected]

    @pytest.mark.parametrize("gold", [None, "", "   ", [], [None, ""], True])
    def test_abstains_on_unusable_gold(self, gold):
        assert build("exact_match")(["<answer>x</answer>"], solution=[gold]) == [None]

    def test_gold_key(self):
        r = build("exact_match:gold_key=answer")
        assert r(["<answer>7</answer>", "<answer>8</answer>"], answer=["7", "7"]) == [1.0, 0.0]
        assert r(["<answer>7</answer>"], solution=["7"]) == [None]           # column missing -> abstain


@require_math
class TestMathAccuracy:
    R = None

    @classmethod
    def setup_class(cls):
        cls.R = build("math_accuracy:timeout=2")

    @pytest.mark.parametrize("completion,gold,expected", [
        ("<answer>\\frac{1}{2}</answer>", "0.5", 1.0),
        ("<answer>0.5</answer>", "$\\frac{1}{2}$", 1.0),
        ("\\boxed{\\frac{2}{4}}", "1/2", 1.0),                  # boxed without answer tags
        ("<think>it is 3</think><answer>4</answer>", "4", 1.0),
        ("<answer>2^{10}</answer>", "1024", 1.0),               # LaTeX power, not the number 2
        ("<answer>2^{10}</answer>", "2", 0.0),
        ("<answer>3</answer>", "4", 0.0),
        ("<answer>banana</answer>", "4", 0.0),                  # unparseable prediction scores 0
        ("", "4", 0.0),
    ])
    def test_cases(self, completion, gold, expected):
        assert self.R([completion], solution=[gold]) == [expected]

    @pytest.mark.parametrize("gold", [None, "", "}{", "\\frac{"])
    def test_abstains_on_unusable_gold(self, gold):
        assert self.R(["<answer>4</answer>"], solution=[gold]) == [None]

    def test_hard_time_bound(self):
        import time

        from swift_ext.rewards.pool import get_pool

        r = build("math_accuracy:timeout=0.3")
        tower = "<answer>" + "2^{" * 8 + "2" + "}" * 8 + "</answer>"   # 2^2^...^2: sympy would run for ages
        r(["<answer>x</answer>"], solution=["2"])                       # start the workers outside the timing
        assert get_pool().wait_ready()
        kills = get_pool().kills
        t0 = time.monotonic()
        out = r([tower, "<answer>0.5</answer>"], solution=["2", "1/2"])
        elapsed = time.monotonic() - t0
        assert out == [0.0, 1.0]                                         # killed item scores 0, the other is scored
        assert get_pool().kills > kills
        assert elapsed < 0.3 + 1.5                                       # the call's deadline, not a restart


def test_random_is_seedable_and_bounded():
    a = build("random:seed=3,low=-1,high=1")(["x"] * 50)
    b = build("random:seed=3,low=-1,high=1")(["x"] * 50)
    assert a == b and all(-1 <= v < 1 for v in a) and len(set(a)) > 1
    assert build("random:low=5,high=5")(["x", "y"]) == [5.0, 5.0]
    with pytest.raises(ParamError, match="high=0.0 is below low=1.0"):
        build("random:low=1,high=0")


class TestBase:
    def test_configured_class_is_named_after_spec(self):
        cls = configure("exact_match:extract=last_number")
        assert cls.__name__ == "exact_match:extract=last_number"
        assert configure("exact_match").__name__ == "exact_match"
        assert cls(args=object()).extract == "last_number"      # ms-swift constructs cls(args=GRPOConfig)

    def test_bad_params_fail_at_configuration(self):
        with pytest.raises(ParamError, match="choose one of"):
            configure("exact_match:extract=everything")
        with pytest.raises(ParamError, match="unknown parameter.*threshold"):
            configure("think_format:threshold=1")

    def test_errors_and_non_finite_become_fallback(self, caplog):
        class Flaky(Reward):
            name = "flaky"

            def score(self, completion, **row):
                if completion == "boom":
                    raise ZeroDivisionError
                return {"nan": math.nan, "inf": math.inf, "str": "x"}.get(completion, 0.5)

        r = Flaky()
        assert r(["boom", "nan", "inf", "str", "ok"]) == [0.0, 0.0, 0.0, 0.0, 0.5]
        assert sum("reward flaky" in m for m in caplog.messages) == 1     # logged once per instance

    def test_a_raising_batch_path_still_scores_the_other_rows(self, caplog):
        class InverseLength(Reward):
            """1 / characters, vectorised; an empty completion divides by zero."""
            name = "inverse_length"
            columns = ()

            def score_batch(self, completions, rows):   # score() is a batch of one (the base's default)
                return [1.0 / len(c) for c in completions]

        r = InverseLength()
        assert r(["ab", "abcd"]) == [0.5, 0.25] and not r._warned
        assert r(["ab", "", "abcd", None]) == [0.5, 0.0, 0.25, 0.0]          # the batch raised: row by row
        assert r._warned and sum("reward inverse_length" in m for m in caplog.messages) == 1

    def test_batch_values_are_checked_one_by_one(self):
        class Batchy(Reward):
            name = "batchy"
            columns = ("solution",)

            def score_batch(self, completions, rows):
                gold = column(rows, "solution")
                return [{"nan": math.nan, "inf": -math.inf, "none": None, "int": 2, "huge": 10 ** 400}.get(g, 0.5)
                        for g in gold]

        r = Batchy()
        out = r(["a"] * 6, solution=["ok", "nan", "inf", "none", "int", "huge"])
        assert out == [0.5, 0.0, 0.0, None, 2.0, 0.0] and type(out[4]) is float

    def test_wrong_number_of_batch_scores_falls_back_to_rows(self):
        class Short(Reward):
            name = "short"
            columns = ()

            def score_batch(self, completions, rows):
                return [1.0]                                               # one score whatever the batch

            def score(self, completion, **row):
                return float(len(completion))

        assert Short()(["a", "bb", "ccc"]) == [1.0, 2.0, 3.0]

    def test_rows_read_by_column_or_by_row(self):
        rows = split_rows(3, {"solution": ["a", "b", "c"], "trainer_state": "s", "images": ["only one"]})
        assert column(rows, "solution") == ["a", "b", "c"]
        assert column(rows, "trainer_state") == ["s"] * 3 and column(rows, "absent") == [None] * 3
        assert column(rows, "images") == [["only one"]] * 3                    # not one value per row: shared
        assert list(rows) == [rows[0], rows[1], rows[-1]] == [
            {"solution": x, "trainer_state": "s", "images": ["only one"]} for x in "abc"]
        assert column([{"solution": 1}, {}], "solution") == [1, None]          # plain row dicts work too
        with pytest.raises(IndexError):
            rows[3]

    def test_columns_split_per_row_and_shared_kwargs(self):
        seen = []

        class Spy(Reward):
            name = "spy"

            def score(self, completion, **row):
                seen.append((completion, row.get("solution"), row.get("trainer_state")))
                return 1.0

        state = object()
        Spy()(["a", "b"], solution=["s1", "s2"], trainer_state=state)
        assert seen == [("a", "s1", state), ("b", "s2", state)]

    def test_trl_style_and_odd_completions(self):
        r = build("exact_match")
        trl = [[{"role": "assistant", "content": "<answer>7</answer>"}]]
        assert r(trl, solution=["7"]) == [1.0]
        assert r([None, 7, b"<answer>7</answer>"], solution=["7"] * 3) == [0.0, 1.0, 1.0]

    def test_async_reward(self):
        class Slow(AsyncReward):
            name = "slow"

            async def ascore(self, completion, **row):
                await asyncio.sleep(0)
                if completion == "bad":
                    raise ValueError
                return len(completion)

        r = Slow()
        assert asyncio.run(r(["ab", "bad", "abcd"])) == [2.0, 0.0, 4.0]
        assert Slow.describe()["async"] is True

    @pytest.mark.parametrize("spec", ["exact_match:extract=last_number", "think_format"])
    def test_configured_rewards_pickle_by_spec(self, spec):
        reward = build(spec)
        copy = pickle.loads(pickle.dumps(reward))
        assert type(copy).__name__ == spec and copy.config == reward.config
        assert copy(["it is 3"], solution=["3"]) == reward(["it is 3"], solution=["3"])

    @pytest.mark.parametrize("name", ["think_format", "exact_match", "random"])
    def test_pickle_round_trip(self, name):
        from swift_ext.rewards import get_reward

        inst = get_reward(name)()
        assert pickle.loads(pickle.dumps(inst)).config == inst.config
