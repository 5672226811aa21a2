/// One unit of work whose duration a cost model predicts.
public enum Operation: Sendable, Equatable {
    /// `C[m x n] = A[m x k] * B[k x n]`, B being a weight matrix.
    case gemm(m: Int, n: Int, k: Int)
    /// The same product with B stored in `weightBytes` bytes an element (a quantised checkpoint's
    /// packed weights, scales included), dequantised inside the kernel as AWQ, GPTQ (Marlin) and
    /// FP8 GEMMs do: fewer weight bytes read, the same FLOPs.
    case packedGemm(m: Int, n: Int, k: Int, weightBytes: Double)
    /// One query per sequence against `context` cached keys and values.
    case decodeAttention(batch: Int, heads: Int, kvHeads: Int, headDim: Int, context: Int)
    /// One query per sequence and head against `context` cached latents of `latent + rope`
    /// elements, in the latent space (multi-head latent attention with the up-projections absorbed):
    /// scores over `latent + rope`, values over `latent`, for all `heads` sharing one latent.
    case latentAttention(batch: Int, heads: Int, latent: Int, rope: Int, context: Int)
    /// Causal attention of `queries` new tokens per sequence over `context` tokens (the last
    /// `queries` of which are the new ones).
    case prefillAttention(batch: Int, heads: Int, kvHeads: Int, headDim: Int, queries: Int, context: Int)
    /// A memory-bound kernel that reads and writes `bytes` in total (norms, activations, residuals).
    case elementwise(bytes: Double)
    /// A device-to-device copy of `bytes` (concatenating cache pieces into one K/V tensor).
    case deviceCopy(bytes: Double)
    /// One copy over the host link.
    case transfer(bytes: Double, direction: LinkDirection, memory: HostMemoryKind)
}

/// Predicts how long an operation takes on one device.
///
/// Two implementations are planned: `AnalyticCostModel` (a roofline from the device's rates) and a
/// profile-backed model that interpolates measured kernel tables. The simulator only sees this
/// protocol.
///
///     let cost: any CostModel = AnalyticCostModel(hardware: .rtx4090, dtype: .fp16)
///     cost.seconds(.gemm(m: 64, n: 3 * 5120, k: 5120))
public protocol CostModel: Sendable {
    func seconds(_ op: Operation) -> Double
    /// How many times longer `op` takes while a task of the other kind overlaps it on a device whose
    /// kernels and copies share one memory system (`HardwareSpec.contention`): a kernel while a copy
    /// runs, a copy while a kernel runs. Without contention, 1.
    func contentionFactor(_ op: Operation) -> Double
}

extension CostModel {
    public func contentionFactor(_ op: Operation) -> Double { 1 }
}
