import Testing
@testable import PlannerCore

/// Invariants that must hold for every input (DESIGN.md, "How we know it is right"), checked on
/// seeded random scenarios over catalog models (cut to a few layers) and devices.
@Suite struct InvariantTests {
    static let models = ["opt-6.7b", "opt-13b", "opt-30b", "llama-2-7b", "llama-3.1-8b", "mistral-7b", "llama-2-70b"]

    /// A random plan: catalog model with 1-4 layers, random device, batch, phase, weights, placement
    /// and micro-batches; host memory set huge so that most plans fit.
    static func randomPlan(_ rng: inout SplitMix64) throws -> ExecutionPlan {
        var model = try ModelCatalog.model(named: models.randomElement(using: &rng)!)
        model = model.withLayers(Int.random(in: 1...4, using: &rng))
        var hw = HardwareCatalog.all.randomElement(using: &rng)!
        if hw.gpu.matmulFlops(model.dtype) == nil { model.dtype = .fp16 }
        hw.host.memoryBytes = 64 * 1024 * HardwareCatalog.GiB
        hw.gpu.memoryBytes = 256 * HardwareCatalog.GiB
        let micro = [1, 1, 2, 4].randomElement(using: &rng)!
        let batch = micro * Int.random(in: 1...16, using: &rng)
        let phase: Phase = Bool.random(using: &rng)
            ? .decodeStep(context: Int.random(in: 1...2000, using: &rng))
            : .generate(prompt: Int.random(in: 1...300, using: &rng), tokens: Int.random(in: 1...12, using: &rng))
        let context = phase.placementContext
        var cuts = (0 ..< 4).map { _ in Int.random(in: 0...context, using: &rng) }.sorted()
        cuts = [0] + cuts + [context]
        var p = TokenPlacement()
        for c in TokenClass.allCases { p[c] = cuts[c.rawValue + 1] - cuts[c.rawValue] }
        let weights = [WeightPlacement.gpu, .host, WeightPlacement(gpuFraction: Double.random(in: 0...1, using: &rng))].randomElement(using: &rng)!
        return ExecutionPlan(model: model, hardware: hw, batch: batch, microBatches: micro, weights: weights, placement: p,
                             hostMemory: Bool.random(using: &rng) ? .pinned : .pageable,
                             hiddenOnHost: Int.random(in: 0...3, using: &rng) == 0, phase: phase)
    }

    /// Every task starts after all its dependencies ended, and tasks on one resource never overlap
    /// and run in submission order.
    @Test func noTaskStartsBeforeItsInputs() throws {
        var rng = SplitMix64(seed: 1)
        for _ in 0 ..< 60 {
            let r = try Fixtures.run(try Self.randomPlan(&rng))
            let g = r.graph, t = r.timeline
            var lastEnd = [Double](repeating: 0, count: Resource.allCases.count)
            for i in 0 ..< g.count {
                for d in g.dependencies(of: i) {
                    #expect(t.start[i] >= t.end[Int(d)])
                }
                let res = Int(g.resource[i])
                #expect(t.start[i] >= lastEnd[res])
                lastEnd[res] = t.end[i]
                #expect(abs(t.end[i] - t.start[i] - g.seconds[i]) <= 1e-12 * max(1, t.end[i]))
            }
        }
    }

