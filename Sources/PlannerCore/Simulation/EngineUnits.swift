/// The fetch units of an engine's prefill and decode steps: what each unit copies, computes and
/// writes back, from the plan's placement, compression and the engine's traits (EngineSchedule.swift
/// issues them).
extension ScheduleBuilder {
    /// One part of a layer's weights that is fetched as one unit: its tensors and the kernels that
    /// need them.
    struct Portion {
        var block: WeightBlock
        /// Share of the block's elements in this portion.
        var share: Double
        var tensors: Int
        /// The portion's matrices: what compression stores quantised (FlexGen leaves tensors of one
        /// dimension, biases and norms, uncompressed: `init_weight_list`, flex_opt.py).
        var matrices: Int
        var matrixElements: Double
    }

    /// The portions a layer is cut into for the engine's fetch unit, in execution order: the QKV
    /// part (norm, Q, K, V), the output projection, the FFN (modules); the attention and the FFN
    /// blocks (blocks); or the whole layer as one portion per block, fetched together (layers).
    func portions() -> [[Portion]] {
        func portion(_ b: WeightBlock, _ names: Set<String>?) -> Portion {
            let all = m.tensors(b)
            let chosen = names.map { n in all.filter { n.contains($0.name) } } ?? all
            let total = Double(all.reduce(0) { $0 + $1.elements })
            let elements = Double(chosen.reduce(0) { $0 + $1.elements })
            let matrices = chosen.filter(\.matrix)
            return Portion(block: b, share: elements / total, tensors: chosen.count, matrices: matrices.count,
                           matrixElements: Double(matrices.reduce(0) { $0 + $1.elements }))
        }
        switch traits.fetchUnit {
        case .layer: return [[portion(.attention, nil), portion(.ffn, nil)]]
        case .block: return [[portion(.attention, nil)], [portion(.ffn, nil)]]
        case .module: return [[portion(.attention, ["w_q", "b_q", "w_k", "b_k", "w_v", "b_v", "w_ln", "b_ln"])],
                              [portion(.attention, ["w_out", "b_out"])], [portion(.ffn, nil)]]
        }
    }

    /// Fills a unit's weight copies and dequantisation from its portions; weights are copied once
    /// per layer (micro-batch 0), dequantised per micro-batch where the engine does.
    func withWeights(_ unit: Unit, _ parts: [Portion]) -> Unit {
        var u = unit
        var tensors = 0
        var elements = 0.0
        for p in parts {
            let t = plan.weights.tiers(p.block)
            let bytes = plan.blockBytes(p.block) * p.share
            if u.microBatch == 0 {
                u.weightHostBytes += bytes * t.host
                u.weightDiskBytes += bytes * t.disk
            }
            if t.streamed > 0 { tensors += traits.copyPerTensor ? max(1, Int((Double(p.tensors) * t.streamed).rounded(.up))) : 1 }
            elements += plan.compression.weights == nil ? 0 : p.matrixElements
        }
        u.weightTensors = max(1, tensors)
        if elements > 0, u.microBatch == 0 || traits.dequantPerMicroBatch {
            u.dequant = dequantize(elements, tensors: parts.reduce(0) { $0 + $1.matrices })
        }
        return u
    }

    /// The embedding units of a step: the input embedding before the first layer (when the engine
    /// copies it) and the head after the last.
    func embeddingUnit(input: Bool, rows: Int) -> Unit? {
        let tiers = input ? plan.embeddingPlacement.input : plan.embeddingPlacement.output
        var u = Unit(layer: input ? -1 : m.layers, microBatch: 0)
        u.weightHostBytes = tiers.hostBytes
        u.weightDiskBytes = tiers.diskBytes
        u.weightTensors = traits.copyPerTensor ? 2 : 1
        if input {
            guard tiers.streamedBytes > 0 else { return nil }
            u.kernels = [Kernel(kind: .embedding, seconds: cost(.elementwise(bytes: 2 * Double(rows * m.hidden) * e)), needs: [.attentionWeights])]
            u.startsStep = true
            return u
        }
        u.kernels = [Kernel(kind: .head, seconds: plan.includeHead ? norm(rows) + cost(.gemm(m: rows, n: m.vocab, k: m.hidden)) : .zero,
                            needs: [.attentionWeights])]
        return u
    }

