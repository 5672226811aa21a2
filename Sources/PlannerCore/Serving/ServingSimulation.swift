import DequeModule
import Foundation
import HeapModule

/// A request-level discrete-event simulation of vLLM's scheduler on one GPU. Each iteration
/// schedules tokens under `maxNumBatchedTokens` and `maxNumSeqs` over a paged KV cache
/// (`BlockPool`), then costs one forward pass of every scheduled token with the simulator's cost
/// model, plus the swaps (V0) and the offloaded weights' copies it waits for.
///
/// - V1 (`ServingEngine.vllmV1`, vLLM 0.34.0 `vllm/v1/core/sched/scheduler.py`): the running
///   requests first, each given its remaining tokens up to the budget (811-986); when a block is
///   missing the last running request is preempted (`self.running.pop()`, 986), its blocks freed
///   and its computed tokens dropped (`_preempt_request` 1853-1896, back at the front of the
///   waiting queue), and the loop stops once the request itself is the victim; then, only if
///   nothing was preempted (1066), waiting requests in order while the budget and `maxNumSeqs`
///   allow: a prefix-cache hit on the leading full blocks (`get_computed_blocks`, at most every
///   token but the last, request.py 352-356), a chunk of the rest (whole when chunked prefill is off,
///   else the step stops, 1388-1395), admitted only if the whole current sequence fits beside the
///   watermark (kv_cache_manager.py 539-569), else the step stops (1515-1522).
/// - V0 (`ServingEngine.vllmV0`): without chunked prefill, waiting prefills run first, alone in their
///   iteration; otherwise the running decodes, then swap-ins when nothing was preempted. With it,
///   decodes and prefill chunks share iterations. Preemption by recompute or by swap: one
///   `cudaMemcpyAsync` per block per layer for K and for V (`csrc/cache_kernels.cu` `swap_blocks`,
///   called per layer by `vllm/worker/cache_engine.py`), queued on one stream, so the host's issue
///   time overlaps the previous copy's transfer (`LinkSpec.queuedSeconds`); serial with the
///   forward pass.
///
/// A request with a `previousTurn` arrives `thinkSeconds` after that turn finishes.
public enum ServingSimulator {
    /// The state of a request in the system (arrived, not finished). Slots are reused once a request
    /// finishes, so state does not grow with the requests served.
    struct Live {
        let req: ServingRequest
        /// Its position among the accepted requests (its trace row).
        let pos: Int
        var arrival: Double
        var computed = 0          // tokens whose KV is in the GPU cache
        var generated = 0
        /// Tokens to re-run before the sequence is back where a recompute preemption left it.
        var recomputeDebt = 0
        var started = false
        /// The GPU blocks held, in order, each under its cache key (0: uncached).
        var held: [BlockPool.Key] = []
        /// Leading held blocks already offered to the prefix cache.
        var registered = 0
        /// Leading prompt blocks already offered to the CPU KV cache.
        var stored = 0
        /// Tokens whose KV is being loaded from the CPU KV cache.
        var loadingTokens = 0
        var swappedBlocks = 0
        var firstToken: Double?
        var lastToken: Double?
        var finish: Double?
        var context: Int { req.inputTokens + generated }
        var blocks: Int { held.count }
    }

