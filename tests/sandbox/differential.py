"""The differential fixture: (program, test set) pairs with known verdicts, and the peers' own scoring rules
re-stated from their source (the references named below), run here without any sandbox, as the peers' own
local modes run them.

References (read at these commits; the rules are restated, not copied):

- open-r1 ``src/open_r1/rewards.py::code_reward`` (huggingface/open-r1 1416fa0): its ``evaluate_code`` script
  runs ``python3 -c code`` per test case; a non-zero exit fails the case; ``stdout.strip()`` and the expected
  output are split into lines and compared pairwise (``zip``) after ``strip()``; the score is passed / total;
  a ``TimeoutExpired`` escapes the script, whose missing result scores the whole completion 0.0.
  ``binary_code_reward``: 1.0 when that score is > 0.99. The program is the last ```` ```python\\n ```` block.
- verl ``verl/utils/reward_score/prime_code/`` (volcengine/verl b178a3c), ``compute_score(continuous=True)``:
  1.0 when every case passes; else each of the first 10 cases is run alone and the score is passed / run.
  A case (``testing_util.run_test``, the APPS rules): call-based, ``fn(*[json.loads(l) for l in
  input.split("\\n")])`` (a tuple read as a list) equals ``json.loads(output)`` or its first element; stdin,
  the stripped output equals the stripped expected text (lines joined as printed or each stripped), or the
  output's lines equal the expected's stripped non-empty lines (blank output lines dropped), or every line
  pair is a number and ``np.allclose`` holds (rtol 1e-5, atol 1e-8). A crash or timeout fails the case.
- LiveCodeBench ``lcb_runner/evaluation/testing_util.py`` (LiveCodeBench/LiveCodeBench 28fef95): stdin,
  ``strip()`` then lines each stripped, the same number of lines, each equal as text or as a list of
  ``Decimal`` tokens; functional, ``fn(*[json.loads(l) for l in input.split("\\n")])`` (a tuple read as a
  list) ``== json.loads(output)``, ``Solution().fn`` when the code has ``class Solution``. LiveCodeBench reports
  pass@1 (every case passes); per case the same rules give the fraction.
"""

from __future__ import annotations

import base64
import json
import math
import pickle
import subprocess
import sys
from decimal import Decimal, InvalidOperation
from typing import Any, Dict, List, Optional, Tuple

# -- the problems ---------------------------------------------------------------------------------------
# name: (stdin program, function name, function program, cases [(stdin, stdout, args, value)])
# The third case of each problem is the "large" one the partial variants fail on.
PROBLEMS: Dict[str, Tuple[str, str, str, List[Tuple[str, str, list, Any]]]] = {
    "add": ("a, b = map(int, input().split())\nprint(a + b)", "add", "def add(a, b):\n    return a + b",
            [("1 2\n", "3\n", [1, 2], 3), ("-5 5\n", "0\n", [-5, 5], 0), ("1000 2345\n", "3345\n", [1000, 2345], 3345)]),
    "reverse": ("print(input()[::-1])", "rev", "def rev(s):\n    return s[::-1]",
                [("abc\n", "cba\n", ["abc"], "cba"), ("x\n", "x\n", ["x"], "x"),
                 ("racecars\n", "sracecar\n", ["racecars"], "sracecar")]),
    "vowels": ("s = input()\nprint(sum(c in 'aeiou' for c in s))", "vowels",
               "def vowels(s):\n    return sum(c in 'aeiou' for c in s)",
               [("hello\n", "2\n", ["hello"], 2), ("xyz\n", "0\n", ["xyz"], 0), ("aeiouaeiou\n", "10\n", ["aeiouaeiou"], 10)]),
    "maximum": ("input()\nprint(max(map(int, input().split())))", "max_of", "def max_of(xs):\n    return max(xs)",
                [("3\n1 5 2\n", "5\n", [[1, 5, 2]], 5), ("1\n-7\n", "-7\n", [[-7]], -7),
                 ("6\n4 8 15 16 23 42\n", "42\n", [[4, 8, 15, 16, 23, 42]], 42)]),
    "fib": ("n = int(input())\na, b = 0, 1\nfor _ in range(n):\n    a, b = b, a + b\nprint(a)", "fib",
            "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a",
            [("1\n", "1\n", [1], 1), ("10\n", "55\n", [10], 55), ("30\n", "832040\n", [30], 832040)]),
    "sort": ("xs = sorted(map(int, input().split()))\nprint(' '.join(map(str, xs)))", "sort_list",
             "def sort_list(xs):\n    return sorted(xs)",
             [("3 1 2\n", "1 2 3\n", [[3, 1, 2]], [1, 2, 3]), ("5\n", "5\n", [[5]], [5]),
              ("9 -1 4 4 0\n", "-1 0 4 4 9\n", [[9, -1, 4, 4, 0]], [-1, 0, 4, 4, 9])]),
    "mean": ("xs = list(map(int, input().split()))\nprint(sum(xs) / len(xs))", "mean",
             "def mean(xs):\n    return sum(xs) / len(xs)",
             [("1 2\n", "1.5\n", [[1, 2]], 1.5), ("4\n", "4.0\n", [[4]], 4.0), ("1 2 3 4\n", "2.5\n", [[1, 2, 3, 4]], 2.5)]),
    "palindrome": ("s = input()\nprint('YES' if s == s[::-1] else 'NO')", "is_pal", "def is_pal(s):\n    return s == s[::-1]",
                   [("abba\n", "YES\n", ["abba"], True), ("abc\n", "NO\n", ["abc"], False),
                    ("abcdedcba\n", "YES\n", ["abcdedcba"], True)]),
    "words": ("for w in input().split():\n    print(w)", "words", "def words(s):\n    return s.split()",
              [("a b\n", "a\nb\n", ["a b"], ["a", "b"]), ("one\n", "one\n", ["one"], ["one"]),
               ("x y z w\n", "x\ny\nz\nw\n", ["x y z w"], ["x", "y", "z", "w"])]),
}
MULTI_LINE = {"words"}
FLOATS = {"mean"}


