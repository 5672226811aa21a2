// Speed of the simulator, printed as numbers (never asserted in tests).
//
//     swift run -c release planner-bench
//
// Prints events per second of the event engine alone, and wall time of whole simulations (graph
// construction, engine, summary) for one decode step of OPT-175B and a 1,024-token generation of
// OPT-30B on one thread; then the default `planner sweep` on all cores (exhaustive grid, the ratio
// search, and the whole command's work).
import Foundation
import PlannerCore

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let clock = ContinuousClock()
    let d = try clock.measure(body)
    return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
}

func best(of n: Int, _ body: () throws -> Void) rethrows -> Double {
    var b = Double.infinity
    for _ in 0 ..< n { b = min(b, try seconds(body)) }
    return b
}

func plan(_ model: String, batch: Int, phase: Phase, policy: PolicySpec) throws -> ExecutionPlan {
    try policy.resolve(model: try ModelCatalog.model(named: model), hardware: HardwareCatalog.h100sxm, batch: batch,
                       phase: phase, weights: .host)
}

do {
    print("planner-bench (simulations: one thread, best of several runs)")
    let gen30 = try plan("opt-30b", batch: 32, phase: .generate(prompt: 512, tokens: 1024), policy: .hybrid(kvFraction: 0.5, gpuActTokens: nil))
    let cost30 = try AnalyticCostModel(hardware: gen30.hardware, dtype: gen30.model.dtype)
    let result30 = try Simulator.run(gen30, cost: cost30)
    let graph = result30.graph
    var events = 0
    let engine = try best(of: 5) { events = try EventEngine.run(graph).events }
    print(String(format: "event engine: %d events (tasks) in %.4f s = %.2f million events/s", events, engine, Double(events) / engine / 1e6))

    let step175 = try plan("opt-175b", batch: 32, phase: .decodeStep(context: 2048), policy: .hybrid(kvFraction: 0.5, gpuActTokens: nil))
    let cost175 = try AnalyticCostModel(hardware: step175.hardware, dtype: step175.model.dtype)
    var r175: SimulationResult?
    let t175 = try best(of: 20) { r175 = try Simulator.run(step175, cost: cost175) }
    print(String(format: "OPT-175B decode step (batch 32, context 2048, hybrid, H100): %.2f ms wall, %d events; simulated step %.1f ms",
                 t175 * 1e3, r175!.timeline.events, r175!.seconds * 1e3))

    var r30: SimulationResult?
    let t30 = try best(of: 5) { r30 = try Simulator.run(gen30, cost: cost30) }
    print(String(format: "OPT-30B generation (batch 32, prompt 512, 1024 tokens, hybrid, H100): %.1f ms wall, %d events; simulated %.2f s, %.1f tokens/s",
                 t30 * 1e3, r30!.timeline.events, r30!.seconds, r30!.tokensPerSecond))
} catch {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    exit(1)
}

do {
    let setup = Setup(model: try ModelCatalog.model(named: "opt-30b"), hardware: HardwareCatalog.rtx4090,
                      workload: Workload(prompt: 512, tokens: 32))
    var ex: SearchResult?
    let tEx = seconds { ex = RatioSearch.exhaustive(setup, space: .sweepDefault) }
    var se: SearchResult?
    let tSe = seconds { se = RatioSearch.search(setup, space: .sweepDefault) }
    print(String(format: "default sweep grid (101 ratios x 8 batches), OPT-30B on RTX 4090, on %d cores: exhaustive %.2f s (%d simulations), search %.3f s (%d simulations)",
                 ProcessInfo.processInfo.activeProcessorCount, tEx, ex!.simulations, tSe, se!.simulations))
    let sweep = try Sweep.defaultSweep()
    var sr: SweepResult?
    let tSweep = seconds { sr = sweep.run() }
    print(String(format: "planner sweep default (grid + baselines + search): %.2f s for %d simulations (target: under 2 s)", tSweep, sr!.allOutcomes.count + sr!.search.simulations))
    if let b = ex!.best, let s = se!.best {
        print(String(format: "  exhaustive best %.2f tokens/s at ratio %.2f batch %d; search %.2f tokens/s at ratio %.2f batch %d",
                     b.tokensPerSecond, b.candidate.kvFraction ?? -1, b.candidate.batch, s.tokensPerSecond, s.candidate.kvFraction ?? -1, s.candidate.batch))
    }
} catch {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    exit(1)
}

do {
    // Serving: 300 requests with a ShareGPT-like length mix (log-normal prompt and output lengths with
    // medians near 250 and 200 tokens, capped at 2048), Poisson arrivals at 5 requests/s, Llama-2-7B on
    // an A100-40GB with half its memory for KV blocks, simulated to completion.
    var rng = SeededGenerator(seed: 42)
    func logNormal(median: Double, sigma: Double) -> Int {
        let u1 = Double.random(in: Double.ulpOfOne ..< 1, using: &rng), u2 = Double.random(in: 0 ..< 1, using: &rng)
        let z = (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
        return max(4, min(2048, Int(median * exp(sigma * z))))
    }
    var t = 0.0
    let requests = (0 ..< 300).map { i -> ServingRequest in
        t += -log(1 - Double.random(in: 0 ..< 1, using: &rng)) / 5
        return ServingRequest(id: i, arrivalSeconds: t, inputTokens: logNormal(median: 250, sigma: 1.0), outputTokens: logNormal(median: 200, sigma: 0.9))
    }
    var config = ServingConfig(model: try ModelCatalog.model(named: "llama-2-7b"), hardware: HardwareCatalog.a100_40gb)
    config.gpuCacheFraction = 0.5
    config.maxNumBatchedTokens = 4096
    let cost = try AnalyticCostModel(hardware: config.hardware, dtype: config.model.dtype)
    var result: ServingResult?
    let wall = try best(of: 5) { result = try ServingSimulator.run(config, requests: requests, cost: cost) }
    print(String(format: "serving: 300 ShareGPT-like requests (Llama-2-7B, A100-40GB) simulated in %.3f s wall (target: under 1 s); %d iterations, %.1f s simulated, %d preemptions",
                 wall, result!.iterations, result!.makespanSeconds, result!.preemptions))
} catch {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    exit(1)
}
