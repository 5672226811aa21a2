/// Builds the task graph of a plan: per layer, the copies on the host-to-device engine, the kernels on
/// the compute stream, and the write-backs on the device-to-host engine, with double buffering.
///
/// Per layer (and per micro-batch `j` for FlexGen's block schedule), in submission order:
/// - H2D: host ACT of `j = 0`, the attention weights, host KV of `j = 0`, the FFN weights, the hidden
///   state (FlexGen CPU activations), then the cache of micro-batches `j >= 1`. A weight load waits
///   until the layer two executions back has finished its FFN (its buffer is free); a cache load waits
///   for the attention that read the same buffer two micro-batch slots back, and for the latest
///   write-back of its layer (the entries it reads must be in host memory).
/// - Compute: token recomputation (needs all weights), K/V recomputation from GPU ACT (needs the
///   attention weights), from host ACT (also needs the ACT load), norm + QKV, concatenation of
///   GPU-resident KV into the attention buffer, attention (needs the KV load), output projection,
///   FFN (needs the FFN weights).
/// - D2H: the new token's KV (after QKV) or ACT checkpoint (the layer input, available at QKV),
///   and the hidden state after the FFN when activations live on the host.
/// After the last layer, the LM head (GPU-resident) produces the next token.
struct ScheduleBuilder {
    let plan: ExecutionPlan
    let cost: any CostModel
    var graph = TaskGraph()
    /// Last kernel of the last micro-batch of every layer execution so far.
    var weightRelease: [Int32] = []
    /// Last task reading each cache load buffer slot, per (layer execution, micro-batch).
    var cacheRelease: [Int32] = []
    /// Latest KV or ACT write-back per layer.
    var lastStore: [Int: Int32] = [:]
    /// Last hidden-state store per micro-batch (FlexGen CPU activations).
    var hiddenStored: [Int32]
    var heads: [Int32] = []
    /// State of an engine's unit pipeline (EngineSchedule.swift).
    var units = UnitPipeline()
    /// Set while the work of a mixture's dense leading layer is built (`ffnSeconds`).
    var denseFFN = false
    /// Set while the prefill is built: with `ExpertFetch.hostCPU` its many rows copy the touched
    /// experts to the GPU instead, as llama.cpp moves a large batch's host-resident matrix
    /// products to the GPU (ggml-cuda's `offload_op`, from 32 rows).
    var inPrefill = false

    init(plan: ExecutionPlan, cost: any CostModel, expectedTasks: Int) {
        self.plan = plan
        self.cost = cost
        hiddenStored = [Int32](repeating: -1, count: plan.microBatches)
        graph.reserveCapacity(expectedTasks)
    }

    var m: ModelSpec { plan.model }
    var e: Double { Double(m.bytesPerElement) }

    /// A task's duration alone and while a task of the other kind overlaps it (`CostModel.contentionFactor`).
    struct Cost {
        var alone: Double
        var shared: Double
        static let zero = Cost(alone: 0, shared: 0)
        static func + (a: Cost, b: Cost) -> Cost { Cost(alone: a.alone + b.alone, shared: a.shared + b.shared) }
    }

    func cost(_ op: Operation) -> Cost {
        let alone = cost.seconds(op)
        return Cost(alone: alone, shared: alone * cost.contentionFactor(op))
    }
    func h2d(_ bytes: Double) -> Cost { cost(.transfer(bytes: bytes, direction: .hostToDevice, memory: plan.hostMemory)) }
    func d2h(_ bytes: Double) -> Cost { cost(.transfer(bytes: bytes, direction: .deviceToHost, memory: plan.hostMemory)) }
    func norm(_ tokens: Int) -> Cost { cost(.elementwise(bytes: 2 * Double(tokens * m.hidden) * e)) }

