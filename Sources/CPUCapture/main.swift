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
var kernelCheckRounds = 0, filter = "", neighbourCheck = false
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
    case "--kernel-check": guard let v = Int(value()), (1...100).contains(v) else { fail("--kernel-check: must be an integer from 1 to 100") }; kernelCheckRounds = v
    case "--filter": filter = value()
    case "--neighbour-check": neighbourCheck = true
    case "--no-gate": gate = false
    case "--help", "-h":
        print("usage: planner-cpu-capture --out DIR [--repeats N (1-100, default 5)] [--warmup N (0-100, default 1)] [--passes N (1-20, default 2; the kernel tables are swept N + 1 times)] [--rounds N (1-20, default 3)] [--rule typical|quiet (the machine's median or its fastest state, default typical)] [--swift-version TEXT] [--quick] [--no-gate (measure whenever it comes instead of in the machine's quiet state)]")
        print("       planner-cpu-capture --kernel-check ROUNDS (1-100) [--filter TEXT] [--repeats N] [--warmup N] [--quick]: the engine's GEMM and attention calls in the capture's end-to-end runs beside the same calls timed as the tables time them, ROUNDS rounds per run (CSV on stdout; each run's per-shape GEMM ratios follow it on lines that start with #)")
        print("       planner-cpu-capture --neighbour-check [--repeats N] [--warmup N]: the layer GEMMs while the other core sleeps, wakes every 200 us, or spins (CSV on stdout)")
        exit(0)
    default: fail("\(a): unknown option; allowed are --out, --repeats, --warmup, --passes, --rounds, --rule, --swift-version, --quick, --no-gate, --kernel-check, --filter, --neighbour-check")
    }
}
if neighbourCheck, kernelCheckRounds > 0 { fail("--neighbour-check and --kernel-check: give one of the two diagnostics at a time") }
if !filter.isEmpty, kernelCheckRounds == 0 { fail("--filter: only with --kernel-check ROUNDS") }
if neighbourCheck || kernelCheckRounds > 0, outPath != nil { fail("--out: the diagnostics write no profile; give --out only for a capture") }
let started = Date()
func log(_ line: String) { FileHandle.standardError.write(Data(String(format: "[%4.0f s] %@\n", Date().timeIntervalSince(started), line).utf8)) }
/// A capture object for the diagnostics (they write no profile), on the pinned compute thread.
@MainActor func diagnostic() -> CPUProfileCapture {
    var capture = CPUProfileCapture(out: URL(fileURLWithPath: "/dev/null"), deviceName: CPUProfileCapture.cpuDescription())
    capture.repeats = repeats
    capture.warmup = warmup
    capture.quick = quick
    capture.log = log
    _ = CPUAffinity.pinComputeThread()
    return capture
}
if neighbourCheck {
    // Diagnostic: the layer GEMMs with the other core idle, waking every 200 us, or busy.
    let capture = diagnostic()
    print("m,mode,median_ms,over_idle,lowest_ms")
    for m in [4, 16, 256] {
        let r = capture.neighbourCheck(m: m, alternations: 15)
        let idle = CaptureRule.median(r[0].seconds)
        for (mode, t) in r {
            print(String(format: "%d,%@,%.3f,%.3f,%.3f", m, mode, CaptureRule.median(t) * 1e3, CaptureRule.median(t) / idle, t.min()! * 1e3))
        }
    }
    exit(0)
}
if kernelCheckRounds > 0 {
    // Diagnostic: the engine's kernels against the same kernels timed as the tables time them.
    let capture = diagnostic()
    do {
        let rows = try capture.kernelCheck(rounds: kernelCheckRounds, filter: filter)
        print("run,step_ms,engine_gemm_ms,table_gemm_ms,table_gemm_mean_ms,engine_attention_ms,table_attention_ms,table_attention_mean_ms,other_ms")
        for r in rows {
            let ta = r.tableAttention.map { String(format: "%.3f,%.3f", $0 * 1e3, (r.tableAttentionMean ?? .nan) * 1e3) } ?? ","
            print(String(format: "%@,%.3f,%.3f,%.3f,%.3f,%.3f,%@,%.3f", r.run, r.step * 1e3, r.engineGEMM * 1e3, r.tableGEMM * 1e3,
                         r.tableGEMMMean * 1e3, r.engineAttention * 1e3, ta, r.other * 1e3))
            for g in r.gemmRatios { print(String(format: "#   gemm m=%d n=%d k=%d: engine / table %.3f", g.shape[0], g.shape[1], g.shape[2], g.ratio)) }
        }
    } catch { fail("\(error)") }
    exit(0)
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
capture.log = log
do {
    try capture.run(folderName: url.standardizedFileURL.lastPathComponent)
} catch {
    fail("\(error)")
}
