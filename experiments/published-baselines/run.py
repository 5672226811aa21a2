#!/usr/bin/env python3
"""Runs `planner validate published-runs.json` and writes results.json and README.md's table.

    python3 experiments/published-baselines/run.py PLANNER

The table sits between the markers `<!-- table -->` and `<!-- /table -->` of README.md; everything
else in README.md is left as it is.
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    planner = sys.argv[1]
    runs_file = os.path.join(HERE, "published-runs.json")
    out = subprocess.run([planner, "validate", runs_file, "--json"], check=True, capture_output=True, text=True).stdout
    result = json.loads(out)
    runs = {r["id"]: r for r in json.load(open(runs_file))["runs"]}
    with open(os.path.join(HERE, "results.json"), "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
        f.write("\n")
    rows = ["| run | engine | model | settings | published tok/s | predicted tok/s | error |", "|---|---|---|---|---|---|---|"]
    for r in result["runs"]:
        run = runs[r["id"]]
        s = run["settings"]
        if run["system"] == "flexgen":
            knobs = [f"percent {' '.join(str(int(p)) for p in s['percent'])}", f"batch {s['gpuBatchSize']}x{s['numGpuBatches']}"]
            knobs += [name for key, name in (("cpuCacheCompute", "CPU attention"), ("compressWeight", "4-bit weights"),
                                              ("compressCache", "4-bit cache")) if s.get(key)]
        else:
            knobs = [f"percent {' '.join(str(int(p)) for p in s.get('percent', []))}", f"batch {s['batch']}"]
        if r.get("expressible") is False:
            rows.append(f"| {r['id']} | {run['system']} | {run['model']} | {', '.join(knobs)} | {r['measuredTokensPerSecond']:g} | not expressible: {r['why']} | |")
        else:
            rows.append(f"| {r['id']} | {run['system']} | {run['model']} | {', '.join(knobs)} | {r['measuredTokensPerSecond']:g} | "
                        f"{r['predictedTokensPerSecond']:.3g} | {r['error'] * 100:+.1f}% |")
    mape = result.get("meanAbsolutePercentageError")
    rows.append("")
    rows.append(f"Mean absolute percentage error: {mape * 100:.1f}% over {sum(1 for r in result['runs'] if 'error' in r)} of {len(result['runs'])} runs; "
                f"largest {max(abs(r['error']) for r in result['runs'] if 'error' in r) * 100:.1f}%.")
    readme = os.path.join(HERE, "README.md")
    text = open(readme).read()
    start, end = text.index("<!-- table -->") + len("<!-- table -->"), text.index("<!-- /table -->")
    tmp = readme + ".tmp"
    with open(tmp, "w") as f:
        f.write(text[:start] + "\n" + "\n".join(rows) + "\n" + text[end:])
    os.replace(tmp, readme)


if __name__ == "__main__":
    main()
