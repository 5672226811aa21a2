import Foundation
import Testing
@testable import PlannerCore

/// A seeded mutation fuzzer over the readers of scenarios, serving files, published runs and
/// profile tables, bounded to a fixed number of mutations so that CI runs it in seconds. Every
/// mutated input must either read (and then simulate, cut to two layers) or be refused with an
/// `InputError` or `CapacityError`: any other error fails the test, and a trap ends the test run.
@Suite("Fuzz")
struct FuzzTests {
    static let root = ProfileTests.root

    /// Values that once broke readers: extremes, wrong types, non-numbers, control characters.
    static let nasty = ["0", "-1", "1e308", "-1e308", "5e-324", "9223372036854775807", "9223372036854775808", "18446744073709551616",
                        "1e19", "0.5", "\"x\"", "true", "null", "[]", "{}", "\"\\u0000\"", "\"\u{1B}[31m\"", "2147483648", "-0"]

    /// One mutation of `text`: a number replaced by a nasty value, a byte deleted or doubled, a line
    /// doubled, CRLF line ends, or the text cut short.
    static func mutate(_ text: String, _ rng: inout SplitMix64) -> String {
        var s = text
        switch Int.random(in: 0 ..< 7, using: &rng) {
        case 0, 1:
            let numbers = try! NSRegularExpression(pattern: #"-?\d+(\.\d+)?([eE][-+]?\d+)?"#)
            let matches = numbers.matches(in: s, range: NSRange(s.startIndex..., in: s))
            if let m = matches.randomElement(using: &rng), let r = Range(m.range, in: s) {
                s.replaceSubrange(r, with: nasty.randomElement(using: &rng)!)
            }
        case 2:
            if !s.isEmpty { s.remove(at: s.index(s.startIndex, offsetBy: Int.random(in: 0 ..< s.count, using: &rng))) }
        case 3:
            if !s.isEmpty {
                let i = s.index(s.startIndex, offsetBy: Int.random(in: 0 ..< s.count, using: &rng))
                s.insert(s[i], at: i)
            }
        case 4:
            var lines = s.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            if !lines.isEmpty { let i = Int.random(in: 0 ..< lines.count, using: &rng); lines.insert(lines[i], at: i) }
            s = lines.joined(separator: "\n")
        case 5:
            s = s.replacingOccurrences(of: "\n", with: "\r\n")
        default:
            s = String(s.prefix(Int.random(in: 0 ... s.count, using: &rng)))
        }
        return s
    }

    /// Inputs whose reading failed with anything but an `InputError` or `CapacityError`.
    final class Unexpected {
        var errors: [String] = []

        /// Runs `body` on one mutated input; records an error of another type under `label`.
        func check(_ label: String, _ body: () throws -> Void) {
            do { try body() } catch where !(error is InputError || error is CapacityError) {
                errors.append("\(label): \(type(of: error)) \(error)")
            } catch {}
        }
    }

    static func files(_ folder: String, ext: String) throws -> [URL] {
        let dir = root.appendingPathComponent(folder)
        return try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(ext) }.sorted()
            .map { dir.appendingPathComponent($0) }
    }

    @Test func scenarioReaderAndSimulator() throws {
        var rng = SplitMix64(seed: 21)
        let unexpected = Unexpected()
        let seeds = try Self.files("examples", ext: ".json") + Self.files("examples/engines", ext: ".json")
        for url in seeds {
            let text = try String(contentsOf: url, encoding: .utf8)
            for _ in 0 ..< 400 {
                let input = Self.mutate(text, &rng)
                unexpected.check(url.lastPathComponent) {
                    var plan = try Scenario.parse(Data(input.utf8), source: "fuzz", baseDirectory: url.deletingLastPathComponent())
                    plan.model = plan.model.withLayers(min(plan.model.layers, 2))
                    guard plan.batch <= 4096, plan.phase.placementContext <= 8192 else { return }
                    if case .generate(_, let t) = plan.phase, t > 64 { return }
                    _ = try Simulator.run(plan, cost: try AnalyticCostModel(hardware: plan.hardware, dtype: plan.model.dtype))
                }
            }
        }
        #expect(unexpected.errors.isEmpty, "\(unexpected.errors.prefix(5))")
    }

    @Test func servingReader() throws {
        var rng = SplitMix64(seed: 22)
        let unexpected = Unexpected()
        for url in try Self.files("examples/serving", ext: ".json") {
            let text = try String(contentsOf: url, encoding: .utf8)
            for _ in 0 ..< 300 {
                let input = Self.mutate(text, &rng)
                unexpected.check(url.lastPathComponent) {
                    _ = try ServingScenario.parse(Data(input.utf8), source: "fuzz", baseDirectory: url.deletingLastPathComponent())
                }
            }
        }
        let trace = "{\"arrivalSeconds\": 0, \"inputTokens\": 5, \"outputTokens\": 3}\n{\"arrivalSeconds\": 1.5, \"inputTokens\": 7, \"outputTokens\": 2, \"id\": 4}\n"
        for _ in 0 ..< 300 {
            let input = Self.mutate(trace, &rng)
            unexpected.check("trace") { _ = try RequestSource.trace(input, source: "fuzz.jsonl") }
        }
        #expect(unexpected.errors.isEmpty, "\(unexpected.errors.prefix(5))")
    }

    @Test func profileTablesAndPublishedRuns() throws {
        var rng = SplitMix64(seed: 23)
        let unexpected = Unexpected()
        let copy = try ProfileTests.temporaryCopy(of: ProfileTests.h100)
        defer { try? FileManager.default.removeItem(at: copy.deletingLastPathComponent()) }
        let hw = try HardwareCatalog.device(named: "h100-sxm")
        for file in ["gemm.csv", "link.csv", "attention.csv", "copy.csv", "profile.json"] {
            let url = copy.appendingPathComponent(file)
            guard let original = try? String(contentsOf: url, encoding: .utf8) else { continue }
            for _ in 0 ..< 150 {
                try Self.mutate(original, &rng).write(to: url, atomically: true, encoding: .utf8)
                unexpected.check(file) { _ = try Validation.kernelAccuracy(try ProfileReader.read(copy), hardware: hw) }
            }
            try original.write(to: url, atomically: true, encoding: .utf8)
        }
        let runs = try String(contentsOf: Self.root.appendingPathComponent("experiments/published-baselines/published-runs.json"), encoding: .utf8)
        for _ in 0 ..< 40 {
            let input = Self.mutate(runs, &rng)
            unexpected.check("published runs") {
                let f = try PublishedRuns.parse(Data(input.utf8), source: "fuzz")
                for r in f.runs.prefix(3) { _ = try PublishedRuns.plan(r, in: f) }
            }
        }
        #expect(unexpected.errors.isEmpty, "\(unexpected.errors.prefix(5))")
    }
}
