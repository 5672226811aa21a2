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

    /// Host time to issue one asynchronous copy (`cudaMemcpyAsync`) into a stream's queue; nil:
    /// `defaultCopyIssueSeconds`. While the copy engine moves one copy, the host issues the next, so
    /// a queue of copies runs at the slower of the two (`queuedSeconds`).
    public var copyIssueSeconds: Double?

    /// 2.3 us a call: measured on an H20 host issuing one `cudaMemcpyAsync` per KV chunk
    /// (taco-project/FlexKV pull request 193, 2026-07-03: "the per-call overhead (~2.3 us) dominates
    /// chunk-sized transfers"); DualPath (Wu et al., arXiv 2602.21548, Sec. 5.2) reports 5 to 7 us a
    /// call end to end for small chunks.
    public static let defaultCopyIssueSeconds = 2.3e-6

    public var issueSeconds: Double { copyIssueSeconds ?? Self.defaultCopyIssueSeconds }

    /// Seconds for `copies` copies of `bytes` each issued back to back on one stream, as vLLM V0's
    /// `swap_blocks` issues a block per call: the first pays the channel's latency and its bytes;
    /// each later one waits for the slower of its issue on the host and its transfer on the copy
    /// engine, `latency + b / bw + (n - 1) max(issue, b / bw)`.
    public func queuedSeconds(copies: Int, bytes: Double, _ direction: LinkDirection, _ memory: HostMemoryKind) -> Double {
        guard copies > 0, bytes > 0 else { return 0 }
        let c = channel(direction, memory)
        let transfer = bytes / c.bytesPerSecond
        return c.latencySeconds + transfer + Double(copies - 1) * max(issueSeconds, transfer)
    }

    /// Host time per copy descriptor of one batched submission (`cuMemcpyBatchAsync`): about 0.5 us,
    /// measured in vLLM pull request 48434 (12,288 descriptors of 8 KiB took 6.33 ms to enqueue).
    public static let batchedDescriptorSeconds = 0.5e-6

    /// Seconds for one batched submission of `descriptors` copies, `bytes` in all, as vLLM 0.34's
    /// CPU KV offloading issues a store or load job (one `swap_blocks_batch` call,
    /// `vllm/v1/kv_offload/cpu/gpu_worker.py` 543-684): the link's latency, then the slower of the
    /// host enqueueing the descriptors and the bytes moving, `latency + max(n d, bytes / bw)`.
    public func batchedSeconds(descriptors: Int, bytes: Double, _ direction: LinkDirection, _ memory: HostMemoryKind) -> Double {
        guard descriptors > 0, bytes > 0 else { return 0 }
        let c = channel(direction, memory)
        return c.latencySeconds + max(Double(descriptors) * Self.batchedDescriptorSeconds, bytes / c.bytesPerSecond)
    }

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
    /// Bytes read plus written per second by a device-to-device copy (concatenating cache pieces),
    /// where it differs from `streamBytesPerSecond`; nil: `streamBytesPerSecond`. The CPU device sets
    /// it to its memcpy rate: its decode attention, which sets `streamBytesPerSecond`, computes as
    /// it reads and moves a quarter of the bytes per second a memcpy does.
    public var copyBytesPerSecond: Double? = nil

    public func matmulFlops(_ dtype: DType) -> Double? { achievedMatmulFlops[dtype.rawValue] }
}

/// How kernels and host-link copies slow each other down when they run at the same time because
/// they share one memory system. On a CPU the compute thread and the copy threads read and write the
/// same DRAM and last-level cache: weights streaming beside a decode GEMM make the GEMM about 1.3 to
/// 1.8 times slower (profiles/cpu-amd-epyc-2c). On a GPU a PCIe copy takes a few percent of HBM
/// bandwidth at most, and the catalog's GPUs leave this out (no slowdown).
///
/// A task runs at its own speed while it is alone and at `1 / factor` of it while a task of the
/// other kind is in flight (the event engine plays this out piece by piece, see `EventEngine`).
public struct MemoryContention: Codable, Sendable, Equatable {
    /// Factor on a GEMM's time while a copy runs, by the GEMM's rows `m`: `[[m, factor], ...]` with `m`
    /// rising, interpolated linearly in `log m` and flat beyond the first and last rows.
    public var gemmSlowdown: [[Double]]
    /// Factor on the time of the other kernels (attention, norms, element-wise work, device copies)
    /// while a copy runs; they stream memory like a decode GEMM.
    public var streamSlowdown: Double
    /// Factor on a copy's time while the compute stream runs a kernel.
    public var copySlowdown: Double

    public init(gemmSlowdown: [[Double]], streamSlowdown: Double, copySlowdown: Double) {
        self.gemmSlowdown = gemmSlowdown
        self.streamSlowdown = streamSlowdown
        self.copySlowdown = copySlowdown
    }

    /// The factor for a GEMM of `m` rows.
    public func gemmFactor(rows m: Int) -> Double {
        guard let first = gemmSlowdown.first, let last = gemmSlowdown.last else { return 1 }
        let x = Double(max(m, 1))
        if x <= first[0] { return first[1] }
        if x >= last[0] { return last[1] }
        for i in 1 ..< gemmSlowdown.count where x <= gemmSlowdown[i][0] {
            let a = gemmSlowdown[i - 1], b = gemmSlowdown[i]
            let t = (log(x) - log(a[0])) / (log(b[0]) - log(a[0]))
            return a[1] + t * (b[1] - a[1])
        }
        return last[1]
    }

