#!/usr/bin/env bash
# The GPU smoke run (issue 21): on a fresh GPU node without network, build the tiny model locally, start
# `swift rollout` (vLLM) through the launcher, run 5 GRPO steps with swift-ext rewards against it, run
# `filter --backend vllm` on 32 prompts, and print one table of what passed, with timings.
#   bash bench/gpu_smoke.sh [--work DIR] [--json] [--timeout S]
# Without a GPU or vLLM the vLLM parts are skipped with a line saying so and the rest runs on CPU (the suite
# runs that mode: tests/launch/test_smoke.py). Exit code 1 when a step failed. Logs: WORK/*.log.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${PYTHON:-python}"
if [ -x "$HERE/../.venv/bin/python" ] && [ -z "${PYTHON:-}" ]; then PY="$HERE/../.venv/bin/python"; fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
exec "$PY" -m swift_ext doctor --smoke "$@"
