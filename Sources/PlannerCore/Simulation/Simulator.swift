/// Per-layer summary of the reported step.
public struct LayerSummary: Sendable {
    public var layer: Int
    public var start: Double
    public var end: Double
    /// Busy seconds of each resource on this layer's tasks.
    public var busySeconds: [Double]
    public var h2dBytes: Double
    public var d2hBytes: Double
}

/// What one simulation produced.
public struct SimulationResult: Sendable {
    public let plan: ExecutionPlan
    public let graph: TaskGraph
    public let timeline: Timeline
    public let memory: MemoryReport
    public let growth: TokenGrowth
    /// The interval the figures below describe: the measured decode step, or the whole generation.
    public let windowStart: Double
    public let windowEnd: Double
    /// Step tags included in the byte counts and the per-layer table.
    public let reportedSteps: ClosedRange<Int>
    /// Bytes moved per link direction and category (`weights`, `kv`, `act`, `hidden`).
    public let bytes: [Resource: [String: Double]]
    /// Busy fraction of each resource over the window.
    public let busy: [Resource: Double]
    public let layers: [LayerSummary]
    /// Generation only: prefill time (to the first token).
    public let prefillSeconds: Double?

    public var seconds: Double { windowEnd - windowStart }

    /// Tokens per second: `batch / step` for a decode step, `batch * tokens / total` for a generation.
    public var tokensPerSecond: Double {
        switch plan.phase {
        case .decodeStep: Double(plan.batch) / seconds
        case .generate(_, let t): Double(plan.batch * t) / seconds
        }
    }

    public func totalBytes(_ r: Resource) -> Double { bytes[r, default: [:]].values.reduce(0, +) }

    /// The GPU's stream and copy engines, and the host CPU and disk queues where the plan used them.
    public var reportedResources: [Resource] {
        var used = Set<Int>()
        for r in graph.resource { used.insert(Int(r)) }
        return Resource.allCases.filter { $0.alwaysReported || used.contains($0.rawValue) }
    }

    /// Seconds per decode step that the tasks on `resource` (of `kinds`, or all) ran, as played (a
    /// task slowed by contention counts its longer time): the steady step of a decode-step plan, the
    /// mean over the decode steps of a generation (its prefill left out).
    public func playedPerDecodeStep(_ resource: Resource, kinds: Set<TaskKind>? = nil) -> Double {
        let steps: ClosedRange<Int>
        switch plan.phase {
        case .decodeStep: steps = reportedSteps
        case .generate: steps = 1 ... max(1, growth.steps.count)
        }
        var total = 0.0
        for i in 0 ..< graph.count where Int(graph.resource[i]) == resource.rawValue && steps.contains(Int(graph.step[i])) {
            if let kinds, !kinds.contains(graph.taskKind(i)) { continue }
            total += timeline.end[i] - timeline.start[i]
        }
        return total / Double(steps.count)
    }
}

