"""Converts the reference measurements in shared/reference/ into the project's profile format.

    python3 profiles/tools/convert_reference.py ../shared/reference profiles

writes profiles/reference-h100/ (the H100 kernel and link timings) and
profiles/reference-rtx4090-llama-3.1-8b/ (the LLMServingSim RTX 4090 profile, MIT licence, notice
kept). Only the rows the format can express are converted; the README of each folder says which.
"""
import csv
import json
import os
import sys

src, dst = sys.argv[1], sys.argv[2]


def write_csv(path, header, rows):
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        for r in rows:
            w.writerow(r)
    os.replace(tmp, path)


def write_json(path, doc):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


# H100 reference
h = json.load(open(os.path.join(src, "h100-kernels.json")))
out = os.path.join(dst, "reference-h100")
os.makedirs(out, exist_ok=True)
dev = h["device"]
write_json(os.path.join(out, "profile.json"), {
    "format": "hybridplanner-profile/1",
    "device": dev["name"],
    "hardware": "h100-sxm",
    "dtype": "fp16",
    "capturedAt": "2026-11-22T00:00:00Z",
    "driver": "unknown",
    "cuda": dev["cuda"],
    "libraries": {"torch": dev["torch"]},
    "repeats": 10,
    "warmup": 3,
    "source": "shared/reference/h100-kernels.json (H100 SXM, 132 SMs, PCIe Gen5 x16; CUDA events, median of 10 after 3 warm-ups), converted by profiles/tools/convert_reference.py",
})
link = []
for b in h["micro"]["bandwidth"]:
    mem = "pinned" if b["pinned"] else "pageable"
    link.append(["h2d", mem, b["bytes"], b["h2d_ms"] / 1e3])
    link.append(["d2h", mem, b["bytes"], b["d2h_ms"] / 1e3])
write_csv(os.path.join(out, "link.csv"), ["direction", "memory", "bytes", "seconds"], link)
gemm = sorted({(g["m"], g["n"], g["k"]): g["ms"] / 1e3 for g in h["micro"]["gemm"]}.items())
write_csv(os.path.join(out, "gemm.csv"), ["m", "n", "k", "seconds"], [[m, n, k, s] for (m, n, k), s in gemm])
att = []
for a in h["micro"]["attention"]:
    q = 1 if a["kind"] == "decode" else a["context"]
    att.append([a["kind"], a["batch"], a["heads"], a["heads"], a["head_dim"], q, a["context"], a["ms"] / 1e3])
write_csv(os.path.join(out, "attention.csv"), ["kind", "batch", "heads", "kv_heads", "head_dim", "queries", "context", "seconds"], att)

# RTX 4090 reference (LLMServingSim profile of Llama-3.1-8B, MIT licence)
r = os.path.join(src, "rtx4090-llama-3.1-8b")
out = os.path.join(dst, "reference-rtx4090-llama-3.1-8b")
os.makedirs(out, exist_ok=True)
meta = {}
for line in open(os.path.join(r, "meta.yaml")):
    if ":" in line and not line.startswith(" "):
        k, v = line.split(":", 1)
        meta[k.strip()] = v.strip().strip("'")
licence = open(os.path.join(r, "LICENSE")).read()
write_json(os.path.join(out, "profile.json"), {
    "format": "hybridplanner-profile/1",
    "device": meta.get("gpu", "NVIDIA GeForce RTX 4090"),
    "hardware": "rtx4090",
    "dtype": "bf16",
    "capturedAt": meta.get("profiled_at", "2026-08-17T19:43:32+00:00"),
    "driver": "unknown",
    "cuda": meta.get("cuda_version", "12.8"),
    "libraries": {"vllm": meta.get("vllm_version", "0.19.0"), "profiler": meta.get("profiler_version", "1.0.0")},
    "repeats": int(meta.get("measurement_iterations", "3")),
    "warmup": 0,
    "source": "LLMServingSim profile of meta-llama/Llama-3.1-8B (bf16, one layer, vLLM 0.19.0 eager) on an RTX 4090, shared/reference/rtx4090-llama-3.1-8b, converted by profiles/tools/convert_reference.py",
    "licence": licence,
})
with open(os.path.join(out, "LICENSE"), "w") as f:
    f.write(licence)
shapes = {"qkv_proj": (6144, 4096), "o_proj": (4096, 4096), "gate_up_proj": (28672, 4096), "down_proj": (4096, 14336)}
rows = {}
for row in csv.DictReader(open(os.path.join(r, "dense.csv"))):
    if row["layer"] in shapes:
        n, k = shapes[row["layer"]]
        rows[(int(row["tokens"]), n, k)] = float(row["time_us"]) / 1e6
write_csv(os.path.join(out, "gemm.csv"), ["m", "n", "k", "seconds"], [[m, n, k, s] for (m, n, k), s in sorted(rows.items())])
att = []
for row in csv.DictReader(open(os.path.join(r, "attention.csv"))):
    p, kvp, nd, kvd, t = int(row["prefill_chunk"]), int(row["kv_prefill"]), int(row["n_decode"]), int(row["kv_decode"]), float(row["time_us"]) / 1e6
    if p == 0 and kvp == 0 and nd > 0:
        att.append(["decode", nd, 32, 8, 128, 1, kvd, t])
    elif nd == 0 and p > 0:
        # One sequence: a chunk of p new tokens after kv_prefill cached ones.
        att.append(["prefill", 1, 32, 8, 128, p, kvp + p, t])
write_csv(os.path.join(out, "attention.csv"), ["kind", "batch", "heads", "kv_heads", "head_dim", "queries", "context", "seconds"], att)
print("wrote", dst)
