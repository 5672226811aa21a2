#!/usr/bin/env python3
"""Checks that profiles/tools/repeatability.py and `planner validate` compute the same
repeatability of a capture: the same rule and runs, the halves' disagreement and the largest cross
regret within 1e-9, and the same best placement per group in each half.

    python3 scripts/ci/check_repeatability_agrees.py VALIDATE.json REPEATABILITY.json
"""
import json
import sys

a = json.load(open(sys.argv[1]))["repeatability"]
b = json.load(open(sys.argv[2]))
if (a["rule"], a["runs"]) != (b["rule"], b["runs"]):
    sys.exit(f"rule and runs differ: planner validate {a['rule']}, {a['runs']}; repeatability.py {b['rule']}, {b['runs']}")
for k in ["halfDisagreement", "largestCrossRegret"]:
    if abs(a[k] - b[k]) >= 1e-9:
        sys.exit(f"{k}: planner validate {a[k]}, repeatability.py {b[k]}")
groups = lambda r: [(g["group"], g["bestEven"], g["bestOdd"]) for g in r["groups"]]
if groups(a) != groups(b):
    sys.exit(f"best placements per half differ: planner validate {groups(a)}, repeatability.py {groups(b)}")
print("repeatability.py agrees with planner validate: halves differ by %.2f%%" % (100 * a["halfDisagreement"]))
