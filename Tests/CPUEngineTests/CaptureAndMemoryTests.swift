@testable import CPUEngine
import Foundation
import PlannerCore
import Testing
import Synchronization

@Suite struct CaptureAndMemoryTests {
    /// A run whose buffers exceed the memory available is refused before anything is allocated, with
    /// the size it needs and its largest items. The host KV cache here: 2 layers x 10,000 tokens x
    /// batch 8 x (K and V of 4 heads of 16 = 128 values) x 4 bytes = 81,920,000 bytes = 78.12 MiB.
    /// A gated (Llama-like) model keeps a rotary table of positions x head dimension floats, which the
    /// memory check must count: against the same shape with a two-matrix FFN (no rotary positions),
    /// its working set is larger by 100,000 positions x 16 x 4 bytes = 6,400,000 bytes, plus the
    /// gate's share of the FFN buffer (one row of 128 floats, 512 bytes).
    @Test func rotaryTableIsCounted() throws {
        let gated = ModelSpec(name: "g", layers: 1, hidden: 64, heads: 4, kvHeads: 4, headDim: 16, ffnSize: 128, ffnKind: .gated3, vocab: 50,
                              dtype: .fp32, maxContext: 200_000, bias: false, tiedEmbeddings: true, learnedPositions: false, source: "test")
        var relu = gated
        relu.ffnKind = .relu2
        func working(_ m: ModelSpec) -> Double {
            EngineShape(model: m, batch: 1, weightsGPUFraction: 1, capacity: TokenPlacement(gpuKV: 100_000), maxPositions: 100_000, maxRows: 1)
                .items.first { $0.name == "working set" }!.bytes
        }
        #expect(working(gated) - working(relu) == 6_400_000 + 512)
    }

    @Test func refusesWhatDoesNotFit() throws {
        let model = ModelSpec(name: "m", layers: 2, hidden: 64, heads: 4, kvHeads: 4, headDim: 16, ffnSize: 128, ffnKind: .relu2, vocab: 50,
                              dtype: .fp32, maxContext: 20000, bias: true, tiedEmbeddings: true, learnedPositions: true, source: "test")
        let shape = EngineShape(model: model, batch: 8, weightsGPUFraction: 1, capacity: TokenPlacement(hostKV: 10000), maxPositions: 10001, maxRows: 1)
        // Threads of this process (/proc/self/task) before and after: a refused engine starts none.
        // Tests running beside this one start and end threads too, so the count is compared over
        // several refusals: an engine that started its copy threads (which live until stopped) would
        // add them every time, the other tests only now and then.
        func threads() throws -> Int { try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count }
        var unchanged = false
        var refusal: InputError?
        for _ in 0 ..< 5 where !unchanged {
            let before = try threads()
            refusal = try #require(throws: InputError.self) { try CPUDecoder(shape: shape, availableMemory: 64 * 1024 * 1024) }
            unchanged = try threads() == before
        }
        #expect(unchanged)
        let e = try #require(refusal)
        #expect(e.field == "model")
        #expect(e.message.contains("host KV cache 78.12 MiB"))
        #expect(e.message.contains("would need \(formatBytes(shape.bytes))"))
        #expect(shape.bytes > 81_920_000 && shape.bytes < 200_000_000)
        // The same shape fits when the machine has room.
        _ = try CPUDecoder(shape: shape, availableMemory: shape.bytes + MachineMemory.marginBytes + 1)
    }

