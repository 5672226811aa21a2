import Foundation

/// vLLM's synthetic benchmark datasets (`vllm bench serve --dataset-name random | sonnet`), as the
/// token counts they send: no text is made, only the lengths and the shared prefix.
extension RequestSource {
    /// vLLM's `RandomDataset`: input and output lengths drawn uniformly from integer ranges around
    /// their means, after a fixed random prefix that every request shares.
    public struct RandomDatasetOptions: Sendable, Equatable {
        /// `--num-prompts`' default, `DEFAULT_NUM_PROMPTS = 1000` (vLLM 0.34.0 wheel,
        /// vllm/benchmarks/datasets/datasets.py:70; 0.10.2, vllm/benchmarks/datasets.py:1027).
        public var count = 1000
        /// `DEFAULT_INPUT_LEN = 1024` and `DEFAULT_OUTPUT_LEN = 128`, the prefix `DEFAULT_PREFIX_LEN =
        /// 0` and `DEFAULT_RANGE_RATIO = 0.0` (0.10.2 datasets.py:398-401; 0.34.0 datasets.py:569-572).
        public var input = 1024
        public var output = 128
        public var inputRangeRatio = 0.0
        public var outputRangeRatio = 0.0
        public var prefix = 0
        public var arrivals = Arrivals.allAtOnce
        public var seed: UInt64 = 1
        public init() {}
    }

    /// Requests as vLLM's `RandomDataset` makes them (0.34.0 wheel, vllm/benchmarks/datasets/utils.py,
    /// `get_sampling_params`, and datasets.py:597-612; 0.10.2, vllm/benchmarks/datasets.py:481-531):
    ///
    /// - the ratios must lie in [0, 1) (utils.py:64-67);
    /// - the input is drawn uniformly from [floor(input (1 - r)), ceil(input (1 + r))] and the output
    ///   from [max(floor(output (1 - r)), 1), max(ceil(output (1 + r)), 1)] (utils.py:70-77, the
    ///   draws `rng.integers(low, high + 1)` at :96-97), each with its own ratio (0.34.0 takes
    ///   `range_ratio` as one number or `{"input": r, "output": r}`, utils.py:19-36);
    /// - every request starts with the same `prefix` tokens, drawn once (`get_prefix`), so its
    ///   input is `prefix + drawn` (`total_input_len = prefix_len + int(input_len)`, 0.34.0
    ///   datasets.py:753; 0.10.2 datasets.py:563): `sharedPrefix` 0 of `prefix` tokens;
    /// - the shortest input, prefix + floor(input (1 - r)), must be at least 1 (0.34.0
    ///   datasets.py:604-605).
    ///
    /// vLLM draws the lengths with numpy's generator; here they come from `SeededGenerator`, one
    /// request at a time after its arrival. vLLM first takes the tokenizer's special tokens off the
    /// input (`real_input_len`, utils.py:68-69) and the server adds them back; here they are part
    /// of the drawn length. vLLM's decode and re-encode, which moves a prompt's length by a token or
    /// two, is not modelled.
    public static func randomDataset(_ o: RandomDatasetOptions) throws -> [ServingRequest] {
        for (key, r) in [("rangeRatio", o.inputRangeRatio), ("rangeRatio", o.outputRangeRatio)] where !(r >= 0 && r < 1) {
            throw InputError(field: "requests.\(key)", "must be at least 0 and below 1, got \(fmt(r))")
        }
        let inLow = Int((Double(o.input) * (1 - o.inputRangeRatio)).rounded(.down))
        let inHigh = Int((Double(o.input) * (1 + o.inputRangeRatio)).rounded(.up))
        let outLow = max(Int((Double(o.output) * (1 - o.outputRangeRatio)).rounded(.down)), 1)
        let outHigh = max(Int((Double(o.output) * (1 + o.outputRangeRatio)).rounded(.up)), 1)
        guard o.prefix + inLow >= 1 else {
            throw InputError(field: "requests.input", "the shortest input, prefix \(o.prefix) + floor(\(o.input) x (1 - \(fmt(o.inputRangeRatio)))), is 0 tokens; raise input or prefix, or lower rangeRatio")
        }
        guard o.prefix + inHigh <= maxTokens else {
            throw InputError(field: "requests.input", "the longest input, prefix \(o.prefix) + ceil(\(o.input) x (1 + \(fmt(o.inputRangeRatio)))) = \(o.prefix + inHigh) tokens, is over \(maxTokens)")
        }
        var rng = SeededGenerator(seed: o.seed)
        var clock = ArrivalClock(o.arrivals)
        return (0 ..< o.count).map { i in
            let t = clock.next(using: &rng)
            var r = ServingRequest(id: i, arrivalSeconds: t, inputTokens: o.prefix + Int.random(in: inLow ... inHigh, using: &rng),
                                   outputTokens: Int.random(in: outLow ... outHigh, using: &rng))
            if o.prefix > 0 {
                r.sharedPrefix = 0
                r.sharedPrefixTokens = o.prefix
            }
            return r
        }
    }

