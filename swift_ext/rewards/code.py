"""Code rewards: run the completion's program on the row's test cases in a sandbox (:mod:`swift_ext.sandbox`)."""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..errors import ParamError
from ..extract import CODE_MODES, extract_code
from ..params import Param
from ..sandbox import base as sb
from ..sandbox.cases import AUTO_KEYS, Case, TestsError, read_tests
from ..sandbox.compare import same_output, same_value
from .base import Reward, Score
from .contract import Example

logger = logging.getLogger("swift_ext.rewards")

#: characters of expected / got / stderr kept in an explanation
SHOWN = 300
#: seconds of a call's deadline kept back for judging and clean-up
MARGIN = 0.3
PASSED = "passed"
#: requests in flight at once for an HTTP backend when concurrency=0 (the service's cores do the work)
HTTP_CONCURRENCY = 16


def _python_compiles(text: str) -> bool:
    try:
        compile(text, "<completion>", "exec")
    except (SyntaxError, ValueError):
        return False
    return True


def _short(value: Any, n: int = SHOWN) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= n else text[:n // 2] + f" ...[{len(text) - n} chars cut]... " + text[-n // 2:]


@dataclass
class Verdict:
    """One completion's evaluation: the score, the program found (or why none), each case's outcome."""

    score: Score
    reason: str
    program: Optional[str] = None
    extracted_by: str = ""
    tests: str = ""
    cases: List[Dict[str, Any]] = field(default_factory=list)


class CodeTests(Reward):
    """The fraction of the row's test cases the completion's program passes (``mode=fraction``), or 1.0 only
    when it passes all of them (``mode=all``), run in a sandbox.

    The program is the last code block fenced with the language (```` ```python ````), else the last
    unlabelled block, else the content of ``<answer>``, else the whole text when it compiles (``extract``).
    Tests are read from the row in the formats code datasets use (``tests_key=auto`` looks in ``tests``,
    ``verification_info`` (open-r1), ``ground_truth`` / ``reward_model`` / ``input_output`` (verl, PRIME,
    APPS), ``public_test_cases`` + ``private_test_cases`` (LiveCodeBench), ``test_list`` (MBPP), ``test``
    (HumanEval with ``entry_point``, or a pytest file as in KodCode), ``solution`` (a verl ground truth
    converted by ``swift-ext convert``)). A case passes when the program exits 0 and its output matches
    (stripped lines; numbers within ``float_tol``), or its call's result equals the expected value, or its
    asserts all ran; the expected output never enters the sandbox, and assert-style cases must end with a
    line carrying a random nonce, so ``sys.exit(0)`` before the asserts never passes.

    Every case is a separate run (``local``: a process isolated with bubblewrap when installed; or the
    ``sandbox_fusion`` / ``piston`` HTTP services) of at most ``case_timeout`` seconds and ``memory_mb``;
    a call's programs and cases run ``concurrency`` at a time (default: CPUs / ``LOCAL_WORLD_SIZE``),
    all within the call's deadline (``timeout`` per GRPO group): a case not finished by then fails.

    Abstains (``None``) when the row holds no test cases it can read, or when the sandbox itself failed on
    every case (an HTTP service down); a completion with no program scores 0.0.

    On the command line: ``--reward_funcs code_tests:mode=all,case_timeout=2``.

    Example:
        >>> tests = {"inputs": ["1 2", "5 7"], "outputs": ["3", "12"]}
        >>> CodeTests()(["```python\\na, b = map(int, input().split())\\nprint(a + b)\\n```",
        ...              "```python\\nprint(3)\\n```", "I cannot solve it."], ground_truth=[tests] * 3)
        [1.0, 0.5, 0.0]
    """

    name = "code_tests"
    examples = (
        Example("full", "```python\nprint(sum(map(int, input().split())))\n```", 1.0,
                ground_truth={"inputs": ["1 2", "5 7"], "outputs": ["3", "12"]}),
        Example("zero", "```python\nprint(3)\n```", 0.0, params="mode=all",
                ground_truth={"inputs": ["1 2", "5 7"], "outputs": ["3", "12"]}),
        Example("zero", "```python\nimport sys\nsys.exit(0)\n```", 0.0,
                test="def check(candidate):\n    assert candidate(2) == 4\n", entry_point="sq"),
        Example("malformed", "```python\nprint(3)\n```", None, ground_truth=None),
        Example("malformed", "no program here", 0.0, ground_truth={"inputs": ["1 2"], "outputs": ["3"]}),
    )
    abstains = ("when the row holds no test cases in a known format, or the sandbox failed on every case "
                "(an HTTP backend down)")
    default_timeout = 60.0
    own_deadline = True
    timeout_score = 0.0
    params = {
        "mode": Param("fraction", "fraction: share of cases passed (open-r1 code_reward); all: 1 only when every "
                      "case passes (open-r1 binary_code_reward, LiveCodeBench pass@1)", choices=("fraction", "all")),
        "language": Param("python", "language of the program when the row does not say (a registered runner)"),
        "tests_key": Param("auto", "dataset column holding the test cases (auto: the known columns in turn)"),
        "extract": Param("auto", "where the program is: auto, fence (last block fenced with the language), "
                         "answer (<answer>), whole (the text after reasoning)", choices=CODE_MODES),
        "backend": Param("local", "sandbox backend", choices=("local", "sandbox_fusion", "piston")),
        "url": Param("", "HTTP backend address (sandbox_fusion: http://host:8080, piston: http://host:2000)"),
        "api_key_env": Param("", "environment variable holding an API key for the HTTP backend (Bearer token)"),
        "isolation": Param("auto", "local backend: auto (strongest available), bwrap, unshare or rlimits",
                           choices=("auto", "bwrap", "unshare", "rlimits")),
        "python": Param("", "interpreter for Python programs (local; default: the trainer's own)"),
        "case_timeout": Param(5.0, "wall seconds one case may run (CPU seconds: this + 1)", min=0.05, max=600.0),
        "memory_mb": Param(1024, "address space of one run, MB", type=int, min=16, max=1 << 20),
        "processes": Param(32, "processes (and threads) one run may have", type=int, min=1, max=4096),
        "max_output_kb": Param(1024, "standard output / error kept per run, KB (more ends the run: output_limit)",
                               type=int, min=1, max=1 << 20),
        "float_tol": Param(1e-6, "numbers match within float_tol * max(1, |expected|) (0: compare text only)",
                           min=0.0, max=1.0),
        "max_cases": Param(0, "run at most this many cases per row (0: all)", type=int, min=0),
        "concurrency": Param(0, "runs at once (0: CPUs / LOCAL_WORLD_SIZE or SWIFT_EXT_SANDBOX_CONCURRENCY for the "
                             "local backend, 16 requests for an HTTP backend)",
                             type=int, min=0, max=4096),
        "plain_returns": Param(True, "assert-style tests: the program's functions must return plain data (an "
                               "object whose __eq__ always says yes fails)"),
    }

    def needed_columns(self):
        return tuple(dict.fromkeys((*AUTO_KEYS, "private_test_cases", "metadata", "entry_point", "test_setup_code",
                                    "test_imports", "challenge_test_list", self.tests_key)))

    def setup(self) -> None:
        if self.backend != "local" and not self.url:
            raise ParamError(f"reward code_tests: backend={self.backend} needs url=")
        self._box: Optional[sb.Sandbox] = None
        self._no_tests_warned = False
        self.last_details: List[Verdict] = []

    def __getstate__(self):
        state = super().__getstate__()
        state["_box"] = None
        return state

    def sandbox(self) -> sb.Sandbox:
        if self._box is None:
            from ..sandbox import get_sandbox

            if self.backend == "local":
                self._box = get_sandbox("local", isolation=self.isolation, python=self.python or None)
            else:
                self._box = get_sandbox(self.backend, url=self.url, api_key_env=self.api_key_env or None)
        return self._box

    def limits(self) -> sb.Limits:
        return sb.Limits(time=self.case_timeout, memory_mb=self.memory_mb, processes=self.processes,
                         output_bytes=self.max_output_kb * 1024)

    # -- scoring --------------------------------------------------------------------------------
    def score_batch(self, completions: Sequence[str], rows: Sequence[Dict[str, Any]]) -> List[Score]:
        verdicts = self.evaluate(completions, rows)
        self.last_details = verdicts
        return [v.score for v in verdicts]

    def _tests(self, row: Dict[str, Any], cache: Dict[str, Any]) -> Any:
        """The row's TestSet (or the TestsError), parsed once per distinct test column in a call."""
        try:
            key = hashlib.sha1(json.dumps({k: row.get(k) for k in self.needed_columns() if row.get(k) is not None},
                                          sort_keys=True, default=str).encode()).hexdigest()
        except Exception:  # noqa: BLE001 - an odd column value: parse without caching
            key = None
        if key is not None and key in cache:
            return cache[key]
        try:
            got: Any = read_tests(row, self.tests_key)
            if self.max_cases and len(got.cases) > self.max_cases:
                got.cases = got.cases[:self.max_cases]
        except TestsError as exc:
            got = exc
        if key is not None:
            cache[key] = got
        return got

    def evaluate(self, completions: Sequence[str], rows: Sequence[Dict[str, Any]]) -> List[Verdict]:
        """One :class:`Verdict` per completion (what :meth:`score_batch` scores and :meth:`explain` shows)."""
        start = time.monotonic()
        budget = self.budget(len(completions))
        cache: Dict[str, Any] = {}
        verdicts: List[Verdict] = []
        jobs: List[Tuple[int, int, Case, str, str]] = []        # (completion, case, Case, language, code)
        for i, (text, row) in enumerate(zip(completions, rows)):
            tests = self._tests(row, cache)
            if isinstance(tests, TestsError):
                if not self._no_tests_warned:
                    logger.warning("reward code_tests: a row has no test cases (%s); such rows abstain (logged "
                                   "once)", tests)
                    self._no_tests_warned = True
                verdicts.append(Verdict(None, f"abstained: {tests}"))
                continue
            language = tests.language or self.language
            fences = _fences(language)
            code, how = extract_code(text if isinstance(text, str) else "", fences, self.extract,
                                     _python_compiles if language.lower().startswith("py") else None)
            if code is None or not code.strip():
                verdicts.append(Verdict(0.0, f"no program: {how}: 0", tests=tests.source))
                continue
            verdicts.append(Verdict(0.0, "", program=code, extracted_by=how, tests=tests.source,
                                    cases=[{"case": c.name or str(j), "mode": c.mode} for j, c in enumerate(tests.cases)]))
            jobs += [(i, j, c, language, code) for j, c in enumerate(tests.cases)]
        if jobs:
            self._run(jobs, verdicts, budget - (time.monotonic() - start) - MARGIN)
        for v in verdicts:
            if v.program is not None:
                self._score(v)
        return verdicts

    def _run(self, jobs: List[Tuple[int, int, Case, str, str]], verdicts: List[Verdict], deadline: float) -> None:
        from ..sandbox.runners import get_runner

        programs: List[sb.Program] = []
        nonces: List[Optional[str]] = []
        unique: Dict[Tuple[str, str, str], int] = {}       # identical program + case: run once
        slot_of: List[int] = []
        groups: List[int] = []
        for i, j, case, language, code in jobs:
            key = (language, code, json.dumps([case.mode, case.stdin, case.args, case.fn, case.spec], default=str))
            if key in unique:
                slot_of.append(unique[key])
                continue
            nonce = None
            try:
                if case.mode == "stdio":
                    prog = sb.Program(code, language, case.stdin)
                else:
                    nonce = secrets.token_hex(16)
                    spec = {"mode": "call", "fn": case.fn, "args": case.args} if case.mode == "call" else \
                        {"mode": "assert", "plain": self.plain_returns, **(case.spec or {})}
                    prog = sb.Program(get_runner(language).harness(code, spec), language, nonce + "\n")
            except Exception as exc:  # an unknown language, a runner without a harness
                prog = sb.Program("", f"unsupported: {exc}")
            unique[key] = len(programs)
            slot_of.append(len(programs))
            programs.append(prog)
            nonces.append(nonce)
            groups.append(i)
        runnable = [k for k, p in enumerate(programs) if not p.language.startswith("unsupported: ")]
        results: List[sb.RunResult] = [sb.RunResult(sb.SANDBOX_ERROR, message=p.language[len("unsupported: "):])
                                       for p in programs]
        concurrency = self.concurrency or (None if self.backend == "local" else HTTP_CONCURRENCY)
        got = self.sandbox().run_many([programs[k] for k in runnable], self.limits(), max(0.0, deadline),
                                      concurrency, [groups[k] for k in runnable])
        for k, r in zip(runnable, got):
            results[k] = r
        for (i, j, case, _, _), slot in zip(jobs, slot_of):
            verdicts[i].cases[j].update(self._case_verdict(case, results[slot], nonces[slot]))

    def _case_verdict(self, case: Case, r: sb.RunResult, nonce: Optional[str]) -> Dict[str, Any]:
        out: Dict[str, Any] = {"seconds": round(r.seconds, 3)}
        if case.mode == "stdio":
            out["expected"] = _short(case.expected)
        elif case.mode == "call":
            out["expected"] = _short(case.expected)
            out["call"] = _short(f"{case.fn}(*{json.dumps(case.args, default=repr)})")
        if r.status != sb.OK:
            outcome = {sb.ERROR: "runtime_error", sb.TIMEOUT: "timeout", sb.KILLED: "killed",
                       sb.OUTPUT_LIMIT: "output_limit", sb.NOT_RUN: "not_run (deadline)",
                       sb.SANDBOX_ERROR: "sandbox_error"}.get(r.status, r.status)
            out.update(outcome=outcome, got=_short(r.stdout), stderr=_short(r.stderr[-2000:]), message=r.message)
            return out
        if case.mode == "stdio":
            ok = same_output(r.stdout, case.expected if isinstance(case.expected, str) else str(case.expected),
                             self.float_tol)
            out.update(outcome=PASSED if ok else "wrong_answer", got=_short(r.stdout))
            return out
        reported = _parse(r.stdout, nonce or "")
        if reported is None:
            out.update(outcome="no_result", got=_short(r.stdout), stderr=_short(r.stderr[-2000:]),
                       message="exited without the harness's completion line (sys.exit / os._exit before the end?)")
            return out
        if case.mode == "call":
            try:
                value = json.loads(reported)
            except ValueError:
                value = reported
            ok = same_value(value, case.expected, self.float_tol)
            out.update(outcome=PASSED if ok else "wrong_answer", got=_short(value))
            return out
        out.update(outcome=PASSED if reported == "ok" else "no_result")
        return out

    def _score(self, v: Verdict) -> None:
        outcomes = [c.get("outcome") for c in v.cases]
        total = len(outcomes)
        passed = outcomes.count(PASSED)
        if total and outcomes.count("sandbox_error") == total:
            v.score = None
            v.reason = f"abstained: the sandbox failed on every case ({v.cases[0].get('message', '')})"
            return
        if self.mode == "all":
            v.score = 1.0 if passed == total else 0.0
        else:
            v.score = passed / total if total else 0.0
        failing = sorted({o for o in outcomes if o != PASSED})
        v.reason = (f"{passed}/{total} cases passed" + (f" ({', '.join(failing)})" if failing else "")
                    + (f", mode=all: {v.score:g}" if self.mode == "all" else f": {v.score:g}"))

    def explain(self, completion: str, **row: Any) -> dict:
        v = self.evaluate([completion], [row])[0]
        out = {"reward": self.name, "score": v.score, "reason": v.reason, "extracted": v.program,
               "extracted_by": v.extracted_by, "tests": v.tests, "cases": v.cases}
        if v.program is not None:
            out["extracted"] = _short(v.program, 2000)
        return out


def _fences(language: str) -> Sequence[str]:
    from ..sandbox.runners import fences_of

    return fences_of(language)


def _parse(stdout: str, nonce: str) -> Optional[str]:
    from ..sandbox.harness import parse

    return parse(stdout, nonce) if nonce else None


__all__ = ["CodeTests", "Verdict"]
