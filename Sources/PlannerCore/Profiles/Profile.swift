import Foundation

/// What one capture measured on one device, in memory (profiles/FORMAT.md describes the files).
///
///     let p = try ProfileReader.read(URL(fileURLWithPath: "profiles/reference-h100"))
///     p.gemm.count    // 260
public struct Profile: Sendable {
    public struct Meta: Sendable, Equatable {
        public var format: String
        public var device: String
        public var hardware: String
        public var dtype: DType
        public var capturedAt: String
        public var driver: String
        public var cuda: String
        public var libraries: [String: String]
        public var repeats: Int
        public var warmup: Int
        public var source: String
        public var licence: String?
        /// The rule a CPU capture's tables and end-to-end times follow (`CaptureRule`); nil for a
        /// profile that names none.
        public var rule: CaptureRule? = nil
    }

    /// One timed window of a CPU capture's end-to-end run (`e2e_windows.csv`): the median of a
    /// round's timed steps; a (run, pass, round) can hold several attempts (the state gate's
    /// retries), of which the capture keeps the last.
    public struct E2EWindow: Sendable, Equatable {
        public var run: String
        public var pass: Int, round: Int, attempt: Int
        public var seconds: Double
    }

    public struct LinkPoint: Sendable, Equatable {
        public var direction: LinkDirection
        public var memory: HostMemoryKind
        public var bytes: Double
        public var seconds: Double

        public init(direction: LinkDirection, memory: HostMemoryKind, bytes: Double, seconds: Double) {
            self.direction = direction; self.memory = memory; self.bytes = bytes; self.seconds = seconds
        }
    }

    public struct GemmPoint: Sendable, Equatable {
        public var m: Int
        public var n: Int
        public var k: Int
        public var seconds: Double

        public init(m: Int, n: Int, k: Int, seconds: Double) { self.m = m; self.n = n; self.k = k; self.seconds = seconds }
    }

    public enum AttentionKind: String, Sendable { case decode, prefill }

    public struct AttentionPoint: Sendable, Equatable {
        public var kind: AttentionKind
        public var batch: Int
        public var heads: Int
        public var kvHeads: Int
        public var headDim: Int
        public var queries: Int
        public var context: Int
        public var seconds: Double

        public init(kind: AttentionKind, batch: Int, heads: Int, kvHeads: Int, headDim: Int, queries: Int, context: Int, seconds: Double) {
            self.kind = kind; self.batch = batch; self.heads = heads; self.kvHeads = kvHeads; self.headDim = headDim
            self.queries = queries; self.context = context; self.seconds = seconds
        }
    }

    /// One end-to-end run of the reference layer-streaming decoder.
    public struct E2ERun: Sendable, Equatable {
        public var run: String
        public var group: String
        public var model: String
        public var layers: Int
        public var batch: Int
        public var context: Int
        public var weightsGPUFraction: Double
        public var placement: TokenPlacement
        public var hostMemory: HostMemoryKind
        public var stepSeconds: Double

        public init(run: String, group: String, model: String, layers: Int, batch: Int, context: Int, weightsGPUFraction: Double,
                    placement: TokenPlacement, hostMemory: HostMemoryKind, stepSeconds: Double) {
            self.run = run; self.group = group; self.model = model; self.layers = layers; self.batch = batch; self.context = context
            self.weightsGPUFraction = weightsGPUFraction; self.placement = placement; self.hostMemory = hostMemory; self.stepSeconds = stepSeconds
        }
    }

    /// A copy within device memory (`copy.csv`): gathering cached K/V into the attention buffer.
    public struct CopyPoint: Sendable, Equatable {
        public var bytes: Double
        public var seconds: Double
        public init(bytes: Double, seconds: Double) { self.bytes = bytes; self.seconds = seconds }
    }

    public struct TimelineRow: Sendable, Equatable {
        public var run: String
        public var step: Int
        public var layer: Int
        public var stream: String
        public var op: String
        public var start: Double
        public var end: Double
    }

    /// The folder name.
    public var name: String
    /// The folder it was read from (nil for a profile loaded from the store).
    public var folder: URL?
    public var meta: Meta
    public var link: [LinkPoint] = []
    public var copy: [CopyPoint] = []
    public var gemm: [GemmPoint] = []
    public var attention: [AttentionPoint] = []
    public var e2e: [E2ERun] = []
    public var timeline: [TimelineRow] = []
    /// The windows the e2e times of a CPU capture were taken from (empty for other profiles).
    public var windows: [E2EWindow] = []
    /// Shapes of the e2e runs' models that are files in the profile's folder (a scaled-down model
    /// run on the CPU engine), by the name `e2e.csv` gives them.
    public var models: [String: ModelSpec] = [:]