    /// vLLM's `SonnetDataset`: prompts of whole lines of Shakespeare's sonnets after a base prompt,
    /// the first lines the same in every request.
    public struct SonnetDatasetOptions: Sendable, Equatable {
        /// `DEFAULT_NUM_PROMPTS = 1000`, as for `RandomDatasetOptions.count`.
        public var count = 1000
        /// `DEFAULT_PREFIX_LEN = 200`, `DEFAULT_INPUT_LEN = 550`, `DEFAULT_OUTPUT_LEN = 150` (vLLM
        /// 0.10.2 wheel, vllm/benchmarks/datasets.py:1726-1728; the same in 0.25.0,
        /// vllm/benchmarks/datasets/datasets.py:3083-3085, the last release with the dataset).
        public var input = 550
        public var output = 150
        public var prefix = 200
        /// The base prompt "Pick as many lines as you can from these poem lines:\n" (0.10.2
        /// datasets.py:1761) by `TokenEstimate`: 11 words, one ":" and a line break, ceil(44/3) + 1
        /// + 1 = 17. vLLM counts it inside the model's chat template (`base_offset`, :1766); set
        /// `baseTokens` to add the template's tokens.
        public var baseTokens = 17
        /// The mean length of a line of vLLM's benchmarks/sonnet.txt (518 lines, the first 37
        /// sonnets) by `TokenEstimate`, each line with its line break: 6,913 tokens in all, 13.35 a
        /// line (from 9 to 19). vLLM measures it with the model's tokenizer (`avg_len`, :1757).
        public var lineTokens = 6913.0 / 518.0
        public var arrivals = Arrivals.allAtOnce
        public var seed: UInt64 = 1
        public init() {}
    }

    /// Requests as vLLM's `SonnetDataset.sample` makes them (0.10.2 wheel,
    /// vllm/benchmarks/datasets.py:1743-1797; 0.25.0, datasets/datasets.py:3100-3166):
    ///
    /// - `input` must exceed the base prompt (:1767);
    /// - the prompt holds round((input - base) / line) lines, at least 1 (0.25.0's `max(..., 1)`,
    ///   :3135; 0.10.2 :1773), of which the first max(round((prefix - base) / line), 0) (:1774) are the
    ///   file's first lines, the same in every request; the rest are drawn at random (:1780);
    /// - `round` is Python's, halves to even;
    /// - the output is `output` tokens (`expected_output_len=output_len`, :1793).
    ///
    /// Every line here counts `lineTokens`, so every prompt has the same length: base + round(lines x
    /// line), at most `input`, as vLLM keeps only prompts of at most `input_len` tokens (:1787)
    /// where real lines, of 9 to 19 estimated tokens, vary. The shared prefix (`sharedPrefix` 0) is
    /// the base prompt and the fixed lines, base + round(fixed lines x line), at most the input.
    /// The seed only draws the arrivals.
    public static func sonnetDataset(_ o: SonnetDatasetOptions) throws -> [ServingRequest] {
        guard o.input > o.baseTokens else {
            throw InputError(field: "requests.input", "must be more than the base prompt's \(o.baseTokens) tokens (baseTokens), as vLLM requires, got \(o.input)")
        }
        let lines = max(Int((Double(o.input - o.baseTokens) / o.lineTokens).rounded(.toNearestOrEven)), 1)
        let fixedLines = max(Int((Double(o.prefix - o.baseTokens) / o.lineTokens).rounded(.toNearestOrEven)), 0)
        guard fixedLines <= lines else {
            throw InputError(field: "requests.prefix", "takes \(fixedLines) lines, more than the \(lines) of a prompt of \(o.input) tokens; vLLM would keep no prompt")
        }
        let input = min(o.baseTokens + Int((Double(lines) * o.lineTokens).rounded()), o.input)
        let shared = min(o.baseTokens + Int((Double(fixedLines) * o.lineTokens).rounded()), input)
        var rng = SeededGenerator(seed: o.seed)
        let times = o.arrivals.times(o.count, using: &rng)
        return times.enumerated().map { i, t in
            var r = ServingRequest(id: i, arrivalSeconds: t, inputTokens: input, outputTokens: o.output)
            r.sharedPrefix = 0
            r.sharedPrefixTokens = shared
            return r
        }
    }

