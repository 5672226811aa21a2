import Foundation
import PlannerCore
import Synchronization

/// The scaled-down models the CPU profile is captured on: an OPT-like multi-head shape and a
/// Llama-like grouped-query shape, both run in fp32.
public enum CPUModels {
    public static let optSmall = ModelSpec(
        name: "cpu-opt-small", layers: 4, hidden: 1024, heads: 16, kvHeads: 16, headDim: 64, ffnSize: 4096, ffnKind: .relu2,
        vocab: 8192, dtype: .fp32, maxContext: 2048, bias: true, tiedEmbeddings: true, learnedPositions: true,
        source: "OPT-like shape scaled down for the CPU engine: OPT's structure (pre-LN with bias, ReLU FFN of 4 x hidden, learned positions, tied head), hidden 1024, 16 heads of 64")
    public static let llamaSmall = ModelSpec(
        name: "cpu-llama-small", layers: 4, hidden: 1024, heads: 16, kvHeads: 4, headDim: 64, ffnSize: 2816, ffnKind: .gated3,
        vocab: 8192, dtype: .fp32, maxContext: 4096, bias: false, tiedEmbeddings: false, learnedPositions: false,
        source: "Llama-like shape scaled down for the CPU engine: Llama's structure (RMS norm, gated SiLU FFN, rotary positions, separate head), hidden 1024, 16 query heads and 4 K/V heads of 64")
    public static let all = [optSmall, llamaSmall]

    /// The model object as a profile's model file holds it (the scenario's inline form).
    public static func json(_ m: ModelSpec) -> String {
        """
        {"name": "\(m.name)", "layers": \(m.layers), "hidden": \(m.hidden), "heads": \(m.heads), "kvHeads": \(m.kvHeads), "headDim": \(m.headDim),
         "ffnSize": \(m.ffnSize), "ffnKind": "\(m.ffnKind.rawValue)", "vocab": \(m.vocab), "dtype": "fp32", "maxContext": \(m.maxContext),
         "bias": \(m.bias), "tiedEmbeddings": \(m.tiedEmbeddings), "learnedPositions": \(m.learnedPositions),
         "source": "\(m.source)"}

        """
    }
}

/// Captures a CPU profile (profiles/FORMAT.md) with the engine's own kernels and the engine itself:
/// GEMMs by shape, decode and prefill attention, copy-thread bandwidth, and end-to-end decode steps
/// over placements in groups; and derives the device JSON (the CPU as a `HardwareSpec`) from them.
public struct CPUProfileCapture {
    public var out: URL
    public var repeats = 5
    public var warmup = 1
    /// Times the end-to-end runs are played, interleaved (every run once per pass), and rounds per
    /// pass over the placements of one group (each placement `repeats` timed steps per round, its
    /// engine kept between rounds). A round's window of a run is the median of its timed steps; the
    /// run's time comes from its windows and those of the group's other placements in the same rounds
    /// (`QuietState.groupTimes`), so that choices within a group compare runs measured side by side.
    /// The kernel tables are swept `passes + 1` times (before the runs and after each pass).
    public var passes = 2
    public var rounds = 3
    /// The state of the machine the tables and the end-to-end times describe (`QuietState.Rule`).
    public var rule = QuietState.Rule.typical
    /// Pin the calling thread (which runs the kernels) to the first core for the capture, as the
    /// engine's copy threads are pinned to the last (`CPUAffinity`); tests leave their thread free.
    public var pinComputeThread = true
    /// Measures in the machine's quiet state (`QuietState.Gate`): every table point, contention
    /// alternation and end-to-end window waits for a quiet reading of the state probe and is
    /// retried when the reading after it is busy. Nil: measured whenever it comes.
    public var gate: QuietState.Gate?
    /// Fewer points (for tests): small shapes and contexts.
    public var quick = false
    public var swiftVersion = "unknown"
    public var deviceName: String
    public var log: (String) -> Void = { _ in }

    public init(out: URL, deviceName: String) {
        self.out = out
        self.deviceName = deviceName
    }

