"""Tests of the CUDA capture module without a GPU and without PyTorch: every subcommand runs on the
numpy backend with tiny shapes, and the files must follow profiles/FORMAT.md.

    python3 -m pytest profiles/cuda -q
"""
import csv
import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import capture  # noqa: E402
from backends import NumpyCpuBackend  # noqa: E402
from decoder import (CATALOG, E2ERun, Placement, ReferenceDecoder, build_plan, layer_params,  # noqa: E402
                     layer_weight_elements, model_shape, next_token_class, repeated_group, split_context)

FORMAT_MD = os.path.join(HERE, "..", "FORMAT.md")
FAST = ["--backend", "numpy", "--tiny", "--quiet", "--repeats", "2", "--warmup", "1"]
TIMELINE_OPS = {"load weights", "load KV", "load ACT", "store KV", "store ACT", "recompute tokens",
                "recompute KV from GPU ACT", "recompute KV from host ACT", "norm + QKV", "concat KV", "attention",
                "out proj", "FFN"}


def run_cli(*args):
    return capture.main(list(args), prog="profiles/cuda/capture.py")


def read_table(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def format_headers():
    """The header line FORMAT.md gives for each table (the first line of the code block after its name)."""
    text = open(FORMAT_MD).read()
    headers = {}
    for name in ("link.csv", "copy.csv", "gemm.csv", "attention.csv", "e2e.csv", "e2e_timeline.csv"):
        m = re.search(r"^`" + re.escape(name) + r"`.*?^```\n([^\n]+)\n", text, re.S | re.M)
        assert m, f"FORMAT.md gives no header for {name}"
        headers[name] = m.group(1).split(",")
    return headers


@pytest.fixture(scope="module")
def profile_all(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("prof") / "numpy-tiny")
    assert run_cli("all", "--out", out, "--hardware", "h100-sxm", *FAST) == 0
    return out


# --- numbers and files


def test_median_of_known_lists():
    assert capture.median([3.0, 1.0, 2.0]) == 2.0
    assert capture.median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert capture.median([5.0]) == 5.0
    assert capture.median([1e-5, 9.0, 2e-5, 3e-5, 1.0]) == 3e-5
    with pytest.raises(ValueError):
        capture.median([])


def test_atomic_write_leaves_nothing_on_an_exception(tmp_path):
    path = str(tmp_path / "gemm.csv")
    with pytest.raises(RuntimeError):
        with capture.atomic_write(path) as f:
            f.write("m,n,k,seconds\n1,2,")
            raise RuntimeError("crash mid-table")
    assert os.listdir(tmp_path) == []
    capture.write_csv(path, capture.GEMM_HEADER, [[1, 2, 3, "1e-05"]])
    with pytest.raises(RuntimeError):
        with capture.atomic_write(path) as f:
            f.write("half a line")
            raise RuntimeError("crash")
    assert os.listdir(tmp_path) == ["gemm.csv"]
    assert open(path).read() == "m,n,k,seconds\n1,2,3,1e-05\n"


def test_split_context_by_hand():
    # 25% of 1024 on the GPU as ACT, the 768 host tokens half KV, half ACT.
    assert split_context(1024, 0.25, 0.5) == Placement(gpu_kv=0, gpu_act=256, host_kv=384, host_act=384, recompute=0)
    # 10% recomputed first (102.4 -> 102), then 1/6 of the 922 host tokens as KV (153.67 -> 154).
    assert split_context(1024, 0.0, 1 / 6, recompute_fraction=0.1) == Placement(host_kv=154, host_act=768, recompute=102)
    # Halves round away from zero, as Swift's rounded() does: 2.5 -> 3, then 7 host tokens, 3.5 -> 4 KV.
    assert split_context(10, 0.25, 0.5) == Placement(gpu_act=3, host_kv=4, host_act=3)
    assert split_context(1024, 0.0, 0.5, gpu_kv_share=0.25) == Placement(gpu_kv=256, host_kv=384, host_act=384)
    for p in (split_context(1000, a, k, r, g) for a in (0, 0.25, 0.5) for k in (0, 0.3, 1) for r in (0, 0.2) for g in (0, 0.25)):
        assert p.total == 1000
    with pytest.raises(ValueError):
        split_context(100, 0.6, 0.5, recompute_fraction=0.5)


def test_new_token_joins_the_class_furthest_below_its_share():
    # classForNextToken in Placement.swift: from the placement itself, the largest class; ties to the earlier.
    assert next_token_class(Placement(gpu_act=256, host_kv=384, host_act=384)) == "host_kv"
    assert next_token_class(Placement(gpu_act=600, host_kv=200, host_act=224)) == "gpu_act"
    assert next_token_class(Placement(host_kv=10, host_act=11)) == "host_act"
    assert next_token_class(Placement(recompute=5)) == "recompute"
    assert next_token_class(Placement(gpu_kv=3, host_kv=3), target=Placement(gpu_kv=1, host_kv=3)) == "host_kv"


def test_layer_weights_match_the_planner_element_counts():
    # attentionWeightElements + ffnWeightElements of ModelSpec.swift
    for m in CATALOG.values():
        h, q, kv, f = m.hidden, m.q_dim, m.kv_dim, m.ffn
        mats = 3 if m.gated else 2
        attn = h * q + 2 * h * kv + q * h + ((q + 2 * kv + h) + 2 * h if m.bias else h)
        ffn = mats * h * f + ((mats - 1) * f + h + 2 * h if m.bias else h)
        assert layer_weight_elements(m) == attn + ffn, m.name
        assert {p for _, _, p in layer_params(m)} == {"attn", "ffn"}


def test_catalog_shapes():
    assert (CATALOG["opt-13b"].hidden, CATALOG["opt-13b"].ffn, CATALOG["opt-13b"].gated) == (5120, 20480, False)
    l8 = CATALOG["llama-3.1-8b"]
    assert (l8.heads, l8.kv_heads, l8.head_dim, l8.ffn, l8.gated) == (32, 8, 128, 14336, True)
    assert dict((op, (n, k)) for op, n, k in l8.layer_gemms()) == {
        "qkv": (6144, 4096), "out": (4096, 4096), "ffn_up": (28672, 4096), "ffn_down": (4096, 14336), "kv": (2048, 4096)}


def test_gemm_grid_deduplicates_and_covers_the_required_models():
    models = ["opt-6.7b", "opt-13b", "opt-30b", "opt-66b", "llama-2-7b", "llama-3.1-8b", "llama-3.1-70b", "mistral-7b"]
    pts = capture.gemm_points(models, capture.DEFAULT_M, 4096, tiny=False)
    assert (1, 12288, 4096) in pts and {"opt-6.7b qkv", "llama-2-7b qkv"} <= set(pts[(1, 12288, 4096)])
    assert set(pts[(32768, 28672, 4096)]) == {"llama-3.1-8b ffn_up", "mistral-7b ffn_up"}
    assert (1, 2048, 4096) in pts  # the K/V-only projection of a grouped-query model
    assert max(m for m, _, _ in pts) == 32768 and min(m for m, _, _ in pts) == 1
    assert all(m <= 4096 for m, n, k in pts if n in (50272, 128256, 32000))  # LM head rows stop at 4096
    assert len(capture.DEFAULT_M) == len(set(capture.DEFAULT_M))


def test_link_sizes_are_powers_of_four():
    assert capture.link_sizes(1 << 30, tiny=False) == [4096 * 4 ** i for i in range(10)]
    assert capture.link_sizes(1 << 30, tiny=True) == [4096, 16384, 65536]


# --- the e2e plan


def test_default_plan_groups_differ_only_in_placement():
    runs = build_plan(["opt-13b", "llama-3.1-8b"], [32], [1024], 4, [0.0, 1.0], [0.0, 0.25, 0.5],
                      [i / 6 for i in range(7)], [0.1, 0.2], [0.25])
    groups = {}
    for r in runs:
        groups.setdefault(r.group, []).append(r)
    assert len(groups) == 18 and len(runs) == 126
    for g, members in groups.items():
        fixed = {(r.model, r.layers, r.batch, r.context, r.weights_gpu_fraction, r.host_memory) for r in members}
        assert len(fixed) == 1, g
        assert len({r.placement for r in members}) == len(members), g
        assert all(r.run.startswith(g + "-k") for r in members)
    assert len({r.run for r in runs}) == len(runs)
    r = next(r for r in runs if r.run == "opt-13b-b32-c1024-w0-a25-k50")
    assert (r.group, r.placement) == ("opt-13b-b32-c1024-w0-a25", Placement(gpu_act=256, host_kv=384, host_act=384))
    assert {r.placement.recompute for r in runs if r.group.endswith("-r20")} == {205}
    assert {r.placement.gpu_kv for r in runs if r.group.endswith("-g25")} == {256}


def test_plan_keeps_coinciding_placements_once_and_repeats_a_group():
    runs = build_plan(["opt-6.7b"], [8], [100], 2, [0.0], [1.0], [0, 0.5, 1])
    assert len(runs) == 1 and runs[0].placement == Placement(gpu_act=100)
    runs = build_plan(["opt-6.7b"], [8], [100], 2, [0.0], [0.0], [0, 0.5, 1])
    rep = repeated_group(runs, "opt-6.7b-b8-c100-w0-a0", 2)
    assert [r.group for r in rep] == ["opt-6.7b-b8-c100-w0-a0-rep1"] * 3 + ["opt-6.7b-b8-c100-w0-a0-rep2"] * 3
    assert [r.placement for r in rep[:3]] == [r.placement for r in runs]
    with pytest.raises(ValueError):
        repeated_group(runs, "no-such-group", 2)


# --- the decoder's data path


@pytest.mark.parametrize("model, weights", [("opt-13b", 0.5), ("llama-3.1-8b", 0.0)])
def test_decoder_uses_loaded_kv_and_recomputes_kv_from_act(model, weights):
    """Host KV really lands in the attention buffer, and ACT checkpoints really go through the norm and
    the K/V projection into it, for every class at once and a split weight placement."""
    be = NumpyCpuBackend("fp32")
    m = model_shape(model, tiny=True)
    p = Placement(gpu_kv=3, gpu_act=4, host_kv=5, host_act=6, recompute=2)
    run = E2ERun("r", "g", model, 2, 2, p.total, weights, p)
    dec = ReferenceDecoder(be, m, layers=2, batch=2, context=p.total, host_memory="pinned", host_kv_tokens=5, host_act_tokens=6)
    st = dec.prepare(run)
    steps, timeline = dec.measure(st, warmup=1, repeats=2)
    assert len(steps) == 2 and all(s > 0 for s in steps)
    off, q = st.offsets, m.q_dim
    for layer in range(2):  # two layers: execution e uses slot e % 2 == layer
        buf, W = st.attn_buf[layer], st.weights[layer][layer]
        rows = lambda b, a, n: b[a:a + n].reshape(n * 2, -1)  # noqa: E731
        np.testing.assert_array_equal(buf[off["host_kv"]:off["host_kv"] + 5], dec.host_kv[layer][:5])
        np.testing.assert_array_equal(buf[off["gpu_kv"]:off["gpu_kv"] + 3], st.gpu_kv[layer][:3])
        for src, cls, n in ((st.gpu_act[layer], "gpu_act", 4), (dec.host_act[layer], "host_act", 6)):
            x = rows(src, 0, n)
            normed = be.layer_norm(x, W.vec("ln1_w"), W.vec("ln1_b")) if m.bias else be.rms_norm(x, W.vec("ln1_w"))
            full_w = np.concatenate([w for w in (W.p["wqkv"].resident, W.p["wqkv"].streamed) if w is not None])
            want = normed @ full_w[:, q:] + (W.vec("bqkv")[q:] if m.bias else 0)
            np.testing.assert_allclose(rows(buf, off[cls], n), want, rtol=1e-4, atol=1e-5)
    # The new token (class host_act: the largest) wrote its checkpoint, the layer input, back to host slot 6.
    assert st.new_class == "host_act"
    np.testing.assert_array_equal(dec.host_act[0][6], st.x0)
    ops = {(stream, op) for _, _, stream, op, _, _ in timeline}
    assert {("h2d", "load KV"), ("h2d", "load ACT"), ("h2d", "load weights"), ("compute", "recompute tokens"),
            ("compute", "recompute KV from GPU ACT"), ("compute", "recompute KV from host ACT"), ("compute", "concat KV"),
            ("d2h", "store ACT")} <= ops


def test_decoder_all_gpu_kv_attends_the_resident_cache():
    be = NumpyCpuBackend("fp32")
    m = model_shape("opt-6.7b", tiny=True)
    p = Placement(gpu_kv=8)
    dec = ReferenceDecoder(be, m, layers=2, batch=2, context=8, host_memory="pinned", host_kv_tokens=0, host_act_tokens=0)
    st = dec.prepare(E2ERun("r", "g", "opt-6.7b", 2, 2, 8, 1.0, p))
    steps, timeline = dec.measure(st, warmup=0, repeats=1)
    assert st.attn_buf is None and st.slots is None and st.new_class == "gpu_kv"
    assert {stream for _, _, stream, _, _, _ in timeline} == {"compute"}
    assert "concat KV" not in {op for *_, op, _, _ in timeline}


# --- every subcommand on the numpy backend


def test_all_writes_every_table_as_format_md_says(profile_all):
    headers = format_headers()
    files = sorted(os.listdir(profile_all))
    assert files == ["attention.csv", "copy.csv", "e2e.csv", "e2e_timeline.csv", "gemm.csv", "link.csv", "profile.json"]
    for name, header in headers.items():
        got, rows = read_table(os.path.join(profile_all, name))
        assert got == header, name
        assert rows, name
        assert all(len(r) == len(header) for r in rows), name


def test_profile_json_has_every_required_key(profile_all):
    meta = json.load(open(os.path.join(profile_all, "profile.json")))
    for k in capture.META_KEYS:
        assert k in meta, k
    assert set(meta) <= set(capture.META_KEYS) | {"licence"}  # the Swift reader refuses unknown keys
    assert meta["format"] == "hybridplanner-profile/1" and meta["hardware"] == "h100-sxm" and meta["dtype"] == "fp16"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["capturedAt"])
    assert (meta["repeats"], meta["warmup"]) == (2, 1)
    assert all(isinstance(v, str) for v in meta["libraries"].values())
    assert all(isinstance(meta[k], str) and meta[k] for k in ("device", "driver", "cuda", "source"))
    assert meta["source"] == "python3 profiles/cuda/capture.py all --out " + profile_all + " --hardware h100-sxm " + " ".join(FAST)


