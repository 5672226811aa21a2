/// Sliding-window attention: a local layer's query sees only the last `tokens` positions, so its
/// cache holds at most that many entries per sequence however long the context grows; a global
/// layer sees them all.
///
/// Which layers are local is a cycle from layer 0: layer `i` is local when
/// `pattern[i % pattern.count]`. Mistral-7B-v0.1 (`sliding_window` 4096 on every layer): `[true]`;
/// Gemma 2 (transformers `modeling_gemma2.py`: even layers local, `layer_idx % 2 == 0`) and
/// gpt-oss (`layer_types` alternating `sliding_attention`, `full_attention`): `[true, false]`;
/// Gemma 3 (`sliding_window_pattern` 6: five local layers, then a global one): `[true] * 5 + [false]`.
///
///     SlidingWindow(tokens: 4096, pattern: [true, false]).localLayers(of: 42)   // 21
public struct SlidingWindow: Codable, Sendable, Equatable {
    /// Positions a local layer attends to (and caches), the new token's included.
    public var tokens: Int
    /// The local/global cycle, from layer 0.
    public var pattern: [Bool]

    public init(tokens: Int, pattern: [Bool]) {
        self.tokens = tokens
        self.pattern = pattern
    }

    public func isLocal(layer: Int) -> Bool { pattern[layer % pattern.count] }

    /// Local layers among the first `layers`.
    public func localLayers(of layers: Int) -> Int { (0 ..< layers).filter(isLocal).count }

    /// Entries a layer caches per sequence at `context` tokens.
    public func cachedTokens(_ context: Int, layer: Int) -> Int { isLocal(layer: layer) ? min(context, tokens) : context }

    public func validate(path: String) throws {
        guard (1...(1 << 24)).contains(tokens) else {
            throw InputError(field: "\(path).tokens", "must be an integer from 1 to \(1 << 24), got \(tokens)")
        }
        guard (1...1024).contains(pattern.count), pattern.contains(true) else {
            throw InputError(field: "\(path).pattern", "must list 1 to 1024 layers, at least one of them local (true), got \(pattern.count) with \(pattern.filter { $0 }.count) local")
        }
    }
}
