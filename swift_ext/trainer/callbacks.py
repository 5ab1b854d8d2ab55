"""Trainer callbacks for ``swift sft`` / ``swift rlhf``, registered into ms-swift's ``callbacks_map`` by the
swift-ext plugin and selected with ``--callbacks``:

=================  ===================================================================================
``reward_eval``    GRPO: per reward function mean, accuracy (score >= ``threshold``), pass@k and mean@k
                   over the evaluation rollouts (``--num_generations_eval`` samples per val prompt)
``train_sanity``   the same metrics on a fixed sample of *training* prompts (GRPO: rollouts scored by
                   the run's rewards; SFT: teacher-forced token accuracy, loss and greedy exact match)
``sample_logger``  prompts, completions and per-reward scores to ``<output_dir>/swift_ext_samples.jsonl``
                   at each evaluation (and each sanity check), with a short rich table in the log
``chord_mu``       the mu (SFT weight) CHORD used at each step, as ``chord/mu``
``plateau_stop``   stops training when a logged metric has not improved for ``patience`` evaluations
``audit``          health and reward-hacking detectors on the logged metrics (``audit/*``), as
                   ``swift-ext audit`` runs them offline
=================  ===================================================================================

Parameters go in the name, as for rewards (ms-swift builds a callback as ``cls(args, trainer)`` with no
other arguments): ``--callbacks reward_eval:threshold=0.5 plateau_stop:metric=eval_reward,patience=3``.

Metrics go through the trainer's own logging (``trainer.log`` during evaluation, ms-swift's
``custom_metrics`` during training), so they land in ``logging.jsonl``, tensorboard, wandb or swanlab
like ms-swift's own. Evaluation-time keys start with ``eval_ext/``, sanity keys with ``train_sanity/``.

This module imports ``transformers`` (the callback base class) but not ``swift``; what needs ms-swift
internals goes through :mod:`swift_ext.bridge`. On a CPU-only torch with a CUDA torchvision wheel,
call :func:`swift_ext.cpu_compat.apply` before importing it (the plugin host does so when it loads the
built-in callbacks).
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Optional, Sequence

from transformers import TrainerCallback

from ..scoring.results import Results, prompt_turns
from ..bridge import grpo
from ..bridge.chord import RUNTIME as CHORD_RUNTIME
from ..chord import MU_KEY
from ..components import Component, configure
from ..io import JsonlAppender
from ..params import Param

logger = logging.getLogger("swift_ext.trainer.callbacks")

SAMPLES_FILE = "swift_ext_samples.jsonl"


class ExtCallback(TrainerCallback, Component):
    """Base class: declared ``params`` bound from the parametrised name (:mod:`swift_ext.components`);
    :meth:`setup` checks them and attaches to the trainer; helpers to log metrics."""

    kind: ClassVar[str] = "callback"

    def __init__(self, args: Any = None, trainer: Any = None, **params: Any):
        self.args = args
        self.trainer = trainer
        self.bind_params(params)
        self._pending: Dict[str, float] = {}
        self.setup()

    # -- logging ----------------------------------------------------------------------------------
    def emit(self, metrics: Dict[str, float]) -> None:
        """Send ``metrics`` through the trainer's logging.

        During evaluation (model in eval mode) this is ``trainer.log``: one extra log row at this step.
        During training the values join ms-swift's ``custom_metrics`` and appear in the step's regular
        log row (averaged over ``logging_steps``).
        """
        metrics = {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}
        if not metrics:
            return
        trainer = self.trainer
        model = getattr(trainer, "model", None)
        if model is not None and not model.training and hasattr(trainer, "log"):
            trainer.log(dict(metrics))
            return
        custom = getattr(trainer, "custom_metrics", None)
        if isinstance(custom, dict) and "train" in custom:
            for k, v in metrics.items():
                custom["train"][k].update(v)
            return
        self._pending.update(metrics)  # plain HF trainer: added to the next log row in on_log

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self._pending and logs is not None:
            logs.update(self._pending)
            self._pending.clear()


def configure_callback(spec: str) -> type:
    """The callback class for ``name:key=value,...``, parameters bound and checked now."""
    return configure("callback", spec)


def from_records(records: "Results | Sequence[Dict[str, Any]]") -> Results:
    """``records`` as :class:`~swift_ext.scoring.results.Results`, the one record: given as it is, or built from
    dicts (``completion``, ``rewards`` ``{name: score}``, grouped by ``group``, else ``prompt_id``, else the
    prompt; every other key a column), the shape these callbacks handed around before."""
    if isinstance(records, Results):
        return records
    out = Results(path="<records>")
    for rec in records:
        row = {k: v for k, v in rec.items() if k not in ("completion", "rewards", "details", "group")}
        key = rec.get("group") or rec.get("prompt_id")
        out.add(rec.get("completion"), row, key, scores=rec.get("rewards") or {}, details=rec.get("details"))
    return out


def reward_metrics(records: "Results | Sequence[Dict[str, Any]]", names: Sequence[str], threshold: float,
                   ks: Optional[List[int]], prefix: str) -> Dict[str, float]:
    """``{prefix}/{reward}/{n,mean,accuracy,pass@k,mean@k}`` (and ``abstained`` when some did) of the completions'
    scores grouped by prompt: :meth:`Results.summaries <swift_ext.scoring.results.Results.summaries>`, the
    summary ``rewards score`` and ``eval`` give (:mod:`swift_ext.scoring.stats`)."""
    res = from_records(records)
    out: Dict[str, float] = {}
    for name, summary in res.summaries(names, threshold, ks or ()).items():
        for stat, value in summary.metrics(ks).items():
            if stat != "abstained" or value:
                out[f"{prefix}/{name}/{stat}"] = value
    out[f"{prefix}/prompts"] = len(res.groups)
    return out


def _sinks(trainer: Any) -> List["SampleLogger"]:
    sinks = getattr(trainer, "_swift_ext_sample_sinks", None)
    if sinks is None:
        sinks = []
        try:
            trainer._swift_ext_sample_sinks = sinks
        except AttributeError:
            pass
    return sinks


def publish(trainer: Any, split: str, step: int, res: Results) -> None:
    for sink in _sinks(trainer):
        sink.write(split, step, res)


# -- (a) reward evaluation on the validation split (GRPO) ------------------------------------------
class RewardEval(ExtCallback):
    """GRPO evaluation: per reward mean, accuracy at ``threshold``, pass@k and mean@k over the
    ``num_generations_eval`` completions of each validation prompt (needs ``--eval_strategy steps``
    and a validation split)."""

    name = "reward_eval"
    params = {
        "threshold": Param(1.0, "a completion counts as correct when a reward is >= this", type=float),
        "ks": Param((), "k values for pass@k, e.g. 1|4 (default: 1, powers of 2, the group size)", type=tuple,
                    items=int, min=1),
        "prefix": Param("eval_ext", "metric name prefix", type=str),
    }

    def setup(self) -> None:
        self._results = Results(path="<eval rollouts>")
        self._ks = sorted(set(self.ks)) or None
        self.active = False

    def _collect(self, res: Results) -> None:
        self._results.extend(res)

    def on_train_begin(self, args, state, control, **kwargs):
        # attached here, not in __init__: ms-swift builds callbacks before the GRPO trainer sets up its rewards
        self.active = grpo.capture_grpo_eval(self.trainer, self._collect)
        if not self.active:
            logger.warning("reward_eval: the trainer is not an ms-swift GRPO trainer; nothing will be logged")

    def on_evaluate(self, args, state, control, **kwargs):
        if not self.active or not self._results.completions:
            return
        names = grpo.reward_func_names(self.trainer)
        res, self._results = self._results, Results(path="<eval rollouts>")
        try:
            metrics = reward_metrics(res, names, self.threshold, self._ks, self.prefix)
        except Exception:
            logger.exception("reward_eval failed at step %d; training continues", state.global_step)
            return
        self.emit(metrics)


# -- (b) training-set sanity evaluation -------------------------------------------------------------
class TrainSanity(ExtCallback):
    """The model must learn its own training set before anything else is trusted: every evaluation
    (and every ``every_steps`` steps when > 0), score a fixed random sample of ``n`` training rows.

    GRPO: ``k`` completions per prompt through the run's own rollout path, scored by its reward
    functions (``train_sanity/<reward>/mean|accuracy|pass@k``). SFT: teacher-forced token accuracy and
    loss on the labelled tokens, and whether greedy decoding reproduces the answer exactly
    (``train_sanity/token_acc|loss|exact_match``).
    """

    name = "train_sanity"
    params = {
        "n": Param(8, "training rows in the fixed sample", type=int, min=1),
        "k": Param(2, "GRPO: completions per prompt", type=int, min=1),
        "seed": Param(0, "seed of the sample", type=int),
        "threshold": Param(1.0, "GRPO: reward counted as correct", type=float),
        "every_steps": Param(0, "also run every N optimizer steps (0: only at evaluations)", type=int, min=0),
        "max_new_tokens": Param(64, "SFT: generation budget beyond the reference length", type=int, min=1),
        "prefix": Param("train_sanity", "metric name prefix", type=str),
    }

    def setup(self) -> None:
        self._indices: Optional[List[int]] = None
        self._last_step = -1

    def _sample(self) -> List[int]:
        if self._indices is None:
            size = len(self.trainer.train_dataset)
            rng = random.Random(self.seed)
            self._indices = sorted(rng.sample(range(size), min(self.n, size)))
        return self._indices

    def on_evaluate(self, args, state, control, **kwargs):
        self.run(state.global_step)

    def on_step_end(self, args, state, control, **kwargs):
        if self.every_steps and state.global_step % self.every_steps == 0:
            self.run(state.global_step)

    def run(self, step: int) -> Dict[str, float]:
        if step == self._last_step:
            return {}
        self._last_step = step
        t0 = time.time()
        try:
            if hasattr(self.trainer, "reward_func_names"):
                metrics, res = self._grpo()
            else:
                metrics, res = self._sft()
        except Exception:  # a diagnostic must not end a training run: say why and carry on
            logger.exception("train_sanity failed at step %d; training continues without it", step)
            return {}
        metrics[f"{self.prefix}/seconds"] = time.time() - t0
        self.emit(metrics)
        publish(self.trainer, "train_sanity", step, res)
        return metrics

    def _grpo(self):
        ds = self.trainer.train_dataset
        index = [i for i in self._sample() for _ in range(self.k)]
        res = grpo.grpo_rollout(self.trainer, [dict(ds[i]) for i in index], keys=[f"train[{i}]" for i in index])
        for row, i in zip(res.rows, index):
            row["prompt_id"], row["row"] = f"train[{i}]", i
        names = grpo.reward_func_names(self.trainer)
        ks = sorted({1, self.k})
        return reward_metrics(res, names, self.threshold, ks, self.prefix), res

    def _sft(self):
        import torch

        trainer = self.trainer
        model = trainer.model
        tok = getattr(trainer, "processing_class", None) or getattr(trainer, "tokenizer", None)
        was_training = model.training
        model.eval()
        res, accs, losses, exact = Results(path="<sanity rows>"), [], [], []
        try:
            with torch.no_grad():
                for i in self._sample():
                    row = trainer.train_dataset[i]
                    batch = trainer.data_collator([row])
                    batch = {k: v.to(model.device) if hasattr(v, "to") else v for k, v in batch.items()}
                    labels = batch.pop("labels")
                    batch.pop("loss_scale", None)
                    logits = model(**batch).logits[:, :-1]
                    target = labels[:, 1:]
                    mask = target != -100
                    if not mask.any():
                        continue
                    pred = logits.argmax(-1)
                    accs.append(float((pred[mask] == target[mask]).float().mean()))
                    losses.append(float(torch.nn.functional.cross_entropy(logits[mask], target[mask])))
                    ids = batch["input_ids"][0]
                    first = int(mask[0].nonzero()[0]) + 1  # position of the first label token
                    ref = labels[0][labels[0] != -100]
                    gen = self._greedy(model, tok, batch, ids[:first], len(ref))
                    hit = None if gen is None else float(gen[:len(ref)].tolist() == ref.tolist())
                    if hit is not None:
                        exact.append(hit)
                    dec = (lambda t: tok.decode(t, skip_special_tokens=False)) if tok is not None else str
                    res.add(None if gen is None else dec(gen),
                            {"prompt_id": f"train[{i}]", "row": i, "prompt": dec(ids[:first]), "reference": dec(ref)},
                            f"train[{i}]", scores={"token_acc": accs[-1], "exact_match": hit})
        finally:
            if was_training:
                model.train()
        mean = (lambda xs: sum(xs) / len(xs) if xs else None)  # noqa: E731
        return ({f"{self.prefix}/token_acc": mean(accs), f"{self.prefix}/loss": mean(losses),
                 f"{self.prefix}/exact_match": mean(exact), f"{self.prefix}/rows": len(accs)}, res)


    def _greedy(self, model, tok, batch, prompt_ids, ref_len):
        """Greedy continuation of the prompt tokens, or None where this model cannot generate from a
        truncated encoded row (some VL models: position ids tied to the full sequence); said once."""
        import torch

        extra = {k: v for k, v in batch.items()  # images etc. (VL models)
                 if k not in ("input_ids", "attention_mask", "labels") and "position_ids" not in k}
        try:
            out = model.generate(input_ids=prompt_ids.unsqueeze(0),
                                 attention_mask=torch.ones_like(prompt_ids).unsqueeze(0), **extra,
                                 max_new_tokens=min(ref_len + 1, self.max_new_tokens), do_sample=False,
                                 pad_token_id=getattr(tok, "pad_token_id", None))
        except Exception as exc:
            if not getattr(self, "_gen_warned", False):
                logger.warning("train_sanity: greedy generation failed for this model (%r); exact_match is "
                               "not reported, token_acc and loss are", exc)
                self._gen_warned = True
            return None
        return out[0][len(prompt_ids):]


# -- (c) sample logger -------------------------------------------------------------------------------
class SampleLogger(ExtCallback):
    """Appends prompts, completions and per-reward scores to ``<output_dir>/swift_ext_samples.jsonl``
    (one JSON row per completion: step, split, prompt_id, prompt, completion, rewards, solution) at each
    evaluation, and prints a short table of the first ``show`` rows."""

    name = "sample_logger"
    params = {
        "path": Param("", "output file (default: <output_dir>/swift_ext_samples.jsonl)", type=str),
        "show": Param(4, "rows shown in the log table", type=int, min=0),
        "max_chars": Param(2000, "prompt/completion characters kept per row (0: all)", type=int, min=0),
    }

    def setup(self) -> None:
        self._results = Results(path="<eval rollouts>")
        _sinks(self.trainer).append(self)
        self.rows_written = 0

    def _collect(self, res: Results) -> None:
        self._results.extend(res)

    def on_train_begin(self, args, state, control, **kwargs):
        grpo.capture_grpo_eval(self.trainer, self._collect)  # GRPO eval rollouts (else no-op)

    @property
    def file(self) -> str:
        return self.path or os.path.join(getattr(self.args, "output_dir", "."), SAMPLES_FILE)

    def on_evaluate(self, args, state, control, **kwargs):
        if self._results.completions:
            res, self._results = self._results, Results(path="<eval rollouts>")
            self.write("eval", state.global_step, res)

    def _cut(self, text: Any) -> Any:
        if isinstance(text, str) and self.max_chars and len(text) > self.max_chars:
            return text[:self.max_chars] + f"... [{len(text) - self.max_chars} more chars]"
        return text

    def write(self, split: str, step: int, records: "Results | List[Dict[str, Any]]") -> None:
        """One log row per completion of ``records`` (:class:`~swift_ext.scoring.results.Results`, or the dicts
        :func:`from_records` reads)."""
        res = from_records(records)
        if not res.completions or not _is_main(self.trainer):
            return
        rows = []
        for i, (completion, rec) in enumerate(zip(res.completions, res.rows)):
            prompt = rec.get("prompt")
            if prompt is None:
                msgs = prompt_turns(rec.get("messages"))
                prompt = "\n".join(f"{m.get('role')}: {m.get('content')}" for m in msgs)
            group = res.group_keys[res.group_of[i]] if res.group_keys else None
            details = {n: d[i] for n, d in res.details.items() if d[i]}
            rows.append({"step": step, "split": split, "prompt_id": rec.get("prompt_id"),
                         **({"group": group} if group not in (None, "", rec.get("prompt_id")) else {}),
                         "prompt": self._cut(prompt), "completion": self._cut(completion),
                         "rewards": {n: v[i] for n, v in res.scores.items()},
                         **({"solution": rec["solution"]} if rec.get("solution") is not None else {}),
                         **({"images": _image_paths(rec["images"])} if rec.get("images") else {}),
                         **({"reference": self._cut(rec["reference"])} if rec.get("reference") else {}),
                         **({"details": details} if details else {})})
        with JsonlAppender(self.file) as log:  # whole lines at the end, in one write; a torn tail is cut first
            log.write_many(rows)
        self.rows_written += len(rows)
        self._table(split, step, rows)

    def _table(self, split: str, step: int, rows: List[Dict[str, Any]]) -> None:
        if not self.show:
            return
        from rich.console import Console
        from rich.table import Table

        names = sorted({k for r in rows for k in r["rewards"]})
        table = Table(title=f"swift-ext samples: {split} @ step {step} ({len(rows)} rows -> {self.file})")
        table.add_column("prompt", max_width=40, overflow="ellipsis", no_wrap=True)
        table.add_column("completion", max_width=50, overflow="ellipsis", no_wrap=True)
        for n in names:
            table.add_column(n, justify="right")
        for r in rows[:self.show]:
            prompt = str(r["prompt"]).replace("\n", " ")[-40:]
            comp = str(r["completion"]).replace("\n", "\\n")
            table.add_row(prompt, comp, *[_fmt(r["rewards"].get(n)) for n in names])
        Console(stderr=True, width=140).print(table)


def _image_paths(images: Any) -> List[Any]:
    """Paths of a row's images (ms-swift passes ``{"bytes", "path"}`` dicts; bytes are not logged)."""
    out = []
    for im in images if isinstance(images, (list, tuple)) else [images]:
        out.append(im.get("path") or "<bytes>" if isinstance(im, dict) else im if isinstance(im, str) else "<image>")
    return out


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v)


