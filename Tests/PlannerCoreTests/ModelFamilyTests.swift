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
        var moe = Self.qwen2Config
        moe["model_type"] = "qwen2_moe"
        let e = try #require(throws: InputError.self) { try Self.parse(moe) }
        #expect(e.field == "m/config.json: model_type")
        #expect(e.message.contains("qwen2_moe") && e.message.contains("qwen3") && e.message.contains("llama"), "\(e.message)")
    }

    /// Sliding-window attention changes what the cache costs; until it is modelled it is refused.
    @Test func slidingWindowIsRefused() throws {
        var c = Self.qwen2Config
        c["use_sliding_window"] = true
        c["sliding_window"] = 4096
        let e = try #require(throws: InputError.self) { try Self.parse(c) }
        #expect(e.field == "m/config.json: sliding_window")
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
}
