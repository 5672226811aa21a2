import Foundation

/// One direction of the host link for one kind of host memory: a copy of `b` bytes takes
/// `latencySeconds + b / bytesPerSecond`. The achieved bandwidth `b / time` therefore rises with the
/// transfer size and approaches `bytesPerSecond` for large copies (the shape measured on real links:
/// 38 GB/s at 1 MiB, 55 GB/s at 64 MiB on the H100 reference host).
public struct LinkChannel: Codable, Sendable, Equatable {
    public var latencySeconds: Double
    public var bytesPerSecond: Double

    public init(latencySeconds: Double, bytesPerSecond: Double) {
        self.latencySeconds = latencySeconds
        self.bytesPerSecond = bytesPerSecond
    }

    /// Seconds to move `bytes` in one copy; zero bytes cost nothing.
    public func seconds(bytes: Double) -> Double {
        bytes <= 0 ? 0 : latencySeconds + bytes / bytesPerSecond
    }
}

/// Host memory kind of a transfer: page-locked memory is copied by DMA at the link's rate; pageable
/// memory goes through a staging copy and is several times slower.
public enum HostMemoryKind: String, Codable, Sendable, CaseIterable {
    case pinned, pageable
}

/// Direction of a copy over the host link; each has its own copy engine (the link is full duplex).
public enum LinkDirection: String, Codable, Sendable {
    case hostToDevice = "h2d"
    case deviceToHost = "d2h"
}

/// The host-GPU interconnect.
public struct LinkSpec: Codable, Sendable, Equatable {
    public var name: String
    public var h2dPinned: LinkChannel
    public var h2dPageable: LinkChannel
    public var d2hPinned: LinkChannel
    public var d2hPageable: LinkChannel

    public func channel(_ direction: LinkDirection, _ memory: HostMemoryKind) -> LinkChannel {
        switch (direction, memory) {
        case (.hostToDevice, .pinned): h2dPinned
        case (.hostToDevice, .pageable): h2dPageable
        case (.deviceToHost, .pinned): d2hPinned
        case (.deviceToHost, .pageable): d2hPageable
        }
    }

    public mutating func scaleBandwidth(by factor: Double) {
        h2dPinned.bytesPerSecond *= factor; h2dPageable.bytesPerSecond *= factor
        d2hPinned.bytesPerSecond *= factor; d2hPageable.bytesPerSecond *= factor
    }
}

/// A GPU: its memory and the rates its kernels achieve.
///
/// Datasheet peaks are kept beside the achieved rates the cost model uses, so a reader sees how far
/// below peak the model assumes real kernels run.
public struct GPUSpec: Codable, Sendable, Equatable {
    public var name: String
    public var memoryBytes: Double
    /// Datasheet memory bandwidth.
    public var memoryBandwidthBytesPerSecond: Double
    /// Datasheet dense tensor-core (or FP32 core) peak per dtype.
    public var peakMatmulFlops: [String: Double]
    /// Matrix rate that large GEMMs achieve per dtype (compute-bound roofline ceiling).
    public var achievedMatmulFlops: [String: Double]
    /// Bandwidth a GEMM achieves when it is bound by reading its weight (decode, small `m`).
    public var gemmBytesPerSecond: Double
    /// Bandwidth of streaming kernels: decode attention over a KV cache, norms, element-wise, copies.
    public var streamBytesPerSecond: Double
    /// Prefill (flash) attention rate as a fraction of `achievedMatmulFlops`.
    public var attentionFlopsFraction: Double
    /// Fixed cost of one kernel (launch and tail), added to every GPU operation.
    public var kernelSeconds: Double
    /// Memory not available to the engine (CUDA context, allocator slack).
    public var reservedBytes: Double
    /// Fixed cost of one attention call (its kernels and their launches), where it is larger than
    /// `kernelSeconds`; nil: `kernelSeconds`.
    public var attentionKernelSeconds: Double? = nil

