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

>>> from .rows import canonical
>>> c = canonical([{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "<answer>4</answer>"}])
>>> to_grpo(c, 0, Options(extract="answer_tag"))
[{'messages': [{'role': 'user', 'content': '2+2?'}], 'solution': '4'}]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from .rows import RowError, last_assistant, prompt_part

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


class Target:
    """A named writer ``fn(canonical_row, index, options) -> [output rows]`` (raises RowError)."""

    kind = "target"

    def __init__(self, name: str, fn: Callable, help: str = "", needs_pool: bool = False):
        self.name, self.fn, self.help, self.needs_pool = name, fn, help, needs_pool

    def __call__(self, c, index, opts):
        return self.fn(c, index, opts)

    def __repr__(self) -> str:
        return f"Target({self.name!r})"


def _extras(c: Dict[str, Any], opts: Options, grpo: bool = False) -> Dict[str, Any]:
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


def _media(out: Dict[str, Any], c: Dict[str, Any]) -> Dict[str, Any]:
    if c["images"]:
        out["images"] = c["images"]
    if c["videos"]:
        out["videos"] = c["videos"]
    return out


def _need_response(c: Dict[str, Any], what: str) -> str:
    text = last_assistant(c["messages"])
    if text is None:
        raise RowError(f"no assistant response to use as {what} (the row is prompt-only)")
    return text


def to_sft(c, index, opts) -> List[Dict[str, Any]]:
    _need_response(c, "the SFT target")
    out = _media({"messages": c["messages"]}, c)
    if c["solution"] is not None:
        out["solution"] = c["solution"]
    out.update(_extras(c, opts))
    return [out]


def gold_answer(c, opts) -> str:
    """The reference answer: ``solution`` if given, else the final assistant turn; ``opts.extract`` applied."""
    gold = c["solution"]
    source = "solution"
    if gold is None:
        gold = last_assistant(c["messages"])
        source = "response"
    if gold is None:
        raise RowError("no reference answer: neither 'solution' nor a final assistant turn")
    if opts.extract:
        from ..extract import extract_answer

        found = extract_answer(gold, mode=opts.extract)
        if found is None or not found.strip():
            raise RowError(f"--extract {opts.extract}: nothing found in the {source} {gold[:80]!r}")
        gold = found
    if not gold.strip():
        raise RowError(f"the reference answer ({source}) is empty")
    return gold


def to_grpo(c, index, opts) -> List[Dict[str, Any]]:
    prompt = prompt_part(c["messages"])
    if not prompt or prompt[-1]["role"] not in ("user", "tool_response", "tool"):
        raise RowError("no user turn to use as the GRPO prompt")
    out = _media({"messages": prompt}, c)
    try:
        out["solution"] = gold_answer(c, opts)
    except RowError:
        if opts.require_solution:
            raise
    out.update(_extras(c, opts, grpo=True))
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


def to_dpo(c, index, opts) -> List[Dict[str, Any]]:
    if c["rejected_messages"] is not None:
        _need_response(c, "chosen")
        out = _media({"messages": c["messages"]}, c)
        out["rejected_messages"] = c["rejected_messages"]
        rej_images = c["rejected_images"] if c["rejected_images"] is not None else c["images"]
        if rej_images:
            out["rejected_images"] = rej_images
        out.update(_extras(c, opts))
        return [out]
    chosen, rejected = _pair(c, index, opts)
    if rejected == chosen:
        raise RowError("rejected response equals the chosen one (ms-swift drops such rows)")
    msgs = prompt_part(c["messages"]) + [{"role": "assistant", "content": chosen}]
    out = _media({"messages": msgs}, c)
    out["rejected_response"] = rejected
    if c["rejected_images"] is not None:
        out["rejected_images"] = c["rejected_images"]
    out.update(_extras(c, opts))
    return [out]


def to_kto(c, index, opts) -> List[Dict[str, Any]]:
    extra = _extras(c, opts)
    if c["label"] is not None and c["rejected"] is None:
        _need_response(c, "the KTO completion")
        return [{**_media({"messages": c["messages"]}, c), "label": c["label"], **extra}]
    chosen, rejected = _pair(c, index, opts)
    if rejected == chosen:
        raise RowError("rejected response equals the chosen one")
    prompt = prompt_part(c["messages"])
    return [{**_media({"messages": prompt + [{"role": "assistant", "content": text}]}, c), "label": label, **extra}
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
        out.update(_extras(c, opts))
        return [out]
    chosen, rejected = _pair(c, index, opts)
    if rejected == chosen:
        raise RowError("rejected response equals the chosen one")
    out = _trl_prompt(c)
    out["chosen"] = [{"role": "assistant", "content": chosen}]
    out["rejected"] = [{"role": "assistant", "content": rejected}]
    out.update(_extras(c, opts))
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
        from .rewrite import rewrite_row

        return rewrite_row(kind, c, index, opts)
    fn.__name__ = f"to_{kind}"
    return fn


BUILTIN_TARGETS = [
    Target("sft", to_sft, "ms-swift messages ending with the assistant turn"),
    Target("grpo", to_grpo, "prompt-only messages + reference answer in 'solution' (--extract MODE to pull it "
           "out of the response)"),
    Target("dpo", to_dpo, "messages + rejected_response (negatives: input pair, --completions, or --negatives)"),
    Target("kto", to_kto, "messages + boolean label (a preference pair gives one true and one false row)"),
    Target("trl", to_trl, "TRL conversational preference: prompt / chosen / rejected (+ images); "
           "labelled rows: prompt / completion / label"),
    Target("mcq", _rewrite("mcq"), "SFT rows asking the question as multiple choice (distractors from other "
           "rows' answers)", needs_pool=True),
    Target("judge", _rewrite("judge"), "SFT rows: is the proposed answer correct? yes/no", needs_pool=True),
]


def get_target(name: str) -> Target:
    from .registry import get

    return get(name, Target)


def targets() -> List[Target]:
    from .registry import converters

    return [obj for _, obj in converters() if isinstance(obj, Target)]
