import Foundation
import PlannerCore

/// What one engine instance holds: the model (run in fp32), the batch, the weights' split, and the
/// largest number of tokens of each placement class any step will hold, from which every buffer's
/// size follows. `bytes` is known before anything is allocated, so that a run that cannot fit in
/// this machine's memory is refused first (`MachineMemory.check`).
public struct EngineShape: Sendable, Equatable {
    public var model: ModelSpec
    public var batch: Int
    /// Share of every weight matrix's columns kept in the device tier; the rest streams per layer.
    public var weightsGPUFraction: Double
    /// Capacity per class, in tokens per sequence.
    public var capacity: TokenPlacement
    /// Most positions (tokens per sequence, the new one included) any step attends over.
    public var maxPositions: Int
    /// Most query rows per sequence of one pass: the prompt, or the recomputed tokens, or 1.
    public var maxRows: Int
    public var includeHead: Bool

    public init(model: ModelSpec, batch: Int, weightsGPUFraction: Double, capacity: TokenPlacement, maxPositions: Int,
                maxRows: Int, includeHead: Bool = true) {
        var m = model
        m.dtype = .fp32
        self.model = m; self.batch = batch; self.weightsGPUFraction = weightsGPUFraction; self.capacity = capacity
        self.maxPositions = maxPositions; self.maxRows = max(maxRows, 1); self.includeHead = includeHead
    }

    var hidden: Int { model.hidden }
    var qDim: Int { model.qDim }
    var kvDim: Int { model.kvDim }
    var qkvWidth: Int { qDim + 2 * kvDim }
    var upWidth: Int { model.ffnKind == .gated3 ? 2 * model.ffnSize : model.ffnSize }
    var gated: Bool { model.ffnKind == .gated3 }

    /// Resident columns of a matrix of `n` columns: the fraction rounded to a multiple of 16 columns,
    /// so that the resident and streamed GEMMs tile their columns exactly as one GEMM over the whole
    /// matrix would (OpenBLAS's kernels work on column blocks of 4 to 16; an unaligned split puts
    /// columns in tail blocks and changes their last bits).
    func residentColumns(_ n: Int) -> Int {
        if weightsGPUFraction >= 1 { return n }
        return min(n, Int((weightsGPUFraction * Double(n) / 16).rounded()) * 16)
    }

    /// The share of a layer's weight-matrix elements actually resident after the rounding of
    /// `residentColumns`: what the simulator should be told, since it is what the engine streams.
    public var effectiveWeightsGPUFraction: Double {
        let ms = attentionMatrices + ffnMatrices
        let total = ms.reduce(0) { $0 + $1.0 * $1.1 }
        return total == 0 ? weightsGPUFraction : Double(residentElements(ms)) / Double(total)
    }

    /// The four weight matrices of a layer, `(k, n)`.
    var attentionMatrices: [(Int, Int)] { [(hidden, qkvWidth), (qDim, hidden)] }
    var ffnMatrices: [(Int, Int)] { [(hidden, upWidth), (model.ffnSize, hidden)] }
    func streamedElements(_ ms: [(Int, Int)]) -> Int { ms.reduce(0) { $0 + $1.0 * ($1.1 - residentColumns($1.1)) } }
    func residentElements(_ ms: [(Int, Int)]) -> Int { ms.reduce(0) { $0 + $1.0 * residentColumns($1.1) } }
    /// Norm and bias vectors of a layer (kept in the device tier).
    var vectorElements: Int {
        let norms = model.bias ? 4 * hidden : 2 * hidden
        let biases = model.bias ? qkvWidth + hidden + upWidth + hidden : 0
        return norms + biases
    }
    var embeddingElements: Int {
        var e = model.vocab * hidden
        if model.learnedPositions { e += maxPositions * hidden }
        // The head: its own matrix, or for tied embeddings a transposed copy of the token embedding
        // (hidden x vocab), so that the head GEMM reads its weight in the layout plain sgemm is fastest on.
        if includeHead { e += hidden * model.vocab }
        return e + (model.bias ? 2 * hidden : hidden)
    }

