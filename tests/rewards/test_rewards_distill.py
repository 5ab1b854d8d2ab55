"""Distillation reward: teacher_similarity (ROUGE-L, chrF, token F1) and its building blocks."""

import doctest
import pickle
import random

import pytest

from swift_ext.errors import ParamError
from swift_ext.rewards import build, configure, distill
from swift_ext.rewards.distill import TeacherSimilarity, chrf, lcs_length, rouge_l, token_f1


def test_doctests():
    result = doctest.testmod(distill)
    assert result.attempted > 0 and result.failed == 0


def lcs_dp(a, b):
    """The textbook O(n*m) dynamic programme, as an independent reference for the bit-parallel version."""
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


class TestLcs:
    @pytest.mark.parametrize("a,b,expected", [
        ("ABCBDAB", "BDCABA", 4),          # BCBA (CLRS)
        ("abc", "abc", 3), ("abc", "", 0), ("", "", 0), ("abc", "xyz", 0),
        ("aaaa", "aa", 2), ("ab", "ba", 1),
    ])
    def test_hand_cases(self, a, b, expected):
        assert lcs_length(a, b) == expected == lcs_length(b, a)

    def test_matches_dynamic_programme(self):
        rng = random.Random(0)
        for _ in range(300):
            a = [rng.choice("abcd") for _ in range(rng.randint(0, 70))]
            b = [rng.choice("abcd") for _ in range(rng.randint(0, 70))]
            assert lcs_length(a, b) == lcs_dp(a, b)


class TestMeasures:
    def test_rouge_l(self):
        # LCS("the cat sat on mat", "the cat was on the mat") = the cat on mat = 4; P 4/5, R 4/6 -> 8/11
        assert rouge_l("the cat sat on mat".split(), "the cat was on the mat".split()) == pytest.approx(8 / 11)
        assert rouge_l(["a"], ["b"]) == 0.0

    def test_token_f1(self):
        assert token_f1("a a b".split(), "a b b".split()) == pytest.approx(2 / 3)   # common a, b: P 2/3, R 2/3

    def test_chrf_hand(self):
        # "ab" vs "abc", orders 1..2, beta 2 (see the doctest): (5/7 + 5/9) / 2
        assert chrf("ab", "abc", max_n=2) == pytest.approx((5 / 7 + 5 / 9) / 2)
        assert chrf("a b", "ab", max_n=2) == pytest.approx(1.0)                     # whitespace ignored
        assert chrf("xyz", "abc") == 0.0

    def test_chrf_matches_nltk_on_long_texts(self):
        nltk_chrf = pytest.importorskip("nltk.translate.chrf_score").sentence_chrf
        pairs = [("the quick brown fox jumps over the lazy dog", "a quick brown dog jumps over the lazy fox"),
                 ("It is a guide to action that ensures that the military will forever heed Party commands",
                  "It is a guide to action which ensures that the military always obeys the commands of the party")]
        for hyp, ref in pairs:   # every order has n-grams on both sides here, so the definitions coincide
            assert chrf(hyp, ref, 6, 2.0) == pytest.approx(nltk_chrf(ref, hyp, beta=2.0), abs=1e-9)


class TestTeacherSimilarity:
    def test_table(self):
        teacher = "<think>long reasoning</think><answer>The cat sat down.</answer>"
        cases = [
            ("<answer>the cat sat down</answer>", 1.0),               # same words after normalisation
            ("<answer>The cat sat.</answer>", 6 / 7),                 # LCS 3: P 1, R 3/4 -> 6/7
            ("<answer>down sat cat the</answer>", 0.25),              # LCS 1 (order matters): P 1/4 R 1/4
            ("<answer>a dog</answer>", 0.0),
            ("", 0.0),
            ("<think>the cat sat down</think><answer>no</answer>", 0.0),   # reasoning is not compared
        ]
        got = TeacherSimilarity()([c for c, _ in cases], solution=[teacher] * len(cases))
        assert got == pytest.approx([e for _, e in cases])

    def test_metrics(self):
        comp, gold = ["<answer>down sat cat the</answer>"], ["the cat sat down"]
        assert TeacherSimilarity(metric="token_f1")(comp, solution=gold) == [1.0]          # bag of words
        assert build("teacher_similarity:metric=chrf")(comp, solution=gold)[0] < 1.0
        assert TeacherSimilarity(metric="chrf")(["the cat sat down"], solution=gold) == pytest.approx([1.0])

    def test_cjk(self):
        # characters are words: 猫 坐 着 vs 猫 在 坐 着 -> LCS 3: P 1, R 3/4 -> 6/7
        assert TeacherSimilarity()(["猫坐着"], solution=["猫在坐着"]) == pytest.approx([6 / 7])

    def test_scope_all(self):
        r = TeacherSimilarity(scope="all")
        assert r(["<think>x</think>y"], solution=["x y"]) == pytest.approx([1.0])   # tags are punctuation

    @pytest.mark.parametrize("gold", [None, "", "   ", "<answer></answer>", "!!!", True, {"a": 1}])
    def test_unusable_teacher_abstains(self, gold):
        for metric in ("rouge_l", "chrf", "token_f1"):
            assert TeacherSimilarity(metric=metric)(["anything"], solution=[gold]) == [None]

    def test_max_tokens_bounds_work(self):
        r = TeacherSimilarity(max_tokens=3)
        # both sides cut to 3 words: "a b c" vs "a b c" -> 1.0 although the tails differ
        assert r(["a b c x y z"], solution=["a b c d e f"]) == [1.0]

    def test_params(self):
        with pytest.raises(ParamError):
            configure("teacher_similarity:metric=bleu")
        with pytest.raises(ParamError):
            configure("teacher_similarity:chrf_order=0")
        r = pickle.loads(pickle.dumps(TeacherSimilarity()))
        assert r(["a"], solution=["a"]) == [1.0]
