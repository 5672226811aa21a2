import Foundation

/// Renderings of a `SweepResult`: a table per ratio, CSV of every point, JSON, and a chart.
public enum SweepReport {
    static func setupLine(_ s: Setup) -> String {
        let hw = s.hardware
        var line = "\(s.model.name) on \(hw.name) (\(hw.gpu.name), \(formatBytes(hw.gpu.memoryBytes)), \(hw.link.name), host \(formatBytes(hw.host.memoryBytes)) \(s.hostMemory.rawValue))"
        line += ", prompt \(s.workload.prompt), \(s.workload.tokens) new tokens"
        if let b = s.workload.maxStepSeconds { line += String(format: ", step bound %.1f ms", b * 1e3) }
        return line
    }

    static func describeWeights(_ ws: [Double]) -> String {
        ws.map { WeightPlacement(gpuFraction: $0).description }.joined(separator: " / ")
    }

    public static func text(_ r: SweepResult, all: Bool = false) -> String {
        let s = r.sweep
        var out = "planner sweep: \(setupLine(s.setup))\n"
        out += "hybrid policy (GPU memory to the ACT cache first, host tokens split KV:ACT); weights \(describeWeights(s.space.weightsGPUFractions)); "
        out += "\(s.space.ratios.count) ratios x \(s.space.batches.count) batch sizes (\(s.space.batches.map(String.init).joined(separator: ", ")))\n\n"
        let best = r.best
        out += "  KV frac  batch   tokens/s   step ms  PCIe busy  GPU busy    GPU mem   host mem  status\n"
        func row(_ ratio: Double, _ o: Outcome?, _ reason: String) -> String {
            let mark = (o != nil && best != nil && o!.candidate == best!.candidate) ? "*" : " "
            guard let o else {
                return String(format: " %@%6.2f      -          -         -          -         -          -          -  %@\n", mark, ratio, reason)
            }
            return String(format: " %@%6.2f %6d %10.2f %9.1f %9.1f%% %8.1f%% %10@ %10@  %@\n", mark, ratio, o.candidate.batch, o.tokensPerSecond,
                          o.stepSeconds * 1e3, (o.busy[.hostToDevice] ?? 0) * 100, (o.busy[.compute] ?? 0) * 100,
                          formatBytes(o.gpuBytes), formatBytes(o.hostBytes), o.statusText)
        }
        if all {
            for o in r.hybrid {
                out += row(o.candidate.kvFraction ?? 0, o.feasible || o.status != .ok ? o : nil, o.statusText)
            }
        } else {
            for (ratio, o, reason) in r.perRatio() { out += row(ratio, o, reason) }
            out += "  (each row: the best batch at that ratio; --all prints every ratio x batch point)\n"
        }
        out += "  (* marks the best hybrid point)\n\n"
        guard let overall = r.bestOverall else {
            out += Advice.nothingFits(s.setup, outcomes: r.allOutcomes) + "\n"
            return out
        }
        let recommend = String(format: "%.2f tokens/s, step %.1f ms", overall.tokensPerSecond, overall.stepSeconds * 1e3)
        guard let b = best else {
            out += "best of every policy: \(Advice.describe(overall)): \(recommend); no hybrid configuration fits\n"
            for base in Sweep.Baseline.allCases where r.bestBaseline(base) == nil {
                out += "  no \(base.rawValue) configuration: \(r.baselineFailure(base))\n"
            }
            return out + footer(r)
        }
        if overall.candidate != b.candidate {
            out += String(format: "best of every policy: %@: %@, %.2fx the best hybrid\n", Advice.describe(overall), recommend,
                          overall.tokensPerSecond / b.tokensPerSecond)
        }
        out += String(format: "best hybrid: KV fraction %.2f, batch %d, %@ weights: %.2f tokens/s, step %.1f ms; placement %@\n",
                      b.candidate.kvFraction ?? 0, b.candidate.batch, WeightPlacement(gpuFraction: b.candidate.weightsGPUFraction).description,
                      b.tokensPerSecond, b.stepSeconds * 1e3, b.plan?.placement.description ?? "-")
        for base in Sweep.Baseline.allCases {
            if let o = r.bestBaseline(base) {
                let speedup = b.tokensPerSecond / o.tokensPerSecond
                var what = base.rawValue
                if case .flexGen(let f) = o.candidate.kind { what += " (\(f.description))" }
                out += String(format: "  %.2fx %@ the best %@: %.2f tokens/s at batch %d%@\n", speedup, speedup >= 1 ? "over" : "of",
                              what, o.tokensPerSecond, o.candidate.batch, speedup < 1 ? " (faster than the hybrid cache here)" : "")
            } else {
                out += "  no \(base.rawValue) configuration: \(r.baselineFailure(base))\n"
            }
        }
        if let line = cpuAttentionVerdict(r) { out += line }
        if let line = expertFetchVerdict(r.bestOverall) { out += line }
        if let p = r.search.best {
            out += String(format: "ratio search: KV fraction %.2f, batch %d, %.2f tokens/s (%.2f%% of the exhaustive best) with %d simulations instead of %d\n",
                          p.candidate.kvFraction ?? 0, p.candidate.batch, p.tokensPerSecond, p.tokensPerSecond / b.tokensPerSecond * 100,
                          r.search.simulations, r.hybrid.count)
        }
        if let line = edgeNote(r) { out += line }
        return out + footer(r)
    }

