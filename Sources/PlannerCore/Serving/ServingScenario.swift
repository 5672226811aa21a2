import Foundation

/// The serving scenario format: the scenario's setup keys (`model`, `layers`, `dtype`, `hardware`,
/// `hostMemoryGiB`, `hostMemory`), the engine's settings, and the requests.
///
///     {"model": "yarn-llama-2-7b-64k", "hardware": "a100-40gb", "blockSize": 16, "gpuCacheFraction": 0.12,
///      "preemption": "swap", "requests": {"count": 32, "arrivals": "all-at-once", "input": 1500, "output": 1024}}
public enum ServingScenario {
    public static let keys = ["name", "description", "model", "layers", "dtype", "hardware", "hostMemoryGiB", "hostMemory", "blockSize",
                              "gpuCacheFraction", "gpuMemoryUtilization", "gpuBlocks", "maxNumSeqs", "maxNumBatchedTokens", "chunkedPrefill", "watermark", "preemption",
                              "swapSpaceGiB", "requests", "routingSkew", "weightFormat", "kvCacheDtype", "cpuOffloadGiB", "slo", "engine",
                              "prefixCaching", "kvOffloadingGiB", "offloadGroupSize", "offloadNumInGroup", "offloadPrefetchStep"]

    public static func load(_ url: URL) throws -> (ServingConfig, [ServingRequest]) {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw InputError(field: "", "cannot read the serving scenario \(url.path)")
        }
        return try parse(data, source: url.path, baseDirectory: url.deletingLastPathComponent())
    }

    public static func parse(_ data: Data, source: String, baseDirectory: URL?) throws -> (ServingConfig, [ServingRequest]) {
        let o = try JSONFields.parse(data, source: source)
        try o.rejectUnknown(allowed: keys)
        let (model, hardware, hostMemory) = try Scenario.parseSetup(o, baseDirectory: baseDirectory)
        var c = ServingConfig(model: model, hardware: hardware)
        c.hostMemory = hostMemory
        if let e = try o.optionalString("engine") {
            guard let engine = ServingEngine(rawValue: e) else {
                throw InputError(field: "engine", "must be \"vllm-v1\" or \"vllm-v0\", got \"\(e)\"")
            }
            c.engine = engine
        }
        if o.has("prefixCaching") { c.prefixCaching = try o.bool("prefixCaching") }
        if let v = try o.optionalInt("blockSize", in: 1...4096) { c.blockSize = v }
        if let v = try o.optionalDouble("gpuCacheFraction", in: 0.0001...0.9999) { c.gpuCacheFraction = v }
        c.gpuMemoryUtilization = try o.optionalDouble("gpuMemoryUtilization", in: 0.01...1)
        if c.gpuCacheFraction != nil, c.gpuMemoryUtilization != nil {
            throw InputError(field: "gpuMemoryUtilization", "give gpuCacheFraction or gpuMemoryUtilization, not both")
        }
        c.gpuBlocksOverride = try o.optionalInt("gpuBlocks", in: 1...(1 << 30))
        if let v = try o.optionalInt("maxNumSeqs", in: 1...1_048_576) { c.maxNumSeqs = v }
        if let v = try o.optionalInt("maxNumBatchedTokens", in: 1...(1 << 24)) { c.maxNumBatchedTokens = v }
        if o.has("chunkedPrefill") { c.chunkedPrefill = try o.bool("chunkedPrefill") }
        if let v = try o.optionalDouble("watermark", in: 0...0.99) { c.watermark = v }
        if let p = try o.optionalString("preemption") {
            guard let mode = PreemptionMode(rawValue: p) else { throw InputError(field: "preemption", "must be \"recompute\" or \"swap\", got \"\(p)\"") }
            c.preemption = mode
        }
        if let g = try o.optionalDouble("swapSpaceGiB", in: 0...1_048_576) { c.swapSpaceBytes = g * HardwareCatalog.GiB }
        if let g = try o.optionalDouble("cpuOffloadGiB", in: 0...1_048_576) { c.cpuOffloadBytes = g * HardwareCatalog.GiB }
        if let g = try o.optionalDouble("kvOffloadingGiB", in: 0...1_048_576) { c.kvOffloadingBytes = g * HardwareCatalog.GiB }
        if let n = try o.optionalInt("offloadGroupSize", in: 1...4096) {
            c.prefetchOffload = PrefetchOffloadSettings(groupSize: n, numInGroup: try o.optionalInt("offloadNumInGroup", in: 1...4096) ?? 1,
                                                        prefetchStep: try o.optionalInt("offloadPrefetchStep", in: 1...4096) ?? 1)
        } else if o.has("offloadNumInGroup") || o.has("offloadPrefetchStep") {
            throw InputError(field: o.has("offloadNumInGroup") ? "offloadNumInGroup" : "offloadPrefetchStep", "needs offloadGroupSize (the prefetch offloader)")
        }
        if o.has("slo") { c.serviceLevel = try ServiceLevel.parse(try o.object("slo")) }
        try c.validate()
        let requests = try RequestSource.parse(try o.object("requests"), baseDirectory: baseDirectory)
        return (c, requests)
    }
}

