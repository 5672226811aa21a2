import Foundation

/// Distribution summary under vLLM's benchmark names.
public struct LatencyStats: Sendable, Equatable {
    public var mean = 0.0, median = 0.0, p90 = 0.0, p95 = 0.0, p99 = 0.0

    /// Percentiles by linear interpolation between order statistics (numpy's default).
    public init(_ values: [Double]) {
        guard !values.isEmpty else { return }
        let v = values.sorted()
        func q(_ p: Double) -> Double {
            let x = p * Double(v.count - 1)
            let lo = Int(x.rounded(.down)), hi = min(lo + 1, v.count - 1)
            return v[lo] + (x - Double(lo)) * (v[hi] - v[lo])
        }
        mean = v.reduce(0, +) / Double(v.count)
        median = q(0.5); p90 = q(0.9); p95 = q(0.95); p99 = q(0.99)
    }
    public init() {}
}

/// One second of the run.
public struct ServingSample: Sendable {
    public var second: Int
    public var running = 0.0, waiting = 0.0, swapped = 0.0
    /// Fraction of GPU KV blocks in use.
    public var kvUsage = 0.0
    public var promptTokens = 0, generatedTokens = 0
}

/// What a serving simulation measured.
public struct ServingResult: Sendable {
    public var completed: Int
    public var rejected: [(request: Int, reason: String)]
    public var makespanSeconds: Double
    public var ttft: LatencyStats
    /// Time per output token after the first, per request (vLLM's TPOT).
    public var tpot: LatencyStats
    /// Inter-token latency over all tokens.
    public var itl: LatencyStats
    public var e2e: LatencyStats
    public var requestThroughput: Double
    public var outputTokenThroughput: Double
    public var totalTokenThroughput: Double
    public var preemptions: Int
    public var recomputedTokens: Int
    public var swappedOutTokens: Int
    public var swappedInTokens: Int
    public var gpuBusySeconds: Double
    public var linkBusySeconds: Double
    /// Forward-pass time spent re-running tokens whose KV a recompute preemption dropped: their share
    /// of each iteration's projections and FFN (by token count) plus their chunks' attention.
    public var recomputeSeconds: Double
    /// Time spent copying swapped blocks (serial with the forward pass, as in vLLM).
    public var swapSeconds: Double { linkBusySeconds }
    /// The time added by handling the overflow: recomputation plus swapping.
    public var overheadSeconds: Double { recomputeSeconds + swapSeconds }
    public var iterations: Int
    public var series: [ServingSample]
    public var gpuBlocks: Int
    /// Per-request states and the GPU and link tracks, when `ServingConfig.recordTrace` is set.
    public var trace: ServingTrace?
    /// The longest request served, prompt and output tokens together (what `--max-model-len` must allow).
    public var maxRequestTokens = 0
    /// Time iterations spent waiting for offloaded weights (`ServingConfig.cpuOffloadBytes`).
    public var offloadSeconds = 0.0
    /// The requests that met `ServingConfig.serviceLevel`, when one is set.
    public var serviceLevel: ServiceLevelResult?
}

/// What a serving run did over time, for a Chrome trace: one row per request, a GPU track of
/// iterations and a link track of swaps.
public struct ServingTrace: Sendable {
    public struct Span: Sendable, Equatable {
        public var name: String
        public var start: Double
        public var end: Double
    }
    public struct Iteration: Sendable {
        public var start: Double
        public var end: Double
        public var sequences: Int
        public var prefillTokens: Int
        public var decodeTokens: Int
        public var recomputeTokens: Int
        public var kvUsage: Double
        public var running: Int
        public var waiting: Int
        public var swapped: Int
    }
    /// Request ids in the order of `requests`.
    public var requestIDs: [Int] = []
    /// Per request: `queued` (waiting for its first admission), `prefill`, `decode`, `recompute` (re-running
    /// tokens after a recompute preemption), `stalled` (running but left out of an iteration),
    /// `preempted` (waiting after a recompute preemption), `swapped` (its blocks in host swap space).
    public var requests: [[Span]] = []
    public var iterations: [Iteration] = []
    /// `swap-out` and `swap-in` copies.
    public var link: [Span] = []

