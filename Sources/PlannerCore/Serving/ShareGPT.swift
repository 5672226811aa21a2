import Foundation

/// Token counts estimated from text, for files that carry text rather than token counts.
///
/// The estimate counts the pieces a byte-level BPE tokenizer's pre-tokenizer splits text into
/// (GPT-2's pattern, openai/gpt-2 src/encoder.py, keeps runs of letters and runs of other symbols
/// apart) and scales the words to subword tokens by OpenAI's rule of thumb "1 token ~= 3/4 words,
/// 100 tokens ~= 75 words" (help.openai.com, "What are tokens and how to count them?", article
/// 4936856):
///
///     tokens = ceil(4 x words / 3) + punctuation runs + line breaks
///
/// - a **word** is a maximal run of letters, digits and combining marks; an apostrophe between two
///   letters stays inside the word ("don't" is one word);
/// - each character of the Han, Hiragana, Katakana and Hangul Syllables blocks is a word by itself
///   (these scripts are not written with a space between words, and OpenAI's article notes that
///   other languages than English take more tokens per character);
/// - a **punctuation run** is a maximal run of other visible characters ("," or "```" or "%"),
///   counted one token, as the BPE vocabularies hold the common ones whole;
/// - a **line break** is a run of white space holding a line feed or carriage return, one token
///   (the GPT-2 pattern keeps such runs as their own piece); other spaces are free.
///
/// So "Hello, world!" is ceil(8/3) + 2 = 5 tokens, and "You miss 100% of the shots you don't take"
/// (9 words, one "%") is 12 + 1 = 13, where OpenAI's article counts 11: prose comes out somewhat
/// high, text dense in symbols (code) nearer the mark than a words-only rule.
public enum TokenEstimate {
    public static func tokens(in text: String) -> Int {
        let s = Array(text.unicodeScalars)
        var words = 0, marks = 0, breaks = 0
        var previous: Kind?
        var spaceHasBreak = false
        for i in s.indices {
            let k = kind(s[i], before: i > 0 ? s[i - 1] : nil, after: i + 1 < s.count ? s[i + 1] : nil)
            if previous == .space, k != .space, spaceHasBreak { breaks += 1 }
            switch k {
            case .space:
                if previous != .space { spaceHasBreak = false }
                if s[i] == "\n" || s[i] == "\r" { spaceHasBreak = true }
            case .word: if previous != .word { words += 1 }
            case .ideograph: words += 1
            case .mark: if previous != .mark { marks += 1 }
            }
            previous = k
        }
        if previous == .space, spaceHasBreak { breaks += 1 }
        return (4 * words + 2) / 3 + marks + breaks
    }

    enum Kind { case space, word, ideograph, mark }

    static func isLetter(_ u: Unicode.Scalar) -> Bool {
        switch u.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    static func kind(_ u: Unicode.Scalar, before: Unicode.Scalar?, after: Unicode.Scalar?) -> Kind {
        if u.properties.isWhitespace { return .space }
        // Han: CJK Unified Ideographs, Extension A, Compatibility Ideographs, and the Supplementary
        // and Tertiary Ideographic Planes (2 and 3); Hiragana; Katakana; Hangul Syllables (the
        // Unicode Character Database's Blocks.txt).
        switch u.value {
        case 0x4E00 ... 0x9FFF, 0x3400 ... 0x4DBF, 0xF900 ... 0xFAFF, 0x20000 ... 0x3FFFF,
             0x3040 ... 0x309F, 0x30A0 ... 0x30FF, 0xAC00 ... 0xD7AF:
            return .ideograph
        default: break
        }
        switch u.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter,
             .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .letterNumber, .otherNumber:
            return .word
        default: break
        }
        // The ASCII apostrophe and U+2019 (right single quotation mark, the typographic apostrophe).
        if u == "'" || u == "\u{2019}", let b = before, let a = after, isLetter(b), isLetter(a) { return .word }
        return .mark
    }
}

