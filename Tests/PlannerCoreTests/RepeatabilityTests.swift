import Foundation
import GRDB
import Testing
@testable import PlannerCore

@Suite struct CaptureRuleTests {
    /// Rounds whose levels are 10, 20 and 40 ms (every placement alike): the quiet rule takes the
    /// lowest level, the typical rule the median one.
    @Test func typicalTakesTheMedianLevel() {
        let windows: [[Double]] = [[10, 20, 40], [10, 20, 40]]
        #expect(CaptureRule.quiet.groupTimes(windows).allSatisfy { abs($0 - 10) < 1e-12 })
        #expect(CaptureRule.typical.groupTimes(windows).allSatisfy { abs($0 - 20) < 1e-12 })
    }

    /// By hand: the levels are sqrt(4 * 9) = 6, 6, sqrt(8 * 2) = 4 and 4; both runs' ratios are 0.5,
    /// 2/3, 1.5 and 2, median 13/12; the median of the levels is (4 + 6) / 2 = 5, so 65/12 ms each
    /// (the quiet rule: 13/3).
    @Test func typicalWithEvenRounds() {
        let t = CaptureRule.typical.groupTimes([[4, 9, 8, 2], [9, 4, 2, 8]])
        #expect(abs(t[0] - 65.0 / 12) < 1e-12 && abs(t[1] - 65.0 / 12) < 1e-12)
    }

    @Test func tablePointByRule() {
        #expect(CaptureRule.quiet.tablePoint([3, 2, 5]) == 2)
        #expect(CaptureRule.typical.tablePoint([3, 2, 5]) == 3)
        #expect(CaptureRule.typical.tablePoint([3, 2, 5, 10]) == 4)
        #expect(CaptureRule.typical.tablePoint([]).isNaN)
    }
}

@Suite struct RepeatabilityTests {
    static let root = ProfileTests.root

    /// A copy of the H100 reference with a two-run group, its windows and `rule` in profile.json.
    static func profile(windows: String, rule: String? = "typical") throws -> URL {
        let copy = try ProfileTests.temporaryCopy(of: ProfileTests.h100)
        try """
        run,group,model,layers,batch,context,weights_gpu_fraction,gpu_kv,gpu_act,host_kv,host_act,recompute,host_memory,step_seconds
        a,g,opt-6.7b,2,8,512,1,512,0,0,0,0,pinned,0.010
        b,g,opt-6.7b,2,8,512,1,0,0,512,0,0,pinned,0.011

        """.write(to: copy.appendingPathComponent("e2e.csv"), atomically: true, encoding: .utf8)
        try windows.write(to: copy.appendingPathComponent("e2e_windows.csv"), atomically: true, encoding: .utf8)
        if let rule {
            let url = copy.appendingPathComponent("profile.json")
            var o = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
            o["rule"] = rule
            try JSONSerialization.data(withJSONObject: o).write(to: url)
        }
        return copy
    }

    /// By hand. Pass 0: a 10 ms (after a retried 50 ms attempt), b 11 ms; pass 1: a 12 ms, b 11 ms.
    /// One round per half, so each half's times are its windows. The halves differ by 2/11 for a
    /// and 0 for b: 1/11 on average, a floor of 1/22. Pass 0 picks a, pass 1 picks b; a chosen by
    /// pass 0 costs 1 - 11/12 in pass 1, b chosen by pass 1 costs 1 - 10/11 in pass 0: 1/11.
    @Test func halvesByHand() throws {
        let copy = try Self.profile(windows: """
        run,pass,round,attempt,seconds,probe_before,probe_after
        a,0,0,0,0.050,,
        a,0,0,1,0.010,,
        b,0,0,0,0.011,,
        a,1,0,0,0.012,,
        b,1,0,0,0.011,,

        """)
        defer { try? FileManager.default.removeItem(at: copy.deletingLastPathComponent()) }
        let p = try ProfileReader.read(copy)
        #expect(p.meta.rule == .typical && p.windows.count == 5)
        let r = try #require(Validation.repeatability(p))
        #expect(r.evenPasses == [0] && r.oddPasses == [1] && r.runs == 2)
        #expect(abs(r.halfDisagreement - 1.0 / 11) < 1e-12)
        #expect(abs(r.noiseFloor - 1.0 / 22) < 1e-12)
        let g = try #require(r.groups.first)
        #expect(g.bestEven == "a" && g.bestOdd == "b")
        #expect(abs(g.crossRegret - 1.0 / 11) < 1e-12)
    }

