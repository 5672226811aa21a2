#!/usr/bin/env bash
# Guards: every example scenario simulates (every refused one is refused), every serving example serves (with a trace), and
# `planner plan` runs on its built-in default.
set -euo pipefail
cd "$(dirname "$0")/../.."
planner=.build/release/planner
trace="$(mktemp)"
trap 'rm -f "$trace"' EXIT
for f in examples/*.json examples/engines/*.json; do "$planner" simulate "$f" --json >/dev/null; done
for f in examples/engines/refused/*.json; do
    if "$planner" simulate "$f" >/dev/null 2>&1; then echo "$f: simulated, but it is an example of what is refused" >&2; exit 1; fi
done
for f in examples/serving/*.json; do "$planner" serve "$f" --trace "$trace" >/dev/null; done
"$planner" plan >/dev/null
echo "examples: $(ls examples/*.json examples/engines/*.json | wc -l) scenarios, $(ls examples/engines/refused/*.json | wc -l) refused, $(ls examples/serving/*.json | wc -l) serving files, plan"
