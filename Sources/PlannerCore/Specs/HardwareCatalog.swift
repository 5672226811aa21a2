import Foundation

/// The machines the planner knows by name. Every number carries its source in `sources`.
///
/// Calibrated entries: `h100-sxm` from the H100 reference measurements (PyTorch 2.11.0, CUDA 13.0,
/// 2026-11-22, shared/reference/h100-kernels.json) and `rtx4090` from the LLMServingSim RTX 4090
/// profile of Llama-3.1-8B (vLLM 0.19.0, CUDA 12.8, 2026-08-17, MIT licence). The other entries take
/// datasheet peaks times the fractions achieved on those references, and say so.
public enum HardwareCatalog {
    public static let GiB = 1024.0 * 1024 * 1024
    public static let GB = 1e9

    static let h100Ref = "H100 reference: NVIDIA H100 80GB HBM3 SXM, PCIe Gen5 x16, PyTorch 2.11.0+cu130, CUDA 13.0, fp16, median of 10 runs, 2026-11-22 (shared/reference/h100-kernels.json)"
    static let rtxRef = "RTX 4090 reference: LLMServingSim profile of Llama-3.1-8B bf16 on an NVIDIA GeForce RTX 4090, vLLM 0.19.0, CUDA 12.8, 2026-08-17 (shared/reference/rtx4090-llama-3.1-8b, MIT licence, CASYS Lab at KAIST)"
    static let transferFractions = "estimate: datasheet peak x the fraction achieved on the H100 reference (large GEMMs 68% of matmul peak; weight-bound GEMMs 66% and decode attention 88% of memory bandwidth)"
    static let pageableNote = "estimate: pageable copies are bounded by the host's staging memcpy, not by the link; the H100 reference host measured 8-13 GB/s h2d and 9-16 GB/s d2h"

    public static let all: [HardwareSpec] = [rtx4090, a100_40gb, h100sxm, t4, gcpT4, a6000]

    /// A PCIe 4.0 x16 host link: 25 GB/s pinned each way, 10 GB/s pageable, 10 us per copy
    /// (sources in each device's `sources`).
    static let pcie4 = LinkSpec(name: "PCIe 4.0 x16",
                                h2dPinned: LinkChannel(latencySeconds: 10e-6, bytesPerSecond: 25 * GB),
                                h2dPageable: LinkChannel(latencySeconds: 10e-6, bytesPerSecond: 10 * GB),
                                d2hPinned: LinkChannel(latencySeconds: 10e-6, bytesPerSecond: 25 * GB),
                                d2hPageable: LinkChannel(latencySeconds: 10e-6, bytesPerSecond: 10 * GB))

    public static let rtx4090 = HardwareSpec(
        name: "rtx4090",
        gpu: GPUSpec(name: "NVIDIA GeForce RTX 4090", memoryBytes: 24 * GiB, memoryBandwidthBytesPerSecond: 1008 * GB,
                     peakMatmulFlops: ["fp16": 165.2e12, "bf16": 165.2e12, "fp32": 82.6e12],
                     achievedMatmulFlops: ["fp16": 158.6e12, "bf16": 158.6e12, "fp32": 56e12],
                     gemmBytesPerSecond: 903 * GB, streamBytesPerSecond: 922 * GB, attentionFlopsFraction: 0.64,
                     kernelSeconds: 3e-6, reservedBytes: 1 * GiB, attentionKernelSeconds: 9e-6),
        link: pcie4,
        host: HostSpec(memoryBytes: 128 * GiB),
        sources: [
            "gpu.memoryBytes": "NVIDIA Ada Lovelace architecture whitepaper v2.1, Table 2: 24 GB GDDR6X",
            "gpu.memoryBandwidthBytesPerSecond": "NVIDIA Ada Lovelace whitepaper v2.1, Table 2: 1008 GB/s",
            "gpu.peakMatmulFlops": "NVIDIA Ada Lovelace whitepaper v2.1, Table 2: FP16/BF16 tensor with FP32 accumulate 165.2 TFLOPS dense; FP32 82.6 TFLOPS",
            "gpu.achievedMatmulFlops": "fp16/bf16: median over qkv, o, gate_up and down projections at >= 1024 tokens, \(rtxRef); fp32: estimate, 68% of peak as on the H100 reference",
            "gpu.gemmBytesPerSecond": "median weight-read rate of the four projections at <= 8 tokens, \(rtxRef)",
            "gpu.streamBytesPerSecond": "median K/V read rate of decode attention, batch >= 32, context >= 1024, \(rtxRef)",
            "gpu.attentionFlopsFraction": "prefill attention of 2048 tokens, 32 heads, head dim 128: 102 TFLOPS / 158.6, \(rtxRef)",
            "gpu.kernelSeconds": "floor of element-wise kernels (act_fn 2.6 us, layernorm 1.9 us at 1 token), \(rtxRef)",
            "gpu.attentionKernelSeconds": "floor of vLLM's attention: 9.3 us for one sequence of 16 tokens (decode) and 9.5 us for a 16-token prefill, \(rtxRef)",
            "gpu.reservedBytes": "estimate: CUDA context and allocator slack, about 1 GiB on a 24 GB card",
            "link.h2dPinned": "DESIGN.md physics: an RTX 4090 on PCIe 4.0 x16 reaches about 25 GB/s pinned (link peak 31.5 GB/s); latency 10 us estimate",
            "link.d2hPinned": "as h2dPinned: PCIe is full duplex and symmetric",
            "link.h2dPageable": pageableNote,
            "link.d2hPageable": pageableNote,
            "host.memoryBytes": "HybridServe evaluation default used by this project: 128 GB host memory beside a 24 GB RTX 4090",
        ])

