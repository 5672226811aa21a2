#!/usr/bin/env python3
"""The KV-overflow study (shared/seeds/002_*) replayed with `planner serve`.

Yarn-Llama-2-7B-64k on an A100-40GB, 32 requests of 1500 input and 1024 output tokens arriving
together. Sweeps block size, sequence length (hence evicted tokens) and the GPU memory given to the
KV cache, for preemption by recompute and by swap (pinned and pageable host memory), and records the
time series at 12%. Writes results.csv, results.md and the SVG charts beside this script.

    python3 experiments/kv-overflow/run.py PLANNER_BINARY
"""
import csv
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

# The seed's setting, on vLLM's V0 engine (the one the seed measured, with swap). vLLM's defaults where the seed is silent: without chunked prefill,
# max_num_batched_tokens = max(max_model_len, 2048) = 65536 and max_num_seqs = 256. Swap space: 16 GiB,
# more than any run swaps, so swap mode never falls back to recompute (vLLM's default is 4 GiB).
BASE = {
    "model": "yarn-llama-2-7b-64k",
    "hardware": "a100-40gb",
    "engine": "vllm-v0",
    "blockSize": 16,
    "gpuCacheFraction": 0.12,
    "maxNumSeqs": 256,
    "maxNumBatchedTokens": 65536,
    "swapSpaceGiB": 16,
    "requests": {"count": 32, "arrivals": "all-at-once", "input": 1500, "output": 1024, "seed": 1},
}
MODES = [("recompute", "recompute", "pinned"), ("swap-pinned", "swap", "pinned"), ("swap-pageable", "swap", "pageable")]
BLOCKS = [8, 16, 32, 64, 128]
INPUTS = [250, 500, 1000, 1500, 2000, 3000, 4000]
FRACTIONS = [0.12, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40, 0.45, 0.50]
# Host time to issue one cudaMemcpyAsync (the link's copyIssueSeconds; 2.3 us measured on an H20 host,
# 5 to 7 us reported elsewhere): a queue of small block copies runs at the slower of this and a copy's
# transfer, and the seed does not measure it.
ISSUE_US = [1, 2.3, 5, 7, 10, 20]


def serve(planner, tmp, name, scenario, extra=()):
    path = os.path.join(tmp, name + ".json")
    with open(path, "w") as f:
        json.dump(scenario, f)
    out = subprocess.run([planner, "serve", path, "--json", *extra], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def variant(mode, memory, **changes):
    s = json.loads(json.dumps(BASE))
    s["preemption"] = mode
    s["hostMemory"] = memory
    for k, v in changes.items():
        if k == "input":
            s["requests"]["input"] = v
        else:
            s[k] = v
    return s


def row(study, x, label, r):
    evicted = r["recomputedTokens"] + r["swappedOutTokens"]
    return {
        "study": study, "x": x, "mode": label, "preemptions": r["preemptions"], "evictedTokens": evicted,
        "recomputedTokens": r["recomputedTokens"], "swappedTokens": r["swappedOutTokens"],
        "overheadSeconds": round(r["overheadSeconds"], 4),
        "overheadMsPerEvictedToken": round(r["overheadSeconds"] / evicted * 1e3, 5) if evicted else 0,
        "makespanSeconds": round(r["makespanSeconds"], 3),
        "gpuBusySeconds": round(r["gpuBusySeconds"], 3),
        "outputTokensPerSecond": round(r["outputTokenThroughput"], 2),
    }


def svg_lines(title, xlabel, ylabel, series, path, logx=False):
    """A plain SVG line chart: series is [(label, [(x, y), ...])]."""
    import math
    w, h, left, right, top, bottom = 820, 460, 80, 170, 45, 55
    pw, ph = w - left - right, h - top - bottom
    fx = (lambda v: math.log2(v)) if logx else (lambda v: v)
    xs = [fx(x) for _, pts in series for x, _ in pts]
    ys = [y for _, pts in series for _, y in pts]
    x0, x1 = min(xs), max(xs)
    ymax = 1.0
    if max(ys) > 0:
        e = 10 ** math.floor(math.log10(max(ys)))
        ymax = next(m * e for m in [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10] if m * e >= max(ys))
    px = lambda x: left + (fx(x) - x0) / (x1 - x0) * pw
    py = lambda y: top + ph - y / ymax * ph
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"]
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
         '<rect width="100%" height="100%" fill="white"/>', f'<text x="{left}" y="26" font-size="15">{title}</text>']
    for i in range(6):
        y = ymax * i / 5
        o.append(f'<line x1="{left}" y1="{py(y):.1f}" x2="{left + pw}" y2="{py(y):.1f}" stroke="#ddd"/>')
        o.append(f'<text x="{left - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:g}</text>')
    for x in sorted({x for _, pts in series for x, _ in pts}):
        o.append(f'<text x="{px(x):.1f}" y="{top + ph + 18}" text-anchor="middle">{x:g}</text>')
    o.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    o.append(f'<text x="{left + pw / 2}" y="{h - 12}" text-anchor="middle">{xlabel}</text>')
    o.append(f'<text transform="translate(18 {top + ph / 2}) rotate(-90)" text-anchor="middle">{ylabel}</text>')
    for k, (label, pts) in enumerate(series):
        c = colors[k % len(colors)]
        pts = sorted(pts)
        o.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="{" ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)}"/>')
        for x, y in pts:
            o.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{c}"/>')
        ly = top + 12 + 20 * k
        o.append(f'<line x1="{left + pw + 12}" y1="{ly}" x2="{left + pw + 36}" y2="{ly}" stroke="{c}" stroke-width="2"/>')
        o.append(f'<text x="{left + pw + 42}" y="{ly + 4}">{label}</text>')
    o.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(o) + "\n")