    mutating func mark(_ r: Int, _ name: String, _ start: Double, _ end: Double) {
        if var last = requests[r].last, last.name == name, abs(last.end - start) < 1e-12 {
            last.end = end
            requests[r][requests[r].count - 1] = last
        } else {
            requests[r].append(Span(name: name, start: start, end: end))
        }
    }
}

/// A request-level discrete-event simulation of a vLLM-style scheduler: each iteration schedules the
/// running sequences (one decode token, or a prefill chunk), swaps sequences back in, and admits
/// waiting ones first come first served under `maxNumSeqs`, `maxNumBatchedTokens` and the free
/// blocks; when a running sequence needs a block and none is free, the most recently admitted one is
/// preempted (recompute or swap). An iteration takes its swaps (block by block, per layer, for K and V,
/// serial with the forward pass as in vLLM) plus one forward pass of every scheduled token, costed by
/// the same cost model as the simulator.
public enum ServingSimulator {
    struct Live {
        let req: ServingRequest
        var computed = 0          // tokens whose KV is in the GPU cache
        var generated = 0
        /// Tokens to re-run before the sequence is back where a recompute preemption left it.
        var recomputeDebt = 0
        var started = false
        var blocks = 0
        var swappedBlocks = 0
        var firstToken: Double?
        var lastToken: Double?
        var itls: [Double] = []
        var finish: Double?
        var context: Int { req.inputTokens + generated }
    }

