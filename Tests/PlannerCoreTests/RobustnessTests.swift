import Foundation
import GRDB
import Testing
@testable import PlannerCore

/// Inputs that once crashed the planner or left it printing nonsense, each refused in one line
/// naming the file, line or field, or read as it should be.
@Suite("Robustness")
struct RobustnessTests {
    /// Replaces the value in column `column` of data row `row` (1-based, after the header) of `file`.
    static func spoil(_ folder: URL, _ file: String, row: Int, column: Int, with value: String) throws {
        let url = folder.appendingPathComponent(file)
        var lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map(String.init)
        var fields = lines[row].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        fields[column] = value
        lines[row] = fields.joined(separator: ",")
        try (lines.joined(separator: "\n") + "\n").write(to: url, atomically: true, encoding: .utf8)
    }

    static func readError(_ file: String, column: Int, value: String) throws -> InputError {
        let copy = try ProfileTests.temporaryCopy(of: ProfileTests.h100)
        defer { try? FileManager.default.removeItem(at: copy.deletingLastPathComponent()) }
        try spoil(copy, file, row: 1, column: column, with: value)
        return try #require(throws: InputError.self) { try ProfileReader.read(copy) }
    }

    /// A size of 1e19 bytes used to trap converting to Int64 in `validate`; a GEMM of 1e308 s
    /// overflowed the event engine and 5e-324 s printed `inf%`. Measurements are range-checked on
    /// reading: 1 ns to an hour, 1 B to 1 PiB.
    @Test(arguments: [("link.csv", 2, "1e19"), ("gemm.csv", 3, "1e308"), ("gemm.csv", 3, "5e-324"), ("link.csv", 3, "-1"), ("link.csv", 2, "12.5")])
    func measurementsOutOfRange(_ file: String, _ column: Int, _ value: String) throws {
        let e = try Self.readError(file, column: column, value: value)
        #expect(e.field == "reference-h100/\(file):2", "field: \(e.field)")
        #expect(e.message.contains(value), "message: \(e.message)")
    }

    /// The same file with CRLF line endings reads to the same tables.
    @Test func crlfProfileReadsTheSame() throws {
        let copy = try ProfileTests.temporaryCopy(of: ProfileTests.h100)
        defer { try? FileManager.default.removeItem(at: copy.deletingLastPathComponent()) }
        for file in ["gemm.csv", "link.csv", "attention.csv"] {
            let url = copy.appendingPathComponent(file)
            let text = try String(contentsOf: url, encoding: .utf8)
            try text.replacingOccurrences(of: "\n", with: "\r\n").write(to: url, atomically: true, encoding: .utf8)
        }
        let crlf = try ProfileReader.read(copy)
        let lf = try ProfileReader.read(ProfileTests.h100)
        #expect(crlf.gemm == lf.gemm && crlf.link == lf.link && crlf.attention == lf.attention)
    }