    public static let a100_40gb = HardwareSpec(
        name: "a100-40gb",
        gpu: GPUSpec(name: "NVIDIA A100 40GB", memoryBytes: 40 * GiB, memoryBandwidthBytesPerSecond: 1555 * GB,
                     peakMatmulFlops: ["fp16": 312e12, "bf16": 312e12, "fp32": 19.5e12],
                     achievedMatmulFlops: ["fp16": 212e12, "bf16": 212e12, "fp32": 13.3e12],
                     gemmBytesPerSecond: 1026 * GB, streamBytesPerSecond: 1368 * GB, attentionFlopsFraction: 0.67,
                     kernelSeconds: 5e-6, reservedBytes: 1 * GiB),
        link: pcie4,
        host: HostSpec(memoryBytes: 512 * GiB),
        sources: [
            "gpu.memoryBytes": "NVIDIA A100 Tensor Core GPU datasheet: 40 GB HBM2",
            "gpu.memoryBandwidthBytesPerSecond": "NVIDIA A100 datasheet: 1,555 GB/s (40 GB)",
            "gpu.peakMatmulFlops": "NVIDIA A100 datasheet: FP16/BF16 tensor 312 TFLOPS dense; FP32 19.5 TFLOPS",
            "gpu.achievedMatmulFlops": transferFractions,
            "gpu.gemmBytesPerSecond": transferFractions,
            "gpu.streamBytesPerSecond": transferFractions,
            "gpu.attentionFlopsFraction": "estimate: prefill attention at 67% of the GEMM rate, as on the H100 reference (452 / 669 TFLOPS)",
            "gpu.kernelSeconds": "estimate: 5 us per kernel, as fitted on the H100 reference",
            "gpu.reservedBytes": "estimate: CUDA context and allocator slack, about 1 GiB",
            "link.h2dPinned": "estimate: PCIe 4.0 x16 (peak 31.5 GB/s) at the 25 GB/s pinned rate DESIGN.md gives for PCIe 4 hosts; latency 10 us",
            "link.d2hPinned": "as h2dPinned: PCIe is full duplex and symmetric",
            "link.h2dPageable": pageableNote,
            "link.d2hPageable": pageableNote,
            "host.memoryBytes": "ALCF Polaris node (the KV-overflow study's platform): 512 GB DDR4",
        ])