    /// The model's note and the count and time of the simulations: the sweep text's last lines.
    static func footer(_ r: SweepResult) -> String {
        var out = ""
        if let note = notes(r.sweep.setup.model) { out += "note: \(note)\n" }
        return out + String(format: "%d simulations in %.2f s\n", r.allOutcomes.count, r.sweepSeconds)
    }

    /// A warning when the best point is at the grid's largest batch and a larger one is faster.
    static func edgeNote(_ r: SweepResult) -> String? {
        guard r.edgeChecked, let best = r.bestOverall else { return nil }
        guard let g = r.beyondGrid else {
            return "note: the best batch, \(best.candidate.batch), is the grid's largest; a larger one is no faster or does not fit\n"
        }
        return String(format: "note: the best batch, %d, is the grid's largest; batch %d is faster (%@: %.2f tokens/s, %.2fx): add larger batches to --batches (planner plan grows the grid itself)\n",
                      best.candidate.batch, g.candidate.batch, Advice.describe(g), g.tokensPerSecond, g.tokensPerSecond / best.tokensPerSecond)
    }

    /// For a mixture of experts with streamed experts: which expert fetch the best point uses and
    /// why (how many of a layer's experts a decode step's batch touches).
    static func expertFetchVerdict(_ o: Outcome?) -> String? {
        guard let p = o?.plan, let moe = p.model.moe, p.weights.tiers(.ffn).streamed > 0 else { return nil }
        let touched = moe.expectedDistinctExperts(tokens: p.batch)
        let share = touched / Double(moe.experts) * 100
        var why: String
        switch p.expertFetch {
        case .onDemand: why = "copying only those after the router saves more link time than the wait adds"
        case .prefetchAll: why = "copying every expert ahead, off the critical path, is faster than waiting for the router"
        case .hostCPU: why = "running them on the host CPU from host memory beats copying them over the link"
        }
        if p.hardware.hostCPU == nil { why += " (experts on the host CPU not tried: \(p.hardware.name) has no host CPU rates)" }
        return String(format: "experts %@ at the best point: a decode step's %d tokens touch %.1f of %d experts a layer (%.0f%%); %@\n",
                      p.expertFetch.rawValue, p.batch, touched, moe.experts, share, why)
    }

