#!/usr/bin/env bash
# Guards: each experiment reruns, and the results committed beside it are the ones the current code
# produces (the simulations are deterministic, so a rerun must leave the files unchanged).
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 experiments/kv-overflow/run.py .build/release/planner
experiments/hybridserve-headline/run.sh
python3 experiments/published-baselines/run.py .build/release/planner
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    if ! git diff --exit-code --stat -- experiments/; then
        echo "experiments/: a rerun changed the committed results (above); rerun the experiment and commit what it writes" >&2
        exit 1
    fi
    echo "experiments: reruns match the committed results"
fi
