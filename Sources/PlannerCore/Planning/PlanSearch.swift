import Foundation

/// `planner plan`: the highest-throughput configuration over the whole space, written as a scenario
/// (`planner simulate` accepts it back) with what the planner expects of it.
public enum PlanSearch {
    public enum PolicyChoice: String, CaseIterable, Sendable {
        case any, hybrid, kvOnly = "kv-only", actOnly = "act-only", deepspeed, allGPU = "all-gpu", flexgen
    }

    public struct Result: Sendable {
        public var best: Outcome?
        /// Batches tried past the grid's largest, because the best was there and throughput still rose.
        public var grownBatches: [Int] = []
        public var tried: [Outcome]
        public var simulations: Int
        public var seconds: Double
    }

    /// `engine`: choose only among configurations that engine can run (`engines(thatCanRun:)`).
    public static func run(_ sweep: Sweep, policy: PolicyChoice = .any, engine: EngineKind? = nil) -> Result {
        let clock = ContinuousClock()
        let start = clock.now
        var tried: [Outcome] = []
        if policy == .any || policy == .hybrid {
            tried += RatioSearch.search(sweep.setup, space: sweep.space).evaluated
        }
        var baselineCandidates: [Candidate] = []
        for b in Sweep.Baseline.allCases {
            switch (policy, b) {
            case (.any, _), (.kvOnly, .kvOnly), (.actOnly, .actOnly), (.deepspeed, .deepSpeed), (.allGPU, .allGPU), (.flexgen, .flexGen):
                baselineCandidates += sweep.baselineCandidates(b)
            default: break
            }
        }
        tried += Evaluator.evaluateAll(baselineCandidates, sweep.setup)
        if policy == .hybrid, RatioSearch.bestOf(tried) == nil {
            // Nothing fitted on the search's paths: the advice needs the grid's memory outcomes.
            tried += sweep.space.lines.flatMap { line in sweep.space.ratios.map { line.candidate(ratio: $0) } }
                .filter { !Evaluator.fits($0, sweep.setup) }.map { Evaluator.evaluate($0, sweep.setup) }
        }
        // Points another engine would run are marked, so that the advice can still see them: before
        // the batch grows (it starts from a point the engine runs) and after (for the points it added).
        func markWhatTheEngineCannotRun() {
            guard let engine else { return }
            for i in tried.indices where tried[i].feasible {
                if let p = tried[i].plan, !engines(thatCanRun: p).contains(engine) {
                    tried[i].status = .invalid("engine \(engine.rawValue) cannot run this configuration")
                }
            }
        }
        markWhatTheEngineCannotRun()
        var grown: [Int] = []
        if let best = RatioSearch.bestOf(tried) {
            grown = growBatch(from: best, sweep: sweep, tried: &tried).1
        }
        markWhatTheEngineCannotRun()
        let d = clock.now - start
        return Result(best: RatioSearch.bestOf(tried), grownBatches: grown, tried: tried, simulations: tried.filter { $0.totalSeconds > 0 }.count,
                      seconds: Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18)
    }

    /// When the best point sits at the grid's largest batch, tries its configuration at 1.5 times
    /// the batch, again and again, while throughput rises and memory allows (for the hybrid policy
    /// the ratio is searched anew at each batch). Returns the best and the batches tried.
    static func growBatch(from start: Outcome, sweep: Sweep, tried: inout [Outcome]) -> (Outcome, [Int]) {
        guard let largest = sweep.space.batches.max(), start.candidate.batch == largest else { return (start, []) }
        var best = start
        var grown: [Int] = []
        while grown.count < 16 {
            let next = best.candidate.batch + max(1, best.candidate.batch / 2)
            guard next <= 1_048_576 else { break }
            grown.append(next)
            let o: Outcome?
            if case .hybrid(_, let rho) = best.candidate.kind {
                var space = sweep.space
                space.batches = [next]
                space.weightsGPUFractions = [best.candidate.weightsGPUFraction]
                space.recomputeFractions = [rho]
                let r = RatioSearch.search(sweep.setup, space: space)
                tried += r.evaluated
                o = r.best
            } else {
                var c = best.candidate
                c.batch = next
                let e = Evaluator.evaluate(c, sweep.setup)
                tried.append(e)
                o = e.feasible ? e : nil
            }
            guard let o, o.tokensPerSecond > best.tokensPerSecond else { break }
            best = o
        }
        return (best, grown)
    }

    /// The FlexGen settings that run an outcome: a FlexGen choice's own, or else `--percent` from
    /// the plan's placement with the whole batch as one GPU batch.
    static func flexGenSettings(_ o: Outcome) -> FlexGenSettings? {
        if case .flexGen(let f) = o.candidate.kind { return f.settings(batch: o.candidate.batch, weightsGPUFraction: o.candidate.weightsGPUFraction) }
        guard let p = o.plan else { return nil }
        return FlexGenSettings(percent: flexGenPercent(p).map(Double.init), gpuBatchSize: p.batch, numGpuBatches: 1)
    }

    /// FlexGen's `--percent` (weights, cache, activations on GPU and CPU) for a KV-only plan.
    public static func flexGenPercent(_ p: ExecutionPlan) -> [Int] {
        // Rounded down, so that FlexGen never places more on the GPU than the plan did.
        let w = Int((p.weights.gpuFraction * 100 + 1e-9).rounded(.down))
        let total = max(p.placement.total, 1)
        let c = Int((Double(p.placement.gpuKV) / Double(total) * 100 + 1e-9).rounded(.down))
        return [w, 100 - w, c, 100 - c, 100, 0]
    }

