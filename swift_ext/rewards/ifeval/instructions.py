"""The 25 IFEval instructions: for each id, the keyword arguments it takes and the check of a response.

Each check does what lm-evaluation-harness's ``lm_eval/tasks/ifeval/instructions.py`` (0.4.x) does in
``check_following``, decided the same way on every input (the differential test compares them on thousands of
generated cases). Where lm-eval picks a *random* value for a missing or unusable argument (no ``num_sentences``,
a ``relation`` of ``None``, a letter that is not a-z), swift-ext refuses the instruction instead
(:class:`InstructionError`): a reward must not score against a threshold drawn at random.

Keyword arguments are read as lm-eval reads a row: entries whose value is falsy (``None``, ``0``, ``""``, ``[]``)
are dropped first (the ``kwargs`` column of the IFEval data holds every key for every instruction, ``None`` where
unused).
"""

from __future__ import annotations

import collections
import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Tuple

from . import text as T

Check = Callable[[str], bool]
RELATIONS = ("less than", "at least")
#: language codes lm-eval's ``response_language`` accepts (``instructions_util.LANGUAGE_CODES``)
LANGUAGE_CODES = ("en", "es", "pt", "ar", "hi", "fr", "ru", "de", "ja", "it", "bn", "uk", "th", "ur", "ta", "te", "bg",
                  "ko", "pl", "he", "fa", "vi", "ne", "sw", "kn", "mr", "gu", "pa", "ml", "fi")
CONSTRAINED_RESPONSES = ("My answer is yes.", "My answer is no.", "My answer is maybe.")


class InstructionError(ValueError):
    """An instruction id that is not one of the 25, or keyword arguments it cannot be checked with."""


@dataclass(frozen=True)
class Instruction:
    """One instruction id: its keyword arguments, the text tools it needs and its check builder."""

    id: str
    args: Tuple[str, ...]
    build: Callable[..., Check]
    needs: Tuple[str, ...] = ()


# -- argument readers -----------------------------------------------------------------------------
def _int(kw: Mapping[str, Any], key: str, minimum: int = 0) -> int:
    value = kw.get(key)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if value is None:
        raise InstructionError(f"needs {key!r} (a whole number)")
    if isinstance(value, bool) or not isinstance(value, int):
        raise InstructionError(f"{key}={value!r}: expected a whole number")
    if value < minimum:
        raise InstructionError(f"{key}={value!r}: must be >= {minimum}")
    return value


def _str(kw: Mapping[str, Any], key: str) -> str:
    value = kw.get(key)
    if not isinstance(value, str):
        raise InstructionError(f"needs {key!r} (text)" if value is None else f"{key}={value!r}: expected text")
    return value


def _relation(kw: Mapping[str, Any], key: str = "relation") -> str:
    value = kw.get(key)
    if value not in RELATIONS:
        raise InstructionError(f"{key}={value!r}: choose one of {list(RELATIONS)}")
    return value


def _words(kw: Mapping[str, Any], key: str) -> list:
    value = kw.get(key)
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(w, str) for w in value):
        raise InstructionError(f"needs {key!r} (a list of words)" if value is None else
                               f"{key}={value!r}: expected a list of words")
    return list(value)


def _regex(pattern: str, flags: int = 0) -> "re.Pattern":
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        raise InstructionError(f"{pattern!r} is not a valid regular expression ({exc})") from None


def _compare(count: int, relation: str, threshold: int) -> bool:
    return count < threshold if relation == RELATIONS[0] else count >= threshold


# -- the checks -----------------------------------------------------------------------------------
def _keywords_existence(kw) -> Check:
    pats = [_regex(k, re.IGNORECASE) for k in sorted(_words(kw, "keywords"))]
    return lambda v: all(p.search(v) for p in pats)


def _keywords_frequency(kw) -> Check:
    keyword = _str(kw, "keyword").strip()
    pat, freq, rel = _regex(keyword, re.IGNORECASE), _int(kw, "frequency"), _relation(kw)
    return lambda v: _compare(len(pat.findall(v)), rel, freq)


