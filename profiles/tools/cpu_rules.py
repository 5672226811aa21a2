"""Re-derives a CPU profile's tables and end-to-end times from what they were taken from
(sweeps.csv and e2e_windows.csv, profiles/FORMAT.md) under another rule, into a copy of the folder,
so that `planner validate` can compare rules on the same measurements.

    python3 profiles/tools/cpu_rules.py SRC DST --tables lowest|mean-first-last --e2e quiet|median

--tables lowest --e2e quiet is the capture's own rule (QuietState in Sources/CPUEngine): each table
point the lowest sweep; a run's time its median window relative to its round's level (the geometric
mean of the group's windows in that round), at the group's lowest round level.
--tables mean-first-last --e2e median is the earlier rule: the mean of the first and the last sweep;
the median of a run's windows (the earlier capture took the median of all steps, which this
approximates). The device JSON is copied as it is (derived under the capture's own rule).
"""
import argparse
import collections
import csv
import math
import os
import shutil
import statistics

ap = argparse.ArgumentParser()
ap.add_argument("src")
ap.add_argument("dst")
ap.add_argument("--tables", choices=["lowest", "mean-first-last"], required=True)
ap.add_argument("--e2e", choices=["quiet", "median"], required=True)
args = ap.parse_args()

if os.path.exists(args.dst):
    raise SystemExit(f"error: {args.dst}: exists; name a new folder")
tmp = args.dst + ".tmp"
shutil.rmtree(tmp, ignore_errors=True)
shutil.copytree(args.src, tmp)

sweeps = collections.defaultdict(lambda: collections.defaultdict(list))
for r in csv.DictReader(open(os.path.join(args.src, "sweeps.csv"))):
    sweeps[r["table"]][int(r["row"])].append(float(r["seconds"]))
rule = min if args.tables == "lowest" else (lambda xs: (xs[0] + xs[-1]) / 2)
for table in ["gemm", "attention", "link"]:
    rows = list(csv.DictReader(open(os.path.join(args.src, table + ".csv"))))
    for i, r in enumerate(rows):
        values = sweeps[table].get(i + 1)
        if not values:
            raise SystemExit(f"error: sweeps.csv: no sweep of {table}.csv row {i + 1}")
        r["seconds"] = "%.6g" % rule(values)
    with open(os.path.join(tmp, table + ".csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)

windows = collections.defaultdict(list)
for r in csv.DictReader(open(os.path.join(args.src, "e2e_windows.csv"))):
    windows[r["run"]].append(float(r["seconds"]))
runs = list(csv.DictReader(open(os.path.join(args.src, "e2e.csv"))))
groups = collections.defaultdict(list)
for r in runs:
    groups[r["group"]].append(r["run"])
times = {}
for members in groups.values():
    rounds = len(windows[members[0]])
    levels = [math.exp(sum(math.log(windows[m][k]) for m in members) / len(members)) for k in range(rounds)]
    for m in members:
        if args.e2e == "median":
            times[m] = statistics.median(windows[m])
        else:
            times[m] = statistics.median(windows[m][k] / levels[k] for k in range(rounds)) * min(levels)
for r in runs:
    r["step_seconds"] = "%.6g" % times[r["run"]]
with open(os.path.join(tmp, "e2e.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(runs[0].keys()), lineterminator="\n")
    w.writeheader()
    w.writerows(runs)
os.rename(tmp, args.dst)
