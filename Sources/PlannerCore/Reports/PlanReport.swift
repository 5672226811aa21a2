import Foundation

/// `planner plan`'s summary for a person: what to run, what to expect, what binds, the runner-up
/// policies, and the command line of every engine that can run the choice.
public enum PlanReport {
    public static func text(_ o: Outcome, setup: Setup, result: PlanSearch.Result) -> String {
        guard let p = o.plan else { return "no plan\n" }
        var out = "planner plan: \(SweepReport.setupLine(setup))\n\n"
        out += "run:      \(Advice.describe(o))\n"
        out += "          weights: \(weightsText(p)); cache per sequence: \(p.placement.description)\n"
        if case .hybrid(let r, _) = o.candidate.kind {
            out += String(format: "          KV:ACT of the host tokens: %d:%d (KV fraction %.2f)\n", p.placement.hostKV, p.placement.hostAct, r)
        }
        if p.attentionOnHost { out += "          decode attention on the host CPU\n" }
        if let line = SweepReport.expertFetchVerdict(o) { out += "          " + line }
        out += String(format: "expected: %.2f tokens/s, decode step %.1f ms, prefill %.2f s\n", o.tokensPerSecond, o.stepSeconds * 1e3, o.prefillSeconds)
        let memory = MemoryModel.report(p)
        out += "          GPU memory \(formatBytes(memory.gpuUsed)) of \(formatBytes(memory.gpuCapacity)), host memory \(formatBytes(memory.hostUsed)) of \(formatBytes(memory.hostCapacity))\n"
        out += "binds:    \(binding(o, memory: memory))\n"
        let others = runnersUp(o, result: result)
        if !others.isEmpty {
            out += "runner-up policies:\n"
            for r in others {
                out += String(format: "  %@: %.2f tokens/s (%.2fx of the choice)\n", Advice.describe(r), r.tokensPerSecond, r.tokensPerSecond / o.tokensPerSecond)
            }
        }
        if !result.grownBatches.isEmpty {
            let tried = result.grownBatches.map(String.init).joined(separator: ", ")
            out += result.grownBatches.contains(o.candidate.batch)
                ? "batch \(o.candidate.batch) is past the grid's largest: throughput still rose there (tried \(tried))\n"
                : "larger batches than the grid's were tried (\(tried)): slower, or they do not fit\n"
        }
        let engines = PlanSearch.engines(thatCanRun: p)
        out += engines.isEmpty ? "engines that can run it: none of the modelled engines has every feature this plan uses\n"
            : "engines that can run it: \(engines.map(engineName).joined(separator: ", "))\n"
        for (engine, line) in commands(o, setup: setup) { out += "  \(engine): \(line)\n" }
        out += "the configuration as a scenario for planner simulate: planner plan --json (or --out FILE)\n"
        return out
    }

    static func weightsText(_ p: ExecutionPlan) -> String {
        let w = p.weights
        if w.gpuFraction >= 1 { return "resident on the GPU" }
        if w.gpuFraction <= 0, w.diskFraction == 0 { return "streamed from \(p.hostMemory.rawValue) host memory, layer by layer" }
        var parts = ["\(Int((w.gpuFraction * 100).rounded()))% resident on the GPU"]
        if w.diskFraction > 0 { parts.append("\(Int((w.diskFraction * 100).rounded()))% on disk") }
        parts.append("the rest streamed from \(p.hostMemory.rawValue) host memory")
        return parts.joined(separator: ", ")
    }

    static func engineName(_ k: EngineKind) -> String {
        k == .ideal ? "ideal (HybridServe's schedule)" : k.rawValue
    }

    /// The busiest resource over the generation, and a memory that is full.
    static func binding(_ o: Outcome, memory: MemoryReport) -> String {
        let labels: [(Resource, String)] = [(.compute, "GPU compute"), (.hostToDevice, "the host-to-GPU link"), (.hostCPU, "the host CPU"),
                                            (.diskRead, "disk reads")]
        let busiest = labels.map { ($0.1, o.busy[$0.0] ?? 0) }.max { $0.1 < $1.1 }!
        var s = String(format: "%@ (busy %.0f%% of the run", busiest.0, busiest.1 * 100)
        let rest = labels.filter { $0.1 != busiest.0 }.compactMap { l -> String? in
            let b = o.busy[l.0] ?? 0
            return b > 0.005 ? String(format: "%@ %.0f%%", l.1, b * 100) : nil
        }
        s += rest.isEmpty ? ")" : "; " + rest.joined(separator: ", ") + ")"
        if memory.gpuUsed >= 0.97 * memory.gpuCapacity { s += "; GPU memory is full, so a larger batch does not fit" }
        if memory.hostUsed >= 0.97 * memory.hostCapacity { s += "; host memory is full" }
        return s
    }

