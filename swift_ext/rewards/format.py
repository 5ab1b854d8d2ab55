"""Format rewards: is the completion shaped as ``<think>…</think><answer>…</answer>``?"""

from __future__ import annotations

import re
from typing import Any

from ..params import Param
from .contract import Example
from .base import Reward, Score

_ANSWER_AT_END = re.compile(r"^\s*<answer>(?P<ans>.*?)</answer>\s*$", re.S)


class ThinkFormat(Reward):
    """1.0 when the completion is reasoning in ``<think>`` tags followed by one ``<answer>`` block, else 0.0.

    Tolerates Qwen3-style templates that pre-fill ``<think>`` in the prompt: a completion that starts
    inside the reasoning (``…</think><answer>4</answer>``) counts. Nothing but whitespace may follow
    ``</answer>``; the answer must not be empty; tags may not repeat.

    On the command line: ``--reward_funcs think_format:think=optional``.

    Example:
        >>> r = ThinkFormat()
        >>> r(["<think>2+2=4</think>\\n<answer>4</answer>", "2+2=4</think><answer>4</answer>", "4"])
        [1.0, 1.0, 0.0]
        >>> ThinkFormat(think="optional")(["<answer>4</answer>"])
        [1.0]
    """

    name = "think_format"
    examples = (
        Example("full", "<think>2+2=4</think>\n<answer>4</answer>", 1.0),
        Example("full", "<answer>4</answer>", 1.0, params="think=optional"),
        Example("zero", "<answer>4</answer>", 0.0),
        Example("malformed", "<think><answer></think>", 0.0),
    )
    columns = ()
    params = {
        "think": Param("required", "required: a </think> must close the reasoning; optional: an answer "
                       "block alone also counts (non-thinking templates)", choices=("required", "optional")),
        "allow_prefilled": Param(True, "accept a completion without the opening <think> (template pre-filled it)"),
    }

    def score(self, completion: str, **row: Any) -> Score:
        text = completion
        opens = text.count("<think>")
        closes = text.count("</think>")
        if opens > 1 or closes > 1 or text.count("<answer>") != 1 or text.count("</answer>") != 1:
            return 0.0
        if closes == 1:
            head, _, tail = text.partition("</think>")
            if opens == 1 and not head.lstrip().startswith("<think>"):
                return 0.0
            if opens == 0 and not self.allow_prefilled:
                return 0.0
        else:
            if opens or self.think == "required":
                return 0.0
            tail = text
        m = _ANSWER_AT_END.match(tail)
        if not m or not m.group("ans").strip():
            return 0.0
        return 1.0
