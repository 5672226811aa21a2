#!/usr/bin/env python3
"""Captures a measured profile (profiles/FORMAT.md, `hybridplanner-profile/1`) on one CUDA GPU.

    python3 profiles/cuda/capture.py all --out profiles/h100-mybox --hardware h100-sxm

Subcommands, each writing into `--out` (profile.json plus its table):
  link       host<->device copy time vs size, pinned and pageable;
             device-to-device copies on the compute stream                -> link.csv, copy.csv
  gemm       the layer GEMMs of the catalog models, m = 1 .. 32768         -> gemm.csv
  attention  decode and causal prefill attention, MHA and GQA              -> attention.csv
  e2e        the reference layer-streaming decoder over placements         -> e2e.csv, e2e_timeline.csv
  all        the four in turn

`--backend numpy --tiny` runs the same driver on the CPU with tiny shapes (the tests do).
Layout: this file holds the command line, the grids, the file writing and the capture loops;
`decoder.py` the model shapes, placement arithmetic, e2e plan and the reference decoder;
`backends.py` the device backends (PyTorch/CUDA, numpy/CPU).
"""
import argparse
import contextlib
import csv
import datetime
import json
import os
import shlex
import sys
import tempfile
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from backends import DeviceOutOfMemory, make_backend  # noqa: E402
from decoder import (CATALOG, DEFAULT_KV_FRACTIONS, ReferenceDecoder, build_plan, model_shape,  # noqa: E402
                     repeated_group, run_gpu_bytes)

FORMAT = "hybridplanner-profile/1"
HARDWARE = ("h100-sxm", "rtx4090", "a100-40gb", "t4")
# A word of the device name each catalog entry expects (a mismatch is only warned about).
HARDWARE_NAME = {"h100-sxm": "H100", "rtx4090": "4090", "a100-40gb": "A100", "t4": "T4"}
META_KEYS = ("format", "device", "hardware", "dtype", "capturedAt", "driver", "cuda", "libraries", "repeats", "warmup", "source")

LINK_HEADER = ["direction", "memory", "bytes", "seconds"]
COPY_HEADER = ["bytes", "seconds"]
GEMM_HEADER = ["m", "n", "k", "seconds"]
ATTENTION_HEADER = ["kind", "batch", "heads", "kv_heads", "head_dim", "queries", "context", "seconds"]
E2E_HEADER = ["run", "group", "model", "layers", "batch", "context", "weights_gpu_fraction", "gpu_kv", "gpu_act", "host_kv",
              "host_act", "recompute", "host_memory", "step_seconds"]
TIMELINE_HEADER = ["run", "step", "layer", "stream", "op", "start_seconds", "end_seconds"]


class CaptureError(Exception):
    """A problem with the input or the output folder; printed as one `error:` line."""


# ---------------------------------------------------------------------------------------------
# Numbers and files


def median(values: Sequence[float]) -> float:
    """The middle value; the mean of the two middle values for an even count."""
    if not values:
        raise ValueError("median of no values")
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def fmt_seconds(x: float) -> str:
    return "%.6g" % x


def fmt_fraction(x: float) -> str:
    return "%g" % x


