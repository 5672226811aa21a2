import Foundation

/// The models the planner knows by name. Each shape is read off the model's published
/// Hugging Face `config.json` (the `source` field names which).
///
///     try ModelCatalog.model(named: "llama-3.1-70b").kvHeads  // 8
public enum ModelCatalog {
    static func opt(_ size: String, layers: Int, hidden: Int, heads: Int) -> ModelSpec {
        ModelSpec(name: "opt-\(size)", layers: layers, hidden: hidden, heads: heads, kvHeads: heads,
                  headDim: hidden / heads, ffnSize: 4 * hidden, ffnKind: .relu2, vocab: 50272, dtype: .fp16,
                  maxContext: 2048, bias: true, tiedEmbeddings: true, learnedPositions: true,
                  source: "config.json of facebook/opt-\(size) on the Hugging Face hub (num_hidden_layers, hidden_size, num_attention_heads, ffn_dim, vocab_size, max_position_embeddings, torch_dtype)")
    }

    static func llamaLike(_ name: String, repo: String, layers: Int, hidden: Int, heads: Int, kvHeads: Int,
                          ffn: Int, vocab: Int, dtype: DType, maxContext: Int) -> ModelSpec {
        ModelSpec(name: name, layers: layers, hidden: hidden, heads: heads, kvHeads: kvHeads, headDim: hidden / heads,
                  ffnSize: ffn, ffnKind: .gated3, vocab: vocab, dtype: dtype, maxContext: maxContext, bias: false,
                  tiedEmbeddings: false, learnedPositions: false,
                  source: "config.json of \(repo) on the Hugging Face hub (num_hidden_layers, hidden_size, num_attention_heads, num_key_value_heads, intermediate_size, vocab_size, max_position_embeddings, torch_dtype)")
    }

    /// Qwen2.5 (Q/K/V biases) and Qwen3 (per-head Q/K norms), dense.
    static func qwen(_ name: String, repo: String, layers: Int, hidden: Int, heads: Int, kvHeads: Int, headDim: Int,
                     ffn: Int, vocab: Int, maxContext: Int, tied: Bool, qwen3: Bool) -> ModelSpec {
        ModelSpec(name: name, layers: layers, hidden: hidden, heads: heads, kvHeads: kvHeads, headDim: headDim,
                  ffnSize: ffn, ffnKind: .gated3, vocab: vocab, dtype: .bf16, maxContext: maxContext, bias: false,
                  tiedEmbeddings: tied, learnedPositions: false,
                  source: "config.json of \(repo) on the Hugging Face hub (model_type \(qwen3 ? "qwen3" : "qwen2"), num_hidden_layers, hidden_size, num_attention_heads, num_key_value_heads, \(qwen3 ? "head_dim, " : "")intermediate_size, vocab_size, max_position_embeddings, tie_word_embeddings, torch_dtype)",
                  qkvBias: !qwen3, qkNorm: qwen3)
    }

