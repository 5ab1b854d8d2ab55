"""Shaping rewards: repetition, length budget, reasoning steps, language consistency, tag counts.

They score the form of a completion, not its correctness, and never abstain except
``language_consistency`` when it cannot tell the prompt's language. Lengths and n-grams can be counted
in model tokens (``response_token_ids``, which ms-swift passes to every reward), characters, or words
(whitespace-separated words, each CJK character counting as one word).
"""

from __future__ import annotations

import re
from itertools import repeat
from typing import Any, Iterable, List, Optional, Sequence

from ..errors import ParamError
from ..params import Param
from .contract import Example
from .base import Checked, Reward, Score, column, texts_of
from ..extract import answer_tag, strip_think

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_UNITS = re.compile(f"[{_CJK}]|[^\\s{_CJK}]+")
_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
# code, LaTeX, URLs, tags; lazy spans are bounded so that "\\(" * n costs at most n * 500 steps
_NOISE = re.compile(r"```.{0,20000}?(?:```|\Z)|`[^`\n]{0,2000}`|\$\$.{0,1000}?\$\$|\$[^$\n]{0,2000}\$"
                    r"|\\\(.{0,500}?\\\)|\\\[.{0,500}?\\\]|https?://\S+|<[^<>\n]{0,40}>", re.S)
SCOPES = ("all", "think", "answer")


def words(text: str) -> List[str]:
    """Lower-cased whitespace-separated words, each CJK character on its own.

    >>> words("The cat 喜欢鱼")
    ['the', 'cat', '喜', '欢', '鱼']
    """
    if text.isascii():  # no CJK: a plain split gives the same words, several times faster
        return text.lower().split()
    return _UNITS.findall(text.lower())


def part(text: str, scope: str) -> str:
    """``all`` the completion, the ``think`` part (up to the last ``</think>``; all of it if none), or the
    ``answer`` part (``<answer>`` content, else the text after ``</think>``)."""
    if scope == "all":
        return text
    idx = text.rfind("</think>")
    if scope == "think":
        return text[:idx].replace("<think>", "", 1) if idx >= 0 else text
    body = strip_think(text)
    inner = answer_tag(body)
    return inner if inner is not None else body


def token_ids(row: dict) -> Optional[Sequence[Any]]:
    """The row's ``response_token_ids`` flattened (multi-turn rows hold a list per turn), or None."""
    ids = row.get("response_token_ids")
    if not isinstance(ids, (list, tuple)):
        return None
    if ids and isinstance(ids[0], (list, tuple)):
        return [t for turn in ids if isinstance(turn, (list, tuple)) for t in turn]
    return ids


def flat_lengths(ids: Sequence[Any]) -> Optional[List[int]]:
    """``len`` of every row's token ids when each row is a flat list or tuple of numbers (what ms-swift
    passes), else None: a row without ids, or a multi-turn row holding a list per turn, is left to
    :func:`token_ids`.

    >>> flat_lengths([[1, 2, 3], []]), flat_lengths([[1], None]), flat_lengths([[1], [[2, 3], [4]]])
    ([3, 0], None, None)
    """
    lengths = _flat_lengths(ids)
    return None if lengths is None else list(lengths)


def _flat_lengths(ids: Sequence[Any]) -> Optional[Iterable[int]]:
    """:func:`flat_lengths`, the usual case as a lazy ``map(len, ids)`` (its consumer reads it once)."""
    # the usual batch (no empty row) in one pass collecting each row's first element (a row that is not a
    # list or tuple is left out), then one sum in C: it fails on a list (a multi-turn row), a string or None;
    # a bool adds as an int, a float or a numpy / torch scalar changes its type
    try:
        firsts = [r[0] for r in ids if type(r) is list or type(r) is tuple]
        if len(firsts) == len(ids) and type(sum(firsts)) is int:
            return map(len, ids)
    except IndexError:  # an empty row: checked row by row below
        pass
    except TypeError:   # not iterable, a list or a string as a first element
        return None
    try:
        lengths = [len(r) if (type(r) is list or type(r) is tuple) and (not r or type(r[0]) is int) else None
                   for r in ids]
    except TypeError:  # not iterable
        return None
    return None if None in lengths else lengths


