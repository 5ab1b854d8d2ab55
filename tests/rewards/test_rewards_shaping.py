"""Shaping rewards: ngram_repetition, length_budget, reasoning_steps, language_consistency, tag_count."""

import doctest
import pickle
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swift_ext.errors import ParamError
from swift_ext.rewards import build, configure, shaping
from swift_ext.rewards.shaping import LanguageConsistency, LengthBudget, NgramRepetition, ReasoningSteps, TagCount


def test_doctests():
    result = doctest.testmod(shaping)
    assert result.attempted > 0 and result.failed == 0


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=200))
def test_words_fast_path_equals_the_regex(text):
    # ASCII text takes str.split(); it must give exactly what the CJK-aware regex gives
    assert shaping.words(text) == shaping._UNITS.findall(text.lower())


class TestNgramRepetition:
    def test_word_table(self):
        cases = [
            ("the cat sat on the mat", 0.0),                           # 4 trigrams, all distinct
            ("a b c a b c a b c", -(1 - 3 / 7)),                       # 7 trigrams, 3 distinct
            ("go go go go go", -(1 - 1 / 3)),                          # 3 trigrams, 1 distinct
            ("Go GO go go go", -(1 - 1 / 3)),                          # lower-cased
            ("one two", 0.0),                                          # fewer words than n
            ("", 0.0),
            ("我爱你我爱你我爱你", -(1 - 3 / 7)),                          # CJK characters are words: 9 chars
        ]
        assert NgramRepetition()([c for c, _ in cases]) == pytest.approx([e for _, e in cases])

    def test_char_and_token_units(self):
        # char: "abab ab" -> "ababab", bigrams ab ba ab ba ab: 5, distinct 2 -> -(1 - 2/5)
        assert NgramRepetition(n=2, unit="char")(["abab ab"]) == pytest.approx([-0.6])
        # token: ids [1,2,1,2,1]: bigrams 4, distinct 2 -> -.5; the text is ignored
        r = NgramRepetition(n=2, unit="token")
        assert r(["whatever text"], response_token_ids=[[1, 2, 1, 2, 1]]) == pytest.approx([-0.5])
        # no ids in the row: words are used ("x y x y": 3 bigrams, 2 distinct -> -1/3)
        assert r(["x y x y"]) == pytest.approx([-1 / 3])

    def test_max_penalty_and_scope(self):
        assert NgramRepetition(max_penalty=-0.5)(["go go go go go"]) == pytest.approx([-0.5 * (1 - 1 / 3)])
        with pytest.raises(ParamError):
            configure("ngram_repetition:max_penalty=0.5")             # must be <= 0
        with pytest.raises(ParamError):
            configure("ngram_repetition:n=0")
        # think scope: only the reasoning is looked at
        text = "<think>a b c d e</think><answer>x x x x x</answer>"
        assert NgramRepetition(scope="think")([text]) == [0.0]
        assert NgramRepetition(scope="answer")([text]) == pytest.approx([-(1 - 1 / 3)])