    /// A GEMM by one of a block's weight matrices: packed when the checkpoint is quantised
    /// (`ModelSpec.weightFormat`), plain otherwise. A format that dequantises first
    /// (`WeightFormat.dequantizesFirst`) pays a kernel that reads the packed matrix and writes it
    /// in 16 bits (`k n (w + e)` bytes), then the plain GEMM.
    func linear(m rows: Int, n: Int, k: Int, _ block: WeightBlock) -> Cost {
        guard let f = m.weightFormat, !(f.expertsOnly && block == .attention) else { return cost(.gemm(m: rows, n: n, k: k)) }
        let w = m.matrixBytesPerElement(block)
        if f.dequantizesFirst(rows: rows) {
            return cost(.elementwise(bytes: Double(k) * Double(n) * (w + e))) + cost(.gemm(m: rows, n: n, k: k))
        }
        return cost(.packedGemm(m: rows, n: n, k: k, weightBytes: w))
    }

    /// Norm and Q/K/V projection of `tokens` rows. Under latent attention (`LatentAttention`): the
    /// query path (`q_a_proj`, its norm, `q_b_proj`, or one `q_proj`), `kv_a_proj_with_mqa` and the
    /// latent's norm, and the query's no-rotary part times the key half of `kv_b_proj`
    /// (`heads x nope x kvLoraRank`, as one GEMM of that many weights).
    func qkvSeconds(_ tokens: Int) -> Cost {
        guard let a = m.mla else { return norm(tokens) + linear(m: tokens, n: m.qDim + 2 * m.kvDim, k: m.hidden, .attention) }
        let qk = m.heads * (a.nopeHeadDim + a.ropeHeadDim)
        var c = norm(tokens)
        if let r = a.qLoraRank {
            c = c + linear(m: tokens, n: r, k: m.hidden, .attention) + cost(.elementwise(bytes: 2 * Double(tokens * r) * e))
                + linear(m: tokens, n: qk, k: r, .attention)
        } else {
            c = c + linear(m: tokens, n: qk, k: m.hidden, .attention)
        }
        return c + linear(m: tokens, n: a.cachedElements, k: m.hidden, .attention) + cost(.elementwise(bytes: 2 * Double(tokens * a.kvLoraRank) * e))
            + linear(m: tokens, n: m.heads * a.kvLoraRank, k: a.nopeHeadDim, .attention)
    }

    /// Output projection and residual add; under latent attention first the latent output times
    /// the value half of `kv_b_proj` (`heads x kvLoraRank x value`).
    func outSeconds(_ tokens: Int) -> Cost {
        let absorbed = m.mla.map { linear(m: tokens, n: m.heads * $0.valueHeadDim, k: $0.kvLoraRank, .attention) } ?? .zero
        return absorbed + linear(m: tokens, n: m.hidden, k: m.qDim, .attention) + cost(.elementwise(bytes: 3 * Double(tokens * m.hidden) * e))
    }

    /// Decode attention of `batch` sequences over `context` entries: per K/V head, or over the
    /// shared latent under latent attention.
    func decodeAttentionSeconds(batch: Int, context: Int) -> Cost {
        if let a = m.mla { return cost(.latentAttention(batch: batch, heads: m.heads, latent: a.kvLoraRank, rope: a.ropeHeadDim, context: context)) }
        return cost(.decodeAttention(batch: batch, heads: m.heads, kvHeads: m.kvHeads, headDim: m.headDim, context: context))
    }

    /// Prefill attention of `seqs` sequences of `queries` new tokens over `context`; under latent
    /// attention the prompt's latents are first up-projected to full keys and values (`kv_b_proj`)
    /// and attention runs per head over `nope + rope`.
    func prefillAttentionSeconds(seqs: Int, queries: Int, context: Int) -> Cost {
        guard let a = m.mla else {
            return cost(.prefillAttention(batch: seqs, heads: m.heads, kvHeads: m.kvHeads, headDim: m.headDim, queries: queries, context: context))
        }
        return linear(m: seqs * context, n: m.heads * (a.nopeHeadDim + a.valueHeadDim), k: a.kvLoraRank, .attention)
            + cost(.prefillAttention(batch: seqs, heads: m.heads, kvHeads: m.heads, headDim: a.nopeHeadDim + a.ropeHeadDim, queries: queries, context: context))
    }

