import Foundation
import Testing
@testable import PlannerCore

/// Mixture-of-experts models: parameter counts against their publishers' totals, the expected
/// distinct experts a batch touches, the two expert fetches on a step worked out by hand, the
/// families' `config.json` readers, and the bad input each one brings.
@Suite("Mixture of experts")
struct MixtureOfExpertsTests {
    // MARK: Catalog against the published totals

    /// Mistral AI's Mixtral announcement ("Mixtral of experts", 2023-12-11): 46.7B parameters in
    /// total, 12.9B used per token. By hand from the config: a layer's attention 2 x 4096^2 +
    /// 2 x 4096 x 1024 = 41,943,040, two norms 8,192, router 4096 x 8 = 32,768, eight experts of
    /// 3 x 4096 x 14336 = 176,160,768; embeddings and head 2 x 32000 x 4096 and the final norm.
    /// Total 32 x 1,451,270,144 + 262,148,096 = 46,702,792,704; active (two experts)
    /// 32 x 394,305,536 + 262,148,096 = 12,879,925,248.
    @Test func mixtralMatchesItsPublishedCounts() throws {
        let m = try ModelCatalog.model(named: "mixtral-8x7b")
        let total = m.totalWeightBytes / Double(m.bytesPerElement)
        #expect(total == 46_702_792_704)
        #expect(m.activeParameters == 12_879_925_248)
        #expect(abs(total / 1e9 - 46.7) < 0.05 && abs(m.activeParameters / 1e9 - 12.9) < 0.05)
    }

    /// Qwen3-30B-A3B's model card: 30.5B parameters in total, 3.3B activated. By hand: attention
    /// 2048 x 4096 x 2 + 2048 x 512 x 2 = 18,874,368, Q/K norms 256, two norms 4,096, router
    /// 2048 x 128 = 262,144, 128 experts of 3 x 2048 x 768 = 4,718,592; embeddings and head
    /// 2 x 151936 x 2048 and the final norm. Total 48 x 623,120,640 + 622,331,904 =
    /// 30,532,122,624; active (eight experts) 48 x 56,889,600 + 622,331,904 = 3,353,032,704.
    @Test func qwen3MoEMatchesItsPublishedCounts() throws {
        let m = try ModelCatalog.model(named: "qwen3-30b-a3b")
        let total = m.totalWeightBytes / Double(m.bytesPerElement)
        #expect(total == 30_532_122_624)
        #expect(m.activeParameters == 3_353_032_704)
        #expect(abs(total / 1e9 - 30.5) < 0.05 && abs(m.activeParameters / 1e9 - 3.3) < 0.06)
    }

    /// OpenAI's gpt-oss model card: gpt-oss-20b 20.91B parameters, 3.61B active a token;
    /// gpt-oss-120b 116.83B and 5.13B (its active count leaves out the input embedding and keeps
    /// the unembedding). By hand for 20b: attention 2880 x 4096 x 2 + 2880 x 512 x 2 = 26,542,080,
    /// biases 4096 + 2 x 512 + 2880, sinks 64, norm 2880: 26,553,024; an expert 3 x 2880 x 2880 +
    /// biases 5760 + 2880 = 24,891,840; router 2880 x 32 + 32, norm 2880; 24 layers and the
    /// untied embedding and head 2 x 201,088 x 2,880 + the final norm: 20,914,757,184; active (four
    /// experts, less one 201,088 x 2,880 matrix) 3,608,307,264. Stored with the experts in MXFP4
    /// (0.53125 B an element of their matrices, biases, attention and router in bf16): 476,863,552
    /// B a layer, 13,761,264,768 B in all, within the 16 GB OpenAI names for it.
    @Test(arguments: [("gpt-oss-20b", 20_914_757_184.0, 3_608_307_264.0, 20.91, 3.61),
                      ("gpt-oss-120b", 116_829_156_672.0, 5_132_849_472.0, 116.83, 5.13)])
    func gptOSSMatchesItsPublishedCounts(_ name: String, _ total: Double, _ active: Double, _ publishedTotal: Double, _ publishedActive: Double) throws {
        let m = try ModelCatalog.model(named: name)
        #expect(m.parameterCount == total)
        let embedding = Double(m.vocab * m.hidden)
        #expect(m.activeParameters - embedding == active)
        #expect(abs(total / 1e9 - publishedTotal) < 0.005 && abs(active / 1e9 - publishedActive) < 0.005)
        if name == "gpt-oss-20b" {
            #expect(m.layerWeightBytes == 476_863_552)
            #expect(m.totalWeightBytes == 13_761_264_768)
        }
    }