def test_kernel_tables_are_well_formed(profile_all):
    _, link = read_table(os.path.join(profile_all, "link.csv"))
    assert {(r[0], r[1]) for r in link} == {("h2d", "pinned"), ("d2h", "pinned"), ("h2d", "pageable"), ("d2h", "pageable")}
    assert sorted({int(r[2]) for r in link}) == [4096, 16384, 65536]
    _, copy = read_table(os.path.join(profile_all, "copy.csv"))
    assert [int(r[0]) for r in copy] == [4096, 16384, 65536] and all(float(r[1]) > 0 for r in copy)
    _, gemm = read_table(os.path.join(profile_all, "gemm.csv"))
    keys = [tuple(int(x) for x in r[:3]) for r in gemm]
    assert len(keys) == len(set(keys))
    _, att = read_table(os.path.join(profile_all, "attention.csv"))
    assert {r[0] for r in att} == {"decode", "prefill"}
    for kind, b, h, kv, d, q, t, s in att:
        assert int(h) % int(kv) == 0 and int(q) <= int(t)
        assert int(q) == (1 if kind == "decode" else int(t))
    assert {(r[2], r[3]) for r in att} == {("4", "4"), ("4", "2")}
    for rows in (link, gemm, att):
        assert all(float(r[-1]) > 0 and math.isfinite(float(r[-1])) for r in rows)


