"""Completion files and prompt groups: the one reader behind ``rewards score``, ``eval``, the callbacks'
group statistics and DPO negatives.

A row of a completion file holds the dataset columns ms-swift would pass to a reward (``solution``,
``images``, your own) and its completion(s), in one of these shapes:

* ``completions`` / ``responses``: a list, the samples of one prompt (one GRPO group);
* ``completion`` / ``response``: one string (``swift infer --result_path`` output); rows that share a prompt
  form a group;
* none of those, and ``messages`` ending with an assistant turn: that turn is the completion.

The reference answer is read from ``solution`` or, when a file has none, the first of ``labels``, ``answer``,
``reference``, ``ground_truth``, ``gold`` that holds a value (or ``ref_key``); it is handed to rewards as
``solution``, ms-swift's gold column. Each completion is handed to rewards with the columns ms-swift would
pass during training: ``messages`` is the prompt followed by the completion as the assistant turn.

Example::

    >>> rows = [{"prompt": "2+2?", "completions": ["4", "5"], "answer": "4"},
    ...         {"prompt": "3+3?", "response": "6", "answer": "6"}]
    >>> res = from_rows(rows)
    >>> res.completions, res.ref_key, res.groups
    (['4', '5', '6'], 'answer', [[0, 1], [2]])
    >>> res.rows[2]["solution"]
    '6'
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

from ..errors import ConfigError
from ..io import iter_jsonl

LIST_KEYS = ("completions", "responses")
TEXT_KEYS = ("completion", "response")
COMPLETION_KEYS = LIST_KEYS + TEXT_KEYS
REF_KEYS = ("solution", "labels", "answer", "reference", "ground_truth", "gold")
PROMPT_KEYS = ("prompt_id", "prompt", "query", "question", "problem")
#: columns of a completion file that are not dataset columns (never handed to a reward)
NOT_COLUMNS = frozenset(COMPLETION_KEYS) | {"logprobs"}


def prompt_turns(messages: Any) -> List[Dict[str, Any]]:
    """The prompt part of a conversation: its dict turns without the trailing assistant turn(s)."""
    turns = [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []
    while turns and turns[-1].get("role") == "assistant":
        turns = turns[:-1]
    return turns


def messages_key(messages: Any, images: Any = ()) -> str:
    """The key of a prompt given as chat messages: role and content of its prompt turns (a trailing assistant
    turn is not part of the prompt) and the names of its images.

    >>> messages_key([{"role": "user", "content": "x"}]) == messages_key(
    ...     [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}])
    True
    """
    msgs = [[m.get("role"), m.get("content")] for m in prompt_turns(messages)]
    images = [images] if isinstance(images, (str, dict)) else list(images or [])
    names = [i if isinstance(i, str) else (i.get("path") if isinstance(i, dict) else None) for i in images]
    return json.dumps([msgs, names], ensure_ascii=False, sort_keys=True, default=str)


def prompt_key(row: Dict[str, Any]) -> str:
    """What identifies a row's prompt: ``prompt_id`` / ``prompt`` / ``query`` / ``question`` / ``problem``,
    else the prompt turns of ``messages`` with the images.

    >>> prompt_key({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "a"}]}) \\
    ...     == prompt_key({"messages": [{"role": "user", "content": "hi"}]})
    True
    """
    for k in PROMPT_KEYS:
        if row.get(k) not in (None, ""):
            return f"{k}={row[k]}"
    if isinstance(row.get("messages"), list):
        return messages_key(row["messages"], row.get("images"))
    return json.dumps({k: v for k, v in row.items() if k not in NOT_COLUMNS}, sort_keys=True, default=str)


def group_indices(keys: Iterable[Any]) -> List[List[int]]:
    """Indices grouped by key, groups in order of first appearance.

    >>> group_indices(["a", "b", "a"])
    [[0, 2], [1]]
    """
    groups: Dict[Any, List[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def as_text(completion: Any) -> str:
    """Turn what a trainer hands over into the completion text.

    ms-swift passes strings; TRL passes ``[{"role": "assistant", "content": ...}]``; anything else
    (``None``, numbers, bytes) is made into a string so a reward can still score it.

    >>> as_text([{"role": "assistant", "content": "hi"}])
    'hi'
    >>> as_text(None)
    ''
    """
    if isinstance(completion, str):
        return completion
    if completion is None:
        return ""
    if isinstance(completion, bytes):
        return completion.decode("utf-8", "replace")
    if isinstance(completion, dict):
        return as_text(completion.get("content", ""))
    if isinstance(completion, (list, tuple)):
        if not completion:
            return ""
        last = completion[-1]
        if isinstance(last, dict):
            content = last.get("content", "")
            if isinstance(content, list):  # multimodal content blocks
                return "".join(b.get("text", "") for b in content if isinstance(b, dict))
            return as_text(content)
        return " ".join(as_text(c) for c in completion)
    return str(completion)


def detect_ref_key(rows: Iterable[Dict[str, Any]]) -> Optional[str]:
    """The first of :data:`REF_KEYS` that holds a value in some row."""
    rows = list(rows)
    for key in REF_KEYS:
        if any(r.get(key) not in (None, "", []) for r in rows):
            return key
    return None


@dataclass
class Results:
    """One entry per completion: ``completions[i]`` with the reward columns ``rows[i]`` from file line
    ``lines[i]``; ``groups`` holds the indices of each prompt's completions; ``rows_in`` counts the file's
    rows (= rows used + ``rejected``)."""

    path: str = "<rows>"
    completions: List[str] = field(default_factory=list)
    rows: List[Dict[str, Any]] = field(default_factory=list)
    lines: List[int] = field(default_factory=list)
    group_of: List[int] = field(default_factory=list)
    groups: List[List[int]] = field(default_factory=list)
    rows_in: int = 0
    rejected: List[Tuple[int, str]] = field(default_factory=list)
    ref_key: str = "solution"

    @property
    def rows_used(self) -> int:
        return self.rows_in - len(self.rejected)

    def columns(self, start: int = 0, stop: Optional[int] = None) -> Dict[str, List[Any]]:
        """The reward keyword arguments for completions ``start:stop``: column -> list (missing -> None)."""
        batch = self.rows[start:stop]
        keys = sorted({k for r in batch for k in r})
        return {k: [r.get(k) for r in batch] for k in keys}


def _completions_of(row: Dict[str, Any], completion_key: Optional[str]) -> Tuple[Optional[list], bool, str]:
    """(completions, is_a_group, reason when None)."""
    keys = (completion_key,) if completion_key else COMPLETION_KEYS
    for key in keys:
        if key not in row:
            continue
        value = row[key]
        if isinstance(value, list) and not (value and all(isinstance(m, dict) and "role" in m for m in value)):
            if not value:
                return None, True, f"empty {key!r} list"
            return [as_text(v) for v in value], True, ""
        if value is None:
            return None, False, f"{key!r} is null"
        return [as_text(value)], False, ""
    msgs = row.get("messages")
    if not completion_key and isinstance(msgs, list) and msgs and isinstance(msgs[-1], dict) \
            and msgs[-1].get("role") == "assistant":  # one sampled conversation: its last turn is the completion
        return [as_text(msgs[-1].get("content"))], False, ""
    return None, False, f"no completion column (looked for {', '.join(keys)}) and no final assistant turn"


def _expand(lineno: int, row: Any, completion_key: Optional[str], ref_key: str):
    """One row -> ``(key, [(completion, columns), ...])``, or ``(None, reason)`` for a rejected row. ``key`` is
    the prompt group of the row's completions (a ``completions`` list is a group of its own)."""
    if not isinstance(row, dict):
        return None, f"expected a JSON object, got {type(row).__name__}"
    comps, is_group, why = _completions_of(row, completion_key)
    if comps is None:
        return None, why
    columns = {k: v for k, v in row.items() if k not in NOT_COLUMNS and k != completion_key}
    if ref_key != "solution" and ref_key in row:
        columns["solution"] = row[ref_key]
    prompt = prompt_turns(columns.get("messages"))
    key = f"line={lineno}" if is_group else prompt_key(row)
    out = []
    for c in comps:
        r = dict(columns)
        if "messages" in columns:  # as in training: the prompt followed by this completion
            r["messages"] = prompt + [{"role": "assistant", "content": c}]
        out.append((c, r))
    return key, out


