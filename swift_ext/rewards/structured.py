"""Structured-output rewards: does the completion hold valid JSON, and does it match a JSON schema?

Most fine-tunes for structured output start because the format is unstable ("the JSON is missing a
bracket"). These rewards find the JSON in a completion (a fenced ```json block, else the text after
reasoning / inside ``<answer>``, else the first balanced ``{...}`` or ``[...]``), parse it with the
standard library, and optionally validate it with ``jsonschema`` (``pip install jsonschema``).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..errors import ParamError
from ..params import Param
from .contract import Example
from .base import Reward, Score, column
from ..extract import answer_tag, strip_think

_FENCE = re.compile(r"```[ \t]*(?:json|JSON|json5)?[ \t]*\n?(.*?)(?:```|\Z)", re.S)
MAX_JSON_CHARS = 1_000_000  # longer candidates are not parsed (scored as invalid)
_NOT_FOUND = object()


def json_candidate(text: Any) -> Optional[str]:
    """The text that should be JSON: a fenced block (an unclosed fence runs to the end), else the
    ``<answer>`` content or the text after ``</think>``, trimmed to start at its first ``{`` or ``[``.

    >>> json_candidate('<think>hm</think>Here: ```json\\n{"a": 1}\\n``` done')
    '{"a": 1}'
    >>> json_candidate('Result: {"a": [1, 2]} (as asked)')
    '{"a": [1, 2]} (as asked)'
    """
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    body = strip_think(text)
    inner = answer_tag(body)
    if inner is not None:
        body = inner
    m = _FENCE.search(body)
    if m:
        return m.group(1).strip()
    starts = [i for i in (body.find("{"), body.find("[")) if i >= 0]
    if not starts:
        return body.strip() or None
    return body[min(starts):].strip()


def _brackets(s: str):
    """``(index, bracket)`` for each ``{[]}`` outside JSON strings; returns (as StopIteration value)
    whether ``s`` ends inside a string. Escapes inside strings are respected."""
    in_str = esc = False
    for i, ch in enumerate(s):
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "{[]}":
            yield i, ch
    return in_str


def _balanced_prefix(s: str) -> Optional[str]:
    """The first balanced ``{...}`` / ``[...]`` at the start of ``s`` (strings and escapes respected)."""
    if not s or s[0] not in "{[":
        return None
    depth = 0
    for i, ch in _brackets(s):
        depth += 1 if ch in "{[" else -1
        if depth == 0:
            return s[:i + 1]
    return None


def _close(s: str) -> Optional[str]:
    """``s`` with unterminated strings and brackets closed (a truncated or bracket-short JSON), else None."""
    stack = []
    scan = _brackets(s)
    while True:
        try:
            _, ch = next(scan)
        except StopIteration as done:
            in_str = done.value
            break
        if ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif not stack or stack.pop() != ch:
            return None
    if not stack and not in_str:
        return None
    tail = s + ('"' if in_str else "")
    tail = re.sub(r"[,:]\s*$", "", tail.rstrip())
    return tail + "".join(reversed(stack))


def parse_json(text: Any, repair: bool = False, trailing: bool = True) -> Tuple[Any, str]:
    """``(value, how)``: how is ``"ok"`` (parsed as is, or its first balanced bracket block), ``"repaired"``
    (parsed after closing open strings / brackets; only with ``repair``) or ``"invalid"`` (value None).
    ``trailing=False``: the candidate (from its first bracket) must be the JSON value and nothing else.

    >>> parse_json('{"a": 1} trailing words')
    ({'a': 1}, 'ok')
    >>> parse_json('{"a": [1, 2', repair=True)
    ({'a': [1, 2]}, 'repaired')
    >>> parse_json('{"a": }')
    (None, 'invalid')
    """
    cand = json_candidate(text)
    if not cand or len(cand) > MAX_JSON_CHARS:
        return None, "invalid"
    for attempt in (cand, _balanced_prefix(cand)) if trailing else (cand,):
        if attempt is None:
            continue
        try:
            return json.loads(attempt), "ok"
        except (ValueError, RecursionError):
            pass
    if repair:
        fixed = _close(cand)
        if fixed is not None:
            try:
                return json.loads(fixed), "repaired"
            except (ValueError, RecursionError):
                pass
    return None, "invalid"


_KINDS = {"object": dict, "array": list, "any": object}


# -- schema patterns with a time bound ------------------------------------------------------------
class PatternTimeout(Exception):
    """A schema ``pattern`` did not finish matching before the call's deadline."""


_deadline = threading.local()
#: seconds one pattern match may take when no call deadline is set (``score`` called on its own)
MATCH_TIMEOUT = 2.0


def bounded_search(pattern: str, text: str) -> bool:
    """``re.search`` semantics with the ``regex`` engine and the current call's deadline: a backtracking
    pattern (``^(a|aa)+$``) stops at the deadline with :class:`PatternTimeout` instead of running for hours.

    >>> bool(bounded_search("^a+$", "aaa")), bool(bounded_search("b", "aaa"))
    (True, False)
    """
    import regex

    end = getattr(_deadline, "end", None)
    left = MATCH_TIMEOUT if end is None else end - time.monotonic()   # outside a call: one match's own bound
    if left <= 0:
        raise PatternTimeout(pattern)
    try:
        return regex.search(pattern, text, timeout=left) is not None
    except TimeoutError:
        raise PatternTimeout(pattern) from None
    except regex.error:                         # a pattern only ``re`` accepts: no bound available, refuse it
        raise PatternTimeout(pattern) from None


def _kw_pattern(validator, patrn, instance, schema):
    from jsonschema.exceptions import ValidationError

    if validator.is_type(instance, "string") and not bounded_search(patrn, instance):
        yield ValidationError(f"{instance!r} does not match {patrn!r}")


def _kw_pattern_properties(validator, patterns, instance, schema):
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for k, v in instance.items():
            if bounded_search(pattern, k):
                yield from validator.descend(v, subschema, path=k, schema_path=pattern)


def _kw_additional_properties(validator, aP, instance, schema):
    from jsonschema.exceptions import ValidationError

    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = "|".join(schema.get("patternProperties", {}))
    extras = [k for k in instance if k not in properties and not (patterns and bounded_search(patterns, k))]
    if validator.is_type(aP, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], aP, path=extra)
    elif not aP and extras:
        yield ValidationError(f"Additional properties are not allowed ({', '.join(map(repr, sorted(extras)))} "
                              f"unexpected)")


_BOUNDED: Dict[type, type] = {}


def bounded_validator(cls: type) -> type:
    """``cls`` (a jsonschema validator class) with ``pattern``, ``patternProperties`` and
    ``additionalProperties`` matched by :func:`bounded_search`."""
    got = _BOUNDED.get(cls)
    if got is None:
        from jsonschema.validators import extend

        overrides = {"pattern": _kw_pattern, "patternProperties": _kw_pattern_properties,
                     "additionalProperties": _kw_additional_properties}
        got = _BOUNDED[cls] = extend(cls, {k: v for k, v in overrides.items() if k in cls.VALIDATORS})
    return got


class JsonValid(Reward):
    """1.0 when the completion holds JSON that parses (fenced or bare), else 0.0.

    ``require`` restricts the top level to an ``object`` or an ``array``. ``repaired_score`` (default
    0) is given to JSON that parses only after closing its open strings and brackets: a small
    partial credit for "almost" early in training. Text before the JSON is allowed; text after it is
    allowed when ``allow_trailing`` (default).

    Where the JSON is looked for: first in a fenced ``json`` code block (an unclosed fence runs to the end),
    then in ``<answer>`` or after ``</think>``, starting at the first ``{`` or ``[``.

    Bad input: JSON missing a bracket, or with a trailing comma or single quotes, scores 0 (or
    ``repaired_score`` when closing its brackets and strings makes it parse). JSON nested 100 000 levels
    deep scores 0 without a RecursionError.

    On the command line: ``--reward_funcs json_valid:repaired_score=0.3``.

    Example:
        >>> r = JsonValid()
        >>> r(['```json\\n{"name": "cat"}\\n```', '{"name": "cat"', "no json", '[1, 2]'])
        [1.0, 0.0, 0.0, 1.0]
        >>> JsonValid(require="object", repaired_score=0.5)(['{"name": "cat"', '[1, 2]'])
        [0.5, 0.0]
    """

    name = "json_valid"
    examples = (
        Example("full", '```json\n{"name": "cat"}\n```', 1.0),
        Example("zero", "no json", 0.0),
        Example("malformed", '{"name": "cat"', 0.0),
        Example("malformed", '{"name": "cat"', 0.5, params="require=object,repaired_score=0.5"),
    )
    params = {
        "require": Param("any", "top-level type required", choices=tuple(_KINDS)),
        "repaired_score": Param(0.0, "score for JSON that parses only after closing brackets/strings",
                                min=0.0, max=1.0),
        "allow_trailing": Param(True, "accept text after the JSON value"),
    }

    def score(self, completion: str, **row: Any) -> Score:
        value, how = parse_json(completion, repair=self.repaired_score > 0, trailing=self.allow_trailing)
        if how == "invalid" or not isinstance(value, _KINDS[self.require]):
            return 0.0
        return 1.0 if how == "ok" else self.repaired_score

    def explain(self, completion: str, **row: Any) -> dict:
        out = super().explain(completion, **row)
        cand = json_candidate(completion)
        value, how = parse_json(completion, repair=self.repaired_score > 0, trailing=self.allow_trailing)
        out.update(candidate=cand, parsed=how, json_error=json_error(cand) if how != "ok" else None,
                   type=type(value).__name__ if how != "invalid" else None, require=self.require)
        if how == "invalid":
            out["reason"] = f"no JSON parses: {out['json_error']}: 0"
        elif not isinstance(value, _KINDS[self.require]):
            out["reason"] = f"top level is {type(value).__name__}, require={self.require}: 0"
        else:
            out["reason"] = "valid JSON: 1" if how == "ok" else f"parses only after repair: {self.repaired_score:g}"
        return out


class JsonSchema(Reward):
    """1.0 when the completion's JSON validates against a JSON schema; partial credit for required fields.

    The schema comes from the row's ``schema_key`` column (a dict or JSON text) or, when that is
    absent, from the ``schema`` parameter (a path to a ``.json`` file, or inline JSON). JSON that does
    not validate scores ``partial_max`` x the fraction of the schema's top-level ``required`` fields
    that are present and valid against their own property schema ("well typed"), so full validity is
    always worth more. JSON that does not parse scores 0. Needs ``pip install jsonschema``.

    A call whose schemas hold a ``pattern`` / ``patternProperties`` is scored in the worker pool, within the
    call's deadline (``timeout`` seconds per GRPO group, wall-clock); there, and wherever the reward runs, the
    regexes are also matched by the ``regex`` engine with a time limit (CPU time): a pattern that backtracks
    for ever (``^(a|aa)+$`` on a long string) stops, and the completions left unscored abstain, with one log
    line.

    Any JSON Schema draft works (the ``jsonschema`` package picks it from ``$schema``). A bad ``schema=``
    parameter (an unreadable file, invalid JSON) stops the run at start-up with a ParamError. A
    parametrised name cannot hold commas, so give a schema with commas as a file path, or as an alias in
    ``SWIFT_EXT_CONFIG``.

    On the command line: ``--reward_funcs json_schema:schema=/data/schema.json``.

    Example:
        >>> schema = {"type": "object", "required": ["name", "age"],
        ...           "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}
        >>> r = JsonSchema()
        >>> r(['{"name": "Ann", "age": 3}', '{"name": "Ann", "age": "three"}', '{"nick": 1}', "oops"],
        ...   schema=[schema] * 4)   # valid; 1 of 2 required ok -> 0.5 * 0.5; 0 of 2; no JSON
        [1.0, 0.25, 0.0, 0.0]
    """

    name = "json_schema"
    examples = (
        Example("full", '{"name": "Ann", "age": 3}', 1.0,
                schema={"type": "object", "required": ["name", "age"],
                        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}),
        Example("zero", '{"nick": 1}', 0.0,
                schema={"type": "object", "required": ["name", "age"],
                        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}),
        Example("malformed", "oops", 0.0,
                schema={"type": "object", "required": ["name", "age"],
                        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}),
        Example("malformed", '{"name": "Ann"}', None),
    )
    abstains = ("when there is no usable schema (no column value and no schema parameter, an invalid schema, or one "
                "that cannot be evaluated such as an unresolvable $ref or a pattern still matching at the deadline)")
    default_timeout = 2.0
    own_deadline = True
    params = {
        "schema": Param("", "schema for every row: a path to a JSON file or inline JSON (a row's column wins)"),
        "schema_key": Param("schema", "dataset column holding a per-row schema (dict or JSON text)"),
        "partial_max": Param(0.5, "score of invalid JSON whose required fields are all present and well typed",
                             min=0.0, max=1.0),
        "repair": Param(False, "also try JSON with unclosed brackets/strings closed"),
    }

    def setup(self) -> None:
        try:
            import jsonschema  # noqa: F401
        except ImportError:
            raise ImportError("reward json_schema needs jsonschema: pip install jsonschema") from None
        self._validators: "OrderedDict[str, Any]" = OrderedDict()
        self._recent: list = []
        self._default = None
        self._default_patterns = False
        if self.schema:
            text = self.schema
            if not text.lstrip().startswith("{"):
                if not os.path.isfile(text):
                    raise ParamError(f"reward json_schema: schema={text!r} is neither inline JSON nor a file")
                with open(text, encoding="utf-8") as fh:
                    text = fh.read()
            try:
                schema = json.loads(text)
            except ValueError as exc:
                raise ParamError(f"reward json_schema: schema {self.schema!r} is not valid JSON: {exc}") from None
            if self._validator(schema) is None:
                raise ParamError(f"reward json_schema: schema {self.schema!r} is not a valid JSON schema")
            self._default = schema
            self._default_patterns = '"pattern' in json.dumps(schema)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_validators"] = OrderedDict()
        state["_recent"] = []
        return state

    def _validator(self, schema: Any) -> Optional[Any]:
        """A compiled validator for ``schema`` (cached by its JSON text), None if the schema is invalid.

        A GRPO group hands over the same schema object for each of its completions, so the last few
        objects are also remembered by identity (holding a reference keeps their ``id`` unique).
        """
        for obj, validator in self._recent:
            if obj is schema:
                return validator
        validator = self._compile(schema)
        self._recent = ([(schema, validator)] + self._recent)[:8]
        return validator

    def _compile(self, schema: Any) -> Optional[Any]:
        if isinstance(schema, str):
            try:
                schema = json.loads(schema)
            except (ValueError, RecursionError):
                return None
        if not isinstance(schema, (dict, bool)):
            return None
        try:
            key = json.dumps(schema, sort_keys=True)
        except (TypeError, ValueError):
            return None
        got = self._validators.get(key, _NOT_FOUND)
        if got is not _NOT_FOUND:
            self._validators.move_to_end(key)
            return got
        from jsonschema import exceptions
        from jsonschema.validators import validator_for

        try:
            cls = validator_for(schema)
            cls.check_schema(schema)
            if '"pattern' in key:                # pattern / patternProperties: match under the deadline
                cls = bounded_validator(cls)
            validator = cls(schema)
        except (exceptions.SchemaError, TypeError, ValueError, RecursionError, LookupError):
            validator = None
        self._validators[key] = validator
        if len(self._validators) > 256:
            self._validators.popitem(last=False)
        return validator

    def use_pool(self, rows) -> bool:
        """Schemas with patterns go to the worker pool, whose deadline is wall-clock (the ``regex`` engine's own
        bound, which also holds in-process, counts CPU time); the others score here."""
        if self.isolate:
            return True
        if self._default_patterns:
            return True
        seen: Dict[int, bool] = {}
        for schema in column(rows, self.schema_key):
            if schema is None or id(schema) in seen:
                continue
            try:
                text = schema if isinstance(schema, str) else json.dumps(schema)
            except (TypeError, ValueError):
                text = ""
            seen[id(schema)] = True
            if '"pattern' in text:
                return True
        return False

    def score_batch(self, completions: Sequence[str], rows: Sequence[Dict[str, Any]]) -> List[Score]:
        budget = self.budget(len(completions))
        _deadline.end = time.monotonic() + budget
        self._late = 0
        try:
            out = super().score_batch(completions, rows)
        finally:
            _deadline.end = None
        self.report_timeouts(self._late, len(completions), budget, " (schema patterns)")
        return out

    def score(self, completion: str, **row: Any) -> Score:
        schema = row.get(self.schema_key)
        if schema is None or (isinstance(schema, str) and not schema.strip()):
            schema = self._default
        if schema is None:
            return None
        validator = self._validator(schema)
        if validator is None:
            return None
        value, how = parse_json(completion, repair=self.repair)
        if how == "invalid":
            return 0.0
        try:
            if validator.is_valid(value):
                return 1.0
            return self.partial_max * self._required_fraction(validator, value)
        except PatternTimeout:
            self._late = getattr(self, "_late", 0) + 1
            return None
        except Exception:  # the schema cannot be evaluated (an unresolvable $ref, ...): unusable gold
            return None

    @staticmethod
    def _required_fraction(validator: Any, value: Any) -> float:
        schema = validator.schema if isinstance(validator.schema, dict) else {}
        required = schema.get("required")
        if not isinstance(value, dict) or not isinstance(required, list) or not required:
            return 0.0
        props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        ok = 0
        for key in required:
            if not isinstance(key, str) or key not in value:
                continue
            sub = props.get(key)
            if sub is None:
                ok += 1
                continue
            try:
                if validator.evolve(schema=sub).is_valid(value[key]):
                    ok += 1
            except Exception:  # a $ref into the parent schema etc.: judge it by the whole-schema errors
                errors = [e for e in validator.iter_errors(value) if e.path and e.path[0] == key]
                ok += not errors
        return ok / len(required)

    def explain(self, completion: str, **row: Any) -> dict:
        out = super().explain(completion, **row)
        schema = row.get(self.schema_key)
        source = f"column {self.schema_key!r}"
        if schema is None or (isinstance(schema, str) and not schema.strip()):
            schema, source = self._default, ("schema parameter" if self._default is not None else None)
        cand = json_candidate(completion)
        value, how = parse_json(completion, repair=self.repair)
        out.update(schema_from=source, candidate=cand, parsed=how,
                   json_error=json_error(cand) if how == "invalid" else None)
        validator = self._validator(schema) if schema is not None else None
        if schema is None:
            out["reason"] = "abstained: no schema (no column value and no schema parameter)"
        elif validator is None:
            out["reason"] = "abstained: the schema is not a valid JSON schema"
        elif how == "invalid":
            out["reason"] = f"no JSON parses: {out['json_error']}: 0"
        else:
            try:
                errors = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
                fraction = self._required_fraction(validator, value) if errors else None
            except Exception as exc:
                out["reason"] = f"abstained: the schema cannot be evaluated ({exc.__class__.__name__})"
                return out
            out["schema_errors"] = [{"path": "/".join(map(str, e.path)), "message": e.message} for e in errors[:20]]
            if not errors:
                out["reason"] = "valid against the schema: 1"
            else:
                out.update(required_fraction=fraction, partial_max=self.partial_max)
                out["reason"] = (f"{len(errors)} schema error(s); required fields present and well typed: "
                                 f"{fraction:g} -> {self.partial_max:g} x {fraction:g}")
        return out


def json_error(candidate: Optional[str]) -> str:
    """Why ``candidate`` is not JSON, as ``json`` says it (message, line, column), for explanations.

    >>> json_error('{"a": }')
    'Expecting value at line 1 column 7'
    """
    if not candidate:
        return "no JSON candidate in the completion"
    if len(candidate) > MAX_JSON_CHARS:
        return f"candidate longer than {MAX_JSON_CHARS} characters"
    try:
        json.loads(candidate)
    except json.JSONDecodeError as exc:
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    except (ValueError, RecursionError) as exc:
        return str(exc) or exc.__class__.__name__
    return "parses as a whole (text after the value?)"
