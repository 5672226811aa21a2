import Foundation
import Testing
@testable import PlannerCore

@Suite struct LatencyDigestTests {
    /// SplitMix64 (Steele, Lea and Flood 2014): a small seeded generator so every run draws the
    /// same values.
    struct SplitMix64 {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        /// Uniform on [0, 1): the top 53 bits over 2^53.
        mutating func unit() -> Double { Double(next() >> 11) * 0x1p-53 }
    }

    static func relative(_ a: Double, _ b: Double) -> Double { abs(a - b) / abs(b) }

    static func digest(_ values: [Double], exactLimit: Int = 65_536) -> LatencyDigest {
        var d = LatencyDigest(exactLimit: exactLimit)
        for v in values { d.add(v) }
        return d
    }

    // MARK: exact phase

    /// Five values, sorted 0.1 ... 0.5 (n = 5, ranks p * 4): mean 0.3; median rank 2 -> 0.3;
    /// p90 rank 3.6 -> 0.4 + 0.6 * 0.1 = 0.46; p95 rank 3.8 -> 0.48; p99 rank 3.96 -> 0.496.
    /// Under the limit the digest is `LatencyStats` of the same list, to the bit.
    @Test func underTheLimitEqualsLatencyStats() {
        let values = [0.5, 0.1, 0.4, 0.2, 0.3]
        let s = Self.digest(values).stats
        #expect(s == LatencyStats(values))
        #expect(abs(s.mean - 0.3) < 1e-15 && abs(s.median - 0.3) < 1e-15)
        #expect(abs(s.p90 - 0.46) < 1e-15 && abs(s.p95 - 0.48) < 1e-15 && abs(s.p99 - 0.496) < 1e-15)
    }

    /// Nothing added: all zero, as `LatencyStats([])`.
    @Test func emptyDigestIsZero() {
        let d = LatencyDigest()
        #expect(d.count == 0 && d.stats == LatencyStats())
    }

    /// Exact up to and including `exactLimit` values; the next value switches to the histogram and
    /// frees the kept values.
    @Test func switchesOnceAfterTheLimit() {
        var rng = SplitMix64(state: 7)
        let values = (0..<1_000).map { _ in 0.01 + rng.unit() }
        var d = Self.digest(values, exactLimit: 1_000)
        #expect(d.isExact && d.count == 1_000 && d.storageCount == 1_000)
        #expect(d.stats == LatencyStats(values))
        d.add(0.5)
        #expect(!d.isExact && d.count == 1_001)
        // The documented histogram: 240 buckets per decade over 15 decades (1e-9 s to 1e6 s).
        #expect(d.storageCount == 240 * 15)
    }

    // MARK: histogram phase, hand-made lists

    /// Two values {1, 2} with no exact phase: the ends are the exact min and max, and the rank rule
    /// interpolates them: median rank 0.5 -> 1.5, p90 rank 0.9 -> 1.9, p99 -> 1.99.
    @Test func histogramEndsAreExact() {
        let s = Self.digest([2, 1], exactLimit: 0).stats
        #expect(s.mean == 1.5 && s.median == 1.5)
        #expect(abs(s.p90 - 1.9) < 1e-15 && abs(s.p95 - 1.95) < 1e-15 && abs(s.p99 - 1.99) < 1e-15)
    }

    /// Ten equal values: every bucket estimate is clamped to [min, max] = [1 ms, 1 ms].
    @Test func constantValuesAreExact() {
        let s = Self.digest(Array(repeating: 0.001, count: 10), exactLimit: 0).stats
        #expect(s.median == 0.001 && s.p90 == 0.001 && s.p99 == 0.001)
        #expect(abs(s.mean - 0.001) < 1e-18)
    }

