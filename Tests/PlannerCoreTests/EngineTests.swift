import Foundation
import Testing
@testable import PlannerCore

/// The engines' mechanisms on cases worked out by hand: CPU attention, a disk-host-GPU pipeline,
/// compressed bytes and their dequantisation, Accelerate's blocking copies, FlexGen's whole-tensor
/// placement; and the bad input each one brings.
@Suite("Engines")
struct EngineTests {
    /// `Fixtures.device` with a host CPU of round rates and, when asked, a disk.
    static func machine(link: Double = 1e9, latency: Double = 0, gpuBytes: Double = 1e16, flops: Double = 1e20, kernel: Double = 0,
                        hostBytes: Double = 10e9, diskRead: Double? = nil) -> HardwareSpec {
        var hw = Fixtures.device(linkBytesPerSecond: link, gpuBytesPerSecond: gpuBytes, flops: flops, kernelSeconds: kernel)
        if latency > 0 {
            let ch = LinkChannel(latencySeconds: latency, bytesPerSecond: link)
            hw.link = LinkSpec(name: "paper link", h2dPinned: ch, h2dPageable: ch, d2hPinned: ch, d2hPageable: ch)
        }
        hw.hostCPU = HostCPUSpec(name: "paper CPU", cores: 8, memoryBytesPerSecond: hostBytes, fp32FlopsPerSecond: 1e12,
                                 singleThreadCopyBytesPerSecond: 1e9)
        if let r = diskRead {
            hw.disk = DiskSpec(name: "paper disk", capacityBytes: 1e12, readBytesPerSecond: r, writeBytesPerSecond: r)
        }
        return hw
    }

    /// FlexGen's CPU attention, tiny model (2 layers, 8 heads of 128: K and V 2 x 1024 elements a
    /// token), batch 4, 1,000 cached tokens in host memory, weights on the GPU, host memory 10 GB/s.
    ///
    /// Per layer the CPU attends over 1,001 tokens (the step's own is written into the cache first):
    /// 4 x 1,001 x 2,048 = 8,200,192 elements, each moved 10 bytes (fp16 home read, fp32 workspace
    /// written: 2 + 4; read by the `bmm`s through the permuted view, no copy: 4) = 82,001,920 B =
    /// 8.200192 ms; the FLOPs (4 x 4 x 8 x 128 x 1,001 = 16.4 MFLOP at 1 TFLOP/s, 16 us) hide under
    /// it. Two layers: 16.400384 ms of host CPU a step.
    ///
    /// Over the link per layer: to the host the fp32 query (4 x 1,024 x 4 = 16,384 B) and the new
    /// fp16 K/V (4 x 2,048 x 2 = 16,384 B); back, the fp32 output (16,384 B). Nothing of the cache.
    @Test func cpuAttentionStep() throws {
        var plan = ExecutionPlan(model: Fixtures.tinyModel, hardware: Self.machine(), batch: 4, weights: .gpu,
                                 placement: TokenPlacement(hostKV: 1000), phase: .decodeStep(context: 1000))
        plan.engine = Engine(.flexgen)
        plan.attentionOnHost = true
        let r = try Fixtures.run(plan)
        let cpu = r.playedPerDecodeStep(.hostCPU, kinds: [.hostAttention])
        #expect(abs(cpu - 16.400384e-3) < 1e-9, "host CPU \(cpu)")
        #expect(abs((r.bytes[.deviceToHost]?["attention"] ?? 0) - 2 * 32_768) < 1e-6)
        #expect(abs((r.bytes[.hostToDevice]?["attention"] ?? 0) - 2 * 16_384) < 1e-6)
        #expect(r.bytes[.hostToDevice]?["kv"] == nil)
        // FlexGen's barrier keeps the layers in series: the step is the CPU's time plus the link's
        // (per layer 48 KiB of attention and 16 KiB of hidden states, 65.5 us at 1 GB/s) and no more.
        #expect(r.seconds >= cpu)
        #expect(r.seconds <= cpu + 2 * 65.536e-6 + 20e-6, "step \(r.seconds)")
        // The same cache streamed to the GPU instead moves 4 x 1,000 x 4,096 B a layer over the link.
        var streamed = plan
        streamed.attentionOnHost = false
        let s = try Fixtures.run(streamed)
        #expect(abs((s.bytes[.hostToDevice]?["kv"] ?? 0) - 2 * 16_384_000) < 1e-3)
    }

