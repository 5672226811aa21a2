import Foundation
import Testing
@testable import PlannerCore

/// Memory contention (`HardwareSpec.contention`): kernels and copies that overlap run at their
/// shared durations, played out by the event engine piece by piece.
@Suite struct ContentionTests {
    static func graph(_ tasks: [(Resource, Double, Double, [Int32])]) -> TaskGraph {
        var g = TaskGraph()
        for (r, alone, shared, deps) in tasks {
            g.add(r, r == .compute ? .ffn : .weightLoad, seconds: alone, shared: shared, bytes: 0, layer: 0, step: 0, deps: deps)
        }
        return g
    }

    /// A 10 ms kernel (20 ms shared) and a 4 ms copy (8 ms shared) start together. Both run shared:
    /// the copy ends at 8 ms, when the kernel has done 8/20 of its work; the remaining 0.6 takes 6 ms
    /// alone, so the kernel ends at 14 ms.
    @Test func overlappingKernelAndCopy() throws {
        let t = try EventEngine.run(Self.graph([(.compute, 0.010, 0.020, []), (.hostToDevice, 0.004, 0.008, [])]))
        #expect(abs(t.end[1] - 0.008) < 1e-12)
        #expect(abs(t.end[0] - 0.014) < 1e-12)
    }

    /// A kernel that waits for the copy never overlaps it: 4 ms, then 10 ms.
    @Test func dependentTasksRunAlone() throws {
        let t = try EventEngine.run(Self.graph([(.hostToDevice, 0.004, 0.008, []), (.compute, 0.010, 0.020, [0])]))
        #expect(abs(t.end[0] - 0.004) < 1e-12)
        #expect(abs(t.start[1] - 0.004) < 1e-12 && abs(t.end[1] - 0.014) < 1e-12)
    }

    /// Two copies (H2D 4 ms / 8 shared, D2H 3 ms / 6 shared) beside a 10 ms kernel (20 shared). The
    /// copies slow down because of the kernel, not because of each other. Until 6 ms all three run
    /// shared: the D2H copy ends (6/6), the H2D copy has done 6/8 and the kernel 6/20. The H2D copy's
    /// last quarter takes 2 ms more (shared, 8 ms), the kernel reaching 0.4 at 8 ms; its last 0.6 runs
    /// alone in 6 ms: 14 ms. A second kernel queued behind it (5 ms, 9 shared) then runs alone: 19 ms.
    @Test func copiesShareWithKernelsOnly() throws {
        let t = try EventEngine.run(Self.graph([(.compute, 0.010, 0.020, []), (.hostToDevice, 0.004, 0.008, []),
                                               (.deviceToHost, 0.003, 0.006, []), (.compute, 0.005, 0.009, [])]))
        #expect(abs(t.end[2] - 0.006) < 1e-12)
        #expect(abs(t.end[1] - 0.008) < 1e-12)
        #expect(abs(t.end[0] - 0.014) < 1e-12)
        #expect(abs(t.start[3] - 0.014) < 1e-12 && abs(t.end[3] - 0.019) < 1e-12)
    }

    /// A copy that waits for a first kernel (A, 5 ms) and then overlaps the second (B, 10 ms alone,
    /// 15 shared). A runs alone from 0 to 5 ms; B and the copy (2 ms alone, 4 shared) start at 5 and
    /// run shared until the copy ends at 9 ms, when B has done 4/15 of its work; the remaining 11/15
    /// takes 11/15 x 10 ms alone, so B ends at 16.333 ms.
    @Test func copyJoiningMidKernel() throws {
        let t = try EventEngine.run(Self.graph([(.compute, 0.005, 0.005, []), (.compute, 0.010, 0.015, []), (.hostToDevice, 0.002, 0.004, [0])]))
        #expect(abs(t.end[2] - 0.009) < 1e-12)
        #expect(abs(t.end[1] - (0.009 + 11.0 / 15.0 * 0.010)) < 1e-12)
    }

    /// The GEMM factor is interpolated in log m: halfway between m = 1 (1.6) and m = 64 (1.3) in log
    /// terms is m = 8: 1.45; flat beyond the ends.
    @Test func gemmFactorInterpolatesInLogRows() {
        let c = MemoryContention(gemmSlowdown: [[1, 1.6], [64, 1.3], [1024, 1.0]], streamSlowdown: 1.5, copySlowdown: 1.2)
        #expect(abs(c.gemmFactor(rows: 8) - 1.45) < 1e-12)
        #expect(c.gemmFactor(rows: 1) == 1.6 && c.gemmFactor(rows: 4096) == 1.0)
        #expect(abs(c.gemmFactor(rows: 256) - 1.15) < 1e-12)
        #expect(c.factor(.transfer(bytes: 1, direction: .hostToDevice, memory: .pinned)) == 1.2)
        #expect(c.factor(.decodeAttention(batch: 1, heads: 1, kvHeads: 1, headDim: 64, context: 8)) == 1.5)
    }