    /// Adds a step of `work(layer, microBatch)` per layer, cut into the engine's units: the
    /// micro-batches of one unit run one after another before the next unit (FlexGen's zig-zag).
    mutating func addEngineStep(step: Int, headRows: Int, microBatches: Int, work: (Int) -> Unit) {
        if let u = embeddingUnit(input: true, rows: headRows) { addUnit(u, step: step) }
        let cuts = portions()
        for layer in 0 ..< m.layers {
            for (p, parts) in cuts.enumerated() {
                for j in 0 ..< microBatches {
                    var u = work(j)
                    u.layer = layer
                    u.microBatch = j
                    u.startsStep = layer == 0 && p == 0 && j == 0 && plan.embeddingPlacement.input.streamedBytes == 0
                    u = split(u, keep: parts, portion: p, of: cuts.count)
                    addUnit(withWeights(u, parts), step: step)
                }
            }
        }
        if let u = embeddingUnit(input: false, rows: headRows) { addUnit(u, step: step) }
    }

    /// The part of a layer's work `u` that portion `p` of `count` runs: the attention work in the
    /// first (and, for modules, the output projection in the second), the FFN in the last.
    func split(_ u: Unit, keep parts: [Portion], portion p: Int, of count: Int) -> Unit {
        var v = u
        let ffn: Set<TaskKind> = [.ffn]
        let out: Set<TaskKind> = [.outProjection]
        let isLast = p == count - 1
        let isFirst = p == 0
        v.kernels = u.kernels.filter { k in
            if count == 1 { return true }
            if ffn.contains(k.kind) { return isLast }
            if out.contains(k.kind) { return count == 2 ? isFirst : p == 1 }
            return isFirst
        }
        if !isFirst {
            v.cacheHostBytes = 0; v.cacheDiskBytes = 0; v.hostAttention = nil; v.storeBytes = 0; v.storeDiskBytes = 0
        } else if let h = u.hostAttention {
            v.hostAttention = HostAttention(afterKernel: v.kernels.firstIndex { $0.kind == .qkv } ?? h.afterKernel, toHostBytes: h.toHostBytes,
                                            seconds: h.seconds, toDeviceBytes: h.toDeviceBytes)
        }
        // FlexGen moves the hidden state between every sub-layer (store_hidden/load_hidden, flex_opt.py 730-782).
        if !plan.hiddenOnHost { v.hiddenLoadBytes = 0; v.hiddenStoreBytes = 0 }
        v.kernels = v.kernels.map { k in
            var k = k
            // Within a unit every kernel that needs weights needs the unit's copy.
            if k.needs.contains(.ffnWeights) { k.needs.remove(.ffnWeights); k.needs.insert(.attentionWeights) }
            return k
        }
        return v
    }

    /// One decode step of an engine.
    mutating func engineDecode(cached: TokenPlacement, newToken: TokenClass, step: Int) {
        let w = engineDecodeWork(cached: cached, newToken: newToken)
        addEngineStep(step: step, headRows: plan.batch, microBatches: plan.microBatches) { _ in w }
    }

