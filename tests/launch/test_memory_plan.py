"""``swift-ext plan memory``: every expected number is computed by hand in the comment next to it.

Published worked example (8B model under DPO; the method of "Multi-GPU DPO Training with FSDP", The
Kaitchup, Dec 2024: policy + reference copy + AdamW's two states per trained parameter):
fp32 full ~ 160 GB, bf16 + LoRA ~ 32 GB (with a separate reference copy).
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from swift_ext.cli import cli
from swift_ext.errors import ConfigError
from swift_ext.launch.memory import MemoryInput, estimate, model_facts

B8 = 8e9


def est(**kw):
    kw.setdefault("params", B8)
    return estimate(MemoryInput(**kw))


def test_published_8b_dpo_fp32_full_is_160_gb():
    e = est(dtype="fp32", tuning="full", rlhf="dpo")
    # weights 8e9*4 = 32 GB, gradients 32, AdamW 2 states * 32 = 64, separate fp32 reference 32 -> 160
    assert e.parts_gb == {"weights": 32.0, "gradients": 32.0, "optimizer": 64.0, "reference": 32.0}
    assert e.fixed_gb == pytest.approx(160.0)


def test_published_8b_dpo_bf16_lora_is_32_gb_with_a_separate_reference():
    e = est(dtype="bf16", tuning="lora", rlhf="dpo", ref_model="separate", trainable_fraction=0.0)
    # policy 8e9*2 = 16 GB + reference 16 GB; no trained parameters -> 32
    assert e.fixed_gb == pytest.approx(32.0)
    e = est(dtype="bf16", tuning="lora", rlhf="dpo", ref_model="separate")
    # default 0.5 % trained: 4e7 params -> adapters 0.08 + grads 0.08 + AdamW 4e7*2*2 = 0.16 -> 32.32
    assert e.fixed_gb == pytest.approx(32.32)


def test_ms_swift_lora_reuses_the_base_as_reference():
    e = est(dtype="bf16", tuning="lora", rlhf="dpo")  # auto -> shared (adapter-disabled base)
    # 16.08 + 0.08 + 0.16 + 0 = 16.32
    assert e.fixed_gb == pytest.approx(16.32) and "reference model: shared" in e.notes


def test_qlora_base_is_half_a_byte_per_parameter():
    e = est(dtype="bf16", tuning="qlora", rlhf="dpo")
    # base 8e9*0.5 = 4 GB + adapters 0.08, grads 0.08, AdamW 0.16 -> 4.32
    assert e.fixed_gb == pytest.approx(4.32)


@pytest.mark.parametrize("zero, n, expected", [
    (1, 4, 112.0),  # 32 + 32 + 64/4 + 32
    (2, 4, 88.0),   # 32 + 32/4 + 64/4 + 32
    (3, 8, 20.0),   # 160 / 8
])
def test_zero_stages_shard_what_they_should(zero, n, expected):
    assert est(dtype="fp32", tuning="full", rlhf="dpo", zero=zero, n_gpus=n).fixed_gb == pytest.approx(expected)


def test_grpo_reference_only_when_beta_positive():
    assert est(dtype="fp32", tuning="full", rlhf="grpo", beta=0.0).fixed_gb == pytest.approx(128.0)  # 32+32+64
    assert est(dtype="fp32", tuning="full", rlhf="grpo").fixed_gb == pytest.approx(160.0)  # default beta 0.04
    assert est(dtype="fp32", tuning="full").fixed_gb == pytest.approx(128.0)  # SFT: no reference


def test_activations_and_batch_recommendation():
    e = est(dtype="bf16", tuning="lora", seq_len=2048, hidden_size=4096, num_layers=32, gpu_mem_gb=80)
    # no checkpointing: 34*2048*4096*32 = 9.126805504e9 B; checkpointing: 2*2048*4096*32 + 34*2048*4096 = 0.822083584e9
    assert e.act_per_seq_gb == pytest.approx(9.126805504)
    assert e.act_per_seq_ckpt_gb == pytest.approx(0.822083584)
    # budget 80*0.9 - 1 - 16.32 = 54.68 GB -> 54.68/9.127 = 5.99 -> batch 4 (power of 2), 16/4 = 4 accumulation
    assert e.recommendation == {"fits": True, "free_for_activations_gb": 54.68, "per_device_train_batch_size": 4,
                                "gradient_checkpointing": False, "gradient_accumulation_steps": 4,
                                "data_parallel_gpus": 1, "effective_global_batch": 16}
    e = est(dtype="bf16", tuning="lora", seq_len=2048, hidden_size=4096, num_layers=32, gpu_mem_gb=24)
    # budget 24*0.9 - 1 - 16.32 = 4.28 < 9.13 -> checkpointing: 4.28/0.822 = 5.2 -> batch 4, accumulation 4
    assert e.recommendation["gradient_checkpointing"] is True
    assert e.recommendation["per_device_train_batch_size"] == 4
    dpo = est(dtype="bf16", tuning="lora", rlhf="dpo", seq_len=2048, hidden_size=4096, num_layers=32)
    assert dpo.act_per_seq_gb == pytest.approx(2 * 9.126805504)  # chosen + rejected


def test_does_not_fit_says_so():
    e = est(dtype="fp32", tuning="full", rlhf="dpo", gpu_mem_gb=80)
    assert e.recommendation["fits"] is False and "does not fit" in e.recommendation["advice"]


def test_rollout_share_for_grpo():
    e = est(dtype="bf16", tuning="lora", rlhf="grpo", total_gpus=8, gpu_mem_gb=80)
    # 8B bf16 = 16 GB <= 40 GB (half a card) -> TP 1; a quarter of 8 GPUs = 2 -> DP 2, 6 train
    assert {k: e.recommendation[k] for k in ("rollout_gpus", "rollout_tp", "rollout_dp", "train_gpus")} == \
        {"rollout_gpus": 2, "rollout_tp": 1, "rollout_dp": 2, "train_gpus": 6}
    e = est(params=72e9, dtype="bf16", tuning="lora", rlhf="grpo", total_gpus=8, gpu_mem_gb=80)
    # 144 GB: TP 2 -> 72 > 40, TP 4 -> 36 <= 40; max(4, 2 // 4 * 4 = 0) = 4 rollout GPUs, 4 train
    assert e.recommendation["rollout_tp"] == 4 and e.recommendation["train_gpus"] == 4


def test_bad_inputs():
    with pytest.raises(ConfigError, match="unknown dtype"):
        est(dtype="fp7")
    with pytest.raises(ConfigError, match="--tuning"):
        est(tuning="prefix")
    with pytest.raises(ConfigError, match="--zero one of"):
        est(zero=4)


def test_model_dir_counts_parameters_from_safetensors(tiny_models):
    facts = model_facts(tiny_models["text"].path)
    # tiny Qwen3: tied embeddings 3072*64 = 196608; per layer q 64*64 + k 64*32 + v 64*32 + o 64*64 = 12288,
    # q/k norms 16+16, MLP 3*64*128 = 24576, two RMSNorms 128 -> 37024; 2 layers 74048; final norm 64
    assert facts["params"] == 196608 + 2 * 37024 + 64
    assert (facts["hidden_size"], facts["num_layers"], facts["vocab_size"]) == (64, 2, 3072)


def test_cli(tmp_path):
    res = CliRunner().invoke(cli, ["plan", "memory", "--params", "8B", "--tuning", "full", "--dtype", "fp32",
                                   "--rlhf", "dpo", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["fixed_gb"] == pytest.approx(160.0)
    res = CliRunner().invoke(cli, ["plan", "memory", "--params", "eight"])
    assert res.exit_code == 2 and "8B, 500M or 7.6e9" in res.output
    res = CliRunner().invoke(cli, ["plan", "memory"])
    assert res.exit_code == 2 and "--params" in res.output


# -- issue 10 ----------------------------------------------------------------------------------------
SHAPE = {"seq_len": 2048, "hidden_size": 4096, "num_layers": 32}


def test_grpo_and_dpo_differ_without_model_shape_flags():
    grpo, dpo = est(rlhf="grpo"), est(rlhf="dpo")
    # both LoRA with the shared reference: 16.32 GB fixed on the trainer side
    assert grpo.fixed_gb == pytest.approx(dpo.fixed_gb) == pytest.approx(16.32)
    # GRPO also needs the rollout server's GPU: 8e9 * 2 bytes = 16 GB of weights at TP 1
    assert grpo.rollout_gpu["weights_gb"] == 16.0 and "not estimated" in grpo.rollout_gpu["kv_cache"]
    assert dpo.rollout_gpu == {} and any("chosen + rejected" in n for n in dpo.notes)
    outs = [CliRunner().invoke(cli, ["plan", "memory", "--params", "8B", "--rlhf", r]).output for r in ("grpo", "dpo")]
    assert outs[0] != outs[1] and "rollout server GPU (vLLM, TP 1): weights 16.00 GB" in outs[0]


def test_gradient_accumulation_is_for_the_trainer_gpus_it_recommends():
    e = est(rlhf="grpo", total_gpus=5, global_batch=32, **SHAPE)
    # 5 GPUs: a quarter (1) serves rollouts, 4 train. budget 54.68 GB / 9.127 GB -> 4 sequences per GPU;
    # 32 / (4 x 4 GPUs) = 2 accumulation steps -> 4 x 4 x 2 = 32 (not 4 x 4 x 8 = 128)
    r = e.recommendation
    assert (r["train_gpus"], r["per_device_train_batch_size"], r["gradient_accumulation_steps"]) == (4, 4, 2)
    assert r["data_parallel_gpus"] == 4 and r["effective_global_batch"] == 32
    with pytest.raises(ConfigError, match="--n-gpus 2 contradicts the 4 trainer GPUs"):
        est(rlhf="grpo", total_gpus=5, n_gpus=2)
    # ZeRO shards over those 4 trainer GPUs too: fp32 full, beta 0 -> (32 + 32 + 64) / 4 = 32
    assert est(rlhf="grpo", beta=0.0, tuning="full", dtype="fp32", zero=3, total_gpus=5).fixed_gb == pytest.approx(32.0)


def test_vllm_side_weights_and_kv_cache():
    e = est(rlhf="grpo", **SHAPE)
    # KV per token 2 (K, V) x 32 layers x 4096 x 2 bytes = 524288 B; 8192 tokens -> 4.294967296 GB
    # room 80 x 0.9 - 1 - 16 (weights) = 55 GB -> 12 sequences at once
    assert e.rollout_gpu == {"tp": 1, "weights_gb": 16.0, "kv_cache_per_sequence_gb": 4.294967296, "fits": True,
                             "max_concurrent_sequences": 12}
    gqa = est(rlhf="grpo", num_kv_heads=8, head_dim=128, vllm_max_model_len=4096, **SHAPE)
    # 2 x 32 x 8 x 128 x 2 = 131072 B per token x 4096 = 0.536870912 GB; 55 / 0.537 -> 102
    assert gqa.rollout_gpu["kv_cache_per_sequence_gb"] == pytest.approx(0.536870912)
    assert gqa.rollout_gpu["max_concurrent_sequences"] == 102
    colo = est(rlhf="grpo", rollout="colocate", **SHAPE)
    # vLLM on every trainer GPU: 16 GB weights + 4.294967296 GB KV -> 16.32 + 20.294967296
    assert colo.parts_gb["vllm"] == pytest.approx(20.294967296) and colo.rollout_gpu == {}
    assert colo.fixed_gb == pytest.approx(36.614967296)
    hf = est(rlhf="grpo", rollout="none", **SHAPE)
    # HF generate: 8 generations x 2048 tokens x 524288 B = 8.589934592 GB
    assert hf.parts_gb["generation"] == pytest.approx(8.589934592)
    assert est(rlhf="dpo", **SHAPE).rollout_gpu == {} and "vllm" not in est(rlhf="dpo").parts_gb


def test_frozen_vision_tower_has_weights_but_no_gradients_or_optimizer_states():
    e = est(dtype="fp32", tuning="full", vision_params=0.6e9)
    # weights 8e9 x 4 = 32; trained 7.4e9: gradients 29.6, AdamW 59.2 -> 120.8
    assert e.parts_gb == {"weights": 32.0, "gradients": 29.6, "optimizer": 59.2, "reference": 0.0}
    assert est(dtype="fp32", tuning="full", vision_params=0.6e9, freeze_vit=False).fixed_gb == pytest.approx(128.0)


def test_model_dir_counts_the_vision_tower(tiny_models):
    text, vl = model_facts(tiny_models["text"].path), model_facts(tiny_models["qwen2_vl"].path)
    assert text["vision_params"] == 0 and (text["num_kv_heads"], text["head_dim"]) == (2, 16)
    assert 0 < vl["vision_params"] < vl["params"]
