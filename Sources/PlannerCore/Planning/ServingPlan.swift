import Foundation

/// The serving planner (`planner serve --plan`): searches the engine's settings for a request
/// stream, playing each candidate through `ServingSimulator`, and keeps the one with the highest
/// goodput under the file's objectives (`ServingConfig.serviceLevel`), or the highest output-token
/// throughput without them; ties go to the lower P99 TTFT.
///
/// The search is coordinate descent from the file's own settings: each setting in turn takes every
/// value of its grid with the others held at the best so far, and the passes repeat until one
/// changes nothing (at most `maxPasses`). Every candidate played is kept; the runners-up are, for
/// each setting, the best candidate that differs from the choice in that setting alone.
public enum ServingPlanner {
    /// One engine setting and the values it may take.
    public enum Knob: String, CaseIterable, Sendable {
        case maxNumSeqs, maxNumBatchedTokens, blockSize, gpuMemoryUtilization, cpuOffloadGiB, offloadGroupSize, kvOffloadingGiB
    }

    public struct Candidate: Sendable {
        public var config: ServingConfig
        public var result: ServingResult
        /// Goodput (with objectives) or output tokens a second.
        public var score: Double
        public var settings: [Knob: Double]
    }

    public struct Plan: Sendable {
        public var best: Candidate
        /// The best alternatives that differ from the choice in one setting, best first (at most 3).
        public var runnersUp: [Candidate]
        /// What limits the best candidate, in words.
        public var binding: String
        public var evaluated: Int
        /// The file's own settings, played as given.
        public var baseline: Candidate
        public var objective: String
    }

    public static let maxPasses = 3

    /// The values a knob may take for this configuration. Settings a grid cannot express are left
    /// out: a fixed block count (`gpuBlocks`) or a fraction keeps the cache size; offloaded weights
    /// range up to the decoder layers' bytes; the CPU KV cache, V1 with prefix caching only, up to
    /// half the host memory the offloaded weights leave.
    static func grid(_ knob: Knob, _ c: ServingConfig) -> [Double] {
        switch knob {
        case .maxNumSeqs: return [16, 32, 64, 128, 256, 512, 1024]
        case .maxNumBatchedTokens: return [1024, 2048, 4096, 8192, 16384]
        case .blockSize: return [16, 32, 64]
        case .gpuMemoryUtilization:
            return c.sizedByUtilization ? [0.8, 0.85, 0.9, 0.92, 0.95] : []
        case .cpuOffloadGiB:
            let layers = c.model.weightBytesOverLayers / HardwareCatalog.GiB
            // The least that lets the weights fit at all, then larger steps.
            let need = max(0, (c.model.totalWeightBytes + c.hardware.gpu.reservedBytes - 0.85 * c.hardware.gpu.memoryBytes) / HardwareCatalog.GiB)
            var values = [need.rounded(.up)] + [2, 4, 8, 16, 32, 64].map { need.rounded(.up) + $0 }
            values = values.filter { $0 <= layers }
            return Array(Set(values)).sorted()
        case .offloadGroupSize:
            // The prefetch offloader instead of UVA: the last layer of every group (0: off).
            return c.engine == .vllmV1 ? [0, 2, 4, 8, 16].filter { Int($0) <= c.model.layers } : []
        case .kvOffloadingGiB:
            guard c.engine == .vllmV1, c.prefixCaching else { return [] }
            let room = (c.hardware.host.memoryBytes - c.hostWeightBytes) / HardwareCatalog.GiB / 2
            return [0, 4, 16, 64, 256].filter { $0 <= room }
        }
    }

    static func apply(_ knob: Knob, _ v: Double, to c: inout ServingConfig) {
        switch knob {
        case .maxNumSeqs: c.maxNumSeqs = Int(v)
        case .maxNumBatchedTokens: c.maxNumBatchedTokens = Int(v)
        case .blockSize: c.blockSize = Int(v)
        case .gpuMemoryUtilization: c.gpuMemoryUtilization = v
        case .cpuOffloadGiB:
            c.cpuOffloadBytes = v * HardwareCatalog.GiB
            if v > 0 { c.prefetchOffload = nil }
        case .offloadGroupSize:
            c.prefetchOffload = v > 0 ? PrefetchOffloadSettings(groupSize: Int(v)) : nil
            if v > 0 { c.cpuOffloadBytes = 0 }
        case .kvOffloadingGiB: c.kvOffloadingBytes = v * HardwareCatalog.GiB
        }
    }

    static func value(_ knob: Knob, _ c: ServingConfig) -> Double {
        switch knob {
        case .maxNumSeqs: Double(c.maxNumSeqs)
        case .maxNumBatchedTokens: Double(c.maxNumBatchedTokens)
        case .blockSize: Double(c.blockSize)
        case .gpuMemoryUtilization: c.memoryUtilization
        case .cpuOffloadGiB: c.cpuOffloadBytes / HardwareCatalog.GiB
        case .offloadGroupSize: Double(c.prefetchOffload?.groupSize ?? 0)
        case .kvOffloadingGiB: c.kvOffloadingBytes / HardwareCatalog.GiB
        }
    }

