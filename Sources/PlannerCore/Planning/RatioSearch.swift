import Foundation

/// The grids a search ranges over.
public struct SearchSpace: Sendable, Equatable {
    /// KV fractions of the host-resident tokens (HybridServe's KV:ACT ratio).
    public var ratios: [Double]
    public var batches: [Int]
    public var weightsGPUFractions: [Double]
    public var recomputeFractions: [Double]
    /// Whether FlexGen's 4-bit group-wise compression of weights and cache may be chosen. Off by
    /// default: it changes the model's outputs, which is the user's call, not the planner's.
    public var allowCompression: Bool
    /// The user fixed the weights (`--weights`, a sweep file's `weights`): baselines that place the
    /// weights otherwise (DeepSpeed streams them, all-GPU keeps them resident) are left out unless
    /// the fixed share is theirs.
    public var weightsFixed = false

    public init(ratios: [Double], batches: [Int], weightsGPUFractions: [Double] = [0], recomputeFractions: [Double] = [0],
                allowCompression: Bool = false) {
        self.ratios = ratios
        self.batches = batches
        self.weightsGPUFractions = weightsGPUFractions
        self.recomputeFractions = recomputeFractions
        self.allowCompression = allowCompression
    }

    /// 0, 0.01, ..., 1.
    public static let percentRatios: [Double] = (0 ... 100).map { Double($0) / 100 }
    public static let defaultBatches = [8, 16, 32, 48, 64, 96, 128, 192]

    /// `planner sweep`'s default: 101 ratios x 8 batch sizes, weights streamed.
    public static let sweepDefault = SearchSpace(ratios: percentRatios, batches: defaultBatches)
    /// `planner plan`'s default: also a resident share of the weights and token recomputation.
    public static let planDefault = SearchSpace(ratios: percentRatios, batches: defaultBatches,
                                                weightsGPUFractions: [0, 0.25, 0.5, 0.75, 1], recomputeFractions: [0, 0.1, 0.2])

    /// One (batch, weights, recompute) combination of the hybrid space.
    public struct Line: Sendable, Hashable {
        public var batch: Int
        public var weightsGPUFraction: Double
        public var recomputeFraction: Double

        public func candidate(ratio: Double) -> Candidate {
            Candidate(.hybrid(kvFraction: ratio, recomputeFraction: recomputeFraction), batch: batch, weightsGPUFraction: weightsGPUFraction)
        }
    }

    public var lines: [Line] {
        var out: [Line] = []
        for w in weightsGPUFractions {
            for rho in recomputeFractions {
                for b in batches { out.append(Line(batch: b, weightsGPUFraction: w, recomputeFraction: rho)) }
            }
        }
        return out
    }
}

/// What a search found and what it cost.
public struct SearchResult: Sendable {
    public var best: Outcome?
    /// Every simulated candidate, in no particular order.
    public var evaluated: [Outcome]
    public var simulations: Int { evaluated.count }
}

/// HybridServe's KV:ACT ratio search: an analytic first guess where a decode layer's link time and
/// compute time balance, refined by simulating neighbouring ratios.
///
///     let result = RatioSearch.search(setup, space: .sweepDefault)
///     result.best?.candidate.kvFraction   // the chosen ratio
///     result.simulations                  // far fewer than 101 x 8
public enum RatioSearch {
    /// The KV fraction `r` of host tokens that minimises `max(link(r), compute(r))` for one decode
    /// layer at the mean context of the generation. Moving a host token from ACT to KV adds
    /// `kvBytes - actBytes` to the link and removes one K/V projection from the GPU; both sides are
    /// linear in `r`, so the balance is where the two lines cross:
    /// `r* = (C(0) - L(0)) / ((L(1) - L(0)) - (C(1) - C(0)))`, or an end point when they do not cross.
    /// Nil when the line's plans cannot be built (the ratio then does not matter or nothing fits).
    public static func balancedRatio(_ setup: Setup, line: SearchSpace.Line) -> Double? {
        guard let p0 = try? Evaluator.plan(line.candidate(ratio: 0), setup),
              let p1 = try? Evaluator.plan(line.candidate(ratio: 1), setup),
              let cost = try? setup.costModel() else { return nil }
        let mean = setup.workload.prompt + setup.workload.tokens / 2
        func sides(_ p: ExecutionPlan) -> (link: Double, compute: Double) {
            let cached = TokenPlacement.apportion(mean, like: p.placement)
            let builder = ScheduleBuilder(plan: p, cost: cost, expectedTasks: 0)
            return builder.decodeLayerSeconds(cached: cached, newToken: cached.classForNextToken(target: p.placement))
        }
        let (l0, c0) = sides(p0), (l1, c1) = sides(p1)
        func worst(_ r: Double) -> Double { max(l0 + r * (l1 - l0), c0 + r * (c1 - c0)) }
        var options = [0.0, 1.0]
        let denominator = (l1 - l0) - (c1 - c0)
        if abs(denominator) > 1e-15 {
            let r = (c0 - l0) / denominator
            if r > 0, r < 1 { options.append(r) }
        }
        return options.min { worst($0) < worst($1) }
    }

