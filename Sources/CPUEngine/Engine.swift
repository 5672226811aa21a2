import Foundation
import PlannerCore

/// An fp32 decoder on the CPU that executes the planner's placements with a real "host" and
/// "device" tier and a copy engine between them, as the simulator's schedule describes
/// (Sources/PlannerCore/Simulation/ScheduleBuilder.swift).
///
/// The model: token (and, for OPT, learned position) embeddings; per layer a pre-norm (layer norm
/// with bias for OPT shapes, RMS norm for gated shapes) attention block with a fused Q/K/V
/// projection, rotary positions for gated shapes, multi-head or grouped-query attention over a
/// cache, an output projection and a residual; a pre-norm FFN (fc1, ReLU, fc2; or gate and up fused,
/// SiLU, down) and a residual; a final norm and the LM head (tied to the embeddings or not). Weights
/// are seeded uniform values, the same for every placement.
///
/// The tiers: the device tier holds the resident share of every weight matrix (a share of its
/// columns), two weight buffers that streamed layers are copied into, the GPU-KV and GPU-ACT caches,
/// two attention K/V buffers, two host-ACT load buffers, two write-back buffers and the working set;
/// the host tier holds the streamed columns of the weights and the host KV and ACT caches.
///
/// The threads: the caller's thread is the compute stream (OpenBLAS with one thread); one copy
/// thread is the host-to-device engine and one the device-to-host engine. For each layer the H2D
/// thread copies, in the simulator's order, the host ACT entries, the attention weights, the host KV
/// entries (straight into the attention buffer at their positions) and the FFN weights, each copy
/// into the buffer of its layer's parity once the layer two executions back has released it; the
/// compute thread waits for the loads each kernel reads. The step's new entry, when its class lives
/// on the host, is copied into a write-back buffer and stored by the D2H thread; a later load of
/// the same layer waits for that store.
///
/// Per layer, in stream order: token recomputation (when the recomputed tokens are the first ones
/// of the sequence; otherwise after the cache is assembled, since they then attend to cached
/// tokens), K and V recomputed from GPU ACT and then from host ACT (norm and the K/V columns of the
/// Q/K/V projection: the same weights and the same per-row arithmetic as the original pass), the
/// GPU-KV entries copied into the attention buffer (skipped when the whole context is GPU KV: the
/// attention then reads the cache in place), norm and Q/K/V of the new token, attention, output
/// projection, FFN.
///
/// ACT checkpoints are the layer's input hidden state before the norm (the residual stream), so that
/// `K, V = norm(ACT) W_kv (+ bias, + rotary)` is exactly what the layer computed for that token.
///
/// Not thread safe: one caller drives an engine at a time (its copy threads synchronise with the
/// caller through their own counters). It is `Sendable` only so that a caller may hand it over.
public final class CPUDecoder: @unchecked Sendable {
    public let shape: EngineShape
    let seed: UInt64
    var m: ModelSpec { shape.model }
    let B: Int, L: Int, hidden: Int, qDim: Int, kvW: Int, qkvW: Int, upW: Int, ffn: Int, d: Int

    struct Mat {
        let k: Int, n: Int, n1: Int
        let resident: UnsafeMutablePointer<Float>
        /// Offset of the streamed columns (`k x (n - n1)`) in the layer's streamed block.
        let streamedOffset: Int
    }

    struct Layer {
        var norm1g: UnsafeMutablePointer<Float>, norm1b: UnsafeMutablePointer<Float>?
        var norm2g: UnsafeMutablePointer<Float>, norm2b: UnsafeMutablePointer<Float>?
        var bqkv: UnsafeMutablePointer<Float>?, bo: UnsafeMutablePointer<Float>?
        var bup: UnsafeMutablePointer<Float>?, bdown: UnsafeMutablePointer<Float>?
        var qkv: Mat, o: Mat, up: Mat, down: Mat
        var hostAttention: UnsafeMutablePointer<Float>, hostFFN: UnsafeMutablePointer<Float>
    }

    // Device tier.
    let residentStore: FloatBuffer
    let embedding: FloatBuffer
    var layers: [Layer] = []
    var tokenEmbedding: UnsafeMutablePointer<Float>, positionEmbedding: UnsafeMutablePointer<Float>?
    var finalNormG: UnsafeMutablePointer<Float>, finalNormB: UnsafeMutablePointer<Float>?
    var headWeight: UnsafeMutablePointer<Float>?
    let weightSlots: [FloatBuffer]
    let attentionStreamed: Int, ffnStreamed: Int
    let gpuKV: FloatBuffer, gpuAct: FloatBuffer
    let kvBuffers: [FloatBuffer], actStage: [FloatBuffer], outbox: [FloatBuffer]
    let x: FloatBuffer, xRec: FloatBuffer, xn: FloatBuffer, qkv: FloatBuffer, attnOut: FloatBuffer, tmp: FloatBuffer
    let up: FloatBuffer, act: FloatBuffer, actNorm: FloatBuffer, scores: FloatBuffer, logits: FloatBuffer
    let ropeTable: FloatBuffer?
    // Host tier.
    let hostWeights: FloatBuffer
    let hostKV: FloatBuffer, hostAct: FloatBuffer

