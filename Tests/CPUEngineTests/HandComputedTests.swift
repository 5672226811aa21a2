import CPUEngine
import PlannerCore
import Testing

/// A one-layer Llama-like decoder small enough to follow by hand: hidden 2, one head of dimension 2
/// (rotary positions: position p rotates (a, b) by p radians to (a cos p - b sin p, b cos p + a sin p)),
/// a gated FFN of width 1, vocabulary 3, RMS norms (eps 1e-5) with unit weights.
///
/// Weights: embeddings t0 = (1, 0), t1 = (0, 2), t2 = (1, 1); W_q = W_k = I, W_v = diag(2, 1), W_o = I;
/// gate = first input, up = second input, down = (1, -1); head columns (1, 0), (0, 1), (1, 1), so the
/// logits are (n0, n1, n0 + n1) of the final norm's output n.
///
/// Prefill of t0 at position 0: x = (1, 0); rms = sqrt(1/2 + 1e-5), xn = (1.4142100, 0) = q = k;
/// v = (2.8284200, 0); attention over itself returns v; x = (3.8284200, 0); the FFN's up input is 0,
/// so it adds 0; final norm (1.4142126, 0): logits (1.4142126, 0, 1.4142126).
///
/// Decode of t1 at position 1: x = (0, 2), xn = (0, 1.4142100); q = k1 = rotate(xn, 1 rad) =
/// (-1.1900167, 0.7641009); v1 = (0, 1.4142100). Scores / sqrt(2): with k0 = (1.4142100, 0):
/// -1.1900048; with k1: 1.4142065. Softmax: (0.0688679, 0.9311321). Output: 0.0688679 v0 + 0.9311321
/// v1 = (0.1947858, 1.3168164); x = (0.1947858, 3.3168164). Norm: (0.0829092, 1.4117799); gate
/// silu(0.0829092) = 0.0431716, times up 1.4117799: h = 0.0609495; down adds (h, -h):
/// x = (0.2557354, 3.2558669); final norm (0.1107397, 1.4098698): logits (0.1107397, 1.4098698, 1.5206095).
@Suite struct HandComputedTests {
    static let model = ModelSpec(name: "hand", layers: 1, hidden: 2, heads: 1, kvHeads: 1, headDim: 2, ffnSize: 1, ffnKind: .gated3,
                                 vocab: 3, dtype: .fp32, maxContext: 16, bias: false, tiedEmbeddings: false, learnedPositions: false,
                                 source: "test")

    func engine(_ capacity: TokenPlacement, weights: Double) throws -> CPUDecoder {
        let e = try CPUDecoder(shape: EngineShape(model: Self.model, batch: 1, weightsGPUFraction: weights, capacity: capacity,
                                                  maxPositions: 2, maxRows: 1))
        try e.setWeights("embedding", [1, 0, 0, 2, 1, 1])
        try e.setWeights("final.norm.weight", [1, 1])
        try e.setWeights("head", [1, 0, 1, 0, 1, 1])
        try e.setWeights("norm1.weight", layer: 0, [1, 1])
        try e.setWeights("norm2.weight", layer: 0, [1, 1])
        // Row-major 2 x 6: columns q0 q1 k0 k1 v0 v1.
        try e.setWeights("qkv", layer: 0, [1, 0, 1, 0, 2, 0,
                                           0, 1, 0, 1, 0, 1])
        try e.setWeights("o", layer: 0, [1, 0, 0, 1])
        try e.setWeights("up", layer: 0, [1, 0, 0, 1])   // 2 x 2: gate column, up column
        try e.setWeights("down", layer: 0, [1, -1])      // 1 x 2
        return e
    }

    static let prefillLogits: [Float] = [1.4142126, 0, 1.4142126]
    static let decodeLogits: [Float] = [0.1107397, 1.4098698, 1.5206095]

    func close(_ a: [Float], _ b: [Float]) -> Bool { a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) < 2e-5 } }

    /// The prompt token's entry kept as KV on the device, as an ACT checkpoint on the device (K and V
    /// recomputed at the decode step), as host KV and host ACT (loaded by the copy thread), and
    /// recomputed from its token; weights resident and streamed.
    @Test(arguments: [TokenClass.gpuKV, .gpuAct, .hostKV, .hostAct, .recompute], [1.0, 0.0])
    func matchesTheHandComputation(kept: TokenClass, weights: Double) throws {
        var capacity = TokenPlacement()
        capacity[kept] = 1
        capacity.gpuKV += 1
        let e = try engine(capacity, weights: weights)
        var split = TokenPlacement()
        split[kept] = 1
        let first = e.prefill(tokens: [0], split: split)
        #expect(close(first, Self.prefillLogits), "prefill \(first)")
        let second = e.decode(tokens: [1], newClass: .gpuKV)
        #expect(close(second, Self.decodeLogits), "decode \(second)")
    }
}