    /// Mixture-of-experts models: Mixtral (Mistral-style attention, 8 experts) and Qwen3-MoE
    /// (Qwen3 attention with per-head Q/K norms, 128 experts), every layer sparse.
    static func mixtral(_ name: String, repo: String, layers: Int, hidden: Int, heads: Int, kvHeads: Int, experts: Int, active: Int,
                        expertFFN: Int, vocab: Int, maxContext: Int) -> ModelSpec {
        ModelSpec(name: name, layers: layers, hidden: hidden, heads: heads, kvHeads: kvHeads, headDim: hidden / heads,
                  ffnSize: expertFFN, ffnKind: .gated3, vocab: vocab, dtype: .bf16, maxContext: maxContext, bias: false,
                  tiedEmbeddings: false, learnedPositions: false,
                  source: "config.json of \(repo) on the Hugging Face hub (model_type mixtral, num_hidden_layers, hidden_size, num_attention_heads, num_key_value_heads, num_local_experts, num_experts_per_tok, intermediate_size, vocab_size, max_position_embeddings, sliding_window null, tie_word_embeddings, torch_dtype)",
                  moe: MoESpec(experts: experts, activeExperts: active, expertFFNSize: expertFFN))
    }
    static func qwen3MoE(_ name: String, repo: String, layers: Int, hidden: Int, heads: Int, kvHeads: Int, headDim: Int, experts: Int,
                         active: Int, expertFFN: Int, vocab: Int, maxContext: Int) -> ModelSpec {
        ModelSpec(name: name, layers: layers, hidden: hidden, heads: heads, kvHeads: kvHeads, headDim: headDim,
                  ffnSize: expertFFN, ffnKind: .gated3, vocab: vocab, dtype: .bf16, maxContext: maxContext, bias: false,
                  tiedEmbeddings: false, learnedPositions: false,
                  source: "config.json of \(repo) on the Hugging Face hub (model_type qwen3_moe, num_hidden_layers, hidden_size, num_attention_heads, num_key_value_heads, head_dim, num_experts, num_experts_per_tok, moe_intermediate_size, decoder_sparse_step 1, mlp_only_layers [], vocab_size, max_position_embeddings, tie_word_embeddings, torch_dtype)",
                  qkNorm: true, moe: MoESpec(experts: experts, activeExperts: active, expertFFNSize: expertFFN))
    }
    /// Mistral-7B-v0.1: Llama's shape with grouped-query attention through a sliding window of
    /// 4,096 tokens on every layer (`sliding_window` 4096 in its config.json).
    static var mistral7B: ModelSpec {
        var m = llamaLike("mistral-7b", repo: "mistralai/Mistral-7B-v0.1", layers: 32, hidden: 4096, heads: 32, kvHeads: 8,
                          ffn: 14336, vocab: 32000, dtype: .bf16, maxContext: 32768)
        m.source = m.source.replacingOccurrences(of: ", torch_dtype)", with: ", sliding_window, torch_dtype)")
        m.slidingWindow = SlidingWindow(tokens: 4096, pattern: [true])
        return m
    }
    /// Gemma 3 27B (google/gemma-3-27b-it, the decoder of its `text_config`): GeGLU FFN, a norm
    /// before and after each block, per-head Q/K norms, tied embeddings, five local layers with a
    /// 1,024-token window for every global one.
    static let gemma3_27B = ModelSpec(
        name: "gemma-3-27b", layers: 62, hidden: 5376, heads: 32, kvHeads: 16, headDim: 128, ffnSize: 21504, ffnKind: .gated3,
        vocab: 262208, dtype: .bf16, maxContext: 131072, bias: false, tiedEmbeddings: true, learnedPositions: false,
        source: "config.json of google/gemma-3-27b-it on the Hugging Face hub (model_type gemma3, text_config: num_hidden_layers, hidden_size, num_attention_heads, num_key_value_heads, head_dim, intermediate_size, sliding_window, sliding_window_pattern; vocab_size and max_position_embeddings by Gemma3TextConfig's defaults when absent; torch_dtype)",
        qkNorm: true, slidingWindow: SlidingWindow(tokens: 1024, pattern: [true, true, true, true, true, false]), postNorms: true)
    /// gpt-oss (openai/gpt-oss-20b, -120b): 64 heads of 64 with 8 K/V heads, biases on Q, K, V and
    /// O and a sink logit per head, layers alternating a 128-token window and full attention,
    /// experts of width 2,880 with biases, 4 a token, stored in MXFP4 (the attention, router,
    /// embeddings and head in bf16).
    static func gptOSS(_ name: String, layers: Int, experts: Int) -> ModelSpec {
        var moe = MoESpec(experts: experts, activeExperts: 4, expertFFNSize: 2880)
        moe.expertBias = true
        var m = ModelSpec(name: name, layers: layers, hidden: 2880, heads: 64, kvHeads: 8, headDim: 64, ffnSize: 2880, ffnKind: .gated3,
                          vocab: 201088, dtype: .bf16, maxContext: 131072, bias: false, tiedEmbeddings: false, learnedPositions: false,
                          source: "config.json of openai/\(name) on the Hugging Face hub (model_type gpt_oss, num_hidden_layers, hidden_size, num_attention_heads, num_key_value_heads, head_dim, num_local_experts, num_experts_per_tok, intermediate_size, attention_bias, layer_types, sliding_window 128, quantization_config mxfp4, vocab_size, max_position_embeddings, torch_dtype)",
                          qkvBias: true, moe: moe, slidingWindow: SlidingWindow(tokens: 128, pattern: [true, false]),
                          weightFormat: WeightFormat(method: .mxfp4, bits: 4, groupSize: 32, expertsOnly: true))
        m.outputBias = true
        m.attentionSinks = true
        return m
    }
    /// DeepSeek-V3 (deepseek-ai/DeepSeek-V3, the main model without its multi-token-prediction
    /// layer): multi-head latent attention (128 heads, query rank 1,536, latent 512 + rotary 64,
    /// value 128), three dense leading layers of 18,432 and 58 of 256 experts of 2,048 with one
    /// shared expert, 8 a token and a router bias; its published weights in FP8 blocks of 128 x 128.
    static var deepSeekV3: ModelSpec {
        var moe = MoESpec(experts: 256, activeExperts: 8, expertFFNSize: 2048, sharedExpertFFNSize: 2048)
        moe.denseLayers = 3
        moe.denseFFNSize = 18432
        moe.routerBias = true
        var m = ModelSpec(name: "deepseek-v3", layers: 61, hidden: 7168, heads: 128, kvHeads: 128, headDim: 128, ffnSize: 2048, ffnKind: .gated3,
                          vocab: 129280, dtype: .bf16, maxContext: 163840, bias: false, tiedEmbeddings: false, learnedPositions: false,
                          source: "config.json of deepseek-ai/DeepSeek-V3 on the Hugging Face hub (model_type deepseek_v3, num_hidden_layers, hidden_size, num_attention_heads, q_lora_rank, kv_lora_rank, qk_nope_head_dim, qk_rope_head_dim, v_head_dim, first_k_dense_replace, intermediate_size, n_routed_experts, n_shared_experts, num_experts_per_tok, moe_intermediate_size, vocab_size, max_position_embeddings, quantization_config fp8 [128, 128], torch_dtype)",
                          moe: moe, weightFormat: WeightFormat(method: .fp8, bits: 8, groupSize: 128))
        m.mla = LatentAttention(qLoraRank: 1536, kvLoraRank: 512, nopeHeadDim: 128, ropeHeadDim: 64, valueHeadDim: 128)
        return m
    }
    /// Every catalog model, in a stable order.
    public static let all: [ModelSpec] = [
        opt("6.7b", layers: 32, hidden: 4096, heads: 32),
        opt("13b", layers: 40, hidden: 5120, heads: 40),
        opt("30b", layers: 48, hidden: 7168, heads: 56),
        opt("66b", layers: 64, hidden: 9216, heads: 72),
        opt("175b", layers: 96, hidden: 12288, heads: 96),
        llamaLike("llama-2-7b", repo: "meta-llama/Llama-2-7b-hf", layers: 32, hidden: 4096, heads: 32, kvHeads: 32,
                  ffn: 11008, vocab: 32000, dtype: .fp16, maxContext: 4096),
        llamaLike("llama-2-13b", repo: "meta-llama/Llama-2-13b-hf", layers: 40, hidden: 5120, heads: 40, kvHeads: 40,
                  ffn: 13824, vocab: 32000, dtype: .fp16, maxContext: 4096),
        llamaLike("llama-2-70b", repo: "meta-llama/Llama-2-70b-hf", layers: 80, hidden: 8192, heads: 64, kvHeads: 8,
                  ffn: 28672, vocab: 32000, dtype: .fp16, maxContext: 4096),
        llamaLike("llama-3.1-8b", repo: "meta-llama/Llama-3.1-8B", layers: 32, hidden: 4096, heads: 32, kvHeads: 8,
                  ffn: 14336, vocab: 128256, dtype: .bf16, maxContext: 131072),
        llamaLike("llama-3.1-70b", repo: "meta-llama/Llama-3.1-70B", layers: 80, hidden: 8192, heads: 64, kvHeads: 8,
                  ffn: 28672, vocab: 128256, dtype: .bf16, maxContext: 131072),
        mistral7B,
        qwen("qwen2.5-7b", repo: "Qwen/Qwen2.5-7B", layers: 28, hidden: 3584, heads: 28, kvHeads: 4, headDim: 128,
             ffn: 18944, vocab: 152064, maxContext: 131072, tied: false, qwen3: false),
        qwen("qwen3-8b", repo: "Qwen/Qwen3-8B", layers: 36, hidden: 4096, heads: 32, kvHeads: 8, headDim: 128,
             ffn: 12288, vocab: 151936, maxContext: 40960, tied: false, qwen3: true),
        llamaLike("llama-3.3-70b", repo: "meta-llama/Llama-3.3-70B-Instruct", layers: 80, hidden: 8192, heads: 64, kvHeads: 8,
                  ffn: 28672, vocab: 128256, dtype: .bf16, maxContext: 131072),
        qwen("qwen2.5-32b", repo: "Qwen/Qwen2.5-32B", layers: 64, hidden: 5120, heads: 40, kvHeads: 8, headDim: 128,
             ffn: 27648, vocab: 152064, maxContext: 131072, tied: false, qwen3: false),
        qwen("qwen2.5-72b", repo: "Qwen/Qwen2.5-72B", layers: 80, hidden: 8192, heads: 64, kvHeads: 8, headDim: 128,
             ffn: 29568, vocab: 152064, maxContext: 131072, tied: false, qwen3: false),
        qwen("qwen3-32b", repo: "Qwen/Qwen3-32B", layers: 64, hidden: 5120, heads: 64, kvHeads: 8, headDim: 128,
             ffn: 25600, vocab: 151936, maxContext: 40960, tied: false, qwen3: true),
        ModelSpec(name: "phi-3.5-mini", layers: 32, hidden: 3072, heads: 32, kvHeads: 32, headDim: 96, ffnSize: 8192, ffnKind: .gated3,
                  vocab: 32064, dtype: .bf16, maxContext: 131072, bias: false, tiedEmbeddings: false, learnedPositions: false,
                  source: "config.json of microsoft/Phi-3.5-mini-instruct on the Hugging Face hub (model_type phi3, num_hidden_layers, hidden_size, num_attention_heads, num_key_value_heads, intermediate_size, vocab_size, max_position_embeddings 131072, tie_word_embeddings, torch_dtype; fused qkv_proj and gate_up_proj hold the same elements as separate ones)"),
        gemma3_27B,
        deepSeekV3,
        gptOSS("gpt-oss-20b", layers: 24, experts: 32),
        gptOSS("gpt-oss-120b", layers: 36, experts: 128),
        mixtral("mixtral-8x7b", repo: "mistralai/Mixtral-8x7B-v0.1", layers: 32, hidden: 4096, heads: 32, kvHeads: 8, experts: 8, active: 2,
                expertFFN: 14336, vocab: 32000, maxContext: 32768),
        qwen3MoE("qwen3-30b-a3b", repo: "Qwen/Qwen3-30B-A3B", layers: 48, hidden: 2048, heads: 32, kvHeads: 4, headDim: 128, experts: 128,
                 active: 8, expertFFN: 768, vocab: 151936, maxContext: 40960),
        llamaLike("yarn-llama-2-7b-64k", repo: "NousResearch/Yarn-Llama-2-7b-64k", layers: 32, hidden: 4096, heads: 32,
                  kvHeads: 32, ffn: 11008, vocab: 32000, dtype: .bf16, maxContext: 65536),
    ]