def _is_main(trainer: Any) -> bool:
    fn = getattr(trainer, "is_world_process_zero", None)
    try:
        return bool(fn()) if callable(fn) else True
    except Exception:
        return True


# -- (d) CHORD mu -------------------------------------------------------------------------------------
class ChordMu(ExtCallback):
    """Logs ``chord/mu``: the SFT weight CHORD used for the optimizer step that just finished (the value
    the schedule returned inside ms-swift's loss when the swift-ext plugin is loaded; else ms-swift's own
    schedule evaluated at the same step)."""

    name = "chord_mu"
    params = {"trace": Param("", "also append each rank's mu per step to TRACE.rank<R>.jsonl (one file per rank, "
                                 "by design: every rank computes its own loss)", type=str)}

    def setup(self) -> None:
        self._warned = False

    def on_step_end(self, args, state, control, **kwargs):
        step = state.global_step - 1  # compute_chord_loss ran with global_step before the increment
        mu = CHORD_RUNTIME.pop(step)
        used = mu is not None
        if mu is None:
            mu = CHORD_RUNTIME.native_mu(self.args, step)
        if mu is None:
            if not self._warned:
                logger.warning("chord_mu: this run uses no CHORD (no --chord_sft_dataset); nothing to log")
                self._warned = True
            return
        if self.trace:
            rank = int(os.environ.get("RANK", "0") or 0)
            with JsonlAppender(f"{self.trace}.rank{rank}.jsonl") as log:
                log.write({"step": state.global_step, "rank": rank, "mu": mu, "from_loss": used})
        self.emit({MU_KEY: mu})