    /// `progress`, when given, is called with the requests finished so far every 1,024 iterations and
    /// at the end.
    public static func run(_ config: ServingConfig, requests: [ServingRequest], cost: any CostModel,
                           progress: ((Int) -> Void)? = nil) throws -> ServingResult {
        try config.validate()
        let bs = config.blockSize
        let v1 = config.engine == .vllmV1
        func blocksFor(_ tokens: Int) -> Int { (tokens + bs - 1) / bs }
        let total = config.gpuBlocks
        let watermarkBlocks = config.watermarkBlocks
        var rejected: [(Int, String)] = []
        var rejectedIDs = Set<Int>()
        // Turns name earlier requests by id: only then are the ids collected and read in id order.
        let turns = requests.contains { $0.previousTurn != nil }
        let knownIDs = turns ? Set(requests.map(\.id)) : []
        for r in (turns ? requests.sorted(by: { $0.id < $1.id }) : requests) {
            let need = blocksFor(r.inputTokens + r.outputTokens)
            if let p = r.previousTurn, !knownIDs.contains(p) || p >= r.id {
                throw InputError(field: "requests", "request \(r.id) names previous turn \(p), which is not an earlier request")
            }
            if let p = r.previousTurn, rejectedIDs.contains(p) {
                rejected.append((r.id, "its previous turn, request \(p), was rejected, so it never arrives"))
                rejectedIDs.insert(r.id)
            } else if need > total - watermarkBlocks {
                let wm = watermarkBlocks > 0 ? " less the watermark of \(watermarkBlocks) kept free" : ""
                rejected.append((r.id, "needs \(need) KV blocks of \(bs) tokens for \(r.inputTokens + r.outputTokens) tokens, the whole cache has \(total)\(wm)"))
                rejectedIDs.insert(r.id)
            } else if !config.chunkedPrefill, r.inputTokens + r.outputTokens - 1 > config.maxNumBatchedTokens {
                rejected.append((r.id, "its prefill after a preemption could reach \(r.inputTokens + r.outputTokens - 1) tokens, over maxNumBatchedTokens (\(config.maxNumBatchedTokens)) without chunked prefill"))
                rejectedIDs.insert(r.id)
            }
        }
        // The accepted requests; the caller's array itself when none was rejected.
        var reqs = rejectedIDs.isEmpty ? requests : requests.filter { !rejectedIDs.contains($0.id) }
        // Requests that arrive on their own, by time; later turns arrive when released. Input already
        // in that order (a generated or recorded stream) is not sorted again.
        func inOrder(_ a: ServingRequest, _ b: ServingRequest) -> Bool {
            let ka = a.previousTurn == nil ? 0 : 1, kb = b.previousTurn == nil ? 0 : 1
            return (ka, a.arrivalSeconds, a.id) < (kb, b.arrivalSeconds, b.id)
        }
        if !zip(reqs, reqs.dropFirst()).allSatisfy({ !inOrder($1, $0) }) { reqs.sort(by: inOrder) }
        let independent = reqs.firstIndex { $0.previousTurn != nil } ?? reqs.count
        var nextTurn: [Int: [Int]] = [:]   // position -> the positions of the turns after it
        if independent < reqs.count {
            var index: [Int: Int] = [:]
            for (i, r) in reqs.enumerated() { index[r.id] = i }
            for (i, r) in reqs.enumerated() { if let p = r.previousTurn, let pi = index[p] { nextTurn[pi, default: []].append(i) } }
        }
        var live: [Live] = []
        var freeSlots: [Int] = []
        func admit(_ pos: Int, at arrival: Double) -> Int {
            let l = Live(req: reqs[pos], pos: pos, arrival: arrival)
            if let slot = freeSlots.popLast() { live[slot] = l; return slot }
            live.append(l)
            return live.count - 1
        }
        struct Release: Comparable {
            var time: Double
            var i: Int
            static func < (a: Release, b: Release) -> Bool { (a.time, a.i) < (b.time, b.i) }
        }
        var released = Heap<Release>()

        let m = config.model
        let copyBytes = Double(bs * m.kvDim) * Double(m.kvCacheElementBytes ?? m.bytesPerElement)    // one block of K (or V) of one layer
        let copiesPerBlock = m.layers * 2

        var pool = BlockPool(blocks: total, caching: config.prefixCaching)
        let offloading = config.kvOffloadingBytes > 0
        var hostCache = HostBlockCache(capacity: offloading ? config.hostCacheBlocks : 0)
        // Requests waiting for a load from the CPU KV cache (vLLM's WAITING_FOR_REMOTE_KVS: blocks
        // held, no compute), with the time the load finishes; and when each link direction is free.
        var loading: [(i: Int, done: Double)] = []
        var h2dFree = 0.0, d2hFree = 0.0
        var hostHitTokens = 0, storedBlocks = 0, loadSeconds = 0.0, storeSeconds = 0.0
        let descriptorsPerBlock = m.layers * 2
        var prefetch = config.prefetchOffload.map {
            PrefetchOffload(layers: m.layers, groupSize: $0.groupSize, perGroup: $0.numInGroup, step: $0.prefetchStep, copySeconds: config.prefetchCopySeconds)
        }
        var swapFree = config.swapBlocks
        var waiting = Deque<Int>(), swapped = Deque<Int>()
        var running: [Int] = []
        var next = 0, done = 0
        var t = 0.0
        var preemptions = 0, recomputed = 0, swappedOut = 0, swappedIn = 0, hitTokens = 0, queriedTokens = 0
        var gpuBusy = 0.0, linkBusy = 0.0, recomputeBusy = 0.0, offloadBusy = 0.0, iterations = 0
        var trace: ServingTrace?
        if config.recordTrace {
            trace = ServingTrace(requestIDs: reqs.map(\.id), requests: Array(repeating: [], count: reqs.count))
        }
        var samples: [Int: (n: Int, run: Double, wait: Double, swap: Double, kv: Double, prompt: Int, gen: Int)] = [:]
        // Latencies stream into fixed-size digests, so memory does not grow with the tokens served.
        var ttfts = LatencyDigest(), tpots = LatencyDigest(), itls = LatencyDigest(), e2es = LatencyDigest()
        var completed = 0, outputTokens = 0, inputTokens = 0, good = 0

        func key(_ r: Int, _ block: Int) -> BlockPool.Key { BlockPool.key(live[r].req, block: block, blockSize: bs) }
        func allocate(_ r: Int, _ n: Int) {
            for _ in 0 ..< n {
                let ok = pool.allocate()
                precondition(ok, "the scheduler checked the free blocks")
                live[r].held.append(0)
            }
        }
        func releaseBlocks(_ r: Int) {
            for k in live[r].held.reversed() { pool.release(k) }
            live[r].held = []
            live[r].registered = 0
        }
        /// Full blocks computed since the last call enter the prefix cache.
        func register(_ r: Int) {
            guard pool.caching else { return }
            let full = min(live[r].computed / bs, live[r].held.count)
            while live[r].registered < full {
                let b = live[r].registered
                live[r].held[b] = pool.register(key(r, b))
                live[r].registered += 1
            }
        }

        while done < reqs.count {
            var arrived: [Int] = []
            while next < independent, reqs[next].arrivalSeconds <= t { arrived.append(admit(next, at: reqs[next].arrivalSeconds)); next += 1 }
            while let top = released.min, top.time <= t { _ = released.removeMin(); arrived.append(admit(top.i, at: top.time)) }
            if arrived.count > 1 { arrived.sort { (live[$0].arrival, live[$0].req.id) < (live[$1].arrival, live[$1].req.id) } }
            waiting.append(contentsOf: arrived)
            // Loads that have finished: the request runs on from the loaded tokens.
            if !loading.isEmpty {
                for (r, _) in loading.filter({ $0.done <= t }) {
                    live[r].computed += live[r].loadingTokens
                    live[r].recomputeDebt = max(0, live[r].recomputeDebt - live[r].loadingTokens)
                    hostHitTokens += live[r].loadingTokens
                    live[r].loadingTokens = 0
                    register(r)
                    running.append(r)
                }
                loading.removeAll { $0.done <= t }
            }
            if running.isEmpty, waiting.isEmpty, swapped.isEmpty {
                let upcoming = [next < independent ? reqs[next].arrivalSeconds : nil, released.min?.time, loading.map(\.done).min()].compactMap { $0 }
                guard let soonest = upcoming.min() else {
                    throw InputError(field: "serving", "no request is left to arrive, yet \(reqs.count - done) have not finished")
                }
                t = max(t, soonest)
                continue
            }
            var budget = config.maxNumBatchedTokens
            var scheduled: [(Int, Int)] = []     // (request, tokens this iteration)
            var swapOutBlocks = 0, swapInBlocks = 0
            var preempted = false
            func preemptLast() -> Int {
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
                    live[v].recomputeDebt += live[v].computed
                    live[v].computed = 0
                    waiting.prepend(v)
                }
                releaseBlocks(v)
                return v
            }
            // Running sequences, oldest first; preempt from the newest end, which has not been scheduled
            // in this iteration yet (the victim is at index i or later).
            func scheduleRunning() {
                var i = 0
                while i < running.count, budget > 0 || !v1 {
                    let r = running[i]
                    var tokens = live[r].context - live[r].computed
                    if config.chunkedPrefill || v1 { tokens = min(tokens, budget) }
                    if tokens <= 0 || tokens > budget { i += 1; continue }
                    let need = blocksFor(live[r].computed + tokens) - live[r].blocks
                    var victimIsSelf = false
                    while need > pool.free {
                        if preemptLast() == r { victimIsSelf = true; break }
                    }
                    if victimIsSelf {
                        if v1 { return }   // V1 stops the running loop when the request itself was preempted
                        continue
                    }
                    allocate(r, need)
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
                    guard need <= pool.free, tokens >= 1, tokens <= budget else { break }
                    swapped.removeFirst()
                    allocate(s, need)
                    swapFree += live[s].swappedBlocks
                    swapInBlocks += live[s].swappedBlocks
                    swappedIn += live[s].computed
                    live[s].swappedBlocks = 0
                    running.append(s)
                    budget -= tokens
                    scheduled.append((s, tokens))
                }
            }
            // Waiting sequences: a prefix-cache hit, then their prefill (whole, or a chunk), first
            // come first served, leaving the watermark free.
            func schedulePrefills() {
                while let w = waiting.first, running.count < config.maxNumSeqs, budget > 0 {
                    var hits: [BlockPool.Key] = []
                    if pool.caching, live[w].computed == 0 {
                        let most = (live[w].context - 1) / bs
                        while hits.count < most {
                            let k = key(w, hits.count)
                            guard pool.isCached(k) else { break }
                            hits.append(k)
                        }
                    }
                    // Then the CPU KV cache: the blocks after the GPU's hits that it holds are loaded, not
                    // computed; the request waits for the load (offloading/scheduler.py 1359-1455,
                    // scheduler.py 1336-1339 and 1576-1604).
                    var hostHits: [BlockPool.Key] = []
                    if offloading, live[w].computed == 0 {
                        let most = (live[w].context - 1) / bs
                        while hits.count + hostHits.count < most {
                            let k = key(w, hits.count + hostHits.count)
                            guard hostCache.contains(k) else { break }
                            hostHits.append(k)
                        }
                    }
                    if !hostHits.isEmpty {
                        let evictable = hits.reduce(0) { $0 + (pool.isEvictable($1) ? 1 : 0) }
                        let watermark = running.isEmpty ? 0 : watermarkBlocks
                        guard blocksFor(live[w].context) - hits.count + evictable + watermark <= pool.free else { break }
                        waiting.removeFirst()
                        queriedTokens += live[w].context
                        hitTokens += hits.count * bs
                        for k in hits { _ = pool.hit(k) }
                        live[w].held = hits
                        live[w].registered = hits.count
                        live[w].computed = hits.count * bs
                        live[w].recomputeDebt = max(0, live[w].recomputeDebt - hits.count * bs)
                        allocate(w, hostHits.count)
                        live[w].loadingTokens = hostHits.count * bs
                        let ready = hostHits.compactMap { hostCache.readyAt($0) }.max() ?? t
                        for k in hostHits { hostCache.touch(k) }
                        let start = max(t, h2dFree, ready)
                        let seconds = config.hardware.link.batchedSeconds(descriptors: hostHits.count * descriptorsPerBlock,
                                                                          bytes: Double(hostHits.count) * config.blockBytes, .hostToDevice, .pinned)
                        h2dFree = start + seconds
                        loadSeconds += seconds
                        loading.append((w, h2dFree))
                        continue
                    }
                    let hit = hits.count * bs
                    var tokens = live[w].context - live[w].computed - hit
                    if config.chunkedPrefill { tokens = min(tokens, budget) } else if tokens > budget { break }
                    let chunkBlocks = blocksFor(live[w].computed + hit + tokens) - hits.count
                    // Hits on free cached blocks take them out of the free count too.
                    let evictable = hits.reduce(0) { $0 + (pool.isEvictable($1) ? 1 : 0) }
                    // V1 admits only if the whole current sequence fits; V0 the scheduled part.
                    let mustFit = v1 ? blocksFor(live[w].context) - hits.count : chunkBlocks
                    let watermark = v1 && running.isEmpty ? 0 : watermarkBlocks
                    guard mustFit + evictable + watermark <= pool.free else { break }
                    waiting.removeFirst()
                    if pool.caching {
                        queriedTokens += live[w].context
                        hitTokens += hit
                    }
                    for k in hits { _ = pool.hit(k) }
                    live[w].held = hits
                    live[w].registered = hits.count
                    live[w].computed += hit
                    live[w].recomputeDebt = max(0, live[w].recomputeDebt - hit)
                    allocate(w, chunkBlocks)
                    budget -= tokens
                    running.append(w)
                    scheduled.append((w, tokens))
                }
            }
            if v1 {
                scheduleRunning()
                if !preempted { schedulePrefills() }
            } else if config.chunkedPrefill {
                // vLLM V0's chunked-prefill scheduler: decodes and prefill chunks share an iteration.
                scheduleRunning()
                if !preempted { scheduleSwapped() }
                if !preempted, swapped.isEmpty { schedulePrefills() }
            } else {
                // vLLM V0's default scheduler: prefills first, alone in their iteration; otherwise the
                // running decodes, then swap-ins when nothing was preempted.
                if swapped.isEmpty { schedulePrefills() }
                if scheduled.isEmpty {
                    scheduleRunning()
                    if !preempted { scheduleSwapped() }
                }
            }
            guard !scheduled.isEmpty || swapOutBlocks > 0 || preempted else {
                // Nothing can run until a request arrives or a load finishes (all blocked on memory
                // cannot happen: every request fits the whole cache alone).
                let upcoming = [next < independent ? reqs[next].arrivalSeconds : nil, released.min?.time, loading.map(\.done).min()].compactMap { $0 }
                if let soonest = upcoming.min() { t = max(t, soonest); continue }
                throw InputError(field: "serving", "no request can be scheduled: \(waiting.count) waiting, \(swapped.count) swapped, \(pool.free) of \(total) blocks free")
            }
            // Cost of the iteration.
            // One copy per block per layer for K and for V, queued on one stream (`LinkSpec.queuedSeconds`).
            let link = config.hardware.link
            let swapOutSeconds = link.queuedSeconds(copies: swapOutBlocks * copiesPerBlock, bytes: copyBytes, .deviceToHost, config.hostMemory)
            let swapInSeconds = link.queuedSeconds(copies: swapInBlocks * copiesPerBlock, bytes: copyBytes, .hostToDevice, config.hostMemory)
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
            recomputed += recomputeTokens
            var forward = 0.0, redoSeconds = 0.0, headTime = 0.0
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
                headTime = producing > 0 ? b.headSeconds().alone : 0
                forward = Double(m.layers) * layer + Double(denseLayers) * denseFFNDelta + headTime
                redoSeconds = Double(m.layers) * redoLayer
            }
            var offloadNow = tokens > 0 ? offloadPerIteration : 0
            if tokens > 0, var pf = prefetch {
                // The prefetch offloader: the decoder layers play one by one, waiting where a copy is late.
                let start = t + swapSeconds, decoder = forward - headTime
                offloadNow = max(0, pf.run(start: start, layerSeconds: decoder / Double(m.layers)) - start - decoder)
                prefetch = pf
            }
            if offloadPerIteration > 0, tokens > 0, offloading {
                // The forward's reads of offloaded weights share the host-to-GPU link with KV loads,
                // which were queued first.
                let start = max(t + swapSeconds, h2dFree)
                offloadNow += start - (t + swapSeconds)
                h2dFree = start + offloadPerIteration
            }
            if trace != nil {
                let t0 = t, t1 = t + swapSeconds + offloadNow, t2 = t1 + forward
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
                for (r, _) in loading where state[r] == nil { state[r] = "loading" }
                for (r, s) in state { trace!.mark(live[r].pos, s, t0, t2) }
                trace!.iterations.append(.init(start: t1, end: t2, sequences: scheduled.count, prefillTokens: promptTokens - recomputeTokens,
                                               decodeTokens: decodeTokens, recomputeTokens: recomputeTokens,
                                               kvUsage: Double(total - pool.free) / Double(total), running: running.count,
                                               waiting: waiting.count, swapped: swapped.count))
            }
            t += swapSeconds + offloadNow + forward
            offloadBusy += offloadNow
            gpuBusy += forward
            recomputeBusy += redoSeconds
            linkBusy += swapSeconds
            iterations += 1
            if config.checkInvariants {
                precondition(pool.consistent(), "serving: the block pool's free count no longer matches its blocks (iteration \(iterations))")
            }
            if let progress, iterations % 1024 == 0 { progress(done) }
            var generatedNow = 0
            var stores: [BlockPool.Key] = []
            for (r, n) in scheduled {
                live[r].computed += n
                live[r].started = true
                register(r)
                if offloading {
                    // Full prompt blocks are written through to the CPU KV cache as they are computed
                    // (`offload_prompt_only`, kv_offload/base.py 786-792).
                    let full = min(live[r].computed, live[r].req.inputTokens) / bs
                    while live[r].stored < full {
                        let k = key(r, live[r].stored)
                        if !hostCache.contains(k), !stores.contains(k) { stores.append(k) }
                        live[r].stored += 1
                    }
                }
                guard live[r].computed == live[r].context else { continue }
                live[r].generated += 1
                generatedNow += 1
                if live[r].firstToken == nil {
                    live[r].firstToken = t
                    ttfts.add(t - live[r].arrival)
                } else if let last = live[r].lastToken {
                    itls.add(t - last)
                }
                live[r].lastToken = t
                if live[r].generated == live[r].req.outputTokens {
                    live[r].finish = t
                    let out = live[r].req.outputTokens
                    let tpot = out > 1 ? (t - live[r].firstToken!) / Double(out - 1) : 0
                    if out > 1 { tpots.add(tpot) }
                    e2es.add(t - live[r].arrival)
                    completed += 1
                    outputTokens += out
                    inputTokens += live[r].req.inputTokens
                    if let slo = config.serviceLevel, slo.met(ttft: live[r].firstToken! - live[r].arrival, tpot: tpot, e2e: t - live[r].arrival) { good += 1 }
                    // The reply's last token has no KV; every full block before it is cached.
                    releaseBlocks(r)
                    running.removeAll { $0 == r }
                    done += 1
                    for n in nextTurn.removeValue(forKey: live[r].pos) ?? [] {
                        released.insert(Release(time: t + reqs[n].thinkSeconds, i: n))
                    }
                    freeSlots.append(r)
                }
            }
            if !stores.isEmpty {
                // One store job, issued at the start of the next step on its own stream, beside the
                // compute (offloading/worker.py 277-289).
                let start = max(t, d2hFree)
                let seconds = config.hardware.link.batchedSeconds(descriptors: stores.count * descriptorsPerBlock,
                                                                  bytes: Double(stores.count) * config.blockBytes, .deviceToHost, .pinned)
                d2hFree = start + seconds
                storeSeconds += seconds
                for k in stores where hostCache.insert(k, readyAt: d2hFree) { storedBlocks += 1 }
            }
            let sec = Int(t.rounded(.down))
            var s = samples[sec] ?? (0, 0, 0, 0, 0, 0, 0)
            s.n += 1; s.run += Double(running.count); s.wait += Double(waiting.count); s.swap += Double(swapped.count)
            s.kv += Double(total - pool.free) / Double(total); s.prompt += promptTokens; s.gen += generatedNow
            samples[sec] = s
        }

        progress?(done)
        // Every block came back: none both free and held.
        precondition(pool.free == total, "serving: \(total - pool.free) KV blocks still held after every request finished")
        let makespan = max(t, 1e-12)
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
            completed: completed, rejected: rejected, makespanSeconds: makespan,
            ttft: ttfts.stats, tpot: tpots.stats, itl: itls.stats, e2e: e2es.stats,
            requestThroughput: Double(completed) / makespan, outputTokenThroughput: Double(outputTokens) / makespan,
            totalTokenThroughput: Double(outputTokens + inputTokens) / makespan, preemptions: preemptions,
            recomputedTokens: recomputed, swappedOutTokens: swappedOut, swappedInTokens: swappedIn,
            gpuBusySeconds: gpuBusy, linkBusySeconds: linkBusy, recomputeSeconds: recomputeBusy, iterations: iterations,
            series: series, gpuBlocks: total, trace: trace)
        result.maxRequestTokens = requests.map { $0.inputTokens + $0.outputTokens }.max() ?? 0
        result.offloadSeconds = offloadBusy
        result.prefixHitTokens = hitTokens
        result.hostHitTokens = hostHitTokens
        result.hostStoredBlocks = storedBlocks
        result.kvLoadSeconds = loadSeconds
        result.kvStoreSeconds = storeSeconds
        result.prefixQueriedTokens = queriedTokens
        if let slo = config.serviceLevel {
            result.serviceLevel = ServiceLevelResult(objectives: slo, goodRequests: good,
                                                     attainment: completed == 0 ? 0 : Double(good) / Double(completed),
                                                     goodput: Double(good) / makespan)
        }
        return result
    }
}