    public static var names: [String] { all.map(\.name) }

    /// Looks a model up by name, ignoring case; throws listing the known names.
    public static func model(named name: String, field: String = "model") throws -> ModelSpec {
        if let m = all.first(where: { $0.name == name.lowercased() }) { return m }
        throw InputError(field: field, "unknown model \"\(name)\"; known models are \(names.joined(separator: ", ")), or give a path to a Hugging Face config.json or an inline object")
    }

    /// Resolves a scenario's `model` value: a catalog name, a path to a `config.json` (or to a
    /// folder holding one), or an inline object with the fields of `ModelSpec`.
    public static func resolve(_ value: Any, field: String = "model", baseDirectory: URL?) throws -> ModelSpec {
        if let s = value as? String {
            if let m = all.first(where: { $0.name == s.lowercased() }) { return m }
            // A bare folder name holding a config.json is a path too.
            let folder = URL(fileURLWithPath: s, relativeTo: s.hasPrefix("/") ? nil : baseDirectory)
            let bareFolder = FileManager.default.fileExists(atPath: folder.appendingPathComponent("config.json").path)
            let looksLikePath = s.contains("/") || s.hasSuffix(".json") || bareFolder
            if looksLikePath {
                var url = URL(fileURLWithPath: s, relativeTo: s.hasPrefix("/") ? nil : baseDirectory)
                var isDir: ObjCBool = false
                if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), isDir.boolValue {
                    url = url.appendingPathComponent("config.json")
                }
                guard let data = FileManager.default.contents(atPath: url.path) else {
                    throw InputError(field: field, "cannot read the model file \(url.path)")
                }
                // A model file in the planner's own field names (as `planner catalog --json` prints them,
                // or a profile's model file), or else a Hugging Face config.json.
                let o = try JSONFields.parse(data, source: url.path)
                if o.has("hidden"), !o.has("hidden_size") {
                    return try inline(JSONFields(o.object, path: url.lastPathComponent))
                }
                return try HFConfig.parse(o, source: url.path, name: url.deletingLastPathComponent().lastPathComponent)
            }
            return try model(named: s, field: field)
        }
        if let o = value as? [String: Any] {
            return try inline(JSONFields(o, path: field))
        }
        throw InputError(field: field, "must be a catalog name (\(names.joined(separator: ", "))), a path to a config.json, or an object")
    }

    /// Reads a model written inline in the planner's own field names.
    public static func inline(_ o: JSONFields) throws -> ModelSpec {
        try o.rejectUnknown(allowed: ["name", "layers", "hidden", "heads", "kvHeads", "headDim", "ffnSize", "ffnKind",
                                      "vocab", "dtype", "maxContext", "bias", "tiedEmbeddings", "learnedPositions", "source", "qkvBias", "qkNorm", "moe",
                                      "slidingWindow", "postNorms", "outputBias", "attentionSinks", "mla", "weightFormat",
                                      "kvCacheElementBytes"])
        let hidden = try o.int("hidden", in: 1...(1 << 24))
        let heads = try o.int("heads", in: 1...4096)
        let kindText = try o.optionalString("ffnKind") ?? "gated"
        guard let kind = FFNKind(rawValue: kindText) else {
            throw InputError(field: o.fieldPath("ffnKind"), "must be \"two-matrix\" or \"gated\", got \"\(kindText)\"")
        }
        let dtypeText = try o.optionalString("dtype") ?? "fp16"
        guard let dtype = DType(rawValue: dtypeText) else {
            throw InputError(field: o.fieldPath("dtype"), "must be one of fp16, bf16, fp32, got \"\(dtypeText)\"")
        }
        guard hidden % heads == 0 || o.has("headDim") else {
            throw InputError(field: o.fieldPath("headDim"), "missing, and hidden (\(hidden)) is not a multiple of heads (\(heads))")
        }
        let m = ModelSpec(
            name: try o.optionalString("name") ?? "custom",
            layers: try o.int("layers", in: 1...1024), hidden: hidden, heads: heads,
            kvHeads: try o.optionalInt("kvHeads", in: 1...4096) ?? heads,
            headDim: try o.optionalInt("headDim", in: 1...4096) ?? hidden / heads,
            ffnSize: try o.int("ffnSize", in: 1...(1 << 24)), ffnKind: kind,
            vocab: try o.int("vocab", in: 1...(1 << 22)), dtype: dtype,
            maxContext: try o.optionalInt("maxContext", in: 1...(1 << 24)) ?? 4096,
            bias: o.has("bias") ? try o.bool("bias") : false,
            tiedEmbeddings: o.has("tiedEmbeddings") ? try o.bool("tiedEmbeddings") : false,
            learnedPositions: o.has("learnedPositions") ? try o.bool("learnedPositions") : false,
            source: try o.optionalString("source") ?? "given inline in the scenario",
            qkvBias: o.has("qkvBias") ? try o.bool("qkvBias") : false,
            qkNorm: o.has("qkNorm") ? try o.bool("qkNorm") : false,
            moe: try o.optionalObject("moe").map(inlineExperts),
            slidingWindow: try o.optionalObject("slidingWindow").map(inlineWindow),
            postNorms: o.has("postNorms") ? try o.bool("postNorms") : false,
            weightFormat: try o.optionalObject("weightFormat").map(inlineWeightFormat))
        var model = m
        model.outputBias = o.has("outputBias") ? try o.bool("outputBias") : false
        model.attentionSinks = o.has("attentionSinks") ? try o.bool("attentionSinks") : false
        model.mla = try o.optionalObject("mla").map(inlineLatentAttention)
        model.kvCacheElementBytes = try o.optionalInt("kvCacheElementBytes", in: 1...4)
        try model.validate(path: o.path)
        return model
    }

    /// Reads an inline `weightFormat`: `method`, `bits`, and optionally `groupSize`,
    /// `doubleQuantized`, `expertsOnly` (as `planner catalog --json` writes them).
    static func inlineWeightFormat(_ o: JSONFields) throws -> WeightFormat {
        try o.rejectUnknown(allowed: ["method", "bits", "groupSize", "doubleQuantized", "expertsOnly"])
        let name = try o.string("method")
        guard let method = WeightFormat.Method(rawValue: name) else {
            throw InputError(field: o.fieldPath("method"), "must be one of \(WeightFormat.Method.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(name)\"")
        }
        return WeightFormat(method: method, bits: try o.int("bits", in: 1...16), groupSize: try o.optionalInt("groupSize", in: 1...65536),
                            doubleQuantized: o.has("doubleQuantized") ? try o.bool("doubleQuantized") : false,
                            expertsOnly: o.has("expertsOnly") ? try o.bool("expertsOnly") : false)
    }

    /// Reads an inline `mla`: `kvLoraRank`, `nopeHeadDim`, `ropeHeadDim`, `valueHeadDim`, and
    /// optionally `qLoraRank`.
    static func inlineLatentAttention(_ o: JSONFields) throws -> LatentAttention {
        try o.rejectUnknown(allowed: ["qLoraRank", "kvLoraRank", "nopeHeadDim", "ropeHeadDim", "valueHeadDim"])
        return LatentAttention(qLoraRank: try o.optionalInt("qLoraRank", in: 1...65536), kvLoraRank: try o.int("kvLoraRank", in: 1...65536),
                               nopeHeadDim: try o.int("nopeHeadDim", in: 1...65536), ropeHeadDim: try o.int("ropeHeadDim", in: 1...65536),
                               valueHeadDim: try o.int("valueHeadDim", in: 1...65536))
    }
}

