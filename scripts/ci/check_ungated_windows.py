#!/usr/bin/env python3
"""Checks that an ungated CPU capture's e2e_windows.csv holds one attempt per window and no state
probe readings.

    python3 scripts/ci/check_ungated_windows.py PROFILE
"""
import csv
import os
import sys

path = os.path.join(sys.argv[1], "e2e_windows.csv")
rows = list(csv.DictReader(open(path)))
if not rows:
    sys.exit(f"{path}: no windows")
for i, r in enumerate(rows, 2):
    if r["attempt"] != "0" or r["probe_before"] != "" or r["probe_after"] != "":
        sys.exit(f"{path}:{i}: an ungated window must be attempt 0 without probe readings, got {r['attempt']}, {r['probe_before']!r}, {r['probe_after']!r}")
print(f"{path}: {len(rows)} windows, one attempt each, no probe readings")
