import Foundation

/// Human-readable, JSON and Chrome-trace renderings of a `SimulationResult`.
public enum Report {
    static func ms(_ s: Double) -> String { String(format: "%.3f", s * 1e3) }
    static func pct(_ f: Double) -> String { String(format: "%.1f%%", f * 100) }

    public static func phaseDescription(_ phase: Phase) -> String {
        switch phase {
        case .decodeStep(let c): "decode step at context \(c)"
        case .generate(let p, let t): "generation: prompt \(p), \(t) new tokens"
        }
    }

    /// A table for a terminal: the headline numbers, bytes, busy fractions, memory and the per-layer
    /// timeline of the reported step.
    public static func text(_ r: SimulationResult) -> String {
        let p = r.plan
        var out = ""
        out += "\(p.model.name) (\(p.model.layers) layers) on \(p.hardware.name) [\(p.hardware.gpu.name), \(p.hardware.link.name)], batch \(p.batch)"
        if p.microBatches > 1 { out += " (\(p.microBatches) GPU batches of \(p.microBatchSize))" }
        out += ", policy \(p.policyName)\n"
        out += "weights: \(p.weights.description); host memory \(p.hostMemory.rawValue)\(p.hiddenOnHost ? "; hidden states on host" : "")\n"
        out += "placement per sequence (of \(p.phase.placementContext) tokens): \(p.placement)\n"
        out += "\(phaseDescription(p.phase))\n\n"
        switch p.phase {
        case .decodeStep:
            out += "  step time        \(ms(r.seconds)) ms\n"
        case .generate:
            out += "  total time       \(ms(r.seconds)) ms\n"
            out += "  prefill          \(ms(r.prefillSeconds ?? 0)) ms\n"
        }
        out += "  throughput       \(String(format: "%.1f", r.tokensPerSecond)) tokens/s\n"
        for res in [Resource.hostToDevice, .deviceToHost] {
            let parts = r.bytes[res, default: [:]].sorted { $0.key < $1.key }.map { "\($0.key) \(formatBytes($0.value))" }
            out += "  \(res == .hostToDevice ? "H2D bytes " : "D2H bytes ")       \(formatBytes(r.totalBytes(res)))\(parts.isEmpty ? "" : " (" + parts.joined(separator: ", ") + ")")\n"
        }
        out += "  busy             " + r.reportedResources.map { "\($0.label) \(pct(r.busy[$0] ?? 0))" }.joined(separator: ", ") + "\n"
        let gpuItems = r.memory.gpu.filter { $0.bytes > 0 }.map { "\($0.name) \(formatBytes($0.bytes))" }.joined(separator: ", ")
        let hostItems = r.memory.host.filter { $0.bytes > 0 }.map { "\($0.name) \(formatBytes($0.bytes))" }.joined(separator: ", ")
        out += "  GPU memory       \(formatBytes(r.memory.gpuUsed)) of \(formatBytes(r.memory.gpuCapacity)) (\(gpuItems))\n"
        out += "  host memory      \(formatBytes(r.memory.hostUsed)) of \(formatBytes(r.memory.hostCapacity))\(hostItems.isEmpty ? "" : " (" + hostItems + ")")\n"
        if !r.memory.disk.isEmpty {
            let diskItems = r.memory.disk.filter { $0.bytes > 0 }.map { "\($0.name) \(formatBytes($0.bytes))" }.joined(separator: ", ")
            out += "  disk             \(formatBytes(r.memory.diskUsed)) of \(formatBytes(r.memory.diskCapacity)) (\(diskItems))\n"
        }
        out += "  events           \(r.timeline.events)\n\n"
        let which: String
        switch p.phase {
        case .decodeStep: which = "the measured decode step"
        case .generate: which = r.growth.steps.isEmpty ? "the prefill" : "the last decode step"
        }
        out += "per-layer timeline of \(which) (ms from the start of the run):\n"
        out += "  layer     start       end   compute       H2D       D2H   H2D bytes\n"
        for l in r.layers {
            out += String(format: "  %5d %9.3f %9.3f %9.3f %9.3f %9.3f   %@\n", l.layer, l.start * 1e3, l.end * 1e3,
                          l.busySeconds[0] * 1e3, l.busySeconds[1] * 1e3, l.busySeconds[2] * 1e3, formatBytes(l.h2dBytes))
        }
        return out
    }