extension ModelCatalog {
    /// Reads an inline `slidingWindow` object: `tokens` and `pattern`, a list of booleans (true: a
    /// local layer) repeated from layer 0.
    static func inlineWindow(_ o: JSONFields) throws -> SlidingWindow {
        try o.rejectUnknown(allowed: ["tokens", "pattern"])
        let pattern = try o.array("pattern").map { v -> Bool in
            guard let b = v as? Bool, JSONFields.isBool(v) else {
                throw InputError(field: o.fieldPath("pattern"), "must be a list of true (local) and false (global), got \(describe(v))")
            }
            return b
        }
        let w = SlidingWindow(tokens: try o.int("tokens", in: 1...(1 << 24)), pattern: pattern)
        try w.validate(path: o.path)
        return w
    }

    /// Reads an inline `moe` object: `experts`, `activeExperts`, `expertFFNSize`, and optionally
    /// `sharedExpertFFNSize`, `sharedExpertGate`, `routingSkew`.
    static func inlineExperts(_ o: JSONFields) throws -> MoESpec {
        try o.rejectUnknown(allowed: ["experts", "activeExperts", "expertFFNSize", "sharedExpertFFNSize", "sharedExpertGate", "routingSkew",
                                      "expertBias", "routerBias", "denseLayers", "denseFFNSize"])
        var moe = MoESpec(experts: try o.int("experts", in: 2...4096), activeExperts: try o.int("activeExperts", in: 1...4096),
                          expertFFNSize: try o.int("expertFFNSize", in: 1...(1 << 24)),
                          sharedExpertFFNSize: try o.optionalInt("sharedExpertFFNSize", in: 0...(1 << 24)) ?? 0,
                          sharedExpertGate: o.has("sharedExpertGate") ? try o.bool("sharedExpertGate") : false,
                          routingSkew: try o.optionalDouble("routingSkew", in: 0...1) ?? 0)
        moe.expertBias = o.has("expertBias") ? try o.bool("expertBias") : false
        moe.routerBias = o.has("routerBias") ? try o.bool("routerBias") : false
        moe.denseLayers = try o.optionalInt("denseLayers", in: 0...1024) ?? 0
        moe.denseFFNSize = try o.optionalInt("denseFFNSize", in: 0...(1 << 24)) ?? 0
        try moe.validate(path: o.path)
        return moe
    }
}

