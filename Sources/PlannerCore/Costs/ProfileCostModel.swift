import Foundation

/// A measured table of one quantity against one size, looked up by piecewise-linear interpolation.
struct MeasuredCurve: Sendable {
    /// Sorted by `x`; repeated `x` averaged.
    let points: [(x: Double, y: Double)]
    /// Samples behind each point, and their sum.
    let counts: [Int]
    let sums: [Double]

    init(_ raw: [(Double, Double)]) {
        var sums: [Double: (Double, Int)] = [:]
        for (x, y) in raw { sums[x, default: (0, 0)] = (sums[x, default: (0, 0)].0 + y, sums[x, default: (0, 0)].1 + 1) }
        let xs = sums.keys.sorted()
        points = xs.map { (x: $0, y: sums[$0]!.0 / Double(sums[$0]!.1)) }
        counts = xs.map { sums[$0]!.1 }
        self.sums = xs.map { sums[$0]!.0 }
    }

    /// What `value(at: x)` of the curve rebuilt without one sample `(x, y)` would give, in
    /// O(log n) instead of a rebuild: nil when that sample was the curve's only one.
    func value(at x: Double, leavingOut y: Double) -> (y: Double, nearestX: Double, how: Lookup)? {
        var lo = 0, hi = points.count - 1
        while lo < hi {
            let mid = (lo + hi) / 2
            if points[mid].x < x { lo = mid + 1 } else { hi = mid }
        }
        guard !points.isEmpty, points[lo].x == x else { return value(at: x) }
        if counts[lo] > 1 { return ((sums[lo] - y) / Double(counts[lo] - 1), x, .exact) }
        if points.count == 1 { return nil }
        if lo == 0 { return (points[1].y, points[1].x, .outside) }
        if lo == points.count - 1 { return (points[lo - 1].y, points[lo - 1].x, .outside) }
        let a = points[lo - 1], b = points[lo + 1]
        return (a.y + (x - a.x) / (b.x - a.x) * (b.y - a.y), x, .interpolated)
    }

    enum Lookup { case exact, interpolated, outside }

    /// The measured value at `x` (interpolated between neighbours), or, outside the measured range,
    /// the nearest end point and `.outside`.
    func value(at x: Double) -> (y: Double, nearestX: Double, how: Lookup) {
        guard let first = points.first, let last = points.last else { return (0, 0, .outside) }
        if x <= first.x { return (first.y, first.x, x == first.x ? .exact : .outside) }
        if x >= last.x { return (last.y, last.x, x == last.x ? .exact : .outside) }
        var lo = 0, hi = points.count - 1
        while hi - lo > 1 {
            let mid = (lo + hi) / 2
            if points[mid].x <= x { lo = mid } else { hi = mid }
        }
        let a = points[lo], b = points[hi]
        if a.x == x { return (a.y, x, .exact) }
        let t = (x - a.x) / (b.x - a.x)
        return (a.y + t * (b.y - a.y), x, .interpolated)
    }
}

/// How lookups of a profile-backed model were answered, for reports.
public final class ProfileLookupStats: @unchecked Sendable {
    public enum Outcome: String, CaseIterable, Sendable {
        /// A measured point, or between two measured points of the same shape.
        case measured = "measured or interpolated"
        /// Beyond the measured sizes of the same shape: scaled from the nearest end by the analytic model.
        case extrapolated = "extrapolated beyond the measured sizes"
        /// A shape that was not measured: scaled from the nearest measured shape by the analytic model.
        case otherShape = "scaled from another measured shape"
        /// No table applies: the analytic model alone.
        case analytic = "analytic (no measurement applies)"
    }

    private let lock = NSLock()
    private var counts: [String: [Outcome: Int]] = [:]

    func record(_ op: String, _ o: Outcome) {
        lock.lock()
        counts[op, default: [:]][o, default: 0] += 1
        lock.unlock()
    }

