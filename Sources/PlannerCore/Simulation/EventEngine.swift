import HeapModule

/// When each task of a graph started and ended.
public struct Timeline: Sendable {
    public var start: [Double]
    public var end: [Double]
    /// Completion events processed (one per task).
    public var events: Int
    public var makespan: Double { end.max() ?? 0 }
}

/// A deterministic discrete-event simulator over a `TaskGraph`.
///
/// Each resource is an in-order queue (a CUDA stream or copy engine): its next task starts when the
/// resource is free and all of the task's dependencies have ended. Completions are kept in a
/// time-ordered queue (a binary min-heap, swift-collections' `Heap`); ties are broken by task id, so
/// a run is reproducible bit for bit.
///
///     let timeline = try EventEngine.run(graph)
///     timeline.end[Int(lastTask)]   // when the step is over
///
/// Complexity: O(T log R + E) for T tasks on R resources with E dependency edges: at most one task per
/// resource is in flight, so the heap holds at most R entries.
public enum EventEngine {
    struct Completion: Comparable {
        var time: Double
        var task: Int32
        static func < (a: Completion, b: Completion) -> Bool {
            a.time < b.time || (a.time == b.time && a.task < b.task)
        }
    }

    public static func run(_ g: TaskGraph) throws -> Timeline {
        let n = g.count
        let resourceCount = Resource.allCases.count
        var start = [Double](repeating: 0, count: n)
        var end = [Double](repeating: 0, count: n)
        var remaining = [Int32](repeating: 0, count: n)
        // Dependents in compressed rows: who waits on task i.
        var dependentCount = [Int32](repeating: 0, count: n + 1)
        for i in 0 ..< n {
            let lo = Int(g.depStart[i]), hi = Int(g.depStart[i + 1])
            remaining[i] = Int32(hi - lo)
            for e in lo ..< hi { dependentCount[Int(g.deps[e]) + 1] += 1 }
        }
        for i in 0 ..< n { dependentCount[i + 1] += dependentCount[i] }
        var fill = dependentCount
        var dependents = [Int32](repeating: 0, count: g.deps.count)
        for i in 0 ..< n {
            for e in Int(g.depStart[i]) ..< Int(g.depStart[i + 1]) {
                let d = Int(g.deps[e])
                dependents[Int(fill[d])] = Int32(i)
                fill[d] += 1
            }
        }
        // In-order queue per resource.
        var queues = [[Int32]](repeating: [], count: resourceCount)
        for i in 0 ..< n { queues[Int(g.resource[i])].append(Int32(i)) }
        var head = [Int](repeating: 0, count: resourceCount)
        var busy = [Bool](repeating: false, count: resourceCount)
        var heap = Heap<Completion>()
        var events = 0

        func tryStart(_ r: Int, _ now: Double) {
            guard !busy[r], head[r] < queues[r].count else { return }
            let t = Int(queues[r][head[r]])
            guard remaining[t] == 0 else { return }
            busy[r] = true
            start[t] = now
            heap.insert(Completion(time: now + g.seconds[t], task: Int32(t)))
        }

        for r in 0 ..< resourceCount { tryStart(r, 0) }
        while let c = heap.popMin() {
            let t = Int(c.task)
            end[t] = c.time
            events += 1
            let r = Int(g.resource[t])
            busy[r] = false
            head[r] += 1
            for e in Int(dependentCount[t]) ..< Int(dependentCount[t + 1]) {
                remaining[Int(dependents[e])] -= 1
            }
            for q in 0 ..< resourceCount { tryStart(q, c.time) }
        }
        guard events == n else {
            let stuck = (0 ..< resourceCount).compactMap { r -> String? in
                head[r] < queues[r].count ? "\(Resource(rawValue: r)!.label) waits on task \(queues[r][head[r]])" : nil
            }
            throw InputError(field: "schedule", "deadlock after \(events) of \(n) tasks: \(stuck.joined(separator: "; "))")
        }
        return Timeline(start: start, end: end, events: events)
    }
}
