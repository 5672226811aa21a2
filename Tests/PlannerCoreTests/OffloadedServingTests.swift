import Foundation
import Testing
@testable import PlannerCore

/// Serving over request streams: latency objectives, vLLM V1's scheduler, prefix caching,
/// multi-turn arrivals and the cost of swap copies.
@Suite struct OffloadedServingTests {
    static func config(blocks: Int? = nil) throws -> ServingConfig {
        var c = ServingConfig(model: try ModelCatalog.model(named: "yarn-llama-2-7b-64k"), hardware: HardwareCatalog.a100_40gb)
        c.gpuBlocksOverride = blocks
        return c
    }

    static func run(_ c: ServingConfig, _ rs: [ServingRequest]) throws -> ServingResult {
        try ServingSimulator.run(c, requests: rs, cost: AnalyticCostModel(hardware: c.hardware, dtype: c.model.dtype))
    }

    /// Two requests arrive together and one sequence runs at a time: the second's first token
    /// comes after the first has finished. A TTFT objective between the two first-token times
    /// passes exactly one; an objective equal to a measured time passes it (vLLM counts
    /// `objective >= measured`); goodput is good requests over the run's duration.
    @Test func goodputCountsRequestsMeetingEveryObjective() throws {
        var c = try Self.config()
        c.maxNumSeqs = 1
        let rs = [ServingRequest(id: 0, arrivalSeconds: 0, inputTokens: 200, outputTokens: 20),
                  ServingRequest(id: 1, arrivalSeconds: 0, inputTokens: 200, outputTokens: 20)]
        let plain = try Self.run(c, rs)
        // Of two values, p99 = min + 0.99 (max - min) and the mean is min + 0.5 (max - min).
        let spread = (plain.ttft.p99 - plain.ttft.mean) / 0.49
        let minT = plain.ttft.mean - spread / 2, maxT = plain.ttft.mean + spread / 2
        #expect(minT < plain.e2e.mean && maxT > minT * 5)
        c.serviceLevel = ServiceLevel(ttftSeconds: (minT + maxT) / 2)
        let half = try #require(try Self.run(c, rs).serviceLevel)
        #expect(half.goodRequests == 1 && half.attainment == 0.5)
        #expect(abs(half.goodput - 1 / plain.makespanSeconds) < 1e-12)
        c.serviceLevel = ServiceLevel(ttftSeconds: maxT * (1 + 1e-12))
        #expect(try Self.run(c, rs).serviceLevel?.goodRequests == 2)
        // A TPOT objective below every request's TPOT fails them all, whatever the TTFT allows.
        c.serviceLevel = ServiceLevel(ttftSeconds: maxT * 2, tpotSeconds: plain.tpot.mean / 2)
        #expect(try Self.run(c, rs).serviceLevel?.goodRequests == 0)
    }

    @Test func objectivesAreValidated() throws {
        let zero = try #require(throws: InputError.self) { try ServiceLevel.parse(JSONFields(["ttftMs": 0], path: "slo")) }
        #expect(zero.field == "slo.ttftMs" && zero.message.contains("above 0"))
        let none = try #require(throws: InputError.self) { try ServiceLevel.parse(JSONFields([:], path: "slo")) }
        #expect(none.field == "slo" && none.message.contains("at least one"))
        let unknown = try #require(throws: InputError.self) { try ServiceLevel.parse(JSONFields(["ttft": 5], path: "slo")) }
        #expect(unknown.message.contains("ttft"))
        let s = try ServiceLevel.parse(JSONFields(["ttftMs": 500, "tpotMs": 50], path: "slo"))
        #expect(s.ttftSeconds == 0.5 && s.tpotSeconds == 0.05 && s.e2eSeconds == nil)
    }
}

/// vLLM V1's block pool and scheduler.
@Suite struct PrefixCachingTests {
    static func v1(blocks: Int? = nil) throws -> ServingConfig {
        var c = try OffloadedServingTests.config(blocks: blocks)
        c.engine = .vllmV1
        return c
    }

