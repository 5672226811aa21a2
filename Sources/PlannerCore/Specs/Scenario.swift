import Foundation

/// The project's scenario format: a JSON object naming a model, a machine, a batch, a phase, and
/// either an explicit placement or a policy. docs/scenarios.md documents every key.
///
///     {"model": "opt-13b", "hardware": "h100-sxm", "batch": 64,
///      "decodeStep": {"context": 2048}, "weights": "host",
///      "placement": {"gpuKV": 0, "gpuAct": 1024, "hostKV": 614, "hostAct": 410, "recompute": 0}}
///
///     let plan = try Scenario.load(URL(fileURLWithPath: "examples/hybrid.json"))
public enum Scenario {
    public static let keys = ["name", "description", "model", "layers", "hardware", "hostMemoryGiB", "batch", "decodeStep",
                              "generate", "weights", "placement", "policy", "hostMemory", "dtype", "planner", "profile",
                              "engine", "engineTraits", "attention", "compression", "kvOnDisk", "experts", "routingSkew", "weightFormat", "kvCacheDtype"]

    public static func load(_ url: URL) throws -> ExecutionPlan {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw InputError(field: "", "cannot read the scenario file \(url.path)")
        }
        return try parse(data, source: url.path, baseDirectory: url.deletingLastPathComponent())
    }

    public static func parse(_ data: Data, source: String = "scenario", baseDirectory: URL? = nil) throws -> ExecutionPlan {
        let o = try JSONFields.parse(data, source: source)
        try o.rejectUnknown(allowed: keys)
        // `planner` holds what `planner plan` expected of this configuration; it is information only.
        if o.has("planner") { _ = try o.object("planner") }

        let (model, hardware, setupHostMemory) = try parseSetup(o, baseDirectory: baseDirectory)
        let batch = try o.int("batch", in: 1...1_048_576)
        let phase = try parsePhase(o)
        let weights = try o.has("weights") ? parseWeights(try o.raw("weights")) : nil
        let options = try parseEngineOptions(o)
        // A scenario that does not say which host memory it streams from uses its engine's.
        let hostMemory = o.has("hostMemory") ? setupHostMemory : options.engine.traits.weightsHostMemory
        let plan: ExecutionPlan
        switch (o.has("placement"), o.has("policy")) {
        case (true, true):
            throw InputError(field: "placement", "give either placement or policy, not both")
        case (false, false):
            throw InputError(field: "placement", "missing; give a placement (tokens per class) or a policy (\(PolicySpec.names.joined(separator: ", ")))")
        case (true, false):
            guard let w = weights else {
                throw InputError(field: "weights", "missing; with an explicit placement give \"gpu\", \"host\" or {\"gpuFraction\": x}")
            }
            let p = try o.object("placement")
            try p.rejectUnknown(allowed: TokenClass.allCases.map(\.key))
            var placement = TokenPlacement()
            for c in TokenClass.allCases {
                placement[c] = try p.optionalInt(c.key, in: 0...(1 << 24)) ?? 0
            }
            var explicit = ExecutionPlan(model: model, hardware: hardware, batch: batch, weights: w, placement: placement,
                                         hostMemory: hostMemory, phase: phase, policyName: "placement")
            options.apply(to: &explicit)
            plan = explicit
        case (false, true):
            let policy = try parsePolicy(try o.object("policy"), batch: batch)
            plan = try policy.resolve(model: model, hardware: hardware, batch: batch, phase: phase, weights: weights, hostMemory: hostMemory,
                                      options: options)
        }
        try plan.validate()
        return plan
    }

    /// The scenario's `profile` key: a profile folder (profiles/FORMAT.md) whose measurements the
    /// simulation uses instead of the analytic cost model; relative to the scenario's folder.
    public static func profileFolder(_ url: URL) throws -> URL? {
        guard let data = FileManager.default.contents(atPath: url.path) else { return nil }
        let o = try JSONFields.parse(data, source: url.path)
        guard let path = try o.optionalString("profile") else { return nil }
        return URL(fileURLWithPath: path, relativeTo: path.hasPrefix("/") ? nil : url.deletingLastPathComponent())
    }

    /// The keys a scenario shares with a sweep: `model`, `layers`, `dtype`, `hardware`,
    /// `hostMemoryGiB`, `hostMemory`.
    public static func parseSetup(_ o: JSONFields, baseDirectory: URL?) throws -> (ModelSpec, HardwareSpec, HostMemoryKind) {
        var model = try ModelCatalog.resolve(try o.raw("model"), field: "model", baseDirectory: baseDirectory)
        if let layers = try o.optionalInt("layers", in: 1...1024) { model = model.withLayers(layers) }
        if let text = try o.optionalString("dtype") {
            guard let dtype = DType(rawValue: text) else {
                throw InputError(field: "dtype", "must be one of fp16, bf16, fp32, got \"\(text)\"")
            }
            model.dtype = dtype
        }
        if let skew = try o.optionalDouble("routingSkew", in: -Double.greatestFiniteMagnitude...Double.greatestFiniteMagnitude) {
            guard model.moe != nil else {
                throw InputError(field: "routingSkew", "\(model.name) is a dense model; routingSkew applies to a mixture of experts only")
            }
            guard skew >= 0, skew <= 1 else {
                throw InputError(field: "routingSkew", "must be from 0 (uniform routing) to 1 (every token the same experts), got \(fmt(skew))")
            }
            model.moe!.routingSkew = skew
        }
        if let f = try o.optionalObject("weightFormat") {
            try f.rejectUnknown(allowed: ["method", "bits", "groupSize"])
            let name = try f.string("method")
            guard let method = WeightFormat.Method(rawValue: name) else {
                throw InputError(field: f.fieldPath("method"), "must be one of \(WeightFormat.Method.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(name)\"")
            }
            let bits = try f.optionalInt("bits", in: 1...16) ?? (method == .fp8 ? 8 : 4)
            model.weightFormat = WeightFormat(method: method, bits: bits, groupSize: try f.optionalInt("groupSize", in: 1...65536),
                                              expertsOnly: method == .mxfp4)
            try model.weightFormat!.validate(path: "weightFormat")
            if method == .mxfp4, model.moe == nil {
                throw InputError(field: "weightFormat.method", "mxfp4 quantises a mixture's experts; \(model.name) has none")
            }
        }
        if let kv = try o.optionalString("kvCacheDtype") {
            switch kv {
            case "auto": model.kvCacheElementBytes = nil
            case "fp8": model.kvCacheElementBytes = 1
            default: throw InputError(field: "kvCacheDtype", "must be \"auto\" (the model's element type) or \"fp8\", got \"\(kv)\"")
            }
        }
        var hardware = try HardwareCatalog.resolve(try o.raw("hardware"), field: "hardware", baseDirectory: baseDirectory)
        if let gib = try o.optionalDouble("hostMemoryGiB", in: 0.001...1_048_576) {
            hardware.host.memoryBytes = gib * HardwareCatalog.GiB
        }
        var hostMemory = HostMemoryKind.pinned
        if let kind = try o.optionalString("hostMemory") {
            guard let k = HostMemoryKind(rawValue: kind) else {
                throw InputError(field: "hostMemory", "must be \"pinned\" or \"pageable\", got \"\(kind)\"")
            }
            hostMemory = k
        }
        return (model, hardware, hostMemory)
    }

    static func parsePhase(_ o: JSONFields) throws -> Phase {
        switch (o.has("decodeStep"), o.has("generate")) {
        case (true, true):
            throw InputError(field: "decodeStep", "give either decodeStep or generate, not both")
        case (false, false):
            throw InputError(field: "decodeStep", "missing; give \"decodeStep\": {\"context\": N} or \"generate\": {\"prompt\": P, \"tokens\": T}")
        case (true, false):
            let d = try o.object("decodeStep")
            try d.rejectUnknown(allowed: ["context"])
            return .decodeStep(context: try d.int("context", in: 1...(1 << 24)))
        case (false, true):
            let g = try o.object("generate")
            try g.rejectUnknown(allowed: ["prompt", "tokens"])
            return .generate(prompt: try g.int("prompt", in: 1...(1 << 24)), tokens: try g.int("tokens", in: 1...(1 << 20)))
        }
    }

    /// The scenario's `engine`, `engineTraits`, `attention`, `compression` and `kvOnDisk`.
    public static func parseEngineOptions(_ o: JSONFields) throws -> EngineOptions {
        var options = EngineOptions()
        if let name = try o.optionalString("engine") {
            guard let kind = EngineKind(rawValue: name) else {
                throw InputError(field: "engine", "unknown engine \"\(name)\"; allowed are \(EngineKind.names.joined(separator: ", "))")
            }
            options.engine = Engine(kind)
        }
        if let t = try o.optionalObject("engineTraits") {
            options.engine.traits = try options.engine.traits.overridden(by: t)
        }
        if let where_ = try o.optionalString("attention") {
            switch where_ {
            case "gpu": options.attentionOnHost = false
            case "cpu": options.attentionOnHost = true
            default: throw InputError(field: "attention", "must be \"gpu\" or \"cpu\" (decode attention over the host KV cache on the host CPU), got \"\(where_)\"")
            }
        }
        if let c = try o.optionalObject("compression") {
            try c.rejectUnknown(allowed: ["weights", "cache"])
            func quantization(_ key: String) throws -> Quantization? {
                guard let q = try c.optionalObject(key) else { return nil }
                try q.rejectUnknown(allowed: ["bits", "groupSize"])
                let bits = try q.int("bits", in: Int.min...Int.max)
                guard bits == 4 || bits == 8 else { throw InputError(field: q.fieldPath("bits"), "must be 4 or 8, got \(bits)") }
                return Quantization(bits: bits, groupSize: try q.optionalInt("groupSize", in: 1...4096) ?? 64)
            }
            options.compression = Compression(weights: try quantization("weights"), cache: try quantization("cache"))
        }
        if let f = try o.optionalDouble("kvOnDisk", in: 0...1) { options.kvDiskFraction = f }
        if let x = try o.optionalString("experts") {
            guard let fetch = ExpertFetch(rawValue: x) else {
                throw InputError(field: "experts", "must be \"prefetch-all\", \"on-demand\" or \"cpu\", got \"\(x)\"")
            }
            options.expertFetch = fetch
        }
        return options
    }

    public static func parseWeights(_ v: Any) throws -> WeightPlacement {
        if let s = v as? String {
            switch s {
            case "gpu": return .gpu
            case "host": return .host
            default: throw InputError(field: "weights", "must be \"gpu\", \"host\" or {\"gpuFraction\": x} with x from 0 to 1, got \"\(s)\"")
            }
        }
        if let d = v as? [String: Any] {
            let o = JSONFields(d, path: "weights")
            try o.rejectUnknown(allowed: ["gpuFraction", "diskFraction"])
            let gpu = try o.double("gpuFraction", in: 0...1)
            let disk = try o.optionalDouble("diskFraction", in: 0...1) ?? 0
            guard gpu + disk <= 1 + 1e-9 else {
                throw InputError(field: "weights.diskFraction", "gpuFraction + diskFraction must be at most 1 (the rest is in host memory), got \(fmt(gpu)) + \(fmt(disk))")
            }
            return WeightPlacement(gpuFraction: gpu, diskFraction: disk)
        }
        throw InputError(field: "weights", "must be \"gpu\", \"host\" or {\"gpuFraction\": x} with x from 0 to 1")
    }

    static func parsePolicy(_ o: JSONFields, batch: Int) throws -> PolicySpec {
        let name = try o.string("name")
        switch name {
        case "all-gpu":
            try o.rejectUnknown(allowed: ["name"])
            return .allGPU
        case "deepspeed":
            try o.rejectUnknown(allowed: ["name"])
            return .deepSpeed
        case "kv-offload":
            try o.rejectUnknown(allowed: ["name", "gpuKVTokens"])
            return .kvOffload(gpuKVTokens: try o.optionalInt("gpuKVTokens", in: 0...(1 << 24)) ?? 0)
        case "act-only":
            try o.rejectUnknown(allowed: ["name", "gpuActTokens"])
            return .actOnly(gpuActTokens: try o.optionalInt("gpuActTokens", in: 0...(1 << 24)))
        case "recompute":
            try o.rejectUnknown(allowed: ["name", "fraction"])
            return .tokenRecompute(fraction: try o.double("fraction", in: 0...1))
        case "hybrid":
            try o.rejectUnknown(allowed: ["name", "kvFraction", "gpuActTokens", "recomputeFraction"])
            return .hybrid(kvFraction: try o.double("kvFraction", in: 0...1),
                           gpuActTokens: try o.optionalInt("gpuActTokens", in: 0...(1 << 24)),
                           recomputeFraction: try o.optionalDouble("recomputeFraction", in: 0...1) ?? 0)
        case "flexgen":
            try o.rejectUnknown(allowed: ["name", "percent", "gpuBatchSize", "numGpuBatches", "cpuCacheCompute", "compressWeight", "compressCache"])
            let raw = try o.array("percent")
            guard raw.count == 6 else {
                throw InputError(field: o.fieldPath("percent"), "must hold six numbers (weights GPU, weights CPU, cache GPU, cache CPU, activations GPU, activations CPU), got \(raw.count)")
            }
            var percent: [Double] = []
            for (i, v) in raw.enumerated() {
                guard let n = v as? NSNumber, !JSONFields.isBool(v), (0...100).contains(n.doubleValue) else {
                    throw InputError(field: o.fieldPath("percent[\(i)]"), "must be a number from 0 to 100, got \(describe(v))")
                }
                percent.append(n.doubleValue)
            }
            for (i, what) in [(0, "weights"), (2, "cache"), (4, "activations")] where percent[i] + percent[i + 1] > 100 + 1e-9 {
                throw InputError(field: o.fieldPath("percent"), "\(what) GPU + CPU must be at most 100 (the rest is on disk), got \(fmt(percent[i])) + \(fmt(percent[i + 1]))")
            }
            // FlexGen keeps activations whole on one tier (flex_opt.py 608-615); the disk is not a tier for them here.
            guard percent[4] == 100 || percent[5] == 100 else {
                throw InputError(field: o.fieldPath("percent"), "activations must be 100% on the GPU or 100% on the CPU (percent[4] or percent[5]), got \(fmt(percent[4])) and \(fmt(percent[5]))")
            }
            let gpuBatch = try o.optionalInt("gpuBatchSize", in: 1...1_048_576) ?? batch
            let numBatches = try o.optionalInt("numGpuBatches", in: 1...4096) ?? 1
            guard gpuBatch * numBatches == batch else {
                throw InputError(field: o.fieldPath("numGpuBatches"), "gpuBatchSize x numGpuBatches (\(gpuBatch) x \(numBatches)) must equal batch (\(batch))")
            }
            func flag(_ key: String) throws -> Bool { o.has(key) ? try o.bool(key) : false }
            return .flexGen(FlexGenSettings(percent: percent, gpuBatchSize: gpuBatch, numGpuBatches: numBatches,
                                            cpuCacheCompute: try flag("cpuCacheCompute"), compressWeight: try flag("compressWeight"),
                                            compressCache: try flag("compressCache")))
        default:
            throw InputError(field: o.fieldPath("name"), "unknown policy \"\(name)\"; allowed are \(PolicySpec.names.joined(separator: ", "))")
        }
    }
}
