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
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple

from ..errors import ConfigError
from ..io import iter_jsonl
from ..tools.parse import image_files, parse_messages, parse_text
from .stats import Summary, summarise_groups

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


# -- multi-turn trajectories --------------------------------------------------------------------------
#: image / video placeholders of templated text (Qwen-VL's vision blocks, ms-swift's tags)
VISION = re.compile(r"<\|vision_start\|>.*?<\|vision_end\|>|<image>|<video>|<\|image_pad\|>|<\|video_pad\|>", re.S)
_CHATML_TURN = re.compile(r"<\|im_start\|>([A-Za-z_]+)\n(.*?)(?=<\|im_start\|>|\Z)", re.S)
_CHATML_END = re.compile(r"(?:<\|im_end\|>\s*)+\Z")  # ms-swift's log may hold two (a decoded turn's own + the template's)
_TOOL_RESPONSE = re.compile(r"<tool_response>\n?(.*?)\n?</tool_response>", re.S)
#: a templated trajectory longer than this many turns is read as a plain prompt (a bound on hostile logs)
MAX_TURNS = 4096


class Trajectory(NamedTuple):
    """A logged prompt split into what the trajectory started from and what the policy and its tools added.

    ``prompt`` is the prompt as a single-turn run would have logged it (so a prompt group's trajectories share
    it), ``messages`` its turns as chat messages (empty for a prompt that holds no trajectory: it is not parsed),
    ``turns`` the turns the rollout added before the final
    completion: ``{"role": "assistant", "content", "calls": [{"name", "arguments"} or {"error", ...}]}``,
    ``{"role": "tool", "content", "images": [path or None per image]}`` (a ``user`` turn a scheduler injected
    reads as ``user``)."""

    prompt: Any
    messages: List[Dict[str, Any]]
    turns: List[Dict[str, Any]]


def _image_marks(text: str) -> Tuple[str, int]:
    """Text with each vision block as ``<image>`` and the number of images in it."""
    n = 0

    def mark(m: "re.Match") -> str:
        nonlocal n
        if m.group(0) in ("<|image_pad|>", "<|video_pad|>"):
            return ""
        n += 1
        return "<image>"

    return VISION.sub(mark, text), n


def _turn(role: str, content: Any, images: Any = None) -> Dict[str, Any]:
    """One turn of a trajectory as the record holds it (see :class:`Trajectory`)."""
    if isinstance(content, list):  # multimodal content blocks
        blocks = content
        content = "".join(b.get("text", "") if b.get("type", "text") == "text" else "<image>"
                          for b in blocks if isinstance(b, dict))
    text = content if isinstance(content, str) else "" if content is None else json.dumps(content, default=str)
    text, count = _image_marks(text)
    if role == "user" and text.strip() and not _TOOL_RESPONSE.sub("", text).strip():
        role, text = "tool", "\n".join(_TOOL_RESPONSE.findall(text))  # Qwen/Hermes render a tool turn as user
    turn: Dict[str, Any] = {"role": role, "content": text}
    if role == "assistant":
        turn["calls"] = [c.to_dict() for c in parse_text(text, strip_reasoning=True)]
    elif role == "tool":
        paths = [i if isinstance(i, str) else (i or {}).get("path") if isinstance(i, dict) else None
                 for i in (images or [])] if isinstance(images, list) else []
        paths = paths or image_files(text)  # ms-swift logs a placeholder; the tool's text may name the file
        turn["images"] = (paths + [None] * count)[:max(count, len(paths))]
    return turn


def chatml_messages(text: str) -> Optional[List[Tuple[int, str, str]]]:
    """``(offset of the turn's start, role, content)`` of each turn of ChatML text (Qwen's template), the last one
    possibly open (the generation prompt); None when the text is not ChatML.

    >>> chatml_messages("<|im_start|>user\\nhi<|im_end|>\\n<|im_start|>assistant\\n")
    [(0, 'user', 'hi'), (30, 'assistant', '')]
    """
    if not isinstance(text, str) or "<|im_start|>" not in text:
        return None
    out = []
    for m in _CHATML_TURN.finditer(text):
        out.append((m.start(), m.group(1), _CHATML_END.sub("", m.group(2))))
        if len(out) > MAX_TURNS:
            return None
    return out or None


