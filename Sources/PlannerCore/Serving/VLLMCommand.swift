import Foundation

/// The `vllm serve` command lines that run a serving configuration, every flag as vLLM's source
/// defines it (`vllm/engine/arg_utils.py` of the release wheels: 0.6.6.post1, 0.10.2 at 26b999c,
/// 0.34.0 at 62d4bc3; docs/serving.md lists the lines).
///
/// - V1 (`ServingEngine.vllmV1`, the default): the line for 0.25 and later, the first releases with
///   the scheduler played (the whole-sequence admission check, `scheduler_reserve_full_isl`, and the
///   V1 watermark: 0.25.0 config/scheduler.py 140-146, `--watermark` arg_utils.py 1455; 0.34.0 1824).
///   Prefix caching and chunked prefill are on by default there; `--no-enable-prefix-caching` (0.34.0
///   1421, a BooleanOptionalAction) and `--no-enable-chunked-prefill` turn them off.
/// - V0 (vLLM 0.6.6 to 0.10.2; `VLLM_USE_V1=0` from 0.8): with engine `vllm-v0`, the engine whose
///   scheduler is played, with swap preemption. `--preemption-mode` (0.10.2 arg_utils.py 871-872) and
///   `--swap-space` in GiB (746) exist only here; `--num-gpu-blocks-override` (749) fixes the
///   block count; `--block-size` takes 8, 16, 32, 64 or 128 (0.6.6.post1, 428-431);
///   `--enable-chunked-prefill=False|True` (a StoreBoolean, 0.6.6.post1 710-716).
/// - With engine `vllm-v0` and recompute preemption, a V1 line follows: V1 never swaps (0.11.0
///   `v1/engine/core.py` 204 sets no CPU blocks). `--kv-cache-memory-bytes` (0.34.0 arg_utils.py
///   1410, from 0.10.2) gives the cache its bytes; `--no-enable-chunked-prefill` (1808) turns off
///   the chunking V1 does by default; `--block-size` (1402), `--max-num-seqs` (1773),
///   `--max-num-batched-tokens` (1759), `--max-model-len` (998).
/// V0's watermark (0.01) is not a command-line setting; another value is named in a note.
public enum VLLMCommand {
    public struct Line: Sendable, Equatable {
        public var label: String
        public var command: String
    }

    /// Block sizes vLLM's V0 argument parser accepts.
    public static let v0BlockSizes = [8, 16, 32, 64, 128]

    /// The model as vLLM takes it: the Hugging Face repository a catalog model was read from, the
    /// folder of a `config.json` it was read from, or nil for an inline model.
    public static func modelArgument(_ m: ModelSpec) -> String? {
        if let r = m.source.range(of: "config.json of "), let end = m.source.range(of: " on the Hugging Face hub", range: r.upperBound ..< m.source.endIndex) {
            return String(m.source[r.upperBound ..< end.lowerBound])
        }
        if m.source.hasSuffix("config.json") { return URL(fileURLWithPath: m.source).deletingLastPathComponent().path }
        return nil
    }

    static func dtypeArgument(_ d: DType) -> String {
        switch d {
        case .fp16: "float16"
        case .bf16: "bfloat16"
        case .fp32: "float32"
        }
    }