    /// Weights on disk (100 MB/s), copied on to the GPU over a 1 GB/s link, on ZeRO-Inference (five
    /// units of read-ahead). Each layer's 25,169,920 B (`Fixtures.tinyModel`) take 251.6992 ms to
    /// read and 25.16992 ms to copy. With the reads running ahead, the disk never waits for the link:
    /// a step is the disk's 503.3984 ms of reading, plus at most the last unit's copy; with the reads
    /// and copies in series it would be 553.73824 ms.
    @Test func diskHostGPUPipeline() throws {
        let hw = Self.machine(diskRead: 1e8)
        var plan = ExecutionPlan(model: Fixtures.tinyModel, hardware: hw, batch: 4,
                                 weights: WeightPlacement(gpuFraction: 0, diskFraction: 1),
                                 placement: TokenPlacement(gpuKV: 1000), phase: .decodeStep(context: 1000))
        plan.engine = Engine(.deepSpeedZeroInference)
        let r = try Fixtures.run(plan)
        let disk = r.playedPerDecodeStep(.diskRead, kinds: [.weightDiskRead])
        #expect(abs(disk - 0.5033984) < 1e-9, "disk \(disk)")
        #expect(r.seconds >= 0.5033984)
        #expect(r.seconds < 0.5033984 + 25.16992e-3 + 1e-6, "step \(r.seconds)")
        #expect(r.memory.disk.contains { abs($0.bytes - 2 * 25_169_920) < 1 }, "disk items \(r.memory.disk)")
        // Without read-ahead each read waits for the copy of the unit before it to be issued.
        plan.engine.traits.diskReadAheadUnits = 0
        let serial = try Fixtures.run(plan)
        #expect(serial.seconds > r.seconds + 20e-3, "no read-ahead \(serial.seconds) against \(r.seconds)")
    }

    /// 4-bit groups of 64: 32 bytes of codes plus an fp16 minimum and scale = 36 bytes per 64
    /// elements, 0.5625 B. The tiny model's layer has 12,582,912 matrix elements (Q, K, V, O 4 x
    /// 1024^2, FFN 2 x 1024 x 4096) and two 1,024-element norms, which FlexGen leaves uncompressed
    /// (`init_weight_list`: tensors of one dimension are not compressed): 7,077,888 + 4,096 =
    /// 7,081,984 B streamed a layer instead of 25,169,920.
    ///
    /// FlexGen dequantises with six eager kernels a tensor moving 13 B an element; at 1e12 B/s and
    /// 1 us a kernel: 12,582,912 x 13 / 1e12 = 163.577856 us + 6 tensors x 6 kernels x 1 us =
    /// 199.577856 us a layer, 399.155712 us a step.
    @Test func compressedWeightsAndTheirDequantisation() throws {
        #expect(Quantization(bits: 4, groupSize: 64).bytesPerElement == 36.0 / 64)
        let hw = Self.machine(gpuBytes: 1e12, kernel: 1e-6)
        var plan = ExecutionPlan(model: Fixtures.tinyModel, hardware: hw, batch: 4, weights: .host,
                                 placement: TokenPlacement(gpuKV: 1000), phase: .decodeStep(context: 1000))
        plan.engine = Engine(.flexgen)
        plan.compression.weights = Quantization(bits: 4, groupSize: 64)
        let r = try Fixtures.run(plan)
        #expect(abs((r.bytes[.hostToDevice]?["weights"] ?? 0) - 2 * 7_081_984) < 1e-3, "weights \(r.bytes[.hostToDevice] ?? [:])")
        let dequant = r.playedPerDecodeStep(.compute, kinds: [.dequantize])
        #expect(abs(dequant - 399.155712e-6) < 1e-12, "dequantisation \(dequant)")
    }

