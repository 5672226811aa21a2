/// FlexGen's policy: the six percentages of its `--percent` flag (weights, KV cache and activations
/// on GPU and on CPU; no disk here, so each pair adds up to 100) and its block schedule of
/// `numGpuBatches` micro-batches of `gpuBatchSize` sequences sharing one pass over the weights
/// (Sheng et al., "FlexGen", ICML 2023, Sec. 4.1 and Algorithm 1).
public struct FlexGenSettings: Equatable, Sendable, Codable {
    /// Weights, cache and activations on GPU and on CPU, in percent; what each pair leaves is on disk.
    public var percent: [Double]
    public var gpuBatchSize: Int
    public var numGpuBatches: Int
    /// `--cpu-cache-compute`: decode attention on the CPU over the host cache.
    public var cpuCacheCompute = false
    /// `--compress-weight` and `--compress-cache`: 4-bit groups of 64 (flex_opt.py 1204-1208).
    public var compressWeight = false
    public var compressCache = false

    public init(percent: [Double], gpuBatchSize: Int, numGpuBatches: Int, cpuCacheCompute: Bool = false,
                compressWeight: Bool = false, compressCache: Bool = false) {
        self.percent = percent
        self.gpuBatchSize = gpuBatchSize
        self.numGpuBatches = numGpuBatches
        self.cpuCacheCompute = cpuCacheCompute
        self.compressWeight = compressWeight
        self.compressCache = compressCache
    }

    /// The settings as FlexLLMGen's `flex_opt.py` flags, named as its `add_parser_arguments` names them.
    public var flags: String {
        var s = "--percent \(percent.map { String(Int($0)) }.joined(separator: " ")) --gpu-batch-size \(gpuBatchSize) --num-gpu-batches \(numGpuBatches)"
        if cpuCacheCompute { s += " --cpu-cache-compute" }
        if compressWeight { s += " --compress-weight" }
        if compressCache { s += " --compress-cache" }
        return s
    }

    public var weightsGPUFraction: Double { percent[0] / 100 }
    public var weightsDiskFraction: Double { max(0, 100 - percent[0] - percent[1]) / 100 }
    public var cacheGPUFraction: Double { percent[2] / 100 }
    public var cacheDiskFraction: Double { max(0, 100 - percent[2] - percent[3]) / 100 }
    public var activationsOnHost: Bool { percent[5] > 0 }
}

/// A named cache policy, turned into explicit placements by `resolve`.
public enum PolicySpec: Equatable, Sendable {
    /// Weights and KV on the GPU.
    case allGPU
    /// DeepSpeed ZeRO-Inference: weights streamed from host, KV cache on the GPU.
    case deepSpeed
    /// FlexGen's percentages and block schedule.
    case flexGen(FlexGenSettings)
    /// KV only: `gpuKVTokens` per sequence on the GPU (nil: as many as fit, as FlexGen's cache
    /// percentage would), the rest in host memory, streamed each step.
    case kvOffload(gpuKVTokens: Int?)
    /// Activation checkpoints only: GPU memory to the ACT cache first, the rest in host memory.
    case actOnly(gpuActTokens: Int?)
    /// A fraction of each sequence recomputed from its tokens, the rest as host KV.
    case tokenRecompute(fraction: Double)
    /// HybridServe: GPU memory to the ACT cache first; the host-resident tokens split KV:ACT with
    /// `kvFraction` of them as KV. `recomputeFraction` of every sequence (its first tokens) may be
    /// recomputed from tokens instead of cached.
    case hybrid(kvFraction: Double, gpuActTokens: Int?, recomputeFraction: Double = 0)

    public var name: String {
        switch self {
        case .allGPU: "all-gpu"
        case .deepSpeed: "deepspeed"
        case .flexGen: "flexgen"
        case .kvOffload: "kv-offload"
        case .actOnly: "act-only"
        case .tokenRecompute: "recompute"
        case .hybrid: "hybrid"
        }
    }

    public static let names = ["all-gpu", "deepspeed", "flexgen", "kv-offload", "act-only", "recompute", "hybrid"]
}

