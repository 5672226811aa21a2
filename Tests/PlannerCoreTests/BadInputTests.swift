import Foundation
import Testing
@testable import PlannerCore

/// Bad scenarios must be rejected with an `InputError` that names the offending field and says what
/// is allowed; a scenario that is well formed but too big must parse and then fail with a
/// `CapacityError` from the simulator.
@Suite("Bad input")
struct BadInputTests {
    // MARK: Helpers

    /// A valid scenario (a two-layer OPT-13B on an H100, everything on the GPU) that each test spoils
    /// in one place.
    static func base() -> [String: Any] {
        [
            "model": "opt-13b",
            "layers": 2,
            "hardware": "h100-sxm",
            "batch": 4,
            "decodeStep": ["context": 128],
            "policy": ["name": "all-gpu"],
        ]
    }

    /// The base scenario with keys replaced (or removed, for `NSNull()`), as JSON text.
    static func scenario(_ changes: [String: Any] = [:], removing: [String] = []) -> String {
        var o = base()
        for (k, v) in changes {
            if v is NSNull { o[k] = nil } else { o[k] = v }
        }
        for k in removing { o[k] = nil }
        let data = try! JSONSerialization.data(withJSONObject: o, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }

    /// A scenario with an explicit placement instead of a policy.
    static func placed(_ placement: [String: Any], weights: Any? = "gpu", context: Int = 128) -> String {
        var changes: [String: Any] = ["placement": placement, "decodeStep": ["context": context]]
        if let weights { changes["weights"] = weights }
        return scenario(changes, removing: ["policy"])
    }

    static func parse(_ json: String, baseDirectory: URL? = nil) throws -> ExecutionPlan {
        try Scenario.parse(Data(json.utf8), source: "test", baseDirectory: baseDirectory)
    }

    /// Parses `json`, requires an `InputError`, and returns it.
    static func inputError(_ json: String, baseDirectory: URL? = nil,
                           sourceLocation: SourceLocation = #_sourceLocation) throws -> InputError {
        try #require(throws: InputError.self, sourceLocation: sourceLocation) {
            _ = try parse(json, baseDirectory: baseDirectory)
        }
    }

