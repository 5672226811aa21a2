/// Where one context token's cache entry lives, at every layer.
public enum TokenClass: Int, CaseIterable, Sendable, Codable {
    /// K and V resident in GPU memory.
    case gpuKV
    /// Activation checkpoint in GPU memory; K and V recomputed with the K/V projection.
    case gpuAct
    /// K and V in host memory, loaded over the link each step.
    case hostKV
    /// Activation checkpoint in host memory, loaded over the link and then recomputed.
    case hostAct
    /// Nothing kept; the token is re-run through every layer.
    case recompute

    public var key: String {
        switch self {
        case .gpuKV: "gpuKV"
        case .gpuAct: "gpuAct"
        case .hostKV: "hostKV"
        case .hostAct: "hostAct"
        case .recompute: "recompute"
        }
    }

    public var onHost: Bool { self == .hostKV || self == .hostAct }
}

/// Tokens per sequence in each placement class; the classes add up to the context.
///
///     let p = TokenPlacement(gpuKV: 0, gpuAct: 1024, hostKV: 614, hostAct: 410, recompute: 0)
///     p.total            // 2048
///     p[.hostKV]         // 614
public struct TokenPlacement: Equatable, Sendable, Codable, CustomStringConvertible {
    public var gpuKV = 0
    public var gpuAct = 0
    public var hostKV = 0
    public var hostAct = 0
    public var recompute = 0

    public init(gpuKV: Int = 0, gpuAct: Int = 0, hostKV: Int = 0, hostAct: Int = 0, recompute: Int = 0) {
        self.gpuKV = gpuKV; self.gpuAct = gpuAct; self.hostKV = hostKV; self.hostAct = hostAct; self.recompute = recompute
    }

    public subscript(c: TokenClass) -> Int {
        get {
            switch c {
            case .gpuKV: gpuKV
            case .gpuAct: gpuAct
            case .hostKV: hostKV
            case .hostAct: hostAct
            case .recompute: recompute
            }
        }
        set {
            switch c {
            case .gpuKV: gpuKV = newValue
            case .gpuAct: gpuAct = newValue
            case .hostKV: hostKV = newValue
            case .hostAct: hostAct = newValue
            case .recompute: recompute = newValue
            }
        }
    }

    public var total: Int { gpuKV + gpuAct + hostKV + hostAct + recompute }
    /// Tokens whose K and V are recomputed from an activation checkpoint.
    public var actTokens: Int { gpuAct + hostAct }

    public var description: String {
        TokenClass.allCases.map { "\($0.key)=\(self[$0])" }.joined(separator: " ")
    }

    /// The class a new token joins so that the split keeps following `target`'s proportions: the
    /// class furthest below its share of `total + 1` (ties go to the earlier class). Counts never
    /// decrease, so no cached entry ever moves.
    public func classForNextToken(target: TokenPlacement) -> TokenClass {
        let next = Double(total + 1)
        let targetTotal = Double(max(target.total, 1))
        var best = TokenClass.gpuKV
        var bestDeficit = -Double.infinity
        for c in TokenClass.allCases where target[c] > 0 {
            let deficit = Double(target[c]) / targetTotal * next - Double(self[c])
            if deficit > bestDeficit + 1e-12 {
                best = c
                bestDeficit = deficit
            }
        }
        return best
    }

    /// What a layer caches of this placement: all of it on a global layer; on a local layer of a
    /// sliding window of `W` tokens, at most `W - reserve` entries (`reserve` = 1 before a decode
    /// step, whose new token fills the window), split in this placement's proportions. Which
    /// classes the newest tokens fall in is not tracked, so the window takes every class's share.
    public func cached(atLayer layer: Int, of model: ModelSpec, reserve: Int = 0) -> TokenPlacement {
        guard let w = model.slidingWindow, w.isLocal(layer: layer) else { return self }
        let limit = max(w.tokens - reserve, 0)
        return total <= limit ? self : .apportion(limit, like: self)
    }

    /// Entries of each class summed over the model's layers (`layers x self` without a sliding
    /// window): what the caches hold in memory.
    public func summedOverLayers(of model: ModelSpec) -> TokenPlacement {
        guard let w = model.slidingWindow else {
            var p = TokenPlacement()
            for c in TokenClass.allCases { p[c] = self[c] * model.layers }
            return p
        }
        let local = w.localLayers(of: model.layers)
        let windowed = cached(atLayer: (0 ..< w.pattern.count).first(where: w.isLocal)!, of: model)
        var p = TokenPlacement()
        for c in TokenClass.allCases { p[c] = self[c] * (model.layers - local) + windowed[c] * local }
        return p
    }

    /// `context` tokens split in `target`'s proportions by largest remainder (ties to the earlier class).
    public static func apportion(_ context: Int, like target: TokenPlacement) -> TokenPlacement {
        let total = Double(max(target.total, 1))
        var p = TokenPlacement()
        var remainders: [(Double, Int)] = []
        for c in TokenClass.allCases {
            let exact = Double(target[c]) / total * Double(context)
            p[c] = Int(exact.rounded(.down))
            remainders.append((exact - Double(p[c]), c.rawValue))
        }
        var left = context - p.total
        for (_, i) in remainders.sorted(by: { $0.0 > $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) }) where left > 0 {
            p[TokenClass(rawValue: i)!] += 1
            left -= 1
        }
        return p
    }
}

