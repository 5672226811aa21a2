import Testing
@testable import PlannerCore

/// Step times of a two-layer model worked out on paper (see `Fixtures.tinyModel` for its bytes).
@Suite struct HandComputedTests {
    /// KV offload, batch 4, 1,000 cached tokens, weights streamed, link 1 GB/s, GPU so fast (1e16 B/s,
    /// 1e20 FLOP/s) that a layer's compute is a few nanoseconds (its 41.5 MB of weights and KV read in
    /// 4 ns), hence the 10 ns tolerance.
    ///
    /// Per layer the H2D engine moves attention weights 8,390,656 B, KV 4 x 1000 x 4096 = 16,384,000 B,
    /// FFN weights 16,779,264 B: 41,553,920 B = 41.55392 ms at 1e9 B/s. The compute stream waits on
    /// them and costs nothing, so a steady step is two layers of copies: 83.10784 ms.
    @Test func linkBoundStep() throws {
        let hw = Fixtures.device(linkBytesPerSecond: 1e9, gpuBytesPerSecond: 1e16, flops: 1e20, kernelSeconds: 0)
        let plan = ExecutionPlan(model: Fixtures.tinyModel, hardware: hw, batch: 4, weights: .host,
                                 placement: TokenPlacement(hostKV: 1000), phase: .decodeStep(context: 1000))
        let r = try Fixtures.run(plan)
        #expect(abs(r.seconds - 0.08310784) < 1e-8)
        #expect(r.bytes[.hostToDevice]?["kv"] ?? -1 == Double(2 * 16_384_000))
        #expect(r.bytes[.hostToDevice]?["weights"] ?? -1 == Double(2 * (8_390_656 + 16_779_264)))
        // The new token's KV goes back to host: 4 sequences x 4096 B per layer.
        #expect(r.bytes[.deviceToHost]?["kv"] ?? -1 == Double(2 * 4 * 4096))
    }

    /// All on GPU, batch 4, 1,000 cached tokens; GPU memory 1e12 B/s, 1 us per kernel, 1e20 FLOP/s
    /// (every GEMM here is memory-bound by a factor of a million).
    /// Each kernel costs 1 us + bytes / 1e12 (bytes read and written):
    ///   norm            2 x 4 x 1024 x 2 = 16,384 B              -> 1.016384 us
    ///   QKV GEMM        1024 x 3072 x 2 + 4 x (1024 + 3072) x 2 = 6,324,224 B -> 7.324224 us
    ///   attention       (2 x 4 x 1001 x 1024 + 2 x 4 x 8 x 128) x 2 = 16,416,768 B -> 17.416768 us
    ///   out GEMM        1024 x 1024 x 2 + 4 x 2048 x 2 = 2,113,536 B -> 3.113536 us
    ///   residual        3 x 4 x 1024 x 2 = 24,576 B              -> 1.024576 us
    ///   FFN: norm 1.016384, fc1 (8,388,608 + 40,960 B) 9.429568, ReLU (65,536 B) 1.065536,
    ///        fc2 9.429568, residual 1.024576                        -> 21.965632 us
    ///   layer = 1.016384 + 7.324224 + 17.416768 + 3.113536 + 1.024576 + 21.965632 = 51.86112 us
    ///   head: norm 1.016384 + GEMM 1024 x 1024 (2,113,536 B) 3.113536 = 4.12992 us
    ///   step = 2 x 51.86112 + 4.12992 = 107.85216 us
    @Test func computeBoundStep() throws {
        let hw = Fixtures.device(linkBytesPerSecond: 1e9, gpuBytesPerSecond: 1e12, flops: 1e20, kernelSeconds: 1e-6)
        let plan = ExecutionPlan(model: Fixtures.tinyModel, hardware: hw, batch: 4, weights: .gpu,
                                 placement: TokenPlacement(gpuKV: 1000), phase: .decodeStep(context: 1000))
        let r = try Fixtures.run(plan)
        #expect(abs(r.seconds - 107.85216e-6) < 1e-12)
        // As played per decode step: the compute stream's tasks add up to the step; the GEMM kinds
        // (QKV with its norm 8.340608, out with its residual 4.138112, FFN 21.965632 a layer, head
        // 4.12992) to 2 x 34.444352 + 4.12992 = 73.018624 us, attention to 2 x 17.416768 = 34.833536 us.
        #expect(abs(r.playedPerDecodeStep(.compute) - 107.85216e-6) < 1e-12)
        #expect(abs(r.playedPerDecodeStep(.compute, kinds: [.qkv, .outProjection, .ffn, .head]) - 73.018624e-6) < 1e-12)
        #expect(abs(r.playedPerDecodeStep(.compute, kinds: [.attention]) - 34.833536e-6) < 1e-12)
        #expect(r.totalBytes(.hostToDevice) == 0)
        #expect(abs((r.busy[.compute] ?? 0) - 1) < 1e-9)
    }

