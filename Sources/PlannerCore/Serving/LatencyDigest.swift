import Foundation

/// Latency statistics gathered one value at a time, in memory that stops growing.
///
/// **Exact phase.** While at most `exactLimit` values have been added (65,536 by default) the
/// digest keeps them all and `stats` is `LatencyStats(values)`: the same mean and the same
/// linearly interpolated percentiles, bit for bit.
///
/// **Histogram phase.** The value that takes the count past `exactLimit` moves the kept values into
/// a fixed histogram, once, and frees them. From then on each `add` is O(1) (one `log10` and a
/// counter increment) and the storage is a fixed array of `bucketCount` counters, whatever the
/// number of values. Alongside it the digest keeps the exact count, the sum (compensated, so the
/// mean is the exact mean to rounding), the minimum and the maximum.
///
/// *Buckets.* `bucketsPerDecade = 240` logarithmic buckets per decade over [1e-9 s, 1e6 s]:
/// 15 decades, so `bucketCount = 15 * 240 = 3,600`. Bucket `i` holds `[e_i, e_{i+1})` with
/// `e_i = 1e-9 * 10^(i / 240)` (the last bucket also holds 1e6 s itself), a ratio
/// `r = e_{i+1} / e_i = 10^(1/240) ≈ 1.009640`. A value below 1e-9 s (zero and negative values
/// included) is counted in an underflow counter, a value above 1e6 s in an overflow counter.
///
/// *Percentiles.* The rank rule is numpy's linear interpolation, as in `LatencyStats`: for
/// percentile `p` over `n` values, `x = p * (n - 1)`, `lo = floor(x)`, `hi = min(lo + 1, n - 1)`
/// and `q = v[lo] + (x - lo) * (v[hi] - v[lo])`, where `v[k]` is the `k`-th smallest value
/// (0-based). The digest estimates each order statistic `v[k]` and interpolates the two estimates:
/// - `v[0]` is the exact minimum and `v[n - 1]` the exact maximum;
/// - an order statistic in the underflow counter is reported as the exact minimum, one in the
///   overflow counter as the exact maximum;
/// - otherwise `v[k]` is reported as the geometric midpoint `sqrt(e_i * e_{i+1})` of the bucket
///   that holds it, clamped to `[min, max]`.
///
/// *Error bound.* A value `v` in `[e_i, e_{i+1})` and the midpoint `m = e_i * sqrt(r)` satisfy
/// `1 / sqrt(r) < m / v <= sqrt(r)`, so `|m - v| / v <= sqrt(r) - 1 = 10^(1/480) - 1 ≈ 0.4809%`
/// (the lower side, `1 - 1/sqrt(r) ≈ 0.4786%`, is smaller). Clamping to `[min, max]` never moves
/// an estimate away from `v`, which lies in that interval. Interpolation keeps the bound: with
/// `|ê_k - v_k| <= δ v_k` for `k = lo, hi` and weights `1 - f`, `f` in [0, 1],
/// `|q̂ - q| <= (1 - f) δ v_lo + f δ v_hi = δ q` for non-negative values. So every reported
/// percentile is within **0.481% relative** (below the 0.5% asked of it) of the exact one while the
/// order statistics it uses lie in [1e-9 s, 1e6 s]. Order statistics in the underflow counter are
/// reported as the minimum: when all values are at least 0 the error there is below 1e-9 s
/// absolute. Order statistics above 1e6 s are reported as the maximum (no relative bound; a
/// simulated latency of more than eleven days does not occur).
///
/// NaN and infinite values are a programming error and stop the program (`precondition`).
public struct LatencyDigest: Sendable {
    /// Logarithmic buckets per decade; the bucket ratio is `10^(1 / bucketsPerDecade)`.
    public static let bucketsPerDecade = 240
    /// Lower end of the histogram's range, seconds.
    public static let lowestSeconds = 1e-9
    /// Upper end of the histogram's range, seconds.
    public static let highestSeconds = 1e6
    /// Decades from `lowestSeconds` to `highestSeconds`.
    static let decades = 15
    /// `decades * bucketsPerDecade` = 3,600.
    public static let bucketCount = decades * bucketsPerDecade
    /// Worst relative error of a percentile from the histogram: `10^(1 / (2 * bucketsPerDecade)) - 1`.
    public static let relativeErrorBound = pow(10, 1 / Double(2 * bucketsPerDecade)) - 1

    /// Bucket edges `e_0 ... e_bucketCount`, `e_i = 1e-9 * 10^(i / 240)`, shared by every digest.
    static let edges: [Double] = {
        var e = (0...bucketCount).map { pow(10, Double($0) / Double(bucketsPerDecade) - 9) }
        e[0] = lowestSeconds
        e[bucketCount] = highestSeconds
        return e
    }()

