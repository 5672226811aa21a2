import Foundation

/// vLLM's prefetch offloader (`--offload-group-size N --offload-num-in-group k
/// --offload-prefetch-step s`, from 0.17; 0.34.0 `vllm/model_executor/offloader/prefetch.py`,
/// `vllm/config/offload.py` 47-75): the last `k` decoder layers of every group of `N` keep their
/// weights in pinned host memory, and `s` static GPU buffers hold the ones in use. After an
/// offloaded layer runs, the copy of the offloaded layer `s` places later (circularly, so the last
/// layers fetch the next forward's first ones) is queued on a copy stream of its own
/// (`_hook_module_forward` 231-266, `_get_next_prefetch_index` 127-139); before an offloaded layer
/// runs, the compute stream waits for its copy (`wait_prefetch`). The first `s` are fetched at
/// start-up (386-391).
///
/// `run` plays one forward layer by layer: compute advances by a layer's time, waits where a copy is
/// late, and the copy stream serves one layer's weights at a time. The copies in flight carry over
/// from one forward to the next.
struct PrefetchOffload: Sendable {
    let layers: Int
    let groupSize: Int
    let perGroup: Int
    let step: Int
    /// Decoder layers whose weights live on the host, in order.
    let offloaded: [Int]
    /// Seconds to copy one offloaded layer's weights.
    let copySeconds: Double
    /// When the copy into each offloaded layer's buffer finishes.
    private var ready: [Double]
    private var streamFree = 0.0

    init(layers: Int, groupSize: Int, perGroup: Int, step: Int, copySeconds: Double) {
        self.layers = layers
        self.groupSize = groupSize
        self.perGroup = perGroup
        self.step = step
        self.copySeconds = copySeconds
        offloaded = (0 ..< layers).filter { $0 % groupSize >= groupSize - perGroup }
        ready = Array(repeating: 0, count: offloaded.count)
        for i in 0 ..< min(step, offloaded.count) {
            streamFree += copySeconds
            ready[i] = streamFree
        }
    }

    /// Layers offloaded by `N` and `k` over `layers` decoder layers.
    static func offloadedLayers(layers: Int, groupSize: Int, perGroup: Int) -> Int {
        (0 ..< layers).filter { $0 % groupSize >= groupSize - perGroup }.count
    }

    /// The buffer that the copy started after module `i` fills: `i + s` circularly, kept on the same
    /// static slot (`i mod s`).
    func nextModule(after i: Int) -> Int {
        let m = offloaded.count
        let next = (i + step) % m
        if step < m, next % step != i % step { return i % step }
        return next
    }

    /// Plays a forward from `start` whose layers each compute for `layerSeconds`; returns when the
    /// last layer ends.
    mutating func run(start: Double, layerSeconds: Double) -> Double {
        var t = start
        var module = 0
        for l in 0 ..< layers {
            if module < offloaded.count, offloaded[module] == l {
                t = max(t, ready[module]) + layerSeconds
                let next = nextModule(after: module)
                streamFree = max(t, streamFree) + copySeconds
                ready[next] = streamFree
                module += 1
            } else {
                t += layerSeconds
            }
        }
        return t
    }
}
