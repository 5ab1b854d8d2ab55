"""Task-answer rewards: numeric, mcq, yes_no, counting, set_accuracy. One case per line, reason in the comment."""

import doctest
import pickle

import pytest

from swift_ext.errors import ParamError
from swift_ext.rewards import answers, build, configure
from swift_ext.rewards.answers import Counting, MultipleChoice, Numeric, SetAccuracy, YesNo, extract_choice, \
    parse_number


def test_doctests():
    result = doctest.testmod(answers)
    assert result.attempted > 0 and result.failed == 0


def run(reward, cases, key="solution"):
    """cases: (completion, gold, expected) -> (got, expected) lists."""
    got = reward([c for c, _, _ in cases], **{key: [g for _, g, _ in cases]})
    return got, [e for _, _, e in cases]


class TestParseNumber:
    @pytest.mark.parametrize("text,expected", [
        ("42", (42.0, False)),
        ("-3.5", (-3.5, False)),
        ("−7", (-7.0, False)),                          # unicode minus
        ("1,234,567", (1234567.0, False)),
        ("3e5", (300000.0, False)),
        (".5", (0.5, False)),
        ("3/4", (0.75, False)),
        (r"\frac{3}{4}", (0.75, False)),
        (r"\dfrac{-1}{2}", (-0.5, False)),
        ("50%", (50.0, True)),
        (r"50\%", (50.0, True)),
        ("first 1 then 2", (2.0, False)),               # the last number
        ("1/0", None),                                  # division by zero
        ("1e999", None),                                # infinite
        ("nan", None), ("inf", None), ("", None), (None, None), (True, None),
        ("abc", None),
        (7, (7.0, False)),
        (float("nan"), None),
    ])
    def test_cases(self, text, expected):
        assert parse_number(text) == expected


class TestNumeric:
    def test_table(self):
        cases = [
            ("<answer>42</answer>", "42", 1.0),
            ("<answer>42.0</answer>", "42", 1.0),                        # 42.0 == 42
            ("<answer>41.9999999</answer>", "42", 1.0),                  # |diff| 1e-7 <= abs_tol 1e-6
            ("<answer>41.99</answer>", "42", 0.0),
            ("The total is 1,250 apples", 1250, 1.0),                    # numeric gold, no tags
            ("<answer>0.5</answer>", "1/2", 1.0),                        # fraction gold
            ("<answer>\\frac{1}{2}</answer>", "0.5", 1.0),
            ("<answer>\\boxed{7}</answer>", "7", 1.0),                   # boxed inside answer
            ("<answer>12%</answer>", "0.12", 1.0),                       # 12% as a fraction
            ("<answer>12%</answer>", "12", 1.0),                         # 12% as a number
            ("<answer>0.12</answer>", "12%", 1.0),
            ("<think>maybe 3</think><answer>4</answer>", "4", 1.0),     # reasoning ignored
            ("<think>4</think> final 3", "4", 0.0),
            ("<answer>four</answer>", "4", 0.0),                         # no digits
            ("", "4", 0.0),
            ("<answer>1e999</answer>", "4", 0.0),                        # infinity is no answer
            ("<answer>4</answer>", None, None),                          # no gold
            ("<answer>4</answer>", "", None),
            ("<answer>4</answer>", "n/a", None),                         # gold has no number
            ("<answer>4</answer>", float("nan"), None),
            ("<answer>4</answer>", True, None),                          # a boolean is not a number
            ("<answer>4</answer>", ["4"], 1.0),                          # one-element list column
            ("<answer>4</answer>", "<answer>4</answer>", 1.0),           # SFT-style gold
        ]
        got, exp = run(Numeric(), cases)
        assert got == exp

    def test_tolerances(self):
        assert Numeric(abs_tol=0.1)(["<answer>4.05</answer>"], solution=["4"]) == [1.0]     # .05 <= .1
        assert Numeric(rel_tol=0.01)(["<answer>1005</answer>"], solution=["1000"]) == [1.0]  # 5 <= 10
        assert Numeric(rel_tol=0.01)(["<answer>1011</answer>"], solution=["1000"]) == [0.0]  # 11 > 10
        assert build("numeric:abs_tol=0.5")(["3.4"], solution=["3"]) == [1.0]

    def test_relative_mode(self):
        r = Numeric(mode="relative")
        got = r(["<answer>90</answer>", "<answer>300</answer>", "<answer>1</answer>"], solution=["100", "100", "0"])
        # 1 - 10/100 = .9; 1 - 200/100 < 0 -> 0; gold 0: no relative error -> 0
        assert got == pytest.approx([0.9, 0.0, 0.0])

    def test_bad_params(self):
        with pytest.raises(ParamError):
            configure("numeric:abs_tol=-1")
        with pytest.raises(ParamError):
            configure("numeric:mode=fuzzy")
        with pytest.raises(ParamError):
            configure("numeric:abs_tol=nan")