    // Copy engines and events.
    // Started once the memory check has passed, so that a refused engine leaves no thread behind.
    let h2d: CopyEngine
    let d2h: CopyEngine
    let cacheReleased = Counter()
    let weightsReleased = Counter()
    /// Layer executions so far (every layer of every pass counts one).
    var executions = 0

    // The context of every sequence: class and slot of each position, and the tokens (position-major).
    public private(set) var classOf: [TokenClass] = []
    var slotOf: [Int] = []
    public private(set) var counts = TokenPlacement()
    var tokens: [Int32] = []

    /// Clock readings at the start of the last `decodeSteps` call and at the end of each of its steps.
    public private(set) var stepEnds: [Double] = []

    /// When set, the weight GEMMs record their time by shape and the attention calls theirs (for the
    /// benchmark and `planner run --breakdown`).
    public var recordKernels = false
    public private(set) var gemmLog: [GEMMShape: (calls: Int, seconds: Double)] = [:]
    public private(set) var attentionLog: (calls: Int, seconds: Double) = (0, 0)
    public struct GEMMShape: Hashable, Sendable { public var m: Int; public var n: Int; public var k: Int }

    /// Builds the engine after checking that it fits in this machine's memory (`MachineMemory.check`).
    public init(shape: EngineShape, seed: UInt64 = 1, availableMemory: Double? = MachineMemory.availableBytes()) throws {
        try shape.model.validate()
        guard shape.batch >= 1 else { throw InputError(field: "batch", "must be at least 1, got \(shape.batch)") }
        if shape.model.mla != nil {
            throw InputError(field: "model", "\(shape.model.name) uses multi-head latent attention, which the CPU engine does not implement")
        }
        if let f = shape.model.weightFormat {
            throw InputError(field: "model", "\(shape.model.name) is a quantised checkpoint (\(f.description)), which the CPU engine does not implement; it runs fp32 weights")
        }
        if let w = shape.model.slidingWindow {
            throw InputError(field: "model", "\(shape.model.name) attends through a sliding window of \(w.tokens) tokens on some layers, which the CPU engine does not implement; it attends to the whole context")
        }
        if let moe = shape.model.moe {
            throw InputError(field: "model", "\(shape.model.name) is a mixture of \(moe.experts) experts, which the CPU engine does not implement; it runs dense OPT- and Llama-shaped models")
        }
        if shape.model.qkvBias || shape.model.qkNorm {
            throw InputError(field: "model", "\(shape.model.name) has \(shape.model.qkvBias ? "biases on Q, K and V only" : "per-head Q and K norms"), which the CPU engine does not implement; it runs OPT- and Llama-shaped models")
        }
        guard shape.model.ffnKind == .relu2 || shape.model.headDim % 2 == 0 else {
            throw InputError(field: "model.headDim", "must be even for rotary positions, got \(shape.model.headDim)")
        }
        try MachineMemory.check(shape, available: availableMemory)
        h2d = CopyEngine(name: "h2d copy")
        d2h = CopyEngine(name: "d2h copy")
        self.shape = shape
        self.seed = seed
        let m = shape.model
        let B = shape.batch, L = m.layers, hidden = m.hidden, kvW = 2 * m.kvDim, d = m.headDim
        self.B = B; self.L = L; self.hidden = hidden; qDim = m.qDim; self.kvW = kvW; qkvW = shape.qkvWidth
        upW = shape.upWidth; ffn = m.ffnSize; self.d = d
        BLAS.setThreads(1)

        let att = shape.attentionMatrices, ff = shape.ffnMatrices
        attentionStreamed = shape.streamedElements(att)
        ffnStreamed = shape.streamedElements(ff)
        let perLayerResident = shape.residentElements(att) + shape.residentElements(ff) + shape.vectorElements
        residentStore = FloatBuffer(count: L * perLayerResident)
        hostWeights = FloatBuffer(count: L * (attentionStreamed + ffnStreamed))
        embedding = FloatBuffer(count: shape.embeddingElements)
        let slotSize = attentionStreamed + ffnStreamed
        weightSlots = (0 ..< 2).map { _ in FloatBuffer(count: slotSize) }

        let cap = shape.capacity
        gpuKV = FloatBuffer(count: L * cap.gpuKV * B * kvW)
        gpuAct = FloatBuffer(count: L * cap.gpuAct * B * hidden)
        hostKV = FloatBuffer(count: L * cap.hostKV * B * kvW)
        hostAct = FloatBuffer(count: L * cap.hostAct * B * hidden)
        kvBuffers = (0 ..< 2).map { _ in FloatBuffer(count: shape.maxPositions * B * kvW) }
        actStage = (0 ..< 2).map { _ in FloatBuffer(count: cap.hostAct * B * hidden) }
        let rows = shape.maxRows * B
        outbox = (0 ..< 2).map { _ in FloatBuffer(count: rows * max(kvW, hidden)) }
        x = FloatBuffer(count: rows * hidden)
        xRec = FloatBuffer(count: cap.recompute * B * hidden)
        xn = FloatBuffer(count: rows * hidden)
        qkv = FloatBuffer(count: rows * qkvW)
        attnOut = FloatBuffer(count: rows * qDim)
        tmp = FloatBuffer(count: rows * hidden)
        up = FloatBuffer(count: rows * upW)
        act = FloatBuffer(count: rows * ffn)
        actNorm = FloatBuffer(count: max(cap.gpuAct, cap.hostAct) * B * hidden)
        scores = FloatBuffer(count: max(shape.maxRows, m.heads / m.kvHeads) * shape.maxPositions)
        logits = FloatBuffer(count: shape.includeHead ? B * m.vocab : 1)
        if m.ffnKind == .gated3 {
            let t = FloatBuffer(count: shape.maxPositions * d)
            let half = d / 2
            for p in 0 ..< shape.maxPositions {
                for i in 0 ..< half {
                    let angle = Double(p) / pow(10000, Double(2 * i) / Double(d))
                    t.p[p * d + i] = Float(cos(angle))
                    t.p[p * d + half + i] = Float(sin(angle))
                }
            }
            ropeTable = t
        } else {
            ropeTable = nil
        }

        // Embeddings, final norm, head.
        var e = embedding.p
        tokenEmbedding = e
        fill(e, m.vocab * hidden, scale: 1, seed: seed, stream: 1)
        e += m.vocab * hidden
        if m.learnedPositions {
            positionEmbedding = e
            fill(e, shape.maxPositions * hidden, scale: 0.1, seed: seed, stream: 2)
            e += shape.maxPositions * hidden
        } else {
            positionEmbedding = nil
        }
        finalNormG = e
        fill(e, hidden, scale: 0.1, offset: 1, seed: seed, stream: 3)
        e += hidden
        if m.bias {
            finalNormB = e
            fill(e, hidden, scale: 0.1, seed: seed, stream: 4)
            e += hidden
        } else {
            finalNormB = nil
        }
        if shape.includeHead {
            headWeight = e
            fill(e, hidden * m.vocab, scale: (3 / Float(hidden)).squareRoot(), seed: seed, stream: 5)
        } else {
            headWeight = nil
        }

        // Layers: each matrix generated whole from its own stream, then split by columns.
        var r = residentStore.p
        func take(_ n: Int) -> UnsafeMutablePointer<Float> { defer { r += n }; return r }
        for l in 0 ..< L {
            let s = UInt64(100 + 32 * l)
            func vec(_ n: Int, _ t: UInt64, scale: Float, offset: Float = 0) -> UnsafeMutablePointer<Float> {
                let p = take(n)
                fill(p, n, scale: scale, offset: offset, seed: seed, stream: s + t)
                return p
            }
            let hostA = hostWeights.p + l * (attentionStreamed + ffnStreamed)
            let hostF = hostA + attentionStreamed
            var offA = 0, offF = 0
            func mat(_ k: Int, _ n: Int, _ t: UInt64, ffnBlock: Bool) -> Mat {
                let n1 = shape.residentColumns(n)
                let res = take(k * n1)
                let off = ffnBlock ? offF : offA
                let streamed = (ffnBlock ? hostF : hostA) + off
                var g = SplitMix(seed, s + t)
                let scale = (3 / Float(k)).squareRoot()
                for i in 0 ..< k {
                    for j in 0 ..< n {
                        let v = scale * g.symmetric()
                        if j < n1 { res[i * n1 + j] = v } else { streamed[i * (n - n1) + j - n1] = v }
                    }
                }
                if ffnBlock { offF += k * (n - n1) } else { offA += k * (n - n1) }
                return Mat(k: k, n: n, n1: n1, resident: res, streamedOffset: off)
            }
            let n1g = vec(hidden, 1, scale: 0.1, offset: 1)
            let n1b = m.bias ? vec(hidden, 2, scale: 0.1) : nil
            let n2g = vec(hidden, 3, scale: 0.1, offset: 1)
            let n2b = m.bias ? vec(hidden, 4, scale: 0.1) : nil
            let bqkv = m.bias ? vec(qkvW, 5, scale: 0.02) : nil
            let bo = m.bias ? vec(hidden, 6, scale: 0.02) : nil
            let bup = m.bias ? vec(upW, 7, scale: 0.02) : nil
            let bdown = m.bias ? vec(hidden, 8, scale: 0.02) : nil
            let qkvM = mat(hidden, qkvW, 10, ffnBlock: false)
            let oM = mat(qDim, hidden, 11, ffnBlock: false)
            let upM = mat(hidden, upW, 12, ffnBlock: true)
            let downM = mat(ffn, hidden, 13, ffnBlock: true)
            layers.append(Layer(norm1g: n1g, norm1b: n1b, norm2g: n2g, norm2b: n2b, bqkv: bqkv, bo: bo, bup: bup, bdown: bdown,
                                qkv: qkvM, o: oM, up: upM, down: downM, hostAttention: hostA, hostFFN: hostF))
        }
        tieHead()
    }

