#!/usr/bin/env bash
# Offloaded serving with vLLM V1 on one RTX 4090: --cpu-offload-gb on a model that fits, and the CPU
# KV cache against recomputation for multi-turn chat. Rewrites results.csv, results.md and the charts
# beside this script (about a minute after the release build).
#
#     experiments/offloaded-serving/run.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
swift build -c release --product planner >/dev/null
python3 "$here/run.py" "$root/.build/release/planner"