    /// A fresh temporary directory, removed by the caller.
    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("planner-badinput-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func write(_ object: [String: Any], to url: URL) throws {
        try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]).write(to: url)
    }

    // MARK: The base is valid

    @Test func baseScenarioParses() throws {
        let plan = try Self.parse(Self.scenario())
        #expect(plan.batch == 4)
        #expect(plan.model.layers == 2)
        #expect(plan.placement.total == 128)
        let placedPlan = try Self.parse(Self.placed(["gpuKV": 64, "hostKV": 64]))
        #expect(placedPlan.placement.total == 128)
    }

    // MARK: Document shape

    @Test func malformedJSONReportsPosition() throws {
        let text = "{\n  \"model\": \"opt-13b\",\n  \"batch\": 4,,\n  \"hardware\": \"h100-sxm\"\n}"
        let e = try Self.inputError(text)
        #expect(e.field == "")
        #expect(e.message.contains("not valid JSON"))
        #expect(e.message.contains("test"))
        // The parser gives a position for a stray comma; it must come out as a line and column
        // (the comma sits on line 3).
        #expect(e.message.contains("line 3"), "message: \(e.message)")
        #expect(e.message.contains("column"), "message: \(e.message)")
        #expect(!e.message.contains("character "), "raw character offset left in: \(e.message)")
    }

    @Test func truncatedJSONIsRejected() throws {
        let e = try Self.inputError("{\"model\": \"opt-13b\", \"batch\": ")
        #expect(e.field == "")
        #expect(e.message.contains("not valid JSON"))
    }

    @Test func topLevelMustBeAnObject() throws {
        let e = try Self.inputError("[{\"model\": \"opt-13b\"}]")
        #expect(e.field == "")
        #expect(e.message.contains("JSON object"), "message: \(e.message)")
        #expect(e.message.contains("top level"), "message: \(e.message)")
        // Bare scalars are refused by the parser itself (fragments are not allowed); the message must
        // still say that an object is wanted.
        for text in ["\"opt-13b\"", "42"] {
            let e = try Self.inputError(text)
            #expect(e.field == "")
            #expect(e.message.contains("object"), "message: \(e.message)")
        }
    }

    @Test func misspeltTopLevelKeyIsRejected() throws {
        var o = Self.base()
        o["bach"] = o.removeValue(forKey: "batch")
        let text = String(decoding: try JSONSerialization.data(withJSONObject: o), as: UTF8.self)
        let e = try Self.inputError(text)
        #expect(e.field == "bach")
        #expect(e.message.contains("unknown key"))
        #expect(e.message.contains("batch"), "message should list the allowed keys: \(e.message)")
    }

    // MARK: Model and hardware

    @Test func unknownModelListsKnownModels() throws {
        let e = try Self.inputError(Self.scenario(["model": "opt-14b"]))
        #expect(e.field == "model")
        #expect(e.message.contains("opt-14b"))
        for name in ModelCatalog.names {
            #expect(e.message.contains(name), "message should list \(name): \(e.message)")
        }
    }

    @Test func modelOfWrongTypeIsRejected() throws {
        let e = try Self.inputError(Self.scenario(["model": 13]))
        #expect(e.field == "model")
        #expect(e.message.contains("opt-13b"))
    }

    @Test func unknownDeviceListsKnownDevices() throws {
        let e = try Self.inputError(Self.scenario(["hardware": "rtx5090"]))
        #expect(e.field == "hardware")
        #expect(e.message.contains("rtx5090"))
        for name in HardwareCatalog.names {
            #expect(e.message.contains(name), "message should list \(name): \(e.message)")
        }
    }

    @Test func inlineModelWhoseKVHeadsDoNotDivideHeads() throws {
        let model: [String: Any] = ["name": "odd", "layers": 2, "hidden": 4096, "heads": 32, "kvHeads": 5,
                                    "ffnSize": 11008, "vocab": 32000]
        let e = try Self.inputError(Self.scenario(["model": model]))
        #expect(e.field == "model.kvHeads")
        #expect(e.message.contains("divide"))
        #expect(e.message.contains("32"))
        #expect(e.message.contains("5"))
    }

    @Test func inlineModelThatIsValidParses() throws {
        let model: [String: Any] = ["name": "small-gqa", "layers": 2, "hidden": 4096, "heads": 32, "kvHeads": 8,
                                    "ffnSize": 11008, "vocab": 32000]
        let plan = try Self.parse(Self.scenario(["model": model]))
        #expect(plan.model.name == "small-gqa")
        #expect(plan.model.kvHeads == 8)
        #expect(plan.model.headDim == 128)
        #expect(plan.model.ffnKind == .gated3)
    }

    @Test func inlineHardwareMissingGPUMemory() throws {
        let encoded = try JSONEncoder().encode(HardwareCatalog.rtx4090)
        let intact = try #require(try JSONSerialization.jsonObject(with: encoded) as? [String: Any])
        // The unmodified object is accepted, so the error below is about the removed key alone.
        _ = try Self.parse(Self.scenario(["hardware": intact]))

        var hw = intact
        var gpu = try #require(hw["gpu"] as? [String: Any])
        #expect(gpu["memoryBytes"] != nil)
        gpu["memoryBytes"] = nil
        hw["gpu"] = gpu
        let e = try Self.inputError(Self.scenario(["hardware": hw]))
        #expect(e.field.contains("memoryBytes"), "field: \(e.field)")
        #expect(e.field.hasPrefix("hardware"), "field: \(e.field)")
        #expect(e.field == "hardware.gpu.memoryBytes")
        #expect(e.message.contains("missing"))
    }

    @Test func modelPathThatDoesNotExist() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let missing = dir.appendingPathComponent("no-such-model/config.json").path
        let e = try Self.inputError(Self.scenario(["model": missing]))
        #expect(e.field == "model")
        #expect(e.message.contains("cannot read"))
        #expect(e.message.contains("config.json"))
    }

    @Test func relativeModelPathThatDoesNotExist() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let e = try Self.inputError(Self.scenario(["model": "models/missing/config.json"]), baseDirectory: dir)
        #expect(e.field == "model")
        #expect(e.message.contains("cannot read"))
        #expect(e.message.contains(dir.lastPathComponent), "path should be resolved against the scenario's folder: \(e.message)")
    }

    // MARK: Hugging Face config.json

    @Test func huggingFaceOPTConfig() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let modelDir = dir.appendingPathComponent("tiny-opt", isDirectory: true)
        try FileManager.default.createDirectory(at: modelDir, withIntermediateDirectories: true)
        let config: [String: Any] = [
            "model_type": "opt", "architectures": ["OPTForCausalLM"], "num_hidden_layers": 6, "hidden_size": 768,
            "num_attention_heads": 12, "ffn_dim": 3072, "vocab_size": 50272, "max_position_embeddings": 2048,
            "torch_dtype": "float16", "word_embed_proj_dim": 768, "activation_function": "relu",
            "enable_bias": true, "do_layer_norm_before": true,
        ]
        let file = modelDir.appendingPathComponent("config.json")
        try Self.write(config, to: file)

        // By file path, and by folder path.
        for value in [file.path, modelDir.path] {
            let plan = try Self.parse(Self.scenario(["model": value], removing: ["layers"]))
            let m = plan.model
            #expect(m.layers == 6)
            #expect(m.hidden == 768)
            #expect(m.heads == 12)
            #expect(m.kvHeads == 12)
            #expect(m.headDim == 64)
            #expect(m.ffnSize == 3072)
            #expect(m.ffnKind == .relu2)
            #expect(m.vocab == 50272)
            #expect(m.dtype == .fp16)
            #expect(m.maxContext == 2048)
            #expect(m.name == "tiny-opt")
        }

        // A relative path resolves against the scenario's folder.
        let relative = try Self.parse(Self.scenario(["model": "tiny-opt/config.json"], removing: ["layers"]),
                                      baseDirectory: dir)
        #expect(relative.model.hidden == 768)
    }

    @Test func huggingFaceLlamaConfigWithGroupedQuery() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let config: [String: Any] = [
            "model_type": "llama", "architectures": ["LlamaForCausalLM"], "num_hidden_layers": 4, "hidden_size": 2048,
            "num_attention_heads": 16, "num_key_value_heads": 4, "intermediate_size": 5632, "vocab_size": 32000,
            "max_position_embeddings": 4096, "torch_dtype": "bfloat16", "rms_norm_eps": 1e-5,
            "tie_word_embeddings": false,
        ]
        let file = dir.appendingPathComponent("config.json")
        try Self.write(config, to: file)
        let plan = try Self.parse(Self.scenario(["model": file.path], removing: ["layers"]))
        let m = plan.model
        #expect(m.layers == 4)
        #expect(m.hidden == 2048)
        #expect(m.heads == 16)
        #expect(m.kvHeads == 4)
        #expect(m.headDim == 128)
        #expect(m.ffnSize == 5632)
        #expect(m.ffnKind == .gated3)
        #expect(m.dtype == .bf16)
        #expect(m.maxContext == 4096)
        #expect(m.isGroupedQuery)
    }

    @Test func huggingFaceConfigOfUnsupportedType() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let config: [String: Any] = [
            "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "num_hidden_layers": 12, "hidden_size": 768,
            "num_attention_heads": 12, "vocab_size": 50257, "n_positions": 1024,
        ]
        let file = dir.appendingPathComponent("config.json")
        try Self.write(config, to: file)
        let e = try Self.inputError(Self.scenario(["model": file.path]))
        #expect(e.field.contains("model_type"), "field: \(e.field)")
        #expect(e.message.contains("gpt2"))
        #expect(e.message.contains("opt"))
        #expect(e.message.contains("llama"))
    }

    @Test func huggingFaceConfigThatIsNotJSON() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("config.json")
        try Data("{\"model_type\": \"opt\",".utf8).write(to: file)
        let e = try Self.inputError(Self.scenario(["model": file.path]))
        #expect(e.message.contains("not valid JSON"))
        #expect(e.message.contains("config.json"))
    }

    @Test
    func huggingFaceConfigWithHiddenNotAMultipleOfHeads() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let config: [String: Any] = [
            "model_type": "opt", "num_hidden_layers": 2, "hidden_size": 1000, "num_attention_heads": 3,
            "ffn_dim": 4000, "vocab_size": 50272, "max_position_embeddings": 2048, "torch_dtype": "float16",
        ]
        let file = dir.appendingPathComponent("config.json")
        try Self.write(config, to: file)
        let e = try Self.inputError(Self.scenario(["model": file.path], removing: ["layers"]))
        #expect(e.field.contains("hidden_size") || e.field.contains("num_attention_heads"), "field: \(e.field)")
    }

    @Test
    func huggingFaceConfigWithKVHeadsNotDividingHeads() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let config: [String: Any] = [
            "model_type": "llama", "num_hidden_layers": 2, "hidden_size": 2048, "num_attention_heads": 16,
            "num_key_value_heads": 5, "intermediate_size": 5632, "vocab_size": 32000,
            "max_position_embeddings": 4096, "torch_dtype": "float16",
        ]
        let file = dir.appendingPathComponent("config.json")
        try Self.write(config, to: file)
        let e = try Self.inputError(Self.scenario(["model": file.path], removing: ["layers"]))
        #expect(e.message.contains("16"))
        #expect(e.field.contains("num_key_value_heads"), "field should name the config.json key: \(e.field)")
    }

    @Test
    func inlineHardwareWithUnknownKey() throws {
        let encoded = try JSONEncoder().encode(HardwareCatalog.rtx4090)
        var hw = try #require(try JSONSerialization.jsonObject(with: encoded) as? [String: Any])
        hw["hostMemoryGiB"] = 512
        let e = try Self.inputError(Self.scenario(["hardware": hw]))
        #expect(e.field == "hardware.hostMemoryGiB")
    }

    @Test func dtypeAdviceOfTheCostModelIsUsable() throws {
        let text = Self.scenario(["model": "llama-3.1-8b", "hardware": "t4"])
        let plan = try Self.parse(text)
        let e = try #require(throws: InputError.self) {
            _ = try AnalyticCostModel(hardware: plan.hardware, dtype: plan.model.dtype)
        }
        #expect(e.field == "hardware.gpu.achievedMatmulFlops")
        #expect(e.message.contains("bf16"))
        #expect(e.message.contains("fp16"))
        // The message tells the user to set the scenario's "dtype"; the scenario must accept it.
        let fixed = try Self.parse(Self.scenario(["model": "llama-3.1-8b", "hardware": "t4", "dtype": "fp16"]))
        #expect(fixed.model.dtype == .fp16)
    }

    @Test func unknownDType() throws {
        let e = try Self.inputError(Self.scenario(["dtype": "int8"]))
        #expect(e.field == "dtype")
        #expect(e.message.contains("int8"))
        #expect(e.message.contains("fp16"))
    }

    @Test func recomputeFractionAboveOne() throws {
        let e = try Self.inputError(Self.scenario(["policy": ["name": "recompute", "fraction": 1.2]]))
        #expect(e.field == "policy.fraction")
        #expect(e.message.contains("from 0 to 1"))
    }

    @Test func actOnlyGPUTokensBeyondTheContext() throws {
        let e = try Self.inputError(Self.scenario(["policy": ["name": "act-only", "gpuActTokens": 500]]))
        #expect(e.field == "policy.gpuActTokens")
        #expect(e.message.contains("128"))
        #expect(e.message.contains("500"))
    }

    @Test func placementThatIsNotAnObject() throws {
        let text = Self.scenario(["placement": [128], "weights": "gpu"], removing: ["policy"])
        let e = try Self.inputError(text)
        #expect(e.field == "placement")
        #expect(e.message.contains("object"))
    }

    @Test func layersOverrideOutOfRange() throws {
        let e = try Self.inputError(Self.scenario(["layers": 0]))
        #expect(e.field == "layers")
        #expect(e.message.contains("from 1 to 1024"))
    }

    // MARK: Batch and phase

    @Test(arguments: [0, -3])
    func nonPositiveBatch(_ batch: Int) throws {
        let e = try Self.inputError(Self.scenario(["batch": batch]))
        #expect(e.field == "batch")
        #expect(e.message.contains("from 1 to"), "message: \(e.message)")
        #expect(e.message.contains("got \(batch)"), "message: \(e.message)")
    }

    @Test func fractionalBatch() throws {
        let e = try Self.inputError(Self.scenario(["batch": 2.5]))
        #expect(e.field == "batch")
        #expect(e.message.contains("integer"))
    }

    @Test func batchAsString() throws {
        let e = try Self.inputError(Self.scenario(["batch": "4"]))
        #expect(e.field == "batch")
        #expect(e.message.contains("integer"))
        #expect(e.message.contains("string"))
    }

    @Test func missingBatch() throws {
        let e = try Self.inputError(Self.scenario(removing: ["batch"]))
        #expect(e.field == "batch")
        #expect(e.message.contains("missing"))
    }

    @Test func missingPhase() throws {
        let e = try Self.inputError(Self.scenario(removing: ["decodeStep"]))
        #expect(e.field == "decodeStep")
        #expect(e.message.contains("missing"))
        #expect(e.message.contains("generate"), "message should offer generate: \(e.message)")
    }

    @Test func bothPhases() throws {
        let e = try Self.inputError(Self.scenario(["generate": ["prompt": 64, "tokens": 8]]))
        #expect(e.field == "decodeStep")
        #expect(e.message.contains("not both"))
        #expect(e.message.contains("generate"))
    }

    @Test func zeroContext() throws {
        let e = try Self.inputError(Self.scenario(["decodeStep": ["context": 0]]))
        #expect(e.field == "decodeStep.context")
        #expect(e.message.contains("from 1 to"), "message: \(e.message)")
    }

    @Test func contextBeyondModelMaximum() throws {
        let e = try Self.inputError(Self.scenario(["decodeStep": ["context": 4096]]))
        #expect(e.field == "decodeStep.context")
        #expect(e.message.contains("2048"), "message: \(e.message)")
    }

    @Test func zeroGenerateTokens() throws {
        let e = try Self.inputError(Self.scenario(["generate": ["prompt": 64, "tokens": 0]], removing: ["decodeStep"]))
        #expect(e.field == "generate.tokens")
        #expect(e.message.contains("from 1 to"), "message: \(e.message)")
    }

    @Test func unknownKeyInsidePhase() throws {
        let e = try Self.inputError(Self.scenario(["decodeStep": ["context": 128, "contxt": 64]]))
        #expect(e.field == "decodeStep.contxt")
        #expect(e.message.contains("context"))
    }

    // MARK: Explicit placement and weights

    @Test func placementThatDoesNotAddUpToTheContext() throws {
        let e = try Self.inputError(Self.placed(["gpuKV": 64, "hostKV": 32], context: 128))
        #expect(e.field == "placement")
        #expect(e.message.contains("96"), "message should give the sum: \(e.message)")
        #expect(e.message.contains("128"), "message should give the context: \(e.message)")
    }

    @Test func placementThatDoesNotAddUpToPromptPlusTokens() throws {
        let text = Self.scenario(["placement": ["gpuKV": 64], "weights": "gpu", "generate": ["prompt": 64, "tokens": 8]],
                                 removing: ["policy", "decodeStep"])
        let e = try Self.inputError(text)
        #expect(e.field == "placement")
        #expect(e.message.contains("64"))
        #expect(e.message.contains("72"), "message should give prompt + tokens: \(e.message)")
    }

    @Test func negativePlacementCount() throws {
        let e = try Self.inputError(Self.placed(["gpuKV": 192, "hostKV": -64], context: 128))
        #expect(e.field == "placement.hostKV")
        #expect(e.message.contains("from 0"), "message: \(e.message)")
        #expect(e.message.contains("-64"), "message: \(e.message)")
    }

    @Test func unknownTokenClassInPlacement() throws {
        let e = try Self.inputError(Self.placed(["gpuKV": 64, "diskKV": 64]))
        #expect(e.field == "placement.diskKV")
        #expect(e.message.contains("hostKV"))
    }

    @Test func missingWeightsWithExplicitPlacement() throws {
        let e = try Self.inputError(Self.placed(["gpuKV": 128], weights: nil))
        #expect(e.field == "weights")
        #expect(e.message.contains("missing"))
        #expect(e.message.contains("\"gpu\""))
        #expect(e.message.contains("\"host\""))
    }

    @Test func weightsSomewhere() throws {
        let e = try Self.inputError(Self.placed(["gpuKV": 128], weights: "somewhere"))
        #expect(e.field == "weights")
        #expect(e.message.contains("somewhere"))
        #expect(e.message.contains("\"gpu\""))
        #expect(e.message.contains("\"host\""))
        #expect(e.message.contains("gpuFraction"))
    }

    @Test func weightsGPUFractionAboveOne() throws {
        let e = try Self.inputError(Self.placed(["gpuKV": 128], weights: ["gpuFraction": 1.5]))
        #expect(e.field == "weights.gpuFraction")
        #expect(e.message.contains("from 0 to 1"), "message: \(e.message)")
        #expect(e.message.contains("1.5"), "message: \(e.message)")
    }

    @Test func placementAndPolicyTogether() throws {
        let e = try Self.inputError(Self.scenario(["placement": ["gpuKV": 128], "weights": "gpu"]))
        #expect(e.field == "placement")
        #expect(e.message.contains("not both"))
    }

    @Test func neitherPlacementNorPolicy() throws {
        let e = try Self.inputError(Self.scenario(removing: ["policy"]))
        #expect(e.field == "placement")
        #expect(e.message.contains("missing"))
        #expect(e.message.contains("hybrid"), "message should list the policies: \(e.message)")
    }

    // MARK: Policies

    @Test func unknownPolicyName() throws {
        let e = try Self.inputError(Self.scenario(["policy": ["name": "zero-offload"]]))
        #expect(e.field == "policy.name")
        #expect(e.message.contains("zero-offload"))
        for name in PolicySpec.names {
            #expect(e.message.contains(name), "message should list \(name): \(e.message)")
        }
    }

    @Test func hybridKVFractionAboveOne() throws {
        let e = try Self.inputError(Self.scenario(["policy": ["name": "hybrid", "kvFraction": 2]]))
        #expect(e.field == "policy.kvFraction")
        #expect(e.message.contains("from 0 to 1"), "message: \(e.message)")
        #expect(e.message.contains("got 2"), "message: \(e.message)")
    }

    @Test func hybridMissingKVFraction() throws {
        let e = try Self.inputError(Self.scenario(["policy": ["name": "hybrid"]]))
        #expect(e.field == "policy.kvFraction")
        #expect(e.message.contains("missing"))
    }

    @Test func unknownKeyForPolicy() throws {
        let e = try Self.inputError(Self.scenario(["policy": ["name": "all-gpu", "kvFraction": 0.5]]))
        #expect(e.field == "policy.kvFraction")
        #expect(e.message.contains("unknown key"))
    }

    static func flexgen(_ percent: [Double], gpuBatchSize: Int? = nil, numGpuBatches: Int? = nil, batch: Int = 4) -> String {
        var policy: [String: Any] = ["name": "flexgen", "percent": percent]
        if let gpuBatchSize { policy["gpuBatchSize"] = gpuBatchSize }
        if let numGpuBatches { policy["numGpuBatches"] = numGpuBatches }
        return scenario(["policy": policy, "batch": batch])
    }

    @Test func flexgenValidPolicyParses() throws {
        let plan = try Self.parse(Self.flexgen([50, 50, 25, 75, 100, 0], gpuBatchSize: 2, numGpuBatches: 2))
        #expect(plan.microBatches == 2)
        #expect(plan.weights.gpuFraction == 0.5)
        #expect(plan.placement.total == 128)
    }

    @Test(arguments: [[100.0, 0, 100, 0, 100], [100.0, 0, 100, 0, 100, 0, 0]])
    func flexgenPercentOfWrongLength(_ percent: [Double]) throws {
        let e = try Self.inputError(Self.flexgen(percent))
        #expect(e.field == "policy.percent")
        #expect(e.message.contains("six"), "message: \(e.message)")
        #expect(e.message.contains("got \(percent.count)"), "message: \(e.message)")
    }

    /// A pair over 100 is refused naming the pair; a pair under 100 leaves the rest on disk, which
    /// the ideal engine does not run (FlexGen does, given a machine with a disk).
    @Test func flexgenPairOver100AndDiskOnTheIdealEngine() throws {
        let e = try Self.inputError(Self.flexgen([100, 0, 60, 50, 100, 0]))
        #expect(e.field == "policy.percent")
        #expect(e.message.contains("cache"), "message should name the pair: \(e.message)")
        #expect(e.message.contains("at most 100"))
        #expect(e.message.contains("60 + 50"), "message: \(e.message)")
        let disk = try Self.inputError(Self.flexgen([100, 0, 60, 30, 100, 0]))
        #expect(disk.field == "kvOnDisk")
        #expect(disk.message.contains("engine ideal"), "message: \(disk.message)")
    }

    @Test func flexgenPercentOutOfRange() throws {
        let e = try Self.inputError(Self.flexgen([100, 0, 150, -50, 100, 0]))
        #expect(e.field == "policy.percent[2]")
        #expect(e.message.contains("from 0 to 100"))
    }

    @Test func flexgenBatchesThatDoNotMultiplyToTheBatch() throws {
        let e = try Self.inputError(Self.flexgen([100, 0, 100, 0, 100, 0], gpuBatchSize: 3, numGpuBatches: 2, batch: 8))
        #expect(e.field == "policy.numGpuBatches")
        #expect(e.message.contains("3 x 2"), "message: \(e.message)")
        #expect(e.message.contains("8"), "message: \(e.message)")
    }

    @Test func flexgenWithWeightsKey() throws {
        let text = Self.scenario(["policy": ["name": "flexgen", "percent": [100, 0, 100, 0, 100, 0]], "weights": "gpu"])
        let e = try Self.inputError(text)
        #expect(e.field == "weights")
        #expect(e.message.contains("percent"))
    }

    @Test func allGPUPolicyWithWeightsOnHost() throws {
        let e = try Self.inputError(Self.scenario(["weights": "host"]))
        #expect(e.field == "weights")
        #expect(e.message.contains("all-gpu"), "message: \(e.message)")
        #expect(e.message.contains("gpu"))
    }

    @Test func deepSpeedPolicyWithWeightsOnGPU() throws {
        let e = try Self.inputError(Self.scenario(["weights": "gpu", "policy": ["name": "deepspeed"]]))
        #expect(e.field == "weights")
        #expect(e.message.contains("deepspeed"), "message: \(e.message)")
    }

    @Test func hostMemoryKindMisspelt() throws {
        let e = try Self.inputError(Self.scenario(["hostMemory": "pined"]))
        #expect(e.field == "hostMemory")
        #expect(e.message.contains("pinned"))
        #expect(e.message.contains("pageable"))
    }

    // MARK: Capacity

    @Test func scenarioThatDoesNotFitInGPUMemory() throws {
        let text = """
            {"model": "opt-175b", "hardware": "rtx4090", "batch": 1,
             "decodeStep": {"context": 128}, "policy": {"name": "all-gpu"}}
            """
        let plan = try Self.parse(text)
        let cost = try AnalyticCostModel(hardware: plan.hardware, dtype: plan.model.dtype)
        let e = try #require(throws: CapacityError.self) {
            _ = try Simulator.run(plan, cost: cost)
        }
        #expect(e.memory == "GPU")
        #expect(e.neededBytes > e.capacityBytes)
        #expect(e.description.contains("over by"), "description: \(e.description)")
        #expect(e.description.contains("GPU memory does not fit"), "description: \(e.description)")
    }
}
