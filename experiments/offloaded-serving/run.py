#!/usr/bin/env python3
"""Offloaded serving on one GPU: when vLLM's --cpu-offload-gb pays, and when its CPU KV cache beats
recomputation, played with `planner serve` (vLLM V1). Writes results.csv, results.md and the charts
beside this script. Usage: run.py PLANNER"""
import csv
import json
import os
import random
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "kv-overflow"))
from run import svg_lines  # noqa: E402  (the kv-overflow study's chart writer)

MODEL, HARDWARE = "llama-3.1-8b", "rtx4090"
OFFLOAD_GIB = [0, 0.5, 1, 2, 4, 8]
PREFETCH_GROUPS = [16, 8, 4, 2]
TURN_TOKENS = [32, 128, 512, 2048]
CPU_CACHE_GIB = [0, 8, 32]


def serve(planner, tmp, name, scenario):
    path = os.path.join(tmp, name + ".json")
    with open(path, "w") as f:
        json.dump(scenario, f)
    out = subprocess.run([planner, "serve", path, "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def conversations(tmp, name, turn_tokens, count=100, turns=6, reply=128, seed=7):
    """A trace of `count` conversations of `turns` turns: each question adds `turn_tokens` tokens,
    each reply `reply`; every turn resends the conversation so far; the first turns arrive as a
    Poisson process at 1 a second, a later one an exponential think time of mean 10 s after the
    reply before it."""
    rng = random.Random(seed)
    lines, t, rid = [], 0.0, 0
    for c in range(count):
        t += rng.expovariate(1.0)
        history, prev = 0, None
        for k in range(turns):
            line = {"id": rid, "inputTokens": history + turn_tokens, "outputTokens": reply, "conversation": c}
            if prev is None:
                line["arrivalSeconds"] = round(t, 6)
            else:
                line.update({"previousTurn": prev, "historyTokens": history, "thinkSeconds": round(rng.expovariate(0.1), 6)})
            lines.append(line)
            history += turn_tokens + reply
            prev, rid = rid, rid + 1
    path = os.path.join(tmp, name + ".jsonl")
    with open(path, "w") as f:
        f.write("\n".join(json.dumps(x) for x in lines) + "\n")
    return path


def main():
    planner = sys.argv[1]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # 1. --cpu-offload-gb on a model that fits: a steady stream and a saturating burst.
        for load, arrivals in [("stream 2/s", {"poisson": 2}), ("burst", "all-at-once")]:
            for gib in OFFLOAD_GIB:
                s = {"model": MODEL, "hardware": HARDWARE, "cpuOffloadGiB": gib, "maxNumBatchedTokens": 2048,
                     "requests": {"dataset": "random", "count": 300, "input": 512, "output": 128, "rangeRatio": 0.5,
                                  "arrivals": arrivals, "seed": 3}}
                r = serve(planner, tmp, f"offload-{gib}-{load[:5]}", s)
                rows.append({"study": "cpuOffloadGiB", "load": load, "x": gib, "gpuBlocks": r["gpuBlocks"],
                             "outputTokensPerSecond": round(r["outputTokenThroughput"], 1),
                             "tpotMeanMs": round(r["tpotSeconds"]["mean"] * 1e3, 1), "ttftP90Ms": round(r["ttftSeconds"]["p90"] * 1e3, 1),
                             "preemptions": r["preemptions"], "makespanSeconds": round(r["makespanSeconds"], 1)})
        # 1b. The same loads with the prefetch offloader: the last layer of every group of N on the host,
        # copied one layer ahead on a copy stream.
        for load, arrivals in [("stream 2/s", {"poisson": 2}), ("burst", "all-at-once")]:
            for group in PREFETCH_GROUPS:
                s = {"model": MODEL, "hardware": HARDWARE, "offloadGroupSize": group, "maxNumBatchedTokens": 2048,
                     "requests": {"dataset": "random", "count": 300, "input": 512, "output": 128, "rangeRatio": 0.5,
                                  "arrivals": arrivals, "seed": 3}}
                r = serve(planner, tmp, f"prefetch-{group}-{load[:5]}", s)
                rows.append({"study": "offloadGroupSize", "load": load, "x": round(r["hostWeightBytes"] / 2**30, 2), "group": group,
                             "gpuBlocks": r["gpuBlocks"], "outputTokensPerSecond": round(r["outputTokenThroughput"], 1),
                             "tpotMeanMs": round(r["tpotSeconds"]["mean"] * 1e3, 1), "ttftP90Ms": round(r["ttftSeconds"]["p90"] * 1e3, 1),
                             "preemptions": r["preemptions"], "makespanSeconds": round(r["makespanSeconds"], 1)})
        # 2. The CPU KV cache against recomputation for multi-turn chat, by the size of a turn.
        for turn in TURN_TOKENS:
            trace = conversations(tmp, f"chat-{turn}", turn)
            for gib in CPU_CACHE_GIB:
                s = {"model": MODEL, "hardware": HARDWARE, "kvOffloadingGiB": gib, "maxNumBatchedTokens": 4096,
                     "maxNumSeqs": 128, "requests": {"trace": trace}}
                r = serve(planner, tmp, f"chat-{turn}-{gib}", s)
                looked = max(r["prefixQueriedTokens"], 1)
                rows.append({"study": "kvOffloadingGiB", "load": f"turns of {turn} + 128", "x": gib, "gpuBlocks": r["gpuBlocks"],
                             "outputTokensPerSecond": round(r["outputTokenThroughput"], 1),
                             "tpotMeanMs": round(r["tpotSeconds"]["mean"] * 1e3, 1), "ttftMeanMs": round(r["ttftSeconds"]["mean"] * 1e3, 1),
                             "ttftP90Ms": round(r["ttftSeconds"]["p90"] * 1e3, 1), "preemptions": r["preemptions"],
                             "gpuHitShare": round(r["prefixHitTokens"] / looked, 3), "cpuHitShare": round(r["hostHitTokens"] / looked, 3),
                             "makespanSeconds": round(r["makespanSeconds"], 1)})

    keys = sorted({k for r in rows for k in r}, key=lambda k: list(rows[-1].keys()).index(k) if k in rows[-1] else 99)
    with open(os.path.join(HERE, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)

    off = [r for r in rows if r["study"] == "cpuOffloadGiB"]
    pre = [r for r in rows if r["study"] == "offloadGroupSize"]
    base = {r["load"]: r for r in off if r["x"] == 0}
    svg_lines("Llama-3.1-8B on an RTX 4090: output throughput against the weights offloaded", "weights offloaded (GiB)", "output tokens/s",
              [(f"{load}, UVA (--cpu-offload-gb)", [(r["x"], r["outputTokensPerSecond"]) for r in off if r["load"] == load]) for load in ["stream 2/s", "burst"]]
              + [(f"{load}, prefetch", [(0, base[load]["outputTokensPerSecond"])] + [(r["x"], r["outputTokensPerSecond"]) for r in pre if r["load"] == load])
                 for load in ["stream 2/s", "burst"]],
              os.path.join(HERE, "throughput-vs-cpu-offload.svg"))
    chat = [r for r in rows if r["study"] == "kvOffloadingGiB"]
    svg_lines("Multi-turn chat: mean TTFT against the size of a turn, by CPU KV cache", "tokens a question adds", "mean TTFT (ms)",
              [(f"CPU KV cache {g} GiB", [(r["x2"], r["ttftMeanMs"]) for r in
                                          ({**r, "x2": int(r["load"].split()[2])} for r in chat) if r["x"] == g]) for g in CPU_CACHE_GIB],
              os.path.join(HERE, "ttft-vs-turn-size.svg"), logx=True)

    with open(os.path.join(HERE, "results.md"), "w") as f:
        f.write(f"# Results (generated by run.py; {MODEL} on {HARDWARE}, vLLM V1, analytic cost model)\n\n")
        f.write("## --cpu-offload-gb (300 requests, 512 +- 50% in, 128 +- 50% out)\n\n")
        f.write("| load | GiB offloaded | GPU blocks | output tok/s | TPOT mean ms | TTFT P90 ms | preemptions | makespan s |\n|---|---|---|---|---|---|---|---|\n")
        for r in off:
            f.write(f"| {r['load']} | {r['x']} | {r['gpuBlocks']} | {r['outputTokensPerSecond']} | {r['tpotMeanMs']} | {r['ttftP90Ms']} | {r['preemptions']} | {r['makespanSeconds']} |\n")
        f.write("\n## Prefetch offloader (the last layer of every group on the host, one layer ahead)\n\n")
        f.write("| load | group | GiB offloaded | GPU blocks | output tok/s | TPOT mean ms | TTFT P90 ms | preemptions | makespan s |\n|---|---|---|---|---|---|---|---|---|\n")
        for r in pre:
            f.write(f"| {r['load']} | {r['group']} | {r['x']} | {r['gpuBlocks']} | {r['outputTokensPerSecond']} | {r['tpotMeanMs']} | {r['ttftP90Ms']} | {r['preemptions']} | {r['makespanSeconds']} |\n")
        f.write("\n## CPU KV cache (100 conversations of 6 turns, replies of 128 tokens, think time 10 s)\n\n")
        f.write("| turns | CPU cache GiB | TTFT mean ms | TTFT P90 ms | TPOT mean ms | GPU hits | CPU hits | preemptions |\n|---|---|---|---|---|---|---|---|\n")
        for r in chat:
            f.write(f"| {r['load']} | {r['x']} | {r['ttftMeanMs']} | {r['ttftP90Ms']} | {r['tpotMeanMs']} | {r['gpuHitShare']:.1%} | {r['cpuHitShare']:.1%} | {r['preemptions']} |\n")


if __name__ == "__main__":
    main()
