// Speed of the simulator, printed as numbers (never asserted in tests).
//
//     swift run -c release planner-bench
//
// Prints events per second of the event engine alone, and wall time of whole simulations (graph
// construction, engine, summary) for one decode step of OPT-175B and a 1,024-token generation of
// OPT-30B on one thread; then the default `planner sweep` on all cores (exhaustive grid, the ratio
// search, and the whole command's work); then the CPU engine's GEMMs, the machine's state and the
// contention state between its cores. `--contention-series` also prints every contention reading.
import Foundation
import CPUEngine
import PlannerCore

for arg in CommandLine.arguments.dropFirst() where arg != "--contention-series" {
    FileHandle.standardError.write(Data("error: unknown argument '\(arg)' (planner-bench takes only --contention-series)\n".utf8))
    exit(2)
}

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
    // The same generation on a device whose kernels and copies contend for memory (the CPU's
    // `contention`, factors of the CPU profile's order): the engine then plays out rates piece by piece.
    var contended = gen30
    contended.hardware.contention = MemoryContention(gemmSlowdown: [[1, 2.0], [64, 1.2], [1024, 1.0]], streamSlowdown: 1.1, copySlowdown: 1.1)
    let sharedGraph = try Simulator.run(contended, cost: try AnalyticCostModel(hardware: contended.hardware, dtype: contended.model.dtype)).graph
    var sharedEvents = 0
    let sharedEngine = try best(of: 5) { sharedEvents = try EventEngine.run(sharedGraph).events }
    print(String(format: "event engine with memory contention: %d events in %.4f s = %.2f million events/s", sharedEvents, sharedEngine,
                 Double(sharedEvents) / sharedEngine / 1e6))

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

    // The same 300 requests with weights and KV in host memory: vLLM V1 with 4 GiB of weights
    // offloaded (read over the link every forward) and a 16 GiB CPU KV cache, every request a turn of
    // one of 60 conversations so that later turns find their history on the GPU or in the CPU cache.
    var offloaded = config
    offloaded.cpuOffloadBytes = 4 * HardwareCatalog.GiB
    offloaded.kvOffloadingBytes = 16 * HardwareCatalog.GiB
    let turns = requests.map { r -> ServingRequest in var c = r; c.conversation = r.id % 60; return c }
    let wallOffloaded = try best(of: 5) { result = try ServingSimulator.run(offloaded, requests: turns, cost: cost) }
    print(String(format: "serving with offloaded weights and a CPU KV cache: 300 requests simulated in %.3f s wall (target: under 0.5 s); %d iterations, %d tokens loaded from the CPU cache",
                 wallOffloaded, result!.iterations, result!.hostHitTokens))

    // A million requests (Poisson 20/s, 200 + 50 tokens): wall time, and the process's peak memory
    // after 100,000 and after 1,000,000, beside the request lists themselves. Latencies go to
    // fixed-size digests and a finished request's state is reused, so the simulator's own memory does
    // not grow with the requests served.
    func peakResidentBytes() -> Double {
        var u = rusage()
        getrusage(RUSAGE_SELF.rawValue, &u)
        return Double(u.ru_maxrss) * 1024
    }
    for n in [100_000, 1_000_000] {
        var rng = SeededGenerator(seed: 11)
        var at = 0.0
        let stream = (0 ..< n).map { i -> ServingRequest in
            at += -log(1 - Double.random(in: 0 ..< 1, using: &rng)) / 20
            return ServingRequest(id: i, arrivalSeconds: at, inputTokens: 200, outputTokens: 50)
        }
        var r: ServingResult?
        let wall = try seconds { r = try ServingSimulator.run(config, requests: stream, cost: cost) }
        print(String(format: "serving: %d requests simulated in %.2f s wall (target for 1,000,000: under 30 s); %d iterations; peak resident memory %.0f MiB, the request list %.0f MiB",
                     n, wall, r!.iterations, peakResidentBytes() / 1048576, Double(n * MemoryLayout<ServingRequest>.stride) / 1048576))
    }

    // A serving trace is linear in the requests: the same stream at 2,000 and 8,000 requests.
    var traced = config
    traced.recordTrace = true
    var perRequest: [Double] = []
    for n in [2_000, 8_000] {
        var rng = SeededGenerator(seed: 7)
        var at = 0.0
        let stream = (0 ..< n).map { i -> ServingRequest in
            at += -log(1 - Double.random(in: 0 ..< 1, using: &rng)) / 20
            return ServingRequest(id: i, arrivalSeconds: at, inputTokens: 200, outputTokens: 50)
        }
        let t = try best(of: 2) {
            let r = try ServingSimulator.run(traced, requests: stream, cost: cost)
            _ = try ServingReport.chromeTrace(r, traced)
        }
        perRequest.append(t / Double(n))
        print(String(format: "serving with --trace: %d requests (Poisson 20/s, 200 + 50 tokens) simulated and traced in %.3f s", n, t))
    }
    print(String(format: "  per request at 8,000 over per request at 2,000: %.2f (linear: about 1)", perRequest[1] / perRequest[0]))

    // Kernel-table validation of a 20,000-row GEMM table (the H100 reference's shapes at 20,000
    // batch sizes): leave-one-out over every row.
    var big = try ProfileReader.read(URL(fileURLWithPath: "profiles/reference-h100"))
    let shapes = Array(Set(big.gemm.map { [$0.n, $0.k] })).sorted { $0.lexicographicallyPrecedes($1) }
    big.gemm = (0 ..< 20_000).map { i in
        let s = shapes[i % shapes.count], m = 1 + i / shapes.count
        return Profile.GemmPoint(m: m, n: s[0], k: s[1], seconds: 1e-5 + Double(m) * Double(s[0]) * Double(s[1]) * 2 / 5e14)
    }
    let h100 = try HardwareCatalog.device(named: "h100-sxm")
    let tValidate = try best(of: 3) { _ = try Validation.kernelAccuracy(big, hardware: h100) }
    print(String(format: "validate: leave-one-out over a 20,000-row GEMM table in %.3f s (target: well under 1 s)", tValidate))
} catch {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    exit(1)
}