    /// The factor for an operation: a copy's while compute runs, a kernel's while a copy runs.
    public func factor(_ op: Operation) -> Double {
        switch op {
        case let .gemm(m, _, _), let .packedGemm(m, _, _, _): gemmFactor(rows: m)
        case .transfer: copySlowdown
        case .decodeAttention, .latentAttention, .prefillAttention, .elementwise, .deviceCopy: streamSlowdown
        }
    }

    func validate(path: String) throws {
        let factors: ClosedRange<Double> = 1...10
        guard !gemmSlowdown.isEmpty else { throw InputError(field: "\(path).gemmSlowdown", "must hold at least one [m, factor] pair") }
        var lastM = 0.0
        for (i, row) in gemmSlowdown.enumerated() {
            guard row.count == 2 else { throw InputError(field: "\(path).gemmSlowdown[\(i)]", "must be a pair [m, factor], got \(row.count) numbers") }
            guard row[0].isFinite, row[0] >= 1, row[0] <= 1e7, row[0] > lastM else {
                throw InputError(field: "\(path).gemmSlowdown[\(i)][0]", "rows m must rise from 1 to 1e7, got \(fmt(row[0])) after \(fmt(lastM))")
            }
            guard factors.contains(row[1]) else { throw InputError(field: "\(path).gemmSlowdown[\(i)][1]", "must be a factor from 1 to 10, got \(fmt(row[1]))") }
            lastM = row[0]
        }
        for (name, v) in [("streamSlowdown", streamSlowdown), ("copySlowdown", copySlowdown)] where !factors.contains(v) {
            throw InputError(field: "\(path).\(name)", "must be a factor from 1 to 10, got \(fmt(v))")
        }
    }
}

/// The host: its memory for streamed weights and host caches.
public struct HostSpec: Codable, Sendable, Equatable {
    public var memoryBytes: Double
}

/// The host's processor, as far as an engine computes on it: attention over a host-resident KV
/// cache (FlexGen's `--cpu-cache-compute`, ZeRO-Inference's KV offload) and the copies that stage
/// pageable memory into pinned buffers. Its kernels are memory-bound: decode attention reads each
/// cached element once for a few FLOPs, so a CPU task costs
/// `max(bytes / memoryBytesPerSecond, FLOPs / fp32FlopsPerSecond)`.
public struct HostCPUSpec: Codable, Sendable, Equatable {
    public var name: String
    public var cores: Int
    /// Bytes per second that multithreaded tensor operations (copies, conversions, batched
    /// matrix-vector products) move through host memory on all cores.
    public var memoryBytesPerSecond: Double
    /// fp32 FLOP/s such operations achieve on all cores.
    public var fp32FlopsPerSecond: Double
    /// Bytes per second one thread copies between two host buffers (a pageable tensor staged into
    /// pinned memory by `tensor.pin_memory()`).
    public var singleThreadCopyBytesPerSecond: Double
}

/// A disk (NVMe) as a third memory level: weights or KV that neither GPU nor host memory holds.
/// Reads and writes are separate queues; a read of `b` bytes takes `b / readBytesPerSecond`.
public struct DiskSpec: Codable, Sendable, Equatable {
    public var name: String
    public var capacityBytes: Double
    public var readBytesPerSecond: Double
    public var writeBytesPerSecond: Double
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
    /// How kernels and copies slow each other when they overlap; nil: they do not (the catalog's GPUs).
    public var contention: MemoryContention? = nil
    /// The host CPU's rates; nil: unknown, and CPU attention is refused on this machine.
    public var hostCPU: HostCPUSpec? = nil
    /// A disk for a third memory level; nil: none, and a disk share is refused.
    public var disk: DiskSpec? = nil

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
        if let c = gpu.copyBytesPerSecond { try positive(c, "gpu.copyBytesPerSecond") }
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
        if let v = link.copyIssueSeconds, !(v >= 0 && v < 1) {
            throw InputError(field: "\(path).link.copyIssueSeconds", "must be from 0 to less than 1, got \(fmt(v))")
        }
        try positive(host.memoryBytes, "host.memoryBytes")
        try contention?.validate(path: "\(path).contention")
        if let cpu = hostCPU {
            guard (1...4096).contains(cpu.cores) else {
                throw InputError(field: "\(path).hostCPU.cores", "must be an integer from 1 to 4096, got \(cpu.cores)")
            }
            try positive(cpu.memoryBytesPerSecond, "hostCPU.memoryBytesPerSecond")
            try positive(cpu.fp32FlopsPerSecond, "hostCPU.fp32FlopsPerSecond")
            try positive(cpu.singleThreadCopyBytesPerSecond, "hostCPU.singleThreadCopyBytesPerSecond")
        }
        if let d = disk {
            try positive(d.capacityBytes, "disk.capacityBytes")
            try positive(d.readBytesPerSecond, "disk.readBytesPerSecond")
            try positive(d.writeBytesPerSecond, "disk.writeBytesPerSecond")
        }
    }
}
