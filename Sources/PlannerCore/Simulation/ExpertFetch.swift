/// When a mixture-of-experts layer's streamed experts cross the link.
///
/// - `prefetchAll`: every expert of the layer is copied ahead, as a dense FFN is (double-buffered,
///   off the critical path while the link keeps up), whatever the batch routes to.
/// - `onDemand`: the router, the shared expert and the norm are copied ahead; the routed experts
///   the batch touches (expected `MoESpec.expectedDistinctExperts` of them for the layer's tokens,
///   all micro-batches together) are copied once the router has run, so the copy sits on the
///   critical path between the router and the experts, but moves only the experts used.
///
/// On-demand pays when a batch touches few of the experts (decode with small batches, many
/// experts); prefetching pays when it touches nearly all (prefill, large batches), or when the
/// link is idle during the layer anyway. The planner plays both for a mixture of experts with
/// streamed weights and keeps the faster (`Evaluator.evaluate`).
public enum ExpertFetch: String, Sendable, CaseIterable, Codable {
    case prefetchAll = "prefetch-all"
    case onDemand = "on-demand"
}
