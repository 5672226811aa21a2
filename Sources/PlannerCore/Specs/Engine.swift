import Foundation

/// The inference engine a scenario runs on: which implementation's schedule the simulator follows.
///
/// Each engine is a set of named traits (`EngineTraits`), read off the engine's source; a scenario
/// names an engine (`"engine": "flexgen"`) and may override single traits (`"engineTraits":
/// {"weightFetch": "serial"}`). docs/engines.md describes every trait and cites the code behind it.
public enum EngineKind: String, CaseIterable, Sendable, Codable {
    /// The planner's reference engine: double-buffered layer streaming on two copy engines, fused
    /// attention, caches written in place, pinned host memory.
    case ideal
    /// FlexGen / FlexLLMGen (FMInference/FlexLLMGen at 004ffef, `flexllmgen/flex_opt.py`).
    case flexgen
    /// DeepSpeed ZeRO-Inference: ZeRO-3 parameter offload driving Hugging Face `generate`
    /// (microsoft/DeepSpeed at 38327e0, `deepspeed/runtime/zero/`; DeepSpeedExamples at 83757d9,
    /// `inference/huggingface/zero_inference/`).
    case deepSpeedZeroInference = "deepspeed-zero-inference"
    /// Hugging Face Accelerate's big-model offload (`device_map`) with transformers' `generate`
    /// (huggingface/accelerate v0.15.0, cf22df9, `src/accelerate/hooks.py`).
    case hfAccelerate = "hf-accelerate"

    public static var names: [String] { allCases.map(\.rawValue) }

    public var traits: EngineTraits {
        switch self {
        case .ideal: .ideal
        case .flexgen: .flexGen
        case .deepSpeedZeroInference: .deepSpeedZeroInference
        case .hfAccelerate: .hfAccelerate
        }
    }
}

/// What an engine does that changes time or memory, one named trait per behaviour.
///
/// The four presets are read off each engine's source (file and line in each trait's comment and in
/// docs/engines.md). A scenario overrides a trait by name; a name that is not a trait, or a value
/// outside its set, is refused with the trait named.
public struct EngineTraits: Equatable, Sendable {
    /// How weight copies are ordered against the kernels that use them.
    public enum WeightFetch: String, CaseIterable, Sendable {
        /// The next unit's weights load on the copy engine while this one computes; a unit's buffer
        /// is reused once the unit two back has finished. No barrier.
        case doubleBuffered = "double-buffered"
        /// FlexGen's overlapped loop: in the step of unit `u` the weights of `u + 1` and the cache of
        /// the next micro-batch load, the cache of the previous one is stored, then a full device
        /// synchronisation ends the step (`flex_opt.py` 1034-1059, `sync()` 793-795).
        case oneAheadSynchronized = "one-ahead-synchronized"
        /// ZeRO-3's fetch: at a module's pre-forward hook the host waits for every queued copy
        /// (`allgather_stream.synchronize()`, partition_parameters.py 58-91), then issues the next
        /// module's copies and launches this module's kernels; the next copy therefore starts only
        /// after the previous one ended, plus the host's hook time (partitioned_param_coordinator.py
        /// 285-418).
        case oneAheadHostSynchronized = "one-ahead-host-synchronized"
        /// Every copy waits for the kernel before it and every kernel for its copy: Accelerate's
        /// blocking `.to(device)` in each leaf module's pre-forward hook (hooks.py 257-266,
        /// utils/modeling.py 123), and FlexGen's `--overlap False` loop (flex_opt.py 912-927).
        case serial
    }

    /// How a mixture-of-experts layer runs its experts.
    public enum ExpertKernels: String, CaseIterable, Sendable {
        /// One gated FFN call per expert on the rows routed to it: three GEMMs and an activation
        /// each, so `D` experts cost `D` times the launches (transformers' `MixtralSparseMoeBlock`
        /// loops over the experts, `modeling_mixtral.py`, and the engines built on it inherit it).
        case perExpert = "per-expert"
        /// A grouped GEMM over all routed experts at once, for the gate/up and for the down
        /// projection (vLLM's `fused_experts`, `vllm/model_executor/layers/fused_moe/fused_moe.py` at 13cb3e4:
        /// `invoke_fused_moe_kernel` for `w1` and for `w2` around one `silu_and_mul`): the same weight
        /// bytes and FLOPs as the per-expert calls, one launch per projection.
        case fused
    }

