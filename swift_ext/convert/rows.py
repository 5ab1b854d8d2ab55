"""The canonical row every reader produces and every target consumes, and the per-row error.

A canonical row is a plain dict (cheap to build on the hot path) with these keys:

- ``messages``: list of ``{"role", "content"}`` (content is a string with ``<image>``/``<video>`` tags),
  possibly ending with the (chosen) assistant turn;
- ``images`` / ``videos``: lists of paths, URLs, base64 strings or ``{"bytes", "path"}`` dicts;
- ``solution``: the reference answer (or None);
- ``rejected``: the rejected assistant text (or None); ``rejected_messages`` / ``rejected_images``:
  a full rejected conversation (or None);
- ``label``: KTO label (bool or None);
- ``extra``: every other column, passed through.

>>> c = canonical([{"role": "user", "content": "hi"}])
>>> sorted(c)
['extra', 'images', 'label', 'messages', 'rejected', 'rejected_images', 'rejected_messages', 'solution', 'videos']

The helpers at the end build output rows from a canonical row (media columns, pass-through columns,
the reference answer); every target uses them.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

from ..errors import SwiftExtError
from ..extract import extract_answer
from ..tools.parse import parse_messages

ROLES = ("system", "user", "assistant", "tool", "tool_call", "tool_response")
PLAIN_ROLES = frozenset(ROLES)
PROMPT_END = frozenset(("user", "tool_response", "tool"))  # roles a prompt may end with
ANSWER_ROLES = frozenset(("assistant", "tool_call"))  # roles of the answer that follows a prompt
# columns that grade a GRPO row without a ``solution`` (the ``ifeval`` reward reads them)
GRADING_COLUMNS = ("instruction_id_list",)

# OnPolicySample field names (swift/rl_core/data.py) that are not dataset keys: a GRPO column with one of these
# names is taken as that field instead of reaching the reward functions (a test checks this list against
# ms-swift), plus the reward call's own keyword names (trainer_state, completions, trajectory_inputs).
# teacher_prompt / teacher_images are real dataset keys (OPSD) and pass through.
GRPO_RESERVED = frozenset({
    "prompt_id", "request_id", "response_token_ids", "response_loss_mask", "rollout_logprobs", "finish_reason",
    "add_eos", "rollout_infos", "routed_experts", "encoded", "extra", "is_truncated", "teacher_messages",
    "trainer_state", "completions", "trajectory_inputs"})
# ms-swift's loader overwrites a column named ``dataset`` with the dataset's name (dataset/loader.py)
LOADER_OVERWRITTEN = frozenset({"dataset"})
RENAME_PREFIX = "orig_"

# ShareGPT / LLaVA / LLaMA-Factory role spellings -> ms-swift roles (matched case-insensitively, ``-`` read as
# ``_``). ms-swift's MessagesPreprocessor knows the same names except model / chatgpt / bard / bing and other
# casings, whose rows it drops; swift-ext reads them (docs/datasets.md, "Fidelity to ms-swift").
ROLE_ALIASES = {
    "human": "user", "user": "user",
    "gpt": "assistant", "assistant": "assistant", "model": "assistant", "chatgpt": "assistant",
    "bard": "assistant", "bing": "assistant", "bot": "assistant",
    "system": "system",
    "function_call": "tool_call", "tool_call": "tool_call",
    "observation": "tool_response", "observations": "tool_response", "function_response": "tool_response",
    "tool_response": "tool_response", "tool": "tool",
}
TOOL_ROLES = frozenset(("tool_call", "tool_response", "tool"))


class RowError(SwiftExtError, ValueError):
    """One input row cannot be converted; ``reason`` says why (the engine adds file and line). ``check`` names
    the validation check it is (``parse``, ``format``, ``role_order``, ...) when it is one."""

    def __init__(self, reason: str, check: Optional[str] = None):
        self.reason = reason
        self.check = check
        super().__init__(reason)


def canonical(messages: List[Dict[str, Any]], images=None, videos=None, solution=None, rejected=None,
              label=None, extra=None, rejected_messages=None, rejected_images=None) -> Dict[str, Any]:
    """Build a canonical row (see the module docstring)."""
    return {"messages": messages, "images": images or [], "videos": videos or [], "solution": solution,
            "rejected": rejected, "rejected_messages": rejected_messages, "rejected_images": rejected_images,
            "label": label, "extra": extra if extra is not None else {}}


def content_text(content: Any, where: str = "content") -> str:
    """A message content as text: strings pass; OpenAI/TRL content blocks become text with ``<image>`` tags.

    >>> content_text([{"type": "image"}, {"type": "text", "text": "What is it?"}])
    '<image>What is it?'
    """
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
                continue
            if not isinstance(block, dict):
                raise RowError(f"{where}: content block must be an object, got {type(block).__name__}")
            kind = block.get("type")
            if kind == "text":
                text = block.get("text")
                if not isinstance(text, str):
                    raise RowError(f"{where}: text block without a string 'text'")
                parts.append(text)
            elif kind in ("image", "image_url"):
                parts.append("<image>")
            elif kind in ("video", "video_url"):
                parts.append("<video>")
            else:
                raise RowError(f"{where}: unsupported content block type {kind!r}")
        return "".join(parts)
    if content is None:
        raise RowError(f"{where} is missing (null)")
    raise RowError(f"{where} must be a string, got {type(content).__name__}")


def block_media(content: Any) -> List[Any]:
    """Media embedded in OpenAI-style blocks (``image_url.url``/``image``), in order; empty if none."""
    out = []
    if isinstance(content, list):
        for block in content:
            if isinstance(block, dict) and block.get("type") == "image_url":
                url = block.get("image_url")
                out.append(url.get("url") if isinstance(url, dict) else url)
            elif isinstance(block, dict) and block.get("type") == "image" and block.get("image") is not None:
                out.append(block["image"])
    return out


def norm_message(msg: Any, where: str, role_key: str = "role", content_key: str = "content") -> Dict[str, Any]:
    """One message dict normalised to ms-swift ``{"role", "content"}`` (keeps ``loss``/``loss_scale``, and ``name``
    on a tool result, as ms-swift does)."""
    if not isinstance(msg, dict):
        raise RowError(f"{where} must be an object, got {type(msg).__name__}")
    raw_role = msg.get(role_key)
    if not isinstance(raw_role, str):
        raise RowError(f"{where}: missing or non-string '{role_key}'")
    role = ROLE_ALIASES.get(raw_role.lower().replace("-", "_"))
    if role is None:
        raise RowError(f"{where}: unknown role {raw_role!r}")
    if msg.get("tool_calls"):
        raise RowError(f"{where}: OpenAI 'tool_calls' are read in a conversation's turns only; write them as "
                       f"'tool_call' turns (content: the JSON of {{name, arguments}})")
    content = msg.get(content_key)
    if role in TOOL_ROLES and content is not None and not isinstance(content, str):
        # ms-swift's template writes a structured tool call / result as its JSON
        content = json.dumps(content, ensure_ascii=False)
    out = {"role": role, "content": content_text(content, f"{where}.{content_key}")}
    for k in ("loss", "loss_scale"):
        if k in msg and msg[k] is not None:
            out[k] = msg[k]
    if role in ("tool", "tool_response") and isinstance(msg.get("name"), str):
        out["name"] = msg["name"]  # native agent templates (Gemma4) read the tool's name; ms-swift keeps it
    return out



def norm_messages(raw: Any, where: str = "messages") -> List[Dict[str, Any]]:
    """A row's non-empty ``messages`` list, each message through :func:`norm_message`."""
    if not isinstance(raw, list) or not raw:
        raise RowError(f"'{where}' must be a non-empty list")
    return [norm_message(m, f"{where}[{i}]") for i, m in enumerate(raw)]