extension RequestSource {
    /// How a ShareGPT file becomes requests.
    public struct ShareGPTOptions: Sendable, Equatable {
        public enum Turns: String, Sendable { case all, first }
        public enum ThinkTime: Sendable, Equatable {
            case fixed(seconds: Double)
            /// Drawn for every later turn from an exponential distribution of this mean.
            case exponential(meanSeconds: Double)
        }
        /// vLLM's benchmark length filter, `is_valid_sequence` (vLLM 0.10.2 wheel,
        /// vllm/benchmarks/datasets.py:264-289; 0.34.0, vllm/benchmarks/datasets/datasets.py:340-365),
        /// which `ShareGPTDataset.sample` applies to every prompt it reads (0.10.2 datasets.py:991;
        /// 0.34.0 datasets.py:1386): a turn is skipped when its prompt or its reply is shorter than
        /// `min_len` = 4, its prompt longer than `max_prompt_len` = 1024, or prompt and reply together
        /// longer than `max_total_len` = 2048 (the defaults of those lines). `maxOutputTokens` is
        /// not vLLM's: an optional cap on the reply alone.
        public struct LengthFilter: Sendable, Equatable {
            public var minTokens = 4
            public var maxInputTokens = 1024
            public var maxTotalTokens = 2048
            public var maxOutputTokens: Int?
            public init() {}

            func passes(input: Int, output: Int) -> Bool {
                input >= minTokens && output >= minTokens && input <= maxInputTokens && input + output <= maxTotalTokens
                    && output <= (maxOutputTokens ?? Int.max)
            }
        }

        public var turns = Turns.all
        public var think = ThinkTime.fixed(seconds: 0)
        /// At most this many conversations (those that give at least one request), in file order.
        public var count: Int?
        /// nil: no filter (every turn of at least one input and one output token is kept).
        public var filter: LengthFilter? = LengthFilter()
        public var arrivals = Arrivals.allAtOnce
        public var seed: UInt64 = 1
        public init() {}
    }

    /// Requests from a ShareGPT file: a JSON array of records, each with `conversations`, an array
    /// of messages `{"from": "human" | "gpt" | "system", "value": text}` ("user" and "assistant"
    /// are read as "human" and "gpt"). A message may give its length as `"tokens": N` (an integer,
    /// 0 to 2^24), which is used instead of estimating it from `value` (`TokenEstimate`), and may
    /// then leave `value` out. Other keys of a record (`id`, ...) and of a message are ignored.
    ///
    /// Every human message answered by the next message, a gpt one, is one request: its input is
    /// the whole conversation so far (system text, earlier messages and replies) and this human
    /// message; its output is the reply. Other messages (system text, a human message answered by
    /// another human message, a reply with no question) are context for the next request. The
    /// first request of a conversation arrives by `options.arrivals` (the conversations in file
    /// order); each later one is `previousTurn` of the one before, arriving its think time after it
    /// ends, with `historyTokens` the previous request's input and output (what it left in the
    /// cache), and carries the conversation's first arrival as its `arrivalSeconds`.
    /// `conversation` is the record's index in the file, counted from 0.
    ///
    /// `turns: .first` keeps only the first request of each conversation: what vLLM's
    /// `ShareGPTDataset` sends, the first message as the prompt and the second's length as the
    /// output (`entry["conversations"][0]["value"]` and `[1]`, vLLM 0.10.2 wheel,
    /// vllm/benchmarks/datasets.py:980-981; 0.34.0, datasets/datasets.py:1372), on files whose
    /// conversations open with a human message answered by gpt. vLLM also drops records of fewer
    /// than two messages (0.10.2 datasets.py:957) and shuffles the rest by its seed (:960); here the
    /// records are read in file order.
    ///
    /// A conversation ends before its first request that fails the length filter (its later turns
    /// would send that one again). A malformed record is refused naming the file, the record's
    /// index and the field; so are an empty file and one with no usable request.
    public static func shareGPT(_ data: Data, source: String, options: ShareGPTOptions) throws -> [ServingRequest] {
        let records = try shareGPTRecords(data, source: source)
        struct Turn { var input, output, history: Int }
        var conversations: [(record: Int, turns: [Turn])] = []
        for (index, messages) in records.enumerated() {
            if let count = options.count, conversations.count >= count { break }
            var turns: [Turn] = []
            var context = 0
            var previous: Turn?
            var j = 0
            while j < messages.count {
                guard messages[j].role == .human, j + 1 < messages.count, messages[j + 1].role == .gpt else {
                    context += messages[j].tokens
                    j += 1
                    continue
                }
                let t = Turn(input: context + messages[j].tokens, output: messages[j + 1].tokens,
                             history: previous.map { $0.input + $0.output } ?? 0)
                guard t.input >= 1, t.output >= 1, t.input <= maxTokens, t.output <= maxTokens,
                      options.filter?.passes(input: t.input, output: t.output) ?? true else { break }
                turns.append(t)
                if options.turns == .first { break }
                previous = t
                context = t.input + t.output
                j += 2
            }
            if !turns.isEmpty { conversations.append((index, turns)) }
        }
        guard !conversations.isEmpty else {
            let f = options.filter.map { " passing the length filter (prompt and reply of at least \($0.minTokens) tokens, prompt at most \($0.maxInputTokens), both at most \($0.maxTotalTokens)\($0.maxOutputTokens.map { ", reply at most \($0)" } ?? ""))" } ?? ""
            throw InputError(field: source, "holds no usable turn: a human message answered by a gpt message\(f)")
        }
        var rng = SeededGenerator(seed: options.seed)
        let starts = options.arrivals.times(conversations.count, using: &rng)
        var out: [ServingRequest] = []
        for (c, conversation) in conversations.enumerated() {
            for (k, t) in conversation.turns.enumerated() {
                var r = ServingRequest(id: out.count, arrivalSeconds: starts[c], inputTokens: t.input, outputTokens: t.output)
                r.conversation = conversation.record
                r.historyTokens = t.history
                if k > 0 {
                    r.previousTurn = out.count - 1
                    switch options.think {
                    case .fixed(let s): r.thinkSeconds = s
                    case .exponential(let mean): r.thinkSeconds = RandomDraw.exponential(mean: mean, using: &rng)
                    }
                }
                out.append(r)
            }
        }
        return out
    }

