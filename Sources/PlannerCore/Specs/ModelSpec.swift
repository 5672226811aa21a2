import Foundation

/// Element type of weights, activations and caches.
public enum DType: String, Codable, Sendable, CaseIterable {
    case fp16, bf16, fp32

    public var bytes: Int {
        switch self {
        case .fp16, .bf16: 2
        case .fp32: 4
        }
    }
}

/// The feed-forward block of a decoder layer.
public enum FFNKind: String, Codable, Sendable {
    /// Two matrices with an element-wise activation between them (OPT: fc1, ReLU, fc2).
    case relu2 = "two-matrix"
    /// Three matrices, a gated activation (Llama, Mistral: gate and up, SiLU, down).
    case gated3 = "gated"

    public var matrices: Int { self == .relu2 ? 2 : 3 }
}

/// The shape of a decoder-only transformer, as far as time and memory depend on it.
///
///     let m = try ModelCatalog.model(named: "opt-13b")
///     m.kvBytesPerToken   // 2 * 40 * 128 * 2 = 20480 bytes per layer per token
///     m.actBytesPerToken  // 5120 * 2 = 10240 bytes: half of the KV entry for a multi-head model
public struct ModelSpec: Codable, Sendable, Equatable {
    public var name: String
    public var layers: Int
    public var hidden: Int
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int
    public var ffnSize: Int
    public var ffnKind: FFNKind
    public var vocab: Int
    public var dtype: DType
    /// Longest context the model was trained or extended for.
    public var maxContext: Int
    /// Linear layers carry bias vectors (OPT).
    public var bias: Bool
    /// The output projection shares the token-embedding matrix (OPT), or has its own (Llama).
    public var tiedEmbeddings: Bool
    /// Learned absolute position embeddings (OPT) rather than rotary (no weights).
    public var learnedPositions: Bool
    /// Where the shape comes from.
    public var source: String
    /// Bias vectors on the Q, K and V projections only (Qwen2/2.5: `Qwen2Attention`, `bias=True` on
    /// q_proj, k_proj, v_proj and not on o_proj), when `bias` is off.
    public var qkvBias = false
    /// A per-head RMSNorm of Q and of K before rotary (Qwen3: `q_norm`, `k_norm`, headDim weights each).
    public var qkNorm = false
    /// The sparse FFN of a mixture-of-experts model (nil: a dense FFN of `ffnSize`). For such a
    /// model `ffnSize` is one routed expert's width.
    public var moe: MoESpec? = nil
    /// Sliding-window attention on some or all layers (nil: every layer attends to the whole context).
    public var slidingWindow: SlidingWindow? = nil
    /// A second norm on each block's output besides the one on its input (Gemma 2 and 3:
    /// `post_attention_layernorm` and `post_feedforward_layernorm` beside `input_layernorm` and
    /// `pre_feedforward_layernorm`, transformers `modeling_gemma2.py`, `modeling_gemma3.py`).
    public var postNorms = false
    /// A bias on the attention's output projection besides Q/K/V's (`qkvBias`), and one learned
    /// sink logit per head (gpt-oss: `o_proj` bias and `sinks`, `modeling_gpt_oss.py`).
    public var outputBias = false
    public var attentionSinks = false
    /// Multi-head latent attention in place of per-head K and V projections (DeepSeek); `heads`
    /// and `headDim` are then the query heads and the value head width.
    public var mla: LatentAttention? = nil
    /// A quantised checkpoint's weight format (nil: every weight in `dtype`).
    public var weightFormat: WeightFormat? = nil
    /// Bytes of one cached K or V element when the cache is stored narrower than `dtype` (an fp8
    /// KV cache: 1); nil: `dtype`'s.
    public var kvCacheElementBytes: Int? = nil

