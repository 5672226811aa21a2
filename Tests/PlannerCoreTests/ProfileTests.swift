import Foundation
import Testing
@testable import PlannerCore

@Suite struct ProfileTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let h100 = root.appendingPathComponent("profiles/reference-h100")
    static let rtx = root.appendingPathComponent("profiles/reference-rtx4090-llama-3.1-8b")

    static func temporaryCopy(of folder: URL) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("profile-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let copy = dir.appendingPathComponent(folder.lastPathComponent)
        try FileManager.default.copyItem(at: folder, to: copy)
        return copy
    }

    /// The H100 reference holds 260 GEMM, 64 attention and 12 copy sizes x 2 directions of
    /// measurements (shared/reference/h100-kernels.json).
    @Test func readsTheReferenceProfiles() throws {
        let p = try ProfileReader.read(Self.h100)
        #expect(p.gemm.count == 260 && p.attention.count == 64 && p.link.count == 24)
        #expect(p.meta.dtype == .fp16 && p.meta.hardware == "h100-sxm")
        let r = try ProfileReader.read(Self.rtx)
        #expect(r.meta.licence?.contains("MIT License") == true)
        #expect(r.gemm.count == 4 * 152)
    }

    @Test func malformedFileIsRejectedWithFileAndLine() throws {
        let copy = try Self.temporaryCopy(of: Self.h100)
        defer { try? FileManager.default.removeItem(at: copy.deletingLastPathComponent()) }
        let gemm = copy.appendingPathComponent("gemm.csv")
        var lines = try String(contentsOf: gemm, encoding: .utf8).split(separator: "\n").map(String.init)
        lines[4] = "1,12288,x,0.001"
        try (lines.joined(separator: "\n") + "\n").write(to: gemm, atomically: true, encoding: .utf8)
        let e = try #require(throws: InputError.self) { try ProfileReader.read(copy) }
        #expect(e.field == "reference-h100/gemm.csv:5")
        #expect(e.message.contains("k"))
        try "m,n,seconds\n1,2,3\n".write(to: gemm, atomically: true, encoding: .utf8)
        let h = try #require(throws: InputError.self) { try ProfileReader.read(copy) }
        #expect(h.field == "reference-h100/gemm.csv:1" && h.message.contains("header"))
        try FileManager.default.removeItem(at: copy.appendingPathComponent("profile.json"))
        let m = try #require(throws: InputError.self) { try ProfileReader.read(copy) }
        #expect(m.field.hasSuffix("profile.json"))
    }

    /// Importing twice leaves the same rows; a malformed import after a good one leaves the store as
    /// it was; a stored profile loads back equal to the folder.
    @Test func storeImportIsIdempotentAndAtomic() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("store-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try ProfileStore(path: dir.appendingPathComponent("p.sqlite").path)
        try store.importProfile(from: Self.h100)
        try store.importProfile(from: Self.h100)
        try store.importProfile(from: Self.rtx)
        var s = try store.summaries()
        #expect(s.map(\.name) == ["reference-h100", "reference-rtx4090-llama-3.1-8b"])
        #expect(s[0].gemmRows == 260 && s[0].attentionRows == 64 && s[0].linkRows == 24)
        let broken = try Self.temporaryCopy(of: Self.h100)
        defer { try? FileManager.default.removeItem(at: broken.deletingLastPathComponent()) }
        try "direction,memory,bytes,seconds\nh2d,pinned,1024,-1\n".write(to: broken.appendingPathComponent("link.csv"), atomically: true, encoding: .utf8)
        #expect(throws: InputError.self) { try store.importProfile(from: broken) }
        s = try store.summaries()
        #expect(s[0].linkRows == 24)
        let loaded = try store.load(name: "reference-h100")
        let folder = try ProfileReader.read(Self.h100)
        #expect(Set(loaded.gemm.map { "\($0.m),\($0.n),\($0.k),\($0.seconds)" }) == Set(folder.gemm.map { "\($0.m),\($0.n),\($0.k),\($0.seconds)" }))
        #expect(loaded.meta == folder.meta)
    }

    /// A folder that measures the same GEMM twice (100 us and 300 us) is stored with their mean,
    /// 200 us, as the cost model reading the folder uses: the store and the folder predict alike.
    @Test func storeAveragesRepeatedMeasurements() throws {
        let copy = try Self.temporaryCopy(of: Self.h100)
        defer { try? FileManager.default.removeItem(at: copy.deletingLastPathComponent()) }
        try "m,n,k,seconds\n7,4096,4096,100e-6\n7,4096,4096,300e-6\n8,4096,4096,250e-6\n"
            .write(to: copy.appendingPathComponent("gemm.csv"), atomically: true, encoding: .utf8)
        let store = try ProfileStore(path: copy.deletingLastPathComponent().appendingPathComponent("p.sqlite").path)
        try store.importProfile(from: copy)
        let loaded = try store.load(name: copy.lastPathComponent)
        #expect(loaded.gemm.count == 2)
        #expect(abs(try #require(loaded.gemm.first { $0.m == 7 }).seconds - 200e-6) < 1e-15)
        let fromFolder = try ProfileCostModel(profile: try ProfileReader.read(copy), hardware: HardwareCatalog.h100sxm)
        let fromStore = try ProfileCostModel(profile: loaded, hardware: HardwareCatalog.h100sxm)
        #expect(fromFolder.seconds(.gemm(m: 7, n: 4096, k: 4096)) == fromStore.seconds(.gemm(m: 7, n: 4096, k: 4096)))
    }

    /// Between two measured sizes the profile-backed model interpolates linearly: the H100's QKV
    /// GEMM of OPT-6.7B (n = 12288, k = 4096) measured 53.76 us at m = 256 and 83.84 us at m = 512, so
    /// m = 384 is their mean. Beyond the largest m it scales by the roofline (about 2x for twice the
    /// rows of a compute-bound GEMM) and says so; an unmeasured shape is scaled from a measured one.
    @Test func interpolatesAndReportsExtrapolation() throws {
        let p = try ProfileReader.read(Self.h100)
        let cost = try ProfileCostModel(profile: p, hardware: HardwareCatalog.h100sxm)
        let at = { (m: Int) in p.gemm.first { $0.m == m && $0.n == 12288 && $0.k == 4096 }!.seconds }
        #expect(abs(at(256) - 53.76e-6) < 0.1e-6 && abs(at(512) - 83.84e-6) < 0.1e-6)
        #expect(abs(cost.seconds(.gemm(m: 384, n: 12288, k: 4096)) - (at(256) + at(512)) / 2) < 1e-12)
        #expect(cost.stats.snapshot["gemm"]?[.measured] == 1)
        let big = cost.seconds(.gemm(m: 65536, n: 12288, k: 4096))
        #expect(abs(big / (2 * at(32768)) - 1) < 0.05)
        #expect(cost.stats.snapshot["gemm"]?[.extrapolated] == 1)
        _ = cost.seconds(.gemm(m: 64, n: 5000, k: 5000))
        #expect(cost.stats.snapshot["gemm"]?[.otherShape] == 1)
        #expect(cost.stats.extrapolated)
        // Copies: between 1 MiB (27.49 us) and 4 MiB (86.56 us) pinned h2d.
        let mid = cost.seconds(.transfer(bytes: 2.5 * 1_048_576, direction: .hostToDevice, memory: .pinned))
        #expect(mid > 27.49e-6 && mid < 86.56e-6)
    }

    /// The profile-backed model predicts the GEMM tables better than the roofline does (leave one
    /// out, so no point predicts itself), and decode attention within 15% on both GPUs.
    @Test func profileBeatsRooflineOnKernels() throws {
        for folder in [Self.h100, Self.rtx] {
            let p = try ProfileReader.read(folder)
            let acc = try Validation.kernelAccuracy(p, hardware: try p.hardware(in: folder))
            let gemm = try #require(acc.first { $0.table == "gemm" })
            #expect(gemm.profileMAPE < gemm.analyticMAPE, "\(p.name)")
            #expect(try #require(acc.first { $0.table == "decode attention" }).profileMAPE < 0.15, "\(p.name)")
            // GEMMs are where the roofline is calibrated: within 15% on average.
            #expect(try #require(acc.first { $0.table == "gemm" }).analyticMAPE < 0.15)
        }
    }

    /// Validation of end-to-end runs: three placements of one group whose measured steps are 10, 12
    /// and 11 ms. The simulator predicts the all-GPU-KV placement fastest (nothing crosses the link),
    /// so the planner picks it; the measured best was the host-KV one, so the regret is
    /// 1 - (8 / 12 ms) / (8 / 10 ms) = 1/6.
    @Test func validateReportsChoiceAndRegret() throws {
        let copy = try Self.temporaryCopy(of: Self.h100)
        defer { try? FileManager.default.removeItem(at: copy.deletingLastPathComponent()) }
        let rows = """
        run,group,model,layers,batch,context,weights_gpu_fraction,gpu_kv,gpu_act,host_kv,host_act,recompute,host_memory,step_seconds
        host-kv,g,opt-6.7b,2,8,512,1,0,0,512,0,0,pinned,0.010
        gpu-kv,g,opt-6.7b,2,8,512,1,512,0,0,0,0,pinned,0.012
        host-act,g,opt-6.7b,2,8,512,1,0,0,0,512,0,pinned,0.011

        """
        try rows.write(to: copy.appendingPathComponent("e2e.csv"), atomically: true, encoding: .utf8)
        let p = try ProfileReader.read(copy)
        let cost = try ProfileCostModel(profile: p, hardware: HardwareCatalog.h100sxm)
        let (predictions, groups) = try Validation.replay(p, hardware: HardwareCatalog.h100sxm, cost: cost)
        #expect(predictions.count == 3)
        let g = try #require(groups.first)
        #expect(g.chosen == "gpu-kv" && g.best == "host-kv")
        #expect(abs(g.regret - 1.0 / 6) < 1e-9)
        #expect(abs(g.measuredBest - 800) < 1e-9)
    }
}