class NgramRepetition(Reward):
    """Penalty for repeated word / CJK-character / token n-grams: max_penalty * (1 - distinct / total).

    The formula of ms-swift's ``repetition`` and open-r1's ``repetition_penalty`` (arXiv 2502.03373),
    but language-aware: ``unit=word`` (default) splits on whitespace and makes each CJK character a
    word, so Chinese repetition is caught too (ms-swift's whitespace split sees a Chinese paragraph as
    one word); ``char`` uses characters (spaces dropped); ``token`` uses ``response_token_ids`` (words
    when the row has none). Fewer than ``n`` units score 0.

    The score lies in [``max_penalty``, 0].

    On the command line: ``--reward_funcs ngram_repetition:n=4,unit=token``.

    Example:
        >>> r = NgramRepetition(n=2)
        >>> r(["a b a b a b", "a b c d", "好好好好"])   # 5 bigrams, 2 distinct: -(1-2/5); 0; 3 bigrams, 1 distinct
        [-0.6, 0.0, -0.6666666666666667]
    """

    name = "ngram_repetition"
    examples = (
        Example("full", "a b c d", 0.0, params="n=2"),
        Example("zero", "a a a a a a", -0.8, params="n=2"),     # 5 bigrams, 1 distinct: -(1 - 1/5)
        Example("zero", "a b a b a b", -0.6, params="n=2"),
        Example("malformed", "", 0.0, params="n=2"),
    )
    columns = ("response_token_ids",)
    params = {
        "n": Param(3, "n-gram size", min=1, max=64),
        "max_penalty": Param(-1.0, "score of a completion that is all repetition (<= 0)", max=0.0),
        "unit": Param("word", "word (CJK characters count as words), char, or token (response_token_ids)",
                      choices=("word", "char", "token")),
        "scope": Param("all", "part of the completion to look at", choices=SCOPES),
    }

    def needed_columns(self):
        return self.columns if self.unit == "token" else ()

    def _units(self, completion: str, row: dict) -> Sequence[Any]:
        if self.unit == "token":
            ids = token_ids(row)
            if ids is not None:
                return ids
        text = part(completion, self.scope)
        if self.unit == "char":
            return "".join(text.lower().split())
        return words(text)

    def score(self, completion: str, **row: Any) -> Score:
        units = self._units(completion, row)
        total = len(units) - self.n + 1
        if total <= 0:
            return 0.0
        if self.n == 1:
            distinct = len(set(units))
        else:
            distinct = len(set(zip(*[units[i:] for i in range(self.n)])))
        if distinct >= total:
            return 0.0
        return (1.0 - distinct / total) * self.max_penalty