    static func score(_ r: ServingResult) -> Double {
        r.serviceLevel?.goodput ?? r.outputTokenThroughput
    }

    /// Searches from `base`. A candidate the engine would refuse (it does not fit, or the settings
    /// contradict) is skipped; the file's own settings must be valid.
    public static func plan(_ base: ServingConfig, requests: [ServingRequest], cost: any CostModel) throws -> Plan {
        var seen: [String: Candidate] = [:]
        func key(_ c: ServingConfig) -> String { Knob.allCases.map { fmt(value($0, c)) }.joined(separator: "/") }
        func play(_ c: ServingConfig) -> Candidate? {
            let k = key(c)
            if let hit = seen[k] { return hit }
            guard (try? c.validate()) != nil, let r = try? ServingSimulator.run(c, requests: requests, cost: cost) else { return nil }
            // A candidate that rejects requests the file's settings serve is not comparable.
            let cand = Candidate(config: c, result: r, score: score(r), settings: Dictionary(uniqueKeysWithValues: Knob.allCases.map { ($0, value($0, c)) }))
            seen[k] = cand
            return cand
        }
        // More requests served first; then the score, then the P99 TTFT, each within 0.1% counting as
        // a tie; then the less host memory (offloaded weights and CPU KV cache).
        func better(_ a: Candidate, _ b: Candidate) -> Bool {
            if a.result.completed != b.result.completed { return a.result.completed > b.result.completed }
            if abs(a.score - b.score) > 1e-3 * max(abs(a.score), abs(b.score)) { return a.score > b.score }
            let ta = a.result.ttft.p99, tb = b.result.ttft.p99
            if abs(ta - tb) > 1e-3 * max(ta, tb) { return ta < tb }
            return a.config.hostWeightBytes + a.config.kvOffloadingBytes < b.config.hostWeightBytes + b.config.kvOffloadingBytes
        }
        // Settings whose weights do not fit the GPU start from the least offload that fits.
        var start = base
        do {
            try start.validate()
        } catch {
            guard let fit = grid(.cpuOffloadGiB, base).lazy.map({ v -> ServingConfig in var c = base; apply(.cpuOffloadGiB, v, to: &c); return c })
                .first(where: { (try? $0.validate()) != nil }) else { throw error }
            start = fit
        }
        let baseline = try Candidate(config: start, result: ServingSimulator.run(start, requests: requests, cost: cost), score: 0, settings: [:])
        var best = play(start) ?? baseline
        for _ in 0 ..< maxPasses {
            var changed = false
            for knob in Knob.allCases {
                for v in grid(knob, best.config) where abs(v - value(knob, best.config)) > 1e-12 {
                    var c = best.config
                    apply(knob, v, to: &c)
                    if let cand = play(c), better(cand, best) {
                        best = cand
                        changed = true
                    }
                }
            }
            if !changed { break }
        }
        // Runners-up: for each setting, the best candidate that differs from the choice in that one
        // setting only (what moving it costs), best first.
        var alternatives: [Candidate] = []
        for knob in Knob.allCases {
            let others = Knob.allCases.filter { $0 != knob }
            let differing = seen.values.filter { c in
                abs(value(knob, c.config) - value(knob, best.config)) > 1e-12
                    && others.allSatisfy { abs(value($0, c.config) - value($0, best.config)) <= 1e-12 }
            }
            if let top = differing.sorted(by: { better($0, $1) }).first { alternatives.append(top) }
        }
        let runnersUp = Array(alternatives.sorted { better($0, $1) }.prefix(3))
        var b = baseline
        b.score = score(b.result)
        let objective = base.serviceLevel.map { "goodput under \($0.summary)" } ?? "output tokens per second"
        return Plan(best: best, runnersUp: runnersUp, binding: binding(best), evaluated: seen.count, baseline: b, objective: objective)
    }

    /// What limits a run: the KV blocks (preemptions, or the cache nearly full on average), the link
    /// (offloaded weights, KV loads and swaps over a third of the run), the GPU (busy 90% of the run
    /// or more), or nothing but the arrivals.
    static func binding(_ c: Candidate) -> String {
        let r = c.result
        let span = max(r.makespanSeconds, 1e-12)
        let link = r.offloadSeconds + r.kvLoadSeconds + r.linkBusySeconds
        let kv = r.series.isEmpty ? 0 : r.series.reduce(0) { $0 + $1.kvUsage } / Double(r.series.count)
        var parts: [String] = []
        if r.preemptions > 0 || kv > 0.9 {
            parts.append(String(format: "GPU KV blocks (%d of them, %.0f%% in use on average, %d preemptions)", r.gpuBlocks, kv * 100, r.preemptions))
        }
        if link / span > 1.0 / 3 {
            parts.append(String(format: "the link (%.0f%% of the run reading offloaded weights, loading and swapping KV)", link / span * 100))
        }
        if r.gpuBusySeconds / span >= 0.9 { parts.append(String(format: "GPU compute (busy %.0f%% of the run)", r.gpuBusySeconds / span * 100)) }
        if parts.isEmpty { parts.append(String(format: "the arrivals: the GPU is busy %.0f%% of the run", r.gpuBusySeconds / span * 100)) }
        return parts.joined(separator: "; ")
    }