    /// Three passes: passes 0 and 2 form one half. With the old header (no attempts) and no rule
    /// (quiet). By hand: passes 0 and 2 have levels sqrt(10 * 20) and sqrt(30 * 60), ratios 1/sqrt(2)
    /// and sqrt(2) for a and b in both, so a = sqrt(100) = 10, b = 20 at the lowest level; pass 1:
    /// a = 10, b = 22. The halves differ by 0 and 2/21: 1/21 on average; both pick a.
    @Test func threePassesOldHeaderQuiet() throws {
        let copy = try Self.profile(windows: """
        run,pass,round,seconds
        a,0,0,0.010
        b,0,0,0.020
        a,1,0,0.010
        b,1,0,0.022
        a,2,0,0.030
        b,2,0,0.060

        """, rule: nil)
        defer { try? FileManager.default.removeItem(at: copy.deletingLastPathComponent()) }
        let r = try #require(Validation.repeatability(try ProfileReader.read(copy)))
        #expect(r.rule == .quiet && r.evenPasses == [0, 2] && r.oddPasses == [1])
        #expect(abs(r.halfDisagreement - 1.0 / 21) < 1e-12)
        #expect(r.groups.first?.bestEven == "a" && r.groups.first?.bestOdd == "a" && r.largestCrossRegret == 0)
    }

    @Test func onePassHasNone() throws {
        let copy = try Self.profile(windows: "run,pass,round,seconds\na,0,0,0.01\nb,0,0,0.02\n")
        defer { try? FileManager.default.removeItem(at: copy.deletingLastPathComponent()) }
        #expect(Validation.repeatability(try ProfileReader.read(copy)) == nil)
    }

    @Test func badWindowsAndRuleAreRejected() throws {
        let copy = try Self.profile(windows: "run,pass,round,seconds\na,0,0,0.01\nc,0,0,0.02\n")
        defer { try? FileManager.default.removeItem(at: copy.deletingLastPathComponent()) }
        let e = try #require(throws: InputError.self) { try ProfileReader.read(copy) }
        #expect(e.field == "\(copy.lastPathComponent)/e2e_windows.csv:3" && e.message.contains("run"))
        try "run,pass,round,seconds\na,0,x,0.01\n".write(to: copy.appendingPathComponent("e2e_windows.csv"), atomically: true, encoding: .utf8)
        let f = try #require(throws: InputError.self) { try ProfileReader.read(copy) }
        #expect(f.field.hasSuffix("e2e_windows.csv:2") && f.message.contains("round"))
        try "run,pass,seconds\na,0,0.01\n".write(to: copy.appendingPathComponent("e2e_windows.csv"), atomically: true, encoding: .utf8)
        let h = try #require(throws: InputError.self) { try ProfileReader.read(copy) }
        #expect(h.field.hasSuffix("e2e_windows.csv:1") && h.message.contains("header"))
        // Every run of e2e.csv needs windows, in the same (pass, round)s as its group.
        try "run,pass,round,seconds\na,0,0,0.01\na,1,0,0.01\n".write(to: copy.appendingPathComponent("e2e_windows.csv"), atomically: true, encoding: .utf8)
        let none = try #require(throws: InputError.self) { try ProfileReader.read(copy) }
        #expect(none.field.hasSuffix("e2e_windows.csv") && none.message.contains("\"b\"") && none.message.contains("no window"))
        try "run,pass,round,seconds\na,0,0,0.01\na,1,0,0.01\nb,0,0,0.01\n".write(to: copy.appendingPathComponent("e2e_windows.csv"), atomically: true, encoding: .utf8)
        let other = try #require(throws: InputError.self) { try ProfileReader.read(copy) }
        #expect(other.field.hasSuffix("e2e_windows.csv") && other.message.contains("(pass, round)"))
        let bad = try Self.profile(windows: "run,pass,round,seconds\n", rule: "fastest")
        defer { try? FileManager.default.removeItem(at: bad.deletingLastPathComponent()) }
        let r = try #require(throws: InputError.self) { try ProfileReader.read(bad) }
        #expect(r.field.hasSuffix("profile.json: rule") && r.message.contains("quiet or typical"))
    }

