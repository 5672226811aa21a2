import Foundation
import Testing
@testable import PlannerCore

/// Multi-head latent attention and DeepSeek-V3: the parameter counts against DeepSeek's, the
/// cache a token takes, latent attention's time by hand, the config reader, and bad configs.
@Suite("Latent attention")
struct LatentAttentionTests {
    /// DeepSeek's report: 671B parameters in the main model (685B on the hub with the
    /// multi-token-prediction module), 37B activated a token. By hand: attention q_a 7168 x 1536,
    /// its norm 1536, q_b 1536 x 128 x 192, kv_a 7168 x 576, its norm 512, kv_b 512 x 128 x 256,
    /// o 16384 x 7168, the input norm: 187,114,496 a layer; three dense FFNs of 3 x 7168 x 18432 +
    /// a norm (396,368,896); 58 sparse ones of router 7168 x 256 + its bias 256, 256 experts and one
    /// shared of 3 x 7168 x 2048, a norm (11,320,171,776); embedding and head 2 x 129,280 x 7,168 +
    /// the final norm: 671,026,419,200. Active (8 routed experts): 37,552,297,472. Stored in FP8
    /// blocks (matrices at 1 + 4/16,384 B, router, norms and embeddings in bf16): 673,150,575,280 B.
    @Test func deepSeekV3MatchesItsPublishedCounts() throws {
        let m = try ModelCatalog.model(named: "deepseek-v3")
        #expect(m.parameterCount == 671_026_419_200)
        #expect(m.activeParameters == 37_552_297_472)
        #expect(abs(m.parameterCount / 1e9 - 671) < 0.5 && abs(m.activeParameters / 1e9 - 37) < 0.6)
        #expect(m.totalWeightBytes == 673_150_575_280)
        // The cache: the 512-element latent and the 64-element rotary key, in bf16: 1,152 B a token
        // a layer, against 2 x 128 x 128 x 2 = 65,536 B for full keys and values.
        #expect(m.kvBytesPerToken == 1152)
        #expect(SweepReport.notes(m)?.contains("latent of 576 elements") == true)
    }

    /// Batch 1, 128 heads, a latent of 512 + 64 over 1,000 cached tokens on a device of 1e14 FLOP/s
    /// and 1 TB/s with no fixed costs: 2 x 128 x 1,000 x (2 x 512 + 64) = 278,528,000 FLOPs,
    /// 2.78528 us; bytes 1,000 x 576 x 2 + 2 x 128 x 576 x 2 = 1,446,912, 1.446912 us. Every head
    /// reading the one latent makes it compute-bound: 2.78528 us.
    @Test func latentAttentionByHand() throws {
        let cost = try AnalyticCostModel(hardware: Fixtures.device(linkBytesPerSecond: 1e9, gpuBytesPerSecond: 1e12, flops: 1e14, kernelSeconds: 0), dtype: .fp16)
        #expect(abs(cost.seconds(.latentAttention(batch: 1, heads: 128, latent: 512, rope: 64, context: 1000)) - 2.78528e-6) < 1e-12)
    }

    /// A one-layer decode step where only the kernels' fixed 0.1 ms counts (weights resident,
    /// unbounded rates): with latent attention the norm + QKV kernel is the norm, q_a, the query
    /// norm, q_b, kv_a, the latent's norm and the absorbed key product (7 kernels), attention one,
    /// the output the absorbed value product, o_proj and the residual (3), the FFN five, the head
    /// two: 1.8 ms. The same shape with grouped-query attention: 2 + 1 + 2 + 5 + 2 kernels, 1.2 ms.
    @Test func aLatentStepByHand() throws {
        let mla = ModelSpec(name: "tiny-mla", layers: 1, hidden: 1024, heads: 8, kvHeads: 8, headDim: 64, ffnSize: 2048, ffnKind: .gated3,
                            vocab: 1024, dtype: .fp16, maxContext: 8192, bias: false, tiedEmbeddings: false, learnedPositions: false,
                            source: "test fixture")
        var latent = mla
        latent.mla = LatentAttention(qLoraRank: 256, kvLoraRank: 128, nopeHeadDim: 64, ropeHeadDim: 32, valueHeadDim: 64)
        let hw = Fixtures.device(linkBytesPerSecond: 1e9, gpuBytesPerSecond: 1e16, flops: 1e20, kernelSeconds: 1e-4)
        func step(_ m: ModelSpec) throws -> Double {
            try Fixtures.run(ExecutionPlan(model: m, hardware: hw, batch: 1, weights: WeightPlacement(gpuFraction: 1),
                                           placement: TokenPlacement(gpuKV: 64), phase: .decodeStep(context: 64))).seconds
        }
        let withLatent = try step(latent), grouped = try step(mla)
        #expect(abs(withLatent - 1.8e-3) < 1e-8, "\(withLatent)")
        #expect(abs(grouped - 1.2e-3) < 1e-8, "\(grouped)")
        // The latent cache: (128 + 32) x 2 B a token a layer.
        #expect(latent.kvBytesPerToken == 320)
    }

