import Foundation
import Testing

/// `planner profile` and `planner validate` run as subprocesses.
@Suite("CLI profiles", .timeLimit(.minutes(2)))
struct CLIProfileTests {
    static let h100 = CLITests.packageRoot.appendingPathComponent("profiles/reference-h100").path

    /// The CPU profile names its device by a JSON file in its folder and its models by model files:
    /// a scenario on that device, with that profile, is accepted, and every lookup is measured.
    @Test func simulateOnTheCPUDeviceWithItsProfile() throws {
        let dir = try CLITests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let cpu = CLITests.packageRoot.appendingPathComponent("profiles/cpu-amd-epyc-2c").path
        let scenario = """
            {"model": "\(cpu)/cpu-opt-small.json", "hardware": "\(cpu)/cpu-amd-epyc-2c.json", "dtype": "fp32", "profile": "\(cpu)",
             "batch": 16, "decodeStep": {"context": 256}, "weights": "host", "placement": {"gpuKV": 128, "hostKV": 128}}
            """
        let file = dir.appendingPathComponent("cpu.json")
        try scenario.write(to: file, atomically: true, encoding: .utf8)
        let o = try CLITests.run(["simulate", file.path])
        #expect(o.status == 0, "\(o.stderr)")
        // Five GEMMs a step (Q/K/V, output, FFN up and down, the LM head) in each of the three steps
        // simulated (a warm-up, the reported step and a trailing one).
        #expect(o.stdout.contains("measured profile cpu-amd-epyc-2c") && o.stdout.contains("gemm: 15 lookups, 100% measured or interpolated"), "\(o.stdout)")
        // The same profile on another device is refused, naming the device it measured.
        try scenario.replacingOccurrences(of: "\(cpu)/cpu-amd-epyc-2c.json", with: "rtx4090").write(to: file, atomically: true, encoding: .utf8)
        let wrong = try CLITests.run(["simulate", file.path])
        CLITests.expectCleanFailure(wrong)
        #expect(wrong.stderr.contains("measured on cpu-amd-epyc-2c"), "\(wrong.stderr)")
    }

