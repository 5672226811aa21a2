import DequeModule

/// The schedule of an engine other than the ideal one: its layers cut into fetch units (layers,
/// blocks or modules, `EngineTraits.FetchUnit`), each unit's weights copied as the engine's
/// `WeightFetch` orders them, and the engine's extra work (disk reads, staging copies, CPU
/// attention, dequantisation, cache concatenation, device barriers) as tasks of their own.
///
/// Per unit `u`, with `K(u)` its last kernel and `B(u)` its barrier:
/// - double-buffered: the weights and cache of `u` load once `K(u - 2)` is done;
/// - one-ahead-synchronized (FlexGen): in the step of `u` the cache of `u + 1` loads, at a block's
///   first GPU batch the next block's weights too, and the stores of `u - 1` drain; `B(u)` waits
///   for all of it and every task of step `u + 1` waits for `B(u)` (flex_opt.py 1034-1059);
/// - one-ahead-host-synchronized (ZeRO-3): the copy of `u` starts after the copy of `u - 1` ended
///   (the host waited for it), and after `K(u - 2)` (at most two units live); a step's first copy
///   waits for the previous step to end unless `prefetchAcrossSteps`;
/// - serial (Accelerate, FlexGen without overlap): the copy of `u` waits for the kernel before it.
/// A kernel waits for its unit's copies. Weights on disk are read on the disk queue first; pageable
/// memory is staged into pinned memory on the host CPU first where the engine does that itself
/// (`pageableStagedOnHost`), else copied at the link's pageable rate.
extension ScheduleBuilder {
    /// One fetch unit's work for one micro-batch.
    struct Unit {
        var layer: Int
        var microBatch: Int
        /// The unit's weights copied to the GPU (micro-batch 0 only): from host memory, from disk.
        var weightHostBytes = 0.0
        var weightDiskBytes = 0.0
        var weightTensors = 1
        /// Dequantisation of the unit's compressed weights, before its kernels.
        var dequant = Cost.zero
        /// Cache brought to the GPU before the attention (host KV and ACT), and read from disk
        /// (to the GPU, or into host memory for CPU attention).
        var cacheHostBytes = 0.0
        var cacheDiskBytes = 0.0
        var hiddenLoadBytes = 0.0
        var hiddenStoreBytes = 0.0
        var kernels: [Kernel] = []
        /// CPU attention: inserted after the kernel at `afterKernel` (the QKV projection): the query
        /// and new K/V to the host, the attention on the CPU, its output back.
        var hostAttention: HostAttention?
        /// Write-backs after the QKV projection: bytes to host memory, and of those, to disk.
        var storeBytes = 0.0
        var storeDiskBytes = 0.0
        var storeKind = TaskKind.kvStore
        /// The first unit of a step (input embedding or layer 0).
        var startsStep = false
    }

    struct HostAttention {
        var afterKernel: Int
        var toHostBytes: Double
        var seconds: Cost
        var toDeviceBytes: Double
    }

    /// What the pipeline remembers between units.
    struct UnitPipeline {
        var kernelEnds: [Int32] = []
        var barriers: [Int32] = []
        var weightCopies: [Int32] = []
        var lastWeightCopy: Int32 = -1
        var lastKernel: Int32 = -1
        var previousStepEnd: Int32 = -1
        /// The fetch order of the step being built, where it differs from the engine's (a prefill
        /// that does not prefetch).
        var fetchOverride: EngineTraits.WeightFetch?
        /// The attention output copied back from the CPU, which the output projection waits for.
        var attentionOut: Int32 = -1
        /// Units added but not yet issued, oldest first (FlexGen issues loads ahead of the unit
        /// being computed: the next unit's cache, and at a block's first GPU batch the next block's
        /// weights, so up to one block of units waits here).
        var waiting: Deque<WaitingUnit> = []
        var pendingStores: [(kind: TaskKind, bytes: Double, diskBytes: Double, layer: Int, step: Int, after: Int32)] = []
        var stepTasks: [Int32] = []
        var lastStoreOfLayer: [Int: Int32] = [:]
    }

    struct Loads {
        var weights: Int32 = -1
        var cache: Int32 = -1
        var cacheToHost: Int32 = -1
    }