do {
    // The CPU engine (Sources/CPUEngine): its weight GEMMs, timed inside real decode steps and a prefill
    // (engine.recordKernels), against plain cblas_sgemm on the same shapes over as many distinct weight
    // matrices as the model has layers, each call on cold caches as in the engine;
    // OpenBLAS on one thread in both, as the engine runs it. Then the engine's decode step time.
    BLAS.setThreads(1)
    print("CPU engine (OpenBLAS \(BLAS.version), \(BLAS.coreName) kernels, 1 thread): weight GEMMs in the engine vs plain cblas_sgemm")
    print("  model             phase        m      n      k   engine GFLOP/s   sgemm GFLOP/s   ratio   warm sgemm   warm ratio")
    var ratios: [Double] = [], warmRatios: [Double] = []
    let flushFloats = 16 << 20
    let flushBuffer = UnsafeMutablePointer<Float>.allocate(capacity: flushFloats)
    flushBuffer.initialize(repeating: 0, count: flushFloats)
    for model in CPUModels.all {
        for (label, phase) in [("decode b16", Phase.decodeStep(context: 256)), ("prefill b16", Phase.generate(prompt: 128, tokens: 2))] {
            let plan = ExecutionPlan(model: model, hardware: HardwareCatalog.h100sxm, batch: 16, weights: .gpu,
                                     placement: TokenPlacement(gpuKV: phase.placementContext), phase: phase)
            let engine = try CPUDecoder(shape: try PlanRunner.shape(plan))
            _ = PlanRunner.run(plan, on: engine, warmup: 2, repeats: 1, keepLogits: false)
            engine.resetCounters()
            engine.recordKernels = true
            let r = PlanRunner.run(plan, on: engine, warmup: 0, repeats: 5, keepLogits: false)
            engine.recordKernels = false
            for (s, v) in engine.gemmLog.sorted(by: { ($0.key.m, $0.key.n, $0.key.k) < ($1.key.m, $1.key.n, $1.key.k) }) {
                if case .generate = phase, s.m < 128 { continue }
                let flops = 2 * Double(s.m * s.n * s.k)
                let engineRate = flops * Double(v.calls) / v.seconds
                let mats = (0 ..< model.layers).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: s.k * s.n) }
                let a = UnsafeMutablePointer<Float>.allocate(capacity: s.m * s.k), c = UnsafeMutablePointer<Float>.allocate(capacity: s.m * s.n)
                for w in mats { w.initialize(repeating: 0.01, count: s.k * s.n) }
                a.initialize(repeating: 0.5, count: s.m * s.k)
                for w in mats { BLAS.sgemm(m: s.m, n: s.n, k: s.k, a: a, b: w, c: c) }
                // Each call after a 64 MiB write (untimed) that evicts the caches, as a layer's weights
                // are cold in the engine (the model's layers, caches and buffers exceed the L3 cache).
                let passes = 5
                var t = 0.0
                for _ in 0 ..< passes {
                    for w in mats {
                        for i in stride(from: 0, to: flushFloats, by: 16) { flushBuffer[i] += 1 }
                        t += seconds { BLAS.sgemm(m: s.m, n: s.n, k: s.k, a: a, b: w, c: c) }
                    }
                }
                let plainRate = flops * Double(passes * mats.count) / t
                // The same call repeated on one matrix, its weights warm in the caches: the most
                // plain sgemm reaches on this shape (a bound the engine's cold weights cannot reach
                // where a matrix fits in the caches).
                var warm = 0.0
                for _ in 0 ..< passes * mats.count { warm += seconds { BLAS.sgemm(m: s.m, n: s.n, k: s.k, a: a, b: mats[0], c: c) } }
                let warmRate = flops * Double(passes * mats.count) / warm
                mats.forEach { $0.deallocate() }; a.deallocate(); c.deallocate()
                ratios.append(engineRate / plainRate)
                warmRatios.append(engineRate / warmRate)
                print(String(format: "  %-17@ %-11@ %5d %6d %6d %14.1f %15.1f %7.2f %12.1f %12.2f", model.name, label, s.m, s.n, s.k, engineRate / 1e9,
                             plainRate / 1e9, engineRate / plainRate, warmRate / 1e9, engineRate / warmRate))
            }
            if case .decodeStep = phase {
                print(String(format: "  %@ decode step (batch 16, context 256, %d layers, weights and KV on the device tier, LM head): %.2f ms median",
                             model.name, model.layers, r.medianStepSeconds * 1e3))
            }
        }
    }
    let sortedRatios = ratios.sorted()
    print(String(format: "  engine / sgemm rate over %d shapes: lowest %.2f, median %.2f (target: at least 0.80)", ratios.count, sortedRatios.first ?? 0, sortedRatios[sortedRatios.count / 2]))
    let sortedWarm = warmRatios.sorted()
    print(String(format: "  engine / warm sgemm rate: lowest %.2f, median %.2f", sortedWarm.first ?? 0, sortedWarm[sortedWarm.count / 2]))
} catch {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    exit(1)
}