def _stdin_variant(correct: str, large: str, action: str) -> str:
    """A program that behaves as ``correct`` except on the large case's input, where it does ``action``."""
    return (f"import sys, io, time\n_data = sys.stdin.read()\nif _data.strip() == {large.strip()!r}:\n"
            f"    {action}\nelse:\n    sys.stdin = io.StringIO(_data)\n    exec({correct!r}, {{'__name__': '__main__'}})\n")


def _fn_variant(correct: str, fn: str, large_args: list, action: str) -> str:
    return (f"{correct}\n_orig = {fn}\nimport time\ndef {fn}(*args):\n    if list(args) == {large_args!r}:\n"
            f"        {action}\n    return _orig(*args)\n")


WRONG_STDIN = "print('wrong answer')"
WRONG_FN = "return 'wrong answer'"


def variants(problem: str, style: str) -> Dict[str, str]:
    """name -> program for one problem in one style (``stdin`` or ``fn``)."""
    stdin_code, fn, fn_code, cases = PROBLEMS[problem]
    large_in, _, large_args, _ = cases[2]
    if style == "stdin":
        out = {
            "correct": stdin_code,
            "wrong": "import sys\nsys.stdin.read()\nprint('wrong answer')",
            "runtime_error": "raise RuntimeError('boom')",
            "timeout": "import time\ntime.sleep(60)",
            "partial_wrong": _stdin_variant(stdin_code, large_in, WRONG_STDIN),
            "partial_error": _stdin_variant(stdin_code, large_in, "raise ValueError('large')"),
            "partial_timeout": _stdin_variant(stdin_code, large_in, "time.sleep(60)"),
            "exit_nonzero_after_output": stdin_code + "\nimport sys\nsys.exit(3)",
            "trailing_spaces": stdin_code.replace("print(", "print(' ',") if "print(" in stdin_code else stdin_code,
        }
        if problem in MULTI_LINE:
            out["missing_line"] = "for w in input().split()[:1]:\n    print(w)"
        if problem in FLOATS:
            out["float_format"] = "xs = list(map(int, input().split()))\nprint('%.4f' % (sum(xs) / len(xs)))"
        return out
    return {
        "correct": fn_code,
        "wrong": f"def {fn}(*args):\n    return 'wrong answer'",
        "runtime_error": f"def {fn}(*args):\n    raise RuntimeError('boom')",
        "timeout": f"import time\ndef {fn}(*args):\n    time.sleep(60)",
        "partial_wrong": _fn_variant(fn_code, fn, large_args, WRONG_FN),
        "partial_error": _fn_variant(fn_code, fn, large_args, "raise ValueError('large')"),
        "partial_timeout": _fn_variant(fn_code, fn, large_args, "time.sleep(60)"),
        "tuple_result": fn_code + f"\n_t = {fn}\ndef {fn}(*args):\n    r = _t(*args)\n    return tuple(r) "
                                  f"if isinstance(r, list) else r",
        "solution_class": "class Solution:\n    def " + fn + "(self, *args):\n        return _impl(*args)\n"
                          + fn_code.replace(f"def {fn}(", "def _impl("),
    }