    /// Accelerate copies each module's weights with a blocking `.to()` right before it runs: nothing
    /// overlaps, so with a GPU that computes in nanoseconds a step is every copy's time end to end.
    /// Per layer 8 tensors (norm, Q, K, V, O; norm, fc1, fc2), each paying 10 us of latency, and
    /// 25,169,920 B at 1 GB/s: 25.16992 + 0.08 = 25.24992 ms; two layers 50.49984 ms. The ideal
    /// engine streams the same bytes as two copies a layer (the attention's weights, the FFN's)
    /// while the previous layer computes: 2 x (25.16992 + 0.02) = 50.37984 ms, since here compute
    /// is free and only the number of copies differs.
    @Test func accelerateCopiesAreSerial() throws {
        let hw = Self.machine(latency: 10e-6)
        var plan = ExecutionPlan(model: Fixtures.tinyModel, hardware: hw, batch: 4, weights: .host,
                                 placement: TokenPlacement(gpuKV: 1000), hostMemory: .pageable, phase: .decodeStep(context: 1000))
        plan.engine = Engine(.hfAccelerate)
        let r = try Fixtures.run(plan)
        let copies = r.playedPerDecodeStep(.hostToDevice)
        #expect(abs(copies - 50.49984e-3) < 1e-9, "copies \(copies)")
        #expect(r.seconds >= copies)
        #expect(r.seconds < copies + 1e-6, "step \(r.seconds)")
        plan.engine = .ideal
        let ideal = try Fixtures.run(plan)
        #expect(abs(ideal.seconds - 50.37984e-3) < 1e-9, "ideal \(ideal.seconds)")
    }

    /// DeepSpeed 0.7.7's gather: each fetched module's partitions are flattened, all-gathered and
    /// split, three device copies that read and write every byte, on the same stream as the
    /// partitions' host copies, so the next module's copy waits behind them. On a link of 1 GB/s and
    /// a GPU of 1e11 B/s (compute free, a 10-token cache), every streamed byte then costs
    /// 1 ns on the link plus 3 x 2 / 1e11 = 0.06 ns of gather, all in one chain: the step with
    /// the gather is longer than the one without by 6e-11 s a byte copied.
    @Test func deepSpeedGatherQueuesBehindTheCopies() throws {
        let hw = Self.machine(link: 1e9, gpuBytes: 1e11, flops: 1e20)
        var plan = ExecutionPlan(model: Fixtures.tinyModel, hardware: hw, batch: 4, weights: .host,
                                 placement: TokenPlacement(gpuKV: 10), phase: .decodeStep(context: 10))
        plan.engine = Engine(.deepSpeedZeroInference)
        let plain = try Fixtures.run(plan)
        plan.engine.traits.gatherDeviceCopies = 3
        let gathered = try Fixtures.run(plan)
        let bytes = gathered.totalBytes(.hostToDevice)
        #expect(bytes >= 2 * 25_169_920)
        let extra = gathered.seconds - plain.seconds
        #expect(abs(extra - 6e-11 * bytes) < 1e-6, "extra \(extra) for \(bytes) B")
    }

    /// FlexGen's `--percent 20 80` on OPT-30B by its midpoint rule (tiers in the order disk, CPU,
    /// GPU; a tensor goes to the GPU when its midpoint passes 80% of its block): of the attention
    /// block (Q, K, V, O of 7168^2, their biases, the norm) only O and what follows it, 51,380,224
    /// + 3 x 7,168 elements; of the MLP block (fc1, fc2 of 7168 x 28672) only the vectors after fc2,
    /// 3 x 7,168. 51,423,232 elements a layer x 48 x 2 B = 4,936,630,272 B; the input embedding's
    /// positions (2,050 x 7,168, after the 50,272 x 7,168 token matrix) 29,388,800 B; the output
    /// layer's norm comes first in its list (midpoint near 0%) and its head at 50%, both on the CPU.
    /// 4,966,019,072 B resident, 4.625 GiB. The run FlexGen published fits the T4.
    @Test func flexGenOPT30BPolicyFitsTheT4() throws {
        let text = """
        {"model": "opt-30b", "hardware": "gcp-t4", "engine": "flexgen", "batch": 144, "generate": {"prompt": 512, "tokens": 32},
         "policy": {"name": "flexgen", "percent": [20, 80, 0, 100, 0, 100], "gpuBatchSize": 48, "numGpuBatches": 3, "cpuCacheCompute": true}}
        """
        let plan = try Scenario.parse(Data(text.utf8), source: "test")
        let report = MemoryModel.report(plan)
        let resident = try #require(report.gpu.first { $0.name == "resident weights" })
        #expect(abs(resident.bytes - 4_966_019_072) < 1, "resident \(resident.bytes)")
        #expect(report.fits)
        #expect(report.gpuUsed < 16 * HardwareCatalog.GiB)
    }