    /// How much one weight fetch brings.
    public enum FetchUnit: String, CaseIterable, Sendable {
        /// A whole decoder layer (attention and FFN weights, two copies).
        case layer
        /// A block: the attention or the MLP of a layer (FlexGen's `--sep-layer`, default on,
        /// flex_opt.py 596-606 and 1300-1301).
        case block
        /// A module: the norm and the Q/K/V projections, the output projection, the norm and the FFN
        /// matrices (ZeRO-3 and Accelerate hook each module, parameter_offload.py 445-467,
        /// hooks.py 318-386).
        case module
    }

    /// How the KV cache grows by the step's token.
    public enum CacheUpdate: String, CaseIterable, Sendable {
        /// Written into a preallocated cache (FlexGen, pytorch_backend.py 409-412).
        case inPlace = "in-place"
        /// Concatenated into a new tensor every step (transformers 4.24 OPT, modeling_opt.py 186-187:
        /// `torch.cat([past_key_value[0], key_states], dim=2)`): the whole cache is read and written
        /// once per layer per step, and until the forward returns the old and the new cache coexist.
        case concatenate
    }

    public var weightFetch: WeightFetch
    public var fetchUnit: FetchUnit
    /// One copy per weight tensor (each pays the link's per-copy latency) rather than one per fetch.
    public var copyPerTensor: Bool
    /// Whether the fetch of the next decode step's first weights may start before this step ends.
    /// ZeRO-3 resets its prefetch queue at every forward (partitioned_param_coordinator.py 228-264).
    public var prefetchAcrossSteps: Bool
    /// Host seconds between one fetch completing and the next one being issued (hooks, stream
    /// synchronisation), where the engine's fetch waits on the host.
    public var hostSecondsPerFetch: Double
    /// A pageable tensor is staged into pinned memory by one host thread before its copy
    /// (FlexGen's `src.pin_memory()`, pytorch_backend.py 843-850), rather than left to the
    /// driver's pageable copy.
    public var pageableStagedOnHost: Bool
    /// Units whose weights may be read from disk ahead of their copy to the GPU (ZeRO-3's NVMe
    /// swapper fills `buffer_count` = 5 pinned buffers ahead, offload_config.py 33 and
    /// partitioned_param_coordinator.py 557-580); 0: a disk read starts with its copy.
    public var diskReadAheadUnits: Int
    public var cacheUpdate: CacheUpdate
    /// Decode attention first copies the K and V it reads into a new layout: 2 x 2 bytes more
    /// traffic per cached element and layer on the GPU, 2 x 4 on the host. No modelled engine does:
    /// FlexGen's `k.permute(1, 2, 0).reshape(b * n_head, head_dim, src_s)` (pytorch_backend.py
    /// 415-417) reshapes to the permuted view's own shape, which PyTorch returns as a view, and
    /// both `bmm`s take the strided matrices as BLAS transposes with a leading dimension. Kept for
    /// an engine whose attention does copy.
    public var attentionCopiesCache: Bool
    /// Device-to-device copies every fetched weight byte takes after it arrives: DeepSpeed before
    /// 0.9 flattens a module's partitions into one buffer (`torch.cat`), all-gathers it (NCCL, a copy
    /// at world size 1) and splits it back (partition_parameters.py 806-880 at v0.7.7): 3. From 0.9
    /// a single GPU skips the gather (`_no_gather_coalesced`, partition_parameters.py 810-821): 0.
    public var gatherDeviceCopies: Int
    /// Whether the prefill's weights are prefetched. ZeRO-3 prefetches only along a recorded trace
    /// (partitioned_param_coordinator.py 228-264); in DeepSpeed 0.7.7 the first forward is untraced
    /// and the second records, so a timed `generate` after one warm-up forward fetches its prefill
    /// on demand, copy then compute.
    public var prefillPrefetches: Bool
    /// Host memory of streamed weights when the scenario does not say (`hostMemory`).
    public var weightsHostMemory: HostMemoryKind
    /// Host memory of the host KV cache. FlexGen never pins it ("disable pin_memory due to high
    /// memory overhead", pytorch_backend.py 292-294).
    public var cacheHostMemory: HostMemoryKind
    /// Hidden-state copies between layers run on the compute stream, serialised with the kernels
    /// (FlexGen's `load_hidden`/`store_hidden` on the default stream, flex_opt.py 730-782).
    public var hiddenCopiesOnComputeStream: Bool
    /// Element type in which the CPU keeps the cache it attends over (CPU attention): fp16 home
    /// converted into an fp32 workspace every step (FlexGen, flex_opt.py 374-385 and
    /// pytorch_backend.py 851-855), or an fp32 cache read as it is (ZeRO-Inference's KV offload,
    /// tjruwase/transformers kvcache-offload-cpu, modeling_opt.py 724-731).
    public var hostAttentionConvertsFP16Cache: Bool
    /// Bytes per element of the host KV cache under CPU attention.
    public var hostAttentionCacheBytesPerElement: Double
    /// The prefill computes logits at every prompt position, not only the last (FlexGen,
    /// pytorch_backend.py 277-278; transformers 4.24 OPT's lm_head over all positions).
    public var prefillLogitsAllPositions: Bool
    /// Prefill attention materialises the scores (`bmm`, then mask, softmax and `bmm`, with a copy
    /// each) instead of a fused kernel: memory for `batch x heads x prompt^2` scores three times.
    public var prefillAttentionMaterialized: Bool
    /// GPU memory traffic per weight element to dequantise 4-bit weights, and kernels per tensor:
    /// FlexGen's `decompress` (compression.py 146-201: shift, strided store, and, strided store,
    /// divide, add: 13 bytes over 6 kernels); ZeRO-Inference's one fused kernel
    /// (deepspeed/inference/quantization/utils.py 105-127: reads 0.5625, writes 2 bytes).
    public var dequantBytesPerElement: Double
    public var dequantKernelsPerTensor: Int
    /// Dequantised weights are recomputed for every micro-batch (FlexGen decompresses in every
    /// forward call, per GPU batch: pytorch_backend.py 372-376).
    public var dequantPerMicroBatch: Bool
    /// How a mixture of experts' experts run (ignored for a dense model).
    /// What the engine can run; asking for anything else is refused by name.
    public var supports: Set<Feature>
    /// How a mixture of experts' experts run (ignored for a dense model).
    public var expertKernels = ExpertKernels.perExpert