    enum ShareGPTRole { case human, gpt, system }

    /// The records' messages, each with its role and token count; refuses a malformed file.
    static func shareGPTRecords(_ data: Data, source: String) throws -> [[(role: ShareGPTRole, tokens: Int)]] {
        guard data.contains(where: { !($0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D) }) else {
            throw InputError(field: source, "is empty; a ShareGPT file is a JSON array of records with \"conversations\"")
        }
        let value: Any
        do {
            value = try JSONSerialization.jsonObject(with: data, options: [])
        } catch {
            let ns = error as NSError
            let detail = (ns.userInfo[NSDebugDescriptionErrorKey] as? String) ?? ns.localizedDescription
            throw InputError(field: source, "is not valid JSON: \(JSONFields.withLineAndColumn(detail, in: data))")
        }
        guard let records = value as? [Any] else {
            throw InputError(field: source, "must hold a JSON array of records with \"conversations\", got \(describe(value))")
        }
        guard !records.isEmpty else { throw InputError(field: source, "holds no records") }
        return try records.enumerated().map { i, record in
            let here = "\(source): record \(i)"
            guard let o = record as? [String: Any] else {
                throw InputError(field: here, "must be an object with \"conversations\", got \(describe(record))")
            }
            guard let c = o["conversations"], !(c is NSNull) else {
                throw InputError(field: "\(here): conversations", "missing (an array of {\"from\", \"value\"} messages)")
            }
            guard let messages = c as? [Any] else {
                throw InputError(field: "\(here): conversations", "must be an array of {\"from\", \"value\"} messages, got \(describe(c))")
            }
            return try messages.enumerated().map { j, message in
                let field = "conversations[\(j)]"
                guard let m = message as? [String: Any] else {
                    throw InputError(field: "\(here): \(field)", "must be an object with \"from\" and \"value\", got \(describe(message))")
                }
                let f = JSONFields(m, path: field)
                do {
                    let from = try f.string("from")
                    let role: ShareGPTRole
                    switch from {
                    case "human", "user": role = .human
                    case "gpt", "assistant": role = .gpt
                    case "system": role = .system
                    default:
                        throw InputError(field: f.fieldPath("from"), "must be \"human\", \"gpt\" or \"system\" (\"user\" and \"assistant\" are read as \"human\" and \"gpt\"), got \"\(from)\"")
                    }
                    let text = try f.optionalString("value")
                    if let n = try f.optionalInt("tokens", in: 0...maxTokens) { return (role, n) }
                    guard let text else {
                        throw InputError(field: f.fieldPath("value"), "missing: a message needs its text, or its length in \"tokens\"")
                    }
                    return (role, TokenEstimate.tokens(in: text))
                } catch let e as InputError {
                    throw InputError(field: "\(here): \(e.field)", e.message)
                }
            }
        }
    }
}