    /// A unit waiting to be issued, and which of its loads already are.
    struct WaitingUnit {
        var unit: Unit
        var step: Int
        var loads = Loads()
        var weightsIssued = false
        var cacheIssued = false
    }

    var traits: EngineTraits { plan.engine.traits }

    // MARK: Costs of the engines' own operations

    /// A copy over the link of `bytes` in `tensors` pieces (each pays the channel's latency).
    func linkCopy(_ bytes: Double, _ direction: LinkDirection, _ memory: HostMemoryKind, tensors: Int = 1) -> Cost {
        let one = cost(.transfer(bytes: bytes, direction: direction, memory: memory))
        guard tensors > 1, bytes > 0 else { return one }
        let latency = Double(tensors - 1) * plan.hardware.link.channel(direction, memory).latencySeconds
        return Cost(alone: one.alone + latency, shared: one.shared + latency)
    }

    /// `kernels` element-wise kernels moving `bytes` in all.
    func elementwise(_ bytes: Double, kernels: Int) -> Cost {
        guard kernels > 0, bytes > 0 else { return .zero }
        let each = cost(.elementwise(bytes: bytes / Double(kernels)))
        return Cost(alone: each.alone * Double(kernels), shared: each.shared * Double(kernels))
    }

    /// Host CPU seconds to move `bytes` through memory with all cores and compute `flops` in fp32.
    func hostCPU(bytes: Double, flops: Double) -> Cost {
        guard let cpu = plan.hardware.hostCPU else { return .zero }
        let t = max(bytes / cpu.memoryBytesPerSecond, flops / cpu.fp32FlopsPerSecond)
        return Cost(alone: t, shared: t)
    }

    /// One host thread copying `bytes` (a pageable tensor into pinned memory, a memmap into a tensor).
    func hostCopy(_ bytes: Double) -> Cost {
        guard let cpu = plan.hardware.hostCPU, bytes > 0 else { return .zero }
        let t = bytes / cpu.singleThreadCopyBytesPerSecond
        return Cost(alone: t, shared: t)
    }

    func diskRead(_ bytes: Double) -> Cost {
        guard let d = plan.hardware.disk, bytes > 0 else { return .zero }
        return Cost(alone: bytes / d.readBytesPerSecond, shared: bytes / d.readBytesPerSecond)
    }

    func diskWrite(_ bytes: Double) -> Cost {
        guard let d = plan.hardware.disk, bytes > 0 else { return .zero }
        return Cost(alone: bytes / d.writeBytesPerSecond, shared: bytes / d.writeBytesPerSecond)
    }

    /// Dequantising `elements` matrix elements of `tensors` tensors on the GPU.
    func dequantize(_ elements: Double, tensors: Int) -> Cost {
        elementwise(elements * traits.dequantBytesPerElement, kernels: max(1, tensors) * traits.dequantKernelsPerTensor)
    }

    // MARK: Issuing a unit

    /// The tasks before which unit `u`'s loads may not start.
    func loadDeps(_ u: Unit) -> [Int32] {
        let n = units.kernelEnds.count
        var deps: [Int32] = []
        switch units.fetchOverride ?? traits.weightFetch {
        case .doubleBuffered:
            if n >= 2 { deps.append(units.kernelEnds[n - 2]) }
        case .oneAheadSynchronized:
            // Issued in the step of the unit before: after the barrier two units back.
            if units.barriers.count >= 1 { deps.append(units.barriers[units.barriers.count - 1]) }
        case .oneAheadHostSynchronized:
            deps.append(units.lastWeightCopy)
            if n >= 2 { deps.append(units.kernelEnds[n - 2]) }
        case .serial:
            deps.append(units.lastKernel)
        }
        if u.startsStep, !traits.prefetchAcrossSteps { deps.append(units.previousStepEnd) }
        if let s = units.lastStoreOfLayer[u.layer] { deps.append(s) }
        return deps
    }

