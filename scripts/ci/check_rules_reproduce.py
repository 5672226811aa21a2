#!/usr/bin/env python3
"""Checks that the tables profiles/tools/cpu_rules.py derived from a capture's raw files equal the
capture's own, row for row, within 1e-4 relative.

    python3 scripts/ci/check_rules_reproduce.py PROFILE DERIVED [FILE.csv ...]

Without FILE arguments every table the profile has is compared (gemm, attention, link, copy, e2e).
"""
import csv
import os
import sys

TIME_COLUMN = {"gemm.csv": "seconds", "attention.csv": "seconds", "link.csv": "seconds", "copy.csv": "seconds",
               "e2e.csv": "step_seconds"}
profile, derived = sys.argv[1], sys.argv[2]
files = sys.argv[3:] or [f for f in TIME_COLUMN if os.path.exists(os.path.join(profile, f))]
for f in files:
    a = list(csv.DictReader(open(os.path.join(profile, f))))
    b = list(csv.DictReader(open(os.path.join(derived, f))))
    key = TIME_COLUMN[f]
    if len(a) != len(b):
        sys.exit(f"{profile}/{f}: {len(a)} rows, cpu_rules.py derived {len(b)}")
    for i, (x, y) in enumerate(zip(a, b), 2):
        if abs(float(x[key]) / float(y[key]) - 1) >= 1e-4:
            sys.exit(f"{profile}/{f}:{i}: {key} {x[key]}, cpu_rules.py derived {y[key]}")
print(f"cpu_rules.py reproduces {', '.join(files)} of {profile}")
