"""A child process that runs math-verify, so that one pathological completion can be killed.

math-verify's own timeouts use SIGALRM, which only works in a main thread and cannot stop C code;
a separate process can always be stopped. The parent (:class:`MathJudge`) sends one job at a time and
waits for each answer at most ``timeout`` seconds; on expiry it kills the child, scores that item as
timed out and starts a fresh child for the rest.
"""

from __future__ import annotations

import multiprocessing as mp
from typing import List, Optional, Sequence, Tuple


_LATEX_CHARS = set("\\^{}_")


def _parse(text: str):
    """math-verify parse of an already isolated answer; LaTeX-looking text is parsed as math mode first
    (bare ``2^{10}`` would otherwise be read as the number 2)."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    cfg = [LatexExtractionConfig(), ExprExtractionConfig()]
    wrapped = text if text.strip().startswith("$") else f"${text}$"
    order = (wrapped, text) if _LATEX_CHARS & set(text) else (text, wrapped)
    for candidate in order:
        parsed = parse(candidate, extraction_config=cfg, parsing_timeout=None)
        if any(not isinstance(x, str) for x in parsed or ()):  # only the raw string back: nothing parsed
            return parsed
    return None


def _verify(gold: str, pred: str) -> Optional[bool]:
    from math_verify import verify

    g = _parse(gold)
    if not g:
        return None  # the gold answer itself is unusable: abstain
    p = _parse(pred)
    if not p:
        return False
    return bool(verify(g, p, timeout_seconds=None))


def _serve(conn) -> None:
    import logging

    import math_verify  # noqa: F401  (fail here, once, if missing)

    # timeouts are enforced by the parent killing this process; silence math-verify's warning about that
    logging.getLogger("math_verify").setLevel(logging.ERROR)

    conn.send(("ready", None))
    while True:
        job = conn.recv()
        if job is None:
            return
        gold, pred = job
        try:
            conn.send(("ok", _verify(gold, pred)))
        except Exception as exc:  # a parse error on the completion means "wrong", not "crash"
            conn.send(("error", repr(exc)))


class MathJudge:
    """Verifies (gold, prediction) pairs in a killable child process, ``timeout`` seconds per pair."""

    def __init__(self, timeout: float = 1.0, start_timeout: float = 60.0):
        self.timeout = timeout
        self.start_timeout = start_timeout
        self._ctx = mp.get_context("spawn")
        self._proc = None
        self._conn = None
        self.timeouts = 0

    def _start(self) -> None:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(target=_serve, args=(child,), daemon=True, name="swift-ext-math-verify")
        proc.start()
        child.close()
        if not parent.poll(self.start_timeout):
            proc.kill()
            raise RuntimeError("math-verify worker did not start")
        parent.recv()
        self._proc, self._conn = proc, parent

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join(5)
        if self._conn is not None:
            self._conn.close()
        self._proc = self._conn = None

    def judge(self, pairs: Sequence[Tuple[str, str]]) -> List[Tuple[str, Optional[bool]]]:
        """For each pair: ("ok", True/False/None) | ("timeout", None) | ("error", None)."""
        out: List[Tuple[str, Optional[bool]]] = []
        for gold, pred in pairs:
            if self._proc is None or not self._proc.is_alive():
                self._kill()
                self._start()
            try:
                self._conn.send((gold, pred))
                if self._conn.poll(self.timeout):
                    status, value = self._conn.recv()
                    out.append((status, value if status == "ok" else None))
                    continue
            except (EOFError, OSError, BrokenPipeError):
                pass
            self.timeouts += 1
            self._kill()
            out.append(("timeout", None))
        return out

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.send(None)
            except OSError:
                pass
        self._kill()

    def __del__(self):  # pragma: no cover - best effort at interpreter exit
        try:
            self._kill()
        except Exception:
            pass
