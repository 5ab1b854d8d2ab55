"""Tool-using agents for multi-turn GRPO: the turn logic of the ``tools`` scheduler (:mod:`.scheduler`).

ms-swift's side (the scheduler class registered into ``swift.rollout.multi_turn.multi_turns``) is
:mod:`swift_ext.bridge.multi_turn`; the tools are in :mod:`swift_ext.tools`; the trajectory rewards in
:mod:`swift_ext.rewards.trajectory`.
"""

from .scheduler import (ANSWER, LENGTH, MAX_CALLS, MAX_TURNS, SCHEDULER_PARAMS, CallRecord, ToolAgent, Trajectory,
                        TurnOutcome, agent_from_spec, scheduler_config, split_tools)

__all__ = ["ToolAgent", "Trajectory", "TurnOutcome", "CallRecord", "split_tools", "scheduler_config",
           "agent_from_spec", "SCHEDULER_PARAMS", "ANSWER", "MAX_CALLS", "MAX_TURNS", "LENGTH"]