    /// Four blocks, cached A and B freed in that order, then uncached C: allocations take C's block
    /// first (uncached blocks are reused first), then the never-used one, then A (least recently
    /// freed), evicting A's hash while B stays a hit.
    @Test func poolReusesUncachedFirstThenLeastRecentlyFreed() {
        var p = BlockPool(blocks: 4, caching: true)
        for _ in 0 ..< 3 { let ok = p.allocate(); #expect(ok) }
        #expect(p.free == 1)
        let a = p.register(11), b = p.register(22), again = p.register(11)
        #expect(a == 11 && b == 22)
        #expect(again == 0)                    // the same content again stays uncached
        p.release(11); p.release(22); p.release(0)
        #expect(p.free == 4 && p.isCached(11) && p.isCached(22))
        let c1 = p.allocate(), c2 = p.allocate()   // C's block, then the never-used one
        #expect(c1 && c2)
        #expect(p.isCached(11) && p.isCached(22) && p.evictions == 0)
        let c3 = p.allocate()                  // A's block: its hash goes
        #expect(c3)
        #expect(!p.isCached(11) && p.isCached(22) && p.evictions == 1)
        // A block two requests share stays held until both let go.
        let shared = p.hit(22), again2 = p.hit(22)
        #expect(shared && again2 && p.free == 0)
        p.release(22)
        #expect(p.free == 0 && !p.isEvictable(22) && p.consistent())
        p.release(22)
        #expect(p.free == 1 && p.isEvictable(22) && p.consistent())
        let hit = p.hit(22)                    // B taken back out of the queue
        #expect(hit && p.free == 0)
        let none = p.allocate()
        #expect(!none)
        p.release(22)
        #expect(p.free == 1 && p.isEvictable(22))
    }

    /// Two requests of 100 tokens share a 64-token prefix (4 blocks of 16); the second arrives after
    /// the first has finished, so its first 4 blocks are hits: 64 of its 100 tokens. A prompt of
    /// exactly 64 shared tokens hits only 3 blocks (48 tokens): the last token is always computed
    /// (`num_tokens - 1`).
    @Test func sharedPrefixBlocksAreHits() throws {
        let c = try Self.v1()
        func request(_ id: Int, at: Double, input: Int) -> ServingRequest {
            var r = ServingRequest(id: id, arrivalSeconds: at, inputTokens: input, outputTokens: 4)
            r.sharedPrefix = 7
            r.sharedPrefixTokens = 64
            return r
        }
        let r = try OffloadedServingTests.run(c, [request(0, at: 0, input: 100), request(1, at: 10, input: 100)])
        #expect(r.prefixHitTokens == 64 && r.prefixQueriedTokens == 200)
        let exact = try OffloadedServingTests.run(c, [request(0, at: 0, input: 100), request(1, at: 10, input: 64)])
        #expect(exact.prefixHitTokens == 48 && exact.prefixQueriedTokens == 164)
        var off = c
        off.prefixCaching = false
        #expect(try OffloadedServingTests.run(off, [request(0, at: 0, input: 100), request(1, at: 10, input: 100)]).prefixHitTokens == 0)
    }

    /// Turn 1: 100 prompt tokens, 28 generated; the last generated token has no KV, so 127 tokens of
    /// KV, 7 full blocks (112 tokens), are cached when it finishes. Turn 2 resends those 128 tokens
    /// plus 50 new ones and arrives 2 s after turn 1's last token: 112 of its 178 tokens are hits,
    /// and its TTFT counts from that arrival.
    @Test func laterTurnArrivesAfterThinkTimeAndHitsTheHistory() throws {
        let c = try Self.v1()
        var t1 = ServingRequest(id: 0, arrivalSeconds: 0, inputTokens: 100, outputTokens: 28)
        t1.conversation = 3
        var t2 = ServingRequest(id: 1, arrivalSeconds: 0, inputTokens: 178, outputTokens: 10)
        t2.conversation = 3
        t2.historyTokens = 128
        t2.previousTurn = 0
        t2.thinkSeconds = 2
        var c2 = c
        c2.recordTrace = true
        let r = try OffloadedServingTests.run(c2, [t1, t2])
        #expect(r.completed == 2 && r.prefixHitTokens == 112 && r.prefixQueriedTokens == 278)
        let tr = try #require(r.trace)
        let firstEnd = tr.requests[0].last!.end
        let secondStart = tr.requests[1].first!.start
        #expect(abs(secondStart - (firstEnd + 2)) < 1e-9)
        // The run lasts turn 1, the think time and turn 2; nothing overlaps.
        #expect(r.makespanSeconds > firstEnd + 2)
    }

    /// A prompt whose earlier turn was rejected never arrives and is rejected with the reason.
    @Test func turnOfARejectedConversationIsRejected() throws {
        let c = try Self.v1(blocks: 10)
        let t1 = ServingRequest(id: 0, arrivalSeconds: 0, inputTokens: 150, outputTokens: 20)   // 11 blocks > 10
        var t2 = ServingRequest(id: 1, arrivalSeconds: 0, inputTokens: 30, outputTokens: 5)
        t2.previousTurn = 0
        let r = try OffloadedServingTests.run(c, [t1, t2])
        #expect(r.completed == 0 && r.rejected.map(\.request) == [0, 1])
        #expect(r.rejected[1].reason.contains("previous turn, request 0, was rejected"))
    }

    /// V1 mixes a waiting prompt into a step of running decodes even without chunked prefill; V0's
    /// default scheduler runs the prompt alone, so no iteration has both.
    @Test func v1MixesPrefillsWithDecodes() throws {
        let rs = [ServingRequest(id: 0, arrivalSeconds: 0, inputTokens: 100, outputTokens: 50),
                  ServingRequest(id: 1, arrivalSeconds: 0.05, inputTokens: 100, outputTokens: 50)]
        for engine in ServingEngine.allCases {
            var c = try Self.v1()
            c.engine = engine
            c.chunkedPrefill = false
            c.recordTrace = true
            let its = try #require(try OffloadedServingTests.run(c, rs).trace).iterations
            let mixed = its.contains { $0.prefillTokens > 0 && $0.decodeTokens > 0 }
            #expect(mixed == (engine == .vllmV1))
        }
    }

    /// Ten blocks of 16; A (100 tokens + 60 out) holds 7 blocks, so 3 are free. B's prompt of 60
    /// tokens needs 4 blocks: V1 admits it only when its whole sequence fits, so it waits for A;
    /// V0 with chunked prefill takes a 32-token chunk (2 blocks) at once.
    @Test func v1AdmitsOnlyWhatFitsWhole() throws {
        let rs = [ServingRequest(id: 0, arrivalSeconds: 0, inputTokens: 100, outputTokens: 10),
                  ServingRequest(id: 1, arrivalSeconds: 0.001, inputTokens: 60, outputTokens: 2)]
        var c = try Self.v1(blocks: 10)
        c.maxNumBatchedTokens = 128
        c.recordTrace = true
        let v1 = try #require(try OffloadedServingTests.run(c, rs).trace)
        let aDone = v1.requests[0].last!.end
        let bFirstWork = v1.requests[1].first { $0.name == "prefill" }!.start
        #expect(bFirstWork >= aDone - 1e-12)
        c.engine = .vllmV0
        c.chunkedPrefill = true
        c.maxNumBatchedTokens = 33   // one decode plus a 32-token chunk
        c.watermark = 0
        let v0 = try #require(try OffloadedServingTests.run(c, rs).trace)
        #expect(v0.requests[1].first { $0.name == "prefill" }!.start < v0.requests[0].last!.end)
    }

    /// Invariants over a stream where conversations share blocks, with and without offloaded weights
    /// and a CPU KV cache: after every iteration the pool's free count is its uncached free blocks
    /// plus its unheld cached ones (checked by the simulator), every request finishes, and every
    /// block comes back. Offloading never makes the run faster than the same run on the GPU.
    @Test func sharedBlocksKeepThePoolConsistent() throws {
        var rng = SeededGenerator(seed: 42)
        var t = 0.0
        let requests = (0 ..< 300).map { i -> ServingRequest in
            t += -log(1 - Double.random(in: 0 ..< 1, using: &rng)) / 5
            var r = ServingRequest(id: i, arrivalSeconds: t, inputTokens: Int.random(in: 20 ... 900, using: &rng), outputTokens: Int.random(in: 4 ... 400, using: &rng))
            r.conversation = i % 60
            return r
        }
        var c = ServingConfig(model: try ModelCatalog.model(named: "llama-2-7b"), hardware: HardwareCatalog.a100_40gb)
        c.gpuBlocksOverride = 600
        c.maxNumBatchedTokens = 4096
        c.checkInvariants = true
        var makespans: [Double] = []
        for (cpu, kv) in [(0.0, 0.0), (4.0, 0.0), (0.0, 16.0), (4.0, 16.0)] {
            var k = c
            k.cpuOffloadBytes = cpu * HardwareCatalog.GiB
            k.kvOffloadingBytes = kv * HardwareCatalog.GiB
            let r = try OffloadedServingTests.run(k, requests)
            #expect(r.completed == 300 && r.prefixHitTokens > 0)
            makespans.append(r.makespanSeconds)
        }
        #expect(makespans[1] > makespans[0] && makespans[3] > makespans[2])
    }

    @Test func engineSettingsAreValidated() throws {
        var c = try Self.v1()
        c.preemption = .swap
        let swap = try #require(throws: InputError.self) { try c.validate() }
        #expect(swap.field == "preemption" && swap.message.contains("vllm-v0"))
        c.preemption = .recompute
        c.engine = .vllmV0
        c.prefixCaching = true
        let apc = try #require(throws: InputError.self) { try c.validate() }
        #expect(apc.field == "prefixCaching")
        let bad = try #require(throws: InputError.self) {
            _ = try ServingScenario.parse(Data(#"{"model": "llama-2-7b", "hardware": "a100-40gb", "engine": "vllm-v2", "requests": {"count": 1, "arrivals": "all-at-once", "input": 10, "output": 2}}"#.utf8), source: "s.json", baseDirectory: nil)
        }
        #expect(bad.field == "engine" && bad.message.contains("vllm-v1"))
    }
}

/// Copies queued on one stream: the host's issue time overlaps the copy engine's transfers.
@Suite struct QueuedCopyTests {
    /// 100 copies of 8,192 bytes over the A100's pinned 25 GB/s link (10 us latency): each moves in
    /// 0.32768 us, less than the 2.3 us the host takes to issue the next, so the queue is issue-bound:
    /// 10 + 0.32768 + 99 x 2.3 = 238.02768 us. With an issue time of 0 it is transfer-bound:
    /// 10 + 100 x 0.32768 = 42.768 us. One copy pays latency and bytes only.
    @Test func queueRunsAtTheSlowerOfIssueAndTransfer() {
        var link = HardwareCatalog.a100_40gb.link
        #expect(abs(link.queuedSeconds(copies: 100, bytes: 8192, .hostToDevice, .pinned) - 238.02768e-6) < 1e-12)
        #expect(abs(link.queuedSeconds(copies: 1, bytes: 8192, .hostToDevice, .pinned) - 10.32768e-6) < 1e-12)
        #expect(link.queuedSeconds(copies: 0, bytes: 8192, .hostToDevice, .pinned) == 0)
        link.copyIssueSeconds = 0
        #expect(abs(link.queuedSeconds(copies: 100, bytes: 8192, .hostToDevice, .pinned) - 42.768e-6) < 1e-12)
    }

    @Test func issueTimeIsValidated() throws {
        var hw = HardwareCatalog.a100_40gb
        hw.link.copyIssueSeconds = -1e-6
        let e = try #require(throws: InputError.self) { try hw.validate() }
        #expect(e.field.hasSuffix("link.copyIssueSeconds"))
    }
}

/// The KV cache sized as vLLM's memory profiling sizes it, and weights read from host memory.
@Suite struct ServingMemoryTests {
    /// Llama-2-7B (13,476,831,232 bytes of fp16 weights) on the A100-40GB (42,949,672,960 bytes,
    /// 1 GiB reserved), 2,048 batched tokens, 256 sequences. A forward of 2,048 tokens peaks in the
    /// FFN: 2,048 x (2 x 4,096 + 3 x 11,008) x 2 B = 168,820,736 B (the attention half is 83,886,080;
    /// 256 rows of fp32 logits 32,768,000). V1's graphs hold the 512-token batch: 42,205,184 B. At
    /// 0.92: 39,513,699,123.2 - 13,476,831,232 - 1,073,741,824 - 168,820,736 - 42,205,184
    /// = 24,752,100,147.2 B, 2,950 blocks of 8 MiB. V0 at 0.9 subtracts no graphs: 23,935,311,872 B,
    /// 2,853 blocks.
    @Test func utilizationSizesTheCacheAsVLLMProfiles() throws {
        var c = ServingConfig(model: try ModelCatalog.model(named: "llama-2-7b"), hardware: HardwareCatalog.a100_40gb)
        #expect(c.model.totalWeightBytes == 13_476_831_232)
        #expect(c.activationBytes(tokens: 2048) == 168_820_736)
        #expect(c.gpuBlocks == 2950)
        c.engine = .vllmV0
        #expect(c.gpuBlocks == 2853)
        c.gpuCacheFraction = 0.5
        #expect(c.gpuBlocks == 2560)    // 20 GiB in 8 MiB blocks
        var tight = ServingConfig(model: try ModelCatalog.model(named: "llama-2-13b"), hardware: HardwareCatalog.rtx4090)
        tight.gpuMemoryUtilization = 0.5
        let e = try #require(throws: InputError.self) { try tight.validate() }
        #expect(e.field == "gpuMemoryUtilization" && e.message.contains("not one block"))
    }

    /// V1 reads offloaded weights over the link in every forward (UVA): 4 GiB at 25 GB/s is
    /// 171.798692 ms an iteration. The run can only be slower than the same run with the weights on
    /// the GPU and the same blocks.
    @Test func offloadedWeightsAreReadEveryIterationAndNeverHelp() throws {
        var c = ServingConfig(model: try ModelCatalog.model(named: "llama-2-7b"), hardware: HardwareCatalog.a100_40gb)
        c.gpuBlocksOverride = 400
        c.cpuOffloadBytes = 4 * HardwareCatalog.GiB
        #expect(abs(c.offloadSecondsPerIteration - 0.171798692) < 1e-9)
        let rs = RequestSource.synthetic(count: 40, arrivals: .poisson(ratePerSecond: 8), input: 100...600, output: 20...200, seed: 5)
        let offloaded = try OffloadedServingTests.run(c, rs)
        var resident = c
        resident.cpuOffloadBytes = 0
        let onGPU = try OffloadedServingTests.run(resident, rs)
        #expect(offloaded.completed == 40 && onGPU.completed == 40)
        #expect(offloaded.makespanSeconds > onGPU.makespanSeconds && offloaded.tpot.mean > onGPU.tpot.mean + 0.1)
        #expect(abs(offloaded.offloadSeconds - Double(offloaded.iterations) * 0.171798692) < 1e-6)
    }
}

/// vLLM V1's CPU KV cache (`--kv-offloading-size`).
@Suite struct CPUKVCacheTests {
    /// Twenty GPU blocks of 16 tokens (8 MiB each). Turn 1 (160 prompt tokens, 2 out) caches its
    /// 10 full prompt blocks on the GPU and writes them through to the CPU cache. Request X (300 + 2
    /// tokens, 19 blocks) arrives after it: it takes the 10 uncached free blocks, then evicts 9 of
    /// turn 1's, least recently freed first; turn 1's were freed tail first, so blocks 9 down to 1
    /// go and block 0 stays. Turn 2 (200 tokens, resending turn 1's 162) arrives 10 s after turn 1:
    /// 16 tokens hit on the GPU, the next 144 (blocks 1 to 9) load from the CPU cache: one batched
    /// job, 10 us + max(9 x 64 x 0.5 us, 9 x 8,388,608 B / 25 GB/s) = 3.02989888 ms. Blocks stored:
    /// turn 1's 10, X's 18, turn 2's two new full prompt blocks: 30.
    @Test func evictedTurnLoadsFromTheCPUCache() throws {
        var c = try PrefixCachingTests.v1(blocks: 20)
        c.kvOffloadingBytes = 1 * HardwareCatalog.GiB
        var t1 = ServingRequest(id: 0, arrivalSeconds: 0, inputTokens: 160, outputTokens: 2)
        t1.conversation = 1
        let x = ServingRequest(id: 1, arrivalSeconds: 1, inputTokens: 300, outputTokens: 2)
        var t2 = ServingRequest(id: 2, arrivalSeconds: 0, inputTokens: 200, outputTokens: 2)
        t2.conversation = 1
        t2.historyTokens = 162
        t2.previousTurn = 0
        t2.thinkSeconds = 10
        let r = try OffloadedServingTests.run(c, [t1, x, t2])
        #expect(r.completed == 3)
        #expect(r.prefixHitTokens == 16 && r.hostHitTokens == 144, "GPU \(r.prefixHitTokens), CPU \(r.hostHitTokens)")
        #expect(abs(r.kvLoadSeconds - 3.02989888e-3) < 1e-12)
        #expect(r.hostStoredBlocks == 30)
        // Without the CPU cache turn 2 computes 184 tokens instead of loading 144 and computing 40.
        var plain = c
        plain.kvOffloadingBytes = 0
        let p = try OffloadedServingTests.run(plain, [t1, x, t2])
        #expect(p.prefixHitTokens == 16 && p.hostHitTokens == 0 && p.kvLoadSeconds == 0)
    }

    /// The CPU cache keeps the most recently used blocks: two chunks fit, a third evicts the least
    /// recently used one, and a touch renews a chunk.
    @Test func cacheEvictsLeastRecentlyUsed() {
        var h = HostBlockCache(capacity: 2)
        let one = h.insert(1, readyAt: 0), two = h.insert(2, readyAt: 0)
        #expect(one && two)
        h.touch(1)
        let three = h.insert(3, readyAt: 0)
        #expect(three)
        #expect(h.contains(1) && !h.contains(2) && h.contains(3) && h.evictions == 1)
        let again = h.insert(3, readyAt: 5)
        #expect(!again)
    }

    @Test func settingsAreValidated() throws {
        var c = try PrefixCachingTests.v1()
        c.kvOffloadingBytes = 1 * HardwareCatalog.GiB
        c.prefixCaching = false
        let noCache = try #require(throws: InputError.self) { try c.validate() }
        #expect(noCache.field == "kvOffloadingGiB" && noCache.message.contains("prefixCaching"))
        c.prefixCaching = true
        c.engine = .vllmV0
        c.prefixCachingSetting = nil
        let v0 = try #require(throws: InputError.self) { try c.validate() }
        #expect(v0.field == "kvOffloadingGiB" && v0.message.contains("vllm-v1"))
        c.engine = .vllmV1
        c.kvOffloadingBytes = 1e15
        #expect(throws: CapacityError.self) { try c.validate() }
    }
}

/// The serving planner (`planner serve --plan`).
@Suite struct ServingPlannerTests {
    /// Llama-2-13B (24.2 GiB of weights) does not fit a 24 GiB RTX 4090: the planner starts from the
    /// least offload that fits, 0.85 x 24 GiB less weights and reserved memory rounded up to whole
    /// GiB, and its choice keeps weights on the host (`--cpu-offload-gb`, or the prefetch offloader
    /// where that waits less). Its choice is never worse than the start,
    /// and the goodput it reports is the chosen settings' own.
    @Test func planStartsFromAFitAndNeverLosesToIt() throws {
        var c = ServingConfig(model: try ModelCatalog.model(named: "llama-2-13b"), hardware: HardwareCatalog.rtx4090)
        c.serviceLevel = ServiceLevel(ttftSeconds: 5, tpotSeconds: 0.5)
        let rs = RequestSource.synthetic(count: 40, arrivals: .poisson(ratePerSecond: 1), input: 100...400, output: 20...80, seed: 4)
        #expect(throws: InputError.self) { try c.validate() }    // no KV block left at 0.92
        let cost = try AnalyticCostModel(hardware: c.hardware, model: c.model)
        let p = try ServingPlanner.plan(c, requests: rs, cost: cost)
        let need = (c.model.totalWeightBytes + c.hardware.gpu.reservedBytes - 0.85 * c.hardware.gpu.memoryBytes) / HardwareCatalog.GiB
        #expect(p.baseline.config.cpuOffloadBytes == need.rounded(.up) * HardwareCatalog.GiB)
        #expect(p.best.score >= p.baseline.score && p.best.result.completed >= p.baseline.result.completed)
        let again = try ServingSimulator.run(p.best.config, requests: rs, cost: cost)
        #expect(again.serviceLevel?.goodput == p.best.result.serviceLevel?.goodput)
        let line = VLLMCommand.lines(p.best.config, maxModelLen: 480).lines[0].command
        #expect(line.contains("--cpu-offload-gb ") || line.contains("--offload-backend prefetch"))
        #expect(p.best.config.hostWeightBytes > 0)
        // Each runner-up differs from the choice in exactly one setting.
        for r in p.runnersUp {
            let differing = ServingPlanner.Knob.allCases.filter { abs(ServingPlanner.value($0, r.config) - ServingPlanner.value($0, p.best.config)) > 1e-12 }
            #expect(differing.count == 1)
        }
    }
}

/// vLLM's prefetch offloader (`--offload-backend prefetch`).
@Suite struct PrefetchOffloadTests {
    /// Four layers, groups of 2, the last of each offloaded: layers 1 and 3. A layer computes for
    /// 1 s, a copy takes 3 s. With one buffer (step 1) each copy starts when the offloaded layer
    /// before it ends: the first forward ends at 8 (layer 1 waits for the start-up copy until 3,
    /// layer 3 for the copy started at 4 until 7), and so does every later one (period 8 = 2 x
    /// (3 + 1)). With two buffers (step 2) both are fetched ahead and the copies run back to back:
    /// the first forward ends at 7, the next one 6 later (the link's 2 x 3).
    @Test func copiesRunAheadByTheStep() {
        var one = PrefetchOffload(layers: 4, groupSize: 2, perGroup: 1, step: 1, copySeconds: 3)
        #expect(one.offloaded == [1, 3])
        #expect(one.run(start: 0, layerSeconds: 1) == 8)
        #expect(one.run(start: 8, layerSeconds: 1) == 16)
        var two = PrefetchOffload(layers: 4, groupSize: 2, perGroup: 1, step: 2, copySeconds: 3)
        #expect(two.run(start: 0, layerSeconds: 1) == 7)
        #expect(two.run(start: 7, layerSeconds: 1) == 13)
        // vLLM's own example: groups of 8 with 2 offloaded put layers 6, 7, 14, 15, ... on the host.
        #expect(PrefetchOffload(layers: 24, groupSize: 8, perGroup: 2, step: 1, copySeconds: 1).offloaded == [6, 7, 14, 15, 22, 23])
    }

    /// Llama-2-7B on the A100 with 8 of its 32 layers (groups of 4) on the host: the prefetch
    /// offloader overlaps each layer's copy with the compute before it, so iterations wait less than
    /// the UVA offloader reading the same bytes in place. The GPU keeps one layer's buffer.
    @Test func prefetchHidesWhatComputeCovers() throws {
        var c = ServingConfig(model: try ModelCatalog.model(named: "llama-2-7b"), hardware: HardwareCatalog.a100_40gb)
        c.gpuBlocksOverride = 600
        c.prefetchOffload = PrefetchOffloadSettings(groupSize: 4)
        #expect(abs(c.hostWeightBytes - 8 * c.model.layerWeightBytes) < 1)
        #expect(abs(c.gpuWeightBytes - (c.model.totalWeightBytes - 7 * c.model.layerWeightBytes)) < 1)
        let rs = RequestSource.synthetic(count: 30, arrivals: .poisson(ratePerSecond: 4), input: 200...800, output: 20...100, seed: 8)
        let prefetch = try OffloadedServingTests.run(c, rs)
        var uva = c
        uva.prefetchOffload = nil
        uva.cpuOffloadBytes = c.hostWeightBytes
        let inPlace = try OffloadedServingTests.run(uva, rs)
        #expect(prefetch.completed == 30 && inPlace.completed == 30)
        #expect(prefetch.offloadSeconds / Double(prefetch.iterations) < inPlace.offloadSeconds / Double(inPlace.iterations))
        let line = VLLMCommand.lines(c, maxModelLen: 900).lines[0].command
        #expect(line.contains("--offload-backend prefetch --offload-group-size 4 --offload-num-in-group 1 --offload-prefetch-step 1"))
        var both = c
        both.cpuOffloadBytes = 1 * HardwareCatalog.GiB
        let e = try #require(throws: InputError.self) { try both.validate() }
        #expect(e.field == "offloadGroupSize" && e.message.contains("not both"))
    }
}