    /// Capabilities a plan may ask of an engine.
    public enum Feature: String, CaseIterable, Sendable {
        case hostAttention = "CPU attention"
        case hostCache = "a host KV cache streamed to the GPU"
        case diskWeights = "weights on disk"
        case diskCache = "a KV cache on disk"
        case weightCompression = "4-bit weights"
        case cacheCompression = "4-bit KV cache"
        case microBatches = "GPU micro-batches (a block schedule)"
        case activationCheckpoints = "activation (ACT) checkpoints"
        case tokenRecomputation = "token recomputation"
        case partialWeights = "a resident share of every layer"
        case mixtureOfExperts = "mixture-of-experts models (not modelled for this engine yet)"
        case slidingWindow = "sliding-window attention (not modelled for this engine yet)"
        case quantizedCheckpoint = "a quantised checkpoint (AWQ, GPTQ, FP8, bitsandbytes, MXFP4) or an fp8 KV cache"
        case latentAttention = "multi-head latent attention (not modelled for this engine yet)"
    }

    /// The planner's reference engine (what the simulator played before engines were modelled):
    /// HybridServe's cache classes over double-buffered layer streaming. CPU attention, a disk tier
    /// and compression are the engines' that implement them.
    public static let ideal = EngineTraits(
        weightFetch: .doubleBuffered, fetchUnit: .layer, copyPerTensor: false, prefetchAcrossSteps: true, hostSecondsPerFetch: 0,
        pageableStagedOnHost: false, diskReadAheadUnits: 0,
        cacheUpdate: .inPlace, attentionCopiesCache: false, gatherDeviceCopies: 0, prefillPrefetches: true,
        weightsHostMemory: .pinned, cacheHostMemory: .pinned,
        hiddenCopiesOnComputeStream: false, hostAttentionConvertsFP16Cache: false, hostAttentionCacheBytesPerElement: 2,
        prefillLogitsAllPositions: false, prefillAttentionMaterialized: false, dequantBytesPerElement: 2.5625, dequantKernelsPerTensor: 1,
        dequantPerMicroBatch: false, supports: [.hostCache, .activationCheckpoints, .tokenRecomputation, .partialWeights, .microBatches,
                                              .mixtureOfExperts, .slidingWindow, .quantizedCheckpoint, .latentAttention],
        expertKernels: .fused)