    /// Bytes moved equal bytes placed. In the measured decode step every layer loads exactly the
    /// host-resident cache and the streamed weights, and writes back one entry per sequence for the
    /// new token's class. Over a generation every host cache entry is written exactly once.
    @Test func bytesMovedEqualBytesPlaced() throws {
        var rng = SplitMix64(seed: 2)
        for _ in 0 ..< 80 {
            let plan = try Self.randomPlan(&rng)
            let r = try Fixtures.run(plan)
            let m = plan.model
            let L = Double(m.layers), B = Double(plan.batch)
            let h2d = r.bytes[.hostToDevice, default: [:]], d2h = r.bytes[.deviceToHost, default: [:]]
            func close(_ a: Double?, _ b: Double) -> Bool { abs((a ?? 0) - b) <= 1e-6 * max(1, b) }
            switch plan.phase {
            case .decodeStep:
                let p = plan.placement
                #expect(close(h2d["kv"], L * B * Double(p.hostKV) * m.kvBytesPerToken))
                #expect(close(h2d["act"], L * B * Double(p.hostAct) * m.actBytesPerToken))
                #expect(close(h2d["weights"], L * plan.weights.streamedFraction * m.layerWeightBytes))
                let new = r.growth.steps[1].newToken
                #expect(close(d2h["kv"], new == .hostKV ? L * B * m.kvBytesPerToken : 0))
                #expect(close(d2h["act"], new == .hostAct ? L * B * m.actBytesPerToken : 0))
            case .generate:
                let peak = r.growth.peak
                #expect(close(d2h["kv"], L * B * Double(peak.hostKV) * m.kvBytesPerToken))
                #expect(close(d2h["act"], L * B * Double(peak.hostAct) * m.actBytesPerToken))
                let loadedKV = r.growth.steps.reduce(0.0) { $0 + L * B * Double($1.cached.hostKV) * m.kvBytesPerToken }
                #expect(close(h2d["kv"], loadedKV))
                let passes = Double(r.growth.steps.count + 1)
                #expect(close(h2d["weights"], passes * L * plan.weights.streamedFraction * m.layerWeightBytes))
            }
        }
    }

    /// More bandwidth or more FLOPs never makes a step slower.
    @Test func fasterHardwareIsNeverSlower() throws {
        var rng = SplitMix64(seed: 3)
        for _ in 0 ..< 60 {
            let plan = try Self.randomPlan(&rng)
            let base = try Fixtures.run(plan).seconds
            let factor = Double.random(in: 1.01...4, using: &rng)
            var faster = [plan, plan, plan]
            faster[0].hardware.link.scaleBandwidth(by: factor)
            faster[1].hardware.gpu.achievedMatmulFlops = faster[1].hardware.gpu.achievedMatmulFlops.mapValues { $0 * factor }
            faster[2].hardware.gpu.gemmBytesPerSecond *= factor
            faster[2].hardware.gpu.streamBytesPerSecond *= factor
            for f in faster {
                let s = try Fixtures.run(f).seconds
                #expect(s <= base * (1 + 1e-12), "\(plan.model.name) \(plan.phase) \(plan.placement)")
            }
        }
    }

