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
