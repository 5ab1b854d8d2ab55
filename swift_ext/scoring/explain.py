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
import json
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from . import results as results_mod
from . import score as scoring
from ..errors import ConfigError
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


@dataclass
class ExplainOptions:
    """What ``swift-ext rewards explain`` takes, one field per flag (tests/meta/test_options.py checks they
    agree): a completion file, or one completion with its dataset columns."""

    input_path: Optional[str] = None            # completion file (as for rewards score); or give ``completion``
    specs: Tuple[str, ...] = ()                 # reward specs to explain (-r)
    completion: Optional[str] = None            # one completion to explain instead of a file
    row_json: Optional[str] = None              # that completion's dataset columns as a JSON object
    columns: Tuple[str, ...] = ()               # its dataset columns as KEY=VALUE (VALUE read as JSON if it parses)
    plugin_files: Tuple[str, ...] = ()          # ms-swift ORM plugin files whose rewards to use
    completion_key: Optional[str] = None        # completion column of the file
    ref_key: Optional[str] = None               # reference column, handed to rewards as ``solution``
    limit: int = 20                             # explain the file's first N completions (0: all)


def read(opts: ExplainOptions) -> "results_mod.Results":
    """The rows ``opts`` asks to explain: the first ``opts.limit`` completions of ``opts.input_path`` (read only
    that far, in batches), or ``opts.completion`` with the columns of ``opts.row_json`` and ``opts.columns``."""
    if (opts.input_path is None) == (opts.completion is None):
        raise ConfigError("give a completion file INPUT.jsonl or one --completion TEXT (not both)")
    if opts.input_path is not None:
        return results_mod.head(opts.input_path, opts.limit or None, completion_key=opts.completion_key,
                                ref_key=opts.ref_key)
    row = {}
    if opts.row_json:
        try:
            row = json.loads(opts.row_json)
        except ValueError as exc:
            raise ConfigError(f"--row: not valid JSON: {exc}") from None
        if not isinstance(row, dict):
            raise ConfigError("--row: expected a JSON object of dataset columns")
    for item in opts.columns:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ConfigError(f"--column {item!r}: expected KEY=VALUE")
        try:
            row[key] = json.loads(value)
        except ValueError:
            row[key] = value
    return results_mod.from_rows([{**row, "completion": opts.completion}], path="<command line>",
                                 ref_key=opts.ref_key)


def run(opts: ExplainOptions,
        on_read: Optional[Callable[["results_mod.Results"], None]] = None) -> List[Dict[str, Any]]:
    """``swift-ext rewards explain``: :func:`explain_results` over the rows :func:`read` gives;
    ``on_read(results)`` is called once they are read, before any reward is built."""
    res = read(opts)
    if on_read:
        on_read(res)
    return explain_results(res, opts.specs, opts.plugin_files, limit=opts.limit or None)


__all__ = ["explain_one", "explain_results", "DETAIL_KEYS", "ExplainOptions", "read", "run"]