    /// Norm, FFN matrices, activation, residual add; for a mixture of experts the router and the
    /// experts together (`routerSeconds` + `expertsSeconds`).
    /// A mixture's leading dense layers (`MoESpec.denseLayers`) run a dense FFN of `denseFFNSize`
    /// (`denseFFN` is set while their work is built).
    func ffnSeconds(_ tokens: Int) -> Cost {
        if m.moe != nil, !denseFFN { return routerSeconds(tokens) + expertsSeconds(tokens) }
        let width = m.moe?.denseFFNSize ?? m.ffnSize
        let up: Cost
        switch m.ffnKind {
        case .relu2:
            up = linear(m: tokens, n: width, k: m.hidden, .ffn) + cost(.elementwise(bytes: 2 * Double(tokens * width) * e))
        case .gated3:
            up = linear(m: tokens, n: 2 * width, k: m.hidden, .ffn) + cost(.elementwise(bytes: 3 * Double(tokens * width) * e))
        }
        return norm(tokens) + up + linear(m: tokens, n: m.hidden, k: width, .ffn)
            + cost(.elementwise(bytes: 3 * Double(tokens * m.hidden) * e))
    }

    /// A mixture-of-experts layer's norm and router: `tokens x hidden` by `hidden x E` and the
    /// softmax and top-k over the `tokens x E` logits (read and written once).
    func routerSeconds(_ tokens: Int) -> Cost {
        guard let moe = m.moe else { return .zero }
        return norm(tokens) + cost(.gemm(m: tokens, n: moe.experts, k: m.hidden))
            + cost(.elementwise(bytes: 2 * Double(tokens * moe.experts) * e))
    }

    /// The experts of a mixture-of-experts layer: `D` expected distinct experts
    /// (`MoESpec.expectedDistinctExperts`) on `ceil(tokens * k / D)` rows each, run per expert or
    /// fused as the engine does (`EngineTraits.ExpertKernels`); the gather and scatter of the
    /// `tokens * k` routed rows; the shared expert (and its gate) on every row; the residual add.
    func expertsSeconds(_ tokens: Int) -> Cost {
        routedExpertsSeconds(tokens) + expertCombineSeconds(tokens)
    }

    /// A gated FFN of `width` on `rows` rows: gate and up, the activation, down.
    func gatedFFN(_ rows: Int, _ width: Int) -> Cost {
        linear(m: rows, n: 2 * width, k: m.hidden, .ffn) + cost(.elementwise(bytes: 3 * Double(rows * width) * e))
            + linear(m: rows, n: m.hidden, k: width, .ffn)
    }

    /// The routed experts alone, per expert or fused as the engine runs them.
    func routedExpertsSeconds(_ tokens: Int) -> Cost {
        guard let moe = m.moe, tokens > 0 else { return .zero }
        let distinct = moe.expectedDistinctExperts(tokens: tokens)
        let rows = Int((Double(tokens * moe.activeExperts) / distinct).rounded(.up))
        switch plan.engine.traits.expertKernels {
        case .perExpert:
            let one = gatedFFN(rows, moe.expertFFNSize)
            return Cost(alone: one.alone * distinct, shared: one.shared * distinct)
        case .fused:
            // One grouped GEMM a projection: as wide as the D experts together (their weight bytes
            // and FLOPs), the routed rows of one expert tall.
            let wide = Int((distinct * Double(moe.expertFFNSize)).rounded(.up))
            return linear(m: rows, n: 2 * wide, k: m.hidden, .ffn) + cost(.elementwise(bytes: 3 * Double(tokens * moe.activeExperts * moe.expertFFNSize) * e))
                + linear(m: rows, n: m.hidden, k: wide, .ffn)
        }
    }

