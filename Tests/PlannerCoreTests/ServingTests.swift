import Foundation
import Testing
@testable import PlannerCore

@Suite struct ServingTests {
    static func config(blocks: Int? = nil, blockSize: Int = 16, mode: PreemptionMode = .recompute) throws -> ServingConfig {
        var c = ServingConfig(model: try ModelCatalog.model(named: "yarn-llama-2-7b-64k"), hardware: HardwareCatalog.a100_40gb)
        c.engine = .vllmV0    // the V0 scheduler these cases were worked out for
        c.blockSize = blockSize
        c.gpuBlocksOverride = blocks
        c.preemption = mode
        return c
    }

    static func run(_ c: ServingConfig, _ rs: [ServingRequest]) throws -> ServingResult {
        try ServingSimulator.run(c, requests: rs, cost: AnalyticCostModel(hardware: c.hardware, dtype: c.model.dtype))
    }

    /// numpy.percentile([1, 2, 3, 4], q) with linear interpolation: 50 -> 2.5, 90 -> 3.7, 99 -> 3.97.
    @Test func percentilesMatchNumpy() {
        let s = LatencyStats([4, 1, 3, 2])
        #expect(s.mean == 2.5 && s.median == 2.5)
        #expect(abs(s.p90 - 3.7) < 1e-12 && abs(s.p95 - 3.85) < 1e-12 && abs(s.p99 - 3.97) < 1e-12)
    }

    /// One request of 100 prompt tokens and 3 output tokens: one prefill iteration yields the first
    /// token, two decode iterations the others; TTFT is the prefill, the end-to-end latency the three.
    @Test func singleRequestTimeline() throws {
        let c = try Self.config()
        let r = try Self.run(c, [ServingRequest(id: 0, arrivalSeconds: 0, inputTokens: 100, outputTokens: 3)])
        #expect(r.completed == 1 && r.iterations == 3 && r.preemptions == 0)
        #expect(r.ttft.mean > 0 && r.ttft.mean < r.e2e.mean)
        #expect(abs(r.e2e.mean - r.makespanSeconds) < 1e-12)
        #expect(abs(r.tpot.mean * 2 - (r.e2e.mean - r.ttft.mean)) < 1e-12)
        // 100 prompt tokens need 7 blocks of 16; the request holds 7 (103 tokens) at its end.
        #expect(r.gpuBlocks == c.gpuBlocks)
    }

    /// A request larger than the whole cache is rejected with the reason instead of looping.
    @Test func requestThatCanNeverFitIsRejected() throws {
        let c = try Self.config(blocks: 10)
        let r = try Self.run(c, [ServingRequest(id: 0, arrivalSeconds: 0, inputTokens: 150, outputTokens: 20),
                                 ServingRequest(id: 1, arrivalSeconds: 0, inputTokens: 100, outputTokens: 10)])
        #expect(r.completed == 1)
        #expect(r.rejected.count == 1 && r.rejected[0].request == 0)
        #expect(r.rejected[0].reason.contains("needs 11 KV blocks"))
    }

    /// 32 requests of 1500 + 1024 tokens arriving together overflow a small cache: both modes
    /// preempt and still finish everything; recompute re-runs tokens, swap moves them.
    @Test func overflowPreemptsAndFinishes() throws {
        let rs = RequestSource.synthetic(count: 32, arrivals: .allAtOnce, input: 1500...1500, output: 1024...1024, seed: 1)
        var c = try Self.config(blocks: 2000, mode: .recompute)
        c.maxNumBatchedTokens = 4096
        let rec = try Self.run(c, rs)
        #expect(rec.completed == 32 && rec.preemptions > 0 && rec.recomputedTokens > 0 && rec.swappedOutTokens == 0)
        c.preemption = .swap
        c.swapSpaceBytes = 64 * HardwareCatalog.GiB
        let swap = try Self.run(c, rs)
        #expect(swap.completed == 32 && swap.preemptions > 0 && swap.swappedOutTokens > 0 && swap.recomputedTokens == 0)
        #expect(swap.swappedInTokens == swap.swappedOutTokens)
        #expect(swap.linkBusySeconds > 0)
        // Without swap space, swapping falls back to recomputation.
        c.swapSpaceBytes = 0
        let fallback = try Self.run(c, rs)
        #expect(fallback.recomputedTokens > 0 && fallback.swappedOutTokens == 0)
    }

