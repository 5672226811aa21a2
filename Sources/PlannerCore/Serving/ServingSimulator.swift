import Foundation

/// What vLLM does with a running request when its KV blocks run out.
public enum PreemptionMode: String, Sendable, CaseIterable {
    /// Free the blocks; later re-run the prefill of the prompt plus the tokens generated so far.
    case recompute
    /// Copy the blocks to host swap space over the device-to-host engine, and back when there is room.
    case swap
}

/// vLLM's prefetch offloader's settings (`PrefetchOffload`).
public struct PrefetchOffloadSettings: Sendable, Equatable {
    public var groupSize: Int
    public var numInGroup = 1
    public var prefetchStep = 1
    public init(groupSize: Int, numInGroup: Int = 1, prefetchStep: Int = 1) {
        self.groupSize = groupSize; self.numInGroup = numInGroup; self.prefetchStep = prefetchStep
    }
}

/// Which vLLM engine a serving run plays.
public enum ServingEngine: String, Sendable, CaseIterable {
    /// vLLM V1 as of 0.34.0 (`vllm/v1/core/sched/scheduler.py`, `schedule` 716): running requests
    /// first, then waiting ones in the same step under one token budget; chunked prefill and prefix
    /// caching on by default; preemption by recompute only; an admission checks that the request's
    /// whole current sequence fits (`scheduler_reserve_full_isl`, config/scheduler.py 202).
    case vllmV1 = "vllm-v1"
    /// vLLM V0 (0.6.6 to 0.10.2): without chunked prefill, prefills run alone ahead of decodes;
    /// preemption by recompute or swap; a 1% watermark on admissions.
    case vllmV0 = "vllm-v0"
}

/// A vLLM-style engine on one GPU: continuous batching over a paged KV cache.
public struct ServingConfig: Sendable {
    public var model: ModelSpec
    public var hardware: HardwareSpec
    public var engine = ServingEngine.vllmV1
    /// Tokens per KV block.
    public var blockSize = 16
    /// Fraction of GPU memory given to KV blocks (the seed's "available GPU memory for KV cache"),
    /// instead of sizing the cache as vLLM does (`gpuMemoryUtilization`).
    public var gpuCacheFraction: Double?
    /// vLLM's `--gpu-memory-utilization`; nil: the engine's default (V1 0.92 from 0.20, V0 0.9;
    /// `DEFAULT_GPU_MEMORY_UTILIZATION`, config/cache.py). Used when neither `gpuBlocksOverride` nor
    /// `gpuCacheFraction` is set (`profiledKVBytes`).
    public var gpuMemoryUtilization: Double?
    public var memoryUtilization: Double { gpuMemoryUtilization ?? (engine == .vllmV1 ? 0.92 : 0.9) }
    /// Number of GPU blocks, set directly instead of derived from `gpuCacheFraction`.
    public var gpuBlocksOverride: Int?
    public var maxNumSeqs = 256
    public var maxNumBatchedTokens = 2048
    /// Prefill chunks share iterations with decodes under the token budget. nil: the engine's
    /// default (V1 on, `enable_chunked_prefill = True`, config/scheduler.py; V0 off). Without it V0
    /// runs prefills alone ahead of decodes and V1 schedules a waiting prompt only whole.
    public var chunkedPrefillSetting: Bool?
    public var chunkedPrefill: Bool {
        get { chunkedPrefillSetting ?? (engine == .vllmV1) }
        set { chunkedPrefillSetting = newValue }
    }
    /// Automatic prefix caching: full blocks hashed and reused by later requests with the same
    /// tokens (`BlockPool`). nil: the engine's default (V1 on, `CacheConfig.enable_prefix_caching =
    /// True`, config/cache.py 267; the V0 block manager played here has none).
    public var prefixCachingSetting: Bool?
    public var prefixCaching: Bool {
        get { prefixCachingSetting ?? (engine == .vllmV1) }
        set { prefixCachingSetting = newValue }
    }
    /// Fraction of GPU blocks a new admission must leave free. nil: the engine's default (V0 0.01;
    /// V1 0, config/scheduler.py 208, and applied only while a request runs, kv_cache_manager.py
    /// 539-546).
    public var watermarkSetting: Double?
    public var watermark: Double {
        get { watermarkSetting ?? (engine == .vllmV1 ? 0 : 0.01) }
        set { watermarkSetting = newValue }
    }
    public var preemption = PreemptionMode.recompute
    /// Host memory for swapped blocks (vLLM's `swap_space`, 4 GiB by default).
    public var swapSpaceBytes = 4 * HardwareCatalog.GiB
    public var hostMemory = HostMemoryKind.pinned
    /// Weight bytes kept in host memory (vLLM's `--cpu-offload-gb`, GiB): `maybe_offload_to_cpu`
    /// (`vllm/model_executor/models/utils.py`) moves parameters of the first layers to pinned host
    /// memory until the budget is reached, and every forward pass reads them over the link, with no
    /// prefetch (`offloadSecondsPerIteration`). Every iteration therefore waits for them.
    public var cpuOffloadBytes = 0.0
    /// vLLM's prefetch offloader (`--offload-group-size`, `--offload-num-in-group`,
    /// `--offload-prefetch-step`; V1 from 0.17; `PrefetchOffload`): the last `numInGroup` layers of
    /// every `groupSize` live on the host and are copied ahead on a copy stream. nil: not used
    /// (`cpuOffloadBytes` is the UVA backend instead).
    public var prefetchOffload: PrefetchOffloadSettings?
    /// Weight bytes kept in host memory by either offloader.
    public var hostWeightBytes: Double {
        guard let p = prefetchOffload else { return cpuOffloadBytes }
        return Double(PrefetchOffload.offloadedLayers(layers: model.layers, groupSize: p.groupSize, perGroup: p.numInGroup)) * model.layerWeightBytes
    }
    /// Weight bytes on the GPU: what is not offloaded, and the prefetch offloader's static buffers
    /// (one layer's weights each, `prefetchStep` of them; prefetch.py 360-375).
    public var gpuWeightBytes: Double {
        guard let p = prefetchOffload else { return model.totalWeightBytes - cpuOffloadBytes }
        let offloadedLayers = PrefetchOffload.offloadedLayers(layers: model.layers, groupSize: p.groupSize, perGroup: p.numInGroup)
        return model.totalWeightBytes - hostWeightBytes + Double(min(p.prefetchStep, offloadedLayers)) * model.layerWeightBytes
    }
    /// One offloaded layer's copy: one per parameter tensor (`copy_(non_blocking=True)` each,
    /// prefetch.py 551-565), each paying the link's latency, over the pinned channel.
    public var prefetchCopySeconds: Double {
        let tensors = model.tensors(.attention).count + model.tensors(.ffn).count
        let c = hardware.link.channel(.hostToDevice, .pinned)
        return Double(tensors) * c.latencySeconds + model.layerWeightBytes / c.bytesPerSecond
    }