    public static let h100sxm = HardwareSpec(
        name: "h100-sxm",
        gpu: GPUSpec(name: "NVIDIA H100 80GB HBM3 (SXM)", memoryBytes: 85_017_493_504, memoryBandwidthBytesPerSecond: 3350 * GB,
                     peakMatmulFlops: ["fp16": 989.4e12, "bf16": 989.4e12, "fp32": 66.9e12],
                     achievedMatmulFlops: ["fp16": 669e12, "bf16": 669e12, "fp32": 45.5e12],
                     gemmBytesPerSecond: 2212 * GB, streamBytesPerSecond: 2950 * GB, attentionFlopsFraction: 0.675,
                     kernelSeconds: 5e-6, reservedBytes: 2 * GiB, attentionKernelSeconds: 24e-6),
        link: LinkSpec(name: "PCIe 5.0 x16",
                       h2dPinned: LinkChannel(latencySeconds: 8.5e-6, bytesPerSecond: 54.8 * GB),
                       h2dPageable: LinkChannel(latencySeconds: 10e-6, bytesPerSecond: 10 * GB),
                       d2hPinned: LinkChannel(latencySeconds: 7e-6, bytesPerSecond: 55 * GB),
                       d2hPageable: LinkChannel(latencySeconds: 10e-6, bytesPerSecond: 13 * GB)),
        host: HostSpec(memoryBytes: 2048 * GiB),
        sources: [
            "gpu.memoryBytes": "total_memory reported by PyTorch, \(h100Ref)",
            "gpu.memoryBandwidthBytesPerSecond": "NVIDIA H100 datasheet (SXM5): 3.35 TB/s",
            "gpu.peakMatmulFlops": "NVIDIA H100 datasheet (SXM5): FP16/BF16 tensor 989.4 TFLOPS dense; FP32 66.9 TFLOPS",
            "gpu.achievedMatmulFlops": "fp16/bf16: median TFLOPS of all OPT projection GEMMs with m >= 2048, \(h100Ref); fp32: estimate, 68% of peak",
            "gpu.gemmBytesPerSecond": "median weight-read rate of the OPT projection GEMMs with m <= 8, \(h100Ref)",
            "gpu.streamBytesPerSecond": "median K/V read rate of decode attention, batch >= 32, context >= 1024, \(h100Ref)",
            "gpu.attentionFlopsFraction": "median prefill attention rate (batch >= 4, context >= 1024: 452 TFLOPS) / 669, \(h100Ref)",
            "gpu.kernelSeconds": "estimate: 5 us, below the smallest measured kernels (25 us decode attention at batch 1), \(h100Ref)",
            "gpu.attentionKernelSeconds": "floor of PyTorch's scaled_dot_product_attention: 25.0 us at batch 1, context 128 (decode; 2 MB of K/V, under 1 us of reads) and 27.0 us for a 128-token prefill, \(h100Ref)",
            "gpu.reservedBytes": "estimate: CUDA context and allocator slack, about 2 GiB on an 80 GB card",
            "link.h2dPinned": "least-squares fit of latency + bytes/bandwidth to pinned copies of 1-256 MiB (27.5 us at 1 MiB, 1225 us at 64 MiB), \(h100Ref)",
            "link.d2hPinned": "fit as for h2dPinned to the d2h column, \(h100Ref)",
            "link.h2dPageable": "pageable h2d measured 8.2-12.7 GB/s over 1 MiB-1 GiB, taken as 10 GB/s, \(h100Ref)",
            "link.d2hPageable": "pageable d2h measured 8.7-15.7 GB/s, taken as 13 GB/s, \(h100Ref)",
            "host.memoryBytes": "NVIDIA DGX H100 datasheet: 2 TB system memory",
        ])

