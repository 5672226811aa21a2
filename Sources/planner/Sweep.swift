import ArgumentParser
import Foundation
import PlannerCore

/// Options that choose the model, machine, workload and grids of a search.
struct SearchOptions: ParsableArguments {
    @Argument(help: "Optional sweep file (docs/scenarios.md, \"Sweep file\"); flags override its values.")
    var file: String?

    @Option(help: "Model: a catalog name or a path to a config.json (default opt-30b).")
    var model: String?

    @Option(parsing: .unconditional, help: "Layer count override.")
    var layers: Int?

    @Option(help: "Element type to run the model in: fp16, bf16 or fp32 (default: the model's).")
    var dtype: String?

    @Option(help: "Device: a catalog name or a device JSON file (default rtx4090).")
    var hardware: String?

    @Option(name: .customLong("host-memory-gib"), parsing: .unconditional, help: "Host memory in GiB (default: the device's).")
    var hostMemoryGiB: Double?

    @Option(parsing: .unconditional, help: "Prompt tokens (default 512).")
    var prompt: Int?

    @Option(parsing: .unconditional, help: "New tokens per sequence (default 32).")
    var tokens: Int?

    @Option(name: .customLong("max-step-ms"), parsing: .unconditional, help: "Upper bound on the mean decode step (time between tokens), in ms.")
    var maxStepMs: Double?

    @Option(help: "KV fractions of host tokens: FROM:TO:STEP or a list (default 0:1:0.01).")
    var ratios: String?

    @Option(help: "Batch sizes, comma-separated (default 8,16,32,48,64,96,128,192).")
    var batches: String?

    @Option(help: "Weights: host, gpu, or a GPU fraction from 0 to 1.")
    var weights: String?

    @Option(help: "A profile folder whose measurements replace the analytic cost model.")
    var profile: String?

    @Flag(name: .customLong("allow-compression"), help: "Let FlexGen's 4-bit compression of weights and cache be chosen (it changes the model's outputs).")
    var allowCompression = false

    func sweep(defaultSpace: SearchSpace) throws -> Sweep {
        var s: Sweep
        if let file {
            s = try SweepConfig.load(URL(fileURLWithPath: file), space: defaultSpace)
        } else {
            s = try Sweep.defaultSweep()
            s.space = defaultSpace
        }
        let cwd = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
        if let model { s.setup.model = try ModelCatalog.resolve(model, field: "--model", baseDirectory: cwd) }
        if let layers {
            guard (1...1024).contains(layers) else { throw InputError(field: "--layers", "must be from 1 to 1024, got \(layers)") }
            s.setup.model = s.setup.model.withLayers(layers)
        }
        if let dtype {
            guard let d = DType(rawValue: dtype) else { throw InputError(field: "--dtype", "must be fp16, bf16 or fp32, got \"\(dtype)\"") }
            s.setup.model.dtype = d
        }
        if let hardware { s.setup.hardware = try HardwareCatalog.resolve(hardware, field: "--hardware", baseDirectory: cwd) }
        if let hostMemoryGiB {
            guard hostMemoryGiB > 0, hostMemoryGiB <= 1_048_576 else {
                throw InputError(field: "--host-memory-gib", "must be a positive number of GiB up to 1048576, got \(hostMemoryGiB)")
            }
            s.setup.hardware.host.memoryBytes = hostMemoryGiB * HardwareCatalog.GiB
        }
        if let prompt {
            guard (1...(1 << 24)).contains(prompt) else { throw InputError(field: "--prompt", "must be from 1 to 16777216 tokens, got \(prompt)") }
            s.setup.workload.prompt = prompt
        }
        if let tokens {
            guard (1...(1 << 20)).contains(tokens) else { throw InputError(field: "--tokens", "must be from 1 to 1048576 tokens, got \(tokens)") }
            s.setup.workload.tokens = tokens
        }
        if let maxStepMs {
            guard maxStepMs > 0, maxStepMs <= 1e9 else { throw InputError(field: "--max-step-ms", "must be a positive number of ms up to 1e9, got \(maxStepMs)") }
            s.setup.workload.maxStepSeconds = maxStepMs / 1e3
        }
        if allowCompression { s.space.allowCompression = true }
        if let ratios { s.space.ratios = try SweepConfig.ratios(ratios, field: "--ratios") }
        if let batches { s.space.batches = try SweepConfig.batches(batches, field: "--batches") }
        if let weights {
            s.space.weightsFixed = true
            switch weights {
            case "host": s.space.weightsGPUFractions = [0]
            case "gpu": s.space.weightsGPUFractions = [1]
            default:
                guard let f = Double(weights), (0...1).contains(f) else {
                    throw InputError(field: "--weights", "must be host, gpu or a fraction from 0 to 1, got \"\(weights)\"")
                }
                s.space.weightsGPUFractions = [f]
            }
        }
        try SweepConfig.validate(s.setup)
        if let profile {
            s.setup.cost = try profileCost(URL(fileURLWithPath: profile), hardware: s.setup.hardware, dtype: s.setup.model.dtype)
            s.setup.profileFolder = URL(fileURLWithPath: profile)
        }
        return s
    }
}