    /// What a mixture's layer runs on the GPU besides its routed experts and router: the gather
    /// and scatter of the `tokens * k` routed rows, the shared expert (and its gate) on every row,
    /// the residual add. With the experts on the host CPU this is the GPU's whole FFN kernel.
    func expertCombineSeconds(_ tokens: Int) -> Cost {
        guard let moe = m.moe, tokens > 0 else { return .zero }
        var c = cost(.elementwise(bytes: 3 * Double(tokens * moe.activeExperts * m.hidden) * e))
        if moe.sharedExpertFFNSize > 0 {
            c = c + gatedFFN(tokens, moe.sharedExpertFFNSize)
            if moe.sharedExpertGate { c = c + cost(.gemm(m: tokens, n: 1, k: m.hidden)) }
        }
        return c + cost(.elementwise(bytes: 3 * Double(tokens * m.hidden) * e))
    }

    /// Whether this plan copies a mixture of experts' routed experts after the router, or runs
    /// them on the host CPU; either way the router runs alone first.
    var expertsOnDemand: Bool { m.moe != nil && plan.expertFetch != .prefetchAll && plan.weights.tiers(.ffn).streamed > 0 }
    var expertsOnHost: Bool { expertsOnDemand && plan.expertFetch == .hostCPU && !inPrefill }

    /// The routed experts of `tokens` rows on the host CPU (`ExpertFetch.hostCPU`): the touched
    /// experts' weights read once from host memory, their FLOPs at the CPU's rate.
    func hostExpertsSeconds(_ tokens: Int) -> Cost {
        guard let moe = m.moe, let cpu = plan.hardware.hostCPU, tokens > 0 else { return .zero }
        let bytes = moe.expectedDistinctExperts(tokens: tokens) * m.expertBytes
        let flops = 2 * Double(tokens * moe.activeExperts) * Double(moe.expertMatrixElements(hidden: m.hidden))
        let t = max(bytes / cpu.memoryBytesPerSecond, flops / cpu.fp32FlopsPerSecond)
        return Cost(alone: t, shared: t)
    }


    /// The FFN kernels of `rows` rows: one FFN kernel that needs the block's weights, or with
    /// experts copied on demand the router (needs the router, copied ahead) and then the experts
    /// (need the routed experts' copy, issued after the router of the layer's first micro-batch).
    func ffnKernels(_ rows: Int) -> [Kernel] {
        guard expertsOnDemand, !denseFFN else { return [Kernel(kind: .ffn, seconds: ffnSeconds(rows), needs: [.ffnWeights])] }
        return [Kernel(kind: .router, seconds: routerSeconds(rows), needs: [.ffnWeights]),
                Kernel(kind: .ffn, seconds: expertsOnHost ? expertCombineSeconds(rows) : expertsSeconds(rows), needs: [.expertWeights])]
    }

    /// Bytes of the FFN block copied ahead of the layer, and the routed experts copied after the
    /// router for `tokens` tokens (0 unless on demand); both before the streamed share is applied.
    func ffnCopyBytes(tokens: Int, layer: Int) -> (ahead: Double, afterRouter: Double) {
        if m.moe != nil, m.hasDenseFFN(layer: layer) { return (m.denseFFNWeightBytes, 0) }
        guard expertsOnDemand, let moe = m.moe else { return (m.ffnWeightBytes, 0) }
        // On the host CPU the routed experts never cross the link.
        return (m.ffnWeightBytes - Double(moe.experts) * m.expertBytes, expertsOnHost ? 0 : moe.expectedDistinctExperts(tokens: tokens) * m.expertBytes)
    }

    /// K/V projection (after the norm) of `tokens` activation checkpoints.
    func actRecomputeSeconds(_ tokens: Int) -> Cost {
        tokens == 0 ? .zero : norm(tokens) + linear(m: tokens, n: 2 * m.kvDim, k: m.hidden, .attention)
    }