class LengthBudget(Reward):
    """Length budget in tokens, characters or words: DAPO's soft overlong penalty, floored at -penalty.

    0 up to ``max_length - soft_cache``, then falling linearly to ``-penalty`` at ``max_length``, and
    ``-penalty`` beyond it.

    ``unit=token`` (default) counts ``response_token_ids`` (what ms-swift's ``soft_overlong`` counts),
    falling back to words (CJK characters count as words) when the row has none; ``char`` and
    ``word`` count characters or words. ``soft_cache=0`` makes it a hard budget. ``budget_key`` names a
    column with a per-row budget that replaces ``max_length`` (the soft zone keeps its size, capped
    at the budget). Unlike ms-swift's ``soft_overlong`` the penalty stops at ``-penalty`` (DAPO Eq. 13).

    Multi-turn ``response_token_ids`` (a list of lists) are summed. Bad input: a row whose budget value is
    not a number uses ``max_length``.

    On the command line: ``--reward_funcs length_budget:max_length=2048,soft_cache=512``.

    Example:
        >>> r = LengthBudget(max_length=10, soft_cache=4, unit="char")
        >>> r(["x" * 6, "x" * 8, "x" * 20])   # <= 6: 0; (8-6)/4 = 0.5; beyond 10: -1
        [0.0, -0.5, -1.0]
        >>> LengthBudget(max_length=10, soft_cache=4)(["..."], response_token_ids=[[7] * 9])   # (9-6)/4
        [-0.75]
    """

    name = "length_budget"
    examples = (
        Example("full", "x" * 6, 0.0, params="max_length=10,soft_cache=4,unit=char"),
        Example("zero", "x" * 20, -1.0, params="max_length=10,soft_cache=4,unit=char"),
        Example("zero", "...", -0.75, params="max_length=10,soft_cache=4", response_token_ids=[7] * 9),
        Example("malformed", None, 0.0, params="max_length=10,soft_cache=4,unit=char"),
    )
    columns = ("response_token_ids",)
    params = {
        "max_length": Param(1024, "length at which the full penalty applies", min=1),
        "soft_cache": Param(0, "width of the zone before max_length where the penalty grows linearly", min=0),
        "unit": Param("token", "token (response_token_ids; words if absent), char, or word",
                      choices=("token", "char", "word")),
        "penalty": Param(1.0, "size of the full penalty", min=0.0),
        "budget_key": Param("", "column with a per-row budget replacing max_length (empty: none)"),
        "scope": Param("all", "part of the completion to measure (char/word units)", choices=SCOPES),
    }

    def needed_columns(self):
        ids = ("response_token_ids",) if self.unit == "token" else ()
        return ids + (self.budget_key,) if self.budget_key else ids

    def setup(self) -> None:
        if self.soft_cache >= self.max_length:
            raise ParamError(f"reward length_budget: soft_cache={self.soft_cache} must be below "
                             f"max_length={self.max_length}")
        # the usual case reads only the token ids: the completions' text is not needed
        self.reads_text = not (self.unit == "token" and not self.budget_key)

    def length(self, completion: str, row: dict) -> int:
        if self.unit == "token":
            ids = token_ids(row)
            if ids is not None:
                return len(ids)
        text = part(completion, self.scope)
        if self.unit == "char":
            return len(text)
        return len(words(text))

    def score(self, completion: str, **row: Any) -> Score:
        limit, cache = self.max_length, self.soft_cache
        if self.budget_key:
            try:
                b = float(row.get(self.budget_key))
                if b >= 1 and b < 1e12:
                    limit, cache = int(b), min(cache, int(b) - 1)
            except (TypeError, ValueError):
                pass
        return self.penalties([self.length(completion, row)], limit, cache)[0]

    def penalty_of(self, n: int, limit: int, cache: int) -> float:
        """The score of length ``n``: 0 up to ``limit - cache``, then linear down to ``-penalty`` at ``limit``."""
        start, penalty = limit - cache, self.penalty
        if n <= start:
            return 0.0
        return -penalty if cache == 0 or n >= limit else -penalty * (n - start) / cache

    def penalties(self, lengths: Iterable[int], limit: int, cache: int) -> List[float]:
        """:meth:`penalty_of` each length, inlined: finite floats by construction (``penalty`` is finite)."""
        start, penalty = limit - cache, self.penalty
        if cache == 0:
            return Checked([0.0 if n <= start else -penalty for n in lengths])
        return Checked([0.0 if n <= start else (-penalty if n >= limit else -penalty * (n - start) / cache)
                        for n in lengths])

    def score_batch(self, completions: Sequence[str], rows: Sequence[dict]) -> List[Score]:
        if self.unit == "token" and not self.budget_key:    # the usual case: one len() per row
            lengths = _flat_lengths(column(rows, "response_token_ids"))
            if lengths is not None:
                return self.penalties(lengths, self.max_length, self.soft_cache)
        return super().score_batch(texts_of(completions), rows)


# open-r1's markers, (Step \d+:|^\d+\.|\n-|\n\*|First,|Second,|Next,|Finally,) with re.M, spelled so that every
# alternative starts with a literal (the regex engine then skips to candidate characters): a numbered line is
# "\n1." inside the text or "1." at its start. No two markers can overlap, so the counts are the same.
_STEP = re.compile(r"Step \d+:|\n(?:[-*]|\d+\.)|First,|Second,|Next,|Finally,")
_STEP_AT_START = re.compile(r"\d+\.")
_STEP_CJK = re.compile(r"第\s*[一二三四五六七八九十\d]+\s*步|首先|其次|然后|接着|最后")