    /// One micro-batch's decode work at one layer, for an engine.
    func engineDecodeWork(cached: TokenPlacement, newToken: TokenClass) -> Unit {
        let gb = plan.microBatchSize
        let context = cached.total
        let kvToken = plan.cachedKVBytesPerToken
        var u = Unit(layer: 0, microBatch: 0)
        let diskShare = plan.kvDiskFraction
        let hostKVBytes = Double(gb * cached.hostKV) * kvToken
        u.cacheHostBytes = hostKVBytes * (1 - diskShare) + Double(gb * cached.hostAct) * m.actBytesPerToken
        u.cacheDiskBytes = hostKVBytes * diskShare
        u.hiddenLoadBytes = Double(gb * m.hidden) * e
        u.hiddenStoreBytes = Double(gb * m.hidden) * e
        let r = cached.recompute
        if r > 0 {
            let seconds = qkvSeconds(gb * r)
                + cost(.prefillAttention(batch: gb, heads: m.heads, kvHeads: m.kvHeads, headDim: m.headDim, queries: r, context: r))
                + outSeconds(gb * r) + ffnSeconds(gb * r)
            u.kernels.append(Kernel(kind: .tokenRecompute, seconds: seconds, needs: [.attentionWeights, .ffnWeights]))
        }
        if cached.gpuAct > 0 {
            u.kernels.append(Kernel(kind: .actRecomputeGPU, seconds: actRecomputeSeconds(gb * cached.gpuAct), needs: [.attentionWeights]))
        }
        if cached.hostAct > 0 {
            u.kernels.append(Kernel(kind: .actRecomputeHost, seconds: actRecomputeSeconds(gb * cached.hostAct), needs: [.actLoad, .attentionWeights]))
        }
        u.kernels.append(Kernel(kind: .qkv, seconds: qkvSeconds(gb), needs: [.attentionWeights]))
        // Tokens whose attention runs on the GPU, and the fp16 K/V the GPU reads for them.
        let onHost = plan.attentionOnHost ? cached.hostKV : 0
        let gpuTokens = context - onHost
        let fp16KV = m.kvBytesPerToken
        if traits.cacheUpdate == .concatenate, cached.gpuKV > 0 {
            // torch.cat of the past K/V with the new token: the GPU cache read and written once more.
            u.kernels.append(Kernel(kind: .concat, seconds: cost(.deviceCopy(bytes: Double(gb * (cached.gpuKV + 1)) * fp16KV)), needs: []))
        } else if !plan.attentionOnHost, cached.gpuKV > 0, cached.gpuKV < context, !traits.attentionCopiesCache {
            // GPU-resident KV gathered beside the loaded KV into one attention buffer.
            u.kernels.append(Kernel(kind: .concat, seconds: cost(.deviceCopy(bytes: Double(gb * cached.gpuKV) * fp16KV)), needs: []))
        }
        if plan.compression.cache != nil, gpuTokens > 0 {
            // The whole cache the GPU reads is decompressed, K and V, every step (pytorch_backend.py 400-403:
            // `decompress(k_cache)[:src_s]`). A cache loaded from the host arrives cut to the current
            // length (`smart_copy` of `[0, prompt + i)`); one resident on the GPU is its own read buffer
            // (`smart_copy` to its own device returns the tensor), so its whole allocation, prompt +
            // tokens - 1 positions, is decompressed at every step.
            var tokens = cached.gpuKV + cached.hostKV - onHost
            if cached.gpuKV > 0, case .generate(let prompt, let generated) = plan.phase {
                tokens = max(cached.hostKV - onHost, 0) + max(cached.gpuKV, (prompt + generated - 1) * cached.gpuKV / max(1, cached.total))
            }
            let elements = Double(gb * tokens) * plan.kvElementsPerToken
            u.kernels.append(Kernel(kind: .dequantize, seconds: dequantize(elements, tensors: 2), needs: [.kvLoad]))
        }
        if traits.attentionCopiesCache, gpuTokens > 0 {
            u.kernels.append(Kernel(kind: .concat, seconds: cost(.deviceCopy(bytes: Double(gb * gpuTokens) * fp16KV)), needs: [.kvLoad]))
        }
        if gpuTokens > 0 {
            u.kernels.append(Kernel(kind: .attention, seconds: cost(.decodeAttention(batch: gb, heads: m.heads, kvHeads: m.kvHeads,
                                                                                   headDim: m.headDim, context: gpuTokens + 1)),
                                    needs: u.cacheHostBytes + u.cacheDiskBytes > 0 ? [.kvLoad] : []))
        }
        if onHost > 0 {
            // The step's own token is written into the host cache before the CPU attends over it
            // (FlexGen's `mha_gen` writes `k[src_s - 1:src_s] = k_new` and attends over `src_s` positions, pytorch_backend.py).
            u.hostAttention = hostAttention(gb: gb, tokens: onHost + (newToken == .hostKV ? 1 : 0), diskShare: diskShare, afterKernel: u.kernels.firstIndex { $0.kind == .qkv }!)
        }
        if plan.compression.cache != nil {
            // The new K and V compressed (pytorch_backend.py 458-464; about 12 small kernels each, compression.py 87-144).
            u.kernels.append(Kernel(kind: .dequantize, seconds: elementwise(Double(gb) * plan.kvElementsPerToken * 8, kernels: 24), needs: []))
        }
        u.kernels.append(Kernel(kind: .outProjection, seconds: outSeconds(gb), needs: []))
        u.kernels.append(Kernel(kind: .ffn, seconds: ffnSeconds(gb), needs: [.ffnWeights]))
        switch newToken {
        case .hostKV:
            u.storeBytes = Double(gb) * kvToken
            u.storeDiskBytes = u.storeBytes * diskShare
        case .hostAct:
            u.storeBytes = Double(gb) * m.actBytesPerToken
            u.storeKind = .actStore
        default: break
        }
        return u
    }

