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

/// Where requests come from: a JSONL trace, a seeded synthetic generator, a ShareGPT file
/// (ShareGPT.swift) or one of vLLM's benchmark datasets (BenchmarkDatasets.swift). Every source
/// numbers its requests 0, 1, ... in the order of the array it returns, and a `previousTurn`
/// always names an earlier request.
public enum RequestSource {
    /// The largest token count a request, a turn or a prefix may have (2^24), as the synthetic
    /// generator's `input` and `output` allow.
    static let maxTokens = 1 << 24

    /// Reads one JSON object per line with `arrivalSeconds`, `inputTokens`, `outputTokens`; a
    /// malformed line is named by its number. Blank lines are skipped. A line may also carry:
    ///
    /// - `id`: any value, kept only as the name `previousTurn` refers to when it is an integer;
    /// - `sharedPrefix` (an integer id, 0 to 2^53) with `sharedPrefixTokens` (1 to `inputTokens`);
    /// - `conversation` (an integer id, 0 to 2^53) and `historyTokens` (0 to `inputTokens`, and
    ///   at most the previous turn's input and output tokens together when it names one);
    /// - `previousTurn`: the id of an earlier line (its integer `id`, or for a line without one its
    ///   position among the requests counted from 0), with `thinkSeconds` (0 to 1e6, default 0).
    ///   Such a line may leave out `arrivalSeconds`; it is ignored and the request carries its
    ///   conversation's first arrival. It is of the earlier line's conversation, which it may
    ///   repeat but not contradict.
    ///
    /// The requests come back in arrival order (a later turn right after the turns before it) and
    /// numbered 0, 1, ... in that order; `previousTurn` is renumbered with them.
    public static func trace(_ text: String, source: String) throws -> [ServingRequest] {
        var lines: [(request: ServingRequest, line: Int, previous: Int?)] = []
        /// Line positions (in `lines`) by the id a `previousTurn` may name; -1 when two lines share it.
        var byName: [Int: Int] = [:]
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
                try o.rejectUnknown(allowed: ["arrivalSeconds", "inputTokens", "outputTokens", "id", "conversation", "historyTokens",
                                              "sharedPrefix", "sharedPrefixTokens", "previousTurn", "thinkSeconds"])
                let input = try o.int("inputTokens", in: 1...maxTokens)
                var previous: Int?
                if let p = try o.optionalInt("previousTurn", in: 0...Int.max) {
                    guard let k = byName[p] else { throw InputError(field: "previousTurn", "no earlier line has the id \(p)") }
                    guard k >= 0 else { throw InputError(field: "previousTurn", "more than one earlier line has the id \(p)") }
                    previous = k
                }
                let arrival = try previous != nil && !o.has("arrivalSeconds") ? 0 : o.double("arrivalSeconds", in: 0...1e9)
                var r = ServingRequest(id: lines.count, arrivalSeconds: arrival, inputTokens: input,
                                       outputTokens: try o.int("outputTokens", in: 1...maxTokens))
                // Ids are integers JSON carries exactly (2^53, the largest integer a double holds to one).
                let idRange = 0...(1 << 53)
                r.sharedPrefix = try o.optionalInt("sharedPrefix", in: idRange)
                if let n = try o.optionalInt("sharedPrefixTokens", in: 1...input) {
                    guard r.sharedPrefix != nil else { throw InputError(field: "sharedPrefixTokens", "needs a sharedPrefix (the prefix's id)") }
                    r.sharedPrefixTokens = n
                } else if r.sharedPrefix != nil {
                    throw InputError(field: "sharedPrefixTokens", "missing: a sharedPrefix needs its length, 1 to inputTokens (\(input))")
                }
                r.conversation = try o.optionalInt("conversation", in: idRange)
                r.historyTokens = try o.optionalInt("historyTokens", in: 0...input) ?? 0
                if let k = previous {
                    let before = lines[k].request
                    if let c = r.conversation, let c0 = before.conversation, c != c0 {
                        throw InputError(field: "conversation", "\(c), but the previous turn (line \(lines[k].line)) is of conversation \(c0)")
                    }
                    r.conversation = r.conversation ?? before.conversation
                    let left = before.inputTokens + before.outputTokens
                    guard r.historyTokens <= left else {
                        throw InputError(field: "historyTokens", "must be at most the previous turn's input and output tokens (line \(lines[k].line): \(left)), got \(r.historyTokens)")
                    }
                    r.previousTurn = k
                    r.thinkSeconds = try o.optionalDouble("thinkSeconds", in: 0...1e6) ?? 0
                    r.arrivalSeconds = before.arrivalSeconds
                } else if o.has("thinkSeconds") {
                    throw InputError(field: "thinkSeconds", "needs a previousTurn (the think time runs from that turn's end)")
                }
                if r.historyTokens > 0, r.conversation == nil {
                    throw InputError(field: "historyTokens", "needs a conversation (the history is that conversation's earlier turns)")
                }
                let name: Int
                if let v = o.object["id"] as? NSNumber, !JSONFields.isBool(v), let n = JSONFields.exactInteger(v) { name = n } else { name = lines.count }
                byName[name] = byName[name] == nil ? lines.count : -1
                lines.append((r, i + 1, previous))
            } catch let e as InputError {
                throw InputError(field: "\(where_): \(e.field)", e.message)
            }
        }
        guard !lines.isEmpty else { throw InputError(field: source, "holds no requests") }
        // A later turn carries its previous turn's arrival and comes from a later line, so this
        // order puts every turn after the one it follows.
        let order = lines.indices.sorted { (lines[$0].request.arrivalSeconds, $0) < (lines[$1].request.arrivalSeconds, $1) }
        var newID = [Int](repeating: 0, count: lines.count)
        for (n, k) in order.enumerated() { newID[k] = n }
        return order.map { k in
            var r = lines[k].request
            r.id = newID[k]
            r.previousTurn = lines[k].previous.map { newID[$0] }
            return r
        }
    }

    /// How requests arrive: for the synthetic generator, the benchmark datasets and the first turns
    /// of ShareGPT conversations. The first request arrives at 0 s in every process.
    public enum Arrivals: Sendable, Equatable {
        case allAtOnce
        /// A Poisson process with this mean rate (requests per second).
        case poisson(ratePerSecond: Double)
        /// One request every `seconds`.
        case interval(seconds: Double)
        /// Gaps drawn from a gamma distribution of shape `burstiness` and scale
        /// 1 / (rate x burstiness), so that their mean is 1 / rate, as vLLM's benchmark client draws
        /// them: `theta = 1.0 / (current_request_rate * burstiness)` and
        /// `np.random.gamma(shape=burstiness, scale=theta)` (vLLM 0.34.0 wheel,
        /// vllm/benchmarks/serve.py:504 and :508; 0.8.5, serve.py:137 and :148). Burstiness 1 is a
        /// Poisson process; below 1 the arrivals bunch, above 1 they even out (the gaps' coefficient
        /// of variation is 1 / sqrt(burstiness)). Unlike vLLM from 0.10.2 on (serve.py:524-526 in
        /// 0.34.0), the drawn times are not rescaled to make the last arrival land at count / rate;
        /// they are as 0.8.5 sent them, the first request at 0 s.
        case gamma(ratePerSecond: Double, burstiness: Double)

        /// The arrival times of `count` requests in order, drawn from `rng`.
        func times(_ count: Int, using rng: inout SeededGenerator) -> [Double] {
            var clock = ArrivalClock(self)
            return (0 ..< count).map { _ in clock.next(using: &rng) }
        }
    }

    /// Arrival times one request at a time, so that a generator can interleave them with its other
    /// draws.
    struct ArrivalClock {
        let arrivals: Arrivals
        private var index = 0
        private var t = 0.0

        init(_ arrivals: Arrivals) { self.arrivals = arrivals }

        mutating func next(using rng: inout SeededGenerator) -> Double {
            defer { index += 1 }
            switch arrivals {
            case .allAtOnce: t = 0
            case .poisson(let rate):
                if index > 0 { t += -log(1 - Double.random(in: 0 ..< 1, using: &rng)) / rate }
            case .interval(let s): t = Double(index) * s
            case .gamma(let rate, let b):
                if index > 0 { t += RandomDraw.gamma(shape: b, scale: 1 / (rate * b), using: &rng) }
            }
            return t
        }
    }

    /// `count` requests with the given lengths (each drawn uniformly from its range), arriving as
    /// told; the same seed gives the same requests.
    public static func synthetic(count: Int, arrivals: Arrivals, input: ClosedRange<Int>, output: ClosedRange<Int>, seed: UInt64) -> [ServingRequest] {
        var rng = SeededGenerator(seed: seed)
        var clock = ArrivalClock(arrivals)
        return (0 ..< count).map { i in
            let t = clock.next(using: &rng)
            return ServingRequest(id: i, arrivalSeconds: t, inputTokens: Int.random(in: input, using: &rng),
                                  outputTokens: Int.random(in: output, using: &rng))
        }
    }
}