def from_rows(rows: Iterable[Any], *, path: str = "<rows>", completion_key: Optional[str] = None,
              ref_key: Optional[str] = None) -> Results:
    """Build :class:`Results` from rows (dicts, or ``(line, dict)`` pairs); unusable rows are rejected with
    their line and reason."""
    items = [item if isinstance(item, tuple) else (i, item) for i, item in enumerate(rows, 1)]
    out = Results(path=path, rows_in=len(items))
    out.ref_key = ref_key or detect_ref_key(r for _, r in items if isinstance(r, dict)) or "solution"
    keys: List[str] = []
    for lineno, row in items:
        key, got = _expand(lineno, row, completion_key, out.ref_key)
        if key is None:
            out.rejected.append((lineno, got))
            continue
        for c, r in got:
            out.completions.append(c)
            out.rows.append(r)
            out.lines.append(lineno)
            keys.append(key)
    out.groups = group_indices(keys)
    out.group_of = [0] * len(keys)
    for gi, members in enumerate(out.groups):
        for i in members:
            out.group_of[i] = gi
    out.rejected.sort()
    return out


#: completions of one prompt group beyond this are an error of a streamed read (a file whose "group" cannot be
#: a sampling group: the prompt key is probably wrong)
MAX_GROUP = 1 << 16
#: prompt groups kept open at once by a streamed read; rows of a prompt more than this many groups after its
#: previous rows start a new group (files from swift infer, rollouts and swift-ext keep a prompt's rows together)
OPEN_GROUPS = 4096


