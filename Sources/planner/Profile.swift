import ArgumentParser
import Foundation
import PlannerCore

struct ProfileCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile",
        abstract: "Import measured profiles into the profile store and show what it holds.",
        subcommands: [Import.self, Show.self]
    )

    struct StoreOption: ParsableArguments {
        @Option(help: "The SQLite profile store.")
        var store: String = ".hybridplanner/profiles.sqlite"
    }

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Import a profile folder (profiles/FORMAT.md); a malformed file is rejected whole, with the file and line named. Importing again replaces the profile.")

        @Argument(help: "Profile folders.")
        var folders: [String]

        @OptionGroup var store: StoreOption

        func run() throws {
            try reportingErrors {
                let s = try ProfileStore(path: store.store)
                for f in folders {
                    let p = try s.importProfile(from: URL(fileURLWithPath: f))
                    print("imported \(p.name): \(p.meta.device), \(p.link.count) link, \(p.gemm.count) GEMM, \(p.attention.count) attention, \(p.e2e.count) end-to-end rows into \(store.store)")
                }
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the stored profiles, or show one.")

        @Argument(help: "A profile name (its folder name).")
        var name: String?

        @OptionGroup var store: StoreOption

        func run() throws {
            try reportingErrors {
                let s = try ProfileStore(path: store.store)
                let all = try s.summaries()
                if all.isEmpty { print("the store \(store.store) holds no profiles; import one with planner profile import DIR") }
                for p in all where name == nil || p.name == name {
                    print("\(p.name): \(p.device) (\(p.hardware)), \(p.dtype), captured \(p.capturedAt)")
                    print("  versions: \(p.versions)")
                    print("  source: \(p.source)")
                    print("  rows: \(p.linkRows) link, \(p.copyRows) device copy, \(p.gemmRows) GEMM, \(p.attentionRows) attention, \(p.e2eRuns) end-to-end runs, \(p.timelineRows) timeline; imported \(p.importedAt)")
                    if name != nil, let licence = p.licence { print("  licence:\n" + licence.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n")) }
                }
                if let name, !all.contains(where: { $0.name == name }) {
                    _ = try s.load(name: name)
                }
            }
        }
    }
}

/// Loads a profile folder and builds its cost model for a machine.
func profileCost(_ folder: URL, hardware: HardwareSpec, dtype: DType) throws -> ProfileCostModel {
    let profile = try ProfileReader.read(folder)
    try ProfileCostModel.check(profile, hardware: hardware, dtype: dtype)
    return try ProfileCostModel(profile: profile, hardware: hardware)
}

func describeProfile(_ cost: ProfileCostModel) -> String {
    let m = cost.profile.meta
    var s = "cost model: measured profile \(cost.profile.name) (\(m.device), \(m.dtype.rawValue), captured \(m.capturedAt)); the analytic model where no measurement applies\n"
    for line in cost.stats.summary() { s += "  \(line)\n" }
    return s
}