class ReasoningSteps(Reward):
    """Credit for laying out reasoning in steps (Step 1:, lists, First/Next, 首先): min(1, steps / target).

    Counts open-r1's markers (``Step 1:``, numbered lines ``1.``, bullets ``-`` / ``*`` at a line start,
    ``First,`` ``Second,`` ``Next,`` ``Finally,``) plus Chinese ones (``第一步`` ``首先`` ``其次`` ``然后``
    ``接着`` ``最后``). ``scope=think`` counts only in the reasoning.

    On the command line: ``--reward_funcs reasoning_steps:scope=think``.

    Example:
        >>> r = ReasoningSteps()
        >>> r(["Step 1: add.\\nStep 2: carry.\\nStep 3: done.", "First, add. Finally, stop.", "首先相加，然后进位", "42"])
        [1.0, 0.6666666666666666, 0.6666666666666666, 0.0]
    """

    name = "reasoning_steps"
    examples = (
        Example("full", "Step 1: add.\nStep 2: carry.\nStep 3: done.", 1.0),
        Example("zero", "42", 0.0),
        Example("malformed", "", 0.0),
    )
    columns = ()
    params = {
        "target": Param(3, "number of steps worth the full score", min=1),
        "scope": Param("all", "part of the completion to count in", choices=SCOPES),
    }

    def score_batch(self, completions: Sequence[str], rows: Sequence[dict]) -> List[Score]:
        texts = completions if self.scope == "all" else [part(c, self.scope) for c in completions]
        target = self.target
        return [min(1.0, count_steps(t) / target) for t in texts]


def count_steps(text: str) -> int:
    """Step markers in ``text``: open-r1's, plus the Chinese ones when the text has Chinese characters.

    >>> count_steps("Step 1: add.\\n2. carry\\n- done"), count_steps("首先相加，然后进位")
    (3, 2)
    """
    n = len(_STEP.findall(text)) + (_STEP_AT_START.match(text) is not None)
    if not text.isascii() and _HAN.search(text):
        n += len(_STEP_CJK.findall(text))
    return n


def language_units(text: str) -> tuple:
    """``(han, latin)``: Chinese characters and Latin words of 2+ letters, ignoring code, LaTeX, URLs, tags.

    >>> language_units("我们用 Python 写 `code` $x^2$")   # 我 们 用 写; Python
    (4, 1)
    """
    text = _NOISE.sub(" ", text)
    return len(_HAN.findall(text)), len(_LATIN_WORD.findall(text))


def _prompt_text(row: dict) -> Optional[str]:
    msgs = row.get("messages")
    if isinstance(msgs, (list, tuple)):
        texts = []
        for m in msgs:
            if isinstance(m, dict) and m.get("role") == "user":
                c = m.get("content")
                if isinstance(c, list):
                    c = " ".join(b.get("text", "") for b in c if isinstance(b, dict) and isinstance(b.get("text"), str))
                if isinstance(c, str):
                    texts.append(c)
        if texts:
            return "\n".join(texts)
    for key in ("prompt", "query"):
        v = row.get(key)
        if isinstance(v, str) and v.strip():
            return v
    return None


