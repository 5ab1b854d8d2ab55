"""Why a reward scored what it scored: ``swift-ext rewards explain``.

Every reward answers through one optional method, :meth:`swift_ext.rewards.base.Reward.explain`
(``explain(completion, **row) -> dict`` whose ``score`` is what the reward gives in training, plus what it
extracted, normalised, parsed and compared, and a ``reason``). swift-ext's answer, accuracy, grounding and
structured rewards fill it in; any other swift-ext reward (a third-party one too) gets the base's score and
reason; an ms-swift reward without the method is called as in training and reported with its score only.

Rows are read by :mod:`swift_ext.scoring.results` (a completion file), so a row explains the same way it scores in
``swift-ext rewards score``.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Dict, List, Optional, Sequence

from . import results as results_mod
from . import score as scoring
from ..rewards.base import as_text

#: keys shown in the table's detail column, when an explanation has them
DETAIL_KEYS = ("extracted", "rule", "choice", "choice_rule", "number", "gold_number", "normalised", "gold_normalised",
               "gold_letter", "label", "gold_label", "count", "gold_count", "predicted", "gold_boxes", "frame",
               "gold_frame", "image_size", "image_size_from", "frame_conversion", "gold_conversion",
               "gold_frame_conversion", "matched_pairs", "precision", "recall", "point", "unit_point", "parsed",
               "json_error", "schema_errors", "required_fraction", "checked_by", "extracted_by", "tests", "cases")


def explain_one(spec: str, fn: Callable, completion: str, row: Dict[str, Any]) -> Dict[str, Any]:
    """One reward's explanation of one completion (``fn`` built by :func:`swift_ext.scoring.score.resolve`)."""
    completion = as_text(completion)
    explain = getattr(fn, "explain", None)
    if callable(explain):
        out = dict(explain(completion, **row))
        if asyncio.iscoroutine(out):  # pragma: no cover - an async explain
            out = dict(asyncio.run(out))
    else:
        score = scoring.call_reward(spec, fn, [completion], {k: [v] for k, v in row.items()})[0]
        out = {"score": score, "reason": "abstained (None)" if score is None else
               f"scored {score:g} (this reward has no explain() method: only its score is known)"}
    out["reward"] = spec
    return out


def explain_results(res: "results_mod.Results", specs: Sequence[str], plugin_files: Sequence[str] = (),
                    limit: Optional[int] = None) -> List[Dict[str, Any]]:
    """``[{"line", "completion", "explanations": {spec: {...}}}]`` for the first ``limit`` completions."""
    rewards = {spec: scoring.resolve(spec, plugin_files) for spec in specs}
    out = []
    n = len(res.completions) if limit is None else min(limit, len(res.completions))
    for i in range(n):
        comp, row = res.completions[i], res.rows[i]
        out.append({"line": res.lines[i], "completion": comp,
                    "explanations": {spec: explain_one(spec, fn, comp, row) for spec, fn in rewards.items()}})
    return out


__all__ = ["explain_one", "explain_results", "DETAIL_KEYS"]
