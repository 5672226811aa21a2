import Foundation
import Testing
@testable import PlannerCore

/// The request workloads of `planner serve`: ShareGPT files, vLLM's random and sonnet datasets,
/// the arrival processes and the trace reader. Every expected number is worked out in the comments.
@Suite struct WorkloadTests {
    // MARK: - Helpers

    /// A fresh folder holding `files` (name and text), removed by the caller.
    static func folder(_ files: [String: String]) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("planner-workloads-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for (name, text) in files { try text.write(to: dir.appendingPathComponent(name), atomically: true, encoding: .utf8) }
        return dir
    }

    /// The requests of a serving file's `requests` object given as JSON text.
    static func requests(_ json: String, in dir: URL? = nil) throws -> [ServingRequest] {
        let o = try JSONFields.parse(Data(json.utf8), source: "test")
        return try RequestSource.parse(JSONFields(o.object, path: "requests"), baseDirectory: dir)
    }

    static func shareGPT(_ text: String, _ options: RequestSource.ShareGPTOptions = .init()) throws -> [ServingRequest] {
        try RequestSource.shareGPT(Data(text.utf8), source: "sample.json", options: options)
    }

    static func mean(_ xs: [Double]) -> Double { xs.reduce(0, +) / Double(xs.count) }
    static func variance(_ xs: [Double]) -> Double {
        let m = mean(xs)
        return xs.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(xs.count - 1)
    }

    // MARK: - Token estimate

    /// tokens = ceil(4 words / 3) + punctuation runs + line breaks.
    @Test func tokenEstimateCountsWordsPunctuationAndLineBreaks() {
        // 2 words, "," and "!": ceil(8/3) = 3, + 2 = 5.
        #expect(TokenEstimate.tokens(in: "Hello, world!") == 5)
        // The apostrophe between letters stays in the word: 2 words, ceil(8/3) = 3.
        #expect(TokenEstimate.tokens(in: "don't stop") == 3)
        // A leading apostrophe is punctuation: 1 word (2) and one mark = 3.
        #expect(TokenEstimate.tokens(in: "'tis") == 3)
        // 2 words (3) and one run of white space holding line breaks (1) = 4; plain spaces are free.
        #expect(TokenEstimate.tokens(in: "a\n\n  b") == 4)
        #expect(TokenEstimate.tokens(in: "a     b") == 3)
        // Code: words x, f, y (ceil(12/3) = 4) and the runs "=", "(", ");" (3) = 7.
        #expect(TokenEstimate.tokens(in: "x = f(y);") == 7)
        // A CRLF is one line break: 2 words (3) + 1 = 4.
        #expect(TokenEstimate.tokens(in: "one\r\ntwo") == 4)
        // Each Han character is a word: 2 words, ceil(8/3) = 3; with "。" a mark, 4.
        #expect(TokenEstimate.tokens(in: "你好") == 3)
        #expect(TokenEstimate.tokens(in: "你好。") == 4)
        #expect(TokenEstimate.tokens(in: "") == 0)
        // The sonnet dataset's base prompt: 11 words (ceil(44/3) = 15), ":" and the line break = 17,
        // the documented default of baseTokens.
        #expect(TokenEstimate.tokens(in: "Pick as many lines as you can from these poem lines:\n") == 17)
        #expect(RequestSource.SonnetDatasetOptions().baseTokens == 17)
    }

    // MARK: - ShareGPT

    /// Token counts by the estimate:
    ///
    /// record 0: system "Be brief." 2 words + "." = 3 + 1 = 4; "What is two plus two?" 5 words + "?" =
    /// 7 + 1 = 8; "Two plus two is four." 8; "And three plus three?" 4 words + "?" = 6 + 1 = 7;
    /// "Three plus three is six." 8; "Thanks!" 1 word + "!" = 2 + 1 = 3; "You are welcome." 4 + 1 = 5.
    ///   turn 1: input 4 + 8 = 12, output 8, history 0
    ///   turn 2: input 12 + 8 + 7 = 27, output 8, history 12 + 8 = 20, after turn 1
    ///   turn 3: input 27 + 8 + 3 = 38, output 5, history 27 + 8 = 35, after turn 2
    /// record 1 ("user"/"assistant", lengths given as tokens, extra keys): input 10, output 6.
    /// record 2: a question never answered: no request.
    /// record 3: "Hi." (2 + 1 = 3) then "Tell me a joke please." (5 words, 7 + 1 = 8), unanswered
    ///   and answered, then a reply of 20 tokens: input 3 + 8 = 11, output 20, history 0.
    static let sample = """
    [{"id": "a", "conversations": [
       {"from": "system", "value": "Be brief."},
       {"from": "human", "value": "What is two plus two?"}, {"from": "gpt", "value": "Two plus two is four."},
       {"from": "human", "value": "And three plus three?"}, {"from": "gpt", "value": "Three plus three is six."},
       {"from": "human", "value": "Thanks!"}, {"from": "gpt", "value": "You are welcome."}]},
     {"id": 17, "source": "forum", "conversations": [
       {"from": "user", "value": "text that is not counted", "tokens": 10}, {"from": "assistant", "tokens": 6}]},
     {"conversations": [{"from": "human", "value": "Is anyone there?"}]},
     {"conversations": [{"from": "human", "value": "Hi."}, {"from": "human", "value": "Tell me a joke please."},
       {"from": "gpt", "value": "", "tokens": 20}]}]
    """

