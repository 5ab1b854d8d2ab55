"""Targets: canonical row -> output rows (one, two for KTO pairs, or a RowError).

=========  =================================================================================
target     output row
=========  =================================================================================
``sft``    ms-swift ``messages`` ending with the assistant turn (+ ``images``/``videos``)
``grpo``   prompt-only ``messages``, the reference answer in ``solution``, media kept
``dpo``    ``messages`` + ``rejected_response`` (or ``rejected_messages`` + ``rejected_images``)
``kto``    ``messages`` + boolean ``label`` (a preference pair gives two rows)
``trl``    TRL conversational ``prompt`` / ``chosen`` / ``rejected`` (+ ``images``); labelled rows give
           TRL's unpaired ``prompt`` / ``completion`` / ``label``
``mcq``    SFT rows: the question as multiple choice, distractors from other rows' answers
``judge``  SFT rows: "is this proposed answer correct? yes/no", half of them with a distractor
=========  =================================================================================

Every output row passes ``swift-ext validate --task <target>`` (each target declares its ``task``; the
engine applies :mod:`.rules` to what it writes). ``sft`` and ``grpo`` declare a fast path for plain
``swift`` rows that gives exactly the generic path's output.

>>> from .rows import canonical
>>> c = canonical([{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "<answer>4</answer>"}])
>>> to_grpo(c, 0, Options(extract="answer_tag"))
[{'messages': [{'role': 'user', 'content': '2+2?'}], 'solution': '4'}]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from . import registry
from .formats import SWIFT_COLUMNS
from .objects import OBJECTS, grpo_objects
from .registry import Target
from .rewrite import rewrite_row
from .rows import (GRADING_COLUMNS, GRPO_RESERVED, LOADER_OVERWRITTEN, PROMPT_END, RENAME_PREFIX,  # noqa: F401
                   RowError, gold_answer, last_assistant, pass_through, prompt_part, with_media)
from ..extract import extract_answer


@dataclass
class Options:
    """Per-conversion settings shared by the targets."""

    extract: Optional[str] = None          # answer extraction mode for the reference answer (grpo/mcq/judge)
    require_solution: bool = True          # grpo: a row without a reference answer is rejected
    corruptor: Any = None                  # negatives.Corruptor
    picker: Any = None                     # negatives.CompletionPicker
    pool: Any = None                       # rewrite.AnswerPool (mcq/judge)
    seed: int = 0
    n_choices: int = 4
    warn: Callable[[str], None] = field(default=lambda msg: None)


def _need_response(c: Dict[str, Any], what: str) -> str:
    text = last_assistant(c["messages"])
    if text is None:
        raise RowError(f"no assistant response to use as {what} (the row is prompt-only)")
    return text


def to_sft(c, index, opts) -> List[Dict[str, Any]]:
    out = with_media({"messages": c["messages"]}, c)
    if c["solution"] is not None:
        out["solution"] = c["solution"]
    out.update(pass_through(c, opts))
    return [out]


def to_grpo(c, index, opts) -> List[Dict[str, Any]]:
    prompt = prompt_part(c["messages"])
    if not prompt or prompt[-1]["role"] not in PROMPT_END:
        raise RowError("no user turn to use as the GRPO prompt")
    out = with_media({"messages": prompt}, c)
    extra = pass_through(c, opts, grpo=True)
    gold = None
    if OBJECTS in extra:       # ms-swift grounding row: the answer's boxes are the gold (see .objects)
        gold, prompt_objects = grpo_objects(c["messages"], extra[OBJECTS])
        extra = {k: v for k, v in extra.items() if k != OBJECTS}
        if prompt_objects is not None:
            extra[OBJECTS] = prompt_objects
    if gold is not None and c["solution"] is None:
        out["solution"] = gold
    else:
        try:
            out["solution"] = gold_answer(c, opts)
        except RowError:
            if opts.require_solution and not any(k in c["extra"] for k in GRADING_COLUMNS):
                raise
    out.update(extra)
    return [out]


def _pair(c, index, opts):
    """(chosen text, rejected text) from the input, sampled completions, or a corruption."""
    if c["rejected"] is not None:
        return _need_response(c, "chosen"), c["rejected"]
    if c["rejected_messages"] is not None:
        rej = c["rejected_messages"]
        if prompt_part(rej) != prompt_part(c["messages"]) or last_assistant(rej) is None:
            raise RowError("rejected_messages has a different prompt (or no answer): only the dpo target keeps it")
        return _need_response(c, "chosen"), last_assistant(rej)
    if opts.picker is not None:
        return opts.picker.pick(c)
    if opts.corruptor is not None:
        chosen = _need_response(c, "chosen")
        return chosen, opts.corruptor(chosen, index)
    raise RowError("no rejected response in the row; give --negatives (rule-based) or --completions + --reward")


def _answered(messages: List[Dict[str, Any]], answer: str) -> List[Dict[str, Any]]:
    """The prompt of ``messages`` answered with ``answer``: the row's own final turn (with its ``loss`` /
    ``loss_scale``) when that is the answer, else a new assistant turn."""
    if last_assistant(messages) == answer:
        return messages
    return prompt_part(messages) + [{"role": "assistant", "content": answer}]


def to_dpo(c, index, opts) -> List[Dict[str, Any]]:
    if c["rejected_messages"] is not None:
        _need_response(c, "chosen")
        out = with_media({"messages": c["messages"]}, c)
        out["rejected_messages"] = c["rejected_messages"]
        rej_images = c["rejected_images"] if c["rejected_images"] is not None else c["images"]
        if rej_images:
            out["rejected_images"] = rej_images
        out.update(pass_through(c, opts))
        return [out]
    chosen, rejected = _pair(c, index, opts)
    if rejected == chosen:
        raise RowError("rejected response equals the chosen one (ms-swift drops such rows)")
    out = with_media({"messages": _answered(c["messages"], chosen)}, c)
    out["rejected_response"] = rejected
    if c["rejected_images"] is not None:
        out["rejected_images"] = c["rejected_images"]
    out.update(pass_through(c, opts))
    return [out]


def to_kto(c, index, opts) -> List[Dict[str, Any]]:
    extra = pass_through(c, opts)
    if c["label"] is not None and c["rejected"] is None:
        _need_response(c, "the KTO completion")
        return [{**with_media({"messages": c["messages"]}, c), "label": c["label"], **extra}]
    chosen, rejected = _pair(c, index, opts)
    if rejected == chosen:
        raise RowError("rejected response equals the chosen one")
    return [{**with_media({"messages": _answered(c["messages"], text)}, c), "label": label, **extra}
            for text, label in ((chosen, True), (rejected, False))]


def _blocks(text: str) -> List[Dict[str, Any]]:
    """``<image>`` tags -> TRL vision content blocks."""
    parts = text.split("<image>")
    out: List[Dict[str, Any]] = []
    for i, part in enumerate(parts):
        if i:
            out.append({"type": "image"})
        if part:
            out.append({"type": "text", "text": part})
    return out


def to_trl(c, index, opts) -> List[Dict[str, Any]]:
    if c["label"] is not None and c["rejected"] is None and c["rejected_messages"] is None:
        # TRL's unpaired preference type: prompt / completion / label
        completion = _need_response(c, "the TRL completion")
        out = _trl_prompt(c)
        out["completion"] = [{"role": "assistant", "content": completion}]
        out["label"] = c["label"]
        out.update(pass_through(c, opts))
        return [out]
    chosen, rejected = _pair(c, index, opts)
    if rejected == chosen:
        raise RowError("rejected response equals the chosen one")
    out = _trl_prompt(c)
    out["chosen"] = [{"role": "assistant", "content": chosen}]
    out["rejected"] = [{"role": "assistant", "content": rejected}]
    out.update(pass_through(c, opts))
    return [out]


def _trl_prompt(c) -> Dict[str, Any]:
    prompt = prompt_part(c["messages"])
    if c["images"]:
        prompt = [{"role": m["role"], "content": _blocks(m["content"])} for m in prompt]
    out: Dict[str, Any] = {"prompt": prompt}
    if c["images"]:
        out["images"] = c["images"]
    return out


def _rewrite(kind):
    def fn(c, index, opts):
        return rewrite_row(kind, c, index, opts)
    fn.__name__ = f"to_{kind}"
    return fn


# -- the fused path for plain swift rows --------------------------------------------------------------
# columns that need the generic path (media, preference fields, names ms-swift treats specially)
_SPECIAL_NO_IMAGES = frozenset((SWIFT_COLUMNS | GRPO_RESERVED | LOADER_OVERWRITTEN | {"audios"})
                               - {"messages", "images"})   # audios: the generic path checks them
_TOOL_ROLES = ("tool", "tool_call", "tool_response")


def _swift_fast_path(grpo: bool) -> Callable:
    """The fused path of ``swift -> sft`` (``grpo=False``) and ``swift -> grpo``: one function body, two closures
    (no extra call per row)."""

    def fast(obj: Dict[str, Any], conv) -> Optional[List[Dict[str, Any]]]:
        """Output rows for a plain swift row that passes every rule as it is (text, or image paths whose count
        equals the <image> tags: role order, no empty turn, ends with the assistant turn), else None."""
        try:
            msgs = obj["messages"]
            if type(msgs) is not list or not msgs:
                return None
            first = msgs[0]
            n_tags = 0
            prev = None
            for m in msgs:
                if type(m) is not dict or len(m) != 2:
                    return None
                content = m["content"]
                if type(content) is not str or "<video>" in content:
                    return None
                if "<image>" in content:
                    n_tags += content.count("<image>")
                role = m["role"]
                if role == "assistant":
                    if prev == "assistant" or prev is None or not content or content.isspace():
                        return None
                elif role == "user":
                    if prev == "user" or not content or content.isspace():
                        return None
                elif role == "system":
                    if m is not first:
                        return None
                    continue
                elif role not in _TOOL_ROLES:
                    return None
                prev = role
        except KeyError:
            return None
        if prev != "assistant":
            return None
        n = len(obj)
        images = None
        if n > 1:
            if not _SPECIAL_NO_IMAGES.isdisjoint(obj):
                return None
            images = obj.get("images")
        if images is not None:
            if type(images) is not list or not images or n_tags != len(images) or conv.media_dir:
                return None
            path_ok = conv.path_ok if conv.check_media else None
            for p in images:
                if type(p) is not str or (path_ok is not None and not path_ok(p)):
                    return None
        elif n_tags:
            return None
        if OBJECTS in obj:     # a grounding row: its placeholders are checked, and become the GRPO gold
            return None
        if not grpo:
            return [obj]
        # the prompt: everything before the final assistant turn (the rules above allow only one at the end)
        end = len(msgs) - 1
        if msgs[end - 1]["role"] not in PROMPT_END:
            return None
        gold = msgs[-1]["content"]
        extract = conv.ctx.extract
        if extract:
            gold = extract_answer(gold, mode=extract)
            if gold is None or not gold.strip():
                return None
        out = {"messages": msgs[:end]}
        if images is not None:
            out["images"] = images
        out["solution"] = gold
        if n > 1:
            for k, v in obj.items():
                if k != "messages" and k != "images":
                    out[k] = v
        return [out]

    return fast


_fast_sft, _fast_grpo = _swift_fast_path(grpo=False), _swift_fast_path(grpo=True)


BUILTIN_TARGETS = [
    Target("sft", to_sft, "ms-swift messages ending with the assistant turn", task="sft",
           fast={"swift": _fast_sft}),
    Target("grpo", to_grpo, "prompt-only messages + reference answer in 'solution' (--extract MODE to pull it "
           "out of the response)", task="grpo", fast={"swift": _fast_grpo}),
    Target("dpo", to_dpo, "messages + rejected_response (negatives: input pair, --completions, or --negatives)",
           task="dpo"),
    Target("kto", to_kto, "messages + boolean label (a preference pair gives one true and one false row)",
           task="kto"),
    Target("trl", to_trl, "TRL conversational preference: prompt / chosen / rejected (+ images); "
           "labelled rows: prompt / completion / label", task="trl", output="trl_preference"),
    Target("mcq", _rewrite("mcq"), "SFT rows asking the question as multiple choice (distractors from other "
           "rows' answers)", needs_pool=True, task="mcq"),
    Target("judge", _rewrite("judge"), "SFT rows: is the proposed answer correct? yes/no", needs_pool=True,
           task="judge"),
]


def get_target(name: str) -> Target:
    return registry.get(name, Target)


def targets() -> List[Target]:
    return [obj for _, obj in registry.converters() if isinstance(obj, Target)]