    func headSeconds() -> Cost {
        norm(plan.batch) + cost(.gemm(m: plan.batch, n: m.vocab, k: m.hidden))
    }

    /// What a layer needs the GPU to have before a kernel may start.
    struct Needs: OptionSet {
        let rawValue: Int
        static let attentionWeights = Needs(rawValue: 1)
        static let ffnWeights = Needs(rawValue: 2)
        static let actLoad = Needs(rawValue: 4)
        static let kvLoad = Needs(rawValue: 8)
        static let hiddenLoad = Needs(rawValue: 16)
        /// The routed experts copied after the router (`ExpertFetch.onDemand`).
        static let expertWeights = Needs(rawValue: 32)
    }

    struct Kernel {
        var kind: TaskKind
        var seconds: Cost
        var needs: Needs
    }

    /// One micro-batch's work at one layer: its loads, its kernels in stream order, and its
    /// write-backs (issued once the QKV kernel has run; the hidden state after the last kernel).
    struct LayerWork {
        /// Rows (tokens) the work's kernels process.
        var rows = 0
        var actLoadBytes = 0.0
        var kvLoadBytes = 0.0
        var hiddenBytes = 0.0
        var kernels: [Kernel] = []
        var stores: [(kind: TaskKind, bytes: Double)] = []
    }