/// Renderings of a serving result.
public enum ServingReport {
    static func stats(_ name: String, _ s: LatencyStats) -> String {
        "  " + (name + " ms").padding(toLength: 8, withPad: " ", startingAt: 0)
            + String(format: "  mean %9.1f  median %9.1f  P90 %9.1f  P95 %9.1f  P99 %9.1f\n", s.mean * 1e3, s.median * 1e3, s.p90 * 1e3, s.p95 * 1e3, s.p99 * 1e3)
    }

    public static func text(_ r: ServingResult, _ c: ServingConfig) -> String {
        var out = "\(c.model.name) on \(c.hardware.name), \(c.engine.rawValue): \(r.gpuBlocks) KV blocks of \(c.blockSize) tokens (\(formatBytes(c.blockBytes)) each), preemption by \(c.preemption.rawValue)\(c.chunkedPrefill ? ", chunked prefill" : "")\(c.prefixCaching ? ", prefix caching" : "")\n"
        if let sizing = c.cacheSizing { out += "  \(sizing)\n" }
        out += String(format: "  completed %d requests in %.2f s (%d iterations)\n", r.completed, r.makespanSeconds, r.iterations)
        for (id, why) in r.rejected { out += "  rejected request \(id): \(why)\n" }
        out += stats("TTFT", r.ttft) + stats("TPOT", r.tpot) + stats("ITL", r.itl) + stats("E2E", r.e2e)
        out += String(format: "  throughput: %.3f requests/s, %.1f output tokens/s, %.1f total tokens/s\n", r.requestThroughput, r.outputTokenThroughput, r.totalTokenThroughput)
        if let s = r.serviceLevel {
            out += String(format: "  SLO %@: %d of %d requests met it (%.1f%%), goodput %.3f requests/s\n", s.objectives.summary, s.goodRequests, r.completed,
                          s.attainment * 100, s.goodput)
        }
        if c.prefixCaching {
            out += String(format: "  prefix cache: %d of %d tokens looked up were hits (%.1f%%)\n", r.prefixHitTokens, r.prefixQueriedTokens,
                          r.prefixQueriedTokens > 0 ? Double(r.prefixHitTokens) / Double(r.prefixQueriedTokens) * 100 : 0)
        }
        if c.kvOffloadingBytes > 0 {
            out += String(format: "  CPU KV cache %@ (%d blocks): %d tokens loaded instead of computed, %d blocks stored; link %.2f s loading, %.2f s storing\n",
                          formatBytes(c.kvOffloadingBytes), c.hostCacheBlocks, r.hostHitTokens, r.hostStoredBlocks, r.kvLoadSeconds, r.kvStoreSeconds)
        }
        out += "  preemptions \(r.preemptions), recomputed tokens \(r.recomputedTokens), swapped out \(r.swappedOutTokens) and in \(r.swappedInTokens) tokens\n"
        out += String(format: "  GPU busy %.2f s (%.1f%%), link busy for swaps %.2f s\n", r.gpuBusySeconds, r.gpuBusySeconds / r.makespanSeconds * 100, r.linkBusySeconds)
        out += String(format: "  overflow overhead %.2f s (%.1f%% of the run): recomputation %.2f s, swapping %.2f s\n", r.overheadSeconds,
                      r.overheadSeconds / r.makespanSeconds * 100, r.recomputeSeconds, r.swapSeconds)
        if let p = c.prefetchOffload {
            let n = PrefetchOffload.offloadedLayers(layers: c.model.layers, groupSize: p.groupSize, perGroup: p.numInGroup)
            out += String(format: "  offloaded weights: %d of %d layers (%@) prefetched %d ahead, %.2f ms a layer's copy; iterations waited %.2f s for them (%.1f%% of the run)\n",
                          n, c.model.layers, formatBytes(c.hostWeightBytes), p.prefetchStep, c.prefetchCopySeconds * 1e3, r.offloadSeconds, r.offloadSeconds / r.makespanSeconds * 100)
        }
        if c.cpuOffloadBytes > 0 {
            out += String(format: "  offloaded weights: %@ read over the link before every iteration, %.1f ms each, %.2f s in all (%.1f%% of the run)\n",
                          formatBytes(c.cpuOffloadBytes), c.offloadSecondsPerIteration * 1e3, r.offloadSeconds, r.offloadSeconds / r.makespanSeconds * 100)
        }
        if let w = c.model.slidingWindow {
            out += "  note: every layer's KV blocks are sized for the whole sequence; \(c.model.name)'s \(w.localLayers(of: c.model.layers)) local layers need at most \(w.tokens) tokens, so the cache is overstated here\n"
        }
        let commands = VLLMCommand.lines(c, maxModelLen: r.maxRequestTokens)
        out += "vLLM command lines:\n"
        for l in commands.lines { out += "  \(l.label):\n    \(l.command)\n" }
        for n in commands.notes { out += "  note: \(n)\n" }
        return out
    }