/// Shares of one block's weight bytes on each tier; they add up to 1.
public struct TierShares: Equatable, Sendable, Codable {
    public var gpu: Double
    public var host: Double
    public var disk: Double

    public init(gpu: Double, host: Double, disk: Double = 0) {
        self.gpu = gpu; self.host = host; self.disk = disk
    }

    /// The share that is copied to the GPU when the block runs (from host memory or from disk).
    public var streamed: Double { host + disk }
}

/// The two weight blocks of a decoder layer.
public enum WeightBlock: Int, CaseIterable, Sendable {
    /// Norm, Q/K/V and output projections (and their biases).
    case attention
    /// Norm and the FFN matrices (and their biases).
    case ffn
}

/// Where the weights live: resident on the GPU, or streamed layer by layer from host memory or
/// from disk.
///
/// The uniform form keeps `gpuFraction` of every weight matrix on the GPU and `diskFraction` on
/// disk, the rest in host memory. An engine that places whole tensors (FlexGen's `--percent`,
/// `FlexGenPlacement`) gives per-block shares instead (`blocks`), and `gpuFraction` is then the
/// byte-weighted share of the layer's weights on the GPU.
public struct WeightPlacement: Equatable, Sendable, Codable {
    public var gpuFraction: Double
    public var diskFraction: Double = 0
    public var blocks: [TierShares]? = nil

    public static let gpu = WeightPlacement(gpuFraction: 1)
    public static let host = WeightPlacement(gpuFraction: 0)
    public init(gpuFraction: Double, diskFraction: Double = 0) {
        self.gpuFraction = gpuFraction
        self.diskFraction = diskFraction
    }

    /// Per-block tiers for `model` (attention first, then FFN).
    public init(attention: TierShares, ffn: TierShares, model: ModelSpec) {
        let a = model.attentionWeightBytes, f = model.ffnWeightBytes
        gpuFraction = (attention.gpu * a + ffn.gpu * f) / (a + f)
        diskFraction = (attention.disk * a + ffn.disk * f) / (a + f)
        blocks = [attention, ffn]
    }

    public var streamedFraction: Double { 1 - gpuFraction }
    public var hostFraction: Double { 1 - gpuFraction - diskFraction }

    /// The tiers of one block.
    public func tiers(_ b: WeightBlock) -> TierShares {
        blocks?[b.rawValue] ?? TierShares(gpu: gpuFraction, host: 1 - gpuFraction - diskFraction, disk: diskFraction)
    }

    /// Bytes of `b` of one layer on each tier.
    public func bytes(_ b: WeightBlock, _ model: ModelSpec) -> (gpu: Double, host: Double, disk: Double) {
        let t = tiers(b)
        let total = b == .attention ? model.attentionWeightBytes : model.ffnWeightBytes
        return (t.gpu * total, t.host * total, t.disk * total)
    }

    public var description: String {
        if blocks != nil { return String(format: "%.1f%% on GPU by whole tensors%@", gpuFraction * 100, diskFraction > 0 ? String(format: ", %.1f%% on disk", diskFraction * 100) : "") }
        let disk = diskFraction > 0 ? ", \(Int((diskFraction * 100).rounded()))% on disk" : ""
        return gpuFraction >= 1 ? "gpu" : gpuFraction <= 0 && diskFraction <= 0 ? "host" : "\(Int((gpuFraction * 100).rounded()))% on GPU\(disk)"
    }
}

/// 4-bit (or 8-bit) group-wise quantisation of weights and KV cache: `bits` per element plus an
/// fp16 scale and minimum per group of `groupSize` elements, so `bits / 8 + 4 / groupSize` bytes
/// per element (FlexGen's compression.py 87-144: 4 bits, groups of 64, 0.5625 bytes; ZeRO-Inference
/// deepspeed/inference/quantization/utils.py 43-93: the same format).
public struct Quantization: Equatable, Sendable, Codable {
    public var bits: Int
    public var groupSize: Int
    public init(bits: Int, groupSize: Int) { self.bits = bits; self.groupSize = groupSize }
    public static let flexGen4 = Quantization(bits: 4, groupSize: 64)
    public var bytesPerElement: Double { Double(bits) / 8 + 4 / Double(groupSize) }
}

/// Which weights and caches are quantised.
public struct Compression: Equatable, Sendable, Codable {
    public var weights: Quantization?
    public var cache: Quantization?
    public init(weights: Quantization? = nil, cache: Quantization? = nil) { self.weights = weights; self.cache = cache }
    public static let none = Compression()
    public var isNone: Bool { weights == nil && cache == nil }
}

/// What is simulated.
public enum Phase: Equatable, Sendable {
    /// One decode step with `context` tokens already cached per sequence.
    case decodeStep(context: Int)
    /// The prefill of `prompt` tokens, which yields the first new token, then `tokens - 1` decode steps.
    case generate(prompt: Int, tokens: Int)

    /// Context the placement counts describe: `context` for a step, `prompt + tokens` for a generation.
    public var placementContext: Int {
        switch self {
        case .decodeStep(let c): c
        case .generate(let p, let t): p + t
        }
    }
}