def completion(code: str) -> str:
    return f"Here is my program.\n```python\n{code}\n```\nIt reads the input and prints the answer."


# -- the rows, one builder per format --------------------------------------------------------------------
def openr1_row(problem: str) -> Dict[str, Any]:
    cases = PROBLEMS[problem][3]
    return {"verification_info": {"language": "python", "test_cases": [
        {"input": i, "output": o, "type": "stdin_stdout"} for i, o, _, _ in cases]}}


def verl_row(problem: str, style: str) -> Dict[str, Any]:
    _, fn, _, cases = PROBLEMS[problem]
    if style == "stdin":
        gt = {"inputs": [i for i, _, _, _ in cases], "outputs": [o for _, o, _, _ in cases]}
    else:
        gt = {"fn_name": fn, "inputs": ["\n".join(json.dumps(a) for a in args) for _, _, args, _ in cases],
              "outputs": [json.dumps(v) for _, _, _, v in cases]}
    return {"reward_model": {"ground_truth": json.dumps(gt), "style": "rule"}}


def lcb_row(problem: str, style: str) -> Dict[str, Any]:
    _, fn, _, cases = PROBLEMS[problem]
    if style == "stdin":
        tests = [{"input": i, "output": o, "testtype": "stdin"} for i, o, _, _ in cases]
        meta: Dict[str, Any] = {}
    else:
        tests = [{"input": "\n".join(json.dumps(a) for a in args), "output": json.dumps(v), "testtype": "functional"}
                 for _, _, args, v in cases]
        meta = {"func_name": fn}
    return {"public_test_cases": json.dumps(tests[:1]), "private_test_cases": json.dumps(tests[1:]),
            "metadata": json.dumps(meta)}


# -- running programs the peers' way (no sandbox) --------------------------------------------------------
TIMEOUT = "timeout"


_IN_PROCESS = """
import sys
try:
    exec(compile(CODE, "sol", "exec"), {"__name__": "__main__"})
except SystemExit:
    pass
"""