/// Everything the simulator needs: model, machine, batch, and an explicit placement of weights and
/// of every context token.
public struct ExecutionPlan: Sendable {
    public var model: ModelSpec
    public var hardware: HardwareSpec
    public var batch: Int
    /// FlexGen's number of GPU batches; 1 for every other policy. Must divide `batch`.
    public var microBatches: Int
    public var weights: WeightPlacement
    /// Tokens per sequence in each class at `phase.placementContext`.
    public var placement: TokenPlacement
    public var hostMemory: HostMemoryKind
    /// Hidden states between layers kept in host memory (FlexGen's activation percentage on CPU).
    public var hiddenOnHost: Bool
    public var phase: Phase
    public var policyName: String
    /// Whether each step ends with the LM head (false for a capture of decoder layers alone).
    public var includeHead = true
    /// The engine whose schedule the simulation follows.
    public var engine = Engine.ideal
    /// Decode attention over the host KV tokens runs on the host CPU (FlexGen's
    /// `--cpu-cache-compute`, ZeRO-Inference's `--kv-offload`): the query and the new K/V cross the
    /// link to the CPU and the attention output comes back, instead of the cache crossing it.
    public var attentionOnHost = false
    /// Share of the host KV tokens whose home is the disk (read through host memory every step).
    public var kvDiskFraction = 0.0
    public var compression = Compression.none
    /// FlexGen's `--percent` when the plan came from the flexgen policy (its embeddings follow it).
    public var flexGenPercent: [Double]? = nil
    /// When a mixture of experts' streamed experts are copied (ignored for a dense model).
    public var expertFetch = ExpertFetch.prefetchAll

    public init(model: ModelSpec, hardware: HardwareSpec, batch: Int, microBatches: Int = 1, weights: WeightPlacement,
                placement: TokenPlacement, hostMemory: HostMemoryKind = .pinned, hiddenOnHost: Bool = false,
                phase: Phase, policyName: String = "placement") {
        self.model = model; self.hardware = hardware; self.batch = batch; self.microBatches = microBatches
        self.weights = weights; self.placement = placement; self.hostMemory = hostMemory
        self.hiddenOnHost = hiddenOnHost; self.phase = phase; self.policyName = policyName
    }

    public var microBatchSize: Int { batch / microBatches }

    /// Checks the plan's own consistency (not memory: see `MemoryModel`).
    public func validate() throws {
        try model.validate()
        try hardware.validate()
        guard batch >= 1 else { throw InputError(field: "batch", "must be at least 1, got \(batch)") }
        guard microBatches >= 1, batch % microBatches == 0 else {
            throw InputError(field: "policy.numGpuBatches", "must divide the batch (\(batch)), got \(microBatches)")
        }
        guard weights.gpuFraction >= 0, weights.gpuFraction <= 1 else {
            throw InputError(field: "weights.gpuFraction", "must be from 0 to 1, got \(weights.gpuFraction)")
        }
        for c in TokenClass.allCases where placement[c] < 0 {
            throw InputError(field: "placement.\(c.key)", "must be a non-negative number of tokens, got \(placement[c])")
        }
        let context = phase.placementContext
        guard placement.total == context else {
            let what: String
            switch phase {
            case .decodeStep(let c): what = "the context (\(c) tokens)"
            case .generate(let p, let t): what = "prompt + tokens (\(p) + \(t) = \(p + t))"
            }
            throw InputError(field: "placement", "gpuKV + gpuAct + hostKV + hostAct + recompute = \(placement.total), but must equal \(what)")
        }
        // The cache never holds more tokens than the model's context length.
        if case .generate(let p, let t) = phase, p + t - 1 > model.maxContext {
            throw InputError(field: "generate", "prompt + tokens - 1 = \(p + t - 1) cached tokens exceeds \(model.name)'s maximum context of \(model.maxContext)")
        }
        if case .decodeStep(let c) = phase, c > model.maxContext {
            throw InputError(field: "decodeStep.context", "must be at most \(model.name)'s maximum context of \(model.maxContext), got \(c)")
        }
        try validateEngineFeatures()
    }

