import Foundation
import PlannerCore

/// Runs an `ExecutionPlan` of the scenario format on the CPU engine: a generation (the prefill of
/// the prompt split as the planner splits it, then one decode step per new token, each entry joining
/// the class `TokenGrowth` gives it), or repeated decode steps at one context.
public enum PlanRunner {
    /// What a run measured.
    public struct Result: Sendable {
        /// Logits of the prefill (generation only) and of every decode step, `batch x vocab` each
        /// (empty without the head or when not kept).
        public var logits: [[Float]]
        /// Seconds of the prefill (generation only).
        public var prefillSeconds: Double?
        /// Seconds of every decode step, in order (for a decode-step plan: the timed repeats).
        public var stepSeconds: [Double]
        /// Seconds the H2D copy thread was busy over the timed steps.
        public var h2dBusySeconds: Double
        /// With `recordKernels`: seconds of the weight GEMM calls (the LM head's included) and of the
        /// attention calls over the timed decode steps, as they ran inside the engine.
        public var gemmSeconds: Double?
        public var attentionSeconds: Double?
        public var totalSeconds: Double { (prefillSeconds ?? 0) + stepSeconds.reduce(0, +) }
        public var medianStepSeconds: Double { median(stepSeconds) }
        public var meanStepSeconds: Double { stepSeconds.isEmpty ? 0 : stepSeconds.reduce(0, +) / Double(stepSeconds.count) }
    }

    /// The engine shape a plan needs (buffers sized for the largest count of every class).
    public static func shape(_ plan: ExecutionPlan, includeHead: Bool? = nil) throws -> EngineShape {
        guard plan.microBatches == 1, !plan.hiddenOnHost else {
            throw InputError(field: "policy", "FlexGen's block schedule (numGpuBatches > 1, or activations on the CPU) is not executed by the CPU engine; use an explicit placement or another policy")
        }
        let growth = TokenGrowth(plan: plan)
        // The repeated decode steps of a decode-step plan overwrite one entry of the new token's
        // class, so the growth's peak is also what they need.
        let peak = growth.peak
        let positions: Int
        var rows = max(peak.recompute, 1)
        switch plan.phase {
        case .decodeStep(let c):
            positions = c + 1
        case .generate(let p, let t):
            positions = p + t
            rows = max(rows, p)
        }
        return EngineShape(model: plan.model, batch: plan.batch, weightsGPUFraction: plan.weights.gpuFraction, capacity: peak,
                           maxPositions: positions, maxRows: rows, includeHead: includeHead ?? plan.includeHead)
    }

    /// Seeded token ids, position-major (`count` positions of `batch` sequences).
    public static func tokens(_ count: Int, batch: Int, vocab: Int, seed: UInt64) -> [Int32] {
        var g = SplitMix(seed, 4242)
        return (0 ..< count * batch).map { _ in Int32(g.next() % UInt64(vocab)) }
    }

    /// Runs `plan` on `engine` (whose shape came from `shape(plan)`). A generation's input tokens are
    /// seeded (the same for every placement, so logits compare); a decode-step plan runs `warmup`
    /// untimed and `repeats` timed steps at the same context.
    /// With `recordKernels` the engine times its GEMM and attention calls during the timed decode steps.
    /// A decode-step plan fills the context first unless `fillContext` is false (the engine already
    /// holds the plan's context from an earlier run).
    public static func run(_ plan: ExecutionPlan, on engine: CPUDecoder, seed: UInt64 = 3, warmup: Int = 2, repeats: Int = 5,
                           keepLogits: Bool = true, recordKernels: Bool = false, fillContext: Bool = true) -> Result {
        func kernels(_ r: Result) -> Result {
            guard recordKernels else { return r }
            var r = r
            r.gemmSeconds = engine.gemmLog.values.reduce(0) { $0 + $1.seconds }
            r.attentionSeconds = engine.attentionLog.seconds
            engine.recordKernels = false
            return r
        }
        let growth = TokenGrowth(plan: plan)
        let B = plan.batch, vocab = engine.shape.model.vocab
        switch plan.phase {
        case .generate(let p, let t):
            let all = tokens(p + t, batch: B, vocab: vocab, seed: seed)
            engine.synchronize()
            let t0 = now()
            let first = engine.prefill(tokens: Array(all[0 ..< p * B]), split: growth.prompt!)
            engine.synchronize()
            let prefill = now() - t0
            var logits = keepLogits ? [first] : []
            engine.resetCopyCounters()
            if recordKernels { engine.resetKernelLogs(); engine.recordKernels = true }
            let steps = growth.steps.enumerated().map { i, s in (Array(all[(p + i) * B ..< (p + i + 1) * B]), s.newToken) }
            logits += engine.decodeSteps(steps, keepLogits: keepLogits)
            engine.synchronize()
            let ends = engine.stepEnds
            let times = (1 ..< ends.count).map { ends[$0] - ends[$0 - 1] }
            return kernels(Result(logits: logits, prefillSeconds: prefill, stepSeconds: times, h2dBusySeconds: engine.h2dBusySeconds))
        case .decodeStep:
            if fillContext { engine.fillContext(plan.placement) }
            let step = growth.steps[0]
            let ids = tokens(1, batch: B, vocab: vocab, seed: seed)
            _ = engine.decodeSteps(Array(repeating: (ids, step.newToken), count: max(warmup, 1)), advance: false, keepLogits: false)
            engine.synchronize()
            engine.resetCopyCounters()
            if recordKernels { engine.resetKernelLogs(); engine.recordKernels = true }
            // Steps run back to back, so that the next step's first loads overlap the last layer, as
            // in the simulator's steady state; each step's time is the interval between step ends.
            let logits = engine.decodeSteps(Array(repeating: (ids, step.newToken), count: repeats), advance: false, keepLogits: keepLogits)
            engine.synchronize()
            let ends = engine.stepEnds
            let times = (1 ..< ends.count).map { ends[$0] - ends[$0 - 1] }
            return kernels(Result(logits: logits, prefillSeconds: nil, stepSeconds: times, h2dBusySeconds: engine.h2dBusySeconds))
        }
    }
}
