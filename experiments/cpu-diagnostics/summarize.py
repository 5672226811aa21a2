"""Summarizes kernel-check CSVs (planner-cpu-capture --kernel-check): per weight placement, the
geometric mean over runs of the engine's GEMM and decode-attention time over the tables' timing of
the same calls, taken in the same moment. Lines starting with # (per-shape ratios) are skipped.

    python3 experiments/cpu-diagnostics/summarize.py experiments/cpu-diagnostics/kernel-check-2.csv
"""
import csv
import math
import statistics
import sys


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: summarize.py KERNEL_CHECK_CSV")
    with open(sys.argv[1]) as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    if not rows:
        sys.exit(f"{sys.argv[1]}: no rows")
    table_gemm = "table_gemm_ms"
    table_attention = "table_attention_ms"
    if table_gemm not in rows[0]:
        sys.exit(f"{sys.argv[1]}: no {table_gemm} column")
    for tag, name in [("-w100-", "resident weights"), ("-w0-", "streamed weights")]:
        sel = [r for r in rows if tag in r["run"]]
        gemm = [math.log(float(r["engine_gemm_ms"]) / float(r[table_gemm])) for r in sel]
        att = [math.log(float(r["engine_attention_ms"]) / float(r[table_attention])) for r in sel if r[table_attention]]
        pct = lambda xs: (math.exp(statistics.mean(xs)) - 1) * 100
        sd = lambda xs: statistics.stdev(xs) * 100
        print(f"{name}: {len(sel)} runs; engine over tables: GEMMs {pct(gemm):+.1f}% (sd {sd(gemm):.1f}), "
              f"decode attention {pct(att):+.1f}% (sd {sd(att):.1f}, {len(att)} runs)")


if __name__ == "__main__":
    main()