def media_list(value: Any, where: str) -> List[Any]:
    """``images`` / ``image`` value as a list (a string or dict becomes a one-item list; None -> [])."""
    if value is None:
        return []
    if isinstance(value, (str, dict, bytes)):
        return [value]
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            if item is None or not isinstance(item, (str, dict, bytes, list)):
                raise RowError(f"{where}[{i}] must be a path, URL, base64 string or {{bytes, path}} object, "
                               f"got {type(item).__name__}")
        return list(value)
    raise RowError(f"{where} must be a string or a list, got {type(value).__name__}")


def last_assistant(messages: List[Dict[str, Any]]) -> Optional[str]:
    """Content of the final message if it is an assistant turn, else None."""
    if messages and messages[-1]["role"] == "assistant":
        return messages[-1]["content"]
    return None


def trailing_calls(messages: List[Dict[str, Any]]) -> Optional[str]:
    """The final ``tool_call`` turns as the JSON list of their calls (``[{"name", "arguments"}]``, what the
    ``tool_call`` reward reads as gold), or None when the messages do not end with one (or one cannot be read)."""
    end = len(messages)
    while end and messages[end - 1]["role"] == "tool_call":
        end -= 1
    if end == len(messages):
        return None
    calls = parse_messages(messages[end:], literal=True)
    if not calls or not all(call.ok for call in calls):
        return None
    return json.dumps([{"name": call.name, "arguments": call.arguments} for call in calls], ensure_ascii=False)


def prompt_part(messages: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The messages without the trailing answer: assistant and ``tool_call`` turns (an agent's answer is its calls)."""
    end = len(messages)
    while end and messages[end - 1]["role"] in ANSWER_ROLES:
        end -= 1
    return messages[:end]


# -- building output rows ---------------------------------------------------------------------------
def with_media(out: Dict[str, Any], c: Dict[str, Any]) -> Dict[str, Any]:
    """``out`` with the canonical row's ``images`` / ``videos`` (when it has any)."""
    if c["images"]:
        out["images"] = c["images"]
    if c["videos"]:
        out["videos"] = c["videos"]
    return out


def pass_through(c: Dict[str, Any], opts, grpo: bool = False) -> Dict[str, Any]:
    """The extra columns, with the names ms-swift would swallow renamed ``orig_<name>`` (warned via ``opts.warn``)."""
    extra = c["extra"]
    if not extra:
        return extra
    out = {}
    for k, v in extra.items():
        if k in LOADER_OVERWRITTEN or (grpo and k in GRPO_RESERVED):
            new = RENAME_PREFIX + k
            opts.warn(f"column {k!r} renamed to {new!r} "
                      + ("(ms-swift's loader overwrites 'dataset')" if k in LOADER_OVERWRITTEN
                         else "(an ms-swift GRPO sample field of that name would swallow it)"))
            k = new
        out[k] = v
    return out


def gold_answer(c: Dict[str, Any], opts) -> str:
    """The reference answer: ``solution`` if given, else the final assistant turn; ``opts.extract`` applied."""
    gold = c["solution"]
    source = "solution"
    if gold is None:
        gold = last_assistant(c["messages"])
        source = "response"
    if gold is None:
        gold = trailing_calls(c["messages"])
        source = "tool calls"
    if gold is None:
        raise RowError("no reference answer: neither 'solution' nor a final assistant turn")
    if opts.extract:
        found = extract_answer(gold, mode=opts.extract)
        if found is None or not found.strip():
            raise RowError(f"--extract {opts.extract}: nothing found in the {source} {gold[:80]!r}")
        gold = found
    if not gold.strip():
        raise RowError(f"the reference answer ({source}) is empty")
    return gold
