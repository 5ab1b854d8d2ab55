"""``swift-ext plan memory``: a first-order GPU memory estimate for full / LoRA / QLoRA training.

Fixed memory per GPU (exact arithmetic, decimal GB = 1e9 bytes):

* weights: ``P x bytes(dtype)`` (QLoRA: 0.5 byte/param for the 4-bit base, plus the adapters in ``dtype``);
* gradients: ``T x bytes(dtype)`` for the ``T`` trained parameters;
* optimizer: ``T x states x bytes(optim_dtype)``; AdamW keeps two states (exp_avg, exp_avg_sq);
* reference model (DPO, GRPO with beta > 0): another ``P x bytes`` when it is a separate copy. ms-swift's
  LoRA/QLoRA runs use the adapter-disabled base as reference (``shared``: no extra copy);
* DeepSpeed ZeRO over ``n`` data-parallel GPUs divides optimizer states (stage >= 1), gradients (>= 2)
  and weights incl. the reference model (3) by ``n``.

Activations are an *estimate*: per sequence and layer ``34 x seq x hidden`` bytes in 16-bit without
gradient checkpointing (Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer
Models", without the attention-score term that flash attention does not store), ``2 x seq x hidden`` with
full checkpointing plus one layer recomputed; plus fp32 logits ``seq x vocab x 4``. Fragmentation, CUDA
context (~1 GB), temporary buffers and DPO/GRPO specifics move real numbers by tens of percent.

    >>> est = estimate(MemoryInput(params=8e9, dtype="fp32", tuning="full", rlhf="dpo", ref_model="separate"))
    >>> round(est.fixed_gb)      # 32 weights + 32 grads + 64 AdamW + 32 reference
    160
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..errors import ConfigError

GB = 1e9
DTYPE_BYTES = {"fp32": 4.0, "float32": 4.0, "bf16": 2.0, "bfloat16": 2.0, "fp16": 2.0, "float16": 2.0,
               "int8": 1.0, "fp8": 1.0, "int4": 0.5, "nf4": 0.5}
OPTIM_STATES = {"adamw": 2, "adam": 2, "sgd": 1, "adafactor": 1, "adamw_8bit": 2}
TUNINGS = ("full", "lora", "qlora")
DEFAULT_LORA_FRACTION = 0.005  # rank-8 all-linear LoRA is ~0.2-0.5 % of a 7-8B model
CUDA_OVERHEAD_GB = 1.0
SAFETY = 0.9  # plan against 90 % of the card


@dataclass
class MemoryInput:
    params: float
    dtype: str = "bf16"
    tuning: str = "lora"
    trainable_fraction: Optional[float] = None
    rlhf: Optional[str] = None  # None/"sft", "dpo", "grpo", "chord"
    beta: Optional[float] = None  # GRPO: a reference model only when beta > 0 (ms-swift default 0.04)
    ref_model: str = "auto"  # auto | separate | shared | none
    optimizer: str = "adamw"
    optim_dtype: Optional[str] = None  # default: same as dtype (ms-swift loads weights in --torch_dtype)
    zero: int = 0
    n_gpus: int = 1
    hidden_size: Optional[int] = None
    num_layers: Optional[int] = None
    vocab_size: Optional[int] = None
    seq_len: Optional[int] = None
    gpu_mem_gb: float = 80.0
    global_batch: int = 16
    total_gpus: Optional[int] = None  # GRPO: GPUs of the node, to recommend the rollout share


@dataclass
class MemoryEstimate:
    parts_gb: Dict[str, float]
    fixed_gb: float
    act_per_seq_gb: Optional[float] = None
    act_per_seq_ckpt_gb: Optional[float] = None
    recommendation: Dict[str, Any] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def _bytes(dtype: str) -> float:
    try:
        return DTYPE_BYTES[dtype.lower()]
    except KeyError:
        raise ConfigError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPE_BYTES)}") from None


def _ref_kind(inp: MemoryInput) -> str:
    if inp.ref_model not in ("auto", "separate", "shared", "none"):
        raise ConfigError(f"--ref-model {inp.ref_model!r}: use auto, separate, shared or none")
    needs = inp.rlhf == "dpo" or (inp.rlhf in ("grpo", "chord") and (inp.beta is None or inp.beta > 0))
    if inp.ref_model != "auto":
        return inp.ref_model if needs or inp.ref_model == "none" else "none"
    if not needs:
        return "none"
    return "separate" if inp.tuning == "full" else "shared"


def estimate(inp: MemoryInput) -> MemoryEstimate:
    if inp.tuning not in TUNINGS:
        raise ConfigError(f"--tuning {inp.tuning!r}: use one of {', '.join(TUNINGS)}")
    if inp.params <= 0 or inp.n_gpus < 1 or inp.zero not in (0, 1, 2, 3):
        raise ConfigError("params must be > 0, --n-gpus >= 1 and --zero one of 0, 1, 2, 3")
    if inp.optimizer not in OPTIM_STATES:
        raise ConfigError(f"--optimizer {inp.optimizer!r}: known {', '.join(OPTIM_STATES)}")
    wb = _bytes(inp.dtype)
    ob = 1.0 if inp.optimizer == "adamw_8bit" else _bytes(inp.optim_dtype or inp.dtype)
    frac = 1.0 if inp.tuning == "full" else (inp.trainable_fraction if inp.trainable_fraction is not None
                                             else DEFAULT_LORA_FRACTION)
    trained = inp.params * frac
    base_b = 0.5 if inp.tuning == "qlora" else wb
    weights = inp.params * base_b + (trained * wb if inp.tuning != "full" else 0.0)
    grads = trained * wb
    optim = trained * OPTIM_STATES[inp.optimizer] * ob
    ref = inp.params * base_b if _ref_kind(inp) == "separate" else 0.0
    n = inp.n_gpus
    if inp.zero >= 1:
        optim /= n
    if inp.zero >= 2:
        grads /= n
    if inp.zero >= 3:
        weights, ref = weights / n, ref / n
    parts = {"weights": weights / GB, "gradients": grads / GB, "optimizer": optim / GB, "reference": ref / GB}
    est = MemoryEstimate(parts_gb={k: round(v, 6) for k, v in parts.items()}, fixed_gb=sum(parts.values()))
    est.notes.append(f"reference model: {_ref_kind(inp)}")
    _activations(inp, est)
    _recommend(inp, est, wb)
    return est


def _activations(inp: MemoryInput, est: MemoryEstimate) -> None:
    if not (inp.hidden_size and inp.num_layers and inp.seq_len):
        est.notes.append("activations not estimated: give --seq-len with --hidden-size/--num-layers (or --model DIR)")
        return
    s, h, L = inp.seq_len, inp.hidden_size, inp.num_layers
    seqs = 2 if inp.rlhf == "dpo" else 1  # DPO runs chosen and rejected
    logits = s * (inp.vocab_size or 0) * 4
    est.act_per_seq_gb = seqs * (34 * s * h * L + logits) / GB
    est.act_per_seq_ckpt_gb = seqs * (2 * s * h * L + 34 * s * h + logits) / GB


def _recommend(inp: MemoryInput, est: MemoryEstimate, wb: float) -> None:
    budget = inp.gpu_mem_gb * SAFETY - CUDA_OVERHEAD_GB - est.fixed_gb
    rec: Dict[str, Any] = {"fits": budget > 0, "free_for_activations_gb": round(budget, 2)}
    if budget <= 0:
        rec["advice"] = ("does not fit: use LoRA/QLoRA, a higher ZeRO stage over more GPUs, or a smaller dtype")
    elif est.act_per_seq_gb:
        ckpt = False
        b = _pow2_floor(budget / est.act_per_seq_gb)
        if b < 1:
            ckpt, b = True, _pow2_floor(budget / est.act_per_seq_ckpt_gb)
        if b < 1:
            rec.update(fits=False, advice="one sequence does not fit even with gradient checkpointing: "
                                          "shorten --max_length or shard more (ZeRO-3)")
        else:
            b = min(b, inp.global_batch)
            rec.update(per_device_train_batch_size=b, gradient_checkpointing=ckpt,
                       gradient_accumulation_steps=max(1, math.ceil(inp.global_batch / (b * inp.n_gpus))))
    if inp.rlhf in ("grpo", "chord") and inp.total_gpus:
        rec.update(_rollout_share(inp, wb))
    est.recommendation = rec


def _pow2_floor(x: float) -> int:
    return 0 if x < 1 else 2 ** int(math.floor(math.log2(min(x, 1024))))


def _rollout_share(inp: MemoryInput, wb: float) -> Dict[str, Any]:
    """vLLM needs the weights plus KV cache: the smallest power-of-2 TP keeping weights under half a card,
    and about a quarter of the node's GPUs (the 6 + 2 split of ms-swift's examples) in TP-sized groups."""
    weights_gb = inp.params * min(wb, 2.0) / GB
    tp = 1
    while weights_gb / tp > inp.gpu_mem_gb * 0.5 and tp < inp.total_gpus:
        tp *= 2
    n = max(tp, (inp.total_gpus // 4) // tp * tp)
    if n >= inp.total_gpus:
        return {"rollout_advice": f"{inp.total_gpus} GPUs are too few for a separate rollout server "
                                  f"(TP {tp} needed): use --set rollout.mode=colocate"}
    return {"rollout_gpus": n, "rollout_tp": tp, "rollout_dp": n // tp, "train_gpus": inp.total_gpus - n}


# -- reading a local model directory ---------------------------------------------------------------
def model_facts(path: str) -> Dict[str, Any]:
    """Parameter count (safetensors headers, no torch) and sizes from ``config.json`` of a local model."""
    root = Path(path)
    if not root.is_dir():
        raise ConfigError(f"--model {path}: not a local directory (give --params instead)")
    files = sorted(root.glob("*.safetensors"))
    if not files:
        raise ConfigError(f"{path}: no *.safetensors files to count parameters from (give --params)")
    params = sum(_safetensors_params(f) for f in files)
    cfg_path = root / "config.json"
    cfg = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
    text = cfg.get("text_config") or cfg
    return {"params": params, "hidden_size": text.get("hidden_size"), "num_layers": text.get("num_hidden_layers"),
            "vocab_size": text.get("vocab_size") or cfg.get("vocab_size")}


def _safetensors_params(path: Path) -> int:
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
    return sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")