    /// A quick capture writes a profile the strict reader accepts, with the scaled-down models as
    /// files of the folder, and `validate`'s replay predicts every run.
    @Test func quickCaptureIsAValidProfile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cpu-capture-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        var c = CPUProfileCapture(out: dir, deviceName: "test CPU")
        c.quick = true
        c.repeats = 1
        c.warmup = 0
        c.passes = 1
        c.rounds = 2
        c.pinComputeThread = false
        // A scripted state probe: 1 ms readings (quiet) in spells of eleven, then nine of 2 ms
        // (busy). A gated measurement waits at most two readings for a quiet one, so an attempt
        // that starts in a busy spell measures after a busy "before" and is retried, and one that
        // starts at the spell's first two readings meets three busy attempts (nine readings) and
        // keeps the last of them.
        final class Script: @unchecked Sendable { var n = 0 }
        let script = Script()
        let gate = QuietState.Gate { script.n += 1; return script.n % 20 >= 11 ? 2e-3 : 1e-3 }
        gate.maxWaitReadings = 2
        c.gate = gate
        try c.run(folderName: "cpu-test")
        let p = try ProfileReader.read(dir)
        #expect(p.meta.dtype == .fp32 && p.meta.hardware == "cpu-test.json" && p.meta.rule == .typical)
        #expect(p.meta.libraries["openblas"] == BLAS.version)
        #expect(p.meta.source.contains("(4 short rounds") && p.meta.source.contains("each 2 rounds over a group's placements") && p.meta.source.contains("2 sweeps"), "\(p.meta.source)")
        #expect(p.meta.source.contains("quiet state (QuietState.Gate"), "\(p.meta.source)")
        #expect(!p.gemm.isEmpty && !p.attention.isEmpty && !p.link.isEmpty)
        #expect(p.copy.map(\.bytes) == [4096, 1_048_576, 4_194_304] && p.copy.allSatisfy { $0.seconds > 0 })
        #expect(p.e2e.count == c.e2ePlan().count)
        #expect(Set(p.models.keys) == ["cpu-opt-small.json", "cpu-llama-small.json"])
        let hw = try p.hardware(in: URL(fileURLWithPath: dir.path, isDirectory: true))
        #expect(hw.gpu.achievedMatmulFlops["fp32"]! > 1e8)
        // The contention the capture measured: one factor per GEMM row count of the sweep, each at
        // least 1, from the rows of contention.csv: per round (one after each of the four groups of
        // the end-to-end pass) 8 layer GEMMs (4 per model) x 3 row counts, the attention and the copy.
        let contention = try #require(hw.contention)
        #expect(contention.gemmSlowdown.map { $0[0] } == c.contentionRows.map(Double.init))
        #expect(contention.gemmSlowdown.allSatisfy { $0[1] >= 1 } && contention.copySlowdown >= 1 && contention.streamSlowdown >= 1)
        let rows = try String(contentsOf: dir.appendingPathComponent("contention.csv"), encoding: .utf8).split(separator: "\n")
        #expect(rows.first == "kind,round,m,n,k,alone_seconds,shared_seconds")
        #expect(c.contentionRoundCount == 4)
        #expect(rows.count == 1 + 4 * (c.contentionShapes().count * c.contentionRows.count + 2))
        #expect((0 ..< 4).allSatisfy { r in rows.filter { $0.hasPrefix("copy,\(r),") }.count == 1 })
        #expect(hw.gpu.copyBytesPerSecond == 2 * hw.link.h2dPinned.bytesPerSecond)
        let (predictions, groups) = try Validation.replay(p, hardware: hw, cost: try ProfileCostModel(profile: p, hardware: hw))
        #expect(predictions.count == p.e2e.count && predictions.allSatisfy { $0.predictedSeconds > 0 })
        #expect(groups.count == 4)
        // What the tables and e2e.csv came from: every table row in each of the two sweeps (before
        // the pass and after it), each table row the median of its two (their mean: the default rule,
        // typical); two windows per run (one pass, two rounds), from which e2e.csv's times follow by
        // the group rule at the median round level.
        let sweeps = try String(contentsOf: dir.appendingPathComponent("sweeps.csv"), encoding: .utf8).split(separator: "\n")
        #expect(sweeps.first == "table,row,sweep,seconds")
        #expect(sweeps.count == 1 + 2 * (p.gemm.count + p.attention.count + p.link.count + p.copy.count))
        var gemmSweeps: [Int: [Double]] = [:]
        for line in sweeps where line.hasPrefix("gemm,") {
            let f = line.split(separator: ",")
            gemmSweeps[Int(f[1])!, default: []].append(Double(f[3])!)
        }
        #expect(gemmSweeps.count == p.gemm.count)
        for (i, point) in p.gemm.enumerated() {
            let v = try #require(gemmSweeps[i + 1])
            #expect(v.count == 2 && abs((v[0] + v[1]) / 2 / point.seconds - 1) < 1e-5, "gemm row \(i + 1)")
        }
        // Every window's attempts (one pass, two rounds): a retried attempt had a 2 ms reading
        // before or after it, the last attempt of a window none unless all three had; some retries
        // followed a busy "before", some windows used all three attempts; e2e.csv's times follow
        // from the last attempts by the group rule.
        let windows = try String(contentsOf: dir.appendingPathComponent("e2e_windows.csv"), encoding: .utf8).split(separator: "\n")
        #expect(windows.first == "run,pass,round,attempt,seconds,probe_before,probe_after")
        var attempts: [String: [[Double]]] = [:]
        for line in windows.dropFirst() {
            let f = line.split(separator: ",", omittingEmptySubsequences: false)
            attempts[String(f[0]), default: []].append(f[1...].map { Double($0)! })
        }
        #expect(attempts.count == p.e2e.count)
        var retried = 0, busyBefore = 0, allBusy = 0
        var last: [String: [Double]] = [:]
        for run in p.e2e {
            let a = try #require(attempts[run.run])
            for round in 0 ..< 2 {
                let w = a.filter { $0[0] == 0 && $0[1] == Double(round) }
                #expect(!w.isEmpty && w.map { $0[2] } == (0 ..< w.count).map(Double.init), "\(run.run) round \(round)")
                let busy = w.map { max($0[4], $0[5]) > 1e-3 }
                #expect(busy.dropLast().allSatisfy { $0 } && (!busy.last! || w.count == 3), "\(run.run) round \(round)")
                retried += w.count - 1
                busyBefore += w.filter { $0[4] > 1e-3 }.count
                if busy.allSatisfy({ $0 }) { allBusy += 1 }
                last[run.run, default: []].append(w.last![3])
            }
        }
        #expect(retried > 0 && busyBefore > 0 && allBusy > 0, "\(retried) \(busyBefore) \(allBusy)")
        for (_, runs) in Dictionary(grouping: p.e2e, by: \.group) {
            let times = QuietState.groupTimes(try runs.map { try #require(last[$0.run]) }, rule: .typical)
            for (run, t) in zip(runs, times) { #expect(abs(t / run.stepSeconds - 1) < 1e-4, "\(run.run)") }
        }

        // An e2e row naming a model file the folder does not hold is refused with its file and line.
        let e2e = dir.appendingPathComponent("e2e.csv")
        var text = try String(contentsOf: e2e, encoding: .utf8)
        text = text.replacingOccurrences(of: "cpu-opt-small.json", with: "missing.json")
        try text.write(to: e2e, atomically: true, encoding: .utf8)
        let err = try #require(throws: InputError.self) { try ProfileReader.read(dir) }
        #expect(err.field.hasSuffix("e2e.csv:2"))
        #expect(err.message.contains("missing.json"))
    }
}

@Suite struct ContentionAggregationTests {
    /// Rounds combine by summed times per point, then the mean over shapes, by hand:
    /// m = 1, shape A: (2 + 1) / (1 + 1) = 1.5; shape B: (1 + 0.5) / (1 + 1) = 0.75, raised to 1;
    /// shape C: (3 + 6) / (2 + 2) = 2.25; the mean of 1.5, 1 and 2.25 is 1.5833. Attention: (1.2 + 1.4) / 2
    /// = 1.3. Copy: mean rate alone (10 + 14) / 2 = 12 GB/s over mean rate beside kernels (8 + 12) / 2
    /// = 10 GB/s: 1.2.
    @Test func roundsCombineBySummedTimes() {
        typealias P = CPUProfileCapture.ContentionPoint
        func round(_ r: Int, _ a: (Double, Double), _ b: (Double, Double), _ c: (Double, Double), att: Double, copy: (Double, Double)) -> CPUProfileCapture.ContentionRound {
            CPUProfileCapture.ContentionRound(points: [
                P(kind: "gemm", round: r, m: 1, n: 100, k: 10, aloneSeconds: a.0, sharedSeconds: a.1),
                P(kind: "gemm", round: r, m: 1, n: 200, k: 10, aloneSeconds: b.0, sharedSeconds: b.1),
                P(kind: "gemm", round: r, m: 1, n: 300, k: 10, aloneSeconds: c.0, sharedSeconds: c.1),
                P(kind: "decode-attention", round: r, m: 16, n: 2048, k: 16, aloneSeconds: 1, sharedSeconds: att),
            ], copyAlone: copy.0 * 1e9, copyShared: copy.1 * 1e9)
        }
        let capture = CPUProfileCapture(out: URL(fileURLWithPath: "/nonexistent"), deviceName: "test")
        let c = capture.memoryContention([round(0, (1, 2), (1, 1), (2, 3), att: 1.2, copy: (10, 8)),
                                          round(1, (1, 1), (1, 0.5), (2, 6), att: 1.4, copy: (14, 12))])
        #expect(c.gemmSlowdown.count == 1 && c.gemmSlowdown[0][0] == 1 && abs(c.gemmSlowdown[0][1] - 4.75 / 3) < 1e-12)
        #expect(abs(c.streamSlowdown - 1.3) < 1e-12)
        #expect(abs(c.copySlowdown - 1.2) < 1e-12)
    }

    /// Switched off, the contention rounds' copy thread sleeps instead of looking for work: a thread
    /// that woke every 200 us made the other core's kernels 3-6% slower on the capture machine, the
    /// "alone" side of every round. Over 100 ms off it wakes once per switch (polling: about 500
    /// times); switched on, it copies, and off again it sleeps again. A lost wakeup would hang:
    /// the time limit turns that into a failure.
    /// The kernel check plays the runs its filter names: a run with a recomputed prefix has no
    /// decode-attention table time (its attention is not all decode attention), one without has;
    /// every run's engine GEMMs are the four layer shapes at the batch's rows; a filter that names
    /// no run is refused by name.
    @Test func kernelCheckPlaysTheFilteredRuns() throws {
        var capture = CPUProfileCapture(out: URL(fileURLWithPath: "/nonexistent"), deviceName: "test")
        capture.quick = true
        capture.repeats = 2
        let rows = try capture.kernelCheck(rounds: 1, filter: "cpu-llama-small-b2-c32-w100")
        #expect(rows.map { $0.run.components(separatedBy: "-").last! } == ["gkv", "hkv", "mix", "hyb", "rec"])
        let gkv = rows[0], rec = rows[4]
        #expect(gkv.tableAttention != nil && rec.tableAttention == nil)
        #expect(gkv.gemmRatios.map(\.shape[0]) == [2, 2, 2, 2])
        #expect(gkv.engineGEMM > 0 && gkv.tableGEMM > 0 && gkv.step >= gkv.engineGEMM)
        let err = try #require(throws: InputError.self) { try capture.kernelCheck(rounds: 1, filter: "no-such-run") }
        #expect(err.field == "--filter" && err.message.contains("no-such-run"))
    }

    @Test(.timeLimit(.minutes(1))) func backgroundCopySleepsWhenOff() {
        let copy = CPUProfileCapture.BackgroundCopy(chunks: [1 << 16, 1 << 16], layers: 2)
        defer { copy.stop() }
        usleep(100_000)
        let loopsBefore = copy.idleLoops.load(ordering: .relaxed)
        #expect(loopsBefore <= 1)
        let rate = copy.during { usleep(50_000) }
        #expect(rate > 0)
        usleep(100_000)
        let loopsAfter = copy.idleLoops.load(ordering: .relaxed)
        #expect(loopsAfter <= 2)
    }
}

@Suite struct QuietStateTests {
    /// A round that slows every placement alike changes nothing: the times are the quiet round's
    /// windows (a 10 and 12 ms pair, measured again at 20 and 24 ms in a busy round).
    @Test func busyRoundScalesOut() {
        let t = QuietState.groupTimes([[10, 20, 10], [12, 24, 12]], rule: .quiet)
        #expect(abs(t[0] - 10) < 1e-9 && abs(t[1] - 12) < 1e-9)
    }

    /// One window hit by a slow spell moves neither placement: by hand, the rounds' levels are
    /// sqrt(10 * 12), sqrt(10 * 12) and sqrt(10 * 30); each run's median ratio to its round comes
    /// from the two clean rounds, so the times are 10 and 12 ms.
    @Test func oneSlowWindowIsOutvoted() {
        let t = QuietState.groupTimes([[10, 10, 10], [12, 12, 30]], rule: .quiet)
        #expect(abs(t[0] - 10) < 1e-9 && abs(t[1] - 12) < 1e-9)
    }

    /// Two placements that trade places from round to round are equal, at the quietest round's
    /// level: sqrt(10 * 11) = 10.488 ms.
    @Test func pairedTieIsATie() {
        let t = QuietState.groupTimes([[10, 30, 12], [11, 27, 12]], rule: .quiet)
        #expect(abs(t[0] - 110.0.squareRoot()) < 1e-9 && abs(t[1] - 110.0.squareRoot()) < 1e-9)
    }

    /// An even count of rounds takes the mean of the middle two ratios. By hand: the levels are
    /// sqrt(4 * 9) = 6, 6, sqrt(8 * 2) = 4 and 4; both runs' ratios are 0.5, 2/3, 1.5 and 2, whose
    /// median is 13/12; times the lowest level 4: 13/3 ms each. (Each run's own lowest window would
    /// give 2 ms; arithmetic-mean levels 6.5 and 5 would give other values.)
    @Test func evenRoundsTakeTheMiddleTwo() {
        let t = QuietState.groupTimes([[4, 9, 8, 2], [9, 4, 2, 8]], rule: .quiet)
        #expect(abs(t[0] - 13.0 / 3) < 1e-9 && abs(t[1] - 13.0 / 3) < 1e-9)
    }

    /// The gate on a scripted probe, by hand. Calibration reads 5, 3, 4, 3.5 and 9: the medians of
    /// three consecutive readings are 4, 3.5 and 4, so the quiet level is 3.5 and a reading is quiet
    /// up to 1.15 x 3.5 = 4.025. The first attempt waits through 6 and 7 to 4.0, and is retried
    /// because the reading after it is 6; the second waits through 5 to 3.9, reads 3.6 after it and
    /// is kept. The readings 6, 7, 4 then 6, 5, 3.9 and 3.6 do not lower the level (their medians of
    /// three are at least 3.9).
    @Test func gateWaitsAndRetries() {
        final class Script: @unchecked Sendable { var values: [Double] = [5, 3, 4, 3.5, 9, 6, 7, 4.0, 6, 5, 3.9, 3.6] }
        let script = Script()
        let gate = QuietState.Gate { script.values.removeFirst() }
        gate.calibrate(readings: 5)
        #expect(gate.level == 3.5 && abs(gate.threshold - 4.025) < 1e-12)
        var runs = 0
        let attempts = gate.measure { () -> Double in runs += 1; return runs == 1 ? 10 : 12 }
        #expect(attempts.map(\.value) == [10, 12] && attempts.map(\.before) == [4.0, 3.9] && attempts.map(\.after) == [6, 3.6])
        #expect(gate.readings == 12 && script.values.isEmpty && gate.level == 3.5)
        // The kept value is the quiet attempt's, even though the busy one was lower.
        #expect(gate.kept(attempts, lowest: { $0 }) == 12)
    }

    /// A machine that is never quiet: each attempt waits `maxWaitReadings` readings, then measures
    /// anyway; after `maxAttempts` the lowest value is kept.
    @Test func gateGivesUpAfterItsAttempts() {
        final class Script: @unchecked Sendable { var n = 0 }
        let script = Script()
        // Level 1 from the first three readings, then only 2s.
        let gate = QuietState.Gate { script.n += 1; return script.n <= 3 ? 1 : 2 }
        gate.maxWaitReadings = 5
        gate.maxAttempts = 3
        gate.calibrate(readings: 3)
        var values = [7.0, 5, 6]
        let attempts = gate.measure { values.removeFirst() }
        #expect(attempts.count == 3 && script.n == 3 + 3 * (5 + 1))
        #expect(gate.kept(attempts, lowest: { $0 }) == 5)
    }

    /// A reading is judged against the level of the moment it is taken. By hand: calibration reads
    /// 4, 4, 4 and 3 (medians of three 4 and 4: level 4, quiet up to 4.6). The reading before the
    /// attempt, 4.5, is quiet; the reading after it, 3, makes the last three 3, 4.5 and 3, whose median
    /// lowers the level to 3 (quiet up to 3.45). The attempt is kept at once: judged against the new
    /// level the reading before it would have been busy and the attempt retried.
    @Test func gateJudgesAReadingWhenTaken() {
        final class Script: @unchecked Sendable { var values: [Double] = [4, 4, 4, 3, 4.5, 3] }
        let script = Script()
        let gate = QuietState.Gate { script.values.removeFirst() }
        gate.calibrate(readings: 4)
        #expect(gate.level == 4)
        let attempts = gate.measure { 1.0 }
        #expect(attempts.count == 1 && attempts[0].quietBefore && attempts[0].quietAfter && script.values.isEmpty)
        #expect(gate.level == 3 && !gate.isQuiet(4.5))
    }

    /// The contention probe times the same GEMMs on both sides and its copy thread really runs: two
    /// readings in order, every time positive, and the copy's bytes counted while the GEMMs ran
    /// beside it (a copy that never started would leave the rate at 0).
    @Test func contentionProbeReadsBothSides() {
        let probe = QuietState.ContentionProbe()
        let first = probe.reading(), second = probe.reading()
        #expect(first.at == 0 && second.at > 0)
        #expect([first, second].allSatisfy { $0.alone > 0 && $0.shared > 0 && $0.ratio.isFinite })
        #expect(probe.lastCopyBytesPerSecond > 1e8)
    }

    /// Windows of unequal counts have no paired estimate.
    @Test func unequalRoundsAreRefused() {
        #expect(QuietState.groupTimes([[10, 20], [12]], rule: .quiet).allSatisfy { $0.isNaN })
        #expect(QuietState.tablePoint([3, 2, 5], rule: .quiet) == 2)
    }
}