/// Reads the `config.json` that OPT, Llama, Mistral, Mixtral, Qwen and Phi-3 checkpoints ship on
/// the Hugging Face hub.
///
///     let m = try HFConfig.parse(data, source: "opt-13b/config.json", name: "opt-13b")
public enum HFConfig {
    public static func parse(_ data: Data, source: String, name: String) throws -> ModelSpec {
        try parse(try JSONFields.parse(data, source: source), source: source, name: name)
    }

    /// The same, from a config already read as JSON. An error names the file before the field.
    public static func parse(_ o: JSONFields, source: String, name: String) throws -> ModelSpec {
        do {
            return try read(o, source: source, name: name)
        } catch let e as InputError where !e.field.hasPrefix(source) {
            throw InputError(field: "\(source): \(e.field)", e.message)
        }
    }

    static func read(_ o: JSONFields, source: String, name: String) throws -> ModelSpec {
        var o = o
        if try o.optionalString("model_type") == "gemma3" {
            // Gemma 3's multimodal checkpoints nest the decoder's shape in `text_config`
            // (Gemma3Config, configuration_gemma3.py); the element type stays at the top.
            var text = try o.object("text_config").object
            if text["torch_dtype"] == nil, let d = o.object["torch_dtype"] { text["torch_dtype"] = d }
            if text["model_type"] == nil { text["model_type"] = "gemma3_text" }
            o = JSONFields(text, path: o.path)
        }
        let type = try o.optionalString("model_type") ?? ""
        if type == "gemma3_text" {
            // Gemma3TextConfig's defaults for what a checkpoint may leave out (configuration_gemma3.py).
            var fields = o.object
            for (key, value) in [("vocab_size", 262_208), ("max_position_embeddings", 131_072), ("sliding_window_pattern", 6)] as [(String, Any)]
            where fields[key] == nil { fields[key] = value }
            if fields["tie_word_embeddings"] == nil { fields["tie_word_embeddings"] = true }
            o = JSONFields(fields, path: o.path)
        }
        // gpt-oss keeps every tensor but the MXFP4 experts in bf16 (OpenAI's model card).
        let dtypeText = try o.optionalString("torch_dtype") ?? (type == "gpt_oss" ? "bfloat16" : "float16")
        let dtype: DType
        switch dtypeText {
        case "float16": dtype = .fp16
        case "bfloat16": dtype = .bf16
        case "float32": dtype = .fp32
        default: throw InputError(field: "\(source): torch_dtype", "must be float16, bfloat16 or float32, got \"\(dtypeText)\"")
        }
        let layers = try o.int("num_hidden_layers", in: 1...1024)
        let hidden = try o.int("hidden_size", in: 1...(1 << 24))
        let heads = try o.int("num_attention_heads", in: 1...4096)
        let vocab = try o.int("vocab_size", in: 1...(1 << 22))
        var maxContext = try o.optionalInt("max_position_embeddings", in: 1...(1 << 24)) ?? 2048
        if !o.has("head_dim"), hidden % heads != 0 {
            throw InputError(field: "\(source): num_attention_heads", "must divide hidden_size (\(hidden)) when head_dim is not given, got \(heads)")
        }
        if let kv = try o.optionalInt("num_key_value_heads", in: 1...4096), heads % kv != 0 {
            throw InputError(field: "\(source): num_key_value_heads", "must divide num_attention_heads (\(heads)), got \(kv)")
        }
        var spec: ModelSpec
        switch type {
        case "opt":
            if let proj = try o.optionalInt("word_embed_proj_dim", in: 1...(1 << 24)), proj != hidden {
                throw InputError(field: "\(source): word_embed_proj_dim", "must equal hidden_size (\(hidden)); projected embeddings (OPT-350M) are not modelled, got \(proj)")
            }
            let act = try o.optionalString("activation_function") ?? "relu"
            guard act == "relu" || act == "gelu" else {
                throw InputError(field: "\(source): activation_function", "must be relu or gelu for an OPT model, got \"\(act)\"")
            }
            spec = ModelSpec(name: name, layers: layers, hidden: hidden, heads: heads, kvHeads: heads,
                             headDim: hidden / heads, ffnSize: try o.int("ffn_dim", in: 1...(1 << 24)), ffnKind: .relu2,
                             vocab: vocab, dtype: dtype, maxContext: maxContext,
                             bias: o.has("enable_bias") ? try o.bool("enable_bias") : true,
                             tiedEmbeddings: o.has("tie_word_embeddings") ? try o.bool("tie_word_embeddings") : true,
                             learnedPositions: true, source: source)
        case "llama", "mistral", "qwen2", "qwen3", "phi3", "mixtral", "qwen2_moe", "qwen3_moe", "gemma2", "gemma3_text", "gpt_oss", "deepseek_v2", "deepseek_v3":
            // Qwen2/2.5 (transformers modeling_qwen2.py): Q/K/V biases, optional sliding window.
            // Qwen3 (modeling_qwen3.py): per-head q_norm and k_norm, head_dim given. Phi-3
            // (modeling_phi3.py): fused qkv and gate_up projections, the same counts as Llama.
            // Gemma 2 and 3 (modeling_gemma2.py, modeling_gemma3.py): GeGLU FFN (three matrices),
            // a norm before and after each block, tied embeddings, head_dim given; Gemma 3 adds
            // per-head Q/K norms.
            if type == "phi3", let act = try o.optionalString("hidden_act"), act != "silu" {
                throw InputError(field: "\(source): hidden_act", "must be silu for a Phi-3 model, got \"\(act)\"")
            }
            if let scaling = try? o.object("rope_scaling"),
               let factor = try scaling.optionalDouble("factor", in: 1...1024),
               let original = try scaling.optionalInt("original_max_position_embeddings", in: 1...(1 << 24)) {
                maxContext = max(maxContext, Int(Double(original) * factor))
            }
            let window = try slidingWindow(o, type: type, layers: layers, maxContext: maxContext, source: source)
            let moe = try mixtureOfExperts(o, type: type, source: source)
            let mla = try latentAttention(o, type: type, source: source)
            let gemma = type == "gemma2" || type == "gemma3_text"
            // gpt-oss (modeling_gpt_oss.py): biases on Q, K, V and O (`attention_bias`), one sink
            // logit per head, RMSNorms without bias.
            let gptOSS = type == "gpt_oss"
            let attentionBias = o.has("attention_bias") ? try o.bool("attention_bias") : false
            spec = ModelSpec(name: name, layers: layers, hidden: hidden, heads: heads,
                             kvHeads: try o.optionalInt("num_key_value_heads", in: 1...4096) ?? heads,
                             headDim: try mla?.valueHeadDim ?? o.optionalInt("head_dim", in: 1...4096) ?? hidden / heads,
                             ffnSize: try moe?.expertFFNSize ?? o.int("intermediate_size", in: 1...(1 << 24)), ffnKind: .gated3,
                             vocab: vocab, dtype: dtype, maxContext: maxContext,
                             bias: attentionBias && !gptOSS,
                             tiedEmbeddings: o.has("tie_word_embeddings") ? try o.bool("tie_word_embeddings") : gemma,
                             learnedPositions: false, source: source,
                             qkvBias: ((type == "qwen2" || type == "qwen2_moe") && !attentionBias) || (gptOSS && attentionBias),
                             qkNorm: ["qwen3", "qwen3_moe", "gemma3_text"].contains(type), moe: moe, slidingWindow: window, postNorms: gemma)
            spec.outputBias = gptOSS && attentionBias
            spec.mla = mla
            spec.attentionSinks = gptOSS
        default:
            throw InputError(field: "\(source): model_type", "must be one of \(supportedTypes.joined(separator: ", ")) (the families read so far), got \"\(type)\"")
        }
        if let q = try o.optionalObject("quantization_config") {
            spec.weightFormat = try weightFormat(q, source: source)
        }
        try spec.validate(path: source)
        return spec
    }

