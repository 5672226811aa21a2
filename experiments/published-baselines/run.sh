#!/usr/bin/env bash
# Replays the published throughput of FlexGen, DeepSpeed ZeRO-Inference and HF Accelerate on one GCP
# T4 (published-runs.json, format published-runs/1) with `planner validate`, and rewrites the table in
# README.md and results.json beside this script (under a second after the release build).
#
#     experiments/published-baselines/run.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
swift build -c release --product planner >/dev/null
python3 "$here/run.py" "$root/.build/release/planner"