    /// The settings of a candidate in words.
    public static func describe(_ c: ServingConfig) -> String {
        var s = "maxNumSeqs \(c.maxNumSeqs), maxNumBatchedTokens \(c.maxNumBatchedTokens), blockSize \(c.blockSize), "
        if c.sizedByUtilization { s += "gpuMemoryUtilization \(fmt(c.memoryUtilization)) (\(c.gpuBlocks) blocks)" } else { s += "\(c.gpuBlocks) blocks" }
        if c.cpuOffloadBytes > 0 { s += ", cpuOffloadGiB \(fmt(c.cpuOffloadBytes / HardwareCatalog.GiB))" }
        if let p = c.prefetchOffload { s += ", offloadGroupSize \(p.groupSize) (\(fmt((c.hostWeightBytes / HardwareCatalog.GiB * 100).rounded() / 100)) GiB prefetched)" }
        if c.kvOffloadingBytes > 0 { s += ", kvOffloadingGiB \(fmt(c.kvOffloadingBytes / HardwareCatalog.GiB))" }
        return s
    }

    static func summary(_ c: Candidate) -> String {
        let r = c.result
        var s = String(format: "%.1f output tokens/s, TTFT P99 %.1f ms, TPOT mean %.1f ms", r.outputTokenThroughput, r.ttft.p99 * 1e3, r.tpot.mean * 1e3)
        if let slo = r.serviceLevel { s += String(format: ", goodput %.3f requests/s (%.1f%% meet it)", slo.goodput, slo.attainment * 100) }
        if !r.rejected.isEmpty { s += ", \(r.rejected.count) rejected" }
        return s
    }

    public static func text(_ p: Plan) -> String {
        var out = "serving plan for \(p.best.config.model.name) on \(p.best.config.hardware.name), \(p.best.config.engine.rawValue): highest \(p.objective), \(p.evaluated) configurations played\n"
        out += "  best:      \(describe(p.best.config))\n             \(summary(p.best))\n"
        out += "  as given:  \(describe(p.baseline.config))\n             \(summary(p.baseline))\n"
        for (i, r) in p.runnersUp.enumerated() {
            out += "  next \(i + 1):    \(describe(r.config))\n             \(summary(r))\n"
        }
        out += "  what binds: \(p.binding)\n"
        let commands = VLLMCommand.lines(p.best.config, maxModelLen: p.best.result.maxRequestTokens)
        out += "vLLM command lines:\n"
        for l in commands.lines { out += "  \(l.label):\n    \(l.command)\n" }
        for n in commands.notes { out += "  note: \(n)\n" }
        return out
    }

    public static func json(_ p: Plan) throws -> Data {
        func cand(_ c: Candidate) -> [String: Any] {
            var o: [String: Any] = ["maxNumSeqs": c.config.maxNumSeqs, "maxNumBatchedTokens": c.config.maxNumBatchedTokens,
                                    "blockSize": c.config.blockSize, "gpuBlocks": c.config.gpuBlocks,
                                    "cpuOffloadGiB": c.config.cpuOffloadBytes / HardwareCatalog.GiB,
                                    "kvOffloadingGiB": c.config.kvOffloadingBytes / HardwareCatalog.GiB,
                                    "offloadGroupSize": c.config.prefetchOffload?.groupSize ?? 0,
                                    "outputTokenThroughput": c.result.outputTokenThroughput, "ttftP99Seconds": c.result.ttft.p99,
                                    "tpotMeanSeconds": c.result.tpot.mean, "completed": c.result.completed, "rejected": c.result.rejected.count]
            if c.config.sizedByUtilization { o["gpuMemoryUtilization"] = c.config.memoryUtilization }
            if let s = c.result.serviceLevel { o["goodput"] = s.goodput; o["attainment"] = s.attainment }
            return o
        }
        let commands = VLLMCommand.lines(p.best.config, maxModelLen: p.best.result.maxRequestTokens)
        let doc: [String: Any] = [
            "objective": p.objective, "evaluated": p.evaluated, "best": cand(p.best), "asGiven": cand(p.baseline),
            "runnersUp": p.runnersUp.map(cand), "binding": p.binding,
            "vllmCommands": commands.lines.map { ["label": $0.label, "command": $0.command] }, "vllmNotes": commands.notes,
        ]
        return try JSONSerialization.data(withJSONObject: doc, options: [.prettyPrinted, .sortedKeys])
    }
}