    public init(name: String, layers: Int, hidden: Int, heads: Int, kvHeads: Int, headDim: Int, ffnSize: Int,
                ffnKind: FFNKind, vocab: Int, dtype: DType, maxContext: Int, bias: Bool, tiedEmbeddings: Bool,
                learnedPositions: Bool, source: String, qkvBias: Bool = false, qkNorm: Bool = false, moe: MoESpec? = nil,
                slidingWindow: SlidingWindow? = nil, postNorms: Bool = false, weightFormat: WeightFormat? = nil) {
        self.name = name; self.layers = layers; self.hidden = hidden; self.heads = heads; self.kvHeads = kvHeads
        self.headDim = headDim; self.ffnSize = ffnSize; self.ffnKind = ffnKind; self.vocab = vocab; self.dtype = dtype
        self.maxContext = maxContext; self.bias = bias; self.tiedEmbeddings = tiedEmbeddings
        self.learnedPositions = learnedPositions; self.source = source; self.qkvBias = qkvBias; self.qkNorm = qkNorm
        self.moe = moe
        self.slidingWindow = slidingWindow
        self.postNorms = postNorms
        self.weightFormat = weightFormat
    }

    enum CodingKeys: String, CodingKey {
        case name, layers, hidden, heads, kvHeads, headDim, ffnSize, ffnKind, vocab, dtype, maxContext, bias, tiedEmbeddings,
             learnedPositions, source, qkvBias, qkNorm, moe, slidingWindow, postNorms, weightFormat, kvCacheElementBytes,
             outputBias, attentionSinks, mla
    }

