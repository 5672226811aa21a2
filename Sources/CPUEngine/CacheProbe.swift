/// Decode attention over a cache read cold from memory against the same cache just written by a copy,
/// as the engine's host-KV path writes the attention buffer right before attention reads it. The
/// simulator has no cache model; `planner-bench` prints how much that leaves out.
public enum CacheProbe {
    /// Median seconds of `reps` decode attentions (one query per sequence, context `context`, heads
    /// of 64) after reading a 64 MiB buffer (`cold`), and after that read and a memcpy of the whole
    /// cache into the attention buffer on the same core (`copied`).
    public static func attention(batch b: Int, heads h: Int, kvHeads kvh: Int, context c: Int, reps: Int) -> (cold: Double, copied: Double) {
        let d = 64, n = c * b * 2 * kvh * d
        let flush = FloatBuffer(count: 16 << 20), kv = FloatBuffer(count: n), source = FloatBuffer(count: n)
        let q = FloatBuffer(count: b * h * d), out = FloatBuffer(count: b * h * d), scores = FloatBuffer(count: h * c)
        fill(flush.p, flush.count, scale: 1, seed: 11, stream: 1)
        fill(source.p, n, scale: 1, seed: 11, stream: 2)
        fill(q.p, q.count, scale: 1, seed: 11, stream: 3)
        kv.p.update(from: source.p, count: n)
        var sink: Float = 0
        func evict() {
            var s: Float = 0
            for i in stride(from: 0, to: flush.count, by: 16) { s += flush.p[i] }
            sink += s
        }
        func attend() -> Double {
            let t0 = now()
            Kernels.attention(q: q.p, ldq: h * d, kv: kv.p, out: out.p, pos: [c - 1], batch: b, heads: h, kvHeads: kvh, d: d, scores: scores.p)
            return now() - t0
        }
        var cold: [Double] = [], copied: [Double] = []
        for _ in 0 ..< reps {
            evict()
            cold.append(attend())
            evict()
            kv.p.update(from: source.p, count: n)
            copied.append(attend())
        }
        out.p[0] = sink
        func median(_ x: [Double]) -> Double { let s = x.sorted(); return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2 }
        return (median(cold), median(copied))
    }
}
