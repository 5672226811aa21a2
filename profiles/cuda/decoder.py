"""The reference layer-streaming decoder of the e2e capture, and what it is driven by.

Backend-agnostic: everything here calls a backend (`backends.py`) for memory, streams, events,
copies and kernels, so the same schedule runs on a GPU (`TorchCudaBackend`) and, with tiny shapes,
on a CPU (`NumpyCpuBackend`, used by the tests).

- `ModelShape` / `CATALOG`: the planner's model shapes (Sources/PlannerCore/Specs/ModelCatalog.swift).
- `Placement`, `split_context`, `next_token_class`: the five placement classes and the arithmetic
  the planner uses (Simulation/Plan.swift `hybrid`, Simulation/Placement.swift).
- `E2ERun`, `build_plan`: the runs and groups of an e2e capture.
- `ReferenceDecoder`: one decode step per layer on three streams (compute, h2d, d2h), with the
  planner's double buffering (Simulation/ScheduleBuilder.swift): per layer, H2D copies host ACT,
  the attention weights, host KV, the FFN weights; the compute stream runs token recomputation, K/V
  recomputation from GPU ACT and from host ACT, norm + QKV, the concatenation of GPU KV, attention,
  the output projection and the FFN; D2H writes the new token's KV or ACT back when its class lives
  on the host. A load into a buffer waits for the layer two executions back that read it.
"""
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple


# ---------------------------------------------------------------------------------------------
# Model shapes


@dataclass(frozen=True)
class ModelShape:
    """The shape of one catalog model, as the planner reads it (ModelSpec.swift)."""
    name: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    ffn: int
    gated: bool          # Llama/Mistral gated three-matrix FFN; OPT: two-matrix ReLU FFN
    vocab: int
    bias: bool           # OPT: biases on every projection, LayerNorm with bias

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def ffn_up_n(self) -> int:
        """Output columns of the FFN up projection (gate and up fused for a gated FFN)."""
        return 2 * self.ffn if self.gated else self.ffn

    def layer_gemms(self) -> List[Tuple[str, int, int]]:
        """(op, n, k) of every weight GEMM of one layer, plus the K/V-only projection."""
        h = self.hidden
        return [
            ("qkv", self.q_dim + 2 * self.kv_dim, h),
            ("out", h, self.q_dim),
            ("ffn_up", self.ffn_up_n, h),
            ("ffn_down", h, self.ffn),
            ("kv", 2 * self.kv_dim, h),
        ]

    def tiny(self) -> "ModelShape":
        """The same kind of layer (FFN kind, biases, MHA or GQA) at test size."""
        gqa = self.kv_heads < self.heads
        return ModelShape(self.name, self.layers, hidden=64, heads=4, kv_heads=2 if gqa else 4, head_dim=16,
                          ffn=176 if self.gated else 256, gated=self.gated, vocab=256, bias=self.bias)