    /// FlexGen's decode loop at (block j, GPU batch k) calls `load_weight(j + 1, k)`, which copies
    /// only at k == 0 (flex_opt.py 309-319), then computes (j, k) and synchronises. With two GPU
    /// batches and every weight on the host, block j + 1's copy therefore starts with block j's
    /// first GPU batch (together with its kernels, both after the previous sync) and has ended
    /// before block j's second GPU batch starts. A schedule that copied at the last GPU batch
    /// instead would start the copy only after the first batch's kernels ended.
    @Test func flexGenCopiesTheNextBlockDuringTheFirstGPUBatch() throws {
        var hw = try HardwareCatalog.device(named: "gcp-t4")
        hw.host.memoryBytes = 4096 * HardwareCatalog.GiB
        let model = try ModelCatalog.model(named: "opt-6.7b").withLayers(3)
        var plan = ExecutionPlan(model: model, hardware: hw, batch: 4, microBatches: 2,
                                 weights: WeightPlacement(gpuFraction: 0, diskFraction: 0),
                                 placement: TokenPlacement(gpuKV: 512, hostKV: 0),
                                 hostMemory: Engine(.flexgen).traits.weightsHostMemory, phase: .decodeStep(context: 512))
        plan.engine = Engine(.flexgen)
        try plan.validate()
        let r = try Fixtures.run(plan)
        let g = r.graph, t = r.timeline
        func tasks(_ kind: TaskKind, layer: Int, step: Int) -> [Int] {
            (0 ..< g.count).filter { g.kind[$0] == UInt8(kind.rawValue) && g.layer[$0] == Int32(layer) && g.step[$0] == Int32(step) }
        }
        let steps = Set(g.step.map(Int.init)).sorted()
        var checked = 0
        for step in steps {
            for layer in 0 ..< model.layers {
                // The MLP block's copy (the layer's second) beside the attention block's first batch.
                let copies = tasks(.weightLoad, layer: layer, step: step)
                let qkv = tasks(.qkv, layer: layer, step: step), ffn = tasks(.ffn, layer: layer, step: step)
                guard copies.count == 2, qkv.count == 2, ffn.count == 2 else { continue }
                let mlpCopy = copies[1]
                #expect(t.start[mlpCopy] <= t.start[qkv[0]] + 1e-9, "step \(step) layer \(layer)")
                #expect(t.end[mlpCopy] <= t.start[qkv[1]] + 1e-9, "step \(step) layer \(layer)")
                // The next layer's attention copy beside this layer's first MLP batch.
                let next = tasks(.weightLoad, layer: layer + 1, step: step)
                if let attentionCopy = next.first {
                    #expect(t.start[attentionCopy] <= t.start[ffn[0]] + 1e-9, "step \(step) layer \(layer)")
                    #expect(t.start[attentionCopy] < t.end[ffn[0]], "step \(step) layer \(layer)")
                    #expect(t.end[attentionCopy] <= t.start[ffn[1]] + 1e-9, "step \(step) layer \(layer)")
                }
                checked += 1
            }
        }
        #expect(checked >= model.layers)
    }

    // MARK: Invariants on the new resources

