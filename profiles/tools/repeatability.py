"""The repeatability of a CPU capture's end-to-end times, computed from its files alone, as an
independent check of `planner validate` (Validation.repeatability in Sources/PlannerCore):

    python3 profiles/tools/repeatability.py PROFILE_DIR [--json]

The windows of the even passes and those of the odd passes (e2e_windows.csv, the last attempt of
each run, pass and round) each give every run a time by the profile's rule (profile.json "rule",
quiet when absent): per group, a round's level is the geometric mean of its runs' windows, a run's
time the median of its windows over their rounds' levels, times the lowest (quiet) or the median
(typical) level. Prints the mean over runs of |t_even - t_odd| / ((t_even + t_odd) / 2) and, per
group, the best run of each half and the regret of choosing by one half's times in the other.
"""
import argparse
import collections
import csv
import json
import math
import os
import statistics
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("profile")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    src = args.profile
    for name in ["profile.json", "e2e.csv", "e2e_windows.csv"]:
        if not os.path.isfile(os.path.join(src, name)):
            sys.exit(f"error: {os.path.join(src, name)}: missing")
    rule = json.load(open(os.path.join(src, "profile.json"))).get("rule", "quiet")
    if rule not in ("quiet", "typical"):
        sys.exit(f"error: {src}/profile.json: rule must be quiet or typical, got {rule!r}")
    last = collections.defaultdict(dict)   # run -> (pass, round) -> (attempt, seconds)
    for r in csv.DictReader(open(os.path.join(src, "e2e_windows.csv"), newline="")):
        key, attempt = (int(r["pass"]), int(r["round"])), int(r.get("attempt") or 0)
        have = last[r["run"]].get(key)
        if have is None or attempt > have[0]:
            last[r["run"]][key] = (attempt, float(r["seconds"]))
    passes = sorted({k[0] for ws in last.values() for k in ws})
    if len(passes) < 2:
        sys.exit("error: e2e_windows.csv: fewer than two passes")
    even, odd = passes[0::2], passes[1::2]
    groups = collections.OrderedDict()
    for r in csv.DictReader(open(os.path.join(src, "e2e.csv"), newline="")):
        groups.setdefault(r["group"], []).append(r["run"])
    for name, members in groups.items():
        for m in members:
            if m not in last:
                sys.exit(f"error: {src}/e2e_windows.csv: run {m!r} of e2e.csv has no window")
            if set(last[m]) != set(last[members[0]]):
                sys.exit(f"error: {src}/e2e_windows.csv: run {m!r} has windows in other (pass, round)s than {members[0]!r} of its group {name}")

    def times(members, half):
        keys = sorted(k for k in last[members[0]] if k[0] in half)
        levels = [math.exp(statistics.fmean(math.log(last[m][k][1]) for m in members)) for k in keys]
        level = min(levels) if rule == "quiet" else statistics.median(levels)
        return [statistics.median(last[m][k][1] / l for k, l in zip(keys, levels)) * level for m in members]

    diffs, out_groups = [], []
    for name in sorted(groups):
        members = groups[name]
        a, b = times(members, even), times(members, odd)
        diffs += [abs(x - y) / ((x + y) / 2) for x, y in zip(a, b)]
        if len(members) > 1:
            ia, ib = min(range(len(a)), key=a.__getitem__), min(range(len(b)), key=b.__getitem__)
            cross = max(1 - b[ib] / b[ia], 1 - a[ia] / a[ib])
            out_groups.append({"group": name, "bestEven": members[ia], "bestOdd": members[ib], "crossRegret": cross})
    result = {"rule": rule, "evenPasses": even, "oddPasses": odd, "runs": len(diffs),
              "halfDisagreement": statistics.fmean(diffs), "groups": out_groups,
              "largestCrossRegret": max((g["crossRegret"] for g in out_groups), default=0)}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"rule {rule}; passes {even} against {odd}: the halves differ by {100 * result['halfDisagreement']:.4f}% over {len(diffs)} runs; "
              f"largest cross regret {100 * result['largestCrossRegret']:.4f}%")
        for g in out_groups:
            print(f"  {g['group']}: {g['bestEven']} / {g['bestOdd']}: {100 * g['crossRegret']:.4f}%")


main()
