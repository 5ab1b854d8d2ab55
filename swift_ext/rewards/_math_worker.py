"""A child process that runs math-verify, so that one pathological completion can be killed.

math-verify's own timeouts use SIGALRM, which only works in a main thread and cannot stop C code;
a separate process can always be stopped. The parent (:class:`MathJudge`) sends one job at a time and
waits for each answer at most ``timeout`` seconds; on expiry it kills the child, scores that item as
timed out and carries on with a warm spare process.

The child is a plain ``python -m swift_ext.rewards._math_worker`` speaking JSON lines on stdin/stdout,
not a ``multiprocessing`` child: spawn would re-import the trainer's ``__main__`` (ms-swift's whole
import chain, seconds and gigabytes) in every worker.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
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


def serve() -> None:
    """The worker loop: one JSON job per stdin line, one JSON answer per stdout line."""
    import logging

    proto = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr  # anything a library prints must not corrupt the protocol
    import math_verify  # noqa: F401  (fail here, once, if missing)

    # timeouts are enforced by the parent killing this process; silence math-verify's warning about that
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    proto.write('"ready"\n')
    for line in sys.stdin:
        job = json.loads(line)
        if job is None:
            return
        try:
            answer = ["ok", _verify(*job)]
        except Exception as exc:  # a parse error on the completion means "wrong", not "crash"
            answer = ["error", repr(exc)]
        proto.write(json.dumps(answer) + "\n")


class _Worker:
    """One worker process and a line reader with a timeout on its stdout."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, bufsize=0)
        self._buf = b""

    def readline(self, timeout: float) -> Optional[str]:
        import time

        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None  # the worker died
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode("utf-8")

    def send(self, obj) -> None:
        self.proc.stdin.write((json.dumps(obj) + "\n").encode("utf-8"))
        self.proc.stdin.flush()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)


class MathJudge:
    """Verifies (gold, prediction) pairs in a killable child process, ``timeout`` seconds per pair.

    A warm spare process waits beside the active one, so after a kill the next pair is served at once
    instead of waiting about a second for a fresh interpreter to import math-verify.
    """

    def __init__(self, timeout: float = 1.0, start_timeout: float = 60.0, spare: bool = True):
        self.timeout = timeout
        self.start_timeout = start_timeout
        self.spare = spare
        self._active: Optional[_Worker] = None  # ready
        self._spare: Optional[_Worker] = None   # possibly still importing math-verify
        self.timeouts = 0

    def _ready(self, worker: _Worker) -> bool:
        if worker.alive() and worker.readline(self.start_timeout) == '"ready"':
            return True
        worker.stop()
        return False

    def _ensure_active(self) -> None:
        if self._active is not None and self._active.alive():
            return
        if self._active is not None:
            self._active.stop()
        self._active = None
        candidate, self._spare = self._spare, None
        if candidate is None or not self._ready(candidate):
            candidate = _Worker()
            if not self._ready(candidate):
                raise RuntimeError("math-verify worker did not start (is math-verify installed?)")
        self._active = candidate
        if self.spare:
            self._spare = _Worker()  # imports math-verify in the background

    def judge(self, pairs: Sequence[Tuple[str, str]]) -> List[Tuple[str, Optional[bool]]]:
        """For each pair: ("ok", True/False/None) | ("timeout", None) | ("error", None)."""
        out: List[Tuple[str, Optional[bool]]] = []
        for gold, pred in pairs:
            self._ensure_active()
            try:
                self._active.send([gold, pred])
                line = self._active.readline(self.timeout)
            except (OSError, ValueError):
                line = None
            if line is not None:
                status, value = json.loads(line)
                out.append((status, value if status == "ok" else None))
                continue
            self.timeouts += 1
            self._active.stop()
            self._active = None
            out.append(("timeout", None))
        return out

    def close(self) -> None:
        for worker in (self._active, self._spare):
            if worker is not None:
                try:
                    worker.send(None)
                except (OSError, ValueError):
                    pass
                worker.stop()
        self._active = self._spare = None

    def __del__(self):  # pragma: no cover - best effort, also at interpreter exit
        try:
            self.close()
        except Exception:
            pass


if __name__ == "__main__":
    serve()