    @Test func shareGPTTurnsResendTheirHistory() throws {
        var o = RequestSource.ShareGPTOptions()
        o.think = .fixed(seconds: 2.5)
        o.arrivals = .interval(seconds: 10)
        let rs = try Self.shareGPT(Self.sample, o)
        #expect(rs.map(\.id) == [0, 1, 2, 3, 4])
        #expect(rs.map(\.inputTokens) == [12, 27, 38, 10, 11])
        #expect(rs.map(\.outputTokens) == [8, 8, 5, 6, 20])
        #expect(rs.map(\.historyTokens) == [0, 20, 35, 0, 0])
        #expect(rs.map(\.previousTurn) == [nil, 0, 1, nil, nil])
        #expect(rs.map(\.conversation) == [0, 0, 0, 1, 3])
        #expect(rs.map(\.thinkSeconds) == [0, 2.5, 2.5, 0, 0])
        // The kept conversations 0, 1 and 3 start 10 s apart; later turns carry their first arrival.
        #expect(rs.map(\.arrivalSeconds) == [0, 0, 0, 10, 20])
        #expect(rs.allSatisfy { $0.sharedPrefix == nil })
    }

    @Test func shareGPTFirstTurnsAndCount() throws {
        var o = RequestSource.ShareGPTOptions()
        o.turns = .first
        let first = try Self.shareGPT(Self.sample, o)
        #expect(first.map(\.inputTokens) == [12, 10, 11] && first.map(\.outputTokens) == [8, 6, 20])
        #expect(first.map(\.id) == [0, 1, 2] && first.allSatisfy { $0.previousTurn == nil && $0.historyTokens == 0 })
        // count 2: conversations 0 and 1 (record 2 gives none, so it does not count).
        var two = RequestSource.ShareGPTOptions()
        two.count = 2
        #expect(try Self.shareGPT(Self.sample, two).map(\.conversation) == [0, 0, 0, 1])
    }

    /// The length filter ends a conversation before its first turn that fails.
    @Test func shareGPTLengthFilterCutsConversations() throws {
        // maxInputTokens 30: turn 3 of record 0 (input 38) and what follows are dropped.
        var o = RequestSource.ShareGPTOptions()
        o.filter?.maxInputTokens = 30
        #expect(try Self.shareGPT(Self.sample, o).map(\.inputTokens) == [12, 27, 10, 11])
        // minTokens 7: record 0's third reply (5) and record 1's reply (6) are too short.
        var m = RequestSource.ShareGPTOptions()
        m.filter?.minTokens = 7
        #expect(try Self.shareGPT(Self.sample, m).map(\.inputTokens) == [12, 27, 11])
        // maxTotalTokens 40: turn 2 (27 + 8 = 35) fits, turn 3 (38 + 5 = 43) does not.
        var t = RequestSource.ShareGPTOptions()
        t.filter?.maxTotalTokens = 40
        #expect(try Self.shareGPT(Self.sample, t).map(\.inputTokens) == [12, 27, 10, 11])
        // maxOutputTokens 10: record 3's reply of 20 goes.
        var out = RequestSource.ShareGPTOptions()
        out.filter?.maxOutputTokens = 10
        #expect(try Self.shareGPT(Self.sample, out).map(\.conversation) == [0, 0, 0, 1])
        // vLLM's default minimum of 4 drops the reply "Yes." (1 word + "." = 2 + 1 = 3 tokens), the
        // file's only turn, so nothing is usable; with no filter it stays.
        let short = #"[{"conversations": [{"from": "human", "value": "Can you help me?"}, {"from": "gpt", "value": "Yes."}]}]"#
        #expect(throws: InputError.self) { try Self.shareGPT(short) }
        var none = RequestSource.ShareGPTOptions()
        none.filter = nil
        #expect(try Self.shareGPT(short, none).map(\.outputTokens) == [3])
    }