    /// {1, 2, 4}: median is the middle order statistic, 2; p90 rank 1.8 -> 2 + 0.8 * (4 - 2) = 3.6.
    /// The middle value comes from its bucket, so both are within the 0.5% bound, not exact.
    @Test func interiorOrderStatisticWithinBound() {
        let s = Self.digest([4, 1, 2], exactLimit: 0).stats
        #expect(Self.relative(s.median, 2) <= 0.005)
        #expect(Self.relative(s.p90, 3.6) <= 0.005)
        #expect(abs(s.mean - 7.0 / 3) < 1e-15)
    }

    /// Zeros go to the underflow counter and report as the exact minimum: {0, 0, 0, 1} has median
    /// rank 1.5 between two zeros -> 0; p90 rank 2.7 -> 0 + 0.7 * (1 - 0) = 0.7.
    @Test func zerosReportAsTheMinimum() {
        let s = Self.digest([0, 1, 0, 0], exactLimit: 0).stats
        #expect(s.median == 0)
        #expect(abs(s.p90 - 0.7) < 1e-15)
        #expect(s.mean == 0.25)
    }

    /// The top of the range, 1e6 s, is inside the histogram (its last bucket), clamped to the max.
    @Test func topOfRangeIsCounted() {
        let s = Self.digest([1e6, 1e6, 1e6, 1e6], exactLimit: 0).stats
        #expect(s.median == 1e6 && s.p99 == 1e6)
    }

