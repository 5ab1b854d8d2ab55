"""GRPO capture, in one place: the evaluation rollouts' per-completion rewards and the sanity rollouts the
callbacks need, read from ms-swift 4.6's ``GRPOTrainer`` (``_compute_rewards_per_func``, ``_rollout_samples``,
``reward_func_names``)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from ..scoring.results import Results


def reward_func_names(trainer: Any) -> List[str]:
    return list(getattr(trainer, "reward_func_names", None) or [])


def _add_samples(out: Results, samples: Any, reward_rows: List[List[float]], names: List[str],
                 kept: Dict[str, List[Any]], keys: Optional[List[Any]] = None) -> Results:
    """One entry of ``out`` per rollout sample: the prompt followed by the completion as ``messages`` (as the
    rewards saw it), ``solution``, ``images`` and ``prompt_id`` as columns, the rewards' scores (NaN:
    abstained), and the details they kept; grouped by ``keys`` (default: the sample's ``prompt_id``)."""
    for j, (sample, rewards) in enumerate(zip(samples, reward_rows)):
        messages = list(getattr(sample, "messages", None) or [])
        completion = messages[-1].get("content") if messages and isinstance(messages[-1], dict) else None
        extra = dict(getattr(sample, "extra", None) or {})
        prompt_id = getattr(sample, "prompt_id", None)
        row = {"messages": messages, "solution": extra.get("solution"),
               "images": getattr(sample, "images", None) or None, "prompt_id": prompt_id}
        out.add(completion if isinstance(completion, str) else str(completion), row,
                keys[j] if keys is not None else prompt_id,
                scores={n: (None if r is None or r != r else float(r)) for n, r in zip(names, rewards)},
                details={n: d[j] for n, d in kept.items() if d[j]})
    return out


def _local_rows(trainer: Any, rewards_per_func: Any, n_local: int) -> List[List[float]]:
    rows = rewards_per_func.detach().float().cpu().tolist()
    if len(rows) == n_local:
        return rows
    rank = int(getattr(getattr(trainer, "accelerator", None), "process_index", 0) or 0)
    return rows[rank * n_local:(rank + 1) * n_local]


def _kept_details(trainer: Any, names: List[str], n: int) -> Dict[str, List[Any]]:
    """Per-completion details the rewards kept from this very call (a judge's rationale, a gated reward's
    sub-scores: ``last_details``), by reward name."""
    out = {}
    for name, fn in zip(names, getattr(trainer, "reward_funcs", None) or []):
        kept = getattr(fn, "last_details", None)
        if isinstance(kept, list) and len(kept) == n:
            out[name] = kept
    return out


def gather_results(res: Results) -> Results:
    """Every rank's completions, in rank order, on every rank (a collective: every rank must call it); ``res``
    itself in a single process. Completions of one prompt on two ranks form one group (groups are kept by key)."""
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch is always there under ms-swift
        return res
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return res
    parts: List[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, res)
    out = Results(path=res.path)
    for part in parts:
        out.extend(part)
    return out


def capture_grpo_eval(trainer: Any, sink: Any) -> bool:
    """Wrap ``trainer._compute_rewards_per_func`` so that each evaluation-mode call hands ``sink`` the
    completions of *every rank* as one :class:`~swift_ext.scoring.results.Results` (prompt and completion as
    ``messages``, ``solution``, ``images``, per-reward scores and details; grouped by prompt within the call):
    each rank evaluates its shard of the validation set (a prompt's generations may sit on different ranks), so
    the completions are gathered (:func:`gather_results`, inside the call every rank makes) before any sink sees
    them. Returns False when the trainer is not an ms-swift GRPO trainer. Idempotent per sink."""
    original = getattr(trainer, "_compute_rewards_per_func", None)
    if original is None or not hasattr(trainer, "reward_func_names"):
        return False
    sinks = getattr(trainer, "_swift_ext_eval_sinks", None)
    if sinks is None:
        sinks = trainer._swift_ext_eval_sinks = []

        calls = [0]

        def wrapped(samples, *a, **kw):
            out = original(samples, *a, **kw)
            if not trainer.model.training and not getattr(trainer, "_swift_ext_in_sanity", False):
                names = reward_func_names(trainer)
                rows = _local_rows(trainer, out, len(samples))
                calls[0] += 1
                # prompt ids restart with every eval batch: the group key holds the call's number too
                keys = [f"{calls[0]}:{getattr(s, 'prompt_id', None)}" for s in samples]
                res = _add_samples(Results(path="<eval rollouts>"), samples, rows, names,
                                   _kept_details(trainer, names, len(samples)), keys)
                res = gather_results(res)  # ms-swift numbers prompts over all ranks' samples
                for fn in list(trainer._swift_ext_eval_sinks):
                    fn(res)
            return out

        trainer._compute_rewards_per_func = wrapped
    if sink not in sinks:
        sinks.append(sink)
    return True


def grpo_rollout(trainer: Any, rows: List[Dict[str, Any]], keys: Optional[List[Any]] = None) -> Results:
    """Generate and score completions for raw dataset ``rows`` with the trainer's own rollout path and
    reward functions, in eval mode (one completion per row: repeat a row k times for k samples), grouped by
    ``keys`` (one per row; default: the samples' ``prompt_id``)."""
    import copy

    model = trainer.model
    was_training = model.training
    model.eval()
    trainer._swift_ext_in_sanity = True
    try:
        samples = trainer._rollout_samples([copy.deepcopy(r) for r in rows])
        rewards = trainer._compute_rewards_per_func(samples)
        names = reward_func_names(trainer)
        return _add_samples(Results(path="<sanity rollouts>"), samples, _local_rows(trainer, rewards, len(samples)),
                            names, {}, keys)
    finally:
        trainer._swift_ext_in_sanity = False
        if was_training:
            model.train()
