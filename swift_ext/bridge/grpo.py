"""GRPO capture, in one place: the evaluation rollouts' per-completion rewards and the sanity rollouts the
callbacks need, read from ms-swift 4.6's ``GRPOTrainer`` (``_compute_rewards_per_func``, ``_rollout_samples``,
``reward_func_names``)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional


def reward_func_names(trainer: Any) -> List[str]:
    return list(getattr(trainer, "reward_func_names", None) or [])


def _sample_record(sample: Any, rewards: List[Optional[float]], names: List[str]) -> Dict[str, Any]:
    messages = list(getattr(sample, "messages", None) or [])
    completion = messages[-1].get("content") if messages and isinstance(messages[-1], dict) else None
    extra = dict(getattr(sample, "extra", None) or {})
    return {
        "prompt_id": getattr(sample, "prompt_id", None),
        "messages": messages[:-1],
        "completion": completion if isinstance(completion, str) else str(completion),
        "rewards": {n: (None if r is None or r != r else float(r)) for n, r in zip(names, rewards)},
        "solution": extra.get("solution"),
        "images": getattr(sample, "images", None) or None,
    }


def _local_rows(trainer: Any, rewards_per_func: Any, n_local: int) -> List[List[float]]:
    rows = rewards_per_func.detach().float().cpu().tolist()
    if len(rows) == n_local:
        return rows
    rank = int(getattr(getattr(trainer, "accelerator", None), "process_index", 0) or 0)
    return rows[rank * n_local:(rank + 1) * n_local]


def _attach_details(trainer: Any, names: List[str], records: List[Dict[str, Any]]) -> None:
    """Per-completion details the rewards kept from this very call (a judge's rationale, a gated reward's
    sub-scores: ``last_details``) as ``record["details"][reward name]``."""
    for name, fn in zip(names, getattr(trainer, "reward_funcs", None) or []):
        kept = getattr(fn, "last_details", None)
        if isinstance(kept, list) and len(kept) == len(records):
            for rec, d in zip(records, kept):
                if d:
                    rec.setdefault("details", {})[name] = d


def gather_records(records: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Every rank's records, in rank order, on every rank (a collective: every rank must call it); the
    records themselves in a single process."""
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch is always there under ms-swift
        return records
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return records
    parts: List[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, records)
    return [rec for part in parts for rec in part]


def capture_grpo_eval(trainer: Any, sink: Any) -> bool:
    """Wrap ``trainer._compute_rewards_per_func`` so that each evaluation-mode call hands
    ``sink(records)`` one record per completion (prompt messages, completion, per-reward scores,
    solution) of *every rank*: each rank evaluates its shard of the validation set (a prompt's
    generations may sit on different ranks), so the records are gathered (:func:`gather_records`, inside
    the call every rank makes) before any sink sees them. Returns False when the trainer is not an
    ms-swift GRPO trainer. Idempotent per sink."""
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
                records = [_sample_record(s, r, names) for s, r in zip(samples, rows)]
                _attach_details(trainer, names, records)
                calls[0] += 1
                for rec in records:  # prompt ids restart with every eval batch: make the group key unique
                    rec["group"] = f"{calls[0]}:{rec['prompt_id']}"
                records = gather_records(records)  # ms-swift numbers prompts over all ranks' samples
                for fn in list(trainer._swift_ext_eval_sinks):
                    fn(records)
            return out

        trainer._compute_rewards_per_func = wrapped
    if sink not in sinks:
        sinks.append(sink)
    return True


def grpo_rollout(trainer: Any, rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Generate and score completions for raw dataset ``rows`` with the trainer's own rollout path and
    reward functions, in eval mode (one completion per row: repeat a row k times for k samples)."""
    import copy

    model = trainer.model
    was_training = model.training
    model.eval()
    trainer._swift_ext_in_sanity = True
    try:
        samples = trainer._rollout_samples([copy.deepcopy(r) for r in rows])
        rewards = trainer._compute_rewards_per_func(samples)
        names = reward_func_names(trainer)
        return [_sample_record(s, r, names) for s, r in zip(samples, _local_rows(trainer, rewards, len(samples)))]
    finally:
        trainer._swift_ext_in_sanity = False
        if was_training:
            model.train()