    /// With tied embeddings, the head is the token embedding transposed (kept as its own copy).
    func tieHead() {
        guard m.tiedEmbeddings, let h = headWeight else { return }
        for t in 0 ..< m.vocab { for i in 0 ..< hidden { h[i * m.vocab + t] = tokenEmbedding[t * hidden + i] } }
    }

    /// Replaces one weight tensor (row-major, `k x n` for matrices), for tests with weights chosen by
    /// hand. Names: `embedding` (vocab x hidden), `positions` (positions x hidden), `final.norm.weight`,
    /// `final.norm.bias`, `head` (hidden x vocab); per layer `norm1.weight`, `norm1.bias`,
    /// `norm2.weight`, `norm2.bias`, `qkv` (hidden x (q + 2 kv): Q, K, V columns), `qkv.bias`, `o`,
    /// `o.bias`, `up` (hidden x ffn; gated: gate columns then up columns), `up.bias`, `down`, `down.bias`.
    public func setWeights(_ name: String, layer: Int? = nil, _ values: [Float]) throws {
        func put(_ p: UnsafeMutablePointer<Float>?, _ n: Int) throws {
            guard let p else { throw InputError(field: name, "this model has no such tensor") }
            guard values.count == n else { throw InputError(field: name, "needs \(n) values, got \(values.count)") }
            p.update(from: values, count: n)
        }
        func putMat(_ w: Mat, _ host: UnsafeMutablePointer<Float>) throws {
            guard values.count == w.k * w.n else { throw InputError(field: name, "needs \(w.k) x \(w.n) values, got \(values.count)") }
            let s = host + w.streamedOffset
            for i in 0 ..< w.k {
                for j in 0 ..< w.n {
                    if j < w.n1 { w.resident[i * w.n1 + j] = values[i * w.n + j] } else { s[i * (w.n - w.n1) + j - w.n1] = values[i * w.n + j] }
                }
            }
        }
        guard let l = layer else {
            switch name {
            case "embedding": try put(tokenEmbedding, m.vocab * hidden); tieHead(); return
            case "positions": return try put(positionEmbedding, shape.maxPositions * hidden)
            case "final.norm.weight": return try put(finalNormG, hidden)
            case "final.norm.bias": return try put(finalNormB, hidden)
            case "head":
                if m.tiedEmbeddings { throw InputError(field: name, "the head is tied to the embedding; set \"embedding\"") }
                return try put(headWeight, hidden * m.vocab)
            default: throw InputError(field: name, "unknown tensor; give layer: for a layer's tensors")
            }
        }
        guard (0 ..< L).contains(l) else { throw InputError(field: "layer", "must be from 0 to \(L - 1), got \(l)") }
        let w = layers[l]
        switch name {
        case "norm1.weight": try put(w.norm1g, hidden)
        case "norm1.bias": try put(w.norm1b, hidden)
        case "norm2.weight": try put(w.norm2g, hidden)
        case "norm2.bias": try put(w.norm2b, hidden)
        case "qkv": try putMat(w.qkv, w.hostAttention)
        case "qkv.bias": try put(w.bqkv, qkvW)
        case "o": try putMat(w.o, w.hostAttention)
        case "o.bias": try put(w.bo, hidden)
        case "up": try putMat(w.up, w.hostFFN)
        case "up.bias": try put(w.bup, upW)
        case "down": try putMat(w.down, w.hostFFN)
        case "down.bias": try put(w.bdown, hidden)
        default: throw InputError(field: name, "unknown layer tensor")
        }
    }