    /// `qkvBias`, `qkNorm`, `moe`, `slidingWindow`, `postNorms`, `weightFormat` and
    /// `kvCacheElementBytes` may be left out (false, false, dense, none, false, none, none), so
    /// that model files written before them read.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(name: try c.decode(String.self, forKey: .name), layers: try c.decode(Int.self, forKey: .layers),
                  hidden: try c.decode(Int.self, forKey: .hidden), heads: try c.decode(Int.self, forKey: .heads),
                  kvHeads: try c.decode(Int.self, forKey: .kvHeads), headDim: try c.decode(Int.self, forKey: .headDim),
                  ffnSize: try c.decode(Int.self, forKey: .ffnSize), ffnKind: try c.decode(FFNKind.self, forKey: .ffnKind),
                  vocab: try c.decode(Int.self, forKey: .vocab), dtype: try c.decode(DType.self, forKey: .dtype),
                  maxContext: try c.decode(Int.self, forKey: .maxContext), bias: try c.decode(Bool.self, forKey: .bias),
                  tiedEmbeddings: try c.decode(Bool.self, forKey: .tiedEmbeddings),
                  learnedPositions: try c.decode(Bool.self, forKey: .learnedPositions), source: try c.decode(String.self, forKey: .source),
                  qkvBias: try c.decodeIfPresent(Bool.self, forKey: .qkvBias) ?? false,
                  qkNorm: try c.decodeIfPresent(Bool.self, forKey: .qkNorm) ?? false,
                  moe: try c.decodeIfPresent(MoESpec.self, forKey: .moe),
                  slidingWindow: try c.decodeIfPresent(SlidingWindow.self, forKey: .slidingWindow),
                  postNorms: try c.decodeIfPresent(Bool.self, forKey: .postNorms) ?? false,
                  weightFormat: try c.decodeIfPresent(WeightFormat.self, forKey: .weightFormat))
        kvCacheElementBytes = try c.decodeIfPresent(Int.self, forKey: .kvCacheElementBytes)
        outputBias = try c.decodeIfPresent(Bool.self, forKey: .outputBias) ?? false
        attentionSinks = try c.decodeIfPresent(Bool.self, forKey: .attentionSinks) ?? false
        mla = try c.decodeIfPresent(LatentAttention.self, forKey: .mla)
    }

    public var bytesPerElement: Int { dtype.bytes }
    /// Width of the query projection output, `heads * headDim`.
    public var qDim: Int { heads * headDim }
    /// Width of one of K or V, `kvHeads * headDim`; under latent attention half the cached
    /// latent and rotary key, so that `2 * kvDim` is what a token caches.
    public var kvDim: Int { mla.map { $0.cachedElements / 2 } ?? kvHeads * headDim }
    /// A multi-head model keeps one K/V head per query head; a grouped-query model shares them.
    public var isGroupedQuery: Bool { kvHeads < heads }

    /// Elements of the attention block: Q, K, V and output projections (and biases, norm).
    public var attentionWeightElements: Int {
        if let mla { return mla.matrixElements(hidden: hidden, heads: heads) + mla.innerNormElements + hidden + (postNorms ? hidden : 0) }
        let matrices = hidden * qDim + 2 * hidden * kvDim + qDim * hidden
        let biases = (bias ? qDim + 2 * kvDim + hidden : qkvBias ? qDim + 2 * kvDim : 0) + (outputBias && !bias ? hidden : 0)
            + (attentionSinks ? heads : 0)
        let norm = (bias ? 2 * hidden : hidden) + (qkNorm ? 2 * headDim : 0) + (postNorms ? hidden : 0)
        return matrices + biases + norm
    }

    /// Elements of the feed-forward block (and biases, norm): for a mixture of experts, every
    /// expert stored, the router and the shared expert.
    public var ffnWeightElements: Int {
        let matrices = ffnMatrixElements
        var biases = bias ? (ffnKind.matrices - 1) * ffnSize + hidden : 0
        if let moe, moe.expertBias {
            biases += moe.experts * (moe.expertElements(hidden: hidden) - moe.expertMatrixElements(hidden: hidden)) + moe.experts
        } else if let moe, moe.routerBias {
            biases += moe.experts
        }
        let norm = (bias ? 2 * hidden : hidden) + (postNorms ? hidden : 0)
        return matrices + biases + norm
    }

    /// Elements of the attention block's matrices alone (what 4-bit compression covers; FlexGen
    /// never compresses 1-D tensors, flex_opt.py 104-109).
    public var attentionMatrixElements: Int {
        mla.map { $0.matrixElements(hidden: hidden, heads: heads) } ?? hidden * qDim + 2 * hidden * kvDim + qDim * hidden
    }
    /// Elements of the FFN block's matrices alone.
    public var ffnMatrixElements: Int {
        guard let moe else { return ffnKind.matrices * hidden * ffnSize }
        return moe.experts * moe.expertMatrixElements(hidden: hidden) + moe.alwaysReadMatrixElements(hidden: hidden)
    }

    /// Elements of the FFN block that `tokens` routed tokens read: all of a dense block; of a
    /// mixture of experts, the norm, router and shared expert and the expected distinct routed
    /// experts `MoESpec.expectedDistinctExperts(tokens:)`.
    public func ffnReadElements(tokens: Int) -> Double {
        guard let moe else { return Double(ffnWeightElements) }
        return Double(ffnWeightElements - moe.experts * moe.expertElements(hidden: hidden))
            + moe.expectedDistinctExperts(tokens: tokens) * Double(moe.expertElements(hidden: hidden))
    }

    /// Width of the attention's projected activations per token: Q, K and V (`qDim + 2 kvDim`);
    /// under latent attention the query, the latent, and the keys and values the prefill
    /// up-projects from it (`heads (nope + rope) + latent + rope + heads (nope + rope + value)`).
    public var attentionActivationWidth: Int {
        guard let a = mla else { return qDim + 2 * kvDim }
        return heads * (a.nopeHeadDim + a.ropeHeadDim) + a.cachedElements + heads * (a.nopeHeadDim + a.ropeHeadDim + a.valueHeadDim)
    }

    /// Width of the FFN's intermediate activations per token: `ffnSize`, or for a mixture of
    /// experts the `k` routed experts' and the shared expert's together.
    public var ffnActivationWidth: Int {
        guard let moe else { return ffnSize }
        return moe.activeExperts * moe.expertFFNSize + moe.sharedExpertFFNSize
    }

    /// Every parameter (elements, whatever their storage: a quantised checkpoint counts as its
    /// full-precision original).
    public var parameterCount: Double {
        Double(layers * attentionWeightElements + ffnElementsOverLayers) + embeddingBytes / Double(bytesPerElement)
    }

    /// Whether `layer`'s FFN is dense: every layer of a dense model, a mixture's leading
    /// `MoESpec.denseLayers`.
    public func hasDenseFFN(layer: Int) -> Bool { moe.map { layer < $0.denseLayers } ?? true }

    /// Layers with a sparse FFN.
    public var sparseLayers: Int { moe.map { max(0, layers - $0.denseLayers) } ?? 0 }

    /// Elements of a mixture's leading dense FFN layer (gate, up, down and its norms); 0 without.
    public var denseFFNWeightElements: Int {
        guard let moe, moe.denseLayers > 0 else { return 0 }
        return 3 * hidden * moe.denseFFNSize + hidden + (postNorms ? hidden : 0)
    }

    /// FFN elements summed over the layers (dense leading layers and sparse ones).
    var ffnElementsOverLayers: Int {
        guard let moe else { return layers * ffnWeightElements }
        let dense = min(moe.denseLayers, layers)
        return dense * denseFFNWeightElements + (layers - dense) * ffnWeightElements
    }

    /// Parameters one token runs through (elements, whatever their storage): all of a dense model;
    /// of a mixture of experts, every
    /// layer's attention, norms, router and shared expert, `k` routed experts, and the embeddings
    /// (the "active parameters" model cards give).
    public var activeParameters: Double {
        let idle = moe.map { ($0.experts - $0.activeExperts) * $0.expertElements(hidden: hidden) } ?? 0
        return Double(layers * attentionWeightElements + ffnElementsOverLayers - sparseLayers * idle) + embeddingBytes / Double(bytesPerElement)
    }

    /// The weight tensors of one block in the order an OPT checkpoint lists them (FlexGen's
    /// SelfAttention and MLP weight specs, flex_opt.py 284-305 and 480-493): name, elements, and
    /// whether it is a matrix. Llama-like shapes have no biases and one norm weight.
    public func tensors(_ block: WeightBlock) -> [(name: String, elements: Int, matrix: Bool)] {
        var t: [(String, Int, Bool)] = []
        switch block {
        case .attention where mla != nil:
            let a = mla!
            let qk = heads * (a.nopeHeadDim + a.ropeHeadDim)
            if let r = a.qLoraRank {
                t += [("q_a_proj", hidden * r, true), ("q_a_norm", r, false), ("q_b_proj", r * qk, true)]
            } else {
                t.append(("q_proj", hidden * qk, true))
            }
            t += [("kv_a_proj_with_mqa", hidden * a.cachedElements, true), ("kv_a_norm", a.kvLoraRank, false),
                  ("kv_b_proj", a.kvLoraRank * heads * (a.nopeHeadDim + a.valueHeadDim), true),
                  ("w_out", heads * a.valueHeadDim * hidden, true), ("w_ln", hidden, false)]
            if postNorms { t.append(("w_post_ln", hidden, false)) }
        case .attention:
            for (name, rows) in [("q", qDim), ("k", kvDim), ("v", kvDim)] {
                t.append(("w_\(name)", hidden * rows, true))
                if bias || qkvBias { t.append(("b_\(name)", rows, false)) }
            }
            if qkNorm { t += [("q_norm", headDim, false), ("k_norm", headDim, false)] }
            t.append(("w_out", qDim * hidden, true))
            if bias || outputBias { t.append(("b_out", hidden, false)) }
            if attentionSinks { t.append(("sinks", heads, false)) }
            t.append(("w_ln", hidden, false))
            if postNorms { t.append(("w_post_ln", hidden, false)) }
            if bias { t.append(("b_ln", hidden, false)) }
        case .ffn where moe != nil:
            let moe = moe!
            t.append(("w_router", hidden * moe.experts, true))
            if moe.expertBias { t.append(("b_router", moe.experts, false)) }
            for x in 0 ..< moe.experts {
                for name in ["w_gate", "wi", "wo"] { t.append(("expert\(x).\(name)", hidden * moe.expertFFNSize, true)) }
                if moe.expertBias { t += [("expert\(x).b_gate_up", 2 * moe.expertFFNSize, false), ("expert\(x).b_down", hidden, false)] }
            }
            if moe.sharedExpertFFNSize > 0 {
                for name in ["w_gate", "wi", "wo"] { t.append(("shared.\(name)", hidden * moe.sharedExpertFFNSize, true)) }
                if moe.sharedExpertGate { t.append(("shared.gate", hidden, true)) }
            }
            t.append(("w_ln", hidden, false))
            if postNorms { t.append(("w_post_ln", hidden, false)) }
        case .ffn:
            if ffnKind == .gated3 {
                t.append(("w_gate", hidden * ffnSize, true))
                if bias { t.append(("b_gate", ffnSize, false)) }
            }
            t.append(("wi", hidden * ffnSize, true))
            if bias { t.append(("bi", ffnSize, false)) }
            t.append(("wo", ffnSize * hidden, true))
            if bias { t.append(("bo", hidden, false)) }
            t.append(("w_ln", hidden, false))
            if postNorms { t.append(("w_post_ln", hidden, false)) }
            if bias { t.append(("b_ln", hidden, false)) }
        }
        return t.map { (name: $0.0, elements: $0.1, matrix: $0.2) }
    }

    /// Bytes one element of a block's matrices takes as stored: the quantised format's, or `dtype`'s.
    public func matrixBytesPerElement(_ block: WeightBlock) -> Double {
        guard let f = weightFormat, !(f.expertsOnly && block == .attention) else { return Double(bytesPerElement) }
        return f.bytesPerElement
    }

    /// Matrix elements of the FFN block that its format quantises: every matrix but the router,
    /// or the experts alone (`WeightFormat.expertsOnly`).
    var quantizedFFNMatrixElements: Int {
        guard let moe else { return ffnMatrixElements }
        let experts = moe.experts * moe.expertMatrixElements(hidden: hidden)
        return weightFormat?.expertsOnly == true ? experts : ffnMatrixElements - hidden * moe.experts
    }

    /// Bytes of a block as stored: its quantised matrices at `matrixBytesPerElement`, the rest in `dtype`.
    func storedBytes(_ block: WeightBlock) -> Double {
        let all = Double(block == .attention ? attentionWeightElements : ffnWeightElements)
        let e = Double(bytesPerElement)
        guard weightFormat != nil else { return all * e }
        let quantized = Double(block == .attention ? (weightFormat!.expertsOnly ? 0 : attentionMatrixElements) : quantizedFFNMatrixElements)
        return quantized * matrixBytesPerElement(block) + (all - quantized) * e
    }

    public var attentionWeightBytes: Double { storedBytes(.attention) }
    public var ffnWeightBytes: Double { storedBytes(.ffn) }
    /// Bytes of one routed expert as stored: its matrices in the checkpoint's format, its biases
    /// in `dtype` (0 for a dense model).
    public var expertBytes: Double {
        guard let moe else { return 0 }
        let matrices = moe.expertMatrixElements(hidden: hidden)
        return Double(matrices) * matrixBytesPerElement(.ffn) + Double(moe.expertElements(hidden: hidden) - matrices) * Double(bytesPerElement)
    }
    /// Bytes of a mixture's leading dense FFN layer as stored (0 without one).
    public var denseFFNWeightBytes: Double {
        let all = Double(denseFFNWeightElements)
        guard let moe, moe.denseLayers > 0 else { return 0 }
        let matrices = Double(3 * hidden * moe.denseFFNSize)
        let packed = weightFormat?.expertsOnly == true ? Double(bytesPerElement) : matrixBytesPerElement(.ffn)
        return matrices * packed + (all - matrices) * Double(bytesPerElement)
    }
    /// Bytes of `layer`'s FFN block as stored.
    public func ffnWeightBytes(layer: Int) -> Double { hasDenseFFN(layer: layer) && moe != nil ? denseFFNWeightBytes : ffnWeightBytes }
    /// Bytes of every layer's weights together.
    public var weightBytesOverLayers: Double {
        Double(layers) * attentionWeightBytes + (0 ..< layers).reduce(0) { $0 + ffnWeightBytes(layer: $1) }
    }
    /// Bytes of the largest layer (what a layer's weight buffer holds).
    public var largestLayerWeightBytes: Double {
        let dense = moe != nil && moe!.denseLayers > 0 ? denseFFNWeightBytes : 0
        return attentionWeightBytes + (moe != nil && sparseLayers == 0 ? dense : max(ffnWeightBytes, dense))
    }
    /// Bytes of one decoder layer's weights.
    public var layerWeightBytes: Double { attentionWeightBytes + ffnWeightBytes }
    /// Token embedding, learned positions, final norm and (if untied) the output head.
    public var embeddingBytes: Double {
        var e = vocab * hidden
        if learnedPositions { e += (maxContext + 2) * hidden }
        if !tiedEmbeddings { e += vocab * hidden }
        e += bias ? 2 * hidden : hidden
        return Double(e * bytesPerElement)
    }
    /// All weights.
    public var totalWeightBytes: Double { weightBytesOverLayers + embeddingBytes }

    /// KV cache bytes per token per layer: `2 * kvHeads * headDim` elements.
    public var kvBytesPerToken: Double { Double(2 * kvDim * (kvCacheElementBytes ?? bytesPerElement)) }
    /// Activation checkpoint bytes per token per layer: `hidden` elements (the layer's input).
    public var actBytesPerToken: Double { Double(hidden * bytesPerElement) }
    /// FLOPs to recompute one token's K and V at one layer from its activation checkpoint:
    /// the K/V projection alone, `2 * hidden * 2 * kvDim`.
    /// Under latent attention that projection is `kv_a_proj_with_mqa`, `2 * hidden * (kvLoraRank +
    /// rope)`: the same count, `2 * kvDim` being the cached width.
    public var actRecomputeFlopsPerToken: Double { Double(2 * hidden * 2 * kvDim) }

    /// Checks the shape; throws naming the first field that is out of range.
    public func validate(path: String = "model") throws {
        func positive(_ v: Int, _ field: String, max: Int = 1 << 24) throws {
            guard v >= 1, v <= max else {
                throw InputError(field: "\(path).\(field)", "must be an integer from 1 to \(max), got \(v)")
            }
        }
        try positive(layers, "layers", max: 1024)
        try positive(hidden, "hidden")
        try positive(heads, "heads", max: 4096)
        try positive(kvHeads, "kvHeads", max: 4096)
        try positive(headDim, "headDim", max: 4096)
        try positive(ffnSize, "ffnSize")
        try positive(vocab, "vocab", max: 1 << 22)
        try positive(maxContext, "maxContext", max: 1 << 24)
        guard heads % kvHeads == 0 else {
            throw InputError(field: "\(path).kvHeads", "must divide heads (\(heads)), got \(kvHeads)")
        }
        if let slidingWindow { try slidingWindow.validate(path: "\(path).slidingWindow") }
        if let mla { try mla.validate(path: "\(path).mla") }
        if let weightFormat {
            try weightFormat.validate(path: "\(path).weightFormat")
            if weightFormat.expertsOnly, moe == nil {
                throw InputError(field: "\(path).weightFormat", "quantises the experts only, but \(name) is not a mixture of experts")
            }
        }
        if let k = kvCacheElementBytes, ![1, 2, 4].contains(k) {
            throw InputError(field: "\(path).kvCacheElementBytes", "must be 1 (fp8), 2 or 4, got \(k)")
        }
        if let moe {
            try moe.validate(path: "\(path).moe")
            guard ffnKind == .gated3, !bias else {
                throw InputError(field: "\(path).moe", "experts are gated FFNs without biases (Mixtral, Qwen-MoE); this model has ffnKind \(ffnKind.rawValue)\(bias ? " with biases" : "")")
            }
            guard ffnSize == moe.expertFFNSize else {
                throw InputError(field: "\(path).ffnSize", "must equal moe.expertFFNSize (\(moe.expertFFNSize)) for a mixture of experts, got \(ffnSize)")
            }
        }
    }

    /// A copy with another layer count (for studies on a few layers of a large model).
    public func withLayers(_ n: Int) -> ModelSpec {
        var m = self
        m.layers = n
        return m
    }
}
