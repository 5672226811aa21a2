import ArgumentParser
import Foundation
import PlannerCore

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Simulate vLLM serving a request stream (continuous batching, paged KV with prefix caching, preemption, offloaded weights and KV), or plan its settings with --plan."
    )

    @Argument(help: "A serving scenario (docs/serving.md).")
    var scenario: String

    @Flag(help: "Print the result as JSON.")
    var json = false

    @Flag(help: "Search the engine's settings (max-num-seqs, max-num-batched-tokens, block size, GPU memory utilization, --cpu-offload-gb, the CPU KV cache) for the highest goodput under the file's slo, or the highest throughput, and print the choice, the runners-up, what binds and the vllm serve line.")
    var plan = false

    @Option(help: "Write the per-second time series as CSV to this file.")
    var csv: String?

    @Option(help: "Write Chrome trace events to this file: one row per request, the GPU and link tracks (chrome://tracing, Perfetto).")
    var trace: String?

    @Option(help: "Write an SVG chart of throughput, KV usage and requests over time to this file.")
    var chart: String?

    func run() throws {
        try reportingErrors {
            for (path, field) in [(csv, "--csv"), (trace, "--trace"), (chart, "--chart")] {
                if let path { try checkWritable(path, field: field) }
            }
            var (config, requests) = try ServingScenario.load(URL(fileURLWithPath: scenario))
            let cost = try AnalyticCostModel(hardware: config.hardware, model: config.model)
            if plan {
                if csv != nil || trace != nil || chart != nil {
                    throw InputError(field: "--plan", "prints the plan only; --csv, --trace and --chart go with a single run")
                }
                let p = try ServingPlanner.plan(config, requests: requests, cost: cost)
                if json { printJSON(try ServingPlanner.json(p)) } else { print(ServingPlanner.text(p), terminator: "") }
                return
            }
            config.recordTrace = trace != nil
            // A progress bar on a terminal, for runs over a second.
            var bar = isatty(STDERR_FILENO) == 1
                ? ProgressReporter(total: requests.count, write: { FileHandle.standardError.write(Data($0.utf8)) }) : nil
            let result = try ServingSimulator.run(config, requests: requests, cost: cost, progress: bar == nil ? nil : { bar?.update($0) })
            bar?.finish()
            // All outputs are made first, then written together: a failure writes none of them.
            var outputs: [OutputFile] = []
            if let csv { outputs.append(OutputFile(field: "--csv", path: csv, data: Data(ServingReport.csv(result).utf8))) }
            if let trace { outputs.append(OutputFile(field: "--trace", path: trace, data: try ServingReport.chromeTrace(result, config))) }
            if let chart { outputs.append(OutputFile(field: "--chart", path: chart, data: Data(ServingReport.chart(result, config).utf8))) }
            try writeAllAtomically(outputs)
            if json {
                printJSON(try ServingReport.json(result, config))
            } else {
                print(ServingReport.text(result, config), terminator: "")
            }
        }
    }
}