    /// Written from openai/gpt-oss-20b's config.json on the Hugging Face hub (rope_scaling and the
    /// token ids kept as given).
    static let gptOSSConfig = """
    {"architectures": ["GptOssForCausalLM"], "attention_bias": true, "attention_dropout": 0.0, "eos_token_id": 200002,
     "experts_per_token": 4, "head_dim": 64, "hidden_act": "silu", "hidden_size": 2880, "initial_context_length": 4096,
     "initializer_range": 0.02, "intermediate_size": 2880,
     "layer_types": ["sliding_attention", "full_attention", "sliding_attention", "full_attention", "sliding_attention", "full_attention",
                     "sliding_attention", "full_attention", "sliding_attention", "full_attention", "sliding_attention", "full_attention",
                     "sliding_attention", "full_attention", "sliding_attention", "full_attention", "sliding_attention", "full_attention",
                     "sliding_attention", "full_attention", "sliding_attention", "full_attention", "sliding_attention", "full_attention"],
     "max_position_embeddings": 131072, "model_type": "gpt_oss", "num_attention_heads": 64, "num_experts_per_tok": 4,
     "num_hidden_layers": 24, "num_key_value_heads": 8, "num_local_experts": 32, "output_router_logits": false,
     "pad_token_id": 199999,
     "quantization_config": {"modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"],
                             "quant_method": "mxfp4"},
     "rms_norm_eps": 1e-05,
     "rope_scaling": {"beta_fast": 32.0, "beta_slow": 1.0, "factor": 32.0, "original_max_position_embeddings": 4096, "rope_type": "yarn", "truncate": false},
     "rope_theta": 150000, "router_aux_loss_coef": 0.9, "sliding_window": 128, "swiglu_limit": 7.0, "tie_word_embeddings": false,
     "transformers_version": "4.55.0.dev0", "use_cache": true, "vocab_size": 201088}
    """

    @Test func gptOSSConfigGivesTheCatalogShape() throws {
        var m = try Self.read(Self.gptOSSConfig, name: "gpt-oss-20b")
        let catalog = try ModelCatalog.model(named: "gpt-oss-20b")
        m.source = catalog.source
        #expect(m == catalog)
    }

    // MARK: Expected distinct experts

    /// E (1 - (1 - k/E)^b) by hand: Mixtral (8, 2) at b = 1 is 2, at b = 8 is 8 (1 - 0.75^8) =
    /// 7.19910; Qwen3-MoE (128, 8) at b = 8 is 128 (1 - (15/16)^8) = 128 x 0.403280 = 51.6199. Skew 1 leaves k;
    /// skew 0.5 at Mixtral b = 8 is 2 + 0.5 x 5.19910 = 4.59955.
    @Test func expectedDistinctExpertsByHand() {
        let mixtral = MoESpec(experts: 8, activeExperts: 2, expertFFNSize: 14336)
        #expect(abs(mixtral.expectedDistinctExperts(tokens: 1) - 2) < 1e-12)
        #expect(abs(mixtral.expectedDistinctExperts(tokens: 8) - 7.19910) < 1e-5)
        #expect(mixtral.expectedDistinctExperts(tokens: 0) == 0)
        let qwen = MoESpec(experts: 128, activeExperts: 8, expertFFNSize: 768)
        #expect(abs(qwen.expectedDistinctExperts(tokens: 8) - 51.6199) < 1e-4)
        var skewed = mixtral
        skewed.routingSkew = 1
        #expect(abs(skewed.expectedDistinctExperts(tokens: 64) - 2) < 1e-12)
        skewed.routingSkew = 0.5
        #expect(abs(skewed.expectedDistinctExperts(tokens: 8) - 4.59955) < 1e-5)
    }

