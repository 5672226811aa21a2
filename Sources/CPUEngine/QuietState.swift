import Foundation
import PlannerCore

/// How the CPU capture turns repeated measurements into one time per point when the machine it runs
/// on is shared.
///
/// The first capture machine (a virtual machine) alternated, with nothing else of ours running, between a
/// quiet state and a busy one, in spells of a tenth of a second to several seconds: a decode
/// attention over a 32 MiB cache (batch 16, context 256, 16 heads) takes 3.5 ms in one and 5.0 ms in
/// the other, a decode GEMM 8-13% longer in the busy state, a sequential read up to 14% slower
/// (`probe`, printed by `planner-bench`). The
/// simulator describes the machine alone, so both sides of the validation, the kernel tables that feed
/// it and the end-to-end runs it is checked against, were taken in the quiet state (the `quiet` rule;
/// the second machine, which wanders without two states, is captured ungated under the `typical`
/// rule, `Rule`):
///
/// - every measurement waits for a quiet reading of a state probe and is retried when the reading
///   after it is busy (`Gate`; the probe's decode attention reads 3.3-3.75 ms quiet, 4.75-5.5 ms
///   busy);
/// - a kernel point is timed in several sweeps spread over the capture (each sweep's value the
///   median of a few consecutive calls), and keeps the lowest sweep value (`tablePoint`);
/// - the placements of a group are played side by side in rounds, and a round's windows (each the
///   median of a few consecutive steps) share the machine's state. `groupTimes` takes each
///   placement's time relative to its round (paired, so the choice within a group compares like with
///   like) and scales it to the group's quietest round. The probe runs on the compute core alone;
///   a run that streams weights also meets the contention of the copy core, which switches between
///   about 2 times and hardly any slowdown of a decode GEMM within seconds, and which the probe does
///   not see: the pairing absorbs it.
public enum QuietState {
    /// Which state of the machine a capture's numbers describe: its fastest (`quiet`, for a machine
    /// with a quiet and a busy state) or as it usually is (`typical`, for a machine whose speed
    /// wanders without two states: on the second capture machine, whose state probe is unimodal, the
    /// lowest of a few noisy sweeps and the lowest of many round levels are not the same quantile,
    /// and the quiet rule predicted its end-to-end runs 7% fast on average). `CaptureRule`.
    public typealias Rule = CaptureRule

    /// A table point from its sweeps' values (`CaptureRule.tablePoint`).
    public static func tablePoint(_ sweeps: [Double], rule: Rule) -> Double {
        rule.tablePoint(sweeps)
    }

