import Testing
@testable import PlannerCore

/// Small, round-numbered models and devices whose costs can be worked out on paper.
enum Fixtures {
    /// Two layers, hidden 1024, 8 heads of 128, FFN 4096 (two-matrix), vocabulary 1024, fp16, no
    /// biases, untied head, rotary positions.
    ///
    /// Attention weights: Q, K, V, O = 4 x 1024 x 1024 = 4,194,304 elements + 1,024 (norm)
    ///   = 4,195,328 elements = 8,390,656 bytes.
    /// FFN weights: 2 x 1024 x 4096 = 8,388,608 + 1,024 (norm) = 8,389,632 elements = 16,779,264 bytes.
    /// KV per token per layer: 2 x 8 x 128 x 2 bytes = 4,096 bytes; ACT: 1024 x 2 = 2,048 bytes.
    static let tinyModel = ModelSpec(name: "tiny", layers: 2, hidden: 1024, heads: 8, kvHeads: 8, headDim: 128, ffnSize: 4096,
                                     ffnKind: .relu2, vocab: 1024, dtype: .fp16, maxContext: 8192, bias: false,
                                     tiedEmbeddings: false, learnedPositions: false, source: "test fixture")

    /// A device with round rates: `linkBytesPerSecond` both ways with no latency, GPU bandwidth and
    /// FLOP rate as given, `kernelSeconds` per kernel, 1 TiB of GPU and host memory.
    static func device(linkBytesPerSecond: Double, gpuBytesPerSecond: Double, flops: Double, kernelSeconds: Double) -> HardwareSpec {
        let ch = LinkChannel(latencySeconds: 0, bytesPerSecond: linkBytesPerSecond)
        return HardwareSpec(
            name: "paper-device",
            gpu: GPUSpec(name: "paper GPU", memoryBytes: 1024 * HardwareCatalog.GiB, memoryBandwidthBytesPerSecond: gpuBytesPerSecond,
                         peakMatmulFlops: ["fp16": flops], achievedMatmulFlops: ["fp16": flops],
                         gemmBytesPerSecond: gpuBytesPerSecond, streamBytesPerSecond: gpuBytesPerSecond,
                         attentionFlopsFraction: 1, kernelSeconds: kernelSeconds, reservedBytes: 0),
            link: LinkSpec(name: "paper link", h2dPinned: ch, h2dPageable: ch, d2hPinned: ch, d2hPageable: ch),
            host: HostSpec(memoryBytes: 1024 * HardwareCatalog.GiB), sources: [:])
    }

    /// Runs `body`, requires that it throws an `InputError`, and returns it, for the refusal tests
    /// to check its field and message.
    @discardableResult
    static func inputError(sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) throws -> InputError {
        try #require(throws: InputError.self, sourceLocation: sourceLocation) { try body() }
    }

    static func run(_ plan: ExecutionPlan) throws -> SimulationResult {
        try Simulator.run(plan, cost: AnalyticCostModel(hardware: plan.hardware, model: plan.model))
    }
}

/// The tests' random scenarios use the library's seeded generator (SplitMix64).
typealias SplitMix64 = SeededGenerator