def main():
    planner = sys.argv[1]
    rows = []
    catalog = json.loads(subprocess.run([planner, "catalog", "--json"], check=True, capture_output=True, text=True).stdout)
    a100 = next(h for h in catalog["hardware"] if h["name"] == BASE["hardware"])
    with tempfile.TemporaryDirectory() as tmp:
        for label, mode, memory in MODES:
            for us in ISSUE_US:
                device = json.loads(json.dumps(a100))
                device["link"]["copyIssueSeconds"] = us * 1e-6
                device["sources"]["link.copyIssueSeconds"] = f"kv-overflow sensitivity study: {us} us to issue a copy"
                r = serve(planner, tmp, f"issue-{label}-{us}", variant(mode, memory, hardware=device))
                rows.append(row("copyIssueMicroseconds", us, label, r))
        for label, mode, memory in MODES:
            for b in BLOCKS:
                r = serve(planner, tmp, f"block-{label}-{b}", variant(mode, memory, blockSize=b))
                rows.append(row("blockSize", b, label, r))
            for inp in INPUTS:
                r = serve(planner, tmp, f"length-{label}-{inp}", variant(mode, memory, input=inp))
                rows.append(row("inputTokens", inp, label, r))
            for frac in FRACTIONS:
                r = serve(planner, tmp, f"memory-{label}-{frac}", variant(mode, memory, gpuCacheFraction=frac))
                rows.append(row("gpuCacheFraction", frac, label, r))
        for label, mode, memory in MODES[:2]:
            path = os.path.join(tmp, f"series-{label}.json")
            with open(path, "w") as f:
                json.dump(variant(mode, memory), f)
            subprocess.run([planner, "serve", path, "--csv", os.path.join(HERE, f"timeseries-12pct-{label}.csv"),
                            "--chart", os.path.join(HERE, f"timeseries-12pct-{label}.svg")], check=True, capture_output=True)

    with open(os.path.join(HERE, "results.csv"), "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        wr.writeheader()
        wr.writerows(rows)

    def pick(study, key):
        return [(label, [(r["x"], r[key]) for r in rows if r["study"] == study and r["mode"] == label]) for label, _, _ in MODES]

    svg_lines("Overflow overhead against block size (12% of GPU memory for KV)", "block size (tokens)", "overhead (s)",
              pick("blockSize", "overheadSeconds"), os.path.join(HERE, "overhead-vs-block-size.svg"), logx=True)
    ev = [(label, [(r["evictedTokens"], r["overheadSeconds"]) for r in rows if r["study"] == "inputTokens" and r["mode"] == label])
          for label, _, _ in MODES]
    svg_lines("Overflow overhead against evicted tokens (input 250 to 4000 tokens, 12%)", "evicted tokens", "overhead (s)",
              ev, os.path.join(HERE, "overhead-vs-evicted-tokens.svg"))
    svg_lines("Overflow overhead against GPU memory for the KV cache", "fraction of GPU memory", "overhead (s)",
              pick("gpuCacheFraction", "overheadSeconds"), os.path.join(HERE, "overhead-vs-gpu-memory.svg"))
    svg_lines("Overflow overhead against the host time to issue one copy (block size 16, 12%)", "issue time per copy (us)", "overhead (s)",
              pick("copyIssueMicroseconds", "overheadSeconds"), os.path.join(HERE, "overhead-vs-copy-issue.svg"), logx=True)
    svg_lines("Time to serve all 32 requests against GPU memory for the KV cache", "fraction of GPU memory", "makespan (s)",
              pick("gpuCacheFraction", "makespanSeconds"), os.path.join(HERE, "makespan-vs-gpu-memory.svg"))

    with open(os.path.join(HERE, "results.md"), "w") as f:
        f.write("# Results (generated by run.py; analytic cost model, a100-40gb catalog entry)\n\n")
        for study, title, unit in [("blockSize", "Block size", "tokens"), ("inputTokens", "Input length (output 1024)", "tokens"),
                                   ("gpuCacheFraction", "GPU memory for the KV cache", "fraction"),
                                   ("copyIssueMicroseconds", "Host time to issue one copy (sensitivity; block size 16, 12%)", "us")]:
            f.write(f"## {title}\n\n| {unit} | mode | preemptions | evicted tokens | overhead s | ms per evicted token | makespan s | GPU busy s |\n")
            f.write("|---|---|---|---|---|---|---|---|\n")
            for r in rows:
                if r["study"] == study:
                    f.write(f"| {r['x']} | {r['mode']} | {r['preemptions']} | {r['evictedTokens']} | {r['overheadSeconds']:.2f} | "
                            f"{r['overheadMsPerEvictedToken']:.4f} | {r['makespanSeconds']:.1f} | {r['gpuBusySeconds']:.1f} |\n")
            f.write("\n")


if __name__ == "__main__":
    main()
