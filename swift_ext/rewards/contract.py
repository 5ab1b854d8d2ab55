"""The reward contract: what every reward promises, checked on its own declared examples
(``swift-ext rewards test``; the idea of NeMo-Gym's verifier fixtures).

A reward declares a few example cases on its class, each a completion, its dataset columns and the score it
must get::

    class Shouting(Reward):
        name = "shouting"
        examples = (
            Example("full", "HELLO", 1.0),
            Example("zero", "hello", 0.0),
            Example("malformed", "", 0.0),                     # or None where the reward abstains
            Example("full", "HI", 1.0, params="min_len=2"),     # a configured variant: spec parameters
        )

``Example(kind, completion, score, *, params="", tol=1e-6, **columns)``: ``kind`` is ``full`` (full
credit: the reward's best score), ``zero`` (a wrong answer: its lowest or zero score) or ``malformed`` (input
the reward cannot read: its documented abstention ``None`` or 0); every reward declares at least one of each,
or says in ``examples_skip = {kind: why}`` why it cannot offline (a judge needs an endpoint).
The columns are what ms-swift passes (``solution=...``, ``image_size=...``).

:func:`check` runs, for each reward: ``examples`` (the three kinds are declared), ``example`` (each scores as
declared), ``deterministic`` (the same input twice, and a second instance, give the same score),
``picklable`` (the configured class and an instance survive a pickle round trip and still score the same),
``deadline`` (each call returns within the reward's own budget) and ``explain`` (``explain()``'s score equals
the call's).
"""

from __future__ import annotations

import asyncio
import math
import pickle
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

#: the kinds of example every reward declares
REQUIRED_KINDS = ("full", "zero", "malformed")
#: seconds a call may run beyond the reward's own budget before ``deadline`` fails (start-up, a worker pool)
GRACE = 5.0


class Example:
    """One declared case of a reward: ``completion`` with dataset ``columns`` scores ``score`` (None: abstains)
    under the spec parameters ``params`` (``"mode=relative"``; empty: the defaults)."""

    __slots__ = ("kind", "completion", "score", "params", "tol", "columns")

    def __init__(self, kind: str, completion: Any, score: Optional[float], *, params: str = "", tol: float = 1e-6,
                 **columns: Any):
        self.kind, self.completion, self.score, self.params, self.tol = kind, completion, score, params, tol
        self.columns = columns

    def spec(self, name: str) -> str:
        return f"{name}:{self.params}" if self.params else name

    def matches(self, got: Optional[float]) -> bool:
        if self.score is None or got is None:
            return self.score is None and got is None
        return math.isclose(got, self.score, rel_tol=0.0, abs_tol=self.tol)

    def __repr__(self) -> str:
        extra = f", params={self.params!r}" if self.params else ""
        return f"Example({self.kind!r}, {self.completion!r:.60}, {self.score!r}{extra})"


@dataclass
class Check:
    """One check's outcome: ``reward``, ``check`` name, ``ok`` and what went wrong (``detail``)."""

    reward: str
    check: str
    ok: bool
    detail: str = ""
    seconds: float = 0.0

    def as_dict(self) -> Dict[str, Any]:
        return {"reward": self.reward, "check": self.check, "ok": self.ok, "detail": self.detail,
                "seconds": round(self.seconds, 4)}


@dataclass
class _Call:
    value: Any = None
    error: Optional[BaseException] = None
    seconds: float = 0.0
    done: bool = False
    extra: Dict[str, Any] = field(default_factory=dict)


def _bounded(fn, limit: float) -> _Call:
    """``fn()`` in a daemon thread, waited for at most ``limit`` seconds (a hung reward is reported, and left)."""
    out = _Call()

    def run():
        t0 = time.perf_counter()
        try:
            value = fn()
            if asyncio.iscoroutine(value):
                value = asyncio.run(value)
            out.value = value
        except BaseException as exc:  # noqa: BLE001 - reported as the check's failure
            out.error = exc
        out.seconds = time.perf_counter() - t0
        out.done = True

    thread = threading.Thread(target=run, daemon=True, name="swift-ext-reward-contract")
    thread.start()
    thread.join(limit)
    return out


