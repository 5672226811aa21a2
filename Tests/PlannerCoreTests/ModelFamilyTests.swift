import Foundation
import Testing
@testable import PlannerCore

/// Model families read from their Hugging Face `config.json`, each by its own rules, with parameter
/// counts checked against the published totals.
@Suite("Model families")
struct ModelFamilyTests {
    /// Qwen2.5-7B: per layer Q 3584^2 + K, V 2 x 3584 x 512 + O 3584^2 + Q/K/V biases 3584 + 2 x 512
    /// + norm 3584 = 29,368,320; MLP 3 x 3584 x 18944 + norm 3584 = 203,689,472; 28 layers
    /// 6,525,618,176; untied embedding and head 2 x 152064 x 3584 = 1,089,994,752; final norm 3584:
    /// 7,615,616,512 (the model card's 7.61B; the checkpoint's exact total).
    /// Qwen3-8B: Q 4096^2 + K, V 2 x 4096 x 1024 + O 4096^2 + q_norm, k_norm 2 x 128 + norm 4096 =
    /// 41,947,392; MLP 3 x 4096 x 12288 + 4096 = 150,999,040; 36 layers 6,946,071,552; embedding and
    /// head 2 x 151936 x 4096 = 1,244,659,712; final norm 4096: 8,190,735,360 (the card's 8.2B).
    @Test(arguments: [("qwen2.5-7b", 7_615_616_512), ("qwen3-8b", 8_190_735_360)])
    func parameterCounts(_ name: String, _ published: Int) throws {
        let m = try ModelCatalog.model(named: name)
        #expect(Int(m.totalWeightBytes) / m.bytesPerElement == published)
    }

    /// The larger dense entries against their publishers' totals, to the rounding they give, with
    /// the exact count from the shape by hand:
    /// - Llama-3.3-70B: per layer 2 x 8192^2 + 2 x 8192 x 1024 + 2 x 8192 (norms) + 3 x 8192 x 28672
    ///   = 855,654,400; 80 layers + 2 x 128256 x 8192 + 8192 = 70,553,706,496 (Meta's 70B; the same
    ///   shape as Llama-3.1-70B).
    /// - Qwen2.5-72B: per layer 2 x 8192^2 + 2 x 8192 x 1024 + biases 8192 + 2 x 1024 + norms
    ///   2 x 8192 + 3 x 8192 x 29568 = 877,684,736; 80 layers + 2 x 152064 x 8192 + 8192 =
    ///   72,706,203,648 (the card's 72.7B).
    /// - Qwen3-32B: per layer 5120 x 8192 x 2 + 5120 x 1024 x 2 + Q/K norms 256 + norms 10,240
    ///   + 3 x 5120 x 25600 = 487,598,336; 64 layers + 2 x 151936 x 5120 + 5120 = 32,762,123,264
    ///   (the card's 32.8B).
    /// - Qwen2.5-32B: per layer 2 x 5120^2 + 2 x 5120 x 1024 + biases 5120 + 2 x 1024 + norms
    ///   10,240 + 3 x 5120 x 27648 = 487,605,248; 64 layers + 2 x 152064 x 5120 + 5120 =
    ///   32,763,876,352. The card says 32.5B, which its own config does not give; the hub lists
    ///   the checkpoint as 32.8B parameters.
    /// - Phi-3.5-mini: per layer 4 x 3072^2 + 2 x 3072 + 3 x 3072 x 8192 = 113,252,352; 32 layers
    ///   + 2 x 32064 x 3072 + 3072 = 3,821,079,552 (Microsoft's 3.8B).
    @Test(arguments: [("llama-3.3-70b", 70_553_706_496, 70.0, 0.6), ("qwen2.5-72b", 72_706_203_648, 72.7, 0.05),
                      ("qwen3-32b", 32_762_123_264, 32.8, 0.05), ("qwen2.5-32b", 32_763_876_352, 32.8, 0.05),
                      ("phi-3.5-mini", 3_821_079_552, 3.8, 0.05)])
    func largerDenseCounts(_ name: String, _ exact: Int, _ publishedBillions: Double, _ rounding: Double) throws {
        let m = try ModelCatalog.model(named: name)
        let count = Int(m.totalWeightBytes) / m.bytesPerElement
        #expect(count == exact)
        #expect(abs(Double(count) / 1e9 - publishedBillions) < rounding)
    }