def test_e2e_rows_add_up_and_groups_differ_only_in_placement(profile_all):
    _, rows = read_table(os.path.join(profile_all, "e2e.csv"))
    assert len(rows) == 126
    groups = {}
    for r in rows:
        run, group, model, layers, batch, context, w = r[:7]
        counts, host_memory, step = [int(x) for x in r[7:12]], r[12], float(r[13])
        assert sum(counts) == int(context) and min(counts) >= 0
        assert model in CATALOG and int(layers) >= 1 and 0 <= float(w) <= 1
        assert host_memory in ("pinned", "pageable") and step > 0
        groups.setdefault(group, []).append(r)
    assert len({r[0] for r in rows}) == len(rows)
    for g, members in groups.items():
        assert len({tuple(r[2:7]) + (r[12],) for r in members}) == 1, g
        assert len({tuple(r[7:12]) for r in members}) == len(members), g


def test_timeline_rows_are_valid(profile_all):
    _, rows = read_table(os.path.join(profile_all, "e2e_timeline.csv"))
    _, e2e = read_table(os.path.join(profile_all, "e2e.csv"))
    assert {r[0] for r in rows} == {r[0] for r in e2e}
    for run, step, layer, stream, op, start, end in rows:
        assert int(step) >= 0 and 0 <= int(layer) < 2
        assert stream in ("compute", "h2d", "d2h") and op in TIMELINE_OPS
        assert 0 <= float(start) <= float(end)
    by_run = {}
    for r in rows:
        by_run.setdefault(r[0], set()).add(r[4])
    assert "load KV" not in by_run["opt-13b-b2-c24-w0-a0-k0"] and "load ACT" in by_run["opt-13b-b2-c24-w0-a0-k0"]
    assert "load KV" in by_run["opt-13b-b2-c24-w0-a0-k100"] and "load ACT" not in by_run["opt-13b-b2-c24-w0-a0-k100"]
    assert "load weights" not in by_run["opt-13b-b2-c24-w100-a25-k50"]
    assert "recompute tokens" in by_run["llama-3.1-8b-b2-c24-w0-a0-r20-k50"]
    assert "concat KV" in by_run["llama-3.1-8b-b2-c24-w0-a0-g25-k50"]


