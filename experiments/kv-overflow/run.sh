#!/usr/bin/env bash
# Replays the KV-overflow study (shared/seeds/002_*) with `planner serve`: Yarn-Llama-2-7B-64k on an
# A100-40GB, 32 requests of 1500 + 1024 tokens arriving together; recompute against swap over block
# size, sequence length (evicted tokens), GPU memory for the cache and per-copy latency, plus the
# time series at 12%. Writes results.csv, results.md, the time series and the SVG charts beside this
# script (about 3 s after the release build).
#
#     experiments/kv-overflow/run.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
swift build -c release --product planner >/dev/null
python3 "$here/run.py" "$root/.build/release/planner"
