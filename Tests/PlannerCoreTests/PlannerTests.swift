import Foundation
import Testing
@testable import PlannerCore

@Suite struct PlannerTests {
    /// On every catalog model and GPU (at the catalog's host memory), with the default grids of
    /// `planner sweep` (101 ratios x 8 batches, weights streamed) and its default workload (prompt
    /// 512, 32 new tokens), the ratio search's pick is within 1% of the exhaustive best; where the
    /// exhaustive sweep finds nothing feasible, neither does the search.
    @Test(arguments: HardwareCatalog.all.map(\.name))
    func searchWithinOnePercentOfExhaustive(device: String) throws {
        let hw = try HardwareCatalog.device(named: device)
        for var model in ModelCatalog.all {
            if hw.gpu.matmulFlops(model.dtype) == nil { model.dtype = .fp16 }
            let setup = Setup(model: model, hardware: hw, workload: Workload(prompt: 512, tokens: 32))
            let exhaustive = RatioSearch.exhaustive(setup, space: .sweepDefault)
            let search = RatioSearch.search(setup, space: .sweepDefault)
            guard let best = exhaustive.best else {
                #expect(search.best == nil, "\(model.name) on \(device): search found a point the exhaustive sweep did not")
                continue
            }
            let found = try #require(search.best, "\(model.name) on \(device): search found nothing, exhaustive \(best.tokensPerSecond)")
            #expect(found.tokensPerSecond >= 0.99 * best.tokensPerSecond,
                    "\(model.name) on \(device): search \(found.tokensPerSecond) at \(found.candidate), exhaustive \(best.tokensPerSecond) at \(best.candidate)")
            #expect(search.simulations < exhaustive.simulations)
        }
    }
}

@Suite struct PlannerOutputTests {
    static func small() throws -> Sweep {
        var s = try Sweep.defaultSweep()
        s.space.ratios = [0, 0.25, 0.5, 0.75, 1]
        s.space.batches = [32, 64, 128]
        return s
    }

    /// HybridServe's headline direction on its own machine (RTX 4090, OPT-30B): the hybrid cache
    /// beats the best KV-only (FlexGen-style) and the best ACT-only configuration, and neither
    /// all-GPU nor a 4,096-sequence DeepSpeed batch fits.
    @Test func defaultSweepFavoursHybrid() throws {
        let r = try Sweep.defaultSweep().run()
        let best = try #require(r.best)
        let kv = try #require(r.bestBaseline(.kvOnly))
        let act = try #require(r.bestBaseline(.actOnly))
        #expect(best.tokensPerSecond > 1.1 * kv.tokensPerSecond)
        #expect(best.tokensPerSecond > 1.05 * act.tokensPerSecond)
        let ratio = try #require(best.candidate.kvFraction)
        #expect(ratio > 0 && ratio < 1, "the best mix is interior, not an end point")
        #expect(r.bestBaseline(.allGPU) == nil)
    }

    /// `planner plan`'s configuration is a scenario: parsed back and simulated, it gives the
    /// throughput the plan promised.
    @Test func planRoundTripsThroughSimulate() throws {
        let s = try Self.small()
        let result = PlanSearch.run(s)
        let best = try #require(result.best)
        let doc = try PlanSearch.configuration(best, setup: s.setup, result: result)
        let data = try JSONSerialization.data(withJSONObject: doc)
        let plan = try Scenario.parse(data)
        let sim = try Simulator.run(plan, cost: AnalyticCostModel(hardware: plan.hardware, dtype: plan.model.dtype))
        #expect(abs(sim.tokensPerSecond / best.tokensPerSecond - 1) < 1e-9)
        #expect(plan.batch == best.candidate.batch)
    }

