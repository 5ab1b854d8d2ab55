"""Trajectory rewards for tool-using multi-turn GRPO: ``final_answer``, ``tool_success`` and ``turn_budget``.

What ms-swift 4.6 passes a reward in a multi-turn run (``rl_core/grpo_algorithm.py`` ``compute_rewards_per_func``,
``rl_core/data.py`` ``to_reward_row``): the completions are the *last* assistant turn (``messages[-1]``); each row
carries the whole conversation (``messages``: user, assistant, ``tool`` turns...), ``rollout_infos`` (what the
scheduler reported, with ms-swift's ``num_turns``) and ``request_id``; in server mode (``swift rollout``,
``enable_server_multi_turn``) also ``trajectory_inputs``: ``{request_id: [rows of that trajectory]}``. In colocate
mode the earlier assistant turns of ``messages`` are token ids, not text, so these rewards read the summary the
``tools`` scheduler writes into ``rollout_infos["swift_ext_agent"]`` (calls, successes, turns, stop reason) first,
then the rows of ``trajectory_inputs``, and only then the text of ``messages`` (trajectories from elsewhere).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from ..params import Param
from ..tools.parse import parse_text
from .base import Reward, Rows, Score
from .combine import _columns, _part
from .contract import Example

#: the key of ``rollout_infos`` the ``tools`` scheduler writes its trajectory summary under
INFO_KEY = "swift_ext_agent"
_INFO_COLUMNS = ("rollout_infos", "trajectory_inputs", "request_id", "messages")


def trajectory_info(row: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The ``tools`` scheduler's summary of this row's trajectory: from ``rollout_infos``, else from the row of
    the same ``request_id`` in ``trajectory_inputs`` (server mode); None when neither has one.

    >>> trajectory_info({"rollout_infos": {"swift_ext_agent": {"calls": 2, "ok": 1}, "num_turns": 3}})
    {'calls': 2, 'ok': 1}
    """
    infos = row.get("rollout_infos")
    if isinstance(infos, dict) and isinstance(infos.get(INFO_KEY), dict):
        return infos[INFO_KEY]
    ti, rid = row.get("trajectory_inputs"), row.get("request_id")
    if isinstance(ti, dict) and rid in ti:
        for other in reversed(ti[rid] or []):
            infos = other.get("rollout_infos") if isinstance(other, dict) else None
            if isinstance(infos, dict) and isinstance(infos.get(INFO_KEY), dict):
                return infos[INFO_KEY]
    return None


def num_turns(row: Dict[str, Any]) -> Optional[int]:
    """Assistant turns of the row's trajectory: ms-swift's ``rollout_infos["num_turns"]``, the scheduler's
    count, else the assistant messages of ``messages``; None when none of them is there."""
    infos = row.get("rollout_infos")
    if isinstance(infos, dict) and isinstance(infos.get("num_turns"), int):
        return infos["num_turns"]
    info = trajectory_info(row)
    if info is not None and isinstance(info.get("turns"), int):
        return info["turns"]
    messages = row.get("messages")
    if isinstance(messages, list) and messages:
        return sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "assistant")
    return None


def calls_from_messages(messages: Any) -> Optional[Dict[str, int]]:
    """``{"calls", "ok"}`` counted from a conversation's text: each ``tool`` message answers one call and is a
    failure when it starts with ``error``; calls that got no answer (the last turn's) do not count. None when
    ``messages`` is not a conversation."""
    if not isinstance(messages, list) or not messages:
        return None
    answered = [m for m in messages if isinstance(m, dict) and m.get("role") == "tool"]
    ok = sum(1 for m in answered if not str(m.get("content") or "").lstrip().lower().startswith("error"))
    return {"calls": len(answered), "ok": ok}