def run_plain(code: str, stdin: str, timeout: float, in_process: bool = False) -> Any:
    """(returncode, stdout) of ``python -c code`` fed ``stdin``, or TIMEOUT (open-r1's subprocess.run);
    ``in_process``: the code exec'd with ``SystemExit`` caught, as APPS and LiveCodeBench run it."""
    if in_process:
        code = f"CODE = {code!r}\n" + _IN_PROCESS
    try:
        p = subprocess.run([sys.executable, "-c", code], input=stdin, text=True, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return TIMEOUT
    return p.returncode, p.stdout


_BATCH = """
import base64, io, json, pickle, signal, sys

class _Alarm(BaseException):
    pass

def _alarm(*_):
    raise _Alarm()

signal.signal(signal.SIGALRM, _alarm)
out = []
real_stdin, real_stdout = sys.stdin, sys.stdout
for case in CASES:
    signal.alarm(TIMEOUT)
    try:
        ns = {"__name__": "__main__"}
        if "fn" in case:
            exec(compile(CODE, "sol", "exec"), ns)
            target = ns["Solution"]() if "class Solution" in CODE else None
            fn = getattr(target, case["fn"]) if target is not None else ns[case["fn"]]
            out.append(("ok", fn(*case["args"])))
        else:
            sys.stdin, sys.stdout = io.StringIO(case["stdin"]), io.StringIO()
            try:
                exec(compile(CODE, "sol", "exec"), ns)
            except SystemExit:
                pass
            out.append(("ok", sys.stdout.getvalue()))
    except _Alarm:
        out.append(("timeout", None))
    except BaseException:
        out.append(("error", None))
    finally:
        signal.alarm(0)
        sys.stdin, sys.stdout = real_stdin, real_stdout
sys.stdout.write("\\nRESULT " + base64.b64encode(pickle.dumps(out)).decode())
"""


def run_in_process(code: str, cases: List[Dict[str, Any]], timeout: int) -> List[Tuple[str, Any]]:
    """Every case run in one interpreter the APPS / LiveCodeBench way (exec, stdin and stdout replaced,
    ``SystemExit`` caught, ``signal.alarm`` per case): ``[(status, stdout or value)]``."""
    script = f"CODE = {code!r}\nCASES = {cases!r}\nTIMEOUT = {int(timeout)}\n" + _BATCH
    got = run_plain(script, "", timeout * len(cases) + 10)
    if got == TIMEOUT or "RESULT " not in got[1]:
        return [("error", None)] * len(cases)
    return pickle.loads(base64.b64decode(got[1].rsplit("RESULT ", 1)[1]))


# -- the peers' scoring rules ------------------------------------------------------------------------------
def openr1_extract(text: str) -> str:
    """open-r1 ``extract_code``: the last ```` ```python\\n...``` ```` block, else ''."""
    import re

    found = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    return found[-1] if found else ""


def openr1_score(code: str, test_cases: List[Dict[str, str]], timeout: float) -> float:
    passed = 0
    for case in test_cases:
        got = run_plain(code, case["input"], timeout)
        if got == TIMEOUT:
            return 0.0                               # TimeoutExpired escapes: no result, scored 0.0
        rc, out = got
        if rc != 0:
            continue
        if all(a.strip() == b.strip() for a, b in zip(out.strip().split("\n"), case["output"].split("\n"))):
            passed += 1
    return passed / len(test_cases)


def _int_like(v: Any) -> bool:
    return isinstance(v, int) or (isinstance(v, str) and v.isdigit())


def _allclose(a: List[float], b: List[float]) -> bool:
    return all(abs(x - y) <= 1e-8 + 1e-5 * abs(y) for x, y in zip(a, b))


def apps_stdin_case(printed: str, expected: str) -> bool:
    """The APPS stdin checks of verl prime_code ``run_test`` for one case (the ones that can pass)."""
    output = printed.splitlines()
    stripped = lambda s: s.strip()  # noqa: E731
    if stripped("\n".join(output)) == stripped(expected) or \
            stripped("\n".join(o.strip() for o in output)) == stripped(expected):
        return True
    if output == [expected]:
        return True
    gt = [x.strip() for x in expected.split("\n") if x]
    if output == [gt] or output == gt:
        return True
    output = [o for o in output if o]
    if output == gt:
        return True
    try:
        if len(output) == len(gt) and not all(_int_like(a) and _int_like(b) for a, b in zip(output, gt)):
            if _allclose([float(e) for e in output], [float(e) for e in gt]):
                return True
    except ValueError:
        pass
    return False


def apps_call_case(value: Any, expected_json: str) -> bool:
    expected = json.loads(expected_json)
    if isinstance(value, tuple):
        value = list(value)
    ok = value == expected
    if isinstance(expected, list) and expected:
        ok = ok or value == expected[0]
    try:
        if isinstance(value[0], tuple):
            ok = ok or [list(x) for x in value] == expected[0]
    except (TypeError, IndexError, KeyError):
        pass
    return bool(ok)


def verl_score(code: str, gt: Dict[str, Any], timeout: float) -> float:
    fn = gt.get("fn_name")
    if fn:
        cases = [{"fn": fn, "args": [json.loads(line) for line in i.split("\n")]} for i in gt["inputs"]]
    else:
        cases = [{"stdin": i} for i in gt["inputs"]]
    ran = run_in_process(code, cases, int(timeout))
    results = []
    for (status, value), expected in zip(ran, gt["outputs"]):
        if status != "ok":
            results.append(False)
        else:
            results.append(apps_call_case(value, expected) if fn else apps_stdin_case(value, expected))
    if all(results):
        return 1.0
    first = results[:10]
    return sum(first) / len(first)


def _decimals(line: str) -> Optional[List[Decimal]]:
    try:
        return [Decimal(t) for t in line.split()]
    except InvalidOperation:
        return None


def lcb_stdio_case(printed: str, expected: str) -> bool:
    a = [x.strip() for x in printed.strip().split("\n")]
    b = [x.strip() for x in expected.strip().split("\n")]
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x == y:
            continue
        dx, dy = _decimals(x), _decimals(y)
        if dx is None or dy is None or dx != dy:
            return False
    return True


def lcb_cases(code: str, row: Dict[str, Any], timeout: float) -> List[bool]:
    tests = json.loads(row["public_test_cases"]) + json.loads(row["private_test_cases"])
    fn = json.loads(row["metadata"]).get("func_name")
    cases = [{"fn": fn, "args": [json.loads(line) for line in t["input"].split("\n")]}
             if t["testtype"] == "functional" else {"stdin": t["input"]} for t in tests]
    out = []
    for t, (status, value) in zip(tests, run_in_process(code, cases, int(timeout))):
        if status != "ok":
            out.append(False)
        elif t["testtype"] == "functional":
            out.append((list(value) if isinstance(value, tuple) else value) == json.loads(t["output"]))
        else:
            out.append(lcb_stdio_case(value, t["output"]))
    return out


def isclose(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