    static var qwen2Config: [String: Any] { [
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 3584, "intermediate_size": 18944,
        "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064,
        "max_position_embeddings": 131072, "sliding_window": 131072, "use_sliding_window": false,
        "tie_word_embeddings": false, "torch_dtype": "bfloat16", "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
    ] }

    static var qwen3Config: [String: Any] { [
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 4096, "intermediate_size": 12288,
        "num_hidden_layers": 36, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936,
        "max_position_embeddings": 40960, "attention_bias": false, "use_sliding_window": false, "sliding_window": NSNull(),
        "tie_word_embeddings": false, "torch_dtype": "bfloat16",
    ] }

    static func parse(_ config: [String: Any], name: String = "m") throws -> ModelSpec {
        try HFConfig.parse(try JSONSerialization.data(withJSONObject: config), source: "\(name)/config.json", name: name)
    }

    /// The public config files read to the catalog's shapes.
    @Test func qwenConfigsReadAsTheCatalog() throws {
        var q2 = try Self.parse(Self.qwen2Config, name: "qwen2.5-7b")
        var q3 = try Self.parse(Self.qwen3Config, name: "qwen3-8b")
        q2.source = ""; q3.source = ""
        var c2 = try ModelCatalog.model(named: "qwen2.5-7b"), c3 = try ModelCatalog.model(named: "qwen3-8b")
        c2.source = ""; c3.source = ""
        #expect(q2 == c2)
        #expect(q3 == c3)
        #expect(q2.qkvBias && !q2.qkNorm && q3.qkNorm && !q3.qkvBias)
    }

    @Test func unknownFamilyIsRefusedNamingTheSupportedOnes() throws {
        var other = Self.qwen2Config
        other["model_type"] = "jamba"
        let e = try #require(throws: InputError.self) { try Self.parse(other) }
        #expect(e.field == "m/config.json: model_type")
        #expect(e.message.contains("qwen2_moe") && e.message.contains("qwen3") && e.message.contains("llama") && e.message.contains("gemma3"), "\(e.message)")
    }

    /// Qwen2's sliding window covers the layers from `max_window_layers` on (Qwen2Config's
    /// `layer_types`); by its default of 28 a 28-layer model has none, and with 0 all are local.
    @Test func qwenSlidingWindowFollowsMaxWindowLayers() throws {
        var c = Self.qwen2Config
        c["use_sliding_window"] = true
        c["sliding_window"] = 4096
        #expect(try Self.parse(c).slidingWindow == nil)
        c["max_window_layers"] = 0
        #expect(try Self.parse(c).slidingWindow == SlidingWindow(tokens: 4096, pattern: [true]))
    }

    @Test func missingFieldIsNamedWithTheFile() throws {
        var c = Self.qwen3Config
        c["intermediate_size"] = nil
        let e = try #require(throws: InputError.self) { try Self.parse(c) }
        #expect(e.description.contains("intermediate_size"), "\(e.description)")
    }

    /// A folder holding a config.json is found from its bare name.
    @Test func bareFolderNameFindsItsConfig() throws {
        let dir = try CLITests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let folder = dir.appendingPathComponent("my-qwen")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try JSONSerialization.data(withJSONObject: Self.qwen3Config).write(to: folder.appendingPathComponent("config.json"))
        let m = try ModelCatalog.resolve("my-qwen", baseDirectory: dir)
        #expect(m.name == "my-qwen" && m.qkNorm && m.layers == 36)
    }

    /// Qwen's extra tensors are counted where weights are placed: FlexGen's tensor list carries the
    /// Q/K/V biases and the Q/K norms.
    @Test func extraTensorsAreListed() throws {
        let q2 = try ModelCatalog.model(named: "qwen2.5-7b"), q3 = try ModelCatalog.model(named: "qwen3-8b")
        #expect(q2.tensors(.attention).map(\.name) == ["w_q", "b_q", "w_k", "b_k", "w_v", "b_v", "w_out", "w_ln"])
        #expect(q3.tensors(.attention).map(\.name) == ["w_q", "w_k", "w_v", "q_norm", "k_norm", "w_out", "w_ln"])
        for m in [q2, q3] {
            #expect(m.tensors(.attention).reduce(0) { $0 + $1.elements } == m.attentionWeightElements)
        }
    }