/// Leave-one-out without rebuilding: for every measured point of both reference profiles, the
/// lookup that leaves the point out equals the lookup of a model rebuilt from the profile without
/// that point (what validation did before, at O(n^2)), to 1e-12 relative: where a size was measured
/// several times, the left-out sample is subtracted from their sum rather than the rest re-added.
@Suite struct LeaveOneOutTests {
    @Test(arguments: [ProfileTests.h100, ProfileTests.rtx])
    func leavingOutEqualsRebuilding(_ folder: URL) throws {
        let profile = try ProfileReader.read(folder)
        let hw = try profile.hardware(in: folder)
        let model = try ProfileCostModel(profile: profile, hardware: hw)
        func check(_ without: Profile, _ op: PlannerCore.Operation, _ measured: Double) throws {
            let rebuilt = try ProfileCostModel(profile: without, hardware: hw).seconds(op)
            let loo = model.seconds(op, leavingOut: measured)
            #expect(abs(loo - rebuilt) <= 1e-12 * rebuilt, "\(op): \(loo) against \(rebuilt)")
        }
        for (i, g) in profile.gemm.enumerated() where i % 3 == 0 {
            var p = profile; p.gemm.remove(at: i)
            try check(p, .gemm(m: g.m, n: g.n, k: g.k), g.seconds)
        }
        for (i, a) in profile.attention.enumerated() {
            var p = profile; p.attention.remove(at: i)
            let op: PlannerCore.Operation = a.kind == .decode
                ? .decodeAttention(batch: a.batch, heads: a.heads, kvHeads: a.kvHeads, headDim: a.headDim, context: a.context)
                : .prefillAttention(batch: a.batch, heads: a.heads, kvHeads: a.kvHeads, headDim: a.headDim, queries: a.queries, context: a.context)
            try check(p, op, a.seconds)
        }
        for (i, l) in profile.link.enumerated() {
            var p = profile; p.link.remove(at: i)
            try check(p, .transfer(bytes: l.bytes, direction: l.direction, memory: l.memory), l.seconds)
        }
    }
}
