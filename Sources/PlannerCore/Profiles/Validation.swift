import Foundation

/// How well the planner predicts what a profile measured: kernel tables (analytic model and
/// profile-backed model) and end-to-end decode steps of the reference layer-streaming decoder.
public enum Validation {
    /// Prediction error of one kernel table.
    public struct KernelAccuracy: Sendable {
        public var table: String
        public var points: Int
        /// Mean absolute percentage error of the analytic (roofline) model against the measurements.
        public var analyticMAPE: Double
        /// The same for the profile-backed model, each point predicted with that point left out of
        /// the table (leave-one-out), so that the figure measures interpolation, not recall.
        public var profileMAPE: Double
        public var worstAnalytic: String
    }

    static func mape(_ pairs: [(Double, Double)]) -> Double {
        pairs.isEmpty ? 0 : pairs.reduce(0) { $0 + abs($1.0 - $1.1) / $1.1 } / Double(pairs.count)
    }

    public static func kernelAccuracy(_ profile: Profile, hardware: HardwareSpec) throws -> [KernelAccuracy] {
        let analytic = try AnalyticCostModel(hardware: hardware, dtype: profile.meta.dtype)
        // One model of the whole profile answers every leave-one-out lookup: only the left-out
        // point's own curve differs, and it is looked up without that point (O(log n) a point).
        let model = try ProfileCostModel(profile: profile, hardware: hardware)
        var out: [KernelAccuracy] = []
        func table<P>(_ name: String, _ points: [P], op: (P) -> Operation, measured: (P) -> Double, describe: (P) -> String) throws {
            guard !points.isEmpty else { return }
            var a: [(Double, Double)] = [], l: [(Double, Double)] = []
            var worst = (0.0, "")
            for (i, p) in points.enumerated() {
                let t = measured(p)
                let pa = analytic.seconds(op(p))
                a.append((pa, t))
                let err = abs(pa - t) / t
                if err > worst.0 { worst = (err, String(format: "%@: analytic %.1f us, measured %.1f us", describe(p), pa * 1e6, t * 1e6)) }
                l.append((model.seconds(op(p), leavingOut: t), t))
            }
            out.append(KernelAccuracy(table: name, points: points.count, analyticMAPE: mape(a), profileMAPE: mape(l), worstAnalytic: worst.1))
        }
        try table("gemm", profile.gemm, op: { .gemm(m: $0.m, n: $0.n, k: $0.k) }, measured: { $0.seconds },
                  describe: { "m=\($0.m) n=\($0.n) k=\($0.k)" })
        let decode = profile.attention.filter { $0.kind == .decode }
        let prefill = profile.attention.filter { $0.kind == .prefill }
        try table("decode attention", decode,
                  op: { .decodeAttention(batch: $0.batch, heads: $0.heads, kvHeads: $0.kvHeads, headDim: $0.headDim, context: $0.context) },
                  measured: { $0.seconds }, describe: { "batch \($0.batch) heads \($0.heads)/\($0.kvHeads) context \($0.context)" })
        try table("prefill attention", prefill,
                  op: { .prefillAttention(batch: $0.batch, heads: $0.heads, kvHeads: $0.kvHeads, headDim: $0.headDim, queries: $0.queries, context: $0.context) },
                  measured: { $0.seconds }, describe: { "batch \($0.batch) heads \($0.heads)/\($0.kvHeads) queries \($0.queries) context \($0.context)" })
        try table("link", profile.link, op: { .transfer(bytes: $0.bytes, direction: $0.direction, memory: $0.memory) },
                  measured: { $0.seconds }, describe: { "\($0.direction.rawValue) \($0.memory.rawValue) \(Int64($0.bytes)) B" })
        try table("device copy", profile.copy, op: { .deviceCopy(bytes: $0.bytes) }, measured: { $0.seconds },
                  describe: { "\(Int64($0.bytes)) B" })
        return out
    }

    /// One end-to-end run replayed in the simulator.
    public struct Prediction: Sendable {
        public var run: Profile.E2ERun
        public var predictedSeconds: Double
        public var error: Double { predictedSeconds / run.stepSeconds - 1 }
        /// The memory model would refuse this placement on the profile's machine (it ran anyway).
        public var memoryNote: String?
    }

    /// What the planner would have chosen among the placements of one group, and what it cost.
    public struct GroupChoice: Sendable {
        public var group: String
        public var runs: Int
        public var chosen: String
        public var measuredAtChoice: Double
        public var best: String
        public var measuredBest: Double
        /// `1 - throughput(choice) / throughput(best)`, both measured.
        public var regret: Double
    }

    /// The plan a run corresponds to: the catalog model (or the profile folder's model file) cut to the run's layers, the profile's
    /// machine, one decode step at the run's context, no LM head (the reference decoder runs the
    /// decoder layers only).
    public static func plan(_ run: Profile.E2ERun, profile: Profile, hardware: HardwareSpec) throws -> ExecutionPlan {
        var model = try profile.model(named: run.model).withLayers(run.layers)
        model.dtype = profile.meta.dtype
        var plan = ExecutionPlan(model: model, hardware: hardware, batch: run.batch, weights: WeightPlacement(gpuFraction: run.weightsGPUFraction),
                                 placement: run.placement, hostMemory: run.hostMemory, phase: .decodeStep(context: run.context),
                                 policyName: "e2e \(run.run)")
        plan.includeHead = false
        return plan
    }

    public static func replay(_ profile: Profile, hardware: HardwareSpec, cost: any CostModel) throws -> ([Prediction], [GroupChoice]) {
        var predictions: [Prediction] = []
        for run in profile.e2e {
            let p = try plan(run, profile: profile, hardware: hardware)
            let r = try Simulator.run(p, cost: cost, checkMemory: false)
            var note: String?
            do { try r.memory.check() } catch { note = "\(error)" }
            predictions.append(Prediction(run: run, predictedSeconds: r.seconds, memoryNote: note))
        }
        var groups: [GroupChoice] = []
        for (name, members) in Dictionary(grouping: predictions, by: { $0.run.group }).sorted(by: { $0.key < $1.key }) where members.count > 1 {
            let chosen = members.min { $0.predictedSeconds < $1.predictedSeconds }!
            let best = members.min { $0.run.stepSeconds < $1.run.stepSeconds }!
            let thr = { (p: Prediction) in Double(p.run.batch) / p.run.stepSeconds }
            groups.append(GroupChoice(group: name, runs: members.count, chosen: chosen.run.run, measuredAtChoice: thr(chosen),
                                      best: best.run.run, measuredBest: thr(best), regret: 1 - thr(chosen) / thr(best)))
        }
        return (predictions, groups)
    }

    public static func meanAbsoluteError(_ ps: [Prediction]) -> Double {
        ps.isEmpty ? 0 : ps.reduce(0) { $0 + abs($1.error) } / Double(ps.count)
    }
}