# -- (e) early stop on a plateau --------------------------------------------------------------------
class PlateauStop(ExtCallback):
    """Stops training when ``metric`` (any logged key, e.g. ``eval_reward`` or
    ``eval_ext/Accuracy/pass@4``) has not improved by more than ``min_delta`` for ``patience``
    consecutive observations."""

    name = "plateau_stop"
    params = {
        "metric": Param("eval_reward", "logged key to watch", type=str),
        "mode": Param("max", "max: higher is better; min: lower is better", choices=("max", "min")),
        "patience": Param(3, "observations without improvement before stopping", type=int, min=1),
        "min_delta": Param(0.0, "smallest change that counts as an improvement", type=float, min=0.0),
    }

    def setup(self) -> None:
        self.best: Optional[float] = None
        self.bad = 0
        self.stopped_at: Optional[int] = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        super().on_log(args, state, control, logs, **kwargs)
        if not logs or self.metric not in logs:
            return
        value = float(logs[self.metric])
        better = (self.best is None or (value > self.best + self.min_delta if self.mode == "max"
                                        else value < self.best - self.min_delta))
        if better:
            self.best, self.bad = value, 0
            return
        self.bad += 1
        if self.bad >= self.patience and not control.should_training_stop:
            control.should_training_stop = True
            self.stopped_at = state.global_step
            logger.warning("plateau_stop: %s has not improved on %.6g for %d observations; stopping at step %d",
                           self.metric, self.best, self.bad, state.global_step)
        return control


