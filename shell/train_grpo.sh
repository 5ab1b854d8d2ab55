#!/usr/bin/env bash
# GRPO with a vLLM rollout server on its own GPUs (templates/grpo.yaml). swift-ext checks the ports,
# starts `swift rollout`, waits for /health, starts the trainer pointed at it, and stops every process
# when training ends, fails or is interrupted. Logs: swift-ext-logs/grpo-*/{rollout,train}.log
set -euo pipefail

MODEL=Qwen/Qwen2.5-7B-Instruct
DATASET=data/grpo.jsonl
GPUS=0-7                 # all devices of this node
ROLLOUT_GPUS=6,7         # device ids (one id: 7,) served by swift rollout (TP x DP = this many); the rest train
REWARDS="think_format math_accuracy"
OUTPUT=output/grpo

swift-ext launch grpo \
    --gpus "$GPUS" \
    --rollout-gpus "$ROLLOUT_GPUS" \
    --set model="$MODEL" \
    --set dataset="$DATASET" \
    --set output_dir="$OUTPUT" \
    "$@" \
    -- --reward_funcs $REWARDS
