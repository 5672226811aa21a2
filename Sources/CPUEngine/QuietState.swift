import Foundation

/// How the CPU capture turns repeated measurements into one time per point when the machine it runs
/// on is shared.
///
/// The capture machine (a virtual machine) alternates, with nothing else of ours running, between a
/// quiet state and a busy one, in spells of a tenth of a second to several seconds: a decode
/// attention over a 32 MiB cache (batch 16, context 256, 16 heads) takes 3.5 ms in one and 5.0 ms in
/// the other, a decode GEMM 8-13% longer in the busy state, a sequential read up to 14% slower
/// (`probe`, printed by `planner-bench`). The
/// simulator describes the machine alone, so both sides of the validation, the kernel tables that feed
/// it and the end-to-end runs it is checked against, are taken in the quiet state:
///
/// - a kernel point is timed in several sweeps spread over the capture (each sweep's value the
///   median of a few consecutive calls), and keeps the lowest sweep value (`tablePoint`);
/// - the placements of a group are played side by side in rounds, and a round's windows (each the
///   median of a few consecutive steps) share the machine's state. `groupTimes` takes each
///   placement's time relative to its round (paired, so the choice within a group compares like with
///   like) and scales it to the group's quietest round.
public enum QuietState {
    /// A table point from its sweeps' values: the lowest.
    public static func tablePoint(_ sweeps: [Double]) -> Double {
        sweeps.min() ?? .nan
    }

    /// Step times of the runs of one group from their windows: `windows[i][r]` is run `i`'s median
    /// step in round `r` (every run has the same rounds, played side by side). A round's level is
    /// the geometric mean of its windows; run `i`'s time is the median over rounds of its window over
    /// the round's level, times the lowest level.
    public static func groupTimes(_ windows: [[Double]]) -> [Double] {
        guard let rounds = windows.first?.count, rounds > 0, windows.allSatisfy({ $0.count == rounds }) else {
            return windows.map { _ in .nan }
        }
        let levels = (0 ..< rounds).map { r in
            exp(windows.reduce(0) { $0 + log($1[r]) } / Double(windows.count))
        }
        let quiet = levels.min()!
        return windows.map { w in median((0 ..< rounds).map { w[$0] / levels[$0] }) * quiet }
    }
}

extension QuietState {
    /// One sample of the machine's state.
    public struct Sample: Sendable {
        /// Seconds from the first sample.
        public var at: Double
        /// A decode attention in the engine's layout (batch 16, context 256, 16 heads of 64: a 32
        /// MiB cache), after reading a 64 MiB buffer.
        public var attention: Double
        /// A decode GEMM (m = 16, 4096 x 1024, one of eight weight matrices in turn, 128 MiB in all).
        public var gemm: Double
        /// The sequential read of the 64 MiB buffer, bytes per second.
        public var readBytesPerSecond: Double
    }

    /// Samples the machine's state every `interval` seconds for `seconds`, with the calling thread
    /// pinned to the compute core. `planner-bench` prints the spread.
    public static func probe(seconds: Double, interval: Double) -> [Sample] {
        let b = 16, h = 16, c = 256, d = 64
        CPUAffinity.pinComputeThread()
        BLAS.setThreads(1)
        let flush = FloatBuffer(count: 16 << 20)
        let kv = FloatBuffer(count: c * b * 2 * h * d), q = FloatBuffer(count: b * h * d)
        let out = FloatBuffer(count: b * h * d), scores = FloatBuffer(count: c * h)
        let weights = (0 ..< 8).map { i -> FloatBuffer in
            let w = FloatBuffer(count: 4096 * 1024)
            fill(w.p, w.count, scale: 0.05, seed: 9, stream: UInt64(10 + i))
            return w
        }
        let a = FloatBuffer(count: 16 * 1024), cOut = FloatBuffer(count: 16 * 4096)
        fill(flush.p, flush.count, scale: 1, seed: 9, stream: 1)
        fill(kv.p, kv.count, scale: 1, seed: 9, stream: 2)
        fill(q.p, q.count, scale: 1, seed: 9, stream: 3)
        fill(a.p, a.count, scale: 1, seed: 9, stream: 4)
        var sink: Float = 0
        var samples: [Sample] = []
        let start = now()
        while now() - start < seconds {
            let t0 = now()
            var s: Float = 0
            for i in stride(from: 0, to: flush.count, by: 16) { s += flush.p[i] }
            sink += s
            let t1 = now()
            Kernels.attention(q: q.p, ldq: h * d, kv: kv.p, out: out.p, pos: [c - 1], batch: b, heads: h, kvHeads: h, d: d, scores: scores.p)
            let t2 = now()
            Kernels.gemm(m: 16, n: 4096, k: 1024, a.p, lda: 1024, weights[samples.count % weights.count].p, ldb: 4096, cOut.p, ldc: 4096)
            let t3 = now()
            samples.append(Sample(at: t0 - start, attention: t2 - t1, gemm: t3 - t2, readBytesPerSecond: Double(flush.count * 4) / (t1 - t0)))
            usleep(useconds_t(interval * 1e6))
        }
        out.p[0] = sink
        return samples
    }
}
