"""``strip_think`` / ``answer_tag`` find the last tag with ``str.rfind`` first (speed); the definition is the last
case-insensitive regex match, spelled out here the slow way and compared on generated tag soups (upper-case
and Unicode case-folding spellings such as the Kelvin sign and the long s included)."""

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from swift_ext.extract import answer_tag, strip_think

OPEN, CLOSE, THINK = re.compile("<answer>", re.I), re.compile("</answer>", re.I), re.compile("</think>", re.I)
PARTS = ["<answer>", "</answer>", "<ANSWER>", "</Answer>", "<think>", "</think>", "</THINK>", "</thinK>", "x", " ",
         "\u212a", "<answer", "answer>", "</", "\u017f", "</an\u017fwer>", "\u0130", "\n"]


def last(rx, text, end=None):
    found = list(rx.finditer(text, 0, len(text) if end is None else end))
    return found[-1] if found else None


def slow_strip_think(text):
    m = last(THINK, text)
    return text[m.end():] if m else text


def slow_answer_tag(text):
    close = last(CLOSE, text)
    if close:
        opening = last(OPEN, text, close.start())
        if opening:
            return text[opening.end():close.start()].strip()
    opening = last(OPEN, text)
    return text[opening.end():].strip() if opening else None


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(PARTS), max_size=14).map("".join))
def test_fast_tag_search_is_the_last_regex_match(text):
    assert strip_think(text) == slow_strip_think(text)
    assert answer_tag(text) == slow_answer_tag(text)


def slow_auto(text):
    """extract_answer(mode="auto") by its definition: <answer> content (a \\boxed inside wins), else \\boxed, else
    the text after reasoning."""
    from swift_ext.extract import boxed

    body = slow_strip_think(text)
    inner = slow_answer_tag(body)
    if inner is not None:
        b = boxed(inner)
        return b if b is not None else inner
    b = boxed(body)
    return b if b is not None else (body.strip() or None)


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(PARTS + ["\\boxed{7}", "\\", "  ", "\\fbox{x}"]), max_size=14).map("".join))
def test_auto_extraction_fast_path_is_the_definition(text):
    from swift_ext.extract import extract_answer

    assert extract_answer(text, "auto") == slow_auto(text)