    /// Think times drawn from an exponential distribution of mean 5 s over 999 later turns: the
    /// sample mean's standard error is 5 / sqrt(999) = 0.158 s, so it lies within 0.8 s (5 standard
    /// errors) of 5. The same seed gives the same draws, another seed others.
    @Test func shareGPTExponentialThinkTimes() throws {
        let pair = #"{"from": "human", "tokens": 5}, {"from": "gpt", "tokens": 5}"#
        let text = #"[{"conversations": ["# + Array(repeating: pair, count: 1000).joined(separator: ", ") + "]}]"
        var o = RequestSource.ShareGPTOptions()
        o.filter = nil
        o.think = .exponential(meanSeconds: 5)
        let a = try Self.shareGPT(text, o), b = try Self.shareGPT(text, o)
        #expect(a.count == 1000 && a == b)
        let think = a.dropFirst().map(\.thinkSeconds)
        #expect(abs(Self.mean(Array(think)) - 5) < 0.8, "\(Self.mean(Array(think)))")
        // Turn k resends the k - 1 turns before it: history 10 (k - 1), input 10 (k - 1) + 5.
        #expect(a[999].historyTokens == 9990 && a[999].inputTokens == 9995 && a[999].previousTurn == 998)
        o.seed = 2
        #expect(try Self.shareGPT(text, o) != a)
    }

