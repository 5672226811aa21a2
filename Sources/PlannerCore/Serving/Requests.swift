import Foundation

/// One inference request: when it arrives and how many tokens it brings and asks for.
public struct ServingRequest: Sendable, Equatable {
    public var id: Int
    public var arrivalSeconds: Double
    public var inputTokens: Int
    public var outputTokens: Int
    /// A prefix shared with other requests (a system prompt, a benchmark's fixed prefix): the first
    /// `sharedPrefixTokens` input tokens are the same token ids in every request naming this id, so
    /// their full KV blocks hash alike (vLLM's automatic prefix caching).
    public var sharedPrefix: Int?
    public var sharedPrefixTokens = 0
    /// The conversation this request is a turn of. Its first `historyTokens` input tokens are the
    /// conversation's earlier turns as the client sends them back (every earlier prompt and reply,
    /// the shared prefix included), so they hash like the blocks the previous turn left.
    public var conversation: Int?
    public var historyTokens = 0
    /// The turn before this one (a request id): this request arrives `thinkSeconds` after that one
    /// finishes, and `arrivalSeconds` is ignored. nil: it arrives at `arrivalSeconds`.
    public var previousTurn: Int?
    public var thinkSeconds = 0.0

    public init(id: Int, arrivalSeconds: Double, inputTokens: Int, outputTokens: Int) {
        self.id = id
        self.arrivalSeconds = arrivalSeconds
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
    }
}

/// Where requests come from: a JSONL trace, or a seeded synthetic generator.
public enum RequestSource {
    /// Reads one JSON object per line with `arrivalSeconds`, `inputTokens`, `outputTokens`; a
    /// malformed line is named by its number. Blank lines are skipped.
    public static func trace(_ text: String, source: String) throws -> [ServingRequest] {
        var out: [ServingRequest] = []
        for (i, raw) in textLines(text).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty { continue }
            let where_ = "\(source):\(i + 1)"
            let o: JSONFields
            do {
                o = try JSONFields.parse(Data(line.utf8), source: "the line")
            } catch let e as InputError {
                throw InputError(field: where_, e.message)
            }
            do {
                try o.rejectUnknown(allowed: ["arrivalSeconds", "inputTokens", "outputTokens", "id"])
                out.append(ServingRequest(id: out.count, arrivalSeconds: try o.double("arrivalSeconds", in: 0...1e9),
                                          inputTokens: try o.int("inputTokens", in: 1...(1 << 24)),
                                          outputTokens: try o.int("outputTokens", in: 1...(1 << 24))))
            } catch let e as InputError {
                throw InputError(field: "\(where_): \(e.field)", e.message)
            }
        }
        guard !out.isEmpty else { throw InputError(field: source, "holds no requests") }
        return out.sorted { ($0.arrivalSeconds, $0.id) < ($1.arrivalSeconds, $1.id) }
    }

    /// How synthetic requests arrive.
    public enum Arrivals: Sendable, Equatable {
        case allAtOnce
        /// A Poisson process with this mean rate (requests per second).
        case poisson(ratePerSecond: Double)
        /// One request every `seconds`.
        case interval(seconds: Double)
    }

    /// `count` requests with the given lengths (each drawn uniformly from its range), arriving as
    /// told; the same seed gives the same requests.
    public static func synthetic(count: Int, arrivals: Arrivals, input: ClosedRange<Int>, output: ClosedRange<Int>, seed: UInt64) -> [ServingRequest] {
        var rng = SeededGenerator(seed: seed)
        var t = 0.0
        return (0 ..< count).map { i in
            switch arrivals {
            case .allAtOnce: t = 0
            case .poisson(let rate):
                if i > 0 { t += -log(1 - Double.random(in: 0 ..< 1, using: &rng)) / rate }
            case .interval(let s): t = Double(i) * s
            }
            return ServingRequest(id: i, arrivalSeconds: t, inputTokens: Int.random(in: input, using: &rng),
                                  outputTokens: Int.random(in: output, using: &rng))
        }
    }
}

/// SplitMix64: a small, fast, seedable generator, so that synthetic workloads are reproducible.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