    /// A random plan on a random real engine, using only what that engine runs: catalog models cut to
    /// 1-3 layers on the GCP T4 or the A6000 (both have a host CPU and a disk), host KV with CPU
    /// attention, weights and KV on disk, 4-bit compression, micro-batches.
    static func randomEnginePlan(_ rng: inout SplitMix64) throws -> ExecutionPlan? {
        var model = try ModelCatalog.model(named: ["opt-6.7b", "opt-13b", "llama-2-7b", "llama-3.1-8b"].randomElement(using: &rng)!)
        model = model.withLayers(Int.random(in: 1...3, using: &rng))
        var hw = try HardwareCatalog.device(named: Bool.random(using: &rng) ? "gcp-t4" : "a6000")
        hw.host.memoryBytes = 4096 * HardwareCatalog.GiB
        hw.gpu.memoryBytes = 256 * HardwareCatalog.GiB
        if hw.gpu.matmulFlops(model.dtype) == nil { model.dtype = .fp16 }
        let kind = [EngineKind.flexgen, .deepSpeedZeroInference, .hfAccelerate].randomElement(using: &rng)!
        let engine = Engine(kind)
        let micro = kind == .flexgen ? [1, 2, 3].randomElement(using: &rng)! : 1
        let batch = micro * Int.random(in: 1...8, using: &rng)
        let phase: Phase = Bool.random(using: &rng)
            ? .decodeStep(context: Int.random(in: 1...1500, using: &rng))
            : .generate(prompt: Int.random(in: 1...200, using: &rng), tokens: Int.random(in: 1...6, using: &rng))
        let context = phase.placementContext
        let onHost = engine.traits.supports.contains(.hostAttention) || engine.traits.supports.contains(.hostCache) ? Int.random(in: 0...context, using: &rng) : 0
        let disk = engine.traits.supports.contains(.diskWeights) ? [0, 0, 0.5, 1].randomElement(using: &rng)! : 0
        let gpu = engine.traits.supports.contains(.partialWeights) ? Double.random(in: 0...(1 - disk), using: &rng) : 0
        var p = ExecutionPlan(model: model, hardware: hw, batch: batch, microBatches: micro,
                              weights: WeightPlacement(gpuFraction: gpu, diskFraction: disk),
                              placement: TokenPlacement(gpuKV: context - onHost, hostKV: onHost),
                              hostMemory: engine.traits.weightsHostMemory, phase: phase)
        p.engine = engine
        p.attentionOnHost = onHost > 0 && engine.traits.supports.contains(.hostAttention) && (kind == .deepSpeedZeroInference || Bool.random(using: &rng))
        if onHost > 0, engine.traits.supports.contains(.diskCache), Bool.random(using: &rng) { p.kvDiskFraction = Double.random(in: 0...1, using: &rng) }
        if engine.traits.supports.contains(.weightCompression), Bool.random(using: &rng) { p.compression.weights = Quantization(bits: 4, groupSize: 64) }
        if engine.traits.supports.contains(.cacheCompression), Bool.random(using: &rng) { p.compression.cache = Quantization(bits: 4, groupSize: 64) }
        do { try p.validate() } catch { return nil }
        return p
    }