    /// A CRLF JSONL trace reads; a malformed line is named once, by file and line.
    @Test func crlfTraceReads() throws {
        let text = "{\"arrivalSeconds\": 0, \"inputTokens\": 5, \"outputTokens\": 3}\r\n{\"arrivalSeconds\": 1, \"inputTokens\": 7, \"outputTokens\": 2}\r\n"
        let requests = try RequestSource.trace(text, source: "t.jsonl")
        #expect(requests.map(\.inputTokens) == [5, 7])
        let bad = try #require(throws: InputError.self) {
            try RequestSource.trace("{\"arrivalSeconds\": 0, \"inputTokens\": 5, \"outputTokens\": 3}\r\n{\"arrivalSeconds\": 1 \"inputTokens\": 7}\r\n", source: "t.jsonl")
        }
        #expect(bad.field == "t.jsonl:2")
        #expect(!bad.message.contains("t.jsonl"), "the file is named once: \(bad.description)")
    }

    /// Error text never carries raw control characters.
    @Test func errorsEscapeControlCharacters() throws {
        let e = InputError(field: "a\u{1B}[31m", "got \"x\r\ny\u{7}\"")
        #expect(!e.description.unicodeScalars.contains { $0.properties.generalCategory == .control })
        #expect(e.description == "a\\u{1B}[31m: got \"x\\r\\ny\\u{7}\"")
    }

    /// `serve` with a seed of Int.max used to trap converting a Double to Int: integers are read as
    /// integers, all 64 bits, and one past the range is refused naming the field and the value.
    @Test func largestSeedIsReadExactly() throws {
        let max = try JSONFields.parse(Data("{\"seed\": 9223372036854775807}".utf8), source: "t")
        #expect(try max.int("seed", in: 0...Int.max) == Int.max)
        let over = try JSONFields.parse(Data("{\"seed\": 9223372036854775808}".utf8), source: "t")
        let e = try #require(throws: InputError.self) { try over.int("seed", in: 0...Int.max) }
        #expect(e.field == "seed" && e.message.contains("9223372036854775808"), "\(e.description)")
        let fraction = try JSONFields.parse(Data("{\"n\": 2.5}".utf8), source: "t")
        #expect(throws: InputError.self) { try fraction.int("n", in: 0...10) }
    }

    /// A store missing a column used to die on `try!` in `profile show`; it is refused when opened,
    /// naming the table and the column.
    @Test func storeOfTheWrongShapeIsRefused() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("store-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("p.sqlite").path
        try ProfileStore(path: path).importProfile(from: ProfileTests.h100)
        try DatabaseQueue(path: path).write { try $0.execute(sql: "ALTER TABLE profile DROP COLUMN cuda") }
        let e = try #require(throws: InputError.self) { _ = try ProfileStore(path: path) }
        #expect(e.field == path)
        #expect(e.message.contains("table profile") && e.message.contains("column cuda"), "\(e.message)")
    }

    /// An output path that is a directory, or in a folder that does not exist, is named by its
    /// option; when one of several outputs cannot be written, none is.
    @Test func outputsAreAllOrNothing() throws {
        let dir = try CLITests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let d = try #require(throws: InputError.self) { try checkWritable(dir.path, field: "--trace") }
        #expect(d.field == "--trace" && d.message.contains("is a directory"))
        let missing = dir.appendingPathComponent("no/such/trace.json").path
        let m = try #require(throws: InputError.self) { try checkWritable(missing, field: "--trace") }
        #expect(m.message.contains("does not exist"))
        let good = dir.appendingPathComponent("out.csv").path
        #expect(throws: InputError.self) {
            try writeAllAtomically([OutputFile(field: "--csv", path: good, data: Data("a\n".utf8)),
                                    OutputFile(field: "--trace", path: missing, data: Data("{}".utf8))])
        }
        #expect(!FileManager.default.fileExists(atPath: good))
        try writeAllAtomically([OutputFile(field: "--csv", path: good, data: Data("a\n".utf8))])
        #expect(try String(contentsOfFile: good, encoding: .utf8) == "a\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["out.csv"], "no temporaries left")
    }

    /// On the command line: a failing `serve` with several outputs writes none, in one line.
    @Test func serveWithAnUnwritableOutputWritesNone() throws {
        let dir = try CLITests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let csv = dir.appendingPathComponent("s.csv").path
        let o = try CLITests.run(["serve", CLITests.example("serving/kv-overflow-recompute.json"), "--csv", csv,
                                  "--trace", dir.appendingPathComponent("none/t.json").path])
        #expect(o.status == 1)
        #expect(o.stderr.hasPrefix("error: --trace: cannot write") && o.stderr.contains("does not exist") && o.stderr.split(separator: "\n").count == 1, "\(o.stderr)")
        #expect(!FileManager.default.fileExists(atPath: csv))
    }
}

/// The command line's one convention: one `error:` line; 1 for refused input, 64 for a command
/// line that cannot be parsed.
@Suite("Command-line conventions")
struct CommandLineConventionTests {
    @Test func usageErrorsAreOneLineWithStatus64() throws {
        for args in [["simulate"], ["sweep", "--prompt", "x"], ["profile", "show", "--bogus"]] {
            let o = try CLITests.run(args)
            #expect(o.status == 64, "\(args): \(o.status)")
            #expect(o.stderr.hasPrefix("error: ") && o.stderr.split(separator: "\n").count == 1, "\(args): \(o.stderr)")
            #expect(o.stderr.contains("planner \(args[0])"), "names the command's help: \(o.stderr)")
        }
    }

    /// A negative number reaches the range check instead of being read as a missing value.
    @Test func negativeNumbersAreRangeChecked() throws {
        let o = try CLITests.run(["sweep", "--prompt", "-5"])
        #expect(o.status == 1)
        #expect(o.stderr == "error: --prompt: must be from 1 to 16777216 tokens, got -5\n", "\(o.stderr)")
    }

    @Test func duplicateKeyIsRefusedWithItsLine() throws {
        let text = "{\"model\": \"opt-13b\",\n \"layers\": 2, \"batch\": 4,\n \"layers\": 3, \"hardware\": \"h100\", \"decodeStep\": {\"context\": 128}, \"policy\": {\"name\": \"all-gpu\"}}"
        let e = try #require(throws: InputError.self) { _ = try Scenario.parse(Data(text.utf8), source: "s.json") }
        #expect(e.field == "s.json:3" && e.message.contains("\"layers\" appears twice"), "\(e.description)")
        // The same key in two different objects is fine.
        let nested = try JSONFields.parse(Data("{\"a\": {\"x\": 1}, \"b\": {\"x\": 2}, \"c\": [{\"x\": 1}, {\"x\": 2}]}".utf8), source: "t")
        #expect(nested.object.count == 3)
    }

