// Captures the CPU profile: the CPU engine's GEMMs, attention and copy bandwidth, and end-to-end
// decode steps of the engine over placements in groups, in the profile format (profiles/FORMAT.md),
// with the CPU as a device JSON derived from the measurements.
//
//     swift run -c release planner-cpu-capture --out profiles/cpu-amd-epyc-2c [--repeats 5] [--quick]
//
// scripts/capture-cpu-profile.sh runs it with the Swift version recorded.
import CPUEngine
import Foundation
import PlannerCore

var args = Array(CommandLine.arguments.dropFirst())
var outPath: String?
var repeats = 5, warmup = 1, passes = 2, rounds = 3, quick = false, gate = true, swift = "unknown", rule = QuietState.Rule.typical
func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("error: \(message)\n".utf8))
    exit(1)
}
while !args.isEmpty {
    let a = args.removeFirst()
    func value() -> String {
        if args.isEmpty { fail("\(a): missing value") }
        return args.removeFirst()
    }
    switch a {
    case "--out": outPath = value()
    case "--repeats": guard let v = Int(value()), (1...100).contains(v) else { fail("--repeats: must be an integer from 1 to 100") }; repeats = v
    case "--warmup": guard let v = Int(value()), (0...100).contains(v) else { fail("--warmup: must be an integer from 0 to 100") }; warmup = v
    case "--passes": guard let v = Int(value()), (1...20).contains(v) else { fail("--passes: must be an integer from 1 to 20") }; passes = v
    case "--rounds": guard let v = Int(value()), (1...20).contains(v) else { fail("--rounds: must be an integer from 1 to 20") }; rounds = v
    case "--rule":
        let v = value()
        guard let r = QuietState.Rule(rawValue: v) else { fail("--rule: must be quiet or typical, got \(v)") }
        rule = r
    case "--swift-version": swift = value()
    case "--quick": quick = true
    case "--no-gate": gate = false
    case "--help", "-h":
        print("usage: planner-cpu-capture --out DIR [--repeats N (1-100, default 5)] [--warmup N (0-100, default 1)] [--passes N (1-20, default 2; the kernel tables are swept N + 1 times)] [--rounds N (1-20, default 3)] [--rule typical|quiet (the machine's median or its fastest state, default typical)] [--swift-version TEXT] [--quick] [--no-gate (measure whenever it comes instead of in the machine's quiet state)]")
        exit(0)
    default: fail("\(a): unknown option; allowed are --out, --repeats, --warmup, --passes, --rounds, --rule, --swift-version, --quick, --no-gate")
    }
}
guard let outPath else { fail("--out: missing; name the profile folder to write (profiles/cpu-NAME)") }
let url = URL(fileURLWithPath: outPath)
var capture = CPUProfileCapture(out: url, deviceName: CPUProfileCapture.cpuDescription())
capture.repeats = repeats
capture.warmup = warmup
capture.passes = passes
capture.rounds = rounds
capture.rule = rule
capture.quick = quick
if gate { capture.gate = QuietState.Gate.machine() }
capture.swiftVersion = swift
let started = Date()
capture.log = { FileHandle.standardError.write(Data(String(format: "[%4.0f s] %@\n", Date().timeIntervalSince(started), $0).utf8)) }
do {
    try capture.run(folderName: url.standardizedFileURL.lastPathComponent)
} catch {
    fail("\(error)")
}