    /// FlexGen (FlexLLMGen at 004ffef): blocks fetched one ahead with a device barrier after every
    /// (block, GPU batch) step; one copy per weight tensor; weights pinned (`--pin-weight` default
    /// True, flex_opt.py 1302-1303), the host KV cache pageable; CPU attention over an fp32
    /// workspace refilled from the fp16 cache (`k.float()` of a strided view, no layout copy); whole-tensor placement by `--percent` (policy
    /// `flexgen`).
    public static let flexGen = EngineTraits(
        weightFetch: .oneAheadSynchronized, fetchUnit: .block, copyPerTensor: true, prefetchAcrossSteps: true, hostSecondsPerFetch: 0,
        pageableStagedOnHost: true, diskReadAheadUnits: 0,
        cacheUpdate: .inPlace, attentionCopiesCache: false, gatherDeviceCopies: 0, prefillPrefetches: true,
        weightsHostMemory: .pinned, cacheHostMemory: .pageable,
        hiddenCopiesOnComputeStream: true, hostAttentionConvertsFP16Cache: true, hostAttentionCacheBytesPerElement: 2,
        prefillLogitsAllPositions: true, prefillAttentionMaterialized: true, dequantBytesPerElement: 13, dequantKernelsPerTensor: 6,
        dequantPerMicroBatch: true,
        supports: [.hostAttention, .hostCache, .diskWeights, .diskCache, .weightCompression, .cacheCompression, .microBatches, .partialWeights])

    /// DeepSpeed ZeRO-Inference: one module ahead with a host synchronisation per fetch, cold at
    /// every forward; one copy per tensor; the KV cache on the GPU grown by `torch.cat`, or (its
    /// KV offload) an fp32 cache on the host attended by the CPU. Weights pinned as its published
    /// recipes run them (DeepSpeedExamples run_opt30b.sh and the FlexGen benchmark's hf_opt.py,
    /// `--pin-memory 1`; DeepSpeed's own default is unpinned, offload_config.py 45).
    public static let deepSpeedZeroInference = EngineTraits(
        weightFetch: .oneAheadHostSynchronized, fetchUnit: .module, copyPerTensor: true, prefetchAcrossSteps: false,
        hostSecondsPerFetch: 0, pageableStagedOnHost: false, diskReadAheadUnits: 5, cacheUpdate: .concatenate, attentionCopiesCache: false, gatherDeviceCopies: 0, prefillPrefetches: true,
        weightsHostMemory: .pinned,
        cacheHostMemory: .pageable, hiddenCopiesOnComputeStream: false, hostAttentionConvertsFP16Cache: false,
        hostAttentionCacheBytesPerElement: 4, prefillLogitsAllPositions: true, prefillAttentionMaterialized: true,
        dequantBytesPerElement: 2.5625, dequantKernelsPerTensor: 1, dequantPerMicroBatch: false,
        supports: [.hostAttention, .diskWeights, .weightCompression])

    /// Hugging Face Accelerate 0.15 with transformers 4.24: each module's weights copied from
    /// pageable host memory right before it runs, blocking, and freed after; no prefetch; the KV
    /// cache on the GPU grown by `torch.cat`; disk weights read per forward from numpy memmaps.
    /// Accelerate places whole layers (`device_map`); under its serial fetch a share of the layers
    /// resident costs the same copies and memory as that share of every layer, which is how a
    /// resident share is played.
    public static let hfAccelerate = EngineTraits(
        weightFetch: .serial, fetchUnit: .module, copyPerTensor: true, prefetchAcrossSteps: false, hostSecondsPerFetch: 0,
        pageableStagedOnHost: false, diskReadAheadUnits: 0,
        cacheUpdate: .concatenate, attentionCopiesCache: false, gatherDeviceCopies: 0, prefillPrefetches: true,
        weightsHostMemory: .pageable, cacheHostMemory: .pageable,
        hiddenCopiesOnComputeStream: false, hostAttentionConvertsFP16Cache: false, hostAttentionCacheBytesPerElement: 2,
        prefillLogitsAllPositions: true, prefillAttentionMaterialized: true, dequantBytesPerElement: 2.5625, dequantKernelsPerTensor: 1,
        dequantPerMicroBatch: false, supports: [.diskWeights, .partialWeights])

