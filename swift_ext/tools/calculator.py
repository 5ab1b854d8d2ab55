"""The ``calculator`` tool: exact arithmetic on integers, fractions and decimals, read with an AST walker.

``eval`` is never called: the expression is parsed with :func:`ast.parse` and only numbers, ``+ - * / // %``,
``**``, unary signs, parentheses and a few functions (``abs``, ``min``, ``max``, ``round``, ``sqrt`` of a perfect
square, ``gcd``, ``lcm``, ``factorial``) are evaluated, over :class:`fractions.Fraction`, so ``0.1 + 0.2`` is exactly
``0.3`` and ``1/3 + 1/6`` is ``1/2``. Sizes are bounded: the expression's length, an exponent's size, the
number of digits of any intermediate value and a factorial's argument, so ``9**9**9`` is an error, not a hang.

The answer is written as an integer when it is one, else as a fraction and its decimal value
(``1/3 = 0.333333333333``), or as an exact decimal when the denominator has only the factors 2 and 5.
"""

from __future__ import annotations

import ast
import math
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any, Callable, Dict

from ..params import Param
from .base import Tool, ToolContext, ToolResult


class CalcError(ValueError):
    """An expression the calculator refuses (the message is shown to the model)."""


_BINOPS: Dict[type, str] = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//",
                            ast.Mod: "%", ast.Pow: "**"}


def _int(x: Fraction, what: str) -> int:
    if x.denominator != 1:
        raise CalcError(f"{what} needs a whole number, got {format_value(x)}")
    return x.numerator


def _sqrt(x: Fraction) -> Fraction:
    if x < 0:
        raise CalcError("sqrt of a negative number")
    n, d = math.isqrt(x.numerator), math.isqrt(x.denominator)
    if n * n == x.numerator and d * d == x.denominator:
        return Fraction(n, d)
    raise CalcError(f"sqrt({format_value(x)}) is irrational; the calculator is exact only")


def _round(x: Fraction, nd: Fraction = Fraction(0)) -> Fraction:
    digits = _int(nd, "round's digits")
    if abs(digits) > 100:
        raise CalcError("round's digits must be within ±100")
    return Fraction(round(x, digits))


