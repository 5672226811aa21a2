import Foundation

/// Published throughput of real offloading engines (`published-runs/1`, docs/profiles.md)
/// replayed in the simulator: each run becomes a plan on its engine, machine and settings, and its
/// predicted throughput is set beside the published one.
///
///     let file = try PublishedRuns.load(URL(fileURLWithPath: "published-runs.json"))
///     let results = file.runs.map { PublishedRuns.predict($0, in: file) }
public enum PublishedRuns {
    public static let format = "published-runs/1"

    /// One machine as the file describes it.
    public struct Machine: Sendable {
        public var key: String
        public var gpu: String
        public var gpuMemoryGB: Double?
        public var hostMemoryGB: Double?
        public var diskReadGBps: Double?
        public var diskWriteGBps: Double?
    }

    public struct Run: Sendable {
        public var id: String
        public var system: String
        public var model: String
        public var machine: String
        public var prompt: Int
        public var tokens: Int
        public var dtype: String?
        /// The engine's settings, as JSON values.
        public var settings: [String: any Sendable]
        public var tokensPerSecond: Double
        public var provenance: String
    }

    public struct File: Sendable {
        public var machines: [String: Machine]
        public var runs: [Run]
    }

    /// A run's prediction, or why it cannot be expressed.
    public struct Result: Sendable {
        public var id: String
        public var measuredTokensPerSecond: Double
        public var predictedTokensPerSecond: Double?
        public var why: String?
        public var expressible: Bool { predictedTokensPerSecond != nil }
        /// Predicted over measured, less one.
        public var error: Double? { predictedTokensPerSecond.map { $0 / measuredTokensPerSecond - 1 } }
    }

