import Foundation

extension RequestSource {
    /// The serving scenario's `requests` object, one of:
    ///
    /// - `{"trace": "file.jsonl"}`: a trace (`RequestSource.trace`);
    /// - `{"sharegpt": "file.json", ...}`: a ShareGPT file (`RequestSource.shareGPT`), with
    ///   `turns`, `thinkSeconds`, `count`, `filter`, `minTokens`, `maxInputTokens`,
    ///   `maxTotalTokens`, `maxOutputTokens`, `arrivals`, `seed`;
    /// - `{"dataset": "random" | "sonnet", ...}`: one of vLLM's benchmark datasets
    ///   (BenchmarkDatasets.swift);
    /// - otherwise the synthetic generator (`count`, `arrivals`, `input`, `output`, `seed`).
    ///
    /// Paths are relative to `baseDirectory`.
    public static func parse(_ r: JSONFields, baseDirectory: URL?) throws -> [ServingRequest] {
        if r.has("trace") {
            try r.rejectUnknown(allowed: ["trace"])
            let (data, name) = try readFile(r, "trace", baseDirectory: baseDirectory)
            guard let text = String(data: data, encoding: .utf8) else { throw InputError(field: name, "is not UTF-8 text") }
            return try RequestSource.trace(text, source: name)
        } else if r.has("sharegpt") {
            let options = try shareGPTOptions(r)
            let (data, name) = try readFile(r, "sharegpt", baseDirectory: baseDirectory)
            return try RequestSource.shareGPT(data, source: name, options: options)
        } else if r.has("dataset") {
            return try benchmarkDataset(r)
        } else {
            try r.rejectUnknown(allowed: ["count", "arrivals", "input", "output", "seed"])
            func range(_ key: String) throws -> ClosedRange<Int> {
                let v = try r.raw(key)
                if let a = v as? [Any] {
                    let o2 = JSONFields(["lo": a.first as Any, "hi": a.count == 2 ? a[1] : NSNull()], path: r.fieldPath(key))
                    guard a.count == 2 else { throw InputError(field: r.fieldPath(key), "must be a token count or [lowest, highest]") }
                    let lo = try o2.int("lo", in: 1...maxTokens), hi = try o2.int("hi", in: 1...maxTokens)
                    guard lo <= hi else { throw InputError(field: r.fieldPath(key), "lowest (\(lo)) must not exceed highest (\(hi))") }
                    return lo ... hi
                }
                let n = try r.int(key, in: 1...maxTokens)
                return n ... n
            }
            let arrivals = try parseArrivals(r)
            return RequestSource.synthetic(count: try r.int("count", in: 1...maxCount), arrivals: arrivals, input: try range("input"),
                                           output: try range("output"), seed: try parseSeed(r))
        }
    }

    /// The most requests (or conversations) a generator makes: ten million.
    static let maxCount = 10_000_000

    /// The file named by `key`, relative to `baseDirectory` unless absolute, and its name for errors.
    static func readFile(_ r: JSONFields, _ key: String, baseDirectory: URL?) throws -> (Data, String) {
        let path = try r.string(key)
        let url = URL(fileURLWithPath: path, relativeTo: path.hasPrefix("/") ? nil : baseDirectory)
        guard let d = FileManager.default.contents(atPath: url.path) else {
            throw InputError(field: r.fieldPath(key), "cannot read \(url.path)")
        }
        return (d, url.lastPathComponent)
    }

    /// `seed`: an integer from 0 to Int.max, default 1.
    static func parseSeed(_ r: JSONFields) throws -> UInt64 {
        UInt64(try r.optionalInt("seed", in: 0...Int.max) ?? 1)
    }