    /// The `--json` document (docs/output.md).
    public static func json(_ r: SimulationResult) throws -> Data {
        let p = r.plan
        var doc: [String: Any] = [:]
        var scenario: [String: Any] = [
            "model": p.model.name, "layers": p.model.layers, "hardware": p.hardware.name, "batch": p.batch,
            "policy": p.policyName, "weightsGpuFraction": p.weights.gpuFraction, "hostMemory": p.hostMemory.rawValue,
            "microBatches": p.microBatches, "hiddenOnHost": p.hiddenOnHost,
            "placement": Dictionary(uniqueKeysWithValues: TokenClass.allCases.map { ($0.key, p.placement[$0]) }),
        ]
        switch p.phase {
        case .decodeStep(let c):
            scenario["decodeStep"] = ["context": c]
            doc["stepSeconds"] = r.seconds
        case .generate(let pr, let t):
            scenario["generate"] = ["prompt": pr, "tokens": t]
            doc["totalSeconds"] = r.seconds
            doc["prefillSeconds"] = r.prefillSeconds ?? 0
        }
        doc["scenario"] = scenario
        doc["tokensPerSecond"] = r.tokensPerSecond
        var bytes: [String: Any] = [:]
        for res in [Resource.hostToDevice, .deviceToHost] {
            var d: [String: Any] = r.bytes[res, default: [:]]
            d["total"] = r.totalBytes(res)
            bytes[res.key] = d
        }
        doc["bytes"] = bytes
        doc["busy"] = Dictionary(uniqueKeysWithValues: r.reportedResources.map { ($0.key, r.busy[$0] ?? 0) })
        func mem(_ items: [(name: String, bytes: Double)], _ cap: Double) -> [String: Any] {
            ["capacityBytes": cap, "usedBytes": items.reduce(0) { $0 + $1.bytes },
             "items": Dictionary(uniqueKeysWithValues: items.map { ($0.name, $0.bytes) })]
        }
        var memory: [String: Any] = ["gpu": mem(r.memory.gpu, r.memory.gpuCapacity), "host": mem(r.memory.host, r.memory.hostCapacity)]
        if !r.memory.disk.isEmpty { memory["disk"] = mem(r.memory.disk, r.memory.diskCapacity) }
        doc["memory"] = memory
        doc["events"] = r.timeline.events
        doc["layers"] = r.layers.map { l -> [String: Any] in
            ["layer": l.layer, "startSeconds": l.start, "endSeconds": l.end, "computeBusySeconds": l.busySeconds[0],
             "h2dBusySeconds": l.busySeconds[1], "d2hBusySeconds": l.busySeconds[2], "h2dBytes": l.h2dBytes, "d2hBytes": l.d2hBytes]
        }
        let steps = timelineSteps(r)
        var timeline: [[String: Any]] = []
        for i in 0 ..< r.graph.count where steps.contains(Int(r.graph.step[i])) {
            timeline.append(["task": r.graph.taskKind(i).name, "resource": r.graph.taskResource(i).key,
                             "layer": Int(r.graph.layer[i]), "step": Int(r.graph.step[i]),
                             "startSeconds": r.timeline.start[i], "endSeconds": r.timeline.end[i], "bytes": r.graph.bytes[i]])
        }
        doc["timeline"] = timeline
        return try JSONSerialization.data(withJSONObject: doc, options: [.prettyPrinted, .sortedKeys])
    }

    /// Steps whose tasks the JSON timeline lists: the measured decode step, or a generation's prefill
    /// and last decode step (the trace file holds every task).
    static func timelineSteps(_ r: SimulationResult) -> Set<Int> {
        switch r.plan.phase {
        case .decodeStep: [2]
        case .generate: [0, r.growth.steps.count]
        }
    }