    /// `{"dataset": "random" | "sonnet", ...}` of a `requests` object.
    static func benchmarkDataset(_ r: JSONFields) throws -> [ServingRequest] {
        let name = try r.string("dataset")
        switch name {
        case "random":
            try r.rejectUnknown(allowed: ["dataset", "count", "input", "output", "rangeRatio", "prefix", "arrivals", "seed"])
            var o = RandomDatasetOptions()
            if let v = try r.optionalInt("count", in: 1...maxCount) { o.count = v }
            if let v = try r.optionalInt("input", in: 1...maxTokens) { o.input = v }
            if let v = try r.optionalInt("output", in: 1...maxTokens) { o.output = v }
            if let v = try r.optionalInt("prefix", in: 0...maxTokens) { o.prefix = v }
            if r.has("rangeRatio") {
                func ratio(_ f: JSONFields, _ key: String) throws -> Double {
                    let v = try f.double(key, in: 0...1)
                    guard v < 1 else { throw InputError(field: f.fieldPath(key), "must be at least 0 and below 1, got 1") }
                    return v
                }
                if let d = try r.raw("rangeRatio") as? [String: Any] {
                    let ro = JSONFields(d, path: r.fieldPath("rangeRatio"))
                    try ro.rejectUnknown(allowed: ["input", "output"])
                    o.inputRangeRatio = try ratio(ro, "input")
                    o.outputRangeRatio = try ratio(ro, "output")
                } else {
                    o.inputRangeRatio = try ratio(r, "rangeRatio")
                    o.outputRangeRatio = o.inputRangeRatio
                }
            }
            o.arrivals = try parseArrivals(r, defaultValue: .allAtOnce)
            o.seed = try parseSeed(r)
            return try randomDataset(o)
        case "sonnet":
            try r.rejectUnknown(allowed: ["dataset", "count", "input", "output", "prefix", "baseTokens", "lineTokens", "arrivals", "seed"])
            var o = SonnetDatasetOptions()
            if let v = try r.optionalInt("count", in: 1...maxCount) { o.count = v }
            if let v = try r.optionalInt("input", in: 1...maxTokens) { o.input = v }
            if let v = try r.optionalInt("output", in: 1...maxTokens) { o.output = v }
            if let v = try r.optionalInt("prefix", in: 0...maxTokens) { o.prefix = v }
            if let v = try r.optionalInt("baseTokens", in: 0...maxTokens) { o.baseTokens = v }
            if let v = try r.optionalDouble("lineTokens", in: 1...4096) { o.lineTokens = v }
            o.arrivals = try parseArrivals(r, defaultValue: .allAtOnce)
            o.seed = try parseSeed(r)
            return try sonnetDataset(o)
        default:
            throw InputError(field: r.fieldPath("dataset"), "must be \"random\" or \"sonnet\", got \"\(name)\"")
        }
    }
}