def _generated_start(roles: List[str], is_tool: List[bool], num_turns: Optional[int]) -> Optional[int]:
    """Index of the first turn the rollout added (None: the prompt holds none): the ``num_turns - 1`` last
    assistant turns with what follows them, else (no ``num_turns``) the turns after the last user turn when the
    prompt ends with a tool result."""
    n = len(roles)
    if num_turns is not None:
        want = num_turns - 1
        if want <= 0:
            return None
        start = None
        for i in range(n - 1, -1, -1):
            if roles[i] == "assistant":
                want, start = want - 1, i
                if want == 0:
                    break
        return start
    if not n or not is_tool[-1]:
        return None
    for i in range(n - 1, -1, -1):
        if roles[i] in ("user", "system") and not is_tool[i]:
            return i + 1 if i + 1 < n and roles[i + 1] == "assistant" else None
    return None


def _may_end_with_tool(prompt: Any) -> bool:
    """Whether a prompt without ``num_turns`` can hold a trajectory (a tool turn somewhere in it)."""
    if isinstance(prompt, list):
        return any(isinstance(m, dict) and m.get("role") == "tool" for m in prompt)
    return isinstance(prompt, str) and ("<tool_response>" in prompt or "<|im_start|>tool\n" in prompt)


def split_trajectory(prompt: Any, num_turns: Any = None) -> Trajectory:
    """Split the prompt ms-swift logs for a multi-turn rollout (its templated text of every turn before the final
    completion, or a list of chat messages) into :class:`Trajectory`. ``num_turns`` is the run's logged
    ``num_turns`` (model turns of the trajectory, the final one included); without it, a prompt that ends with a
    tool result is read as a trajectory back to its last user turn. A single-turn prompt comes back unchanged with
    no turns.

    >>> t = split_trajectory("<|im_start|>user\\nq<|im_end|>\\n<|im_start|>assistant\\n<tool_call>"
    ...     '{"name": "f", "arguments": {}}</tool_call><|im_end|>\\n<|im_start|>user\\n<tool_response>\\n4\\n'
    ...     "</tool_response><|im_end|>\\n<|im_start|>assistant\\n", 2)
    >>> t.prompt, [(x["role"], x["content"]) for x in t.turns]
    ('<|im_start|>user\\nq<|im_end|>\\n<|im_start|>assistant\\n', [('assistant', '<tool_call>{"name": "f", \
"arguments": {}}</tool_call>'), ('tool', '4')])
    """
    n_turns = num_turns if isinstance(num_turns, int) and not isinstance(num_turns, bool) else None
    if n_turns is not None and n_turns <= 1 or n_turns is None and not _may_end_with_tool(prompt):
        return Trajectory(prompt, [], [])  # a single-turn prompt (the common case: read without parsing)
    if isinstance(prompt, list):
        msgs = [m for m in prompt if isinstance(m, dict)]
        turns = [_turn(str(m.get("role")), m.get("content"), m.get("images")) for m in msgs]
        for t, m in zip(turns, msgs):
            if t["role"] == "assistant" and m.get("tool_calls"):
                t["calls"] = [c.to_dict() for c in parse_messages([m])]
        start = _generated_start([t["role"] for t in turns], [t["role"] == "tool" for t in turns], n_turns)
        if start is None:
            return Trajectory(prompt, turns, [])
        return Trajectory(msgs[:start], turns[:start], turns[start:])
    parsed = chatml_messages(prompt)
    if not parsed:
        return Trajectory(prompt, [], [])
    tail = ""
    if parsed[-1][1] == "assistant" and "<|im_end|>" not in prompt[parsed[-1][0]:]:
        tail = prompt[parsed[-1][0]:]  # the generation prompt the final completion follows
        parsed = parsed[:-1]
    turns = [_turn(role, content) for _, role, content in parsed]
    start = _generated_start([t["role"] for t in turns], [t["role"] == "tool" for t in turns], n_turns)
    if start is None:
        return Trajectory(prompt, turns, [])
    return Trajectory(prompt[:parsed[start][0]] + (tail or "<|im_start|>assistant\n"), turns[:start], turns[start:])