@contextlib.contextmanager
def atomic_write(path: str):
    """Opens a temporary file beside `path` for writing and renames it over `path` only when the
    block finishes; on an exception the temporary file is removed and `path` is left as it was."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; the profile is for everyone to read
        with os.fdopen(fd, "w", newline="") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_csv(path: str, header: Sequence[str], rows: Iterable[Sequence]):
    with atomic_write(path) as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        for r in rows:
            w.writerow(r)


def read_csv(path: str, header: Sequence[str]) -> List[List[str]]:
    """Rows of an existing table (none when absent); refuses a table with another header."""
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return []
    if rows[0] != list(header):
        raise CaptureError(f"{path}: header is {','.join(rows[0])}, expected {','.join(header)}; move the file away to capture here")
    return rows[1:]


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def capture_meta(be, args) -> dict:
    info = be.info()
    return {"format": FORMAT, "device": info["device"], "hardware": args.hardware, "dtype": args.dtype,
            "capturedAt": utc_now(), "driver": info["driver"], "cuda": info["cuda"], "libraries": info["libraries"],
            "repeats": args.repeats, "warmup": args.warmup, "source": args.source}


def update_profile_json(out: str, meta: dict) -> dict:
    """Writes profile.json, merged with the one an earlier subcommand of the same capture left:
    device, hardware, dtype, repeats and warmup must match (they describe every table); the
    libraries are united, the sources listed once each, capturedAt and versions are the latest."""
    path = os.path.join(out, "profile.json")
    merged = dict(meta)
    if os.path.exists(path):
        try:
            with open(path) as f:
                old = json.load(f)
        except (OSError, ValueError) as e:
            raise CaptureError(f"{path}: cannot be read ({e}); move it away to capture here")
        if old.get("format") != FORMAT:
            raise CaptureError(f"{path}: format is {old.get('format')!r}, not {FORMAT}; use another --out")
        for k in ("device", "hardware", "dtype", "repeats", "warmup"):
            if old.get(k) != meta[k]:
                raise CaptureError(f"{path} was captured with {k} = {old.get(k)!r}, this capture has {meta[k]!r}: "
                                   f"a profile holds one capture; use another --out or the same settings")
        merged = dict(old)
        merged.update({k: meta[k] for k in ("capturedAt", "driver", "cuda")})
        merged["libraries"] = {**old.get("libraries", {}), **meta["libraries"]}
        sources = [s for s in str(old.get("source", "")).split(" ; ") if s]
        if meta["source"] not in sources:
            sources.append(meta["source"])
        merged["source"] = " ; ".join(sources)
    with atomic_write(path) as f:
        json.dump(merged, f, indent=2, sort_keys=True)
        f.write("\n")
    return merged


class Log:
    def __init__(self, quiet: bool):
        self.quiet = quiet

    def __call__(self, msg: str):
        if not self.quiet:
            print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Grids


def link_sizes(max_bytes: int, tiny: bool) -> List[int]:
    """4 KiB, 16 KiB, ... (powers of 4) up to `max_bytes` (1 GiB; 64 KiB with --tiny)."""
    top = min(max_bytes, 64 << 10) if tiny else max_bytes
    sizes, n = [], 4096
    while n <= top:
        sizes.append(n)
        n *= 4
    return sizes


DEFAULT_M = sorted({1 << i for i in range(16)} | {3, 6, 12, 24} | {48 << i for i in range(10)})   # 1 .. 32768
TINY_M = [1, 2, 3, 4, 8, 16, 32, 64]


def gemm_points(models: Sequence[str], m_values: Sequence[int], head_max_m: int, tiny: bool) -> Dict[Tuple[int, int, int], List[str]]:
    """(m, n, k) -> what uses it ("opt-13b qkv", ...), deduplicated: every layer GEMM of each model
    (QKV, output, FFN up (gate and up fused when gated), FFN down, the K/V-only projection), and
    the LM head for m up to `head_max_m` (the head runs on one row per sequence)."""
    points: Dict[Tuple[int, int, int], List[str]] = {}
    for name in models:
        m = model_shape(name, tiny)
        for op, n, k in m.layer_gemms() + [("head", m.vocab, m.hidden)]:
            for rows in m_values:
                if op == "head" and rows > head_max_m:
                    continue
                points.setdefault((rows, n, k), []).append(f"{name} {op}")
    return points


def parse_heads(text: str) -> List[Tuple[int, int]]:
    out = []
    for item in split_list(text):
        h, _, kv = item.partition("/")
        try:
            heads, kv_heads = int(h), int(kv or h)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{item!r} is not HEADS/KV_HEADS (like 32/8)")
        if heads < 1 or kv_heads < 1 or heads % kv_heads:
            raise argparse.ArgumentTypeError(f"{item}: KV heads must divide heads")
        out.append((heads, kv_heads))
    return out


def attention_points(args) -> List[Tuple[str, int, int, int, int, int, int]]:
    """(kind, batch, heads, kv_heads, head_dim, queries, context): decode points whose K and V fit
    in --max-kv-gib, prefill points of at most --max-prefill-tokens tokens (batch x context)."""
    points = []
    d = args.head_dim
    for heads, kv in args.heads:
        for b in args.decode_batches:
            for t in args.decode_contexts:
                if 2 * b * kv * t * d * 2 <= args.max_kv_gib * (1 << 30):
                    points.append(("decode", b, heads, kv, d, 1, t))
        for b in args.prefill_batches:
            for t in args.prefill_contexts:
                if b * t <= args.max_prefill_tokens:
                    points.append(("prefill", b, heads, kv, d, t, t))
    return points


# ---------------------------------------------------------------------------------------------
# Captures


def capture_link(be, args, log: Log):
    sizes = link_sizes(args.max_bytes, args.tiny)
    top = sizes[-1]
    dev = be.empty((top,), "gpu", dtype="uint8")
    be.fill_random(dev)
    side = be.stream()
    rows = []
    for memory in ("pinned", "pageable"):
        host = be.empty((top,), memory, dtype="uint8")
        be.fill_random(host)
        for n in sizes:
            for direction in ("h2d", "d2h"):
                dst, src = (dev[:n], host[:n]) if direction == "h2d" else (host[:n], dev[:n])
                t = be.time_op(lambda: be.copy(dst, src, side), args.repeats, args.warmup, stream=side,
                               preroll=memory == "pinned")
                s = median(t)
                rows.append([direction, memory, n, fmt_seconds(max(s, 1e-9))])
                log(f"link {direction} {memory} {n} B: {s * 1e6:.1f} us ({n / s / 1e9:.2f} GB/s)")
        del host
    write_csv(os.path.join(args.out, "link.csv"), LINK_HEADER, rows)
    # Device copies (gathering cached K/V into the attention buffer) on the compute stream.
    dev2 = be.empty((top,), "gpu", dtype="uint8")
    compute = be.compute_stream()
    copies = []
    for n in sizes:
        dst, src = dev2[:n], dev[:n]
        s = median(be.time_op(lambda: be.copy(dst, src, compute), args.repeats, args.warmup, stream=compute))
        copies.append([n, fmt_seconds(max(s, 1e-9))])
        log(f"device copy {n} B: {s * 1e6:.1f} us ({2 * n / s / 1e9:.2f} GB/s read and written)")
    write_csv(os.path.join(args.out, "copy.csv"), COPY_HEADER, copies)
    del dev2
    be.release()
    return len(rows) + len(copies)


def capture_gemm(be, args, log: Log):
    m_values = args.m_values or (TINY_M if args.tiny else [m for m in DEFAULT_M if m <= args.max_m])
    points = gemm_points(args.gemm_models, m_values, args.head_max_m, args.tiny)
    log(f"gemm: {len(points)} points ({len({(n, k) for _, n, k in points})} weight shapes x up to {len(m_values)} m values)")
    a_flat = be.empty((max(m * k for m, _, k in points),), "gpu")
    be.fill_random(a_flat)
    results = {}
    by_shape: Dict[Tuple[int, int], List[int]] = {}
    for m, n, k in points:
        by_shape.setdefault((n, k), []).append(m)
    for (n, k), ms in sorted(by_shape.items()):
        try:
            b = be.randn((k, n))
        except DeviceOutOfMemory:
            log(f"gemm n={n} k={k}: the weight does not fit in device memory, skipped")
            continue
        for m in sorted(ms):
            a = be.view(a_flat, 0, (m, k))
            try:
                t = be.time_op(lambda: be.matmul(a, b), args.repeats, args.warmup, flush=args.flush)
            except DeviceOutOfMemory:
                log(f"gemm m={m} n={n} k={k}: out of device memory, skipped")
                continue
            results[(m, n, k)] = median(t)
        log(f"gemm n={n} k={k} ({', '.join(sorted(set(points[(ms[0], n, k)])))}): m={min(ms)}..{max(ms)} "
            f"{results.get((max(ms), n, k), float('nan')) * 1e3:.3f} ms at the largest")
        del b
    rows = [[m, n, k, fmt_seconds(max(s, 1e-9))] for (m, n, k), s in sorted(results.items(), key=lambda x: (x[0][1], x[0][2], x[0][0]))]
    write_csv(os.path.join(args.out, "gemm.csv"), GEMM_HEADER, rows)
    be.release()
    return len(rows)


def capture_attention(be, args, log: Log):
    points = attention_points(args)
    log(f"attention: {len(points)} points")
    rows = []
    for kind, b, h, kv, d, q, t in points:
        try:
            qt = be.randn((b, h, q, d))
            kt, vt = be.randn((b, kv, t, d)), be.randn((b, kv, t, d))
            times = be.time_op(lambda: be.attention(qt, kt, vt, causal=kind == "prefill"), args.repeats, args.warmup, flush=args.flush)
        except DeviceOutOfMemory:
            log(f"attention {kind} batch {b} heads {h}/{kv} context {t}: out of device memory, skipped")
            continue
        finally:
            qt = kt = vt = None
        s = median(times)
        rows.append([kind, b, h, kv, d, q, t, fmt_seconds(max(s, 1e-9))])
        log(f"attention {kind} batch {b} heads {h}/{kv} context {t}: {s * 1e6:.1f} us")
    write_csv(os.path.join(args.out, "attention.csv"), ATTENTION_HEADER, rows)
    be.release()
    return len(rows)


def e2e_runs(args):
    runs = build_plan(args.models, args.batches, args.contexts, args.layers, args.weights, args.act_shares,
                      args.kv_fractions, args.recompute, args.gpu_kv_shares, args.host_memory)
    if args.repeat_group:
        runs = repeated_group(runs, args.repeat_group, args.repeat_count)
    return runs


def e2e_row(run, seconds: float) -> List:
    p = run.placement
    return [run.run, run.group, run.model, run.layers, run.batch, run.context, fmt_fraction(run.weights_gpu_fraction),
            p.gpu_kv, p.gpu_act, p.host_kv, p.host_act, p.recompute, run.host_memory, fmt_seconds(seconds)]


ELEMENT_BYTES = {"fp16": 2, "bf16": 2, "fp32": 4}


def list_e2e(args):
    """Prints the plan's runs (placement and GPU memory) without measuring anything."""
    runs = e2e_runs(args)
    for r in runs:
        p = r.placement
        need = run_gpu_bytes(model_shape(r.model, args.tiny), r, ELEMENT_BYTES[args.dtype])
        print(f"{r.run}: weights on GPU {fmt_fraction(r.weights_gpu_fraction)}, gpu_kv {p.gpu_kv} gpu_act {p.gpu_act} "
              f"host_kv {p.host_kv} host_act {p.host_act} recompute {p.recompute}, GPU {need / 2**30:.2f} GiB")
    print(f"{len(runs)} runs in {len({r.group for r in runs})} groups")


