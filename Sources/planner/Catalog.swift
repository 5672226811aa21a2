import ArgumentParser
import Foundation
import PlannerCore

struct Catalog: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the built-in models and devices, with the source of every number."
    )

    @Flag(help: "Print the catalogs as JSON (the device objects are the format a scenario's \"hardware\" accepts).")
    var json = false

    /// The value at a dotted path of a device's JSON, written compactly (numbers as %g, objects as
    /// `key: value` pairs).
    static func value(at path: String, in object: [String: Any]) -> String {
        var v: Any? = object
        for part in path.split(separator: ".") { v = (v as? [String: Any])?[String(part)] }
        func show(_ x: Any) -> String {
            if let n = x as? NSNumber { return String(format: "%g", n.doubleValue) }
            if let s = x as? String { return s }
            if let o = x as? [String: Any] { return o.keys.sorted().map { "\($0): \(show(o[$0]!))" }.joined(separator: ", ") }
            if let a = x as? [Any] { return "[" + a.map(show).joined(separator: ", ") + "]" }
            return "\(x)"
        }
        return v.map(show) ?? "(not set)"
    }

    func run() throws {
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            struct Both: Encodable { let models: [ModelSpec]; let hardware: [HardwareSpec] }
            printJSON(try encoder.encode(Both(models: ModelCatalog.all, hardware: HardwareCatalog.all)))
            return
        }
        func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
        print("models:")
        print("  " + pad("name", 22) + " layers  hidden  heads  kv  headDim    ffn  " + pad("kind", 10) + "  vocab  dtype  weights")
        print("  (ffn: an expert's width for a mixture of experts, whose kind gives the experts run per token of those stored)")
        for m in ModelCatalog.all {
            print("  " + pad(m.name, 22) + String(format: " %6d %7d %6d %3d %8d %6d  ", m.layers, m.hidden, m.heads, m.kvHeads, m.headDim, m.ffnSize)
                  + pad(m.moe.map { "\($0.activeExperts) of \($0.experts)" } ?? m.ffnKind.rawValue, 10) + String(format: " %6d  ", m.vocab)
                  + pad(m.dtype.rawValue, 5) + "  " + formatBytes(m.totalWeightBytes))
        }
        print("\ndevices (each value as the cost model reads it, then its source):")
        for h in HardwareCatalog.all {
            print("  \(h.name): \(h.gpu.name), \(formatBytes(h.gpu.memoryBytes)), \(h.link.name), host \(formatBytes(h.host.memoryBytes))")
            let values = (try? JSONSerialization.jsonObject(with: JSONEncoder().encode(h))) as? [String: Any] ?? [:]
            for (k, v) in h.sources.sorted(by: { $0.key < $1.key }) {
                print("    \(k) = \(Self.value(at: k, in: values))")
                print("      source: \(v)")
            }
        }
    }
}
