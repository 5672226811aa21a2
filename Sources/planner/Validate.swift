import ArgumentParser
import Foundation
import PlannerCore

struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Compare the planner's predictions with a measured profile (kernel tables, end-to-end decode steps, the placement choice per group) or with published runs of real engines.",
        discussion: """
        Kernels: the mean absolute percentage error (MAPE) of the analytic model against every measured \
        GEMM, attention and link point, and of the profile-backed model with each point left out of its \
        table. End to end (e2e.csv): every run replayed in the simulator with the profile-backed model, \
        predicted against measured step time, the MAPE, and for each group of runs that differ only in \
        placement, the placement the planner would choose, its measured throughput, the measured best \
        and the regret. Repeatability (CPU captures with e2e_windows.csv over two passes or more): \
        every run's time from the even passes' windows against the odd passes', what they disagree \
        by, the noise floor under the step-time error it implies, and the regret of choosing by one \
        half's times and paying the other's. Published runs (a file in the published-runs/1 format, \
        docs/profiles.md): every run played on its engine, machine and settings, published against \
        predicted throughput, the error and the MAPE; a run the planner cannot express is listed with why.
        """
    )

    @Argument(help: "A profile folder, or a file of published engine runs (format published-runs/1).")
    var folder: String

    @Flag(help: "Print the result as JSON.")
    var json = false

    func run() throws {
        try reportingErrors {
            var isFolder: ObjCBool = false
            if FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder), !isFolder.boolValue {
                try validatePublishedRuns()
                return
            }
            let url = URL(fileURLWithPath: folder)
            let profile = try ProfileReader.read(url)
            let hw = try profile.hardware(in: url)
            let kernels = try Validation.kernelAccuracy(profile, hardware: hw)
            let cost = try ProfileCostModel(profile: profile, hardware: hw)
            let (predictions, groups) = try Validation.replay(profile, hardware: hw, cost: cost)
            let mape = Validation.meanAbsoluteError(predictions)
            let repeat_ = Validation.repeatability(profile)
            if json {
                let doc: [String: Any] = [
                    "profile": profile.name, "device": profile.meta.device, "hardware": hw.name,
                    "kernels": kernels.map { ["table": $0.table, "points": $0.points, "analyticMAPE": $0.analyticMAPE, "profileMAPE": $0.profileMAPE] },
                    "runs": predictions.map { ["run": $0.run.run, "group": $0.run.group, "predictedSeconds": $0.predictedSeconds,
                                               "measuredSeconds": $0.run.stepSeconds, "error": $0.error] },
                    "stepMAPE": predictions.isEmpty ? NSNull() : mape as Any,
                    "groups": groups.map { ["group": $0.group, "runs": $0.runs, "chosen": $0.chosen, "measuredAtChoice": $0.measuredAtChoice,
                                            "best": $0.best, "measuredBest": $0.measuredBest, "regret": $0.regret] },
                    "maxRegret": groups.map(\.regret).max() as Any? ?? NSNull(),
                    "repeatability": repeat_.map { r -> [String: Any] in
                        ["rule": r.rule.rawValue, "evenPasses": r.evenPasses, "oddPasses": r.oddPasses, "runs": r.runs,
                         "halfDisagreement": r.halfDisagreement, "noiseFloor": r.noiseFloor, "largestCrossRegret": r.largestCrossRegret,
                         "groups": r.groups.map { ["group": $0.group, "bestEven": $0.bestEven, "bestOdd": $0.bestOdd, "crossRegret": $0.crossRegret] }]
                    } as Any? ?? NSNull(),
                ]
                try printJSONObject(doc)
                return
            }
            print("profile \(profile.name): \(profile.meta.device), \(profile.meta.dtype.rawValue), captured \(profile.meta.capturedAt); machine \(hw.name)")
            print("source: \(profile.meta.source)\n")
            print("kernel tables (mean absolute percentage error):")
            print("  table               points   analytic   profile (leave-one-out)")
            for k in kernels {
                print("  " + k.table.padding(toLength: 18, withPad: " ", startingAt: 0)
                      + String(format: " %7d %9.1f%% %9.1f%%", k.points, k.analyticMAPE * 100, k.profileMAPE * 100))
            }
            for k in kernels where !k.worstAnalytic.isEmpty { print("  worst analytic \(k.table): \(k.worstAnalytic)") }
            print()
            guard !predictions.isEmpty else {
                print("no end-to-end runs (e2e.csv) in \(profile.name): step-time error and placement regret need a capture by profiles/cuda/capture.py e2e")
                return
            }
            print("end-to-end decode steps (profile-backed simulator against the reference decoder):")
            print("  run                                              predicted ms  measured ms    error")
            for p in predictions {
                print("  " + p.run.run.padding(toLength: 48, withPad: " ", startingAt: 0) + String(format: " %12.3f %12.3f %+7.1f%%%@", p.predictedSeconds * 1e3, p.run.stepSeconds * 1e3, p.error * 100,
                             p.memoryNote == nil ? "" : "  (memory model: does not fit)"))
            }
            // The project's targets, for GPU and CPU-engine captures alike: step-time error under 5%,
            // regret under 2%.
            print(String(format: "  mean absolute percentage error: %.2f%% over %d runs (target: under 5%%)", mape * 100, predictions.count))
            if !groups.isEmpty {
                print("\nplacement choice per group (throughput measured, tokens/s):")
                print("  group                                     runs  chosen -> measured   best -> measured   regret")
                for g in groups {
                    print("  " + g.group.padding(toLength: 40, withPad: " ", startingAt: 0) + String(format: " %5d  %@ -> %.1f   %@ -> %.1f   %.2f%%", g.runs, g.chosen, g.measuredAtChoice, g.best, g.measuredBest, g.regret * 100))
                }
                print(String(format: "  largest regret: %.2f%% (target: under 2%%)", (groups.map(\.regret).max() ?? 0) * 100))
            }
            if let r = repeat_ {
                print("\nrepeatability of the measurement (rule \(r.rule.rawValue); passes \(r.evenPasses.map(String.init).joined(separator: ", ")) against \(r.oddPasses.map(String.init).joined(separator: ", "))):")
                print(String(format: "  the two halves' step times differ by %.2f%% (mean absolute, %d runs): a noise floor of about %.2f%% under the step-time error", r.halfDisagreement * 100, r.runs, r.noiseFloor * 100))
                for g in r.groups where g.bestEven != g.bestOdd || g.crossRegret > 0 {
                    print(String(format: "  %@: best %@ in one half, %@ in the other; choosing by one half costs %.2f%% in the other", g.group, g.bestEven, g.bestOdd, g.crossRegret * 100))
                }
                print(String(format: "  largest regret from measurement noise alone: %.2f%%", r.largestCrossRegret * 100))
            }
        }
    }

    /// Every run of a published-runs file simulated on its engine and machine, beside its published
    /// throughput; a run the planner cannot express is listed with why.
    func validatePublishedRuns() throws {
        let file = try PublishedRuns.load(URL(fileURLWithPath: folder))
        let results = file.runs.map { PublishedRuns.predict($0, in: file) }
        let mape = PublishedRuns.meanAbsoluteError(results)
        if json {
            let runs: [[String: Any]] = results.map { r in
                guard let p = r.predictedTokensPerSecond, let e = r.error else {
                    return ["id": r.id, "expressible": false, "why": r.why ?? ""]
                }
                return ["id": r.id, "measuredTokensPerSecond": r.measuredTokensPerSecond, "predictedTokensPerSecond": p, "error": e]
            }
            try printJSONObject(["runs": runs, "meanAbsolutePercentageError": mape as Any? ?? NSNull()])
            return
        }
        print("published runs: \(folder), \(results.count) runs")
        print("  run                                   published tok/s   predicted tok/s    error")
        for (run, r) in zip(file.runs, results) {
            let name = r.id.padding(toLength: 38, withPad: " ", startingAt: 0)
            if let p = r.predictedTokensPerSecond, let e = r.error {
                print("  " + name + String(format: " %15.3f %17.3f %+8.1f%%", r.measuredTokensPerSecond, p, e * 100))
            } else {
                print("  " + name + String(format: " %15.3f %17@    not expressible: %@", run.tokensPerSecond, "-", r.why ?? ""))
            }
        }
        let expressible = results.filter(\.expressible).count
        if let mape {
            let worst = results.compactMap { r in r.error.map { (r.id, abs($0)) } }.max { $0.1 < $1.1 }!
            print(String(format: "  mean absolute percentage error: %.1f%% over %d of %d runs; largest %.1f%% (%@)", mape * 100, expressible, results.count,
                         worst.1 * 100, worst.0))
        } else {
            print("  no run could be expressed")
        }
    }
}