do {
    // The machine's quiet and busy spells (QuietState): every 50 ms for 20 s, nothing else of ours
    // running, a decode attention (batch 16, context 256, 16 heads: a 32 MiB cache), a decode GEMM and
    // a 64 MiB sequential read. A sample counts as busy when its attention takes over 1.25 times the
    // tenth percentile.
    let samples = QuietState.probe(seconds: 20, interval: 0.05)
    let sorted = samples.map(\.attention).sorted()
    let p10 = sorted[sorted.count / 10], p50 = sorted[sorted.count / 2], p90 = sorted[sorted.count * 9 / 10]
    let busy = samples.map { $0.attention > 1.25 * p10 }
    var spells: [Double] = []
    var spellStart: Double?
    for (s, isBusy) in zip(samples, busy) {
        if isBusy, spellStart == nil { spellStart = s.at }
        if !isBusy, let t = spellStart { spells.append(s.at - t); spellStart = nil }
    }
    if let t = spellStart { spells.append(samples.last!.at - t) }
    spells.sort()
    func median(_ x: [Double]) -> Double { x.isEmpty ? .nan : x.sorted()[x.count / 2] }
    let quietSamples = zip(samples, busy).filter { !$0.1 }.map(\.0), busySamples = zip(samples, busy).filter { $0.1 }.map(\.0)
    print(String(format: "machine state (QuietState.probe): decode attention b16 c256 16/16 every 50 ms for 20 s: %d samples, p10 %.2f ms, median %.2f ms, p90 %.2f ms; busy (over 1.25 x p10) %.0f%% of samples in %d spells, median %.2f s, longest %.2f s",
                 samples.count, p10 * 1e3, p50 * 1e3, p90 * 1e3, 100 * Double(busySamples.count) / Double(samples.count), spells.count,
                 spells.isEmpty ? 0 : spells[spells.count / 2], spells.last ?? 0))
    print(String(format: "  median of quiet / busy samples: attention %.2f / %.2f ms, decode GEMM (m = 16, 4096 x 1024) %.3f / %.3f ms, sequential read %.1f / %.1f GB/s",
                 median(quietSamples.map(\.attention)) * 1e3, median(busySamples.map(\.attention)) * 1e3, median(quietSamples.map(\.gemm)) * 1e3,
                 median(busySamples.map(\.gemm)) * 1e3, median(quietSamples.map(\.readBytesPerSecond)) / 1e9, median(busySamples.map(\.readBytesPerSecond)) / 1e9))
}

