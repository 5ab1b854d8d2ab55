#!/usr/bin/env bash
# LoRA SFT from templates/sft.yaml. Extra arguments go to swift-ext launch (e.g. --dry-run,
# --set lora_rank=16); swift flags go after "--" (e.g. -- --max_steps 100).
set -euo pipefail

MODEL=Qwen/Qwen2.5-7B-Instruct
DATASET=data/sft.jsonl
GPUS=0-3                 # device ids (0-3, 0,2; one id with a comma: 4,); one process per GPU
OUTPUT=output/sft

swift-ext launch sft \
    --gpus "$GPUS" \
    --set model="$MODEL" \
    --set dataset="$DATASET" \
    --set output_dir="$OUTPUT" \
    "$@"
