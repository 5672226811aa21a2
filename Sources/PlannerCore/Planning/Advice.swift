/// When nothing fits: the constraint that binds and the smallest change that would make a
/// configuration fit, instead of an empty table.
public enum Advice {
    /// `outcomes` are the candidates that were tried; `kinds` the policies to consider for the advice.
    public static func nothingFits(_ setup: Setup, outcomes: [Outcome]) -> String {
        let overflowing = outcomes.filter { $0.capacityError != nil }
        guard let closest = overflowing.min(by: { $0.excess < $1.excess }), let e = closest.capacityError else {
            let reasons = Set(outcomes.map(\.statusText)).sorted().prefix(3).joined(separator: "; ")
            return "no configuration is feasible: \(reasons)"
        }
        var c = closest.candidate
        var lines = ["no configuration fits. Closest: \(describe(c)) needs \(formatBytes(e.neededBytes)) of \(e.memory) memory but it has \(formatBytes(e.capacityBytes)) (over by \(formatBytes(e.neededBytes - e.capacityBytes)))."]
        // A smaller batch than the grid's smallest?
        c.batch = 1
        let one = Evaluator.evaluate(c, setup)
        if one.capacityError == nil, one.plan != nil {
            var lo = 1, hi = closest.candidate.batch
            while hi - lo > 1 {
                let mid = (lo + hi) / 2
                c.batch = mid
                if Evaluator.fits(c, setup) { lo = mid } else { hi = mid }
            }
            lines.append("Smallest change: a batch of at most \(lo) fits (the batch grid starts at \(closest.candidate.batch)); add it to --batches.")
        } else if let e1 = one.capacityError {
            let items = e1.breakdown.sorted { $0.1 > $1.1 }.prefix(2).map { "\($0.0) \(formatBytes($0.1))" }.joined(separator: ", ")
            lines.append("Binding constraint: \(e1.memory) memory, even at batch 1 (largest items: \(items)).")
            let need = e1.neededBytes - e1.capacityBytes
            let advice = e1.memory == "host"
                ? "at least \(formatBytes(need)) more host memory (--host-memory-gib \(Int((e1.neededBytes / HardwareCatalog.GiB).rounded(.up))))"
                : "a GPU with at least \(formatBytes(e1.neededBytes)) of memory, or weights streamed from the host"
            lines.append("Smallest change: \(advice).")
        }
        return lines.joined(separator: "\n")
    }

    static func describe(_ c: Candidate) -> String {
        var s: String
        switch c.kind {
        case .hybrid(let r, let rho):
            s = "hybrid at KV fraction \(fmt(r))"
            if rho > 0 { s += " with \(Int(rho * 100))% token recomputation" }
        case .kvOnly: s = "KV-only"
        case .actOnly: s = "ACT-only"
        case .deepSpeed: s = "DeepSpeed"
        case .allGPU: s = "all-GPU"
        }
        return s + ", batch \(c.batch), \(WeightPlacement(gpuFraction: c.weightsGPUFraction).description) weights"
    }
}