do {
    // The contention state between the cores (QuietState.ContentionProbe): eight decode GEMMs (m = 4)
    // alone and beside a weight-streaming copy on the other core, every 0.25 s for 60 s. A reading
    // counts as high contention over 1.4 times (the two states sit near 2 and 1.0-1.2 on the capture
    // machine of the shipped profile).
    let samples = QuietState.contentionSeries(seconds: 60, interval: 0.25)
    let ratios = samples.map(\.ratio).sorted()
    let high = samples.map { $0.ratio > 1.4 }
    var spells: [Double] = [], lows: [Double] = []
    var runStart = samples.first?.at ?? 0
    for i in samples.indices.dropFirst() where high[i] != high[i - 1] {
        if high[i - 1] { spells.append(samples[i].at - runStart) } else { lows.append(samples[i].at - runStart) }
        runStart = samples[i].at
    }
    if let last = samples.last { if high.last! { spells.append(last.at - runStart) } else { lows.append(last.at - runStart) } }
    func q(_ x: [Double], _ p: Double) -> Double { x.isEmpty ? .nan : x.sorted()[min(x.count - 1, Int(p * Double(x.count)))] }
    print(String(format: "contention state (QuietState.ContentionProbe): 8 decode GEMMs (m = 4, 4096 x 1024) beside / alone every 0.25 s for 60 s: %d readings, p10 %.2f, median %.2f, p90 %.2f; high (over 1.4) %.0f%% of readings in %d spells (median %.1f s, longest %.1f s), low spells median %.1f s, longest %.1f s; GEMMs alone median %.2f ms",
                 samples.count, q(ratios, 0.1), q(ratios, 0.5), q(ratios, 0.9), 100 * Double(high.filter { $0 }.count) / Double(max(samples.count, 1)),
                 spells.count, q(spells, 0.5), spells.max() ?? 0, q(lows, 0.5), lows.max() ?? 0, q(samples.map(\.alone), 0.5) * 1e3))
    if CommandLine.arguments.contains("--contention-series") {
        for s in samples { print(String(format: "  %.2f s: alone %.2f ms, beside %.2f ms, x%.2f", s.at, s.alone * 1e3, s.shared * 1e3, s.ratio)) }
    }
}