class TestLengthBudget:
    def test_char_table(self):
        # max 10, soft cache 4: free up to 6, linear to -1 at 10, -1 beyond
        r = LengthBudget(max_length=10, soft_cache=4, unit="char")
        cases = [("", 0.0), ("x" * 6, 0.0), ("x" * 7, -0.25), ("x" * 9, -0.75), ("x" * 10, -1.0), ("x" * 1000, -1.0)]
        assert r([c for c, _ in cases]) == pytest.approx([e for _, e in cases])

    def test_tokens_from_ms_swift_and_fallback(self):
        r = LengthBudget(max_length=10, soft_cache=4)
        ids = [[1] * 8, [[1] * 4, [1] * 5], [], None]
        # 8 tokens -> -(8-6)/4 = -.5; multi-turn 4+5 = 9 -> -.75; 0 tokens -> 0;
        # no ids: words of "a b c d e f g h" = 8 -> -.5
        assert r(["ignored", "ignored", "ignored", "a b c d e f g h"], response_token_ids=ids) == \
            pytest.approx([-0.5, -0.75, 0.0, -0.5])

    def test_hard_budget_penalty_and_words(self):
        r = LengthBudget(max_length=3, unit="word", penalty=0.5)
        assert r(["a b c", "a b c d", "我爱你们"]) == [0.0, -0.5, -0.5]   # 4 CJK chars = 4 words > 3

    def test_budget_column(self):
        r = LengthBudget(max_length=100, soft_cache=4, unit="char", budget_key="budget")
        # per-row budget 10 replaces 100: 8 chars -> -(8-6)/4; bad budget values fall back to 100
        assert r(["x" * 8, "x" * 8, "x" * 8], budget=[10, "junk", None]) == pytest.approx([-0.5, 0.0, 0.0])

    def test_bad_params(self):
        with pytest.raises(ParamError):
            LengthBudget(max_length=10, soft_cache=10)                # cache must be below max (ms-swift asserts)
        with pytest.raises(ParamError):
            configure("length_budget:max_length=0")
        with pytest.raises(ParamError):
            configure("length_budget:unit=bytes")
        assert build("length_budget:max_length=5,unit=char")(["x" * 6]) == [-1.0]


    def test_batch_path_equals_row_by_row(self):
        # the batch path reads every row's length with one len(); rows it cannot (no ids, a list per turn,
        # text, a tuple) must still get what the one-row path (token_ids) gives them
        r = LengthBudget(max_length=10, soft_cache=4)
        texts = ["a b c d e f g h", "x", "x y", "x", "x", "x y z", "x"]
        flat = [[1] * 8, [], [7] * 12, (5,) * 9, [1] * 7]
        odd = [None, "not ids", [[1] * 4, [1] * 5], [[]], [None, "x"], b"abcdefghij", (3,) * 9]
        assert shaping.flat_lengths(flat) == [8, 0, 12, 9, 7] and shaping.flat_lengths(odd) is None
        for ids in (flat, odd, flat + odd, odd[:1] + flat):
            batch = r(texts[:len(ids)] + ["x"] * (len(ids) - len(texts)), response_token_ids=ids)
            alone = [r.score(t, response_token_ids=i) for t, i in zip(texts + ["x"] * len(ids), ids)]
            assert batch == alone, ids


    @settings(max_examples=200, deadline=None)
    @given(st.integers(2, 400), st.data())
    def test_equals_trl_soft_overlong_punishment(self, max_length, data):
        """Differential against the reference: TRL's ``get_soft_overlong_punishment`` (DAPO's formula) on
        generated token ids, lengths around every zone boundary (free, soft, at and beyond the maximum)."""
        from trl.rewards import get_soft_overlong_punishment

        cache = data.draw(st.integers(1, max_length - 1))
        start = max_length - cache
        near = st.sampled_from([0, 1, start - 1, start, start + 1, max_length - 1, max_length, max_length + 1])
        lengths = data.draw(st.lists(st.one_of(near, st.integers(0, 2 * max_length)).filter(lambda n: n >= 0),
                                     min_size=1, max_size=64))
        ids = [[7] * n for n in lengths]
        theirs = get_soft_overlong_punishment(max_length, cache)(completion_ids=ids)
        mine = LengthBudget(max_length=max_length, soft_cache=cache)(["x"] * len(ids), response_token_ids=ids)
        assert mine == theirs
        alone = [LengthBudget(max_length=max_length, soft_cache=cache).score("x", response_token_ids=i) for i in ids]
        assert alone == theirs                                    # the one-row path agrees too


class TestReasoningSteps:
    def test_table(self):
        cases = [
            ("Step 1: add.\nStep 2: carry.\nStep 3: done.", 1.0),
            ("1. add\n2. carry\n3. done\n4. check", 1.0),            # capped at 1
            ("First, add. Next, carry.", 2 / 3),
            ("\n- a\n- b", 2 / 3),                                     # bullets
            ("首先相加，然后进位，最后检查", 1.0),                         # Chinese markers
            ("第一步：相加", 1 / 3),
            ("just the answer 42", 0.0),
            ("", 0.0),
        ]
        assert ReasoningSteps()([c for c, _ in cases]) == pytest.approx([e for _, e in cases])

    def test_target_and_scope(self):
        assert ReasoningSteps(target=1)(["First, x."]) == [1.0]
        text = "<think>Step 1: a</think><answer>Step 2: b\nStep 3: c</answer>"
        assert ReasoningSteps(scope="think")([text]) == pytest.approx([1 / 3])


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(["Step ", "1", "23", ":", ".", "\n", "-", "*", "First,", "Second", ",", "Next,",
                                 "Finally,", " ", "x", "\r"]), max_size=30).map("".join))
def test_step_markers_are_open_r1s(text):
    # open-r1's pattern, as its docstring says, with re.M so that every numbered line counts
    pattern = r"(Step \d+:|^\d+\.|\n-|\n\*|First,|Second,|Next,|Finally,)"
    assert shaping.count_steps(text) == len(re.findall(pattern, text, re.M))