    /// The shape of an e2e run's model: a model file of the folder, or a catalog model.
    public func model(named name: String) throws -> ModelSpec {
        if let m = models[name] { return m }
        return try ModelCatalog.model(named: name)
    }

    /// The machine the profile refines: the catalog entry it names, or a device JSON in its folder.
    public func hardware(in folder: URL?) throws -> HardwareSpec {
        try HardwareCatalog.resolve(meta.hardware, field: "\(name)/profile.json: hardware", baseDirectory: folder)
    }
}

/// Reads a profile folder strictly: a malformed file is rejected whole, naming the file and line.
public enum ProfileReader {
    public static let format = "hybridplanner-profile/1"

    /// A profile folder's `profile.json` alone (what `read` starts from), without its tables.
    public static func readMeta(_ folder: URL) throws -> Profile.Meta {
        let metaURL = folder.appendingPathComponent("profile.json")
        guard let data = FileManager.default.contents(atPath: metaURL.path) else {
            throw InputError(field: metaURL.path, "missing; every profile folder holds a profile.json (profiles/FORMAT.md)")
        }
        return try meta(data, source: "\(folder.standardizedFileURL.lastPathComponent)/profile.json")
    }

    public static func read(_ folder: URL) throws -> Profile {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDir), isDir.boolValue else {
            throw InputError(field: folder.path, "is not a profile folder (a directory holding profile.json)")
        }
        let name = folder.standardizedFileURL.lastPathComponent
        var profile = Profile(name: name, meta: try readMeta(folder))
        profile.folder = folder
        func table(_ file: String) throws -> CSVTable? {
            let url = folder.appendingPathComponent(file)
            guard FileManager.default.fileExists(atPath: url.path) else { return nil }
            guard let d = FileManager.default.contents(atPath: url.path), let text = String(data: d, encoding: .utf8) else {
                throw InputError(field: "\(name)/\(file)", "cannot be read as UTF-8 text")
            }
            return try CSVTable(text: text, source: "\(name)/\(file)")
        }
        if let t = try table("link.csv") {
            try t.expect(["direction", "memory", "bytes", "seconds"])
            profile.link = try t.rows.map { r in
                Profile.LinkPoint(direction: try r.choice("direction", ["h2d": LinkDirection.hostToDevice, "d2h": .deviceToHost]),
                                  memory: try r.choice("memory", ["pinned": HostMemoryKind.pinned, "pageable": .pageable]),
                                  bytes: try r.bytes("bytes"), seconds: try r.seconds("seconds"))
            }
        }
        if let t = try table("copy.csv") {
            try t.expect(["bytes", "seconds"])
            profile.copy = try t.rows.map { r in
                Profile.CopyPoint(bytes: try r.bytes("bytes"), seconds: try r.seconds("seconds"))
            }
        }
        if let t = try table("gemm.csv") {
            try t.expect(["m", "n", "k", "seconds"])
            profile.gemm = try t.rows.map { r in
                Profile.GemmPoint(m: try r.int("m"), n: try r.int("n"), k: try r.int("k"), seconds: try r.seconds("seconds"))
            }
        }
        if let t = try table("attention.csv") {
            try t.expect(["kind", "batch", "heads", "kv_heads", "head_dim", "queries", "context", "seconds"])
            profile.attention = try t.rows.map { r in
                let p = Profile.AttentionPoint(kind: try r.choice("kind", ["decode": .decode, "prefill": .prefill]), batch: try r.int("batch"),
                                               heads: try r.int("heads"), kvHeads: try r.int("kv_heads"), headDim: try r.int("head_dim"),
                                               queries: try r.int("queries"), context: try r.int("context"), seconds: try r.seconds("seconds"))
                guard p.heads % p.kvHeads == 0 else { throw r.error("kv_heads", "must divide heads (\(p.heads)), got \(p.kvHeads)") }
                guard p.queries <= p.context else { throw r.error("queries", "must not exceed context (\(p.context)), got \(p.queries)") }
                if p.kind == .decode, p.queries != 1 { throw r.error("queries", "must be 1 for a decode row, got \(p.queries)") }
                return p
            }
        }
        if let t = try table("e2e.csv") {
            try t.expect(["run", "group", "model", "layers", "batch", "context", "weights_gpu_fraction", "gpu_kv", "gpu_act", "host_kv",
                          "host_act", "recompute", "host_memory", "step_seconds"])
            var seen = Set<String>()
            var models: [String: ModelSpec] = [:]
            let runs = try t.rows.map { r in
                let placement = TokenPlacement(gpuKV: try r.int("gpu_kv", min: 0), gpuAct: try r.int("gpu_act", min: 0),
                                               hostKV: try r.int("host_kv", min: 0), hostAct: try r.int("host_act", min: 0),
                                               recompute: try r.int("recompute", min: 0))
                let run = Profile.E2ERun(run: try r.string("run"), group: try r.string("group"), model: try r.string("model"),
                                         layers: try r.int("layers"), batch: try r.int("batch"), context: try r.int("context"),
                                         weightsGPUFraction: try r.double("weights_gpu_fraction", in: 0...1), placement: placement,
                                         hostMemory: try r.choice("host_memory", ["pinned": HostMemoryKind.pinned, "pageable": .pageable]),
                                         stepSeconds: try r.seconds("step_seconds"))
                guard placement.total == run.context else {
                    throw r.error("context", "gpu_kv + gpu_act + host_kv + host_act + recompute = \(placement.total) must equal context (\(run.context))")
                }
                if run.model.hasSuffix(".json"), models[run.model] == nil {
                    models[run.model] = try modelFile(folder, run.model, row: r)
                }
                guard ModelCatalog.all.contains(where: { $0.name == run.model }) || models[run.model] != nil else {
                    throw r.error("model", "must be a catalog model (\(ModelCatalog.names.joined(separator: ", "))) or a model JSON file in the profile folder, got \"\(run.model)\"")
                }
                guard seen.insert(run.run).inserted else { throw r.error("run", "\"\(run.run)\" appears twice") }
                return run
            }
            profile.e2e = runs
            profile.models = models
        }
        if let t = try table("e2e_windows.csv") {
            // Captures made before the state gate have no attempt or probe columns.
            let columns = ["run", "pass", "round", "attempt", "seconds", "probe_before", "probe_after"]
            if t.header != ["run", "pass", "round", "seconds"] { try t.expect(columns) }
            let runs = Set(profile.e2e.map(\.run))
            profile.windows = try t.rows.map { r in
                let w = Profile.E2EWindow(run: try r.string("run"), pass: try r.int("pass", min: 0), round: try r.int("round", min: 0),
                                          attempt: t.header.contains("attempt") ? try r.int("attempt", min: 0) : 0,
                                          seconds: try r.seconds("seconds"))
                guard runs.contains(w.run) else { throw r.error("run", "\"\(w.run)\" is not a run of e2e.csv") }
                return w
            }
            // Every run has windows, in the same (pass, round)s as the other runs of its group (they
            // were played side by side).
            var keys: [String: Set<[Int]>] = [:]
            for w in profile.windows { keys[w.run, default: []].insert([w.pass, w.round]) }
            for (group, members) in Dictionary(grouping: profile.e2e, by: \.group) {
                let first = members[0].run
                for m in members {
                    guard let k = keys[m.run] else {
                        throw InputError(field: "\(name)/e2e_windows.csv", "run \"\(m.run)\" of e2e.csv has no window")
                    }
                    guard k == keys[first] else {
                        throw InputError(field: "\(name)/e2e_windows.csv", "run \"\(m.run)\" has windows in other (pass, round)s than \"\(first)\" of its group \(group)")
                    }
                }
            }
        }
        if let t = try table("e2e_timeline.csv") {
            try t.expect(["run", "step", "layer", "stream", "op", "start_seconds", "end_seconds"])
            profile.timeline = try t.rows.map { r in
                let row = Profile.TimelineRow(run: try r.string("run"), step: try r.int("step", min: 0), layer: try r.int("layer", min: 0),
                                              stream: try r.choice("stream", ["compute": "compute", "h2d": "h2d", "d2h": "d2h"]),
                                              op: try r.string("op"), start: try r.double("start_seconds", in: 0...1e6),
                                              end: try r.double("end_seconds", in: 0...1e6))
                guard row.end >= row.start else { throw r.error("end_seconds", "must not be before start_seconds (\(row.start)), got \(row.end)") }
                return row
            }
        }
        return profile
    }

    /// A model file named by an e2e row: a file of the profile folder holding a model object in the
    /// scenario's inline form (`layers`, `hidden`, `heads`, ...) or a Hugging Face `config.json`.
    static func modelFile(_ folder: URL, _ name: String, row: CSVTable.Row) throws -> ModelSpec {
        guard !name.contains("/") else { throw row.error("model", "must name a file inside the profile folder, got \"\(name)\"") }
        let url = folder.appendingPathComponent(name)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw row.error("model", "names \(name), but the profile folder has no such file")
        }
        let o = try JSONFields.parse(data, source: url.path)
        if o.has("model_type") { return try HFConfig.parse(data, source: url.path, name: name) }
        return try ModelCatalog.inline(JSONFields(o.object, path: "\(folder.lastPathComponent)/\(name)"))
    }

    static func meta(_ data: Data, source: String) throws -> Profile.Meta {
        let o = try JSONFields.parse(data, source: source)
        let field = { (k: String) in "\(source): \(k)" }
        try o.rejectUnknown(allowed: ["format", "device", "hardware", "dtype", "capturedAt", "driver", "cuda", "libraries", "repeats",
                                      "warmup", "source", "licence", "rule"])
        var rule: CaptureRule?
        if let r = try o.optionalString("rule") {
            guard let v = CaptureRule(rawValue: r) else { throw InputError(field: field("rule"), "must be quiet or typical, got \"\(r)\"") }
            rule = v
        }
        let format = try o.string("format")
        guard format == Self.format else { throw InputError(field: field("format"), "must be \"\(Self.format)\", got \"\(format)\"") }
        let dtypeText = try o.string("dtype")
        guard let dtype = DType(rawValue: dtypeText) else { throw InputError(field: field("dtype"), "must be fp16, bf16 or fp32, got \"\(dtypeText)\"") }
        var libraries: [String: String] = [:]
        for (k, v) in try o.object("libraries").object {
            guard let s = v as? String else { throw InputError(field: field("libraries.\(k)"), "must be a version string") }
            libraries[k] = s
        }
        return Profile.Meta(format: format, device: try o.string("device"), hardware: try o.string("hardware"), dtype: dtype,
                            capturedAt: try o.string("capturedAt"), driver: try o.string("driver"), cuda: try o.string("cuda"),
                            libraries: libraries, repeats: try o.int("repeats", in: 1...1_000_000), warmup: try o.int("warmup", in: 0...1_000_000),
                            source: try o.string("source"), licence: try o.optionalString("licence"), rule: rule)
    }
}

