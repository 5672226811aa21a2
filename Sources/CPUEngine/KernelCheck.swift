import Foundation
import Synchronization
import PlannerCore

/// Whether the kernel tables describe the kernels as the engine runs them: per end-to-end run of the
/// capture's plan, rounds that each play the run's decode steps with the engine's kernel log on and
/// then time the same kernels as the tables do (`layerSweep` for the layer GEMMs of up to
/// `layerOrderRows` rows, a call after a cache sweep for the others and for decode attention), side by
/// side, so that both see the machine in the same state.
extension CPUProfileCapture {
    public struct KernelCheckRow: Sendable {
        public var run: String
        /// Per decode step, the median over rounds: the step, the engine's GEMM and attention calls
        /// and the rest (norms, activations, residuals, cache stores, waits for copies), and the same
        /// GEMM and attention calls as the tables time them. `tableAttention` is nil for a run whose
        /// attention is not all decode attention (a recomputed prefix).
        public var step: Double
        public var engineGEMM: Double, tableGEMM: Double, tableGEMMMean: Double
        public var engineAttention: Double, tableAttention: Double?, tableAttentionMean: Double?
        public var other: Double { step - engineGEMM - engineAttention }
        /// Per GEMM shape (m, n, k): the engine's time per call over the tables', median over rounds.
        public var gemmRatios: [(shape: [Int], ratio: Double)]
    }

    func mean(_ xs: [Double]) -> Double { xs.reduce(0, +) / Double(max(xs.count, 1)) }

    /// Plays `rounds` rounds per run of `e2ePlan()` whose name contains `filter` (all when empty;
    /// an `InputError` when none does).
    public func kernelCheck(rounds: Int, filter: String = "") throws -> [KernelCheckRow] {
        var rows: [KernelCheckRow] = []
        var weightsOf: [String: [[FloatBuffer]]] = [:]
        let entries = e2ePlan().filter { filter.isEmpty || $0.run.run.contains(filter) }
        guard !entries.isEmpty else {
            throw InputError(field: "--filter", "no end-to-end run of the capture's plan contains \"\(filter)\" (runs are named like \(e2ePlan()[0].run.run))")
        }
        for entry in entries {
            let r = entry.run
            let (plan, engine) = try self.engine(entry)
            let model = plan.model
            let layers = weightsOf[model.name] ?? layerWeights(model, seed: 5)
            weightsOf[model.name] = layers
            let shapes = layerShapes(model)
            var steps: [Double] = [], eG: [Double] = [], tG: [Double] = [], tGm: [Double] = [], eA: [Double] = [], tA: [Double] = [], tAm: [Double] = []
            var ratios: [[Int]: [Double]] = [:]
            var decodeOnly = true
            for _ in 0 ..< rounds {
                let result = PlanRunner.run(plan, on: engine, warmup: max(warmup, 1), repeats: repeats, keepLogits: false,
                                            recordKernels: true, fillContext: false)
                let n = Double(max(result.stepSeconds.count, 1))
                steps.append(median(result.stepSeconds))
                let log = engine.gemmLog, att = engine.attentionLog
                // The same kernels as the tables time them.
                var tableGEMM = 0.0, tableGEMMMean = 0.0
                let maxM = log.keys.map(\.m).max() ?? 1, maxN = log.keys.map(\.n).max() ?? 1, maxK = log.keys.map(\.k).max() ?? 1
                let a = FloatBuffer(count: maxM * maxK), c = FloatBuffer(count: maxM * maxN)
                fill(a.p, a.count, scale: 1, seed: 5, stream: 99)
                var layerOrder: [Int: [[Double]]] = [:]
                for (s, v) in log {
                    let perCall: Double, perCallMean: Double
                    if s.m <= Self.layerOrderRows, let i = shapes.firstIndex(where: { $0.n == s.n && $0.k == s.k }) {
                        if layerOrder[s.m] == nil {
                            var warm = [[Double]](repeating: [], count: shapes.count), times = warm
                            layerSweep(model, layers, m: s.m, a: a, c: c, passes: warmup, into: &warm)
                            layerSweep(model, layers, m: s.m, a: a, c: c, passes: repeats, into: &times)
                            layerOrder[s.m] = times
                        }
                        perCall = median(layerOrder[s.m]![i]); perCallMean = mean(layerOrder[s.m]![i])
                    } else {
                        let w = FloatBuffer(count: s.k * s.n)
                        fill(w.p, w.count, scale: 0.05, seed: 1, stream: 2)
                        let ts = calls { Kernels.gemm(m: s.m, n: s.n, k: s.k, a.p, lda: s.k, w.p, ldb: s.n, c.p, ldc: s.n) }
                        perCall = median(ts); perCallMean = mean(ts)
                    }
                    tableGEMM += perCall * Double(v.calls)
                    tableGEMMMean += perCallMean * Double(v.calls)
                    ratios[[s.m, s.n, s.k], default: []].append(v.seconds / Double(v.calls) / perCall)
                }
                eG.append(log.values.reduce(0) { $0 + $1.seconds } / n)
                tG.append(tableGEMM / n)
                tGm.append(tableGEMMMean / n)
                eA.append(att.seconds / n)
                decodeOnly = decodeOnly && att.calls == model.layers * repeats
                if decodeOnly {
                    let d = model.headDim, h = model.heads, kvh = model.kvHeads, b = r.batch, ctx = r.context + 1
                    let x = decodeAttentionBuffers(batch: b, heads: h, kvHeads: kvh, d: d, context: ctx)
                    let ts = calls { Kernels.attention(q: x.q.p, ldq: h * d, kv: x.kv.p, out: x.out.p, pos: [ctx - 1], batch: b, heads: h, kvHeads: kvh, d: d, scores: x.scores.p) }
                    tA.append(median(ts) * Double(att.calls) / n)
                    tAm.append(mean(ts) * Double(att.calls) / n)
                }
            }
            rows.append(KernelCheckRow(run: r.run, step: median(steps), engineGEMM: median(eG), tableGEMM: median(tG), tableGEMMMean: median(tGm),
                                       engineAttention: median(eA), tableAttention: decodeOnly ? median(tA) : nil, tableAttentionMean: decodeOnly ? median(tAm) : nil,
                                       gemmRatios: ratios.map { ($0.key, median($0.value)) }.sorted { $0.shape.lexicographicallyPrecedes($1.shape) }))
            log(String(format: "%@: step %.2f ms, GEMM %.2f / %.2f ms, attention %.2f / %@ ms", r.run, rows.last!.step * 1e3,
                       rows.last!.engineGEMM * 1e3, rows.last!.tableGEMM * 1e3, rows.last!.engineAttention * 1e3,
                       rows.last!.tableAttention.map { String(format: "%.2f", $0 * 1e3) } ?? "-"))
        }
        return rows
    }
}