    /// The first CPU profile (quiet rule, two passes), against profiles/tools/repeatability.py, a
    /// separate implementation in Python over the same files: its halves differ by 9.0329% and
    /// choosing by one half costs up to 13.6226% in the other (cpu-llama-small-b4-c256-w0).
    @Test func firstCPUProfileMatchesThePythonCheck() throws {
        let p = try ProfileReader.read(Self.root.appendingPathComponent("profiles/cpu-amd-epyc-2c"))
        let r = try #require(Validation.repeatability(p))
        #expect(r.rule == .quiet && r.runs == 40)
        #expect(abs(r.halfDisagreement - 0.090329) < 1e-6)
        #expect(abs(r.largestCrossRegret - 0.136226) < 1e-6)
    }
}

@Suite struct DeviceCopyTableTests {
    /// A profile with `copy.csv` (1 MiB in 200 us, 4 MiB in 900 us) prices a device copy of 2 MiB
    /// by linear interpolation: 200 + 700 / 3 = 433.33 us; beyond 4 MiB it scales 900 us by the
    /// analytic model's ratio between 8 and 4 MiB and says so; without the table the analytic price stays.
    /// The store keeps the rows, and a malformed row is refused with file and line.
    @Test func deviceCopiesFromTheTable() throws {
        let copy = try ProfileTests.temporaryCopy(of: ProfileTests.h100)
        defer { try? FileManager.default.removeItem(at: copy.deletingLastPathComponent()) }
        let plain = try ProfileCostModel(profile: try ProfileReader.read(copy), hardware: HardwareCatalog.h100sxm)
        let analytic = try AnalyticCostModel(hardware: HardwareCatalog.h100sxm, dtype: .fp16)
        #expect(plain.seconds(.deviceCopy(bytes: 2 * 1_048_576)) == analytic.seconds(.deviceCopy(bytes: 2 * 1_048_576)))
        try "bytes,seconds\n1048576,200e-6\n4194304,900e-6\n".write(to: copy.appendingPathComponent("copy.csv"), atomically: true, encoding: .utf8)
        let p = try ProfileReader.read(copy)
        let cost = try ProfileCostModel(profile: p, hardware: HardwareCatalog.h100sxm)
        #expect(abs(cost.seconds(.deviceCopy(bytes: 2 * 1_048_576)) - (200e-6 + 700e-6 / 3)) < 1e-12)
        #expect(cost.stats.snapshot["device copy"]?[.measured] == 1)
        let big = cost.seconds(.deviceCopy(bytes: 8 * 1_048_576))
        let ratio = analytic.seconds(.deviceCopy(bytes: 8 * 1_048_576)) / analytic.seconds(.deviceCopy(bytes: 4 * 1_048_576))
        #expect(ratio > 1 && abs(big - 900e-6 * ratio) < 1e-12)
        #expect(cost.stats.snapshot["device copy"]?[.extrapolated] == 1)
        let kernels = try Validation.kernelAccuracy(p, hardware: HardwareCatalog.h100sxm)
        #expect(kernels.first { $0.table == "device copy" }?.points == 2)
        let store = try ProfileStore(path: copy.deletingLastPathComponent().appendingPathComponent("p.sqlite").path)
        try store.importProfile(from: copy)
        try store.importProfile(from: copy)
        #expect(try store.summaries().first?.copyRows == 2)
        #expect(try store.load(name: copy.lastPathComponent).copy == p.copy)
        // A store made before device copies (only its first migration applied) is upgraded when
        // opened, and keeps what it held.
        let old = copy.deletingLastPathComponent().appendingPathComponent("old.sqlite").path
        do {
            let s = try ProfileStore(path: old)
            try s.importProfile(from: ProfileTests.h100)
            try s.db.write { db in
                try db.execute(sql: "DROP TABLE copy")
                try db.execute(sql: "DELETE FROM grdb_migrations WHERE identifier != 'v1'")
            }
        }
        let reopened = try ProfileStore(path: old)
        #expect(try reopened.summaries().map(\.gemmRows) == [260])
        try reopened.importProfile(from: copy)
        #expect(try reopened.summaries().first { $0.name == copy.lastPathComponent }?.copyRows == 2)
        try "bytes,seconds\n1048576,200e-6\n4194304,zero\n".write(to: copy.appendingPathComponent("copy.csv"), atomically: true, encoding: .utf8)
        let e = try #require(throws: InputError.self) { try ProfileReader.read(copy) }
        #expect(e.field == "\(copy.lastPathComponent)/copy.csv:3" && e.message.contains("seconds"))
    }
}
