import Foundation

/// What vLLM does with a running request when its KV blocks run out.
public enum PreemptionMode: String, Sendable, CaseIterable {
    /// Free the blocks; later re-run the prefill of the prompt plus the tokens generated so far.
    case recompute
    /// Copy the blocks to host swap space over the device-to-host engine, and back when there is room.
    case swap
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
    /// Fraction of GPU memory given to KV blocks (the seed's "available GPU memory for KV cache").
    public var gpuCacheFraction = 0.5
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
    /// memory until the budget is reached, and every forward pass brings each offloaded module's
    /// parameters to the GPU (`v.to(device, non_blocking=True)` on the compute stream) before it
    /// runs, with no prefetch. Every iteration therefore waits for those copies.
    public var cpuOffloadBytes = 0.0
    /// Latency objectives for goodput (`ServingResult.serviceLevel`); nil: none reported.
    public var serviceLevel: ServiceLevel?
    /// Keep per-request states and the GPU and link tracks for a Chrome trace (`ServingResult.trace`).
    public var recordTrace = false

    public init(model: ModelSpec, hardware: HardwareSpec) {
        self.model = model
        self.hardware = hardware
    }

    /// KV bytes of one block over all layers: `blockSize x layers x 2 x kvHeads x headDim x bytes`.
    public var blockBytes: Double { Double(blockSize * model.layers) * model.kvBytesPerToken }

    /// GPU blocks: the set number, or `gpuCacheFraction` of GPU memory in whole blocks.
    public var gpuBlocks: Int {
        gpuBlocksOverride ?? Int((gpuCacheFraction * hardware.gpu.memoryBytes / blockBytes).rounded(.down))
    }

    public var watermarkBlocks: Int { Int((watermark * Double(gpuBlocks)).rounded(.down)) }

    public var swapBlocks: Int { Int((swapSpaceBytes / blockBytes).rounded(.down)) }

    /// The copies of the offloaded weights one forward pass waits for: one per parameter tensor
    /// (the layers' tensors in their share of the offloaded bytes), each paying the link's
    /// latency, over the pinned host-to-GPU channel.
    public var offloadSecondsPerIteration: Double {
        guard cpuOffloadBytes > 0 else { return 0 }
        let perLayer = model.layerWeightBytes
        let tensors = Double(model.tensors(.attention).count + model.tensors(.ffn).count)
        let copies = max(1, (cpuOffloadBytes / perLayer * tensors).rounded(.up))
        return copies * hardware.link.channel(.hostToDevice, .pinned).seconds(bytes: cpuOffloadBytes / copies)
    }

    public func validate() throws {
        try model.validate()
        try hardware.validate()
        guard (1...4096).contains(blockSize) else { throw InputError(field: "blockSize", "must be from 1 to 4096 tokens, got \(blockSize)") }
        guard gpuCacheFraction > 0, gpuCacheFraction < 1 else {
            throw InputError(field: "gpuCacheFraction", "must be between 0 and 1, got \(fmt(gpuCacheFraction))")
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
        guard watermark >= 0, watermark < 1 else { throw InputError(field: "watermark", "must be from 0 to less than 1, got \(fmt(watermark))") }
        guard maxNumSeqs >= 1 else { throw InputError(field: "maxNumSeqs", "must be at least 1, got \(maxNumSeqs)") }
        guard maxNumBatchedTokens >= 1 else { throw InputError(field: "maxNumBatchedTokens", "must be at least 1, got \(maxNumBatchedTokens)") }
        guard swapSpaceBytes >= 0 else { throw InputError(field: "swapSpaceGiB", "must not be negative") }
        guard gpuBlocks >= 1 else {
            throw InputError(field: "gpuCacheFraction", "leaves no whole KV block (\(formatBytes(blockBytes)) each); give the cache more memory")
        }
        guard cpuOffloadBytes >= 0, cpuOffloadBytes <= model.weightBytesOverLayers else {
            throw InputError(field: "cpuOffloadGiB", "must be from 0 to the decoder layers' weights (\(formatBytes(model.weightBytesOverLayers))), got \(formatBytes(cpuOffloadBytes))")
        }
        let weights = model.totalWeightBytes - cpuOffloadBytes + hardware.gpu.reservedBytes
        let cache = Double(gpuBlocks) * blockBytes
        if weights + cache > hardware.gpu.memoryBytes {
            throw CapacityError(memory: "GPU", neededBytes: weights + cache, capacityBytes: hardware.gpu.memoryBytes,
                                breakdown: [("weights", model.totalWeightBytes - cpuOffloadBytes), ("KV blocks", cache), ("reserved", hardware.gpu.reservedBytes)])
        }
    }
}