    /// Adds the copies that bring `bytes` from host memory of kind `memory` (and `diskBytes` from
    /// disk) to the GPU; returns the last task, or -1 when nothing is copied.
    mutating func addLoad(host bytes: Double, disk diskBytes: Double, tensors: Int, memory: HostMemoryKind, kind: TaskKind,
                          diskKind: TaskKind, layer: Int, step: Int, deps: [Int32], hostGap: Double = 0) -> Int32 {
        var last: Int32 = -1
        if diskBytes > 0 {
            // Disk -> host (a pinned relay or buffer, or Accelerate's memmap copied into a pageable tensor) -> GPU.
            // Reading ahead, a read waits only for the buffer it fills to be free.
            let n = units.weightCopies.count, ahead = traits.diskReadAheadUnits
            let readDeps = kind == .weightLoad && ahead > 0 ? [n >= ahead ? units.weightCopies[n - ahead] : -1] : deps
            let read = graph.add(.diskRead, diskKind, cost: diskRead(diskBytes), bytes: diskBytes, layer: layer, step: step, deps: readDeps)
            var ready = read
            var memoryKind = HostMemoryKind.pinned
            if plan.engine.kind == .hfAccelerate {
                ready = graph.add(.hostCPU, .hostStaging, cost: hostCopy(diskBytes), bytes: 0, layer: layer, step: step, deps: [read])
                memoryKind = .pageable
            }
            last = graph.add(.hostToDevice, kind, cost: linkCopy(diskBytes, .hostToDevice, memoryKind, tensors: tensors), bytes: diskBytes,
                             layer: layer, step: step, deps: deps + [ready])
            units.stepTasks += [read, ready, last]
        }
        if bytes > 0 {
            var d = deps
            var memoryKind = memory
            if memory == .pageable, traits.pageableStagedOnHost {
                // `src.pin_memory()` on the main thread, then an asynchronous pinned copy (pytorch_backend.py 843-850).
                let stage = graph.add(.hostCPU, .hostStaging, cost: hostCopy(bytes), bytes: 0, layer: layer, step: step, deps: deps)
                d.append(stage)
                units.stepTasks.append(stage)
                memoryKind = .pinned
            }
            var c = linkCopy(bytes, .hostToDevice, memoryKind, tensors: tensors)
            c.alone += hostGap
            c.shared += hostGap
            last = graph.add(.hostToDevice, kind, cost: c, bytes: bytes, layer: layer, step: step, deps: d + [last])
            units.stepTasks.append(last)
        }
        return last
    }

    /// Issues the loads of `u` (weights, cache, the hidden state stays with the kernels), or only
    /// its weights or only its cache.
    mutating func issueLoads(_ u: Unit, step: Int, weights: Bool = true, cache: Bool = true) -> Loads {
        var l = Loads()
        let deps = loadDeps(u)
        if weights, u.weightHostBytes + u.weightDiskBytes > 0 {
            l.weights = addLoad(host: u.weightHostBytes, disk: u.weightDiskBytes, tensors: u.weightTensors, memory: plan.hostMemory,
                                kind: .weightLoad, diskKind: .weightDiskRead, layer: u.layer, step: step, deps: deps,
                                hostGap: traits.hostSecondsPerFetch)
            units.lastWeightCopy = l.weights
            units.weightCopies.append(l.weights)
        }
        guard cache else { return l }
        if plan.attentionOnHost {
            // CPU attention reads host KV in place; KV on disk is read into host memory.
            if u.cacheDiskBytes > 0 {
                l.cacheToHost = graph.add(.diskRead, .kvDiskRead, cost: diskRead(u.cacheDiskBytes), bytes: u.cacheDiskBytes,
                                          layer: u.layer, step: step, deps: deps)
                units.stepTasks.append(l.cacheToHost)
            }
        } else if u.cacheHostBytes + u.cacheDiskBytes > 0 {
            l.cache = addLoad(host: u.cacheHostBytes, disk: u.cacheDiskBytes, tensors: 1, memory: traits.cacheHostMemory,
                              kind: .kvLoad, diskKind: .kvDiskRead, layer: u.layer, step: step, deps: deps)
        }
        return l
    }