    /// Written from deepseek-ai/DeepSeek-V3's config.json on the Hugging Face hub (auto_map left out).
    static let config = """
    {"architectures": ["DeepseekV3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "aux_loss_alpha": 0.001,
     "bos_token_id": 0, "eos_token_id": 1, "ep_size": 1, "first_k_dense_replace": 3, "hidden_act": "silu", "hidden_size": 7168,
     "initializer_range": 0.02, "intermediate_size": 18432, "kv_lora_rank": 512, "max_position_embeddings": 163840,
     "model_type": "deepseek_v3", "moe_intermediate_size": 2048, "moe_layer_freq": 1, "n_group": 8, "n_routed_experts": 256,
     "n_shared_experts": 1, "norm_topk_prob": true, "num_attention_heads": 128, "num_experts_per_tok": 8, "num_hidden_layers": 61,
     "num_key_value_heads": 128, "num_nextn_predict_layers": 1, "q_lora_rank": 1536, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64,
     "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8", "weight_block_size": [128, 128]},
     "rms_norm_eps": 1e-06,
     "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0, "mscale_all_dim": 1.0, "original_max_position_embeddings": 4096, "type": "yarn"},
     "rope_theta": 10000, "routed_scaling_factor": 2.5, "scoring_func": "sigmoid", "seq_aux": true, "tie_word_embeddings": false,
     "topk_group": 4, "topk_method": "noaux_tc", "torch_dtype": "bfloat16", "transformers_version": "4.33.1", "use_cache": true,
     "v_head_dim": 128, "vocab_size": 129280}
    """

    static func read(_ text: String, name: String = "m") throws -> ModelSpec {
        try HFConfig.parse(Data(text.utf8), source: "\(name)/config.json", name: name)
    }

    @Test func configGivesTheCatalogShape() throws {
        var m = try Self.read(Self.config, name: "deepseek-v3")
        let catalog = try ModelCatalog.model(named: "deepseek-v3")
        m.source = catalog.source
        #expect(m == catalog)
    }

    /// A decode step of DeepSeek-V3 cut to 4 layers (three dense, one sparse) on an H100 with the
    /// weights resident: the step finishes, attention runs as latent attention, and the dense layers
    /// carry no router.
    @Test func aStepRunsDenseAndSparseLayers() throws {
        let m = try ModelCatalog.model(named: "deepseek-v3").withLayers(4)
        var hw = HardwareCatalog.h100sxm
        hw.gpu.memoryBytes = 1024 * HardwareCatalog.GiB
        var p = ExecutionPlan(model: m, hardware: hw, batch: 4, weights: WeightPlacement(gpuFraction: 0),
                              placement: TokenPlacement(gpuKV: 1024), phase: .decodeStep(context: 1024))
        p.expertFetch = .onDemand
        let r = try Fixtures.run(p)
        let routers = Set((0 ..< r.graph.count).filter { r.graph.kind[$0] == UInt8(TaskKind.router.rawValue) }.map { Int(r.graph.layer[$0]) })
        #expect(routers == [3])
        #expect(r.seconds > 0)
    }

    @Test func badConfigsAreRefusedByField() throws {
        func refused(_ text: String, _ field: String) throws {
            let e = try Fixtures.inputError { _ = try Self.read(text) }
            #expect(e.field.contains(field), "\(e)")
        }
        try refused(Self.config.replacingOccurrences(of: "\"moe_layer_freq\": 1", with: "\"moe_layer_freq\": 2"), "moe_layer_freq")
        try refused(Self.config.replacingOccurrences(of: "\"kv_lora_rank\": 512, ", with: ""), "kv_lora_rank")
        try refused(Self.config.replacingOccurrences(of: "\"qk_rope_head_dim\": 64", with: "\"qk_rope_head_dim\": 63"), "ropeHeadDim")
        let text = #"{"model": "deepseek-v3", "hardware": "gcp-t4", "batch": 1, "engine": "deepspeed-zero-inference", "decodeStep": {"context": 8}, "policy": {"name": "deepspeed"}}"#
        let e = try Fixtures.inputError { _ = try Scenario.parse(Data(text.utf8), source: "test") }
        #expect(e.field == "model", "\(e)")
    }
}
