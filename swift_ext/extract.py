"""Answer extraction shared by the accuracy-style rewards and the dataset converters (a neutral module).

All functions take any string and return ``None`` when nothing is found; none of them raises.

>>> extract_answer("<think>2+2</think><answer>The answer is 4</answer>")
'The answer is 4'
>>> extract_answer(r"so $\\boxed{\\frac{1}{2}}$", mode="boxed")
'\\\\frac{1}{2}'
>>> extract_answer("I think it is 3, no, -1,250.5 apples", mode="last_number")
'-1250.5'
>>> extract_answer("Between (A) and (C), the answer is C.", mode="last_letter")
'C'
"""

from __future__ import annotations

import re
import unicodedata
from typing import Callable, List, Optional, Sequence, Tuple

MODES = ("auto", "answer_tag", "boxed", "last_number", "last_letter", "none")

_ANSWER_OPEN_RE = re.compile(r"<answer>", re.I)
_ANSWER_CLOSE_RE = re.compile(r"</answer>", re.I)
_THINK_CLOSE_RE = re.compile(r"</think>", re.I)
_NUMBER_RE = re.compile(r"(?<![\w.])[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?%?|[-+−]?\.\d+%?")
_LETTER_RE = re.compile(
    r"(?:\(([A-Z])\)|\b([A-Z])\b(?=[\s.,:;)\]]|$)|答案(?:是|为)?[:：]?\s*([A-Z])|选\s*([A-Z]))")
_MAX_SCAN = 200_000  # characters looked at from the end: bounds the cost of huge completions


def _last(text: str, exact: str, rx: "re.Pattern[str]", start: int = 0, end: Optional[int] = None) -> int:
    """Start of the last case-insensitive match of ``rx`` (a tag; ``exact`` its lower-case spelling) in
    ``text[start:end]``, -1 if none. The usual lower-case tag is found by ``str.rfind``; another spelling after
    it must begin with the tag's first three characters in one of two cases (``</t`` / ``</T``, ``<a`` / ``<A``:
    no other character folds to ``a`` or ``t``), and only when one does is the rest searched with the regex.
    Otherwise one linear regex scan (no lazy ``.*?``, which is quadratic on ``"<answer>" * n``)."""
    if end is None:
        end = len(text)
    i = text.rfind(exact, start, end)
    if i >= 0:
        head = exact[:3]
        if text.find(head, i + 1, end) < 0 and text.find(head.upper(), i + 1, end) < 0:
            return i
        if rx.search(text, i + 1, end) is None:
            return i
    last = None
    for last in rx.finditer(text, start, end):
        pass
    return last.start() if last is not None else -1


def strip_think(text: str) -> str:
    """Drop reasoning: everything up to the last ``</think>`` (handles templates that pre-fill ``<think>``)."""
    if not text:
        return ""
    i = _last(text, "</think>", _THINK_CLOSE_RE)
    return text[i + 8:] if i >= 0 else text


def answer_tag(text: str) -> Optional[str]:
    """Content of the last ``<answer>…</answer>``; an unclosed last ``<answer>`` takes the rest."""
    close = _last(text, "</answer>", _ANSWER_CLOSE_RE)
    if close >= 0:
        opening = _last(text, "<answer>", _ANSWER_OPEN_RE, 0, close)
        if opening >= 0:
            return text[opening + 8:close].strip()
    opening = _last(text, "<answer>", _ANSWER_OPEN_RE)
    if opening >= 0:
        return text[opening + 8:].strip()
    return None


