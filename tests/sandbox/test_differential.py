"""code_tests against the peers' own scoring rules on >= 200 (program, test set) pairs with known verdicts:
correct, wrong answer, runtime error, timeout, and partial passes (wrong, crashing or hanging on one case),
in open-r1 (``verification_info``), verl/PRIME (``ground_truth``, stdin and ``fn_name``) and LiveCodeBench
(``public_test_cases`` / ``private_test_cases``, stdin and functional) rows.

The expected score of each pair is computed here by the peer's rule (``differential.py`` names each reference
and restates it), running the program the peer's way without a sandbox; code_tests runs it in the real
local sandbox. Where the peers differ from each other (and code_tests from one of them) the fixture leaves the
pair out of that peer's set and the docs say so (docs/sandbox.md, "Differences from the peers"):

- open-r1 scores a whole completion 0 when one case times out (code_tests scores the other cases): no
  partial-timeout pairs in the open-r1 set; open-r1 compares lines with ``zip`` (a missing line passes): no
  missing-line pairs there;
- APPS/verl and LiveCodeBench run the program in-process and ignore ``sys.exit(3)`` after a correct output
  (code_tests, open-r1 and sandbox_fusion fail a non-zero exit): that variant is in the open-r1 set only.
"""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from swift_ext.rewards import build

from . import differential as d

ORACLE_TIMEOUT = 2.0
CASE_TIMEOUT = 1.5
SPEC = f"code_tests:case_timeout={CASE_TIMEOUT},timeout=120,concurrency=16,extract=fence"

OPENR1_SKIP = {"partial_timeout", "missing_line"}
APPS_SKIP = {"exit_nonzero_after_output"}
VERL_FN_PROBLEMS = ["add", "reverse", "maximum", "fib", "sort", "words"]
LCB_PROBLEMS = ["add", "sort", "words"]


def pairs():
    """[(format, problem, style, variant, completion, row)]"""
    out = []
    for p in d.PROBLEMS:
        for v, code in d.variants(p, "stdin").items():
            if v not in OPENR1_SKIP:
                out.append(("open-r1", p, "stdin", v, d.completion(code), d.openr1_row(p)))
            if v not in APPS_SKIP:
                out.append(("verl", p, "stdin", v, d.completion(code), d.verl_row(p, "stdin")))
                if p in LCB_PROBLEMS:
                    out.append(("livecodebench", p, "stdin", v, d.completion(code), d.lcb_row(p, "stdin")))
        for v, code in d.variants(p, "fn").items():
            if p in VERL_FN_PROBLEMS:
                out.append(("verl", p, "fn", v, d.completion(code), d.verl_row(p, "fn")))
            if p in LCB_PROBLEMS:
                out.append(("livecodebench", p, "fn", v, d.completion(code), d.lcb_row(p, "fn")))
    return out


PAIRS = pairs()


def oracle(pair) -> float:
    fmt, _, _, _, text, row = pair
    code = d.openr1_extract(text)
    if fmt == "open-r1":
        return d.openr1_score(code, row["verification_info"]["test_cases"], ORACLE_TIMEOUT)
    if fmt == "verl":       # in-process with signal.alarm per case, as APPS runs it (whole seconds)
        return d.verl_score(code, json.loads(row["reward_model"]["ground_truth"]), 1)
    return 1.0 if all(d.lcb_cases(code, row, 1)) else 0.0      # LiveCodeBench pass@1


@pytest.fixture(scope="module")
def verdicts():
    with ThreadPoolExecutor(16) as ex:
        expected = list(ex.map(oracle, PAIRS))
    got = [None] * len(PAIRS)
    details = [None] * len(PAIRS)
    for fmt, spec in (("open-r1", SPEC + ",float_tol=0"), ("verl", SPEC), ("livecodebench", SPEC + ",mode=all")):
        idx = [i for i, p in enumerate(PAIRS) if p[0] == fmt]
        reward = build(spec)
        rows = [PAIRS[i][5] for i in idx]
        keys = sorted({k for r in rows for k in r})
        scores = reward([PAIRS[i][4] for i in idx], **{k: [r.get(k) for r in rows] for k in keys})
        for i, s, v in zip(idx, scores, reward.last_details):
            got[i], details[i] = s, v
        reward.sandbox().close()
    return expected, got, details


def test_fixture_is_big_and_covers_every_verdict():
    assert len(PAIRS) >= 200
    variants = {p[3] for p in PAIRS}
    assert {"correct", "wrong", "runtime_error", "timeout", "partial_wrong", "partial_error",
            "partial_timeout"} <= variants
    assert {p[0] for p in PAIRS} == {"open-r1", "verl", "livecodebench"}
    assert {(p[0], p[2]) for p in PAIRS} >= {("verl", "fn"), ("livecodebench", "fn"), ("livecodebench", "stdin")}


def test_code_tests_agrees_with_the_peers_on_every_pair(verdicts):
    expected, got, details = verdicts
    wrong = [(p[:4], e, g, details[i].reason) for i, (p, e, g) in enumerate(zip(PAIRS, expected, got))
             if g is None or abs(e - g) > 1e-9]
    assert not wrong, wrong


def test_the_fixture_has_known_verdicts(verdicts):
    """The references themselves give what each variant is built to give (the fixture is what it says)."""
    expected, _, _ = verdicts
    by_variant = {}
    for p, e in zip(PAIRS, expected):
        by_variant.setdefault((p[0], p[3]), set()).add(round(e, 6))
    assert by_variant[("open-r1", "correct")] == {1.0} and by_variant[("verl", "correct")] == {1.0}
    for fmt in ("open-r1", "verl", "livecodebench"):
        assert by_variant[(fmt, "wrong")] == {0.0} and by_variant[(fmt, "runtime_error")] == {0.0}
        assert by_variant[(fmt, "timeout")] == {0.0}
    assert by_variant[("verl", "partial_wrong")] == {round(2 / 3, 6)}
    assert by_variant[("verl", "partial_timeout")] == {round(2 / 3, 6)}
    assert by_variant[("open-r1", "partial_error")] == {round(2 / 3, 6)}
    assert by_variant[("livecodebench", "partial_wrong")] == {0.0}