/// A CSV table with a header line; fields hold no commas or quotes (the format has none).
struct CSVTable {
    struct Row {
        let values: [String: String]
        let line: Int
        let source: String

        func error(_ column: String, _ message: String) -> InputError {
            InputError(field: "\(source):\(line)", "\(column) \(message)")
        }

        func string(_ c: String) throws -> String {
            let v = values[c] ?? ""
            guard !v.isEmpty else { throw error(c, "is empty") }
            return v
        }

        func int(_ c: String, min: Int = 1) throws -> Int {
            let s = try string(c)
            guard let v = Int(s), v >= min, v <= 1 << 40 else { throw error(c, "must be an integer from \(min), got \"\(s)\"") }
            return v
        }

        func double(_ c: String, positive: Bool) throws -> Double {
            let s = try string(c)
            guard let v = Double(s), v.isFinite, positive ? v > 0 : v >= 0 else {
                throw error(c, "must be a \(positive ? "positive" : "non-negative") number, got \"\(s)\"")
            }
            return v
        }

        /// A measured time: 1 ns to one hour. Anything outside is a broken measurement, not a
        /// slow kernel, and would overflow or vanish in the arithmetic downstream.
        func seconds(_ c: String) throws -> Double { try double(c, in: Self.measuredSeconds) }

