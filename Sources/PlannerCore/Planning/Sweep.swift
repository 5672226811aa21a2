import Foundation

/// `planner sweep`: every KV:ACT ratio x batch of the hybrid policy, the baselines on the same
/// machine, and the ratio search's own pick.
public struct Sweep: Sendable {
    public var setup: Setup
    public var space: SearchSpace

    public init(setup: Setup, space: SearchSpace) {
        self.setup = setup
        self.space = space
    }

    /// The built-in default: OPT-30B on an RTX 4090 (24 GB) with 128 GB of host memory over
    /// PCIe 4.0, prompt 512, 32 new tokens, weights streamed; 101 ratios x 8 batch sizes.
    public static func defaultSweep() throws -> Sweep {
        Sweep(setup: Setup(model: try ModelCatalog.model(named: "opt-30b"), hardware: HardwareCatalog.rtx4090,
                           workload: Workload(prompt: 512, tokens: 32)),
              space: .sweepDefault)
    }

    /// The baselines a hybrid result is compared with.
    public enum Baseline: String, CaseIterable, Sendable {
        case kvOnly = "KV-only (FlexGen-style)"
        case actOnly = "ACT-only"
        case deepSpeed = "DeepSpeed ZeRO-Inference"
        case allGPU = "all-GPU"
        case flexGen = "FlexGen on its engine"

        public var key: String {
            switch self {
            case .kvOnly: "kvOnly"
            case .actOnly: "actOnly"
            case .deepSpeed: "deepSpeed"
            case .allGPU: "allGPU"
            case .flexGen: "flexGen"
            }
        }
    }

    /// Candidates of a baseline over the space's batches (and weights, where the policy leaves them free).
    /// FlexGen runs its own engine with every option the machine allows (`FlexGenChoice.options`).
    public func baselineCandidates(_ b: Baseline) -> [Candidate] {
        let kinds: (Double) -> [Candidate.Kind]
        let weights: [Double]
        switch b {
        case .kvOnly: weights = space.weightsGPUFractions; kinds = { _ in [.kvOnly] }
        case .actOnly: weights = space.weightsGPUFractions; kinds = { _ in [.actOnly] }
        case .deepSpeed: weights = space.weightsFixed && !space.weightsGPUFractions.contains(0) ? [] : [0]; kinds = { _ in [.deepSpeed] }
        case .allGPU: weights = space.weightsFixed && !space.weightsGPUFractions.contains(1) ? [] : [1]; kinds = { _ in [.allGPU] }
        case .flexGen:
            weights = space.weightsGPUFractions
            kinds = { w in FlexGenChoice.options(on: setup.hardware, weightsGPUFraction: w, allowCompression: space.allowCompression).map { .flexGen($0) } }
        }
        return weights.flatMap { w in kinds(w).flatMap { k in space.batches.map { Candidate(k, batch: $0, weightsGPUFraction: w) } } }
    }

    public func run(progress: (@Sendable (Int, Int) -> Void)? = nil) -> SweepResult {
        let clock = ContinuousClock()
        let start = clock.now
        let grid = space.lines.flatMap { line in space.ratios.map { line.candidate(ratio: $0) } }
        var all = grid
        var ranges: [Baseline: Range<Int>] = [:]
        for b in Baseline.allCases {
            let cs = baselineCandidates(b)
            ranges[b] = all.count ..< all.count + cs.count
            all += cs
        }
        let outcomes = Evaluator.evaluateAll(all, setup, progress: progress)
        let hybrid = Array(outcomes[0 ..< grid.count])
        var baselines: [Baseline: [Outcome]] = [:]
        for b in Baseline.allCases { baselines[b] = Array(outcomes[ranges[b]!]) }
        let searchStart = clock.now
        let search = RatioSearch.search(setup, space: space)
        let end = clock.now
        func secs(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18 }
        var result = SweepResult(sweep: self, hybrid: hybrid, baselines: baselines, search: search,
                                 sweepSeconds: secs(searchStart - start), searchSeconds: secs(end - searchStart))
        // The best at the grid's largest batch: how far past it throughput keeps rising.
        if let best = result.bestOverall {
            var extra: [Outcome] = []
            let (grown, batches) = PlanSearch.growBatch(from: best, sweep: self, tried: &extra)
            if !batches.isEmpty { result.beyondGrid = grown.candidate.batch > best.candidate.batch ? grown : nil; result.edgeChecked = true }
        }
        return result
    }
}

/// What a sweep found.
public struct SweepResult: Sendable {
    public var sweep: Sweep
    /// Hybrid outcomes, ratio-major within each (weights, recompute, batch) line: the grid.
    public var hybrid: [Outcome]
    public var baselines: [Sweep.Baseline: [Outcome]]
    public var search: SearchResult
    public var sweepSeconds: Double
    public var searchSeconds: Double
    /// Whether the best point sat at the grid's largest batch, and the best found past it (nil when
    /// a larger batch was no faster or did not fit). Not part of the grid's tables.
    public var edgeChecked = false
    public var beyondGrid: Outcome?

    /// The best hybrid point (the grid's mark).
    public var best: Outcome? { RatioSearch.bestOf(hybrid) }

    /// The best point of every policy simulated: the recommendation.
    public var bestOverall: Outcome? { RatioSearch.bestOf(allOutcomes) }

    public func bestBaseline(_ b: Sweep.Baseline) -> Outcome? { RatioSearch.bestOf(baselines[b] ?? []) }

    /// Why a baseline has no feasible point: the reason of its least-overflowing candidate.
    public func baselineFailure(_ b: Sweep.Baseline) -> String {
        let os = baselines[b] ?? []
        if os.isEmpty, sweep.space.weightsFixed { return "not searched: the weights are fixed to \(SweepReport.describeWeights(sweep.space.weightsGPUFractions))" }
        if let o = os.filter({ $0.capacityError != nil }).min(by: { $0.excess < $1.excess }) {
            return "does not fit even at batch \(o.candidate.batch): \(o.statusText)"
        }
        return os.first.map { $0.statusText } ?? "not evaluated"
    }

    /// For each ratio, the best feasible outcome over the other dimensions (nil when none fits),
    /// and the reason of the least-overflowing one otherwise.
    public func perRatio() -> [(ratio: Double, best: Outcome?, reason: String)] {
        sweep.space.ratios.map { r in
            let os = hybrid.filter { $0.candidate.kvFraction == r }
            if let b = RatioSearch.bestOf(os) { return (r, b, "ok") }
            let nearest = os.filter { $0.capacityError != nil }.min { $0.excess < $1.excess }
            return (r, nil, nearest.map { "batch \($0.candidate.batch): \($0.statusText)" } ?? (os.first?.statusText ?? "-"))
        }
    }

    /// All outcomes of the sweep, hybrid grid first.
    public var allOutcomes: [Outcome] {
        hybrid + Sweep.Baseline.allCases.flatMap { baselines[$0] ?? [] }
    }
}
