import Foundation

/// A sweep file: the scenario's setup keys (`model`, `layers`, `dtype`, `hardware`,
/// `hostMemoryGiB`, `hostMemory`), a workload, and grids. docs/scenarios.md documents it.
///
///     {"model": "opt-13b", "hardware": "rtx4090", "generate": {"prompt": 512, "tokens": 32},
///      "ratios": {"from": 0, "to": 1, "step": 0.05}, "batches": [16, 32, 64], "weights": "host"}
public enum SweepConfig {
    public static let keys = ["name", "description", "model", "layers", "dtype", "hardware", "hostMemoryGiB", "hostMemory",
                              "generate", "maxStepMs", "ratios", "batches", "weights", "recomputeFractions", "allowCompression", "profile", "routingSkew", "weightFormat", "kvCacheDtype"]

    public static func load(_ url: URL, space: SearchSpace) throws -> Sweep {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw InputError(field: "", "cannot read the sweep file \(url.path)")
        }
        return try parse(data, source: url.path, baseDirectory: url.deletingLastPathComponent(), space: space)
    }

    /// Reads a sweep file; keys it leaves out keep the values of `space` and of the default sweep.
    public static func parse(_ data: Data, source: String, baseDirectory: URL?, space: SearchSpace) throws -> Sweep {
        let o = try JSONFields.parse(data, source: source)
        try o.rejectUnknown(allowed: keys)
        let base = try Sweep.defaultSweep()
        var setupObject = o.object
        if !o.has("model") { setupObject["model"] = base.setup.model.name }
        if !o.has("hardware") { setupObject["hardware"] = base.setup.hardware.name }
        let (model, hardware, hostMemory) = try Scenario.parseSetup(JSONFields(setupObject, path: ""), baseDirectory: baseDirectory)
        var workload = base.setup.workload
        if o.has("generate") {
            let g = try o.object("generate")
            try g.rejectUnknown(allowed: ["prompt", "tokens"])
            workload.prompt = try g.int("prompt", in: 1...(1 << 24))
            workload.tokens = try g.int("tokens", in: 1...(1 << 20))
        }
        if let ms = try o.optionalDouble("maxStepMs", in: 0.001...1e9) { workload.maxStepSeconds = ms / 1e3 }
        var s = space
        if o.has("ratios") { s.ratios = try ratios(try o.raw("ratios"), field: "ratios") }
        if o.has("batches") { s.batches = try batches(try o.raw("batches"), field: "batches") }
        if o.has("weights") {
            s.weightsGPUFractions = [try Scenario.parseWeights(try o.raw("weights")).gpuFraction]
            s.weightsFixed = true
        }
        if o.has("allowCompression") { s.allowCompression = try o.bool("allowCompression") }
        if o.has("recomputeFractions") { s.recomputeFractions = try fractions(try o.raw("recomputeFractions"), field: "recomputeFractions") }
        var setup = Setup(model: model, hardware: hardware, hostMemory: hostMemory, workload: workload)
        if let path = try o.optionalString("profile") {
            let folder = URL(fileURLWithPath: path, relativeTo: path.hasPrefix("/") ? nil : baseDirectory)
            let profile = try ProfileReader.read(folder)
            try ProfileCostModel.check(profile, hardware: hardware, dtype: model.dtype)
            setup.cost = try ProfileCostModel(profile: profile, hardware: hardware)
            setup.profileFolder = folder
        }
        try validate(setup)
        return Sweep(setup: setup, space: s)
    }

    /// A ratio grid: an array of fractions, `{"from": a, "to": b, "step": s}`, or the text forms
    /// `"a:b:s"` and `"a,b,c"` used on the command line.
    public static func ratios(_ v: Any, field: String) throws -> [Double] {
        if let text = v as? String {
            if text.contains(":") {
                let parts = text.split(separator: ":").map { Double($0.trimmingCharacters(in: .whitespaces)) }
                guard parts.count == 3, let a = parts[0], let b = parts[1], let st = parts[2] else {
                    throw InputError(field: field, "must be FROM:TO:STEP (like 0:1:0.01) or a list like 0,0.5,1, got \"\(text)\"")
                }
                return try range(a, b, st, field: field)
            }
            return try fractions(text.split(separator: ",").map { String($0) }, field: field)
        }
        if let d = v as? [String: Any] {
            let o = JSONFields(d, path: field)
            try o.rejectUnknown(allowed: ["from", "to", "step"])
            return try range(try o.double("from", in: 0...1), try o.double("to", in: 0...1), try o.double("step", in: 1e-4...1), field: field)
        }
        return try fractions(v, field: field)
    }

    static func range(_ a: Double, _ b: Double, _ step: Double, field: String) throws -> [Double] {
        guard (0...1).contains(a), (0...1).contains(b), a <= b else {
            throw InputError(field: field, "FROM and TO must lie in [0, 1] with FROM <= TO, got \(fmt(a)) and \(fmt(b))")
        }
        guard step >= 1e-4, step <= 1 else {
            throw InputError(field: field, "STEP must be from 0.0001 to 1, got \(fmt(step))")
        }
        let n = Int(((b - a) / step + 1e-9).rounded(.down))
        return (0 ... n).map { (a + Double($0) * step) * 1e9 }.map { ($0.rounded()) / 1e9 }
    }

    static func fractions(_ v: Any, field: String) throws -> [Double] {
        let items: [Any]
        if let a = v as? [Any] { items = a } else if let s = v as? [String] { items = s } else {
            throw InputError(field: field, "must be a list of fractions from 0 to 1")
        }
        guard !items.isEmpty, items.count <= 10001 else {
            throw InputError(field: field, "must hold 1 to 10001 values, got \(items.count)")
        }
        let values = try items.enumerated().map { i, x in
            guard let d = number(x), (0...1).contains(d) else {
                throw InputError(field: "\(field)[\(i)]", "must be a fraction from 0 to 1, got \(describe(x))")
            }
            return d
        }
        // Repeats removed and sorted, as batch sizes are.
        return Array(Set(values)).sorted()
    }

    /// A list item as a number: a JSON number (not a boolean) or text such as " 0.5" from a flag.
    static func number(_ x: Any) -> Double? {
        if let text = x as? String { return Double(text.trimmingCharacters(in: .whitespaces)) }
        if let n = x as? NSNumber, !JSONFields.isBool(x) { return n.doubleValue }
        return nil
    }

    public static func batches(_ v: Any, field: String) throws -> [Int] {
        let items: [Any]
        if let text = v as? String { items = text.split(separator: ",").map { String($0) } } else if let a = v as? [Any] { items = a } else {
            throw InputError(field: field, "must be a list of batch sizes like 8,16,32")
        }
        guard !items.isEmpty, items.count <= 256 else {
            throw InputError(field: field, "must hold 1 to 256 batch sizes, got \(items.count)")
        }
        let values = try items.enumerated().map { i, x -> Int in
            guard let d = number(x), d.rounded() == d, d >= 1, d <= 1_048_576 else {
                throw InputError(field: "\(field)[\(i)]", "must be an integer from 1 to 1048576, got \(describe(x))")
            }
            return Int(d)
        }
        return Array(Set(values)).sorted()
    }

    /// Checks that the workload fits the model's context and that the device has a rate for the dtype.
    public static func validate(_ s: Setup) throws {
        if s.workload.prompt + s.workload.tokens - 1 > s.model.maxContext {
            throw InputError(field: "generate", "prompt + tokens - 1 = \(s.workload.prompt + s.workload.tokens - 1) cached tokens exceeds \(s.model.name)'s maximum context of \(s.model.maxContext)")
        }
        _ = try AnalyticCostModel(hardware: s.hardware, dtype: s.model.dtype)
    }
}
