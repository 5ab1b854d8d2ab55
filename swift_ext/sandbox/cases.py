"""Test cases read from a dataset row, in the formats public code datasets use.

==========================  ===========================================================================
format                      what the row holds
==========================  ===========================================================================
``code_tests``              swift-ext's own ``tests`` column (what ``swift-ext convert`` writes):
                            ``{"format": "code_tests", "language", "cases": [...]}``
``open-r1``                 ``verification_info``: ``{"language", "test_cases": [{"input", "output",
                            "type": "stdin_stdout"}]}`` (open-r1 verifiable-coding-problems)
``verl``                    ``ground_truth`` / ``reward_model.ground_truth`` / ``input_output`` (APPS, TACO,
                            PRIME, verl): ``{"inputs", "outputs", "fn_name"?}``; with ``fn_name`` each input is
                            the call's arguments (a list, or one JSON value per line) and each output a JSON
                            value; ``{"assert_case": [...]}`` (verl sandbox_fusion) too
``livecodebench``           ``public_test_cases`` / ``private_test_cases`` (JSON, or LiveCodeBench's compressed
                            form), each ``{"input", "output", "testtype": "stdin" | "functional"}``; the function
                            name from ``metadata.func_name``
``humaneval``               ``test`` (code defining ``check(candidate)``) + ``entry_point``
``mbpp``                    ``test_list`` (assert statements) + ``test_setup_code``
``pytest``                  ``test`` (KodCode): a test file with ``from solution import ...`` and ``test_*``
                            functions, each a case (``pytest.mark.parametrize`` expanded)
==========================  ===========================================================================

Every JSON column may also be a JSON string. :func:`read_tests` raises :class:`TestsError` saying why a row
has no usable tests.

>>> t = read_tests({"verification_info": {"language": "python", "test_cases": [
...     {"input": "1 2", "output": "3", "type": "stdin_stdout"}]}})
>>> t.source, t.language, t.cases[0].mode, t.cases[0].expected
('open-r1', 'python', 'stdio', '3')
"""

from __future__ import annotations

import ast
import base64
import io
import json
import pickle
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from ..errors import SwiftExtError

#: columns searched, in order, when ``tests_key=auto``
AUTO_KEYS = ("tests", "verification_info", "ground_truth", "reward_model", "input_output", "public_test_cases",
             "test_list", "test", "solution")
CANONICAL = "code_tests"


class TestsError(SwiftExtError, ValueError):
    """A row holds no test cases swift-ext can read (the message says why)."""

    __test__ = False  # not a pytest class


@dataclass
class Case:
    """One test case. ``mode``: ``stdio`` (``stdin`` -> ``expected`` text), ``call`` (``args`` -> ``expected``
    value, calling ``fn``), ``assert`` (``spec`` for the harness: ``setup``, ``test``, ``call``, ``separate``)."""

    __test__ = False

    mode: str
    stdin: str = ""
    expected: Any = None
    args: Optional[List[Any]] = None
    fn: Optional[str] = None
    spec: Optional[Dict[str, Any]] = None
    name: str = ""


@dataclass
class TestSet:
    """The cases of one row, the language they are for (None: the reward's) and where they came from."""

    __test__ = False

    cases: List[Case]
    language: Optional[str] = None
    source: str = ""
    notes: List[str] = field(default_factory=list)

    def to_json(self) -> Dict[str, Any]:
        """swift-ext's own ``tests`` column (read back by :func:`read_tests`)."""
        cases = [{k: v for k, v in asdict(c).items() if v not in (None, "", [])} for c in self.cases]
        return {"format": CANONICAL, "language": self.language, "source": self.source, "cases": cases}


def _json(value: Any, what: str) -> Any:
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in "[{":
            try:
                return json.loads(text)
            except ValueError as exc:
                raise TestsError(f"{what} is not valid JSON ({exc})") from None
    return value


class _StrOnly(pickle.Unpickler):
    """LiveCodeBench pickles a JSON string; refuse anything that is not plain data (no code runs)."""

    def find_class(self, module, name):
        raise TestsError(f"compressed test cases hold a {module}.{name} object; only plain data is read")