    public var snapshot: [String: [Outcome: Int]] {
        lock.lock()
        defer { lock.unlock() }
        return counts
    }

    /// One line per operation kind: `gemm: 120 lookups, 90% measured or interpolated, ...`.
    public func summary() -> [String] {
        snapshot.sorted { $0.key < $1.key }.map { op, c in
            let total = c.values.reduce(0, +)
            let parts = Outcome.allCases.compactMap { o -> String? in
                guard let n = c[o], n > 0 else { return nil }
                return String(format: "%.0f%% %@", Double(n) / Double(total) * 100, o.rawValue)
            }
            return "\(op): \(total) lookups, \(parts.joined(separator: ", "))"
        }
    }

    /// Whether any lookup left the measured tables.
    public var extrapolated: Bool {
        snapshot.values.contains { ($0[.extrapolated] ?? 0) + ($0[.otherShape] ?? 0) > 0 }
    }
}

/// A cost model backed by a measured profile (profiles/FORMAT.md).
///
/// Each operation is looked up in the profile's table for the same shape and interpolated
/// piecewise-linearly over its size: GEMMs of the same `(n, k)` over `m`; decode attention of the same
/// heads over the K/V volume `batch x context`; link copies of the same direction and memory kind over
/// bytes; prefill attention of the same heads over the roofline's own prediction (the table then maps
/// predicted to measured time). Where a lookup falls outside the measured range, or the
/// shape was not measured, the nearest measurement is scaled by the analytic model's ratio between the
/// asked and the measured point (`t = t_measured x analytic(asked) / analytic(measured)`), and the
/// lookup is counted as extrapolated; device copies over bytes from `copy.csv` when the profile has
/// one; element-wise work, and device copies without a table, use the analytic model.
/// `stats` tells how every lookup was answered.
///
///     let cost = try ProfileCostModel(profile: p, hardware: hw)
///     cost.seconds(.gemm(m: 300, n: 12288, k: 4096))   // between the measured m = 256 and 512
public struct ProfileCostModel: CostModel {
    public let profile: Profile
    public let analytic: AnalyticCostModel
    public let stats = ProfileLookupStats()
    let gemm: [GemmShape: MeasuredCurve]
    let decode: [HeadShape: MeasuredCurve]
    let prefill: [HeadShape: MeasuredCurve]
    let link: [String: MeasuredCurve]
    let copy: MeasuredCurve?

    struct GemmShape: Hashable { var n: Int; var k: Int }
    struct HeadShape: Hashable {
        var heads: Int
        var kvHeads: Int
        var headDim: Int
        /// Prefill only: a plain prefill (`queries == context`) or a chunk after cached tokens; the two
        /// scale differently (compute against K/V reads) and are kept apart.
        var chunked = false
    }

    /// Checks that a profile measured the machine and element type a simulation asks for.
    public static func check(_ profile: Profile, hardware: HardwareSpec, dtype: DType) throws {
        // The catalog entry the profile names, or the name inside the device file it names (as written
        // where the entry cannot be resolved, e.g. a stored profile without its folder).
        let measured = (try? profile.hardware(in: profile.folder).name) ?? profile.meta.hardware
        guard measured == hardware.name else {
            throw InputError(field: "profile", "\(profile.name) was measured on \(measured) (\(profile.meta.device)), but the scenario runs on \(hardware.name); use a profile of that device, or none")
        }
        guard profile.meta.dtype == dtype else {
            throw InputError(field: "profile", "\(profile.name) measured \(profile.meta.dtype.rawValue) kernels, but the model runs in \(dtype.rawValue); set \"dtype\" (or --dtype) to \(profile.meta.dtype.rawValue) or use a matching profile")
        }
    }

