"""Input formats: detection from a row's columns and readers into the canonical row (:mod:`.rows`).

====================  ==========================================================================
name                  columns
====================  ==========================================================================
``swift``             ``messages`` (+ ``system``, ``images``, ``videos``, ``solution``, ``rejected_response``,
                      ``rejected_messages``, ``rejected_images``, ``label``)
``query_response``    legacy ms-swift ``query`` / ``response`` / ``history`` / ``system`` / ``images``
``sharegpt``          ``conversations`` (or ``conversation``) with ``from`` / ``value``, or ms-swift's pair
                      style ``{human, assistant}``; ``system``
``llava``             LLaVA JSON: ``conversations`` + ``image`` (``<image>`` in the human turn)
``alpaca``            ``instruction`` / ``input`` / ``output`` (or ``chosen`` / ``rejected``)
``rlaif_v``           ``question`` / ``chosen`` / ``rejected`` / ``image`` (path or bytes)
``trl_preference``    ``prompt`` + ``chosen`` / ``rejected`` or ``completion`` (+ ``label``), plain or
                      conversational, optional ``images`` / ``image``
``prompt_answer``     ``problem`` / ``answer`` (or ``solution``) / ``images`` (EasyR1, R1-V)
``verl``              verl parquet: ``prompt`` messages + ``reward_model.ground_truth`` + ``images``
``function_calling``  ``tools`` + ``answers`` (xLAM / Hermes style; :mod:`.function_calling`)
``ifeval``            ``prompt`` + ``instruction_id_list`` + ``kwargs`` (IFEval; :mod:`.instructions`)
``code``              code datasets (open-r1 ``verification_info``, APPS ``input_output``, LiveCodeBench,
                      HumanEval, MBPP, KodCode): the prompt + a ``tests`` column (:mod:`.code`)
====================  ==========================================================================

>>> detect({"conversations": [], "image": "a.jpg"}).name
'llava'

Every reader follows ms-swift's own preprocessors (``swift/dataset/preprocessor/core.py``) for the formats
ms-swift reads natively, so that a converted file trains as the original would; the differences are
deliberate rejects (docs/datasets.md, "Fidelity to ms-swift"; tests/convert/test_fidelity.py).
>>> fmt = get_format("alpaca")
>>> fmt.read({"instruction": "Add", "input": "2+2", "output": "4"})["messages"][0]["content"]
'Add\\n2+2'
"""

from __future__ import annotations

import ast
import json
from typing import Any, Dict, List, Optional, Tuple

from . import function_calling, instructions, registry
from .registry import InputFormat
from .rows import PLAIN_ROLES, ROLE_ALIASES, RowError, block_media, canonical, content_text, media_list, norm_message


def _str(row: Dict[str, Any], key: str, required: bool = True) -> Optional[str]:
    value = row.get(key)
    if value is None:
        if required:
            raise RowError(f"missing '{key}'")
        return None
    if not isinstance(value, str):
        raise RowError(f"'{key}' must be a string, got {type(value).__name__}")
    return value


def _images(row: Dict[str, Any]) -> List[Any]:
    if row.get("images") is not None:
        return media_list(row["images"], "images")
    return media_list(row.get("image"), "image")


def _videos(row: Dict[str, Any]) -> List[Any]:
    if row.get("videos") is not None:
        return media_list(row["videos"], "videos")
    return media_list(row.get("video"), "video")


def _extra(row: Dict[str, Any], used) -> Dict[str, Any]:
    return {k: v for k, v in row.items() if k not in used}


