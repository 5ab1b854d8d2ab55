"""The one tool-call parser: text a model wrote, OpenAI ``tool_calls`` messages and ms-swift ``tool_call`` rows.

What it reads:

* Qwen / Hermes text (ms-swift's ``hermes`` agent template, Qwen2.5 / Qwen3 chat templates)::

      <tool_call>
      {"name": "get_weather", "arguments": {"city": "Paris"}}
      </tool_call>

  Several blocks per turn; several JSON objects in one block (one per line, as ToolRL's data writes them, or a
  JSON list); pretty-printed JSON across lines; a last block whose ``</tool_call>`` never came (a completion cut
  at the token limit); a block fenced in ```json. ``"parameters"`` is read where ``"arguments"`` is missing, and
  ``"arguments"`` may be a JSON object or a string holding one (OpenAI style).
* Qwen3-Coder / Qwen3.5 XML inside the same tags (ms-swift's ``qwen3_coder`` / ``qwen3_5`` agent templates)::

      <tool_call>
      <function=get_weather>
      <parameter=city>
      Paris
      </parameter>
      </function>
      </tool_call>

  The format has no types: a value is converted by the tool's JSON schema when one is given (``schemas``), else
  read as JSON when it parses as JSON and kept as a string otherwise.
* OpenAI messages: ``{"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": ...,
  "arguments": "<json string>"}}]}`` and ms-swift's ``{"role": "tool_call", "content": "<json>"}`` rows.

Nothing here raises on bad model output: a call that cannot be read is a :class:`ToolCall` with ``error`` set,
saying why (``invalid JSON: Expecting ',' delimiter at char 17``), so a reward can score it 0 with a reason.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional

from ..extract import strip_think

OPEN, CLOSE = "<tool_call>", "</tool_call>"
#: longest block (characters) parsed; a longer one is an error call (a reward must not spend seconds on one)
MAX_BLOCK_CHARS = 200_000
_DECODER = json.JSONDecoder()
_MISSING = object()
_new = tuple.__new__            # builds a ToolCall without the named tuple's Python-level __new__
_FENCE_START = re.compile(r"^```[ \t]*(?:json|JSON)?[ \t]*\n?")
_FUNC = re.compile(r"<function=([^>\n]*)>(.*?)(?:</function>|\Z)", re.S)
_PARAM = re.compile(r"<parameter=([^>\n]*)>(.*?)(?:</parameter>|(?=<parameter=)|\Z)", re.S)


class ToolCall(NamedTuple):
    """One function call: ``name`` and ``arguments`` (a dict), or ``error`` saying why it could not be read.

    ``raw`` is the text (or JSON) the call was read from; ``id`` the OpenAI call id when there was one.
    (A named tuple: a reward builds thousands per batch.)

    >>> ToolCall("f", {"x": 1}).ok, ToolCall(None, None, "{", "invalid JSON").ok
    (True, False)
    """

    name: Optional[str]
    arguments: Optional[Dict[str, Any]]
    raw: str = ""
    error: Optional[str] = None
    id: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> Dict[str, Any]:
        """``{"name", "arguments"}`` (plus ``error`` and ``raw`` for a call that could not be read)."""
        if self.ok:
            return {"name": self.name, "arguments": self.arguments}
        return {"name": self.name, "error": self.error, "raw": self.raw[:200]}


def _bad(raw: Any, why: str, name: Optional[str] = None) -> ToolCall:
    return ToolCall(name, None, raw if isinstance(raw, str) else _dump(raw), why)


def _dump(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def _loads(text: str, literal: bool) -> Any:
    """``json.loads``; with ``literal`` also a Python literal (``{'a': 1}``), as ms-swift reads dataset rows."""
    try:
        return json.loads(text)
    except ValueError:
        if not literal:
            raise
    try:
        return ast.literal_eval(text.strip())
    except Exception:
        raise ValueError("neither JSON nor a Python literal") from None


def call_from_obj(obj: Any, raw: Optional[str] = None, *, literal: bool = False) -> ToolCall:
    """A :class:`ToolCall` from one decoded call: ``{"name", "arguments"|"parameters"}`` or OpenAI's
    ``{"type": "function", "function": {...}, "id": ...}``.

    >>> call_from_obj({"type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}})
    ToolCall(name='f', arguments={'x': 1}, raw='{"type": "function", "function": {"name": "f", "arguments": "{\\\\"x\\\\": 1}"}}', error=None, id=None)
    >>> call_from_obj({"name": "f", "arguments": "{x"}).error
    'arguments are not valid JSON: Expecting property name enclosed in double quotes at char 1'
    """
    if type(obj) is dict and "function" not in obj:          # the usual {"name": ..., "arguments": {...}}
        name = obj.get("name")
        args = obj["arguments"] if "arguments" in obj else obj.get("parameters")
        if type(name) is str and type(args) is dict and name.strip():
            call_id = obj.get("id")
            return ToolCall(name, args, _dump(obj) if raw is None else raw, None,
                            call_id if type(call_id) is str else None)
    raw = _dump(obj) if raw is None else raw
    if not isinstance(obj, dict):
        return _bad(raw, f"a tool call must be a JSON object, got {_kind(obj)}")
    call_id = obj.get("id") if isinstance(obj.get("id"), str) else None
    fn = obj.get("function")
    if isinstance(fn, dict) and "name" not in obj:
        obj = fn
    name = obj.get("name")
    if not isinstance(name, str) or not name.strip():
        return _bad(raw, "no function name" if name is None else f"the function name must be a non-empty string, "
                    f"got {_kind(name)}")
    args = obj.get("arguments") if "arguments" in obj else obj.get("parameters")
    if isinstance(args, str):
        if not args.strip():
            args = {}
        else:
            try:
                args = _loads(args, literal)
            except ValueError as exc:
                return _bad(raw, f"arguments are not valid JSON: {_reason(exc)}", name)
            except RecursionError:
                return _bad(raw, "arguments are nested too deeply", name)
    if args is None:
        args = {}
    if not isinstance(args, dict):
        return _bad(raw, f"arguments must be a JSON object, got {_kind(args)}", name)
    return ToolCall(name, dict(args), raw, None, call_id)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _reason(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at char {exc.pos}"
    return str(exc)


def _calls_from_value(value: Any, raw: str, literal: bool) -> List[ToolCall]:
    if isinstance(value, list):
        return [call_from_obj(v, None, literal=literal) for v in value]
    return [call_from_obj(value, raw, literal=literal)]


def _convert(value: str, schema: Any) -> Any:
    """A Qwen3-Coder parameter value (text) as the type its schema declares (JSON first when it declares none)."""
    kind = schema.get("type") if isinstance(schema, dict) else None
    if kind == "string":
        return value
    if kind is None or isinstance(kind, list) or kind in ("integer", "number", "boolean", "object", "array", "null"):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            return value
    return value


def _parse_xml(block: str, schemas: Optional[Mapping[str, Any]]) -> List[ToolCall]:
    calls = []
    for m in _FUNC.finditer(block):
        name = m.group(1).strip()
        if not name:
            calls.append(_bad(m.group(0), "no function name"))
            continue
        props = {}
        schema = schemas.get(name) if schemas else None
        if isinstance(schema, dict) and isinstance(schema.get("properties"), dict):
            props = schema["properties"]
        args: Dict[str, Any] = {}
        for p in _PARAM.finditer(m.group(2)):
            key, value = p.group(1).strip(), p.group(2).strip()
            args[key] = _convert(value, props.get(key))
        calls.append(ToolCall(name, args, m.group(0)))
    return calls or [_bad(block, "a <function=...> block without a function")]


def parse_block(block: str, *, literal: bool = False, schemas: Optional[Mapping[str, Any]] = None) -> List[ToolCall]:
    """The calls in one ``<tool_call>`` block's content: JSON objects one after the other (or a JSON list), or
    Qwen3-Coder XML. A part that does not parse is one error call for the rest of the block.

    >>> [c.name for c in parse_block('{"name": "a", "arguments": {}}\\n{"name": "b", "arguments": {}}')]
    ['a', 'b']
    >>> parse_block('{"name": "a", "arguments": {"x": 1,}}')[0].error
    'invalid JSON: Expecting property name enclosed in double quotes at char 35'
    """
    s = block.strip()
    if not s:
        return [_bad(block, "empty <tool_call> block")]
    if len(s) > MAX_BLOCK_CHARS:
        return [_bad(s[:200], f"a <tool_call> block longer than {MAX_BLOCK_CHARS} characters")]
    if s.startswith("```"):
        s = _FENCE_START.sub("", s, count=1)
        if s.endswith("```"):
            s = s[:-3]
        s = s.strip()
    if s.startswith("<function="):
        return _parse_xml(s, schemas)
    calls: List[ToolCall] = []
    pos, n = 0, len(s)
    while pos < n:
        try:
            value, end = _DECODER.raw_decode(s, pos)
        except ValueError as exc:
            rest = s[pos:]
            if literal:
                try:
                    calls.extend(_calls_from_value(ast.literal_eval(rest), rest, literal))
                    break
                except Exception:
                    pass
            where = exc.pos - pos if isinstance(exc, json.JSONDecodeError) else 0
            msg = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            calls.append(_bad(rest, f"invalid JSON: {msg} at char {where}"))
            break
        except RecursionError:
            calls.append(_bad(s[pos:pos + 200], "invalid JSON: nested too deeply"))
            break
        if type(value) is dict:
            name = value.get("name")
            args = value.get("arguments", _MISSING)
            if args is _MISSING:
                args = value.get("parameters")
            if type(name) is str and type(args) is dict and "function" not in value and name.strip():
                call_id = value.get("id")
                calls.append(_new(ToolCall, (name, args, s[pos:end], None,
                                             call_id if type(call_id) is str else None)))
            else:
                calls.append(call_from_obj(value, s[pos:end], literal=literal))
        else:
            calls.extend(_calls_from_value(value, s[pos:end], literal))
        while end < n and s[end] in " \t\n\r":
            end += 1
        pos = end
    return calls


def tool_call_blocks(text: str) -> List[str]:
    """The contents of the ``<tool_call>`` blocks of ``text``; a block left open runs to the next ``<tool_call>``
    or to the end.

    >>> tool_call_blocks("a<tool_call>1</tool_call> b <tool_call>2")
    ['1', '2']
    """
    out, pos = [], 0
    while True:
        i = text.find(OPEN, pos)
        if i < 0:
            return out
        start = i + len(OPEN)
        j, k = text.find(CLOSE, start), text.find(OPEN, start)
        if j < 0 or (0 <= k < j):
            end, pos = (k, k) if k >= 0 else (len(text), len(text))
        else:
            end, pos = j, j + len(CLOSE)
        out.append(text[start:end])


def parse_text(text: Any, *, strip_reasoning: bool = True, literal: bool = False,
               schemas: Optional[Mapping[str, Any]] = None) -> List[ToolCall]:
    """Every tool call in a model's text, in order (reasoning before ``</think>`` left out).

    >>> calls = parse_text('<think>x</think><tool_call>\\n{"name": "f", "arguments": {"a": 1}}\\n</tool_call>'
    ...                    '<tool_call>{"name": "g", "arguments": "{\\\\"b\\\\": 2}"}')
    >>> [(c.name, c.arguments) for c in calls]
    [('f', {'a': 1}), ('g', {'b': 2})]
    """
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    if strip_reasoning:
        text = strip_think(text)
    if OPEN not in text:
        return []
    calls: List[ToolCall] = []
    for block in tool_call_blocks(text):
        calls.extend(parse_block(block, literal=literal, schemas=schemas))
    return calls


def parse_messages(messages: Iterable[Any], *, literal: bool = False,
                   schemas: Optional[Mapping[str, Any]] = None) -> List[ToolCall]:
    """The tool calls of chat messages: OpenAI ``tool_calls`` lists, ms-swift ``tool_call`` rows (JSON content),
    and ``<tool_call>`` text in assistant content.

    >>> msgs = [{"role": "assistant", "content": None, "tool_calls": [
    ...     {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}]},
    ...     {"role": "tool_call", "content": '{"name": "g", "arguments": {"y": 2}}'}]
    >>> [(c.name, c.arguments, c.id) for c in parse_messages(msgs)]
    [('f', {'x': 1}, 'c1'), ('g', {'y': 2}, None)]
    """
    calls: List[ToolCall] = []
    for m in messages or ():
        if not isinstance(m, dict):
            continue
        role, content = m.get("role"), m.get("content")
        if role == "tool_call":
            calls.extend(_parse_value(content, literal))
            continue
        tool_calls = m.get("tool_calls")
        if isinstance(tool_calls, list) and tool_calls:
            calls.extend(call_from_obj(tc, literal=literal) for tc in tool_calls)
        if role in (None, "assistant") and isinstance(content, str):
            calls.extend(parse_text(content, literal=literal, schemas=schemas))
    return calls


def _parse_value(value: Any, literal: bool) -> List[ToolCall]:
    if isinstance(value, str):
        s = value.strip()
        if not s:
            return [_bad(value, "empty tool call")]
        if OPEN in s:
            return parse_text(s, strip_reasoning=False, literal=literal)
        try:
            decoded = _loads(s, literal)
        except ValueError as exc:
            return [_bad(value, f"invalid JSON: {_reason(exc)}")]
        except RecursionError:
            return [_bad(value[:200], "invalid JSON: nested too deeply")]
        return _calls_from_value(decoded, s, literal)
    return _calls_from_value(value, _dump(value), literal)


def parse_calls(value: Any, *, literal: bool = False, schemas: Optional[Mapping[str, Any]] = None) -> List[ToolCall]:
    """Tool calls from any of the shapes a completion or a dataset column holds them in: text with
    ``<tool_call>`` tags, a list of messages, an OpenAI assistant message, a list of call objects.

    >>> [c.name for c in parse_calls([{"name": "a", "arguments": {}}, {"function": {"name": "b"}}])]
    ['a', 'b']
    """
    if value is None:
        return []
    if isinstance(value, str):
        return parse_text(value, literal=literal, schemas=schemas)
    if isinstance(value, dict):
        if "role" in value or "tool_calls" in value:
            return parse_messages([value], literal=literal, schemas=schemas)
        return [call_from_obj(value, literal=literal)]
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, dict) and ("role" in v or "tool_calls" in v) for v in value):
            return parse_messages(value, literal=literal, schemas=schemas)
        out: List[ToolCall] = []
        for v in value:
            out.extend(_parse_value(v, literal) if isinstance(v, str) else parse_calls(v, literal=literal))
        return out
    return [_bad(_dump(value), f"not a tool call: {_kind(value)}")]


def parse_gold(value: Any) -> Optional[List[ToolCall]]:
    """The gold calls of a dataset row: a JSON list / object of calls (a string or decoded), ``<tool_call>`` text,
    or messages; ``[]`` means "no call expected". None when there is no gold (``None``, empty text).
    Python-literal dicts are read too, as ms-swift reads its ``tool_call`` rows.

    >>> [c.name for c in parse_gold('[{"name": "a", "arguments": {"x": 1}}]')], parse_gold("[]"), parse_gold("")
    (['a'], [], None)
    """
    if value is None:
        return None
    if isinstance(value, str):
        s = value.strip()
        if not s:
            return None
        if OPEN in s:
            return parse_text(s, strip_reasoning=False, literal=True)
        try:
            decoded = _loads(s, True)
        except (ValueError, RecursionError):
            return [_bad(value[:200], "the gold is neither JSON nor <tool_call> text")]
        return parse_calls(decoded, literal=True)
    return parse_calls(value, literal=True)


def parse_tools(value: Any) -> Optional[Dict[str, Any]]:
    """``{function name: parameters JSON schema}`` of a row's ``tools`` (a JSON string or a list of tools, each
    OpenAI-wrapped ``{"type": "function", "function": {...}}`` or bare, its ``parameters`` a dict or JSON text).
    None when there are no usable tools.

    >>> parse_tools('[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]')
    {'f': {'type': 'object'}}
    """
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            value = _loads(value, True)
        except (ValueError, RecursionError):
            return None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, (list, tuple)):
        return None
    out: Dict[str, Any] = {}
    for tool in value:
        if isinstance(tool, str):
            try:
                tool = _loads(tool, True)
            except (ValueError, RecursionError):
                continue
        if not isinstance(tool, dict):
            continue
        if isinstance(tool.get("function"), dict):
            tool = tool["function"]
        name = tool.get("name") or tool.get("name_for_model")
        if not isinstance(name, str):
            continue
        params = tool.get("parameters")
        if isinstance(params, str):
            try:
                params = _loads(params, True)
            except (ValueError, RecursionError):
                params = None
        out[name] = params if isinstance(params, dict) else {}
    return out or None


#: how a tool result names an image file it returns (the zoom crop), so a run's completion log links the image
#: ms-swift logs only as a placeholder to its file: ``[image file: /runs/x/zoom-1.png]``
IMAGE_FILE_NOTE = "[image file: {}]"
_IMAGE_FILE = re.compile(r"\[image file: ([^\]\n]{1,4096})\]")


def image_files(text: Any) -> List[str]:
    """The image files a tool result's text names (:data:`IMAGE_FILE_NOTE`), in order.

    >>> image_files("Zoomed in. [image file: /tmp/t1/zoom-1.png]")
    ['/tmp/t1/zoom-1.png']
    """
    return _IMAGE_FILE.findall(text) if isinstance(text, str) and "[image file: " in text else []


__all__ = ["ToolCall", "IMAGE_FILE_NOTE", "image_files", "parse_text", "parse_messages", "parse_calls", "parse_gold", "parse_tools", "parse_block",
           "tool_call_blocks", "call_from_obj", "OPEN", "CLOSE"]
