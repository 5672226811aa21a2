/// When nothing fits: the constraint that binds and the smallest change that would make a
/// configuration fit, instead of an empty table.
public enum Advice {
    /// `outcomes` are the candidates that were tried; `kinds` the policies to consider for the advice.
    public static func nothingFits(_ setup: Setup, outcomes: [Outcome]) -> String {
        // Configurations that fit but miss the step bound: the bound is the binding constraint.
        if let bound = setup.workload.maxStepSeconds,
           let fastest = outcomes.filter({ if case .tooSlow = $0.status { return true } else { return false } }).min(by: { $0.stepSeconds < $1.stepSeconds }) {
            return String(format: "no configuration meets the step bound of %.1f ms. Binding constraint: the bound; the fastest fitting configuration (%@) takes %.1f ms a step.\nSmallest change: --max-step-ms %.0f (or a faster GPU or link).",
                          bound * 1e3, describe(fastest.candidate), fastest.stepSeconds * 1e3, (fastest.stepSeconds * 1e3).rounded(.up))
        }
        let overflowing = outcomes.filter { $0.capacityError != nil }
        guard let closest = overflowing.min(by: { $0.excess < $1.excess }), let e = closest.capacityError else {
            let reasons = Set(outcomes.map(\.statusText)).sorted().prefix(3).joined(separator: "; ")
            return "no configuration is feasible: \(reasons)"
        }
        var lines = ["no configuration fits. Closest: \(describe(closest.candidate)) needs \(formatBytes(e.neededBytes)) of \(e.memory) memory but it has \(formatBytes(e.capacityBytes)) (over by \(formatBytes(e.neededBytes - e.capacityBytes)))."]
        // Every policy and weights split that was tried, at batch 1.
        var shapes: [Candidate] = []
        for o in overflowing {
            var c = o.candidate
            c.batch = 1
            if !shapes.contains(c) { shapes.append(c) }
        }
        let fitting = shapes.filter { Evaluator.fits($0, setup) }
        if !fitting.isEmpty {
            // The largest batch that fits with any of them (memory grows with the batch).
            var best: (Candidate, Int)?
            for var c in fitting {
                let ceiling = overflowing.filter { $0.candidate.kind == c.kind && $0.candidate.weightsGPUFraction == c.weightsGPUFraction }
                    .map(\.candidate.batch).min() ?? 1
                var lo = 1, hi = max(ceiling, 2)
                while hi - lo > 1 {
                    let mid = (lo + hi) / 2
                    c.batch = mid
                    if Evaluator.fits(c, setup) { lo = mid } else { hi = mid }
                }
                c.batch = lo
                if best == nil || lo > best!.1 { best = (c, lo) }
            }
            let smallest = outcomes.map(\.candidate.batch).min() ?? 1
            if best!.1 < smallest {
                lines.append("Smallest change: a batch of at most \(best!.1) fits (\(describe(best!.0))); the batch grid starts at \(smallest): add it to --batches.")
            }
            return lines.joined(separator: "\n")
        }
        let atOne = shapes.map { Evaluator.evaluate($0, setup) }.filter { $0.capacityError != nil }
        guard let least = atOne.min(by: { $0.excess < $1.excess }), let e1 = least.capacityError else {
            return lines.joined(separator: "\n")
        }
        let items = e1.breakdown.filter { $0.1 > 0 }.sorted { $0.1 > $1.1 }.prefix(2).map { "\($0.0) \(formatBytes($0.1))" }.joined(separator: ", ")
        lines.append("Binding constraint: \(e1.memory) memory, even at batch 1 with the least demanding configuration (\(describe(least.candidate)); largest items: \(items)).")
        let need = e1.neededBytes - e1.capacityBytes
        var advice = e1.memory == "host"
            ? "at least \(formatBytes(need)) more host memory (--host-memory-gib \(Int((e1.neededBytes / HardwareCatalog.GiB).rounded(.up))))"
            : "a GPU with at least \(formatBytes(e1.neededBytes)) of memory"
                + (least.candidate.weightsGPUFraction > 0 ? ", or weights streamed from the host (--weights host)" : "")
        if let host = least.plan.map({ MemoryModel.report($0) }), e1.memory == "GPU", host.hostUsed > host.hostCapacity {
            advice += ", and at least \(formatBytes(host.hostUsed - host.hostCapacity)) more host memory (--host-memory-gib \(Int((host.hostUsed / HardwareCatalog.GiB).rounded(.up))))"
        }
        lines.append("Smallest change: \(advice).")
        return lines.joined(separator: "\n")
    }

    /// An outcome's configuration, labelled all-GPU when its plan keeps everything on the GPU.
    static func describe(_ o: Outcome) -> String {
        o.isAllGPU ? "all-GPU, batch \(o.candidate.batch)" : describe(o.candidate)
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
        case .flexGen(let f): s = "FlexGen on its engine (\(f.description))"
        }
        return s + ", batch \(c.batch), \(WeightPlacement(gpuFraction: c.weightsGPUFraction).description) weights"
    }
}