    /// Trait names a scenario's `engineTraits` may set, and what each takes.
    public static let traitNames: [String: String] = [
        "weightFetch": WeightFetch.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", "),
        "fetchUnit": FetchUnit.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", "),
        "copyPerTensor": "true or false",
        "prefetchAcrossSteps": "true or false",
        "hostSecondsPerFetch": "seconds from 0 to 1",
        "gatherDeviceCopies": "an integer from 0 to 8",
        "prefillPrefetches": "true or false",
        "pageableStagedOnHost": "true or false",
        "diskReadAheadUnits": "an integer from 0 to 64",
        "cacheUpdate": CacheUpdate.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", "),
        "attentionCopiesCache": "true or false",
        "weightsHostMemory": "\"pinned\" or \"pageable\"",
        "cacheHostMemory": "\"pinned\" or \"pageable\"",
        "hiddenCopiesOnComputeStream": "true or false",
        "prefillLogitsAllPositions": "true or false",
        "prefillAttentionMaterialized": "true or false",
        "expertKernels": ExpertKernels.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", "),
    ]

    /// Applies a scenario's `engineTraits` object; refuses a name that is not a trait and a value
    /// outside the trait's set.
    public func overridden(by o: JSONFields) throws -> EngineTraits {
        try o.rejectUnknown(allowed: Self.traitNames.keys.sorted())
        var t = self
        func choice<E: RawRepresentable & CaseIterable>(_ key: String, _ type: E.Type) throws -> E? where E.RawValue == String {
            guard let text = try o.optionalString(key) else { return nil }
            guard let v = E(rawValue: text) else {
                throw InputError(field: o.fieldPath(key), "must be one of \(Self.traitNames[key]!), got \"\(text)\"")
            }
            return v
        }
        func flag(_ key: String) throws -> Bool? { o.has(key) ? try o.bool(key) : nil }
        if let v = try choice("weightFetch", WeightFetch.self) { t.weightFetch = v }
        if let v = try choice("fetchUnit", FetchUnit.self) { t.fetchUnit = v }
        if let v = try flag("copyPerTensor") { t.copyPerTensor = v }
        if let v = try flag("prefetchAcrossSteps") { t.prefetchAcrossSteps = v }
        if let v = try o.optionalDouble("hostSecondsPerFetch", in: 0...1) { t.hostSecondsPerFetch = v }
        if let v = try flag("pageableStagedOnHost") { t.pageableStagedOnHost = v }
        if let v = try o.optionalInt("gatherDeviceCopies", in: 0...8) { t.gatherDeviceCopies = v }
        if let v = try flag("prefillPrefetches") { t.prefillPrefetches = v }
        if let v = try o.optionalInt("diskReadAheadUnits", in: 0...64) { t.diskReadAheadUnits = v }
        if let v = try choice("cacheUpdate", CacheUpdate.self) { t.cacheUpdate = v }
        if let v = try flag("attentionCopiesCache") { t.attentionCopiesCache = v }
        if let v = try choice("weightsHostMemory", HostMemoryKind.self) { t.weightsHostMemory = v }
        if let v = try choice("cacheHostMemory", HostMemoryKind.self) { t.cacheHostMemory = v }
        if let v = try flag("hiddenCopiesOnComputeStream") { t.hiddenCopiesOnComputeStream = v }
        if let v = try flag("prefillLogitsAllPositions") { t.prefillLogitsAllPositions = v }
        if let v = try flag("prefillAttentionMaterialized") { t.prefillAttentionMaterialized = v }
        if let v = try choice("expertKernels", ExpertKernels.self) { t.expertKernels = v }
        if t.weightFetch == .doubleBuffered, t.fetchUnit != .layer {
            throw InputError(field: o.fieldPath("fetchUnit"), "the double-buffered fetch streams whole layers; use \"layer\" with it, or another weightFetch")
        }
        return t
    }
}

/// An engine and its traits, as a plan carries them.
public struct Engine: Equatable, Sendable {
    public var kind: EngineKind
    public var traits: EngineTraits

    public init(_ kind: EngineKind, traits: EngineTraits? = nil) {
        self.kind = kind
        self.traits = traits ?? kind.traits
    }

    public static let ideal = Engine(.ideal)

    /// Whether plans on this engine follow the ideal engine's layer schedule (`ScheduleBuilder`):
    /// the ideal engine with its own traits, how its experts run aside. Any other trait override
    /// plays the engines' unit schedule (EngineSchedule.swift).
    public var followsIdealSchedule: Bool {
        guard kind == .ideal else { return false }
        var t = traits
        t.expertKernels = EngineTraits.ideal.expertKernels
        return t == .ideal
    }

    /// Refuses a plan feature the engine cannot run, naming the engine and the feature.
    public func require(_ feature: EngineTraits.Feature, field: String) throws {
        guard traits.supports.contains(feature) else {
            throw InputError(field: field, "engine \(kind.rawValue) cannot run \(feature.rawValue)")
        }
    }
}
