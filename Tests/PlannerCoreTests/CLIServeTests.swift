import Foundation
import Testing

/// `planner serve` run as a subprocess.
@Suite("CLI serve", .timeLimit(.minutes(2)))
struct CLIServeTests {
    static let swapExample = CLITests.example("serving/kv-overflow-swap.json")

    @Test func writesSummaryCSVTraceAndChart() throws {
        let dir = try CLITests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let csv = dir.appendingPathComponent("s.csv").path, trace = dir.appendingPathComponent("t.json").path
        let chart = dir.appendingPathComponent("c.svg").path
        let o = try CLITests.run(["serve", Self.swapExample, "--csv", csv, "--trace", trace, "--chart", chart])
        #expect(o.status == 0, "\(o.stderr)")
        #expect(o.stdout.contains("completed 32 requests") && o.stdout.contains("preemption by swap"))
        let rows = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n")
        #expect(rows.first == "second,running,waiting,swapped,kvUsage,promptTokensPerSecond,generationTokensPerSecond")
        #expect(rows.count > 100)
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: trace))) as? [String: Any])
        let events = try #require(doc["traceEvents"] as? [[String: Any]])
        let threads = events.filter { ($0["name"] as? String) == "thread_name" }.compactMap { ($0["args"] as? [String: Any])?["name"] as? String }
        #expect(threads.contains("GPU") && threads.contains("link (swaps)") && threads.contains("request 31"))
        #expect(events.contains { ($0["cat"] as? String) == "swap" })
        let svg = try String(contentsOfFile: chart, encoding: .utf8)
        #expect(svg.hasPrefix("<svg") && svg.contains("KV usage (%)") && svg.contains("<polyline"))
    }

    /// `--plan` on the multi-turn example prints a plan with its command line, as JSON too, and
    /// refuses the single-run outputs.
    @Test func planPrintsTheChoiceAndTheCommand() throws {
        let example = CLITests.example("serving/multi-turn.json")
        let o = try CLITests.run(["serve", example, "--plan"])
        #expect(o.status == 0, "\(o.stderr)")
        #expect(o.stdout.contains("serving plan for yarn-llama-2-7b-64k") && o.stdout.contains("what binds:") && o.stdout.contains("vllm serve "))
        let j = try CLITests.run(["serve", example, "--plan", "--json"])
        let doc = try #require(try JSONSerialization.jsonObject(with: j.stdoutData) as? [String: Any])
        #expect(Set(doc.keys) == ["objective", "evaluated", "best", "asGiven", "runnersUp", "binding", "vllmCommands", "vllmNotes"])
        let bad = try CLITests.run(["serve", example, "--plan", "--csv", "/tmp/x.csv"])
        #expect(bad.status != 0 && bad.stderr.contains("--plan"))
    }

    @Test func jsonCarriesTheMetrics() throws {
        let o = try CLITests.run(["serve", Self.swapExample, "--json"])
        #expect(o.status == 0, "\(o.stderr)")
        let doc = try #require(try JSONSerialization.jsonObject(with: o.stdoutData) as? [String: Any])
        #expect(doc["completed"] as? Int == 32)
        for key in ["ttftSeconds", "tpotSeconds", "itlSeconds", "e2eSeconds"] {
            let s = try #require(doc[key] as? [String: Double], "\(key)")
            #expect(Set(s.keys) == ["mean", "median", "p90", "p95", "p99"])
            #expect(s["median"]! <= s["p90"]! && s["p90"]! <= s["p99"]!)
        }
        #expect((doc["swappedOutTokens"] as? Int ?? 0) > 0)
        #expect((doc["overheadSeconds"] as? Double ?? 0) > 0)
    }

    @Test func badServingInputFailsCleanly() throws {
        let dir = try CLITests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let cases: [(String, String)] = [
            (#"{"model": "yarn-llama-2-7b-64k", "hardware": "a100-40gb", "blockSize": 0, "requests": {"count": 1, "arrivals": "all-at-once", "input": 10, "output": 1}}"#, "blockSize"),
            (#"{"model": "yarn-llama-2-7b-64k", "hardware": "a100-40gb", "preemption": "drop", "requests": {"count": 1, "arrivals": "all-at-once", "input": 10, "output": 1}}"#, "preemption"),
            (#"{"model": "yarn-llama-2-7b-64k", "hardware": "a100-40gb", "watermark": 1.5, "requests": {"count": 1, "arrivals": "all-at-once", "input": 10, "output": 1}}"#, "watermark"),
            (#"{"model": "yarn-llama-2-7b-64k", "hardware": "a100-40gb", "requests": {"trace": "reqs.jsonl"}}"#, "reqs.jsonl:2"),
        ]
        try "{\"arrivalSeconds\": 0, \"inputTokens\": 10, \"outputTokens\": 2}\n{\"arrivalSeconds\": 0, \"inputTokens\": 10}\n"
            .write(to: dir.appendingPathComponent("reqs.jsonl"), atomically: true, encoding: .utf8)
        for (i, (scenario, field)) in cases.enumerated() {
            let path = dir.appendingPathComponent("s\(i).json")
            try scenario.write(to: path, atomically: true, encoding: .utf8)
            let o = try CLITests.run(["serve", path.path])
            CLITests.expectCleanFailure(o)
            #expect(o.stderr.contains(field), "\(o.stderr)")
        }
        // An unwritable trace leaves no partial file and fails cleanly.
        let o = try CLITests.run(["serve", Self.swapExample, "--trace", dir.appendingPathComponent("missing/t.json").path])
        CLITests.expectCleanFailure(o)
    }
}