    // MARK: A step by hand

    /// One layer, hidden 1024, 8 heads of 128, 8 experts of width 1024, 2 per token, fp16.
    /// Attention block 4 x 1024^2 + 1,024 = 4,195,328 elements = 8,390,656 B; an expert
    /// 3 x 1024^2 = 3,145,728 elements = 6,291,456 B; router 8,192 and norm 1,024 elements = 18,432 B.
    static let tinyMoE = ModelSpec(name: "tiny-moe", layers: 1, hidden: 1024, heads: 8, kvHeads: 8, headDim: 128, ffnSize: 1024,
                                   ffnKind: .gated3, vocab: 1024, dtype: .fp16, maxContext: 8192, bias: false,
                                   tiedEmbeddings: false, learnedPositions: false, source: "test fixture",
                                   moe: MoESpec(experts: 8, activeExperts: 2, expertFFNSize: 1024))

    static func step(_ fetch: ExpertFetch, kernel: Double) throws -> SimulationResult {
        var p = ExecutionPlan(model: tinyMoE, hardware: Fixtures.device(linkBytesPerSecond: 1e9, gpuBytesPerSecond: 1e16, flops: 1e20, kernelSeconds: kernel),
                              batch: 1, weights: WeightPlacement(gpuFraction: 0), placement: TokenPlacement(gpuKV: 64), phase: .decodeStep(context: 64))
        p.expertFetch = fetch
        return try Fixtures.run(p)
    }

    /// A steady decode step, batch 1 (so D = k = 2), every weight streamed over a 1 GB/s link,
    /// kernels of 0.1 ms each and no other cost. Prefetching all: the link carries the attention
    /// block and all eight experts, 8,390,656 + 18,432 + 8 x 6,291,456 = 58,740,736 B a step, and the
    /// 1.8 ms of kernels hide under it: 58.740736 ms. On demand: the attention block and the router
    /// copy (8.409088 ms), then the router waits for norm + QKV (two kernels), attention (one),
    /// output projection (two) and its own three (norm, router GEMM, top-k) after the attention
    /// block's copy: 8.390656 + 0.8 ms; then the two routed experts' copy, 12.582912 ms, ahead of
    /// the next step's copies on the in-order link: 21.773568 ms a step for 20,992,000 B.
    @Test func expertFetchesOnAStepByHand() throws {
        let all = try Self.step(.prefetchAll, kernel: 1e-4)
        #expect(all.totalBytes(.hostToDevice) == 58_740_736)
        #expect(abs(all.seconds - 58.740736e-3) < 1e-8, "\(all.seconds)")
        let touched = try Self.step(.onDemand, kernel: 1e-4)
        #expect(touched.totalBytes(.hostToDevice) == 20_992_000)
        #expect(abs(touched.seconds - 21.773568e-3) < 1e-8, "\(touched.seconds)")
        // The routed experts' copy starts when the router ends.
        let g = touched.graph, t = touched.timeline
        let router = try #require((0 ..< g.count).last { g.kind[$0] == UInt8(TaskKind.router.rawValue) })
        let copy = try #require((0 ..< g.count).first { $0 > router && g.kind[$0] == UInt8(TaskKind.weightLoad.rawValue) })
        #expect(abs(t.start[copy] - t.end[router]) < 1e-12)
    }