    deinit {
        h2d.drain(); d2h.drain()
        h2d.stop(); d2h.stop()
    }

    // MARK: - Context bookkeeping

    /// A run of consecutive positions of one class whose slots are consecutive too.
    struct Run { var pos: Int; var slot: Int; var len: Int }

    /// Everything one pass over the layers needs to know, fixed before it starts (the copy thread
    /// reads it too).
    struct PassPlan {
        var rows: [Int]
        var newClass: TokenClass?
        var newSlot = 0
        var runs: [TokenClass: [Run]] = [:]
        var recompute: [Int] = []
        var recomputePrefix = true
        var inPlace = false
        var prefillSplit: [TokenClass: [Run]] = [:]
        var isPrefill: Bool { newClass == nil }
    }

    static func runs(_ classes: ArraySlice<TokenClass>, _ slots: ArraySlice<Int>) -> [TokenClass: [Run]] {
        var out: [TokenClass: [Run]] = [:]
        for p in classes.indices {
            let c = classes[p], s = slots[p]
            if var list = out[c], let last = list.last, last.pos + last.len == p, last.slot + last.len == s {
                list[list.count - 1].len += 1
                out[c] = list
            } else {
                out[c, default: []].append(Run(pos: p, slot: s, len: 1))
            }
        }
        return out
    }