    /// Both matter: link 0.5 GB/s (layer loads 16.781312 + 32.768 + 33.558528 = 83.10784 ms), every
    /// kernel 5 ms and nothing else (bytes at 1e16 B/s add nanoseconds: 10 ns tolerance) (QKV = norm + GEMM 10 ms, attention 5, out 10, FFN 25: 50 ms a
    /// layer; head 10 ms). Played out by hand (ms):
    ///   step 1: L0 loads end 16.78 / 49.55 / 83.11; QKV 16.78-26.78, attention waits for KV to
    ///           49.55-54.55, out -64.55, FFN waits for its weights 83.11-108.11.
    ///           L1 loads 83.11-166.22 (KV at 132.66, FFN weights at 166.22); QKV 108.11-118.11,
    ///           attention 132.66-137.66, out -147.66, FFN 166.22-191.22; head ends 201.21568.
    ///   step 2: L0 loads may start when L0 of step 1 is done (108.11) and the engine is free
    ///           (166.22): FFN weights in at 249.32352; the step's FFN of L1 starts when its weights
    ///           are in at 332.43136, ends 357.43136; head ends 367.43136.
    ///   step = 367.43136 - 201.21568 = 166.21568 ms: the link's 2 x 83.10784, while the sum over
    ///   layers of max(link, compute) plus the head would say 176.21568.
    ///   The link is busy for the whole window: the step is the link's time, its loads run back to
    ///   back, and the trailing step's first loads follow them as a steady engine's next step does.
    @Test func overlappedStep() throws {
        let hw = Fixtures.device(linkBytesPerSecond: 0.5e9, gpuBytesPerSecond: 1e16, flops: 1e20, kernelSeconds: 5e-3)
        let plan = ExecutionPlan(model: Fixtures.tinyModel, hardware: hw, batch: 4, weights: .host,
                                 placement: TokenPlacement(hostKV: 1000), phase: .decodeStep(context: 1000))
        let r = try Fixtures.run(plan)
        #expect(abs(r.windowStart - 0.20121568) < 1e-8)
        #expect(abs(r.windowEnd - 0.36743136) < 1e-8)
        #expect(abs(r.seconds - 0.16621568) < 1e-8)
        #expect(abs((r.busy[.hostToDevice] ?? 0) - 1) < 1e-9)
    }

    /// ACT recomputation FLOPs: OPT-13B recomputes K and V of one token at one layer with
    /// 2 x 5120 x 2 x 5120 = 104,857,600 FLOPs, and its checkpoint (10,240 B) is half its KV entry
    /// (20,480 B), as HybridServe states for multi-head models.
    @Test func actCheckpointIsHalfOfKVForMultiHead() throws {
        let m = try ModelCatalog.model(named: "opt-13b")
        #expect(m.actRecomputeFlopsPerToken == 104_857_600)
        #expect(m.kvBytesPerToken == 20_480)
        #expect(m.actBytesPerToken == 10_240)
        // Grouped-query: Llama-3.1-8B keeps 8 KV heads of 128, so KV is 4,096 B and ACT 8,192 B.
        let l = try ModelCatalog.model(named: "llama-3.1-8b")
        #expect(l.kvBytesPerToken == 4_096)
        #expect(l.actBytesPerToken == 8_192)
    }

    /// Parameter counts published for the checkpoints (model cards / `num_parameters()`):
    /// OPT-6.7B 6,658,473,984; Llama-2-7B 6,738,415,616; Llama-3.1-8B 8,030,261,248.
    @Test func weightBytesMatchPublishedParameterCounts() throws {
        let expected: [(String, Double)] = [("opt-6.7b", 6_658_473_984), ("llama-2-7b", 6_738_415_616), ("llama-3.1-8b", 8_030_261_248)]
        for (name, params) in expected {
            let m = try ModelCatalog.model(named: name)
            #expect(m.totalWeightBytes == 2 * params, "\(name)")
        }
    }

    /// Analytic GEMM against the H100 reference (PyTorch 2.11, CUDA 13.0, 2026-11-22): OPT-30B FFN up
    /// projection, m = 2048: measured 1135.2 us; OPT-6.7B QKV at m = 1: measured 55.2 us. The roofline
    /// should land within 25% of each (it is fitted to medians, not to these points).
    @Test func gemmNearH100Reference() throws {
        let cost = try AnalyticCostModel(hardware: HardwareCatalog.h100sxm, dtype: .fp16)
        let big = cost.seconds(.gemm(m: 2048, n: 28672, k: 7168))
        let small = cost.seconds(.gemm(m: 1, n: 12288, k: 4096))
        #expect(abs(big / 1135.2e-6 - 1) < 0.25)
        #expect(abs(small / 55.2e-6 - 1) < 0.25)
    }

    /// Link: the H100 host measured 1225.0 us for a pinned 64 MiB copy and 27.5 us for 1 MiB.
    @Test func linkNearH100Reference() {
        let ch = HardwareCatalog.h100sxm.link.h2dPinned
        #expect(abs(ch.seconds(bytes: 67_108_864) / 1225.0e-6 - 1) < 0.05)
        #expect(abs(ch.seconds(bytes: 1_048_576) / 27.5e-6 - 1) < 0.10)
    }
}
