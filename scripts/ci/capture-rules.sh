#!/usr/bin/env bash
# Guards: the shipped CPU profiles' tables and e2e.csv follow from their raw files (sweeps.csv,
# e2e_windows.csv) by each capture's rule, as profiles/tools/cpu_rules.py re-derives them
# independently of the Swift code; and profiles/tools/repeatability.py computes the repeatability
# that planner validate prints.
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for rules in "cpu-amd-epyc-2c lowest quiet" "cpu-amd-epyc-f25m1-2c median typical"; do
    set -- $rules
    p="profiles/$1"
    rm -rf "$tmp/rules"
    python3 profiles/tools/cpu_rules.py "$p" "$tmp/rules" --tables "$2" --e2e "$3"
    .build/release/planner validate "$p" --json > "$tmp/validate.json"
    python3 profiles/tools/repeatability.py "$p" --json > "$tmp/repeatability.json"
    python3 scripts/ci/check_repeatability_agrees.py "$tmp/validate.json" "$tmp/repeatability.json"
    python3 scripts/ci/check_rules_reproduce.py "$p" "$tmp/rules"
done
