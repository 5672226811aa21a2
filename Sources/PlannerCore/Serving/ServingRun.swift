import Foundation

/// Distribution summary under vLLM's benchmark names.
public struct LatencyStats: Sendable, Equatable {
    public var mean = 0.0, median = 0.0, p90 = 0.0, p95 = 0.0, p99 = 0.0

    /// Percentiles by linear interpolation between order statistics (numpy's default).
    public init(_ values: [Double]) {
        guard !values.isEmpty else { return }
        let v = values.sorted()
        func q(_ p: Double) -> Double {
            let x = p * Double(v.count - 1)
            let lo = Int(x.rounded(.down)), hi = min(lo + 1, v.count - 1)
            return v[lo] + (x - Double(lo)) * (v[hi] - v[lo])
        }
        mean = v.reduce(0, +) / Double(v.count)
        median = q(0.5); p90 = q(0.9); p95 = q(0.95); p99 = q(0.99)
    }
    public init() {}
}

/// One second of the run.
public struct ServingSample: Sendable {
    public var second: Int
    public var running = 0.0, waiting = 0.0, swapped = 0.0
    /// Fraction of GPU KV blocks in use.
    public var kvUsage = 0.0
    public var promptTokens = 0, generatedTokens = 0
}

/// What a serving simulation measured.
public struct ServingResult: Sendable {
    public var completed: Int
    public var rejected: [(request: Int, reason: String)]
    public var makespanSeconds: Double
    public var ttft: LatencyStats
    /// Time per output token after the first, per request (vLLM's TPOT).
    public var tpot: LatencyStats
    /// Inter-token latency over all tokens.
    public var itl: LatencyStats
    public var e2e: LatencyStats
    public var requestThroughput: Double
    public var outputTokenThroughput: Double
    public var totalTokenThroughput: Double
    public var preemptions: Int
    /// Tokens computed again after a recompute preemption dropped them (a prefix-cache hit on the
    /// request's own freed blocks spares the rest).
    public var recomputedTokens: Int
    public var swappedOutTokens: Int
    public var swappedInTokens: Int
    public var gpuBusySeconds: Double
    public var linkBusySeconds: Double
    /// Forward-pass time spent re-running tokens whose KV a recompute preemption dropped: their share
    /// of each iteration's projections and FFN (by token count) plus their chunks' attention.
    public var recomputeSeconds: Double
    /// Time spent copying swapped blocks (serial with the forward pass, as in vLLM).
    public var swapSeconds: Double { linkBusySeconds }
    /// The time added by handling the overflow: recomputation plus swapping.
    public var overheadSeconds: Double { recomputeSeconds + swapSeconds }
    public var iterations: Int
    public var series: [ServingSample]
    public var gpuBlocks: Int
    /// Per-request states and the GPU and link tracks, when `ServingConfig.recordTrace` is set.
    public var trace: ServingTrace?
    /// The longest request served, prompt and output tokens together (what `--max-model-len` must allow).
    public var maxRequestTokens = 0
    /// Time iterations spent waiting for offloaded weights (`ServingConfig.cpuOffloadBytes`).
    public var offloadSeconds = 0.0
    /// Prompt tokens whose KV came from the prefix cache instead of being computed, and the tokens
    /// looked up (each admission's whole sequence): vLLM's prefix cache hit rate is their ratio.
    public var prefixHitTokens = 0
    public var prefixQueriedTokens = 0
    /// Tokens loaded from the CPU KV cache instead of computed, the blocks stored there, and the
    /// link time of the loads and of the stores (each beside the compute on its own stream).
    public var hostHitTokens = 0
    public var hostStoredBlocks = 0
    public var kvLoadSeconds = 0.0
    public var kvStoreSeconds = 0.0
    /// The requests that met `ServingConfig.serviceLevel`, when one is set.
    public var serviceLevel: ServiceLevelResult?
}

/// What a serving run did over time, for a Chrome trace: one row per request, a GPU track of
/// iterations and a link track of swaps.
public struct ServingTrace: Sendable {
    public struct Span: Sendable, Equatable {
        public var name: String
        public var start: Double
        public var end: Double
    }
    public struct Iteration: Sendable {
        public var start: Double
        public var end: Double
        public var sequences: Int
        public var prefillTokens: Int
        public var decodeTokens: Int
        public var recomputeTokens: Int
        public var kvUsage: Double
        public var running: Int
        public var waiting: Int
        public var swapped: Int
    }
    /// Request ids in the order of `requests`.
    public var requestIDs: [Int] = []
    /// Per request: `queued` (waiting for its first admission), `prefill`, `decode`, `recompute` (re-running
    /// tokens after a recompute preemption), `stalled` (running but left out of an iteration),
    /// `preempted` (waiting after a recompute preemption), `swapped` (its blocks in host swap space).
    public var requests: [[Span]] = []
    public var iterations: [Iteration] = []
    /// `swap-out` and `swap-in` copies.
    public var link: [Span] = []

    mutating func mark(_ r: Int, _ name: String, _ start: Double, _ end: Double) {
        if var last = requests[r].last, last.name == name, abs(last.end - start) < 1e-12 {
            last.end = end
            requests[r][requests[r].count - 1] = last
        } else {
            requests[r].append(Span(name: name, start: start, end: end))
        }
    }
}

