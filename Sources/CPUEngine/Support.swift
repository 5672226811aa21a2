import CAffinity
import CBLAS
import Foundation
import PlannerCore
import Synchronization

/// A 64-byte aligned array of fp32 values that the engine owns. Which tier it belongs to (the
/// "device" tier the compute thread works in, or the "host" tier the copy thread streams from) is
/// only a matter of bookkeeping: both are ordinary process memory on the CPU.
final class FloatBuffer: @unchecked Sendable {
    let count: Int
    let p: UnsafeMutablePointer<Float>

    init(count: Int) {
        self.count = max(count, 1)
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, 64, self.count * MemoryLayout<Float>.stride) == 0, let raw else {
            fatalError("posix_memalign of \(self.count * 4) bytes failed after the memory check passed")
        }
        p = raw.bindMemory(to: Float.self, capacity: self.count)
        p.initialize(repeating: 0, count: self.count)
    }

    deinit { free(p) }

    var bytes: Int { count * MemoryLayout<Float>.stride }
}

/// SplitMix64: a small seeded generator; the engine's weights and inputs depend only on the seed
/// and the tensor's identity, never on a placement, so every policy runs the same model.
struct SplitMix: Sendable {
    var state: UInt64
    init(_ seed: UInt64, _ stream: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 ^ (stream &+ 0x632B_E59B_D9B4_E019) }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    mutating func symmetric() -> Float { Float(Double(next() >> 40) / Double(1 << 23) - 1) }
}

func fill(_ p: UnsafeMutablePointer<Float>, _ n: Int, scale: Float, offset: Float = 0, seed: UInt64, stream: UInt64) {
    var g = SplitMix(seed, stream)
    for i in 0 ..< n { p[i] = offset + scale * g.symmetric() }
}

/// A monotonic counter that one thread advances and others wait on (an event in CUDA's sense).
/// Waiters spin briefly (a copy usually finishes within microseconds of being waited for), then sleep.
final class Counter: @unchecked Sendable {
    private let value = Atomic<Int>(0)
    private let cond = NSCondition()

    var current: Int { value.load(ordering: .acquiring) }

    func advance() {
        cond.lock()
        value.add(1, ordering: .releasing)
        cond.broadcast()
        cond.unlock()
    }

    func wait(atLeast v: Int) {
        if value.load(ordering: .acquiring) >= v { return }
        for _ in 0 ..< 4000 where value.load(ordering: .acquiring) >= v { return }
        cond.lock()
        while value.load(ordering: .acquiring) < v { cond.wait() }
        cond.unlock()
    }
}

/// One copy engine: a thread that runs jobs in submission order, each after its waits are met, and
/// counts completed jobs (so a job's completion is `done.current >= its sequence number`).
final class CopyEngine: @unchecked Sendable {
    struct Job {
        var waits: [(Counter, Int)]
        var work: () -> Void
    }

    let done = Counter()
    private let cond = NSCondition()
    private var queue: [Job] = []
    private var head = 0
    private var submitted = 0
    private var stopping = false
    private var thread: Thread?
    /// Seconds spent copying (busy time), for reports.
    private let busyNanos = Atomic<Int>(0)

    init(name: String) {
        // The thread keeps the engine alive until `stop()` lets its loop end.
        let t = Thread { self.loop() }
        t.name = name
        thread = t
        t.start()
    }

    /// Queues a job; returns the value `done` reaches when it has run.
    @discardableResult
    func submit(waits: [(Counter, Int)] = [], _ work: @escaping () -> Void) -> Int {
        cond.lock()
        queue.append(Job(waits: waits, work: work))
        submitted += 1
        let seq = submitted
        cond.signal()
        cond.unlock()
        return seq
    }

    var busySeconds: Double { Double(busyNanos.load(ordering: .relaxed)) * 1e-9 }
    func resetBusy() { busyNanos.store(0, ordering: .relaxed) }