    @Test func repeatedRatiosAreRemovedLikeBatches() throws {
        #expect(try SweepConfig.ratios("0.5,0.2,0.5", field: "--ratios") == [0.2, 0.5])
        #expect(try SweepConfig.batches("16,8,16", field: "--batches") == [8, 16])
    }
}

/// Advice that holds: the recommendation covers every policy, `--weights` is honoured, an all-GPU
/// plan says so, and the largest batch that fits is exact over the whole space searched.
@Suite("Advice that holds")
struct AdviceThatHoldsTests {
    /// OPT-6.7B on an H100, hybrid only, batch 4000: nothing fits; the advice's largest batch fits
    /// with its configuration, and no (weights, recomputation, ratio) point of `plan`'s space fits at
    /// one more.
    @Test func largestBatchThatFitsIsExact() throws {
        let o = try CLITests.run(["plan", "--model", "opt-6.7b", "--hardware", "h100-sxm", "--batches", "4000", "--policy", "hybrid"])
        #expect(o.status == 1)
        let m = try #require(o.stderr.range(of: #"at most (\d+) fits"#, options: .regularExpression))
        let k = Int(o.stderr[m].split(separator: " ")[2])!
        let setup = Setup(model: try ModelCatalog.model(named: "opt-6.7b"), hardware: try HardwareCatalog.device(named: "h100-sxm"),
                          workload: Workload(prompt: 512, tokens: 32))
        let space = SearchSpace.planDefault
        var fitsAtK = false
        for w in space.weightsGPUFractions {
            for rho in space.recomputeFractions {
                for r in space.ratios {
                    let c = { (b: Int) in Candidate(.hybrid(kvFraction: r, recomputeFraction: rho), batch: b, weightsGPUFraction: w) }
                    if Evaluator.fits(c(k), setup) { fitsAtK = true }
                    #expect(!Evaluator.fits(c(k + 1), setup), "w \(w) rho \(rho) r \(r) fits at \(k + 1)")
                }
            }
        }
        #expect(fitsAtK)
    }

    /// `--weights gpu` keeps DeepSpeed (which streams the weights) out of the search, and the
    /// recommendation names the fastest policy even when it is not the hybrid one.
    @Test func weightsGPUIsHonouredAndTheBestCoversEveryPolicy() throws {
        let o = try CLITests.run(["sweep", "--model", "opt-6.7b", "--weights", "gpu", "--ratios", "0:1:0.5", "--batches", "32,128"])
        #expect(o.status == 0, "\(o.stderr)")
        #expect(o.stdout.contains("no DeepSpeed ZeRO-Inference configuration: not searched: the weights are fixed to gpu"), "\(o.stdout)")
        // Everything fits on the 4090 for OPT-6.7B: the all-GPU plan beats any cache split.
        #expect(o.stdout.contains("best of every policy: all-GPU, batch"), "\(o.stdout)")
        let p = try CLITests.run(["plan", "--json", "--model", "opt-6.7b", "--weights", "gpu", "--batches", "8,32"])
        #expect(p.status == 0, "\(p.stderr)")
        let doc = try #require(try JSONSerialization.jsonObject(with: p.stdoutData) as? [String: Any])
        #expect((doc["planner"] as? [String: Any])?["policy"] as? String == "all-gpu")
        #expect(doc["weights"] as? String == "gpu")
    }
}

@Suite("Catalog output")
struct CatalogOutputTests {
    /// `planner catalog` prints each device number beside its source; a device file may leave out
    /// `sources`.
    @Test func catalogPrintsValuesAndSourcesAreOptional() throws {
        let o = try CLITests.run(["catalog"])
        #expect(o.status == 0)
        let t4 = try HardwareCatalog.device(named: "t4")
        #expect(o.stdout.contains("    gpu.memoryBandwidthBytesPerSecond = \(String(format: "%g", t4.gpu.memoryBandwidthBytesPerSecond))\n      source: "), "\(o.stdout.prefix(2000))")
        var object = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(t4)) as? [String: Any])
        object["sources"] = nil
        let hw = try HardwareCatalog.decode(try JSONSerialization.data(withJSONObject: object), field: "my-device.json")
        #expect(hw.gpu == t4.gpu)
        #expect(hw.sources["device"]?.hasPrefix("user-supplied") == true)
    }
}