def _opt(size: str, layers: int, hidden: int, heads: int) -> ModelShape:
    return ModelShape(f"opt-{size}", layers, hidden, heads, heads, hidden // heads, 4 * hidden, False, 50272, True)


def _llama(name: str, layers: int, hidden: int, heads: int, kv_heads: int, ffn: int, vocab: int) -> ModelShape:
    return ModelShape(name, layers, hidden, heads, kv_heads, hidden // heads, ffn, True, vocab, False)


# Keep in step with Sources/PlannerCore/Specs/ModelCatalog.swift (the e2e reader accepts catalog names only).
CATALOG: Dict[str, ModelShape] = {m.name: m for m in [
    _opt("6.7b", 32, 4096, 32),
    _opt("13b", 40, 5120, 40),
    _opt("30b", 48, 7168, 56),
    _opt("66b", 64, 9216, 72),
    _opt("175b", 96, 12288, 96),
    _llama("llama-2-7b", 32, 4096, 32, 32, 11008, 32000),
    _llama("llama-2-13b", 40, 5120, 40, 40, 13824, 32000),
    _llama("llama-2-70b", 80, 8192, 64, 8, 28672, 32000),
    _llama("llama-3.1-8b", 32, 4096, 32, 8, 14336, 128256),
    _llama("llama-3.1-70b", 80, 8192, 64, 8, 28672, 128256),
    _llama("mistral-7b", 32, 4096, 32, 8, 14336, 32000),
    _llama("yarn-llama-2-7b-64k", 32, 4096, 32, 32, 11008, 32000),
]}


def model_shape(name: str, tiny: bool = False) -> ModelShape:
    if name not in CATALOG:
        raise ValueError(f"unknown model {name!r}; catalog models are {', '.join(CATALOG)}")
    m = CATALOG[name]
    return m.tiny() if tiny else m


def layer_params(m: ModelShape) -> List[Tuple[str, Tuple[int, ...], str]]:
    """(name, shape, part) of one layer's parameters, `part` being `attn` or `ffn`; the element
    counts equal the planner's attentionWeightElements and ffnWeightElements (ModelSpec.swift).
    Matrices are stored `[k, n]` (activations times weight)."""
    h, qkv_n = m.hidden, m.q_dim + 2 * m.kv_dim
    p = [("ln1_w", (h,), "attn")] + ([("ln1_b", (h,), "attn")] if m.bias else [])
    p += [("wqkv", (h, qkv_n), "attn")] + ([("bqkv", (qkv_n,), "attn")] if m.bias else [])
    p += [("wo", (m.q_dim, h), "attn")] + ([("bo", (h,), "attn")] if m.bias else [])
    p += [("ln2_w", (h,), "ffn")] + ([("ln2_b", (h,), "ffn")] if m.bias else [])
    p += [("w_up", (h, m.ffn_up_n), "ffn")] + ([("b_up", (m.ffn_up_n,), "ffn")] if m.bias else [])
    p += [("w_down", (m.ffn, h), "ffn")] + ([("b_down", (h,), "ffn")] if m.bias else [])
    return p


def layer_weight_elements(m: ModelShape) -> int:
    return sum(math.prod(s) for _, s, _ in layer_params(m))


# ---------------------------------------------------------------------------------------------
# Placement arithmetic

CLASSES = ("gpu_kv", "gpu_act", "host_kv", "host_act", "recompute")
HOST_CLASSES = ("host_kv", "host_act")


def round_half_up(x: float) -> int:
    """Swift's `rounded()` (to nearest, halves away from zero) for non-negative numbers."""
    return int(math.floor(x + 0.5))


@dataclass(frozen=True)
class Placement:
    """Tokens per sequence in each class (TokenPlacement in Placement.swift)."""
    gpu_kv: int = 0
    gpu_act: int = 0
    host_kv: int = 0
    host_act: int = 0
    recompute: int = 0

    @property
    def total(self) -> int:
        return self.gpu_kv + self.gpu_act + self.host_kv + self.host_act + self.recompute

    def __getitem__(self, c: str) -> int:
        return getattr(self, c)

    def as_tuple(self) -> Tuple[int, ...]:
        return tuple(self[c] for c in CLASSES)


def split_context(context: int, gpu_act_share: float, host_kv_fraction: float,
                  recompute_fraction: float = 0.0, gpu_kv_share: float = 0.0) -> Placement:
    """The planner's hybrid split (Plan.swift): the first `recompute_fraction` of the context is
    recomputed from tokens, `gpu_kv_share` and `gpu_act_share` of it stay on the GPU as KV and as
    ACT, and the host-resident rest is split `host_kv_fraction` as KV, the remainder as ACT.

        split_context(1024, 0.25, 0.5) == Placement(gpu_act=256, host_kv=384, host_act=384)
    """
    for name, v in (("gpu_act_share", gpu_act_share), ("host_kv_fraction", host_kv_fraction),
                    ("recompute_fraction", recompute_fraction), ("gpu_kv_share", gpu_kv_share)):
        if not 0 <= v <= 1:
            raise ValueError(f"{name} must be from 0 to 1, got {v}")
    recompute = round_half_up(recompute_fraction * context)
    gpu_kv = round_half_up(gpu_kv_share * context)
    gpu_act = round_half_up(gpu_act_share * context)
    host = context - recompute - gpu_kv - gpu_act
    if host < 0:
        raise ValueError(f"recompute {recompute} + GPU KV {gpu_kv} + GPU ACT {gpu_act} tokens exceed the context ({context})")
    host_kv = round_half_up(host_kv_fraction * host)
    return Placement(gpu_kv=gpu_kv, gpu_act=gpu_act, host_kv=host_kv, host_act=host - host_kv, recompute=recompute)


def next_token_class(cached: Placement, target: Optional[Placement] = None) -> str:
    """The class the step's new token joins: the one furthest below its share of `total + 1`
    (ties to the earlier class), as Placement.swift `classForNextToken`."""
    target = target or cached
    nxt = cached.total + 1
    target_total = max(target.total, 1)
    best, best_deficit = "gpu_kv", -math.inf
    for c in CLASSES:
        if target[c] > 0:
            deficit = target[c] / target_total * nxt - cached[c]
            if deficit > best_deficit + 1e-12:
                best, best_deficit = c, deficit
    return best


# ---------------------------------------------------------------------------------------------
# The plan of an e2e capture


@dataclass(frozen=True)
class E2ERun:
    run: str
    group: str
    model: str
    layers: int
    batch: int
    context: int
    weights_gpu_fraction: float
    placement: Placement
    host_memory: str = "pinned"


def percent_label(x: float) -> str:
    return str(round_half_up(x * 100))


DEFAULT_KV_FRACTIONS = tuple(i / 6 for i in range(7))   # 0, 17, 33, 50, 67, 83, 100 %


def build_plan(models: Sequence[str], batches: Sequence[int], contexts: Sequence[int], layers: int,
               weights: Sequence[float], act_shares: Sequence[float], kv_fractions: Sequence[float],
               recompute_fractions: Sequence[float] = (), gpu_kv_shares: Sequence[float] = (),
               host_memory: str = "pinned") -> List[E2ERun]:
    """The runs of an e2e capture. For each model, batch and context, one group per
    (weights, GPU ACT share) pair, plus one group per recomputation fraction and one per GPU KV
    share (both with the first weights value and no GPU ACT); inside a group only the host KV
    fraction varies, so runs of a group differ only in placement. Placements that coincide inside
    a group (no host tokens) are kept once; groups whose fixed shares exceed the context are left out.
    """
    group_specs = [(w, a, 0.0, 0.0) for w in weights for a in act_shares]
    group_specs += [(weights[0], 0.0, r, 0.0) for r in recompute_fractions if r > 0]
    group_specs += [(weights[0], 0.0, 0.0, g) for g in gpu_kv_shares if g > 0]
    runs: List[E2ERun] = []
    seen_ids = set()
    for model in models:
        model_shape(model)
        for batch in batches:
            for context in contexts:
                for w, a, r, g in group_specs:
                    if not 0 <= w <= 1:
                        raise ValueError(f"weights GPU fraction must be from 0 to 1, got {w}")
                    group = f"{model}-b{batch}-c{context}-w{percent_label(w)}-a{percent_label(a)}"
                    group += (f"-g{percent_label(g)}" if g > 0 else "") + (f"-r{percent_label(r)}" if r > 0 else "")
                    group += "-pageable" if host_memory == "pageable" else ""
                    placements = []
                    for k in kv_fractions:
                        try:
                            p = split_context(context, a, k, r, g)
                        except ValueError:
                            break
                        if p in placements:
                            continue
                        placements.append(p)
                        run_id = f"{group}-k{percent_label(k)}"
                        if run_id in seen_ids:
                            raise ValueError(f"two runs would be named {run_id}; use host KV fractions at least 1% apart")
                        seen_ids.add(run_id)
                        runs.append(E2ERun(run_id, group, model, layers, batch, context, w, p, host_memory))
    return runs


def repeated_group(runs: Sequence[E2ERun], group: str, count: int) -> List[E2ERun]:
    """`count` copies of one group's runs, as groups `GROUP-rep1` .. `GROUP-repN`, to show the
    run-to-run spread."""
    members = [r for r in runs if r.group == group]
    if not members:
        raise ValueError(f"no group {group!r} in the plan; its groups are: {', '.join(sorted({r.group for r in runs}))}")
    out = []
    for i in range(1, count + 1):
        for r in members:
            out.append(E2ERun(f"{r.run}-rep{i}", f"{r.group}-rep{i}", r.model, r.layers, r.batch, r.context,
                              r.weights_gpu_fraction, r.placement, r.host_memory))
    return out


def run_gpu_bytes(m: ModelShape, run: E2ERun, element_bytes: int) -> int:
    """GPU memory the decoder allocates for a run (weights, caches, buffers, a working set)."""
    p, b, layers, e = run.placement, run.batch, run.layers, element_bytes
    kv_token, act_token = 2 * m.kv_dim * e * b, m.hidden * e * b
    w_layer = layer_weight_elements(m) * e
    f = run.weights_gpu_fraction
    total = int(f * w_layer * layers) + (2 * int((1 - f) * w_layer) if f < 1 else 0)
    total += layers * (p.gpu_kv + 1) * kv_token if p.gpu_kv else 0
    total += layers * (p.gpu_act + 1) * act_token if p.gpu_act else 0
    total += 0 if p.gpu_kv == run.context else 2 * (run.context + 1) * kv_token
    total += 2 * p.host_act * act_token
    rows = b * max(1, p.recompute, p.gpu_act, p.host_act)
    total += rows * (4 * m.hidden + m.q_dim + 2 * m.kv_dim + 2 * m.ffn_up_n) * e
    return total


# ---------------------------------------------------------------------------------------------
# The reference decoder


@dataclass
class _Param:
    resident: object = None     # rows [0, kr) on the GPU for good
    streamed: object = None     # rows [kr, k) in the layer's weight buffer slot


class LayerWeights:
    """One layer's parameters as the kernels see them: each split by rows into a GPU-resident and
    a streamed part (weights_gpu_fraction of the rows resident)."""

    def __init__(self, be, params: Dict[str, _Param]):
        self.be, self.p = be, params

    def vec(self, name: str, cols: Optional[slice] = None):
        r, s = self.p[name].resident, self.p[name].streamed
        v = r if s is None else s if r is None else self.be.cat([r, s])
        return v if cols is None else v[cols]

    def linear(self, x, w: str, b: Optional[str] = None, out=None, cols: Optional[slice] = None):
        """x @ W (+ bias); a split W runs as two GEMMs over the two row blocks, the second accumulating."""
        be, pr = self.be, self.p[w]
        bias = self.vec(b, cols) if b and b in self.p else None
        wr, ws = pr.resident, pr.streamed
        if cols is not None:
            wr = None if wr is None else wr[:, cols]
            ws = None if ws is None else ws[:, cols]
        if ws is None or wr is None:
            return be.linear(x, wr if ws is None else ws, bias, out)
        kr = wr.shape[0]
        out = be.linear(x[:, :kr], wr, bias, out)
        be.linear_acc(out, x[:, kr:], ws)
        return out


class _Tracer:
    """Event pairs around the ops of one step (the timeline); a no-op when disabled."""

    def __init__(self, be, enabled: bool):
        self.be, self.enabled, self.spans = be, enabled, []

    @contextmanager
    def span(self, stream, stream_name: str, op: str, layer: int):
        if not self.enabled:
            yield
            return
        a, b = self.be.event(timing=True), self.be.event(timing=True)
        self.be.record(a, stream)
        yield
        self.be.record(b, stream)
        self.spans.append((stream_name, op, layer, a, b))


@dataclass
class _RunState:
    run: E2ERun
    placement: Placement
    new_class: str
    weights: List[List[LayerWeights]]       # [layer][slot]
    host_flat: list                          # per layer: host copy of the streamed rows, or None
    slots: list                              # two GPU weight buffers (streamed rows), or None
    streamed_attn: int                       # elements of the streamed attention part
    gpu_kv: list
    gpu_act: list
    attn_buf: list                           # two attention buffers [context + 1, batch, 2 kvDim], or None
    act_stage: list
    x0: object
    rec_x0: object
    offsets: Dict[str, int] = field(default_factory=dict)
    weight_release: list = field(default_factory=list)
    cache_release: list = field(default_factory=list)


class ReferenceDecoder:
    """The decoder for one (model, batch, context, host memory): host caches are allocated once at
    the largest size the runs need and reused; `prepare` sets up one run's GPU side."""

    def __init__(self, be, m: ModelShape, layers: int, batch: int, context: int, host_memory: str,
                 host_kv_tokens: int, host_act_tokens: int):
        self.be, self.m, self.layers, self.batch, self.context = be, m, layers, batch, context
        self.host_memory = host_memory
        self.params = layer_params(m)
        self.compute, self.h2d, self.d2h = be.compute_stream(), be.stream(), be.stream()
        kv_w, h = 2 * m.kv_dim, m.hidden
        # Host caches: one slot more than the tokens loaded, for the new token's write-back.
        self.host_kv = [self._random((host_kv_tokens + 1, batch, kv_w), host_memory) for _ in range(layers)] if host_kv_tokens else None
        self.host_act = [self._random((host_act_tokens + 1, batch, h), host_memory) for _ in range(layers)] if host_act_tokens else None
        self._host_weights: Dict[float, list] = {}

    def _random(self, shape, where):
        t = self.be.empty(shape, where)
        self.be.fill_random(t, 0.02)
        return t

    # -- setup

    def _split(self, f: float):
        """Per parameter: rows kept resident, and element offsets into the resident and streamed flats."""
        layout, res_off, str_off = [], 0, {"attn": 0, "ffn": 0}
        for name, shape, part in self.params:
            kr = round_half_up(f * shape[0])
            rest = math.prod(shape[1:])
            layout.append((name, shape, part, kr, res_off, str_off[part]))
            res_off += kr * rest
            str_off[part] += (shape[0] - kr) * rest
        return layout, res_off, str_off["attn"], str_off["ffn"]

    def host_weights(self, f: float):
        """Host copies of the streamed rows of every layer ([attention part | FFN part])."""
        if f not in self._host_weights:
            _, _, sa, sf = self._split(f)
            self._host_weights[f] = [self._random((sa + sf,), self.host_memory) for _ in range(self.layers)] if sa + sf else None
        return self._host_weights[f]

    def prepare(self, run: E2ERun) -> _RunState:
        be, m, b, L, T = self.be, self.m, self.batch, self.layers, self.context
        p = run.placement
        assert p.total == T == run.context and run.batch == b and run.layers == L
        f = run.weights_gpu_fraction
        layout, res_n, sa, sf = self._split(f)
        host_flat = self.host_weights(f)
        resident = [self._random((res_n,), "gpu") if res_n else None for _ in range(L)]
        slots = [be.empty((sa + sf,), "gpu") for _ in range(2)] if sa + sf else None
        weights = []
        for l in range(L):
            per_slot = []
            for s in range(2):
                params = {}
                for name, shape, part, kr, ro, so in layout:
                    rest = shape[1:]
                    pr = _Param()
                    if kr:
                        pr.resident = be.view(resident[l], ro, (kr,) + rest)
                    if kr < shape[0]:
                        pr.streamed = be.view(slots[s], so + (sa if part == "ffn" else 0), (shape[0] - kr,) + rest)
                    params[name] = pr
                per_slot.append(LayerWeights(be, params))
            weights.append(per_slot)
        kv_w, h = 2 * m.kv_dim, m.hidden
        new_class = next_token_class(p)
        gpu_kv = [self._random((p.gpu_kv + 1, b, kv_w), "gpu") for _ in range(L)] if p.gpu_kv else None
        gpu_act = [self._random((p.gpu_act + 1, b, h), "gpu") for _ in range(L)] if p.gpu_act else None
        attn_buf = None if p.gpu_kv == T else [self._random((T + 1, b, kv_w), "gpu") for _ in range(2)]
        act_stage = [be.empty((p.host_act, b, h), "gpu") for _ in range(2)] if p.host_act else None
        if p.host_kv and (self.host_kv is None or self.host_kv[0].shape[0] < p.host_kv + 1):
            raise ValueError("host KV cache smaller than the run's host KV tokens")
        if p.host_act and (self.host_act is None or self.host_act[0].shape[0] < p.host_act + 1):
            raise ValueError("host ACT cache smaller than the run's host ACT tokens")
        # Token order in the attention buffer: recompute | GPU ACT | host ACT | host KV | GPU KV | new.
        offsets, o = {}, 0
        for c in ("recompute", "gpu_act", "host_act", "host_kv", "gpu_kv"):
            offsets[c] = o
            o += p[c]
        st = _RunState(run=run, placement=p, new_class=new_class, weights=weights, host_flat=host_flat, slots=slots,
                         streamed_attn=sa, gpu_kv=gpu_kv, gpu_act=gpu_act, attn_buf=attn_buf, act_stage=act_stage,
                         x0=self._random((b, h), "gpu"), rec_x0=self._random((p.recompute * b, h), "gpu") if p.recompute else None,
                         offsets=offsets)
        be.synchronize()  # the random fills are done before the timed steps
        return st

    # -- kernels of one layer (compute stream)

    def _norm(self, W: LayerWeights, x, which: str):
        if self.m.bias:
            return self.be.layer_norm(x, W.vec(f"ln{which}_w"), W.vec(f"ln{which}_b"))
        return self.be.rms_norm(x, W.vec(f"ln{which}_w"))

    def _ffn(self, W: LayerWeights, x):
        be = self.be
        up = W.linear(self._norm(W, x, "2"), "w_up", "b_up")
        a = be.silu_mul(up, self.m.ffn) if self.m.gated else be.relu_(up)
        return be.add(x, W.linear(a, "w_down", "b_down"))

    def _kv_views(self, buf, start: int, stop: int):
        be, m = self.be, self.m
        t = be.reshape(buf[start:stop], (stop - start, self.batch, 2, m.kv_heads, m.head_dim))
        return be.permute(t[:, :, 0], (1, 2, 0, 3)), be.permute(t[:, :, 1], (1, 2, 0, 3))

    def _rows(self, buf, start: int, stop: int):
        """Tokens [start, stop) of a [tokens, batch, width] buffer as [(stop - start) * batch, width]."""
        return self.be.reshape(buf[start:stop], ((stop - start) * self.batch, buf.shape[2]))

    def _kv_from_act(self, W: LayerWeights, act_rows, out_rows):
        """K and V of activation checkpoints: the layer norm, then the K/V projection alone."""
        q = self.m.q_dim
        W.linear(self._norm(W, act_rows, "1"), "wqkv", "bqkv", out=out_rows, cols=slice(q, None))

    def _recompute_tokens(self, W: LayerWeights, x, buf, r: int):
        """The first `r` tokens of each sequence through one whole layer: QKV (their K and V into
        the attention buffer), causal attention among them, output projection, FFN."""
        be, m, b = self.be, self.m, self.batch
        qkv = W.linear(self._norm(W, x, "1"), "wqkv", "bqkv")
        be.copy(self._rows(buf, 0, r), qkv[:, m.q_dim:], self.compute)
        qr = be.permute(be.reshape(qkv[:, :m.q_dim], (r, b, m.heads, m.head_dim)), (1, 2, 0, 3))
        k, v = self._kv_views(buf, 0, r)
        o = be.attention(qr, k, v, causal=True)
        o = be.reshape(be.permute(o, (2, 0, 1, 3)), (r * b, m.q_dim))
        x = be.add(x, W.linear(o, "wo", "bo"))
        return self._ffn(W, x)

    # -- one layer execution

    def _layer(self, st: _RunState, e: int, l: int, x, rec_x, tr: _Tracer):
        be, m, b, T = self.be, self.m, self.batch, self.context
        p, off, S = st.placement, st.offsets, e % 2
        W = st.weights[l][S]
        buf = st.gpu_kv[l] if st.attn_buf is None else st.attn_buf[S]
        rel_cache = st.cache_release[e - 2] if e >= 2 else None
        rel_w = st.weight_release[e - 2] if e >= 2 else None
        h2d, c, d2h = self.h2d, self.compute, self.d2h

        def loaded():
            ev = be.event(timing=False)
            be.record(ev, h2d)
            return ev

        # H2D, in the planner's order: host ACT, attention weights, host KV, FFN weights.
        ev_act = ev_attn_w = ev_kv = ev_ffn_w = None
        if p.host_act:
            be.wait(h2d, rel_cache)
            with tr.span(h2d, "h2d", "load ACT", l):
                be.copy(st.act_stage[S], self.host_act[l][:p.host_act], h2d)
            ev_act = loaded()
        if st.slots is not None:
            be.wait(h2d, rel_w)
            sa = st.streamed_attn
            if sa:
                with tr.span(h2d, "h2d", "load weights", l):
                    be.copy(st.slots[S][:sa], st.host_flat[l][:sa], h2d)
                ev_attn_w = loaded()
        if p.host_kv:
            be.wait(h2d, rel_cache)
            with tr.span(h2d, "h2d", "load KV", l):
                be.copy(buf[off["host_kv"]:off["host_kv"] + p.host_kv], self.host_kv[l][:p.host_kv], h2d)
            ev_kv = loaded()
        if st.slots is not None and st.slots[S].shape[0] > st.streamed_attn:
            with tr.span(h2d, "h2d", "load weights", l):
                be.copy(st.slots[S][st.streamed_attn:], st.host_flat[l][st.streamed_attn:], h2d)
            ev_ffn_w = loaded()

        # Compute, in the planner's order.
        if p.recompute:
            be.wait(c, ev_attn_w)
            be.wait(c, ev_ffn_w)
            with tr.span(c, "compute", "recompute tokens", l):
                rec_x = self._recompute_tokens(W, rec_x, buf, p.recompute)
        if p.gpu_act:
            be.wait(c, ev_attn_w)
            with tr.span(c, "compute", "recompute KV from GPU ACT", l):
                o = off["gpu_act"]
                self._kv_from_act(W, self._rows(st.gpu_act[l], 0, p.gpu_act), self._rows(buf, o, o + p.gpu_act))
        if p.host_act:
            be.wait(c, ev_act)
            be.wait(c, ev_attn_w)
            with tr.span(c, "compute", "recompute KV from host ACT", l):
                o = off["host_act"]
                self._kv_from_act(W, self._rows(st.act_stage[S], 0, p.host_act), self._rows(buf, o, o + p.host_act))
        be.wait(c, ev_attn_w)
        with tr.span(c, "compute", "norm + QKV", l):
            qkv = W.linear(self._norm(W, x, "1"), "wqkv", "bqkv")
            kv_new = qkv[:, m.q_dim:]
            be.copy(self._rows(buf, T, T + 1), kv_new, c)
            if st.new_class == "gpu_kv" and st.attn_buf is not None:
                be.copy(self._rows(st.gpu_kv[l], p.gpu_kv, p.gpu_kv + 1), kv_new, c)
            elif st.new_class == "gpu_act":
                be.copy(self._rows(st.gpu_act[l], p.gpu_act, p.gpu_act + 1), x, c)
        ev_qkv = be.event(timing=False)
        be.record(ev_qkv, c)
        if p.gpu_kv and st.attn_buf is not None:
            with tr.span(c, "compute", "concat KV", l):
                o = off["gpu_kv"]
                be.copy(buf[o:o + p.gpu_kv], st.gpu_kv[l][:p.gpu_kv], c)
        be.wait(c, ev_kv)
        with tr.span(c, "compute", "attention", l):
            q = be.reshape(qkv[:, :m.q_dim], (b, m.heads, 1, m.head_dim))
            k, v = self._kv_views(buf, 0, T + 1)
            o = be.reshape(be.attention(q, k, v, causal=False), (b, m.q_dim))
        rel = be.event(timing=False)
        be.record(rel, c)
        st.cache_release.append(rel)
        with tr.span(c, "compute", "out proj", l):
            x_mid = be.add(x, W.linear(o, "wo", "bo"))
        be.wait(c, ev_ffn_w)
        with tr.span(c, "compute", "FFN", l):
            x_out = self._ffn(W, x_mid)
        rel = be.event(timing=False)
        be.record(rel, c)
        st.weight_release.append(rel)

        # D2H: the new token's entry, when its class lives on the host.
        if st.new_class in HOST_CLASSES:
            be.wait(d2h, ev_qkv)
            if st.new_class == "host_kv":
                with tr.span(d2h, "d2h", "store KV", l):
                    be.copy(self._rows(self.host_kv[l], p.host_kv, p.host_kv + 1), kv_new, d2h)
            else:
                with tr.span(d2h, "d2h", "store ACT", l):
                    be.copy(self._rows(self.host_act[l], p.host_act, p.host_act + 1), x, d2h)
        return x_out, rec_x

    def _step(self, st: _RunState, step: int, tr: _Tracer):
        """Enqueues one decode step; returns an event on the compute stream after its last layer."""
        x, rec_x = st.x0, st.rec_x0
        with self.be.stream_context(self.compute):
            for l in range(self.layers):
                x, rec_x = self._layer(st, step * self.layers + l, l, x, rec_x, tr)
        end = self.be.event(timing=True)
        self.be.record(end, self.compute)
        return end

    def measure(self, st: _RunState, warmup: int, repeats: int):
        """Runs `warmup + repeats + 1` decode steps back to back (a layer's loads may overlap the
        previous step, as in a running engine) and returns the step times (the intervals between
        the ends of consecutive steps, for the `repeats` timed ones) and the timeline rows of the
        last step: (step, layer, stream, op, start, end), seconds from that step's first event."""
        be = self.be
        t0 = be.event(timing=True)
        be.record(t0, self.compute)
        be.wait(self.h2d, t0)
        be.wait(self.d2h, t0)
        ends, traced = [], warmup + repeats
        tracer = _Tracer(be, False)
        for s in range(warmup + repeats + 1):
            if s == traced:
                tracer = _Tracer(be, True)
            ends.append(self._step(st, s, tracer))
        be.synchronize()
        marks = [t0] + ends
        steps = [max(be.elapsed(marks[i], marks[i + 1]), 1e-9) for i in range(warmup, warmup + repeats)]
        spans = [(name, op, layer, be.elapsed(t0, a), be.elapsed(t0, b)) for name, op, layer, a, b in tracer.spans]
        first = min((s for _, _, _, s, _ in spans), default=0.0)
        timeline = [(traced, layer, name, op, max(s - first, 0.0), max(e_ - first, s - first, 0.0))
                    for name, op, layer, s, e_ in spans]
        return steps, timeline