    /// A simulated step lies between the step with no contention and the step with every task at its
    /// shared duration; it is longer than the first when copies overlap kernels, and unchanged when
    /// nothing is copied (weights and KV resident).
    /// The device streams weights over a 2 GB/s link and reads them at 4 GB/s, so that copies and
    /// kernels take times of the same order and overlap for most of a layer.
    @Test func simulatedStepBetweenBounds() throws {
        let hw = Fixtures.device(linkBytesPerSecond: 2e9, gpuBytesPerSecond: 4e9, flops: 1e13, kernelSeconds: 1e-6)
        let c = MemoryContention(gemmSlowdown: [[1, 1.6], [64, 1.3], [1024, 1.0]], streamSlowdown: 1.5, copySlowdown: 1.2)
        func step(_ hw: HardwareSpec, _ weights: WeightPlacement, _ p: TokenPlacement) throws -> Double {
            let plan = ExecutionPlan(model: Fixtures.tinyModel, hardware: hw, batch: 8, weights: weights, placement: p, phase: .decodeStep(context: 512))
            return try Fixtures.run(plan).seconds
        }
        for (weights, placement) in [(WeightPlacement.host, TokenPlacement(hostKV: 512)), (.host, TokenPlacement(gpuKV: 512)),
                                     (WeightPlacement(gpuFraction: 0.5), TokenPlacement(gpuAct: 64, hostKV: 384, hostAct: 64))] {
            let alone = try step(hw, weights, placement)
            var shared = hw
            shared.contention = c
            let contended = try step(shared, weights, placement)
            // Every task at its shared duration: kernels slowed by at most 1.6, copies by 1.2.
            var slow = hw
            slow.gpu.gemmBytesPerSecond /= 1.6; slow.gpu.streamBytesPerSecond /= 1.6; slow.gpu.achievedMatmulFlops["fp16"]! /= 1.6
            slow.gpu.kernelSeconds *= 1.6
            slow.link.scaleBandwidth(by: 1 / 1.2)
            let bound = try step(slow, weights, placement)
            #expect(contended > alone * 1.01, "\(weights) \(placement): \(contended) vs \(alone)")
            #expect(contended <= bound * (1 + 1e-9), "\(weights) \(placement): \(contended) vs bound \(bound)")
        }
        var resident = hw
        resident.contention = c
        #expect(try step(resident, .gpu, TokenPlacement(gpuKV: 512)) == step(hw, .gpu, TokenPlacement(gpuKV: 512)))
        var neutral = hw
        neutral.contention = MemoryContention(gemmSlowdown: [[1, 1]], streamSlowdown: 1, copySlowdown: 1)
        #expect(try step(neutral, .host, TokenPlacement(hostKV: 512)) == step(hw, .host, TokenPlacement(hostKV: 512)))
    }

    /// The reported step is a steady one on both sides: its first layer runs beside the loads of its
    /// second (as before), and its last layer beside the next step's first loads, as back-to-back steps
    /// run in an engine. The link (20 GB/s: a layer's 25 MB of weights in 1.3 ms) is fast beside the
    /// kernels (4 GB/s: about 6 ms of weight reads a layer), so a layer's own loads are over before it
    /// starts: without the next step, the last layer's Q/K/V would run alone.
    @Test func reportedStepOverlapsTheNextStepsLoads() throws {
        var hw = Fixtures.device(linkBytesPerSecond: 2e10, gpuBytesPerSecond: 4e9, flops: 1e13, kernelSeconds: 1e-6)
        hw.contention = MemoryContention(gemmSlowdown: [[1, 1.6], [1024, 1.0]], streamSlowdown: 1.5, copySlowdown: 1.2)
        let plan = ExecutionPlan(model: Fixtures.tinyModel, hardware: hw, batch: 8, weights: .host, placement: TokenPlacement(gpuKV: 512),
                                 phase: .decodeStep(context: 512))
        let r = try Fixtures.run(plan)
        let g = r.graph
        let qkv = (0 ..< g.count).filter { r.reportedSteps.contains(Int(g.step[$0])) && g.taskKind($0) == .qkv }
        #expect(qkv.map { Int(g.layer[$0]) } == [0, 1])
        for i in qkv {
            let played = r.timeline.end[i] - r.timeline.start[i]
            #expect(played > g.seconds[i] * 1.01, "layer \(g.layer[i]): played \(played) alone \(g.seconds[i])")
        }
    }

    /// Bad contention entries are rejected naming the field and the allowed range.
    @Test func badContentionIsRejected() throws {
        let hw = Fixtures.device(linkBytesPerSecond: 1e9, gpuBytesPerSecond: 1e12, flops: 1e14, kernelSeconds: 0)
        var base = try JSONSerialization.jsonObject(with: JSONEncoder().encode(hw)) as! [String: Any]
        func decode(_ contention: Any) -> String {
            base["contention"] = contention
            do {
                _ = try HardwareCatalog.decode(try JSONSerialization.data(withJSONObject: base), field: "dev")
                return "accepted"
            } catch { return "\(error)" }
        }
        #expect(decode(["gemmSlowdown": [[1, 1.5], [64, 1.2]], "streamSlowdown": 1.4, "copySlowdown": 1.1]) == "accepted")
        #expect(decode(["gemmSlowdown": [[1, 1.5]], "streamSlowdown": 1.4, "copySlowdown": 0.5]).contains("dev.contention.copySlowdown: must be a factor from 1 to 10"))
        #expect(decode(["gemmSlowdown": [[64, 1.5], [1, 1.2]], "streamSlowdown": 1.4, "copySlowdown": 1.1]).contains("dev.contention.gemmSlowdown[1][0]: rows m must rise"))
        #expect(decode(["gemmSlowdown": [[1, 1.5, 2]], "streamSlowdown": 1.4, "copySlowdown": 1.1]).contains("dev.contention.gemmSlowdown[0]: must be a pair"))
        #expect(decode(["gemmSlowdown": [], "streamSlowdown": 1.4, "copySlowdown": 1.1]).contains("dev.contention.gemmSlowdown: must hold at least one"))
        #expect(decode(["gemmSlowdown": [[1, 1.5]], "streamSlowdown": 1.4, "copySlowdown": 1.1, "memorySlowdown": 2]).contains("memorySlowdown"))
    }
}