    /// The CPU's model name from /proc/cpuinfo and its core count.
    public static func cpuDescription() -> String {
        let text = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        var name = "unknown CPU", family = "", model = ""
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2 else { continue }
            if parts[0] == "model name", name == "unknown CPU" { name = parts[1] }
            if parts[0] == "cpu family", family.isEmpty { family = parts[1] }
            if parts[0] == "model", model.isEmpty { model = parts[1] }
        }
        return "\(name) (family \(family), model \(model)), \(ProcessInfo.processInfo.activeProcessorCount) cores"
    }

    var models: [ModelSpec] {
        quick ? [CPUModels.optSmall, CPUModels.llamaSmall].map { var m = $0; m.hidden = 128; m.heads = 4; m.kvHeads = m.kvHeads == m.heads ? 4 : 1
            m.headDim = 32; m.ffnSize = $0.ffnKind == .relu2 ? 512 : 352; m.vocab = 512; m.layers = 2; return m } : CPUModels.all
    }

    /// Evicts the caches between timed runs: in the engine every layer reads its own weights and
    /// cache. The sweep only reads (64 MiB, twice the L3 cache of the machines we capture on), so it
    /// leaves clean lines behind as the engine's previous layer does; a sweep that wrote left the
    /// next kernel writing back dirty lines and measured the decode GEMMs up to 50% slower than the
    /// engine runs them.
    let flushBuffer = FloatBuffer(count: 16 << 20)
    let flushSink = FloatBuffer(count: 16)
    func flush() {
        let p = flushBuffer.p
        var sum: Float = 0
        for i in stride(from: 0, to: flushBuffer.count, by: 16) { sum += p[i] }
        flushSink.p[0] = sum
    }

    /// The times of `repeats` calls of `body`, each after a cache sweep, after `warmup` untimed ones.
    func calls(_ body: () -> Void) -> [Double] {
        for _ in 0 ..< warmup { flush(); body() }
        return (0 ..< repeats).map { _ in
            flush()
            let t0 = now()
            body()
            return now() - t0
        }
    }

    /// The median of `calls(body)`.
    func time(_ body: () -> Void) -> Double { median(calls(body)) }

    /// `time(body)` in the quiet state: the quiet attempt's time, or without one the lowest.
    func gatedTime(_ body: () -> Void) -> Double {
        guard let gate else { return time(body) }
        return gate.kept(gate.measure { time(body) }, lowest: { $0 })
    }

    /// `body`'s value in the quiet state (the quiet attempt's, or without one that of the lowest
    /// `cost`), or measured once without a gate.
    func gated<T>(_ body: () -> T, lowest cost: (T) -> Double) -> T {
        guard let gate else { return body() }
        return gate.kept(gate.measure(body), lowest: cost)
    }

    // MARK: Tables

    public func gemmShapes() -> [(n: Int, k: Int)] {
        var shapes: [(Int, Int)] = []
        for m in models {
            let kv = 2 * m.kvDim, up = m.ffnKind == .gated3 ? 2 * m.ffnSize : m.ffnSize
            shapes += [(m.qDim + kv, m.hidden), (m.hidden, m.qDim), (up, m.hidden), (m.hidden, m.ffnSize), (kv, m.hidden), (m.vocab, m.hidden)]
        }
        var seen = Set<[Int]>()
        return shapes.filter { seen.insert([$0.0, $0.1]).inserted }
    }

    public var mValues: [Int] { quick ? [1, 4, 16, 64] : [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096] }

    /// A decoder layer's weight GEMMs in the engine's order: Q/K/V, output, FFN up (with the gate),
    /// FFN down.
    func layerShapes(_ m: ModelSpec) -> [(n: Int, k: Int)] {
        [(m.qDim + 2 * m.kvDim, m.hidden), (m.hidden, m.qDim), (m.ffnKind == .gated3 ? 2 * m.ffnSize : m.ffnSize, m.hidden), (m.hidden, m.ffnSize)]
    }

    /// Rows up to which a layer's GEMMs are timed in the engine's order (`layerGEMMs`): below it they
    /// read their weights from memory, and the cache state the previous calls leave decides their time.
    static let layerOrderRows = 256

    /// Four (or the model's count of) layers of distinct seeded weights for `layerShapes(model)`.
    func layerWeights(_ model: ModelSpec, seed: UInt64) -> [[FloatBuffer]] {
        (0 ..< max(model.layers, 4)).map { l in
            layerShapes(model).enumerated().map { i, s -> FloatBuffer in
                let b = FloatBuffer(count: s.k * s.n)
                fill(b.p, b.count, scale: 0.05, seed: seed, stream: UInt64(l * 8 + i))
                return b
            }
        }
    }

    /// Runs the layer GEMMs of `m` rows as the engine does, every layer's GEMMs in order, `passes`
    /// times, appending each call's time to `times[i]` for shape `i`.
    func layerSweep(_ model: ModelSpec, _ layers: [[FloatBuffer]], m: Int, a: FloatBuffer, c: FloatBuffer, passes: Int,
                    into times: inout [[Double]]) {
        let shapes = layerShapes(model)
        for _ in 0 ..< passes {
            for weights in layers {
                for (i, s) in shapes.enumerated() {
                    let t0 = now()
                    Kernels.gemm(m: m, n: s.n, k: s.k, a.p, lda: s.k, weights[i].p, ldb: s.n, c.p, ldc: s.n)
                    times[i].append(now() - t0)
                }
            }
        }
    }

    /// The layer GEMMs of `m <= layerOrderRows` rows, timed as the engine runs them: over the model's
    /// layers of distinct weights, each layer's GEMMs in order, so that every call finds the caches as
    /// the previous layer's calls left them. Timing each call after a sweep over a buffer instead left
    /// the small matrices (4 to 6 MiB) partly cached on the capture machine and measured them up to
    /// 36% faster than the engine runs them. Returns the median call per shape and `m`.
    func layerGEMMs() -> [[Int]: Double] {
        var out: [[Int]: [Double]] = [:]
        for model in models {
            let shapes = layerShapes(model)
            let layers = layerWeights(model, seed: 5)
            let rows = mValues.filter { $0 <= Self.layerOrderRows }
            let a = FloatBuffer(count: rows.max()! * shapes.map(\.k).max()!), c = FloatBuffer(count: rows.max()! * shapes.map(\.n).max()!)
            fill(a.p, a.count, scale: 1, seed: 5, stream: 99)
            for m in rows {
                let medians = gated({ () -> [Double] in
                    var warm = [[Double]](repeating: [], count: shapes.count), times = warm
                    layerSweep(model, layers, m: m, a: a, c: c, passes: warmup, into: &warm)
                    layerSweep(model, layers, m: m, a: a, c: c, passes: repeats, into: &times)
                    return times.map { median($0) }
                }, lowest: { $0.reduce(0, +) })
                for (i, s) in shapes.enumerated() { out[[m, s.n, s.k], default: []].append(medians[i]) }
            }
            log("gemm \(model.name) layers in the engine's order: m = \(rows.first!) to \(rows.last!)")
        }
        return out.mapValues { $0.reduce(0, +) / Double($0.count) }
    }

    func gemm() -> [Profile.GemmPoint] {
        var points: [Profile.GemmPoint] = []
        let inLayerOrder = layerGEMMs()
        let maxM = mValues.max()!
        for (n, k) in gemmShapes() {
            let a = FloatBuffer(count: maxM * k), b = FloatBuffer(count: k * n), c = FloatBuffer(count: maxM * n)
            fill(a.p, a.count, scale: 1, seed: 1, stream: 1)
            fill(b.p, b.count, scale: 0.05, seed: 1, stream: 2)
            for m in mValues {
                let t = inLayerOrder[[m, n, k]] ?? gatedTime { Kernels.gemm(m: m, n: n, k: k, a.p, lda: k, b.p, ldb: n, c.p, ldc: n) }
                points.append(Profile.GemmPoint(m: m, n: n, k: k, seconds: t))
            }
            log(String(format: "gemm n=%d k=%d: m=1 %.1f us, m=%d %.1f GFLOP/s", n, k, points[points.count - mValues.count].seconds * 1e6, maxM,
                       2 * Double(maxM * n * k) / points.last!.seconds / 1e9))
        }
        return points
    }

    /// Seeded buffers of one decode attention as the table times it: K/V of `context` positions, one
    /// query per sequence, its output and scores.
    func decodeAttentionBuffers(batch b: Int, heads h: Int, kvHeads kvh: Int, d: Int, context c: Int)
        -> (kv: FloatBuffer, q: FloatBuffer, out: FloatBuffer, scores: FloatBuffer) {
        let kv = FloatBuffer(count: c * b * 2 * kvh * d), q = FloatBuffer(count: b * h * d)
        fill(kv.p, kv.count, scale: 1, seed: 2, stream: 3)
        fill(q.p, q.count, scale: 1, seed: 2, stream: 4)
        return (kv, q, FloatBuffer(count: b * h * d), FloatBuffer(count: c * h))
    }

    func attention() -> [Profile.AttentionPoint] {
        var points: [Profile.AttentionPoint] = []
        let d = quick ? 32 : 64
        var heads = Set<[Int]>()
        for m in models { heads.insert([m.heads, m.kvHeads]) }
        let batches = quick ? [1, 4] : [1, 4, 8, 16]
        let contexts = quick ? [16, 64] : [32, 128, 256, 512, 1024]
        for hk in heads.sorted(by: { $0[1] > $1[1] }) {
            let h = hk[0], kvh = hk[1], kvW = 2 * kvh * d
            // One gated measurement per batch over its contexts (each point a few milliseconds).
            for b in batches {
                let buffers = contexts.map { decodeAttentionBuffers(batch: b, heads: h, kvHeads: kvh, d: d, context: $0) }
                let times = gated({ zip(contexts, buffers).map { c, x in
                    time { Kernels.attention(q: x.q.p, ldq: h * d, kv: x.kv.p, out: x.out.p, pos: [c - 1], batch: b, heads: h, kvHeads: kvh, d: d, scores: x.scores.p) }
                } }, lowest: { $0.reduce(0, +) })
                for (c, t) in zip(contexts, times) {
                    points.append(Profile.AttentionPoint(kind: .decode, batch: b, heads: h, kvHeads: kvh, headDim: d, queries: 1, context: c, seconds: t))
                }
            }
            let prefillContexts = quick ? [16, 32] : [16, 64, 128, 256]
            for b in (quick ? [1, 2] : [1, 4, 16]) {
                let buffers = prefillContexts.map { c -> (kv: FloatBuffer, q: FloatBuffer, out: FloatBuffer, scores: FloatBuffer) in
                    let kv = FloatBuffer(count: c * b * kvW), q = FloatBuffer(count: c * b * h * d)
                    fill(kv.p, kv.count, scale: 1, seed: 2, stream: 5)
                    fill(q.p, q.count, scale: 1, seed: 2, stream: 6)
                    return (kv, q, FloatBuffer(count: c * b * h * d), FloatBuffer(count: c * c))
                }
                let times = gated({ zip(prefillContexts, buffers).map { c, x in
                    let pos = Array(0 ..< c)
                    return time { Kernels.attention(q: x.q.p, ldq: h * d, kv: x.kv.p, out: x.out.p, pos: pos, batch: b, heads: h, kvHeads: kvh, d: d, scores: x.scores.p) }
                } }, lowest: { $0.reduce(0, +) })
                for (c, t) in zip(prefillContexts, times) {
                    points.append(Profile.AttentionPoint(kind: .prefill, batch: b, heads: h, kvHeads: kvh, headDim: d, queries: c, context: c, seconds: t))
                }
            }
            log("attention \(h)/\(kvh) heads: \(points.count) points")
        }
        return points
    }

    /// The sizes of the link and device copies: 4 KiB ... 256 MiB in powers of 4.
    var copySizes: [Int] { quick ? [4096, 1 << 20, 4 << 20] : (0 ... 8).map { 4096 << (2 * $0) } }

    /// The copy threads' work: one memcpy between a host-tier and a device-tier buffer, from a region
    /// evicted from the caches (what streaming a layer's weights or cache entries does).
    func link() -> [Profile.LinkPoint] {
        var points: [Profile.LinkPoint] = []
        let sizes = copySizes
        let maxFloats = sizes.max()! / 4
        let host = FloatBuffer(count: maxFloats), device = FloatBuffer(count: maxFloats)
        fill(host.p, host.count, scale: 1, seed: 3, stream: 1)
        for dir in [LinkDirection.hostToDevice, .deviceToHost] {
            let (src, dst) = dir == .hostToDevice ? (host.p, device.p) : (device.p, host.p)
            // One gated measurement per direction over the sizes.
            let times = gated({ sizes.map { bytes in time { dst.update(from: src, count: bytes / 4) } } }, lowest: { $0.reduce(0, +) })
            for (bytes, t) in zip(sizes, times) {
                points.append(Profile.LinkPoint(direction: dir, memory: .pinned, bytes: Double(bytes), seconds: t))
            }
            log(String(format: "copy %@: %.2f GB/s at %d MiB", dir.rawValue, Double(sizes.last!) / points.last!.seconds / 1e9, sizes.last! >> 20))
        }
        return points
    }

    /// Device copies: one memcpy between two device-tier buffers (what gathering the device KV
    /// into the attention buffer does), from a region evicted from the caches, at the link's sizes.
    /// The same memcpy as a link copy, measured apart so that the device copy is not priced at the
    /// link's largest copy: on the second capture machine a 256 MiB copy ran at 8.2-10.2 GB/s, a
    /// 1-64 MiB one (the sizes the engine gathers) at 5.7-6.2 GB/s.
    func deviceCopies() -> [Profile.CopyPoint] {
        let sizes = copySizes
        let maxFloats = sizes.max()! / 4
        let src = FloatBuffer(count: maxFloats), dst = FloatBuffer(count: maxFloats)
        fill(src.p, src.count, scale: 1, seed: 3, stream: 2)
        let times = gated({ sizes.map { bytes in time { dst.p.update(from: src.p, count: bytes / 4) } } }, lowest: { $0.reduce(0, +) })
        log(String(format: "device copy: %.2f GB/s at %d MiB", Double(sizes.last!) / times.last! / 1e9, sizes.last! >> 20))
        return zip(sizes, times).map { Profile.CopyPoint(bytes: Double($0), seconds: $1) }
    }

    // MARK: Contention

    /// A thread that streams weights as the engine's H2D copy thread does while it is switched on:
    /// per layer the attention weights, then the FFN weights, each one `memcpy` from its own region of
    /// a host buffer (four layers of distinct weights) into one of two device slots in turn; it counts
    /// the bytes and the time spent copying. Switched off, it sleeps on a condition as the engine's
    /// idle copy threads do: on the capture machines a thread that woke every 200 us to look
    /// slowed the kernels on the other core by 3-6% (`planner-cpu-capture --neighbour-check`), so
    /// the "alone" side of a contention round measured slow and the factor low.
    final class BackgroundCopy: @unchecked Sendable {
        let chunks: [Int]
        let src: FloatBuffer, dst: FloatBuffer
        let on = Atomic<Bool>(false), alive = Atomic<Bool>(true), idle = Atomic<Bool>(true)
        let bytes = Atomic<Int>(0), nanos = Atomic<Int>(0)
        /// Times the loop has run while switched off (a sleeping thread runs it about once per switch).
        let idleLoops = Atomic<Int>(0)
        private let wake = NSCondition()

        /// `chunks`: floats of each copy of one layer (attention weights, FFN weights).
        init(chunks: [Int], layers: Int = 4) {
            self.chunks = chunks
            let layer = chunks.reduce(0, +)
            src = FloatBuffer(count: layers * layer)
            dst = FloatBuffer(count: 2 * layer)
            fill(src.p, src.count, scale: 0.05, seed: 6, stream: 1)
            let t = Thread { self.loop() }
            t.name = "capture-copy"
            t.start()
        }

        private func loop() {
            CPUAffinity.pinCopyThread()
            let layer = chunks.reduce(0, +), layers = src.count / layer
            var l = 0
            while alive.load(ordering: .acquiring) {
                if !on.load(ordering: .acquiring) {
                    idleLoops.add(1, ordering: .relaxed)
                    wake.lock()
                    idle.store(true, ordering: .releasing)
                    while !on.load(ordering: .acquiring), alive.load(ordering: .acquiring) { wake.wait() }
                    wake.unlock()
                    continue
                }
                idle.store(false, ordering: .releasing)
                var offset = 0
                for n in chunks {
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    (dst.p + (l % 2) * layer + offset).update(from: src.p + (l % layers) * layer + offset, count: n)
                    nanos.add(Int(DispatchTime.now().uptimeNanoseconds - t0), ordering: .relaxed)
                    bytes.add(n * 4, ordering: .relaxed)
                    offset += n
                }
                l += 1
            }
        }

        /// Runs `body` with the copies running; returns the copy rate (bytes per second) meanwhile.
        func during(_ body: () -> Void) -> Double {
            bytes.store(0, ordering: .relaxed); nanos.store(0, ordering: .relaxed)
            wake.lock()
            on.store(true, ordering: .releasing)
            wake.signal()
            wake.unlock()
            while idle.load(ordering: .acquiring) { usleep(50) }
            body()
            // The rate of the copies that ended while `body` ran: the one still in flight finishes
            // alone and is left out.
            let rate = Double(bytes.load(ordering: .relaxed)) / max(Double(nanos.load(ordering: .relaxed)) * 1e-9, 1e-12)
            on.store(false, ordering: .releasing)
            while !idle.load(ordering: .acquiring) { usleep(50) }
            return rate
        }

        func stop() {
            wake.lock()
            alive.store(false, ordering: .releasing)
            wake.signal()
            wake.unlock()
        }
    }

    /// How much a kernel slows down while weights stream on the other core, and the streaming while a
    /// kernel runs (`MemoryContention`). The layer GEMMs are timed as `layerGEMMs` times them (four
    /// layers of distinct weights, each layer's GEMMs in the engine's order) alone and while a
    /// `BackgroundCopy` streams the model's layer weights as the engine does, alone then beside the
    /// copy (alternated `alternations` times); a decode attention likewise; and the copy's rate beside
    /// the memory-bound GEMMs (m <= 16) and the attention against its rate alone. The capture measures
    /// a short round (one alternation) after every group of end-to-end runs in every pass: on this
    /// shared virtual machine the slowdown switches between about 2 times and hardly any within
    /// seconds to minutes, and rounds taken between the groups sample it at the moments the
    /// end-to-end runs are measured (three long rounds, before the runs and after each pass, left
    /// the mean to chance: one capture's third round met only the low state).
    public struct ContentionPoint: Sendable {
        public var kind: String
        public var round: Int
        public var m: Int, n: Int, k: Int
        public var aloneSeconds: Double, sharedSeconds: Double
        public var factor: Double { max(1, sharedSeconds / aloneSeconds) }
    }

    /// One round of contention measurements, with the copy's rate alone and beside kernels.
    public struct ContentionRound: Sendable {
        public var points: [ContentionPoint]
        public var copyAlone: Double, copyShared: Double
    }

    /// The GEMMs of the contention rounds: every model's layer shapes (a shape two models share is
    /// measured for each).
    public func contentionShapes() -> [(n: Int, k: Int)] { models.flatMap { layerShapes($0) } }

    public var contentionRows: [Int] { quick ? [1, 4, 16] : [1, 4, 16, 64, 256] }

    /// Contention rounds of a capture: one after every group of end-to-end runs in every pass.
    public var contentionRoundCount: Int { passes * Set(e2ePlan().map(\.run.group)).count }

    /// `body`'s value in the quiet state, or without a quiet attempt the last (a ratio of two times
    /// taken together has no "lowest"), or measured once without a gate.
    func gatedLast<T>(_ body: () -> T) -> T {
        guard let gate else { return body() }
        return gate.measure(body).last!.value
    }

    func contention(round: Int, alternations: Int = 3) -> ContentionRound {
        var points: [ContentionPoint] = []
        var sharedRates: [Double] = [], aloneRates: [Double] = []
        for model in models {
            let shapes = layerShapes(model)
            let attentionFloats = shapes[0].n * shapes[0].k + shapes[1].n * shapes[1].k
            let copy = BackgroundCopy(chunks: [attentionFloats, shapes[2].n * shapes[2].k + shapes[3].n * shapes[3].k])
            defer { copy.stop() }
            aloneRates.append(copy.during { usleep(quick ? 20_000 : 200_000) })
            let layers = layerWeights(model, seed: 7)
            let maxM = contentionRows.max()!
            let a = FloatBuffer(count: maxM * shapes.map(\.k).max()!), c = FloatBuffer(count: maxM * shapes.map(\.n).max()!)
            fill(a.p, a.count, scale: 1, seed: 7, stream: 99)
            for m in contentionRows {
                // Passes over the layers, each layer's GEMMs in order (three below 64 rows).
                func sweep(into times: inout [[Double]]) { layerSweep(model, layers, m: m, a: a, c: c, passes: m < 64 ? 3 : 1, into: &times) }
                var warm = [[Double]](repeating: [], count: shapes.count)
                sweep(into: &warm)
                // Alone and beside the copy, alternated, so that a slow spell of the
                // machine does not fall on one side only.
                // Each alternation in the quiet state (without a quiet attempt, the last).
                var alone = [[Double]](repeating: [], count: shapes.count), shared = alone
                for _ in 0 ..< alternations {
                    let (a, s, rate) = gatedLast { () -> ([[Double]], [[Double]], Double) in
                        var a = [[Double]](repeating: [], count: shapes.count), s = a
                        sweep(into: &a)
                        let rate = copy.during { sweep(into: &s) }
                        return (a, s, rate)
                    }
                    for i in shapes.indices { alone[i] += a[i]; shared[i] += s[i] }
                    if m <= 16 { sharedRates.append(rate) }
                }
                for (i, s) in shapes.enumerated() {
                    points.append(ContentionPoint(kind: "gemm", round: round, m: m, n: s.n, k: s.k, aloneSeconds: median(alone[i]), sharedSeconds: median(shared[i])))
                }
            }
            let mine = points.suffix(shapes.count * contentionRows.count)
            log(String(format: "contention round %d, %@: x%.2f at m=1, x%.2f at m=%d (mean over the layer GEMMs)", round, model.name,
                       mine.filter { $0.m == 1 }.map(\.factor).reduce(0, +) / Double(shapes.count),
                       mine.filter { $0.m == maxM }.map(\.factor).reduce(0, +) / Double(shapes.count), maxM))
            // Decode attention over a cache of 64 MiB or more (the model's heads, batch 16), beside
            // the same streaming.
            if model.name == models[0].name {
                let d = model.headDim, h = model.heads, kvh = model.kvHeads, b = 16
                let context = quick ? 64 : 2048
                let kv = FloatBuffer(count: context * b * 2 * kvh * d), q = FloatBuffer(count: b * h * d), out = FloatBuffer(count: b * h * d)
                let scores = FloatBuffer(count: context * h)
                fill(kv.p, kv.count, scale: 1, seed: 4, stream: 7)
                fill(q.p, q.count, scale: 1, seed: 4, stream: 8)
                func attention() -> Double {
                    var t: [Double] = []
                    for _ in 0 ..< max(repeats, 3) {
                        let t0 = now()
                        Kernels.attention(q: q.p, ldq: h * d, kv: kv.p, out: out.p, pos: [context - 1], batch: b, heads: h, kvHeads: kvh, d: d, scores: scores.p)
                        t.append(now() - t0)
                    }
                    return median(t)
                }
                _ = attention()
                var alone: [Double] = [], shared: [Double] = []
                for _ in 0 ..< alternations {
                    let (a, s, rate) = gatedLast { () -> (Double, Double, Double) in
                        let a = attention()
                        var s = 0.0
                        let rate = copy.during { s = attention() }
                        return (a, s, rate)
                    }
                    alone.append(a); shared.append(s); sharedRates.append(rate)
                }
                points.append(ContentionPoint(kind: "decode-attention", round: round, m: b, n: context, k: h, aloneSeconds: median(alone), sharedSeconds: median(shared)))
                log(String(format: "contention round %d: decode attention x%.2f", round, points.last!.factor))
            }
        }
        let copyAlone = median(aloneRates), copyShared = median(sharedRates)
        log(String(format: "contention round %d: copy %.2f GB/s alone, %.2f GB/s beside memory-bound kernels", round, copyAlone / 1e9, copyShared / 1e9))
        return ContentionRound(points: points, copyAlone: copyAlone, copyShared: copyShared)
    }

    /// The device's `MemoryContention` from all rounds. Per point (a GEMM shape and row count, or the
    /// attention) the factor is its time beside the copy summed over the rounds over its time alone
    /// summed likewise (at least 1); per row count the mean over the shapes; the copy's mean rate
    /// alone over its mean rate beside kernels. Means, not medians: on the capture machine a copy
    /// slows a decode GEMM either about twice or hardly at all, switching within seconds (likely as
    /// the host moves the two virtual cores between shared and separate physical cores), and what
    /// the end-to-end runs see is the average.
    public func memoryContention(_ rounds: [ContentionRound]) -> MemoryContention {
        let points = rounds.flatMap(\.points)
        // Between 1 and 10, the range a device's factors are allowed (a noisy round must not make the
        // device file of a long capture invalid).
        func factor(_ ps: [ContentionPoint]) -> Double {
            min(10, max(1, ps.reduce(0) { $0 + $1.sharedSeconds } / max(ps.reduce(0) { $0 + $1.aloneSeconds }, 1e-12)))
        }
        let gemm = points.filter { $0.kind == "gemm" }
        let rows = Set(gemm.map(\.m)).sorted().map { m -> [Double] in
            let shapes = Set(gemm.filter { $0.m == m }.map { [$0.n, $0.k] })
            let factors = shapes.map { s in factor(gemm.filter { $0.m == m && $0.n == s[0] && $0.k == s[1] }) }
            return [Double(m), factors.reduce(0, +) / Double(factors.count)]
        }
        let stream = factor(points.filter { $0.kind == "decode-attention" })
        let alone = rounds.reduce(0) { $0 + $1.copyAlone } / Double(max(rounds.count, 1))
        let shared = rounds.reduce(0) { $0 + $1.copyShared } / Double(max(rounds.count, 1))
        return MemoryContention(gemmSlowdown: rows, streamSlowdown: stream, copySlowdown: min(10, max(1, alone / max(shared, 1))))
    }

    // MARK: End to end

    public struct E2EPlanEntry: Sendable {
        public var run: Profile.E2ERun
        public var modelFile: String
        public var model: ModelSpec
    }

    /// Groups of runs that differ only in placement: per model, batch, context and weight share,
    /// the context kept all as device KV, all as host KV, half and half, a hybrid of device ACT, host
    /// KV and host ACT, and a share recomputed from tokens with the rest as host KV.
    public func e2ePlan() -> [E2EPlanEntry] {
        var out: [E2EPlanEntry] = []
        let contexts = quick ? [32] : [256]
        let batches = quick ? [2] : [4, 16]
        for m in models {
            let file = "\(m.name).json"
            for b in batches {
                for c in contexts {
                    for w in [1.0, 0.0] {
                        let eighth = c / 8
                        let placements: [(String, TokenPlacement)] = [
                            ("gkv", TokenPlacement(gpuKV: c)),
                            ("hkv", TokenPlacement(hostKV: c)),
                            ("mix", TokenPlacement(gpuKV: c / 2, hostKV: c - c / 2)),
                            ("hyb", TokenPlacement(gpuAct: eighth / 2, hostKV: c - eighth - eighth / 2, hostAct: eighth)),
                            ("rec", TokenPlacement(hostKV: c - eighth / 2, recompute: eighth / 2)),
                        ]
                        let group = "\(m.name)-b\(b)-c\(c)-w\(Int(w * 100))"
                        for (tag, p) in placements {
                            let run = Profile.E2ERun(run: "\(group)-\(tag)", group: group, model: file, layers: m.layers, batch: b, context: c,
                                                     weightsGPUFraction: w, placement: p, hostMemory: .pinned, stepSeconds: 1)
                            out.append(E2EPlanEntry(run: run, modelFile: file, model: m))
                        }
                    }
                }
            }
        }
        return out
    }

    /// The decode-step plan of an end-to-end run and an engine that holds its context.
    func engine(_ entry: E2EPlanEntry) throws -> (ExecutionPlan, CPUDecoder) {
        let r = entry.run
        let plan = ExecutionPlan(model: entry.model.withLayers(r.layers), hardware: HardwareCatalog.h100sxm, batch: r.batch,
                                 weights: WeightPlacement(gpuFraction: r.weightsGPUFraction), placement: r.placement,
                                 phase: .decodeStep(context: r.context), policyName: "e2e")
        let engine = try CPUDecoder(shape: try PlanRunner.shape(plan, includeHead: false))
        engine.fillContext(plan.placement)
        return (plan, engine)
    }

    /// One timed window of an end-to-end run: the median of its timed steps, with the state probe's
    /// readings before and after it (nan without a gate). With a gate, a window whose reading before
    /// or after is busy is retried, so a (pass, round) can hold several attempts; the run's time
    /// uses the last attempt of each (pass, round), which is the quiet one when there was one and
    /// otherwise the last of `Gate.maxAttempts` busy ones.
    public struct Window: Sendable {
        public var pass: Int, round: Int, attempt: Int
        public var seconds: Double
        public var before: Double, after: Double
    }

    /// The end-to-end runs, each with its windows in playing order; `afterGroup` runs after each
    /// group's rounds with a count from 0 (the capture measures a contention round), `afterPass` after
    /// each pass (the capture sweeps the kernel tables). A run's time follows
    /// from the last attempt of its window in every pass and round (with a gate, the quiet one when
    /// there was one, else the last busy one) by the paired rule of `QuietState.groupTimes`.
    func e2e(afterGroup: (Int) -> Void = { _ in }, afterPass: (Int) -> Void = { _ in }) throws -> [(run: Profile.E2ERun, windows: [Window])] {
        let entries = e2ePlan()
        var windows = [[Window]](repeating: [], count: entries.count)
        var groups: [[Int]] = []
        for (i, e) in entries.enumerated() {
            if let g = groups.last, entries[g[0]].run.group == e.run.group { groups[groups.count - 1].append(i) } else { groups.append([i]) }
        }
        var played = 0
        for pass in 0 ..< passes {
            for group in groups {
                do {   // the group's engines are released before the contention round
                    let runs = try group.map { i -> (Int, ExecutionPlan, CPUDecoder) in
                        let (plan, engine) = try self.engine(entries[i])
                        return (i, plan, engine)
                    }
                    for round in 0 ..< rounds {
                        for (i, plan, engine) in runs {
                            func window() -> Double {
                                median(PlanRunner.run(plan, on: engine, warmup: max(warmup, 1), repeats: repeats, keepLogits: false, fillContext: false).stepSeconds)
                            }
                            let attempts = gate?.measure(window) ?? [QuietState.Attempt(value: window(), before: .nan, after: .nan, quietBefore: false, quietAfter: false)]
                            windows[i] += attempts.enumerated().map { Window(pass: pass, round: round, attempt: $0.offset, seconds: $0.element.value,
                                                                             before: $0.element.before, after: $0.element.after) }
                        }
                    }
                }
                afterGroup(played)
                played += 1
            }
            if passes > 1 { log("e2e pass \(pass + 1) of \(passes) done") }
            afterPass(pass)
        }
        var out = entries.map { (run: $0.run, windows: [Window]()) }
        if gate != nil {
            let attempts = windows.reduce(0) { $0 + $1.count }
            log("e2e: \(entries.count * passes * rounds) windows in \(attempts) attempts")
        }
        for group in groups {
            let last = group.map { i in windows[i].filter { w in !windows[i].contains { $0.pass == w.pass && $0.round == w.round && $0.attempt > w.attempt } } }
            for (i, t) in zip(group, QuietState.groupTimes(last.map { $0.map(\.seconds) }, rule: rule)) {
                out[i].run.stepSeconds = t
                out[i].windows = windows[i]
                log(String(format: "e2e %@: %.2f ms", out[i].run.run, t * 1e3))
            }
        }
        return out
    }

    // MARK: Device

    /// The CPU as a device of the planner, every number derived from this capture's tables.
    public func device(name: String, gemm: [Profile.GemmPoint], attention: [Profile.AttentionPoint], link: [Profile.LinkPoint],
                       contention: MemoryContention, date: String) throws -> HardwareSpec {
        let big = gemm.filter { $0.m >= 1024 }.map { 2 * Double($0.m * $0.n * $0.k) / $0.seconds }
        let rate = big.isEmpty ? gemm.map { 2 * Double($0.m * $0.n * $0.k) / $0.seconds }.max()! : median(big)
        let peak = gemm.map { 2 * Double($0.m * $0.n * $0.k) / $0.seconds }.max()!
        let weightRead = median(gemm.filter { $0.m == 1 }.map { Double($0.k * $0.n * 4) / $0.seconds })
        /// Bandwidth of the largest copy; latency what the smallest copy takes beyond its bytes at that bandwidth.
        func fit(_ dir: LinkDirection) -> [String: Double] {
            let pts = link.filter { $0.direction == dir }.sorted { $0.bytes < $1.bytes }
            let bw = pts.last!.bytes / pts.last!.seconds
            let latency = Swift.max(0, pts[0].seconds - pts[0].bytes / bw)
            return ["latencySeconds": latency, "bytesPerSecond": bw]
        }
        let h2d = fit(.hostToDevice), d2h = fit(.deviceToHost)
        let decode = attention.filter { $0.kind == .decode }
        let floor = decode.map(\.seconds).min() ?? 1e-6
        let large = decode.filter { $0.batch * $0.context >= 4096 }
        let stream = median((large.isEmpty ? decode : large).map { Double(2 * $0.batch * $0.context * $0.kvHeads * $0.headDim * 4) / $0.seconds })
        let prefill = attention.filter { $0.kind == .prefill }
        let prefillRate = prefill.map { 4 * Double($0.batch * $0.heads * $0.headDim * $0.queries) * (Double($0.context) - Double($0.queries) / 2) / $0.seconds }.max() ?? rate / 2
        // Per-call overhead: the least any GEMM took beyond the larger of its FLOPs at the peak rate
        // and its weight bytes at the weight-read rate.
        var callOverhead = Double.infinity
        for g in gemm {
            let flops: Double = 2 * Double(g.m * g.n * g.k) / peak
            let bytes: Double = Double(g.k * g.n * 4) / weightRead
            callOverhead = Swift.min(callOverhead, g.seconds - Swift.max(flops, bytes))
        }
        callOverhead = callOverhead.isFinite ? Swift.max(0, callOverhead) : 0
        let total = MachineMemory.totalBytes().map { formatBytes($0) } ?? "unknown"
        let src = "\(deviceName), OpenBLAS \(BLAS.version) (\(BLAS.coreName) kernels, 1 thread), fp32, per point the \(rule == .quiet ? "lowest" : "median") of \(passes + 1) sweeps' medians of \(repeats) calls (before the end-to-end runs and after each pass\(gate == nil ? "" : ", each taken in the machine's quiet state")), \(date) (this profile)"
        let gib = HardwareCatalog.GiB
        let spec: [String: Any] = [
            "name": name,
            "gpu": [
                "name": "\(deviceName): one core running OpenBLAS (the compute stream)", "memoryBytes": 8 * gib,
                "memoryBandwidthBytesPerSecond": 2 * h2d["bytesPerSecond"]!, "copyBytesPerSecond": 2 * h2d["bytesPerSecond"]!, "peakMatmulFlops": ["fp32": peak], "achievedMatmulFlops": ["fp32": rate],
                "gemmBytesPerSecond": weightRead, "streamBytesPerSecond": stream, "attentionFlopsFraction": Swift.min(1, prefillRate / rate),
                "kernelSeconds": callOverhead, "reservedBytes": 0, "attentionKernelSeconds": floor,
            ] as [String: Any],
            "link": ["name": "copy threads (memcpy between the engine's host and device tiers)", "h2dPinned": h2d, "h2dPageable": h2d,
                     "d2hPinned": d2h, "d2hPageable": d2h] as [String: Any],
            "host": ["memoryBytes": 12 * gib],
            "contention": ["gemmSlowdown": contention.gemmSlowdown, "streamSlowdown": contention.streamSlowdown,
                           "copySlowdown": contention.copySlowdown] as [String: Any],
            "sources": [
                "contention.gemmSlowdown": "per row count m, the mean over both models' layer GEMMs (Q/K/V, output, FFN up and down) of the GEMM's time while a second thread on the other core streams the model's layer weights as the engine's copy thread does, over its time alone; each summed over \(contentionRoundCount) rounds (one after every group of end-to-end runs in every pass; per round the median call over passes over four layers of distinct weights in the engine's order, alone then beside the copy); at least 1; flat beyond m = \(contentionRows.max()!), contention.csv, \(src)",
                "contention.streamSlowdown": "decode attention (batch 16, context \(quick ? 64 : 2048)) while the weights stream over alone, summed over the rounds, contention.csv, \(src)",
                "contention.copySlowdown": "the copy thread's mean rate alone over its mean rate beside the GEMMs of m <= 16 and the decode attention (per round the median), contention.csv, \(src)",
                "gpu.memoryBytes": "budget: the CPU engine's device tier is given 8 GiB of this machine's memory (the rest of its \(total), MemTotal in /proc/meminfo: 12 GiB host tier, the system)",
                "gpu.memoryBandwidthBytesPerSecond": "memcpy reads and writes: twice the copy rate fitted to link.h2dPinned, \(src)",
                "gpu.copyBytesPerSecond": "device copies are the same memcpy: twice the copy rate fitted to link.h2dPinned (bytes read and written), \(src)",
                "gpu.peakMatmulFlops": "fastest GEMM of gemm.csv (measured, not a datasheet figure), \(src)",
                "gpu.achievedMatmulFlops": "median rate of the GEMMs of gemm.csv with m >= 1024, \(src)",
                "gpu.gemmBytesPerSecond": "median weight-read rate of the GEMMs of gemm.csv with m = 1, \(src)",
                "gpu.streamBytesPerSecond": "median K/V read rate of decode attention with batch x context >= 4096, attention.csv, \(src)",
                "gpu.attentionFlopsFraction": "fastest prefill attention of attention.csv over the GEMM rate, \(src)",
                "gpu.kernelSeconds": "per-call overhead: the least time any GEMM of gemm.csv took beyond the larger of its FLOPs at peakMatmulFlops and its weight bytes at gemmBytesPerSecond, \(src)",
                "gpu.attentionKernelSeconds": "fastest decode attention of attention.csv (batch 1, shortest context), \(src)",
                "gpu.reservedBytes": "none: the device tier is process memory",
                "link.h2dPinned": "bandwidth of the largest h2d copy of link.csv (256 MiB); latency: the smallest copy's time beyond its bytes at that bandwidth, \(src)",
                "link.d2hPinned": "fit as for h2dPinned to the d2h copies, \(src)",
                "link.h2dPageable": "as h2dPinned: both tiers are ordinary process memory, there is no pinned or pageable distinction",
                "link.d2hPageable": "as d2hPinned: both tiers are ordinary process memory",
                "host.memoryBytes": "budget: the CPU engine's host tier is given 12 GiB of this machine's \(total) (MemTotal in /proc/meminfo)",
            ],
        ]
        return try HardwareCatalog.decode(try JSONSerialization.data(withJSONObject: spec), field: "\(name).json")
    }

    // MARK: Writing

    static func write(_ text: String, _ url: URL) throws { try writeAtomically(Data(text.utf8), to: url.path) }

    static func g(_ x: Double) -> String { String(format: "%.6g", x) }

    /// Runs the whole capture and writes `profile.json`, the device JSON, the model files and the tables.
    public func run(folderName: String) throws {
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        BLAS.setThreads(1)
        if pinComputeThread { CPUAffinity.pinComputeThread() }
        let date = ISO8601DateFormatter().string(from: Date())
        let started = now()
        log("capturing into \(out.path) on \(deviceName), OpenBLAS \(BLAS.version) \(BLAS.coreName), 1 thread")
        if let gate {
            gate.calibrate(readings: quick ? 10 : 200)
            log(String(format: "state probe: quiet level %.2f ms, threshold %.2f ms", gate.level * 1e3, gate.threshold * 1e3))
        }
        // The kernel tables are swept before the end-to-end runs and after each of their passes, and
        // each point keeps its lowest or its median sweep by the rule (QuietState.Rule), which the
        // end-to-end times follow too.
        var sweeps = [(link: link(), copy: deviceCopies(), gemm: gemm(), attention: attention())]
        var contentionRounds: [ContentionRound] = []
        let e2eRuns = try e2e(afterGroup: { k in
            contentionRounds.append(contention(round: k, alternations: 1))
        }, afterPass: { pass in
            log("kernel tables, sweep \(pass + 2) of \(passes + 1)")
            sweeps.append((link: link(), copy: deviceCopies(), gemm: gemm(), attention: attention()))
        })
        func quiet<P>(_ tables: [[P]], _ seconds: WritableKeyPath<P, Double>) -> [P] {
            tables[0].indices.map { i in
                var p = tables[0][i]
                p[keyPath: seconds] = QuietState.tablePoint(tables.map { $0[i][keyPath: seconds] }, rule: rule)
                return p
            }
        }
        let linkPoints = quiet(sweeps.map(\.link), \.seconds)
        let copyPoints = quiet(sweeps.map(\.copy), \.seconds)
        let gemmPoints = quiet(sweeps.map(\.gemm), \.seconds)
        let attentionPoints = quiet(sweeps.map(\.attention), \.seconds)
        let hw = try device(name: folderName, gemm: gemmPoints, attention: attentionPoints, link: linkPoints,
                            contention: memoryContention(contentionRounds), date: String(date.prefix(10)))
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try Self.write(String(data: try enc.encode(hw), encoding: .utf8)! + "\n", out.appendingPathComponent("\(folderName).json"))
        for m in models { try Self.write(CPUModels.json(m), out.appendingPathComponent("\(m.name).json")) }
        try Self.write("direction,memory,bytes,seconds\n" + linkPoints.map { "\($0.direction.rawValue),\($0.memory.rawValue),\(Int($0.bytes)),\(Self.g($0.seconds))" }.joined(separator: "\n") + "\n",
                       out.appendingPathComponent("link.csv"))
        try Self.write("bytes,seconds\n" + copyPoints.map { "\(Int($0.bytes)),\(Self.g($0.seconds))" }.joined(separator: "\n") + "\n",
                       out.appendingPathComponent("copy.csv"))
        let copyBytes = 32 << 20   // the copy rows give the time of 32 MiB at the measured rates
        try Self.write("kind,round,m,n,k,alone_seconds,shared_seconds\n" + contentionRounds.enumerated().map { r, round in
            round.points.map { "\($0.kind),\(r),\($0.m),\($0.n),\($0.k),\(Self.g($0.aloneSeconds)),\(Self.g($0.sharedSeconds))" }.joined(separator: "\n")
                + "\ncopy,\(r),0,\(copyBytes),0,\(Self.g(Double(copyBytes) / round.copyAlone)),\(Self.g(Double(copyBytes) / round.copyShared))"
        }.joined(separator: "\n") + "\n", out.appendingPathComponent("contention.csv"))
        try Self.write("m,n,k,seconds\n" + gemmPoints.map { "\($0.m),\($0.n),\($0.k),\(Self.g($0.seconds))" }.joined(separator: "\n") + "\n",
                       out.appendingPathComponent("gemm.csv"))
        try Self.write("kind,batch,heads,kv_heads,head_dim,queries,context,seconds\n" + attentionPoints.map {
            "\($0.kind.rawValue),\($0.batch),\($0.heads),\($0.kvHeads),\($0.headDim),\($0.queries),\($0.context),\(Self.g($0.seconds))" }.joined(separator: "\n") + "\n",
                       out.appendingPathComponent("attention.csv"))
        try Self.write("run,group,model,layers,batch,context,weights_gpu_fraction,gpu_kv,gpu_act,host_kv,host_act,recompute,host_memory,step_seconds\n" + e2eRuns.map(\.run).map { r in
            let p = r.placement
            return "\(r.run),\(r.group),\(r.model),\(r.layers),\(r.batch),\(r.context),\(Self.g(r.weightsGPUFraction)),\(p.gpuKV),\(p.gpuAct),\(p.hostKV),\(p.hostAct),\(p.recompute),\(r.hostMemory.rawValue),\(Self.g(r.stepSeconds))"
        }.joined(separator: "\n") + "\n", out.appendingPathComponent("e2e.csv"))
        // What the tables and e2e.csv were taken from: every sweep's value of every table row, and every
        // run's window per pass and round.
        var sweepRows: [String] = []
        for (s, sweep) in sweeps.enumerated() {
            for (table, seconds) in [("gemm", sweep.gemm.map(\.seconds)), ("attention", sweep.attention.map(\.seconds)), ("link", sweep.link.map(\.seconds)),
                                     ("copy", sweep.copy.map(\.seconds))] {
                sweepRows += seconds.enumerated().map { "\(table),\($0.offset + 1),\(s),\(Self.g($0.element))" }
            }
        }
        try Self.write("table,row,sweep,seconds\n" + sweepRows.joined(separator: "\n") + "\n", out.appendingPathComponent("sweeps.csv"))
        try Self.write("run,pass,round,attempt,seconds,probe_before,probe_after\n" + e2eRuns.flatMap { r in
            r.windows.map { w in
                let probe = w.before.isNaN ? "," : "\(Self.g(w.before)),\(Self.g(w.after))"
                return "\(r.run.run),\(w.pass),\(w.round),\(w.attempt),\(Self.g(w.seconds)),\(probe)"
            }
        }.joined(separator: "\n") + "\n", out.appendingPathComponent("e2e_windows.csv"))
        let gating = gate.map { String(format: "every table point, contention alternation and window measured in the machine's quiet state (QuietState.Gate: it waits, at most %d readings, for a state-probe reading at most %.2f x the quiet level and is retried, up to %d attempts, when the reading before or after it is above)", $0.maxWaitReadings, $0.factor, $0.maxAttempts) }
            ?? "measured whenever it came (no state gate)"
        let e2eRule = "a run's time its median window (the last attempt of each pass and round) relative to its round's level, at the group's \(rule == .quiet ? "lowest" : "median") round level"
        let uname = (try? String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "unknown"
        let meta: [String: Any] = [
            "format": ProfileReader.format, "device": deviceName, "hardware": "\(folderName).json", "dtype": "fp32", "capturedAt": date,
            "driver": "Linux \(uname)", "cuda": "none (CPU)",
            "libraries": ["openblas": BLAS.version, "openblas.config": BLAS.config, "openblas.core": BLAS.coreName, "openblas.threads": "1",
                          "swift": swiftVersion],
            "repeats": repeats, "warmup": warmup, "rule": rule.rawValue,
            "source": "planner-cpu-capture (Sources/CPUCapture; scripts/capture-cpu-profile.sh): the CPU engine's kernels (\(passes + 1) sweeps, before the end-to-end runs and after each pass, each point the median of \(repeats) calls, the \(rule == .quiet ? "lowest" : "median") sweep kept (rule \(rule.rawValue))), their contention with a copy (\(contentionRoundCount) short rounds, one after every group of end-to-end runs in every pass), and the engine itself (end-to-end runs: \(passes) passes, each \(rounds) rounds over a group's placements of \(repeats) timed steps, a window the median of a round's steps; \(e2eRule)); \(gating); \(String(format: "%.0f", now() - started)) s",
        ]
        try Self.write(String(data: try JSONSerialization.data(withJSONObject: meta, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]), encoding: .utf8)! + "\n",
                       out.appendingPathComponent("profile.json"))
        if let gate { log("state gate: \(gate.readings) probe readings; quiet level \(Self.g(gate.level * 1e3)) ms") }
        log(String(format: "done in %.0f s", now() - started))
    }
}
