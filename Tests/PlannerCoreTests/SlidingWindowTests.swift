import Foundation
import Testing
@testable import PlannerCore

/// Sliding-window attention: a local layer caches and reads at most its window, worked out by
/// hand on Mistral-7B-v0.1 and Gemma 3 27B; the families' readers of which layers are local; and
/// the engines that refuse it.
@Suite("Sliding windows")
struct SlidingWindowTests {
    static func plan(_ name: String, context: Int, placement: TokenPlacement, weights: WeightPlacement = WeightPlacement(gpuFraction: 1)) throws -> ExecutionPlan {
        var hw = HardwareCatalog.h100sxm
        hw.gpu.memoryBytes = 1024 * HardwareCatalog.GiB
        let p = ExecutionPlan(model: try ModelCatalog.model(named: name), hardware: hw, batch: 1, weights: weights,
                              placement: placement, phase: .decodeStep(context: context))
        try p.validate()
        return p
    }

    static func gpuKV(_ p: ExecutionPlan) -> Double { MemoryModel.report(p).gpu.first { $0.name == "GPU KV cache" }!.bytes }

    /// Mistral-7B-v0.1 windows every layer at 4,096 tokens. At a context of 16,384 (16,385 entries
    /// with the step's own) each of the 32 layers holds 4,096 entries of 2 x 8 x 128 x 2 = 4,096 B:
    /// 32 x 4,096 x 4,096 = 536,870,912 B (512 MiB), not 32 x 16,385 x 4,096 = 2,147,614,720.
    /// Below the window nothing changes: 32 x 2,049 x 4,096 = 268,566,528 B at a context of 2,048.
    @Test func mistralCachesItsWindow() throws {
        #expect(Self.gpuKV(try Self.plan("mistral-7b", context: 16384, placement: TokenPlacement(gpuKV: 16384))) == 536_870_912)
        #expect(Self.gpuKV(try Self.plan("mistral-7b", context: 2048, placement: TokenPlacement(gpuKV: 2048))) == 268_566_528)
    }

    /// Gemma 3 27B: of 62 layers, layer i is global when i % 6 == 5, so 10 global (5, 11, ..., 59)
    /// and 52 local with a 1,024-token window. At a context of 8,192: 10 x 8,193 + 52 x 1,024 =
    /// 135,178 entries of 2 x 16 x 128 x 2 = 8,192 B, 1,107,378,176 B.
    @Test func gemma3CachesFiveLocalLayersInSix() throws {
        let m = try ModelCatalog.model(named: "gemma-3-27b")
        #expect(m.slidingWindow?.localLayers(of: m.layers) == 52)
        #expect(Self.gpuKV(try Self.plan("gemma-3-27b", context: 8192, placement: TokenPlacement(gpuKV: 8192))) == 1_107_378_176)
    }

    /// Streaming a host cache: a local layer loads only its window. Mistral at a context of 8,192
    /// with every entry on the host, batch 1: before the step's token a local layer holds 4,095
    /// entries, 32 x 4,095 x 4,096 = 536,739,840 B over the link a step, against 32 x 8,192 x
    /// 4,096 = 1,073,741,824 B for a model without the window.
    @Test func aLocalLayerStreamsOnlyItsWindow() throws {
        let p = try Self.plan("mistral-7b", context: 8192, placement: TokenPlacement(hostKV: 8192))
        let r = try Simulator.run(p, cost: try AnalyticCostModel(hardware: p.hardware, dtype: p.model.dtype))
        #expect(r.totalBytes(.hostToDevice) == 536_739_840)
        var unwindowed = p
        unwindowed.model.slidingWindow = nil
        let u = try Simulator.run(unwindowed, cost: try AnalyticCostModel(hardware: p.hardware, dtype: p.model.dtype))
        #expect(u.totalBytes(.hostToDevice) == 1_073_741_824)
        #expect(r.seconds < u.seconds)
    }

    /// Google's Gemma 3 27B: 27B parameters in the decoder (the release's 27.4B adds the vision
    /// encoder). By hand: attention 5376 x 4096 x 2 + 5376 x 2048 x 2 = 66,060,288, Q/K norms 256,
    /// four norms 21,504, GeGLU 3 x 5376 x 21504 = 346,816,512: 412,898,560 a layer; 62 layers and
    /// the tied embedding 262,208 x 5,376 and the final norm: 27,009,346,304.
    @Test func gemma3MatchesItsPublishedCount() throws {
        let m = try ModelCatalog.model(named: "gemma-3-27b")
        let count = m.totalWeightBytes / 2
        #expect(count == 27_009_346_304)
        #expect(abs(count / 1e9 - 27) < 0.05)
    }

    /// Written from google/gemma-3-27b-it's config.json on the Hugging Face hub (the vision part left out).
    static let gemma3Config = """
    {"architectures": ["Gemma3ForConditionalGeneration"], "boi_token_index": 255999, "eoi_token_index": 256000,
     "eos_token_id": [1, 106], "image_token_index": 262144, "initializer_range": 0.02, "mm_tokens_per_image": 256,
     "model_type": "gemma3",
     "text_config": {"head_dim": 128, "hidden_size": 5376, "intermediate_size": 21504, "model_type": "gemma3_text",
                     "num_attention_heads": 32, "num_hidden_layers": 62, "num_key_value_heads": 16, "query_pre_attn_scalar": 168,
                     "rope_scaling": {"factor": 8.0, "rope_type": "linear"}, "sliding_window": 1024},
     "torch_dtype": "bfloat16", "transformers_version": "4.50.0.dev0"}
    """