    /// Waits until every submitted job has run.
    func drain() {
        cond.lock()
        let n = submitted
        cond.unlock()
        done.wait(atLeast: n)
    }

    func stop() {
        cond.lock()
        stopping = true
        cond.signal()
        cond.unlock()
    }

    private func loop() {
        CPUAffinity.pinCopyThread()
        while true {
            cond.lock()
            while head >= queue.count, !stopping { cond.wait() }
            if head >= queue.count, stopping { cond.unlock(); return }
            let job = queue[head]
            queue[head] = Job(waits: [], work: {})
            head += 1
            if head > 4096, head * 2 > queue.count {
                queue.removeFirst(head)
                head = 0
            }
            cond.unlock()
            for (c, v) in job.waits { c.wait(atLeast: v) }
            let t0 = DispatchTime.now().uptimeNanoseconds
            job.work()
            busyNanos.add(Int(DispatchTime.now().uptimeNanoseconds - t0), ordering: .relaxed)
            done.advance()
        }
    }
}

/// Which core each of the engine's threads runs on. The compute thread (OpenBLAS on one thread)
/// belongs on the first core the process may use and the copy threads on the last, as a GPU's kernels
/// and its copy engines are separate hardware. Left to the scheduler, a copy thread that a condition
/// variable wakes is often placed on the core of the thread that woke it (the compute thread) and
/// shares that core for a while, and end-to-end steps varied by up to 38% between runs. With one
/// core there is nothing to pin.
public enum CPUAffinity {
    /// The cores this process may run on, read once (before any pinning).
    static let allowed: [Int] = {
        var cpus = [Int32](repeating: 0, count: 4096)
        let n = hp_allowed_cpus(&cpus, Int32(cpus.count))
        return n > 0 ? cpus.prefix(Int(min(n, Int32(cpus.count)))).map(Int.init) : []
    }()

    /// Pins the calling thread to `cpu`; false where pinning is not possible.
    @discardableResult
    static func pin(to cpu: Int) -> Bool { hp_pin_current_thread(Int32(cpu)) == 0 }

    /// Pins the calling thread, which runs the engine's kernels, to the first allowed core (when
    /// there are two or more). `planner run` and the capture call it on their main thread.
    @discardableResult
    public static func pinComputeThread() -> Bool {
        guard allowed.count >= 2 else { return false }
        return pin(to: allowed[0])
    }

    /// Pins the calling copy thread to the last allowed core (when there are two or more).
    @discardableResult
    static func pinCopyThread() -> Bool {
        guard allowed.count >= 2 else { return false }
        return pin(to: allowed[allowed.count - 1])
    }
}

/// The median of `xs` (the mean of the middle two for an even count); 0 for none.
func median(_ xs: [Double]) -> Double {
    xs.isEmpty ? 0 : CaptureRule.median(xs)
}

/// Wall-clock seconds of a monotonic clock.
@inline(__always) func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 }

/// OpenBLAS facts for profiles and reports.
public enum BLAS {
    /// Sets OpenBLAS's thread count (`openblas_set_num_threads`).
    public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(n)) }
    public static var threads: Int { Int(openblas_get_num_threads()) }
    /// `openblas_get_config()`, e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Zen MAX_THREADS=64".
    public static var config: String { String(cString: openblas_get_config()) }
    public static var coreName: String { String(cString: openblas_get_corename()) }
    /// The version number in `config` ("0.3.21"), or "unknown".
    public static var version: String {
        let parts = config.split(separator: " ")
        if let i = parts.firstIndex(of: "OpenBLAS"), i + 1 < parts.count { return String(parts[i + 1]) }
        return "unknown"
    }

    /// Plain `cblas_sgemm`, row-major, `C = A B` (no transposes): the reference the engine's GEMMs are
    /// compared with.
    public static func sgemm(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), 1, a, Int32(k), b, Int32(n), 0, c, Int32(n))
    }
}