    func decodePlan(newClass: TokenClass) -> PassPlan {
        let c = classOf.count
        var p = PassPlan(rows: [c], newClass: newClass)
        p.newSlot = counts[newClass]
        p.runs = Self.runs(classOf[...], slotOf[...])
        p.recompute = (p.runs[.recompute] ?? []).flatMap { $0.pos ..< $0.pos + $0.len }
        p.recomputePrefix = p.recompute.isEmpty || p.recompute.last! == p.recompute.count - 1
        p.inPlace = counts.gpuKV == c && newClass == .gpuKV && p.newSlot == c
        return p
    }

    func append(_ c: TokenClass) {
        precondition(counts[c] < shape.capacity[c], "capacity of \(c.key) (\(shape.capacity[c])) exceeded")
        classOf.append(c)
        slotOf.append(counts[c])
        counts[c] += 1
    }

    /// Positions of a prompt split: recomputed tokens first (the first tokens of each sequence, as the
    /// policies place them), then GPU KV, GPU ACT, host KV, host ACT.
    static let promptOrder: [TokenClass] = [.recompute, .gpuKV, .gpuAct, .hostKV, .hostAct]

    // MARK: - Public driving API

    /// Resets the context and fills it with `placement`'s tokens per sequence, holding seeded values
    /// (for timing runs, where what the cache holds does not matter).
    public func fillContext(_ placement: TokenPlacement, seed fillSeed: UInt64 = 7) {
        h2d.drain(); d2h.drain()
        classOf = []; slotOf = []; counts = TokenPlacement(); tokens = []
        for c in Self.promptOrder { for _ in 0 ..< placement[c] { append(c) } }
        var g = SplitMix(fillSeed, 99)
        tokens = (0 ..< classOf.count * B).map { _ in Int32(g.next() % UInt64(m.vocab)) }
        let layerStride = { (cap: Int, w: Int) in cap * self.B * w }
        fill(gpuKV.p, L * layerStride(shape.capacity.gpuKV, kvW), scale: 1, seed: fillSeed, stream: 11)
        fill(gpuAct.p, L * layerStride(shape.capacity.gpuAct, hidden), scale: 1, seed: fillSeed, stream: 12)
        fill(hostKV.p, L * layerStride(shape.capacity.hostKV, kvW), scale: 1, seed: fillSeed, stream: 13)
        fill(hostAct.p, L * layerStride(shape.capacity.hostAct, hidden), scale: 1, seed: fillSeed, stream: 14)
    }

    /// The prefill of `tokens` (position-major: `tokens[p * batch + b]`) split as `split` (counts per
    /// class adding up to the prompt length); returns the logits of the last position (`batch x vocab`).
    @discardableResult
    public func prefill(tokens prompt: [Int32], split: TokenPlacement) -> [Float] {
        let P = split.total
        precondition(prompt.count == P * B && P <= shape.maxRows)
        h2d.drain(); d2h.drain()
        classOf = []; slotOf = []; counts = TokenPlacement(); tokens = prompt
        for c in Self.promptOrder { for _ in 0 ..< split[c] { append(c) } }
        var plan = PassPlan(rows: Array(0 ..< P), newClass: nil)
        plan.prefillSplit = Self.runs(classOf[...], slotOf[...])
        embed(into: x.p, positions: plan.rows)
        return pass(plan, next: nil)
    }

    /// One decode step: the token of each sequence (`batch` ids) at the next position, its entry kept
    /// as `newClass`. With `advance` false the context does not grow (the step can be repeated at the
    /// same context, for timing). Returns the logits (`batch x vocab`, empty without the head).
    @discardableResult
    public func decode(tokens new: [Int32], newClass: TokenClass, advance: Bool = true) -> [Float] {
        decodeSteps([(new, newClass)], advance: advance).last ?? []
    }

    /// Several decode steps; the next step's loads are queued while the current one runs its last
    /// layer, so that they overlap as in a running engine. Returns each step's logits.
    public func decodeSteps(_ steps: [(tokens: [Int32], newClass: TokenClass)], advance: Bool = true, keepLogits: Bool = true) -> [[Float]] {
        var out: [[Float]] = []
        var plans: [PassPlan] = []
        stepEnds = [now()]
        // Plans depend only on the classes, so they are fixed up front.
        let saved = (classOf, slotOf, counts)
        for s in steps {
            plans.append(decodePlan(newClass: s.newClass))
            if advance { append(s.newClass) } else {
                precondition(counts[s.newClass] < shape.capacity[s.newClass], "capacity of \(s.newClass.key) exceeded")
            }
        }
        (classOf, slotOf, counts) = saved
        for (i, s) in steps.enumerated() {
            precondition(s.tokens.count == B)
            let pos = classOf.count
            if advance { tokens += s.tokens } else { tokens.replaceSubrange(min(pos * B, tokens.count)..., with: s.tokens) }
            if !plans[i].recompute.isEmpty { embed(into: xRec.p, positions: plans[i].recompute) }
            embed(into: x.p, positions: [pos])
            let logits = pass(plans[i], next: i + 1 < plans.count ? plans[i + 1] : nil)
            stepEnds.append(now())
            if keepLogits { out.append(logits) }
            if advance { append(s.newClass) }
        }
        return out
    }