def _forbidden_words(kw) -> Check:
    pats = [_regex(r"\b" + w + r"\b", re.IGNORECASE) for w in sorted(set(_words(kw, "forbidden_words")))]
    return lambda v: not any(p.search(v) for p in pats)


def _letter_frequency(kw) -> Check:
    letter = kw.get("letter")
    low = letter.lower() if isinstance(letter, str) and len(letter) == 1 else ""
    if len(low) != 1 or not "a" <= low <= "z":
        raise InstructionError(f"letter={letter!r}: expected one letter a-z")
    letter = letter.strip().lower()
    freq, rel = _int(kw, "let_frequency"), _relation(kw, "let_relation")
    return lambda v: _compare(collections.Counter(v.lower())[letter], rel, freq)


def _response_language(kw) -> Check:
    lang = kw.get("language")
    if lang not in LANGUAGE_CODES:
        raise InstructionError(f"language={lang!r}: choose one of {list(LANGUAGE_CODES)}")

    def check(v: str) -> bool:
        try:
            return T.detect_language(v) == lang
        except T.NoLanguage:
            return True                            # lm-eval: "Count as instruction is followed."
    return check


def _number_sentences(kw) -> Check:
    n, rel = _int(kw, "num_sentences"), _relation(kw)
    return lambda v: _compare(T.count_sentences(v), rel, n)


_PARA_SPLIT = re.compile(r"\s?\*\*\*\s?")


def _number_paragraphs(kw) -> Check:
    n = _int(kw, "num_paragraphs")

    def check(v: str) -> bool:
        paragraphs = _PARA_SPLIT.split(v)
        count = len(paragraphs)
        for i, p in enumerate(paragraphs):
            if not p.strip():
                if i == 0 or i == len(paragraphs) - 1:
                    count -= 1
                else:
                    return False
        return count == n
    return check


def _number_words(kw) -> Check:
    # lm-eval counts nltk.RegexpTokenizer(r"\w+") tokens; NLTK >= 3.10 runs it on the ``regex`` engine, whose \w
    # takes in combining marks (Devanagari vowel signs) that ``re``'s does not
    import regex

    word = regex.compile(r"\w+", regex.UNICODE | regex.MULTILINE | regex.DOTALL)
    n, rel = _int(kw, "num_words"), _relation(kw)
    return lambda v: _compare(len(word.findall(v)), rel, n)


def _nth_paragraph_first_word(kw) -> Check:
    num, nth = _int(kw, "num_paragraphs"), _int(kw, "nth_paragraph", 1)
    if nth > num:
        raise InstructionError(f"nth_paragraph={nth} > num_paragraphs={num}")
    first = _str(kw, "first_word").lower()
    stop = {".", ",", "?", "!", "'", '"'}

    def check(v: str) -> bool:
        paragraphs = v.split("\n\n")
        count = len(paragraphs) - sum(1 for p in paragraphs if not p.strip())
        if nth > count:
            return False
        paragraph = paragraphs[nth - 1].strip()
        if not paragraph:
            return False
        word = paragraph.split()[0].strip().lstrip("'").lstrip('"')
        got = ""
        for ch in word:
            if ch in stop:
                break
            got += ch.lower()
        return count == num and got == first
    return check


_PLACEHOLDER = re.compile(r"\[.*?\]")


def _number_placeholders(kw) -> Check:
    n = _int(kw, "num_placeholders")
    return lambda v: len(_PLACEHOLDER.findall(v)) >= n


def _postscript(kw) -> Check:
    marker = _str(kw, "postscript_marker").strip()
    if marker == "P.P.S":
        pat = re.compile(r"\s*p\.\s?p\.\s?s.*$", re.MULTILINE)
    elif marker == "P.S.":
        pat = re.compile(r"\s*p\.\s?s\..*$", re.MULTILINE)
    else:
        pat = _regex(r"\s*" + marker.lower() + r".*$", re.MULTILINE)
    return lambda v: bool(pat.findall(v.lower()))


