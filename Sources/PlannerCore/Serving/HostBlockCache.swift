import DequeModule
import Foundation

/// vLLM V1's CPU KV cache (`--kv-offloading-size`, the OffloadingConnector's CPU backend, 0.34.0
/// `vllm/v1/kv_offload/cpu/`): GPU blocks copied to pinned host memory under their prefix-cache
/// key, one GPU block a chunk (`blocks_per_chunk` 1, offloading/config.py 121-160), as many as
/// `capacity`; a full cache evicts the least recently used chunk (`eviction_policy` "lru",
/// cpu/spec.py 141). A chunk can be loaded once its store has finished (`readyAt`).
///
/// Invariant: `entries.count <= capacity`; every key in `entries` has exactly one live entry in
/// `order`, the one with its stamp.
struct HostBlockCache {
    let capacity: Int
    private var entries: [BlockPool.Key: (stamp: Int, readyAt: Double)] = [:]
    private var order = Deque<(key: BlockPool.Key, stamp: Int)>()
    private var clock = 0
    private(set) var evictions = 0

    init(capacity: Int) { self.capacity = max(0, capacity) }

    var count: Int { entries.count }

    func contains(_ key: BlockPool.Key) -> Bool { entries[key] != nil }

    /// When the chunk's store finishes (nil: not cached).
    func readyAt(_ key: BlockPool.Key) -> Double? { entries[key]?.readyAt }

    /// Marks a chunk used now (a hit), moving it to the most recent end.
    mutating func touch(_ key: BlockPool.Key) {
        guard var e = entries[key] else { return }
        clock += 1
        e.stamp = clock
        entries[key] = e
        order.append((key, clock))
    }

    /// Stores a chunk whose copy finishes at `readyAt`, evicting the least recently used when full.
    /// False when the chunk is already cached or the cache holds nothing.
    mutating func insert(_ key: BlockPool.Key, readyAt: Double) -> Bool {
        guard capacity > 0, entries[key] == nil else { return false }
        while entries.count >= capacity, let e = order.popFirst() {
            if entries[e.key]?.stamp == e.stamp {
                entries[e.key] = nil
                evictions += 1
            }
        }
        clock += 1
        entries[key] = (clock, readyAt)
        order.append((key, clock))
        // Stale entries (touched since) are dropped as the front reaches them; keep the queue bounded.
        if order.count > 4 * max(capacity, 16) { compact() }
        return true
    }

    private mutating func compact() {
        order = Deque(order.filter { entries[$0.key]?.stamp == $0.stamp })
    }
}