def test_subcommands_merge_into_one_profile(tmp_path):
    out = str(tmp_path / "p")
    assert run_cli("link", "--out", out, "--hardware", "t4", *FAST) == 0
    assert run_cli("gemm", "--out", out, "--hardware", "t4", *FAST) == 0
    assert run_cli("attention", "--out", out, "--hardware", "t4", *FAST) == 0
    meta = json.load(open(os.path.join(out, "profile.json")))
    assert [s.split()[2] for s in meta["source"].split(" ; ")] == ["link", "gemm", "attention"]
    before = open(os.path.join(out, "profile.json")).read()
    # Another device entry, or other repeats, would make the metadata wrong for the tables already there.
    assert run_cli("e2e", "--out", out, "--hardware", "rtx4090", *FAST) == 1
    assert run_cli("e2e", "--out", out, "--hardware", "t4", *FAST[:-4], "--repeats", "5", "--warmup", "1") == 1
    assert open(os.path.join(out, "profile.json")).read() == before
    assert sorted(os.listdir(out)) == ["attention.csv", "copy.csv", "gemm.csv", "link.csv", "profile.json"]


def test_e2e_repeat_group_adds_to_an_earlier_capture(tmp_path):
    out = str(tmp_path / "p")
    plan = ["--models", "opt-6.7b", "--weights", "0.5", "--act-shares", "0.25", "--recompute", "", "--gpu-kv-shares", "",
            "--kv-fractions", "0,0.5,1"]
    assert run_cli("e2e", "--out", out, "--hardware", "a100-40gb", *FAST, *plan) == 0
    assert run_cli("e2e", "--out", out, "--hardware", "a100-40gb", *FAST, *plan,
                   "--repeat-group", "opt-6.7b-b2-c24-w50-a25", "--repeat-count", "2") == 0
    _, rows = read_table(os.path.join(out, "e2e.csv"))
    assert [r[1] for r in rows] == ["opt-6.7b-b2-c24-w50-a25"] * 3 + ["opt-6.7b-b2-c24-w50-a25-rep1"] * 3 + ["opt-6.7b-b2-c24-w50-a25-rep2"] * 3
    assert {r[6] for r in rows} == {"0.5"}
    # the same command again replaces its rows instead of adding them twice
    assert run_cli("e2e", "--out", out, "--hardware", "a100-40gb", *FAST, *plan) == 0
    _, again = read_table(os.path.join(out, "e2e.csv"))
    assert len(again) == 9 and len({r[0] for r in again}) == 9


def test_bad_input_is_one_error_line(tmp_path, capsys):
    assert run_cli("e2e", "--out", str(tmp_path / "x"), "--hardware", "t4", *FAST, "--act-shares", "1.5") == 1
    assert run_cli("e2e", "--out", str(tmp_path / "x"), "--hardware", "t4", *FAST, "--repeat-group", "nope") == 1
    err = capsys.readouterr().err
    assert err.count("error:") == 2 and "act-shares" in err and "no group 'nope'" in err
    with pytest.raises(SystemExit):
        run_cli("gemm", "--out", str(tmp_path / "x"), "--hardware", "v100", *FAST)


def test_runs_without_torch_and_imports_none(tmp_path):
    code = ("import sys; sys.path.insert(0, %r); import capture; "
            "rc = capture.main(['link', '--out', %r, '--hardware', 't4', '--backend', 'numpy', '--tiny', '--quiet']); "
            "assert rc == 0 and 'torch' not in sys.modules, sorted(sys.modules)") % (HERE, str(tmp_path / "p"))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