        /// A size in bytes: 1 B to 1 PiB, a whole number.
        func bytes(_ c: String) throws -> Double {
            let v = try double(c, in: Self.measuredBytes)
            guard v.rounded() == v else { throw error(c, "must be a whole number of bytes, got \"\(values[c] ?? "")\"") }
            return v
        }

        static let measuredSeconds: ClosedRange<Double> = 1e-9 ... 3600
        static let measuredBytes: ClosedRange<Double> = 1 ... 1_125_899_906_842_624

        func double(_ c: String, in range: ClosedRange<Double>) throws -> Double {
            let s = try string(c)
            guard let v = Double(s), range.contains(v) else { throw error(c, "must be a number from \(fmt(range.lowerBound)) to \(fmt(range.upperBound)), got \"\(s)\"") }
            return v
        }

        func choice<T>(_ c: String, _ options: [String: T]) throws -> T {
            let s = try string(c)
            guard let v = options[s] else { throw error(c, "must be one of \(options.keys.sorted().joined(separator: ", ")), got \"\(s)\"") }
            return v
        }
    }

    let header: [String]
    let rows: [Row]
    let source: String

    init(text: String, source: String) throws {
        self.source = source
        var lines = textLines(text)
        while lines.last == "" { lines.removeLast() }
        guard let first = lines.first, !first.isEmpty else { throw InputError(field: "\(source):1", "is empty; a header line is required") }
        header = first.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard Set(header).count == header.count else { throw InputError(field: "\(source):1", "header names a column twice: \(first)") }
        var rows: [Row] = []
        for (i, line) in lines.enumerated().dropFirst() {
            let fields = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == header.count else {
                throw InputError(field: "\(source):\(i + 1)", "has \(fields.count) fields, the header has \(header.count)")
            }
            rows.append(Row(values: Dictionary(uniqueKeysWithValues: zip(header, fields)), line: i + 1, source: source))
        }
        self.rows = rows
    }

    func expect(_ columns: [String]) throws {
        guard header == columns else {
            throw InputError(field: "\(source):1", "header must be \(columns.joined(separator: ",")), got \(header.joined(separator: ","))")
        }
    }
}
