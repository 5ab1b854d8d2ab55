#!/usr/bin/env bash
# LoRA DPO from templates/dpo.yaml (rows: messages + rejected_response). The swift-ext plugin is added
# to --external_plugins automatically.
set -euo pipefail

MODEL=Qwen/Qwen2.5-7B-Instruct
DATASET=data/dpo.jsonl
GPUS=0-3
BETA=0.1
OUTPUT=output/dpo

swift-ext launch dpo \
    --gpus "$GPUS" \
    --set model="$MODEL" \
    --set dataset="$DATASET" \
    --set beta="$BETA" \
    --set output_dir="$OUTPUT" \
    "$@"