    /// Step times of the runs of one group from their windows: `windows[i][r]` is run `i`'s median
    /// step in round `r` (every run has the same rounds, played side by side). A round's level is
    /// the geometric mean of its windows; run `i`'s time is the median over rounds of its window over
    /// the round's level, times the lowest level (`quiet`) or the median level (`typical`).
    public static func groupTimes(_ windows: [[Double]], rule: Rule) -> [Double] {
        rule.groupTimes(windows)
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

    /// The buffers of one state sample: a 64 MiB buffer read first (evicting the caches), a decode
    /// attention in the engine's layout over a 32 MiB cache (batch 16, context 256, 16 heads of 64),
    /// and a decode GEMM against one of eight 16 MiB weight matrices in turn.
    public final class Probe: @unchecked Sendable {
        let b = 16, h = 16, c = 256, d = 64
        let flush = FloatBuffer(count: 16 << 20)
        let kv: FloatBuffer, q: FloatBuffer, out: FloatBuffer, scores: FloatBuffer
        let weights: [FloatBuffer]
        let a = FloatBuffer(count: 16 * 1024), cOut = FloatBuffer(count: 16 * 4096)
        var taken = 0
        var sink: Float = 0
        /// When the first sample was taken (`Sample.at` counts from it).
        private var start: Double?

        public init() {
            kv = FloatBuffer(count: c * b * 2 * h * d); q = FloatBuffer(count: b * h * d)
            out = FloatBuffer(count: b * h * d); scores = FloatBuffer(count: c * h)
            weights = (0 ..< 8).map { i -> FloatBuffer in
                let w = FloatBuffer(count: 4096 * 1024)
                fill(w.p, w.count, scale: 0.05, seed: 9, stream: UInt64(10 + i))
                return w
            }
            fill(flush.p, flush.count, scale: 1, seed: 9, stream: 1)
            fill(kv.p, kv.count, scale: 1, seed: 9, stream: 2)
            fill(q.p, q.count, scale: 1, seed: 9, stream: 3)
            fill(a.p, a.count, scale: 1, seed: 9, stream: 4)
        }

        /// The attention of a sample alone, in seconds (the buffer read, then the attention: about
        /// 6 ms on the capture machine); what `Gate.machine()` reads.
        public func attentionReading() -> Double {
            var s: Float = 0
            for i in stride(from: 0, to: flush.count, by: 16) { s += flush.p[i] }
            sink += s
            let t0 = now()
            Kernels.attention(q: q.p, ldq: h * d, kv: kv.p, out: out.p, pos: [c - 1], batch: b, heads: h, kvHeads: h, d: d, scores: scores.p)
            let t1 = now()
            out.p[0] = sink
            return t1 - t0
        }

        /// One sample (about 10 ms on the capture machine), on the calling thread.
        public func sample() -> Sample {
            let t0 = now()
            if start == nil { start = t0 }
            var s: Float = 0
            for i in stride(from: 0, to: flush.count, by: 16) { s += flush.p[i] }
            sink += s
            let t1 = now()
            Kernels.attention(q: q.p, ldq: h * d, kv: kv.p, out: out.p, pos: [c - 1], batch: b, heads: h, kvHeads: h, d: d, scores: scores.p)
            let t2 = now()
            Kernels.gemm(m: 16, n: 4096, k: 1024, a.p, lda: 1024, weights[taken % weights.count].p, ldb: 4096, cOut.p, ldc: 4096)
            let t3 = now()
            taken += 1
            out.p[0] = sink
            return Sample(at: t0 - start!, attention: t2 - t1, gemm: t3 - t2, readBytesPerSecond: Double(flush.count * 4) / (t1 - t0))
        }
    }

    /// Samples the machine's state every `interval` seconds for `seconds`, with the calling thread
    /// pinned to the compute core. `planner-bench` prints the spread.
    public static func probe(seconds: Double, interval: Double) -> [Sample] {
        series(seconds: seconds, interval: interval) { let probe = Probe(); return probe.sample }
    }

    /// Readings every `interval` seconds for `seconds` on the compute core (pinned, OpenBLAS on one
    /// thread): `make` builds the probe there and returns its reading.
    static func series<T>(seconds: Double, interval: Double, _ make: () -> () -> T) -> [T] {
        CPUAffinity.pinComputeThread()
        BLAS.setThreads(1)
        let read = make()
        var samples: [T] = []
        let start = now()
        while now() - start < seconds {
            samples.append(read())
            usleep(useconds_t(interval * 1e6))
        }
        return samples
    }
}

extension QuietState {
    /// One attempt of a gated measurement: its value and the probe's readings (seconds of the state
    /// sample's attention) just before and just after it, each judged quiet or busy against the
    /// quiet level of the moment it was taken (a later reading may lower the level).
    public struct Attempt<T> {
        public var value: T
        public var before: Double
        public var after: Double
        public var quietBefore: Bool
        public var quietAfter: Bool
        /// Both readings were quiet when taken.
        public var isQuiet: Bool { quietBefore && quietAfter }
    }

    /// Measures in the machine's quiet state: before each attempt it probes until a reading is
    /// quiet (or gives up after `maxWaitReadings` and measures anyway), and after it probes again; an
    /// attempt whose readings are both quiet is kept, another (a busy reading before or after) is
    /// retried, up to `maxAttempts`. A reading is quiet when it is at most `factor` times the quiet level, the lowest
    /// median of three consecutive readings seen so far. On the capture machine the probe's decode
    /// attention reads 3.3-3.75 ms in the quiet state and 4.75-5.5 ms in the busy one, so `factor`
    /// (1.15) falls between the two.
    public final class Gate: @unchecked Sendable {
        let read: () -> Double
        public var factor = 1.15
        /// Readings to wait for a quiet one before measuring anyway (the attempt then counts as busy).
        public var maxWaitReadings = 300
        /// Attempts per measurement.
        public var maxAttempts = 3
        public private(set) var level = Double.infinity
        public private(set) var readings = 0
        private var lastThree: [Double] = []

        /// `read`: one reading of the machine's state, in seconds (`Gate.machine()` reads `Probe`'s
        /// attention).
        public init(read: @escaping () -> Double) { self.read = read }

        /// A gate on this machine's state probe.
        public static func machine() -> Gate {
            let probe = Probe()
            return Gate { probe.attentionReading() }
        }

        public var threshold: Double { level * factor }

        public func isQuiet(_ reading: Double) -> Bool { reading <= threshold }