class Evaluator:
    """Evaluates one parsed expression exactly, within the size limits given."""

    def __init__(self, max_exponent: int, max_digits: int, max_factorial: int, source: str = ""):
        self.source = source
        self.max_exponent, self.max_digits, self.max_factorial = max_exponent, max_digits, max_factorial
        self.functions: Dict[str, Callable[..., Fraction]] = {
            "abs": lambda x: abs(x),
            "min": lambda *xs: min(xs),
            "max": lambda *xs: max(xs),
            "round": _round,
            "sqrt": _sqrt,
            "gcd": lambda *xs: Fraction(math.gcd(*(_int(x, "gcd") for x in xs))),
            "lcm": lambda *xs: Fraction(math.lcm(*(_int(x, "lcm") for x in xs))),
            "factorial": self._factorial,
        }

    def _factorial(self, x: Fraction) -> Fraction:
        n = _int(x, "factorial")
        if n < 0 or n > self.max_factorial:
            raise CalcError(f"factorial takes 0..{self.max_factorial}, got {n}")
        return Fraction(math.factorial(n))

    def _check(self, x: Fraction) -> Fraction:
        # bit length is a cheap upper bound of the digits (log10(2) ~ 0.30103)
        bits = max(x.numerator.bit_length(), x.denominator.bit_length())
        if bits * 0.30103 > self.max_digits:
            raise CalcError(f"a value has more than {self.max_digits} digits")
        return x

    def number(self, value: Any) -> Fraction:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CalcError(f"not a number: {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise CalcError("not a finite number")
        return self._check(Fraction(value))

    def eval(self, node: ast.AST) -> Fraction:
        if isinstance(node, ast.Expression):
            return self.eval(node.body)
        if isinstance(node, ast.Constant):
            if isinstance(node.value, float):           # exact from its digits: 0.1 is 1/10, not a binary float
                digits = ast.get_source_segment(self.source, node) if self.source else None
                try:
                    return self._check(Fraction(digits.replace("_", ""))) if digits else self.number(node.value)
                except (ValueError, ZeroDivisionError):
                    return self.number(node.value)
            return self.number(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
            v = self.eval(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return self._binop(_BINOPS[type(node.op)], self.eval(node.left), self.eval(node.right))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
            fn = self.functions.get(node.func.id)
            if fn is None:
                raise CalcError(f"unknown function {node.func.id!r}; known: {', '.join(sorted(self.functions))}")
            args = [self.eval(a) for a in node.args]
            try:
                return self._check(fn(*args))
            except TypeError:
                raise CalcError(f"{node.func.id}() got {len(args)} argument(s)") from None
        raise CalcError(f"not allowed in an expression: {ast.unparse(node)[:60]!r}")

    def _binop(self, op: str, a: Fraction, b: Fraction) -> Fraction:
        if op in ("/", "//", "%") and b == 0:
            raise CalcError("division by zero")
        if op == "+":
            r = a + b
        elif op == "-":
            r = a - b
        elif op == "*":
            r = a * b
        elif op == "/":
            r = a / b
        elif op == "//":
            r = Fraction(a // b)
        elif op == "%":
            r = a - b * (a // b)
        else:
            r = self._pow(a, b)
        return self._check(r)

    def _pow(self, a: Fraction, b: Fraction) -> Fraction:
        if b.denominator != 1:
            root = _sqrt(a) if b.denominator == 2 else None
            if root is None:
                raise CalcError("only whole and half exponents are exact")
            a, b = root, Fraction(b.numerator)
        e = b.numerator
        if abs(e) > self.max_exponent:
            raise CalcError(f"exponent {e} is beyond ±{self.max_exponent}")
        if a == 0 and e < 0:
            raise CalcError("division by zero")
        base = max(abs(a.numerator), a.denominator)
        if base > 1 and abs(e) * math.log10(base) > self.max_digits:
            raise CalcError(f"the power has more than {self.max_digits} digits")
        return a ** e


def format_value(x: Fraction, places: int = 12) -> str:
    """An exact value as text: ``7``, ``0.125`` (a terminating decimal), or ``1/3 = 0.333333333333``.

    >>> format_value(Fraction(7)), format_value(Fraction(1, 8)), format_value(Fraction(-1, 3))
    ('7', '0.125', '-1/3 = -0.333333333333')
    """
    if x.denominator == 1:
        return str(x.numerator)
    d = x.denominator
    while d % 2 == 0:
        d //= 2
    while d % 5 == 0:
        d //= 5
    if d == 1:
        text = format(Decimal(x.numerator) / Decimal(x.denominator), "f") if x.denominator < 10 ** 50 else None
        if text is not None:
            return text
    approx = Decimal(x.numerator) / Decimal(x.denominator)
    return f"{x.numerator}/{x.denominator} = {round(approx, places).normalize():f}"


def calculate(expression: str, *, max_length: int = 1000, max_exponent: int = 10_000, max_digits: int = 5_000,
              max_factorial: int = 1000) -> Fraction:
    """The exact value of an arithmetic ``expression`` (CalcError says why not).

    >>> calculate("0.1 + 0.2") == Fraction(3, 10), calculate("2**10 - 1/4")
    (True, Fraction(4095, 4))
    """
    if not isinstance(expression, str):
        raise CalcError(f"the expression must be a string, got {type(expression).__name__}")
    text = expression.strip().replace("^", "**").replace("×", "*").replace("÷", "/").replace("−", "-")
    if not text:
        raise CalcError("empty expression")
    if len(text) > max_length:
        raise CalcError(f"the expression is longer than {max_length} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise CalcError(f"cannot read the expression: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError):
        raise CalcError("cannot read the expression") from None
    try:
        return Evaluator(max_exponent, max_digits, max_factorial, text).eval(tree)
    except RecursionError:
        raise CalcError("the expression is nested too deeply") from None
    except (InvalidOperation, OverflowError, ZeroDivisionError) as exc:
        raise CalcError(str(exc) or type(exc).__name__) from None


class Calculator(Tool):
    """Exact arithmetic (integers, fractions, decimals) with an AST walker: no eval, bounded sizes.

    Numbers are exact fractions: ``0.1 + 0.2`` is ``0.3`` and ``1/3 + 1/6`` is ``0.5``. It knows ``+ - * / // %``,
    ``**`` (or ``^``; whole exponents, and half ones of perfect squares), parentheses, and ``abs``, ``min``, ``max``,
    ``round``, ``sqrt`` (of perfect squares), ``gcd``, ``lcm``, ``factorial``. Anything else (a name, an attribute,
    a string) is refused, as are exponents, factorials and intermediate values past the size limits, so
    ``9**9**9`` is an error at once. A result that is not a terminating decimal is written as a fraction and its
    decimal value (``1/3 = 0.333333333333``).

    Arguments: ``{"expression": "(3/4 + 0.5) * 2**10"}``.
    """

    name = "calculator"
    description = ("Evaluate an arithmetic expression exactly. Supports + - * / // % ** (or ^), parentheses, "
                   "decimals and fractions, and abs, min, max, round, sqrt, gcd, lcm, factorial.")
    arguments = {"type": "object",
                 "properties": {"expression": {"type": "string", "description": "e.g. (3/4 + 0.5) * 2**10"}},
                 "required": ["expression"]}
    params = {
        "max_length": Param(1000, "longest expression (characters)", type=int, min=1),
        "max_exponent": Param(10_000, "largest |exponent| of a power", type=int, min=1),
        "max_digits": Param(5_000, "most digits of any value in the computation", type=int, min=10),
        "max_factorial": Param(1000, "largest factorial argument", type=int, min=0),
        "places": Param(12, "decimal places of an answer that is not a terminating decimal", type=int, min=0, max=100),
    }

    def run(self, arguments: Dict[str, Any], context: ToolContext) -> ToolResult:
        try:
            value = calculate(arguments["expression"], max_length=self.max_length, max_exponent=self.max_exponent,
                              max_digits=self.max_digits, max_factorial=self.max_factorial)
        except CalcError as exc:
            return ToolResult(f"error: {exc}", ok=False)
        return ToolResult(format_value(value, self.places))