def _score(instance: Any, ex: Example) -> Optional[float]:
    out = instance([ex.completion], **{k: [v] for k, v in ex.columns.items()})
    if asyncio.iscoroutine(out):
        out = asyncio.run(out)
    value = list(out)[0]
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _fmt(v: Optional[float]) -> str:
    return "None" if v is None else f"{v:.6g}"


def check(name: str, cls: Optional[type] = None) -> List[Check]:
    """Every contract check of the registered reward ``name`` (or of ``cls``, a reward class not registered:
    its examples' parameters are then bound as constructor keywords)."""
    from . import configure, get_reward
    from ..params import parse_spec

    reg = cls if cls is not None else get_reward(name)
    out: List[Check] = []
    examples: Sequence[Example] = tuple(getattr(reg, "examples", ()) or ())
    kinds = {ex.kind for ex in examples}
    skip = dict(getattr(reg, "examples_skip", None) or {})
    missing = [k for k in REQUIRED_KINDS if k not in kinds and k not in skip]
    out.append(Check(name, "examples", not missing,
                     f"no {', '.join(missing)} example declared (class attribute `examples`)" if missing
                     else f"{len(examples)} examples" + "".join(f"; no {k} example: {why}" for k, why in skip.items())))

    def make(ex: Example) -> Tuple[type, Any]:
        if cls is None:
            klass = configure(ex.spec(name))
            return klass, klass()
        return cls, cls(**parse_spec(ex.spec(name))[1])

    picklable_done = False
    for i, ex in enumerate(examples):
        label = f"{ex.kind}#{i}"
        try:
            klass, inst = make(ex)
        except Exception as exc:
            out.append(Check(name, "example", False, f"{label}: cannot build {ex.spec(name)!r}: {exc}"))
            continue
        budget = inst.budget(1) if hasattr(inst, "budget") else 30.0
        _bounded(lambda: _score(klass(), ex), budget + GRACE)  # warm-up: worker pool, lazy imports, caches
        first = _bounded(lambda: _score(inst, ex), budget + GRACE)
        if not first.done:
            out.append(Check(name, "deadline", False, f"{label}: no score within {budget + GRACE:.3g} s "
                             f"(its budget {budget:.3g} s + {GRACE:g} s grace)", budget + GRACE))
            continue
        if first.error is not None:
            out.append(Check(name, "example", False, f"{label}: the call raised {first.error!r}", first.seconds))
            continue
        got = first.value
        out.append(Check(name, "deadline", first.seconds <= budget,
                         f"{label}: {first.seconds:.3g} s of {budget:.3g} s", first.seconds))
        out.append(Check(name, "example", ex.matches(got),
                         f"{label}: {ex.completion!r:.60} scored {_fmt(got)}, declared {_fmt(ex.score)}",
                         first.seconds))
        again = _bounded(lambda: _score(inst, ex), budget + GRACE)
        try:
            _, other = make(ex)
            fresh = _bounded(lambda: _score(other, ex), budget + GRACE)
        except Exception as exc:  # noqa: BLE001
            fresh = _Call(error=exc, done=True)
        same = again.done and fresh.done and again.error is None and fresh.error is None \
            and _same(got, again.value) and _same(got, fresh.value)
        out.append(Check(name, "deterministic", same,
                         f"{label}: scored {_fmt(got)}, then {_fmt(again.value)}, then {_fmt(fresh.value)} "
                         f"(a second instance)" if not same else f"{label}: {_fmt(got)} three times"))
        if not picklable_done:
            picklable_done = True
            out.append(_check_pickle(name, klass, inst, ex, got, budget))
        try:
            explained = _bounded(lambda: inst.explain(ex.completion, **ex.columns), budget + GRACE) \
                if hasattr(inst, "explain") else None
        except Exception as exc:  # noqa: BLE001
            explained = _Call(error=exc, done=True)
        if explained is not None:
            ex_score = explained.value.get("score") if explained.done and isinstance(explained.value, dict) else "-"
            ok = explained.done and explained.error is None and _same(got, ex_score)
            out.append(Check(name, "explain", ok, f"{label}: explain() gave {ex_score!r}, the call {_fmt(got)}"
                             + (f" ({explained.error!r})" if explained.error else "")))
    if not examples:
        out.append(Check(name, "picklable", _pickles(reg), "the class (no example to score)"))
    return out


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return False


