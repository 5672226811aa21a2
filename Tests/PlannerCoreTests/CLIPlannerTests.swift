import Foundation
import Testing

/// `planner sweep` and `planner plan` run as subprocesses on small grids.
@Suite("CLI planner", .timeLimit(.minutes(2)))
struct CLIPlannerTests {
    static let grid = ["--ratios", "0:1:0.5", "--batches", "32,64"]

    @Test func sweepTableMarksTheBest() throws {
        let o = try CLITests.run(["sweep"] + Self.grid)
        #expect(o.status == 0, "\(o.stderr)")
        #expect(o.stdout.contains("over the best KV-only (FlexGen-style)"))
        #expect(o.stdout.split(separator: "\n").filter { $0.hasPrefix(" *") }.count == 1)
    }

    @Test func sweepCSVAndChart() throws {
        let dir = try CLITests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let chart = dir.appendingPathComponent("sweep.svg").path
        let o = try CLITests.run(["sweep", "--csv", "--chart", chart] + Self.grid)
        #expect(o.status == 0, "\(o.stderr)")
        let lines = o.stdout.split(separator: "\n")
        // 3 ratios x 2 batches of hybrid, and 2 batches for each of the 5 baselines.
        #expect(lines.count == 1 + 6 + 10)
        let svg = try String(contentsOfFile: chart, encoding: .utf8)
        #expect(svg.hasPrefix("<svg") && svg.contains("batch 64"))
    }

    @Test func planIsAScenarioSimulateAccepts() throws {
        let dir = try CLITests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let o = try CLITests.run(["plan", "--json"] + Self.grid)
        #expect(o.status == 0, "\(o.stderr)")
        let file = dir.appendingPathComponent("plan.json")
        try o.stdoutData.write(to: file)
        let doc = try #require(try JSONSerialization.jsonObject(with: o.stdoutData) as? [String: Any])
        let expected = try #require(((doc["planner"] as? [String: Any])?["expected"] as? [String: Any])?["tokensPerSecond"] as? Double)
        let sim = try CLITests.run(["simulate", file.path, "--json"])
        #expect(sim.status == 0, "\(sim.stderr)")
        let result = try #require(try JSONSerialization.jsonObject(with: sim.stdoutData) as? [String: Any])
        let tps = try #require(result["tokensPerSecond"] as? Double)
        #expect(abs(tps / expected - 1) < 1e-9)
    }

    /// A plan made with measured kernel times names its profile, so that simulating the printed
    /// configuration, from any folder, reproduces the expected throughput exactly.
    @Test func planWithAProfileNamesIt() throws {
        let dir = try CLITests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let profile = "profiles/reference-h100"
        let o = try CLITests.run(["plan", "--json", "--model", "opt-13b", "--hardware", "h100-sxm", "--profile", profile] + Self.grid)
        #expect(o.status == 0, "\(o.stderr)")
        let doc = try #require(try JSONSerialization.jsonObject(with: o.stdoutData) as? [String: Any])
        let named = try #require(doc["profile"] as? String)
        #expect(named.hasPrefix("/") && named.hasSuffix(profile))
        let file = dir.appendingPathComponent("plan.json")
        try o.stdoutData.write(to: file)
        let expected = try #require(((doc["planner"] as? [String: Any])?["expected"] as? [String: Any])?["tokensPerSecond"] as? Double)
        let sim = try CLITests.run(["simulate", file.path, "--json"])
        #expect(sim.status == 0, "\(sim.stderr)")
        let result = try #require(try JSONSerialization.jsonObject(with: sim.stdoutData) as? [String: Any])
        #expect(abs(try #require(result["tokensPerSecond"] as? Double) / expected - 1) < 1e-9)
    }

    @Test func planKVOnlyPrintsFlexGenFlags() throws {
        let o = try CLITests.run(["plan", "--json", "--policy", "kv-only"] + Self.grid)
        #expect(o.status == 0, "\(o.stderr)")
        #expect(o.stderr.hasPrefix("FlexGen flags: --percent "))
        #expect(o.stdout.contains("--gpu-batch-size"))
    }

    @Test func nothingFitsExitsWithAdvice() throws {
        let o = try CLITests.run(["plan", "--model", "opt-175b"] + Self.grid)
        CLITests.expectCleanFailure(o)
        #expect(o.stderr.contains("Smallest change"))
        #expect(o.stderr.contains("host memory"))
    }

    @Test func badFlagsAreNamed() throws {
        for (args, field) in [(["--ratios", "0:2:0.1"], "--ratios"), (["--batches", "0"], "--batches"),
                              (["--weights", "somewhere"], "--weights"), (["--model", "gpt-5"], "--model")] {
            let o = try CLITests.run(["sweep"] + args)
            CLITests.expectCleanFailure(o)
            #expect(o.stderr.contains(field), "\(args): \(o.stderr)")
        }
    }
}
