#!/usr/bin/env bash
# Guards: every example scenario simulates, every serving example serves (with a trace), and
# `planner plan` runs on its built-in default.
set -euo pipefail
cd "$(dirname "$0")/../.."
planner=.build/release/planner
trace="$(mktemp)"
trap 'rm -f "$trace"' EXIT
for f in examples/*.json; do "$planner" simulate "$f" --json >/dev/null; done
for f in examples/serving/*.json; do "$planner" serve "$f" --trace "$trace" >/dev/null; done
"$planner" plan >/dev/null
echo "examples: $(ls examples/*.json | wc -l) scenarios, $(ls examples/serving/*.json | wc -l) serving files, plan"
