#!/usr/bin/env bash
# Reproduces the direction and size of HybridServe's headline result with the planner: on an RTX 4090
# (24 GB, PCIe 4.0 x16), for OPT-6.7B, 13B, 30B and 66B, the best hybrid KV:ACT configuration against
# the best FlexGen-style KV-only and the best ACT-only configuration, each searched over the same batch
# sizes. Writes results.csv and results.md beside this script.
#
#     experiments/hybridserve-headline/run.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
swift build -c release --product planner >/dev/null
planner="$root/.build/release/planner"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for host in 128 256; do
  for model in opt-6.7b opt-13b opt-30b opt-66b; do
    for prompt in 512 1024; do
      out="$tmp/$model-$prompt-$host.json"
      "$planner" sweep --model "$model" --hardware rtx4090 --host-memory-gib "$host" --prompt "$prompt" --tokens 32 \
        --batches 8,16,32,48,64,96,128,192,256,384 --json > "$out" || true
    done
  done
done
python3 "$here/summarize.py" "$tmp" "$here"