def _lcb_cases(value: Any, what: str) -> List[Dict[str, Any]]:
    if isinstance(value, str) and value.strip() and value.strip()[0] not in "[{":
        try:
            raw = zlib.decompress(base64.b64decode(value.strip().encode("ascii")))
            value = _StrOnly(io.BytesIO(raw)).load()
        except TestsError:
            raise
        except Exception as exc:
            raise TestsError(f"{what}: neither JSON nor LiveCodeBench's compressed form ({exc})") from None
    value = _json(value, what)
    if not isinstance(value, list):
        raise TestsError(f"{what} must be a list of test cases, got {type(value).__name__}")
    return value


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return "" if value is None else str(value)


def _args(value: Any) -> List[Any]:
    """A call's arguments: a list as it is; a string holds one JSON value per line (LiveCodeBench, PRIME)."""
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        try:
            return [json.loads(line) for line in value.split("\n") if line.strip()]
        except ValueError as exc:
            raise TestsError(f"call arguments {value[:80]!r} are not JSON lines ({exc})") from None
    return [value]


def _value(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


# -- the formats ------------------------------------------------------------------------------------
def from_canonical(obj: Dict[str, Any]) -> TestSet:
    cases = []
    for i, c in enumerate(obj.get("cases") or []):
        if not isinstance(c, dict) or c.get("mode") not in ("stdio", "call", "assert"):
            raise TestsError(f"tests.cases[{i}] is not a stdio / call / assert case")
        cases.append(Case(**{k: v for k, v in c.items() if k in Case.__dataclass_fields__}))
    return TestSet(cases, obj.get("language"), obj.get("source") or CANONICAL)


def from_open_r1(info: Dict[str, Any]) -> TestSet:
    cases = []
    for i, c in enumerate(info.get("test_cases") or []):
        if not isinstance(c, dict) or "input" not in c or "output" not in c:
            raise TestsError(f"verification_info.test_cases[{i}] lacks input/output")
        kind = c.get("type", "stdin_stdout")
        if kind == "stdin_stdout":
            cases.append(Case("stdio", stdin=_text(c["input"]), expected=_text(c["output"]), name=f"case {i}"))
        elif kind == "function_call" and c.get("fn_name"):
            cases.append(Case("call", args=_args(c["input"]), expected=_value(c["output"]), fn=c["fn_name"],
                              name=f"case {i}"))
        else:
            raise TestsError(f"verification_info.test_cases[{i}] has type {kind!r} (stdin_stdout is read)")
    return TestSet(cases, info.get("language"), "open-r1")


def from_verl(gt: Dict[str, Any], what: str = "ground_truth") -> TestSet:
    if isinstance(gt.get("assert_case"), list):
        cases = [Case("assert", spec={"call": str(a)}, name=f"assert {i}") for i, a in enumerate(gt["assert_case"])]
        return TestSet(cases, None, "verl")
    inputs, outputs = gt.get("inputs"), gt.get("outputs")
    if not isinstance(inputs, list) or not isinstance(outputs, list):
        raise TestsError(f"{what} has no inputs/outputs lists")
    if len(inputs) != len(outputs):
        raise TestsError(f"{what} has {len(inputs)} inputs but {len(outputs)} outputs")
    fn = gt.get("fn_name")
    if fn:
        cases = [Case("call", args=_args(a), expected=_value(o), fn=str(fn), name=f"case {i}")
                 for i, (a, o) in enumerate(zip(inputs, outputs))]
    else:
        cases = [Case("stdio", stdin=_text(a), expected=_text(o), name=f"case {i}")
                 for i, (a, o) in enumerate(zip(inputs, outputs))]
    return TestSet(cases, None, "verl")


def from_livecodebench(row: Dict[str, Any]) -> TestSet:
    meta = _json(row.get("metadata") or {}, "metadata")
    fn = meta.get("func_name") if isinstance(meta, dict) else None
    raw = []
    for key in ("public_test_cases", "private_test_cases"):
        if row.get(key):
            raw += _lcb_cases(row[key], key)
    cases = []
    for i, c in enumerate(raw):
        if not isinstance(c, dict) or "input" not in c or "output" not in c:
            raise TestsError(f"test case {i} lacks input/output")
        if c.get("testtype", "stdin") == "functional":
            if not fn:
                raise TestsError("functional test cases but no metadata.func_name")
            cases.append(Case("call", args=_args(c["input"]), expected=_value(c["output"]), fn=fn, name=f"case {i}"))
        else:
            cases.append(Case("stdio", stdin=_text(c["input"]), expected=_text(c["output"]), name=f"case {i}"))
    return TestSet(cases, None, "livecodebench")


def _test_functions(code: str) -> List[str]:
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        raise TestsError(f"the test code does not parse ({exc.msg}, line {exc.lineno})") from None
    return [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.name.startswith("test")]


def from_test_code(code: str, entry_point: Optional[str], setup: str = "") -> TestSet:
    """HumanEval (``check`` + entry point) or a pytest-style file (each ``test_*`` function a case)."""
    names = _test_functions(code)
    if entry_point and "def check(" in code:
        spec = {"setup": setup, "test": code, "call": f"check({entry_point})"}
        return TestSet([Case("assert", spec=spec, name=f"check({entry_point})")], None, "humaneval")
    if names:
        cases = [Case("assert", spec={"setup": setup, "test": code, "call": n, "separate": True, "pytest_shim": True},
                      name=n) for n in names]
        return TestSet(cases, None, "pytest")
    if entry_point:
        raise TestsError("the test code defines no check(candidate) for the entry point")
    raise TestsError("the test code defines neither check(candidate) (with entry_point) nor test_* functions")


def from_mbpp(row: Dict[str, Any], key: str = "test_list") -> TestSet:
    tests = _json(row.get(key), key)
    if not isinstance(tests, list) or not all(isinstance(t, str) for t in tests):
        raise TestsError(f"{key} must be a list of assert statements")
    setup = "\n".join(filter(None, [_text(row.get("test_imports")) if row.get("test_imports") else "",
                                    row.get("test_setup_code") or ""]))
    cases = [Case("assert", spec={"setup": setup, "call": t}, name=f"assert {i}") for i, t in enumerate(tests)]
    return TestSet(cases, None, "mbpp")


# -- dispatch ---------------------------------------------------------------------------------------
def _from_value(key: str, value: Any, row: Dict[str, Any]) -> Optional[TestSet]:
    """Test cases in column ``key`` (None when the column holds nothing of a known shape)."""
    if value is None:
        return None
    if key in ("public_test_cases", "private_test_cases"):
        return from_livecodebench(row)
    if key == "reward_model" and isinstance(value, dict):
        value, key = value.get("ground_truth"), "reward_model.ground_truth"
    if key in ("test_list", "challenge_test_list"):
        return from_mbpp(row, key)
    obj = _json(value, key)
    if isinstance(obj, dict):
        if obj.get("format") == CANONICAL:
            return from_canonical(obj)
        if "test_cases" in obj:
            return from_open_r1(obj)
        if ("inputs" in obj and "outputs" in obj) or "assert_case" in obj:
            return from_verl(obj, key)
        return None
    if isinstance(obj, list) and obj and all(isinstance(t, dict) and "input" in t and "output" in t for t in obj):
        return from_livecodebench({**row, "public_test_cases": obj, "private_test_cases": None})
    if isinstance(obj, list) and obj and all(isinstance(t, str) and t.lstrip().startswith("assert") for t in obj):
        return from_mbpp({**row, key: obj}, key)
    if isinstance(obj, str) and key != "solution" and ("def check(" in obj or "def test" in obj):
        return from_test_code(obj, row.get("entry_point"), row.get("test_setup_code") or "")
    return None


def read_tests(row: Dict[str, Any], key: str = "auto") -> TestSet:
    """The test cases of a dataset row, from column ``key`` (``auto``: the first of :data:`AUTO_KEYS` holding
    a known format). Raises :class:`TestsError` saying why when there are none."""
    keys: Tuple[str, ...] = AUTO_KEYS if key == "auto" else (key,)
    for k in keys:
        if k not in row or row[k] is None:
            continue
        got = _from_value(k, row[k], row)
        if got is not None:
            if not got.cases:
                raise TestsError(f"column {k!r} ({got.source}) holds no test cases")
            return got
        if key != "auto":
            raise TestsError(f"column {k!r} holds no test cases in a known format (open-r1 verification_info, "
                             f"verl inputs/outputs, LiveCodeBench, HumanEval, MBPP, pytest)")
    if key != "auto":
        raise TestsError(f"the row has no column {key!r}")
    present = [k for k in AUTO_KEYS if row.get(k) is not None]
    raise TestsError("no test cases in the row (looked in " + ", ".join(AUTO_KEYS) + "; present: "
                     + (", ".join(present) or "none") + ")")


__all__ = ["Case", "TestSet", "TestsError", "read_tests", "AUTO_KEYS"]