def _rejected_text(value: Any, where: str) -> Optional[str]:
    """``rejected_response`` may be a string or a list of assistant messages (ms-swift)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        value = [value]
    if isinstance(value, list):
        msgs = [norm_message(m, f"{where}[{i}]") for i, m in enumerate(value)]
        if any(m["role"] == "user" for m in msgs):
            raise RowError(f"{where} may not contain a user turn")
        return "".join(m["content"] for m in msgs)
    raise RowError(f"{where} must be a string or a list of messages, got {type(value).__name__}")


def _label(value: Any) -> Optional[bool]:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    raise RowError(f"'label' must be a boolean, got {value!r}")


def _messages(value: Any, where: str = "messages"):
    """A list of turns (see :func:`_turns`); plain ``{"role", "content": str}`` turns are used as they are."""
    if type(value) is list and value:
        # hot path: plain {"role", "content": str} messages are used as they are (no copies)
        for m in value:
            if type(m) is not dict or len(m) != 2 or type(m.get("content")) is not str \
                    or m.get("role") not in PLAIN_ROLES:
                break
        else:
            return value
    return _turns(value, where)


# -- system prompt and turns, as ms-swift's preprocessors read them --------------------------------------
def _system(row: Dict[str, Any]) -> Optional[str]:
    """The system prompt column: ``system``, else ``system_prompt`` (ms-swift maps both; ``system`` wins). An
    empty string is kept: for ms-swift's template ``""`` means "no system prompt", None the template's default."""
    return _str(row, "system" if "system" in row else "system_prompt", required=False)


def _with_system(system: Optional[str], msgs: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """``msgs`` with the system column as a first turn, unless they open with a system turn already: ms-swift
    (and LLaMA-Factory) keep that turn and ignore the column (two system turns would not encode)."""
    if system is None or (msgs and msgs[0]["role"] == "system"):
        return msgs
    return [{"role": "system", "content": system}] + msgs


def _turn_keys(turn: Any) -> Tuple[str, str]:
    if not isinstance(turn, dict):
        return "role", "content"
    return "from" if "from" in turn else "role", "value" if "value" in turn else "content"


_PAIR_USER = ("human", "user")  # ms-swift's pair style: the first spelling present wins, as in its _to_std_key
_PAIR_ASSISTANT = ("bot", "gpt", "assistant")


def _pair_turns(turns: List[Any], where: str) -> List[Dict[str, Any]]:
    """ms-swift's ShareGPT pair style ``[{"human": q, "assistant": a}, ...]`` (a final pair may lack the answer)."""
    out = []
    for i, t in enumerate(turns):
        if not isinstance(t, dict):
            raise RowError(f"{where}[{i}] must be an object, got {type(t).__name__}")
        user = next((k for k in _PAIR_USER if k in t), None)
        if user is None:
            raise RowError(f"{where}[{i}] has neither role/content, from/value nor a human/user turn")
        out.append({"role": "user", "content": content_text(t[user], f"{where}[{i}].{user}")})
        answer = next((k for k in _PAIR_ASSISTANT if t.get(k) is not None), None)
        if answer is not None:
            out.append({"role": "assistant", "content": content_text(t[answer], f"{where}[{i}].{answer}")})
    return out


def _openai_tool_calls(turns: List[Any], where: str) -> List[Any]:
    """OpenAI assistant ``tool_calls`` as ms-swift reads them (its ``normalize_openai_tool_calls``): the text, if
    any, as an assistant turn, then one ``tool_call`` turn ``{name, arguments}`` per call; the tool results that
    follow are put in call order when every one carries one of the calls' ids."""
    turns = list(turns)
    out = []
    for i, turn in enumerate(turns):
        calls = turn.get("tool_calls") if isinstance(turn, dict) and turn.get("role") == "assistant" else None
        if not calls:
            out.append(turn)
            continue
        if not isinstance(calls, list) or not all(isinstance(c, dict) for c in calls):
            raise RowError(f"{where}[{i}].tool_calls must be a list of objects")
        order = {c.get("id"): k for k, c in enumerate(calls)}
        end = i + 1
        while end < len(turns) and isinstance(turns[end], dict) and turns[end].get("role") in ("tool", "tool_response"):
            end += 1
        results = turns[i + 1:end]
        if None not in order and len(order) == len(calls) == len(results) \
                and set(order) == {r.get("tool_call_id") for r in results}:
            turns[i + 1:end] = sorted(results, key=lambda r: order[r["tool_call_id"]])
        keep = {k: turn[k] for k in ("loss", "loss_scale") if turn.get(k) is not None}
        if turn.get("content"):
            out.append({"role": "assistant", "content": turn["content"], **keep})
        for k, call in enumerate(calls):
            fn = call.get("function", call)
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise RowError(f"{where}[{i}].tool_calls[{k}] has no function name")
            args = fn.get("arguments", {})
            if isinstance(args, str):
                try:
                    args = json.loads(args)
                except ValueError:
                    pass
            out.append({"role": "tool_call", "content": {"name": fn["name"], "arguments": args}, **keep})
    return out


