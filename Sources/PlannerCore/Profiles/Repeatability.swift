import Foundation

/// Which state of the machine a CPU capture's numbers describe (`profile.json` key `rule`). Both
/// sides of a validation, the kernel tables and the end-to-end times, follow the same rule.
///
/// - `quiet`: the machine at its fastest: a table point keeps its lowest sweep, a run's time is
///   taken at its group's lowest round level. Made for a machine with a quiet and a busy state,
///   measured through the capture's state gate.
/// - `typical`: the machine as it usually is: a table point keeps its median sweep, a run's time is
///   taken at its group's median round level.
public enum CaptureRule: String, Sendable, CaseIterable {
    case quiet, typical

    /// A table point from its sweeps' values: the lowest (`quiet`) or the median (`typical`).
    public func tablePoint(_ sweeps: [Double]) -> Double {
        guard let low = sweeps.min() else { return .nan }
        return self == .quiet ? low : Self.median(sweeps)
    }

    /// Step times of the runs of one group from their windows: `windows[i][r]` is run `i`'s median
    /// step in round `r` (every run has the same rounds, played side by side). A round's level is
    /// the geometric mean of its windows; run `i`'s time is the median over rounds of its window over
    /// the round's level (paired, so that a choice within the group compares runs measured side by
    /// side), times the lowest level (`quiet`) or the median level (`typical`). NaN for every run
    /// when the runs do not have the same number of rounds, or none.
    public func groupTimes(_ windows: [[Double]]) -> [Double] {
        guard let rounds = windows.first?.count, rounds > 0, windows.allSatisfy({ $0.count == rounds }) else {
            return windows.map { _ in .nan }
        }
        let levels = (0 ..< rounds).map { r in
            exp(windows.reduce(0) { $0 + log($1[r]) } / Double(windows.count))
        }
        let level = self == .quiet ? levels.min()! : Self.median(levels)
        return windows.map { w in Self.median((0 ..< rounds).map { w[$0] / levels[$0] }) * level }
    }

    /// The median (the mean of the middle two of an even count); `xs` must not be empty.
    public static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        let n = s.count
        return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2
    }
}

extension Validation {
    /// How well a capture's end-to-end times repeat: the windows of the even passes and those of the
    /// odd passes (interleaved in time, so a drift of the machine falls on both) each give every run
    /// a time by the capture's rule, and the two are compared. What they disagree by is measurement
    /// noise that no model can predict; half of it estimates the noise left in the times of all
    /// passes (their noise is about the mean of the two halves'), the floor under the step-time error.
    /// It assumes the halves independent and alike (an odd number of passes gives one half a pass
    /// more) and the all-pass time near their mean (under `quiet` it is lower: the lowest of all
    /// round levels); the kernel tables' noise is not in it; and a half carries about 1.4 times the
    /// noise of all passes, so its cross regret overstates what noise does to a choice on all passes.
    public struct Repeatability: Sendable {
        public struct Group: Sendable {
            public var group: String
            /// The measured best placement of the even passes, of the odd passes.
            public var bestEven: String, bestOdd: String
            /// Choosing by one half's times and paying the other half's: the larger of the two ways.
            public var crossRegret: Double
        }
        public var rule: CaptureRule
        public var evenPasses: [Int], oddPasses: [Int]
        public var runs: Int
        /// Mean over runs of |t_even - t_odd| / ((t_even + t_odd) / 2).
        public var halfDisagreement: Double
        /// `halfDisagreement / 2`.
        public var noiseFloor: Double { halfDisagreement / 2 }
        public var groups: [Group]
        public var largestCrossRegret: Double { groups.map(\.crossRegret).max() ?? 0 }
    }

    /// The repeatability of a capture with end-to-end windows (`e2e_windows.csv`) over at least two
    /// passes; nil without them. The rule is the profile's (`quiet` when its `profile.json` names none:
    /// the captures made before the key existed). Each (run, pass, round) keeps its last attempt, as
    /// the capture does.
    public static func repeatability(_ profile: Profile) -> Repeatability? {
        let rule = profile.meta.rule ?? .quiet
        var last: [String: [[Int]: (attempt: Int, seconds: Double)]] = [:]
        for w in profile.windows {
            let key = [w.pass, w.round]
            if let have = last[w.run]?[key], have.attempt >= w.attempt { continue }
            last[w.run, default: [:]][key] = (w.attempt, w.seconds)
        }
        let passes = Set(profile.windows.map(\.pass)).sorted()
        guard passes.count >= 2 else { return nil }
        let even = passes.enumerated().filter { $0.offset % 2 == 0 }.map(\.element)
        let odd = passes.enumerated().filter { $0.offset % 2 == 1 }.map(\.element)
        var diffs: [Double] = []
        var groups: [Repeatability.Group] = []
        for (name, members) in Dictionary(grouping: profile.e2e, by: \.group).sorted(by: { $0.key < $1.key }) {
            // The reader gives every run of a group windows in the same (pass, round)s.
            func times(_ half: [Int]) -> [Double]? {
                let keys = (last[members[0].run] ?? [:]).keys.filter { half.contains($0[0]) }.sorted { $0.lexicographicallyPrecedes($1) }
                let windows = members.map { m in keys.compactMap { last[m.run]?[$0]?.seconds } }
                guard !keys.isEmpty, windows.allSatisfy({ $0.count == keys.count }) else { return nil }
                return rule.groupTimes(windows)
            }
            guard let a = times(even), let b = times(odd) else { continue }
            for (x, y) in zip(a, b) { diffs.append(abs(x - y) / ((x + y) / 2)) }
            guard members.count > 1 else { continue }
            // Throughput is batch / time and the batch is the group's, so the regret compares times.
            let bestA = a.indices.min { a[$0] < a[$1] }!, bestB = b.indices.min { b[$0] < b[$1] }!
            let cross = max(1 - b[bestB] / b[bestA], 1 - a[bestA] / a[bestB])
            groups.append(.init(group: name, bestEven: members[bestA].run, bestOdd: members[bestB].run, crossRegret: cross))
        }
        guard !diffs.isEmpty else { return nil }
        return Repeatability(rule: rule, evenPasses: even, oddPasses: odd, runs: diffs.count,
                             halfDisagreement: diffs.reduce(0, +) / Double(diffs.count), groups: groups)
    }
}
