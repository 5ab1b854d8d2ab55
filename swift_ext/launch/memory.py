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
full checkpointing plus one layer recomputed; plus fp32 logits ``seq x vocab x 4``. DPO runs chosen and
rejected (x 2). Fragmentation, CUDA context (~1 GB) and temporary buffers move real numbers by tens of percent.

GRPO / CHORD also generate. The KV cache of one token is ``2 x layers x kv_heads x head_dim x bytes``
(``kv_heads x head_dim`` = ``hidden`` when the model's config does not say otherwise):

* ``rollout="server"`` (a ``swift rollout`` on its own GPUs): each rollout GPU holds ``P x bytes / TP`` of
  weights plus the KV cache of ``vllm_max_model_len`` tokens for at least one sequence; reported apart
  (``rollout_gpu``), the trainer GPUs are unchanged;
* ``rollout="colocate"`` (vLLM inside every trainer process): the same weights and KV cache sit on every
  trainer GPU (``vllm`` part);
* ``rollout="none"`` (HF generate in the trainer): ``num_generations`` sequences of KV cache per prompt
  (``generation`` part, when the shape is known).

A vision tower (``vision_params``, counted from the safetensors of ``--model``) is loaded with the model but,
with ``freeze_vit`` (ms-swift's default), trains nothing: no gradients or optimizer states for it.

The gradient accumulation recommended is for the data-parallel trainer GPUs: ``n_gpus``, else the trainer
share of ``total_gpus`` (GRPO: after the rollout GPUs), so the effective global batch is ``global_batch``.

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
from typing import Any, Dict, List, Optional, Tuple

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
    n_gpus: Optional[int] = None  # data-parallel trainer GPUs; None: the trainer share of total_gpus, else 1
    hidden_size: Optional[int] = None
    num_layers: Optional[int] = None
    vocab_size: Optional[int] = None
    seq_len: Optional[int] = None
    gpu_mem_gb: float = 80.0
    global_batch: int = 16
    total_gpus: Optional[int] = None  # GRPO: GPUs of the node, to recommend the rollout share
    num_kv_heads: Optional[int] = None  # with head_dim: the KV cache size (default: kv_heads x head_dim = hidden)
    head_dim: Optional[int] = None
    vision_params: float = 0.0  # parameters of the vision tower (and aligner)
    freeze_vit: bool = True
    rollout: Optional[str] = None  # GRPO/CHORD: server | colocate | none (default server)
    vllm_max_model_len: int = 8192
    vllm_tp: Optional[int] = None  # default: the recommended rollout TP (server), 1 (colocate)
    num_generations: int = 8


@dataclass
class MemoryEstimate:
    parts_gb: Dict[str, float]
    fixed_gb: float
    act_per_seq_gb: Optional[float] = None
    act_per_seq_ckpt_gb: Optional[float] = None
    rollout_gpu: Dict[str, Any] = field(default_factory=dict)
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


ROLLOUT_MODES = ("server", "colocate", "none")


def _generates(inp: MemoryInput) -> bool:
    return inp.rlhf in ("grpo", "chord")


def kv_bytes_per_token(inp: MemoryInput) -> Optional[float]:
    """``2 x layers x kv_heads x head_dim x bytes`` (K and V), or None without the model's shape."""
    if not inp.num_layers or not (inp.hidden_size or (inp.num_kv_heads and inp.head_dim)):
        return None
    width = inp.num_kv_heads * inp.head_dim if inp.num_kv_heads and inp.head_dim else inp.hidden_size
    return 2 * inp.num_layers * width * min(_bytes(inp.dtype), 2.0)


def estimate(inp: MemoryInput) -> MemoryEstimate:
    if inp.tuning not in TUNINGS:
        raise ConfigError(f"--tuning {inp.tuning!r}: use one of {', '.join(TUNINGS)}")
    if inp.params <= 0 or (inp.n_gpus is not None and inp.n_gpus < 1) or inp.zero not in (0, 1, 2, 3):
        raise ConfigError("params must be > 0, --n-gpus >= 1 and --zero one of 0, 1, 2, 3")
    if inp.optimizer not in OPTIM_STATES:
        raise ConfigError(f"--optimizer {inp.optimizer!r}: known {', '.join(OPTIM_STATES)}")
    if not 0 <= inp.vision_params < inp.params:
        raise ConfigError(f"vision tower of {inp.vision_params:g} params must be less than the model's {inp.params:g}")
    mode = (inp.rollout or "server") if _generates(inp) else None
    if mode is not None and mode not in ROLLOUT_MODES:
        raise ConfigError(f"--rollout {mode!r}: use one of {', '.join(ROLLOUT_MODES)}")
    wb = _bytes(inp.dtype)
    share = _rollout_share(inp, wb) if mode == "server" and inp.total_gpus else {}
    dp = _data_parallel(inp, share)
    ob = 1.0 if inp.optimizer == "adamw_8bit" else _bytes(inp.optim_dtype or inp.dtype)
    frac = 1.0 if inp.tuning == "full" else (inp.trainable_fraction if inp.trainable_fraction is not None
                                             else DEFAULT_LORA_FRACTION)
    trainable_base = inp.params - (inp.vision_params if inp.freeze_vit else 0.0)
    trained = trainable_base * frac
    base_b = 0.5 if inp.tuning == "qlora" else wb
    weights = inp.params * base_b + (trained * wb if inp.tuning != "full" else 0.0)
    grads = trained * wb
    optim = trained * OPTIM_STATES[inp.optimizer] * ob
    ref = inp.params * base_b if _ref_kind(inp) == "separate" else 0.0
    if inp.zero >= 1:
        optim /= dp
    if inp.zero >= 2:
        grads /= dp
    if inp.zero >= 3:
        weights, ref = weights / dp, ref / dp
    parts = {"weights": weights / GB, "gradients": grads / GB, "optimizer": optim / GB, "reference": ref / GB}
    kv = kv_bytes_per_token(inp)
    notes: List[str] = [f"reference model: {_ref_kind(inp)}"]
    if inp.rlhf == "dpo":
        notes.append("DPO: every sample is two sequences (chosen + rejected) in one forward pass")
    if mode == "colocate":
        tp = inp.vllm_tp or 1
        parts["vllm"] = (inp.params * min(wb, 2.0) / tp + (kv or 0.0) * inp.vllm_max_model_len / tp) / GB
        notes.append(f"vLLM colocated in every trainer process: weights / TP {tp}"
                     + (f" + KV cache for one {inp.vllm_max_model_len}-token sequence" if kv else
                        " (KV cache not estimated: give --model DIR or --hidden-size/--num-layers)")
                     + "; set --vllm_gpu_memory_utilization to at least this share of the card")
    if inp.vision_params:
        notes.append(f"vision tower: {inp.vision_params / 1e9:.3g}B params in the weights"
                     + ("; frozen (freeze_vit): no gradients or optimizer states for it" if inp.freeze_vit else
                        "; trained (--no-freeze-vit)") + "; image tokens add activations not counted here")
    est = MemoryEstimate(parts_gb={k: round(v, 6) for k, v in parts.items()}, fixed_gb=sum(parts.values()),
                         notes=notes)
    _activations(inp, est, kv if mode == "none" else None)
    if mode == "server":
        est.rollout_gpu = _rollout_gpu(inp, wb, kv, share)
    _recommend(inp, est, dp, share)
    return est


def _data_parallel(inp: MemoryInput, share: Dict[str, Any]) -> int:
    train = share.get("train_gpus") or (inp.total_gpus if not share and not _generates(inp) else None)
    if inp.n_gpus is not None:
        if train and inp.n_gpus != train:
            raise ConfigError(f"--n-gpus {inp.n_gpus} contradicts the {train} trainer GPUs of --total-gpus "
                              f"{inp.total_gpus}; give one of them")
        return inp.n_gpus
    return train or 1


def _activations(inp: MemoryInput, est: MemoryEstimate, gen_kv: Optional[float]) -> None:
    if not (inp.hidden_size and inp.num_layers and inp.seq_len):
        est.notes.append("activations not estimated: give --seq-len with --hidden-size/--num-layers (or --model DIR)")
        return
    s, h, L = inp.seq_len, inp.hidden_size, inp.num_layers
    seqs = 2 if inp.rlhf == "dpo" else 1  # DPO runs chosen and rejected
    logits = s * (inp.vocab_size or 0) * 4
    est.act_per_seq_gb = seqs * (34 * s * h * L + logits) / GB
    est.act_per_seq_ckpt_gb = seqs * (2 * s * h * L + 34 * s * h + logits) / GB
    if gen_kv:  # HF generate inside the trainer: KV cache of every completion of a prompt
        est.parts_gb["generation"] = round(gen_kv * s * inp.num_generations / GB, 6)
        est.fixed_gb += gen_kv * s * inp.num_generations / GB
        est.notes.append(f"generation in the trainer (no vLLM): KV cache of {inp.num_generations} sequences of "
                         f"{s} tokens")


def _rollout_gpu(inp: MemoryInput, wb: float, kv: Optional[float], share: Dict[str, Any]) -> Dict[str, Any]:
    """Per rollout-server GPU: weights / TP and the KV cache of ``vllm_max_model_len`` tokens."""
    tp = inp.vllm_tp or share.get("rollout_tp") or 1
    weights = inp.params * min(wb, 2.0) / tp / GB
    out: Dict[str, Any] = {"tp": tp, "weights_gb": round(weights, 6)}
    if kv is None:
        out["kv_cache"] = "not estimated: give --model DIR or --hidden-size/--num-layers"
        return out
    per_seq = kv * inp.vllm_max_model_len / tp / GB
    room = inp.gpu_mem_gb * SAFETY - CUDA_OVERHEAD_GB - weights
    out.update(kv_cache_per_sequence_gb=round(per_seq, 9), fits=room >= per_seq,
               max_concurrent_sequences=max(0, int(room // per_seq)) if per_seq else None)
    return out


def _recommend(inp: MemoryInput, est: MemoryEstimate, dp: int, share: Dict[str, Any]) -> None:
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
            b = max(1, min(b, inp.global_batch // dp))
            accum = max(1, math.ceil(inp.global_batch / (b * dp)))
            rec.update(per_device_train_batch_size=b, gradient_checkpointing=ckpt,
                       gradient_accumulation_steps=accum, data_parallel_gpus=dp,
                       effective_global_batch=b * dp * accum)
    if inp.rlhf in ("grpo", "chord") and inp.total_gpus:
        rec.update(share)
    est.recommendation = rec


def _pow2_floor(x: float) -> int:
    return 0 if x < 1 else 2 ** int(math.floor(math.log2(min(x, 1024))))


def _rollout_share(inp: MemoryInput, wb: float) -> Dict[str, Any]:
    """vLLM needs the weights plus KV cache: the smallest power-of-2 TP keeping weights under half a card,
    and about a quarter of the node's GPUs (the 6 + 2 split of ms-swift's examples) in TP-sized groups."""
    weights_gb = inp.params * min(wb, 2.0) / GB
    tp = inp.vllm_tp or 1
    while not inp.vllm_tp and weights_gb / tp > inp.gpu_mem_gb * 0.5 and tp < inp.total_gpus:
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
    counts = [_safetensors_params(f) for f in files]
    cfg_path = root / "config.json"
    cfg = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
    text = cfg.get("text_config") or cfg
    heads = text.get("num_attention_heads")
    head_dim = text.get("head_dim") or (text["hidden_size"] // heads if heads and text.get("hidden_size") else None)
    return {"params": sum(c[0] for c in counts), "vision_params": sum(c[1] for c in counts),
            "hidden_size": text.get("hidden_size"), "num_layers": text.get("num_hidden_layers"),
            "vocab_size": text.get("vocab_size") or cfg.get("vocab_size"),
            "num_kv_heads": text.get("num_key_value_heads") or heads, "head_dim": head_dim}


VISION_PREFIXES = ("visual.", "model.visual.", "vision_tower.", "model.vision_tower.", "vision_model.",
                   "model.vision_model.", "multi_modal_projector.", "model.multi_modal_projector.")


def _safetensors_params(path: Path) -> Tuple[int, int]:
    """(all parameters, those of the vision tower / projector) of one safetensors file."""
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
    sizes = {k: math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__"}
    return sum(sizes.values()), sum(v for k, v in sizes.items() if k.startswith(VISION_PREFIXES))