    /// On every engine, with the host CPU and the disk queues in play: every task starts after its
    /// inputs ended, tasks on one resource (the host CPU, disk reads and writes included) never
    /// overlap, no resource is busy more than the whole window, and the same plan gives the same
    /// time twice.
    @Test func engineSchedulesKeepTheirResourcesInOrder() throws {
        var rng = SplitMix64(seed: 18)
        var played = 0, usedCPU = 0, usedDisk = 0
        for _ in 0 ..< 80 {
            guard let plan = try Self.randomEnginePlan(&rng) else { continue }
            let r = try Fixtures.run(plan)
            played += 1
            let g = r.graph, t = r.timeline
            var lastEnd = [Double](repeating: 0, count: Resource.allCases.count)
            for i in 0 ..< g.count {
                for d in g.dependencies(of: i) { #expect(t.start[i] >= t.end[Int(d)]) }
                let res = Int(g.resource[i])
                #expect(t.start[i] >= lastEnd[res] - 1e-12 * max(1, t.start[i]))
                lastEnd[res] = t.end[i]
            }
            for (res, fraction) in r.busy { #expect(fraction <= 1 + 1e-9, "\(res) busy \(fraction) on \(plan.engine.kind)") }
            if r.reportedResources.contains(.hostCPU) { usedCPU += 1 }
            if r.reportedResources.contains(.diskRead) { usedDisk += 1 }
            #expect(try Fixtures.run(plan).seconds == r.seconds)
        }
        #expect(played >= 50 && usedCPU >= 5 && usedDisk >= 5, "played \(played), host CPU in \(usedCPU), disk in \(usedDisk)")
    }

    /// A faster host CPU, disk or link never makes an engine's step slower.
    @Test func fasterHostCPUOrDiskIsNeverSlower() throws {
        var rng = SplitMix64(seed: 19)
        for _ in 0 ..< 60 {
            guard let plan = try Self.randomEnginePlan(&rng) else { continue }
            let base = try Fixtures.run(plan).seconds
            let factor = Double.random(in: 1.01...4, using: &rng)
            var faster = [plan, plan, plan]
            faster[0].hardware.hostCPU!.memoryBytesPerSecond *= factor
            faster[0].hardware.hostCPU!.fp32FlopsPerSecond *= factor
            faster[0].hardware.hostCPU!.singleThreadCopyBytesPerSecond *= factor
            faster[1].hardware.disk!.readBytesPerSecond *= factor
            faster[1].hardware.disk!.writeBytesPerSecond *= factor
            faster[2].hardware.link.scaleBandwidth(by: factor)
            for f in faster {
                let s = try Fixtures.run(f).seconds
                #expect(s <= base * (1 + 1e-12), "\(plan.engine.kind) \(plan.model.name) \(plan.phase) \(plan.placement)")
            }
        }
    }

    /// `planner validate RUNS.json --json`: a run it can play comes back with both throughputs and
    /// their error; one it cannot express (an engine it does not model) is listed, not dropped, with
    /// why; the mean covers the playable run only.
    @Test func validatePublishedRunsAsJSON() throws {
        let runs = """
        {"format": "published-runs/1", "machines": {},
         "runs": [
          {"id": "fits", "system": "flexgen", "model": "opt-6.7b", "machine": "gcp-t4", "prompt": 512, "tokens": 32,
           "settings": {"percent": [100, 0, 100, 0, 100, 0], "gpuBatchSize": 2, "numGpuBatches": 1}, "tokensPerSecond": 25},
          {"id": "other-engine", "system": "vllm", "model": "opt-6.7b", "machine": "gcp-t4", "prompt": 512, "tokens": 32,
           "settings": {}, "tokensPerSecond": 100}
         ]}
        """
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("runs-\(UUID().uuidString).json")
        try Data(runs.utf8).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let o = try CLITests.run(["validate", url.path, "--json"])
        #expect(o.status == 0, "\(o.stderr)")
        let doc = try #require(try JSONSerialization.jsonObject(with: o.stdoutData) as? [String: Any])
        let list = try #require(doc["runs"] as? [[String: Any]])
        #expect(list.count == 2)
        let fits = try #require(list.first { $0["id"] as? String == "fits" })
        let predicted = try #require(fits["predictedTokensPerSecond"] as? Double)
        #expect(fits["measuredTokensPerSecond"] as? Double == 25)
        #expect(abs((fits["error"] as? Double ?? .nan) - (predicted / 25 - 1)) < 1e-12)
        let other = try #require(list.first { $0["id"] as? String == "other-engine" })
        #expect(other["expressible"] as? Bool == false)
        #expect((other["why"] as? String ?? "").contains("vllm"), "why: \(other)")
        #expect(abs((doc["meanAbsolutePercentageError"] as? Double ?? .nan) - abs(predicted / 25 - 1)) < 1e-12)
    }

    // MARK: The search

    /// The sweep tries FlexGen's CPU attention where the machine has host CPU rates, and says which
    /// way it goes. Tiny model, batch 16, prompt 512 + 32 tokens: a layer's host cache is up to
    /// 16 x 543 x 4,096 B = 35.6 MB. Streamed over a 0.2 GB/s link that is 178 ms a layer; attended
    /// on a 100 GB/s host CPU at FlexGen's 10 B an element 16 x 543 x 2,048 x 10 / 1e11 = 1.8 ms:
    /// CPU attention must win. On a 0.2 GB/s host CPU the same attention takes 890 ms a layer
    /// against 178 ms of streaming: it must lose.
    @Test func sweepSaysWhenCPUAttentionWins() throws {
        func verdict(hostBytes: Double) throws -> (String, [Outcome]) {
            let hw = Self.machine(link: 0.2e9, gpuBytes: 1e12, flops: 1e14, hostBytes: hostBytes)
            let sweep = Sweep(setup: Setup(model: Fixtures.tinyModel, hardware: hw, workload: Workload(prompt: 512, tokens: 32)),
                              space: SearchSpace(ratios: [0.5], batches: [16]))
            let r = sweep.run()
            return (SweepReport.text(r), r.baselines[.flexGen] ?? [])
        }
        let (fast, outcomes) = try verdict(hostBytes: 100e9)
        #expect(outcomes.count == 2, "one with CPU attention, one without")
        #expect(fast.contains("FlexGen's CPU attention wins"), "\(fast)")
        let (slow, _) = try verdict(hostBytes: 0.2e9)
        #expect(slow.contains("FlexGen's CPU attention does not pay"), "\(slow)")
    }

    /// `plan --policy flexgen` on the GCP T4 picks among FlexGen's options and prints the scenario
    /// on the flexgen engine, its flags as FlexGen's argument parser names them, and the engines
    /// that can run it; `simulate` of that scenario reproduces the expected throughput.
    @Test func planOnFlexGenIsAScenarioSimulateAccepts() throws {
        let dir = try CLITests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let o = try CLITests.run(["plan", "--json", "--hardware", "gcp-t4", "--policy", "flexgen", "--batches", "48,144"])
        #expect(o.status == 0, "\(o.stderr)")
        let doc = try #require(try JSONSerialization.jsonObject(with: o.stdoutData) as? [String: Any])
        #expect(doc["engine"] as? String == "flexgen")
        let planner = try #require(doc["planner"] as? [String: Any])
        #expect(planner["engines"] as? [String] == ["flexgen"])
        let flags = try #require((planner["flexgen"] as? [String: Any])?["flags"] as? String)
        #expect(flags.hasPrefix("--percent ") && flags.contains("--gpu-batch-size") && flags.contains("--num-gpu-batches"))
        #expect(o.stderr.contains("FlexGen flags: \(flags)"))
        let expected = try #require((planner["expected"] as? [String: Any])?["tokensPerSecond"] as? Double)
        let file = dir.appendingPathComponent("plan.json")
        try o.stdoutData.write(to: file)
        let sim = try CLITests.run(["simulate", file.path, "--json"])
        #expect(sim.status == 0, "\(sim.stderr)")
        let result = try #require(try JSONSerialization.jsonObject(with: sim.stdoutData) as? [String: Any])
        #expect(abs((result["tokensPerSecond"] as? Double ?? 0) / expected - 1) < 1e-9)
    }

    /// Which engines can run a plan follows what each implements: ACT checkpoints only HybridServe's
    /// (the ideal engine), a GPU-resident cache with streamed weights every engine.
    @Test func enginesThatCanRunAPlan() throws {
        let hw = try HardwareCatalog.device(named: "gcp-t4")
        let model = try ModelCatalog.model(named: "opt-6.7b").withLayers(2)
        let streamed = ExecutionPlan(model: model, hardware: hw, batch: 4, weights: .host, placement: TokenPlacement(gpuKV: 100),
                                     phase: .decodeStep(context: 100))
        #expect(PlanSearch.engines(thatCanRun: streamed) == EngineKind.allCases)
        var act = streamed
        act.placement = TokenPlacement(gpuKV: 50, hostAct: 50)
        #expect(PlanSearch.engines(thatCanRun: act) == [.ideal])
        var hostKV = streamed
        hostKV.placement = TokenPlacement(hostKV: 100)
        #expect(PlanSearch.engines(thatCanRun: hostKV) == [.ideal, .flexgen])
    }

    // MARK: Bad input

    static func scenario(_ changes: [String: Any]) -> String {
        var o: [String: Any] = ["model": "opt-6.7b", "layers": 2, "hardware": "gcp-t4", "batch": 4, "engine": "flexgen",
                                "decodeStep": ["context": 128], "weights": "gpu",
                                "placement": ["gpuKV": 0, "gpuAct": 0, "hostKV": 128, "hostAct": 0, "recompute": 0]]
        for (k, v) in changes { if v is NSNull { o[k] = nil } else { o[k] = v } }
        let data = try! JSONSerialization.data(withJSONObject: o, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }

    static func refusal(_ changes: [String: Any], sourceLocation: SourceLocation = #_sourceLocation) throws -> InputError {
        try #require(throws: InputError.self, sourceLocation: sourceLocation) {
            _ = try Scenario.parse(Data(Self.scenario(changes).utf8), source: "test")
        }
    }

    @Test func theBaseScenarioParses() throws {
        let plan = try Scenario.parse(Data(Self.scenario(["attention": "cpu"]).utf8), source: "test")
        #expect(plan.engine.kind == .flexgen)
        #expect(plan.attentionOnHost)
    }

    @Test func unknownEngineListsTheEngines() throws {
        let e = try Self.refusal(["engine": "vllm-offload"])
        #expect(e.field == "engine")
        for name in ["ideal", "flexgen", "deepspeed-zero-inference", "hf-accelerate"] {
            #expect(e.message.contains(name), "message: \(e.message)")
        }
    }

    @Test func unknownTraitIsRefusedByName() throws {
        let e = try Self.refusal(["engineTraits": ["prefetchDepth": 2]])
        #expect(e.field.contains("prefetchDepth"), "field: \(e.field)")
        #expect(e.message.contains("weightFetch"), "message should list the traits: \(e.message)")
    }

    @Test func traitValueOutsideItsSet() throws {
        let e = try Self.refusal(["engineTraits": ["weightFetch": "triple-buffered"]])
        #expect(e.field == "engineTraits.weightFetch")
        #expect(e.message.contains("serial") && e.message.contains("triple-buffered"), "message: \(e.message)")
        let n = try Self.refusal(["engineTraits": ["diskReadAheadUnits": 100]])
        #expect(n.field == "engineTraits.diskReadAheadUnits")
        #expect(n.message.contains("0 to 64"), "message: \(n.message)")
    }

    @Test func diskShareOnAMachineWithoutADisk() throws {
        let e = try Self.refusal(["hardware": "t4", "weights": ["gpuFraction": 0.5, "diskFraction": 0.5]])
        #expect(e.field.hasPrefix("weights"), "field: \(e.field)")
        #expect(e.message.contains("disk"), "message: \(e.message)")
        let kv = try Self.refusal(["hardware": "t4", "kvOnDisk": 0.5])
        #expect(kv.field == "kvOnDisk")
        #expect(kv.message.contains("disk"), "message: \(kv.message)")
    }

    @Test(arguments: [3, 16, 0])
    func compressionBitsOutOfRange(_ bits: Int) throws {
        let e = try Self.refusal(["compression": ["weights": ["bits": bits, "groupSize": 64]]])
        #expect(e.field == "compression.weights.bits")
        #expect(e.message.contains("4") && e.message.contains("8"), "message: \(e.message)")
    }

    @Test func compressionGroupSizeOutOfRange() throws {
        let e = try Self.refusal(["compression": ["cache": ["bits": 4, "groupSize": 0]]])
        #expect(e.field == "compression.cache.groupSize")
    }

    @Test func cpuAttentionWithoutAHostCPU() throws {
        let e = try Self.refusal(["hardware": "t4", "attention": "cpu"])
        #expect(e.field == "attention")
        #expect(e.message.contains("hostCPU"), "message: \(e.message)")
    }

    @Test func featureTheEngineDoesNotHave() throws {
        let e = try Self.refusal(["engine": "hf-accelerate", "attention": "cpu"])
        #expect(e.field == "attention")
        #expect(e.message == "engine hf-accelerate cannot run CPU attention")
        let c = try Self.refusal(["engine": "ideal", "placement": NSNull(), "weights": NSNull(),
                                  "policy": ["name": "all-gpu"], "compression": ["weights": ["bits": 4, "groupSize": 64]]])
        #expect(c.field.hasPrefix("compression"), "field: \(c.field)")
        #expect(c.message.contains("engine ideal"), "message: \(c.message)")
    }
}