    /// `arrivals`: `"all-at-once"`, `{"poisson": rate}`, `{"interval": seconds}` or
    /// `{"gamma": rate, "burstiness": b}` (burstiness default 1, vLLM's `--burstiness` default).
    /// Rates are requests per second, 1e-6 to 1e9; burstiness 0.001 to 1000; an interval 0 to 1e9
    /// seconds. `defaultValue`: what a missing `arrivals` means (nil: it is required).
    static func parseArrivals(_ r: JSONFields, defaultValue: Arrivals? = nil) throws -> Arrivals {
        if !r.has("arrivals"), let d = defaultValue { return d }
        let a = try r.raw("arrivals")
        if let s = a as? String, s == "all-at-once" { return .allAtOnce }
        guard let d = a as? [String: Any] else {
            throw InputError(field: r.fieldPath("arrivals"), "must be \"all-at-once\", {\"poisson\": requests per second}, {\"interval\": seconds} or {\"gamma\": requests per second, \"burstiness\": shape}")
        }
        let ao = JSONFields(d, path: r.fieldPath("arrivals"))
        try ao.rejectUnknown(allowed: ["poisson", "interval", "gamma", "burstiness"])
        let given = ["poisson", "interval", "gamma"].filter { ao.has($0) }
        guard given.count == 1 else {
            throw InputError(field: r.fieldPath("arrivals"), given.isEmpty ? "needs one of poisson, interval, gamma" : "give one of poisson, interval, gamma, not \(given.joined(separator: " and "))")
        }
        if ao.has("burstiness"), given[0] != "gamma" {
            throw InputError(field: ao.fieldPath("burstiness"), "only with \"gamma\" (a Poisson process is burstiness 1)")
        }
        switch given[0] {
        case "poisson": return .poisson(ratePerSecond: try ao.double("poisson", in: 1e-6...1e9))
        case "interval": return .interval(seconds: try ao.double("interval", in: 0...1e9))
        default:
            return .gamma(ratePerSecond: try ao.double("gamma", in: 1e-6...1e9),
                          burstiness: try ao.optionalDouble("burstiness", in: 0.001...1000) ?? 1)
        }
    }

    /// The ShareGPT options of a `requests` object (`RequestSource.shareGPT`).
    static func shareGPTOptions(_ r: JSONFields) throws -> ShareGPTOptions {
        let filterKeys = ["minTokens", "maxInputTokens", "maxTotalTokens", "maxOutputTokens"]
        try r.rejectUnknown(allowed: ["sharegpt", "turns", "thinkSeconds", "count", "filter", "arrivals", "seed"] + filterKeys)
        var o = ShareGPTOptions()
        if let t = try r.optionalString("turns") {
            guard let v = ShareGPTOptions.Turns(rawValue: t) else {
                throw InputError(field: r.fieldPath("turns"), "must be \"all\" or \"first\", got \"\(t)\"")
            }
            o.turns = v
        }
        if r.has("thinkSeconds") {
            guard o.turns == .all else {
                throw InputError(field: r.fieldPath("thinkSeconds"), "has no effect with \"turns\": \"first\" (no request follows another)")
            }
            if let e = try r.raw("thinkSeconds") as? [String: Any] {
                let eo = JSONFields(e, path: r.fieldPath("thinkSeconds"))
                try eo.rejectUnknown(allowed: ["exponential"])
                o.think = .exponential(meanSeconds: try eo.double("exponential", in: 1e-6...1e6))
            } else {
                o.think = .fixed(seconds: try r.double("thinkSeconds", in: 0...1e6))
            }
        }
        o.count = try r.optionalInt("count", in: 1...maxCount)
        if r.has("filter"), try !r.bool("filter") {
            if let k = filterKeys.first(where: { r.has($0) }) {
                throw InputError(field: r.fieldPath(k), "has no effect with \"filter\": false")
            }
            o.filter = nil
        } else {
            var f = ShareGPTOptions.LengthFilter()
            if let v = try r.optionalInt("minTokens", in: 1...maxTokens) { f.minTokens = v }
            if let v = try r.optionalInt("maxInputTokens", in: 1...maxTokens) { f.maxInputTokens = v }
            if let v = try r.optionalInt("maxTotalTokens", in: 2...(2 * maxTokens)) { f.maxTotalTokens = v }
            f.maxOutputTokens = try r.optionalInt("maxOutputTokens", in: 1...maxTokens)
            o.filter = f
        }
        o.arrivals = try parseArrivals(r, defaultValue: .allAtOnce)
        o.seed = try parseSeed(r)
        return o
    }
}