    /// vLLM V1's CPU KV cache (`--kv-offloading-size`, GiB; `HostBlockCache`): full prompt blocks are
    /// copied to host memory as they are computed and loaded back instead of recomputed when a later
    /// request (or a preempted one) finds them there. 0: none.
    public var kvOffloadingBytes = 0.0
    /// Blocks the CPU KV cache holds.
    public var hostCacheBlocks: Int { Int((kvOffloadingBytes / blockBytes).rounded(.down)) }
    /// Latency objectives for goodput (`ServingResult.serviceLevel`); nil: none reported.
    public var serviceLevel: ServiceLevel?
    /// Check the block pool's invariants after every iteration (tests; it costs a pass over the cache).
    var checkInvariants = false
    /// Keep per-request states and the GPU and link tracks for a Chrome trace (`ServingResult.trace`).
    public var recordTrace = false

    public init(model: ModelSpec, hardware: HardwareSpec) {
        self.model = model
        self.hardware = hardware
    }

    /// KV bytes of one block over all layers: `blockSize x layers x 2 x kvHeads x headDim x bytes`.
    public var blockBytes: Double { Double(blockSize * model.layers) * model.kvBytesPerToken }

    /// GPU blocks: the set number, `gpuCacheFraction` of GPU memory, or what vLLM's memory profiling
    /// leaves at `memoryUtilization` (`profiledKVBytes`), in whole blocks (`num_blocks =
    /// available_memory // bytes_per_block`, 0.34.0 `v1/core/kv_cache_planning.py` 724).
    public var gpuBlocks: Int {
        if let n = gpuBlocksOverride { return n }
        let bytes = gpuCacheFraction.map { $0 * hardware.gpu.memoryBytes } ?? profiledKVBytes.kv
        return max(0, Int((bytes / blockBytes).rounded(.down)))
    }

    /// Activation bytes of one forward pass over `tokens` tokens, the larger of a layer's two halves
    /// (PyTorch frees each layer's intermediates before the next): the residual and normed input
    /// (`2 hidden`) beside the attention's projections (`attentionActivationWidth`), or beside the FFN's
    /// intermediate (a gated FFN's gate and up outputs and their product: `3 ffn`; otherwise `2 ffn`),
    /// at the model's element size; and the sampler's fp32 logits for `maxNumSeqs` rows.
    public func activationBytes(tokens: Int) -> Double {
        let e = Double(model.bytesPerElement)
        let ffn = Double(model.ffnActivationWidth) * (model.ffnKind.matrices == 3 ? 3 : 2)
        let layer = Double(tokens) * max(Double(2 * model.hidden + model.attentionActivationWidth), 2 * Double(model.hidden) + ffn) * e
        let logits = Double(min(maxNumSeqs, tokens) * model.vocab) * 4
        return max(layer, logits)
    }

