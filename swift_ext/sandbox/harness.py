"""The Python test harness: the program swift-ext runs for call-based and assert-style test cases.

A stdin/stdout case runs the program as it is. A call-based case (``fn_name``) or an assert-style case
(HumanEval ``check``, MBPP asserts, pytest-style test functions) runs this harness, which holds the program's
source as a string and the case as JSON:

1. it reads a random nonce from the first line of standard input (never written to any file) and points
   standard input at ``/dev/null``;
2. it runs the program as the module ``solution`` (``from solution import f`` works), then the case;
3. only when the case finished without any exception (``SystemExit`` and ``KeyboardInterrupt`` included), no
   built-in was replaced and no ``unittest``/``pytest`` helper was redefined by the program, it writes one
   last line ``<nonce> <result>`` straight to file descriptor 1 and ends the process with ``os._exit(0)``.

The parent counts a case as passed only on that exact line (and, for call-based cases, compares the
result itself: the expected value never enters the sandbox). So ``sys.exit(0)``, ``os._exit(0)``,
``raise SystemExit`` before the asserts, killing the harness, patching ``unittest.TestCase.assertEqual``
or returning an object whose ``__eq__`` always says yes (results must be plain data) never pass.
Limitation: the nonce lives in the harness's memory while the program runs; a program that searches the
interpreter's frames for it can forge the line. The sandbox bounds what such a program can do; it does not
make Python's memory private.
"""

from __future__ import annotations

import json
from typing import Any, Dict

