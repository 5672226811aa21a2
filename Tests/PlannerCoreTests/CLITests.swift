import Foundation
import Testing

/// End-to-end checks of the `planner` executable: it is run as a subprocess on example and broken
/// scenarios, and its exit status, standard output and standard error are inspected.
@Suite("CLI", .timeLimit(.minutes(2)))
struct CLITests {
    // MARK: Locating the executable

    /// The package root: this file is `<root>/Tests/PlannerCoreTests/CLITests.swift`.
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Places the executable may be, best first: beside the running test bundle (the same build as
    /// the tests, whatever `--scratch-path` was), then the usual build folders of the package.
    static var candidates: [URL] {
        var dirs: [URL] = []
        let bundle = Bundle.main.bundleURL
        dirs.append(bundle)
        dirs.append(bundle.deletingLastPathComponent())
        if let exe = Bundle.main.executableURL {
            dirs.append(exe.deletingLastPathComponent())
            dirs.append(exe.deletingLastPathComponent().deletingLastPathComponent())
        }
        for arg in CommandLine.arguments.prefix(1) + ProcessInfo.processInfo.arguments.filter({ $0.contains(".xctest") }) {
            // Walk up from the test binary (on macOS it lies inside `X.xctest/Contents/MacOS/`) to
            // the folder that holds the `.xctest`.
            var url = URL(fileURLWithPath: arg).resolvingSymlinksInPath()
            for _ in 0 ..< 5 {
                url = url.deletingLastPathComponent()
                dirs.append(url)
                if url.lastPathComponent.isEmpty || url.path == "/" { break }
            }
        }
        for scratch in [".build-tests", ".build"] {
            let base = packageRoot.appendingPathComponent(scratch)
            dirs.append(base.appendingPathComponent("debug"))
            let triples = (try? FileManager.default.contentsOfDirectory(atPath: base.path)) ?? []
            for triple in triples.sorted() {
                dirs.append(base.appendingPathComponent(triple).appendingPathComponent("debug"))
            }
        }
        var seen = Set<String>()
        return dirs.map { $0.appendingPathComponent("planner") }.filter { seen.insert($0.standardizedFileURL.path).inserted }
    }

    /// The first candidate that is an executable file (not a folder such as `planner.build`).
    static let executable: URL? = candidates.first { url in
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) && !isDir.boolValue
            && FileManager.default.isExecutableFile(atPath: url.path)
    }

