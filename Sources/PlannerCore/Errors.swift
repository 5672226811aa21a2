import Foundation

/// An input the planner cannot use, with the field that is wrong and what would be accepted.
///
/// Every error a user can cause (a scenario, a model or device file, a command-line value) is one of
/// these, so that the command line prints one readable line and exits non-zero instead of trapping.
///
///     throw InputError(field: "batch", "must be an integer from 1 to 1048576, got 0")
///     // prints: batch: must be an integer from 1 to 1048576, got 0
public struct InputError: Error, CustomStringConvertible, Equatable, Sendable {
    /// Dotted path of the offending field (`placement.hostKV`, `hardware.link.h2dPinned.bytesPerSecond`).
    public var field: String
    /// What is wrong and what is allowed.
    public var message: String

    public init(field: String, _ message: String) {
        self.field = InputError.printable(field)
        self.message = InputError.printable(message)
    }

    /// The text with control characters written as escapes (`\u{1B}`, `\r`), and cut to 400
    /// characters, so that an error about a malformed file never echoes raw bytes or the file itself.
    static func printable(_ s: String) -> String {
        var out = ""
        for u in s.unicodeScalars {
            switch u {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.properties.generalCategory == .control || u.properties.generalCategory == .format {
                    out += "\\u{\(String(u.value, radix: 16, uppercase: true))}"
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out.count > 400 ? String(out.prefix(400)) + "..." : out
    }

    public var description: String { field.isEmpty ? message : "\(field): \(message)" }
}

/// A configuration that is well formed but does not fit in memory.
///
/// The message names the memory that overflows (GPU or host), the items that occupy it and by how
/// many bytes the demand exceeds the capacity.
public struct CapacityError: Error, CustomStringConvertible, Equatable, Sendable {
    public var memory: String
    public var neededBytes: Double
    public var capacityBytes: Double
    public var breakdown: [(String, Double)]
    /// The other memory, when it overflows too.
    public var alsoOver: String?

    public init(memory: String, neededBytes: Double, capacityBytes: Double, breakdown: [(String, Double)]) {
        self.memory = memory
        self.neededBytes = neededBytes
        self.capacityBytes = capacityBytes
        self.breakdown = breakdown
    }

    public static func == (a: CapacityError, b: CapacityError) -> Bool {
        a.memory == b.memory && a.neededBytes == b.neededBytes && a.capacityBytes == b.capacityBytes
    }

    public var description: String {
        let parts = breakdown.filter { $0.1 > 0 }.map { "\($0.0) \(formatBytes($0.1))" }.joined(separator: ", ")
        return "\(memory) memory does not fit: needs \(formatBytes(neededBytes)) (\(parts)) but has \(formatBytes(capacityBytes)); over by \(formatBytes(neededBytes - capacityBytes))"
            + (alsoOver.map { "; \($0)" } ?? "")
    }
}

/// Formats a byte count with binary prefixes: `formatBytes(1536) == "1.50 KiB"`.
public func formatBytes(_ bytes: Double) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = bytes
    var unit = 0
    while abs(value) >= 1024, unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    return unit == 0 ? "\(Int(value)) B" : String(format: "%.2f %@", value, units[unit])
}