/// A progress bar on standard error, shown only on a terminal and only once a run has taken a second.
final class ProgressBar: @unchecked Sendable {
    private let lock = NSLock()
    private let start = Date()
    private var lastDraw = Date.distantPast
    private var drawn = false
    private let enabled = isatty(STDERR_FILENO) != 0
    let label: String

    init(_ label: String) { self.label = label }

    func update(_ done: Int, _ total: Int) {
        guard enabled else { return }
        lock.lock()
        defer { lock.unlock() }
        let now = Date()
        guard now.timeIntervalSince(start) > 1, now.timeIntervalSince(lastDraw) > 0.1 || done == total else { return }
        lastDraw = now
        drawn = true
        let width = 30
        let filled = total > 0 ? width * done / total : width
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        FileHandle.standardError.write(Data("\r\(label) [\(bar)] \(done)/\(total)".utf8))
    }

    func finish() {
        lock.lock()
        defer { lock.unlock() }
        if drawn { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}

struct SweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Sweep the KV:ACT ratio and the batch size of the hybrid policy and compare with the baselines.",
        discussion: """
        With no arguments: OPT-30B on an RTX 4090 (24 GB) with 128 GB of host memory over PCIe 4.0, \
        prompt 512, 32 new tokens, weights streamed, 101 ratios x 8 batch sizes. Prints, per ratio, the \
        best batch's throughput, step time, PCIe and GPU busy time, memory and status, marks the best \
        configuration, and states its speedup over the best KV-only (FlexGen-style), ACT-only, DeepSpeed \
        and all-GPU configurations.
        """
    )

    @OptionGroup var options: SearchOptions

    @Flag(help: "Print every ratio x batch point instead of the best batch per ratio.")
    var all = false

    @Flag(help: "Print every simulated point as CSV.")
    var csv = false

    @Flag(help: "Print the sweep as JSON.")
    var json = false

    @Option(help: "Write an SVG chart of throughput against the ratio, one line per batch size.")
    var chart: String?

    func validate() throws {
        if csv && json { throw ValidationError("--csv and --json are exclusive; choose one output format") }
    }

    func run() throws {
        try reportingErrors {
            if let chart { try checkWritable(chart, field: "--chart") }
            let sweep = try options.sweep(defaultSpace: .sweepDefault)
            let bar = ProgressBar("sweep")
            let result = sweep.run(progress: { bar.update($0, $1) })
            bar.finish()
            if let chart { try writeAtomically(Data(SVGChart.sweep(result).utf8), to: chart, field: "--chart") }
            if csv {
                print(SweepReport.csv(result), terminator: "")
            } else if json {
                printJSON(try SweepReport.json(result))
            } else {
                print(SweepReport.text(result, all: all), terminator: "")
            }
            if result.bestOverall == nil { throw ExitCode.failure }
        }
    }
}