    /// vLLM V1's sizing of the KV cache (0.34.0 `v1/worker/gpu_worker.py`
    /// `determine_available_memory` 673-841): `utilization x GPU memory` less what the profile run
    /// leaves in use (the weights kept on the GPU and the CUDA context, `reservedBytes`), less the
    /// transient peak of a dummy forward of `maxNumBatchedTokens` tokens (`activationBytes`), less
    /// the CUDA graphs' memory (subtracted from 0.20; estimated here as the activations of the
    /// largest captured batch, `min(512, 2 maxNumSeqs)` tokens, which the graphs' shared pool holds).
    /// V0 subtracts no graphs. Each term is returned for the report.
    public var profiledKVBytes: (kv: Double, requested: Double, weights: Double, activations: Double, graphs: Double) {
        let requested = memoryUtilization * hardware.gpu.memoryBytes
        let weights = gpuWeightBytes
        let activations = activationBytes(tokens: maxNumBatchedTokens)
        let graphs = engine == .vllmV1 ? activationBytes(tokens: min(512, 2 * maxNumSeqs)) : 0
        let kv = requested - weights - hardware.gpu.reservedBytes - activations - graphs
        return (kv, requested, weights, activations, graphs)
    }

    public var watermarkBlocks: Int { Int((watermark * Double(gpuBlocks)).rounded(.down)) }

    public var swapBlocks: Int { Int((swapSpaceBytes / blockBytes).rounded(.down)) }

    /// The time one forward pass waits for the offloaded weights.
    /// - V1 (0.11 to 0.34): the offloaded parameters live in pinned host memory behind a GPU view
    ///   (UVA; 0.11.0 `models/utils.py` 559-588, 0.34.0 `model_executor/offloader/uva.py` 114-122),
    ///   so every forward's kernels read those bytes over the link at its pinned rate, with no copy
    ///   to queue or prefetch: `bytes / h2d`.
    /// - V0: each offloaded module's parameters are copied to the GPU (`.to(device,
    ///   non_blocking=True)`, 0.11.0 `models/utils.py` 595-608) before it runs: one copy per
    ///   parameter tensor (the layers' tensors in their share of the offloaded bytes), each paying the
    ///   link's latency.
    public var offloadSecondsPerIteration: Double {
        guard cpuOffloadBytes > 0 else { return 0 }
        let channel = hardware.link.channel(.hostToDevice, .pinned)
        if engine == .vllmV1 { return cpuOffloadBytes / channel.bytesPerSecond }
        let perLayer = model.layerWeightBytes
        let tensors = Double(model.tensors(.attention).count + model.tensors(.ffn).count)
        let copies = max(1, (cpuOffloadBytes / perLayer * tensors).rounded(.up))
        return copies * channel.seconds(bytes: cpuOffloadBytes / copies)
    }

    /// Whether the cache is sized by vLLM's profiling (`gpuMemoryUtilization`), not set by hand.
    public var sizedByUtilization: Bool { gpuBlocksOverride == nil && gpuCacheFraction == nil }

    /// How the KV cache got its size, in words, when vLLM's profiling sized it.
    public var cacheSizing: String? {
        guard sizedByUtilization else { return nil }
        let p = profiledKVBytes
        return "KV cache as --gpu-memory-utilization \(fmt(memoryUtilization)) sizes it: \(formatBytes(p.requested)) - weights \(formatBytes(p.weights)) - reserved \(formatBytes(hardware.gpu.reservedBytes)) - activations \(formatBytes(p.activations))"
            + (p.graphs > 0 ? " - CUDA graphs \(formatBytes(p.graphs))" : "") + " = \(formatBytes(p.kv))"
    }