    /// Throughput for a feasible point; a point over the step bound ranks below every feasible one but
    /// by its step time, so that the climb still finds its way out of a too-slow region.
    static func score(_ o: Outcome) -> Double {
        if o.feasible { return o.tokensPerSecond }
        if case .tooSlow = o.status { return -o.stepSeconds }
        return -.infinity
    }

    /// Climbs from the grid ratio nearest the balance: tries neighbours `step` grid points away
    /// among the ratios that fit in memory, moves to a better one, halves the step when none is
    /// better. Memory feasibility is checked without simulating.
    static func climb(_ setup: Setup, line: SearchSpace.Line, ratios: [Double]) -> [Outcome] {
        let fitting = ratios.indices.filter { Evaluator.fits(line.candidate(ratio: ratios[$0]), setup) }
        guard !fitting.isEmpty else { return [] }
        let guess = balancedRatio(setup, line: line) ?? ratios[fitting[fitting.count / 2]]
        var seen: [Int: Outcome] = [:]
        func eval(_ position: Int) -> Outcome {
            let i = fitting[position]
            if let o = seen[i] { return o }
            let o = Evaluator.evaluate(line.candidate(ratio: ratios[i]), setup)
            seen[i] = o
            return o
        }
        var at = fitting.indices.min { abs(ratios[fitting[$0]] - guess) < abs(ratios[fitting[$1]] - guess) }!
        var best = eval(at)
        var step = max(1, fitting.count / 16)
        while step >= 1 {
            var moved = false
            for next in [at - step, at + step] where fitting.indices.contains(next) {
                let o = eval(next)
                if score(o) > score(best) {
                    best = o
                    at = next
                    moved = true
                }
            }
            if !moved { step /= 2 }
        }
        return seen.sorted { $0.key < $1.key }.map(\.value)
    }

    /// The search: one climb per (batch, weights, recompute) line, lines in parallel.
    public static func search(_ setup: Setup, space: SearchSpace) -> SearchResult {
        let lines = space.lines
        let box = Slots<[Outcome]>(count: lines.count)
        DispatchQueue.concurrentPerform(iterations: lines.count) { i in
            box.store(climb(setup, line: lines[i], ratios: space.ratios), at: i)
        }
        let all = box.results.flatMap { $0 ?? [] }
        return SearchResult(best: bestOf(all), evaluated: all)
    }

    /// Every grid point simulated.
    public static func exhaustive(_ setup: Setup, space: SearchSpace,
                                  progress: (@Sendable (Int, Int) -> Void)? = nil) -> SearchResult {
        let candidates = space.lines.flatMap { line in space.ratios.map { line.candidate(ratio: $0) } }
        let all = Evaluator.evaluateAll(candidates, setup, progress: progress)
        return SearchResult(best: bestOf(all), evaluated: all)
    }

    /// The feasible outcome with the highest throughput (ties: the earlier one).
    public static func bestOf(_ outcomes: [Outcome]) -> Outcome? {
        var best: Outcome?
        for o in outcomes where o.feasible {
            if best == nil || o.tokensPerSecond > best!.tokensPerSecond { best = o }
        }
        return best
    }
}
