/// How each sequence's context fills the placement classes over a phase.
///
/// For a generation, the prompt is split in the placement's proportions (largest remainder) and each
/// new token joins the class furthest below its share, so the split follows the placement within one
/// token and no entry ever moves. For a single decode step the context is the placement as given.
public struct TokenGrowth: Sendable {
    public struct Step: Sendable {
        /// Tokens cached per sequence before the step, by class.
        public var cached: TokenPlacement
        /// Class of the entry this step writes.
        public var newToken: TokenClass
    }

    /// Prompt split (generation only).
    public var prompt: TokenPlacement?
    public var steps: [Step]
    /// Largest count of every class during the phase (what memory must hold).
    public var peak: TokenPlacement

    public init(plan: ExecutionPlan) {
        let target = plan.placement
        switch plan.phase {
        case .decodeStep:
            let new = target.classForNextToken(target: target)
            var after = target
            after[new] += 1
            prompt = nil
            // A warm-up step, then the measured step, at the same context.
            steps = [Step(cached: target, newToken: new), Step(cached: target, newToken: new)]
            peak = after
        case .generate(let p, let t):
            var counts = TokenPlacement.apportion(p, like: target)
            prompt = counts
            var s: [Step] = []
            s.reserveCapacity(max(t - 1, 0))
            for _ in 1 ..< max(t, 1) {
                let new = counts.classForNextToken(target: target)
                s.append(Step(cached: counts, newToken: new))
                counts[new] += 1
            }
            steps = s
            peak = counts
        }
    }
}

/// GPU and host memory of a plan, item by item.
public struct MemoryReport: Sendable {
    public var gpu: [(name: String, bytes: Double)]
    public var host: [(name: String, bytes: Double)]
    public var gpuCapacity: Double
    public var hostCapacity: Double
    /// What lives on disk, for plans with a disk tier (empty otherwise).
    public var disk: [(name: String, bytes: Double)] = []
    public var diskCapacity: Double = 0

    public var gpuUsed: Double { gpu.reduce(0) { $0 + $1.bytes } }
    public var hostUsed: Double { host.reduce(0) { $0 + $1.bytes } }
    public var diskUsed: Double { disk.reduce(0) { $0 + $1.bytes } }
    /// Whether every level holds what the plan puts there.
    public var fits: Bool { gpuUsed <= gpuCapacity && hostUsed <= hostCapacity && diskUsed <= diskCapacity }

    /// Throws a `CapacityError` naming the memory that overflows and by how much (the GPU first; when
    /// both overflow, the description says so).
    public func check() throws {
        if gpuUsed > gpuCapacity, hostUsed > hostCapacity {
            var e = CapacityError(memory: "GPU", neededBytes: gpuUsed, capacityBytes: gpuCapacity, breakdown: gpu.map { ($0.name, $0.bytes) })
            e.alsoOver = "host memory is also over by \(formatBytes(hostUsed - hostCapacity))"
            throw e
        }
        if gpuUsed > gpuCapacity {
            throw CapacityError(memory: "GPU", neededBytes: gpuUsed, capacityBytes: gpuCapacity, breakdown: gpu.map { ($0.name, $0.bytes) })
        }
        if hostUsed > hostCapacity {
            throw CapacityError(memory: "host", neededBytes: hostUsed, capacityBytes: hostCapacity, breakdown: host.map { ($0.name, $0.bytes) })
        }
        if diskUsed > diskCapacity {
            throw CapacityError(memory: "disk", neededBytes: diskUsed, capacityBytes: diskCapacity, breakdown: disk.map { ($0.name, $0.bytes) })
        }
    }
}

/// Memory accounting for every placement (DESIGN.md, "Memory"):
/// GPU = resident weights + two layer weight buffers + GPU caches + two cache load buffers + working
/// set (attention K/V buffer, activations, logits) + reserved; host = streamed weights + host caches
/// (+ hidden states when FlexGen keeps activations on the CPU).
public enum MemoryModel {
    public static func report(_ plan: ExecutionPlan) -> MemoryReport {
        report(plan, peak: TokenGrowth(plan: plan).peak)
    }