def _turns(value: Any, where: str) -> List[Dict[str, Any]]:
    """A ``messages`` / ``conversations`` column as ms-swift's MessagesPreprocessor reads it: turns keyed
    ``role``/``content`` or ``from``/``value`` (per turn), or its pair style; OpenAI ``tool_calls`` expanded."""
    if not isinstance(value, list):
        raise RowError(f"'{where}' must be a list of turns, got {type(value).__name__}")
    if not value:
        raise RowError(f"'{where}' is empty")
    first = value[0]
    if isinstance(first, dict) and not any(k in first for k in ("role", "content", "from", "value")):
        return _pair_turns(value, where)
    if any(isinstance(t, dict) and t.get("tool_calls") for t in value):
        value = _openai_tool_calls(value, where)
    return [norm_message(t, f"{where}[{i}]", *_turn_keys(t)) for i, t in enumerate(value)]


def _rejected(row: Dict[str, Any]) -> Optional[str]:
    """ms-swift's ``rejected_response`` column, which every one of its preprocessors passes through."""
    return _rejected_text(row.get("rejected_response"), "rejected_response")


# -- swift messages ---------------------------------------------------------------------------------
SWIFT_COLUMNS = {"messages", "images", "image", "videos", "video", "solution", "rejected_response", "label",
               "rejected_messages", "rejected_images", "system", "system_prompt"}


def read_swift(row: Dict[str, Any]) -> Dict[str, Any]:
    raw = row.get("messages")
    msgs = _messages(raw)
    if msgs is raw:  # hot path: plain text messages, no media; string solution / rejected_response, bool label
        solution = rejected = label = None
        extra: Dict[str, Any] = {}
        for k, v in row.items():
            if k not in SWIFT_COLUMNS:
                extra[k] = v
            elif k == "messages":
                continue
            elif k == "solution" and type(v) is str:
                solution = v
            elif k == "rejected_response" and type(v) is str:
                rejected = v
            elif k == "label" and type(v) is bool:
                label = v
            else:
                break
        else:
            return {"messages": msgs, "images": [], "videos": [], "solution": solution, "rejected": rejected,
                    "rejected_messages": None, "rejected_images": None, "label": label, "extra": extra}
    images = _images(row)
    if not images and msgs is not raw:  # OpenAI image_url blocks carry the media inline (not plain messages)
        for m in raw:
            if isinstance(m, dict):
                images.extend(block_media(m.get("content")))
    rej_msgs = row.get("rejected_messages")
    solution = row.get("solution")
    if solution is not None and not isinstance(solution, str):
        solution = json.dumps(solution, ensure_ascii=False)  # e.g. a box list; rewards get a string
    return canonical(
        _with_system(_system(row), msgs), images, _videos(row), solution=solution, rejected=_rejected(row),
        label=_label(row.get("label")), extra=_extra(row, SWIFT_COLUMNS),
        rejected_messages=_messages(rej_msgs, "rejected_messages") if rej_msgs is not None else None,
        rejected_images=media_list(row.get("rejected_images"), "rejected_images")
        if row.get("rejected_images") is not None else None)


# -- legacy query / response ------------------------------------------------------------------------
_QR_USED = {"query", "response", "history", "system", "system_prompt", "images", "image", "videos", "video", "solution",
            "rejected_response", "label"}


def _history(value: Any) -> List[Dict[str, str]]:
    if value is None:
        return []
    if isinstance(value, str):  # ms-swift literal_evals a string history
        try:
            value = json.loads(value)
        except ValueError:
            try:
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                raise RowError("'history' is a string that is neither JSON nor a Python literal") from None
    if not isinstance(value, list):
        raise RowError(f"'history' must be a list of [query, response] pairs, got {type(value).__name__}")
    out = []
    for i, pair in enumerate(value):
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise RowError(f"history[{i}] must be a [query, response] pair of strings")
        out += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
    return out


def _response(row: Dict[str, Any], key: str) -> Optional[str]:
    if isinstance(row.get(key), list):
        raise RowError(f"'{key}' is a list: ms-swift would train on its first item only (a random one with "
                       f"RANDOM_DATASET_RESPONSE=1); keep the one response you mean")
    return _str(row, key, required=False)


# the columns ms-swift's ResponsePreprocessor takes as the response (when a row has exactly one of them)
RESPONSE_ALIASES = ("answer", "output", "targets", "target", "answer_key", "answers", "text", "completion",
                    "content", "solution")


