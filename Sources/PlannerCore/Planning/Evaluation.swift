import Foundation

/// What the planner is asked to serve: a prompt length, a number of new tokens, and optionally a
/// bound on the mean time between tokens of one sequence (the decode step).
public struct Workload: Sendable, Equatable {
    public var prompt: Int
    public var tokens: Int
    public var maxStepSeconds: Double?

    public init(prompt: Int, tokens: Int, maxStepSeconds: Double? = nil) {
        self.prompt = prompt
        self.tokens = tokens
        self.maxStepSeconds = maxStepSeconds
    }

    public var phase: Phase { .generate(prompt: prompt, tokens: tokens) }
}

/// The machine and model a search runs on.
public struct Setup: Sendable {
    public var model: ModelSpec
    public var hardware: HardwareSpec
    public var hostMemory: HostMemoryKind
    public var workload: Workload
    /// The cost model to simulate with; nil: the analytic model of `hardware`.
    public var cost: (any CostModel)?
    /// The profile folder `cost` was read from, if any: a configuration `plan` prints names it, so
    /// that `simulate` replays it with the same measurements.
    public var profileFolder: URL?

    public init(model: ModelSpec, hardware: HardwareSpec, hostMemory: HostMemoryKind = .pinned, workload: Workload,
                cost: (any CostModel)? = nil) {
        self.model = model
        self.hardware = hardware
        self.hostMemory = hostMemory
        self.workload = workload
        self.cost = cost
    }

    /// The cost model simulations of this setup use.
    public func costModel() throws -> any CostModel {
        if let cost { return cost }
        return try AnalyticCostModel(hardware: hardware, model: model)
    }
}

/// One point of the configuration space: a policy with its parameters, a batch, and the weights'
/// GPU fraction.
public struct Candidate: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        /// HybridServe: GPU ACT first, host tokens split `kvFraction` as KV; `recomputeFraction` of
        /// each sequence recomputed from tokens.
        case hybrid(kvFraction: Double, recomputeFraction: Double)
        /// KV only, FlexGen-style: as much KV on the GPU as fits, the rest on host.
        case kvOnly
        /// ACT only: GPU ACT first, the rest host ACT.
        case actOnly
        /// DeepSpeed ZeRO-Inference: weights streamed, KV on GPU.
        case deepSpeed
        /// Everything on the GPU.
        case allGPU
        /// FlexGen on its own engine, with the options it implements.
        case flexGen(FlexGenChoice)
    }

    public var kind: Kind
    public var batch: Int
    public var weightsGPUFraction: Double

    public init(_ kind: Kind, batch: Int, weightsGPUFraction: Double) {
        self.kind = kind
        self.batch = batch
        self.weightsGPUFraction = weightsGPUFraction
    }

    public var policy: PolicySpec {
        switch kind {
        case .hybrid(let r, let rho): .hybrid(kvFraction: r, gpuActTokens: nil, recomputeFraction: rho)
        case .kvOnly: .kvOffload(gpuKVTokens: nil)
        case .actOnly: .actOnly(gpuActTokens: nil)
        case .deepSpeed: .deepSpeed
        case .allGPU: .allGPU
        case .flexGen(let f): .flexGen(f.settings(batch: batch, weightsGPUFraction: weightsGPUFraction))
        }
    }

    /// The engine the candidate runs on, and what it asks of it.
    var engineOptions: EngineOptions {
        if case .flexGen = kind { return EngineOptions(engine: Engine(.flexgen)) }
        return EngineOptions()
    }

    /// The weights the policy is given (DeepSpeed, all-GPU and FlexGen fix their own).
    var weights: WeightPlacement? {
        switch kind {
        case .deepSpeed, .allGPU, .flexGen: nil
        default: WeightPlacement(gpuFraction: weightsGPUFraction)
        }
    }

    /// KV:ACT ratio of the host tokens (hybrid only).
    public var kvFraction: Double? {
        if case .hybrid(let r, _) = kind { return r }
        return nil
    }
}

