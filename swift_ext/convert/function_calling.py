"""The ``function_calling`` input format: xLAM / Hermes-style rows with ``tools`` and ``answers`` columns.

A row (Salesforce xLAM-function-calling-60k, APIGen and the datasets built like it)::

    {"query": "Weather in Paris for 3 days?",
     "tools": "[{\\"name\\": \\"get_weather\\", \\"description\\": \\"...\\",
                 \\"parameters\\": {\\"city\\": {\\"type\\": \\"str\\", \\"description\\": \\"...\\"},
                                  \\"days\\": {\\"type\\": \\"int, optional\\", \\"default\\": 1}}}]",
     "answers": "[{\\"name\\": \\"get_weather\\", \\"arguments\\": {\\"city\\": \\"Paris\\", \\"days\\": 3}}]"}

becomes the ms-swift agent row: the prompt (``query`` / ``question`` / ``prompt`` / ``instruction``, or ``messages``,
plus ``system``), one ``tool_call`` turn per gold call (its content the JSON of ``{name, arguments}``, as ms-swift's
agent templates read it), ``tools`` as JSON text of OpenAI-style function tools, and the gold calls as a JSON list in
``solution`` (what the ``tool_call`` reward reads). ``--to grpo`` keeps the prompt, ``tools`` and ``solution``.

Tool parameters already written as a JSON schema (``{"type": "object", "properties": ...}``) are kept; xLAM's
per-parameter form (``{name: {"type": "str, optional", "description", "default"}}``) becomes a JSON schema:
``str``/``int``/``float``/``bool``/``list``/``dict`` (and ``List[...]``, ``Dict[...]``, ``Tuple[...]``) map to
string / integer / number / boolean / array / object; a parameter is required unless its type says ``optional``
or it has a ``default``; a type that maps to none of these constrains nothing.
"""

from __future__ import annotations

import json
import re
from typing import Any, Dict, List, Optional

from ..tools.parse import parse_gold
from .rows import RowError, canonical, norm_messages

#: the columns the format reads (the others pass through)
USED = {"query", "question", "prompt", "instruction", "messages", "system", "tools", "answers"}
_TYPES = [(re.compile(r"^(list|tuple|set|sequence|array)\b", re.I), "array"),
          (re.compile(r"^(dict|mapping|object)\b", re.I), "object"),
          (re.compile(r"^(str|string|text)\b", re.I), "string"),
          (re.compile(r"^(int|integer)\b", re.I), "integer"),
          (re.compile(r"^(float|number|double|decimal)\b", re.I), "number"),
          (re.compile(r"^(bool|boolean)\b", re.I), "boolean")]


def detect(row: Dict[str, Any]) -> bool:
    return "answers" in row and "tools" in row


def _json(value: Any, where: str) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise RowError(f"'{where}' is not valid JSON ({exc})") from None
    return value


def _schema_type(text: str) -> Optional[str]:
    head = text.strip()
    for pattern, kind in _TYPES:
        if pattern.match(head):
            return kind
    return None


def parameters_schema(params: Any, where: str = "parameters") -> Dict[str, Any]:
    """A tool's parameters as a JSON schema (xLAM's per-parameter form converted, a schema kept).

    >>> parameters_schema({"city": {"type": "str"}, "days": {"type": "int, optional", "default": 1}})
    {'type': 'object', 'properties': {'city': {'type': 'string'}, 'days': {'type': 'integer', 'default': 1}}, 'required': ['city']}
    """
    params = _json(params, where)
    if params is None:
        return {"type": "object", "properties": {}}
    if not isinstance(params, dict):
        raise RowError(f"{where} must be an object, got {type(params).__name__}")
    if params.get("type") == "object" or "properties" in params or not params:
        return params if params else {"type": "object", "properties": {}}
    props, required = {}, []
    for name, spec in params.items():
        if not isinstance(spec, dict):
            raise RowError(f"{where}.{name} must be an object with a 'type', got {type(spec).__name__}")
        raw_type = spec.get("type")
        prop: Dict[str, Any] = {}
        kind = _schema_type(raw_type) if isinstance(raw_type, str) else None
        if kind:
            prop["type"] = kind
        if isinstance(spec.get("description"), str):
            prop["description"] = spec["description"]
        if "default" in spec:
            prop["default"] = spec["default"]
        optional = isinstance(raw_type, str) and "optional" in raw_type.lower()
        if not optional and "default" not in spec:
            required.append(name)
        props[name] = prop
    out: Dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    return out


