#!/usr/bin/env bash
# Recaptures the CPU profile (profiles/FORMAT.md) with the CPU engine: GEMMs by shape, decode and
# prefill attention, the copy threads' bandwidth, and end-to-end decode steps over placements in
# groups, and how kernels and copies slow each other (contention.csv); then checks it with `planner
# validate`. With the state gate (the default) and two passes, 9-12 minutes on the first 2-core build
# machine (family 25 model 17), 58 on the second (family 25 model 1); ungated with six passes, 26-27
# minutes on the second, with ten 45 (how profiles/cpu-amd-epyc-f25m1-2c was taken: --no-gate --passes 10).
# Run it on an otherwise idle machine: every number is a wall-clock time.
#
#     scripts/capture-cpu-profile.sh [profiles/cpu-NAME] [--repeats N] [--passes N] [--rounds N] [--rule typical|quiet] [--no-gate]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-profiles/cpu-amd-epyc-2c}"
shift || true
swift build -c release --product planner-cpu-capture
swift build -c release --product planner
.build/release/planner-cpu-capture --out "$out" --swift-version "$(swift --version 2>&1 | head -n 1)" "$@"
.build/release/planner validate "$out"