def boxed(text: str) -> Optional[str]:
    r"""Content of the last ``\boxed{…}`` (or ``\fbox{…}``), with nested braces; unbalanced gives None."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0:
        # "\boxed 5" form
        m = re.match(r"\\(?:boxed|fbox)\s+([^\s$]+)", text[start:])
        return m.group(1) if m else None
    depth = 0
    for j in range(i, len(text)):
        ch = text[j]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1:j].strip()
    return None


def last_number(text: str) -> Optional[str]:
    """The last number, thousands separators removed (``1,250`` -> ``1250``; keeps a trailing ``%``)."""
    found = _NUMBER_RE.findall(text[-_MAX_SCAN:])
    if not found:
        return None
    return found[-1].replace(",", "").replace("−", "-").lstrip("+")


def last_letter(text: str) -> Optional[str]:
    """The last stand-alone option letter A–Z: ``(B)``, ``B.``, ``option B``, ``答案是B``."""
    found = _LETTER_RE.findall(text[-_MAX_SCAN:])
    for groups in reversed(found):
        for g in groups:
            if g:
                return g
    return None


def extract_answer(text: str, mode: str = "auto") -> Optional[str]:
    """The answer in ``text`` by ``mode``; ``auto``: ``<answer>`` tag, else ``\\boxed``, else the text after reasoning.

    Inside an ``<answer>`` tag a ``\\boxed{}`` wins (``<answer>\\boxed{3}</answer>`` -> ``3``).
    """
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    if mode == "none":
        return text.strip()
    if mode == "auto":
        # the usual shape, "...<answer>X</answer>" at the end with no tag and no backslash inside: the answer
        # without the general path's scans (the same result: no </think> can follow an <answer> whose content
        # holds no "<", and without a backslash there is no \boxed to look into)
        close = text.rfind("</answer>")
        if close >= 0 and (close + 9 == len(text) or text[close + 9:].isspace()):
            opening = text.rfind("<answer>", 0, close)
            if opening >= 0 and text.find("<", opening + 8, close) < 0:
                inner = text[opening + 8:close].strip()
                if "\\" not in inner:
                    return inner
    if mode == "answer_tag":
        return answer_tag(text)
    body = strip_think(text)
    if mode == "boxed":
        return boxed(body)
    if mode == "last_number":
        inner = answer_tag(body)
        return last_number(inner if inner is not None else body)
    if mode == "last_letter":
        inner = answer_tag(body)
        return last_letter(inner if inner is not None else body)
    if mode == "auto":
        inner = answer_tag(body)
        if inner is not None:
            b = boxed(inner)
            return b if b is not None else inner
        b = boxed(body)
        if b is not None:
            return b
        body = body.strip()
        return body or None
    raise ValueError(f"unknown extraction mode {mode!r}; choose from {MODES}")


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = re.compile(r"[^\w\s]", re.U)


def normalize(text: str, *, case_sensitive: bool = False, drop_articles: bool = True) -> str:
    """NFKC, lower-case, strip LaTeX wrappers, punctuation and articles, collapse spaces (SQuAD style).

    >>> normalize("  The  ANSWER: Paris! ")
    'answer paris'
    >>> normalize("\\\\text{Ｐａｒｉｓ}")
    'paris'
    """
    if text is None:
        return ""
    s = unicodedata.normalize("NFKC", str(text))
    s = re.sub(r"\\(?:text|mathrm|textbf|mathbf)\{([^{}]*)\}", r"\1", s)
    s = s.replace("$", "")
    if not case_sensitive:
        s = s.lower()
    s = _PUNCT.sub(" ", s)
    if drop_articles:
        s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def answer_rule(text: str, mode: str = "auto") -> str:
    """Which rule :func:`extract_answer` used on ``text`` under ``mode`` (for explanations): ``answer_tag``,
    ``boxed_in_answer_tag``, ``boxed``, ``after_think``, ``whole_text``, ``last_number``, ``last_letter``, or
    ``nothing_found``.

    >>> [answer_rule(t) for t in ["<answer>4</answer>", r"so \\boxed{4}", "<think>x</think> 4", "4"]]
    ['answer_tag', 'boxed', 'after_think', 'whole_text']
    """
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    if extract_answer(text, mode) is None:
        return "nothing_found"
    if mode in ("answer_tag", "boxed", "last_number", "last_letter"):
        return mode
    if mode == "none":
        return "whole_text"
    body = strip_think(text)
    inner = answer_tag(body)
    if inner is not None:
        return "boxed_in_answer_tag" if boxed(inner) is not None else "answer_tag"
    if boxed(body) is not None:
        return "boxed"
    return "after_think" if body is not text and body != text else "whole_text"


# -- program code -----------------------------------------------------------------------------------
CODE_MODES = ("auto", "fence", "answer", "whole")


def code_blocks(text: str) -> List[Tuple[str, str, bool]]:
    """Fenced blocks of ``text`` in order: ``(tag, code, closed)``; the tag is the first word after the
    opening fence (``python`` in ```` ```python ````), empty when none; an unclosed last fence runs to the end.

    >>> code_blocks("a\\n```python\\nprint(1)\\n```\\nb ```\\nx\\n```")
    [('python', 'print(1)\\n', True), ('', 'x\\n', True)]
    """
    out: List[Tuple[str, str, bool]] = []
    pos = 0
    while True:
        start = text.find("```", pos)
        if start < 0:
            return out
        eol = text.find("\n", start + 3)
        if eol < 0:
            return out
        head = text[start + 3:eol].strip()
        tag = head.split()[0] if head else ""
        end = text.find("```", eol + 1)
        if end < 0:
            out.append((tag, text[eol + 1:], False))
            return out
        out.append((tag, text[eol + 1:end], True))
        pos = end + 3


def extract_code(text: str, fences: Sequence[str] = ("python",), mode: str = "auto",
                 whole_ok: Optional[Callable[[str], bool]] = None) -> Tuple[Optional[str], str]:
    """``(code, rule)`` of the program in a completion, or ``(None, why)``.

    ``fence``: the last block fenced with one of ``fences`` (case-insensitive), the open-r1 rule; ``answer``:
    the content of the last ``<answer>`` (its last fenced block when it has one); ``whole``: the text after
    any reasoning; ``auto``: a fence of the language, else an untagged fence, else ``<answer>``, else the
    whole text when ``whole_ok(text)`` accepts it (for Python: it compiles). Blocks after the last
    ``</think>`` are preferred to blocks in the reasoning.

    >>> extract_code("Here:\\n```python\\nprint(2)\\n```")
    ('print(2)\\n', 'fence')
    >>> extract_code("no code here", mode="fence")
    (None, 'no ```python block in the completion')
    """
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    if mode not in CODE_MODES:
        raise ValueError(f"unknown code extraction mode {mode!r}; choose from {CODE_MODES}")
    wanted = {f.lower() for f in fences}
    body = strip_think(text)
    if mode == "whole":
        return (body, "whole_text") if body.strip() else (None, "the completion is empty")
    if mode == "answer":
        inner = answer_tag(body)
        if inner is None:
            return None, "no <answer> in the completion"
        blocks = code_blocks(inner)
        return (blocks[-1][1], "answer_tag_fence") if blocks else (inner, "answer_tag")
    for scope in ((body, text) if body is not text else (text,)):
        blocks = code_blocks(scope)
        tagged = [b for b in blocks if b[0].lower() in wanted]
        if tagged:
            tag, code, closed = tagged[-1]
            return code, "fence" if closed else "unclosed_fence"
        if mode == "auto":
            untagged = [b for b in blocks if not b[0]]
            if untagged:
                return untagged[-1][1], "untagged_fence"
    if mode == "fence":
        return None, f"no ```{sorted(wanted)[0] if len(wanted) == 1 else '|'.join(sorted(wanted))} block in the " \
                     f"completion"
    inner = answer_tag(body)
    if inner is not None and inner.strip():
        return inner, "answer_tag"
    if body.strip() and whole_ok is not None and whole_ok(body):
        return body, "whole_text"
    return None, ("no fenced code block, no <answer> and the text is not a program" if body.strip()
                  else "the completion is empty")
