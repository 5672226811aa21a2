import ArgumentParser
import Foundation
import PlannerCore

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Simulate serving requests with continuous batching over a paged KV cache, with preemption by recompute or swap."
    )

    @Argument(help: "A serving scenario (README.md, \"Serving\").")
    var scenario: String

    @Flag(help: "Print the result as JSON.")
    var json = false

    @Option(help: "Write the per-second time series as CSV to this file.")
    var csv: String?

    func run() throws {
        try reportingErrors {
            let (config, requests) = try ServingScenario.load(URL(fileURLWithPath: scenario))
            let cost = try AnalyticCostModel(hardware: config.hardware, dtype: config.model.dtype)
            let result = try ServingSimulator.run(config, requests: requests, cost: cost)
            if let csv { try writeAtomically(Data(ServingReport.csv(result).utf8), to: csv) }
            if json {
                FileHandle.standardOutput.write(try ServingReport.json(result))
                print()
            } else {
                print(ServingReport.text(result, config), terminator: "")
            }
        }
    }
}