    static func plannerExecutable() throws -> URL {
        try #require(executable, """
            the planner executable was not found; build it first (swift build --scratch-path .build-tests). \
            Looked in: \(candidates.map(\.path).joined(separator: ", "))
            """)
    }

    // MARK: Running it

    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
        var stdoutData: Data
    }

    /// Collects one pipe's bytes on another thread, so that a full stderr pipe cannot block the child
    /// while stdout is being read.
    final class Collector: @unchecked Sendable {
        private let lock = NSLock()
        private var bytes = Data()
        private let done = DispatchSemaphore(value: 0)

        init(_ handle: FileHandle) {
            DispatchQueue.global().async {
                let d = handle.readDataToEndOfFile()
                self.lock.lock(); self.bytes = d; self.lock.unlock()
                self.done.signal()
            }
        }

        func wait() -> Data {
            done.wait()
            lock.lock(); defer { lock.unlock() }
            return bytes
        }
    }

    static func run(_ arguments: [String]) throws -> Output {
        let process = Process()
        process.executableURL = try plannerExecutable()
        process.arguments = arguments
        process.currentDirectoryURL = packageRoot
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let outCollector = Collector(out.fileHandleForReading)
        let errCollector = Collector(err.fileHandleForReading)
        let outData = outCollector.wait()
        let errData = errCollector.wait()
        process.waitUntilExit()
        return Output(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self), stdoutData: outData)
    }

    static func example(_ name: String) -> String {
        packageRoot.appendingPathComponent("examples").appendingPathComponent(name).path
    }

    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("planner-cli-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Checks that a failed run ended in an orderly way: a non-zero status, a one-line style
    /// `error:` message, and no sign of a trap.
    static func expectCleanFailure(_ o: Output, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(o.status != 0, "exit status", sourceLocation: sourceLocation)
        #expect(o.stderr.hasPrefix("error:"), "stderr: \(o.stderr)", sourceLocation: sourceLocation)
        for sign in ["Backtrace", "Fatal error", "crashed", "Illegal instruction", "Segmentation fault"] {
            #expect(!o.stderr.contains(sign), "stderr shows a crash: \(o.stderr)", sourceLocation: sourceLocation)
        }
        #expect(o.stdout.isEmpty, "nothing on stdout after an error: \(o.stdout)", sourceLocation: sourceLocation)
    }

    // MARK: Valid scenarios

    @Test func exampleHybridPrintsATable() throws {
        let o = try Self.run(["simulate", Self.example("hybrid.json")])
        #expect(o.status == 0, "stderr: \(o.stderr)")
        #expect(o.stdout.contains("step time"))
        #expect(o.stdout.contains("opt-13b"))
        #expect(o.stdout.contains("throughput"))
        #expect(o.stderr.isEmpty, "stderr: \(o.stderr)")
    }

    @Test func exampleHybridAsJSON() throws {
        let o = try Self.run(["simulate", Self.example("hybrid.json"), "--json"])
        #expect(o.status == 0, "stderr: \(o.stderr)")
        let doc = try #require(try JSONSerialization.jsonObject(with: o.stdoutData) as? [String: Any])
        let step = try #require(doc["stepSeconds"] as? Double, "stepSeconds missing or not a number")
        #expect(step > 0)
        #expect(step.isFinite)
        let bytes = try #require(doc["bytes"] as? [String: Any])
        #expect(!bytes.isEmpty)
        let busy = try #require(doc["busy"] as? [String: Any])
        #expect(!busy.isEmpty)
        let timeline = try #require(doc["timeline"] as? [Any])
        #expect(!timeline.isEmpty)
    }

    @Test func traceFileHoldsEventsOnEveryTrack() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let trace = dir.appendingPathComponent("run.trace.json")
        // recompute.json streams host KV in and writes the new token's KV back, so all three
        // resources (compute, H2D, D2H) carry tasks; hybrid.json has no D2H traffic.
        let o = try Self.run(["simulate", Self.example("recompute.json"), "--trace", trace.path])
        #expect(o.status == 0, "stderr: \(o.stderr)")
        #expect(o.stdout.contains("step time"))
        let data = try Data(contentsOf: trace)
        let doc = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let events = try #require(doc["traceEvents"] as? [[String: Any]])
        let complete = events.filter { $0["ph"] as? String == "X" }
        #expect(!complete.isEmpty)
        let tids = Set(complete.compactMap { ($0["tid"] as? NSNumber)?.intValue })
        #expect(tids == [0, 1, 2], "tids with complete events: \(tids.sorted())")
        for e in complete.prefix(50) {
            #expect((e["ts"] as? NSNumber) != nil)
            #expect(((e["dur"] as? NSNumber)?.doubleValue ?? -1) >= 0)
        }
        // Nothing but the trace is left in the folder (written atomically, no stray temporaries).
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["run.trace.json"])
    }

    @Test func traceOfHybridHasComputeAndCopyTracks() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let trace = dir.appendingPathComponent("hybrid.json")
        let o = try Self.run(["simulate", Self.example("hybrid.json"), "--trace", trace.path])
        #expect(o.status == 0, "stderr: \(o.stderr)")
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: trace)) as? [String: Any])
        let events = try #require(doc["traceEvents"] as? [[String: Any]])
        let tids = Set(events.filter { $0["ph"] as? String == "X" }.compactMap { ($0["tid"] as? NSNumber)?.intValue })
        #expect(tids.isSuperset(of: [0, 1]), "tids: \(tids.sorted())")
    }

    // MARK: Bad scenarios

    static func runBad(_ scenario: String) throws -> Output {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("bad.json")
        try Data(scenario.utf8).write(to: file)
        return try run(["simulate", file.path])
    }

    @Test func unknownModelFailsCleanly() throws {
        let o = try Self.runBad("""
            {"model": "opt-14b", "hardware": "rtx4090", "batch": 4,
             "decodeStep": {"context": 128}, "policy": {"name": "all-gpu"}}
            """)
        Self.expectCleanFailure(o)
        #expect(o.stderr.hasPrefix("error: model:"), "stderr: \(o.stderr)")
        #expect(o.stderr.contains("opt-14b"))
        #expect(o.stderr.contains("opt-13b"), "known models listed: \(o.stderr)")
    }

    @Test func malformedJSONFailsCleanly() throws {
        let o = try Self.runBad("{\n  \"model\": \"opt-13b\",\n  \"batch\": 4,,\n}\n")
        Self.expectCleanFailure(o)
        #expect(o.stderr.contains("not valid JSON"), "stderr: \(o.stderr)")
        #expect(o.stderr.contains("bad.json"), "the file is named: \(o.stderr)")
        #expect(o.stderr.contains("line 3"), "stderr: \(o.stderr)")
    }

    @Test func placementNotAddingUpFailsCleanly() throws {
        let o = try Self.runBad("""
            {"model": "opt-13b", "layers": 2, "hardware": "h100-sxm", "batch": 4, "decodeStep": {"context": 2048},
             "weights": "gpu", "placement": {"gpuKV": 1000, "hostKV": 1000}}
            """)
        Self.expectCleanFailure(o)
        #expect(o.stderr.hasPrefix("error: placement:"), "stderr: \(o.stderr)")
        #expect(o.stderr.contains("2000"))
        #expect(o.stderr.contains("2048"))
    }

    @Test func scenarioTooBigForTheGPUFailsCleanly() throws {
        let o = try Self.runBad("""
            {"model": "opt-175b", "hardware": "rtx4090", "batch": 1,
             "decodeStep": {"context": 128}, "policy": {"name": "all-gpu"}}
            """)
        Self.expectCleanFailure(o)
        #expect(o.stderr.contains("GPU memory does not fit"), "stderr: \(o.stderr)")
        #expect(o.stderr.contains("over by"), "stderr: \(o.stderr)")
    }

    @Test func nonexistentScenarioFailsCleanly() throws {
        let missing = FileManager.default.temporaryDirectory
            .appendingPathComponent("planner-no-such-\(UUID().uuidString)/scenario.json").path
        let o = try Self.run(["simulate", missing])
        Self.expectCleanFailure(o)
        #expect(o.stderr.contains("cannot read"), "stderr: \(o.stderr)")
        #expect(o.stderr.contains(missing), "the path is named: \(o.stderr)")
    }

    @Test func unwritableTraceFailsCleanly() throws {
        let missingDir = FileManager.default.temporaryDirectory
            .appendingPathComponent("planner-no-such-\(UUID().uuidString)/out.trace.json").path
        let o = try Self.run(["simulate", Self.example("hybrid.json"), "--trace", missingDir])
        #expect(o.status != 0)
        #expect(o.stderr.hasPrefix("error:"), "stderr: \(o.stderr)")
        #expect(o.stderr.contains("out.trace.json"), "stderr: \(o.stderr)")
        #expect(!o.stderr.contains("Fatal error"))
    }

    @Test func missingArgumentIsAUsageError() throws {
        let o = try Self.run(["simulate"])
        #expect(o.status != 0)
        #expect(o.stderr.contains("Error") || o.stderr.contains("error"), "stderr: \(o.stderr)")
        #expect(o.stderr.contains("scenario"), "usage names the argument: \(o.stderr)")
        #expect(!o.stderr.contains("Fatal error"))
    }
}