    /// Where FlexGen's options were tried both ways: whether attention on the host CPU beats the
    /// host cache streamed to the GPU, with what binds each.
    static func cpuAttentionVerdict(_ r: SweepResult) -> String? {
        let os = r.baselines[.flexGen] ?? []
        func best(_ cpu: Bool) -> Outcome? {
            RatioSearch.bestOf(os.filter { if case .flexGen(let f) = $0.candidate.kind { return f.cpuAttention == cpu }; return false })
        }
        guard let cpu = best(true), let gpu = best(false) else { return nil }
        let wins = cpu.tokensPerSecond > gpu.tokensPerSecond
        return String(format: "  FlexGen's CPU attention %@: %.2f tokens/s (host CPU busy %.0f%%, PCIe %.0f%%) against %.2f with the cache streamed to the GPU (PCIe %.0f%%)\n",
                      wins ? "wins" : "does not pay", cpu.tokensPerSecond, (cpu.busy[.hostCPU] ?? 0) * 100, (cpu.busy[.hostToDevice] ?? 0) * 100,
                      gpu.tokensPerSecond, (gpu.busy[.hostToDevice] ?? 0) * 100)
    }

    /// What a reader should know about the model before trusting an ACT cache: for grouped-query
    /// models (and latent attention, or an fp8 cache) the checkpoint is larger than the KV entry it
    /// replaces.
    public static func notes(_ m: ModelSpec) -> String? {
        guard m.actBytesPerToken > m.kvBytesPerToken else { return nil }
        if let a = m.mla {
            return String(format: "%@ caches a latent of %d elements a token per layer (multi-head latent attention): an ACT checkpoint (%@) is %.1fx that entry (%@), so an ACT cache moves more bytes than the KV it replaces and costs a projection; prefer KV for this model.",
                          m.name, a.cachedElements, formatBytes(m.actBytesPerToken), m.actBytesPerToken / m.kvBytesPerToken, formatBytes(m.kvBytesPerToken))
        }
        if m.kvHeads == m.heads {
            return String(format: "%@'s KV cache is stored narrower than its activations: an ACT checkpoint (%@ per token per layer) is %.1fx its KV entry (%@), so an ACT cache moves more bytes than the KV it replaces; prefer KV for this model.",
                          m.name, formatBytes(m.actBytesPerToken), m.actBytesPerToken / m.kvBytesPerToken, formatBytes(m.kvBytesPerToken))
        }
        return String(format: "%@ is grouped-query (%d KV heads for %d query heads): an ACT checkpoint (%@ per token per layer) is %.1fx its KV entry (%@), so an ACT cache moves more bytes than the KV it replaces and costs a K/V projection; prefer KV for this model.",
                      m.name, m.kvHeads, m.heads, formatBytes(m.actBytesPerToken), m.actBytesPerToken / m.kvBytesPerToken, formatBytes(m.kvBytesPerToken))
    }

    static let csvHeader = "policy,kvFraction,batch,weightsGpuFraction,recomputeFraction,status,tokensPerSecond,stepSeconds,totalSeconds,prefillSeconds,busyCompute,busyH2D,busyD2H,gpuBytes,hostBytes,gpuKV,gpuAct,hostKV,hostAct,recompute"

    /// The policy of an outcome, `all-gpu` when its plan keeps everything on the GPU.
    static func policyName(_ o: Outcome) -> String { o.isAllGPU ? "all-gpu" : policyName(o.candidate) }

    static func policyName(_ c: Candidate) -> String {
        switch c.kind {
        case .hybrid: "hybrid"
        case .kvOnly: "kv-only"
        case .actOnly: "act-only"
        case .deepSpeed: "deepspeed"
        case .allGPU: "all-gpu"
        case .flexGen: "flexgen"
        }
    }

    static func csvField(_ s: String) -> String {
        s.contains(",") || s.contains("\"") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }

    /// One line per simulated point, the hybrid grid and the baselines.
    public static func csv(_ r: SweepResult) -> String {
        var out = csvHeader + "\n"
        for o in r.allOutcomes {
            let c = o.candidate
            var rho = 0.0
            if case .hybrid(_, let f) = c.kind { rho = f }
            let p = o.plan?.placement ?? TokenPlacement()
            let fields: [String] = [
                policyName(o), c.kvFraction.map { fmt($0) } ?? "", String(c.batch), fmt(o.plan?.weights.gpuFraction ?? c.weightsGPUFraction), fmt(rho),
                csvField(o.statusText), String(o.tokensPerSecond), String(o.stepSeconds), String(o.totalSeconds), String(o.prefillSeconds),
                String(o.busy[.compute] ?? 0), String(o.busy[.hostToDevice] ?? 0), String(o.busy[.deviceToHost] ?? 0),
                String(o.gpuBytes), String(o.hostBytes), String(p.gpuKV), String(p.gpuAct), String(p.hostKV), String(p.hostAct), String(p.recompute),
            ]
            out += fields.joined(separator: ",") + "\n"
        }
        return out
    }

