import Foundation
import Testing
@testable import PlannerCore

/// Quantised checkpoints and an fp8 KV cache: the bytes each format stores, by hand from its
/// layout; a packed GEMM's time; the bytes a streamed step moves; the `quantization_config`
/// reader; and the bad input each brings.
@Suite("Quantised checkpoints")
struct QuantizedCheckpointTests {
    /// AWQ/GPTQ 4-bit, groups of 128: 0.5 B + (2 B scale + 0.5 B zero) / 128 = 0.51953125 B; FP8 in
    /// 128 x 128 blocks: 1 + 4 / 16,384 = 1.000244140625; NF4 in blocks of 64: 0.5 + 4/64 = 0.5625,
    /// double-quantised 0.5 + 1/64 + 4/16,384 = 0.515869140625; MXFP4: 0.5 + 1/32 = 0.53125.
    @Test func bytesPerElementByHand() {
        #expect(WeightFormat(method: .awq, bits: 4, groupSize: 128).bytesPerElement == 0.51953125)
        #expect(WeightFormat(method: .gptq, bits: 4, groupSize: 128).bytesPerElement == 0.51953125)
        #expect(WeightFormat(method: .fp8, bits: 8, groupSize: 128).bytesPerElement == 1.000244140625)
        #expect(WeightFormat(method: .bitsandbytes, bits: 4, groupSize: 64).bytesPerElement == 0.5625)
        #expect(WeightFormat(method: .bitsandbytes, bits: 4, groupSize: 64, doubleQuantized: true).bytesPerElement == 0.515869140625)
        #expect(WeightFormat(method: .mxfp4, bits: 4, groupSize: 32, expertsOnly: true).bytesPerElement == 0.53125)
    }

    /// Written from Qwen/Qwen2.5-7B-Instruct-AWQ's config.json on the Hugging Face hub.
    static var qwenAWQ: [String: Any] { [
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 3584, "intermediate_size": 18944,
        "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064,
        "max_position_embeddings": 32768, "sliding_window": 131072, "use_sliding_window": false, "tie_word_embeddings": false,
        "torch_dtype": "float16", "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
        "quantization_config": ["bits": 4, "group_size": 128, "modules_to_not_convert": NSNull(), "quant_method": "awq",
                                "version": "gemm", "zero_point": true],
    ] }

    static func read(_ o: [String: Any]) throws -> ModelSpec {
        try HFConfig.parse(JSONFields(o, path: ""), source: "m/config.json", name: "m")
    }

    /// A layer: attention matrices 3584^2 x 2 + 3584 x 512 x 2 = 29,360,128 and FFN 3 x 3584 x 18944
    /// = 203,685,888 elements at 0.51953125 B, the biases and norms (8,192 + 3,584) at 2 B:
    /// 121,098,240 B; 28 layers and the fp16 embedding, head and final norm (2 x 152,064 x 3,584 +
    /// 3,584 elements): 5,570,747,392 B, against 15.2 GB in bf16.
    @Test func awqCheckpointStoresItsPackedBytes() throws {
        let m = try Self.read(Self.qwenAWQ)
        #expect(m.weightFormat == WeightFormat(method: .awq, bits: 4, groupSize: 128))
        #expect(m.layerWeightBytes == 121_098_240)
        #expect(m.totalWeightBytes == 5_570_747_392)
        #expect(m.activeParameters == (try ModelCatalog.model(named: "qwen2.5-7b")).activeParameters)
    }

    /// A decode GEMM of 1 x 4096 by 4096 x 4096 with only the weight read costing (1 TB/s, no
    /// kernel cost, unbounded FLOPs): plain, 4096^2 x 2 + (4096 + 4096) x 2 = 33,570,816 B, 33.570816 us;
    /// packed at 0.51953125 B an element, 8,716,288 + 16,384 = 8,732,672 B, 8.732672 us.
    @Test func packedGemmReadsThePackedBytes() throws {
        let cost = try AnalyticCostModel(hardware: Fixtures.device(linkBytesPerSecond: 1e9, gpuBytesPerSecond: 1e12, flops: 1e20, kernelSeconds: 0), dtype: .fp16)
        #expect(abs(cost.seconds(.gemm(m: 1, n: 4096, k: 4096)) - 33.570816e-6) < 1e-12)
        #expect(abs(cost.seconds(.packedGemm(m: 1, n: 4096, k: 4096, weightBytes: 0.51953125)) - 8.732672e-6) < 1e-12)
    }