    /// Adds one layer execution, `works` holding each micro-batch's (or prefill chunk's) work. H2D
    /// order: micro-batch 0's ACT, the attention weights, its KV, the FFN weights, its hidden state;
    /// then each further micro-batch's loads just before its kernels, so that ids stay a topological
    /// order. Cache loads wait for their buffer and for the write-backs of the same layer.
    mutating func addLayer(_ works: [LayerWork], layer: Int, step: Int) {
        let g = weightRelease.count
        let wDep: Int32 = g >= 2 ? weightRelease[g - 2] : -1
        let streamed = plan.weights.streamedFraction
        var attentionWeights: Int32 = -1, ffnWeights: Int32 = -1, expertWeights: Int32 = -1
        let ffnCopy = ffnCopyBytes(tokens: works.reduce(0) { $0 + $1.rows }, layer: layer)
        var last: Int32 = -1
        for (j, w) in works.enumerated() {
            let slot = cacheRelease.count
            let cDep: Int32 = slot >= 2 ? cacheRelease[slot - 2] : -1
            var actLoad: Int32 = -1, kvLoad: Int32 = -1, hiddenLoad: Int32 = -1
            // A load reads entries earlier steps wrote back at this layer: it waits for the latest store
            // of the layer (the D2H engine is in order, so every earlier store is done too).
            let written: Int32 = lastStore[layer] ?? -1
            if w.actLoadBytes > 0 {
                actLoad = graph.add(.hostToDevice, .actLoad, cost: h2d(w.actLoadBytes), bytes: w.actLoadBytes, layer: layer, step: step, deps: [cDep, written])
            }
            if j == 0, streamed > 0 {
                let bytes = streamed * m.attentionWeightBytes
                attentionWeights = graph.add(.hostToDevice, .weightLoad, cost: h2d(bytes), bytes: bytes, layer: layer, step: step, deps: [wDep])
            }
            if w.kvLoadBytes > 0 {
                kvLoad = graph.add(.hostToDevice, .kvLoad, cost: h2d(w.kvLoadBytes), bytes: w.kvLoadBytes, layer: layer, step: step, deps: [cDep, written])
            }
            if j == 0, streamed > 0 {
                let bytes = streamed * ffnCopy.ahead
                ffnWeights = graph.add(.hostToDevice, .weightLoad, cost: h2d(bytes), bytes: bytes, layer: layer, step: step, deps: [wDep])
            }
            // The hidden state waits for the previous layer to finish; queued after the weights so that
            // they still prefetch while that layer computes (FlexGen loads weights ahead of activations).
            if plan.hiddenOnHost, hiddenStored[j] >= 0 {
                hiddenLoad = graph.add(.hostToDevice, .hiddenLoad, cost: h2d(w.hiddenBytes), bytes: w.hiddenBytes, layer: layer, step: step, deps: [hiddenStored[j]])
            }
            var qkv: Int32 = -1
            var release: Int32 = -1
            for k in w.kernels {
                var deps: [Int32] = []
                if k.needs.contains(.attentionWeights) { deps.append(attentionWeights) }
                if k.needs.contains(.ffnWeights) { deps.append(ffnWeights) }
                if k.needs.contains(.actLoad) { deps.append(actLoad) }
                if k.needs.contains(.kvLoad) { deps.append(kvLoad) }
                if k.needs.contains(.hiddenLoad) { deps.append(hiddenLoad) }
                if k.needs.contains(.expertWeights) { deps.append(expertWeights) }
                last = graph.add(.compute, k.kind, cost: k.seconds, bytes: 0, layer: layer, step: step, deps: deps)
                if k.kind == .qkv { qkv = last }
                if k.kind == .router, j == 0, ffnCopy.afterRouter > 0 {
                    // The experts the layer's tokens route to, known once the router has run.
                    let bytes = streamed * ffnCopy.afterRouter
                    expertWeights = graph.add(.hostToDevice, .weightLoad, cost: h2d(bytes), bytes: bytes, layer: layer, step: step, deps: [last, wDep])
                } else if k.kind == .router, j == 0, expertsOnHost {
                    // The routed rows to the host, the experts on its CPU, their outputs back.
                    let rows = works.reduce(0) { $0 + $1.rows }
                    let bytes = Double(rows * m.hidden) * e
                    let out = graph.add(.deviceToHost, .attentionExchange, cost: d2h(bytes), bytes: bytes, layer: layer, step: step, deps: [last])
                    let cpu = graph.add(.hostCPU, .hostExperts, cost: hostExpertsSeconds(rows), bytes: 0, layer: layer, step: step, deps: [out])
                    expertWeights = graph.add(.hostToDevice, .attentionExchange, cost: h2d(bytes), bytes: bytes, layer: layer, step: step, deps: [cpu])
                }
                if k.kind == .attention || k.needs.contains(.actLoad) || k.needs.contains(.kvLoad) { release = last }
            }
            cacheRelease.append(release)
            for s in w.stores where s.bytes > 0 {
                lastStore[layer] = graph.add(.deviceToHost, s.kind, cost: d2h(s.bytes), bytes: s.bytes, layer: layer, step: step, deps: [qkv])
            }
            if plan.hiddenOnHost {
                hiddenStored[j] = graph.add(.deviceToHost, .hiddenStore, cost: d2h(w.hiddenBytes), bytes: w.hiddenBytes,
                                            layer: layer, step: step, deps: [last])
            }
        }
        weightRelease.append(last)
    }

    mutating func addHead(step: Int) {
        heads.append(graph.add(.compute, .head, cost: plan.includeHead ? headSeconds() : .zero, bytes: 0, layer: -1, step: step, deps: []))
    }

    /// Most prompt rows one group of prefill kernels processes: the prefill runs in chunks of whole
    /// sequences so that its working set stays bounded, as engines do (vLLM's default
    /// `max_num_batched_tokens` for long prompts is 8,192). With FlexGen's CPU activations the chunks
    /// are its GPU batches.
    static let prefillChunkRows = 8192

    /// Sequences per prefill chunk, for each chunk of a micro-batch of `gb` sequences.
    static func prefillChunks(microBatch gb: Int, prompt: Int, fixed: Bool) -> [Int] {
        if fixed { return [gb] }
        let perChunk = max(1, min(gb, prefillChunkRows / max(prompt, 1)))
        var left = gb
        var chunks: [Int] = []
        while left > 0 {
            chunks.append(min(perChunk, left))
            left -= perChunk
        }
        return chunks
    }

