/// A quantised checkpoint's weights, as its `config.json` `quantization_config` gives them: the
/// decoder's linear layers (attention and FFN matrices, experts included; not the embeddings, the
/// output head, the norms or a mixture's router) stored in fewer bits, with per-group scales.
///
/// Bytes one weight element takes, scales and zero points included:
/// - AWQ (AutoAWQ's GEMM layout: `qweight` packs eight 4-bit values in an int32, `qzeros` a 4-bit
///   zero and `scales` an fp16 scale per group of `g` input rows and output column):
///   `b/8 + (2 + b/8) / g`; 4 bits, g = 128: 0.51953 B.
/// - GPTQ (`qweight`, `qzeros`, fp16 `scales` per group, as AWQ; the int32 `g_idx` per input row
///   is left out, under 4/n B an element for n outputs): the same.
/// - FP8 (`quant_method` fp8, e4m3 weights; with `weight_block_size` [128, 128] an fp32 scale per
///   block, DeepSeek-V3's and Qwen3-FP8's layout): `1 + 4 / (128 x 128)` B, or 1 B per tensor scale.
/// - bitsandbytes 4-bit (NF4/FP4 with an fp32 absmax per block of 64; with double quantisation an
///   8-bit absmax and an fp32 scale per 256 absmaxes): `0.5 + 4/64`, or `0.5 + 1/64 + 4/(64 x 256)`;
///   8-bit (LLM.int8, an fp32 scale per output row, under 4/k B an element): 1 B.
/// - MXFP4 (gpt-oss: e2m1 values with an 8-bit shared exponent per 32): `0.5 + 1/32` B, on the
///   experts only (`modules_to_not_convert` keeps attention and router in bf16).
public struct WeightFormat: Codable, Sendable, Equatable {
    public enum Method: String, Codable, Sendable, CaseIterable {
        case awq, gptq, fp8, bitsandbytes, mxfp4
    }
    public var method: Method
    public var bits: Int
    /// Input rows sharing one scale (AWQ, GPTQ), the block edge (FP8's 128), or nil (one scale
    /// per output column or tensor, whose bytes are left out).
    public var groupSize: Int?
    /// bitsandbytes' double quantisation of the block scales.
    public var doubleQuantized = false
    /// Only a mixture's expert matrices are quantised (gpt-oss's MXFP4).
    public var expertsOnly = false

    public init(method: Method, bits: Int, groupSize: Int? = nil, doubleQuantized: Bool = false, expertsOnly: Bool = false) {
        self.method = method; self.bits = bits; self.groupSize = groupSize
        self.doubleQuantized = doubleQuantized; self.expertsOnly = expertsOnly
    }

    /// Bytes one quantised weight element takes, scales included (formulas above).
    public var bytesPerElement: Double {
        let b = Double(bits) / 8
        switch method {
        case .awq, .gptq: return groupSize.map { b + (2 + b) / Double($0) } ?? b
        case .fp8: return groupSize.map { 1 + 4 / Double($0 * $0) } ?? 1
        case .bitsandbytes:
            guard bits == 4 else { return 1 }
            return doubleQuantized ? 0.5 + 1.0 / 64 + 4.0 / (64 * 256) : 0.5 + 4.0 / 64
        case .mxfp4: return 0.5 + 1.0 / 32
        }
    }

    /// Whether a product of `rows` rows first expands the packed matrix to 16 bits in its own
    /// kernel and then multiplies at full precision, rather than dequantising inside the GEMM.
    /// bitsandbytes does (`bitsandbytes/autograd/_functions.py`, `matmul_4bit`: one row goes to
    /// the fused `gemv_4bit`, more rows to `dequantize_4bit` then `torch.nn.functional.linear`;
    /// LLM.int8's outlier decomposition is played the same way); AWQ, GPTQ (Marlin, ExLlama),
    /// FP8 and MXFP4 kernels dequantise in registers.
    public func dequantizesFirst(rows: Int) -> Bool {
        method == .bitsandbytes && (bits == 8 || rows > 1)
    }

    public var description: String {
        var s = "\(method.rawValue) \(bits)-bit"
        if let g = groupSize { s += method == .fp8 ? ", blocks of \(g) x \(g)" : ", groups of \(g)" }
        if expertsOnly { s += ", experts only" }
        return s
    }

    public func validate(path: String) throws {
        let allowed: [Int] = switch method {
        case .awq, .gptq: [2, 3, 4, 8]
        case .fp8: [8]
        case .bitsandbytes: [4, 8]
        case .mxfp4: [4]
        }
        guard allowed.contains(bits) else {
            throw InputError(field: "\(path).bits", "must be one of \(allowed.map(String.init).joined(separator: ", ")) for \(method.rawValue), got \(bits)")
        }
        if let g = groupSize, !(1...65536).contains(g) {
            throw InputError(field: "\(path).groupSize", "must be an integer from 1 to 65536, got \(g)")
        }
    }
}