def table_rows(obj: Dict[str, Any], require_step: bool = True) -> Optional[List[Dict[str, Any]]]:
    """The rows of one line of ms-swift's ``completions.jsonl`` (a column table: ``{"step": [...], "prompt":
    [...], "completion": [...], ...}``, every list as long as ``completion``), one dict per completion; None when
    the object is not such a table (``require_step=False``: a ``completion`` list is enough); ``ValueError``
    naming the columns whose length differs.

    >>> table_rows({"step": ["1", "1"], "prompt": ["p", "p"], "completion": ["a", "b"], "r": [1.0, 0.0]})[1]
    {'step': '1', 'prompt': 'p', 'completion': 'b', 'r': 0.0}
    """
    comps = obj.get("completion")
    if not isinstance(comps, list) or (require_step and not isinstance(obj.get("step"), list)):
        return None
    n = len(comps)
    lists = {k: v for k, v in obj.items() if isinstance(v, list)}
    bad = [k for k, v in lists.items() if len(v) != n]
    if bad:
        raise ValueError(f"columns {bad} do not have {n} values like 'completion'")
    return [{k: (v[i] if isinstance(v, list) else v) for k, v in obj.items()} for i in range(n)]


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
    """The one record of scored (or to be scored) completions, whoever produced them: a completion file
    (:func:`load`, :class:`Stream`), the trainer's evaluation and sanity rollouts (the callbacks,
    :mod:`swift_ext.bridge.grpo`), a run's logged completions (:func:`swift_ext.runs.as_results`).

    One entry per completion: ``completions[i]`` with the reward columns ``rows[i]`` (from file line
    ``lines[i]``); ``groups`` holds the indices of each prompt's completions, ``group_of[i]`` the group of
    completion ``i`` and ``group_keys[g]`` what identifies group ``g`` (where it was built by key); ``rows_in``
    counts the file's rows (= rows used + ``rejected``). ``scores`` holds, once the completions are scored, one
    score per completion for each reward (``None``: abstained) and ``details`` what a reward kept per completion
    (a judge's rationale; ``None`` where nothing). :meth:`summaries` folds the scores through
    :mod:`swift_ext.scoring.stats`, the one summary.

    >>> res = Results()
    >>> for text, score in [("4", 1.0), ("5", 0.0), ("6", 1.0)]:
    ...     _ = res.add(text, {"solution": "4" if text != "6" else "6"}, group=text == "6", scores={"acc": score})
    >>> res.groups
    [[0, 1], [2]]
    >>> m = res.summaries(threshold=1.0)["acc"].metrics(ks=[1])   # 2 of 3 right; pass@1 averages the groups
    >>> round(m["mean"], 4), m["pass@1"], m["mean@2"]
    (0.6667, 0.75, 0.75)
    """

    path: str = "<rows>"
    completions: List[str] = field(default_factory=list)
    rows: List[Dict[str, Any]] = field(default_factory=list)
    lines: List[int] = field(default_factory=list)
    group_of: List[int] = field(default_factory=list)
    groups: List[List[int]] = field(default_factory=list)
    rows_in: int = 0
    rejected: List[Tuple[int, str]] = field(default_factory=list)
    ref_key: str = "solution"
    group_keys: List[Any] = field(default_factory=list)
    scores: Dict[str, List[Optional[float]]] = field(default_factory=dict)
    details: Dict[str, List[Any]] = field(default_factory=dict)

    @property
    def rows_used(self) -> int:
        return self.rows_in - len(self.rejected)

    def columns(self, start: int = 0, stop: Optional[int] = None) -> Dict[str, List[Any]]:
        """The reward keyword arguments for completions ``start:stop``: column -> list (missing -> None)."""
        batch = self.rows[start:stop]
        keys = sorted({k for r in batch for k in r})
        return {k: [r.get(k) for r in batch] for k in keys}

    def add(self, completion: Any, row: Dict[str, Any], group: Any = None, *, line: int = 0,
            scores: Optional[Dict[str, Optional[float]]] = None, details: Optional[Dict[str, Any]] = None) -> int:
        """Append one completion (its reward columns ``row``) to the prompt group ``group`` (any hashable key;
        ``None``: :func:`prompt_key` of the row), with its ``scores`` and ``details`` by reward name (a name
        missing here is ``None`` for this completion). Returns its index. ``completion`` may be ``None`` where no
        completion could be made (the SFT sanity check when the model cannot generate)."""
        i = len(self.completions)
        key = prompt_key(row) if group is None else group
        index = self.__dict__.setdefault("_group_index", {g: n for n, g in enumerate(self.group_keys)})
        gid = index.get(key)
        if gid is None:
            gid = index[key] = len(self.groups)
            self.groups.append([])
            self.group_keys.append(key)
        self.completions.append(completion)
        self.rows.append(row)
        self.lines.append(line or i + 1)
        self.group_of.append(gid)
        self.groups[gid].append(i)
        self.rows_in += 1
        for store, given in ((self.scores, scores or {}), (self.details, details or {})):
            for name in given:
                store.setdefault(name, [None] * i)
            for name, values in store.items():
                values.append(given.get(name))
        return i

    def extend(self, other: "Results") -> "Results":
        """Append every completion of ``other`` (its groups kept by their keys: a key both hold is one group)."""
        for i, completion in enumerate(other.completions):
            gid = other.group_of[i]
            key = other.group_keys[gid] if gid < len(other.group_keys) else ("group", id(other), gid)
            self.add(completion, other.rows[i], key, line=other.lines[i],
                     scores={n: v[i] for n, v in other.scores.items()},
                     details={n: v[i] for n, v in other.details.items() if v[i] is not None})
        return self

    def summaries(self, names: Optional[Sequence[str]] = None, threshold: Optional[float] = None,
                  ks: Sequence[int] = ()) -> Dict[str, Summary]:
        """The :class:`swift_ext.scoring.stats.Summary` of each reward's ``scores`` over the prompt groups (every
        scored reward when ``names`` is None; a name never scored summarises as all abstained)."""
        out = {}
        for name in (self.scores if names is None else names):
            values = self.scores.get(name) or [None] * len(self.completions)
            out[name] = summarise_groups([[values[i] for i in g] for g in self.groups], threshold, ks)
        return out


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