    /// A KV-only plan's FlexGen flags describe the same configuration: FlexGen's policy with those
    /// percentages, simulated, comes within 2% of the plan (the cache percentage is rounded to whole
    /// percent), and each pair adds up to 100.
    @Test func flexGenFlagsMatchTheKVOnlyPlan() throws {
        let s = try Self.small()
        let result = PlanSearch.run(s, policy: .kvOnly)
        let best = try #require(result.best)
        let p = try #require(best.plan)
        let percent = PlanSearch.flexGenPercent(p)
        #expect(percent[0] + percent[1] == 100 && percent[2] + percent[3] == 100 && percent[4] + percent[5] == 100)
        let flexgen = try PolicySpec.flexGen(FlexGenSettings(percent: percent.map(Double.init), gpuBatchSize: p.batch, numGpuBatches: 1))
            .resolve(model: s.setup.model, hardware: s.setup.hardware, batch: p.batch, phase: s.setup.workload.phase, weights: nil)
        let sim = try Simulator.run(flexgen, cost: AnalyticCostModel(hardware: flexgen.hardware, dtype: flexgen.model.dtype), checkMemory: false)
        #expect(abs(sim.tokensPerSecond / best.tokensPerSecond - 1) < 0.02)
    }

    /// OPT-175B's weights (about 325 GiB) cannot stream from 128 GiB of host memory: the planner
    /// names host memory as the binding constraint and asks for more of it.
    @Test func nothingFitsNamesTheBindingConstraint() throws {
        var s = try Self.small()
        s.setup.model = try ModelCatalog.model(named: "opt-175b")
        let result = PlanSearch.run(s)
        #expect(result.best == nil)
        let advice = Advice.nothingFits(s.setup, outcomes: result.tried)
        #expect(advice.contains("host memory"))
        #expect(advice.contains("more host memory"))
        // Weights alone are 324 GiB (2 bytes x 174.6e9 parameters in the layers): the advice asks for
        // at least that much host memory in total.
        let gib = try #require(advice.range(of: #"--host-memory-gib (\d+)"#, options: .regularExpression))
        let asked = Double(advice[gib].split(separator: " ").last!)!
        #expect(asked >= 324 && asked < 400)
    }

    /// When only the batch grid is too large, the advice gives the largest batch that fits.
    @Test func nothingFitsSuggestsASmallerBatch() throws {
        var s = try Self.small()
        s.space.batches = [4096, 8192]
        let r = s.run()
        #expect(r.best == nil)
        let advice = Advice.nothingFits(s.setup, outcomes: r.allOutcomes)
        let m = try #require(advice.range(of: #"at most (\d+) fits"#, options: .regularExpression))
        let k = Int(advice[m].split(separator: " ")[2])!
        #expect(k > 0 && k < 4096)
        var c = Candidate(.hybrid(kvFraction: 0, recomputeFraction: 0), batch: k, weightsGPUFraction: 0)
        #expect(Evaluator.fits(c, s.setup))
        c.batch = k + 1
        #expect(!Evaluator.fits(c, s.setup))
    }

    /// CSV: a header and one line per simulated point; JSON: the best point and the baselines;
    /// SVG: well-formed XML with a line per batch size.
    @Test func sweepOutputs() throws {
        let r = try Self.small().run()
        let csv = SweepReport.csv(r).split(separator: "\n")
        // Hybrid 5 ratios x 3 batches; KV-only, ACT-only, DeepSpeed, all-GPU and FlexGen (one option:
        // the device has no host CPU rates and no disk) 3 batches each.
        #expect(csv.count == 1 + 5 * 3 + 3 * 5)
        #expect(csv[0].hasPrefix("policy,kvFraction,batch"))
        let json = try #require(try JSONSerialization.jsonObject(with: SweepReport.json(r)) as? [String: Any])
        #expect((json["points"] as? [Any])?.count == 15)
        #expect(json["best"] is [String: Any])
        #expect((json["baselines"] as? [String: Any])?.keys.sorted() == ["actOnly", "allGPU", "deepSpeed", "flexGen", "kvOnly"])
        let svg = SVGChart.sweep(r)
        #expect(svg.hasPrefix("<svg"))
        #expect(svg.components(separatedBy: "batch 32").count == 2)
        #expect(svg.components(separatedBy: "<polyline").count - 1 >= 3)
        let text = SweepReport.text(r)
        #expect(text.contains("over the best KV-only (FlexGen-style)"))
        #expect(text.split(separator: "\n").filter { $0.hasPrefix(" *") }.count == 1)
    }
}
