"""Re-derives a CPU profile's tables and end-to-end times from what they were taken from
(sweeps.csv and e2e_windows.csv, profiles/FORMAT.md) under another rule, into a new folder, so that
`planner validate` can compare rules on the same measurements.

    python3 profiles/tools/cpu_rules.py SRC DST --tables lowest|median|mean-first-last --e2e gated|quiet|typical|median [--factor F]

--tables lowest --e2e quiet is the capture's own rule (QuietState in Sources/CPUEngine): each table
point the lowest sweep; a run's time its median window relative to its round's level (the geometric
mean of the group's windows in that round), times the group's lowest round level. A capture with its
state gate retries a window whose state-probe reading after it was busy; this rule takes the last
attempt of each (pass, round), the quiet one when there was one.
--tables median --e2e typical is the capture's typical rule (`--rule typical`): each table point the
median sweep; a run's time its median window relative to its round's level, at the group's median
round level.
--e2e gated is the alternative tried on the gated captures: a run's time the median of all its
attempts whose readings before and after are both at most F (1.15) times the quiet level, the 5th
percentile (nearest rank) of all windows' readings (the median of all its attempts when none is).
--tables mean-first-last --e2e median is the earliest rule: the mean of the first and the last sweep;
the median of a run's windows (the earlier capture took the median of all steps, which this
approximates).
The device JSON is copied as it is: it was derived from the tables under the
capture's own rule, so a re-derived folder differs from a capture made under the other rule there
too. DST is written whole or not at all.
"""
import argparse
import collections
import csv
import json
import math
import os
import shutil
import statistics
import sys


def fail(message):
    sys.exit(f"error: {message}")


def rows(folder, name):
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
        fail(f"{path}: missing (a CPU profile captured with sweeps.csv and e2e_windows.csv is needed)")
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write(path, data):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(data[0].keys()), lineterminator="\n")
        w.writeheader()
        w.writerows(data)


def derive(src, out, tables, e2e, factor):
    sweeps = collections.defaultdict(dict)
    for i, r in enumerate(rows(src, "sweeps.csv")):
        sweeps[(r["table"], int(r["row"]))][int(r["sweep"])] = float(r["seconds"])
    pick = {"lowest": min, "median": statistics.median, "mean-first-last": lambda xs: (xs[0] + xs[-1]) / 2}[tables]
    # copy.csv (device copies) exists in captures made since it was added.
    for table in ["gemm", "attention", "link"] + (["copy"] if os.path.isfile(os.path.join(src, "copy.csv")) else []):
        data = rows(src, table + ".csv")
        for i, r in enumerate(data):
            by_sweep = sweeps.get((table, i + 1))
            if not by_sweep:
                fail(f"sweeps.csv: no sweep of {table}.csv row {i + 1}")
            r["seconds"] = "%.6g" % pick([by_sweep[s] for s in sorted(by_sweep)])
        write(os.path.join(out, table + ".csv"), data)

    windows = collections.defaultdict(dict)   # run -> (pass, round) -> its last attempt's seconds
    attempts = collections.defaultdict(list)  # run -> [(seconds, before, after)], every attempt
    for i, r in enumerate(rows(src, "e2e_windows.csv")):
        line = i + 2
        try:
            key = (int(r["pass"]), int(r["round"]))
            attempt = int(r.get("attempt") or 0)
            seconds = float(r["seconds"])
            before = float(r["probe_before"]) if r.get("probe_before") else None
            after = float(r["probe_after"]) if r.get("probe_after") else None
        except (TypeError, ValueError) as e:
            fail(f"e2e_windows.csv line {line}: {e}")
        if not seconds > 0:
            fail(f"e2e_windows.csv line {line}: seconds must be above 0, got {r['seconds']}")
        last = windows[r["run"]].get(key)
        if last is None or attempt > last[0]:
            windows[r["run"]][key] = (attempt, seconds)
        attempts[r["run"]].append((seconds, before, after))
    windows = {run: {k: v[1] for k, v in ws.items()} for run, ws in windows.items()}
    level = None
    if e2e == "gated":
        readings = [x for ws in attempts.values() for w in ws for x in w[1:]]
        if not readings or any(x is None for x in readings):
            fail("e2e_windows.csv: --e2e gated needs probe_before and probe_after on every window (a capture made with its state gate)")
        readings.sort()
        level = readings[max(0, math.ceil(0.05 * len(readings)) - 1)]
    runs = rows(src, "e2e.csv")
    groups = collections.defaultdict(list)
    for r in runs:
        groups[r["group"]].append(r["run"])
    times = {}
    for group, members in groups.items():
        keys = sorted(windows.get(members[0], {}))
        for m in members:
            if sorted(windows.get(m, {})) != keys or not keys:
                fail(f"e2e_windows.csv: run {m} of group {group} lacks the group's (pass, round) windows {keys}")
        levels = [math.exp(sum(math.log(windows[m][k]) for m in members) / len(members)) for k in keys]
        for m in members:
            if e2e == "gated":
                quiet = [w[0] for w in attempts[m] if max(w[1], w[2]) <= factor * level]
                times[m] = statistics.median(quiet or [w[0] for w in attempts[m]])
            elif e2e == "median":
                times[m] = statistics.median(windows[m][k] for k in keys)
            elif e2e == "typical":
                times[m] = statistics.median(windows[m][k] / level for k, level in zip(keys, levels)) * statistics.median(levels)
            else:
                times[m] = statistics.median(windows[m][k] / level for k, level in zip(keys, levels)) * min(levels)
    for r in runs:
        r["step_seconds"] = "%.6g" % times[r["run"]]
    write(os.path.join(out, "e2e.csv"), runs)

    meta_path = os.path.join(out, "profile.json")
    with open(meta_path) as f:
        meta = json.load(f)
    # The rule validate's repeatability follows: the e2e rule when it is one of the capture's.
    if e2e in ("quiet", "typical"):
        meta["rule"] = e2e
    else:
        meta.pop("rule", None)
    meta["source"] = (f"re-derived by profiles/tools/cpu_rules.py --tables {tables} --e2e {e2e} from sweeps.csv and "
                      f"e2e_windows.csv of this capture: {meta.get('source', '')}")
    with open(meta_path, "w") as f:
        json.dump(meta, f, indent=2, sort_keys=True)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--tables", choices=["lowest", "median", "mean-first-last"], required=True)
    ap.add_argument("--e2e", choices=["gated", "quiet", "typical", "median"], required=True)
    ap.add_argument("--factor", type=float, default=1.15, help="gated: a quiet reading is at most this times the quiet level (default 1.15)")
    args = ap.parse_args()
    if not 1 <= args.factor <= 3:
        fail(f"--factor: must be from 1 to 3, got {args.factor}")
    src, dst = os.path.normpath(args.src), os.path.normpath(args.dst)
    if not os.path.isdir(src):
        fail(f"{src}: not a profile folder")
    if os.path.exists(dst):
        fail(f"{dst}: exists; name a new folder")
    tmp = dst + ".partial"
    if os.path.exists(tmp):
        fail(f"{tmp}: exists (left by an interrupted run?); remove it first")
    shutil.copytree(src, tmp)
    try:
        derive(src, tmp, args.tables, args.e2e, args.factor)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.rename(tmp, dst)


main()