    /// NaN is rejected.
    @Test func nanIsRejected() async {
        await #expect(processExitsWith: .failure) {
            var d = LatencyDigest()
            d.add(.nan)
        }
    }

    // MARK: histogram phase, known distributions

    /// The tolerance for a percentile of `n` draws against the distribution's closed-form quantile
    /// `quantile(p)`.
    ///
    /// Sampling: the number of draws at or below `quantile(p')` is Binomial(n, p'), standard
    /// deviation `sqrt(n p' (1 - p'))`. With `t = 5 sqrt(p (1 - p) / n) + 1 / n`, the sample
    /// percentile (rank `p (n - 1)`, between the order statistics around it) lies in
    /// `[quantile(p - t), quantile(p + t)]` unless the count misses its mean by about 5 standard
    /// deviations (normal approximation, `n p (1 - p) >= 1,980` here: probability about 6e-7);
    /// the `1 / n` covers the gap between rank `p (n - 1)` and `p n` and the interpolation to the
    /// next order statistic. The digest then adds at most its documented 0.5% relative.
    static func closedFormInterval(_ p: Double, n: Int, quantile: (Double) -> Double) -> ClosedRange<Double> {
        let t = 5 * (p * (1 - p) / Double(n)).squareRoot() + 1 / Double(n)
        return quantile(p - t) * (1 - 0.005) ... quantile(p + t) * (1 + 0.005)
    }

    /// Checks a digest of `values` (exact limit 1,000, so 199,000 values arrive after the switch)
    /// against the exact percentiles of the same values (the documented 0.5%), against the closed
    /// form (0.5% plus sampling, above), and the mean against a sum kept here (1e-9 relative).
    static func checkDistribution(_ values: [Double], quantile: (Double) -> Double) {
        let d = digest(values, exactLimit: 1_000)
        #expect(!d.isExact && d.count == values.count)
        let s = d.stats
        let exact = LatencyStats(values)
        let pairs: [(p: Double, got: Double, exact: Double)] = [
            (0.5, s.median, exact.median), (0.9, s.p90, exact.p90), (0.95, s.p95, exact.p95), (0.99, s.p99, exact.p99),
        ]
        for (p, got, want) in pairs {
            #expect(relative(got, want) <= 0.005, "p\(p): \(got) vs exact \(want)")
            #expect(closedFormInterval(p, n: values.count, quantile: quantile).contains(got), "p\(p): \(got) vs closed form \(quantile(p))")
        }
        var sum = 0.0
        for v in values { sum += v }
        #expect(relative(s.mean, sum / Double(values.count)) <= 1e-9)
    }

    /// 200,000 draws uniform on [20 ms, 200 ms]: `q_p = a + p (b - a)`.
    @Test func uniformPercentilesWithinBound() {
        let a = 0.02, b = 0.2
        var rng = SplitMix64(state: 2024)
        let values = (0..<200_000).map { _ in a + (b - a) * rng.unit() }
        Self.checkDistribution(values) { p in a + p * (b - a) }
    }

    /// 200,000 draws exponential with rate 20 per second (mean 50 ms), by inversion
    /// `-ln(1 - u) / λ`: `q_p = -ln(1 - p) / λ`.
    @Test func exponentialPercentilesWithinBound() {
        let lambda = 20.0
        var rng = SplitMix64(state: 99)
        let values = (0..<200_000).map { _ in -log(1 - rng.unit()) / lambda }
        Self.checkDistribution(values) { p in -log(1 - p) / lambda }
    }

    // MARK: memory

    /// A million values with the default limit: the storage after 100,001 values (past the 65,536
    /// switch) is the fixed bucket array, and it is the same size after 1,000,000.
    @Test func storageStopsGrowing() {
        var rng = SplitMix64(state: 5)
        var d = LatencyDigest()
        var atSwitch = 0
        for i in 1...1_000_000 {
            // Log-uniform from 1 ms to 10 s.
            d.add(pow(10, -3 + 4 * rng.unit()))
            if i == 100_001 { atSwitch = d.storageCount }
        }
        #expect(d.count == 1_000_000)
        #expect(atSwitch == 3_600 && d.storageCount == atSwitch)
    }

    // MARK: progress

    /// A clock the test moves by whole milliseconds.
    final class FakeClock {
        var milliseconds = 0
        var seconds: Double { Double(milliseconds) / 1000 }
    }

    /// 0.5 s of updates and a finish at 0.5 s: nothing is written.
    @Test func shortRunPrintsNothing() {
        let clock = FakeClock()
        var out: [String] = []
        var p = ProgressReporter(total: 100, clock: { clock.seconds }, write: { out.append($0) })
        for i in 1...100 { clock.milliseconds += 5; p.update(i) }
        p.finish()
        #expect(out.isEmpty)
    }

    /// 1,000 updates 10 ms apart (10 s): no line before 1 s, lines at least 0.25 s apart (so at
    /// most 1 + 9 / 0.25 = 37 of them), each starting with `\r` and without a newline, then one
    /// final line at 100% ending in a newline.
    @Test func longRunThrottlesAndEndsWithNewline() {
        let clock = FakeClock()
        var out: [(ms: Int, text: String)] = []
        var p = ProgressReporter(total: 1_000, clock: { clock.seconds }, write: { out.append((clock.milliseconds, $0)) })
        for i in 1...1_000 { clock.milliseconds += 10; p.update(i) }
        p.finish()
        let lines = out.dropLast()
        #expect(!lines.isEmpty && lines.count <= 37)
        #expect(lines.first!.ms >= 1_000)
        for (a, b) in zip(lines, lines.dropFirst()) { #expect(b.ms - a.ms >= 250) }
        #expect(lines.allSatisfy { $0.text.hasPrefix("\r") && !$0.text.contains("\n") })
        let last = out.last!.text
        #expect(last == "\rserving  1,000 / 1,000 requests  100%  [####################]  10.0 s\n")
    }

    /// The line's layout: 412,000 of 1,000,000 at 3.1 s is 41% and 8 of 20 marks (41% of 20 is
    /// 8.24), the count right-aligned to the total's nine characters.
    @Test func progressLineLayout() {
        let clock = FakeClock()
        var out: [String] = []
        var p = ProgressReporter(total: 1_000_000, clock: { clock.seconds }, write: { out.append($0) })
        clock.milliseconds = 3_100
        p.update(412_000)
        #expect(out == ["\rserving    412,000 / 1,000,000 requests   41%  [########............]  3.1 s"])
    }
}