    public init(profile: Profile, hardware: HardwareSpec) throws {
        self.profile = profile
        analytic = try AnalyticCostModel(hardware: hardware, dtype: profile.meta.dtype)
        gemm = Dictionary(grouping: profile.gemm) { GemmShape(n: $0.n, k: $0.k) }
            .mapValues { MeasuredCurve($0.map { (Double($0.m), $0.seconds) }) }
        let byHeads = { (kind: Profile.AttentionKind) in
            Dictionary(grouping: profile.attention.filter { $0.kind == kind }) {
                HeadShape(heads: $0.heads, kvHeads: $0.kvHeads, headDim: $0.headDim, chunked: kind == .prefill && $0.queries != $0.context)
            }
        }
        decode = byHeads(.decode).mapValues { MeasuredCurve($0.map { (Double($0.batch) * Double($0.context), $0.seconds) }) }
        let roofline = analytic
        prefill = byHeads(.prefill).mapValues {
            MeasuredCurve($0.map { p in
                (roofline.seconds(.prefillAttention(batch: p.batch, heads: p.heads, kvHeads: p.kvHeads, headDim: p.headDim,
                                                    queries: p.queries, context: p.context)), p.seconds)
            })
        }
        link = Dictionary(grouping: profile.link) { "\($0.direction.rawValue)/\($0.memory.rawValue)" }
            .mapValues { MeasuredCurve($0.map { ($0.bytes, $0.seconds) }) }
        copy = profile.copy.isEmpty ? nil : MeasuredCurve(profile.copy.map { ($0.bytes, $0.seconds) })
    }

    /// Looks `x` up in `curve` (without one sample of value `leavingOut` at `x`, when given: nil
    /// if that empties the curve); outside its range, scales the end point by `shape(x) / shape(end)`.
    func lookup(_ curve: MeasuredCurve, _ x: Double, _ op: String, leavingOut: Double? = nil, shape: (Double) -> Double) -> Double? {
        guard let v = leavingOut.map({ curve.value(at: x, leavingOut: $0) }) ?? curve.value(at: x) else { return nil }
        if v.how == .outside {
            stats.record(op, .extrapolated)
            let ref = shape(v.nearestX)
            return ref > 0 ? v.y * shape(x) / ref : v.y
        }
        stats.record(op, .measured)
        return v.y
    }

    /// The device's contention factor (the device file's `contention`, measured by the same capture).
    public func contentionFactor(_ op: Operation) -> Double {
        analytic.contentionFactor(op)
    }

    public func seconds(_ op: Operation) -> Double { seconds(op, leavingOut: nil) }