    /// The command lines and the notes that go with them; `maxModelLen` is the longest request
    /// (prompt and output) the run serves.
    public static func lines(_ c: ServingConfig, maxModelLen: Int) -> (lines: [Line], notes: [String]) {
        let argument = modelArgument(c.model)
        let model = argument ?? "MODEL"
        var notes: [String] = []
        if argument == nil { notes.append("the model was given inline: put its checkpoint's repository or folder in place of MODEL") }
        var common = "vllm serve \(model) --dtype \(dtypeArgument(c.model.dtype)) --block-size \(c.blockSize)"
        // An fp8 cache: `--kv-cache-dtype fp8` (0.6.6.post1 arg_utils.py 346-352; 0.34.0 1416).
        if c.model.kvCacheElementBytes == 1 { common += " --kv-cache-dtype fp8" }
        // Weights in host memory: `--cpu-offload-gb` in GiB (0.6.6.post1 arg_utils.py 475-487; 0.34.0 1489).
        if c.cpuOffloadBytes > 0 { common += " --cpu-offload-gb \(fmt(c.cpuOffloadBytes / HardwareCatalog.GiB))" }
        // The prefetch offloader (0.34.0 arg_utils.py 1487-1504, config/offload.py 47-75).
        if let p = c.prefetchOffload {
            common += " --offload-backend prefetch --offload-group-size \(p.groupSize) --offload-num-in-group \(p.numInGroup) --offload-prefetch-step \(p.prefetchStep)"
        }
        let batch = "--max-num-seqs \(c.maxNumSeqs) --max-num-batched-tokens \(c.maxNumBatchedTokens) --max-model-len \(min(maxModelLen, c.model.maxContext))"
        let bytes = Int64(Double(c.gpuBlocks) * c.blockBytes)
        var lines: [Line] = []
        switch c.engine {
        case .vllmV1:
            // Sized by profiling: the utilization (`--gpu-memory-utilization`, 0.34.0 arg_utils.py
            // 1403-1407); vLLM measures the rest itself, so the block count is named in a note.
            let cache = c.sizedByUtilization ? "--gpu-memory-utilization \(fmt(c.memoryUtilization))" : "--kv-cache-memory-bytes \(bytes)"
            if c.sizedByUtilization {
                notes.append("vLLM sizes the cache by its own profiling; the simulation assumed \(c.gpuBlocks) blocks (--kv-cache-memory-bytes \(bytes) fixes that size)")
            }
            var v1 = "\(common) \(cache) \(batch)"
            if !c.chunkedPrefill { v1 += " --no-enable-chunked-prefill" }
            if !c.prefixCaching { v1 += " --no-enable-prefix-caching" }
            if c.watermark > 0 { v1 += " --watermark \(fmt(c.watermark))" }
            // The CPU KV cache: `--kv-offloading-size` in GiB (0.34.0 config/cache.py 407-411, from
            // 0.11.1), the native backend (the OffloadingConnector) by default.
            if c.kvOffloadingBytes > 0 { v1 += " --kv-offloading-size \(fmt(c.kvOffloadingBytes / HardwareCatalog.GiB))" }
            lines.append(Line(label: "vLLM 0.25 or later (V1 engine, the scheduler simulated)", command: v1))
        case .vllmV0:
            var v0 = "VLLM_USE_V1=0 \(common) --num-gpu-blocks-override \(c.gpuBlocks) \(batch) --enable-chunked-prefill=\(c.chunkedPrefill ? "True" : "False")"
            v0 += " --preemption-mode \(c.preemption.rawValue)"
            if c.preemption == .swap { v0 += " --swap-space \(fmt(c.swapSpaceBytes / HardwareCatalog.GiB))" }
            lines.append(Line(label: "vLLM 0.6.6 to 0.10.2 (V0 engine, the scheduler simulated)", command: v0))
            if !v0BlockSizes.contains(c.blockSize) {
                notes.append("vLLM's V0 engine accepts block sizes \(v0BlockSizes.map(String.init).joined(separator: ", ")) only, not \(c.blockSize)")
            }
            switch c.preemption {
            case .recompute:
                var v1 = "\(common) --kv-cache-memory-bytes \(bytes) \(batch)"
                if !c.chunkedPrefill { v1 += " --no-enable-chunked-prefill" }
                v1 += " --no-enable-prefix-caching"
                lines.append(Line(label: "vLLM 0.11 or later (V1 engine; its scheduler mixes prefills and decodes even without chunking)", command: v1))
            case .swap:
                notes.append("vLLM 0.11 and later (V1) never swap: they preempt by recompute, so swap needs the V0 engine")
            }
            if abs(c.watermark - 0.01) > 1e-12 {
                notes.append("the watermark \(fmt(c.watermark)) is not a vLLM V0 command-line setting (vLLM's is 0.01)")
            }
        }
        return (lines, notes)
    }
}