    /// A plan that runs fits its memory; one that does not is refused with a CapacityError that
    /// names the memory and an excess that is real. Policies that size the GPU ACT cache themselves
    /// (act-only, hybrid) always produce a plan that fits when the weights do.
    @Test func memoryNeverExceedsCapacity() throws {
        var rng = SplitMix64(seed: 4)
        for _ in 0 ..< 80 {
            var plan = try Self.randomPlan(&rng)
            plan.hardware.gpu.memoryBytes = Double.random(in: 2...80, using: &rng) * HardwareCatalog.GiB
            plan.hardware.host.memoryBytes = Double.random(in: 4...256, using: &rng) * HardwareCatalog.GiB
            do {
                let r = try Fixtures.run(plan)
                #expect(r.memory.gpuUsed <= r.memory.gpuCapacity)
                #expect(r.memory.hostUsed <= r.memory.hostCapacity)
            } catch let e as CapacityError {
                #expect(e.neededBytes > e.capacityBytes)
                #expect(e.memory == "GPU" || e.memory == "host")
            }
        }
        for name in ["opt-13b", "opt-30b", "llama-2-13b"] {
            let model = try ModelCatalog.model(named: name)
            for batch in [8, 32, 96] {
                for policy in [PolicySpec.actOnly(gpuActTokens: nil), .hybrid(kvFraction: 0.5, gpuActTokens: nil)] {
                    let plan = try policy.resolve(model: model, hardware: HardwareCatalog.rtx4090, batch: batch,
                                                  phase: .generate(prompt: 512, tokens: 32), weights: .host)
                    let report = MemoryModel.report(plan)
                    if report.hostUsed <= report.hostCapacity {
                        #expect(report.gpuUsed <= report.gpuCapacity, "\(name) batch \(batch) \(policy.name)")
                    }
                    // And the GPU ACT cache is as large as fits: what the GPU leaves unused is less
                    // than three tokens of every layer and sequence (one is the margin the policies
                    // keep, one the rounding down to whole tokens, the last the load buffers that a
                    // token moved to the GPU frees).
                    if plan.placement.hostAct > 0 {
                        let perToken = Double(model.layers * batch) * model.actBytesPerToken
                        #expect(report.gpuCapacity - report.gpuUsed < 3 * perToken,
                                "\(name) batch \(batch) \(policy.name): \((report.gpuCapacity - report.gpuUsed) / perToken) tokens unused")
                    }
                }
            }
        }
    }

    /// A host-cache load never starts before the write-backs of its layer that came earlier have
    /// ended, even when the device-to-host link is much slower than the other direction.
    @Test func loadsWaitForTheirWriteBacks() throws {
        var rng = SplitMix64(seed: 7)
        for _ in 0 ..< 40 {
            var plan = try Self.randomPlan(&rng)
            plan.hardware.link.d2hPinned.bytesPerSecond /= 20
            plan.hardware.link.d2hPageable.bytesPerSecond /= 20
            let r = try Fixtures.run(plan)
            let g = r.graph, t = r.timeline
            var storesEnd: [Int32: Double] = [:]
            for i in 0 ..< g.count {
                switch g.taskKind(i) {
                case .kvStore, .actStore:
                    storesEnd[g.layer[i]] = max(storesEnd[g.layer[i]] ?? 0, t.end[i])
                case .kvLoad, .actLoad:
                    #expect(t.start[i] >= storesEnd[g.layer[i]] ?? 0, "load of layer \(g.layer[i]) at \(t.start[i])")
                default: break
                }
            }
        }
    }

    /// The same plan gives the same timeline bit for bit.
    @Test func deterministic() throws {
        var rng = SplitMix64(seed: 5)
        for _ in 0 ..< 10 {
            let plan = try Self.randomPlan(&rng)
            let a = try Fixtures.run(plan), b = try Fixtures.run(plan)
            #expect(a.timeline.start == b.timeline.start)
            #expect(a.timeline.end == b.timeline.end)
        }
    }

    /// A generation's new tokens follow the placement's proportions within one token per class, and
    /// no class ever shrinks (no cached entry moves).
    @Test func tokenGrowthFollowsPlacement() throws {
        var rng = SplitMix64(seed: 6)
        for _ in 0 ..< 200 {
            let total = Int.random(in: 2...3000, using: &rng)
            let prompt = Int.random(in: 1 ..< total, using: &rng)
            var cuts = (0 ..< 4).map { _ in Int.random(in: 0...total, using: &rng) }.sorted()
            cuts = [0] + cuts + [total]
            var target = TokenPlacement()
            for c in TokenClass.allCases { target[c] = cuts[c.rawValue + 1] - cuts[c.rawValue] }
            var counts = TokenPlacement.apportion(prompt, like: target)
            #expect(counts.total == prompt)
            for _ in prompt ..< total {
                let before = counts
                counts[counts.classForNextToken(target: target)] += 1
                for c in TokenClass.allCases {
                    #expect(counts[c] >= before[c])
                    let share = Double(target[c]) / Double(total) * Double(counts.total)
                    #expect(abs(Double(counts[c]) - share) < 1.0 + 1e-9 + Double(prompt == 0 ? 0 : 1))
                }
            }
        }
    }
}
