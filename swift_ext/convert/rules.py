"""The one rule set for row validity: ``swift-ext validate`` reports it, ``swift-ext convert`` enforces it.

Every check is ``(name, severity, message)``; errors make ``validate`` fail and make ``convert`` reject the
row with the message of the first error (:func:`first_error`), so what ``convert --to T`` writes passes
``validate --task T`` and a row one rejects the other rejects with the same words.

- ``parse`` / ``format`` [error]: the row is not an object / does not read as its format (the reader's reason);
- ``tags`` [error]: more ``<image>``/``<video>`` tags than media (ms-swift leaves the extra tags as text);
  ``tags_missing`` [warning]: fewer tags than media (ms-swift silently prepends them to the first turn);
- ``media_missing`` [error]: a media path does not exist (relative paths resolve against ``root``);
  ``media_invalid`` [error]: an object with neither bytes nor a path; ``media_decode`` [error, opt-in]:
  PIL cannot open it; ``media_outside`` [error]: with a confining ``root``, a path that resolves outside it;
- ``role_order`` [error]: system not first, an assistant turn without a user turn before it, two user
  turns in a row, no user turn;
- ``empty_turn`` [error]: a user/assistant turn whose content is empty or whitespace;
- ``reserved_column`` [error, GRPO sample fields] / ``reserved_column_dataset`` [warning];
- ``objects`` [error]: an ms-swift grounding ``objects`` value that is malformed, or more ``<ref-object>`` /
  ``<bbox>`` placeholders than refs / boxes (ms-swift leaves the rest as text); ``objects_unused`` [warning]:
  fewer placeholders than objects;
- ``solution`` [error, grpo]: no ``solution`` column; ``response`` [error, sft/dpo/kto]: no final assistant
  turn; ``rejected`` [error, dpo]: no rejected response, or it equals the chosen one; ``label`` [error, kto]:
  not a boolean; ``duplicate`` [warning, file level].

Tasks: ``sft``, ``grpo``, ``dpo``, ``kto``, and the other targets' names: ``trl`` (per row ``dpo`` for a
pair, ``kto`` for a labelled completion), ``mcq`` and ``judge`` (SFT rows).

>>> msgs = [{"role": "assistant", "content": "hi"}, {"role": "user", "content": " "}]
>>> first_error(check_canonical(canonical(msgs), {"messages": msgs}, "sft", check_media=False))
'messages[0]: assistant turn without a user turn before it'
"""

from __future__ import annotations

import os
from typing import Any, Callable, Collection, Dict, List, Optional, Tuple

from ..io.media import MEDIA_COLUMNS, MediaError, check_value, classify, locate
from .objects import OBJECTS, object_checks
from .rows import GRADING_COLUMNS, GRPO_RESERVED, LOADER_OVERWRITTEN, canonical  # noqa: F401  (canonical: the doctest)

Check = Tuple[str, str, str]  # (check name, severity, message)
TASKS = ("sft", "grpo", "dpo", "kto", "trl", "mcq", "judge")
SEVERITY = {
    "parse": "error", "format": "error", "tags": "error", "tags_missing": "warning", "media_missing": "error",
    "media_decode": "error", "media_invalid": "error", "role_order": "error", "empty_turn": "error",
    "reserved_column": "error", "media_outside": "error", "objects": "error", "objects_unused": "warning",
    "reserved_column_dataset": "warning", "solution": "error", "response": "error", "rejected": "error",
    "label": "error", "duplicate": "warning",
}


_SPECIAL_COLUMNS = GRPO_RESERVED | LOADER_OVERWRITTEN


def infer_task(c: Dict[str, Any]) -> str:
    """The training task a canonical row is shaped for (``validate`` without ``--task``)."""
    if c["rejected"] is not None or c["rejected_messages"] is not None:
        return "dpo"
    if c["label"] is not None:
        return "kto"
    if not c["messages"] or c["messages"][-1]["role"] != "assistant":
        return "grpo"
    return "sft"