    /// Chrome trace events (chrome://tracing, Perfetto): one row per request with its states, a GPU
    /// row of iterations, a link row of swaps, and counters of KV usage and of running, waiting and
    /// swapped requests. Needs a result run with `recordTrace`.
    public static func chromeTrace(_ r: ServingResult, _ c: ServingConfig) throws -> Data {
        guard let tr = r.trace else { throw InputError(field: "trace", "the run kept no trace; set recordTrace") }
        func us(_ t: Double) -> String { String(format: "%.3f", t * 1e6) }
        var e: [String] = []
        e.append("{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":1,\"args\":{\"name\":\"\(c.model.name) on \(c.hardware.name), preemption by \(c.preemption.rawValue)\"}}")
        e.append("{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":2,\"args\":{\"name\":\"requests\"}}")
        e.append("{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":1,\"args\":{\"name\":\"GPU\"}}")
        e.append("{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":2,\"args\":{\"name\":\"link (swaps)\"}}")
        for (k, it) in tr.iterations.enumerated() {
            e.append("{\"name\":\"iteration \(k)\",\"cat\":\"iteration\",\"ph\":\"X\",\"pid\":1,\"tid\":1,\"ts\":\(us(it.start)),\"dur\":\(us(it.end - it.start)),"
                + "\"args\":{\"sequences\":\(it.sequences),\"prefillTokens\":\(it.prefillTokens),\"decodeTokens\":\(it.decodeTokens),\"recomputeTokens\":\(it.recomputeTokens)}}")
            e.append("{\"name\":\"KV usage\",\"ph\":\"C\",\"pid\":1,\"ts\":\(us(it.start)),\"args\":{\"percent\":\(String(format: "%.2f", it.kvUsage * 100))}}")
            e.append("{\"name\":\"requests\",\"ph\":\"C\",\"pid\":1,\"ts\":\(us(it.start)),\"args\":{\"running\":\(it.running),\"waiting\":\(it.waiting),\"swapped\":\(it.swapped)}}")
        }
        for s in tr.link {
            e.append("{\"name\":\"\(s.name)\",\"cat\":\"swap\",\"ph\":\"X\",\"pid\":1,\"tid\":2,\"ts\":\(us(s.start)),\"dur\":\(us(s.end - s.start))}")
        }
        for (i, spans) in tr.requests.enumerated() {
            let id = tr.requestIDs[i]
            e.append("{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":2,\"tid\":\(id),\"args\":{\"name\":\"request \(id)\"}}")
            e.append("{\"name\":\"thread_sort_index\",\"ph\":\"M\",\"pid\":2,\"tid\":\(id),\"args\":{\"sort_index\":\(id)}}")
            for s in spans {
                e.append("{\"name\":\"\(s.name)\",\"cat\":\"request\",\"ph\":\"X\",\"pid\":2,\"tid\":\(id),\"ts\":\(us(s.start)),\"dur\":\(us(s.end - s.start))}")
            }
        }
        return Data(("{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n" + e.joined(separator: ",\n") + "\n]}\n").utf8)
    }