class LanguageConsistency(Reward):
    """Share of the completion written in the prompt's language, zh or en (DeepSeek-R1's consistency reward).

    Chinese characters are weighed against English words, ignoring code, LaTeX, URLs and tags.

    The target is the language of the user messages (``target=auto``: Chinese when Chinese characters
    are at least half of the language units) or fixed with ``target=zh`` / ``en``. Each Chinese
    character and each Latin word of 2+ letters is one unit; the score is the share of units in the
    target language. A completion with no language units scores ``empty_score``.

    On the command line: ``--reward_funcs language_consistency:scope=think``.

    Example:
        >>> r = LanguageConsistency()
        >>> msgs = [[{"role": "user", "content": "图中有几只猫？"}]] * 3
        >>> r(["图中有两只猫", "There are two cats", "图中有 two cats"], messages=msgs)   # 6/6; 0/4; 3/(3+2)
        [1.0, 0.0, 0.6]
    """

    name = "language_consistency"
    examples = (
        Example("full", "图中有两只猫", 1.0, messages=[{"role": "user", "content": "图中有几只猫？"}]),
        Example("zero", "There are two cats", 0.0, messages=[{"role": "user", "content": "图中有几只猫？"}]),
        Example("malformed", "two cats", None, messages=[{"role": "user", "content": "123"}]),
    )
    abstains = "when target=auto and the prompt has no Chinese or English text (or no prompt is passed)"
    params = {
        "target": Param("auto", "language to reward: auto (the prompt's), zh or en", choices=("auto", "zh", "en")),
        "scope": Param("all", "part of the completion to judge", choices=SCOPES),
        "empty_score": Param(1.0, "score of a completion with no Chinese or English text", min=-1.0, max=1.0),
    }

    def needed_columns(self):
        return ("messages", "prompt", "query") if self.target == "auto" else ()    # what _prompt_text reads

    def setup(self) -> None:
        self._memo = (None, None)

    def prompt_language(self, row: dict) -> Optional[str]:
        text = _prompt_text(row)
        if text is None:
            return None
        if self._memo[0] == text:
            return self._memo[1]
        han, latin = language_units(text)
        lang = None if han + latin == 0 else ("zh" if han >= latin else "en")
        self._memo = (text, lang)
        return lang

    def score(self, completion: str, **row: Any) -> Score:
        target = self.target if self.target != "auto" else self.prompt_language(row)
        if target is None:
            return None
        han, latin = language_units(part(completion, self.scope))
        if han + latin == 0:
            return self.empty_score
        return (han if target == "zh" else latin) / (han + latin)


class TagCount(Reward):
    """Partial credit for format tags: an equal share for each opening / closing tag present exactly once.

    As open-r1's ``tag_count``: 0.25 each for ``<think>``, ``</think>``, ``<answer>``, ``</answer>``.

    ``newlines=true`` uses open-r1's exact patterns (``<think>\\n``, ``\\n</think>\\n``, ``\\n<answer>\\n``,
    ``\\n</answer>``). With ``allow_prefilled`` a missing ``<think>`` counts when ``</think>`` is there
    (chat templates such as Qwen3's put ``<think>`` in the prompt).

    On the command line: ``--reward_funcs 'tag_count:tags=reason|final'`` (quote ``|`` in a shell).

    Example:
        >>> r = TagCount()
        >>> r(["<think>a</think><answer>b</answer>", "<think>a</think>b", "a</think><answer>b</answer>", "b"])
        [1.0, 0.5, 1.0, 0.0]
    """

    name = "tag_count"
    examples = (
        Example("full", "<think>a</think><answer>b</answer>", 1.0),
        Example("zero", "b", 0.0),
        Example("malformed", "<think>a</think>b", 0.5),
    )
    columns = ()
    params = {
        "tags": Param(["think", "answer"], "tag names, in order (list: think|answer)", type=list),
        "newlines": Param(False, "require open-r1's newlines around the tags"),
        "allow_prefilled": Param(True, "count a missing first opening tag when its closing tag is present"),
    }

    def setup(self) -> None:
        tags = [str(t).strip().strip("<>/") for t in self.tags]
        if not tags or not all(re.fullmatch(r"[\w.:-]+", t) for t in tags):
            raise ParamError(f"reward tag_count: tags={self.tags!r} must be tag names like think|answer")
        self._checks = []
        last = len(tags) - 1
        for i, t in enumerate(tags):
            if self.newlines:
                opening = ("\n" if i else "") + f"<{t}>\n"
                closing = f"\n</{t}>" + ("\n" if i < last else "")
            else:
                opening, closing = f"<{t}>", f"</{t}>"
            self._checks.append((opening, closing))

    def score_batch(self, completions: Sequence[str], rows: Sequence[dict]) -> List[Score]:
        # one count per tag string and completion; a row's credit is how many of its counts are exactly 1
        counts = [list(map(str.count, completions, repeat(tag))) for check in self._checks for tag in check]
        total = 2 * len(self._checks)
        if not self.allow_prefilled:
            return [row.count(1) / total for row in zip(*counts)]
        bare = self._checks[0][0].strip()       # a missing first opening tag counts when the template pre-filled it
        prefilled = [o == 0 and c == 1 and t.count(bare) == 0 for o, c, t in zip(counts[0], counts[1], completions)]
        return [(row.count(1) + p) / total for row, p in zip(zip(*counts), prefilled)]