    /// The same step with the routed experts on the host CPU (10 GB/s, 1 TFLOP/s): the link
    /// carries the attention block and the router copy; after the router (0.8 ms of kernels after
    /// the attention copy, as above) the row goes to the host (2,048 B, 2.048 us), the CPU reads
    /// the two touched experts (2 x 6,291,456 B / 10 GB/s = 1.2582912 ms, against 12.6 us of
    /// FLOPs), and the output comes back (2.048 us) ahead of the next step's copies: 8.390656 +
    /// 0.8 + 0.002048 + 1.2582912 + 0.002048 = 10.4530432 ms a step, 8,411,136 B over the link.
    @Test func expertsOnTheHostCPUByHand() throws {
        var hw = Fixtures.device(linkBytesPerSecond: 1e9, gpuBytesPerSecond: 1e16, flops: 1e20, kernelSeconds: 1e-4)
        hw.hostCPU = HostCPUSpec(name: "paper CPU", cores: 8, memoryBytesPerSecond: 10e9, fp32FlopsPerSecond: 1e12, singleThreadCopyBytesPerSecond: 1e9)
        var p = ExecutionPlan(model: Self.tinyMoE, hardware: hw, batch: 1, weights: WeightPlacement(gpuFraction: 0),
                              placement: TokenPlacement(gpuKV: 64), phase: .decodeStep(context: 64))
        p.expertFetch = .hostCPU
        let r = try Fixtures.run(p)
        #expect(abs(r.seconds - 10.4530432e-3) < 1e-8, "\(r.seconds)")
        #expect(r.totalBytes(.hostToDevice) == 8_411_136)
        #expect(r.reportedResources.contains(.hostCPU))
        // Without host CPU rates the option is refused by name.
        p.hardware.hostCPU = nil
        #expect(throws: InputError.self) { try Fixtures.run(p) }
    }

    /// The FFN kernel of batch 1 (D = k = 2) with 0.1 ms a kernel and no other cost: the router's
    /// norm, GEMM and top-k (0.3 ms), the gather and scatter and the residual add (0.2 ms), and the
    /// experts: per expert a gated FFN of two GEMMs around an activation, 2 x 0.3 ms (transformers'
    /// loop); fused, one grouped GEMM a projection around one activation, 0.3 ms (vLLM's
    /// `fused_experts`). 1.1 ms against 0.8 ms.
    @Test func expertKernelsPerExpertOrFused() throws {
        func ffnSeconds(_ kernels: EngineTraits.ExpertKernels) throws -> Double {
            var p = ExecutionPlan(model: Self.tinyMoE, hardware: Fixtures.device(linkBytesPerSecond: 1e9, gpuBytesPerSecond: 1e16, flops: 1e20, kernelSeconds: 1e-4),
                                  batch: 1, weights: WeightPlacement(gpuFraction: 1), placement: TokenPlacement(gpuKV: 64), phase: .decodeStep(context: 64))
            p.engine.traits.expertKernels = kernels
            let r = try Fixtures.run(p)
            let ffn = try #require((0 ..< r.graph.count).first { r.graph.kind[$0] == UInt8(TaskKind.ffn.rawValue) })
            return r.timeline.end[ffn] - r.timeline.start[ffn]
        }
        #expect(abs(try ffnSeconds(.perExpert) - 1.1e-3) < 1e-8)
        #expect(abs(try ffnSeconds(.fused) - 0.8e-3) < 1e-8)
        #expect(Engine.ideal.traits.expertKernels == .fused)
    }

    /// The planner plays both fetches and keeps the faster: at batch 1 Qwen3-30B-A3B touches 8 of
    /// its 128 experts a layer, so copying only those wins; at batch 64 a step touches 125.9 of 128
    /// (98%), and the wait for the router no longer buys anything.
    @Test func plannerPicksTheExpertFetch() throws {
        let setup = Setup(model: try ModelCatalog.model(named: "qwen3-30b-a3b"), hardware: HardwareCatalog.rtx4090,
                          workload: Workload(prompt: 512, tokens: 8))
        let small = Evaluator.evaluate(Candidate(.kvOnly, batch: 1, weightsGPUFraction: 0), setup)
        #expect(small.feasible)
        #expect(small.plan?.expertFetch == .onDemand)
        let large = Evaluator.evaluate(Candidate(.kvOnly, batch: 64, weightsGPUFraction: 0), setup)
        #expect(large.feasible)
        #expect(large.plan?.expertFetch == .prefetchAll)
        // On demand at batch 1 moves about (2,048 x 4,096 x 2 + 2,048 x 512 x 2 + 8 x 3 x 2,048 x 768)
        // / (that + 120 more experts) of the prefetching bytes: at least 4x faster.
        var prefetch = try #require(small.plan)
        prefetch.expertFetch = .prefetchAll
        let slow = try Simulator.run(prefetch, cost: try setup.costModel())
        #expect(small.tokensPerSecond > 4 * slow.tokensPerSecond)
    }