        func take() -> Double {
            let r = read()
            readings += 1
            lastThree.append(r)
            if lastThree.count > 3 { lastThree.removeFirst() }
            if lastThree.count == 3 { level = min(level, lastThree.sorted()[1]) }
            return r
        }

        /// Takes `count` readings to set the quiet level before the first measurement.
        public func calibrate(readings count: Int) { for _ in 0 ..< count { _ = take() } }

        /// Reads until a reading is quiet or `maxWaitReadings` were taken; returns the last reading
        /// and whether it was quiet.
        public func waitForQuiet() -> (reading: Double, quiet: Bool) {
            var r = take()
            var n = 1
            while !isQuiet(r) && n < maxWaitReadings { r = take(); n += 1 }
            return (r, isQuiet(r))
        }

        /// Every attempt of `body`, up to the first whose readings before and after are both quiet
        /// (that one last), at most `maxAttempts`.
        public func measure<T>(_ body: () throws -> T) rethrows -> [Attempt<T>] {
            var attempts: [Attempt<T>] = []
            while attempts.count < maxAttempts {
                let before = waitForQuiet()
                let value = try body()
                let after = take()
                let attempt = Attempt(value: value, before: before.reading, after: after,
                                      quietBefore: before.quiet, quietAfter: isQuiet(after))
                attempts.append(attempt)
                if attempt.isQuiet { break }
            }
            return attempts
        }

        /// The kept value of a measurement: the quiet attempt's, or without one the attempt of the
        /// lowest `cost`.
        public func kept<T>(_ attempts: [Attempt<T>], lowest cost: (T) -> Double) -> T {
            if let last = attempts.last, last.isQuiet { return last.value }
            return attempts.min { cost($0.value) < cost($1.value) }!.value
        }
    }
}

extension QuietState {
    /// One reading of the contention state between the cores.
    public struct ContentionSample: Sendable {
        /// Seconds from the first reading.
        public var at: Double
        /// Eight decode GEMMs (m = 4, 4096 x 1024, each against its own 16 MiB weight matrix) alone
        /// and while a copy thread on the other core streams weights as the engine does, in seconds.
        public var alone: Double, shared: Double
        public var ratio: Double { shared / alone }
    }

    /// The contention state between the compute core and the copy core: how much a copy on the
    /// other core slows a memory-bound decode GEMM, read in about 15 ms (`planner-bench` prints its
    /// spread over time). The state probe (`Probe`) runs on the compute core alone and does not see
    /// it.
    public final class ContentionProbe: @unchecked Sendable {
        let weights: [FloatBuffer]
        let a = FloatBuffer(count: 4 * 1024), c = FloatBuffer(count: 4 * 4096)
        let copy: CPUProfileCapture.BackgroundCopy
        private var start: Double?
        /// The copy's rate during the last reading's shared side, bytes per second.
        public private(set) var lastCopyBytesPerSecond = 0.0

        public init() {
            weights = (0 ..< 8).map { i -> FloatBuffer in
                let w = FloatBuffer(count: 4096 * 1024)
                fill(w.p, w.count, scale: 0.05, seed: 11, stream: UInt64(20 + i))
                return w
            }
            fill(a.p, a.count, scale: 1, seed: 11, stream: 1)
            // A layer of 48 MiB in two copies (16 and 32 MiB), four layers: as the engine streams a
            // layer's attention and FFN weights.
            copy = CPUProfileCapture.BackgroundCopy(chunks: [4 << 20, 8 << 20])
        }

        deinit { copy.stop() }

        func gemms() -> Double {
            let t0 = now()
            for w in weights { Kernels.gemm(m: 4, n: 4096, k: 1024, a.p, lda: 1024, w.p, ldb: 4096, c.p, ldc: 4096) }
            return now() - t0
        }

        /// One reading, on the calling thread (pinned to the compute core by the caller).
        public func reading() -> ContentionSample {
            let t0 = now()
            if start == nil { start = t0 }
            let alone = gemms()
            var shared = 0.0
            lastCopyBytesPerSecond = copy.during { shared = gemms() }
            return ContentionSample(at: t0 - start!, alone: alone, shared: shared)
        }
    }

    /// Reads the contention state every `interval` seconds for `seconds`, with the calling thread
    /// pinned to the compute core.
    public static func contentionSeries(seconds: Double, interval: Double) -> [ContentionSample] {
        series(seconds: seconds, interval: interval) {
            let probe = ContentionProbe()
            _ = probe.reading()   // a warm-up reading, left out
            return probe.reading
        }
    }
}
