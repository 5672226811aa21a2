import CPUEngine
import PlannerCore
import Testing

/// Small shapes of the two families: an OPT-like multi-head model (layer norm with bias, ReLU FFN,
/// learned positions, tied head) and a Llama-like grouped-query model (RMS norm, gated SiLU FFN,
/// rotary positions, 4 query heads per K/V head, separate head).
enum Shapes {
    static let mha = ModelSpec(name: "test-opt", layers: 3, hidden: 64, heads: 4, kvHeads: 4, headDim: 16, ffnSize: 256,
                               ffnKind: .relu2, vocab: 97, dtype: .fp32, maxContext: 2048, bias: true, tiedEmbeddings: true,
                               learnedPositions: true, source: "test")
    static let gqa = ModelSpec(name: "test-llama", layers: 3, hidden: 64, heads: 8, kvHeads: 2, headDim: 8, ffnSize: 160,
                               ffnKind: .gated3, vocab: 101, dtype: .fp32, maxContext: 2048, bias: false, tiedEmbeddings: false,
                               learnedPositions: false, source: "test")
}

/// A generation of `prompt` tokens then `tokens` new ones on the engine with a placement.
func generate(_ model: ModelSpec, batch: Int, prompt: Int, tokens: Int, weights: Double, _ placement: TokenPlacement) throws -> [[Float]] {
    let plan = ExecutionPlan(model: model, hardware: HardwareCatalog.h100sxm, batch: batch, weights: WeightPlacement(gpuFraction: weights),
                             placement: placement, phase: .generate(prompt: prompt, tokens: tokens))
    let engine = try CPUDecoder(shape: try PlanRunner.shape(plan))
    return PlanRunner.run(plan, on: engine).logits
}

/// Largest absolute difference between two runs' logits, over every step.
func maxDifference(_ a: [[Float]], _ b: [[Float]]) -> Float {
    zip(a, b).map { x, y in zip(x, y).map { abs($0 - $1) }.max() ?? 0 }.max() ?? 0
}

@Suite struct PolicyEquivalenceTests {
    // Prompt 12, then 20 new tokens: a prefill and 19 decode steps (20 sets of logits).
    static let prompt = 12, tokens = 20, context = 32

    /// Placements at the final context of 32 tokens per sequence, each a policy of the scenario format.
    static let policies: [(String, Double, TokenPlacement)] = [
        ("all KV, weights streamed", 0, TokenPlacement(gpuKV: 32)),
        ("KV-only offload", 0, TokenPlacement(gpuKV: 8, hostKV: 24)),
        ("ACT-only", 0, TokenPlacement(gpuAct: 12, hostAct: 20)),
        ("ACT on the device only", 1, TokenPlacement(gpuAct: 32)),
        ("token recompute 25%", 0, TokenPlacement(hostKV: 24, recompute: 8)),
        ("hybrid, 40% of weights resident", 0.4, TokenPlacement(gpuAct: 10, hostKV: 11, hostAct: 11)),
        ("hybrid with recompute and every class", 0.7, TokenPlacement(gpuKV: 4, gpuAct: 6, hostKV: 9, hostAct: 8, recompute: 5)),
    ]

    /// fp32 tolerance on logits: every policy computes each value with the same kernels on the same
    /// inputs in the same order (K and V from an ACT checkpoint are the same norm and the same columns
    /// of the same GEMM; the attention buffer holds every position in order), so they are expected to
    /// agree bit for bit. The bound allowed is what reordered fp32 sums could cost: each dot product
    /// of length k <= 256 carries at most k * 2^-24 (1.5e-5) relative error; through 3 layers and
    /// logits of magnitude below 10 that is below 1e-3, the bound used.
    static let tolerance: Float = 1e-3

    @Test(arguments: [Shapes.mha, Shapes.gqa])
    func everyPolicyMatchesAllKV(model: ModelSpec) throws {
        let reference = try generate(model, batch: 3, prompt: Self.prompt, tokens: Self.tokens, weights: 1, TokenPlacement(gpuKV: Self.context))
        #expect(reference.count == Self.tokens)
        #expect(reference.allSatisfy { $0.count == 3 * model.vocab && $0.allSatisfy(\.isFinite) })
        // The logits move from step to step (a run that ignored its cache would not pass the test by accident).
        #expect(maxDifference([reference[0]], [reference[Self.tokens - 1]]) > 0.1)
        for (name, weights, placement) in Self.policies {
            let run = try generate(model, batch: 3, prompt: Self.prompt, tokens: Self.tokens, weights: weights, placement)
            #expect(run.count == reference.count, "\(name)")
            let diff = maxDifference(run, reference)
            #expect(diff <= Self.tolerance, "\(model.name) \(name): logits differ by \(diff)")
        }
    }

    /// K and V recomputed from ACT checkpoints are the K and V the original pass computed: the same
    /// norm on the same row, then the K/V columns of the same weight matrix. With OpenBLAS's
    /// Cooperlake kernels (AVX-512) each output element's k sum runs in the same order whatever the
    /// number of rows, so the logits agree bit for bit; other kernel sets handle a GEMM of a few rows
    /// with another loop (with its Zen kernels, OpenBLAS 0.3.21, the logits differ by up to 1e-5), so
    /// there they agree within the fp32 reordering bound of `tolerance`. Checked on the placements
    /// that recompute K and V from checkpoints, with the weights resident and streamed.
    @Test(arguments: [Shapes.mha, Shapes.gqa])
    func actRecomputationIsExact(model: ModelSpec) throws {
        let bitwise = BLAS.coreName == "Cooperlake"
        let reference = try generate(model, batch: 3, prompt: Self.prompt, tokens: Self.tokens, weights: 1, TokenPlacement(gpuKV: Self.context))
        for placement in [TokenPlacement(gpuAct: 32), TokenPlacement(gpuAct: 12, hostAct: 20), TokenPlacement(gpuKV: 4, gpuAct: 10, hostKV: 9, hostAct: 9)] {
            for weights in [1.0, 0.0] {
                let run = try generate(model, batch: 3, prompt: Self.prompt, tokens: Self.tokens, weights: weights, placement)
                let diff = maxDifference(run, reference)
                if bitwise {
                    #expect(run == reference, "\(model.name) \(placement) weights \(weights) (\(BLAS.coreName) kernels): differs by \(diff)")
                } else {
                    #expect(run.count == reference.count && diff <= Self.tolerance, "\(model.name) \(placement) weights \(weights) (\(BLAS.coreName) kernels): differs by \(diff)")
                }
            }
        }
    }

    /// Dropping the cache changes the answer: a placement's logits are compared with a run whose
    /// cached tokens were different (another seed's prompt), to show the comparison can fail.
    @Test func aDifferentContextGivesDifferentLogits() throws {
        let model = Shapes.gqa
        let plan = ExecutionPlan(model: model, hardware: HardwareCatalog.h100sxm, batch: 2, weights: .gpu,
                                 placement: TokenPlacement(gpuAct: 16), phase: .generate(prompt: 8, tokens: 8))
        let a = PlanRunner.run(plan, on: try CPUDecoder(shape: try PlanRunner.shape(plan)), seed: 3).logits
        let b = PlanRunner.run(plan, on: try CPUDecoder(shape: try PlanRunner.shape(plan)), seed: 4).logits
        #expect(maxDifference(a, b) > 0.01)
    }
}
