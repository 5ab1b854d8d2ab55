"""The ``tools`` multi-turn scheduler in ms-swift's scheduler registry (``swift.rollout.multi_turn.multi_turns``,
read by ``--multi_turn_scheduler``).

ms-swift builds a scheduler as ``multi_turns[args.multi_turn_scheduler](max_turns=..., tokenizer=..., template=...)``
(``rlhf_trainers/rollout_mixin.py`` ``_prepare_scheduler``; ``swift rollout`` likewise), with no way to pass
parameters, so, as for rewards, the parameters are in the name: the plugin file registers the exact spec given
(``tools:tools=python+calculator,max_calls=4``) as a class with them bound, checked when the plugin loads.

The class is a thin shell over :class:`swift_ext.agents.ToolAgent`, on the hooks both of ms-swift's loops call
(colocate ``rollout/agent_loop.py`` ``run_multi_turn`` and server ``MultiTurnScheduler.run``):

* ``on_turn_end`` runs the turn's tool calls (in a thread, so the trajectories of a batch run theirs
  concurrently) and returns ``done`` (the trajectory's end: final answer, ``max_calls``, ``max_turns``, a turn cut
  at the token limit) with ``rollout_infos["swift_ext_agent"]`` (the summary the trajectory rewards read) and, when
  a tool returned images, ``rollout_infos["images"]`` (ms-swift then trains on the trajectory's images);
* ``step`` appends the ``tool`` messages (and the images) for the next turn, and returns the turn's sampled ids
  without a final end-of-turn token that the template writes again (ms-swift 4.6 would otherwise put
  ``<|im_end|><|im_end|>`` between turns, in the next prompt and in the trained sequence).

Loss masking: each assistant turn's sampled tokens come back as one ``response_token_ids`` segment with mask 1
(ms-swift's default); the tool results are separate ``tool`` messages, which the template encodes on the prompt
side of the next round, so their tokens get label -100 and ``completion_mask`` 0 (tested on ms-swift's own
``encode_sample`` and ``collate_to_grpo_micro_batch``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Dict, List, Optional

from ..agents import ToolAgent, agent_from_spec, scheduler_config
from ..agents.scheduler import SCHEDULER_PARAMS, TurnOutcome
from ..errors import DuplicateNameError
from ..params import parse_spec
from ..rewards.trajectory import INFO_KEY

logger = logging.getLogger("swift_ext.bridge")

_MARK = "_swift_ext_source"
_CLASSES: Dict[str, type] = {}


def get_multi_turns() -> Dict[str, Any]:
    """ms-swift's scheduler registry."""
    from swift.rollout.multi_turn import multi_turns

    return multi_turns


