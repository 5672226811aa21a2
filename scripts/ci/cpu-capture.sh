#!/usr/bin/env bash
# Guards: the CPU capture runs with the state gate (the default) and without it, and what it writes
# is read back and replayed by planner validate. Without the gate a window has one attempt and no
# probe readings; cpu_rules.py re-derives its e2e.csv by the default rule (typical) and refuses the
# gated rule on it with a clear error, not a traceback.
set -euo pipefail
cd "$(dirname "$0")/../.."
swift build -c release --product planner-cpu-capture
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
quick=(--quick --repeats 1 --warmup 0 --passes 1 --rounds 1)
.build/release/planner-cpu-capture --out "$tmp/gated" "${quick[@]}"
.build/release/planner validate "$tmp/gated" >/dev/null
.build/release/planner-cpu-capture --out "$tmp/ungated" "${quick[@]}" --no-gate
.build/release/planner validate "$tmp/ungated" >/dev/null
python3 scripts/ci/check_ungated_windows.py "$tmp/ungated"
python3 profiles/tools/cpu_rules.py "$tmp/ungated" "$tmp/rules" --tables median --e2e typical
python3 scripts/ci/check_rules_reproduce.py "$tmp/ungated" "$tmp/rules" e2e.csv
if python3 profiles/tools/cpu_rules.py "$tmp/ungated" "$tmp/rules-gated" --tables lowest --e2e gated 2>"$tmp/err"; then
    echo "cpu_rules.py --e2e gated accepted a capture without probe readings" >&2
    exit 1
fi
grep -q "needs probe_before and probe_after" "$tmp/err" && ! grep -q Traceback "$tmp/err"
echo "cpu_rules.py refuses the gated rule on an ungated capture: $(head -n 1 "$tmp/err")"
