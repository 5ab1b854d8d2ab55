#!/usr/bin/env bash
# Merge a LoRA checkpoint into its base model (swift export --merge_lora true); the result is written
# next to the checkpoint as <checkpoint>-merged.
set -euo pipefail

CHECKPOINT=output/sft/v0-20250101-000000/checkpoint-100

swift-ext launch export \
    --set adapters="$CHECKPOINT" \
    "$@"