    public static func run(_ config: ServingConfig, requests: [ServingRequest], cost: any CostModel) throws -> ServingResult {
        try config.validate()
        let bs = config.blockSize
        func blocksFor(_ tokens: Int) -> Int { (tokens + bs - 1) / bs }
        let total = config.gpuBlocks
        let watermarkBlocks = config.watermarkBlocks
        var rejected: [(Int, String)] = []
        var live: [Live] = []
        for r in requests {
            let need = blocksFor(r.inputTokens + r.outputTokens)
            if need > total - watermarkBlocks {
                let wm = watermarkBlocks > 0 ? " less the watermark of \(watermarkBlocks) kept free" : ""
                rejected.append((r.id, "needs \(need) KV blocks of \(bs) tokens for \(r.inputTokens + r.outputTokens) tokens, the whole cache has \(total)\(wm)"))
            } else if !config.chunkedPrefill, r.inputTokens + r.outputTokens - 1 > config.maxNumBatchedTokens {
                rejected.append((r.id, "its prefill after a preemption could reach \(r.inputTokens + r.outputTokens - 1) tokens, over maxNumBatchedTokens (\(config.maxNumBatchedTokens)) without chunked prefill"))
            } else {
                live.append(Live(req: r))
            }
        }
        live.sort { ($0.req.arrivalSeconds, $0.req.id) < ($1.req.arrivalSeconds, $1.req.id) }
        let m = config.model
        let copyBytes = Double(bs * m.kvDim) * Double(m.kvCacheElementBytes ?? m.bytesPerElement)    // one block of K (or V) of one layer
        let copiesPerBlock = Double(m.layers * 2)

        var free = total, swapFree = config.swapBlocks
        var waiting: [Int] = [], running: [Int] = [], swapped: [Int] = []
        var next = 0, done = 0
        var t = 0.0
        var preemptions = 0, recomputed = 0, swappedOut = 0, swappedIn = 0
        var gpuBusy = 0.0, linkBusy = 0.0, recomputeBusy = 0.0, offloadBusy = 0.0, iterations = 0
        var trace: ServingTrace?
        if config.recordTrace {
            trace = ServingTrace(requestIDs: live.map(\.req.id), requests: Array(repeating: [], count: live.count))
        }
        var samples: [Int: (n: Int, run: Double, wait: Double, swap: Double, kv: Double, prompt: Int, gen: Int)] = [:]

        while done < live.count {
            while next < live.count, live[next].req.arrivalSeconds <= t { waiting.append(next); next += 1 }
            if running.isEmpty, waiting.isEmpty, swapped.isEmpty {
                t = live[next].req.arrivalSeconds
                continue
            }
            var budget = config.maxNumBatchedTokens
            var scheduled: [(Int, Int)] = []     // (request, tokens this iteration)
            var swapOutBlocks = 0, swapInBlocks = 0
            var preempted = false
            // Running sequences, oldest first; preempt from the newest end, which has not been scheduled
            // in this iteration yet (the victim is at index i or later).
            func scheduleRunning() {
                var i = 0
                while i < running.count {
                    let r = running[i]
                    var tokens = live[r].context - live[r].computed
                    if config.chunkedPrefill { tokens = min(tokens, budget) }
                    if tokens <= 0 || tokens > budget { i += 1; continue }
                    let need = blocksFor(live[r].computed + tokens) - live[r].blocks
                    var victimIsSelf = false
                    while need > free {
                        let v = running.removeLast()
                        preemptions += 1
                        preempted = true
                        if config.preemption == .swap, live[v].blocks <= swapFree {
                            swapFree -= live[v].blocks
                            swapOutBlocks += live[v].blocks
                            swappedOut += live[v].computed
                            live[v].swappedBlocks = live[v].blocks
                            swapped.append(v)
                        } else {
                            recomputed += live[v].computed
                            live[v].recomputeDebt += live[v].computed
                            live[v].computed = 0
                            waiting.insert(v, at: 0)
                        }
                        free += live[v].blocks
                        live[v].blocks = 0
                        if v == r { victimIsSelf = true; break }
                    }
                    if victimIsSelf { continue }
                    free -= need
                    live[r].blocks += need
                    budget -= tokens
                    scheduled.append((r, tokens))
                    i += 1
                }
            }
            // Swapped sequences come back first come first served.
            func scheduleSwapped() {
                while let s = swapped.first, running.count < config.maxNumSeqs {
                    var tokens = live[s].context - live[s].computed
                    // A sequence swapped out in the middle of a chunked prefill resumes with a chunk.
                    if config.chunkedPrefill { tokens = min(tokens, budget) }
                    let need = blocksFor(live[s].computed + tokens)
                    guard need <= free, tokens >= 1, tokens <= budget else { break }
                    swapped.removeFirst()
                    free -= need
                    swapFree += live[s].swappedBlocks
                    swapInBlocks += live[s].swappedBlocks
                    swappedIn += live[s].computed
                    live[s].blocks = need
                    live[s].swappedBlocks = 0
                    running.append(s)
                    budget -= tokens
                    scheduled.append((s, tokens))
                }
            }
            // Waiting sequences: prefill (whole, or a chunk), first come first served, leaving the
            // watermark free.
            func schedulePrefills() {
                while let w = waiting.first, running.count < config.maxNumSeqs, budget > 0 {
                    var tokens = live[w].context - live[w].computed
                    if config.chunkedPrefill { tokens = min(tokens, budget) } else if tokens > budget { break }
                    let need = blocksFor(live[w].computed + tokens)
                    guard need + watermarkBlocks <= free else { break }
                    waiting.removeFirst()
                    free -= need
                    live[w].blocks = need
                    budget -= tokens
                    running.append(w)
                    scheduled.append((w, tokens))
                }
            }
            if config.chunkedPrefill {
                // vLLM's chunked-prefill scheduler: decodes and prefill chunks share an iteration.
                scheduleRunning()
                if !preempted { scheduleSwapped() }
                if !preempted, swapped.isEmpty { schedulePrefills() }
            } else {
                // vLLM's default scheduler: prefills first, alone in their iteration; otherwise the
                // running decodes, then swap-ins when nothing was preempted.
                if swapped.isEmpty { schedulePrefills() }
                if scheduled.isEmpty {
                    scheduleRunning()
                    if !preempted { scheduleSwapped() }
                }
            }
            guard !scheduled.isEmpty || swapOutBlocks > 0 else {
                // Nothing can run until a request arrives (all blocked on memory cannot happen: every
                // request fits the whole cache alone).
                if next < live.count { t = max(t, live[next].req.arrivalSeconds); continue }
                throw InputError(field: "serving", "no request can be scheduled: \(waiting.count) waiting, \(swapped.count) swapped, \(free) of \(total) blocks free")
            }
            // Cost of the iteration.
            let d2h = config.hardware.link.channel(.deviceToHost, config.hostMemory).seconds(bytes: copyBytes)
            let h2d = config.hardware.link.channel(.hostToDevice, config.hostMemory).seconds(bytes: copyBytes)
            let swapOutSeconds = Double(swapOutBlocks) * copiesPerBlock * d2h
            let swapInSeconds = Double(swapInBlocks) * copiesPerBlock * h2d
            let swapSeconds = swapOutSeconds + swapInSeconds
            let offloadPerIteration = config.offloadSecondsPerIteration
            var tokens = 0, decodeContext = 0, producing = 0, promptTokens = 0, recomputeTokens = 0, decodeTokens = 0
            var prefills: [(q: Int, c: Int, redo: Int)] = []
            var kinds: [(Int, String)] = []
            for (r, n) in scheduled {
                tokens += n
                let after = live[r].computed + n
                if n == 1, live[r].computed == live[r].context - 1, live[r].generated > 0, live[r].recomputeDebt == 0 {
                    decodeContext += after
                    decodeTokens += 1
                    if trace != nil { kinds.append((r, "decode")) }
                } else {
                    let redo = min(n, live[r].recomputeDebt)
                    live[r].recomputeDebt -= redo
                    recomputeTokens += redo
                    prefills.append((n, after, redo))
                    promptTokens += n
                    if trace != nil { kinds.append((r, redo > 0 ? "recompute" : "prefill")) }
                }
                if after == live[r].context { producing += 1 }
            }
            var forward = 0.0, redoSeconds = 0.0
            if tokens > 0 {
                let plan = ExecutionPlan(model: m, hardware: config.hardware, batch: max(producing, 1), weights: .gpu,
                                         placement: TokenPlacement(gpuKV: 1), phase: .decodeStep(context: 1))
                var b = ScheduleBuilder(plan: plan, cost: cost, expectedTasks: 0)
                let ffn = b.ffnSeconds(tokens).alone
                let linear = (b.qkvSeconds(tokens) + b.outSeconds(tokens)).alone + ffn
                // A mixture's leading dense layers run their dense FFN instead.
                let denseLayers = m.moe.map { min($0.denseLayers, m.layers) } ?? 0
                b.denseFFN = true
                let denseFFNDelta = denseLayers > 0 ? b.ffnSeconds(tokens).alone - ffn : 0
                b.denseFFN = false
                var layer = linear
                var redoLayer = linear * Double(recomputeTokens) / Double(tokens)
                if decodeContext > 0 {
                    layer += b.decodeAttentionSeconds(batch: 1, context: decodeContext).alone
                }
                for p in prefills {
                    let a = b.prefillAttentionSeconds(seqs: 1, queries: p.q, context: p.c).alone
                    layer += a
                    redoLayer += a * Double(p.redo) / Double(p.q)
                }
                forward = Double(m.layers) * layer + Double(denseLayers) * denseFFNDelta + (producing > 0 ? b.headSeconds().alone : 0)
                redoSeconds = Double(m.layers) * redoLayer
            }
            if trace != nil {
                let t0 = t, t1 = t + swapSeconds + (tokens > 0 ? offloadPerIteration : 0), t2 = t1 + forward
                if swapOutBlocks > 0 {
                    trace!.link.append(.init(name: "swap-out \(swapOutBlocks) blocks", start: t0, end: t0 + swapOutSeconds))
                }
                if swapInBlocks > 0 {
                    trace!.link.append(.init(name: "swap-in \(swapInBlocks) blocks", start: t1 - swapInSeconds, end: t1))
                }
                // Only the requests in the system this iteration: work in proportion to them, not
                // to every request of the run.
                var state: [Int: String] = [:]
                for (r, kind) in kinds { state[r] = kind }
                for r in running where state[r] == nil { state[r] = "stalled" }
                for r in waiting where state[r] == nil { state[r] = live[r].started ? "preempted" : "queued" }
                for r in swapped where state[r] == nil { state[r] = "swapped" }
                for (r, s) in state { trace!.mark(r, s, t0, t2) }
                trace!.iterations.append(.init(start: t1, end: t2, sequences: scheduled.count, prefillTokens: promptTokens - recomputeTokens,
                                               decodeTokens: decodeTokens, recomputeTokens: recomputeTokens,
                                               kvUsage: Double(total - free) / Double(total), running: running.count,
                                               waiting: waiting.count, swapped: swapped.count))
            }
            let offloadNow = tokens > 0 ? offloadPerIteration : 0
            t += swapSeconds + offloadNow + forward
            offloadBusy += offloadNow
            gpuBusy += forward
            recomputeBusy += redoSeconds
            linkBusy += swapSeconds
            iterations += 1
            var generatedNow = 0
            for (r, n) in scheduled {
                live[r].computed += n
                live[r].started = true
                guard live[r].computed == live[r].context else { continue }
                live[r].generated += 1
                generatedNow += 1
                if live[r].firstToken == nil { live[r].firstToken = t } else if let last = live[r].lastToken { live[r].itls.append(t - last) }
                live[r].lastToken = t
                if live[r].generated == live[r].req.outputTokens {
                    live[r].finish = t
                    free += live[r].blocks
                    live[r].blocks = 0
                    running.removeAll { $0 == r }
                    done += 1
                }
            }
            let sec = Int(t.rounded(.down))
            var s = samples[sec] ?? (0, 0, 0, 0, 0, 0, 0)
            s.n += 1; s.run += Double(running.count); s.wait += Double(waiting.count); s.swap += Double(swapped.count)
            s.kv += Double(total - free) / Double(total); s.prompt += promptTokens; s.gen += generatedNow
            samples[sec] = s
        }

        let finished = live.filter { $0.finish != nil }
        let makespan = max(t, 1e-12)
        let outputTokens = finished.reduce(0) { $0 + $1.req.outputTokens }
        let inputTokens = finished.reduce(0) { $0 + $1.req.inputTokens }
        // One row per second in which an iteration ended. A run of seconds with none (an idle gap, or
        // one long iteration) is written as its first and last second, with no tokens and the state
        // of the second before, so that the series stays as long as the iterations however far apart
        // the arrivals are.
        var series: [ServingSample] = []
        for sec in samples.keys.sorted() {
            if let last = series.last, sec > last.second + 1 {
                var gap = last
                gap.promptTokens = 0; gap.generatedTokens = 0
                gap.second = last.second + 1
                series.append(gap)
                if sec - 1 > gap.second { gap.second = sec - 1; series.append(gap) }
            }
            let s = samples[sec]!, n = Double(s.n)
            series.append(ServingSample(second: sec, running: s.run / n, waiting: s.wait / n, swapped: s.swap / n, kvUsage: s.kv / n,
                                        promptTokens: s.prompt, generatedTokens: s.gen))
        }
        var result = ServingResult(
            completed: finished.count, rejected: rejected, makespanSeconds: makespan,
            ttft: LatencyStats(finished.map { $0.firstToken! - $0.req.arrivalSeconds }),
            tpot: LatencyStats(finished.filter { $0.req.outputTokens > 1 }.map { ($0.finish! - $0.firstToken!) / Double($0.req.outputTokens - 1) }),
            itl: LatencyStats(finished.flatMap(\.itls)),
            e2e: LatencyStats(finished.map { $0.finish! - $0.req.arrivalSeconds }),
            requestThroughput: Double(finished.count) / makespan, outputTokenThroughput: Double(outputTokens) / makespan,
            totalTokenThroughput: Double(outputTokens + inputTokens) / makespan, preemptions: preemptions,
            recomputedTokens: recomputed, swappedOutTokens: swappedOut, swappedInTokens: swappedIn,
            gpuBusySeconds: gpuBusy, linkBusySeconds: linkBusy, recomputeSeconds: recomputeBusy, iterations: iterations,
            series: series, gpuBlocks: total, trace: trace)
        result.maxRequestTokens = requests.map { $0.inputTokens + $0.outputTokens }.max() ?? 0
        result.offloadSeconds = offloadBusy
        if let slo = config.serviceLevel {
            let good = finished.filter { f in
                let ttft = f.firstToken! - f.req.arrivalSeconds
                let tpot = f.req.outputTokens > 1 ? (f.finish! - f.firstToken!) / Double(f.req.outputTokens - 1) : 0
                return slo.met(ttft: ttft, tpot: tpot, e2e: f.finish! - f.req.arrivalSeconds)
            }.count
            result.serviceLevel = ServiceLevelResult(objectives: slo, goodRequests: good,
                                                     attainment: finished.isEmpty ? 0 : Double(good) / Double(finished.count),
                                                     goodput: Double(good) / makespan)
        }
        return result
    }
}
