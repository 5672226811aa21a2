import Foundation

/// What vLLM does with a running request when its KV blocks run out.
public enum PreemptionMode: String, Sendable, CaseIterable {
    /// Free the blocks; later re-run the prefill of the prompt plus the tokens generated so far.
    case recompute
    /// Copy the blocks to host swap space over the device-to-host engine, and back when there is room.
    case swap
}

/// A vLLM-style engine on one GPU: continuous batching over a paged KV cache.
public struct ServingConfig: Sendable {
    public var model: ModelSpec
    public var hardware: HardwareSpec
    /// Tokens per KV block.
    public var blockSize = 16
    /// Fraction of GPU memory given to KV blocks (the seed's "available GPU memory for KV cache").
    public var gpuCacheFraction = 0.5
    /// Number of GPU blocks, set directly instead of derived from `gpuCacheFraction`.
    public var gpuBlocksOverride: Int?
    public var maxNumSeqs = 256
    public var maxNumBatchedTokens = 2048
    /// Without chunked prefill, vLLM's default scheduler runs prefills alone in their iteration, ahead
    /// of decodes; with it, decodes and prefill chunks share iterations.
    public var chunkedPrefill = false
    /// Fraction of GPU blocks a new admission must leave free (vLLM's watermark, 0.01 by default).
    public var watermark = 0.01
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