    /// Every block copy pays the link's latency, so swapping the same tokens in bigger blocks costs
    /// less link time (the seed's finding for swap).
    @Test func biggerBlocksSwapCheaper() throws {
        let rs = RequestSource.synthetic(count: 32, arrivals: .allAtOnce, input: 1500...1500, output: 256...256, seed: 2)
        var link: [Double] = []
        for bs in [8, 128] {
            var c = try Self.config(blocks: 32_000 / bs, blockSize: bs, mode: .swap)
            c.swapSpaceBytes = 64 * HardwareCatalog.GiB
            c.maxNumBatchedTokens = 4096
            let r = try Self.run(c, rs)
            #expect(r.swappedOutTokens > 0)
            link.append(r.linkBusySeconds / Double(r.swappedOutTokens + r.swappedInTokens))
        }
        #expect(link[1] < link[0])
    }

    @Test func traceLinesAreNamed() throws {
        let good = "{\"arrivalSeconds\": 0.5, \"inputTokens\": 10, \"outputTokens\": 2}\n\n{\"arrivalSeconds\": 0, \"inputTokens\": 5, \"outputTokens\": 1}\n"
        let rs = try RequestSource.trace(good, source: "t.jsonl")
        #expect(rs.map(\.inputTokens) == [5, 10])
        let bad = "{\"arrivalSeconds\": 0, \"inputTokens\": 10, \"outputTokens\": 2}\n{\"arrivalSeconds\": 1, \"inputTokens\": -1, \"outputTokens\": 2}\n"
        let e = try #require(throws: InputError.self) { try RequestSource.trace(bad, source: "t.jsonl") }
        #expect(e.field.hasPrefix("t.jsonl:2"))
        let broken = try #require(throws: InputError.self) { try RequestSource.trace("{\"arrivalSeconds\": 0,\n", source: "t.jsonl") }
        #expect(broken.field == "t.jsonl:1")
    }

    @Test func syntheticArrivalsAreSeeded() {
        let a = RequestSource.synthetic(count: 50, arrivals: .poisson(ratePerSecond: 4), input: 10...100, output: 5...50, seed: 9)
        let b = RequestSource.synthetic(count: 50, arrivals: .poisson(ratePerSecond: 4), input: 10...100, output: 5...50, seed: 9)
        #expect(a == b)
        // 49 gaps of mean 1/4 s: the last arrival is near 12 s.
        #expect(a.last!.arrivalSeconds > 6 && a.last!.arrivalSeconds < 20)
    }

    /// Two requests on a 20-block cache (16 tokens a block, no watermark). A holds 160 prompt tokens
    /// (10 blocks), B 144 (9 blocks); both are prefilled together, leaving one block. The first decode
    /// gives A's 161st token the last block; B's 145th token finds none, and B, the newest, is
    /// preempted. It cannot come back before A finishes: A grows to 260 tokens (17 blocks) and only
    /// leaves 3 free. By hand, swap mode copies B's 9 blocks out and 9 back in, each block as
    /// 32 layers x (K, V) = 64 copies of 16 x 4096 x 2 = 131,072 bytes over a 25 GB/s link, 5.24288 us
    /// each. The copies of one direction queue on one stream: the first pays the 10 us latency, the
    /// host issues each next one (2.3 us) while the previous moves, so each later one costs its
    /// transfer: per direction 10 us + 576 x 5.24288 us = 3,029.899 us; both, 6.059797 ms.
    static func twoRequests(_ mode: PreemptionMode) throws -> (ServingConfig, ServingResult) {
        var c = try config(blocks: 20, mode: mode)
        c.watermark = 0
        c.recordTrace = true
        let rs = [ServingRequest(id: 0, arrivalSeconds: 0, inputTokens: 160, outputTokens: 100),
                  ServingRequest(id: 1, arrivalSeconds: 0, inputTokens: 144, outputTokens: 100)]
        return (c, try run(c, rs))
    }