    /// A checkpoint's `quantization_config` as transformers' quantizers read it: `quant_method`
    /// awq or gptq with `bits` (AutoAWQ also `w_bit`) and `group_size` (-1: one scale a column);
    /// fp8 with an optional `weight_block_size`; bitsandbytes with `load_in_4bit` or `load_in_8bit`
    /// and `bnb_4bit_use_double_quant`; mxfp4 (gpt-oss), the experts only. Another method is
    /// refused naming these.
    static func weightFormat(_ q: JSONFields, source: String) throws -> WeightFormat {
        let method = try q.optionalString("quant_method") ?? ""
        switch method {
        case "awq", "gptq":
            let bits = try q.optionalInt("bits", in: 1...16) ?? q.optionalInt("w_bit", in: 1...16) ?? 4
            let g = try q.optionalInt("group_size", in: -1...65536) ?? q.optionalInt("q_group_size", in: -1...65536) ?? 128
            guard g == -1 || g >= 1 else {
                throw InputError(field: "\(source): quantization_config.group_size", "must be -1 (one scale a column) or a positive group size, got \(g)")
            }
            return WeightFormat(method: method == "awq" ? .awq : .gptq, bits: bits, groupSize: g == -1 ? nil : g)
        case "fp8":
            var block: Int? = nil
            if q.has("weight_block_size") {
                let sizes = try q.array("weight_block_size")
                guard sizes.count == 2, let a = (sizes[0] as? NSNumber)?.intValue, let b = (sizes[1] as? NSNumber)?.intValue, a == b, a >= 1 else {
                    throw InputError(field: "\(source): quantization_config.weight_block_size", "must be a square block [n, n], got \(describe(sizes))")
                }
                block = a
            }
            return WeightFormat(method: .fp8, bits: 8, groupSize: block)
        case "bitsandbytes":
            let four = q.has("load_in_4bit") ? try q.bool("load_in_4bit") : false
            let eight = q.has("load_in_8bit") ? try q.bool("load_in_8bit") : false
            guard four != eight else {
                throw InputError(field: "\(source): quantization_config.load_in_4bit", "exactly one of load_in_4bit and load_in_8bit must be true")
            }
            let double = q.has("bnb_4bit_use_double_quant") ? try q.bool("bnb_4bit_use_double_quant") : false
            return WeightFormat(method: .bitsandbytes, bits: four ? 4 : 8, groupSize: four ? 64 : nil, doubleQuantized: four && double)
        case "mxfp4":
            return WeightFormat(method: .mxfp4, bits: 4, groupSize: 32, expertsOnly: true)
        default:
            throw InputError(field: "\(source): quantization_config.quant_method", "must be awq, gptq, fp8, bitsandbytes or mxfp4 (the formats read), got \"\(method)\"")
        }
    }

