import ArgumentParser
import CPUEngine
import Foundation
import PlannerCore

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Execute a scenario on the CPU engine and print the measured step time beside the simulator's prediction for the CPU.",
        discussion: """
        SCENARIO is a scenario file (docs/scenarios.md), a `planner plan` output included. The CPU \
        engine (Sources/CPUEngine) runs the scenario's batch, phase, weight split and placement (tokens per class) \
        in fp32 with seeded weights; a policy is resolved on the scenario's own machine first, as `simulate` does. \
        Catalog models are far too large for this machine: --layers and --width-divisor scale the model down \
        (heads, K/V heads, FFN width and vocabulary divided, head dimension kept) and the output says what ran. A \
        run that would not fit in this machine's memory (MemAvailable) is refused before anything is allocated, \
        with the size it would need. The prediction is the simulator's for the same scaled-down plan on the CPU \
        device of the profile (its device JSON and its measured tables). Without --profile it uses the shipped CPU \
        profile (profiles/cpu-*) measured on this machine's CPU model, or profiles/cpu-amd-epyc-2c with a note when \
        none was.
        """
    )

    @Argument(help: "Path to a scenario JSON file.")
    var scenario: String

    @Option(parsing: .unconditional, help: "Run this many layers of the model (1 to 1024).")
    var layers: Int?

    @Option(name: .customLong("width-divisor"), parsing: .unconditional, help: "Divide heads, K/V heads, FFN width and vocabulary by this (1 to 4096); it must divide the K/V heads.")
    var widthDivisor: Int = 1

    @Option(parsing: .unconditional, help: "Override the scenario's batch (1 to 4096).")
    var batch: Int?

    @Option(help: "The CPU profile folder whose device and tables predict the step (profiles/FORMAT.md); default: the shipped profile measured on this CPU model, else profiles/cpu-amd-epyc-2c.")
    var profile: String?

    @Option(parsing: .unconditional, help: "Timed decode steps of a decodeStep scenario (1 to 1000; the median is reported).")
    var repeats: Int = 5

    @Flag(help: "Also time the engine's GEMM and attention calls inside the timed decode steps and print them, with the copy thread's busy time, beside the simulator's tasks as played (contention included).")
    var breakdown = false

    @Flag(help: "Print the result as JSON.")
    var json = false

    /// The profile folder to predict with: `given`, or the shipped CPU profile (a `profiles/cpu-*`
    /// folder) whose device is this machine's CPU, or `profiles/cpu-amd-epyc-2c` with a note saying
    /// that it was measured on another CPU.
    static func profileFolder(_ given: String?) throws -> (String, String?) {
        if let given { return (given, nil) }
        let fallback = "profiles/cpu-amd-epyc-2c"
        guard FileManager.default.fileExists(atPath: "\(fallback)/profile.json") else {
            throw InputError(field: "--profile", "not given, and there is no profiles/cpu-* folder here: run from the repository root (the CPU profiles ship in profiles/) or pass --profile DIR")
        }
        let here = CPUProfileCapture.cpuDescription()
        let folders = ((try? FileManager.default.contentsOfDirectory(atPath: "profiles")) ?? []).filter { $0.hasPrefix("cpu-") }.sorted()
        // Only each folder's profile.json: the chosen profile's tables are read once, by `run`.
        for name in folders where (try? ProfileReader.readMeta(URL(fileURLWithPath: "profiles/\(name)")))?.device == here {
            return ("profiles/\(name)", nil)
        }
        return (fallback, "no shipped CPU profile was measured on this CPU (\(here)); predicting with \(fallback), measured on another: capture one with scripts/capture-cpu-profile.sh for predictions of this machine")
    }

    func run() throws {
        try reportingErrors {
            guard (1 ... 4096).contains(widthDivisor) else {
                throw InputError(field: "--width-divisor", "must be an integer from 1 to 4096, got \(widthDivisor)")
            }
            guard (1 ... 1000).contains(repeats) else { throw InputError(field: "--repeats", "must be an integer from 1 to 1000, got \(repeats)") }
            if let layers, !(1 ... 1024).contains(layers) { throw InputError(field: "--layers", "must be an integer from 1 to 1024, got \(layers)") }
            if let batch, !(1 ... 4096).contains(batch) { throw InputError(field: "--batch", "must be an integer from 1 to 4096, got \(batch)") }
            let original = try Scenario.load(URL(fileURLWithPath: scenario))
            var model = original.model
            let note = try Self.scale(&model, layers: layers, divisor: widthDivisor)
            let (profile, profileNote) = try Self.profileFolder(profile)
            let folder = URL(fileURLWithPath: profile)
            guard FileManager.default.fileExists(atPath: folder.appendingPathComponent("profile.json").path) else {
                throw InputError(field: "--profile", "\(profile) is not a profile folder; the CPU profiles ship as profiles/cpu-* (run from the repository root) and are recaptured by scripts/capture-cpu-profile.sh")
            }
            let measured = try ProfileReader.read(folder)
            let hw = try measured.hardware(in: folder)
            var plan = ExecutionPlan(model: model, hardware: hw, batch: batch ?? original.batch, microBatches: original.microBatches,
                                     weights: original.weights, placement: original.placement, hostMemory: original.hostMemory,
                                     hiddenOnHost: original.hiddenOnHost, phase: original.phase, policyName: original.policyName)
            plan.includeHead = true
            try plan.validate()
            let shape = try PlanRunner.shape(plan)
            // Refused here, before any buffer exists, when the machine cannot hold it.
            try MachineMemory.check(shape, available: MachineMemory.availableBytes())
            // The engine keeps whole 16-column blocks of each matrix resident: predict what it runs.
            let runPlan = plan
            var weightsNote: String?
            let effective = shape.effectiveWeightsGPUFraction
            if abs(effective - plan.weights.gpuFraction) > 1e-9 {
                weightsNote = String(format: "the engine keeps whole 16-column blocks resident: %.1f%% of the weights instead of %.1f%%; the prediction uses %.1f%%",
                                     effective * 100, plan.weights.gpuFraction * 100, effective * 100)
                plan.weights = WeightPlacement(gpuFraction: effective)
            }
            // Simulate first, so that the simulations' task graphs never coexist with the engine's buffers.
            let cost = try ProfileCostModel(profile: measured, hardware: hw)
            let predicted = try Simulator.run(plan, cost: cost, checkMemory: false)
            let analytic = try Simulator.run(plan, cost: try AnalyticCostModel(hardware: hw, dtype: .fp32), checkMemory: false)
            var memoryNote: String?
            do { try predicted.memory.check() } catch { memoryNote = "\(error)" }
            let result: PlanRunner.Result
            do {
                let engine = try CPUDecoder(shape: shape)
                CPUAffinity.pinComputeThread()   // as the capture runs it: kernels on the first core, copies on the last
                result = PlanRunner.run(runPlan, on: engine, warmup: 2, repeats: repeats, keepLogits: false, recordKernels: breakdown)
            }

            let measuredStep: Double, predictedStep: Double, analyticStep: Double
            switch plan.phase {
            case .decodeStep:
                measuredStep = result.medianStepSeconds
                predictedStep = predicted.seconds
                analyticStep = analytic.seconds
            case .generate(_, let t):
                measuredStep = result.meanStepSeconds
                let steps = Double(max(t - 1, 1))
                predictedStep = (predicted.seconds - (predicted.prefillSeconds ?? 0)) / steps
                analyticStep = (analytic.seconds - (analytic.prefillSeconds ?? 0)) / steps
            }
            // A generation of one token has no decode step to compare.
            let hasDecode: Bool
            if case .generate(_, let t) = plan.phase { hasDecode = t > 1 } else { hasDecode = true }
            let error = measuredStep > 0 ? predictedStep / measuredStep - 1 : 0
            // Per decode step: the engine's kernel calls and copy time over its timed decode steps (means,
            // the first and last timed steps included), the simulator's tasks as played in its steady
            // step. The prediction's GEMM tasks carry their norms, activations and residuals, and a
            // recomputed token's whole layer (its attention included); the engine logs a recomputed
            // token's attention as attention.
            let gemmKinds: Set<TaskKind> = [.qkv, .outProjection, .ffn, .head, .tokenRecompute, .actRecomputeGPU, .actRecomputeHost]
            let timedSteps = Double(max(result.stepSeconds.count, 1))
            let rows: [(key: String, label: String, measured: Double, predicted: Double)] = breakdown && hasDecode ? [
                ("stepSeconds", "step (mean)", result.meanStepSeconds, predictedStep),
                ("gemmSeconds", "GEMMs", (result.gemmSeconds ?? 0) / timedSteps, predicted.playedPerDecodeStep(.compute, kinds: gemmKinds)),
                ("attentionSeconds", "attention", (result.attentionSeconds ?? 0) / timedSteps, predicted.playedPerDecodeStep(.compute, kinds: [.attention])),
                ("h2dBusySeconds", "copy thread (H2D) busy", result.h2dBusySeconds / timedSteps, predicted.playedPerDecodeStep(.hostToDevice)),
            ] : []
            if json {
                var doc: [String: Any] = [
                    "scenario": scenario, "model": model.name, "layers": model.layers, "hidden": model.hidden, "heads": model.heads,
                    "kvHeads": model.kvHeads, "ffnSize": model.ffnSize, "vocab": model.vocab, "batch": plan.batch, "scaled": note,
                    "placement": TokenClass.allCases.reduce(into: [String: Int]()) { $0[$1.key] = plan.placement[$1] },
                    "weightsGPUFraction": plan.weights.gpuFraction, "engineBytes": shape.bytes,
                    "measured": ["stepSeconds": hasDecode ? measuredStep as Any : NSNull(), "steps": result.stepSeconds, "prefillSeconds": result.prefillSeconds as Any, "h2dBusySeconds": result.h2dBusySeconds],
                    "predicted": ["stepSeconds": hasDecode ? predictedStep as Any : NSNull(), "prefillSeconds": predicted.prefillSeconds as Any,
                                  "analyticStepSeconds": hasDecode ? analyticStep as Any : NSNull()],
                    "error": hasDecode ? error as Any : NSNull(), "profile": measured.name, "device": hw.name,
                ]
                if let memoryNote { doc["memoryNote"] = memoryNote }
                if let weightsNote { doc["weightsNote"] = weightsNote }
                if let profileNote { doc["profileNote"] = profileNote }
                if !rows.isEmpty {
                    doc["breakdownPerStep"] = Dictionary(uniqueKeysWithValues: rows.map { ($0.key, ["measured": $0.measured, "predicted": $0.predicted]) })
                }
                try printJSONObject(doc)
                return
            }
            print("planner run: \(scenario) on the CPU engine (\(measured.meta.device); OpenBLAS \(BLAS.version), 1 compute thread, copy threads for H2D and D2H)")
            print("model: \(note)")
            print("  \(model.layers) layers, hidden \(model.hidden), \(model.heads) heads / \(model.kvHeads) K/V heads of \(model.headDim), FFN \(model.ffnSize) (\(model.ffnKind.rawValue)), vocabulary \(model.vocab), fp32")
            print("batch \(plan.batch), weights \(plan.weights.description), placement \(plan.placement); engine memory \(formatBytes(shape.bytes)) (device tier \(formatBytes(shape.deviceBytes)), host tier \(formatBytes(shape.hostBytes)))")
            switch plan.phase {
            case .decodeStep(let c): print("phase: decode steps at context \(c), \(repeats) timed after 2 warm-up steps (median)")
            case .generate(let p, let t): print("phase: prefill of \(p) tokens, then \(t - 1) decode steps (mean)")
            }
            print()
            print("                          measured   predicted (profile)   error    predicted (analytic)")
            if hasDecode {
                print(String(format: "  decode step ms      %12.3f %14.3f %13.1f%% %14.3f", measuredStep * 1e3, predictedStep * 1e3, error * 100, analyticStep * 1e3))
            } else {
                print("  decode step ms      none: the scenario generates one token, in its prefill")
            }
            if let mp = result.prefillSeconds, let pp = predicted.prefillSeconds {
                print(String(format: "  prefill ms          %12.3f %14.3f %13.1f%% %14.3f", mp * 1e3, pp * 1e3, (pp / mp - 1) * 100, (analytic.prefillSeconds ?? 0) * 1e3))
                print(String(format: "  total s             %12.4f %14.4f %13.1f%%", result.totalSeconds, predicted.seconds, (predicted.seconds / result.totalSeconds - 1) * 100))
            }
            if hasDecode {
                print(String(format: "  tokens/s            %12.1f %14.1f", Double(plan.batch) / measuredStep, Double(plan.batch) / predictedStep))
            }
            print(String(format: "  copy thread (H2D) busy %.1f%% of the timed steps", result.h2dBusySeconds / max(result.stepSeconds.reduce(0, +), 1e-12) * 100))
            if !rows.isEmpty {
                print("  per decode step, ms      measured (mean)   predicted (as played)")
                for r in rows { print("  " + r.label.padding(toLength: 22, withPad: " ", startingAt: 0) + String(format: " %10.3f %14.3f", r.measured * 1e3, r.predicted * 1e3)) }
                print("  (predicted GEMMs: the QKV, output, FFN and head tasks with their norms, activations and residuals, and a recomputed token's whole layer; measured attention includes the recomputed tokens')")
            }
            print("prediction: the simulator on device \(hw.name) with profile \(measured.name) (\(measured.meta.capturedAt))")
            if let profileNote { print("note: \(profileNote)") }
            if let weightsNote { print("note: \(weightsNote)") }
            if let memoryNote { print("note: the planner's memory model for \(hw.name) would refuse this placement (\(memoryNote)); the engine ran it in this machine's memory") }
        }
    }

    /// Scales a model down for the CPU: fp32, `layers` layers, heads, K/V heads, FFN width and
    /// vocabulary divided by `divisor` (head dimension kept). Returns what was done, in words.
    static func scale(_ m: inout ModelSpec, layers: Int?, divisor: Int) throws -> String {
        let name = m.name
        var parts: [String] = []
        if m.dtype != .fp32 { parts.append("run in fp32 (the scenario's \(m.dtype.rawValue))") }
        m.dtype = .fp32
        if let layers, layers != m.layers {
            parts.append("\(layers) of its \(m.layers) layers")
            m = m.withLayers(layers)
        }
        if divisor > 1 {
            guard m.kvHeads % divisor == 0 else {
                throw InputError(field: "--width-divisor", "must divide \(name)'s \(m.kvHeads) K/V heads (and \(m.heads) heads), got \(divisor)")
            }
            parts.append("width divided by \(divisor): \(m.heads / divisor) heads and \(m.kvHeads / divisor) K/V heads of \(m.headDim) (was \(m.heads) and \(m.kvHeads)), hidden \(m.hidden / divisor), FFN \(m.ffnSize / divisor), vocabulary \(m.vocab / divisor)")
            m.heads /= divisor
            m.kvHeads /= divisor
            m.hidden = m.heads * m.headDim
            m.ffnSize = max(1, m.ffnSize / divisor)
            m.vocab = max(1, m.vocab / divisor)
            m.name = "\(name)/\(divisor)"
        }
        return parts.isEmpty ? "\(name) as given" : "\(name), scaled down: " + parts.joined(separator: "; ")
    }
}