class TestLanguageConsistency:
    def test_auto_target(self):
        zh = [{"role": "system", "content": "You are a helpful assistant."},
              {"role": "user", "content": "图中有几只猫？"}]                # the system prompt is not the user's language
        en = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many cats?"}]}]
        cases = [
            ("图中有两只猫", zh, 1.0),
            ("There are two cats", zh, 0.0),
            ("图中有 two cats", zh, 0.6),                    # 3 Han vs 2 words
            ("There are two cats", en, 1.0),
            ("There are 两只 cats", en, 0.6),                # 3 words vs 2 Han
            ("答案是 `print(x)` 和 $x^2$", zh, 1.0),          # code and LaTeX ignored: 4 Han, 0 words
            ("42", zh, 1.0),                                  # no language units: empty_score
        ]
        got = LanguageConsistency()([c for c, _, _ in cases], messages=[m for _, m, _ in cases])
        assert got == pytest.approx([e for _, _, e in cases])

    def test_fixed_target_and_abstain(self):
        assert LanguageConsistency(target="en")(["hello 世界"]) == pytest.approx([1 / 3])   # 1 word vs 2 Han
        r = LanguageConsistency()
        assert r(["hello"]) == [None]                                   # no prompt at all
        assert r(["hello"], messages=[[{"role": "user", "content": "123 ???"}]]) == [None]   # prompt has no language
        assert r(["hello"], prompt=["what?"]) == [1.0]                  # a prompt column
        assert LanguageConsistency(empty_score=0.0)(["42"], prompt=["what?"]) == [0.0]


class TestTagCount:
    def test_table(self):
        cases = [
            ("<think>a</think><answer>b</answer>", 1.0),
            ("<think>a</think>b", 0.5),
            ("a</think><answer>b</answer>", 1.0),            # pre-filled <think>
            ("<think>a</think><think>b</think><answer>c</answer>", 0.5),   # think tags twice: 0 for both
            ("<answer>b</answer>", 0.5),
            ("b", 0.0),
            ("", 0.0),
        ]
        assert TagCount()([c for c, _ in cases]) == pytest.approx([e for _, e in cases])

    def test_open_r1_newlines(self):
        r = TagCount(newlines=True, allow_prefilled=False)
        assert r(["<think>\na\n</think>\n<answer>\nb\n</answer>", "<think>a</think><answer>b</answer>",
                  "<think>\na\n</think>\n<answer>b</answer>"]) == [1.0, 0.0, 0.5]

    def test_custom_tags(self):
        r = build("tag_count:tags=reason|final")
        assert r(["<reason>x</reason><final>y", "<think>x</think>"]) == [0.75, 0.0]
        with pytest.raises(ParamError):
            TagCount(tags=["bad tag"])


def _tag_count_by_definition(text, tags, newlines, allow_prefilled):
    """TagCount as its docstring defines it, tag by tag (the reference for its counted batch path)."""
    ok = 0
    for i, t in enumerate(tags):
        if newlines:
            opening = ("\n" if i else "") + f"<{t}>\n"
            closing = f"\n</{t}>" + ("\n" if i < len(tags) - 1 else "")
        else:
            opening, closing = f"<{t}>", f"</{t}>"
        n_open, n_close = text.count(opening), text.count(closing)
        prefilled = i == 0 and allow_prefilled and n_open == 0 and n_close == 1 and f"<{t}>" not in text
        ok += (n_open == 1 or prefilled) + (n_close == 1)
    return ok / (2 * len(tags))


@settings(max_examples=200, deadline=None)
@given(texts=st.lists(st.lists(st.sampled_from(["<think>", "</think>", "<answer>", "</answer>", "\n", "x", "<final>",
                                                 "</final>"]), max_size=12).map("".join), min_size=1, max_size=6),
       tags=st.sampled_from([["think", "answer"], ["think"], ["think", "answer", "final"]]),
       newlines=st.booleans(), allow_prefilled=st.booleans())
def test_tag_count_batch_matches_its_definition(texts, tags, newlines, allow_prefilled):
    r = TagCount(tags=tags, newlines=newlines, allow_prefilled=allow_prefilled)
    assert r(texts) == [_tag_count_by_definition(t, tags, newlines, allow_prefilled) for t in texts]


@pytest.mark.parametrize("cls", [NgramRepetition, LengthBudget, ReasoningSteps, LanguageConsistency, TagCount])
def test_picklable(cls):
    r = pickle.loads(pickle.dumps(cls()))
    assert len(r(["x"], prompt=["y"])) == 1