    // MARK: config.json of each family

    /// Written from mistralai/Mixtral-8x7B-v0.1's config.json on the Hugging Face hub.
    static let mixtralConfig = """
    {"architectures": ["MixtralForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
     "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 32768,
     "model_type": "mixtral", "num_attention_heads": 32, "num_experts_per_tok": 2, "num_hidden_layers": 32,
     "num_key_value_heads": 8, "num_local_experts": 8, "output_router_logits": false, "rms_norm_eps": 1e-05,
     "rope_theta": 1000000.0, "router_aux_loss_coef": 0.02, "sliding_window": null, "tie_word_embeddings": false,
     "torch_dtype": "bfloat16", "transformers_version": "4.36.0.dev0", "use_cache": true, "vocab_size": 32000}
    """

    /// Written from Qwen/Qwen3-30B-A3B's config.json on the Hugging Face hub.
    static let qwen3MoEConfig = """
    {"architectures": ["Qwen3MoeForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 151643,
     "decoder_sparse_step": 1, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu", "hidden_size": 2048,
     "initializer_range": 0.02, "intermediate_size": 6144, "max_position_embeddings": 40960, "max_window_layers": 48,
     "mlp_only_layers": [], "model_type": "qwen3_moe", "moe_intermediate_size": 768, "norm_topk_prob": true,
     "num_attention_heads": 32, "num_experts": 128, "num_experts_per_tok": 8, "num_hidden_layers": 48,
     "num_key_value_heads": 4, "output_router_logits": false, "rms_norm_eps": 1e-06, "rope_scaling": null,
     "rope_theta": 1000000.0, "router_aux_loss_coef": 0.001, "sliding_window": null, "tie_word_embeddings": false,
     "torch_dtype": "bfloat16", "use_cache": true, "use_sliding_window": false, "vocab_size": 151936}
    """

    /// Written from Qwen/Qwen1.5-MoE-A2.7B's config.json on the Hugging Face hub (model_type qwen2_moe).
    static let qwen2MoEConfig = """
    {"architectures": ["Qwen2MoeForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643, "decoder_sparse_step": 1,
     "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 5632,
     "max_position_embeddings": 8192, "max_window_layers": 21, "model_type": "qwen2_moe", "moe_intermediate_size": 1408,
     "norm_topk_prob": false, "num_attention_heads": 16, "num_experts": 60, "num_experts_per_tok": 4, "num_hidden_layers": 24,
     "num_key_value_heads": 16, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "shared_expert_intermediate_size": 5632,
     "sliding_window": 32768, "tie_word_embeddings": false, "torch_dtype": "bfloat16", "use_cache": true,
     "use_sliding_window": false, "vocab_size": 151936}
    """

    static func read(_ text: String, name: String = "m") throws -> ModelSpec {
        try HFConfig.parse(Data(text.utf8), source: "\(name)/config.json", name: name)
    }

    /// Each reader gives the catalog's shape (the catalog entries were written from the same files).
    @Test func configReadersGiveTheCatalogShapes() throws {
        for (text, name) in [(Self.mixtralConfig, "mixtral-8x7b"), (Self.qwen3MoEConfig, "qwen3-30b-a3b")] {
            var read = try Self.read(text, name: name)
            let catalog = try ModelCatalog.model(named: name)
            read.source = catalog.source
            #expect(read == catalog, "\(name)")
        }
        // Qwen1.5-MoE-A2.7B: Q/K/V biases, 60 experts of 1408, 4 a token, a gated shared expert of 5632.
        let q = try Self.read(Self.qwen2MoEConfig)
        #expect(q.qkvBias && !q.qkNorm && q.ffnSize == 1408)
        #expect(q.moe == MoESpec(experts: 60, activeExperts: 4, expertFFNSize: 1408, sharedExpertFFNSize: 5632, sharedExpertGate: true))
        // A layer: 4 x 2048^2 + 3 x 2048 (biases) + 2 x 2048 (norms) + router 2048 x 60 + experts
        // 60 x 3 x 2048 x 1408 + shared 3 x 2048 x 5632 + its gate 2048 = 570,560,512; the model
        // 24 x that + 2 x 151936 x 2048 + 2048 = 14,315,784,192 (the model card: 14.3B).
        #expect(q.totalWeightBytes / 2 == 14_315_784_192)
    }