/// Plays a plan out: builds its task graph, runs the event engine, and summarises.
///
///     let plan = try PolicySpec.hybrid(kvFraction: 0.6, gpuActTokens: nil)
///         .resolve(model: opt13b, hardware: HardwareCatalog.h100sxm, batch: 64, phase: .decodeStep(context: 2048), weights: .host)
///     let result = try Simulator.run(plan, cost: AnalyticCostModel(hardware: plan.hardware, dtype: plan.model.dtype))
///     result.seconds   // the steady-state decode step
///
/// A decode step is simulated three times at the same context and the second is reported, so that
/// its first layers' loads overlap the previous step's last layers, and its last layers the next
/// step's first loads, as they do in a running engine.
public enum Simulator {
    public static func run(_ plan: ExecutionPlan, cost: any CostModel, checkMemory: Bool = true) throws -> SimulationResult {
        try plan.validate()
        let growth = TokenGrowth(plan: plan)
        let memory = MemoryModel.report(plan, peak: growth.peak)
        if checkMemory { try memory.check() }

        let perLayer = 16 * plan.microBatches
        var builder = ScheduleBuilder(plan: plan, cost: cost,
                                      expectedTasks: (growth.steps.count + 2) * (plan.model.layers * perLayer + 1))
        // The ideal engine's layer schedule (ScheduleBuilder.addLayer), or an engine's units
        // (EngineSchedule.swift) when the plan runs on another engine or overrides a trait.
        let ideal = plan.engine.followsIdealSchedule
        let firstDecodeStep = 1
        if let prompt = growth.prompt, case .generate(let p, _) = plan.phase {
            if ideal { builder.prefill(prompt: p, split: prompt, step: 0) } else { builder.enginePrefill(prompt: p, split: prompt, step: 0) }
        }
        var steps = growth.steps.map { ($0.cached, $0.newToken) }
        if case .decodeStep = plan.phase, let s = growth.steps.last {
            // A trailing step, not reported: in a running engine the next step's first loads start
            // during the reported step's last layers. In-order queues keep it from delaying the
            // reported step, except where copies and kernels share memory (`contention`): there the
            // reported step's last layers run beside those loads, as in the steady state.
            steps.append((s.cached, s.newToken))
        }
        for (i, s) in steps.enumerated() {
            if ideal {
                builder.decode(cached: s.0, newToken: s.1, step: firstDecodeStep + i)
            } else {
                builder.engineDecode(cached: s.0, newToken: s.1, step: firstDecodeStep + i)
            }
        }
        if !ideal { builder.finishUnits() }
        let graph = builder.graph
        let timeline = try EventEngine.run(graph)

        let windowStart: Double, windowEnd: Double
        let reported: ClosedRange<Int>
        let layerStep: Int
        var prefillSeconds: Double? = nil
        switch plan.phase {
        case .decodeStep:
            windowStart = timeline.end[Int(builder.heads[0])]
            windowEnd = timeline.end[Int(builder.heads[1])]
            reported = 2 ... 2
            layerStep = 2
        case .generate:
            windowStart = 0
            windowEnd = timeline.end[Int(builder.heads.last!)]
            reported = 0 ... growth.steps.count
            layerStep = growth.steps.count
            prefillSeconds = timeline.end[Int(builder.heads[0])]
        }

        var bytes: [Resource: [String: Double]] = [:]
        var busySeconds = [Double](repeating: 0, count: Resource.allCases.count)
        let layers = plan.model.layers
        var layerStart = [Double](repeating: .infinity, count: layers)
        var layerEnd = [Double](repeating: 0, count: layers)
        var layerBusy = [[Double]](repeating: [Double](repeating: 0, count: Resource.allCases.count), count: layers)
        var layerH2D = [Double](repeating: 0, count: layers)
        var layerD2H = [Double](repeating: 0, count: layers)
        for i in 0 ..< graph.count {
            let r = Int(graph.resource[i])
            let s = timeline.start[i], e = timeline.end[i]
            busySeconds[r] += max(0, min(e, windowEnd) - max(s, windowStart))
            let st = Int(graph.step[i])
            if reported.contains(st), graph.bytes[i] > 0, let key = graph.taskKind(i).bytesKey {
                bytes[Resource(rawValue: r)!, default: [:]][key, default: 0] += graph.bytes[i]
            }
            let l = Int(graph.layer[i])
            if st == layerStep, l >= 0, l < layers {
                layerStart[l] = min(layerStart[l], s)
                layerEnd[l] = max(layerEnd[l], e)
                layerBusy[l][r] += e - s
                if r == Resource.hostToDevice.rawValue { layerH2D[l] += graph.bytes[i] }
                if r == Resource.deviceToHost.rawValue { layerD2H[l] += graph.bytes[i] }
            }
        }
        let window = windowEnd - windowStart
        var busy: [Resource: Double] = [:]
        for r in Resource.allCases { busy[r] = window > 0 ? busySeconds[r.rawValue] / window : 0 }
        let summaries = (0 ..< layers).map {
            LayerSummary(layer: $0, start: layerStart[$0], end: layerEnd[$0], busySeconds: layerBusy[$0],
                         h2dBytes: layerH2D[$0], d2hBytes: layerD2H[$0])
        }
        return SimulationResult(plan: plan, graph: graph, timeline: timeline, memory: memory, growth: growth,
                                windowStart: windowStart, windowEnd: windowEnd, reportedSteps: reported, bytes: bytes,
                                busy: busy, layers: summaries, prefillSeconds: prefillSeconds)
    }
}