    public static let t4 = HardwareSpec(
        name: "t4",
        gpu: GPUSpec(name: "NVIDIA T4", memoryBytes: 16 * GiB, memoryBandwidthBytesPerSecond: 320 * GB,
                     peakMatmulFlops: ["fp16": 65e12, "fp32": 8.1e12],
                     achievedMatmulFlops: ["fp16": 21.24e12, "fp32": 5.5e12],
                     gemmBytesPerSecond: 211 * GB, streamBytesPerSecond: 282 * GB, attentionFlopsFraction: 0.67,
                     kernelSeconds: 5e-6, reservedBytes: 0.75 * GiB),
        link: LinkSpec(name: "PCIe 3.0 x16",
                       h2dPinned: LinkChannel(latencySeconds: 10e-6, bytesPerSecond: 12 * GB),
                       h2dPageable: LinkChannel(latencySeconds: 10e-6, bytesPerSecond: 6 * GB),
                       d2hPinned: LinkChannel(latencySeconds: 10e-6, bytesPerSecond: 12 * GB),
                       d2hPageable: LinkChannel(latencySeconds: 10e-6, bytesPerSecond: 6 * GB)),
        host: HostSpec(memoryBytes: 208 * GB),
        sources: [
            "gpu.memoryBytes": "NVIDIA T4 datasheet: 16 GB GDDR6",
            "gpu.memoryBandwidthBytesPerSecond": "NVIDIA T4 datasheet: 320+ GB/s",
            "gpu.peakMatmulFlops": "NVIDIA T4 datasheet: mixed-precision (FP16/FP32) 65 TFLOPS; FP32 8.1 TFLOPS; no bf16",
            "gpu.achievedMatmulFlops": "fp16: 21.24 TFLOP/s, FlexLLMGen experimental/cost_model.py 73 (004ffef), `mm_flops_p`, the prefill GEMM rate fitted by gradient descent to real runs on a GCP T4 ('default value aligned on google cloud T4', lines 19-22 and 63); the T4's 70 W limit holds clocks below boost under sustained GEMMs. fp32: estimate, 68% of the 8.1 TFLOPS peak",
            "gpu.gemmBytesPerSecond": transferFractions,
            "gpu.streamBytesPerSecond": transferFractions,
            "gpu.attentionFlopsFraction": "estimate: as on the H100 reference",
            "gpu.kernelSeconds": "estimate: 5 us per kernel",
            "gpu.reservedBytes": "estimate: CUDA context and allocator slack, about 0.75 GiB",
            "link.h2dPinned": "estimate: PCIe 3.0 x16 peak 15.75 GB/s, about 12 GB/s achieved pinned; latency 10 us",
            "link.d2hPinned": "as h2dPinned: PCIe is full duplex and symmetric",
            "link.h2dPageable": "estimate: half the pinned rate on a PCIe 3 host",
            "link.d2hPageable": "estimate: half the pinned rate on a PCIe 3 host",
            "host.memoryBytes": "FlexGen (Sheng et al., ICML 2023) evaluation machine: T4 16 GB with 208 GB CPU DRAM",
        ])

    /// FlexGen's evaluation machine (Sheng et al., ICML 2023, Sec. 6; FlexLLMGen docs/gcp_setup.md): a
    /// GCP n1 instance with 32 vCPUs, 208 GB of memory, an NVIDIA T4 and a 1.5 TB SSD. The GPU and its
    /// link are the `t4` entry's; the host CPU and the disk are this machine's.
    public static let gcpT4: HardwareSpec = {
        var hw = t4
        hw.name = "gcp-t4"
        hw.hostCPU = HostCPUSpec(name: "Intel Xeon (Skylake) @ 2.00 GHz, 32 vCPUs (GCP n1)", cores: 16,
                                 memoryBytesPerSecond: 50 * GB, fp32FlopsPerSecond: 1.0e12, singleThreadCopyBytesPerSecond: 8 * GB)
        hw.disk = DiskSpec(name: "GCP local SSD (NVMe), 4 x 375 GB striped", capacityBytes: 1.5e12, readBytesPerSecond: 2.65 * GB, writeBytesPerSecond: 1.4 * GB)
        hw.sources["hostCPU.cores"] = "GCP n1 machine types: a vCPU is one hyperthread, 32 vCPUs = 16 cores; FlexGen paper Sec. 6: 32 vCPUs, Intel Xeon @ 2.00 GHz"
        hw.sources["hostCPU.memoryBytesPerSecond"] = "estimate: a Skylake-SP socket has 6 channels of DDR4-2666 (128 GB/s peak, Intel Xeon Scalable product brief); a 16-core share running PyTorch's multithreaded copies and bmm at about 40% of it"
        hw.sources["hostCPU.fp32FlopsPerSecond"] = "estimate: 16 Skylake cores x 2.0 GHz x 64 fp32 FLOP/cycle (two AVX-512 FMA units) = 2.05 TFLOP/s peak, half of it in batched matrix-vector work"
        hw.sources["hostCPU.singleThreadCopyBytesPerSecond"] = "estimate: one Skylake core's memcpy between DRAM buffers, about 8 GB/s"
        hw.sources["disk"] = "the offload folder is four 375 GB local NVMe SSDs striped by LVM (FlexLLMGen scripts/mount_nvme_gcp.sh at 004ffef: nvme0n1-nvme0n4, lvcreate -i 4 -I 1m); Google Compute Engine documentation, Optimizing persistent disk and local SSD performance (2019 table): local SSD (NVMe) read 1.77 MB/s and write 0.94 MB/s per GB, at most 2,650 MB/s read per instance, so 1,500 GB reads 2.65 GB/s and writes 1.41 GB/s. The FlexGen paper (Sec. 6) rounds this to about 2 GB/s read and 1 GB/s write"
        hw.sources["host.memoryBytes"] = "FlexGen paper Sec. 6: 208 GB of CPU DRAM"
        return hw
    }()