    /// The time of `op` as the model built without one measured sample of `op` itself, of value
    /// `leavingOut`, would give (leave-one-out validation), without rebuilding the model: only the
    /// op's own curve differs, and it is looked up without that sample.
    public func seconds(_ op: Operation, leavingOut y: Double?) -> Double {
        switch op {
        case let .gemm(m, n, k):
            if m <= 0 || n <= 0 || k <= 0 { return 0 }
            let key = GemmShape(n: n, k: k)
            if let curve = gemm[key], let t = lookup(curve, Double(m), "gemm", leavingOut: y, shape: { analytic.seconds(.gemm(m: Int($0), n: n, k: k)) }) {
                return t
            }
            // Nearest measured shape by weight size, then scaled by the analytic ratio.
            guard let near = gemm.keys.filter({ y == nil || $0 != key }).min(by: { abs(log(Double($0.n * $0.k) / Double(n * k))) < abs(log(Double($1.n * $1.k) / Double(n * k))) }) else {
                stats.record("gemm", .analytic)
                return analytic.seconds(op)
            }
            stats.record("gemm", .otherShape)
            let v = gemm[near]!.value(at: Double(m))
            let measuredAt = analytic.seconds(.gemm(m: v.how == .outside ? Int(v.nearestX) : m, n: near.n, k: near.k))
            return measuredAt > 0 ? v.y * analytic.seconds(op) / measuredAt : analytic.seconds(op)
        case .latentAttention:
            // No table times latent attention: the roofline's figure.
            stats.record("latent attention", .analytic)
            return analytic.seconds(op)
        case let .packedGemm(m, n, k, _):
            // The tables time fp16 kernels: the measured time of the same shape, scaled by the
            // roofline's ratio of the packed product to the plain one.
            let plain = analytic.seconds(.gemm(m: m, n: n, k: k))
            return plain > 0 ? seconds(.gemm(m: m, n: n, k: k), leavingOut: y) * analytic.seconds(op) / plain : 0
        case let .decodeAttention(b, heads, kvHeads, d, c):
            if b <= 0 || c <= 0 { return 0 }
            return decodeAttention(HeadShape(heads: heads, kvHeads: kvHeads, headDim: d), volume: Double(b) * Double(c), op: op, leavingOut: y)
        case let .prefillAttention(b, heads, kvHeads, d, q, c):
            if b <= 0 || q <= 0 { return 0 }
            // Prefill tables map the roofline's prediction to the measurement: one axis that covers both
            // compute-bound plain prefills and K/V-read-bound chunks; outside it, time scales with the roofline.
            let x = analytic.seconds(op)
            let shape = HeadShape(heads: heads, kvHeads: kvHeads, headDim: d, chunked: q != c)
            if let curve = prefill[shape], let t = lookup(curve, x, "prefill attention", leavingOut: y, shape: { $0 }) { return t }
            let others = prefill.keys.filter { y == nil || $0 != shape }
            guard let near = others.filter({ $0.chunked == shape.chunked }).min(by: { abs($0.heads * $0.headDim - heads * d) < abs($1.heads * $1.headDim - heads * d) })
                    ?? others.first else {
                stats.record("prefill attention", .analytic)
                return x
            }
            stats.record("prefill attention", .otherShape)
            let v = prefill[near]!.value(at: x)
            return v.how == .outside ? v.y * x / v.nearestX : v.y
        case let .transfer(bytes, direction, memory):
            if bytes <= 0 { return 0 }
            guard let curve = link["\(direction.rawValue)/\(memory.rawValue)"],
                  let t = lookup(curve, bytes, "link", leavingOut: y, shape: { analytic.seconds(.transfer(bytes: $0, direction: direction, memory: memory)) }) else {
                stats.record("link", .analytic)
                return analytic.seconds(op)
            }
            return t
        case let .deviceCopy(bytes):
            if bytes <= 0 { return 0 }
            guard let copy, let t = lookup(copy, bytes, "device copy", leavingOut: y, shape: { analytic.seconds(.deviceCopy(bytes: $0)) }) else {
                return analytic.seconds(op)
            }
            return t
        case .elementwise:
            return analytic.seconds(op)
        }
    }

    /// Decode attention: the same head shape over its K/V volume `batch x context`, or the nearest
    /// head shape (by K/V width) scaled by the analytic model, which sees both shapes' volumes.
    func decodeAttention(_ shape: HeadShape, volume: Double, op: Operation, leavingOut y: Double? = nil) -> Double {
        let name = "decode attention"
        func at(_ x: Double, _ s: HeadShape) -> Operation {
            .decodeAttention(batch: 1, heads: s.heads, kvHeads: s.kvHeads, headDim: s.headDim, context: max(1, Int(x)))
        }
        if let curve = decode[shape], let t = lookup(curve, volume, name, leavingOut: y, shape: { analytic.seconds(at($0, shape)) }) {
            return t
        }
        let width = { (s: HeadShape) in Double(s.kvHeads * s.headDim) + 1e-3 * Double(s.heads * s.headDim) }
        guard let near = decode.keys.filter({ y == nil || $0 != shape }).min(by: { abs(log(width($0) / width(shape))) < abs(log(width($1) / width(shape))) }) else {
            stats.record(name, .analytic)
            return analytic.seconds(op)
        }
        stats.record(name, .otherShape)
        let v = decode[near]!.value(at: volume)
        let measuredAt = analytic.seconds(at(v.nearestX, near))
        return measuredAt > 0 ? v.y * analytic.seconds(at(volume, shape)) / measuredAt : analytic.seconds(op)
    }
}