extension CPUProfileCapture {
    /// What the other core's activity costs the kernels on this one: the Llama-like model's layer GEMMs
    /// of `m` rows (timed as `layerGEMMs` times them, summed over a layer) while a thread on the other
    /// core sleeps on a condition (`idle`, as the engine's idle copy threads do), wakes every 200 us to
    /// look for work (`poll`), or runs an integer loop that touches no memory (`spin`). The three are
    /// alternated `alternations` times; returns each one's sums in order.
    public func neighbourCheck(m: Int, alternations: Int) -> [(mode: String, seconds: [Double])] {
        let model = CPUModels.llamaSmall
        let shapes = layerShapes(model)
        let layers = layerWeights(model, seed: 5)
        let a = FloatBuffer(count: m * shapes.map(\.k).max()!), c = FloatBuffer(count: m * shapes.map(\.n).max()!)
        fill(a.p, a.count, scale: 1, seed: 5, stream: 99)
        let modes = ["idle", "poll", "spin"]
        let mode = Atomic<Int>(0), running = Atomic<Bool>(true)
        let wake = NSCondition()
        let thread = Thread {
            _ = CPUAffinity.pinCopyThread()
            var x: UInt64 = 1
            while running.load(ordering: .acquiring) {
                switch mode.load(ordering: .acquiring) {
                case 0:
                    wake.lock()
                    while mode.load(ordering: .acquiring) == 0, running.load(ordering: .acquiring) { wake.wait() }
                    wake.unlock()
                case 1: usleep(200)
                default: for _ in 0 ..< 10_000 { x = x &* 6364136223846793005 &+ 1 }
                }
            }
            if x == 0 { print(x) }   // keeps the loop
        }
        thread.start()
        func set(_ v: Int) { wake.lock(); mode.store(v, ordering: .releasing); wake.signal(); wake.unlock() }
        var out = modes.map { ($0, [Double]()) }
        for _ in 0 ..< alternations {
            for i in modes.indices {
                set(i)
                usleep(20_000)
                var warm = [[Double]](repeating: [], count: shapes.count), times = warm
                layerSweep(model, layers, m: m, a: a, c: c, passes: max(warmup, 1), into: &warm)
                layerSweep(model, layers, m: m, a: a, c: c, passes: repeats, into: &times)
                out[i].1.append(times.map { median($0) }.reduce(0, +))
            }
        }
        running.store(false, ordering: .releasing)
        set(0)
        return out
    }
}