    @Test func swapOfOneRequestCostsTheHandComputedLinkTime() throws {
        let (_, r) = try Self.twoRequests(.swap)
        #expect(r.completed == 2 && r.preemptions == 1)
        #expect(r.swappedOutTokens == 144 && r.swappedInTokens == 144 && r.recomputedTokens == 0)
        #expect(abs(r.linkBusySeconds - 6.059797e-3) < 1e-8, "link \(r.linkBusySeconds)")
        #expect(r.overheadSeconds == r.linkBusySeconds)
        let trace = try #require(r.trace)
        #expect(trace.link.count == 2)
        #expect(abs(trace.link.reduce(0) { $0 + $1.end - $1.start } - 6.059797e-3) < 1e-8)
        // B's row: prefilled, one iteration waiting for a block, swapped until A is done, then decoding.
        let b = trace.requests[1].map(\.name)
        #expect(b == ["prefill", "swapped", "decode"], "\(b)")
        // B stays swapped until A has finished: it comes back in the iteration after A's last.
        let aEnd = try #require(trace.requests[0].last).end
        #expect(abs(trace.requests[1][1].end - aEnd) < 1e-9)
    }

    /// The same two requests in recompute mode: B's 144 cached tokens are dropped and re-run. Its
    /// re-prefill of 145 tokens (144 again plus its first generated one) runs alone, since vLLM's
    /// default scheduler puts prefills in iterations of their own. The time charged to recomputation
    /// must lie between a physical floor, 144 tokens x 2 FLOPs x 6.74e9 parameters at the A100's
    /// 312 TFLOP/s datasheet peak, and the duration of that iteration.
    @Test func recomputeOverheadLiesBetweenPeakFlopsAndItsIteration() throws {
        let (_, r) = try Self.twoRequests(.recompute)
        #expect(r.completed == 2 && r.preemptions == 1 && r.recomputedTokens == 144 && r.swappedOutTokens == 0)
        let trace = try #require(r.trace)
        let redo = trace.iterations.filter { $0.recomputeTokens > 0 }
        #expect(redo.count == 1 && redo[0].recomputeTokens == 144 && redo[0].decodeTokens == 0)
        let floor = 144 * 2 * 6.74e9 / 312e12
        #expect(r.recomputeSeconds > floor && r.recomputeSeconds < redo[0].end - redo[0].start)
        #expect(trace.requests[1].map(\.name) == ["prefill", "decode", "preempted", "recompute", "decode"] ||
                trace.requests[1].map(\.name) == ["prefill", "preempted", "recompute", "decode"], "\(trace.requests[1].map(\.name))")
    }

    /// Every request's row is a sequence of spans in time order that do not overlap, from its first
    /// iteration to its last token; the GPU row holds one span per iteration.
    @Test func traceRowsAreOrderedAndEndAtTheLastToken() throws {
        let rs = RequestSource.synthetic(count: 32, arrivals: .allAtOnce, input: 1500...1500, output: 300...300, seed: 3)
        for mode in PreemptionMode.allCases {
            var c = try Self.config(blocks: 1200, mode: mode)
            c.swapSpaceBytes = 64 * HardwareCatalog.GiB
            c.recordTrace = true
            let r = try Self.run(c, rs)
            let trace = try #require(r.trace)
            #expect(r.preemptions > 0 && trace.iterations.count == r.iterations)
            let names = Set(trace.requests.flatMap { $0.map(\.name) })
            #expect(names.isSuperset(of: mode == .swap ? ["queued", "prefill", "decode", "swapped"] : ["queued", "prefill", "decode", "preempted", "recompute"]), "\(names)")
            for spans in trace.requests {
                for (x, y) in zip(spans, spans.dropFirst()) { #expect(x.end <= y.start + 1e-9 && x.start < x.end) }
                #expect(spans.last?.name == "decode")
            }
            #expect(abs(trace.requests.map { $0.last!.end }.max()! - r.makespanSeconds) < 1e-9)
            if mode == .swap {
                #expect(trace.requests.reduce(0) { $0 + $1.filter { $0.name == "swapped" }.count } == r.preemptions)
            }
            let data = try ServingReport.chromeTrace(r, c)
            let doc = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            let events = try #require(doc["traceEvents"] as? [[String: Any]])
            let rows = events.filter { ($0["name"] as? String) == "thread_name" && ($0["pid"] as? Int) == 2 }
            #expect(rows.count == 32)
        }
    }

    /// vLLM's default scheduler (no chunked prefill) runs prefills alone; the chunked-prefill
    /// scheduler mixes them with decodes.
    @Test func prefillsRunAloneWithoutChunkedPrefill() throws {
        let rs = [ServingRequest(id: 0, arrivalSeconds: 0, inputTokens: 100, outputTokens: 50),
                  ServingRequest(id: 1, arrivalSeconds: 0.05, inputTokens: 100, outputTokens: 50)]
        for chunked in [false, true] {
            var c = try Self.config()
            c.chunkedPrefill = chunked
            c.recordTrace = true
            let trace = try #require(try Self.run(c, rs).trace)
            let mixed = trace.iterations.filter { $0.prefillTokens > 0 && $0.decodeTokens > 0 }
            #expect(chunked ? mixed.count == 1 : mixed.isEmpty)
        }
    }

    /// Arrivals far apart do not blow up the per-second series: a request at 0 s and one at
    /// 100 million seconds give a handful of rows, the idle gap written as its two ends.
    @Test func farArrivalsKeepTheSeriesShort() throws {
        let c = try Self.config()
        let r = try Self.run(c, [ServingRequest(id: 0, arrivalSeconds: 0, inputTokens: 100, outputTokens: 3),
                                 ServingRequest(id: 1, arrivalSeconds: 1e8, inputTokens: 100, outputTokens: 3)])
        #expect(r.completed == 2 && r.series.count == 4, "\(r.series.map(\.second))")
        #expect(r.series.map(\.second) == [0, 1, 99_999_999, 100_000_000])
        #expect(r.series.reduce(0) { $0 + $1.generatedTokens } == 6)
    }

    /// With chunked prefill, a sequence swapped out in the middle of its prefill comes back with a
    /// chunk even when its remaining prompt exceeds the token budget (it used to wait forever).
    @Test func swappedMidPrefillResumesInChunks() throws {
        var c = try Self.config(blocks: 40, mode: .swap)
        c.watermark = 0
        c.chunkedPrefill = true
        c.maxNumBatchedTokens = 64
        let rs = [ServingRequest(id: 0, arrivalSeconds: 0, inputTokens: 300, outputTokens: 300),
                  ServingRequest(id: 1, arrivalSeconds: 0, inputTokens: 500, outputTokens: 10)]
        let r = try Self.run(c, rs)
        #expect(r.completed == 2 && r.preemptions > 0 && r.swappedOutTokens > 0)
    }

    /// Without chunked prefill, a request is refused only if its largest re-prefill, prompt plus all
    /// but the last output token, exceeds the batch budget.
    @Test func largestRePrefillBoundsTheBudget() throws {
        var c = try Self.config()
        c.maxNumBatchedTokens = 110
        let r = try Self.run(c, [ServingRequest(id: 0, arrivalSeconds: 0, inputTokens: 100, outputTokens: 11),
                                 ServingRequest(id: 1, arrivalSeconds: 0, inputTokens: 100, outputTokens: 12)])
        #expect(r.completed == 1 && r.rejected.map(\.request) == [1])
    }

    /// The KV-overflow study's swap setting as vLLM runs it: Yarn-Llama-2-7B-64k in bf16, blocks of
    /// 16 tokens x 32 layers x 2 x 32 x 128 x 2 B = 8 MiB, 12% of the A100's 40,960 MiB (with the
    /// catalog's memory) in whole blocks: 614; requests of 1,500 + 1,024 tokens. Swap exists only
    /// on V0, whose flags are `--preemption-mode` and `--swap-space` (GiB); V1 gets a note.
    @Test func vllmCommandLinesOfTheSwapStudy() throws {
        let (c, requests) = try ServingScenario.load(URL(fileURLWithPath: "examples/serving/kv-overflow-swap.json"))
        let maxLen = requests.map { $0.inputTokens + $0.outputTokens }.max()!
        #expect(maxLen == 2524)
        let out = VLLMCommand.lines(c, maxModelLen: maxLen)
        #expect(out.lines.map(\.command) == ["VLLM_USE_V1=0 vllm serve NousResearch/Yarn-Llama-2-7b-64k --dtype bfloat16 --block-size 16 --num-gpu-blocks-override 614 --max-num-seqs 256 --max-num-batched-tokens 65536 --max-model-len 2524 --enable-chunked-prefill=False --preemption-mode swap --swap-space 16"])
        #expect(out.notes.contains { $0.contains("never swap") })
        // Recompute runs on V1 too, the cache in bytes: 100 blocks of 24 tokens x 32 layers x 16,384 B
        // = 1,258,291,200.
        var r = c
        r.preemption = .recompute
        r.chunkedPrefill = true
        r.blockSize = 24
        r.gpuBlocksOverride = 100
        r.watermark = 0.05
        let rec = VLLMCommand.lines(r, maxModelLen: maxLen)
        #expect(rec.lines.count == 2)
        #expect(rec.lines[1].command == "vllm serve NousResearch/Yarn-Llama-2-7b-64k --dtype bfloat16 --block-size 24 --kv-cache-memory-bytes 1258291200 --max-num-seqs 256 --max-num-batched-tokens 65536 --max-model-len 2524 --no-enable-prefix-caching")
        #expect(rec.notes.contains { $0.contains("block sizes 8, 16, 32, 64, 128") } && rec.notes.contains { $0.contains("watermark 0.05") })
        let study = VLLMCommand.lines(c, maxModelLen: maxLen)
        #expect(study.lines[0].command.contains("--num-gpu-blocks-override 614"))
        var fp8 = c
        fp8.model.kvCacheElementBytes = 1
        #expect(VLLMCommand.lines(fp8, maxModelLen: maxLen).lines[0].command.contains("--block-size 16 --kv-cache-dtype fp8 "))
        var inline = c
        inline.model.source = "given inline in the scenario"
        #expect(VLLMCommand.lines(inline, maxModelLen: maxLen).lines[0].command.contains("vllm serve MODEL "))
    }

    /// vLLM's `--cpu-offload-gb 4` on Yarn-Llama-2-7B (a layer is 4 x 4096^2 + 3 x 4096 x 11008 +
    /// 2 x 4096 elements, 404,766,720 B; 9 tensors): 4 GiB is 10.61 layers, 96 tensors, each copied
    /// before the forward pass over the A100's pinned link (10 us + bytes / 25 GB/s): 96 x 10 us +
    /// 4,294,967,296 / 25e9 = 172.75869184 ms an iteration. A request of 100 + 11 tokens runs 11
    /// iterations, 1.90034561024 s longer than without the offload; the GPU holds 4 GiB less.
    @Test func cpuOffloadAddsItsCopiesToEveryIteration() throws {
        var c = try Self.config()
        let plain = try Self.run(c, [ServingRequest(id: 0, arrivalSeconds: 0, inputTokens: 100, outputTokens: 11)])
        c.cpuOffloadBytes = 4 * HardwareCatalog.GiB
        #expect(abs(c.offloadSecondsPerIteration - 0.17275869184) < 1e-12)
        let offloaded = try Self.run(c, [ServingRequest(id: 0, arrivalSeconds: 0, inputTokens: 100, outputTokens: 11)])
        #expect(offloaded.iterations == 11)
        #expect(abs(offloaded.makespanSeconds - plain.makespanSeconds - 1.90034561024) < 1e-9)
        #expect(abs(offloaded.offloadSeconds - 1.90034561024) < 1e-9)
        #expect(VLLMCommand.lines(c, maxModelLen: 111).lines.allSatisfy { $0.command.contains("--cpu-offload-gb 4 ") })
        // More than the decoder's weights is refused by name.
        c.cpuOffloadBytes = 100 * HardwareCatalog.GiB
        #expect(throws: InputError.self) { try c.validate() }
    }
}