    /// Waits for the copy engines (their work is otherwise asynchronous to the caller).
    public func synchronize() { h2d.drain(); d2h.drain() }

    public var h2dBusySeconds: Double { h2d.busySeconds }
    public func resetCounters() { resetCopyCounters(); resetKernelLogs() }
    public func resetKernelLogs() { gemmLog = [:]; attentionLog = (0, 0) }
    public func resetCopyCounters() { h2d.resetBusy(); d2h.resetBusy() }

    // MARK: - One pass over the layers

    func embed(into dst: UnsafeMutablePointer<Float>, positions: [Int]) {
        for (i, p) in positions.enumerated() {
            for b in 0 ..< B {
                let row = dst + (i * B + b) * hidden
                let t = Int(tokens[p * B + b])
                (row).update(from: tokenEmbedding + t * hidden, count: hidden)
                if let pe = positionEmbedding { Kernels.add(row, pe + p * hidden, count: hidden) }
            }
        }
    }

    /// Load sequence numbers of one layer execution (0: no such load).
    struct Loads { var act = 0, attention = 0, kv = 0, ffn = 0 }
    var pending: [Int: Loads] = [:]

    /// Queues the H2D copies of a pass's layers, executions `base ..< base + L`.
    func enqueueLoads(_ plan: PassPlan, base: Int) {
        for l in 0 ..< L {
            let e = base + l, slot = e & 1
            var loads = Loads()
            let cacheWaits: [(Counter, Int)] = [(cacheReleased, e - 1), (d2h.done, e - L + 1)]
            let weightWaits: [(Counter, Int)] = [(weightsReleased, e - 1)]
            let B = self.B, hidden = self.hidden, kvW = self.kvW
            if let runs = plan.runs[.hostAct], !runs.isEmpty {
                let src = hostAct.p + l * shape.capacity.hostAct * B * hidden, dst = actStage[slot].p
                loads.act = h2d.submit(waits: cacheWaits) {
                    for r in runs { (dst + r.slot * B * hidden).update(from: src + r.slot * B * hidden, count: r.len * B * hidden) }
                }
            }
            if attentionStreamed > 0 {
                let src = layers[l].hostAttention, dst = weightSlots[slot].p, n = attentionStreamed
                loads.attention = h2d.submit(waits: weightWaits) { dst.update(from: src, count: n) }
            }
            if let runs = plan.runs[.hostKV], !runs.isEmpty {
                let src = hostKV.p + l * shape.capacity.hostKV * B * kvW, dst = kvBuffers[slot].p
                loads.kv = h2d.submit(waits: cacheWaits) {
                    for r in runs { (dst + r.pos * B * kvW).update(from: src + r.slot * B * kvW, count: r.len * B * kvW) }
                }
            }
            if ffnStreamed > 0 {
                let src = layers[l].hostFFN, dst = weightSlots[slot].p + attentionStreamed, n = ffnStreamed
                loads.ffn = h2d.submit(waits: weightWaits) { dst.update(from: src, count: n) }
            }
            pending[e] = loads
        }
    }

    func pass(_ plan: PassPlan, next: PassPlan?) -> [Float] {
        let base = executions
        if pending[base] == nil { enqueueLoads(plan, base: base) }
        for l in 0 ..< L {
            let e = base + l
            if l == L - 1, let next { enqueueLoads(next, base: base + L) }
            layer(l, e: e, plan: plan, loads: pending.removeValue(forKey: e) ?? Loads())
        }
        executions += L
        guard shape.includeHead else { return [] }
        let lastRows = x.p + (plan.rows.count - 1) * B * hidden
        Kernels.norm(lastRows, rows: B, width: hidden, gamma: finalNormG, beta: finalNormB, into: xn.p)
        let w = headWeight!
        timedGEMM(m: B, n: m.vocab, k: hidden) { Kernels.gemm(m: B, n: m.vocab, k: hidden, xn.p, lda: hidden, w, ldb: m.vocab, logits.p, ldc: m.vocab) }
        return Array(UnsafeBufferPointer(start: logits.p, count: B * m.vocab))
    }

    @inline(__always)
    func timedGEMM(m: Int, n: Int, k: Int, _ body: () -> Void) {
        guard recordKernels else { body(); return }
        let t0 = now()
        body()
        let dt = now() - t0
        let key = GEMMShape(m: m, n: n, k: k)
        let old = gemmLog[key] ?? (0, 0)
        gemmLog[key] = (old.calls + 1, old.seconds + dt)
    }

