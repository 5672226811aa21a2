import Foundation
import Testing
@testable import PlannerCore

@Suite struct ServingTests {
    static func config(blocks: Int? = nil, blockSize: Int = 16, mode: PreemptionMode = .recompute) throws -> ServingConfig {
        var c = ServingConfig(model: try ModelCatalog.model(named: "yarn-llama-2-7b-64k"), hardware: HardwareCatalog.a100_40gb)
        c.blockSize = blockSize
        c.gpuBlocksOverride = blocks
        c.preemption = mode
        return c
    }

    static func run(_ c: ServingConfig, _ rs: [ServingRequest]) throws -> ServingResult {
        try ServingSimulator.run(c, requests: rs, cost: AnalyticCostModel(hardware: c.hardware, dtype: c.model.dtype))
    }

    /// numpy.percentile([1, 2, 3, 4], q) with linear interpolation: 50 -> 2.5, 90 -> 3.7, 99 -> 3.97.
    @Test func percentilesMatchNumpy() {
        let s = LatencyStats([4, 1, 3, 2])
        #expect(s.mean == 2.5 && s.median == 2.5)
        #expect(abs(s.p90 - 3.7) < 1e-12 && abs(s.p95 - 3.85) < 1e-12 && abs(s.p99 - 3.97) < 1e-12)
    }

    /// One request of 100 prompt tokens and 3 output tokens: one prefill iteration yields the first
    /// token, two decode iterations the others; TTFT is the prefill, the end-to-end latency the three.
    @Test func singleRequestTimeline() throws {
        let c = try Self.config()
        let r = try Self.run(c, [ServingRequest(id: 0, arrivalSeconds: 0, inputTokens: 100, outputTokens: 3)])
        #expect(r.completed == 1 && r.iterations == 3 && r.preemptions == 0)
        #expect(r.ttft.mean > 0 && r.ttft.mean < r.e2e.mean)
        #expect(abs(r.e2e.mean - r.makespanSeconds) < 1e-12)
        #expect(abs(r.tpot.mean * 2 - (r.e2e.mean - r.ttft.mean)) < 1e-12)
        // 100 prompt tokens need 7 blocks of 16; the request holds 7 (103 tokens) at its end.
        #expect(r.gpuBlocks == c.gpuBlocks)
    }

    /// A request larger than the whole cache is rejected with the reason instead of looping.
    @Test func requestThatCanNeverFitIsRejected() throws {
        let c = try Self.config(blocks: 10)
        let r = try Self.run(c, [ServingRequest(id: 0, arrivalSeconds: 0, inputTokens: 150, outputTokens: 20),
                                 ServingRequest(id: 1, arrivalSeconds: 0, inputTokens: 100, outputTokens: 10)])
        #expect(r.completed == 1)
        #expect(r.rejected.count == 1 && r.rejected[0].request == 0)
        #expect(r.rejected[0].reason.contains("needs 11 KV blocks"))
    }

    /// 32 requests of 1500 + 1024 tokens arriving together overflow a small cache: both modes
    /// preempt and still finish everything; recompute re-runs tokens, swap moves them.
    @Test func overflowPreemptsAndFinishes() throws {
        let rs = RequestSource.synthetic(count: 32, arrivals: .allAtOnce, input: 1500...1500, output: 1024...1024, seed: 1)
        var c = try Self.config(blocks: 2000, mode: .recompute)
        c.maxNumBatchedTokens = 4096
        let rec = try Self.run(c, rs)
        #expect(rec.completed == 32 && rec.preemptions > 0 && rec.recomputedTokens > 0 && rec.swappedOutTokens == 0)
        c.preemption = .swap
        c.swapSpaceBytes = 64 * HardwareCatalog.GiB
        let swap = try Self.run(c, rs)
        #expect(swap.completed == 32 && swap.preemptions > 0 && swap.swappedOutTokens > 0 && swap.recomputedTokens == 0)
        #expect(swap.swappedInTokens == swap.swappedOutTokens)
        #expect(swap.linkBusySeconds > 0)
        // Without swap space, swapping falls back to recomputation.
        c.swapSpaceBytes = 0
        let fallback = try Self.run(c, rs)
        #expect(fallback.recomputedTokens > 0 && fallback.swappedOutTokens == 0)
    }

    /// Every block copy pays the link's latency, so swapping the same tokens in bigger blocks costs
    /// less link time (the seed's finding for swap).
    @Test func biggerBlocksSwapCheaper() throws {
        let rs = RequestSource.synthetic(count: 32, arrivals: .allAtOnce, input: 1500...1500, output: 256...256, seed: 2)
        var link: [Double] = []
        for bs in [8, 128] {
            var c = try Self.config(blocks: 32_000 / bs, blockSize: bs, mode: .swap)
            c.swapSpaceBytes = 64 * HardwareCatalog.GiB
            c.maxNumBatchedTokens = 4096
            let r = try Self.run(c, rs)
            #expect(r.swappedOutTokens > 0)
            link.append(r.linkBusySeconds / Double(r.swappedOutTokens + r.swappedInTokens))
        }
        #expect(link[1] < link[0])
    }

    @Test func traceLinesAreNamed() throws {
        let good = "{\"arrivalSeconds\": 0.5, \"inputTokens\": 10, \"outputTokens\": 2}\n\n{\"arrivalSeconds\": 0, \"inputTokens\": 5, \"outputTokens\": 1}\n"
        let rs = try RequestSource.trace(good, source: "t.jsonl")
        #expect(rs.map(\.inputTokens) == [5, 10])
        let bad = "{\"arrivalSeconds\": 0, \"inputTokens\": 10, \"outputTokens\": 2}\n{\"arrivalSeconds\": 1, \"inputTokens\": -1, \"outputTokens\": 2}\n"
        let e = try #require(throws: InputError.self) { try RequestSource.trace(bad, source: "t.jsonl") }
        #expect(e.field.hasPrefix("t.jsonl:2"))
        let broken = try #require(throws: InputError.self) { try RequestSource.trace("{\"arrivalSeconds\": 0,\n", source: "t.jsonl") }
        #expect(broken.field == "t.jsonl:1")
    }

    @Test func syntheticArrivalsAreSeeded() {
        let a = RequestSource.synthetic(count: 50, arrivals: .poisson(ratePerSecond: 4), input: 10...100, output: 5...50, seed: 9)
        let b = RequestSource.synthetic(count: 50, arrivals: .poisson(ratePerSecond: 4), input: 10...100, output: 5...50, seed: 9)
        #expect(a == b)
        // 49 gaps of mean 1/4 s: the last arrival is near 12 s.
        #expect(a.last!.arrivalSeconds > 6 && a.last!.arrivalSeconds < 20)
    }
}
