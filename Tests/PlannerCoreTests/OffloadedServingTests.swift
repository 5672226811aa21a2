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
