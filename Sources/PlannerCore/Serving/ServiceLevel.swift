import Foundation

/// Latency objectives a served request must meet to count towards goodput, as vLLM's serving
/// benchmark defines them (`--goodput ttft:MS tpot:MS e2el:MS`; `vllm/benchmarks/serve.py`,
/// `calculate_metrics`, at 009e6d4): a request is good when every objective given is met
/// (`objective >= measured`); a request of one output token counts a TPOT of 0. Goodput is good
/// requests over the run's duration.
public struct ServiceLevel: Sendable, Equatable {
    /// Time to first token, from arrival.
    public var ttftSeconds: Double?
    /// Time per output token after the first: `(finish - first token) / (output - 1)`.
    public var tpotSeconds: Double?
    /// Arrival to last token.
    public var e2eSeconds: Double?

    public init(ttftSeconds: Double? = nil, tpotSeconds: Double? = nil, e2eSeconds: Double? = nil) {
        self.ttftSeconds = ttftSeconds
        self.tpotSeconds = tpotSeconds
        self.e2eSeconds = e2eSeconds
    }

    /// Whether a request with these latencies meets every objective given.
    public func met(ttft: Double, tpot: Double, e2e: Double) -> Bool {
        (ttftSeconds.map { ttft <= $0 } ?? true) && (tpotSeconds.map { tpot <= $0 } ?? true) && (e2eSeconds.map { e2e <= $0 } ?? true)
    }

    /// The objectives in words, e.g. `TTFT <= 500 ms, TPOT <= 50 ms`.
    public var summary: String {
        var parts: [String] = []
        if let v = ttftSeconds { parts.append("TTFT <= \(fmt(v * 1e3)) ms") }
        if let v = tpotSeconds { parts.append("TPOT <= \(fmt(v * 1e3)) ms") }
        if let v = e2eSeconds { parts.append("E2E <= \(fmt(v * 1e3)) ms") }
        return parts.joined(separator: ", ")
    }

    /// Reads `{"ttftMs": 500, "tpotMs": 50, "e2eMs": 20000}`: at least one key, each above 0 ms and
    /// at most a day.
    public static func parse(_ o: JSONFields) throws -> ServiceLevel {
        try o.rejectUnknown(allowed: ["ttftMs", "tpotMs", "e2eMs"])
        func objective(_ key: String) throws -> Double? {
            guard o.has(key) else { return nil }
            let v = try o.double(key, in: 0...86_400_000)
            guard v > 0 else { throw InputError(field: o.fieldPath(key), "must be above 0 ms (at most 86,400,000), got 0") }
            return v / 1e3
        }
        let s = ServiceLevel(ttftSeconds: try objective("ttftMs"), tpotSeconds: try objective("tpotMs"), e2eSeconds: try objective("e2eMs"))
        guard s.ttftSeconds != nil || s.tpotSeconds != nil || s.e2eSeconds != nil else {
            throw InputError(field: o.path, "needs at least one of ttftMs, tpotMs, e2eMs")
        }
        return s
    }
}

/// How many requests met a `ServiceLevel`.
public struct ServiceLevelResult: Sendable, Equatable {
    public var objectives: ServiceLevel
    /// Completed requests meeting every objective.
    public var goodRequests: Int
    /// `goodRequests` over the completed ones (0 when none completed).
    public var attainment: Double
    /// Good requests per second of the run.
    public var goodput: Double
}