class TestMultipleChoice:
    @pytest.mark.parametrize("text,expected", [
        ("B", "B"), ("(B)", "B"), ("B.", "B"), ("B) Paris", "B"), ("[C]", "C"), ("b", "B"),
        ("The answer is B.", "B"), ("the answer is option c", "C"), ("Answer: D", "D"),
        ("option B", "B"), ("choice (A)", "A"),
        ("答案是B", "B"), ("答案：C", "C"), ("选D", "D"), ("我选择 A", "A"),
        ("I think it is (C)", "C"),                   # "I" is a word, not an option
        ("A cat is on the mat, so D", "D"),           # "A" as an article is skipped
        ("Between (A) and (C), the answer is C.", "C"),
        ("nothing here", None), ("", None),
    ])
    def test_extract(self, text, expected):
        assert extract_choice(text) == expected

    def test_table(self):
        cases = [
            ("<answer>B</answer>", "B", 1.0),
            ("<answer>(B)</answer>", "B", 1.0),
            ("<answer>B. Paris</answer>", "B", 1.0),
            ("<answer>option B</answer>", "B", 1.0),
            ("<think>A looks right... no</think><answer>B</answer>", "B", 1.0),  # reasoning ignored
            ("答案是B", "B", 1.0),
            ("<answer>C</answer>", "B", 0.0),
            ("<answer>A or B</answer>", "B", 0.0),                 # hedging
            ("<answer>A, B</answer>", "B", 0.0),
            ("<answer>B和C</answer>", "B", 0.0),
            ("<answer>no idea</answer>", "B", 0.0),
            ("", "B", 0.0),
            ("<answer>B</answer>", "(B)", 1.0),                    # gold in another form
            ("<answer>B</answer>", "B. Paris", 1.0),
            ("<answer>B</answer>", "<answer>B</answer>", 1.0),
            ("<answer>B</answer>", None, None),                    # no gold
            ("<answer>B</answer>", "", None),
            ("<answer>B</answer>", "Paris", None),                 # gold is not a letter
            ("<answer>B</answer>", 3, None),
        ]
        got, exp = run(MultipleChoice(), cases)
        assert got == exp

    def test_letters_restrict(self):
        r = MultipleChoice(letters="ABCD")
        assert r(["<answer>E</answer>"], solution=["E"]) == [None]    # E is no option here: gold unusable
        assert build("mcq:letters=A|B|C|D")(["(D)"], solution=["D"]) == [1.0]
        with pytest.raises(ParamError):
            MultipleChoice(letters="123")

    def test_not_strict(self):
        assert MultipleChoice(strict=False)(["<answer>B, C</answer>"], solution=["B"]) == [1.0]   # leading B


class TestYesNo:
    def test_table(self):
        cases = [
            ("<answer>Yes</answer>", "yes", 1.0),
            ("<answer>yes.</answer>", "Yes", 1.0),
            ("Yes, there is a dog in the image.", "yes", 1.0),
            ("No, there is no dog.", "no", 1.0),
            ("<answer>No</answer>", "yes", 0.0),
            ("There is no cat, yes.", "no", 1.0),                 # the first yes/no word counts
            ("<answer>True</answer>", "yes", 1.0),
            ("<answer>是的</answer>", "yes", 1.0),
            ("<answer>不是</answer>", "no", 1.0),
            ("<answer>没有</answer>", "否", 1.0),
            ("I cannot tell", "yes", 0.0),                          # no yes/no: wrong
            ("", "no", 0.0),
            ("<answer>nope</answer>", "no", 0.0),                   # "nope" is not "no"
            ("<answer>Yes</answer>", True, 1.0),                    # boolean gold
            ("<answer>No</answer>", 0, 1.0),                        # 0/1 gold
            ("<answer>Yes</answer>", ["yes"], 1.0),
            ("<answer>Yes</answer>", None, None),
            ("<answer>Yes</answer>", "maybe", None),
            ("<answer>Yes</answer>", 7, None),
        ]
        got, exp = run(YesNo(), cases)
        assert got == exp