    static func outcomeJSON(_ o: Outcome) -> [String: Any] {
        let c = o.candidate
        var d: [String: Any] = [
            "policy": policyName(o), "batch": c.batch, "status": o.feasible ? "ok" : o.statusText, "feasible": o.feasible,
            "weightsGpuFraction": o.plan?.weights.gpuFraction ?? c.weightsGPUFraction,
            "tokensPerSecond": o.tokensPerSecond, "stepSeconds": o.stepSeconds, "totalSeconds": o.totalSeconds,
            "prefillSeconds": o.prefillSeconds, "gpuBytes": o.gpuBytes, "hostBytes": o.hostBytes,
            "busy": Dictionary(uniqueKeysWithValues: Resource.allCases.map { ($0.key, o.busy[$0] ?? 0) }),
        ]
        if case .hybrid(let r, let rho) = c.kind {
            d["kvFraction"] = r
            d["recomputeFraction"] = rho
        }
        if case .flexGen(let f) = c.kind {
            let s = f.settings(batch: c.batch, weightsGPUFraction: c.weightsGPUFraction)
            d["engine"] = EngineKind.flexgen.rawValue
            d["flexgen"] = ["percent": s.percent, "gpuBatchSize": s.gpuBatchSize, "numGpuBatches": s.numGpuBatches, "cpuCacheCompute": s.cpuCacheCompute,
                            "compressWeight": s.compressWeight, "compressCache": s.compressCache, "weightsDiskPercent": f.weightsDiskPercent] as [String: Any]
        }
        if let p = o.plan?.placement {
            d["placement"] = Dictionary(uniqueKeysWithValues: TokenClass.allCases.map { ($0.key, p[$0]) })
        }
        return d
    }

    public static func json(_ r: SweepResult) throws -> Data {
        let s = r.sweep
        var doc: [String: Any] = [
            "setup": [
                "model": s.setup.model.name, "layers": s.setup.model.layers, "hardware": s.setup.hardware.name,
                "gpuMemoryBytes": s.setup.hardware.gpu.memoryBytes, "hostMemoryBytes": s.setup.hardware.host.memoryBytes,
                "hostMemory": s.setup.hostMemory.rawValue, "prompt": s.setup.workload.prompt, "tokens": s.setup.workload.tokens,
                "maxStepSeconds": s.setup.workload.maxStepSeconds as Any? ?? NSNull(),
            ] as [String: Any],
            "ratios": s.space.ratios, "batches": s.space.batches, "weightsGpuFractions": s.space.weightsGPUFractions,
            "points": r.hybrid.map(outcomeJSON),
            "sweepSeconds": r.sweepSeconds,
        ]
        var baselines: [String: Any] = [:]
        for b in Sweep.Baseline.allCases {
            if let o = r.bestBaseline(b) {
                var d = outcomeJSON(o)
                if let best = r.best { d["speedupOfBest"] = best.tokensPerSecond / o.tokensPerSecond }
                baselines[b.key] = d
            } else {
                baselines[b.key] = ["feasible": false, "status": r.baselineFailure(b)]
            }
        }
        doc["baselines"] = baselines
        if let b = r.best { doc["best"] = outcomeJSON(b) } else { doc["best"] = NSNull() }
        if let o = r.bestOverall { doc["bestOverall"] = outcomeJSON(o) } else { doc["bestOverall"] = NSNull(); doc["advice"] = Advice.nothingFits(s.setup, outcomes: r.allOutcomes) }
        if let p = r.search.best {
            var d = outcomeJSON(p)
            d["simulations"] = r.search.simulations
            d["seconds"] = r.searchSeconds
            doc["search"] = d
        }
        return try JSONSerialization.data(withJSONObject: doc, options: [.prettyPrinted, .sortedKeys])
    }
}
