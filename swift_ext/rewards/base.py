"""The Reward base class: what ms-swift needs (``cls(args=...)``, ``reward(completions, **columns)``) and
what swift-ext promises (declared parameters, per-row scoring that never raises, finite values or ``None``).

It does not import ``swift``: rewards and their tests run without ms-swift.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any, ClassVar, Collection, Dict, List, Optional, Sequence, Tuple

from ..components import Component

logger = logging.getLogger("swift_ext.rewards")

Score = Optional[float]


def as_text(completion: Any) -> str:
    """Turn what a trainer hands over into the completion text.

    ms-swift passes strings; TRL passes ``[{"role": "assistant", "content": ...}]``; anything else
    (``None``, numbers, bytes) is made into a string so a reward can still score it.

    >>> as_text([{"role": "assistant", "content": "hi"}])
    'hi'
    >>> as_text(None)
    ''
    """
    if isinstance(completion, str):
        return completion
    if completion is None:
        return ""
    if isinstance(completion, bytes):
        return completion.decode("utf-8", "replace")
    if isinstance(completion, dict):
        return as_text(completion.get("content", ""))
    if isinstance(completion, (list, tuple)):
        if not completion:
            return ""
        last = completion[-1]
        if isinstance(last, dict):
            content = last.get("content", "")
            if isinstance(content, list):  # multimodal content blocks
                return "".join(b.get("text", "") for b in content if isinstance(b, dict))
            return as_text(content)
        return " ".join(as_text(c) for c in completion)
    return str(completion)


class Reward(Component):
    """Base class of every swift-ext reward.

    Subclasses set ``name`` (the registry key), declare ``params`` and implement :meth:`score` for one
    completion (or :meth:`score_batch` for a vectorised version). ``abstains`` documents when the reward
    returns ``None`` (ms-swift turns ``None`` into NaN and leaves it out of the weighted sum).

    Example::

        class Shouting(Reward):
            '''1.0 for an all-caps completion.'''
            name = "shouting"
            params = {"min_len": Param(1, "shortest completion that counts")}

            def score(self, completion, **row):
                return float(len(completion) >= self.min_len and completion.isupper())
    """

    kind: ClassVar[str] = "reward"
    abstains: ClassVar[str] = "never"
    #: score given when a reward's own code fails on an input (logged once); rewards should not rely on it
    fallback: ClassVar[float] = 0.0
    #: dataset columns :meth:`score` reads (``None``: all of them). ms-swift passes a dozen columns per
    #: row; declaring the few a reward uses keeps the per-row dicts small (see :meth:`needed_columns`).
    columns: ClassVar[Optional[Tuple[str, ...]]] = None

    def __init__(self, args: Any = None, **params: Any):
        self.args = args
        self.bind_params(params)
        self._warned = False
        self.setup()

    def reduce_kwargs(self) -> Dict[str, Any]:
        return {"args": self.args}

    def needed_columns(self) -> Optional[Collection[str]]:
        """The columns this instance reads (override when it depends on a parameter such as ``gold_key``)."""
        return self.columns

    # -- scoring --------------------------------------------------------------------------------
    def score(self, completion: str, **row: Any) -> Score:
        raise NotImplementedError

    def score_batch(self, completions: Sequence[str], rows: List[Dict[str, Any]]) -> List[Score]:
        return [self.safe_score(c, r) for c, r in zip(completions, rows)]

    def safe_score(self, completion: Any, row: Dict[str, Any]) -> Score:
        try:
            value = self.score(as_text(completion), **row)
        except Exception as exc:  # a reward must never crash a training run
            self._warn(f"raised {exc!r}")
            return self.fallback
        return self._check(value)

    def _check(self, value: Any) -> Score:
        if value is None:
            return None
        try:
            value = float(value)
        except (TypeError, ValueError):
            self._warn(f"returned a non-number {value!r}")
            return self.fallback
        if not math.isfinite(value):
            self._warn(f"returned a non-finite value {value!r}")
            return self.fallback
        return value

    def _warn(self, what: str) -> None:
        if not self._warned:
            logger.warning("reward %s %s; scored %s (logged once per reward instance)",
                           self.name, what, self.fallback)
            self._warned = True

    def __call__(self, completions: Sequence[Any], **kwargs: Any) -> List[Score]:
        texts = [as_text(c) for c in completions or ()]
        return self.score_batch(texts, split_rows(len(texts), select(kwargs, self.needed_columns())))

    # -- description ----------------------------------------------------------------------------
    @classmethod
    def summary(cls) -> str:
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    @classmethod
    def describe(cls) -> Dict[str, Any]:
        return {
            "name": cls.name,
            "summary": cls.summary(),
            "family": cls.__module__.rsplit(".", 1)[-1],
            "params": {k: {"default": p.default, "type": p.kind.__name__, "help": p.help,
                           **({"choices": list(p.choices)} if p.choices else {})}
                       for k, p in cls.params.items()},
            "abstains": cls.abstains,
            "async": is_async(cls),
        }


class AsyncReward(Reward):
    """A reward whose scoring waits on I/O (an API judge, a sandbox). Implement ``async def ascore``.

    ms-swift recognises it by ``async def __call__`` and runs all async rewards of a step concurrently.
    """

    concurrency: ClassVar[int] = 16

    async def ascore(self, completion: str, **row: Any) -> Score:
        raise NotImplementedError

    def score(self, completion: str, **row: Any) -> Score:  # sync use (offline scoring)
        return asyncio.run(self.ascore(completion, **row))

    async def _safe_ascore(self, sem: asyncio.Semaphore, completion: Any, row: Dict[str, Any]) -> Score:
        async with sem:
            try:
                value = await self.ascore(as_text(completion), **row)
            except Exception as exc:
                self._warn(f"raised {exc!r}")
                return self.fallback
        return self._check(value)

    async def __call__(self, completions: Sequence[Any], **kwargs: Any) -> List[Score]:  # type: ignore[override]
        completions = list(completions or [])
        rows = split_rows(len(completions), select(kwargs, self.needed_columns()))
        sem = asyncio.Semaphore(self.concurrency)
        return list(await asyncio.gather(*(self._safe_ascore(sem, c, r) for c, r in zip(completions, rows))))


def is_async(cls: type) -> bool:
    return asyncio.iscoroutinefunction(getattr(cls, "__call__", None))


def select(columns: Dict[str, Any], needed: Optional[Collection[str]]) -> Dict[str, Any]:
    """The columns a reward declared it reads (all when ``needed`` is None)."""
    if needed is None:
        return columns
    return {k: v for k, v in columns.items() if k in needed}


def split_rows(n: int, columns: Dict[str, Any]) -> List[Dict[str, Any]]:
    """ms-swift passes each dataset column as a list of length n; other kwargs (trainer_state) are shared."""
    if not columns:
        return [{} for _ in range(n)]
    per_row = {k: v for k, v in columns.items() if isinstance(v, (list, tuple)) and len(v) == n}
    shared = {k: v for k, v in columns.items() if k not in per_row}
    rows = []
    for i in range(n):
        row = dict(shared)
        for k, v in per_row.items():
            row[k] = v[i]
        rows.append(row)
    return rows