def row_task(task: Optional[str], c: Dict[str, Any]) -> str:
    """``task`` as one of sft / grpo / dpo / kto for this row."""
    if task is None:
        return infer_task(c)
    if task in ("mcq", "judge"):
        return "sft"
    if task == "trl":
        return "kto" if c["label"] is not None and c["rejected"] is None else "dpo"
    return task


def turn_checks(msgs: List[Dict[str, Any]]) -> List[Check]:
    """``role_order`` problems (system not first, an assistant turn without a user turn before it, two user
    turns in a row, no user turn), then ``empty_turn`` ones (a user/assistant turn empty or whitespace)."""
    order: List[Check] = []
    empty: List[Check] = []
    prev = None
    i = 0
    for m in msgs:
        role = m["role"]
        if role == "system":
            if i:
                order.append(("role_order", "error", f"messages[{i}]: system turn not at the start"))
        else:
            content = m["content"]
            if role == "user":
                if prev == "user":
                    order.append(("role_order", "error", f"messages[{i}]: two user turns in a row"))
                if not content or content.isspace():
                    empty.append(("empty_turn", "error", f"messages[{i}]: the user turn is empty"))
            elif role == "assistant":
                if prev is None or prev == "assistant":
                    order.append(("role_order", "error",
                                  f"messages[{i}]: assistant turn without a user turn before it"))
                if not content or content.isspace():
                    empty.append(("empty_turn", "error", f"messages[{i}]: the assistant turn is empty"))
            prev = role
        i += 1
    if prev is None:
        order.append(("role_order", "error", "no user turn"))
    return order + empty if empty else order


def tag_checks(msgs: List[Dict[str, Any]], images: list, videos: list, where: str = "messages") -> List[Check]:
    """``<image>`` / ``<video>`` tag counts against the media counts."""
    out: List[Check] = []
    if not images and not videos:  # text rows: only tags can be wrong
        for m in msgs:
            content = m["content"]
            if "<image>" in content or "<video>" in content:
                break
        else:
            return out
    for tag, media, what in (("<image>", images, "images"), ("<video>", videos, "videos")):
        n_tags = 0
        for m in msgs:
            if tag in m["content"]:
                n_tags += m["content"].count(tag)
        n_media = len(media)
        if n_tags > n_media:
            out.append(("tags", "error", f"{where}: {n_tags} {tag} tag(s) but {n_media} {what} "
                        f"(ms-swift would replace only the first ones and leave the rest as text)"))
        elif n_tags < n_media:
            out.append(("tags_missing", "warning", f"{where}: {n_tags} {tag} tag(s) for {n_media} {what} "
                        f"(ms-swift prepends the missing tags to the first turn)"))
    return out


def media_checks(c: Dict[str, Any], root: Optional[str] = None, decode: bool = False,
                 check: Optional[Callable[[Any, str], Optional[Check]]] = None, confine: bool = False,
                 audios: Any = None) -> List[Check]:
    """Media values that ms-swift cannot load or that no command may open, through the one media check
    (:mod:`swift_ext.io.media`: regular files only, a size cap, an image header for images, confinement to
    ``root`` with ``confine``; no length or base64 shortcut). ``check(item, kind)`` may be a cached
    :func:`media_check`; ``audios``: the row's ``audios`` column (not part of the canonical row)."""
    check = check or (lambda item, kind: media_check(item, kind, root, confine))
    out: List[Check] = []
    columns = [(key, c.get(key)) for key in ("images", "videos", "rejected_images")] + [("audios", audios)]
    for key, items in columns:
        if items is None:
            continue
        if not isinstance(items, list):
            items = [items]
        kind = MEDIA_COLUMNS[key]
        for j, item in enumerate(items):
            found = check(item, kind)
            if found is not None:
                name, message = found
                out.append((name, "error", f"{key}[{j}]: {message}" + (
                    " (relative paths resolve against --root)" if name == "media_missing" and not root
                    and isinstance(item, str) and not os.path.isabs(item) else "")))
            elif decode and kind == "image" and isinstance(item, str) and classify(item) == "path":
                full = locate(item, root)[0]
                try:
                    from PIL import Image

                    with Image.open(full) as im:
                        im.verify()
                except Exception as exc:
                    out.append(("media_decode", "error", f"{key}[{j}]: cannot decode {full}: {exc}"))
    return out


