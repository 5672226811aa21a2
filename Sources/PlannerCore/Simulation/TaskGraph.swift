/// A hardware queue that runs one task at a time, in the order tasks were submitted to it (a CUDA
/// stream). The host link has one copy engine per direction, so the two directions overlap.
///
/// The host CPU (attention over a host cache, staging copies) and the disk's read and write queues
/// are resources too; only the engines that use them add tasks there.
public enum Resource: Int, CaseIterable, Sendable, Codable {
    case compute = 0
    case hostToDevice = 1
    case deviceToHost = 2
    case hostCPU = 3
    case diskRead = 4
    case diskWrite = 5

    public var label: String {
        switch self {
        case .compute: "GPU compute"
        case .hostToDevice: "H2D copy engine"
        case .deviceToHost: "D2H copy engine"
        case .hostCPU: "host CPU"
        case .diskRead: "disk read"
        case .diskWrite: "disk write"
        }
    }

    public var key: String {
        switch self {
        case .compute: "compute"
        case .hostToDevice: "h2d"
        case .deviceToHost: "d2h"
        case .hostCPU: "hostCPU"
        case .diskRead: "diskRead"
        case .diskWrite: "diskWrite"
        }
    }

    /// The GPU's stream and its copy engines, reported for every plan; the others only when used.
    public var alwaysReported: Bool { rawValue <= 2 }
}

/// What a task does, for reports, traces and byte accounting.
public enum TaskKind: Int, CaseIterable, Sendable {
    case weightLoad, kvLoad, actLoad, hiddenLoad
    case kvStore, actStore, hiddenStore
    case tokenRecompute, actRecomputeGPU, actRecomputeHost
    case qkv, concat, attention, outProjection, ffn, head
    /// Engines' extra work: weights or KV read from disk, written to disk, pageable memory staged
    /// into pinned buffers, attention on the host CPU and the vectors it exchanges with the GPU,
    /// 4-bit (de)quantisation, and a device-wide synchronisation.
    case weightDiskRead, kvDiskRead, kvDiskWrite, hostStaging, hostAttention, attentionExchange, dequantize, barrier, embedding
    /// A mixture-of-experts layer's router, run on its own when the experts it picks are copied
    /// after it (`ExpertFetch.onDemand`).
    case router
    /// A mixture's routed experts run on the host CPU (`ExpertFetch.hostCPU`).
    case hostExperts

    public var name: String {
        switch self {
        case .weightLoad: "load weights"
        case .kvLoad: "load KV"
        case .actLoad: "load ACT"
        case .hiddenLoad: "load hidden"
        case .kvStore: "store KV"
        case .actStore: "store ACT"
        case .hiddenStore: "store hidden"
        case .tokenRecompute: "recompute tokens"
        case .actRecomputeGPU: "recompute KV from GPU ACT"
        case .actRecomputeHost: "recompute KV from host ACT"
        case .qkv: "norm + QKV"
        case .concat: "concat KV"
        case .attention: "attention"
        case .outProjection: "out proj"
        case .ffn: "FFN"
        case .head: "LM head"
        case .weightDiskRead: "read weights from disk"
        case .kvDiskRead: "read KV from disk"
        case .kvDiskWrite: "write KV to disk"
        case .hostStaging: "stage into pinned memory"
        case .hostAttention: "attention on the CPU"
        case .attentionExchange: "attention query/output copy"
        case .dequantize: "dequantize"
        case .barrier: "synchronize"
        case .embedding: "embedding"
        case .router: "route to experts"
        case .hostExperts: "experts on the CPU"
        }
    }

    /// Key used in byte accounting (`bytes.h2d.weights`).
    public var bytesKey: String? {
        switch self {
        case .weightLoad: "weights"
        case .kvLoad, .kvStore: "kv"
        case .actLoad, .actStore: "act"
        case .hiddenLoad, .hiddenStore: "hidden"
        case .weightDiskRead: "weights"
        case .kvDiskRead, .kvDiskWrite: "kv"
        case .attentionExchange: "attention"
        default: nil
        }
    }
}

/// A set of tasks with durations, resources and dependencies, stored as flat arrays (structure of
/// arrays) so that a generation of a large model, about a million tasks, plays out in well under a
/// second.
///
/// Invariant: a task's dependencies were added before it (ids are a topological order), and tasks
/// on one resource run in id order.
///
///     var g = TaskGraph()
///     let load = g.add(.hostToDevice, .weightLoad, seconds: 1e-3, bytes: 25e6, layer: 0, step: 0, deps: [])
///     _ = g.add(.compute, .qkv, seconds: 2e-4, bytes: 0, layer: 0, step: 0, deps: [load])
public struct TaskGraph: Sendable {
    public private(set) var resource: [UInt8] = []
    public private(set) var kind: [UInt8] = []
    public private(set) var seconds: [Double] = []
    /// Seconds the task takes while a task of the other kind overlaps it (a kernel beside a copy, a
    /// copy beside a kernel) on a device with memory contention; equal to `seconds` otherwise.
    public private(set) var shared: [Double] = []
    /// Whether any task's `shared` differs from its `seconds` (the event engine then plays out rates).
    public private(set) var hasContention = false
    public private(set) var bytes: [Double] = []
    public private(set) var layer: [Int32] = []
    public private(set) var step: [Int32] = []
    /// Dependencies of task `i` are `deps[depStart[i] ..< depStart[i + 1]]`.
    public private(set) var depStart: [Int32] = [0]
    public private(set) var deps: [Int32] = []

    public init() {}

    public var count: Int { seconds.count }

    public mutating func reserveCapacity(_ n: Int) {
        resource.reserveCapacity(n); kind.reserveCapacity(n); seconds.reserveCapacity(n); shared.reserveCapacity(n); bytes.reserveCapacity(n)
        layer.reserveCapacity(n); step.reserveCapacity(n); depStart.reserveCapacity(n + 1); deps.reserveCapacity(3 * n)
    }

    /// Adds a task; `deps` may hold -1 for "no dependency" (skipped). Returns the new task's id.
    /// `shared` is its duration while a task of the other kind overlaps it (nil: `seconds`).
    @discardableResult
    public mutating func add(_ r: Resource, _ k: TaskKind, seconds s: Double, shared sh: Double? = nil, bytes b: Double, layer l: Int, step st: Int,
                             deps d: [Int32]) -> Int32 {
        precondition(s >= 0 && s.isFinite, "task duration must be finite and non-negative")
        let sharedSeconds = sh ?? s
        precondition(sharedSeconds >= s && sharedSeconds.isFinite, "a task's shared duration must be finite and at least its own")
        let id = Int32(seconds.count)
        for x in d where x >= 0 {
            precondition(x < id, "a dependency must be added before the task")
            deps.append(x)
        }
        resource.append(UInt8(r.rawValue)); kind.append(UInt8(k.rawValue)); seconds.append(s); shared.append(sharedSeconds); bytes.append(b)
        if sharedSeconds != s { hasContention = true }
        layer.append(Int32(l)); step.append(Int32(st)); depStart.append(Int32(deps.count))
        return id
    }

    public func dependencies(of task: Int) -> ArraySlice<Int32> {
        deps[Int(depStart[task]) ..< Int(depStart[task + 1])]
    }

    public func taskKind(_ i: Int) -> TaskKind { TaskKind(rawValue: Int(kind[i]))! }
    public func taskResource(_ i: Int) -> Resource { Resource(rawValue: Int(resource[i]))! }
}