    /// The best point of each other policy, fastest first, at most four.
    static func runnersUp(_ o: Outcome, result: PlanSearch.Result) -> [Outcome] {
        var best: [String: Outcome] = [:]
        for t in result.tried where t.feasible {
            let key = SweepReport.policyName(t)
            if key == SweepReport.policyName(o) { continue }
            if best[key].map({ t.tokensPerSecond > $0.tokensPerSecond }) ?? true { best[key] = t }
        }
        return best.values.sorted { $0.tokensPerSecond > $1.tokensPerSecond }.prefix(4).map { $0 }
    }

    /// The Hugging Face repository a catalog model was read from.
    static func repository(_ m: ModelSpec) -> String? {
        guard let r = m.source.range(of: #"config\.json of (\S+) on the Hugging Face hub"#, options: .regularExpression) else { return nil }
        return String(m.source[r].dropFirst("config.json of ".count).split(separator: " ").first ?? "")
    }

    /// The command line of each engine that can run the choice, with flag names as each engine's
    /// argument parser spells them: FlexLLMGen `flexllmgen/flex_opt.py` (`add_parser_arguments`),
    /// DeepSpeedExamples `inference/huggingface/zero_inference/run_model.py`, and transformers'
    /// `from_pretrained` with Accelerate's `device_map` and `max_memory` (accelerate
    /// `big_modeling.py`). HybridServe's runner is not emitted: its source was not available to
    /// check flag names against.
    public static func commands(_ o: Outcome, setup: Setup) -> [(String, String)] {
        guard let p = o.plan else { return [] }
        let engines = PlanSearch.engines(thatCanRun: p)
        let repo = repository(p.model) ?? p.model.name
        let prompt = setup.workload.prompt, tokens = setup.workload.tokens
        var out: [(String, String)] = []
        let isOPT = p.model.name.hasPrefix("opt-")
        if engines.contains(.flexgen) {
            if !isOPT {
                out.append(("FlexGen", "runs OPT models only (flex_opt.py); \(p.model.name) is not one"))
            } else if let s = PlanSearch.flexGenSettings(o) {
                let pin = p.hostMemory == .pageable ? " --pin-weight 0" : ""
                out.append(("FlexGen", "python -m flexllmgen.flex_opt --model \(repo) --prompt-len \(prompt) --gen-len \(tokens) \(s.flags)\(pin)"))
            }
        }
        if engines.contains(.deepSpeedZeroInference), p.weights.gpuFraction < 1 {
            var line = "deepspeed --num_gpus 1 run_model.py --model \(repo) --batch-size \(p.batch) --prompt-len \(prompt) --gen-len \(tokens)"
            line += p.weights.diskFraction > 0 ? " --disk-offload --offload-dir OFFLOAD_DIR" : " --cpu-offload"
            if p.hostMemory == .pinned { line += " --pin-memory 1" }
            if p.attentionOnHost { line += " --kv-offload" }
            if let q = p.compression.weights { line += " --quant_bits \(q.bits) --quant_group_size \(q.groupSize)" }
            out.append(("DeepSpeed ZeRO-Inference", line))
        }
        if engines.contains(.hfAccelerate) {
            // max_memory bounds the weights Accelerate places on each device (big_modeling.py,
            // infer_auto_device_map): the GPU gets the plan's resident share, the rest goes to the CPU.
            let residentGiB = max(1, Int((p.weights.gpuFraction * p.model.totalWeightBytes / HardwareCatalog.GiB).rounded(.up)))
            let hostGiB = Int((p.hardware.host.memoryBytes / HardwareCatalog.GiB).rounded(.down))
            let dtype = p.model.dtype == .bf16 ? "bfloat16" : p.model.dtype == .fp32 ? "float32" : "float16"
            out.append(("HF Accelerate", "AutoModelForCausalLM.from_pretrained(\"\(repo)\", torch_dtype=torch.\(dtype), device_map=\"auto\", max_memory={0: \"\(residentGiB)GiB\", \"cpu\": \"\(hostGiB)GiB\"}), then generate() on batches of \(p.batch) with max_new_tokens=\(tokens)"))
        }
        return out
    }
}
