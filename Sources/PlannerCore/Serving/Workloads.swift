import Foundation

extension RequestSource {
    /// The serving scenario's `requests` object: `{"trace": "file.jsonl"}` or a synthetic generator
    /// (`count`, `arrivals`, `input`, `output`, `seed`). Paths are relative to `baseDirectory`.
    public static func parse(_ r: JSONFields, baseDirectory: URL?) throws -> [ServingRequest] {
        if r.has("trace") {
            try r.rejectUnknown(allowed: ["trace"])
            let path = try r.string("trace")
            let url = URL(fileURLWithPath: path, relativeTo: path.hasPrefix("/") ? nil : baseDirectory)
            guard let d = FileManager.default.contents(atPath: url.path), let text = String(data: d, encoding: .utf8) else {
                throw InputError(field: "requests.trace", "cannot read \(url.path)")
            }
            return try RequestSource.trace(text, source: url.lastPathComponent)
        } else {
            try r.rejectUnknown(allowed: ["count", "arrivals", "input", "output", "seed"])
            func range(_ key: String) throws -> ClosedRange<Int> {
                let v = try r.raw(key)
                if let a = v as? [Any] {
                    let o2 = JSONFields(["lo": a.first as Any, "hi": a.count == 2 ? a[1] : NSNull()], path: r.fieldPath(key))
                    guard a.count == 2 else { throw InputError(field: r.fieldPath(key), "must be a token count or [lowest, highest]") }
                    let lo = try o2.int("lo", in: 1...(1 << 24)), hi = try o2.int("hi", in: 1...(1 << 24))
                    guard lo <= hi else { throw InputError(field: r.fieldPath(key), "lowest (\(lo)) must not exceed highest (\(hi))") }
                    return lo ... hi
                }
                let n = try r.int(key, in: 1...(1 << 24))
                return n ... n
            }
            let arrivals: RequestSource.Arrivals
            let a = try r.raw("arrivals")
            if let s = a as? String, s == "all-at-once" {
                arrivals = .allAtOnce
            } else if let d = a as? [String: Any] {
                let ao = JSONFields(d, path: r.fieldPath("arrivals"))
                try ao.rejectUnknown(allowed: ["poisson", "interval"])
                if let rate = try ao.optionalDouble("poisson", in: 1e-6...1e9) {
                    arrivals = .poisson(ratePerSecond: rate)
                } else {
                    arrivals = .interval(seconds: try ao.double("interval", in: 0...1e9))
                }
            } else {
                throw InputError(field: r.fieldPath("arrivals"), "must be \"all-at-once\", {\"poisson\": requests per second} or {\"interval\": seconds}")
            }
            return RequestSource.synthetic(count: try r.int("count", in: 1...10_000_000), arrivals: arrivals, input: try range("input"),
                                       output: try range("output"), seed: UInt64(try r.optionalInt("seed", in: 0...Int.max) ?? 1))
        }
    }
}