def _response_key(row: Dict[str, Any]) -> str:
    """``response``, else the one response alias the row has (ms-swift renames it to ``response``; with two or
    more it renames none of them, and the row has no response: e.g. ``answer`` + ``solution`` is a prompt)."""
    if "response" in row:
        return "response"
    found = [k for k in RESPONSE_ALIASES if k in row]
    return found[0] if len(found) == 1 else "response"


def read_query_response(row: Dict[str, Any]) -> Dict[str, Any]:
    msgs = _history(row.get("history")) + [{"role": "user", "content": _str(row, "query")}]
    key = _response_key(row)
    response = _response(row, key)
    if response is not None:
        msgs.append({"role": "assistant", "content": response})
    solution = row.get("solution")
    return canonical(_with_system(_system(row), msgs), _images(row), _videos(row),
                     solution=solution if isinstance(solution, str) else None, rejected=_rejected(row),
                     label=_label(row.get("label")), extra=_extra(row, _QR_USED | {key}))


# -- ShareGPT / LLaVA -------------------------------------------------------------------------------
_SG_USED = {"conversations", "conversation", "system", "system_prompt", "rejected_response", "images", "image",
            "videos", "video", "chosen", "rejected", "solution", "label"}


def _pref_turn(value: Any, where: str) -> Optional[str]:
    """LLaMA-Factory ShareGPT preference: ``chosen``/``rejected`` are one ``{from, value}`` turn."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):
        return norm_message(value, where, "from" if "from" in value else "role",
                            "value" if "value" in value else "content")["content"]
    raise RowError(f"'{where}' must be a turn object or a string")


def read_sharegpt(row: Dict[str, Any]) -> Dict[str, Any]:
    key = "conversations" if "conversations" in row else "conversation"
    msgs = _turns(row.get(key), key)
    chosen = _pref_turn(row.get("chosen"), "chosen")
    if chosen is not None:
        msgs.append({"role": "assistant", "content": chosen})
    solution = row.get("solution")
    rejected = _pref_turn(row.get("rejected"), "rejected")
    return canonical(_with_system(_system(row), msgs), _images(row), _videos(row),
                     solution=solution if isinstance(solution, str) else None,
                     rejected=rejected if rejected is not None else _rejected(row), label=_label(row.get("label")),
                     extra=_extra(row, _SG_USED))


# -- Alpaca -----------------------------------------------------------------------------------------
_ALPACA_USED = {"instruction", "input", "output", "system", "system_prompt", "history", "images", "image", "chosen",
                "rejected", "rejected_response", "label", "solution"}


def read_alpaca(row: Dict[str, Any]) -> Dict[str, Any]:
    instruction = _str(row, "instruction", required=False)
    inp = _str(row, "input", required=False)
    # ms-swift's AlpacaPreprocessor (and LLaMA-Factory): "instruction\ninput" when both are non-empty, else
    # whichever one is (an empty instruction does not leave a leading newline)
    query = f"{instruction}\n{inp}" if instruction and inp else instruction or inp
    if query is None:
        raise RowError("missing 'instruction' (and no 'input')")
    msgs = _history(row.get("history")) + [{"role": "user", "content": query}]
    response = _response(row, "output")
    if response is None:
        response = _str(row, "chosen", False)
    if response is not None:
        msgs.append({"role": "assistant", "content": response})
    solution = row.get("solution")
    rejected = _str(row, "rejected", False)
    return canonical(_with_system(_system(row), msgs), _images(row), _videos(row),
                     solution=solution if isinstance(solution, str) else None,
                     rejected=rejected if rejected is not None else _rejected(row), label=_label(row.get("label")),
                     extra=_extra(row, _ALPACA_USED))


# -- RLAIF-V ----------------------------------------------------------------------------------------
_RLAIF_USED = {"question", "chosen", "rejected", "image", "images"}


def _ensure_tags(text: str, n: int, tag: str = "<image>") -> str:
    """Prepend missing tags so that the tag count equals the media count (explicit, unlike ms-swift)."""
    have = text.count(tag)
    return tag * (n - have) + text if have < n else text


def read_rlaif_v(row: Dict[str, Any]) -> Dict[str, Any]:
    images = _images(row)
    question = _ensure_tags(_str(row, "question"), len(images))
    msgs = [{"role": "user", "content": question}, {"role": "assistant", "content": _str(row, "chosen")}]
    return canonical(msgs, images, rejected=_str(row, "rejected"), extra=_extra(row, _RLAIF_USED))


# -- TRL --------------------------------------------------------------------------------------------
_TRL_USED = {"prompt", "chosen", "rejected", "completion", "label", "images", "image", "solution"}


def trl_part(value: Any, where: str, default_role: str) -> List[Dict[str, Any]]:
    if isinstance(value, str):
        return [{"role": default_role, "content": value}]
    return _messages(value, where)


def _assistant_text(msgs: List[Dict[str, Any]], where: str) -> str:
    if any(m["role"] == "user" for m in msgs):
        raise RowError(f"'{where}' contains a user turn; with an explicit 'prompt' it must hold the answer only")
    return "".join(m["content"] for m in msgs)


def _common_prefix(a, b):
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def read_trl(row: Dict[str, Any]) -> Dict[str, Any]:
    images = _images(row)
    solution = row.get("solution") if isinstance(row.get("solution"), str) else None
    extra = _extra(row, _TRL_USED)
    if row.get("prompt") is None and row.get("chosen") is not None:  # implicit prompt
        chosen = _messages(row.get("chosen"), "chosen")
        rejected = _messages(row.get("rejected"), "rejected")
        n = _common_prefix(chosen, rejected)
        if n == 0 or chosen[n - 1]["role"] == "assistant":
            raise RowError("implicit-prompt preference row: chosen and rejected share no prompt")
        return canonical(chosen[:n] + [{"role": "assistant", "content": _assistant_text(chosen[n:], "chosen")}],
                         images, rejected=_assistant_text(rejected[n:], "rejected"), extra=extra,
                         solution=solution)
    prompt = trl_part(row.get("prompt"), "prompt", "user") if row.get("prompt") is not None else None
    if prompt is None:
        raise RowError("missing 'prompt'")
    msgs = list(prompt)
    chosen = row.get("chosen", row.get("completion"))
    if chosen is not None:
        msgs.append({"role": "assistant",
                     "content": _assistant_text(trl_part(chosen, "chosen", "assistant"), "chosen")})
    rejected = row.get("rejected")
    rej = _assistant_text(trl_part(rejected, "rejected", "assistant"), "rejected") if rejected is not None else None
    return canonical(msgs, images, rejected=rej, label=_label(row.get("label")), extra=extra, solution=solution)


# -- prompt / answer RL rows ------------------------------------------------------------------------
_PA_USED = {"problem", "answer", "solution", "images", "image", "videos", "video", "system", "system_prompt"}


def read_prompt_answer(row: Dict[str, Any]) -> Dict[str, Any]:
    gold = row.get("answer", row.get("solution"))
    if gold is not None and not isinstance(gold, str):
        if isinstance(gold, (int, float)) and not isinstance(gold, bool):
            gold = str(gold)
        else:
            raise RowError(f"'answer' must be a string or a number, got {type(gold).__name__}")
    msgs = [{"role": "user", "content": _str(row, "problem")}]
    if gold is not None:
        msgs.append({"role": "assistant", "content": gold})
    return canonical(_with_system(_system(row), msgs), _images(row), _videos(row),
                     solution=gold, extra=_extra(row, _PA_USED))


# -- verl -------------------------------------------------------------------------------------------
_VERL_USED = {"prompt", "images", "image", "videos", "reward_model"}


def read_verl(row: Dict[str, Any]) -> Dict[str, Any]:
    msgs = _messages(row.get("prompt"), "prompt")
    rm = row.get("reward_model")
    gold = rm.get("ground_truth") if isinstance(rm, dict) else None
    if gold is not None and not isinstance(gold, str):
        gold = json.dumps(gold, ensure_ascii=False)
    if gold is not None:
        msgs.append({"role": "assistant", "content": gold})
    return canonical(msgs, _images(row), _videos(row), solution=gold, extra=_extra(row, _VERL_USED))


# -- code datasets (tests for the code_tests reward): swift_ext.convert.code ------------------------------
def _is_code_row(row: Dict[str, Any]) -> bool:
    from .code import is_code_row

    return is_code_row(row)


def read_code(row: Dict[str, Any]) -> Dict[str, Any]:
    from .code import read_code as read

    return read(row)


# -- registry of built-ins, detection ---------------------------------------------------------------
def _has(*keys):
    return lambda row: all(k in row for k in keys)


BUILTIN_FORMATS = [
    InputFormat("swift", _has("messages"), read_swift, "ms-swift messages (+images, solution, rejected_response, "
                "rejected_messages, label)", 10),
    InputFormat("llava", lambda r: ("conversations" in r or "conversation" in r) and isinstance(r.get("image"), str),
                read_sharegpt, "LLaVA JSON: conversations[from,value] + image", 20),
    InputFormat("sharegpt", lambda r: "conversations" in r or "conversation" in r, read_sharegpt,
                "ShareGPT conversations[from,value] (+system, images, chosen/rejected turns)", 25),
    InputFormat("code", _is_code_row, read_code, "code datasets: open-r1 verification_info, APPS/TACO input_output, "
                "LiveCodeBench, HumanEval, MBPP, KodCode (a tests column for code_tests)", 28),
    InputFormat("verl", _has("prompt", "reward_model"), read_verl,
                "verl parquet: prompt messages + reward_model.ground_truth", 30),
    InputFormat("ifeval", instructions.detect, instructions.read_ifeval,
                "IFEval: prompt + instruction_id_list + kwargs (kept for the ifeval reward)", 32),
    InputFormat("function_calling", function_calling.detect, function_calling.read_function_calling,
                "function calling: tools + answers (xLAM / Hermes style) -> tool_call turns, tools, gold calls in "
                "solution", 33),
    InputFormat("rlaif_v", _has("question", "chosen", "rejected"), read_rlaif_v,
                "RLAIF-V preference: question/chosen/rejected/image", 35),
    InputFormat("trl_preference",
                lambda r: "prompt" in r or ("chosen" in r and "rejected" in r and "instruction" not in r), read_trl,
                "TRL prompt/chosen/rejected or prompt/completion/label, plain or conversational", 40),
    InputFormat("alpaca", _has("instruction"), read_alpaca, "Alpaca instruction/input/output (or chosen/rejected)", 45),
    InputFormat("query_response", _has("query"), read_query_response,
                "legacy ms-swift query/response/history/system/images", 50),
    InputFormat("prompt_answer", _has("problem"), read_prompt_answer,
                "RL rows problem/answer (or solution)/images (EasyR1, R1-V)", 55),
]


def formats() -> List[InputFormat]:
    """Every registered input format (built-in and from plugins), in detection order."""
    return sorted((obj for _, obj in registry.converters() if isinstance(obj, InputFormat)),
                  key=lambda f: f.priority)


def get_format(name: str) -> InputFormat:
    return registry.get(name, InputFormat)


def detect(row: Any) -> Optional[InputFormat]:
    """The first format whose ``detect`` accepts ``row`` (None when none does)."""
    if not isinstance(row, dict):
        return None
    for fmt in formats():
        try:
            if fmt.detect(row):
                return fmt
        except Exception:  # a plugin's detect must not break detection
            continue
    return None


def describe_columns(row: Any) -> str:
    if isinstance(row, dict):
        return "columns [" + ", ".join(sorted(map(str, row))[:20]) + "]"
    return f"a JSON {type(row).__name__}"


def read_row(row: Any, fmt: Optional[InputFormat] = None) -> Tuple[InputFormat, Dict[str, Any]]:
    """(format, canonical row) of one raw row, the format detected when not given; a RowError names the
    ``parse`` or ``format`` check otherwise. ``convert`` and ``validate`` both read rows through here."""
    if not isinstance(row, dict):
        raise RowError(f"a row must be a JSON object, got {type(row).__name__}", "parse")
    if fmt is None:
        fmt = detect(row)
        if fmt is None:
            raise RowError(f"cannot detect the input format from {describe_columns(row)}; pass --from", "format")
    try:
        return fmt, fmt.read(row)
    except RowError as exc:
        raise RowError(exc.reason, "format") from None
    except RecursionError:
        raise RowError("row nested too deeply", "format") from None
    except Exception as exc:  # a plugin reader must not take the whole run down
        raise RowError(f"{fmt.name} reader failed: {type(exc).__name__}: {exc}", "format") from None


__all__ = ["InputFormat", "BUILTIN_FORMATS", "formats", "get_format", "detect", "read_row", "ROLE_ALIASES"]
