import Foundation

/// A one-line progress bar for long runs, redrawn in place with `\r`, e.g.
/// `serving    412,000 / 1,000,000 requests  41%  [########............]  3.1 s`.
///
/// Invariants: nothing is written before `minimumSeconds` (1 s) of clock time have passed since
/// the reporter was made, so short runs print nothing; after that, a line is written by `update`
/// only when at least `intervalSeconds` (0.25 s) have passed since the last line written. `finish`
/// writes the final line and a newline, if the run printed a line or lasted `minimumSeconds`;
/// otherwise nothing. The count is right-aligned to the width of the total so successive lines
/// overwrite each other fully.
public struct ProgressReporter {
    public let total: Int
    public let label: String
    public let unit: String
    /// Characters inside the brackets.
    public let barWidth: Int
    public let minimumSeconds: Double
    public let intervalSeconds: Double
    private let clock: () -> Double
    private let write: (String) -> Void
    private let start: Double
    private var lastWritten: Double?
    private var done = 0

    /// - Parameters:
    ///   - total: the count at completion (100%).
    ///   - clock: seconds on any monotonic scale; the default is the process's continuous clock.
    ///   - write: receives each piece of output (stderr in the CLI).
    public init(total: Int, label: String = "serving", unit: String = "requests", barWidth: Int = 20,
                minimumSeconds: Double = 1, intervalSeconds: Double = 0.25,
                clock: @escaping () -> Double = ProgressReporter.continuousSeconds,
                write: @escaping (String) -> Void) {
        self.total = Swift.max(total, 0)
        self.label = label
        self.unit = unit
        self.barWidth = Swift.max(barWidth, 1)
        self.minimumSeconds = minimumSeconds
        self.intervalSeconds = intervalSeconds
        self.clock = clock
        self.write = write
        self.start = clock()
    }

    /// Seconds since an arbitrary fixed origin, from `ContinuousClock`.
    public static func continuousSeconds() -> Double {
        (ContinuousClock.now - continuousOrigin) / .seconds(1)
    }
    private static let continuousOrigin = ContinuousClock.now

    /// Records that `done` items are complete, writing a line if one is due.
    public mutating func update(_ done: Int) {
        self.done = done
        let now = clock()
        guard now - start >= minimumSeconds else { return }
        if let last = lastWritten, now - last < intervalSeconds { return }
        lastWritten = now
        write("\r" + line(done: done, elapsed: now - start))
    }

    /// Writes the final line (at `total`, or the last count if larger) and a newline, when the run
    /// printed anything or lasted `minimumSeconds`.
    public mutating func finish() {
        let now = clock()
        guard lastWritten != nil || now - start >= minimumSeconds else { return }
        lastWritten = now
        write("\r" + line(done: Swift.max(done, total), elapsed: now - start) + "\n")
    }

    /// The line for `done` items after `elapsed` seconds, without the leading `\r`.
    func line(done: Int, elapsed: Double) -> String {
        let fraction = total > 0 ? Swift.min(Swift.max(Double(done) / Double(total), 0), 1) : 1
        let percent = Int((fraction * 100).rounded(.down))
        let filled = Int((fraction * Double(barWidth)).rounded(.down))
        let totalText = Self.grouped(total)
        let doneText = Self.grouped(done)
        let pad = String(repeating: " ", count: Swift.max(totalText.count - doneText.count, 0))
        let pct = String(percent)
        let pctPad = String(repeating: " ", count: 3 - pct.count)
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: barWidth - filled)
        let tenths = Int((Swift.max(elapsed, 0) * 10).rounded())
        return "\(label)  \(pad)\(doneText) / \(totalText) \(unit)  \(pctPad)\(pct)%  [\(bar)]  \(tenths / 10).\(tenths % 10) s"
    }

    /// `1234567` as `1,234,567`.
    static func grouped(_ n: Int) -> String {
        let digits = String(n.magnitude)
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return n < 0 ? "-" + out : out
    }
}