def _rows_columns(rows: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    if isinstance(rows, Rows):
        return rows.columns
    return {k: [r.get(k) for r in rows] for k in set().union(*rows)} if rows else {}


class FinalAnswer(Reward):
    """Any answer reward (``reward=SPEC``) on the trajectory's last assistant turn; 0 when that turn is a tool call.

    A trajectory stopped by ``max_calls`` or ``max_turns`` ends on a turn that still calls a tool: it gave no
    answer and scores ``pending`` (default 0) without asking ``reward``. Otherwise the score is ``reward``'s on the
    last turn (what ms-swift passes as the completion), with the row's columns (``solution``...), so it abstains
    where ``reward`` does.

    On the command line: ``--reward_funcs final_answer:reward=numeric``.

    Example:
        >>> r = FinalAnswer(reward="numeric")
        >>> r(["<answer>42</answer>", '<tool_call>{"name": "python", "arguments": {"code": "1"}}</tool_call>'],
        ...   solution=["42", "42"])
        [1.0, 0.0]
    """

    name = "final_answer"
    examples = (
        Example("full", "The result is <answer>42</answer>", 1.0, params="reward=numeric", solution="42"),
        Example("zero", "<answer>41</answer>", 0.0, params="reward=numeric", solution="42"),
        Example("zero", '<tool_call>{"name": "python", "arguments": {"code": "print(6*7)"}}</tool_call>', 0.0,
                params="reward=numeric", solution="42"),
        Example("malformed", "<answer>42</answer>", None, params="reward=numeric", solution="n/a"),
    )
    abstains = "when the answer reward abstains (a gold it cannot read)"
    params = {
        "reward": Param("exact_match", "answer reward scored on the last assistant turn (a spec or an alias)"),
        "pending": Param(0.0, "score of a trajectory whose last turn is still a tool call (no answer given)"),
    }

    def setup(self) -> None:
        self._reward = _part("final_answer", "reward", self.reward, self.args)
        self.last_details: List[Optional[Dict[str, Any]]] = []

    def needed_columns(self):
        return _columns([self._reward])

    def score_batch(self, completions: Sequence[str], rows: Sequence[Dict[str, Any]]) -> List[Score]:
        n = len(completions)
        pending = [bool(parse_text(c)) for c in completions]
        idx = [i for i in range(n) if not pending[i]]
        columns = _rows_columns(rows)
        scored = self._reward([completions[i] for i in idx],
                              **{k: ([v[i] for i in idx] if isinstance(v, (list, tuple)) and len(v) == n else v)
                                 for k, v in columns.items()}) if idx else []
        out: List[Score] = [self.pending] * n
        for i, v in zip(idx, scored):
            out[i] = v
        self.last_details = [{"pending_tool_call": p} for p in pending]
        return out


class ToolSuccess(Reward):
    """Share of the trajectory's tool calls that parsed and ran without error (0..1).

    Counts come from the ``tools`` scheduler's summary (``rollout_infos["swift_ext_agent"]``: a call is a success
    when it could be read, named a known tool, had valid arguments and ran without error or timeout), else from
    the conversation's ``tool`` messages (one per answered call, ``error...`` ones failed). A trajectory without
    calls scores ``no_calls``: ``none`` (abstain, the default: it says nothing about tool use), ``zero`` or ``one``.

    On the command line: ``--reward_funcs tool_success`` (``tool_success:no_calls=zero`` to push for tool use).

    Example:
        >>> ToolSuccess()(["4", "4", "4"], rollout_infos=[{"swift_ext_agent": {"calls": 4, "ok": 3}},
        ...                                         {"swift_ext_agent": {"calls": 0, "ok": 0}}, {}])
        [0.75, None, None]
    """

    name = "tool_success"
    examples = (
        Example("full", "<answer>4</answer>", 1.0, rollout_infos={INFO_KEY: {"calls": 2, "ok": 2}}),
        Example("zero", "<answer>4</answer>", 0.0, rollout_infos={INFO_KEY: {"calls": 2, "ok": 0}}),
        Example("full", "<answer>4</answer>", 1.0, messages=[
            {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "<tool_call>...</tool_call>"},
            {"role": "tool", "content": "4"}, {"role": "assistant", "content": "<answer>4</answer>"}]),
        Example("zero", "<answer>4</answer>", 0.0, messages=[
            {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "<tool_call>{</tool_call>"},
            {"role": "tool", "content": "error: could not read the tool call"},
            {"role": "assistant", "content": "<answer>4</answer>"}]),
        Example("malformed", "<answer>4</answer>", None),
        Example("malformed", "<answer>4</answer>", 0.0, params="no_calls=zero",
                rollout_infos={INFO_KEY: {"calls": 0, "ok": 0}}),
    )
    abstains = "when the trajectory made no tool call (no_calls=none, the default) or has no record of its calls"
    columns = _INFO_COLUMNS
    params = {"no_calls": Param("none", "score of a trajectory without tool calls", choices=("none", "zero", "one"))}

    def score(self, completion: str, **row: Any) -> Score:
        info = trajectory_info(row) or calls_from_messages(row.get("messages"))
        if info is None:
            return None
        calls, ok = info.get("calls"), info.get("ok")
        if not isinstance(calls, int) or not isinstance(ok, int) or calls < 0:
            return None
        if calls == 0:
            return {"none": None, "zero": 0.0, "one": 1.0}[self.no_calls]
        return max(0.0, min(1.0, ok / calls))


class TurnBudget(Reward):
    """0 within ``max_turns`` assistant turns, minus ``per_turn`` for each turn past it (down to ``floor``).

    Turns are ms-swift's ``rollout_infos["num_turns"]``, else the ``tools`` scheduler's count, else the assistant
    messages of ``messages``, else one (a single-turn completion). Add it to an answer reward to prefer short trajectories.

    On the command line: ``--reward_funcs turn_budget:max_turns=3,per_turn=0.2``.

    Example:
        >>> TurnBudget(max_turns=2, per_turn=0.25)(["a", "a", "a"], rollout_infos=[{"num_turns": 1},
        ...                                        {"num_turns": 4}, {"num_turns": 9}])
        [0.0, -0.5, -1.0]
    """

    name = "turn_budget"
    examples = (
        Example("full", "<answer>4</answer>", 0.0, params="max_turns=2", rollout_infos={"num_turns": 2}),
        Example("zero", "<answer>4</answer>", -1.0, params="max_turns=2,per_turn=0.5",
                rollout_infos={"num_turns": 5}),
        Example("malformed", "<answer>4</answer>", 0.0, params="max_turns=1", rollout_infos={"num_turns": "many"}),
    )
    columns = _INFO_COLUMNS
    params = {
        "max_turns": Param(3, "assistant turns without penalty", type=int, min=1),
        "per_turn": Param(0.25, "penalty per turn past max_turns", min=0.0),
        "floor": Param(-1.0, "lowest score", max=0.0),
    }

    def score(self, completion: str, **row: Any) -> Score:
        # a row that says nothing of its turns is a single-turn completion: one turn, whatever the shape of the
        # file it came from (with or without ``messages``)
        turns = num_turns(row) or 1
        penalty = self.per_turn * max(0, turns - self.max_turns)
        return max(self.floor, -penalty) if penalty else 0.0


__all__ = ["FinalAnswer", "ToolSuccess", "TurnBudget", "INFO_KEY", "trajectory_info", "num_turns",
           "calls_from_messages"]