    public func matmulFlops(_ dtype: DType) -> Double? { achievedMatmulFlops[dtype.rawValue] }
}

/// The host: its memory for streamed weights and host caches.
public struct HostSpec: Codable, Sendable, Equatable {
    public var memoryBytes: Double
}

/// One machine: a GPU, its link to the host, and the host.
///
///     var hw = try HardwareCatalog.device(named: "rtx4090")
///     hw.host.memoryBytes = 256 * HardwareCatalog.GiB
public struct HardwareSpec: Codable, Sendable, Equatable {
    public var name: String
    public var gpu: GPUSpec
    public var link: LinkSpec
    public var host: HostSpec
    /// Source of every number, keyed by the field's path (`gpu.memoryBytes`, `link.h2dPinned`).
    public var sources: [String: String]

    /// Checks every number; throws naming the first out-of-range field.
    public func validate(path: String = "hardware") throws {
        // Ranges wide enough for any real device, narrow enough that no duration or count overflows.
        func positive(_ v: Double, _ field: String) throws {
            let range: ClosedRange<Double> = field.contains("Flops") ? 1e6...1e20 : 1e3...1e16
            guard v.isFinite, range.contains(v) else {
                throw InputError(field: "\(path).\(field)", "must be a number from \(fmt(range.lowerBound)) to \(fmt(range.upperBound)), got \(fmt(v))")
            }
        }
        try positive(gpu.memoryBytes, "gpu.memoryBytes")
        try positive(gpu.memoryBandwidthBytesPerSecond, "gpu.memoryBandwidthBytesPerSecond")
        try positive(gpu.gemmBytesPerSecond, "gpu.gemmBytesPerSecond")
        try positive(gpu.streamBytesPerSecond, "gpu.streamBytesPerSecond")
        guard gpu.attentionFlopsFraction > 0, gpu.attentionFlopsFraction <= 1 else {
            throw InputError(field: "\(path).gpu.attentionFlopsFraction", "must be in (0, 1], got \(fmt(gpu.attentionFlopsFraction))")
        }
        guard gpu.kernelSeconds >= 0, gpu.kernelSeconds < 1 else {
            throw InputError(field: "\(path).gpu.kernelSeconds", "must be from 0 to 1, got \(fmt(gpu.kernelSeconds))")
        }
        if let a = gpu.attentionKernelSeconds, !(a >= 0 && a < 1) {
            throw InputError(field: "\(path).gpu.attentionKernelSeconds", "must be from 0 to 1, got \(fmt(a))")
        }
        guard gpu.reservedBytes >= 0, gpu.reservedBytes < gpu.memoryBytes else {
            throw InputError(field: "\(path).gpu.reservedBytes", "must be from 0 to gpu.memoryBytes, got \(fmt(gpu.reservedBytes))")
        }
        guard !gpu.achievedMatmulFlops.isEmpty else {
            throw InputError(field: "\(path).gpu.achievedMatmulFlops", "must give a rate for at least one of fp16, bf16, fp32")
        }
        for (k, v) in gpu.achievedMatmulFlops {
            guard DType(rawValue: k) != nil else {
                throw InputError(field: "\(path).gpu.achievedMatmulFlops.\(k)", "unknown dtype; allowed are fp16, bf16, fp32")
            }
            try positive(v, "gpu.achievedMatmulFlops.\(k)")
        }
        for (name, c) in [("h2dPinned", link.h2dPinned), ("h2dPageable", link.h2dPageable),
                          ("d2hPinned", link.d2hPinned), ("d2hPageable", link.d2hPageable)] {
            try positive(c.bytesPerSecond, "link.\(name).bytesPerSecond")
            guard c.latencySeconds >= 0, c.latencySeconds < 1 else {
                throw InputError(field: "\(path).link.\(name).latencySeconds", "must be from 0 to 1, got \(fmt(c.latencySeconds))")
            }
        }
        try positive(host.memoryBytes, "host.memoryBytes")
    }
}