    /// Refuses what the plan's engine cannot run or its machine cannot hold, naming the field.
    func validateEngineFeatures() throws {
        let e = engine
        if model.moe != nil { try e.require(.mixtureOfExperts, field: "model") }
        if model.slidingWindow != nil { try e.require(.slidingWindow, field: "model") }
        if model.mla != nil { try e.require(.latentAttention, field: "model") }
        if model.weightFormat != nil || model.kvCacheElementBytes != nil { try e.require(.quantizedCheckpoint, field: "model") }
        if model.weightFormat != nil, compression.weights != nil {
            throw InputError(field: "compression.weights", "\(model.name)'s checkpoint is already quantised (\(model.weightFormat!.description)); compress a full-precision checkpoint only")
        }
        guard kvDiskFraction >= 0, kvDiskFraction <= 1 else {
            throw InputError(field: "kvOnDisk", "must be a fraction from 0 to 1, got \(fmt(kvDiskFraction))")
        }
        for b in WeightBlock.allCases {
            let t = weights.tiers(b)
            guard t.gpu >= -1e-9, t.host >= -1e-9, t.disk >= -1e-9, abs(t.gpu + t.host + t.disk - 1) < 1e-6 else {
                throw InputError(field: "weights", "the GPU, host and disk shares must each be from 0 to 1 and add up to 1, got \(fmt(t.gpu)), \(fmt(t.host)), \(fmt(t.disk))")
            }
        }
        if weights.diskFraction > 0 {
            try e.require(.diskWeights, field: "weights.diskFraction")
            guard hardware.disk != nil else { throw InputError(field: "weights.diskFraction", "\(hardware.name) has no disk; give the device a \"disk\" or keep the weights off disk") }
        }
        if kvDiskFraction > 0 {
            try e.require(.diskCache, field: "kvOnDisk")
            guard hardware.disk != nil else { throw InputError(field: "kvOnDisk", "\(hardware.name) has no disk; give the device a \"disk\" or keep the cache off disk") }
            guard placement.hostKV > 0 else { throw InputError(field: "kvOnDisk", "puts host KV on disk, but the placement has no host KV tokens") }
        }
        if attentionOnHost {
            try e.require(.hostAttention, field: "attention")
            guard hardware.hostCPU != nil else {
                throw InputError(field: "attention", "\(hardware.name) has no host CPU rates (hardware.hostCPU); give them or compute attention on the GPU")
            }
            guard placement.hostAct == 0, placement.gpuAct == 0, placement.recompute == 0 else {
                throw InputError(field: "attention", "CPU attention reads the host KV cache; it takes a placement of gpuKV and hostKV tokens only")
            }
        } else if placement.hostKV > 0 {
            try e.require(.hostCache, field: "placement.hostKV")
        }
        if placement.gpuAct + placement.hostAct > 0 { try e.require(.activationCheckpoints, field: "placement") }
        if placement.recompute > 0 { try e.require(.tokenRecomputation, field: "placement.recompute") }
        if microBatches > 1 { try e.require(.microBatches, field: "policy.numGpuBatches") }
        if expertFetch != .prefetchAll, model.moe == nil {
            throw InputError(field: "experts", "\(model.name) is a dense model; \"\(expertFetch.rawValue)\" applies to a mixture of experts only")
        }
        if expertFetch == .hostCPU, hardware.hostCPU == nil {
            throw InputError(field: "experts", "\"cpu\" runs the experts on the host CPU, but \(hardware.name) has no host CPU rates (hardware.hostCPU); give them or use \"prefetch-all\" or \"on-demand\"")
        }
        if !e.followsIdealSchedule {
            // The engines' unit schedule plays per-head K/V, full-context caches and plain weights.
            for (present, what) in [(model.moe != nil, "a mixture of experts"), (model.mla != nil, "latent attention"),
                                    (model.slidingWindow != nil, "a sliding window"),
                                    (model.weightFormat != nil || model.kvCacheElementBytes != nil, "a quantised checkpoint or cache")] where present {
                throw InputError(field: "engineTraits", "traits other than expertKernels switch to the engines' unit schedule, which does not model \(what) (\(model.name)); keep the ideal engine's own traits")
            }
        }
        if expertFetch != .prefetchAll, placement.recompute > 0 {
            throw InputError(field: "experts", "\"\(expertFetch.rawValue)\" waits for the router, but token recomputation runs whole layers before it; use \"prefetch-all\" or no recompute tokens")
        }
        if weights.blocks == nil, weights.gpuFraction > 0, weights.gpuFraction < 1 { try e.require(.partialWeights, field: "weights.gpuFraction") }
        for (field, q, feature) in [("compression.weights", compression.weights, EngineTraits.Feature.weightCompression),
                                     ("compression.cache", compression.cache, .cacheCompression)] {
            guard let q else { continue }
            try e.require(feature, field: field)
            // FlexGen implements 4 bits only (compression.py 92), ZeRO-Inference wires only 4 (run_model.py 99).
            guard q.bits == 4 else {
                throw InputError(field: "\(field).bits", "engine \(e.kind.rawValue) quantises to 4 bits only, got \(q.bits)")
            }
            guard (2...4096).contains(q.groupSize), q.groupSize % 2 == 0 else {
                throw InputError(field: "\(field).groupSize", "must be an even number from 2 to 4096, got \(q.groupSize)")
            }
        }
        if compression.cache != nil, placement.gpuAct + placement.hostAct > 0 {
            throw InputError(field: "compression.cache", "compresses KV entries; the placement holds activation checkpoints, which stay uncompressed")
        }
    }
}