#: the harness source; ``{src}`` and ``{spec}`` are Python string literals
TEMPLATE = r'''
import sys as _sys, os as _os, json as _json, types as _types, builtins as _b, traceback as _tb, functools as _ft
_SRC = {src}
_SPEC = {spec}
_write, _exit, _dumps, _getattr, _isinstance, _type = _os.write, _os._exit, _json.dumps, getattr, isinstance, type
_PLAIN = (int, float, str, bool, type(None), bytes, complex)
_USER_FILES = ("solution.py", "<string>")


def _plain(value, depth=0):
    t = _type(value)
    if depth > 100:
        raise TypeError("result nested too deeply")
    if t in _PLAIN:
        return value
    if t in (list, tuple):
        return [_plain(v, depth + 1) for v in value]
    if t in (set, frozenset):
        return sorted((_plain(v, depth + 1) for v in value), key=repr)
    if t is dict:
        return dict((_plain(k, depth + 1) if _type(k) in _PLAIN else _bad(k), _plain(v, depth + 1))
                    for k, v in value.items())
    return _bad(value)


def _bad(value):
    raise TypeError("the program returned a %s; only plain data (numbers, strings, lists, tuples, dicts, sets) "
                    "counts" % _type(value).__name__)


def _guard(fn):
    depth = [0]

    @_ft.wraps(fn)
    def guarded(*args, **kwargs):
        if depth[0]:
            return fn(*args, **kwargs)
        depth[0] = 1
        try:
            out = fn(*args, **kwargs)
        finally:
            depth[0] = 0
        _plain(out)
        return out
    return guarded


def _user_code(obj):
    if not _isinstance(obj, (_types.FunctionType, _types.MethodType, staticmethod, classmethod, property)):
        return False
    if _isinstance(obj, property):
        obj = obj.fget
    code = _getattr(obj, "__code__", None) or _getattr(_getattr(obj, "__func__", None), "__code__", None)
    return _isinstance(code, _types.CodeType) and code.co_filename in _USER_FILES


def _tampered(builtins_before):
    now = vars(_b)
    for key, value in builtins_before.items():
        if now.get(key) is not value:
            return "builtins." + key
    for name in ("unittest", "unittest.case", "pytest", "math", "operator", "json"):
        mod = _sys.modules.get(name)
        if mod is None:
            continue
        for key, value in list(vars(mod).items()):
            if _user_code(value):
                return name + "." + key
            if _isinstance(value, type):
                for k, v in list(vars(value).items()):
                    if _user_code(v):
                        return name + "." + key + "." + k
    return None


class _Raises:
    def __init__(self, kinds, match=None):
        self.kinds, self.match, self.value = kinds, match, None

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        if kind is None:
            raise AssertionError("DID NOT RAISE %r" % (self.kinds,))
        if not issubclass(kind, self.kinds):
            return False
        if self.match is not None:
            import re
            if not re.search(self.match, str(value)):
                raise AssertionError("exception %r does not match %r" % (value, self.match))
        self.value = value
        return True


def _pytest_shim():
    """A small ``pytest`` for test files: raises, approx, mark.parametrize, param, fixture, skip."""
    mod = _types.ModuleType("pytest")

    def raises(kinds, *args, match=None, **kwargs):
        ctx = _Raises(kinds, match)
        if args:
            with ctx:
                args[0](*args[1:], **kwargs)
            return ctx
        return ctx

    class approx:
        def __init__(self, expected, rel=1e-6, abs=1e-12):
            self.expected, self.rel, self.abs = expected, rel, abs

        def _close(self, a, b):
            if _isinstance(b, (list, tuple)):
                return _isinstance(a, (list, tuple)) and len(a) == len(b) and all(map(self._close, a, b))
            if _isinstance(b, dict):
                return _isinstance(a, dict) and a.keys() == b.keys() and all(self._close(a[k], b[k]) for k in b)
            try:
                return a == b or abs(a - b) <= max(self.rel * abs(b), self.abs)
            except TypeError:
                return False

        def __eq__(self, other):
            return self._close(other, self.expected)

    class _Mark:
        def __init__(self, name, args, kwargs):
            self.name, self.args, self.kwargs = name, args, kwargs

    class _MarkGen:
        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)

            def mark(*args, **kwargs):
                if len(args) == 1 and callable(args[0]) and not kwargs and name != "parametrize":
                    return args[0]

                def deco(fn):
                    fn.pytestmark = [_Mark(name, args, kwargs)] + list(_getattr(fn, "pytestmark", []))
                    return fn
                return deco
            return mark

    class _Param:
        def __init__(self, *values, **kwargs):
            self.values = values

    def fixture(*args, **kwargs):
        return args[0] if args and callable(args[0]) else (lambda fn: fn)

    def skip(reason=""):
        raise AssertionError("skipped: " + reason)

    mod.raises, mod.approx, mod.mark, mod.param, mod.fixture, mod.skip = \
        raises, approx, _MarkGen(), _Param, fixture, skip
    return mod


def _run_test_function(fn):
    combos = [{{}}]
    for mark in reversed(_getattr(fn, "pytestmark", []) or []):
        if _getattr(mark, "name", "") != "parametrize":
            continue
        names, values = mark.args[0], mark.args[1]
        names = [n.strip() for n in names.split(",") if n.strip()] if _isinstance(names, str) else list(names)
        rows = []
        for v in values:
            if _type(v).__name__ == "_Param":
                v = v.values if len(names) > 1 else v.values[0]
            rows.append(tuple(v) if len(names) > 1 else (v,))
        combos = [dict(c, **dict(zip(names, row))) for c in combos for row in rows]
    for kwargs in combos:
        fn(**kwargs)


def _case(spec):
    mod = _types.ModuleType("solution")
    mod.__file__ = "solution.py"
    _sys.modules["solution"] = mod
    if spec.get("pytest_shim"):
        _sys.modules["pytest"] = _pytest_shim()
    g = mod.__dict__
    if spec.get("setup"):
        exec(compile(spec["setup"], "setup.py", "exec"), g)
    exec(compile(_SRC, "solution.py", "exec"), g)
    if spec["mode"] == "call":
        name = spec["fn"]
        fn = g.get(name)
        if not callable(fn) and _isinstance(g.get("Solution"), type):
            fn = _getattr(g["Solution"](), name)
        if not callable(fn):
            raise NameError("the program defines no function %r" % name)
        return _dumps(_plain(fn(*spec["args"])))
    if spec.get("plain", True):
        for key, value in list(g.items()):
            if _type(value).__name__ == "function" and _user_code(value):
                g[key] = _guard(value)
    if spec.get("separate"):
        tmod = _types.ModuleType("test_solution")
        tmod.__file__ = "test_solution.py"
        _sys.modules["test_solution"] = tmod
        exec(compile(spec["test"], "test_solution.py", "exec"), tmod.__dict__)
        _run_test_function(tmod.__dict__[spec["call"]])
    else:
        if spec.get("test"):
            exec(compile(spec["test"], "test.py", "exec"), g)
        exec(compile(spec["call"], "case.py", "exec"), g)
    return "ok"


def _main():
    nonce = _sys.stdin.readline().strip()
    null = _os.open(_os.devnull, _os.O_RDONLY)
    _os.dup2(null, 0)
    err = _sys.stderr
    builtins_before = dict(vars(_b))
    try:
        result = _case(_json.loads(_SPEC))
        where = _tampered(builtins_before)
        if where is not None:
            raise AssertionError("the program replaced " + where)
    except BaseException:
        try:
            _tb.print_exc(file=err)
            err.flush()
        finally:
            _exit(1)
    try:
        _sys.stdout.flush()
    except BaseException:
        pass
    _write(1, ("\n%s %s\n" % (nonce, result)).encode("utf-8", "replace"))
    _exit(0)


_main()
'''


def render(source: str, spec: Dict[str, Any]) -> str:
    """The harness for one case: ``source`` is the program, ``spec`` the case (``mode`` ``call`` with ``fn``
    and ``args``, or ``assert`` with ``setup``, ``test``, ``call``, ``separate``, ``plain``, ``pytest_shim``)."""
    return TEMPLATE.format(src=repr(source), spec=repr(json.dumps(spec)))


def parse(stdout: str, nonce: str) -> Any:
    """The result the harness reported (the text after ``<nonce> `` on the last such line), or None."""
    marker = nonce + " "
    found = None
    for line in stdout.splitlines():
        if line.startswith(marker):
            found = line[len(marker):]
    return found


__all__ = ["render", "parse", "TEMPLATE"]