    @Test func badConfigsAreRefusedByField() throws {
        func refused(_ text: String, _ field: String) throws {
            let e = try Fixtures.inputError { _ = try Self.read(text) }
            #expect(e.field.contains(field), "\(e)")
        }
        try refused(Self.mixtralConfig.replacingOccurrences(of: "\"num_experts_per_tok\": 2", with: "\"num_experts_per_tok\": 9"), "num_experts_per_tok")
        try refused(Self.mixtralConfig.replacingOccurrences(of: "\"num_local_experts\": 8, ", with: ""), "m/config.json: num_local_experts")
        try refused(Self.qwen3MoEConfig.replacingOccurrences(of: "\"mlp_only_layers\": []", with: "\"mlp_only_layers\": [0, 47]"), "mlp_only_layers")
        try refused(Self.qwen3MoEConfig.replacingOccurrences(of: "\"decoder_sparse_step\": 1", with: "\"decoder_sparse_step\": 2"), "decoder_sparse_step")
        try refused(Self.qwen2MoEConfig.replacingOccurrences(of: "\"shared_expert_intermediate_size\": 5632,", with: ""), "shared_expert_intermediate_size")
        try refused(Self.mixtralConfig.replacingOccurrences(of: "\"mixtral\"", with: "\"jamba\""), "model_type")
    }

    /// Scenario keys: the fetch by name, a routing skew from 0 to 1 on a mixture of experts only;
    /// engines that do not model experts and the CPU engine refuse them by name.
    @Test func badScenariosAreRefusedByField() throws {
        func refused(_ text: String, _ field: String, _ words: String) throws {
            let e = try Fixtures.inputError { _ = try Scenario.parse(Data(text.utf8), source: "test") }
            #expect(e.field == field, "\(e)")
            #expect("\(e)".contains(words), "\(e)")
        }
        let base = #"{"model": "mixtral-8x7b", "hardware": "rtx4090", "batch": 4, "decodeStep": {"context": 512}, "policy": {"name": "kv-offload"}"#
        try refused(base + #", "experts": "sometimes"}"#, "experts", "prefetch-all")
        try refused(base + #", "routingSkew": 1.5}"#, "routingSkew", "from 0")
        try refused(base.replacingOccurrences(of: "mixtral-8x7b", with: "opt-6.7b") + #", "routingSkew": 0.5}"#, "routingSkew", "dense")
        try refused(base.replacingOccurrences(of: "mixtral-8x7b", with: "opt-6.7b") + #", "experts": "on-demand"}"#, "experts", "dense")
        try refused(base + #", "engine": "hf-accelerate"}"#, "model", "mixture-of-experts")
        // Overriding the ideal engine's traits plays the engines' unit schedule, which has no
        // experts; only how the experts run may change on the ideal schedule.
        try refused(base + #", "engineTraits": {"weightFetch": "serial"}}"#, "engineTraits", "mixture of experts")
        let perExpert = try Scenario.parse(Data((base + #", "engineTraits": {"expertKernels": "per-expert"}}"#).utf8), source: "test")
        #expect(perExpert.engine.followsIdealSchedule && perExpert.engine.traits.expertKernels == .perExpert)
        let skewed = try Scenario.parse(Data((base + #", "routingSkew": 0.25, "experts": "on-demand"}"#).utf8), source: "test")
        #expect(skewed.model.moe?.routingSkew == 0.25 && skewed.expertFetch == .onDemand)
        // An inline model's experts are checked too.
        let inline = #"{"model": {"layers": 2, "hidden": 1024, "heads": 8, "ffnSize": 512, "vocab": 1000, "moe": {"experts": 4, "activeExperts": 5, "expertFFNSize": 512}}, "hardware": "rtx4090", "batch": 1, "decodeStep": {"context": 8}, "policy": {"name": "all-gpu"}}"#
        try refused(inline, "model.moe.activeExperts", "from 1 to experts")
    }
}