    /// Issues `u`'s hidden-state load, kernels, CPU attention and write-backs, after its loads `l`.
    mutating func issueKernels(_ u: Unit, step: Int, loads l: Loads) {
        var gate: [Int32] = []
        if traits.weightFetch == .oneAheadSynchronized, let b = units.barriers.last { gate.append(b) }
        var hidden: Int32 = -1
        if u.hiddenLoadBytes > 0 {
            // On the compute stream (FlexGen) the copy waits for the kernel before it.
            let after = traits.hiddenCopiesOnComputeStream ? [units.lastKernel] : []
            hidden = graph.add(.hostToDevice, .hiddenLoad, cost: linkCopy(u.hiddenLoadBytes, .hostToDevice, .pinned), bytes: u.hiddenLoadBytes,
                               layer: u.layer, step: step, deps: gate + after)
            units.stepTasks.append(hidden)
        }
        var first = true
        var qkv: Int32 = -1
        var last: Int32 = -1
        for (i, k) in u.kernels.enumerated() {
            var deps = gate + [hidden]
            if first, traits.gatherDeviceCopies > 0, l.weights >= 0 {
                let bytes = u.weightHostBytes + u.weightDiskBytes
                let copy = cost(.deviceCopy(bytes: bytes))
                let g = graph.add(.compute, .concat, cost: Cost(alone: copy.alone * Double(traits.gatherDeviceCopies), shared: copy.shared * Double(traits.gatherDeviceCopies)),
                                  bytes: 0, layer: u.layer, step: step, deps: deps + [l.weights])
                units.stepTasks.append(g)
                deps.append(g)
                // ZeRO-3 issues the partitions' copies and their gather on one stream, its
                // `__allgather_stream` (partitioned_param_coordinator.py, fetch_sub_module: the
                // all-gather and the handle's wait both under `torch.cuda.stream(self.__allgather_stream)`),
                // so the next module's copy queues behind this module's gather.
                if traits.weightFetch == .oneAheadHostSynchronized { units.lastWeightCopy = g }
            }
            if first, u.dequant.alone > 0 {
                let dq = graph.add(.compute, .dequantize, cost: u.dequant, bytes: 0, layer: u.layer, step: step, deps: deps + [l.weights])
                units.stepTasks.append(dq)
                deps.append(dq)
            }
            if k.needs.contains(.attentionWeights) || k.needs.contains(.ffnWeights) { deps.append(l.weights) }
            if k.needs.contains(.kvLoad) || k.needs.contains(.actLoad) { deps.append(l.cache) }
            if k.kind == .outProjection {
                deps.append(units.attentionOut)
                units.attentionOut = -1
            }
            last = graph.add(.compute, k.kind, cost: k.seconds, bytes: 0, layer: u.layer, step: step, deps: deps)
            units.stepTasks.append(last)
            units.lastKernel = last
            if k.kind == .head { heads.append(last) }
            if k.kind == .qkv { qkv = last }
            first = false
            if let h = u.hostAttention, h.afterKernel == i {
                // The query and new K/V to the host (blocking copies on the default stream), the
                // attention on the CPU, its output back before the output projection.
                let out = graph.add(.deviceToHost, .attentionExchange, cost: linkCopy(h.toHostBytes, .deviceToHost, .pinned), bytes: h.toHostBytes,
                                    layer: u.layer, step: step, deps: [last])
                let cpu = graph.add(.hostCPU, .hostAttention, cost: h.seconds, bytes: 0, layer: u.layer, step: step, deps: [out, l.cacheToHost])
                units.attentionOut = graph.add(.hostToDevice, .attentionExchange, cost: linkCopy(h.toDeviceBytes, .hostToDevice, .pinned),
                                         bytes: h.toDeviceBytes, layer: u.layer, step: step, deps: [cpu])
                units.stepTasks += [out, cpu, units.attentionOut]
            }
        }
        if u.hiddenStoreBytes > 0 {
            let s = graph.add(.deviceToHost, .hiddenStore, cost: linkCopy(u.hiddenStoreBytes, .deviceToHost, .pinned), bytes: u.hiddenStoreBytes,
                              layer: u.layer, step: step, deps: [last])
            units.stepTasks.append(s)
            if traits.hiddenCopiesOnComputeStream { units.lastKernel = s }
        }
        if u.storeBytes > 0 {
            units.pendingStores.append((u.storeKind, u.storeBytes, u.storeDiskBytes, u.layer, step, qkv >= 0 ? qkv : last))
        }
        if traits.weightFetch != .oneAheadSynchronized {
            drainStores()
            units.stepTasks.removeAll(keepingCapacity: true)
        }
        units.kernelEnds.append(last)
    }