@Suite("Batch grid edge")
struct BatchGridEdgeTests {
    /// Llama-3.1-70B on an H100 with 512 GiB of host memory: the best of the default grid sits at its
    /// largest batch, 192; `plan` tries 288, 432, ... while throughput rises, and picks a larger
    /// batch that is faster than anything in the grid; the sweep says so in a note.
    @Test func planGrowsPastTheGridWhileThroughputRises() throws {
        var setup = Setup(model: try ModelCatalog.model(named: "llama-3.1-70b"), hardware: try HardwareCatalog.device(named: "h100-sxm"),
                          workload: Workload(prompt: 512, tokens: 32))
        setup.hardware.host.memoryBytes = 512 * HardwareCatalog.GiB
        let sweep = Sweep(setup: setup, space: .planDefault)
        let r = PlanSearch.run(sweep)
        let inGrid = try #require(RatioSearch.bestOf(r.tried.filter { $0.candidate.batch <= 192 }))
        let best = try #require(r.best)
        #expect(inGrid.candidate.batch == 192)
        #expect(r.grownBatches.first == 288)
        #expect(best.candidate.batch > 192 && best.tokensPerSecond > inGrid.tokensPerSecond, "\(best.candidate.batch): \(best.tokensPerSecond) against \(inGrid.tokensPerSecond)")
        // The grown choice is one that fits, and the next step past it was tried and lost or did not fit.
        #expect(best.feasible)
        #expect(r.grownBatches.last! > best.candidate.batch)
        let text = SweepReport.text(Sweep(setup: setup, space: SearchSpace(ratios: [0, 1], batches: [96, 192])).run())
        #expect(text.contains("note: the best batch, 192, is the grid's largest; batch "), "\(text)")
    }
}

@Suite("Plan summary")
struct PlanSummaryTests {
    /// `planner plan` prints a summary a person can act on, `--out` writes the scenario beside it
    /// and that scenario simulates to the summary's throughput; OPT-6.7B streamed by DeepSpeed on the
    /// GCP T4 gets the command line of every engine that can run it, flag names as their parsers
    /// spell them.
    @Test func summaryWithCommandLines() throws {
        let dir = try CLITests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("plan.json").path
        let o = try CLITests.run(["plan", "--model", "opt-6.7b", "--hardware", "gcp-t4", "--policy", "deepspeed", "--batches", "16,48", "--out", file])
        #expect(o.status == 0, "\(o.stderr)")
        for line in ["run:      DeepSpeed, batch 48", "expected: ", "binds:    the host-to-GPU link",
                     "engines that can run it: ideal (HybridServe's schedule), flexgen, deepspeed-zero-inference, hf-accelerate",
                     "  FlexGen: python -m flexllmgen.flex_opt --model facebook/opt-6.7b --prompt-len 512 --gen-len 32 --percent 0 100 100 0 100 0 --gpu-batch-size 48 --num-gpu-batches 1",
                     "  DeepSpeed ZeRO-Inference: deepspeed --num_gpus 1 run_model.py --model facebook/opt-6.7b --batch-size 48 --prompt-len 512 --gen-len 32 --cpu-offload --pin-memory 1",
                     "  HF Accelerate: AutoModelForCausalLM.from_pretrained(\"facebook/opt-6.7b\""] {
            #expect(o.stdout.contains(line), "missing \(line) in \(o.stdout)")
        }
        let m = try #require(o.stdout.range(of: #"expected: ([\d.]+) tokens/s"#, options: .regularExpression))
        let shown = Double(o.stdout[m].dropFirst("expected: ".count).split(separator: " ")[0])!
        let sim = try CLITests.run(["simulate", file, "--json"])
        let r = try #require(try JSONSerialization.jsonObject(with: sim.stdoutData) as? [String: Any])
        #expect(abs((r["tokensPerSecond"] as? Double ?? 0) - shown) < 0.006)
    }
}

@Suite("Plan for one engine")
struct PlanForOneEngineTests {
    /// `plan --engine E` chooses only what E can run: ACT checkpoints (the default's choice) are
    /// HybridServe's alone, so DeepSpeed and Accelerate get a plan without them.
    @Test(arguments: ["deepspeed-zero-inference", "hf-accelerate", "flexgen"])
    func choiceIsRunnableByTheEngine(_ engine: String) throws {
        let o = try CLITests.run(["plan", "--json", "--engine", engine, "--ratios", "0:1:0.5", "--batches", "8,16"])
        #expect(o.status == 0, "\(o.stderr)")
        let doc = try #require(try JSONSerialization.jsonObject(with: o.stdoutData) as? [String: Any])
        let engines = try #require((doc["planner"] as? [String: Any])?["engines"] as? [String])
        #expect(engines.contains(engine), "\(engines)")
        let bad = try CLITests.run(["plan", "--engine", "vllm"])
        #expect(bad.status == 1 && bad.stderr.hasPrefix("error: --engine: must be one of"))
    }
}