    /// An SVG chart of the per-second series in two panels: prompt and generation throughput
    /// (tokens/s), then KV usage (percent of the GPU blocks) with the running, waiting and swapped requests.
    public static func chart(_ r: ServingResult, _ c: ServingConfig) -> String {
        let xs = r.series
        let setting = "\(c.model.name) on \(c.hardware.name), \(r.gpuBlocks) blocks of \(c.blockSize), preemption by \(c.preemption.rawValue)"
        let throughput = SVGChart.lines(
            title: "Throughput: \(setting)", xLabel: "time (s)", yLabel: "tokens/s",
            series: [("generation", xs.map { (Double($0.second), Double($0.generatedTokens)) }),
                     ("prompt", xs.map { (Double($0.second), Double($0.promptTokens)) })])
        let usage = SVGChart.lines(
            title: "KV usage and requests", xLabel: "time (s)", yLabel: "percent; requests",
            series: [("KV usage (%)", xs.map { (Double($0.second), $0.kvUsage * 100) }),
                     ("running", xs.map { (Double($0.second), $0.running) }),
                     ("waiting", xs.map { (Double($0.second), $0.waiting) }),
                     ("swapped", xs.map { (Double($0.second), $0.swapped) })])
        return SVGChart.stacked([throughput, usage])
    }

    public static func csv(_ r: ServingResult) -> String {
        var s = "second,running,waiting,swapped,kvUsage,promptTokensPerSecond,generationTokensPerSecond\n"
        for x in r.series {
            s += "\(x.second),\(x.running),\(x.waiting),\(x.swapped),\(x.kvUsage),\(x.promptTokens),\(x.generatedTokens)\n"
        }
        return s
    }

    /// The result as JSON; with the configuration, also the `vllm serve` command lines
    /// (`vllmCommands`: label and command) and their notes (`vllmNotes`).
    public static func json(_ r: ServingResult, _ c: ServingConfig? = nil) throws -> Data {
        func st(_ s: LatencyStats) -> [String: Double] { ["mean": s.mean, "median": s.median, "p90": s.p90, "p95": s.p95, "p99": s.p99] }
        var doc: [String: Any] = [
            "completed": r.completed, "rejected": r.rejected.map { ["request": $0.request, "reason": $0.reason] },
            "makespanSeconds": r.makespanSeconds, "ttftSeconds": st(r.ttft), "tpotSeconds": st(r.tpot), "itlSeconds": st(r.itl),
            "e2eSeconds": st(r.e2e), "requestThroughput": r.requestThroughput, "outputTokenThroughput": r.outputTokenThroughput,
            "totalTokenThroughput": r.totalTokenThroughput, "preemptions": r.preemptions, "recomputedTokens": r.recomputedTokens,
            "swappedOutTokens": r.swappedOutTokens, "swappedInTokens": r.swappedInTokens, "gpuBusySeconds": r.gpuBusySeconds,
            "linkBusySeconds": r.linkBusySeconds, "recomputeSeconds": r.recomputeSeconds, "overheadSeconds": r.overheadSeconds,
            "iterations": r.iterations, "gpuBlocks": r.gpuBlocks, "prefixHitTokens": r.prefixHitTokens, "prefixQueriedTokens": r.prefixQueriedTokens,
            "hostHitTokens": r.hostHitTokens, "hostStoredBlocks": r.hostStoredBlocks, "kvLoadSeconds": r.kvLoadSeconds, "kvStoreSeconds": r.kvStoreSeconds, "offloadSeconds": r.offloadSeconds,
            "series": r.series.map { ["second": $0.second, "running": $0.running, "waiting": $0.waiting, "swapped": $0.swapped,
                                      "kvUsage": $0.kvUsage, "promptTokens": $0.promptTokens, "generatedTokens": $0.generatedTokens] },
        ]
        if let s = r.serviceLevel {
            var o: [String: Any] = ["goodRequests": s.goodRequests, "attainment": s.attainment, "goodput": s.goodput]
            if let v = s.objectives.ttftSeconds { o["ttftSeconds"] = v }
            if let v = s.objectives.tpotSeconds { o["tpotSeconds"] = v }
            if let v = s.objectives.e2eSeconds { o["e2eSeconds"] = v }
            doc["serviceLevel"] = o
        }
        if let c {
            doc["hostWeightBytes"] = c.hostWeightBytes
            let commands = VLLMCommand.lines(c, maxModelLen: r.maxRequestTokens)
            doc["vllmCommands"] = commands.lines.map { ["label": $0.label, "command": $0.command] }
            doc["vllmNotes"] = commands.notes
        }
        return try JSONSerialization.data(withJSONObject: doc, options: [.prettyPrinted, .sortedKeys])
    }
}
