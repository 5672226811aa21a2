import Foundation

/// The sparse feed-forward block of a mixture-of-experts layer: a router (`hidden x experts`, no
/// bias) picks `activeExperts` of `experts` gated FFNs per token, and a shared expert, where the
/// family has one, runs on every token.
///
/// Read from the families' `config.json` by `HFConfig` (Mixtral: `num_local_experts`,
/// `num_experts_per_tok`, `intermediate_size`; Qwen2-MoE and Qwen3-MoE: `num_experts`,
/// `num_experts_per_tok`, `moe_intermediate_size`, Qwen2-MoE's `shared_expert_intermediate_size`
/// with its one-output sigmoid gate).
///
/// Expected distinct experts a batch touches. With `b` routed tokens each choosing `k` of `E`
/// experts uniformly, an expert is missed by one token with probability `1 - k/E`, so
///
///     D(b) = E * (1 - (1 - k/E)^b)          // Mixtral (E = 8, k = 2), b = 1: 2;  b = 8: 7.20;  b = 64: 8.00
///
/// `routingSkew` s in [0, 1] moves that count toward the floor of `k` experts (every token choosing
/// the same ones): `D_s(b) = k + (1 - s) * (D(b) - k)`. s = 0 is uniform routing; s = 1 is one fixed
/// set of experts. Real routers sit between the two (an expert's load varies across tokens), and
/// the option lets a user state how far.
public struct MoESpec: Codable, Sendable, Equatable {
    /// Routed experts per layer, E.
    public var experts: Int
    /// Experts each token runs, k.
    public var activeExperts: Int
    /// Intermediate width of one routed expert's gated FFN.
    public var expertFFNSize: Int
    /// Intermediate width of the shared expert that every token runs (0: none).
    public var sharedExpertFFNSize: Int
    /// The shared expert's output is scaled by a sigmoid gate of one output (Qwen2-MoE's
    /// `shared_expert_gate`, `hidden x 1`).
    public var sharedExpertGate: Bool
    /// How far routing is from uniform, 0 (uniform) to 1 (every token the same `k` experts).
    public var routingSkew: Double
    /// Bias vectors on the router and on each expert's projections (gpt-oss: `router.bias`,
    /// `gate_up_proj_bias` of 2F and `down_proj_bias` of `hidden` per expert, transformers
    /// `modeling_gpt_oss.py`).
    public var expertBias = false
    /// A bias on the router alone (DeepSeek-V3's `e_score_correction_bias`, E elements).
    public var routerBias = false
    /// Leading layers whose FFN is dense (DeepSeek's `first_k_dense_replace`), of width
    /// `denseFFNSize` (its `intermediate_size`).
    public var denseLayers = 0
    public var denseFFNSize = 0

    public init(experts: Int, activeExperts: Int, expertFFNSize: Int, sharedExpertFFNSize: Int = 0,
                sharedExpertGate: Bool = false, routingSkew: Double = 0) {
        self.experts = experts; self.activeExperts = activeExperts; self.expertFFNSize = expertFFNSize
        self.sharedExpertFFNSize = sharedExpertFFNSize; self.sharedExpertGate = sharedExpertGate; self.routingSkew = routingSkew
    }

    enum CodingKeys: String, CodingKey {
        case experts, activeExperts, expertFFNSize, sharedExpertFFNSize, sharedExpertGate, routingSkew, expertBias, denseLayers, denseFFNSize, routerBias
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(experts: try c.decode(Int.self, forKey: .experts), activeExperts: try c.decode(Int.self, forKey: .activeExperts),
                  expertFFNSize: try c.decode(Int.self, forKey: .expertFFNSize),
                  sharedExpertFFNSize: try c.decodeIfPresent(Int.self, forKey: .sharedExpertFFNSize) ?? 0,
                  sharedExpertGate: try c.decodeIfPresent(Bool.self, forKey: .sharedExpertGate) ?? false,
                  routingSkew: try c.decodeIfPresent(Double.self, forKey: .routingSkew) ?? 0)
        expertBias = try c.decodeIfPresent(Bool.self, forKey: .expertBias) ?? false
        routerBias = try c.decodeIfPresent(Bool.self, forKey: .routerBias) ?? false
        denseLayers = try c.decodeIfPresent(Int.self, forKey: .denseLayers) ?? 0
        denseFFNSize = try c.decodeIfPresent(Int.self, forKey: .denseFFNSize) ?? 0
    }

    /// Expected distinct routed experts `tokens` routed tokens run (formula above); 0 for no tokens.
    public func expectedDistinctExperts(tokens: Int) -> Double {
        guard tokens > 0 else { return 0 }
        let e = Double(experts), k = Double(activeExperts)
        let uniform = e * (1 - pow(1 - k / e, Double(tokens)))
        return k + (1 - routingSkew) * (uniform - k)
    }

    /// Elements of one routed expert's gate, up and down matrices.
    public func expertMatrixElements(hidden: Int) -> Int { 3 * hidden * expertFFNSize }
    /// Elements of one routed expert, its biases included.
    public func expertElements(hidden: Int) -> Int {
        expertMatrixElements(hidden: hidden) + (expertBias ? 2 * expertFFNSize + hidden : 0)
    }
    /// Matrix elements of the router, the shared expert and its gate: what every token's FFN
    /// reads besides its routed experts (and the router's bias).
    public func alwaysReadMatrixElements(hidden: Int) -> Int {
        hidden * experts + 3 * hidden * sharedExpertFFNSize + (sharedExpertGate ? hidden : 0)
    }

    /// Checks the fields; throws naming the first out of range.
    public func validate(path: String) throws {
        guard (2...4096).contains(experts) else {
            throw InputError(field: "\(path).experts", "must be an integer from 2 to 4096, got \(experts)")
        }
        guard (1...experts).contains(activeExperts) else {
            throw InputError(field: "\(path).activeExperts", "must be an integer from 1 to experts (\(experts)), got \(activeExperts)")
        }
        guard (1...(1 << 24)).contains(expertFFNSize) else {
            throw InputError(field: "\(path).expertFFNSize", "must be an integer from 1 to \(1 << 24), got \(expertFFNSize)")
        }
        guard (0...(1 << 24)).contains(sharedExpertFFNSize) else {
            throw InputError(field: "\(path).sharedExpertFFNSize", "must be an integer from 0 (no shared expert) to \(1 << 24), got \(sharedExpertFFNSize)")
        }
        guard denseLayers >= 0, denseLayers <= 1024, denseLayers == 0 || (1...(1 << 24)).contains(denseFFNSize) else {
            throw InputError(field: "\(path).denseLayers", "must be 0 to 1024 leading dense layers, with a denseFFNSize from 1 to \(1 << 24), got \(denseLayers) of \(denseFFNSize)")
        }
        guard routingSkew >= 0, routingSkew <= 1 else {
            throw InputError(field: "\(path).routingSkew", "must be from 0 (uniform routing) to 1 (every token the same experts), got \(routingSkew)")
        }
    }
}
