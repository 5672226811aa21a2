/// Multi-head latent attention (DeepSeek-V2 and V3, transformers `modeling_deepseek_v3.py`,
/// `DeepseekV3Attention`): the query through an optional low-rank path (`q_a_proj` to
/// `qLoraRank`, a norm, `q_b_proj` to `heads x (nope + rope)`), keys and values through one
/// compressed latent (`kv_a_proj_with_mqa` to `kvLoraRank + rope`, a norm, `kv_b_proj` up to
/// `heads x (nope + value)`), and `o_proj` from `heads x value`.
///
/// What a token caches per layer is the latent and the rotary key, `kvLoraRank + ropeHeadDim`
/// elements (DeepSeek-V3: 512 + 64 = 576, against 2 x 128 x 128 = 32,768 for its heads in full),
/// as vLLM's MLA backends keep it. Decode attends in the latent space ("absorbing" `kv_b_proj`
/// into the query and the output): the query's no-rotary part is multiplied by the key half of
/// `kv_b_proj` (`heads x nope x kvLoraRank`), scores and values run over the 576-element latent
/// for every head, and the output is multiplied by the value half (`heads x kvLoraRank x value`)
/// before `o_proj`. The prefill up-projects the prompt's latents to full keys and values and runs
/// ordinary attention over `nope + rope`.
public struct LatentAttention: Codable, Sendable, Equatable {
    /// Rank of the query's low-rank path (nil: one full projection, DeepSeek-V2-Lite).
    public var qLoraRank: Int?
    public var kvLoraRank: Int
    public var nopeHeadDim: Int
    public var ropeHeadDim: Int
    public var valueHeadDim: Int

    public init(qLoraRank: Int?, kvLoraRank: Int, nopeHeadDim: Int, ropeHeadDim: Int, valueHeadDim: Int) {
        self.qLoraRank = qLoraRank; self.kvLoraRank = kvLoraRank; self.nopeHeadDim = nopeHeadDim
        self.ropeHeadDim = ropeHeadDim; self.valueHeadDim = valueHeadDim
    }

    /// Elements one token caches per layer.
    public var cachedElements: Int { kvLoraRank + ropeHeadDim }

    /// Matrix elements of the attention block.
    public func matrixElements(hidden: Int, heads: Int) -> Int {
        let qk = heads * (nopeHeadDim + ropeHeadDim)
        let query = qLoraRank.map { hidden * $0 + $0 * qk } ?? hidden * qk
        return query + hidden * cachedElements + kvLoraRank * heads * (nopeHeadDim + valueHeadDim) + heads * valueHeadDim * hidden
    }

    /// Elements of the block's norms besides the layer's input norm: the query path's and the latent's.
    public var innerNormElements: Int { (qLoraRank ?? 0) + kvLoraRank }

    public func validate(path: String) throws {
        for (name, v) in [("kvLoraRank", kvLoraRank), ("nopeHeadDim", nopeHeadDim), ("ropeHeadDim", ropeHeadDim), ("valueHeadDim", valueHeadDim)] {
            guard (1...65536).contains(v) else { throw InputError(field: "\(path).\(name)", "must be an integer from 1 to 65536, got \(v)") }
        }
        if let q = qLoraRank, !(1...65536).contains(q) {
            throw InputError(field: "\(path).qLoraRank", "must be an integer from 1 to 65536, got \(q)")
        }
        guard cachedElements % 2 == 0 else {
            throw InputError(field: "\(path).ropeHeadDim", "kvLoraRank + ropeHeadDim must be even (a cache entry counts as K and V halves), got \(cachedElements)")
        }
    }
}