_BULLET_STAR = re.compile(r"^\s*\*[^\*].*$", re.MULTILINE)
_BULLET_DASH = re.compile(r"^\s*-.*$", re.MULTILINE)


def _number_bullet_lists(kw) -> Check:
    n = _int(kw, "num_bullets")
    return lambda v: len(_BULLET_STAR.findall(v)) + len(_BULLET_DASH.findall(v)) == n


def _constrained_response(kw) -> Check:
    def check(v: str) -> bool:
        v = v.strip()
        return any(option in v for option in CONSTRAINED_RESPONSES)
    return check


_HIGHLIGHT = re.compile(r"\*[^\n\*]*\*")
_DOUBLE_HIGHLIGHT = re.compile(r"\*\*[^\n\*]*\*\*")


def _number_highlighted_sections(kw) -> Check:
    n = _int(kw, "num_highlights")

    def check(v: str) -> bool:
        count = sum(1 for h in _HIGHLIGHT.findall(v) if h.strip("*").strip())
        count += sum(1 for h in _DOUBLE_HIGHLIGHT.findall(v) if h.removeprefix("**").removesuffix("**").strip())
        return count >= n
    return check


def _multiple_sections(kw) -> Check:
    splitter = _str(kw, "section_spliter").strip()
    pat, n = _regex(r"\s?" + splitter + r"\s?\d+\s?"), _int(kw, "num_sections")
    return lambda v: len(pat.split(v)) - 1 >= n


def _json_format(kw) -> Check:
    def check(v: str) -> bool:
        v = (v.strip().removeprefix("```json").removeprefix("```Json").removeprefix("```JSON").removeprefix("```")
             .removesuffix("```").strip())
        try:
            json.loads(v)
        except (ValueError, RecursionError):
            return False
        return True
    return check


_TITLE = re.compile(r"<<[^\n]+>>")


def _title(kw) -> Check:
    return lambda v: any(t.lstrip("<").rstrip(">").strip() for t in _TITLE.findall(v))


def _two_responses(kw) -> Check:
    def check(v: str) -> bool:
        parts = v.split("******")
        valid = []
        for i, part in enumerate(parts):
            if not part.strip():
                if i != 0 and i != len(parts) - 1:
                    return False
            else:
                valid.append(part)
        return len(valid) == 2 and valid[0].strip() != valid[1].strip()
    return check


def _repeat_prompt(kw) -> Check:
    prompt = _str(kw, "prompt_to_repeat").strip().lower()
    return lambda v: v.strip().lower().startswith(prompt)


def _end_checker(kw) -> Check:
    end = _str(kw, "end_phrase").strip().lower()
    return lambda v: v.strip().strip('"').lower().endswith(end)


def _capital_word_frequency(kw) -> Check:
    n, rel = _int(kw, "capital_frequency", minimum=-(2 ** 63)), _relation(kw, "capital_relation")
    return lambda v: _compare(sum(1 for w in T.word_tokenize(v) if w.isupper()), rel, n)


def _english_case(upper: bool) -> Callable[[Any], Check]:
    def build(kw) -> Check:
        def check(v: str) -> bool:
            if not (v.isupper() if upper else v.islower()):
                return False
            try:
                return T.detect_language(v) == "en"
            except T.NoLanguage:
                return True                        # lm-eval: "Count as instruction is followed."
        return check
    return build


def _no_comma(kw) -> Check:
    return lambda v: "," not in v


def _quotation(kw) -> Check:
    def check(v: str) -> bool:
        v = v.strip()
        return len(v) > 1 and v[0] == '"' and v[-1] == '"'
    return check


