import Foundation
import Testing

/// `planner profile` and `planner validate` run as subprocesses.
@Suite("CLI profiles", .timeLimit(.minutes(2)))
struct CLIProfileTests {
    static let h100 = CLITests.packageRoot.appendingPathComponent("profiles/reference-h100").path

    @Test func importTwiceThenShow() throws {
        let dir = try CLITests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = dir.appendingPathComponent("p.sqlite").path
        for _ in 0 ..< 2 {
            let o = try CLITests.run(["profile", "import", Self.h100, "--store", store])
            #expect(o.status == 0, "\(o.stderr)")
            #expect(o.stdout.contains("260 GEMM"))
        }
        let show = try CLITests.run(["profile", "show", "--store", store])
        #expect(show.status == 0)
        #expect(show.stdout.components(separatedBy: "reference-h100:").count == 2, "one profile, not two: \(show.stdout)")
        #expect(show.stdout.contains("24 link, 260 GEMM, 64 attention"))
    }

    @Test func malformedProfileFailsCleanlyNamingFileAndLine() throws {
        let dir = try CLITests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let copy = dir.appendingPathComponent("broken")
        try FileManager.default.copyItem(atPath: Self.h100, toPath: copy.path)
        try "m,n,k,seconds\n1,2,3,4\n5,6,seven,8\n".write(to: copy.appendingPathComponent("gemm.csv"), atomically: true, encoding: .utf8)
        let o = try CLITests.run(["profile", "import", copy.path, "--store", dir.appendingPathComponent("p.sqlite").path])
        CLITests.expectCleanFailure(o)
        #expect(o.stderr.contains("broken/gemm.csv:3"))
    }

    @Test func validateReportsKernelErrors() throws {
        let o = try CLITests.run(["validate", Self.h100, "--json"])
        #expect(o.status == 0, "\(o.stderr)")
        let doc = try #require(try JSONSerialization.jsonObject(with: o.stdoutData) as? [String: Any])
        let kernels = try #require(doc["kernels"] as? [[String: Any]])
        #expect(Set(kernels.compactMap { $0["table"] as? String }) == ["gemm", "decode attention", "prefill attention", "link"])
    }

    @Test func simulateWithAProfileSaysSo() throws {
        let o = try CLITests.run(["simulate", CLITests.example("hybrid.json"), "--profile", Self.h100])
        #expect(o.status == 0, "\(o.stderr)")
        #expect(o.stdout.contains("cost model: measured profile reference-h100"))
    }
}