    /// The machine of ZeRO-Inference's published runs (DeepSpeedExamples
    /// inference/huggingface/zero_inference/README.md, line 13): one NVIDIA RTX A6000 48 GB, 252 GB of
    /// host memory, an NVMe SSD of 5,600 MB/s sequential read. Rates not measured on it are the H100
    /// reference's fractions of this card's datasheet peaks.
    public static let a6000 = HardwareSpec(
        name: "a6000",
        gpu: GPUSpec(name: "NVIDIA RTX A6000", memoryBytes: 48 * GiB, memoryBandwidthBytesPerSecond: 768 * GB,
                     peakMatmulFlops: ["fp16": 154.8e12, "bf16": 154.8e12, "fp32": 38.7e12],
                     achievedMatmulFlops: ["fp16": 105.3e12, "bf16": 105.3e12, "fp32": 26.3e12],
                     gemmBytesPerSecond: 507 * GB, streamBytesPerSecond: 676 * GB, attentionFlopsFraction: 0.67,
                     kernelSeconds: 5e-6, reservedBytes: 1 * GiB),
        link: pcie4,
        host: HostSpec(memoryBytes: 252 * GB),
        sources: [
            "gpu.memoryBytes": "NVIDIA RTX A6000 datasheet: 48 GB GDDR6",
            "gpu.memoryBandwidthBytesPerSecond": "NVIDIA RTX A6000 datasheet: 768 GB/s",
            "gpu.peakMatmulFlops": "NVIDIA RTX A6000 datasheet: FP16/BF16 tensor 154.8 TFLOPS dense; FP32 38.7 TFLOPS",
            "gpu.achievedMatmulFlops": transferFractions,
            "gpu.gemmBytesPerSecond": transferFractions,
            "gpu.streamBytesPerSecond": transferFractions,
            "gpu.attentionFlopsFraction": "estimate: as on the H100 reference",
            "gpu.kernelSeconds": "estimate: 5 us per kernel, as fitted on the H100 reference",
            "gpu.reservedBytes": "estimate: CUDA context and allocator slack, about 1 GiB",
            "link.h2dPinned": "estimate: PCIe 4.0 x16 (peak 31.5 GB/s) at the 25 GB/s pinned rate DESIGN.md gives for PCIe 4 hosts; latency 10 us",
            "link.d2hPinned": "as h2dPinned: PCIe is full duplex and symmetric",
            "link.h2dPageable": pageableNote,
            "link.d2hPageable": pageableNote,
            "host.memoryBytes": "DeepSpeedExamples zero_inference/README.md line 13: 252 GB host memory",
            "hostCPU": "estimate: the README does not name the CPU; a two-socket server of its time (16 cores used, 100 GB/s for multithreaded tensor copies, 1.5 TFLOP/s fp32, 10 GB/s for one thread's memcpy)",
            "disk": "DeepSpeedExamples zero_inference/README.md line 13: PNY CS3040 2 TB NVMe, 5,600 MB/s sequential read; write 5,300 MB/s from the drive's datasheet",
        ],
        hostCPU: HostCPUSpec(name: "not stated (estimate)", cores: 16, memoryBytesPerSecond: 100 * GB, fp32FlopsPerSecond: 1.5e12,
                             singleThreadCopyBytesPerSecond: 10 * GB),
        disk: DiskSpec(name: "PNY CS3040 2 TB NVMe", capacityBytes: 2e12, readBytesPerSecond: 5.6 * GB, writeBytesPerSecond: 5.3 * GB))

    public static var names: [String] { all.map(\.name) }

    public static func device(named name: String, field: String = "hardware") throws -> HardwareSpec {
        let key = name.lowercased()
        let aliases = ["h100": "h100-sxm", "a100": "a100-40gb", "4090": "rtx4090", "rtx-4090": "rtx4090"]
        if let hw = all.first(where: { $0.name == key || $0.name == aliases[key] }) { return hw }
        throw InputError(field: field, "unknown device \"\(name)\"; known devices are \(names.joined(separator: ", ")), or give a path to a device JSON file or an inline object")
    }