/// Draws from the distributions the workloads need, on any seeded generator.
enum RandomDraw {
    /// Uniform on (0, 1]: safe to take the logarithm of.
    static func openUnit(using rng: inout some RandomNumberGenerator) -> Double {
        1 - Double.random(in: 0 ..< 1, using: &rng)
    }

    /// A standard normal draw by the Box-Muller transform (Box and Muller, "A note on the generation
    /// of random normal deviates", Ann. Math. Statist. 29(2), 1958): sqrt(-2 ln u1) cos(2 pi u2).
    static func standardNormal(using rng: inout some RandomNumberGenerator) -> Double {
        let u1 = openUnit(using: &rng), u2 = Double.random(in: 0 ..< 1, using: &rng)
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }

    /// An exponential draw of this mean (inversion: -mean ln u).
    static func exponential(mean: Double, using rng: inout some RandomNumberGenerator) -> Double {
        -mean * log(openUnit(using: &rng))
    }

    /// A gamma draw of this shape k and scale theta (mean k theta, variance k theta^2) by Marsaglia
    /// and Tsang's method ("A simple method for generating gamma variables", ACM Transactions on
    /// Mathematical Software 26(3), 2000, pp. 363-372): for k >= 1, with d = k - 1/3 and
    /// c = 1 / sqrt(9 d), draw a standard normal x until v = (1 + c x)^3 > 0, and a uniform u;
    /// accept d v when u < 1 - 0.0331 x^4 (the paper's squeeze) or ln u < x^2 / 2 + d (1 - v + ln v).
    /// For k < 1 the paper's boost: a draw of shape k + 1 times u^(1/k).
    static func gamma(shape k: Double, scale theta: Double, using rng: inout some RandomNumberGenerator) -> Double {
        precondition(k > 0 && theta > 0, "gamma needs a positive shape and scale")
        if k < 1 {
            let g = gamma(shape: k + 1, scale: theta, using: &rng)
            return g * pow(openUnit(using: &rng), 1 / k)
        }
        let d = k - 1.0 / 3.0, c = 1 / (9 * d).squareRoot()
        while true {
            var x = 0.0, v = 0.0
            repeat {
                x = standardNormal(using: &rng)
                v = 1 + c * x
            } while v <= 0
            v = v * v * v
            let u = openUnit(using: &rng)
            if u < 1 - 0.0331 * x * x * x * x { return d * v * theta }
            if log(u) < 0.5 * x * x + d * (1 - v + log(v)) { return d * v * theta }
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
