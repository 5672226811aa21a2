import ArgumentParser
import Foundation
import PlannerCore

struct Simulate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Play out a scenario layer by layer and report step time, throughput, bytes, busy time and memory.",
        discussion: "SCENARIO is a JSON file in the project's scenario format (docs/scenarios.md); examples/ has one per policy."
    )

    @Argument(help: "Path to a scenario JSON file.")
    var scenario: String

    @Flag(help: "Print the result as JSON instead of a table.")
    var json = false

    @Option(help: "A profile folder whose measurements replace the analytic cost model (overrides the scenario's \"profile\").")
    var profile: String?

    @Option(name: .long, help: "Write Chrome trace events (one track per resource) to this file; open it in Perfetto.")
    var trace: String?

    func run() throws {
        try reportingErrors {
            let url = URL(fileURLWithPath: scenario)
            if let trace { try checkWritable(trace, field: "--trace") }
            let plan = try Scenario.load(url)
            var measured: ProfileCostModel?
            if let folder = try profile.map({ URL(fileURLWithPath: $0) }) ?? Scenario.profileFolder(url) {
                measured = try profileCost(folder, hardware: plan.hardware, dtype: plan.model.dtype)
            }
            let cost: any CostModel = try measured ?? AnalyticCostModel(hardware: plan.hardware, model: plan.model)
            let result = try Simulator.run(plan, cost: cost)
            if let trace { try writeAtomically(Report.chromeTrace(result), to: trace, field: "--trace") }
            if json {
                printJSON(try Report.json(result))
            } else {
                print(Report.text(result), terminator: "")
                if let measured { print("\n" + describeProfile(measured), terminator: "") }
            }
        }
    }
}