    /// Values kept while the count is at most `exactLimit`.
    public let exactLimit: Int
    /// The kept values (exact phase); emptied at the switch.
    private var values: [Double] = []
    /// One counter per bucket (histogram phase); empty before the switch.
    private var counts: [Int] = []
    private var underflow = 0
    private var overflow = 0
    /// Neumaier-compensated running sum of every value added, in the order added.
    private var sum = 0.0
    private var compensation = 0.0
    private var minimum = Double.infinity
    private var maximum = -Double.infinity

    /// Values added so far.
    public private(set) var count = 0

    /// - Parameter exactLimit: the most values kept and summarised exactly; at least 0.
    public init(exactLimit: Int = 65_536) {
        precondition(exactLimit >= 0, "LatencyDigest: exactLimit must be at least 0")
        self.exactLimit = exactLimit
    }

    /// Whether the digest still holds every value (and `stats` is exact).
    var isExact: Bool { count <= exactLimit }

    /// Elements held in storage: the kept values before the switch, the bucket counters after it
    /// (`bucketCount`, fixed).
    var storageCount: Int { values.count + counts.count }

    /// Adds one latency, in seconds. It must be finite.
    public mutating func add(_ seconds: Double) {
        precondition(seconds.isFinite, "LatencyDigest: a latency must be finite, got \(seconds)")
        count += 1
        // Neumaier's compensated summation: `compensation` collects the low-order bits lost by `sum`.
        let t = sum + seconds
        if abs(sum) >= abs(seconds) { compensation += (sum - t) + seconds } else { compensation += (seconds - t) + sum }
        sum = t
        if seconds < minimum { minimum = seconds }
        if seconds > maximum { maximum = seconds }

        if count <= exactLimit {
            values.append(seconds)
            return
        }
        if counts.isEmpty {
            counts = [Int](repeating: 0, count: Self.bucketCount)
            for v in values { record(v) }
            values = []
        }
        record(seconds)
    }

    /// Counts one value in its bucket (or the underflow or overflow counter).
    private mutating func record(_ v: Double) {
        if v < Self.lowestSeconds { underflow += 1; return }
        if v > Self.highestSeconds { overflow += 1; return }
        counts[Self.bucket(of: v)] += 1
    }

    /// The bucket `i` with `e_i <= v < e_{i+1}` (the last for `v = 1e6`), for `v` in [1e-9, 1e6]:
    /// `floor((log10(v) + 9) * 240)`, then corrected against the edge table so rounding in
    /// `log10` cannot put a value next to its bucket.
    static func bucket(of v: Double) -> Int {
        let last = bucketCount - 1
        var i = Int(((log10(v) + 9) * Double(bucketsPerDecade)).rounded(.down))
        i = Swift.min(Swift.max(i, 0), last)
        while i > 0 && v < edges[i] { i -= 1 }
        while i < last && v >= edges[i + 1] { i += 1 }
        return i
    }

    /// The estimate of the `k`-th smallest value (0-based) in the histogram phase (see the type's
    /// documentation): exact at the ends, the minimum in the underflow, the maximum in the
    /// overflow, else its bucket's geometric midpoint clamped to `[min, max]`.
    private func orderStatistic(_ k: Int) -> Double {
        if k <= 0 { return minimum }
        if k >= count - 1 { return maximum }
        var seen = underflow
        if k < seen { return minimum }
        for i in 0..<counts.count {
            seen += counts[i]
            if k < seen {
                let mid = (Self.edges[i] * Self.edges[i + 1]).squareRoot()
                return Swift.min(Swift.max(mid, minimum), maximum)
            }
        }
        return maximum
    }

    /// Mean and percentiles of the values added: exactly `LatencyStats(values)` in the exact phase;
    /// in the histogram phase the exact mean (compensated sum over count) and percentiles within
    /// `relativeErrorBound` (see the type's documentation). All zero when nothing was added.
    public var stats: LatencyStats {
        if isExact { return LatencyStats(values) }
        func q(_ p: Double) -> Double {
            let x = p * Double(count - 1)
            let lo = Int(x.rounded(.down)), hi = Swift.min(lo + 1, count - 1)
            let a = orderStatistic(lo), b = orderStatistic(hi)
            return a + (x - Double(lo)) * (b - a)
        }
        var s = LatencyStats()
        s.mean = (sum + compensation) / Double(count)
        s.median = q(0.5); s.p90 = q(0.9); s.p95 = q(0.95); s.p99 = q(0.99)
        return s
    }
}