    public func validate() throws {
        try model.validate()
        try hardware.validate()
        guard (1...4096).contains(blockSize) else { throw InputError(field: "blockSize", "must be from 1 to 4096 tokens, got \(blockSize)") }
        if let f = gpuCacheFraction, !(f > 0 && f < 1) {
            throw InputError(field: "gpuCacheFraction", "must be between 0 and 1, got \(fmt(f))")
        }
        if let u = gpuMemoryUtilization, !(u > 0 && u <= 1) {
            throw InputError(field: "gpuMemoryUtilization", "must be above 0 and at most 1, got \(fmt(u))")
        }
        if engine == .vllmV1, preemption == .swap {
            throw InputError(field: "preemption", "\"swap\" needs engine \"vllm-v0\": vLLM V1 preempts by recompute only")
        }
        if engine == .vllmV0, prefixCachingSetting == true {
            throw InputError(field: "prefixCaching", "is modelled for engine \"vllm-v1\" only (V1's block pool); the V0 block manager played here has none")
        }
        if engine == .vllmV1, preemption == .swap {
            throw InputError(field: "preemption", "\"swap\" needs engine \"vllm-v0\": vLLM V1 preempts by recompute only")
        }
        if engine == .vllmV0, prefixCachingSetting == true {
            throw InputError(field: "prefixCaching", "is modelled for engine \"vllm-v1\" only (V1's block pool); the V0 block manager played here has none")
        }
        if kvOffloadingBytes > 0 {
            guard engine == .vllmV1 else {
                throw InputError(field: "kvOffloadingGiB", "is vLLM V1's CPU KV offloading (--kv-offloading-size); it needs engine \"vllm-v1\"")
            }
            guard prefixCaching else {
                throw InputError(field: "kvOffloadingGiB", "needs prefixCaching: the CPU KV cache finds blocks by their prefix hash")
            }
            guard hostCacheBlocks >= 1 else {
                throw InputError(field: "kvOffloadingGiB", "holds no whole KV block (\(formatBytes(blockBytes)) each)")
            }
            let host = kvOffloadingBytes + hostWeightBytes
            guard host <= hardware.host.memoryBytes else {
                throw CapacityError(memory: "host", neededBytes: host, capacityBytes: hardware.host.memoryBytes,
                                    breakdown: [("CPU KV cache", kvOffloadingBytes), ("offloaded weights", hostWeightBytes)])
            }
        }
        guard watermark >= 0, watermark < 1 else { throw InputError(field: "watermark", "must be from 0 to less than 1, got \(fmt(watermark))") }
        guard maxNumSeqs >= 1 else { throw InputError(field: "maxNumSeqs", "must be at least 1, got \(maxNumSeqs)") }
        guard maxNumBatchedTokens >= 1 else { throw InputError(field: "maxNumBatchedTokens", "must be at least 1, got \(maxNumBatchedTokens)") }
        guard swapSpaceBytes >= 0 else { throw InputError(field: "swapSpaceGiB", "must not be negative") }
        guard gpuBlocks >= 1 else {
            if gpuCacheFraction != nil {
                throw InputError(field: "gpuCacheFraction", "leaves no whole KV block (\(formatBytes(blockBytes)) each); give the cache more memory")
            }
            let p = profiledKVBytes
            throw InputError(field: "gpuMemoryUtilization", "\(fmt(memoryUtilization)) of \(formatBytes(hardware.gpu.memoryBytes)) leaves \(formatBytes(max(0, p.kv))) for KV blocks after the weights (\(formatBytes(p.weights))), the reserved \(formatBytes(hardware.gpu.reservedBytes)), activations (\(formatBytes(p.activations))) and CUDA graphs (\(formatBytes(p.graphs))): not one block of \(formatBytes(blockBytes)); raise it, offload weights or lower maxNumBatchedTokens")
        }
        guard cpuOffloadBytes >= 0, cpuOffloadBytes <= model.weightBytesOverLayers else {
            throw InputError(field: "cpuOffloadGiB", "must be from 0 to the decoder layers' weights (\(formatBytes(model.weightBytesOverLayers))), got \(formatBytes(cpuOffloadBytes))")
        }
        if let p = prefetchOffload {
            guard engine == .vllmV1 else {
                throw InputError(field: "offloadGroupSize", "is vLLM V1's prefetch offloader (0.17 and later); it needs engine \"vllm-v1\"")
            }
            guard cpuOffloadBytes == 0 else {
                throw InputError(field: "offloadGroupSize", "give cpuOffloadGiB (the UVA offloader) or offloadGroupSize (the prefetch offloader), not both")
            }
            guard (1...model.layers).contains(p.groupSize) else {
                throw InputError(field: "offloadGroupSize", "must be from 1 to the model's \(model.layers) layers, got \(p.groupSize)")
            }
            guard (1...p.groupSize).contains(p.numInGroup) else {
                throw InputError(field: "offloadNumInGroup", "must be from 1 to offloadGroupSize (\(p.groupSize)), got \(p.numInGroup)")
            }
            guard (1...model.layers).contains(p.prefetchStep) else {
                throw InputError(field: "offloadPrefetchStep", "must be from 1 to the model's \(model.layers) layers, got \(p.prefetchStep)")
            }
        }
        let weights = gpuWeightBytes + hardware.gpu.reservedBytes
        let cache = Double(gpuBlocks) * blockBytes
        if weights + cache > hardware.gpu.memoryBytes {
            throw CapacityError(memory: "GPU", neededBytes: weights + cache, capacityBytes: hardware.gpu.memoryBytes,
                                breakdown: [("weights", gpuWeightBytes), ("KV blocks", cache), ("reserved", hardware.gpu.reservedBytes)])
        }
    }
}