    public static func load(_ url: URL) throws -> File {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw InputError(field: "", "cannot read the published runs file \(url.path)")
        }
        return try parse(data, source: url.path)
    }

    public static func parse(_ data: Data, source: String) throws -> File {
        let o = try JSONFields.parse(data, source: source)
        guard try o.string("format") == format else {
            throw InputError(field: "\(source): format", "must be \"\(format)\", got \"\(try o.string("format"))\"")
        }
        var machines: [String: Machine] = [:]
        if let ms = try o.optionalObject("machines") {
            for key in ms.object.keys.sorted() {
                let m = try ms.object(key)
                let disk = try m.optionalObject("disk")
                machines[key] = Machine(key: key, gpu: try m.string("gpu"), gpuMemoryGB: try m.optionalDouble("gpuMemoryGB", in: 0.1...1e6),
                                        hostMemoryGB: try m.optionalDouble("hostMemoryGB", in: 0.1...1e9),
                                        diskReadGBps: try disk?.optionalDouble("readGBps", in: 0.001...1e4),
                                        diskWriteGBps: try disk?.optionalDouble("writeGBps", in: 0.001...1e4))
            }
        }
        var runs: [Run] = []
        for (i, raw) in try o.array("runs").enumerated() {
            guard let d = raw as? [String: Any] else { throw InputError(field: "\(source): runs[\(i)]", "must be an object") }
            let r = JSONFields(d, path: "\(source): runs[\(i)]")
            let settings = try r.optionalObject("settings")?.object ?? [:]
            runs.append(Run(id: try r.string("id"), system: try r.string("system"), model: try r.string("model"),
                            machine: try r.string("machine"), prompt: try r.int("prompt", in: 1...(1 << 24)),
                            tokens: try r.int("tokens", in: 1...(1 << 20)), dtype: try r.optionalString("dtype"),
                            settings: settings.mapValues { sendable($0) }, tokensPerSecond: try r.double("tokensPerSecond", in: 1e-9...1e12),
                            provenance: try r.optionalString("provenance") ?? ""))
        }
        return File(machines: machines, runs: runs)
    }

    static func sendable(_ v: Any) -> any Sendable {
        if let n = v as? NSNumber { return JSONFields.isBool(v) ? (n.boolValue as any Sendable) : (n.doubleValue as any Sendable) }
        if let s = v as? String { return s }
        if let a = v as? [Any] { return a.map { sendable($0) } }
        return String(describing: v)
    }

    /// The catalog device a run's machine names, or one built from its description: the catalog GPU
    /// whose name its `gpu` text holds, with the described host memory and disk.
    public static func hardware(_ key: String, in file: File) throws -> HardwareSpec {
        if let hw = HardwareCatalog.all.first(where: { $0.name == key }) { return hw }
        guard let m = file.machines[key] else {
            throw InputError(field: "machine", "\"\(key)\" is neither a catalog device nor described in the file's machines")
        }
        let text = m.gpu.lowercased()
        let gpuNames: [(String, String)] = [("h100", "h100-sxm"), ("a100", "a100-40gb"), ("4090", "rtx4090"), ("a6000", "a6000"), ("t4", "t4")]
        guard let match = gpuNames.first(where: { text.contains($0.0) }), var hw = try? HardwareCatalog.device(named: match.1) else {
            throw InputError(field: "machines.\(key).gpu", "\"\(m.gpu)\" names no GPU of the catalog (\(HardwareCatalog.names.joined(separator: ", ")))")
        }
        hw.name = key
        if let g = m.hostMemoryGB { hw.host.memoryBytes = g * 1e9 }
        if let r = m.diskReadGBps {
            hw.disk = DiskSpec(name: "\(key) disk", capacityBytes: hw.disk?.capacityBytes ?? 2e12, readBytesPerSecond: r * 1e9,
                               writeBytesPerSecond: (m.diskWriteGBps ?? r) * 1e9)
        }
        return hw
    }

    /// The plan a run describes, on its engine.
    public static func plan(_ run: Run, in file: File) throws -> ExecutionPlan {
        guard let kind = EngineKind(rawValue: run.system), kind != .ideal else {
            throw InputError(field: "system", "\"\(run.system)\" is not an engine the planner models (flexgen, deepspeed-zero-inference, hf-accelerate)")
        }
        var model = try ModelCatalog.model(named: run.model)
        if let d = run.dtype {
            guard let dtype = DType(rawValue: d) else { throw InputError(field: "dtype", "must be fp16, bf16 or fp32, got \"\(d)\"") }
            model.dtype = dtype
        }
        let hardware = try hardware(run.machine, in: file)
        let s = Settings(run.settings)
        let phase = Phase.generate(prompt: run.prompt, tokens: run.tokens)
        var engine = Engine(kind)
        var options = EngineOptions(engine: engine)
        let percent = try s.percent()
        switch kind {
        case .flexgen:
            try s.allow(["percent", "gpuBatchSize", "numGpuBatches", "cpuCacheCompute", "compressWeight", "compressCache", "pinWeight", "overlap"])
            let gbs = try s.int("gpuBatchSize") ?? 4
            let ngb = try s.int("numGpuBatches") ?? 1
            // `--overlap False` runs the loop without prefetch or barriers (flex_opt.py 912-927);
            // `--pin-weight 0` leaves the CPU weights pageable (flex_opt.py 104-109).
            if try s.bool("overlap") == false { engine.traits.weightFetch = .serial }
            if try s.bool("pinWeight") == false { engine.traits.weightsHostMemory = .pageable }
            options.engine = engine
            let policy = PolicySpec.flexGen(FlexGenSettings(percent: percent, gpuBatchSize: gbs, numGpuBatches: ngb,
                                                            cpuCacheCompute: try s.bool("cpuCacheCompute") ?? false,
                                                            compressWeight: try s.bool("compressWeight") ?? false,
                                                            compressCache: try s.bool("compressCache") ?? false))
            return try policy.resolve(model: model, hardware: hardware, batch: gbs * ngb, phase: phase, weights: nil,
                                      hostMemory: engine.traits.weightsHostMemory, options: options)
        case .hfAccelerate, .deepSpeedZeroInference:
            if kind == .deepSpeedZeroInference, run.provenance.contains("hf_ds") {
                // FlexGen's baseline harness (benchmark/hf_ds) runs the DeepSpeed 0.7.7 it vendors
                // (benchmark/third_party): the all-gather fetch path, and a timed prefill that
                // records the trace instead of prefetching.
                engine.traits.gatherDeviceCopies = 3
                engine.traits.prefillPrefetches = false
            }
            try s.allow(kind == .hfAccelerate ? ["percent", "batch"] : ["percent", "batch", "offloadWeights", "kvOffload", "pinMemory", "quantWeightBits"])
            guard let batch = try s.int("batch") else { throw InputError(field: "settings.batch", "missing") }
            if let pin = try s.bool("pinMemory") { engine.traits.weightsHostMemory = pin ? .pinned : .pageable }
            if let bits = try s.int("quantWeightBits"), bits < 16 { options.compression.weights = Quantization(bits: bits, groupSize: 64) }
            let kvOffload = try s.bool("kvOffload") ?? false
            options.attentionOnHost = kvOffload
            options.engine = engine
            var weights = WeightPlacement(gpuFraction: percent[0] / 100, diskFraction: max(0, 100 - percent[0] - percent[1]) / 100)
            if let where_ = try s.string("offloadWeights") {
                switch where_ {
                case "cpu": weights = .host
                case "nvme", "disk": weights = WeightPlacement(gpuFraction: 0, diskFraction: 1)
                case "none", "gpu": weights = .gpu
                default: throw InputError(field: "settings.offloadWeights", "must be \"cpu\", \"nvme\" or \"none\", got \"\(where_)\"")
                }
            }
            let context = phase.placementContext
            let placement = kvOffload ? TokenPlacement(hostKV: context) : TokenPlacement(gpuKV: context)
            var p = ExecutionPlan(model: model, hardware: hardware, batch: batch, weights: weights, placement: placement,
                                  hostMemory: engine.traits.weightsHostMemory, phase: phase, policyName: run.system)
            options.apply(to: &p)
            try p.validate()
            return p
        case .ideal:
            preconditionFailure("refused above")
        }
    }

    /// Simulates a run; a run the planner cannot express is reported with why, never dropped.
    public static func predict(_ run: Run, in file: File) -> Result {
        do {
            let p = try plan(run, in: file)
            let r = try Simulator.run(p, cost: try AnalyticCostModel(hardware: p.hardware, dtype: p.model.dtype))
            return Result(id: run.id, measuredTokensPerSecond: run.tokensPerSecond, predictedTokensPerSecond: r.tokensPerSecond)
        } catch {
            return Result(id: run.id, measuredTokensPerSecond: run.tokensPerSecond, predictedTokensPerSecond: nil, why: "\(error)")
        }
    }

    /// Mean absolute percentage error over the expressible runs.
    public static func meanAbsoluteError(_ results: [Result]) -> Double? {
        let errors = results.compactMap(\.error).map(abs)
        return errors.isEmpty ? nil : errors.reduce(0, +) / Double(errors.count)
    }

    /// A run's settings, read with the field named on error.
    struct Settings {
        let values: [String: any Sendable]
        init(_ v: [String: any Sendable]) { values = v }

        func allow(_ keys: [String]) throws {
            for k in values.keys.sorted() where !keys.contains(k) {
                throw InputError(field: "settings.\(k)", "is not a setting the planner models for this engine; it takes \(keys.joined(separator: ", "))")
            }
        }
        func bool(_ k: String) throws -> Bool? {
            guard let v = values[k] else { return nil }
            guard let b = v as? Bool else { throw InputError(field: "settings.\(k)", "must be true or false") }
            return b
        }
        func int(_ k: String) throws -> Int? {
            guard let v = values[k] else { return nil }
            guard let d = v as? Double, d.rounded() == d, d >= 1, d <= 1_048_576 else {
                throw InputError(field: "settings.\(k)", "must be an integer from 1 to 1048576")
            }
            return Int(d)
        }
        func string(_ k: String) throws -> String? {
            guard let v = values[k] else { return nil }
            guard let s = v as? String else { throw InputError(field: "settings.\(k)", "must be text") }
            return s
        }
        func percent() throws -> [Double] {
            guard let v = values["percent"] else { return [100, 0, 100, 0, 100, 0] }
            guard let a = v as? [any Sendable], a.count == 6, let p = a.map({ $0 as? Double }) as? [Double],
                  p.allSatisfy({ (0...100).contains($0) }) else {
                throw InputError(field: "settings.percent", "must be six numbers from 0 to 100")
            }
            return p
        }
    }
}