def trajectory_messages(traj: Trajectory) -> List[Dict[str, Any]]:
    """The chat messages of a split trajectory before its final completion (what ms-swift hands a reward as
    ``messages``, less the final assistant turn)."""
    return [{"role": t["role"], "content": t["content"]} for t in traj.messages + traj.turns]


def _expand(lineno: int, row: Any, completion_key: Optional[str], ref_key: str):
    """One row -> ``(key, [(completion, columns), ...])``, or ``(None, reason)`` for a rejected row. ``key`` is
    the prompt group of the row's completions (a ``completions`` list is a group of its own). A multi-turn
    row's templated ``prompt`` is split (:func:`split_trajectory`): the group is its starting prompt and
    ``messages`` holds the whole trajectory, as in training."""
    if isinstance(row, _Bad):
        return None, str(row)
    if not isinstance(row, dict):
        return None, f"expected a JSON object, got {type(row).__name__}"
    comps, is_group, why = _completions_of(row, completion_key)
    if comps is None:
        return None, why
    if "prompt" in row and "messages" not in row:
        traj = split_trajectory(row["prompt"], row.get("num_turns"))
        if traj.turns:
            row = {**row, "prompt": traj.prompt if isinstance(traj.prompt, str) else messages_key(traj.prompt),
                   "messages": trajectory_messages(traj)}
    columns = {k: v for k, v in row.items() if k not in NOT_COLUMNS and k != completion_key}
    if ref_key != "solution" and ref_key in row:
        columns["solution"] = row[ref_key]
    prompt = columns.get("messages") if isinstance(columns.get("messages"), list) else []
    prompt = [m for m in prompt if isinstance(m, dict)]
    if prompt and prompt[-1].get("role") == "assistant":
        prompt = prompt_turns(prompt)
    key = f"line={lineno}" if is_group else prompt_key(row)
    if not is_group and row.get("step") is not None and "completion" in row:  # a training log: groups are per step
        key = f"step={row['step']};{key}"
    out = []
    for c in comps:
        r = dict(columns)
        if "messages" in columns:  # as in training: the prompt followed by this completion
            r["messages"] = prompt + [{"role": "assistant", "content": c}]
        out.append((c, r))
    return key, out


def _table_items(items: Iterable[Tuple[int, Any]]) -> Iterator[Tuple[int, Any]]:
    """``(line, row)`` pairs with ms-swift's column tables (``completions.jsonl``) expanded to a row per
    completion; a table equal to the one before it is read once (ms-swift writes the last step's table again
    when training ends), a table whose columns differ in length is a rejected row."""
    previous = None
    for lineno, row in items:
        table = None
        if isinstance(row, dict):
            try:
                table = table_rows(row)
            except ValueError as exc:
                yield lineno, _Bad(str(exc))
                continue
        if table is None:
            yield lineno, row
            continue
        if row == previous:
            continue
        previous = row
        for r in table:
            yield lineno, r


class _Bad(str):
    """A row that cannot be read, and why (rejected by :func:`_expand`)."""


def from_rows(rows: Iterable[Any], *, path: str = "<rows>", completion_key: Optional[str] = None,
              ref_key: Optional[str] = None) -> Results:
    """Build :class:`Results` from rows (dicts, or ``(line, dict)`` pairs); unusable rows are rejected with
    their line and reason."""
    items = list(_table_items(item if isinstance(item, tuple) else (i, item) for i, item in enumerate(rows, 1)))
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
        out.group_keys.append(keys[members[0]])
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
            rows = _table_items(iter_jsonl(self.path))
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


__all__ = ["Results", "Stream", "Trajectory", "split_trajectory", "chatml_messages", "table_rows",
           "trajectory_messages", "VISION", "head", "load", "from_rows", "prompt_key", "messages_key", "prompt_turns", "group_indices", "detect_ref_key",
           "as_text", "COMPLETION_KEYS", "REF_KEYS", "PROMPT_KEYS"]