    /// The engines whose implementation has every feature the plan uses (CPU attention, a host KV
    /// cache, ACT checkpoints, recomputation, disk, compression, micro-batches, a resident share of
    /// every layer): `EngineTraits.supports`. `ideal` stands for HybridServe's engine, the only one
    /// with ACT checkpoints.
    public static func engines(thatCanRun plan: ExecutionPlan) -> [EngineKind] {
        EngineKind.allCases.filter { kind in
            var p = plan
            p.engine = Engine(kind)
            return (try? p.validateEngineFeatures()) != nil
        }
    }

    /// The configuration as a scenario with a `planner` section of expectations.
    public static func configuration(_ o: Outcome, setup: Setup, result: Result) throws -> [String: Any] {
        guard let p = o.plan else { throw InputError(field: "plan", "the chosen configuration has no plan") }
        var doc: [String: Any] = [:]
        doc["description"] = "chosen by planner plan: \(Advice.describe(o))"
        // A catalog model is written by name (with the scenario's layer count and element type);
        // anything else about it that differs (a weight format, a cache type, a routing skew) makes
        // the model go inline, so the scenario plays back the same model.
        if let catalog = ModelCatalog.all.first(where: { $0.name == p.model.name }),
           { var c = catalog.withLayers(p.model.layers); c.dtype = p.model.dtype; return c }() == p.model {
            doc["model"] = catalog.name
            if p.model.layers != catalog.layers { doc["layers"] = p.model.layers }
            if p.model.dtype != catalog.dtype { doc["dtype"] = p.model.dtype.rawValue }
        } else {
            doc["model"] = try JSONSerialization.jsonObject(with: JSONEncoder().encode(p.model))
        }
        if var catalog = HardwareCatalog.all.first(where: { $0.name == p.hardware.name }) {
            catalog.host = p.hardware.host
            if catalog == p.hardware {
                doc["hardware"] = catalog.name
                if p.hardware.host != (try HardwareCatalog.device(named: catalog.name)).host {
                    doc["hostMemoryGiB"] = p.hardware.host.memoryBytes / HardwareCatalog.GiB
                }
            } else {
                doc["hardware"] = try JSONSerialization.jsonObject(with: JSONEncoder().encode(p.hardware))
            }
        } else {
            doc["hardware"] = try JSONSerialization.jsonObject(with: JSONEncoder().encode(p.hardware))
        }
        doc["hostMemory"] = p.hostMemory.rawValue
        doc["batch"] = p.batch
        if p.model.moe != nil { doc["experts"] = p.expertFetch.rawValue }
        doc["generate"] = ["prompt": setup.workload.prompt, "tokens": setup.workload.tokens]
        let flexgen = flexGenSettings(o)
        if case .flexGen = o.candidate.kind, let s = flexgen {
            doc["engine"] = EngineKind.flexgen.rawValue
            doc["policy"] = ["name": "flexgen", "percent": s.percent.map { Int($0) }, "gpuBatchSize": s.gpuBatchSize, "numGpuBatches": s.numGpuBatches,
                             "cpuCacheCompute": s.cpuCacheCompute, "compressWeight": s.compressWeight, "compressCache": s.compressCache] as [String: Any]
        } else {
            let w = p.weights.gpuFraction
            doc["weights"] = w >= 1 ? "gpu" : w <= 0 ? "host" : ["gpuFraction": w] as Any
            doc["placement"] = Dictionary(uniqueKeysWithValues: TokenClass.allCases.map { ($0.key, p.placement[$0]) })
        }
        var planner: [String: Any] = [
            "policy": SweepReport.policyName(o),
            "kvActTokens": "\(p.placement.hostKV + p.placement.gpuKV):\(p.placement.actTokens)",
            "expected": [
                "stepSeconds": o.stepSeconds, "tokensPerSecond": o.tokensPerSecond, "totalSeconds": o.totalSeconds,
                "prefillSeconds": o.prefillSeconds, "gpuMemoryBytes": o.gpuBytes, "hostMemoryBytes": o.hostBytes,
                "gpuBusy": (o.busy[.compute] ?? 0) as Double, "pcieBusy": (o.busy[.hostToDevice] ?? 0) as Double,
            ],
            "searched": ["simulations": result.simulations, "seconds": result.seconds, "batchesBeyondTheGrid": result.grownBatches],
        ]
        if case .hybrid(let r, let rho) = o.candidate.kind {
            planner["kvFraction"] = r
            planner["recomputeFraction"] = rho
        }
        switch o.candidate.kind {
        case .kvOnly, .flexGen:
            if let s = flexgen {
                planner["flexgen"] = ["percent": s.percent.map { Int($0) }, "gpuBatchSize": s.gpuBatchSize, "numGpuBatches": s.numGpuBatches,
                                      "flags": s.flags] as [String: Any]
            }
        default: break
        }
        planner["engines"] = engines(thatCanRun: p).map(\.rawValue)
        if let note = SweepReport.notes(p.model) { planner["note"] = note }
        doc["planner"] = planner
        if let folder = setup.profileFolder { doc["profile"] = folder.standardizedFileURL.path }
        return doc
    }
}