class Stream:
    """A completion file read in bounded memory: :meth:`batches` yields :class:`Results` of ``batch_size``
    completions in file order (``group_of`` holds each completion's group id, ids in order of first
    appearance, and ``groups`` stays empty); ``rows_in``, ``rejected`` and ``completions`` count as :func:`load`
    does once the batches are consumed. The reference column is detected as :func:`load` does (a first pass
    over the file when it has no ``solution``)."""

    def __init__(self, path: str, *, completion_key: Optional[str] = None, ref_key: Optional[str] = None,
                 batch_size: int = 256):
        self.path, self.completion_key, self.batch_size = path, completion_key, batch_size
        try:
            self.ref_key = ref_key or _detect_ref_key_streamed(path) or "solution"
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such file") from None
        self.rows_in = 0
        self.completions = 0
        self.rejected: List[Tuple[int, str]] = []
        self._group_ids: Dict[str, int] = {}  # open groups, least recently seen first
        self._group_sizes: Dict[int, int] = {}
        self._groups_seen = 0

    @property
    def groups(self) -> int:
        """Prompt groups seen so far (``len(load(path).groups)`` once the batches are consumed, for files that
        keep a prompt's rows together)."""
        return self._groups_seen

    def _group(self, key: str, lineno: int, n: int) -> int:
        gid = self._group_ids.pop(key, None)
        if gid is None:
            gid, self._groups_seen = self._groups_seen, self._groups_seen + 1
        self._group_ids[key] = gid  # most recently seen last
        while len(self._group_ids) > OPEN_GROUPS:
            old = next(iter(self._group_ids))
            self._group_sizes.pop(self._group_ids.pop(old), None)
        size = self._group_sizes.get(gid, 0) + n
        if size > MAX_GROUP:
            raise ConfigError(f"{self.path}:{lineno}: the prompt group {key[:80]!r} has more than {MAX_GROUP} "
                              "completions: too large to summarise as one group (is the prompt key right?)")
        self._group_sizes[gid] = size
        return gid

    def batches(self) -> Iterator[Results]:
        batch = Results(path=self.path, ref_key=self.ref_key)
        try:
            rows = iter_jsonl(self.path)
            for lineno, row in rows:
                self.rows_in += 1
                key, got = _expand(lineno, row, self.completion_key, self.ref_key)
                if key is None:
                    self.rejected.append((lineno, got))
                    continue
                gid = self._group(key, lineno, len(got))
                for c, r in got:
                    batch.completions.append(c)
                    batch.rows.append(r)
                    batch.lines.append(lineno)
                    batch.group_of.append(gid)
                    if len(batch.completions) >= self.batch_size:
                        self.completions += len(batch.completions)
                        yield batch
                        batch = Results(path=self.path, ref_key=self.ref_key)
        except FileNotFoundError:
            raise ConfigError(f"{self.path}: no such file") from None
        if batch.completions:
            self.completions += len(batch.completions)
            yield batch
        if not self.completions:
            reasons = "; ".join(f"line {n}: {why}" for n, why in self.rejected[:3])
            raise ConfigError(f"{self.path}: no row with a completion ({self.rows_in} rows; "
                              f"{reasons or 'empty file'})")