    /// Chrome trace events (the JSON object format), one track per resource, every task of the run.
    /// Open the file in Perfetto (ui.perfetto.dev) or chrome://tracing.
    public static func chromeTrace(_ r: SimulationResult) -> Data {
        var s = "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n"
        s.reserveCapacity(r.graph.count * 160)
        s += "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":1,\"args\":{\"name\":\"\(r.plan.model.name) on \(r.plan.hardware.name), batch \(r.plan.batch), \(r.plan.policyName)\"}}"
        for res in r.reportedResources {
            s += ",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":\(res.rawValue),\"args\":{\"name\":\"\(res.label)\"}}"
            s += ",\n{\"name\":\"thread_sort_index\",\"ph\":\"M\",\"pid\":1,\"tid\":\(res.rawValue),\"args\":{\"sort_index\":\(res.rawValue)}}"
        }
        for i in 0 ..< r.graph.count {
            let kind = r.graph.taskKind(i)
            let layer = Int(r.graph.layer[i])
            let name = layer >= 0 ? "\(kind.name) L\(layer)" : kind.name
            let ts = r.timeline.start[i] * 1e6
            let dur = (r.timeline.end[i] - r.timeline.start[i]) * 1e6
            s += ",\n{\"name\":\"\(name)\",\"cat\":\"\(kind.name)\",\"ph\":\"X\",\"pid\":1,\"tid\":\(r.graph.resource[i]),"
            s += "\"ts\":\(String(format: "%.3f", ts)),\"dur\":\(String(format: "%.3f", dur)),"
            s += "\"args\":{\"step\":\(r.graph.step[i]),\"layer\":\(layer),\"bytes\":\(Int64(r.graph.bytes[i]))}}"
        }
        s += "\n]}\n"
        return Data(s.utf8)
    }
}

/// Writes a file through a temporary sibling and a rename, so that no reader ever sees it half written.
public func writeAtomically(_ data: Data, to path: String, field: String? = nil) throws {
    try writeAllAtomically([OutputFile(field: field ?? path, path: path, data: data)])
}

/// A file a command writes, and the option that named it.
public struct OutputFile: Sendable {
    public var field: String
    public var path: String
    public var data: Data
    public init(field: String, path: String, data: Data) {
        self.field = field; self.path = path; self.data = data
    }
}

/// Refuses an output path before any work is done: one that is a directory, or whose folder does
/// not exist, named by its option.
public func checkWritable(_ path: String, field: String) throws {
    var isDir: ObjCBool = false
    if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
        throw InputError(field: field, "\(path) is a directory; give a file path")
    }
    let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
    guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDir), isDir.boolValue else {
        throw InputError(field: field, "cannot write \(path): folder \(folder) does not exist")
    }
}

/// Writes every file or none: each to a temporary sibling first, then all renamed into place; if
/// any write fails, the temporaries are removed and no destination is touched. (A rename replaces
/// a file in one step, so a reader sees the old file or the new one; a process killed before the
/// renames leaves only `.NAME.partial-PID` siblings, never a half-written destination.)
public func writeAllAtomically(_ files: [OutputFile]) throws {
    for f in files { try checkWritable(f.path, field: f.field) }
    var written: [(temporary: String, file: OutputFile)] = []
    func removeTemporaries() { for w in written { try? FileManager.default.removeItem(atPath: w.temporary) } }
    for f in files {
        let url = URL(fileURLWithPath: f.path)
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).partial-\(getpid())").path
        do {
            try f.data.write(to: URL(fileURLWithPath: temporary))
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            removeTemporaries()
            throw InputError(field: f.field, "cannot write \(f.path): \((error as NSError).localizedFailureReason ?? error.localizedDescription)")
        }
        written.append((temporary, f))
    }
    for (i, w) in written.enumerated() where rename(w.temporary, w.file.path) != 0 {
        let reason = String(cString: strerror(errno))
        for rest in written[i...] { try? FileManager.default.removeItem(atPath: rest.temporary) }
        throw InputError(field: w.file.field, "cannot write \(w.file.path): \(reason)")
    }
}