    /// `out[:, c0 ..< c1] = a W[:, c0 ..< c1]` for the resident and streamed columns of `W` (the
    /// streamed ones from the layer's weight buffer `slotBase`), `rows` rows, `out` with row stride `ldo`.
    func linear(_ a: UnsafePointer<Float>, rows: Int, _ w: Mat, slotBase: UnsafePointer<Float>, columns: Range<Int>? = nil,
                into out: UnsafeMutablePointer<Float>, ldo: Int) {
        let cols = columns ?? 0 ..< w.n
        timedGEMM(m: rows, n: cols.count, k: w.k) {
            let r = cols.clamped(to: 0 ..< w.n1)
            if !r.isEmpty {
                Kernels.gemm(m: rows, n: r.count, k: w.k, a, lda: w.k, w.resident + r.lowerBound, ldb: w.n1, out + (r.lowerBound - cols.lowerBound), ldc: ldo)
            }
            let s = cols.clamped(to: w.n1 ..< w.n)
            if !s.isEmpty {
                Kernels.gemm(m: rows, n: s.count, k: w.k, a, lda: w.k, slotBase + w.streamedOffset + (s.lowerBound - w.n1), ldb: w.n - w.n1,
                             out + (s.lowerBound - cols.lowerBound), ldc: ldo)
            }
        }
    }

    /// K and V of `n` ACT rows (position-major) recomputed into the attention buffer at `pos`.
    func kvFromACT(_ act: UnsafePointer<Float>, run: Run, lw: Layer, slotBase: UnsafePointer<Float>, kv: UnsafeMutablePointer<Float>) {
        let rows = run.len * B
        Kernels.norm(act, rows: rows, width: hidden, gamma: lw.norm1g, beta: lw.norm1b, into: actNorm.p)
        let out = kv + run.pos * B * kvW
        linear(actNorm.p, rows: rows, lw.qkv, slotBase: slotBase, columns: qDim ..< qkvW, into: out, ldo: kvW)
        if let b = lw.bqkv { Kernels.addRows(out, rows: rows, width: kvW, ld: kvW, b + qDim) }
        if let t = ropeTable {
            for i in 0 ..< run.len { for bb in 0 ..< B { Kernels.rope(out + ((i) * B + bb) * kvW, heads: m.kvHeads, d: d, pos: run.pos + i, table: t.p) } }
        }
    }

    func layer(_ l: Int, e: Int, plan: PassPlan, loads: Loads) {
        let slot = e & 1
        let lw = layers[l]
        let slotBase = UnsafePointer(weightSlots[slot].p)
        let kv = plan.inPlace ? gpuKV.p + l * shape.capacity.gpuKV * B * kvW : kvBuffers[slot].p
        h2d.done.wait(atLeast: loads.attention)
        if plan.recomputePrefix, !plan.recompute.isEmpty {
            h2d.done.wait(atLeast: loads.ffn)
            forward(xRec.p, positions: plan.recompute, lw: lw, slotBase: slotBase, kv: kv, afterQKV: {}, afterAttention: {}, ffnLoad: loads.ffn)
        }
        for r in plan.runs[.gpuAct] ?? [] {
            kvFromACT(gpuAct.p + (l * shape.capacity.gpuAct + r.slot) * B * hidden, run: r, lw: lw, slotBase: slotBase, kv: kv)
        }
        h2d.done.wait(atLeast: loads.act)
        for r in plan.runs[.hostAct] ?? [] {
            kvFromACT(actStage[slot].p + r.slot * B * hidden, run: r, lw: lw, slotBase: slotBase, kv: kv)
        }
        h2d.done.wait(atLeast: loads.kv)
        if !plan.inPlace {
            let src = gpuKV.p + l * shape.capacity.gpuKV * B * kvW
            for r in plan.runs[.gpuKV] ?? [] { (kv + r.pos * B * kvW).update(from: src + r.slot * B * kvW, count: r.len * B * kvW) }
        }
        if !plan.recomputePrefix {
            h2d.done.wait(atLeast: loads.ffn)
            forward(xRec.p, positions: plan.recompute, lw: lw, slotBase: slotBase, kv: kv, afterQKV: {}, afterAttention: {}, ffnLoad: loads.ffn)
        }
        forward(x.p, positions: plan.rows, lw: lw, slotBase: slotBase, kv: kv,
                afterQKV: { self.store(plan, l: l, e: e, kv: kv) },
                afterAttention: { self.cacheReleased.advance() }, ffnLoad: loads.ffn)
        weightsReleased.advance()
    }