REGISTRY: Dict[str, Instruction] = {i.id: i for i in (
    Instruction("keywords:existence", ("keywords",), _keywords_existence),
    Instruction("keywords:frequency", ("keyword", "frequency", "relation"), _keywords_frequency),
    Instruction("keywords:forbidden_words", ("forbidden_words",), _forbidden_words),
    Instruction("keywords:letter_frequency", ("letter", "let_frequency", "let_relation"), _letter_frequency),
    Instruction("language:response_language", ("language",), _response_language, ("language",)),
    Instruction("length_constraints:number_sentences", ("num_sentences", "relation"), _number_sentences,
                ("sentences",)),
    Instruction("length_constraints:number_paragraphs", ("num_paragraphs",), _number_paragraphs),
    Instruction("length_constraints:number_words", ("num_words", "relation"), _number_words),
    Instruction("length_constraints:nth_paragraph_first_word", ("num_paragraphs", "nth_paragraph", "first_word"),
                _nth_paragraph_first_word),
    Instruction("detectable_content:number_placeholders", ("num_placeholders",), _number_placeholders),
    Instruction("detectable_content:postscript", ("postscript_marker",), _postscript),
    Instruction("detectable_format:number_bullet_lists", ("num_bullets",), _number_bullet_lists),
    Instruction("detectable_format:constrained_response", (), _constrained_response),
    Instruction("detectable_format:number_highlighted_sections", ("num_highlights",), _number_highlighted_sections),
    Instruction("detectable_format:multiple_sections", ("section_spliter", "num_sections"), _multiple_sections),
    Instruction("detectable_format:json_format", (), _json_format),
    Instruction("detectable_format:title", (), _title),
    Instruction("combination:two_responses", (), _two_responses),
    Instruction("combination:repeat_prompt", ("prompt_to_repeat",), _repeat_prompt),
    Instruction("startend:end_checker", ("end_phrase",), _end_checker),
    Instruction("change_case:capital_word_frequency", ("capital_frequency", "capital_relation"),
                _capital_word_frequency, ("words",)),
    Instruction("change_case:english_capital", (), _english_case(True), ("language",)),
    Instruction("change_case:english_lowercase", (), _english_case(False), ("language",)),
    Instruction("punctuation:no_comma", (), _no_comma),
    Instruction("startend:quotation", (), _quotation),
)}
INSTRUCTION_IDS = tuple(REGISTRY)


def read_kwargs(kwargs: Any) -> Dict[str, Any]:
    """One instruction's keyword arguments as lm-eval reads them: a mapping (or JSON text of one) without its
    falsy entries."""
    if kwargs is None:
        return {}
    if isinstance(kwargs, str):
        try:
            kwargs = json.loads(kwargs) if kwargs.strip() else {}
        except ValueError:
            raise InstructionError(f"kwargs {kwargs[:80]!r} are not JSON") from None
    if not isinstance(kwargs, Mapping):
        raise InstructionError(f"kwargs must be a mapping, got {type(kwargs).__name__}")
    return {k: v for k, v in kwargs.items() if v}


def build_check(instruction_id: Any, kwargs: Any = None) -> Check:
    """The check of one instruction with its keyword arguments; :class:`InstructionError` for an unknown id,
    missing or unusable arguments, or arguments the instruction does not take.

    >>> build_check("punctuation:no_comma")("no commas here"), build_check("detectable_format:title")("<<Hi>>")
    (True, True)
    >>> build_check("keywords:nope")
    Traceback (most recent call last):
    ...
    swift_ext.rewards.ifeval.instructions.InstructionError: unknown instruction id 'keywords:nope'
    """
    spec = REGISTRY.get(instruction_id) if isinstance(instruction_id, str) else None
    if spec is None:
        raise InstructionError(f"unknown instruction id {instruction_id!r}")
    kw = read_kwargs(kwargs)
    extra = sorted(set(kw) - set(spec.args))
    if extra:
        raise InstructionError(f"{instruction_id}: takes {list(spec.args) or 'no arguments'}, got {extra}")
    try:
        return spec.build(kw)
    except InstructionError as exc:
        raise InstructionError(f"{instruction_id}: {exc}") from None


__all__ = ["REGISTRY", "INSTRUCTION_IDS", "Instruction", "InstructionError", "build_check", "read_kwargs",
           "RELATIONS", "LANGUAGE_CODES"]