def read_tools(value: Any) -> List[Dict[str, Any]]:
    """The row's tools as OpenAI-style function tools with JSON-schema parameters."""
    tools = _json(value, "tools")
    if isinstance(tools, dict):
        tools = [tools]
    if not isinstance(tools, list) or not tools:
        raise RowError("'tools' must be a non-empty list of tools")
    out = []
    for i, tool in enumerate(tools):
        tool = _json(tool, f"tools[{i}]")
        if not isinstance(tool, dict):
            raise RowError(f"tools[{i}] must be an object, got {type(tool).__name__}")
        fn = tool["function"] if isinstance(tool.get("function"), dict) else tool
        name = fn.get("name")
        if not isinstance(name, str) or not name.strip():
            raise RowError(f"tools[{i}] has no name")
        spec = {"name": name, "description": fn.get("description") if isinstance(fn.get("description"), str) else "",
                "parameters": parameters_schema(fn.get("parameters"), f"tools[{i}].parameters")}
        out.append({"type": "function", "function": spec})
    return out


def read_answers(value: Any) -> List[Dict[str, Any]]:
    """The gold calls as ``[{"name", "arguments"}]`` (RowError for a call that cannot be read)."""
    if value is None:
        raise RowError("missing 'answers'")
    calls = parse_gold(value if not isinstance(value, str) or value.strip() else "[]")
    if calls is None:
        raise RowError("'answers' is empty")
    for i, call in enumerate(calls):
        if not call.ok:
            raise RowError(f"answers[{i}]: {call.error}")
    return [{"name": c.name, "arguments": c.arguments} for c in calls]


def _prompt(row: Dict[str, Any]) -> List[Dict[str, Any]]:
    if row.get("messages") is not None:
        msgs = norm_messages(row["messages"])
    else:
        key = next((k for k in ("query", "question", "prompt", "instruction") if row.get(k) is not None), None)
        if key is None:
            raise RowError("no prompt: give 'query', 'question', 'prompt', 'instruction' or 'messages'")
        if not isinstance(row[key], str):
            raise RowError(f"'{key}' must be a string, got {type(row[key]).__name__}")
        msgs = [{"role": "user", "content": row[key]}]
    system = row.get("system")
    if isinstance(system, str) and system.strip() and msgs[0]["role"] != "system":
        msgs.insert(0, {"role": "system", "content": system})
    return msgs


def read_function_calling(row: Dict[str, Any]) -> Dict[str, Any]:
    """The canonical row of a ``tools`` + ``answers`` row (see the module docstring)."""
    msgs = _prompt(row)
    tools = read_tools(row.get("tools"))
    calls = read_answers(row.get("answers"))
    known = {t["function"]["name"] for t in tools}
    unknown = sorted({c["name"] for c in calls} - known)
    if unknown:
        raise RowError(f"answers call tool(s) {unknown} that 'tools' does not define")
    msgs = msgs + [{"role": "tool_call", "content": json.dumps(c, ensure_ascii=False)} for c in calls]
    extra = {k: v for k, v in row.items() if k not in USED}
    extra["tools"] = json.dumps(tools, ensure_ascii=False)
    return canonical(msgs, solution=json.dumps(calls, ensure_ascii=False), extra=extra)


__all__ = ["read_function_calling", "detect", "parameters_schema", "read_tools", "read_answers"]
