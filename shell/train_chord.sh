#!/usr/bin/env bash
# CHORD: GRPO plus an SFT loss weighted by a mu schedule (templates/chord.yaml), with a rollout server.
set -euo pipefail

MODEL=Qwen/Qwen2.5-7B-Instruct
DATASET=data/grpo.jsonl          # RL prompts (+ solution)
SFT_DATASET=data/sft.jsonl       # expert answers for the SFT term
GPUS=0-7
ROLLOUT_GPUS=6,7         # device ids (one id: 7,)
MU_PEAK=0.9
MU_VALLEY=0.05
MU_DECAY_STEPS=200
OUTPUT=output/chord

swift-ext launch chord \
    --gpus "$GPUS" \
    --rollout-gpus "$ROLLOUT_GPUS" \
    --set model="$MODEL" \
    --set dataset="$DATASET" \
    --set chord_sft_dataset="$SFT_DATASET" \
    --set chord_mu_peak="$MU_PEAK" \
    --set chord_mu_valley="$MU_VALLEY" \
    --set chord_mu_decay_steps="$MU_DECAY_STEPS" \
    --set output_dir="$OUTPUT" \
    "$@"