    /// The `model_type`s read.
    public static let supportedTypes = ["opt", "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "phi3",
                                        "gemma2", "gemma3", "gemma3_text", "gpt_oss", "deepseek_v2", "deepseek_v3"]

    /// Which layers attend through a sliding window, as each family's modeling code decides:
    /// `layer_types` where the config lists them (`sliding_attention` / `full_attention`);
    /// otherwise Mistral, Mixtral and Phi-3 window every layer when `sliding_window` is set;
    /// Qwen2/3 (and their mixtures) window the layers from `max_window_layers` on when
    /// `use_sliding_window` is true (`Qwen2Config.layer_types`); Gemma 2 the even layers
    /// (`Gemma2Attention`: `not bool(layer_idx % 2)`) and gpt-oss without `layer_types` (its
    /// config's default alternates from a local layer 0); Gemma 3 all but every
    /// `sliding_window_pattern`-th (`bool((layer_idx + 1) % pattern)`). A window no shorter than
    /// the model's context never binds and is dropped.
    static func slidingWindow(_ o: JSONFields, type: String, layers: Int, maxContext: Int, source: String) throws -> SlidingWindow? {
        guard o.has("sliding_window") else {
            if type == "gemma2" || type == "gemma3_text" {
                throw InputError(field: "\(source): sliding_window", "missing; Gemma's local layers need their window")
            }
            return nil
        }
        let w = try o.int("sliding_window", in: 1...(1 << 24))
        var pattern: [Bool]
        if o.has("layer_types") {
            let names = try o.array("layer_types")
            guard names.count == layers else {
                throw InputError(field: "\(source): layer_types", "must list num_hidden_layers (\(layers)) entries, got \(names.count)")
            }
            pattern = try names.map { v in
                guard let n = v as? String, n == "sliding_attention" || n == "full_attention" else {
                    throw InputError(field: "\(source): layer_types", "entries must be \"sliding_attention\" or \"full_attention\", got \(v)")
                }
                return n == "sliding_attention"
            }
        } else {
            switch type {
            case "mistral", "mixtral", "phi3": pattern = [true]
            case "qwen2", "qwen3", "qwen2_moe", "qwen3_moe":
                guard o.has("use_sliding_window"), try o.bool("use_sliding_window") else { return nil }
                // Qwen2Config and Qwen3Config default max_window_layers to 28.
                let from = try o.optionalInt("max_window_layers", in: 0...1024) ?? 28
                pattern = (0 ..< layers).map { $0 >= from }
            case "gemma2", "gpt_oss": pattern = [true, false]
            case "gemma3_text":
                let every = try o.int("sliding_window_pattern", in: 1...1024)
                pattern = (0 ..< every).map { ($0 + 1) % every != 0 }
            default: return nil
            }
        }
        guard w < maxContext, pattern.contains(true) else { return nil }
        // The shortest cycle that repeats into the listed pattern (24 alternating entries: [true, false]).
        let period = (1 ... pattern.count).first { p in pattern.indices.allSatisfy { pattern[$0] == pattern[$0 % p] } }!
        return SlidingWindow(tokens: w, pattern: Array(pattern.prefix(period)))
    }