    /// Bytes of each buffer the engine allocates, by tier: what the memory check adds up.
    public var items: [(tier: String, name: String, bytes: Double)] {
        let f = 4.0, L = Double(model.layers), B = Double(batch)
        let kvRow = Double(2 * kvDim), actRow = Double(hidden)
        let rows = Double(maxRows) * B
        var out: [(String, String, Double)] = [
            ("device", "resident weights and embeddings", f * (L * Double(residentElements(attentionMatrices) + residentElements(ffnMatrices) + vectorElements) + Double(embeddingElements))),
            ("device", "two weight buffers", f * 2 * Double(streamedElements(attentionMatrices) + streamedElements(ffnMatrices))),
            ("device", "GPU-tier KV cache", f * L * Double(capacity.gpuKV) * B * kvRow),
            ("device", "GPU-tier ACT cache", f * L * Double(capacity.gpuAct) * B * actRow),
            ("device", "two attention K/V buffers", f * 2 * Double(maxPositions) * B * kvRow),
            ("device", "two host-ACT load buffers", f * 2 * Double(capacity.hostAct) * B * actRow),
            ("device", "two write-back buffers", f * 2 * rows * max(kvRow, actRow)),
            ("device", "working set", f * (rows * Double(3 * hidden + qkvWidth + qDim + upWidth + model.ffnSize)
                + Double(max(capacity.gpuAct, capacity.hostAct)) * B * actRow
                + Double(max(maxRows, model.heads / model.kvHeads)) * Double(maxPositions) + Double(capacity.recompute) * B * actRow
                + (includeHead ? B * Double(model.vocab) : 0)
                + (model.ffnKind == .gated3 ? Double(maxPositions * model.headDim) : 0))),  // rotary table
            ("host", "streamed weights", f * L * Double(streamedElements(attentionMatrices) + streamedElements(ffnMatrices))),
            ("host", "host KV cache", f * L * Double(capacity.hostKV) * B * kvRow),
            ("host", "host ACT cache", f * L * Double(capacity.hostAct) * B * actRow),
        ]
        out = out.filter { $0.2 > 0 }
        return out
    }

    public var bytes: Double { items.reduce(0) { $0 + $1.bytes } }
    public var deviceBytes: Double { items.filter { $0.tier == "device" }.reduce(0) { $0 + $1.bytes } }
    public var hostBytes: Double { items.filter { $0.tier == "host" }.reduce(0) { $0 + $1.bytes } }
}

/// This machine's memory, from /proc/meminfo.
public enum MachineMemory {
    /// `MemAvailable` in bytes, or nil where /proc/meminfo cannot be read.
    public static func availableBytes() -> Double? { meminfo("MemAvailable:") }

    /// `MemTotal` in bytes, or nil where /proc/meminfo cannot be read.
    public static func totalBytes() -> Double? { meminfo("MemTotal:") }

    static func meminfo(_ key: String) -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(key) {
            let parts = line.split(separator: " ")
            if parts.count >= 2, let kb = Double(parts[1]) { return kb * 1024 }
        }
        return nil
    }

    /// Memory left free for the rest of the machine beside an engine: 512 MiB.
    public static let marginBytes = 512.0 * 1024 * 1024

    /// Refuses a shape whose buffers would not fit in `MemAvailable` less the margin, naming the
    /// bytes it would need and its largest items.
    public static func check(_ shape: EngineShape, available: Double? = MachineMemory.availableBytes()) throws {
        guard let available else { return }
        let need = shape.bytes
        guard need <= available - marginBytes else {
            let largest = shape.items.sorted { $0.bytes > $1.bytes }.prefix(3)
                .map { "\($0.name) \(formatBytes($0.bytes))" }.joined(separator: ", ")
            throw InputError(field: "model", "the CPU engine would need \(formatBytes(need)) (\(largest)) for \(shape.model.name) with \(shape.model.layers) layers, batch \(shape.batch), \(shape.maxPositions) positions in fp32, but this machine has \(formatBytes(available)) available (MemAvailable in /proc/meminfo, less a \(formatBytes(marginBytes)) margin); use fewer layers (--layers), a narrower model (--width-divisor), or a smaller batch (--batch)")
        }
    }
}