    /// The prefill of `prompt` tokens per sequence; `split` is the prompt's placement. Every prompt
    /// token's K and V are computed; the host classes are written back, recomputed ones dropped.
    mutating func prefill(prompt: Int, split: TokenPlacement, step: Int) {
        inPrefill = true
        defer { inPrefill = false }
        var variants: [LayerVariant: [LayerWork]] = [:]
        for layer in 0 ..< m.layers {
            let v = variant(layer)
            if variants[v] == nil {
                denseFFN = v.denseFFN
                variants[v] = prefillWorks(prompt: prompt, split: split, window: v.local ? m.slidingWindow!.tokens : nil)
                denseFFN = false
            }
            addLayer(variants[v]!, layer: layer, step: step)
        }
        addHead(step: step)
    }

    /// What sets one layer's work apart from another's: a sliding window's local layer, a
    /// mixture's dense leading layer.
    struct LayerVariant: Hashable {
        var local: Bool
        var denseFFN: Bool
    }

    func variant(_ layer: Int) -> LayerVariant {
        LayerVariant(local: m.slidingWindow?.isLocal(layer: layer) == true, denseFFN: m.moe != nil && m.hasDenseFFN(layer: layer))
    }

    /// The prefill's work at one layer. With a sliding window of `W` tokens (a local layer) each
    /// query attends to at most `W` positions, `W P - W^2 / 2` query-key pairs in all for `P >= W`,
    /// given to the cost model as the causal block whose count is the same (`context` such that
    /// `P (context - P / 2)` equals it); only the last `W` tokens' entries are written back.
    func prefillWorks(prompt: Int, split: TokenPlacement, window: Int?) -> [LayerWork] {
        var attended = prompt
        var kept = split
        if let w = window, w < prompt {
            let pairs = Double(w) * Double(prompt) - Double(w) * Double(w) / 2
            attended = Int((pairs / Double(prompt) + Double(prompt) / 2).rounded())
            kept = .apportion(w, like: split)
        }
        var works: [LayerWork] = []
        for _ in 0 ..< plan.microBatches {
            for seqs in Self.prefillChunks(microBatch: plan.microBatchSize, prompt: prompt, fixed: plan.hiddenOnHost) {
                let rows = seqs * prompt
                var w = LayerWork()
                w.rows = rows
                w.hiddenBytes = Double(rows * m.hidden) * e
                w.kernels = [
                    Kernel(kind: .qkv, seconds: qkvSeconds(rows), needs: [.attentionWeights, .hiddenLoad]),
                    Kernel(kind: .attention, seconds: prefillAttentionSeconds(seqs: seqs, queries: prompt, context: attended), needs: []),
                    Kernel(kind: .outProjection, seconds: outSeconds(rows), needs: []),
                ] + ffnKernels(rows)
                w.stores = [(.kvStore, Double(seqs * kept.hostKV) * m.kvBytesPerToken),
                            (.actStore, Double(seqs * kept.hostAct) * m.actBytesPerToken)]
                works.append(w)
            }
        }
        return works
    }

    /// One decode step with `cached` tokens per sequence already in the cache; the step's own entry
    /// is written as `newToken`.
    /// A local layer of a sliding window attends to the last `W - 1` cached entries and the new
    /// one (`TokenPlacement.cached(atLayer:of:reserve:)`).
    mutating func decode(cached: TokenPlacement, newToken: TokenClass, step: Int) {
        var variants: [LayerVariant: [LayerWork]] = [:]
        for layer in 0 ..< m.layers {
            let v = variant(layer)
            if variants[v] == nil {
                denseFFN = v.denseFFN
                let seen = v.local ? cached.cached(atLayer: layer, of: m, reserve: 1) : cached
                variants[v] = [LayerWork](repeating: decodeWork(cached: seen, newToken: newToken), count: plan.microBatches)
                denseFFN = false
            }
            addLayer(variants[v]!, layer: layer, step: step)
        }
        addHead(step: step)
    }