def head(path: str, limit: Optional[int], *, completion_key: Optional[str] = None,
         ref_key: Optional[str] = None) -> Results:
    """The first ``limit`` completions of a file as :class:`Results` (all of them when ``limit`` is None), read
    as a :class:`Stream`: the rows after them are never read. ``groups`` hold the group ids the stream gave."""
    if limit is None:
        return load(path, completion_key=completion_key, ref_key=ref_key)
    stream = Stream(path, completion_key=completion_key, ref_key=ref_key, batch_size=max(1, min(limit, 256)))
    out = Results(path=path, ref_key=stream.ref_key)
    for batch in stream.batches():
        take = limit - len(out.completions)
        out.completions += batch.completions[:take]
        out.rows += batch.rows[:take]
        out.lines += batch.lines[:take]
        out.group_of += batch.group_of[:take]
        if len(out.completions) >= limit:
            break
    out.rows_in, out.rejected = stream.rows_in, sorted(stream.rejected)
    out.groups = group_indices(out.group_of)
    return out


def _detect_ref_key_streamed(path: str) -> Optional[str]:
    """:func:`detect_ref_key` over a file without holding it: stops at the first row with a ``solution``."""
    seen = set()
    for _, row in iter_jsonl(path):
        if not isinstance(row, dict):
            continue
        for key in REF_KEYS:
            if key not in seen and row.get(key) not in (None, "", []):
                seen.add(key)
        if REF_KEYS[0] in seen:
            break
    return next((k for k in REF_KEYS if k in seen), None)


def load(path: str, *, completion_key: Optional[str] = None, ref_key: Optional[str] = None) -> Results:
    """Read a completion JSONL file (see the module docstring); a bad JSON line raises with file:line, rows
    without a usable completion are rejected; a file with no usable row is an error."""
    try:
        res = from_rows(iter_jsonl(path), path=path, completion_key=completion_key, ref_key=ref_key)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    if not res.completions:
        reasons = "; ".join(f"line {n}: {why}" for n, why in res.rejected[:3])
        raise ConfigError(f"{path}: no row with a completion ({res.rows_in} rows; {reasons or 'empty file'})")
    return res


__all__ = ["Results", "Stream", "head", "load", "from_rows", "prompt_key", "messages_key", "prompt_turns", "group_indices", "detect_ref_key",
           "as_text", "COMPLETION_KEYS", "REF_KEYS", "PROMPT_KEYS"]
