import ArgumentParser
import Foundation
import PlannerCore

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Print the highest-throughput configuration: a summary with the engines' command lines, or (--json, --out) a scenario planner simulate accepts.",
        discussion: """
        Searches batch sizes, the weights' GPU share (0, 25, 50, 75, 100%), token recomputation (0, 10, 20%) \
        and the KV:ACT ratio of the hybrid policy (balance-guided search), and the KV-only, ACT-only, DeepSpeed \
        and all-GPU policies. When the choice is FlexGen-style KV-only, the matching FlexGen flags are printed \
        in the configuration and on standard error.
        """
    )

    @OptionGroup var options: SearchOptions

    @Option(help: "Restrict the choice to one policy: any, hybrid, kv-only, act-only, deepspeed, all-gpu, flexgen.")
    var policy: String = "any"

    @Option(help: "Choose only among configurations this engine can run: ideal, flexgen, deepspeed-zero-inference, hf-accelerate.")
    var engine: String?

    @Flag(help: "Print the configuration as a scenario JSON (what planner simulate reads) instead of the summary.")
    var json = false

    @Option(help: "Also write the configuration as a scenario JSON to this file.")
    var out: String?

    func run() throws {
        try reportingErrors {
            if let out { try checkWritable(out, field: "--out") }
            guard let choice = PlanSearch.PolicyChoice(rawValue: policy) else {
                throw InputError(field: "--policy", "must be one of \(PlanSearch.PolicyChoice.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(policy)\"")
            }
            // --weights replaces the searched weight shares (SearchOptions.sweep) and fixes them.
            let sweep = try options.sweep(defaultSpace: .planDefault)
            var kind: EngineKind?
            if let engine {
                guard let k = EngineKind(rawValue: engine) else {
                    throw InputError(field: "--engine", "must be one of \(EngineKind.names.joined(separator: ", ")), got \"\(engine)\"")
                }
                kind = k
            }
            let result = PlanSearch.run(sweep, policy: choice, engine: kind)
            guard let best = result.best else {
                FileHandle.standardError.write(Data("error: \(Advice.nothingFits(sweep.setup, outcomes: result.tried))\n".utf8))
                throw ExitCode.failure
            }
            let doc = try PlanSearch.configuration(best, setup: sweep.setup, result: result)
            if let out {
                try requireFinite(doc, path: "")
                try writeAtomically(try JSONSerialization.data(withJSONObject: doc, options: [.prettyPrinted, .sortedKeys]) + Data("\n".utf8),
                                    to: out, field: "--out")
            }
            if json {
                try printJSONObject(doc)
                if let flexgen = (doc["planner"] as? [String: Any])?["flexgen"] as? [String: Any], let flags = flexgen["flags"] as? String {
                    FileHandle.standardError.write(Data("FlexGen flags: \(flags)\n".utf8))
                }
            } else {
                print(PlanReport.text(best, setup: sweep.setup, result: result), terminator: "")
            }
        }
    }
}