    @Test func shareGPTRefusesMalformedFiles() throws {
        func refusal(_ text: String) throws -> InputError { try Fixtures.inputError { _ = try Self.shareGPT(text) } }
        let m = #"{"from": "human", "value": "Hello there friend"}, {"from": "gpt", "value": "Hello to you too"}"#
        let bot = try refusal("[{\"conversations\": [\(m)]}, {\"conversations\": [\(m)]}, {\"conversations\": [\(m)]}, "
                              + #"{"conversations": [{"from": "human", "value": "hi"}, {"from": "bot", "value": "hello"}]}]"#)
        #expect(bot.field == "sample.json: record 3: conversations[1].from")
        #expect(bot.message.contains("\"human\", \"gpt\" or \"system\"") && bot.message.contains("got \"bot\""))
        #expect(bot.description.hasPrefix("sample.json: record 3: conversations[1].from: must be"))
        let notArray = try refusal(#"[{"conversations": "hello"}]"#)
        #expect(notArray.field == "sample.json: record 0: conversations" && notArray.message.contains("array"))
        #expect(try refusal(#"[{"conversations": [\#(m)]}, {"id": 3}]"#).field == "sample.json: record 1: conversations")
        #expect(try refusal(#"[{"conversations": ["hello"]}]"#).field == "sample.json: record 0: conversations[0]")
        #expect(try refusal(#"[{"conversations": [{"from": "human"}]}]"#).field == "sample.json: record 0: conversations[0].value")
        #expect(try refusal(#"[{"conversations": [{"from": "human", "value": 5}]}]"#).field == "sample.json: record 0: conversations[0].value")
        #expect(try refusal(#"[{"conversations": [{"from": "human", "value": "x", "tokens": -1}]}]"#).field
            == "sample.json: record 0: conversations[0].tokens")
        #expect(try refusal(#"[{"conversations": [{"value": "x"}]}]"#).field == "sample.json: record 0: conversations[0].from")
        #expect(try refusal(#"[3]"#).field == "sample.json: record 0")
        #expect(try refusal(#"{"conversations": []}"#).field == "sample.json")
        let empty = try refusal("  \n")
        #expect(empty.field == "sample.json" && empty.message.contains("empty"))
        #expect(try refusal("[]").message == "holds no records")
        #expect(try refusal("[{\"conversations\": [\(m)]").message.contains("not valid JSON"))
        let unusable = try refusal(#"[{"conversations": [{"from": "gpt", "value": "Hello, how can I help?"}]}, {"conversations": []}]"#)
        #expect(unusable.field == "sample.json" && unusable.message.contains("no usable turn"))
    }

    /// The `requests` keys of a ShareGPT file, read through the serving file's parser.
    @Test func shareGPTRequestsKeys() throws {
        let dir = try Self.folder(["s.json": Self.sample])
        defer { try? FileManager.default.removeItem(at: dir) }
        let rs = try Self.requests(#"{"sharegpt": "s.json", "thinkSeconds": 1.5, "arrivals": {"interval": 4}}"#, in: dir)
        #expect(rs.map(\.inputTokens) == [12, 27, 38, 10, 11] && rs.map(\.arrivalSeconds) == [0, 0, 0, 4, 8])
        #expect(rs.map(\.thinkSeconds) == [0, 1.5, 1.5, 0, 0])
        // No arrivals: all at once, as vLLM's default request rate (inf).
        #expect(try Self.requests(#"{"sharegpt": "s.json", "turns": "first"}"#, in: dir).map(\.arrivalSeconds) == [0, 0, 0])
        #expect(try Self.requests(#"{"sharegpt": "s.json", "maxInputTokens": 30, "minTokens": 7}"#, in: dir).map(\.inputTokens) == [12, 27, 11])
        // The default seed is 1.
        let exp = #"{"sharegpt": "s.json", "thinkSeconds": {"exponential": 3}, "arrivals": {"poisson": 2}"#
        #expect(try Self.requests(exp + "}", in: dir) == Self.requests(exp + #", "seed": 1}"#, in: dir))
        func refusal(_ json: String) throws -> InputError { try Fixtures.inputError { _ = try Self.requests(json, in: dir) } }
        let negative = try refusal(#"{"sharegpt": "s.json", "thinkSeconds": -1}"#)
        #expect(negative.field == "requests.thinkSeconds" && negative.message.contains("from 0 to 1000000, got -1"))
        #expect(try refusal(#"{"sharegpt": "s.json", "thinkSeconds": {"exponential": 0}}"#).field == "requests.thinkSeconds.exponential")
        #expect(try refusal(#"{"sharegpt": "s.json", "turns": "first", "thinkSeconds": 2}"#).field == "requests.thinkSeconds")
        #expect(try refusal(#"{"sharegpt": "s.json", "turns": "some"}"#).field == "requests.turns")
        #expect(try refusal(#"{"sharegpt": "s.json", "filter": false, "maxInputTokens": 10}"#).field == "requests.maxInputTokens")
        #expect(try refusal(#"{"sharegpt": "s.json", "count": 0}"#).field == "requests.count")
        #expect(try refusal(#"{"sharegpt": "s.json", "input": 10}"#).field == "requests.input")
        #expect(try refusal(#"{"sharegpt": "missing.json"}"#).field == "requests.sharegpt")
    }

    /// examples/serving/multi-turn.json reads examples/serving/data/sharegpt-sample.json. Its
    /// record 3 gives token counts: 300 and 120, then 12 and 80, so turn 2 sends 300 + 120 + 12 =
    /// 432 tokens of which 420 are history. Record 4: "Translate 'good morning' into French, German
    /// and Spanish." is 8 words (ceil(32/3) = 11) and the marks "'", "'", ",", "." = 15; the reply
    /// "French: bonjour. German: guten Morgen. Spanish: buenos días." 8 words (11) and six marks
    /// = 17; "And into Italian?" 3 words (4) + 1 = 5; "Italian: buongiorno." 2 words (3) + 2 = 5.
    /// Its turn 2 sends 15 + 17 + 5 = 37 tokens, 32 of them history.
    @Test func multiTurnExampleReadsItsShareGPTFile() throws {
        let (_, rs) = try ServingScenario.load(URL(fileURLWithPath: "examples/serving/multi-turn.json"))
        #expect(rs.map(\.conversation) == [0, 0, 0, 1, 1, 2, 3, 3, 4, 4])
        #expect(rs.map(\.previousTurn) == [nil, 0, 1, nil, 3, nil, nil, 6, nil, 8])
        #expect(rs[6].inputTokens == 300 && rs[6].outputTokens == 120)
        #expect(rs[7].inputTokens == 432 && rs[7].outputTokens == 80 && rs[7].historyTokens == 420)
        #expect(rs[8].inputTokens == 15 && rs[8].outputTokens == 17)
        #expect(rs[9].inputTokens == 37 && rs[9].outputTokens == 5 && rs[9].historyTokens == 32)
        #expect(rs.filter { $0.previousTurn != nil }.allSatisfy { $0.thinkSeconds > 0 })
    }

    // MARK: - vLLM's benchmark datasets

    /// input 100, rangeRatio 0.25, prefix 50: 50 + [floor(75), ceil(125)] = [125, 175]; output 20:
    /// [floor(15), ceil(25)] = [15, 25]. 2,000 draws over 51 input values miss an end with
    /// probability 2 (50/51)^2000 < 1e-16, so both ends occur; the mean input is 150 with a
    /// standard error of sqrt((51^2 - 1) / 12) / sqrt(2000) = 0.33, so within 2 (6 errors).
    @Test func randomDatasetDrawsAroundTheMeans() throws {
        let rs = try Self.requests(#"{"dataset": "random", "count": 2000, "input": 100, "output": 20, "rangeRatio": 0.25, "prefix": 50, "seed": 3}"#)
        #expect(rs.count == 2000 && rs.map(\.id) == Array(0 ..< 2000))
        #expect(rs.map(\.inputTokens).min() == 125 && rs.map(\.inputTokens).max() == 175)
        #expect(rs.map(\.outputTokens).min() == 15 && rs.map(\.outputTokens).max() == 25)
        #expect(abs(Self.mean(rs.map { Double($0.inputTokens) }) - 150) < 2)
        #expect(rs.allSatisfy { $0.sharedPrefix == 0 && $0.sharedPrefixTokens == 50 && $0.arrivalSeconds == 0 })
        #expect(try Self.requests(#"{"dataset": "random", "count": 2000, "input": 100, "output": 20, "rangeRatio": 0.25, "prefix": 50, "seed": 3}"#) == rs)
        // vLLM's defaults: 1000 requests of 1024 and 128 tokens, no prefix, ratio 0.
        let d = try Self.requests(#"{"dataset": "random"}"#)
        #expect(d.count == 1000 && d.allSatisfy { $0.inputTokens == 1024 && $0.outputTokens == 128 && $0.sharedPrefix == nil })
        // Output 1 with ratio 0.5: [max(floor(0.5), 1), ceil(1.5)] = [1, 2]. Input 10 with 0.5: [5, 15].
        let low = try Self.requests(#"{"dataset": "random", "count": 500, "input": 10, "output": 1, "rangeRatio": 0.5}"#)
        #expect(Set(low.map(\.outputTokens)) == [1, 2] && low.map(\.inputTokens).min() == 5 && low.map(\.inputTokens).max() == 15)
        // Separate ratios: input 10 with 0.5, output 8 with 0: outputs are all 8.
        let split = try Self.requests(#"{"dataset": "random", "count": 200, "input": 10, "output": 8, "rangeRatio": {"input": 0.5, "output": 0}}"#)
        #expect(split.allSatisfy { $0.outputTokens == 8 } && split.map(\.inputTokens).min() == 5)
    }

    @Test func randomDatasetRefusals() throws {
        func refusal(_ json: String) throws -> InputError { try Fixtures.inputError { _ = try Self.requests(json) } }
        let one = try refusal(#"{"dataset": "random", "rangeRatio": 1}"#)
        #expect(one.field == "requests.rangeRatio" && one.message.contains("below 1"))
        #expect(try refusal(#"{"dataset": "random", "rangeRatio": -0.1}"#).field == "requests.rangeRatio")
        #expect(try refusal(#"{"dataset": "random", "rangeRatio": {"input": 0.5, "output": 1.5}}"#).field == "requests.rangeRatio.output")
        // input 1 with ratio 0.5 and no prefix: the shortest input is floor(0.5) = 0 tokens.
        #expect(try refusal(#"{"dataset": "random", "input": 1, "rangeRatio": 0.5}"#).field == "requests.input")
        #expect(try refusal(#"{"dataset": "random", "prefix": -1}"#).field == "requests.prefix")
        #expect(try refusal(#"{"dataset": "random", "lineTokens": 3}"#).field == "requests.lineTokens")
        #expect(try refusal(#"{"dataset": "sharegpt"}"#).field == "requests.dataset")
    }

    /// vLLM's sonnet defaults (input 550, prefix 200, output 150) with the base prompt of 17
    /// tokens and lines of 6913 / 518 = 13.3456 tokens: (550 - 17) / 13.3456 = 39.94, so 40 lines,
    /// 17 + round(533.82) = 551 tokens, capped at 550; (200 - 17) / 13.3456 = 13.71, so 14 fixed
    /// lines, 17 + round(186.84) = 204 shared tokens.
    @Test func sonnetDatasetTokenArithmetic() throws {
        let d = try Self.requests(#"{"dataset": "sonnet"}"#)
        #expect(d.count == 1000)
        #expect(d.allSatisfy { $0.inputTokens == 550 && $0.outputTokens == 150 && $0.sharedPrefix == 0 && $0.sharedPrefixTokens == 204 })
        // Python's round halves to even: base 10, lines of 10, input 95: 8.5 -> 8 lines, 90 tokens;
        // prefix 35: 2.5 -> 2 lines, 30 shared tokens.
        let h = try Self.requests(#"{"dataset": "sonnet", "count": 3, "input": 95, "prefix": 35, "output": 7, "baseTokens": 10, "lineTokens": 10, "arrivals": {"interval": 2}}"#)
        #expect(h.map(\.inputTokens) == [90, 90, 90] && h.map(\.sharedPrefixTokens) == [30, 30, 30] && h.map(\.outputTokens) == [7, 7, 7])
        #expect(h.map(\.arrivalSeconds) == [0, 2, 4])
        // 10.5 -> 10 lines (even), 9.5 -> 10 lines (even): input 115 and 105 both give 110, capped at 105.
        #expect(try Self.requests(#"{"dataset": "sonnet", "count": 1, "input": 115, "prefix": 10, "baseTokens": 10, "lineTokens": 10}"#)[0].inputTokens == 110)
        #expect(try Self.requests(#"{"dataset": "sonnet", "count": 1, "input": 105, "prefix": 10, "baseTokens": 10, "lineTokens": 10}"#)[0].inputTokens == 105)
        func refusal(_ json: String) throws -> InputError { try Fixtures.inputError { _ = try Self.requests(json) } }
        #expect(try refusal(#"{"dataset": "sonnet", "input": 17}"#).field == "requests.input")
        // input 50: 4 lines; prefix 200: 19 lines, more than the prompt holds.
        #expect(try refusal(#"{"dataset": "sonnet", "input": 50, "prefix": 200, "baseTokens": 10, "lineTokens": 10}"#).field == "requests.prefix")
        #expect(try refusal(#"{"dataset": "sonnet", "lineTokens": 0.5}"#).field == "requests.lineTokens")
        #expect(try refusal(#"{"dataset": "sonnet", "rangeRatio": 0.5}"#).field == "requests.rangeRatio")
    }

    // MARK: - Arrivals

    /// Gamma draws against the closed forms, mean k theta and variance k theta^2, over n = 200,000
    /// draws. The sample mean's standard error is sqrt(k theta^2 / n); the sample variance's is
    /// about sigma^2 sqrt((2 + 6 / k) / n) (a gamma's excess kurtosis is 6 / k). Each is checked
    /// to 5 standard errors:
    ///   k 2.5, theta 0.4: mean 1 +- 0.0071, variance 0.4 +- 0.0094;
    ///   k 0.5, theta 2 (the k < 1 boost): mean 1 +- 0.016, variance 2 +- 0.084;
    ///   k 1, theta 0.25 (exponential): mean 0.25 +- 0.0028, variance 0.0625 +- 0.0020.
    @Test func gammaSamplerMoments() {
        var rng = SeededGenerator(seed: 11)
        let n = 200_000
        for (k, theta) in [(2.5, 0.4), (0.5, 2.0), (1.0, 0.25)] {
            let xs = (0 ..< n).map { _ in RandomDraw.gamma(shape: k, scale: theta, using: &rng) }
            let mean = k * theta, variance = k * theta * theta
            let meanTolerance = 5 * (variance / Double(n)).squareRoot()
            let varianceTolerance = 5 * variance * ((2 + 6 / k) / Double(n)).squareRoot()
            #expect(abs(Self.mean(xs) - mean) < meanTolerance, "k \(k): mean \(Self.mean(xs))")
            #expect(abs(Self.variance(xs) - variance) < varianceTolerance, "k \(k): variance \(Self.variance(xs))")
            #expect(xs.allSatisfy { $0 >= 0 && $0.isFinite })
        }
    }

    /// 20,001 arrivals at 4 a second: 20,000 gaps of mean 0.25 s, the last arrival near 5,000 s.
    /// With burstiness 1 (exponential gaps) or Poisson the sum's standard deviation is 0.25 x
    /// sqrt(20,000) = 35 s, so both lie within 177 s (5 deviations). Burstiness 0.25 keeps the mean
    /// (0.25 s +- 5 sqrt(0.25 / 20,000) = 0.018) and quadruples the gaps' variance, 1/16 to 1/4:
    /// within 0.045 (5 standard errors of 0.25 sqrt((2 + 24) / 20,000)); Poisson's stays 1/16.
    @Test func gammaArrivalsKeepTheMeanRate() throws {
        let n = 20_001
        func gaps(_ a: RequestSource.Arrivals, seed: UInt64) -> [Double] {
            let t = RequestSource.synthetic(count: n, arrivals: a, input: 1...1, output: 1...1, seed: seed).map(\.arrivalSeconds)
            #expect(t[0] == 0)
            return zip(t.dropFirst(), t).map { $0 - $1 }
        }
        let gamma1 = gaps(.gamma(ratePerSecond: 4, burstiness: 1), seed: 5), poisson = gaps(.poisson(ratePerSecond: 4), seed: 6)
        #expect(abs(gamma1.reduce(0, +) - 5000) < 177 && abs(poisson.reduce(0, +) - 5000) < 177)
        let bursty = gaps(.gamma(ratePerSecond: 4, burstiness: 0.25), seed: 7)
        #expect(abs(Self.mean(bursty) - 0.25) < 0.018)
        #expect(abs(Self.variance(bursty) - 0.25) < 0.045, "\(Self.variance(bursty))")
        #expect(abs(Self.variance(poisson) - 0.0625) < 0.01)
        #expect(bursty.allSatisfy { $0 >= 0 })
    }

    @Test func arrivalsKeys() throws {
        let base = #"{"count": 3, "input": 5, "output": 2, "arrivals": "#
        #expect(try Self.requests(base + #"{"interval": 1.5}}"#).map(\.arrivalSeconds) == [0, 1.5, 3])
        #expect(try Self.requests(base + #""all-at-once"}"#).map(\.arrivalSeconds) == [0, 0, 0])
        // Burstiness defaults to 1.
        #expect(try Self.requests(base + #"{"gamma": 2}, "seed": 4}"#) == Self.requests(base + #"{"gamma": 2, "burstiness": 1}, "seed": 4}"#))
        #expect(try Self.requests(base + #"{"gamma": 2, "burstiness": 0.5}}"#).map(\.arrivalSeconds)[0] == 0)
        func refusal(_ json: String) throws -> InputError { try Fixtures.inputError { _ = try Self.requests(base + json) } }
        let zero = try refusal(#"{"poisson": 0}}"#)
        #expect(zero.field == "requests.arrivals.poisson" && zero.message.contains("from 1e-06 to 1000000000, got 0"))
        #expect(try refusal(#"{"gamma": 0}}"#).field == "requests.arrivals.gamma")
        let b = try refusal(#"{"gamma": 2, "burstiness": 0}}"#)
        #expect(b.field == "requests.arrivals.burstiness" && b.message.contains("from 0.001 to 1000"))
        #expect(try refusal(#"{"poisson": 2, "burstiness": 2}}"#).field == "requests.arrivals.burstiness")
        #expect(try refusal(#"{"poisson": 2, "interval": 1}}"#).field == "requests.arrivals")
        #expect(try refusal(#"{}}"#).field == "requests.arrivals")
        #expect(try refusal(#""sometimes"}"#).field == "requests.arrivals")
        // The datasets and ShareGPT arrive all at once unless told; the generator needs arrivals.
        #expect(try Fixtures.inputError { _ = try Self.requests(#"{"count": 3, "input": 5, "output": 2}"#) }.field == "requests.arrivals")
    }

    // MARK: - Traces

    /// Old lines read as before: sorted by arrival, numbered in that order, an `id` of any kind.
    @Test func traceAcceptsItsOldLines() throws {
        let text = """
        {"arrivalSeconds": 0.5, "inputTokens": 10, "outputTokens": 2, "id": "req-a"}

        {"arrivalSeconds": 0, "inputTokens": 5, "outputTokens": 1}
        {"arrivalSeconds": 0.25, "inputTokens": 7, "outputTokens": 3, "id": 4}
        """
        let rs = try RequestSource.trace(text, source: "t.jsonl")
        #expect(rs.map(\.inputTokens) == [5, 7, 10] && rs.map(\.id) == [0, 1, 2] && rs.map(\.arrivalSeconds) == [0, 0.25, 0.5])
        #expect(rs.allSatisfy { $0.previousTurn == nil && $0.conversation == nil && $0.sharedPrefix == nil && $0.historyTokens == 0 })
    }

    /// Line 1 (id 7, at 1 s) opens conversation 3 with a shared prefix of 30 tokens; line 2 arrives
    /// at 0.5 s; line 3 follows line 1 after 2 s of thought, resending its 100 + 20 tokens. Sorted:
    /// line 2 is request 0, line 1 request 1, line 3 request 2 (after request 1, of conversation 3,
    /// carrying its arrival, 1 s). Line 4 names line 2 by its position, 1 (it has no id), so it is
    /// request 1, after request 0, at its 0.5 s (its own 9 s is ignored).
    @Test func traceCarriesConversationsAndPrefixes() throws {
        let text = """
        {"arrivalSeconds": 1, "inputTokens": 100, "outputTokens": 20, "id": 7, "conversation": 3, "sharedPrefix": 9, "sharedPrefixTokens": 30}
        {"arrivalSeconds": 0.5, "inputTokens": 50, "outputTokens": 5}
        {"inputTokens": 140, "outputTokens": 10, "previousTurn": 7, "historyTokens": 120, "thinkSeconds": 2, "sharedPrefix": 9, "sharedPrefixTokens": 30}
        {"arrivalSeconds": 9, "inputTokens": 60, "outputTokens": 5, "previousTurn": 1, "historyTokens": 55, "conversation": 8}
        """
        let rs = try RequestSource.trace(text, source: "t.jsonl")
        #expect(rs.map(\.inputTokens) == [50, 60, 100, 140])
        #expect(rs.map(\.id) == [0, 1, 2, 3])
        #expect(rs.map(\.previousTurn) == [nil, 0, nil, 2])
        #expect(rs.map(\.conversation) == [nil, 8, 3, 3])
        #expect(rs.map(\.historyTokens) == [0, 55, 0, 120])
        #expect(rs.map(\.thinkSeconds) == [0, 0, 0, 2])
        #expect(rs.map(\.arrivalSeconds) == [0.5, 0.5, 1, 1])
        #expect(rs.map(\.sharedPrefix) == [nil, nil, 9, 9] && rs.map(\.sharedPrefixTokens) == [0, 0, 30, 30])
    }

    @Test func traceRefusesInconsistentTurns() throws {
        let first = #"{"arrivalSeconds": 0, "inputTokens": 100, "outputTokens": 20, "conversation": 1}"#
        func refusal(_ second: String) throws -> InputError {
            try Fixtures.inputError { _ = try RequestSource.trace(first + "\n" + second + "\n", source: "t.jsonl") }
        }
        let over = try refusal(#"{"arrivalSeconds": 0, "inputTokens": 50, "outputTokens": 5, "historyTokens": 51, "conversation": 1}"#)
        #expect(over.field == "t.jsonl:2: historyTokens" && over.message.contains("from 0 to 50"))
        // The previous turn left 100 + 20 = 120 tokens; 121 cannot be its history.
        let left = try refusal(#"{"inputTokens": 150, "outputTokens": 5, "historyTokens": 121, "previousTurn": 0}"#)
        #expect(left.field == "t.jsonl:2: historyTokens" && left.message.contains("120"))
        #expect(try refusal(#"{"inputTokens": 150, "outputTokens": 5, "previousTurn": 1}"#).field == "t.jsonl:2: previousTurn")
        #expect(try refusal(#"{"inputTokens": 150, "outputTokens": 5, "previousTurn": 0, "conversation": 2}"#).field == "t.jsonl:2: conversation")
        #expect(try refusal(#"{"inputTokens": 150, "outputTokens": 5, "previousTurn": 0, "thinkSeconds": -1}"#).field == "t.jsonl:2: thinkSeconds")
        #expect(try refusal(#"{"arrivalSeconds": 0, "inputTokens": 50, "outputTokens": 5, "thinkSeconds": 1}"#).field == "t.jsonl:2: thinkSeconds")
        #expect(try refusal(#"{"arrivalSeconds": 0, "inputTokens": 50, "outputTokens": 5, "historyTokens": 10}"#).field == "t.jsonl:2: historyTokens")
        #expect(try refusal(#"{"arrivalSeconds": 0, "inputTokens": 50, "outputTokens": 5, "sharedPrefixTokens": 10}"#).field == "t.jsonl:2: sharedPrefixTokens")
        #expect(try refusal(#"{"arrivalSeconds": 0, "inputTokens": 50, "outputTokens": 5, "sharedPrefix": 1}"#).field == "t.jsonl:2: sharedPrefixTokens")
        #expect(try refusal(#"{"arrivalSeconds": 0, "inputTokens": 50, "outputTokens": 5, "sharedPrefix": 1, "sharedPrefixTokens": 51}"#).field == "t.jsonl:2: sharedPrefixTokens")
        #expect(try refusal(#"{"inputTokens": 50, "outputTokens": 5}"#).field == "t.jsonl:2: arrivalSeconds")
        // Two earlier lines both have the id 5.
        let twice = #"{"arrivalSeconds": 0, "inputTokens": 10, "outputTokens": 2, "id": 5}"#
        let e = try Fixtures.inputError {
            _ = try RequestSource.trace([twice, twice, #"{"inputTokens": 20, "outputTokens": 2, "previousTurn": 5}"#].joined(separator: "\n"), source: "t.jsonl")
        }
        #expect(e.field == "t.jsonl:3: previousTurn" && e.message.contains("more than one"))
    }
}