def capture_e2e(be, args, log: Log):
    runs = e2e_runs(args)
    e2e_path, tl_path = os.path.join(args.out, "e2e.csv"), os.path.join(args.out, "e2e_timeline.csv")
    new_ids = {r.run for r in runs}
    kept = [row for row in read_csv(e2e_path, E2E_HEADER) if row[0] not in new_ids]
    kept_tl = [row for row in read_csv(tl_path, TIMELINE_HEADER) if row[0] not in new_ids]
    rows, tl_rows = [], []
    keys: Dict[tuple, list] = {}
    for r in runs:
        keys.setdefault((r.model, r.batch, r.context, r.layers, r.host_memory), []).append(r)
    done = 0
    log(f"e2e: {len(runs)} runs in {len({r.group for r in runs})} groups, {args.warmup} warm-up + {args.repeats} timed steps each")
    for (model, batch, context, layers, host_memory), members in keys.items():
        m = model_shape(model, args.tiny)
        try:
            decoder = ReferenceDecoder(be, m, layers, batch, context, host_memory,
                                       host_kv_tokens=max(r.placement.host_kv for r in members),
                                       host_act_tokens=max(r.placement.host_act for r in members))
        except (DeviceOutOfMemory, MemoryError) as e:
            done += len(members)
            log(f"e2e {model} batch {batch} context {context}: the host caches do not fit ({e}); {len(members)} runs skipped")
            continue
        for r in members:
            done += 1
            need, free = run_gpu_bytes(m, r, be.element_bytes), be.free_gpu_bytes()
            if need > 0.9 * free:
                log(f"e2e [{done}/{len(runs)}] {r.run}: needs about {need / 2**30:.1f} GiB of GPU memory, "
                    f"{free / 2**30:.1f} GiB free; skipped")
                continue
            try:
                st = decoder.prepare(r)
                steps, timeline = decoder.measure(st, args.warmup, args.repeats)
            except DeviceOutOfMemory:
                log(f"e2e [{done}/{len(runs)}] {r.run}: out of device memory; skipped")
                continue
            finally:
                st = None
            s = median(steps)
            rows.append(e2e_row(r, s))
            tl_rows += [[r.run, step, layer, stream, op, fmt_seconds(a), fmt_seconds(b)] for step, layer, stream, op, a, b in timeline]
            log(f"e2e [{done}/{len(runs)}] {r.run}: {s * 1e3:.2f} ms per step (spread {min(steps) * 1e3:.2f}..{max(steps) * 1e3:.2f})")
            # Rewritten after every run, so that an interrupted capture keeps what it measured.
            write_csv(e2e_path, E2E_HEADER, kept + rows)
            write_csv(tl_path, TIMELINE_HEADER, kept_tl + tl_rows)
        decoder = None
        be.release()
    return len(rows)


