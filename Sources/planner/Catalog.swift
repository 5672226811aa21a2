import ArgumentParser
import Foundation
import PlannerCore

struct Catalog: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the built-in models and devices, with the source of every number."
    )

    @Flag(help: "Print the catalogs as JSON (the device objects are the format a scenario's \"hardware\" accepts).")
    var json = false

    func run() throws {
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            struct Both: Encodable { let models: [ModelSpec]; let hardware: [HardwareSpec] }
            printJSON(try encoder.encode(Both(models: ModelCatalog.all, hardware: HardwareCatalog.all)))
            return
        }
        print("models:")
        print("  name                    layers  hidden  heads  kv  headDim    ffn  kind        vocab  dtype  weights")
        for m in ModelCatalog.all {
            print(String(format: "  %-22@ %7d %7d %6d %3d %8d %6d  %-10@ %6d  %-5@  %@", m.name, m.layers, m.hidden, m.heads, m.kvHeads,
                         m.headDim, m.ffnSize, m.ffnKind.rawValue, m.vocab, m.dtype.rawValue, formatBytes(m.totalWeightBytes)))
        }
        print("\ndevices:")
        for h in HardwareCatalog.all {
            print("  \(h.name): \(h.gpu.name), \(formatBytes(h.gpu.memoryBytes)), \(h.link.name), host \(formatBytes(h.host.memoryBytes))")
            for (k, v) in h.sources.sorted(by: { $0.key < $1.key }) { print("    \(k): \(v)") }
        }
    }
}
