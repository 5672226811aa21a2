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
/// a run is reproducible bit for bit. On a device whose kernels and copies share one memory system
/// (`HardwareSpec.contention`, the CPU), tasks that overlap run at their slower shared durations
/// (`TaskGraph.shared`), and the engine advances every task in flight at its current rate between
/// events (`playShared`).
///
///     let timeline = try EventEngine.run(graph)
///     timeline.end[Int(lastTask)]   // when the step is over
///
/// Complexity: O(T log R + E) for T tasks on R resources with E dependency edges: at most one task per
/// resource is in flight, so the heap holds at most R entries (O(T R + E) with contention).
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
        var events = 0
        if g.hasContention {
            playShared(g, queues: queues, head: &head, remaining: &remaining, dependentCount: dependentCount, dependents: dependents,
                       start: &start, end: &end, events: &events)
        } else {
            playAlone(g, queues: queues, head: &head, remaining: &remaining, dependentCount: dependentCount, dependents: dependents,
                      start: &start, end: &end, events: &events)
        }
        guard events == n else {
            let stuck = (0 ..< resourceCount).compactMap { r -> String? in
                head[r] < queues[r].count ? "\(Resource(rawValue: r)!.label) waits on task \(queues[r][head[r]])" : nil
            }
            throw InputError(field: "schedule", "deadlock after \(events) of \(n) tasks: \(stuck.joined(separator: "; "))")
        }
        return Timeline(start: start, end: end, events: events)
    }

    /// Every task at its own duration: completions in a heap.
    static func playAlone(_ g: TaskGraph, queues: [[Int32]], head: inout [Int], remaining: inout [Int32], dependentCount: [Int32],
                          dependents: [Int32], start: inout [Double], end: inout [Double], events: inout Int) {
        let resourceCount = queues.count
        var busy = [Bool](repeating: false, count: resourceCount)
        var heap = Heap<Completion>()

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
    }

    /// Memory contention (`TaskGraph.shared`): a kernel runs at `1 / shared` of its work per second
    /// while a copy is in flight on either copy engine and at `1 / seconds` otherwise; a copy runs at
    /// `1 / shared` while a kernel is in flight. Rates change only when a task starts or ends, so
    /// between two such events every task in flight advances at a constant rate and the next event
    /// is the earliest projected completion (ties by task id, as in `playAlone`).
    ///
    /// Worked example: a 10 ms kernel (20 ms shared) and a 4 ms copy (8 ms shared) start together.
    /// Both run shared: the copy ends at 8 ms, when the kernel has done 8/20 of its work; the rest
    /// takes 0.6 x 10 ms alone, so the kernel ends at 14 ms.
    static func playShared(_ g: TaskGraph, queues: [[Int32]], head: inout [Int], remaining: inout [Int32], dependentCount: [Int32],
                           dependents: [Int32], start: inout [Double], end: inout [Double], events: inout Int) {
        let resourceCount = queues.count
        let computeQueue = Resource.compute.rawValue
        var current = [Int](repeating: -1, count: resourceCount)
        /// Fraction of the work of each resource's task still to do.
        var left = [Double](repeating: 0, count: resourceCount)
        var now = 0.0

        func tryStart(_ r: Int) {
            guard current[r] < 0, head[r] < queues[r].count else { return }
            let t = Int(queues[r][head[r]])
            guard remaining[t] == 0 else { return }
            current[r] = t
            left[r] = 1
            start[t] = now
        }
        func duration(_ r: Int) -> Double {
            let t = current[r]
            let overlapped = r == computeQueue
                ? (0 ..< resourceCount).contains { $0 != computeQueue && current[$0] >= 0 }
                : current[computeQueue] >= 0
            return overlapped ? g.shared[t] : g.seconds[t]
        }

        for r in 0 ..< resourceCount { tryStart(r) }
        var durations = [Double](repeating: 0, count: resourceCount)
        while true {
            var next = -1, nextTime = Double.infinity
            for r in 0 ..< resourceCount where current[r] >= 0 {
                durations[r] = duration(r)
                let done = now + left[r] * durations[r]
                if done < nextTime || (done == nextTime && current[r] < current[next]) { next = r; nextTime = done }
            }
            guard next >= 0 else { return }
            // A task of no duration that lost a tie is done too (its work cannot take time later).
            for r in 0 ..< resourceCount where current[r] >= 0 && r != next {
                left[r] = durations[r] > 0 ? max(0, left[r] - (nextTime - now) / durations[r]) : 0
            }
            now = nextTime
            let t = current[next]
            end[t] = now
            events += 1
            current[next] = -1
            head[next] += 1
            for e in Int(dependentCount[t]) ..< Int(dependentCount[t + 1]) {
                remaining[Int(dependents[e])] -= 1
            }
            for q in 0 ..< resourceCount { tryStart(q) }
        }
    }
}