    /// Keeps the pass's new entries in their classes: device classes by a copy on the compute thread,
    /// host classes through a write-back buffer and the D2H engine. Every layer execution submits
    /// exactly one D2H job (possibly empty), so that job `e` is execution `e`'s store.
    func store(_ plan: PassPlan, l: Int, e: Int, kv: UnsafeMutablePointer<Float>) {
        var copies: [(TokenClass, Run)] = []
        if plan.isPrefill {
            for (c, runs) in plan.prefillSplit { for r in runs { copies.append((c, r)) } }
        } else if let c = plan.newClass {
            copies.append((c, Run(pos: plan.rows[0], slot: plan.newSlot, len: 1)))
        }
        let xBase = x.p + 0   // rows of `x` are the pass's positions in order; position p of a prefill is row block p
        let rowOf = { (pos: Int) in plan.isPrefill ? pos : 0 }
        let outbox = self.outbox[e & 1].p
        var outOffset = 0
        var hostCopies: [(src: UnsafeMutablePointer<Float>, dst: UnsafeMutablePointer<Float>, count: Int)] = []
        var waitedOutbox = false
        let cap = shape.capacity
        for (c, r) in copies {
            let n = r.len * B
            switch c {
            case .gpuKV:
                if !plan.inPlace {
                    (gpuKV.p + (l * cap.gpuKV + r.slot) * B * kvW).update(from: kv + r.pos * B * kvW, count: n * kvW)
                }
            case .gpuAct:
                (gpuAct.p + (l * cap.gpuAct + r.slot) * B * hidden).update(from: xBase + rowOf(r.pos) * B * hidden, count: n * hidden)
            case .hostKV, .hostAct:
                if !waitedOutbox { d2h.done.wait(atLeast: e - 1); waitedOutbox = true }
                let width = c == .hostKV ? kvW : hidden
                let src = c == .hostKV ? kv + r.pos * B * kvW : xBase + rowOf(r.pos) * B * hidden
                let dst = c == .hostKV ? hostKV.p + (l * cap.hostKV + r.slot) * B * kvW : hostAct.p + (l * cap.hostAct + r.slot) * B * hidden
                (outbox + outOffset).update(from: src, count: n * width)
                hostCopies.append((outbox + outOffset, dst, n * width))
                outOffset += n * width
            case .recompute:
                break
            }
        }
        d2h.submit { for c in hostCopies { c.dst.update(from: c.src, count: c.count) } }
    }

    /// Norm, Q/K/V, attention, output projection and FFN of the rows at `positions` (their hidden
    /// states in `xs`, position-major), their K and V written into `kv` at their positions first.
    func forward(_ xs: UnsafeMutablePointer<Float>, positions: [Int], lw: Layer, slotBase: UnsafePointer<Float>,
                 kv: UnsafeMutablePointer<Float>, afterQKV: () -> Void, afterAttention: () -> Void, ffnLoad: Int) {
        let n = positions.count, rows = n * B
        Kernels.norm(xs, rows: rows, width: hidden, gamma: lw.norm1g, beta: lw.norm1b, into: xn.p)
        linear(xn.p, rows: rows, lw.qkv, slotBase: slotBase, into: qkv.p, ldo: qkvW)
        if let b = lw.bqkv { Kernels.addRows(qkv.p, rows: rows, width: qkvW, ld: qkvW, b) }
        for (i, p) in positions.enumerated() {
            for b in 0 ..< B {
                let row = qkv.p + (i * B + b) * qkvW
                if let t = ropeTable {
                    Kernels.rope(row, heads: m.heads, d: d, pos: p, table: t.p)
                    Kernels.rope(row + qDim, heads: m.kvHeads, d: d, pos: p, table: t.p)
                }
                (kv + (p * B + b) * kvW).update(from: row + qDim, count: kvW)
            }
        }
        afterQKV()
        let attentionStart = recordKernels ? now() : 0
        Kernels.attention(q: qkv.p, ldq: qkvW, kv: kv, out: attnOut.p, pos: positions, batch: B, heads: m.heads, kvHeads: m.kvHeads,
                          d: d, scores: scores.p)
        if recordKernels { attentionLog = (attentionLog.calls + 1, attentionLog.seconds + now() - attentionStart) }
        afterAttention()
        linear(attnOut.p, rows: rows, lw.o, slotBase: slotBase, into: tmp.p, ldo: hidden)
        if let b = lw.bo { Kernels.addRows(tmp.p, rows: rows, width: hidden, ld: hidden, b) }
        Kernels.add(xs, tmp.p, count: rows * hidden)
        Kernels.norm(xs, rows: rows, width: hidden, gamma: lw.norm2g, beta: lw.norm2b, into: xn.p)
        h2d.done.wait(atLeast: ffnLoad)
        let ffnBase = slotBase + attentionStreamed
        linear(xn.p, rows: rows, lw.up, slotBase: ffnBase, into: up.p, ldo: upW)
        if let b = lw.bup { Kernels.addRows(up.p, rows: rows, width: upW, ld: upW, b) }
        let hidden_: UnsafeMutablePointer<Float>
        if shape.gated {
            Kernels.siluGate(up.p, rows: rows, ffn: ffn, into: act.p)
            hidden_ = act.p
        } else {
            Kernels.relu(up.p, count: rows * ffn)
            hidden_ = up.p
        }
        linear(hidden_, rows: rows, lw.down, slotBase: ffnBase, into: tmp.p, ldo: hidden)
        if let b = lw.bdown { Kernels.addRows(tmp.p, rows: rows, width: hidden, ld: hidden, b) }
        Kernels.add(xs, tmp.p, count: rows * hidden)
    }
}