/// What a plan asks of its engine besides the placement: the engine, where decode attention over
/// host KV runs, compression, and the disk share of the host KV cache.
public struct EngineOptions: Equatable, Sendable {
    public var engine = Engine.ideal
    public var attentionOnHost = false
    public var compression = Compression.none
    public var kvDiskFraction = 0.0
    public var expertFetch = ExpertFetch.prefetchAll

    public init(engine: Engine = .ideal, attentionOnHost: Bool = false, compression: Compression = .none, kvDiskFraction: Double = 0,
                expertFetch: ExpertFetch = .prefetchAll) {
        self.engine = engine; self.attentionOnHost = attentionOnHost; self.compression = compression; self.kvDiskFraction = kvDiskFraction
        self.expertFetch = expertFetch
    }

    func apply(to p: inout ExecutionPlan) {
        p.engine = engine; p.attentionOnHost = attentionOnHost; p.compression = compression; p.kvDiskFraction = kvDiskFraction
        p.expertFetch = expertFetch
    }
}

extension PolicySpec {
    /// Turns the policy into explicit placements for a model, machine, batch and phase.
    ///
    /// `weights` is the scenario's weights setting, if it gave one. Policies that fix the weights
    /// (all-gpu, deepspeed, flexgen) reject a conflicting one; the offloading policies stream the
    /// weights (`host`) unless told otherwise. `options` carries the engine and what the plan asks
    /// of it; the flexgen policy sets CPU attention, compression and the disk shares from its own
    /// settings.
    public func resolve(model: ModelSpec, hardware: HardwareSpec, batch: Int, phase: Phase,
                        weights: WeightPlacement?, hostMemory: HostMemoryKind = .pinned,
                        options: EngineOptions = EngineOptions()) throws -> ExecutionPlan {
        let context = phase.placementContext
        var options = options
        func plan(_ w: WeightPlacement, _ p: TokenPlacement, micro: Int = 1, hidden: Bool = false) -> ExecutionPlan {
            var x = ExecutionPlan(model: model, hardware: hardware, batch: batch, microBatches: micro, weights: w, placement: p,
                                  hostMemory: hostMemory, hiddenOnHost: hidden, phase: phase, policyName: name)
            options.apply(to: &x)
            return x
        }
        func fixedWeights(_ fixed: WeightPlacement) throws -> WeightPlacement {
            if let w = weights, w != fixed {
                throw InputError(field: "weights", "policy \(name) keeps weights \(fixed.description); remove the key or set it to \"\(fixed.description)\"")
            }
            return fixed
        }
        /// Tokens per sequence that fit on the GPU: `n` up to `limit` such that the plan `make(n)`
        /// leaves room for one more token of `bytesPerToken` per layer (a generation's per-token
        /// assignment follows the split within one token). The free memory of `make(0)` gives a first
        /// count; since GPU tokens shrink the host-cache load buffers, the free memory of `make(n)`
        /// then admits more, and a few such steps leave less than two tokens of GPU memory unused.
        /// Each step only adds tokens that fit, so the result always fits.
        func gpuCapacity(bytesPerToken: Double, limit: Int, _ make: (Int) -> ExecutionPlan) -> Int {
            let perToken = Double(model.layers * batch) * bytesPerToken
            var n = 0
            for _ in 0 ..< 8 {
                let usage = MemoryModel.report(make(n))
                let extra = ((usage.gpuCapacity - usage.gpuUsed) / perToken).rounded(.down) - 1
                guard extra.isFinite, extra >= 1 else { break }
                n = min(limit, n + Int(min(extra, Double(limit))))
                if n == limit { break }
            }
            return n
        }
        switch self {
        case .allGPU:
            return plan(try fixedWeights(.gpu), TokenPlacement(gpuKV: context))
        case .deepSpeed:
            return plan(try fixedWeights(.host), TokenPlacement(gpuKV: context))
        case .flexGen(let s):
            if weights != nil {
                throw InputError(field: "weights", "policy flexgen takes its weight split from percent[0] and percent[1]; remove the key")
            }
            let gpuKV = Int((s.cacheGPUFraction * Double(context)).rounded())
            // FlexGen places whole tensors by its midpoint rule; another engine streams that share
            // of every tensor.
            let w = options.engine.kind == .flexgen
                ? WeightPlacement(attention: FlexGenPlacement.shares(.attention, model: model, percent: s.percent),
                                  ffn: FlexGenPlacement.shares(.ffn, model: model, percent: s.percent), model: model)
                : WeightPlacement(gpuFraction: s.weightsGPUFraction, diskFraction: s.weightsDiskFraction)
            let hostCache = s.percent[3] + max(0, 100 - s.percent[2] - s.percent[3])
            options.kvDiskFraction = hostCache > 0 ? s.cacheDiskFraction * 100 / hostCache : 0
            if s.cpuCacheCompute { options.attentionOnHost = true }
            if s.compressWeight { options.compression.weights = .flexGen4 }
            if s.compressCache { options.compression.cache = .flexGen4 }
            var p = plan(w, TokenPlacement(gpuKV: gpuKV, hostKV: context - gpuKV), micro: s.numGpuBatches, hidden: s.activationsOnHost)
            p.flexGenPercent = s.percent
            // CPU attention over a cache held on the GPU is computed on the GPU.
            if p.placement.hostKV == 0 { p.attentionOnHost = false }
            return p
        case .kvOffload(let given):
            let w = weights ?? .host
            let gpuKV = given ?? gpuCapacity(bytesPerToken: model.kvBytesPerToken, limit: context) { plan(w, TokenPlacement(gpuKV: $0, hostKV: context - $0)) }
            guard gpuKV <= context else {
                throw InputError(field: "policy.gpuKVTokens", "must be from 0 to the context (\(context)), got \(gpuKV)")
            }
            return plan(w, TokenPlacement(gpuKV: gpuKV, hostKV: context - gpuKV))
        case .tokenRecompute(let f):
            let r = Int((f * Double(context)).rounded())
            return plan(weights ?? .host, TokenPlacement(hostKV: context - r, recompute: r))
        case .actOnly(let given):
            let w = weights ?? .host
            let gpuAct = given ?? gpuCapacity(bytesPerToken: model.actBytesPerToken, limit: context) { plan(w, TokenPlacement(gpuAct: $0, hostAct: context - $0)) }
            guard gpuAct <= context else {
                throw InputError(field: "policy.gpuActTokens", "must be from 0 to the context (\(context)), got \(gpuAct)")
            }
            return plan(w, TokenPlacement(gpuAct: gpuAct, hostAct: context - gpuAct))
        case .hybrid(let kvFraction, let given, let recomputeFraction):
            let w = weights ?? .host
            let recompute = Int((recomputeFraction * Double(context)).rounded())
            func split(_ gpuAct: Int) -> TokenPlacement {
                let host = context - recompute - gpuAct
                let kv = Int((kvFraction * Double(host)).rounded())
                return TokenPlacement(gpuAct: gpuAct, hostKV: kv, hostAct: host - kv, recompute: recompute)
            }
            let gpuAct = given ?? gpuCapacity(bytesPerToken: model.actBytesPerToken, limit: context - recompute) { plan(w, split($0)) }
            guard gpuAct + recompute <= context else {
                throw InputError(field: "policy.gpuActTokens", "must be from 0 to the context less the recomputed tokens (\(context - recompute)), got \(gpuAct)")
            }
            return plan(w, split(gpuAct))
        }
    }
}
