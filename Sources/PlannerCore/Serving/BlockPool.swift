import DequeModule
import Foundation

/// The GPU's KV blocks with automatic prefix caching, as vLLM V1's block pool keeps them (0.34.0,
/// `vllm/v1/core/block_pool.py`): a full block is cached under the hash of its tokens and of every
/// token before it; a freed block without a hash goes to the front of the free queue, to be reused
/// first, and a freed cached block to its tail, keeping its hash until an allocation takes it from
/// the front and evicts it (`free_blocks` 798-837; a request's blocks are freed tail first,
/// `single_type_kv_cache_manager.py` 603-604); a hit on a free cached block takes it out of the
/// queue again.
///
/// Invariants: `free` is the number of blocks no request holds (`unused` uncached ones plus the
/// cached ones waiting in the queue); a key is in `cache` while some request holds its block or
/// while it waits in the queue; a cached block with `refs == 0` has exactly one live queue entry,
/// the one with its stamp.
struct BlockPool {
    /// What a request's block is cached under: the hash of its content and position. 0: uncached
    /// (not full yet, or caching off).
    typealias Key = UInt64

    let total: Int
    let caching: Bool
    private(set) var free: Int
    /// Free blocks without a hash (never used, or freed uncached): taken before any cached one.
    private var unused: Int
    /// Freed cached blocks, least recently freed first, with the stamp each was freed under.
    private var queue = Deque<(key: Key, stamp: Int)>()
    private var cache: [Key: (refs: Int, stamp: Int)] = [:]
    private var clock = 0
    /// Cached blocks taken from the queue's front for new content.
    private(set) var evictions = 0

    init(blocks: Int, caching: Bool) {
        total = blocks
        self.caching = caching
        free = blocks
        unused = blocks
    }

    /// Whether a block with this key is cached (held by a request or waiting in the queue).
    func isCached(_ key: Key) -> Bool { caching && key != 0 && cache[key] != nil }

    /// Whether a cached block is free (a hit on it takes a block out of `free`).
    func isEvictable(_ key: Key) -> Bool { cache[key]?.refs == 0 }

    /// Takes a block for new content: a never-used one, else the queue's front (evicting the hash it
    /// kept). False when none is free.
    mutating func allocate() -> Bool {
        guard free > 0 else { return false }
        free -= 1
        if unused > 0 { unused -= 1; return true }
        while let e = queue.popFirst() {
            if let c = cache[e.key], c.refs == 0, c.stamp == e.stamp {
                cache[e.key] = nil
                evictions += 1
                return true
            }
        }
        preconditionFailure("BlockPool: free count \(free + 1) without a free block")
    }

    /// Shares the cached block `key` with one more request; false when it is not cached.
    mutating func hit(_ key: Key) -> Bool {
        guard isCached(key), var c = cache[key] else { return false }
        if c.refs == 0 { free -= 1 }    // its queue entry goes stale
        c.refs += 1
        cache[key] = c
        return true
    }

    /// A held block became full: caches it under `key`. Returns the key it is now held under, or 0
    /// when caching is off or another block already holds that content (that block stays cached;
    /// this one is released uncached, as vLLM keeps the first block of a hash).
    mutating func register(_ key: Key) -> Key {
        guard caching, key != 0, cache[key] == nil else { return 0 }
        cache[key] = (refs: 1, stamp: 0)
        return key
    }

    /// Gives back one held block (`key` as returned by `register` or `hit`, or 0).
    /// A block shared by other requests stays held until the last of them lets go.
    mutating func release(_ key: Key) {
        clock += 1
        guard key != 0, var c = cache[key] else { unused += 1; free += 1; return }
        c.refs -= 1
        if c.refs == 0 {
            c.stamp = clock
            queue.append((key, clock))
            free += 1
        }
        cache[key] = c
    }

    /// Whether the invariants hold: the free count is the uncached free blocks plus the cached
    /// blocks no request holds, and each of those has a live queue entry (for tests).
    func consistent() -> Bool {
        let cachedFree = cache.values.filter { $0.refs == 0 }
        let live = Set(queue.filter { cache[$0.key]?.refs == 0 && cache[$0.key]?.stamp == $0.stamp }.map(\.key))
        return free == unused + cachedFree.count && live.count == cachedFree.count && cache.values.allSatisfy { $0.refs >= 0 }
    }

    /// The key of block `index` of a request: blocks inside a shared prefix hash by the prefix, those
    /// of a conversation by the conversation (a later turn resends the earlier ones' tokens), others
    /// by the request alone.
    static func key(_ r: ServingRequest, block index: Int, blockSize: Int) -> Key {
        let kind: UInt64, id: UInt64
        if let p = r.sharedPrefix, (index + 1) * blockSize <= r.sharedPrefixTokens {
            kind = 1; id = UInt64(p)
        } else if let c = r.conversation {
            kind = 2; id = UInt64(c)
        } else {
            kind = 3; id = UInt64(r.id)
        }
        var g = SeededGenerator(seed: kind &* 0x9E37_79B9_7F4A_7C15 ^ id &* 0xBF58_476D_1CE4_E5B9 ^ UInt64(index) &* 0x94D0_49BB_1331_11EB)
        return g.next() | 1
    }
}
