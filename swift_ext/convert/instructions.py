"""The ``ifeval`` input format: IFEval-style rows (``prompt`` + ``instruction_id_list`` + ``kwargs``).

The prompt becomes the user turn (``messages`` are read as they are); ``instruction_id_list`` and ``kwargs`` pass
through unchanged, and they are what the ``ifeval`` reward grades by, so such a row needs no ``solution`` for
``--to grpo``. A row whose instructions cannot be checked (an id that is not one of IFEval's 25, missing or
unusable arguments, a ``kwargs`` list of another length) is rejected here, with the reason, rather than reaching
training.
"""

from __future__ import annotations

import json
from typing import Any, Dict

from .rows import GRADING_COLUMNS, RowError, canonical, norm_messages


def detect(row: Dict[str, Any]) -> bool:
    return "instruction_id_list" in row


def check_instructions(ids: Any, kwargs: Any) -> None:
    """RowError unless every instruction of the row can be checked by the ``ifeval`` reward."""
    from ..rewards.ifeval.instructions import InstructionError, build_check

    if isinstance(ids, str):
        try:
            ids = json.loads(ids)
        except ValueError:
            raise RowError("'instruction_id_list' is not a JSON list") from None
    if isinstance(kwargs, str):
        try:
            kwargs = json.loads(kwargs)
        except ValueError:
            raise RowError("'kwargs' is not a JSON list") from None
    if not isinstance(ids, list) or not ids:
        raise RowError("'instruction_id_list' must be a non-empty list of instruction ids")
    if kwargs is None:
        kwargs = [None] * len(ids)
    if not isinstance(kwargs, list) or len(kwargs) != len(ids):
        raise RowError(f"'kwargs' must be a list with one entry per instruction ({len(ids)})")
    for iid, kw in zip(ids, kwargs):
        try:
            build_check(iid, kw)
        except InstructionError as exc:
            raise RowError(str(exc)) from None


def read_ifeval(row: Dict[str, Any]) -> Dict[str, Any]:
    check_instructions(row.get("instruction_id_list"), row.get("kwargs"))
    if row.get("messages") is not None:
        msgs = norm_messages(row["messages"])
    else:
        prompt = row.get("prompt")
        if not isinstance(prompt, str):
            raise RowError("missing 'prompt'" if prompt is None else "'prompt' must be a string")
        msgs = [{"role": "user", "content": prompt}]
    extra = {k: v for k, v in row.items() if k not in ("prompt", "messages")}
    return canonical(msgs, extra=extra)


__all__ = ["read_ifeval", "detect", "check_instructions", "GRADING_COLUMNS"]
