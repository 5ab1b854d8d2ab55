"""Rewards built from other rewards: ``gated`` (a reward counts only when another reaches a threshold) and
``cosine_scaled`` (correctness scaled by length). Both take any swift-ext reward spec or alias as a part.

Format-only reward hacking is the standard failure of rule rewards; gating accuracy on the format (or the format
on accuracy) and length-aware correctness are the standard fixes (TRL ``conditioned_reward`` and cosine reward).
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence

from ..errors import ParamError
from ..params import Param
from .contract import Example
from .base import Reward, Rows, Score, is_async


def _part(owner: str, key: str, spec: str, args: Any) -> Reward:
    """The sub-reward ``spec`` (a spec or an alias) built for this run; async rewards are refused."""
    from . import configure

    try:
        cls = configure(spec)
    except Exception as exc:
        raise ParamError(f"reward {owner}: {key}={spec!r}: {exc}") from None
    if is_async(cls):
        raise ParamError(f"reward {owner}: {key}={spec!r} is async; {owner} combines synchronous rewards only")
    return cls(args=args)


def _columns(parts: Sequence[Reward], extra: Sequence[str] = ()) -> Optional[tuple]:
    needed = []
    for p in parts:
        cols = p.needed_columns()
        if cols is None:
            return None
        needed.extend(cols)
    return tuple(dict.fromkeys([*needed, *extra]))


def _subset(columns: Dict[str, Any], n: int, idx: List[int]) -> Dict[str, Any]:
    """The columns of rows ``idx`` only (per-row lists sliced; shared values as they are)."""
    return {k: ([v[i] for i in idx] if isinstance(v, (list, tuple)) and len(v) == n else v) for k, v in columns.items()}


class Gated(Reward):
    """``reward``'s score, counted only where ``gate`` reaches ``threshold`` (else ``otherwise``).

    Guards an accuracy reward against format hacking the other way round too: ``gate=think_format,
    reward=math_accuracy`` pays for a correct answer only in the required format. ``combine=min`` and
    ``combine=product`` give ``min(gate, reward)`` and ``gate x reward`` instead of the hard gate. Where the gate
    fails, ``reward`` is not computed at all (a math-verify or judge call saved). The two sub-scores of the last
    call are kept in ``last_details`` (``swift-ext rewards score -o`` writes them).

    A part with parameters of its own is written ``gate=numeric:tolerance=0.01``; a part with several
    parameters needs an alias in ``SWIFT_EXT_CONFIG`` (commas separate the outer parameters).

    Abstains (``None``) when the gate abstains, or when ``reward`` abstains on a row whose gate passed.

    On the command line: ``--reward_funcs gated:gate=think_format,reward=math_accuracy``.

    Example:
        >>> r = Gated(gate="think_format", reward="exact_match")
        >>> r(["<think>4 legs</think><answer>dog</answer>", "<answer>dog</answer>", "<think>x</think><answer>cat</answer>"],
        ...   solution=["dog", "dog", "dog"])
        [1.0, 0.0, 0.0]
    """

    name = "gated"
    examples = (
        Example("full", "<think>4 legs</think><answer>dog</answer>", 1.0, solution="dog"),
        Example("zero", "<think>x</think><answer>cat</answer>", 0.0, solution="dog"),
        Example("malformed", "<answer>dog</answer>", 0.0, solution="dog"),
    )
    abstains = "when the gate abstains, or the reward abstains on a row whose gate passed"
    params = {
        "gate": Param("think_format", "reward that must reach the threshold (a spec or an alias)"),
        "reward": Param("exact_match", "reward that counts where the gate passes (a spec or an alias)"),
        "threshold": Param(1.0, "gate score at which the reward counts"),
        "otherwise": Param(0.0, "score where the gate fails (combine=gate)"),
        "combine": Param("gate", "gate: reward where gate >= threshold; min: min of both; product: both multiplied",
                         choices=("gate", "min", "product")),
    }

    def setup(self) -> None:
        self._gate = _part("gated", "gate", self.gate, self.args)
        self._reward = _part("gated", "reward", self.reward, self.args)
        self.last_details: List[Optional[Dict[str, Any]]] = []

    def needed_columns(self):
        return _columns([self._gate, self._reward])

    def score_batch(self, completions: Sequence[str], rows: Sequence[Dict[str, Any]]) -> List[Score]:
        n = len(completions)
        columns = rows.columns if isinstance(rows, Rows) else {k: [r.get(k) for r in rows] for k in
                                                                 set().union(*rows)} if rows else {}
        gates = self._gate(list(completions), **columns)
        if self.combine == "gate":
            idx = [i for i, g in enumerate(gates) if g is not None and g >= self.threshold]
            scored = self._reward([completions[i] for i in idx], **_subset(columns, n, idx)) if idx else []
            values: List[Optional[float]] = [None] * n
            for i, v in zip(idx, scored):
                values[i] = v
            out = [None if g is None else (values[i] if g >= self.threshold else self.otherwise)
                   for i, g in enumerate(gates)]
        else:
            values = self._reward(list(completions), **columns)
            op = min if self.combine == "min" else (lambda a, b: a * b)
            out = [None if g is None or v is None else op(g, v) for g, v in zip(gates, values)]
        self.last_details = [{"gate": g, "reward": v} for g, v in zip(gates, values)]
        return out


class CosineScaled(Reward):
    """Correctness scaled by length: short correct answers earn most, long wrong answers lose least.

    ``reward`` (any accuracy reward, a spec or an alias) decides correctness (score >= ``threshold``); the
    completion's length L in tokens (the ``response_token_ids`` column ms-swift passes, else characters / 4)
    sets the position on a half cosine: with p = min(L, max_len) / max_len and c = cos(p x pi),
    a correct answer scores ``min_correct + (max_correct - min_correct) x (1 + c) / 2`` (from ``max_correct``
    at length 0 down to ``min_correct`` at ``max_len``), a wrong one ``max_wrong + (min_wrong - max_wrong) x
    (1 + c) / 2`` (from ``min_wrong`` up to ``max_wrong``). Lengths beyond ``max_len`` are clamped (the fix TRL
    applied to the open-r1 formula). The accuracy score of the last call is kept in ``last_details``.

    Abstains (``None``) when the accuracy reward abstains.

    On the command line: ``--reward_funcs cosine_scaled:reward=math_accuracy,max_len=1024``.

    Example:
        >>> r = CosineScaled(reward="exact_match", max_len=100)
        >>> r(["<answer>4</answer>", "<answer>5</answer>"], solution=["4", "4"], response_token_ids=[[1] * 10, [1] * 10])
        [0.9877641290737884, -0.9877641290737884]
    """

    name = "cosine_scaled"
    examples = (
        Example("full", "<answer>4</answer>", 1.0, params="max_len=100", solution="4", response_token_ids=[]),
        Example("zero", "<answer>5</answer>", -1.0, params="max_len=100", solution="4", response_token_ids=[]),
        Example("malformed", "<answer>4</answer>", None, params="max_len=100", solution=None,
                response_token_ids=[]),
    )
    abstains = "when the accuracy reward abstains"
    params = {
        "reward": Param("exact_match", "accuracy reward deciding correctness (a spec or an alias)"),
        "threshold": Param(1.0, "accuracy score counted as correct"),
        "max_len": Param(1000, "length (tokens) at which the scale reaches its end", type=int, min=1),
        "min_correct": Param(0.5, "score of a correct answer of max_len tokens or more"),
        "max_correct": Param(1.0, "score of a correct answer of length 0"),
        "min_wrong": Param(-1.0, "score of a wrong answer of length 0"),
        "max_wrong": Param(-0.5, "score of a wrong answer of max_len tokens or more"),
        "tokens_key": Param("response_token_ids", "column holding each completion's token ids"),
    }

    def setup(self) -> None:
        self._reward = _part("cosine_scaled", "reward", self.reward, self.args)
        self.last_details: List[Optional[Dict[str, Any]]] = []

    def needed_columns(self):
        return _columns([self._reward], (self.tokens_key,))

    def score_batch(self, completions: Sequence[str], rows: Sequence[Dict[str, Any]]) -> List[Score]:
        columns = rows.columns if isinstance(rows, Rows) else {k: [r.get(k) for r in rows] for k in
                                                                 set().union(*rows)} if rows else {}
        accuracy = self._reward(list(completions), **columns)
        tokens = rows.column(self.tokens_key) if isinstance(rows, Rows) else [r.get(self.tokens_key) for r in rows]
        out: List[Score] = []
        for text, acc, ids in zip(completions, accuracy, tokens):
            if acc is None:
                out.append(None)
                continue
            length = len(ids) if isinstance(ids, (list, tuple)) else len(text) / 4
            c = math.cos(min(length, self.max_len) / self.max_len * math.pi)
            if acc >= self.threshold:
                out.append(self.min_correct + (self.max_correct - self.min_correct) * (1 + c) / 2)
            else:
                out.append(self.max_wrong + (self.min_wrong - self.max_wrong) * (1 + c) / 2)
        self.last_details = [{"accuracy": a} for a in accuracy]
        return out