    /// The sparse FFN of the mixture-of-experts families, nil for the dense ones. Mixtral
    /// (transformers `configuration_mixtral.py`): `num_local_experts` gated experts of
    /// `intermediate_size`, `num_experts_per_tok` per token. Qwen2-MoE and Qwen3-MoE
    /// (`configuration_qwen2_moe.py`, `configuration_qwen3_moe.py`): `num_experts` of
    /// `moe_intermediate_size`; Qwen2-MoE adds a shared expert of `shared_expert_intermediate_size`
    /// behind a one-output sigmoid gate (`Qwen2MoeSparseMoeBlock`). Layers with a dense FFN among
    /// the sparse ones (`decoder_sparse_step` above 1, `mlp_only_layers`) are refused.
    static func mixtureOfExperts(_ o: JSONFields, type: String, source: String) throws -> MoESpec? {
        let experts: Int, width: Int, shared: Int
        switch type {
        case "mixtral", "gpt_oss":
            experts = try o.int("num_local_experts", in: 2...4096)
            width = try o.int("intermediate_size", in: 1...(1 << 24))
            shared = 0
        case "deepseek_v2", "deepseek_v3":
            experts = try o.int("n_routed_experts", in: 2...4096)
            width = try o.int("moe_intermediate_size", in: 1...(1 << 24))
            shared = (try o.optionalInt("n_shared_experts", in: 0...64) ?? 0) * width
            if let freq = try o.optionalInt("moe_layer_freq", in: 1...1024), freq != 1 {
                throw InputError(field: "\(source): moe_layer_freq", "must be 1 (every layer after the dense ones sparse), got \(freq)")
            }
        case "qwen2_moe", "qwen3_moe":
            experts = try o.int("num_experts", in: 2...4096)
            width = try o.int("moe_intermediate_size", in: 1...(1 << 24))
            shared = type == "qwen2_moe" ? try o.int("shared_expert_intermediate_size", in: 0...(1 << 24)) : 0
            if let step = try o.optionalInt("decoder_sparse_step", in: 1...1024), step != 1 {
                throw InputError(field: "\(source): decoder_sparse_step", "must be 1 (every layer sparse); dense FFN layers among sparse ones are not modelled, got \(step)")
            }
            if o.has("mlp_only_layers"), !(try o.array("mlp_only_layers")).isEmpty {
                throw InputError(field: "\(source): mlp_only_layers", "must be empty (every layer sparse); dense FFN layers among sparse ones are not modelled")
            }
        default:
            return nil
        }
        let k = try o.optionalInt("num_experts_per_tok", in: 1...4096) ?? o.int("experts_per_token", in: 1...4096)
        guard k <= experts else {
            throw InputError(field: "\(source): num_experts_per_tok", "must be at most the number of experts (\(experts)), got \(k)")
        }
        // Qwen2-MoE gates its shared expert (`shared_expert_gate`); DeepSeek's shared experts are plain.
        var moe = MoESpec(experts: experts, activeExperts: k, expertFFNSize: width, sharedExpertFFNSize: shared,
                          sharedExpertGate: shared > 0 && type == "qwen2_moe")
        moe.expertBias = type == "gpt_oss"
        if type.hasPrefix("deepseek") {
            // DeepSeek's leading dense layers (`first_k_dense_replace`) and V3's router bias
            // (`e_score_correction_bias`, DeepseekV3TopkRouter in modeling_deepseek_v3.py).
            moe.denseLayers = try o.optionalInt("first_k_dense_replace", in: 0...1024) ?? 0
            moe.denseFFNSize = moe.denseLayers > 0 ? try o.int("intermediate_size", in: 1...(1 << 24)) : 0
            moe.routerBias = type == "deepseek_v3"
        }
        return moe
    }

    /// DeepSeek-V2 and V3's multi-head latent attention: `q_lora_rank` (null: a full query
    /// projection), `kv_lora_rank`, `qk_nope_head_dim`, `qk_rope_head_dim`, `v_head_dim`.
    static func latentAttention(_ o: JSONFields, type: String, source: String) throws -> LatentAttention? {
        guard type == "deepseek_v2" || type == "deepseek_v3" else { return nil }
        return LatentAttention(qLoraRank: try o.optionalInt("q_lora_rank", in: 1...65536), kvLoraRank: try o.int("kv_lora_rank", in: 1...65536),
                               nopeHeadDim: try o.int("qk_nope_head_dim", in: 1...65536), ropeHeadDim: try o.int("qk_rope_head_dim", in: 1...65536),
                               valueHeadDim: try o.int("v_head_dim", in: 1...65536))
    }
}
