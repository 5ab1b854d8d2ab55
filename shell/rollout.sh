#!/usr/bin/env bash
# A stand-alone vLLM rollout server (templates/rollout.yaml) for trainers on other GPUs or nodes:
# point them at it with `swift-ext launch grpo --rollout-host THIS_HOST`. No --api_key: the ms-swift 4.6
# trainer cannot send one, so keep this port on a private network.
set -euo pipefail

MODEL=Qwen/Qwen2.5-7B-Instruct
GPUS=0-7
TP=1                     # tensor-parallel size; data-parallel = number of GPUs / TP
PORT=8000

swift-ext launch rollout \
    --gpus "$GPUS" \
    --set model="$MODEL" \
    --set vllm_tensor_parallel_size="$TP" \
    --set port="$PORT" \
    "$@"
