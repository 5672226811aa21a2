/// The bytes a plan stores and moves, with its compression and its engine's placement of weights.
///
/// Without compression these are the model's own sizes (`ModelSpec`). A 4-bit plan stores and moves
/// each matrix element in `Quantization.bytesPerElement` bytes and every vector (biases, norms) in
/// the model's element type; a compressed KV cache stores each cached element the same way.
extension ExecutionPlan {
    /// Bytes of one layer's `block` weights as stored (compressed or not).
    public func blockBytes(_ block: WeightBlock) -> Double {
        let m = model
        let e = Double(m.bytesPerElement)
        let all = Double(block == .attention ? m.attentionWeightElements : m.ffnWeightElements)
        guard let q = compression.weights else { return block == .attention ? m.attentionWeightBytes : m.ffnWeightBytes }
        let matrices = Double(block == .attention ? m.attentionMatrixElements : m.ffnMatrixElements)
        return matrices * q.bytesPerElement + (all - matrices) * e
    }

    /// Bytes of one layer's weights on each tier.
    public func layerBytes(_ tier: KeyPath<TierShares, Double>) -> Double {
        WeightBlock.allCases.reduce(0) { $0 + weights.tiers($1)[keyPath: tier] * blockBytes($1) }
    }

    /// Matrix elements of a block that dequantisation expands (0 without weight compression).
    public func dequantElements(_ block: WeightBlock) -> Double {
        guard compression.weights != nil else { return 0 }
        let t = weights.tiers(block)
        let matrices = Double(block == .attention ? model.attentionMatrixElements : model.ffnMatrixElements)
        // Resident compressed weights are expanded too: the engines keep every matrix compressed.
        return matrices * (t.gpu + t.streamed)
    }

    /// KV bytes per token per layer as cached (compressed or not).
    public var cachedKVBytesPerToken: Double {
        guard let q = compression.cache else { return model.kvBytesPerToken }
        return Double(2 * model.kvDim) * q.bytesPerElement
    }

    /// Elements of K and V per token per layer.
    public var kvElementsPerToken: Double { Double(2 * model.kvDim) }

    /// Where the token embedding (and positions) and the output head live: the ideal engine and
    /// Accelerate keep them on the GPU (FlexGen's HF baseline maps them there, hf_opt.py 157-180);
    /// FlexGen places the InputEmbed and OutputEmbed layers by its `--percent` rule like any other
    /// (flex_opt.py 152-157, 216-223), with OutputEmbed holding its own copy of the token matrix;
    /// ZeRO-3 partitions them like every parameter and fetches the tied matrix at both uses
    /// (partitioned_param_coordinator.py 524-554).
    public var embeddingPlacement: EmbeddingPlacement {
        let m = model
        let e = Double(m.bytesPerElement)
        let token = Double(m.vocab * m.hidden) * e
        let positions = m.learnedPositions ? Double((m.maxContext + 2) * m.hidden) * e : 0
        let norm = Double((m.bias ? 2 : 1) * m.hidden) * e
        // The head multiplies by the token matrix (tied) or by its own matrix of the same size.
        let head = token
        switch engine.kind {
        case .ideal, .hfAccelerate:
            return EmbeddingPlacement(input: .init(gpuBytes: m.embeddingBytes), output: .init())
        case .deepSpeedZeroInference:
            return EmbeddingPlacement(input: .init(hostBytes: token + positions), output: .init(hostBytes: norm + head))
        case .flexgen:
            guard let percent = flexGenPercent else { return EmbeddingPlacement(input: .init(gpuBytes: m.embeddingBytes), output: .init()) }
            return EmbeddingPlacement(input: FlexGenPlacement.tiers([(token, true), (positions, true)], percent: percent),
                                      output: FlexGenPlacement.tiers([(norm / 2, false), (norm / 2, false), (head, true)], percent: percent))
        }
    }
}

/// Bytes of the input embedding (token matrix and positions) and of the output layer (final norm
/// and head) on each tier; what is not on the GPU is copied to it in every step.
public struct EmbeddingPlacement: Equatable, Sendable {
    public var input: FlexGenPlacement.Tiers
    public var output: FlexGenPlacement.Tiers
    public var residentBytes: Double { input.gpuBytes + output.gpuBytes }
    public var hostBytes: Double { input.hostBytes + output.hostBytes }
    public var diskBytes: Double { input.diskBytes + output.diskBytes }
}

/// FlexGen's placement of weights by `--percent` (flex_opt.py 82-101): within each layer's list of
/// weight tensors, a tensor goes to the first tier, in the order disk, CPU, GPU, whose cumulative
/// percentage exceeds the midpoint of the tensor's cumulative size, `(cumsum - size / 2) / total`.
/// Whole tensors move, not a fraction of each: for OPT-30B, `--percent 20 80` keeps only the
/// attention output matrix (and the vectors) of every layer on the GPU, 8.3% of its weights.
public enum FlexGenPlacement {
    public struct Tiers: Equatable, Sendable {
        public var gpuBytes = 0.0, hostBytes = 0.0, diskBytes = 0.0
        public init(gpuBytes: Double = 0, hostBytes: Double = 0, diskBytes: Double = 0) {
            self.gpuBytes = gpuBytes; self.hostBytes = hostBytes; self.diskBytes = diskBytes
        }
        public var streamedBytes: Double { hostBytes + diskBytes }
        public var total: Double { gpuBytes + hostBytes + diskBytes }
        public var shares: TierShares {
            total > 0 ? TierShares(gpu: gpuBytes / total, host: hostBytes / total, disk: diskBytes / total) : TierShares(gpu: 1, host: 0)
        }
    }

    /// The tier of each tensor of sizes `sizes` (in the layer's order), by the midpoint rule; the
    /// bytes summed per tier. `percent` is FlexGen's six numbers; the weights use the first two.
    public static func tiers(_ tensors: [(bytes: Double, matrix: Bool)], percent: [Double]) -> Tiers {
        let total = tensors.reduce(0) { $0 + $1.bytes }
        guard total > 0 else { return Tiers() }
        let gpu = percent[0], cpu = percent[1]
        let disk = max(0, 100 - gpu - cpu)
        var t = Tiers()
        var cumulative = 0.0
        for tensor in tensors {
            cumulative += tensor.bytes
            let mid = (cumulative - tensor.bytes / 2) / total * 100
            if mid < disk { t.diskBytes += tensor.bytes } else if mid < disk + cpu { t.hostBytes += tensor.bytes } else { t.gpuBytes += tensor.bytes }
        }
        return t
    }

    /// Tier shares of one block of `model` under `percent`, by the bytes of its tensors as stored.
    public static func shares(_ block: WeightBlock, model: ModelSpec, percent: [Double]) -> TierShares {
        let e = Double(model.bytesPerElement)
        return tiers(model.tensors(block).map { (Double($0.elements) * e, $0.matrix) }, percent: percent).shares
    }
}