# -- (f) health and reward-hacking detectors ---------------------------------------------------------
class Audit(ExtCallback):
    """Runs ``swift-ext audit``'s metric detectors (length drift, clipped ratio, one reward dominating, a format
    reward rising while accuracy stays flat, zero-std groups, reward std collapse) on the run's own log rows
    every ``every_steps`` steps; logs ``audit/<detector>`` (the measured value) and ``audit/<detector>/level``
    (0 ok, 1 warn, 2 error), and warns once per detector."""

    name = "audit"
    params = {"every_steps": Param(10, "run the detectors every this many optimizer steps", type=int, min=1)}

    def setup(self) -> None:
        from ..runs import Run

        self.run = Run(path=Path(getattr(self.args, "output_dir", None) or "."), name="live",
                       args={"reward_weights": getattr(self.args, "reward_weights", None)})
        self.warned: set = set()
        self.last: List[Any] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        super().on_log(args, state, control, logs, **kwargs)
        if not logs or not ("loss" in logs or "reward" in logs) or any(k.startswith("eval_") for k in logs):
            return
        self.run.rows.append({**logs, "step": int(state.global_step)})
        if int(state.global_step) % self.every_steps:
            return
        from ..curation.audit import METRIC_DETECTORS, SEVERITY

        self.run.refresh()
        self.last = [d(self.run) for d in METRIC_DETECTORS]
        metrics: Dict[str, float] = {}
        for f in self.last:
            if f.status == "skipped":
                continue
            metrics[f"audit/{f.detector}"] = f.value
            metrics[f"audit/{f.detector}/level"] = SEVERITY[f.status]
            if f.status in ("warn", "error") and f.detector not in self.warned and _is_main(self.trainer):
                self.warned.add(f.detector)
                logger.warning("audit %s at step %d: %s: %s (logged once)", f.status, state.global_step, f.detector,
                               f.message)
        self.emit(metrics)


BUILTIN_CALLBACKS = {cls.name: cls for cls in (RewardEval, TrainSanity, SampleLogger, ChordMu, PlateauStop, Audit)}

__all__ = ["ExtCallback", "configure_callback", "reward_metrics", "BUILTIN_CALLBACKS", "RewardEval",
           "TrainSanity", "SampleLogger", "ChordMu", "PlateauStop", "Audit"]
