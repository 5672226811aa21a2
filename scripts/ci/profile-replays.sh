#!/usr/bin/env bash
# Guards: both shipped CPU profiles replay within their guards (step-time error, largest regret),
# one to two points above what each replays to today: a guard against simulator drift, not the
# targets; and a scenario runs scaled down on the CPU engine beside its prediction. (The refusal of
# what does not fit is a unit test: here it would depend on this machine's free memory.)
set -euo pipefail
cd "$(dirname "$0")/../.."
planner=.build/release/planner
for guard in "cpu-amd-epyc-2c 0.07 0.05" "cpu-amd-epyc-f25m1-2c 0.05 0.02"; do
    set -- $guard
    "$planner" validate "profiles/$1"
    "$planner" validate "profiles/$1" --json | python3 scripts/ci/check_validate_guard.py "$1" "$2" "$3"
done
"$planner" run examples/hybrid.json --layers 2 --width-divisor 8 --batch 4