    /// Attention over `tokens` host-resident tokens of `gb` sequences on the host CPU:
    /// the query (fp32) and the new K/V cross to the host, the CPU moves
    /// `tokens x 2 kvDim` elements through memory (FlexGen: the fp16 home converted into an fp32
    /// workspace, 2 + 4 bytes, `k.float()` of the permuted view, pytorch_backend.py 415-424; read by
    /// the two `bmm`s, 4 bytes: 10 bytes an element; ZeRO-Inference: its fp32 cache read once, 4),
    /// `4 gb heads headDim tokens` FLOPs, and the fp32 output returns.
    func hostAttention(gb: Int, tokens: Int, diskShare: Double, afterKernel: Int) -> HostAttention {
        let elements = Double(gb * tokens) * plan.kvElementsPerToken
        let t = traits
        let read = t.hostAttentionConvertsFP16Cache ? 4.0 : t.hostAttentionCacheBytesPerElement
        // Disk-resident tokens arrive in the fp32 workspace from the copy threads, converted there.
        let convert = t.hostAttentionConvertsFP16Cache ? 6.0 * (1 - diskShare) : 0
        let copy = t.attentionCopiesCache ? 2 * read : 0
        let flops = 4.0 * Double(gb * m.heads * m.headDim * tokens)
        let toHost = Double(gb * m.qDim) * 4 + Double(gb * 2 * m.kvDim) * e
        return HostAttention(afterKernel: afterKernel, toHostBytes: toHost,
                             seconds: hostCPU(bytes: elements * (convert + copy + read), flops: flops),
                             toDeviceBytes: Double(gb * m.qDim) * 4)
    }

    /// The prefill of an engine: every micro-batch's whole prompt through each unit (FlexGen
    /// processes a GPU batch's prompt at once, flex_opt.py 744-746; transformers' `generate` the
    /// whole batch).
    mutating func enginePrefill(prompt: Int, split: TokenPlacement, step: Int) {
        let gb = plan.microBatchSize
        let rows = gb * prompt
        var u = Unit(layer: 0, microBatch: 0)
        u.hiddenLoadBytes = Double(rows * m.hidden) * e
        u.hiddenStoreBytes = Double(rows * m.hidden) * e
        u.kernels = [
            Kernel(kind: .qkv, seconds: qkvSeconds(rows), needs: [.attentionWeights]),
            Kernel(kind: .attention, seconds: cost(.prefillAttention(batch: gb, heads: m.heads, kvHeads: m.kvHeads, headDim: m.headDim,
                                                                     queries: prompt, context: prompt)), needs: []),
        ]
        if plan.compression.cache != nil {
            u.kernels.append(Kernel(kind: .dequantize, seconds: elementwise(Double(rows) * plan.kvElementsPerToken * 8, kernels: 24), needs: []))
        }
        u.kernels += [Kernel(kind: .outProjection, seconds: outSeconds(rows), needs: []),
                      Kernel(kind: .ffn, seconds: ffnSeconds(rows), needs: [.ffnWeights])]
        let kv = Double(gb * split.hostKV) * plan.cachedKVBytesPerToken
        u.storeBytes = kv + Double(gb * split.hostAct) * m.actBytesPerToken
        u.storeDiskBytes = kv * plan.kvDiskFraction
        let headRows = traits.prefillLogitsAllPositions ? plan.batch * prompt : plan.batch
        if !traits.prefillPrefetches { units.fetchOverride = .serial }
        addEngineStep(step: step, headRows: headRows, microBatches: plan.microBatches) { _ in u }
        units.fetchOverride = nil
    }
}
