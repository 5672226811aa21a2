#!/usr/bin/env python3
"""Reads `planner validate DIR --json` on standard input and fails when the step-time error or the
largest regret reaches its guard.

    planner validate profiles/P --json | python3 scripts/ci/check_validate_guard.py P MAX_ERROR MAX_REGRET
"""
import json
import sys

name, max_error, max_regret = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
d = json.load(sys.stdin)
error, regret = d["stepMAPE"], d["maxRegret"]
if error is None or regret is None:
    sys.exit(f"{name}: no end-to-end runs to replay")
if not (error < max_error and regret < max_regret):
    sys.exit(f"{name}: step-time error {error:.2%} (guard {max_error:.0%}), largest regret {regret:.2%} (guard {max_regret:.0%})")
print(f"{name}: step-time error {error:.2%} < {max_error:.0%}, largest regret {regret:.2%} < {max_regret:.0%}")