class TestCounting:
    def test_table(self):
        cases = [
            ("<think>I count</think><answer>3</answer>", "3", 1.0),
            ("<answer>There are 3 cars.</answer>", 3, 1.0),
            ("<answer>3.0</answer>", "3", 1.0),
            ("<answer>three</answer>", "3", 1.0),                  # number word
            ("<answer>三个</answer>", "3", 1.0),                    # Chinese count
            ("<answer>4</answer>", "3", 0.0),
            ("3", "3", 0.0),                                       # no <answer> tag: 0 by default
            ("<answer>2.5</answer>", "3", 0.0),                    # not whole
            ("<answer>-3</answer>", "3", 0.0),
            ("<answer></answer>", "3", 0.0),
            ("<answer>3</answer>", "<answer>3</answer>", 1.0),
            ("<answer>0</answer>", "0", 1.0),
            ("<answer>3</answer>", None, None),
            ("<answer>3</answer>", "many", None),
            ("<answer>3</answer>", "2.5", None),                   # gold not whole
            ("<answer>3</answer>", "-1", None),
            ("<answer>3</answer>", True, None),
        ]
        got, exp = run(Counting(), cases)
        assert got == exp

    def test_options(self):
        assert Counting(require_tag=False)(["I see 3 dogs"], solution=["3"]) == [1.0]
        # relative: 1 - |4-5|/5 = .8; 1 - |9-5|/5 = .2; gold 0, pred 2: 1 - 2/max(0,1) < 0 -> 0
        got = Counting(mode="relative")(["<answer>4</answer>", "<answer>9</answer>", "<answer>2</answer>"],
                                        solution=["5", "5", "0"])
        assert got == pytest.approx([0.8, 0.2, 0.0])


class TestSetAccuracy:
    def test_table(self):
        gold = ["cat", "dog"]
        cases = [
            ("<answer>cat, dog</answer>", gold, 1.0),
            ("<answer>Dog; the cat</answer>", gold, 1.0),            # order, case, articles
            ("<answer>cat</answer>", gold, 2 / 3),                   # P 1, R 1/2
            ("<answer>cat, dog, cow</answer>", gold, 0.8),           # P 2/3, R 1
            ("<answer>cat, cat, cat</answer>", gold, 2 / 3),         # duplicates count once
            ("<answer>cow</answer>", gold, 0.0),
            ('<answer>["cat", "dog"]</answer>', gold, 1.0),          # JSON list answer
            ("<answer>猫、狗</answer>", ["猫", "狗"], 1.0),             # Chinese separators
            ("<answer>cat, dog</answer>", "cat, dog", 1.0),          # string gold
            ("<answer>cat, dog</answer>", '["cat", "dog"]', 1.0),    # JSON gold
            ("<answer></answer>", [], 1.0),                          # both empty
            ("<answer>cat</answer>", [], 0.0),
            ("", gold, 0.0),
            ("<answer>cat</answer>", None, None),
        ]
        got, exp = run(SetAccuracy(), cases)
        assert got == pytest.approx(exp)

    def test_metrics(self):
        comp, gold = ["<answer>a, b, c</answer>"], [["b", "c", "d", "e"]]
        # common {b, c}: P 2/3, R 2/4, Jaccard 2 / |{a,b,c,d,e}| = 2/5
        assert SetAccuracy(metric="precision")(comp, solution=gold) == pytest.approx([2 / 3])
        assert SetAccuracy(metric="recall")(comp, solution=gold) == pytest.approx([0.5])
        assert SetAccuracy(metric="jaccard")(comp, solution=gold) == pytest.approx([0.4])
        assert SetAccuracy(metric="exact")(comp, solution=gold) == [0.0]
        assert SetAccuracy(metric="exact")(["<answer>c, b, d, e</answer>"], solution=gold) == [1.0]


@pytest.mark.parametrize("cls", [Numeric, MultipleChoice, YesNo, Counting, SetAccuracy])
def test_picklable(cls):
    r = pickle.loads(pickle.dumps(cls()))
    assert r(["<answer>x</answer>"], solution=[None]) == [None]
