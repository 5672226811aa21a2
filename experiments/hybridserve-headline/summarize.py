"""Summarises the sweeps run.sh wrote: one row per model, prompt and host memory."""
import csv
import json
import math
import os
import sys

src, dst = sys.argv[1], sys.argv[2]
rows = []
for name in sorted(os.listdir(src)):
    with open(os.path.join(src, name)) as f:
        d = json.load(f)
    s = d["setup"]
    best = d.get("best") or {}
    base = d["baselines"]
    def tps(key):
        b = base.get(key, {})
        return b.get("tokensPerSecond") if b.get("feasible", True) and "tokensPerSecond" in b else None
    row = {
        "model": s["model"], "prompt": s["prompt"], "tokens": s["tokens"],
        "hostGiB": round(s["hostMemoryBytes"] / 2**30),
        "hybrid": best.get("tokensPerSecond"), "kvFraction": best.get("kvFraction"), "batch": best.get("batch"),
        "placement": best.get("placement"),
        "kvOnly": tps("kvOnly"), "kvOnlyBatch": base.get("kvOnly", {}).get("batch"),
        "actOnly": tps("actOnly"), "actOnlyBatch": base.get("actOnly", {}).get("batch"),
        "deepSpeed": tps("deepSpeed"),
        "gpuBusy": best.get("busy", {}).get("compute"), "pcieBusy": best.get("busy", {}).get("h2d"),
    }
    def decode(o):
        return o["batch"] / o["stepSeconds"] if o and o.get("stepSeconds") else None
    row["decodeOverKV"] = decode(best) / decode(base["kvOnly"]) if best and row["kvOnly"] else None
    row["decodeOverACT"] = decode(best) / decode(base["actOnly"]) if best and row["actOnly"] else None
    row["prefillShare"] = best["prefillSeconds"] / best["totalSeconds"] if best else None
    row["overKV"] = row["hybrid"] / row["kvOnly"] if row["hybrid"] and row["kvOnly"] else None
    row["overACT"] = row["hybrid"] / row["actOnly"] if row["hybrid"] and row["actOnly"] else None
    rows.append(row)

order = {"opt-6.7b": 0, "opt-13b": 1, "opt-30b": 2, "opt-66b": 3}
rows.sort(key=lambda r: (r["hostGiB"], order.get(r["model"], 9), r["prompt"]))
fields = ["model", "prompt", "tokens", "hostGiB", "hybrid", "kvFraction", "batch", "kvOnly", "kvOnlyBatch",
          "actOnly", "actOnlyBatch", "deepSpeed", "overKV", "overACT", "decodeOverKV", "decodeOverACT", "prefillShare", "gpuBusy", "pcieBusy"]
with open(os.path.join(dst, "results.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)

def f2(x, fmt="%.2f"):
    return "-" if x is None else fmt % x

lines = ["| host | model | prompt | hybrid tok/s (KV frac, batch) | KV-only tok/s (batch) | ACT-only tok/s (batch) | DeepSpeed tok/s | hybrid / KV-only | hybrid / ACT-only | decode only: / KV-only, / ACT-only | prefill share | GPU busy | PCIe busy |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
for r in rows:
    hyb = "does not fit" if r["hybrid"] is None else "%.2f (%.2f, %d)" % (r["hybrid"], r["kvFraction"], r["batch"])
    lines.append("| %d GiB | %s | %d | %s | %s | %s | %s | %s | %s | %s, %s | %s | %s | %s |" % (
        r["hostGiB"], r["model"], r["prompt"], hyb,
        "-" if r["kvOnly"] is None else "%.2f (%d)" % (r["kvOnly"], r["kvOnlyBatch"]),
        "-" if r["actOnly"] is None else "%.2f (%d)" % (r["actOnly"], r["actOnlyBatch"]),
        f2(r["deepSpeed"]), f2(r["overKV"], "%.2fx"), f2(r["overACT"], "%.2fx"),
        f2(r["decodeOverKV"], "%.2fx"), f2(r["decodeOverACT"], "%.2fx"), f2(r["prefillShare"] and r["prefillShare"] * 100, "%.0f%%"),
        f2(r["gpuBusy"] and r["gpuBusy"] * 100, "%.0f%%"), f2(r["pcieBusy"] and r["pcieBusy"] * 100, "%.0f%%")))

def gmean(xs):
    xs = [x for x in xs if x]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None

kv = [r["overKV"] for r in rows if r["overKV"]]
act = [r["overACT"] for r in rows if r["overACT"]]
dkv = [r["decodeOverKV"] for r in rows if r["decodeOverKV"]]
dact = [r["decodeOverACT"] for r in rows if r["decodeOverACT"]]
lines += ["", "decode steps only: hybrid / KV-only max %s, geometric mean %s; hybrid / ACT-only max %s, geometric mean %s" % (
    f2(max(dkv) if dkv else None, "%.2fx"), f2(gmean(dkv), "%.2fx"), f2(max(dact) if dact else None, "%.2fx"), f2(gmean(dact), "%.2fx"))]
lines += ["", "hybrid / KV-only: max %s, geometric mean %s over %d runs; hybrid / ACT-only: max %s, geometric mean %s over %d runs" % (
    f2(max(kv) if kv else None, "%.2fx"), f2(gmean(kv), "%.2fx"), len(kv), f2(max(act) if act else None, "%.2fx"), f2(gmean(act), "%.2fx"), len(act))]
with open(os.path.join(dst, "results.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
print("\n".join(lines))