    /// Issues the write-backs waiting to be issued (FlexGen stores the previous step's cache).
    mutating func drainStores() {
        for s in units.pendingStores {
            var id = graph.add(.deviceToHost, s.kind, cost: linkCopy(s.bytes, .deviceToHost, traits.cacheHostMemory), bytes: s.bytes,
                               layer: s.layer, step: s.step, deps: [s.after])
            units.stepTasks.append(id)
            if s.diskBytes > 0 {
                id = graph.add(.diskWrite, .kvDiskWrite, cost: diskWrite(s.diskBytes), bytes: s.diskBytes, layer: s.layer, step: s.step, deps: [id])
                units.stepTasks.append(id)
            }
            units.lastStoreOfLayer[s.layer] = id
        }
        units.pendingStores.removeAll()
    }

    /// Adds one unit to the schedule.
    mutating func addUnit(_ u: Unit, step: Int) {
        if u.startsStep, let h = heads.last, traits.weightFetch != .oneAheadSynchronized { units.previousStepEnd = h }
        guard traits.weightFetch == .oneAheadSynchronized else {
            let loads = issueLoads(u, step: step)
            issueKernels(u, step: step, loads: loads)
            return
        }
        // FlexGen: a unit's loads are issued in the step of a unit before it (see `issueWaitingUnit`).
        if u.startsStep, let h = heads.last { units.previousStepEnd = h }
        units.waiting.append(WaitingUnit(unit: u, step: step))
        while let head = units.waiting.first, units.waiting.count >= 2,
              head.unit.microBatch != 0 || units.waiting.dropFirst().contains(where: { $0.unit.microBatch == 0 }) {
            issueWaitingUnit()
        }
    }

    /// Issues the oldest waiting unit as FlexGen's decode loop does at its (layer j, GPU batch k)
    /// (flex_opt.py 1046-1054): `load_weight(i, j + 1, k)`, which copies only at k == 0
    /// (SelfAttention.load_weight and MLP.load_weight, flex_opt.py 309-319), so the next block's
    /// weights load during the block's first GPU batch; `load_cache(i, j, k + 1)`, the next
    /// unit's cache; the stores of the unit before; the unit's kernels; then `sync()`, the barrier
    /// that waits for all of it.
    mutating func issueWaitingUnit(drainingAfter: Bool = false) {
        guard var current = units.waiting.popFirst() else { return }
        if !current.weightsIssued || !current.cacheIssued {
            // Nothing issued it ahead (the first unit of the run): its loads go now.
            let l = issueLoads(current.unit, step: current.step, weights: !current.weightsIssued, cache: !current.cacheIssued)
            if !current.weightsIssued { current.loads.weights = l.weights }
            if !current.cacheIssued { current.loads.cache = l.cache; current.loads.cacheToHost = l.cacheToHost }
        }
        if current.unit.microBatch == 0, let n = units.waiting.firstIndex(where: { $0.unit.microBatch == 0 }), !units.waiting[n].weightsIssued {
            let w = units.waiting[n]
            units.waiting[n].loads.weights = issueLoads(w.unit, step: w.step, cache: false).weights
            units.waiting[n].weightsIssued = true
        }
        if let next = units.waiting.first, !next.cacheIssued {
            let l = issueLoads(next.unit, step: next.step, weights: false)
            units.waiting[units.waiting.startIndex].loads.cache = l.cache
            units.waiting[units.waiting.startIndex].loads.cacheToHost = l.cacheToHost
            units.waiting[units.waiting.startIndex].cacheIssued = true
        }
        drainStores()
        issueKernels(current.unit, step: current.step, loads: current.loads)
        if drainingAfter { drainStores() }
        addBarrier(step: current.step, layer: current.unit.layer)
    }

    /// Issues the units still waiting (end of the run), the last one's stores before its barrier.
    mutating func finishUnits() {
        while !units.waiting.isEmpty { issueWaitingUnit(drainingAfter: units.waiting.count == 1) }
    }

    /// `torch.cuda.synchronize()` and the disk queue's join after a step (flex_opt.py 793-795).
    mutating func addBarrier(step: Int, layer: Int) {
        let b = graph.add(.compute, .barrier, cost: .zero, bytes: 0, layer: layer, step: step, deps: units.stepTasks)
        units.barriers.append(b)
        units.lastKernel = b
        units.stepTasks = [b]
    }
}