def _base() -> type:
    """The scheduler class (made once: it derives from ms-swift's ``MultiTurnScheduler``, imported on first use)."""
    cls = _CLASSES.get("")
    if cls is not None:
        return cls
    from swift.rollout.multi_turn import MultiTurnScheduler

    class ToolsScheduler(MultiTurnScheduler):
        """Runs the model's tool calls between turns (see :mod:`swift_ext.bridge.multi_turn`)."""

        spec: str = "tools"

        def __init__(self, infer_engine=None, max_turns: Optional[int] = None, *args, **kwargs):
            super().__init__(infer_engine, max_turns, *args, **kwargs)
            self.agent: ToolAgent = agent_from_spec(self.spec, max_turns=max_turns)
            self._pending: Dict[int, TurnOutcome] = {}
            self._warned_tools = False

        # -- per trajectory ------------------------------------------------------------------
        @staticmethod
        def _key(infer_request) -> int:
            return id(infer_request)           # the same request object travels through every turn

        def _row(self, infer_request) -> Dict[str, Any]:
            row = dict(getattr(infer_request, "data_dict", None) or {})
            row["images"] = list(getattr(infer_request, "images", None) or [])
            return row

        async def on_turn_end(self, infer_request, response_choice, current_turn: int) -> Dict[str, Any]:
            key = self._key(infer_request)
            uuid = getattr(infer_request, "uuid", None) or f"t{key:x}"
            traj = self.agent.trajectory(f"{uuid}-{key:x}", self._row(infer_request))
            if not self._warned_tools and not getattr(infer_request, "tools", None):
                self._warned_tools = True
                logger.warning("tools scheduler: the dataset rows have no 'tools' column: the model is not told which "
                               "tools exist (write it with the tools' schemas: ToolAgent.tool_schemas())")
            text = response_choice.message.content
            truncated = response_choice.finish_reason == "length"
            try:
                outcome = await asyncio.to_thread(self.agent.turn, traj, text, turn=current_turn, truncated=truncated)
            except Exception as exc:  # ToolAgent.turn does not raise for model output; a bug must not stop training
                logger.warning("tools scheduler: turn %d failed (%r); the trajectory ends", current_turn, exc)
                outcome = TurnOutcome([], True, "error")
                traj.stop_reason = "error"
            infos: Dict[str, Any] = {INFO_KEY: traj.info()}
            if traj.images:
                base = list(getattr(infer_request, "images", None) or [])
                infos["images"] = base + [im for im in outcome.images if im not in base]
            if outcome.done:
                self.agent.finish(traj.id)
            else:
                self._pending[key] = outcome
            return {"done": outcome.done, "rollout_infos": infos}

        def step(self, infer_request, response_choice, current_turn: int) -> Dict[str, Any]:
            outcome = self._pending.pop(self._key(infer_request), None)
            if outcome is not None:
                infer_request.messages.extend(outcome.messages)
                if outcome.images:
                    images = getattr(infer_request, "images", None)
                    if images is None:
                        infer_request.images = list(outcome.images)
                    else:
                        images.extend(outcome.images)
            return {"infer_request": infer_request, **self._without_turn_end(infer_request, response_choice)}

        def _without_turn_end(self, infer_request, response_choice) -> Dict[str, Any]:
            """The turn's sampled ids without their last token when it is the end-of-turn token the template
            writes again after every assistant turn but the last (``<|im_end|>`` for Qwen): ms-swift 4.6 keeps the
            sampled one *and* adds the template's, so the next prompt and the trained sequence read
            ``<|im_end|><|im_end|>``. With it cut, both read as one turn end, trained once (the template's)."""
            ids = list(response_choice.token_ids or [])
            if not ids or ids[-1] not in self._turn_end_ids():
                return {}
            ids = ids[:-1]
            token_ids, mask = self.get_response_token_data(infer_request, response_choice, is_continuation=False,
                                                           response_token_ids=ids, response_loss_mask=[1] * len(ids))
            out: Dict[str, Any] = {"response_token_ids": token_ids, "response_loss_mask": mask}
            logprobs = self._extract_logprobs_from_choice(response_choice)
            if logprobs:
                out["rollout_logprobs"] = logprobs[:len(ids)]
            return out

        def _turn_end_ids(self) -> set:
            got = getattr(self, "_turn_end_cache", None)
            if got is None:
                got = set()
                tok = self.tokenizer
                template = self._template or getattr(self.infer_engine, "template", None)
                suffix = getattr(getattr(template, "template_meta", None), "suffix", None) or []
                if tok is not None:
                    special = set(getattr(tok, "all_special_ids", None) or [])
                    eos = getattr(tok, "eos_token_id", None)
                    for part in suffix:
                        if isinstance(part, str):
                            got |= {i for i in tok.encode(part, add_special_tokens=False) if i in special or i == eos}
                        elif isinstance(part, (list, tuple)):
                            for item in part:
                                if item == "eos_token_id" and eos is not None:
                                    got.add(eos)
                                elif isinstance(item, int):
                                    got.add(item)
                self._turn_end_cache = got
            return got

        def check_finished(self, infer_request, response_choice, current_turn: int) -> bool:
            # on_turn_end's 'done' decides; this is ms-swift's default for a caller that skips the hook
            return super().check_finished(infer_request, response_choice, current_turn)

    _CLASSES[""] = ToolsScheduler
    return ToolsScheduler


def scheduler_class(spec: str) -> type:
    """The scheduler class ms-swift instantiates for ``spec`` (``tools`` or ``tools:key=value,...``): its
    parameters checked now, one class per spec."""
    cls = _CLASSES.get(spec)
    if cls is None:
        scheduler_config(spec)                               # a bad spec fails here, before training starts
        cls = type(spec, (_base(),), {"spec": spec, "__module__": __name__, "__qualname__": spec, _MARK: True})
        _CLASSES[spec] = cls
    return cls


def install_schedulers(spec: Optional[str] = None) -> List[str]:
    """Register ``tools`` and, when ``spec`` names a swift-ext scheduler with parameters, ``spec`` itself into
    ms-swift's ``multi_turns``; returns the names added. A name ms-swift (or another plugin) took is refused."""
    wanted = list(SCHEDULER_PARAMS)
    if isinstance(spec, str) and spec.strip() and parse_spec(spec)[0] in SCHEDULER_PARAMS and spec not in wanted:
        wanted.append(spec)
    registry = get_multi_turns()
    added = []
    for name in wanted:
        existing = registry.get(name)
        if existing is not None:
            if getattr(existing, _MARK, False):
                continue
            raise DuplicateNameError("multi-turn scheduler", name,
                                     f"ms-swift's multi_turns ({getattr(existing, '__module__', '?')})", "swift-ext")
        registry[name] = scheduler_class(name)
        added.append(name)
    return added


__all__ = ["install_schedulers", "scheduler_class", "get_multi_turns"]