    public static func report(_ plan: ExecutionPlan, peak: TokenPlacement) -> MemoryReport {
        if !plan.engine.followsIdealSchedule { return engineReport(plan, peak: peak) }
        let m = plan.model
        let e = Double(m.bytesPerElement)
        let b = Double(plan.batch)
        let gb = Double(plan.microBatchSize)
        let streamed = plan.weights.streamedFraction
        var promptTokens = 0
        if case .generate(let p, _) = plan.phase { promptTokens = p }

        // Activations of q tokens per sequence for one micro-batch inside one layer: input and
        // normed input, Q/K/V, attention output, FFN intermediate(s).
        // Activations of `rows` token rows inside one layer: input and normed input, Q/K/V,
        // attention output, FFN intermediate(s).
        let widths = Double(2 * m.hidden + m.attentionActivationWidth + m.hidden + (m.ffnKind.matrices - 1) * m.ffnActivationWidth)
        func working(rows: Double) -> Double { rows * widths * e }
        // The residual stream of every sequence between layers (unless FlexGen keeps it on the host).
        let hiddenStates: Double = plan.hiddenOnHost ? 0 : b * Double(m.hidden) * e
        let recomputeTokens = Double(peak.recompute)
        let decodeWorking: Double = working(rows: gb) + hiddenStates + working(rows: gb * recomputeTokens)
            + recomputeTokens * hiddenStates
        var prefillWorking: Double = 0
        if case .generate(let p, _) = plan.phase {
            let chunk = ScheduleBuilder.prefillChunks(microBatch: plan.microBatchSize, prompt: p, fixed: plan.hiddenOnHost)[0]
            prefillWorking = working(rows: Double(chunk * p)) + Double(p) * hiddenStates
        }
        // The caches summed over layers (a sliding window's local layers hold at most the window).
        let held = peak.summedOverLayers(of: m)
        // Buffers serve the widest layer: a global one, or the window when every layer is local.
        let widest = m.slidingWindow?.pattern.allSatisfy({ $0 }) == true ? peak.cached(atLayer: 0, of: m) : peak
        let mixed = widest.gpuKV < widest.total
        let attentionBuffer = mixed ? gb * (Double(widest.total) + 1) * m.kvBytesPerToken : 0
        let loadBuffers = 2 * gb * (Double(widest.hostKV) * m.kvBytesPerToken + Double(widest.hostAct) * m.actBytesPerToken)

        let gpu: [(String, Double)] = [
            ("resident weights", plan.weights.gpuFraction * m.weightBytesOverLayers + m.embeddingBytes),
            ("weight buffers", streamed > 0 ? 2 * streamed * m.largestLayerWeightBytes : 0),
            ("GPU KV cache", b * Double(held.gpuKV) * m.kvBytesPerToken),
            ("GPU ACT cache", b * Double(held.gpuAct) * m.actBytesPerToken),
            ("cache load buffers", loadBuffers),
            ("attention K/V buffer", attentionBuffer),
            ("activations", max(decodeWorking, prefillWorking)),
            ("logits", b * Double(m.vocab) * 4),
            ("reserved", plan.hardware.gpu.reservedBytes),
        ]
        let host: [(String, Double)] = [
            ("streamed weights", streamed * m.weightBytesOverLayers),
            ("host KV cache", b * Double(held.hostKV) * m.kvBytesPerToken),
            ("host ACT cache", b * Double(held.hostAct) * m.actBytesPerToken),
            ("hidden states", plan.hiddenOnHost ? b * Double(max(promptTokens, 1) * m.hidden) * e : 0),
        ]
        return MemoryReport(gpu: gpu.map { (name: $0.0, bytes: $0.1) }, host: host.map { (name: $0.0, bytes: $0.1) },
                            gpuCapacity: plan.hardware.gpu.memoryBytes, hostCapacity: plan.hardware.host.memoryBytes)
    }
}