/// A FlexGen configuration the planner may choose: the KV cache and the hidden states in host memory
/// (the placement of every published FlexGen offloading policy, FlexLLMGen
/// `benchmark/flexgen/bench_suite.py`), the weights' GPU share placed by whole tensors, and
/// FlexGen's options: attention on the host CPU (`--cpu-cache-compute`), 4-bit weights and cache
/// (`--compress-weight --compress-cache`), part of the weights on disk.
public struct FlexGenChoice: Sendable, Hashable {
    public var cpuAttention: Bool
    public var compress: Bool
    /// Percent of the weights on disk: FlexGen's `100 - percent[0] - percent[1]`.
    public var weightsDiskPercent: Int

    public init(cpuAttention: Bool = false, compress: Bool = false, weightsDiskPercent: Int = 0) {
        self.cpuAttention = cpuAttention
        self.compress = compress
        self.weightsDiskPercent = weightsDiskPercent
    }

    /// FlexGen's `--percent` for a GPU share of the weights.
    public func percent(weightsGPUFraction w: Double) -> [Double] {
        let gpu = (w * 100).rounded()
        let disk = min(Double(weightsDiskPercent), 100 - gpu)
        return [gpu, 100 - gpu - disk, 0, 100, 0, 100]
    }

    /// FlexGen's settings for `batch` sequences and a GPU share of the weights.
    public func settings(batch: Int, weightsGPUFraction w: Double) -> FlexGenSettings {
        let gbs = gpuBatchSize(batch)
        return FlexGenSettings(percent: percent(weightsGPUFraction: w), gpuBatchSize: gbs, numGpuBatches: batch / gbs,
                               cpuCacheCompute: cpuAttention, compressWeight: compress, compressCache: compress)
    }

    /// The GPU batch of a zig-zag block schedule over `batch` sequences: the largest divisor of the
    /// batch up to 64, the size of FlexGen's published GPU batches (32 to 72; benchmark/flexgen).
    public func gpuBatchSize(_ batch: Int) -> Int {
        (1 ... max(1, min(batch, 64))).reversed().first { batch % $0 == 0 } ?? 1
    }

    public var description: String {
        var parts: [String] = []
        if cpuAttention { parts.append("CPU attention") }
        if compress { parts.append("4-bit weights and cache") }
        if weightsDiskPercent > 0 { parts.append("\(weightsDiskPercent)% of the weights on disk") }
        return parts.isEmpty ? "host KV cache" : parts.joined(separator: ", ")
    }

    /// The options worth trying on `hardware`: CPU attention where its host CPU has rates, disk
    /// shares where it has a disk (half, and all, of the streamed weights), compression where
    /// `allowCompression`.
    public static func options(on hardware: HardwareSpec, weightsGPUFraction w: Double, allowCompression: Bool) -> [FlexGenChoice] {
        let attention = hardware.hostCPU == nil ? [false] : [false, true]
        let compress = allowCompression ? [false, true] : [false]
        let streamed = Int(((1 - w) * 100).rounded())
        let disk = hardware.disk == nil || streamed == 0 ? [0] : Array(Set([0, streamed / 2, streamed])).sorted()
        return attention.flatMap { a in compress.flatMap { c in disk.map { FlexGenChoice(cpuAttention: a, compress: c, weightsDiskPercent: $0) } } }
    }
}

/// How a candidate did.
public struct Outcome: Sendable {
    public enum Status: Sendable, Equatable {
        case ok
        /// Does not fit: which memory and by how much.
        case doesNotFit(String)
        /// Fits, but a decode step is slower than the workload's bound.
        case tooSlow(String)
        /// The policy cannot express this point (for instance a placement the model cannot hold).
        case invalid(String)
    }

    public var candidate: Candidate
    public var status: Status
    public var plan: ExecutionPlan?
    public var tokensPerSecond: Double = 0
    public var totalSeconds: Double = 0
    public var prefillSeconds: Double = 0
    /// Mean decode step: (total - prefill) / (tokens - 1), or the prefill for one token.
    public var stepSeconds: Double = 0
    public var busy: [Resource: Double] = [:]
    public var gpuBytes: Double = 0
    public var hostBytes: Double = 0
    /// How far over its memory a candidate that does not fit is, relative to the capacity.
    public var excess: Double = 0
    public var capacityError: CapacityError?

    public var feasible: Bool { status == .ok }

    /// Every weight and every cache entry on the GPU: whatever policy found it, the plan is all-GPU.
    public var isAllGPU: Bool {
        guard let p = plan else { if case .allGPU = candidate.kind { return true }; return false }
        return p.weights.gpuFraction >= 1 && p.weights.diskFraction == 0 && p.placement.gpuKV == p.placement.total
    }

