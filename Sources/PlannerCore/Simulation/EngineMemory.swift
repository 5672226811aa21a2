/// GPU, host and disk memory of a plan on an engine other than the ideal one, item by item, as the
/// engine allocates it.
///
/// Differences from the ideal engine's accounting (`MemoryModel.report`):
/// - weight buffers hold what the engine keeps live: the current and the next fetch unit
///   (FlexGen's current and next sub-layer, flex_opt.py 434-438; ZeRO-3's one module ahead), one
///   unit (Accelerate frees each module's weights after it ran, hooks.py 268-278), or two layers
///   (double buffering); compressed weights add one unit expanded to fp16;
/// - a concatenated cache (`torch.cat`) holds the old and the new cache until the forward returns:
///   twice the GPU KV cache (transformers 4.24 generation_utils.py 665, 2230-2276);
/// - materialised prefill attention holds three `batch x heads x prompt^2` score tensors, and the
///   prefill's logits cover every position where the engine computes them so;
/// - CPU attention keeps no cache on the GPU; FlexGen refills one fp32 workspace of the longest
///   context per micro-batch (pytorch_backend.py 196-214), ZeRO-Inference keeps its host cache in
///   fp32;
/// - disk relays: FlexGen's four copy threads own 2 GiB pinned buffers each (pytorch_backend.py
///   882-883); ZeRO-3's swapper 5 pinned buffers of one parameter each (offload_config.py 33).
extension MemoryModel {
    static func engineReport(_ plan: ExecutionPlan, peak: TokenPlacement) -> MemoryReport {
        let m = plan.model
        let t = plan.engine.traits
        let e = Double(m.bytesPerElement)
        let b = Double(plan.batch)
        let gb = Double(plan.microBatchSize)
        let layers = Double(m.layers)
        let context = Double(peak.total)
        var prompt = 1.0
        if case .generate(let p, _) = plan.phase { prompt = Double(p) }
        let embeddings = plan.embeddingPlacement

        // Streamed bytes of each fetch unit of a layer, in order (the unit cut of EngineUnits.swift).
        func streamed(_ block: WeightBlock, _ share: Double) -> Double {
            plan.blockBytes(block) * plan.weights.tiers(block).streamed * share
        }
        let attentionTensors = m.tensors(.attention)
        let qkvShare = Double(attentionTensors.filter { !["w_out", "b_out"].contains($0.name) }.reduce(0) { $0 + $1.elements })
            / Double(attentionTensors.reduce(0) { $0 + $1.elements })
        var unitBytes: [Double]
        switch t.fetchUnit {
        case .layer: unitBytes = [streamed(.attention, 1) + streamed(.ffn, 1)]
        case .block: unitBytes = [streamed(.attention, 1), streamed(.ffn, 1)]
        case .module: unitBytes = [streamed(.attention, qkvShare), streamed(.attention, 1 - qkvShare), streamed(.ffn, 1)]
        }
        let ring = unitBytes + unitBytes
        let pairs = zip(ring, ring.dropFirst()).map { $0 + $1 }
        var buffers: Double
        switch t.weightFetch {
        case .serial: buffers = unitBytes.max() ?? 0
        case .doubleBuffered: buffers = 2 * unitBytes.reduce(0, +)
        case .oneAheadSynchronized, .oneAheadHostSynchronized: buffers = pairs.max() ?? 0
        }
        buffers = max(buffers, embeddings.input.streamedBytes, embeddings.output.streamedBytes)
        if plan.compression.weights != nil {
            // One unit's matrices expanded to fp16 beside their compressed copy.
            buffers += Double(max(m.attentionMatrixElements, m.ffnMatrixElements)) * e
        }

        let kvToken = plan.cachedKVBytesPerToken
        let gpuKV = layers * b * Double(peak.gpuKV) * kvToken * (t.cacheUpdate == .concatenate ? 2 : 1)
        let attendedOnGPU = plan.attentionOnHost ? Double(peak.total - peak.hostKV) : context
        let loadsToGPU = !plan.attentionOnHost && peak.hostKV + peak.hostAct > 0
        var loadBuffers = loadsToGPU ? 2 * gb * (Double(peak.hostKV) * kvToken + Double(peak.hostAct) * m.actBytesPerToken) : 0
        if plan.compression.cache != nil { loadBuffers += gb * attendedOnGPU * m.kvBytesPerToken }
        let attentionBuffer = t.attentionCopiesCache || (peak.gpuKV > 0 && peak.gpuKV < peak.total && !plan.attentionOnHost)
            ? gb * (attendedOnGPU + 1) * m.kvBytesPerToken : 0

        // Live activations: in a prefill layer, the input, its norm and Q/K/V (and, materialised,
        // the scores and their masked copy: pytorch_backend.py 330-344), or in the MLP the input,
        // its norm and the intermediate before and after the activation; at the head the normed
        // hidden state and the logits (of every position where the engine computes them so).
        let hiddenStates = plan.hiddenOnHost ? 0 : b * Double(m.hidden) * e
        let rows = gb * prompt
        var attentionPeak = rows * Double(2 * m.hidden + m.qDim + 2 * m.kvDim) * e
        if t.prefillAttentionMaterialized { attentionPeak += 2 * gb * Double(m.heads) * prompt * prompt * e }
        let mlpPeak = rows * Double(2 * m.hidden + 2 * m.ffnKind.matrices / 2 * m.ffnActivationWidth) * e
        let logitRows = t.prefillLogitsAllPositions ? rows : gb
        let headPeak = rows * Double(m.hidden) * e + logitRows * Double(m.vocab) * e
        let prefillPeak = (prompt > 1 ? max(attentionPeak, mlpPeak, headPeak) : 0) + prompt * hiddenStates
        let decodeWorking = gb * Double(2 * m.hidden + m.qDim + 2 * m.kvDim + m.hidden + (m.ffnKind.matrices - 1) * m.ffnActivationWidth) * e
            + hiddenStates + b * Double(m.vocab) * 4
        // Prefill and decode transients do not coexist: the item holds what the larger one needs
        // beyond the decode's cache buffers.
        let activations = max(decodeWorking, prefillPeak - loadBuffers - attentionBuffer)

        let gpu: [(String, Double)] = [
            ("resident weights", layers * plan.layerBytes(\.gpu) + embeddings.residentBytes),
            ("weight buffers", buffers),
            ("GPU KV cache", gpuKV),
            ("GPU ACT cache", layers * b * Double(peak.gpuAct) * m.actBytesPerToken),
            ("cache load buffers", loadBuffers),
            ("attention K/V buffer", attentionBuffer),
            ("activations and logits", activations),
            ("reserved", plan.hardware.gpu.reservedBytes),
        ]
        let hostKVPerToken = plan.attentionOnHost ? plan.kvElementsPerToken * t.hostAttentionCacheBytesPerElement : kvToken
        let hostKV = layers * b * Double(peak.hostKV) * hostKVPerToken
        let workspace = plan.attentionOnHost && t.hostAttentionConvertsFP16Cache ? gb * context * plan.kvElementsPerToken * 4 : 0
        let usesDisk = plan.weights.diskFraction > 0 || plan.kvDiskFraction > 0 || embeddings.diskBytes > 0
        var relays = 0.0
        if usesDisk {
            relays = plan.engine.kind == .flexgen ? 4 * 2 * HardwareCatalog.GiB : Double(max(1, t.diskReadAheadUnits)) * (unitBytes.max() ?? 0)
        }
        let host: [(String, Double)] = [
            ("streamed weights", layers * plan.layerBytes(\.host) + embeddings.hostBytes),
            ("host KV cache", hostKV * (1 - plan.kvDiskFraction)),
            ("host ACT cache", layers * b * Double(peak.hostAct) * m.actBytesPerToken),
            ("attention workspace", workspace),
            ("hidden states", plan.hiddenOnHost ? b * prompt * Double(m.hidden) * e : 0),
            ("disk buffers", relays),
        ]
        let disk: [(String, Double)] = usesDisk ? [
            ("weights on disk", layers * plan.layerBytes(\.disk) + embeddings.diskBytes),
            ("KV cache on disk", layers * b * Double(peak.hostKV) * kvToken * plan.kvDiskFraction),
        ] : []
        return MemoryReport(gpu: gpu.map { (name: $0.0, bytes: $0.1) }, host: host.map { (name: $0.0, bytes: $0.1) },
                            gpuCapacity: plan.hardware.gpu.memoryBytes, hostCapacity: plan.hardware.host.memoryBytes,
                            disk: disk.map { (name: $0.0, bytes: $0.1) }, diskCapacity: plan.hardware.disk?.capacityBytes ?? 0)
    }
}