    /// One micro-batch's work at one layer of a decode step.
    func decodeWork(cached: TokenPlacement, newToken: TokenClass) -> LayerWork {
        let gb = plan.microBatchSize
        let context = cached.total
        var w = LayerWork()
        w.rows = gb
        w.actLoadBytes = Double(gb * cached.hostAct) * m.actBytesPerToken
        w.kvLoadBytes = Double(gb * cached.hostKV) * m.kvBytesPerToken
        w.hiddenBytes = Double(gb * m.hidden) * e
        let r = cached.recompute
        if r > 0 {
            let seconds = qkvSeconds(gb * r)
                + prefillAttentionSeconds(seqs: gb, queries: r, context: r)
                + outSeconds(gb * r) + ffnSeconds(gb * r)
            w.kernels.append(Kernel(kind: .tokenRecompute, seconds: seconds, needs: [.attentionWeights, .ffnWeights]))
        }
        if cached.gpuAct > 0 {
            w.kernels.append(Kernel(kind: .actRecomputeGPU, seconds: actRecomputeSeconds(gb * cached.gpuAct), needs: [.attentionWeights]))
        }
        if cached.hostAct > 0 {
            w.kernels.append(Kernel(kind: .actRecomputeHost, seconds: actRecomputeSeconds(gb * cached.hostAct), needs: [.actLoad, .attentionWeights]))
        }
        w.kernels.append(Kernel(kind: .qkv, seconds: qkvSeconds(gb), needs: [.attentionWeights, .hiddenLoad]))
        if cached.gpuKV > 0, cached.gpuKV < context {
            w.kernels.append(Kernel(kind: .concat, seconds: cost(.deviceCopy(bytes: Double(gb * cached.gpuKV) * m.kvBytesPerToken)), needs: []))
        }
        w.kernels.append(Kernel(kind: .attention, seconds: decodeAttentionSeconds(batch: gb, context: context + 1),
                                needs: w.kvLoadBytes > 0 ? [.kvLoad] : []))
        w.kernels.append(Kernel(kind: .outProjection, seconds: outSeconds(gb), needs: []))
        w.kernels += ffnKernels(gb)
        switch newToken {
        case .hostKV: w.stores = [(.kvStore, Double(gb) * m.kvBytesPerToken)]
        case .hostAct: w.stores = [(.actStore, Double(gb) * m.actBytesPerToken)]
        default: break
        }
        return w
    }

    /// Seconds one layer of a decode step keeps the H2D engine and the compute stream busy, if
    /// nothing waited: the two sides HybridServe's ratio search balances.
    func decodeLayerSeconds(cached: TokenPlacement, newToken: TokenClass) -> (link: Double, compute: Double) {
        let w = decodeWork(cached: cached, newToken: newToken)
        let streamed = plan.weights.streamedFraction
        let mb = Double(plan.microBatches)
        let ffn = ffnCopyBytes(tokens: plan.batch, layer: m.layers - 1)
        let link = h2d(streamed * m.attentionWeightBytes).alone + h2d(streamed * (ffn.ahead + ffn.afterRouter)).alone
            + mb * (h2d(w.actLoadBytes).alone + h2d(w.kvLoadBytes).alone + (plan.hiddenOnHost ? h2d(w.hiddenBytes).alone : 0))
        let compute = mb * w.kernels.reduce(0) { $0 + $1.seconds.alone }
        return (link, compute)
    }
}

extension TaskGraph {
    /// Adds a task with both of its durations (alone and overlapped).
    @discardableResult
    mutating func add(_ r: Resource, _ k: TaskKind, cost c: ScheduleBuilder.Cost, bytes b: Double, layer l: Int, step st: Int, deps d: [Int32]) -> Int32 {
        add(r, k, seconds: c.alone, shared: max(c.alone, c.shared), bytes: b, layer: l, step: st, deps: d)
    }
}