CAPTURES = {"link": capture_link, "gemm": capture_gemm, "attention": capture_attention, "e2e": capture_e2e}


# ---------------------------------------------------------------------------------------------
# Command line


def split_list(text: str) -> List[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def floats(text: str) -> List[float]:
    try:
        return [float(s) for s in split_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers")


def ints(text: str) -> List[int]:
    try:
        v = [int(s) for s in split_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers")
    if any(x < 1 for x in v):
        raise argparse.ArgumentTypeError(f"{text!r}: every value must be at least 1")
    return v


def models_list(text: str) -> List[str]:
    v = split_list(text)
    bad = [m for m in v if m not in CATALOG]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown model {bad[0]!r}; catalog models are {', '.join(CATALOG)}")
    return v


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("capture")
    g.add_argument("--out", required=True, help="profile folder to write, e.g. profiles/h100-mybox (created)")
    g.add_argument("--hardware", required=True, choices=HARDWARE, help="the planner catalog device the profile refines")
    g.add_argument("--dtype", default="fp16", choices=("fp16", "bf16", "fp32"), help="element type of every kernel (default fp16)")
    g.add_argument("--repeats", type=int, default=10, help="timed runs per point (e2e: timed steps); the median is kept (default 10)")
    g.add_argument("--warmup", type=int, default=3, help="untimed runs per point (e2e: warm-up steps) (default 3)")
    g.add_argument("--backend", default="torch", choices=("torch", "numpy"), help="torch: PyTorch on CUDA; numpy: CPU, for tests")
    g.add_argument("--tiny", action="store_true", help="tiny shapes and grids (a quick check of the driver)")
    g.add_argument("--quiet", action="store_true", help="no progress lines on standard error")

    link = argparse.ArgumentParser(add_help=False)
    g = link.add_argument_group("link")
    g.add_argument("--max-bytes", type=int, default=1 << 30, help="largest copy (default 1 GiB); sizes are 4 KiB x powers of 4")

    kernels = argparse.ArgumentParser(add_help=False)
    g = kernels.add_argument_group("gemm and attention")
    g.add_argument("--no-l2-flush", dest="flush", action="store_false",
                   help="do not overwrite the L2 cache before each timed run (default: flush, as each layer's weights are its own)")

    gemm = argparse.ArgumentParser(add_help=False)
    g = gemm.add_argument_group("gemm")
    g.add_argument("--gemm-models", type=models_list, default=list(CATALOG), help="catalog models whose shapes to measure (default all)")
    g.add_argument("--m-values", type=ints, default=None, help="token counts m (default powers of 2 from 1 to --max-m, and 3, 6, 12, 24, 48, 96, ... 24576)")
    g.add_argument("--max-m", type=int, default=32768, help="largest m of the default list (default 32768)")
    g.add_argument("--head-max-m", type=int, default=None, help="largest m for the LM head GEMM (default 4096; 16 with --tiny)")

    att = argparse.ArgumentParser(add_help=False)
    g = att.add_argument_group("attention")
    g.add_argument("--heads", type=parse_heads, default=None, help="HEADS/KV_HEADS list (default 32/32,40/40,56/56,72/72,96/96,32/8,64/8)")
    g.add_argument("--head-dim", type=int, default=None, help="default 128 (16 with --tiny)")
    g.add_argument("--decode-batches", type=ints, default=None, help="default 1,4,16,32,64,128,256")
    g.add_argument("--decode-contexts", type=ints, default=None, help="default 128,256,...,32768")
    g.add_argument("--prefill-batches", type=ints, default=None, help="default 1,2,4,...,64")
    g.add_argument("--prefill-contexts", type=ints, default=None, help="default 128,256,...,32768")
    g.add_argument("--max-kv-gib", type=float, default=4.0, help="largest K+V of a decode point (default 4 GiB)")
    g.add_argument("--max-prefill-tokens", type=int, default=None, help="largest batch x context of a prefill point (default 32768)")

    e2e = argparse.ArgumentParser(add_help=False)
    g = e2e.add_argument_group("e2e")
    g.add_argument("--models", type=models_list, default=["opt-13b", "llama-3.1-8b"], help="catalog models (default opt-13b,llama-3.1-8b)")
    g.add_argument("--batches", type=ints, default=None, help="default 32 (2 with --tiny)")
    g.add_argument("--contexts", type=ints, default=None, help="cached tokens per sequence (default 1024; 24 with --tiny)")
    g.add_argument("--layers", type=int, default=None, help="decoder layers actually run (default 4; 2 with --tiny)")
    g.add_argument("--weights", type=floats, default=[0.0, 1.0], help="weights' GPU fractions: 0 streamed, 1 resident (default 0,1)")
    g.add_argument("--act-shares", type=floats, default=[0.0, 0.25, 0.5], help="GPU ACT share of the context (default 0,0.25,0.5)")
    g.add_argument("--kv-fractions", type=floats, default=list(DEFAULT_KV_FRACTIONS),
                   help="host KV fraction of the host tokens, varied inside a group (default 0,1/6,...,1)")
    g.add_argument("--recompute", type=floats, default=[0.1, 0.2], help="token recomputation fractions, one group each (default 0.1,0.2)")
    g.add_argument("--gpu-kv-shares", type=floats, default=[0.25], help="GPU KV shares of the context, one group each (default 0.25)")
    g.add_argument("--host-memory", default="pinned", choices=("pinned", "pageable"), help="host caches and streamed weights (default pinned)")
    g.add_argument("--repeat-group", default=None, help="rerun only this group of the plan, --repeat-count times (groups GROUP-rep1..N)")
    g.add_argument("--repeat-count", type=int, default=3, help="times to rerun --repeat-group (default 3)")
    g.add_argument("--list", action="store_true", help="print the plan's runs and exit")

    p = argparse.ArgumentParser(prog="capture.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="{link,gemm,attention,e2e,all}")
    sub.add_parser("link", parents=[common, link], help="host<->device copies -> link.csv")
    sub.add_parser("gemm", parents=[common, kernels, gemm], help="layer GEMMs -> gemm.csv")
    sub.add_parser("attention", parents=[common, kernels, att], help="decode and prefill attention -> attention.csv")
    sub.add_parser("e2e", parents=[common, e2e], help="reference layer-streaming decoder -> e2e.csv, e2e_timeline.csv")
    sub.add_parser("all", parents=[common, link, kernels, gemm, att, e2e], help="link, gemm, attention and e2e in turn")
    return p


def resolve_defaults(args):
    """Fills the defaults that depend on --tiny and checks the numbers."""
    t = args.tiny
    defaults = {
        "head_max_m": 16 if t else 4096,
        "heads": [(4, 4), (4, 2)] if t else [(32, 32), (40, 40), (56, 56), (72, 72), (96, 96), (32, 8), (64, 8)],
        "head_dim": 16 if t else 128,
        "decode_batches": [1, 2] if t else [1, 4, 16, 32, 64, 128, 256],
        "decode_contexts": [8, 16, 32] if t else [128 << i for i in range(9)],
        "prefill_batches": [1, 2] if t else [1 << i for i in range(7)],
        "prefill_contexts": [8, 16, 32] if t else [128 << i for i in range(9)],
        "max_prefill_tokens": 64 if t else 32768,
        "batches": [2] if t else [32],
        "contexts": [24] if t else [1024],
        "layers": 2 if t else 4,
    }
    for k, v in defaults.items():
        if getattr(args, k, None) is None and hasattr(args, k):
            setattr(args, k, v)
    if args.repeats < 1 or args.warmup < 0:
        raise CaptureError("--repeats must be at least 1 and --warmup at least 0")
    if getattr(args, "layers", 1) < 1 or getattr(args, "repeat_count", 1) < 1:
        raise CaptureError("--layers and --repeat-count must be at least 1")
    for name in ("weights", "act_shares", "kv_fractions", "recompute", "gpu_kv_shares"):
        for v in getattr(args, name, []):
            if not 0 <= v <= 1:
                raise CaptureError(f"--{name.replace('_', '-')}: {v} is not from 0 to 1")
    if hasattr(args, "weights") and not args.weights:
        raise CaptureError("--weights needs at least one value")


def main(argv: Optional[List[str]] = None, prog: Optional[str] = None) -> int:
    if argv is None:
        argv, prog = sys.argv[1:], prog or sys.argv[0]
    args = build_parser().parse_args(argv)
    args.source = shlex.join(["python3", prog or "profiles/cuda/capture.py"] + list(argv))
    log = Log(args.quiet)
    try:
        resolve_defaults(args)
        if args.command == "e2e" and args.list:
            list_e2e(args)
            return 0
        try:
            be = make_backend(args.backend, args.dtype)
        except ImportError as e:
            raise CaptureError(f"the torch backend needs PyTorch with CUDA ({e}); --backend numpy runs on the CPU")
        except RuntimeError as e:
            raise CaptureError(str(e))
        commands = ["link", "gemm", "attention", "e2e"] if args.command == "all" else [args.command]
        os.makedirs(args.out, exist_ok=True)
        meta = capture_meta(be, args)
        if args.backend == "torch" and HARDWARE_NAME[args.hardware] not in meta["device"]:
            print(f"warning: --hardware {args.hardware} but the device is {meta['device']}", file=sys.stderr)
        update_profile_json(args.out, meta)
        for c in commands:
            n = CAPTURES[c](be, args, log)
            log(f"{c}: {n} rows written to {args.out}")
    except (CaptureError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
