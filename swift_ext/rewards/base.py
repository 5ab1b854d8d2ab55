"""The Reward base class: what ms-swift needs (``cls(args=...)``, ``reward(completions, **columns)``) and
what swift-ext promises (declared parameters, per-row scoring that never raises, finite values or ``None``).

It does not import ``swift``: rewards and their tests run without ms-swift.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import pickle
import sys
import uuid
import weakref
from collections.abc import Sequence as SequenceABC
from typing import Any, ClassVar, Collection, Dict, List, Optional, Sequence, Tuple

from ..components import Component
from ..params import Param
from ..scoring.results import as_text
from . import pool

logger = logging.getLogger("swift_ext.rewards")

Score = Optional[float]

#: completions per GRPO group when the trainer's arguments do not say (``num_generations``)
DEFAULT_GROUP = 8



def _by_reference(cls: type) -> bool:
    """True when ``cls`` is what its module and qualified name lead to (pickle can send it by name)."""
    obj: Any = sys.modules.get(cls.__module__)
    for part in cls.__qualname__.split("."):
        obj = getattr(obj, part, None)
    return obj is cls

class Reward(Component):
    """Base class of every swift-ext reward.

    Subclasses set ``name`` (the registry key), declare ``params`` and implement :meth:`score` for one
    completion (or :meth:`score_batch` for a vectorised version, reading columns with :func:`column`).
    ``abstains`` documents when the reward returns ``None`` (ms-swift turns ``None`` into NaN and leaves
    it out of the weighted sum).

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
    #: declared cases (:class:`swift_ext.rewards.contract.Example`: full credit, zero, malformed) that
    #: ``swift-ext rewards test`` scores, with determinism, pickling, deadline and explain checks
    examples: ClassVar[Tuple[Any, ...]] = ()
    #: ``{kind: why}`` for a required example kind this reward cannot show offline (a judge needs its endpoint)
    examples_skip: ClassVar[Dict[str, str]] = {}
    #: score given when a reward's own code fails on an input (logged once); rewards should not rely on it
    fallback: ClassVar[float] = 0.0
    #: dataset columns :meth:`score` reads (``None``: all of them). ms-swift passes a dozen columns per
    #: row; declaring the few a reward uses keeps the per-row dicts small (see :meth:`needed_columns`).
    columns: ClassVar[Optional[Tuple[str, ...]]] = None
    #: False when :meth:`score_batch` never reads the completions' text (``length_budget`` on token ids):
    #: the caller then hands over the completions as they came, unconverted
    reads_text: bool = True
    #: default of the ``timeout`` parameter: seconds per GRPO group of a call (see :meth:`budget`)
    default_timeout: ClassVar[float] = 30.0
    #: True for a reward whose code can hang (runs in the worker pool unless ``isolate=false``)
    may_hang: ClassVar[bool] = False
    #: score of a completion not scored within the deadline (``None``: abstain)
    timeout_score: ClassVar[Optional[float]] = None
    #: True for a reward whose :meth:`score_batch` keeps the call's deadline itself (sends only its risky
    #: part to the pool, or checks the time): :meth:`__call__` then never sends the whole batch to the pool
    own_deadline: ClassVar[bool] = False

    @classmethod
    def declared_params(cls) -> Dict[str, Param]:
        """``params`` plus the two every reward takes: ``timeout`` and ``isolate`` (a reward may redeclare them)."""
        common = {
            "timeout": Param(cls.default_timeout, "seconds a call may take per GRPO group of completions "
                             "(a call of n completions: timeout x ceil(n / num_generations)); enforced when the "
                             "reward runs in the worker pool (isolate) or checks its own deadline", min=0.05, max=3600.0),
            "isolate": Param(cls.may_hang, "score in the pool of killable worker processes, so a hang costs at "
                             "most the timeout"),
        }
        return {**common, **cls.params}

    def __init__(self, args: Any = None, **params: Any):
        self.args = args
        self.bind_params(params)
        self._warned = False
        self.setup()

    def reduce_kwargs(self) -> Dict[str, Any]:
        return {"args": self.args, **super().reduce_kwargs()}

    def needed_columns(self) -> Optional[Collection[str]]:
        """The columns this instance reads (override when it depends on a parameter such as ``gold_key``)."""
        return self.columns

    # -- scoring --------------------------------------------------------------------------------
    def score(self, completion: str, **row: Any) -> Score:
        """One completion's score. A reward implements this, or :meth:`score_batch` (this is then a batch
        of one), or both: one whose ``score_batch`` hands some rows to the base's must implement it."""
        if type(self).score_batch is Reward.score_batch:
            raise NotImplementedError(f"reward {self.name or type(self).__name__} implements neither score "
                                      f"nor score_batch")
        return self.score_batch([completion], [row])[0]

    def score_batch(self, completions: Sequence[str], rows: Sequence[Dict[str, Any]]) -> List[Any]:
        """Scores of a batch: ``completions`` are texts, ``rows`` one dict of columns per completion
        (a :class:`Rows`; :func:`column` reads one column of it as a list without building the dicts).

        Override it for a vectorised reward (``score`` then defaults to a batch of one). It may raise
        and may return any numbers: the caller (:meth:`__call__`) scores the batch again row by row
        through :meth:`safe_score` when it raises, and turns NaN, inf and non-numbers into ``fallback``.
        The lists it receives are the caller's: read them, do not change them.
        """
        score = self.score
        if isinstance(rows, Rows) and not rows.columns:      # a reward that reads no column
            return [score(c) for c in completions]
        return [score(c, **r) for c, r in zip(completions, rows)]

    def safe_score(self, completion: Any, row: Dict[str, Any]) -> Score:
        """One completion's score, never raising: an exception gives ``fallback`` (logged once)."""
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
        except Exception:  # not a number (TypeError, ValueError), an int too big for a float, a broken __float__
            self._warn(f"returned a non-number {value!r}")
            return self.fallback
        if not math.isfinite(value):
            self._warn(f"returned a non-finite value {value!r}")
            return self.fallback
        return value

    def _check_all(self, values: Sequence[Any]) -> List[Score]:
        """:meth:`_check` of every value; one pass in C when all are finite numbers (the usual case)."""
        try:
            out = list(map(float, values))
        except Exception:                                  # None (abstained) or a non-number somewhere
            return [self._check(v) for v in values]
        if math.isfinite(sum(out)):                        # NaN or inf anywhere makes the sum non-finite
            return out
        return [self._check(v) for v in out]

    def _warn(self, what: str) -> None:
        if not self._warned:
            logger.warning("reward %s %s; scored %s (logged once per reward instance)",
                           self.name, what, self.fallback)
            self._warned = True

    def __call__(self, completions: Sequence[Any], **kwargs: Any) -> List[Score]:
        completions = completions if completions is not None else []
        texts = texts_of(completions) if self.reads_text else completions
        rows = Rows(len(texts), select(kwargs, self.needed_columns()))
        if texts and not pool.IN_WORKER and self.use_pool(rows):
            return self._score_pool(texts, rows)
        return self._score_here(texts, rows)

    def use_pool(self, rows: "Rows") -> bool:
        """Whether this call goes to the worker pool (``isolate``, unless the reward keeps its own deadline)."""
        return self.isolate and not self.own_deadline

    def _score_here(self, texts: Sequence[Any], rows: "Rows") -> List[Score]:
        """The in-process batch path: :meth:`score_batch`, row by row if it raises, values checked."""
        try:
            values = self.score_batch(texts, rows)
            if len(values) != len(texts):
                raise ValueError(f"score_batch returned {len(values)} scores for {len(texts)} completions")
        except Exception as exc:  # the batch path failed: score row by row so one bad row costs only itself
            self._warn(f"raised {exc!r} on a batch of {len(texts)}, scored it row by row")
            return [self.safe_score(c, r) for c, r in zip(texts, rows)]
        return values if type(values) is Checked else self._check_all(values)

    def _score_chunk(self, texts: Sequence[Any], columns: Dict[str, Any], n: int) -> List[Score]:
        """Worker side of :meth:`_score_pool`: one chunk scored in the worker's process."""
        return list(self._score_here(texts, Rows(n, columns)))

    # -- deadlines --------------------------------------------------------------------------------
    def group_size(self) -> int:
        """Completions per GRPO group: the trainer's ``num_generations``, else :data:`DEFAULT_GROUP`."""
        n = getattr(self.args, "num_generations", None)
        return n if isinstance(n, int) and n > 0 else DEFAULT_GROUP

    def budget(self, n: int) -> float:
        """Seconds a call on ``n`` completions may take: ``timeout`` per group of :meth:`group_size`."""
        return self.timeout * max(1, -(-n // self.group_size()))

    def report_timeouts(self, missed: int, n: int, budget: float, how: str = "") -> None:
        """The one log line of a call that ran out of time."""
        if missed:
            logger.warning("reward %s: %d of %d completions not scored within %.3g s%s; scored %s",
                           self.name or type(self).__name__, missed, n, budget, how,
                           "None (abstained)" if self.timeout_score is None else self.timeout_score)

    def _score_pool(self, texts: Sequence[Any], rows: "Rows") -> List[Score]:
        """Scores computed in the worker pool: the batch in one chunk per worker, the whole call within
        :meth:`budget`; a chunk not back in time scores ``timeout_score``."""
        try:
            key, blob, workers = self._pool_for_me()
        except Exception as exc:  # not picklable: it cannot leave this process
            self._warn(f"cannot be sent to a worker process ({exc!r}), scored in-process")
            return self._score_here(texts, rows)
        n = len(texts)
        step = max(1, -(-n // workers.size))
        shared = _picklable(rows._shared)
        jobs, spans = [], []
        for a in range(0, n, step):
            b = min(n, a + step)
            cols = {k: v[a:b] for k, v in rows._per_row.items()}
            cols.update(shared)
            jobs.append(pool.cached_job(key, blob, "_score_chunk", list(texts[a:b]), cols, b - a))
            spans.append((a, b))
        budget = self.budget(n)
        out: List[Score] = [self.timeout_score] * n
        missed = 0
        try:
            results = workers.run(jobs, budget)
        except Exception as exc:  # the pool itself failed (its workers cannot start): nothing was scored
            results = [("lost", f"{type(exc).__name__}: {exc}")] * len(jobs)
        for (a, b), (status, value) in zip(spans, results):
            if status == "ok" and isinstance(value, list) and len(value) == b - a:
                out[a:b] = self._check_all(value)
            elif status == "timeout":
                missed += b - a
            else:  # not scored: its worker died, the reward could not be rebuilt there, the answer was unreadable
                self._warn_lost(b - a, n, value if status != "ok" else f"a malformed answer {value!r:.80}")
        self.report_timeouts(missed, n, budget, " in the worker pool")
        return out

    def _warn_lost(self, lost: int, n: int, why: Any) -> None:
        """One line (per instance) for completions the pool could not score: they get ``timeout_score``,
        as completions not scored in time do (abstain for every reward but ``math_accuracy``)."""
        if not self.__dict__.get("_warned_lost"):
            self._warned_lost = True
            logger.warning("reward %s: %d of %d completions not scored in the worker pool (%s); scored %s "
                           "(logged once per reward instance)", self.name or type(self).__name__, lost, n, why,
                           "None (abstained)" if self.timeout_score is None else self.timeout_score)

    def warm_workers(self, timeout: float = pool.START_TIMEOUT) -> bool:
        """Start this process's worker pool and wait until its workers hold what rebuilding this reward imports
        (else the first isolated call waits for that, outside its deadline). True when every worker is ready."""
        return self._pool_for_me()[2].wait_ready(timeout)

    def _pool_for_me(self) -> Tuple[str, bytes, "pool.Pool"]:
        """This reward's :meth:`_pool_identity` and the process's pool, told which modules its workers import
        before they say ready."""
        key, blob = self._pool_identity()
        workers = pool.get_pool()
        workers.need(self._pool_modules)
        return key, blob, workers

    def _pool_identity(self) -> Tuple[str, bytes]:
        """(key, blob): how a worker rebuilds this reward: its registered class (importable by module; the
        worker gets this process's ``sys.path``), the bound parameters and the trainer's arguments."""
        got = self.__dict__.get("_pool_id")
        if got is None:
            # the first class a worker can import by name: not a parametrised subclass, and not the class
            # ms-swift gets (swift_ext.bridge adds its ORM base under the reward's own name)
            cls = next((c for c in type(self).__mro__ if issubclass(c, Reward) and _by_reference(c)), None)
            if cls is None:
                raise pickle.PicklingError(f"no class of {type(self).__qualname__} is importable by name")
            try:
                pickle.dumps(self.args)
                args = self.args
            except Exception:                  # a trainer object that does not pickle: the worker goes without
                args = None
            blob = pickle.dumps((cls, (), {"args": args, **self.config}), protocol=pickle.HIGHEST_PROTOCOL)
            # what unpickling the blob imports is imported by each worker before it says ready: inside
            # ms-swift ``args`` is the trainer's arguments, and importing ms-swift takes longer than a call's
            # deadline on a loaded node; counted against the deadline, every call killed its worker mid-import
            # and scored nothing (a world-size-2 run: 0 of 24 calls scored)
            self._pool_modules = [cls.__module__] + ([type(args).__module__] if args is not None else [])
            got = self._pool_id = (uuid.uuid4().hex, blob)
        return got

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_pool")}

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
                       for k, p in cls.declared_params().items()},
            "abstains": cls.abstains,
            "async": is_async(cls),
        }

    # -- explanation ----------------------------------------------------------------------------
    def explain(self, completion: Any, **row: Any) -> Dict[str, Any]:
        """How one completion's score came about, for ``swift-ext rewards explain``.

        ``score`` is what :meth:`__call__` gives for this completion and row (a batch of one); ``reason``
        says why in words. A reward overrides this to add what it extracted, normalised, parsed and
        compared (calling ``super().explain(...)`` for the score), so the numbers it shows recompute the
        score. This default says only the score, and for ``None`` when the reward abstains."""
        out = self([completion], **{k: [v] for k, v in row.items()})
        if asyncio.iscoroutine(out):
            out = asyncio.run(out)
        score = list(out)[0]
        if score is None:
            reason = f"abstained (None): {self.abstains}"
        else:
            reason = f"scored {score:g}"
        return {"reward": self.name or type(self).__name__, "score": score, "reason": reason}


#: the variable setting how many async reward requests one process keeps in flight, across all async rewards
ASYNC_LIMIT_ENV = "SWIFT_EXT_ASYNC_CONCURRENCY"
_LIMITS: "weakref.WeakKeyDictionary[Any, asyncio.Semaphore]" = weakref.WeakKeyDictionary()


def shared_limit() -> asyncio.Semaphore:
    """The per-process (per event loop) limit every :class:`AsyncReward` call shares: at most
    ``SWIFT_EXT_ASYNC_CONCURRENCY`` (default 64) requests in flight, whatever the number of rewards."""
    loop = asyncio.get_running_loop()
    sem = _LIMITS.get(loop)
    if sem is None:
        raw = os.environ.get(ASYNC_LIMIT_ENV, "").strip()
        try:
            size = max(1, int(raw)) if raw else 64
        except ValueError:
            raise ValueError(f"{ASYNC_LIMIT_ENV}={raw!r}: expected a whole number of requests") from None
        sem = _LIMITS[loop] = asyncio.Semaphore(size)
    return sem


class AsyncReward(Reward):
    """A reward whose scoring waits on I/O (an API judge, a sandbox). Implement ``async def ascore``.

    ms-swift recognises it by ``async def __call__`` and runs all async rewards of a step concurrently.
    Within one call, completions are scored concurrently: at most ``concurrency`` at once for this reward
    and at most ``SWIFT_EXT_ASYNC_CONCURRENCY`` (default 64) for all async rewards of the process together;
    the whole call ends within :meth:`Reward.budget` (unfinished completions score ``timeout_score``).
    """

    concurrency: ClassVar[int] = 16

    async def ascore(self, completion: str, **row: Any) -> Score:
        raise NotImplementedError

    def begin_call(self, n: int) -> None:
        """Called at the start of each call on ``n`` completions (reset per-call state here)."""

    def score(self, completion: str, **row: Any) -> Score:  # sync use (offline scoring)
        return asyncio.run(self.ascore(completion, **row))

    async def ascore_at(self, index: int, completion: str, row: Dict[str, Any]) -> Score:
        """:meth:`ascore` of the call's completion number ``index`` (override to keep per-row details)."""
        return await self.ascore(completion, **row)

    async def _safe_ascore(self, own: asyncio.Semaphore, shared: asyncio.Semaphore, index: int, completion: Any,
                           row: Dict[str, Any]) -> Score:
        async with own, shared:
            try:
                value = await self.ascore_at(index, as_text(completion), row)
            except Exception as exc:
                self._warn(f"raised {exc!r}")
                return self.fallback
        return self._check(value)

    async def __call__(self, completions: Sequence[Any], **kwargs: Any) -> List[Score]:  # type: ignore[override]
        completions = list(completions or [])
        if not completions:
            return []
        rows = split_rows(len(completions), select(kwargs, self.needed_columns()))
        own, shared = asyncio.Semaphore(self.concurrency), shared_limit()
        self.begin_call(len(completions))
        tasks = [asyncio.ensure_future(self._safe_ascore(own, shared, i, c, r))
                 for i, (c, r) in enumerate(zip(completions, rows))]
        budget = self.budget(len(tasks))
        done, pending = await asyncio.wait(tasks, timeout=budget)
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1.0)    # let them unwind; one ignoring cancellation is dropped
        self.report_timeouts(len(pending), len(tasks), budget)
        return [t.result() if t in done else self.timeout_score for t in tasks]


def _picklable(values: Dict[str, Any]) -> Dict[str, Any]:
    """The entries of ``values`` that pickle (a trainer state shared by every row may not)."""
    out = {}
    for k, v in values.items():
        try:
            pickle.dumps(v)
        except Exception:
            continue
        out[k] = v
    return out


class Checked(list):
    """Scores a batch path guarantees to be finite floats or ``None`` by construction (a table of finite
    values, say): :meth:`Reward.__call__` returns them without checking each again."""


def is_async(cls: type) -> bool:
    return asyncio.iscoroutinefunction(getattr(cls, "__call__", None))


def select(columns: Dict[str, Any], needed: Optional[Collection[str]]) -> Dict[str, Any]:
    """The columns a reward declared it reads (all when ``needed`` is None)."""
    if needed is None:
        return columns
    return {k: v for k, v in columns.items() if k in needed}


def texts_of(completions: Optional[Sequence[Any]]) -> List[str]:
    """:func:`as_text` of each completion (the list itself when it already holds only strings)."""
    if not completions:
        return []
    if type(completions) is list and all(map(str.__instancecheck__, completions)):
        return completions
    return [c if isinstance(c, str) else as_text(c) for c in completions]


class Rows(SequenceABC):
    """The rows of a batch: ``rows[i]`` is row i's dict of columns, built when asked for.

    ms-swift passes each dataset column as a list of length n; other keyword arguments
    (``trainer_state``) are shared by every row. :meth:`column` gives one column as a list of n
    values (``None`` where absent) without building the per-row dicts.

    >>> rows = Rows(2, {"solution": ["1", "2"], "trainer_state": "s"})
    >>> rows[1] == {"trainer_state": "s", "solution": "2"}, rows.column("solution"), rows.column("x")
    (True, ['1', '2'], [None, None])
    """

    __slots__ = ("n", "columns", "_per_row", "_shared")

    def __init__(self, n: int, columns: Dict[str, Any]):
        self.n = n
        self.columns = columns
        self._per_row = {k: v for k, v in columns.items() if isinstance(v, (list, tuple)) and len(v) == n}
        self._shared = {k: v for k, v in columns.items() if k not in self._per_row}

    def column(self, key: str) -> Sequence[Any]:
        values = self._per_row.get(key)
        if values is not None:
            return values
        return [self._shared.get(key)] * self.n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self.n))]
        if i < 0:
            i += self.n
        if not 0 <= i < self.n:
            raise IndexError(i)
        row = dict(self._shared)
        for k, v in self._per_row.items():
            row[k] = v[i]
        return row

    def __iter__(self):
        shared, items = self._shared, list(self._per_row.items())
        if len(items) == 1 and not shared:                 # the common case: one column read per row
            key, values = items[0]
            for v in values:
                yield {key: v}
            return
        for i in range(self.n):
            row = dict(shared)
            for k, v in items:
                row[k] = v[i]
            yield row

    def __eq__(self, other: Any) -> bool:
        if isinstance(other, (Rows, list, tuple)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    def __repr__(self) -> str:
        return f"Rows({self.n}, {sorted(self.columns)})"


def column(rows: Sequence[Dict[str, Any]], key: str) -> Sequence[Any]:
    """Column ``key`` of a batch's rows as a list (a :class:`Rows` or any list of row dicts)."""
    if isinstance(rows, Rows):
        return rows.column(key)
    return [r.get(key) for r in rows]


def split_rows(n: int, columns: Dict[str, Any]) -> Rows:
    """ms-swift passes each dataset column as a list of length n; other kwargs (trainer_state) are shared."""
    return Rows(n, columns)
