/// A roofline cost model over the device's achieved rates.
///
/// Every formula is written as the equation it implements, so a predicted number can be checked by
/// hand from this file and the hardware entry:
///
/// - GEMM (Williams et al., "Roofline", CACM 2009): `t = kernel + max(F / R, W / B_gemm + (A + C) / B_stream)`
///   with `F = 2 m n k` FLOPs, `W = k n` weight bytes, `A = m k` and `C = m n` activation bytes, `R` the
///   achieved matrix rate. Shape dependence: tensor cores work on tiles of 64 rows, so `m` is rounded
///   up to a multiple of 64 in `F` when `m >= 64` and to a multiple of 16 below (small `m` is
///   memory-bound anyway: a decode GEMM reads the whole weight).
///   A packed GEMM (a quantised checkpoint) is the same with `W = k n w`, `w` its bytes an element.
/// - Decode attention: memory-bound over the cache it reads:
///   `t = kernel_att + (2 b c kvHeads d e_kv + 2 b heads d e) / B_stream`, `kernel_att` the attention call's
///   fixed cost (`attentionKernelSeconds`, else `kernelSeconds`), `e_kv` the cache's bytes an
///   element (1 for an fp8 cache, else `e`).
/// - Latent attention (decode, absorbed): `F = 2 b heads c (2 latent + rope)`, bytes
///   `b c (latent + rope) e_kv + 2 b heads (latent + rope) e`; `t = kernel_att + max(F / (R f_att), bytes / B_stream)`:
///   every head reads the one latent, so it is compute-bound where the device's FLOP:byte ratio is
///   below about `2 heads`.
/// - Prefill attention (flash, causal): `F = 4 b heads d q (c - q/2)`; `t = kernel_att + max(F / (R f_att), bytes / B_stream)`.
/// - Element-wise: `t = kernel + bytes / B_stream`; device copy reads and writes: `t = kernel + 2 bytes / B_copy`,
///   `B_copy` the device's `copyBytesPerSecond`, else `B_stream`.
/// - Link: `t = latency + bytes / bandwidth` of the direction and host-memory kind (see `LinkChannel`).
public struct AnalyticCostModel: CostModel {
    public let hardware: HardwareSpec
    public let dtype: DType
    let matmulFlops: Double
    let bytesPerElement: Double
    /// Bytes of one cached K or V element.
    let kvBytesPerElement: Double

    /// The cost model of `model` on `hardware`: its element type and its cache's.
    public init(hardware: HardwareSpec, model: ModelSpec) throws {
        try self.init(hardware: hardware, dtype: model.dtype, kvBytesPerElement: model.kvCacheElementBytes.map(Double.init))
    }

    public init(hardware: HardwareSpec, dtype: DType, kvBytesPerElement: Double? = nil) throws {
        self.hardware = hardware
        self.dtype = dtype
        guard let rate = hardware.gpu.matmulFlops(dtype) else {
            throw InputError(field: "hardware.gpu.achievedMatmulFlops", "\(hardware.name) has no matrix rate for \(dtype.rawValue); it has \(hardware.gpu.achievedMatmulFlops.keys.sorted().joined(separator: ", ")); set the scenario's \"dtype\" (or --dtype) to one of those")
        }
        self.matmulFlops = rate
        self.bytesPerElement = Double(dtype.bytes)
        self.kvBytesPerElement = kvBytesPerElement ?? Double(dtype.bytes)
    }

    @inline(__always) static func tileRounded(_ m: Int) -> Int {
        let tile = m >= 64 ? 64 : 16
        return (m + tile - 1) / tile * tile
    }

    /// The device's contention factor for `op` (`MemoryContention.factor`); 1 without contention.
    public func contentionFactor(_ op: Operation) -> Double {
        hardware.contention?.factor(op) ?? 1
    }

    public func seconds(_ op: Operation) -> Double {
        let gpu = hardware.gpu
        switch op {
        case let .gemm(m, n, k):
            return seconds(.packedGemm(m: m, n: n, k: k, weightBytes: bytesPerElement))
        case let .packedGemm(m, n, k, w):
            if m <= 0 || n <= 0 || k <= 0 { return 0 }
            let flops = 2.0 * Double(AnalyticCostModel.tileRounded(m)) * Double(n) * Double(k)
            let weightBytes = Double(k) * Double(n) * w
            let activationBytes = (Double(m) * Double(k) + Double(m) * Double(n)) * bytesPerElement
            let memory = weightBytes / gpu.gemmBytesPerSecond + activationBytes / gpu.streamBytesPerSecond
            return gpu.kernelSeconds + max(flops / matmulFlops, memory)
        case let .latentAttention(b, heads, latent, rope, c):
            if b <= 0 || c <= 0 { return 0 }
            let flops = 2.0 * Double(b) * Double(heads) * Double(c) * Double(2 * latent + rope)
            let bytes = Double(b) * Double(c) * Double(latent + rope) * kvBytesPerElement + 2.0 * Double(b * heads * (latent + rope)) * bytesPerElement
            return (gpu.attentionKernelSeconds ?? gpu.kernelSeconds) + max(flops / (matmulFlops * gpu.attentionFlopsFraction), bytes / gpu.streamBytesPerSecond)
        case let .decodeAttention(b, heads, kvHeads, d, c):
            if b <= 0 || c <= 0 { return 0 }
            let bytes = 2.0 * Double(b) * Double(c) * Double(kvHeads * d) * kvBytesPerElement + 2.0 * Double(b * heads * d) * bytesPerElement
            return (gpu.attentionKernelSeconds ?? gpu.kernelSeconds) + bytes / gpu.streamBytesPerSecond
        case let .prefillAttention(b, heads, kvHeads, d, q, c):
            if b <= 0 || q <= 0 { return 0 }
            let flops = 4.0 * Double(b) * Double(heads) * Double(d) * Double(q) * (Double(c) - Double(q) / 2.0)
            let bytes = (Double(b) * Double(c) * Double(2 * kvHeads * d) + 2.0 * Double(b * q * heads * d)) * bytesPerElement
            return (gpu.attentionKernelSeconds ?? gpu.kernelSeconds) + max(flops / (matmulFlops * gpu.attentionFlopsFraction), bytes / gpu.streamBytesPerSecond)
        case let .elementwise(bytes):
            return bytes <= 0 ? 0 : gpu.kernelSeconds + bytes / gpu.streamBytesPerSecond
        case let .deviceCopy(bytes):
            return bytes <= 0 ? 0 : gpu.kernelSeconds + 2 * bytes / (gpu.copyBytesPerSecond ?? gpu.streamBytesPerSecond)
        case let .transfer(bytes, direction, memory):
            return hardware.link.channel(direction, memory).seconds(bytes: bytes)
        }
    }
}