def _pickles(obj: Any) -> bool:
    try:
        pickle.loads(pickle.dumps(obj))
    except Exception:  # noqa: BLE001
        return False
    return True


def _check_pickle(name: str, klass: type, inst: Any, ex: Example, got: Optional[float], budget: float) -> Check:
    """The class and the instance survive a pickle round trip; the unpickled instance scores the same."""
    try:
        klass2 = pickle.loads(pickle.dumps(klass))
        inst2 = pickle.loads(pickle.dumps(inst))
    except Exception as exc:  # noqa: BLE001
        return Check(name, "picklable", False, f"{type(exc).__name__}: {exc}")
    if klass2 is not klass and getattr(klass2, "__name__", None) != getattr(klass, "__name__", None):
        return Check(name, "picklable", False, f"the class came back as {klass2!r}, not {klass!r}")
    again = _bounded(lambda: _score(inst2, ex), budget + GRACE)
    ok = again.done and again.error is None and _same(got, again.value)
    return Check(name, "picklable", ok, "class and instance round trip" if ok else
                 f"the unpickled instance scored {_fmt(again.value)}, the original {_fmt(got)}"
                 + (f" ({again.error!r})" if again.error else ""))


def check_all(names: Iterable[str]) -> List[Check]:
    out: List[Check] = []
    for name in names:
        out.extend(check(name))
    return out


def load_plugin_file(path: str) -> List[Tuple[str, Optional[type]]]:
    """The rewards of one plugin file: imported as a module; with a ``register_rewards`` hook it is registered
    as a plugin (``(name, None)``: tested through the registry, as a run would use it), else its
    :class:`~swift_ext.rewards.Reward` subclasses with a ``name`` are tested as they are (``(name, cls)``)."""
    import importlib.util
    import os
    import sys

    from .. import plugins
    from ..errors import PluginError
    from .base import Reward

    path = os.path.abspath(path)
    modname = "swift_ext_plugin_file_" + os.path.splitext(os.path.basename(path))[0].replace("-", "_")
    spec = importlib.util.spec_from_file_location(modname, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module   # so its classes pickle by reference
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise PluginError(f"{path}: importing it failed: {exc!r}") from exc
    if hasattr(module, "register_rewards"):
        before = set(plugins.registry("reward"))
        plugins.get_pm().register(module, name=modname)
        plugins.reset_registries()
        return [(n, None) for n in plugins.registry("reward") if n not in before]
    found = [(c.name, c) for c in vars(module).values()
             if isinstance(c, type) and issubclass(c, Reward) and c.__module__ == modname and c.name]
    if not found:
        raise PluginError(f"{path}: no register_rewards hook and no Reward subclass with a name")
    return found


def run(names: Sequence[str] = (), plugin_files: Sequence[str] = ()) -> List[Check]:
    """The contract checks of ``names`` (registered rewards) and of every reward in ``plugin_files``; with
    neither, of every registered reward (built-ins and installed plugins)."""
    from . import reward_names

    targets: List[Tuple[str, Optional[type]]] = []
    for path in plugin_files:
        targets.extend(load_plugin_file(path))
    if names:
        known = set(reward_names()) | {t[0] for t in targets}
        from ..errors import UnknownNameError
        for n in names:
            if n not in known:
                raise UnknownNameError("reward", n, sorted(known))
        targets = [t for t in targets if t[0] in names] + [(n, None) for n in names
                                                             if n not in {t[0] for t in targets}]
    elif not plugin_files:
        targets = [(n, None) for n in reward_names()]
    out: List[Check] = []
    for name, cls in targets:
        out.extend(check(name, cls))
    return out


def failed(results: Iterable[Check]) -> List[Check]:
    return [r for r in results if not r.ok]


__all__ = ["Example", "Check", "check", "check_all", "run", "load_plugin_file", "failed", "REQUIRED_KINDS"]