    static func read(_ text: String, name: String = "m") throws -> ModelSpec {
        try HFConfig.parse(Data(text.utf8), source: "\(name)/config.json", name: name)
    }

    static func mistralConfig(window: String) -> String {
        """
        {"architectures": ["MistralForCausalLM"], "hidden_act": "silu", "hidden_size": 4096, "intermediate_size": 14336,
         "max_position_embeddings": 32768, "model_type": "mistral", "num_attention_heads": 32, "num_hidden_layers": 32,
         "num_key_value_heads": 8, "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": \(window),
         "tie_word_embeddings": false, "torch_dtype": "bfloat16", "vocab_size": 32000}
        """
    }

    @Test func readersFindTheLocalLayers() throws {
        var g = try Self.read(Self.gemma3Config, name: "gemma-3-27b")
        let catalog = try ModelCatalog.model(named: "gemma-3-27b")
        g.source = catalog.source
        #expect(g == catalog)
        // Mistral-7B-v0.1 windows every layer; v0.2 and later set sliding_window null.
        var v01 = try Self.read(Self.mistralConfig(window: "4096"), name: "mistral-7b")
        v01.source = try ModelCatalog.model(named: "mistral-7b").source
        #expect(v01 == (try ModelCatalog.model(named: "mistral-7b")))
        #expect(try Self.read(Self.mistralConfig(window: "null")).slidingWindow == nil)
        #expect(try Self.read(Self.mistralConfig(window: "32768")).slidingWindow == nil)
        // Qwen2 with use_sliding_window: the layers from max_window_layers on.
        let qwen = """
        {"model_type": "qwen2", "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28,
         "num_key_value_heads": 4, "vocab_size": 152064, "max_position_embeddings": 131072, "sliding_window": 4096,
         "use_sliding_window": true, "max_window_layers": 20, "torch_dtype": "bfloat16"}
        """
        let q = try Self.read(qwen)
        #expect(q.slidingWindow?.tokens == 4096)
        #expect(q.slidingWindow.map { w in (0 ..< 28).filter(w.isLocal) } == Array(20 ..< 28))
        // Gemma 2: even layers local.
        let gemma2 = """
        {"model_type": "gemma2", "hidden_size": 3584, "intermediate_size": 14336, "num_hidden_layers": 42, "num_attention_heads": 16,
         "num_key_value_heads": 8, "head_dim": 256, "vocab_size": 256000, "max_position_embeddings": 8192, "sliding_window": 4096,
         "torch_dtype": "float32"}
        """
        let g2 = try Self.read(gemma2)
        #expect(g2.slidingWindow == SlidingWindow(tokens: 4096, pattern: [true, false]) && g2.tiedEmbeddings && g2.postNorms && !g2.qkNorm)
        // A config that lists its layer types (gpt-oss and newer transformers), kept as its cycle.
        let listed = Self.mistralConfig(window: "128").replacingOccurrences(of: "\"vocab_size\": 32000",
            with: "\"vocab_size\": 32000, \"layer_types\": [" + Array(repeating: "\"sliding_attention\", \"full_attention\"", count: 16).joined(separator: ", ") + "]")
        #expect(try Self.read(listed).slidingWindow == SlidingWindow(tokens: 128, pattern: [true, false]))
    }

    @Test func badWindowsAreRefusedByField() throws {
        func refused(_ text: String, _ field: String) throws {
            let e = try Fixtures.inputError { _ = try Self.read(text) }
            #expect(e.field.contains(field), "\(e)")
        }
        try refused(Self.mistralConfig(window: "128").replacingOccurrences(of: "\"vocab_size\": 32000", with: "\"vocab_size\": 32000, \"layer_types\": [\"sliding_attention\"]"), "layer_types")
        try refused(Self.mistralConfig(window: "128").replacingOccurrences(of: "\"vocab_size\": 32000", with: "\"vocab_size\": 32000, \"layer_types\": [" + Array(repeating: "\"local\"", count: 32).joined(separator: ", ") + "]"), "layer_types")
        try refused(Self.mistralConfig(window: "0"), "sliding_window")
        try refused(Self.gemma3Config.replacingOccurrences(of: ", \"sliding_window\": 1024", with: ""), "sliding_window")
        // Engines that do not model windows, and the CPU engine, refuse them by name.
        let text = #"{"model": "mistral-7b", "hardware": "gcp-t4", "batch": 4, "engine": "flexgen", "decodeStep": {"context": 512}, "policy": {"name": "flexgen", "percent": [100, 0, 100, 0, 100, 0], "gpuBatchSize": 4, "numGpuBatches": 1}}"#
        let engine = try Fixtures.inputError { _ = try Scenario.parse(Data(text.utf8), source: "test") }
        #expect(engine.field == "model" && "\(engine)".contains("sliding-window"), "\(engine)")
        let inline = #"{"model": {"layers": 2, "hidden": 1024, "heads": 8, "ffnSize": 512, "vocab": 1000, "slidingWindow": {"tokens": 64, "pattern": [false]}}, "hardware": "rtx4090", "batch": 1, "decodeStep": {"context": 8}, "policy": {"name": "all-gpu"}}"#
        let pattern = try Fixtures.inputError { _ = try Scenario.parse(Data(inline.utf8), source: "test") }
        #expect(pattern.field == "model.slidingWindow.pattern", "\(pattern)")
    }
}