    /// Written from meta-llama/Llama-3.3-70B-Instruct's and microsoft/Phi-3.5-mini-instruct's
    /// config.json on the Hugging Face hub (Phi's long and short rope factor lists left out): each
    /// reads as its catalog entry. Llama 3's rope scaling (factor 8 of 8,192) stays within its
    /// 131,072 positions; Phi-3.5's window of 262,144 never binds and is dropped.
    @Test func llama3AndPhi35ReadAsTheirCatalogEntries() throws {
        let llama: [String: Any] = [
            "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 128000,
            "eos_token_id": [128001, 128008, 128009], "head_dim": 128, "hidden_act": "silu", "hidden_size": 8192,
            "initializer_range": 0.02, "intermediate_size": 28672, "max_position_embeddings": 131072, "mlp_bias": false,
            "model_type": "llama", "num_attention_heads": 64, "num_hidden_layers": 80, "num_key_value_heads": 8, "pretraining_tp": 1,
            "rms_norm_eps": 1e-05,
            "rope_scaling": ["factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0, "original_max_position_embeddings": 8192, "rope_type": "llama3"],
            "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16", "use_cache": true, "vocab_size": 128256,
        ]
        let phi: [String: Any] = [
            "architectures": ["Phi3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 1, "embd_pdrop": 0.0,
            "eos_token_id": 32000, "hidden_act": "silu", "hidden_size": 3072, "initializer_range": 0.02, "intermediate_size": 8192,
            "max_position_embeddings": 131072, "model_type": "phi3", "num_attention_heads": 32, "num_hidden_layers": 32,
            "num_key_value_heads": 32, "original_max_position_embeddings": 4096, "pad_token_id": 32000, "resid_pdrop": 0.0,
            "rms_norm_eps": 1e-05, "rope_scaling": ["type": "longrope"], "rope_theta": 10000.0, "sliding_window": 262144,
            "tie_word_embeddings": false, "torch_dtype": "bfloat16", "use_cache": true, "vocab_size": 32064,
        ]
        for (config, name) in [(llama, "llama-3.3-70b"), (phi, "phi-3.5-mini")] {
            var read = try Self.parse(config, name: name)
            let catalog = try ModelCatalog.model(named: name)
            read.source = catalog.source
            #expect(read == catalog, "\(name)")
        }
    }

    /// The grouped-query advice with its numbers: Llama-3.1-8B's ACT checkpoint is its 4,096-wide
    /// input, 8 KiB in bf16, against K and V of 8 heads of 128, 4 KiB: 2.0x.
    @Test func groupedQueryAdviceShowsTheNumbers() throws {
        let note = try #require(SweepReport.notes(try ModelCatalog.model(named: "llama-3.1-8b")))
        #expect(note.contains("grouped-query (8 KV heads for 32 query heads)") && note.contains("8.00 KiB") && note.contains("2.0x") && note.contains("4.00 KiB"), "\(note)")
        #expect(SweepReport.notes(try ModelCatalog.model(named: "opt-13b")) == nil)
    }

    /// Every catalog model, and a quantised one with an fp8 cache, written as `planner catalog
    /// --json` writes it reads back as the same model through the inline reader (what `plan --out`
    /// writes for a model that is not a plain catalog entry).
    @Test func everyModelReadsBackFromItsJSON() throws {
        var models = ModelCatalog.all
        var awq = try ModelCatalog.model(named: "llama-3.1-70b")
        awq.weightFormat = WeightFormat(method: .awq, bits: 4, groupSize: 128)
        awq.kvCacheElementBytes = 1
        models.append(awq)
        for m in models {
            let object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(m)) as! [String: Any]
            let back = try ModelCatalog.inline(JSONFields(object, path: "model"))
            #expect(back == m, "\(m.name)")
        }
    }
}