    /// Without --profile, `planner run` predicts with the shipped CPU profile measured on this
    /// machine's CPU (family, model and core count from /proc/cpuinfo, read here on its own), or says
    /// in a note that none was and which one it used.
    @Test func runPicksTheProfileOfThisCPU() throws {
        let dir = try CLITests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let cpu = CLITests.packageRoot.appendingPathComponent("profiles/cpu-amd-epyc-2c").path
        let scenario = """
            {"model": "\(cpu)/cpu-opt-small.json", "hardware": "\(cpu)/cpu-amd-epyc-2c.json", "dtype": "fp32",
             "batch": 1, "decodeStep": {"context": 8}, "weights": "gpu", "placement": {"gpuKV": 8}}
            """
        let file = dir.appendingPathComponent("run.json")
        try scenario.write(to: file, atomically: true, encoding: .utf8)
        let o = try CLITests.run(["run", file.path, "--layers", "1", "--repeats", "1", "--json"])
        #expect(o.status == 0, "\(o.stderr)")
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(o.stdout.utf8)) as? [String: Any])
        let info = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8).split(separator: "\n")
        func field(_ name: String) -> String? {
            info.first { $0.split(separator: ":").first?.trimmingCharacters(in: .whitespaces) == name }
                .map { $0.split(separator: ":", maxSplits: 1)[1].trimmingCharacters(in: .whitespaces) }
        }
        let here = "(family \(try #require(field("cpu family"))), model \(try #require(field("model")))), \(ProcessInfo.processInfo.activeProcessorCount) cores"
        let root = CLITests.packageRoot.appendingPathComponent("profiles")
        let devices = try FileManager.default.contentsOfDirectory(atPath: root.path).filter { $0.hasPrefix("cpu-") }.compactMap { name -> (String, String)? in
            guard let data = try? Data(contentsOf: root.appendingPathComponent("\(name)/profile.json")),
                  let meta = try JSONSerialization.jsonObject(with: data) as? [String: Any], let device = meta["device"] as? String else { return nil }
            return (name, device)
        }
        #expect(devices.count >= 2)
        let profile = try #require(doc["profile"] as? String)
        if let note = doc["profileNote"] as? String {
            #expect(profile == "cpu-amd-epyc-2c" && note.contains("no shipped CPU profile was measured on this CPU"))
            #expect(!devices.contains { $0.1.hasSuffix(here) }, "\(devices) \(here)")
        } else {
            #expect(devices.contains { $0.0 == profile && $0.1.hasSuffix(here) }, "\(profile) \(devices) \(here)")
        }
    }

    /// `planner run --breakdown` times the engine's GEMM and attention calls inside its timed decode
    /// steps: they fit inside the measured step (kernel logs that kept the warm-up steps would not),
    /// and so do the simulator's tasks as played inside the predicted one; with resident weights no
    /// copy runs on either side, with streamed weights both copy.
    @Test func runBreakdownFitsInsideTheStep() throws {
        let dir = try CLITests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let cpu = CLITests.packageRoot.appendingPathComponent("profiles/cpu-amd-epyc-2c").path
        for weights in ["gpu", "host"] {
            let scenario = """
                {"model": "\(cpu)/cpu-opt-small.json", "hardware": "\(cpu)/cpu-amd-epyc-2c.json", "dtype": "fp32",
                 "batch": 2, "decodeStep": {"context": 32}, "weights": "\(weights)", "placement": {"gpuKV": 32}}
                """
            let file = dir.appendingPathComponent("run-\(weights).json")
            try scenario.write(to: file, atomically: true, encoding: .utf8)
            let o = try CLITests.run(["run", file.path, "--layers", "1", "--breakdown", "--json", "--profile", cpu])
            #expect(o.status == 0, "\(o.stderr)")
            let doc = try #require(try JSONSerialization.jsonObject(with: Data(o.stdout.utf8)) as? [String: Any])
            let steps = try #require((doc["measured"] as? [String: Any])?["steps"] as? [Double])
            let measuredStep = steps.reduce(0, +) / Double(steps.count)
            let predictedStep = try #require((doc["predicted"] as? [String: Any])?["stepSeconds"] as? Double)
            let b = try #require(doc["breakdownPerStep"] as? [String: [String: Double]])
            let gemm = try #require(b["gemmSeconds"]), attention = try #require(b["attentionSeconds"]), copy = try #require(b["h2dBusySeconds"])
            #expect(gemm["measured"]! > 0 && attention["measured"]! > 0)
            // Every timed kernel ran within the timed steps, so their sum per step is at most the mean step.
            #expect(gemm["measured"]! + attention["measured"]! <= measuredStep * (1 + 1e-9), "\(b) step \(measuredStep)")
            #expect(abs(try #require(b["stepSeconds"])["measured"]! / measuredStep - 1) < 1e-9)
            #expect(gemm["predicted"]! > 0 && attention["predicted"]! > 0)
            #expect(gemm["predicted"]! + attention["predicted"]! <= predictedStep * (1 + 1e-9), "\(b) step \(predictedStep)")
            if weights == "gpu" {
                #expect(copy["measured"]! == 0 && copy["predicted"]! == 0)
            } else {
                #expect(copy["measured"]! > 0 && copy["predicted"]! > 0)
            }
        }
    }

    @Test func importTwiceThenShow() throws {
        let dir = try CLITests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = dir.appendingPathComponent("p.sqlite").path
        for _ in 0 ..< 2 {
            let o = try CLITests.run(["profile", "import", Self.h100, "--store", store])
            #expect(o.status == 0, "\(o.stderr)")
            #expect(o.stdout.contains("260 GEMM"))
        }
        let show = try CLITests.run(["profile", "show", "--store", store])
        #expect(show.status == 0)
        #expect(show.stdout.components(separatedBy: "reference-h100:").count == 2, "one profile, not two: \(show.stdout)")
        #expect(show.stdout.contains("24 link, 0 device copy, 260 GEMM, 64 attention"))
    }

    @Test func malformedProfileFailsCleanlyNamingFileAndLine() throws {
        let dir = try CLITests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let copy = dir.appendingPathComponent("broken")
        try FileManager.default.copyItem(atPath: Self.h100, toPath: copy.path)
        try "m,n,k,seconds\n1,2,3,4\n5,6,seven,8\n".write(to: copy.appendingPathComponent("gemm.csv"), atomically: true, encoding: .utf8)
        let o = try CLITests.run(["profile", "import", copy.path, "--store", dir.appendingPathComponent("p.sqlite").path])
        CLITests.expectCleanFailure(o)
        #expect(o.stderr.contains("broken/gemm.csv:3"))
    }

    @Test func validateReportsKernelErrors() throws {
        let o = try CLITests.run(["validate", Self.h100, "--json"])
        #expect(o.status == 0, "\(o.stderr)")
        let doc = try #require(try JSONSerialization.jsonObject(with: o.stdoutData) as? [String: Any])
        let kernels = try #require(doc["kernels"] as? [[String: Any]])
        #expect(Set(kernels.compactMap { $0["table"] as? String }) == ["gemm", "decode attention", "prefill attention", "link"])
    }

    @Test func simulateWithAProfileSaysSo() throws {
        let o = try CLITests.run(["simulate", CLITests.example("hybrid.json"), "--profile", Self.h100])
        #expect(o.status == 0, "\(o.stderr)")
        #expect(o.stdout.contains("cost model: measured profile reference-h100"))
    }
}
