/// When a mixture-of-experts layer's streamed experts cross the link.
///
/// - `prefetchAll`: every expert of the layer is copied ahead, as a dense FFN is (double-buffered,
///   off the critical path while the link keeps up), whatever the batch routes to.
/// - `onDemand`: the router, the shared expert and the norm are copied ahead; the routed experts
///   the batch touches (expected `MoESpec.expectedDistinctExperts` of them for the layer's tokens,
///   all micro-batches together) are copied once the router has run, so the copy sits on the
///   critical path between the router and the experts, but moves only the experts used.
///
/// - `hostCPU`: the routed experts never cross the link; they run on the host CPU from host
///   memory, as llama.cpp's `--n-cpu-moe` and KTransformers place them. After the router the
///   layer's routed rows go to the host (`tokens x hidden` elements over the D2H engine), the CPU
///   runs the `D` touched experts, `max(D x expert bytes / memory bandwidth, 2 x tokens x k x 3 x
///   hidden x F / FLOP rate)` with the device's `hostCPU` rates, and the outputs come back over
///   the H2D engine; the router, the shared expert and the combine stay on the GPU. Decode steps
///   only: the prefill's thousands of rows copy the touched experts to the GPU as on-demand does
///   (llama.cpp moves a large batch's matrix products with host-resident weights to the GPU).
///
/// On-demand pays when a batch touches few of the experts (decode with small batches, many
/// experts); prefetching pays when it touches nearly all (prefill, large batches), or when the
/// link is idle during the layer anyway; the CPU pays when the link is the bottleneck and the
/// host's memory bandwidth beats it. The planner plays each that the machine allows for a mixture
/// of experts with streamed weights and keeps the fastest (`Evaluator.evaluate`).
public enum ExpertFetch: String, Sendable, CaseIterable, Codable {
    case prefetchAll = "prefetch-all"
    case onDemand = "on-demand"
    case hostCPU = "cpu"
}