    public var statusText: String {
        switch status {
        case .ok: "ok"
        case .doesNotFit(let s), .tooSlow(let s), .invalid(let s): s
        }
    }
}

/// Evaluates candidates by simulating the whole generation.
public enum Evaluator {
    public static func plan(_ c: Candidate, _ setup: Setup) throws -> ExecutionPlan {
        try c.policy.resolve(model: setup.model, hardware: setup.hardware, batch: c.batch, phase: setup.workload.phase,
                             weights: c.weights, hostMemory: setup.hostMemory, options: c.engineOptions)
    }

    /// Memory only: whether the candidate fits, without simulating.
    public static func fits(_ c: Candidate, _ setup: Setup) -> Bool {
        guard let p = try? plan(c, setup) else { return false }
        let r = MemoryModel.report(p)
        return r.fits
    }

    public static func evaluate(_ c: Candidate, _ setup: Setup) -> Outcome {
        var out = Outcome(candidate: c, status: .ok)
        let p: ExecutionPlan
        do {
            p = try plan(c, setup)
        } catch {
            out.status = .invalid("\(error)")
            return out
        }
        out.plan = p
        let memory = MemoryModel.report(p)
        out.gpuBytes = memory.gpuUsed
        out.hostBytes = memory.hostUsed
        do {
            try memory.check()
        } catch let e as CapacityError {
            out.capacityError = e
            out.excess = e.neededBytes / e.capacityBytes - 1
            out.status = .doesNotFit("\(e.memory) over by \(formatBytes(e.neededBytes - e.capacityBytes))")
            return out
        } catch {
            out.status = .invalid("\(error)")
            return out
        }
        do {
            var p = p
            var r = try Simulator.run(p, cost: try setup.costModel(), checkMemory: false)
            // A mixture of experts with streamed experts: the experts copied ahead or after the
            // router, whichever generates faster (the memory is the same: one layer's buffers).
            if p.model.moe != nil, p.weights.tiers(.ffn).streamed > 0, p.placement.recompute == 0,
               p.engine.followsIdealSchedule {
                for fetch in ExpertFetch.allCases where fetch != p.expertFetch && (fetch != .hostCPU || p.hardware.hostCPU != nil) {
                    var other = p
                    other.expertFetch = fetch
                    let s = try Simulator.run(other, cost: try setup.costModel(), checkMemory: false)
                    if s.seconds < r.seconds { p = other; r = s; out.plan = other }
                }
            }
            out.tokensPerSecond = r.tokensPerSecond
            out.totalSeconds = r.seconds
            out.prefillSeconds = r.prefillSeconds ?? 0
            let steps = Double(max(setup.workload.tokens - 1, 0))
            out.stepSeconds = steps > 0 ? (r.seconds - out.prefillSeconds) / steps : out.prefillSeconds
            out.busy = r.busy
            if let bound = setup.workload.maxStepSeconds, out.stepSeconds > bound {
                out.status = .tooSlow(String(format: "step %.1f ms over the %.1f ms bound", out.stepSeconds * 1e3, bound * 1e3))
            }
        } catch {
            out.status = .invalid("\(error)")
        }
        return out
    }

    /// Evaluates every candidate on all cores, in order; `progress(done, total)` is called from the
    /// workers (serialised) after each one.
    public static func evaluateAll(_ cs: [Candidate], _ setup: Setup,
                                   progress: (@Sendable (Int, Int) -> Void)? = nil) -> [Outcome] {
        let box = Slots<Outcome>(count: cs.count)
        DispatchQueue.concurrentPerform(iterations: cs.count) { i in
            let o = evaluate(cs[i], setup)
            let done = box.store(o, at: i)
            progress?(done, cs.count)
        }
        return box.results.map { $0! }
    }
}

/// Results written by concurrent workers, one slot each, under a lock.
final class Slots<T>: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var results: [T?]
    private var done = 0

    init(count: Int) { results = [T?](repeating: nil, count: count) }

    /// Stores a worker's result; returns how many slots are filled.
    @discardableResult
    func store(_ value: T, at i: Int) -> Int {
        lock.lock()
        defer { lock.unlock() }
        results[i] = value
        done += 1
        return done
    }
}