    /// Resolves a scenario's `hardware` value: a catalog name, a path to a JSON file, or an inline object.
    public static func resolve(_ value: Any, field: String = "hardware", baseDirectory: URL?) throws -> HardwareSpec {
        if let s = value as? String {
            if s.contains("/") || s.hasSuffix(".json") {
                let url = URL(fileURLWithPath: s, relativeTo: s.hasPrefix("/") ? nil : baseDirectory)
                guard let data = FileManager.default.contents(atPath: url.path) else {
                    throw InputError(field: field, "cannot read the device file \(url.path)")
                }
                _ = try JSONFields.parse(data, source: url.path)
                return try decode(data, field: field)
            }
            return try device(named: s, field: field)
        }
        if let o = value as? [String: Any] {
            let data = try JSONSerialization.data(withJSONObject: o)
            return try decode(data, field: field)
        }
        throw InputError(field: field, "must be a catalog name (\(names.joined(separator: ", "))), a path to a device JSON file, or an object")
    }

    /// Keys a device object may hold, level by level, so that a misspelt or misplaced key is an
    /// error instead of being dropped by the decoder.
    static func rejectUnknownKeys(_ o: JSONFields, path: String) throws {
        let top = JSONFields(o.object, path: path)
        try top.rejectUnknown(allowed: ["name", "gpu", "link", "host", "sources", "contention", "hostCPU", "disk"])
        if let c = try top.optionalObject("hostCPU") {
            try c.rejectUnknown(allowed: ["name", "cores", "memoryBytesPerSecond", "fp32FlopsPerSecond", "singleThreadCopyBytesPerSecond"])
        }
        if let d = try top.optionalObject("disk") { try d.rejectUnknown(allowed: ["name", "capacityBytes", "readBytesPerSecond", "writeBytesPerSecond"]) }
        if let c = try top.optionalObject("contention") { try c.rejectUnknown(allowed: ["gemmSlowdown", "streamSlowdown", "copySlowdown"]) }
        if let gpu = try top.optionalObject("gpu") {
            try gpu.rejectUnknown(allowed: ["name", "memoryBytes", "memoryBandwidthBytesPerSecond", "peakMatmulFlops", "achievedMatmulFlops",
                                            "gemmBytesPerSecond", "streamBytesPerSecond", "attentionFlopsFraction", "kernelSeconds", "reservedBytes",
                                            "attentionKernelSeconds", "copyBytesPerSecond"])
        }
        if let link = try top.optionalObject("link") {
            let channels = ["h2dPinned", "h2dPageable", "d2hPinned", "d2hPageable"]
            try link.rejectUnknown(allowed: ["name", "copyIssueSeconds"] + channels)
            for c in channels {
                if let ch = try link.optionalObject(c) { try ch.rejectUnknown(allowed: ["latencySeconds", "bytesPerSecond"]) }
            }
        }
        if let host = try top.optionalObject("host") { try host.rejectUnknown(allowed: ["memoryBytes"]) }
    }

    /// Decodes a device in the format `planner catalog --json` prints, mapping decoding failures to
    /// the field they concern.
    /// A device may leave out `sources`; its numbers are then recorded as user-supplied.
    public static func decode(_ data: Data, field: String) throws -> HardwareSpec {
        let fields = try JSONFields.parse(data, source: field.isEmpty ? "device" : field)
        try rejectUnknownKeys(fields, path: field)
        var data = data
        if !fields.has("sources") {
            var o = fields.object
            o["sources"] = ["device": "user-supplied\(field.isEmpty ? "" : " (\(field))"), no sources given"]
            data = try JSONSerialization.data(withJSONObject: o)
        }
        do {
            let hw = try JSONDecoder().decode(HardwareSpec.self, from: data)
            try hw.validate(path: field)
            return hw
        } catch let e as DecodingError {
            func path(_ keys: [CodingKey]) -> String { ([field] + keys.map(\.stringValue)).joined(separator: ".") }
            switch e {
            case .keyNotFound(let key, let ctx):
                throw InputError(field: path(ctx.codingPath + [key]), "missing")
            case .typeMismatch(let type, let ctx):
                throw InputError(field: path(ctx.codingPath), "must be of type \(type)")
            case .valueNotFound(let type, let ctx):
                throw InputError(field: path(ctx.codingPath), "must be a \(type), got null")
            case .dataCorrupted(let ctx):
                throw InputError(field: path(ctx.codingPath), ctx.debugDescription)
            @unknown default:
                throw InputError(field: field, "\(e)")
            }
        }
    }
}