    /// bitsandbytes NF4 (0.5625 B an element) on a 1024 x 1024 matrix at 1 TB/s with no fixed
    /// costs: one row runs the fused `gemv_4bit`, 1024^2 x 0.5625 + (1024 + 1024) x 2 = 593,920 B,
    /// 0.59392 us; four rows first dequantise (1024^2 x (0.5625 + 2) = 2,686,976 B) and then run
    /// the fp16 GEMM (1024^2 x 2 + (4 x 1024 + 4 x 1024) x 2 = 2,113,536 B): 4.800512 us. AWQ's
    /// fused kernel at four rows: 1024^2 x 0.51953125 + 16,384 = 561,152 B, 0.561152 us.
    @Test func bitsandbytesDequantisesFirstBeyondOneRow() throws {
        var m = Fixtures.tinyModel
        m.weightFormat = WeightFormat(method: .bitsandbytes, bits: 4, groupSize: 64)
        let hw = Fixtures.device(linkBytesPerSecond: 1e9, gpuBytesPerSecond: 1e12, flops: 1e20, kernelSeconds: 0)
        func linear(_ m: ModelSpec, rows: Int) throws -> Double {
            let p = ExecutionPlan(model: m, hardware: hw, batch: 1, weights: WeightPlacement(gpuFraction: 1), placement: TokenPlacement(gpuKV: 8), phase: .decodeStep(context: 8))
            let b = ScheduleBuilder(plan: p, cost: try AnalyticCostModel(hardware: hw, model: m), expectedTasks: 0)
            return b.linear(m: rows, n: 1024, k: 1024, .attention).alone
        }
        #expect(abs(try linear(m, rows: 1) - 0.59392e-6) < 1e-13)
        #expect(abs(try linear(m, rows: 4) - 4.800512e-6) < 1e-13)
        m.weightFormat = WeightFormat(method: .awq, bits: 4, groupSize: 128)
        #expect(abs(try linear(m, rows: 4) - 0.561152e-6) < 1e-13)
    }

    /// The fixtures' tiny model in AWQ 4-bit with streamed weights: attention 4,194,304 x 0.51953125
    /// + 1,024 x 2 = 2,181,120 B, FFN 8,388,608 x 0.51953125 + 2,048 = 4,360,192 B; two layers,
    /// 13,082,624 B over the link a decode step. An fp8 cache holds 2 x 8 x 128 x 1 = 2,048 B a
    /// token a layer: at a context of 1,000 (1,001 entries with the step's), 2 x 1,001 x 2,048 =
    /// 4,100,096 B.
    @Test func aStreamedStepMovesThePackedBytes() throws {
        var m = Fixtures.tinyModel
        m.weightFormat = WeightFormat(method: .awq, bits: 4, groupSize: 128)
        m.kvCacheElementBytes = 1
        let p = ExecutionPlan(model: m, hardware: Fixtures.device(linkBytesPerSecond: 1e9, gpuBytesPerSecond: 1e12, flops: 1e15, kernelSeconds: 0),
                              batch: 1, weights: WeightPlacement(gpuFraction: 0), placement: TokenPlacement(gpuKV: 1000), phase: .decodeStep(context: 1000))
        let r = try Fixtures.run(p)
        #expect(r.totalBytes(.hostToDevice) == 13_082_624)
        #expect(MemoryModel.report(p).gpu.first { $0.name == "GPU KV cache" }?.bytes == 4_100_096)
    }

    @Test func badFormatsAreRefusedByField() throws {
        func refused(_ change: (inout [String: Any]) -> Void, _ field: String) throws {
            var o = Self.qwenAWQ
            change(&o)
            let e = try Fixtures.inputError { _ = try Self.read(o) }
            #expect(e.field.contains(field), "\(e)")
        }
        try refused({ $0["quantization_config"] = ["quant_method": "hqq"] }, "quant_method")
        try refused({ $0["quantization_config"] = ["quant_method": "gptq", "bits": 4, "group_size": 0] }, "group_size")
        try refused({ $0["quantization_config"] = ["quant_method": "gptq", "bits": 5, "group_size": 128] }, "bits")
        try refused({ $0["quantization_config"] = ["quant_method": "bitsandbytes", "load_in_4bit": true, "load_in_8bit": true] }, "load_in_4bit")
        try refused({ $0["quantization_config"] = ["quant_method": "fp8", "weight_block_size": [128, 64]] }, "weight_block_size")
        try refused({ $0["quantization_config"] = ["quant_method": "mxfp4"] }, "weightFormat")

        func scenarioRefused(_ extra: String, _ field: String) throws {
            let text = #"{"model": "qwen2.5-7b", "hardware": "rtx4090", "batch": 4, "decodeStep": {"context": 512}, "policy": {"name": "kv-offload"}"# + extra + "}"
            let e = try Fixtures.inputError { _ = try Scenario.parse(Data(text.utf8), source: "test") }
            #expect(e.field == field, "\(e)")
        }
        try scenarioRefused(#", "weightFormat": {"method": "int3"}"#, "weightFormat.method")
        try scenarioRefused(#", "weightFormat": {"method": "mxfp4"}"#, "weightFormat.method")
        try scenarioRefused(#", "weightFormat": {"method": "awq", "bits": 6}"#, "weightFormat.bits")
        try scenarioRefused(#", "kvCacheDtype": "int4""#, "kvCacheDtype")
        try scenarioRefused(#", "weightFormat": {"method": "awq"}, "engine": "hf-accelerate""#, "model")
        let ok = try Scenario.parse(Data(#"{"model": "qwen2.5-7b", "hardware": "rtx4090", "batch": 4, "decodeStep": {"context": 512}, "policy": {"name": "kv-offload"}, "weightFormat": {"method": "gptq", "groupSize": 32}, "kvCacheDtype": "fp8"}"#.utf8), source: "test")
        #expect(ok.model.weightFormat == WeightFormat(method: .gptq, bits: 4, groupSize: 32) && ok.model.kvCacheElementBytes == 1)
    }
}