def media_check(item: Any, kind: str, root: Optional[str] = None, confine: bool = False) -> Optional[Tuple[str, str]]:
    """``(check name, reason)`` when the one media check refuses ``item``, else None."""
    try:
        check_value(item, kind=kind, root=root, confine=confine)
    except MediaError as exc:
        return exc.code, str(exc)
    return None


def check_canonical(c: Dict[str, Any], raw: Dict[str, Any], task: Optional[str] = None, *, root=None,
                    check_media=True, decode=False, confine=False) -> List[Check]:
    """Every check on one row already read into the canonical form (``raw`` is the original row)."""
    task = row_task(task, c)
    msgs = c["messages"]
    out = tag_checks(msgs, c["images"], c["videos"])
    if c["rejected_messages"]:
        images = c["rejected_images"] if c["rejected_images"] is not None else c["images"]
        out += [chk for chk in tag_checks(c["rejected_messages"], images, c["videos"], "rejected_messages")
                if chk[0] == "tags"]
    if check_media:
        out += media_checks(c, root, decode, confine=confine, audios=raw.get("audios") if isinstance(raw, dict)
                            else None)
    out += turn_checks(msgs)
    if raw.get(OBJECTS) is not None:
        out += object_checks(msgs, raw[OBJECTS])
    if not _SPECIAL_COLUMNS.isdisjoint(raw):
        for k in raw:
            if k in LOADER_OVERWRITTEN:
                out.append(("reserved_column_dataset", "warning",
                            f"column {k!r} is overwritten by ms-swift's loader with the dataset name"))
            elif task == "grpo" and k in GRPO_RESERVED:
                out.append(("reserved_column", "error", f"column {k!r} is an ms-swift GRPO sample field; "
                            f"rewards would not see it (rename it)"))
    if task == "grpo" and "solution" not in raw and not any(k in raw for k in GRADING_COLUMNS):
        hint = next((k for k in ("answer", "response", "output", "ground_truth", "target") if k in raw), None)
        out.append(("solution", "error", "no 'solution' column for GRPO" + (
            f" ('{hint}' is renamed to the response and dropped by GRPO; convert with "
            f"`swift-ext convert --to grpo` or pass --columns '{{\"{hint}\": \"solution\"}}')" if hint else "")))
    # an agent's answer may be its tool calls: ms-swift's agent template renders trailing tool_call turns as the
    # assistant response it trains on (SFT)
    if task in ("sft", "dpo", "kto") and (not msgs or msgs[-1]["role"] not in (
            ("assistant", "tool_call") if task == "sft" else ("assistant",))):
        out.append(("response", "error", f"{task}: the last turn is not an assistant response"))
    if task == "dpo":
        if c["rejected"] is None and c["rejected_messages"] is None and not c["rejected_images"]:
            out.append(("rejected", "error", "dpo: no rejected_response / rejected_messages / rejected_images"))
        elif c["rejected"] is not None and msgs and msgs[-1]["role"] == "assistant" \
                and c["rejected"] == msgs[-1]["content"]:
            out.append(("rejected", "error", "rejected_response equals the chosen response (ms-swift drops the row)"))
    if task == "kto" and not isinstance(raw.get("label"), bool):
        out.append(("label", "error", f"kto: 'label' must be true/false, got {raw.get('label')!r}"))
    return out


def first_error(checks: List[Check], ignore: Collection[str] = ()) -> Optional[str]:
    """The message of the first error among ``checks`` (skipping the names in ``ignore``), else None:
    the reason ``convert`` gives for a row that ``validate`` would flag."""
    for name, severity, message in checks:
        if severity == "error" and name not in ignore:
            return message
    return None
