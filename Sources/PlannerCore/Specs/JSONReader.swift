import Foundation

/// A JSON object read with field paths, so that every complaint names the field it is about.
///
///     let o = try JSONFields.parse(data, source: "scenario.json")
///     let batch = try o.int("batch", in: 1...1_048_576)
///     // a missing or wrong "batch" throws InputError(field: "batch", ...)
///
/// Unknown keys are rejected by `rejectUnknown(allowed:)`, so a misspelt key is an error rather
/// than a silently ignored setting.
public struct JSONFields: @unchecked Sendable {
    public let object: [String: Any]
    /// Dotted path of this object inside the document ("" for the root).
    public let path: String

    public init(_ object: [String: Any], path: String) {
        self.object = object
        self.path = path
    }

    /// Parses a JSON document whose top level must be an object. Comments are not JSON; a
    /// malformed document is reported with the parser's position.
    public static func parse(_ data: Data, source: String) throws -> JSONFields {
        let value: Any
        do {
            value = try JSONSerialization.jsonObject(with: data, options: [])
        } catch {
            let ns = error as NSError
            var detail = (ns.userInfo[NSDebugDescriptionErrorKey] as? String) ?? ns.localizedDescription
            detail = JSONFields.withLineAndColumn(detail, in: data)
            throw InputError(field: "", "\(source) is not valid JSON: \(detail)")
        }
        guard let object = value as? [String: Any] else {
            throw InputError(field: "", "\(source) must hold a JSON object at its top level")
        }
        if let (key, line) = firstDuplicateKey(data) {
            throw InputError(field: "\(source):\(line)", "key \"\(key)\" appears twice in one object; which one is meant is not clear")
        }
        return JSONFields(object, path: "")
    }

    /// The first key that an object of a well-formed JSON document holds twice, and its line (the
    /// parser keeps the last silently). Keys are compared as written, escapes and all.
    static func firstDuplicateKey(_ data: Data) -> (String, Int)? {
        let b = [UInt8](data)
        var stack: [(isObject: Bool, keys: Set<String>, expectKey: Bool)] = []
        var i = 0, line = 1
        while i < b.count {
            switch b[i] {
            case UInt8(ascii: "\n"): line += 1
            case UInt8(ascii: "{"): stack.append((true, [], true))
            case UInt8(ascii: "["): stack.append((false, [], false))
            case UInt8(ascii: "}"), UInt8(ascii: "]"): if !stack.isEmpty { stack.removeLast() }
            case UInt8(ascii: ","): if let last = stack.last, last.isObject { stack[stack.count - 1].expectKey = true }
            case UInt8(ascii: "\""):
                var j = i + 1
                while j < b.count, b[j] != UInt8(ascii: "\"") { j += b[j] == UInt8(ascii: "\\") ? 2 : 1 }
                if let last = stack.last, last.isObject, last.expectKey {
                    let key = String(decoding: b[(i + 1) ..< min(j, b.count)], as: UTF8.self)
                    if !stack[stack.count - 1].keys.insert(key).inserted { return (key, line) }
                    stack[stack.count - 1].expectKey = false
                }
                i = j
            default: break
            }
            i += 1
        }
        return nil
    }

    /// Rewrites "around character N" in a parser message as a line and column of `data`.
    static func withLineAndColumn(_ message: String, in data: Data) -> String {
        guard let r = message.range(of: #"character (\d+)"#, options: .regularExpression),
              let offset = Int(message[r].dropFirst("character ".count)) else { return message }
        var line = 1, column = 1
        for (i, byte) in data.enumerated() {
            if i >= offset { break }
            if byte == UInt8(ascii: "\n") { line += 1; column = 1 } else { column += 1 }
        }
        return message.replacingCharacters(in: r, with: "line \(line), column \(column)")
    }

    public func fieldPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    public func has(_ key: String) -> Bool { object[key] != nil && !(object[key] is NSNull) }

    public func rejectUnknown(allowed: [String]) throws {
        for key in object.keys.sorted() where !allowed.contains(key) {
            throw InputError(field: fieldPath(key), "unknown key; allowed keys here are \(allowed.joined(separator: ", "))")
        }
    }

    public func raw(_ key: String) throws -> Any {
        guard let v = object[key], !(v is NSNull) else {
            throw InputError(field: fieldPath(key), "missing")
        }
        return v
    }

    static func isBool(_ v: Any) -> Bool {
        guard let n = v as? NSNumber else { return false }
        return String(cString: n.objCType) == "c"
    }

    public func double(_ key: String, in range: ClosedRange<Double>) throws -> Double {
        let v = try raw(key)
        guard let n = v as? NSNumber, !JSONFields.isBool(v) else {
            throw InputError(field: fieldPath(key), "must be a number from \(fmt(range.lowerBound)) to \(fmt(range.upperBound)), got \(describe(v))")
        }
        let d = n.doubleValue
        guard d.isFinite, range.contains(d) else {
            throw InputError(field: fieldPath(key), "must be a number from \(fmt(range.lowerBound)) to \(fmt(range.upperBound)), got \(fmt(d))")
        }
        return d
    }

    public func optionalDouble(_ key: String, in range: ClosedRange<Double>) throws -> Double? {
        has(key) ? try double(key, in: range) : nil
    }

    public func int(_ key: String, in range: ClosedRange<Int>) throws -> Int {
        let v = try raw(key)
        guard let n = v as? NSNumber, !JSONFields.isBool(v) else {
            throw InputError(field: fieldPath(key), "must be an integer from \(range.lowerBound) to \(range.upperBound), got \(describe(v))")
        }
        guard let i = JSONFields.exactInteger(n), range.contains(i) else {
            throw InputError(field: fieldPath(key), "must be an integer from \(range.lowerBound) to \(range.upperBound), got \(n.stringValue)")
        }
        return i
    }

    /// The number as an `Int` when it is one exactly: integers are read as integers (all 64 bits),
    /// fractions and values beyond `Int`'s range are not integers.
    static func exactInteger(_ n: NSNumber) -> Int? {
        switch UInt8(bitPattern: n.objCType.pointee) {
        case UInt8(ascii: "Q"), UInt8(ascii: "L"): return n.uint64Value <= UInt64(Int.max) ? Int(n.uint64Value) : nil
        case UInt8(ascii: "f"), UInt8(ascii: "d"): return Int(exactly: n.doubleValue)
        default: return Int(exactly: n.int64Value)
        }
    }

    public func optionalInt(_ key: String, in range: ClosedRange<Int>) throws -> Int? {
        has(key) ? try int(key, in: range) : nil
    }

    public func string(_ key: String) throws -> String {
        let v = try raw(key)
        guard let s = v as? String else {
            throw InputError(field: fieldPath(key), "must be a string, got \(describe(v))")
        }
        return s
    }

    public func optionalString(_ key: String) throws -> String? {
        has(key) ? try string(key) : nil
    }

    public func bool(_ key: String) throws -> Bool {
        let v = try raw(key)
        guard JSONFields.isBool(v), let b = v as? Bool else {
            throw InputError(field: fieldPath(key), "must be true or false, got \(describe(v))")
        }
        return b
    }

    public func object(_ key: String) throws -> JSONFields {
        let v = try raw(key)
        guard let o = v as? [String: Any] else {
            throw InputError(field: fieldPath(key), "must be an object, got \(describe(v))")
        }
        return JSONFields(o, path: fieldPath(key))
    }

    public func optionalObject(_ key: String) throws -> JSONFields? {
        has(key) ? try object(key) : nil
    }

    public func array(_ key: String) throws -> [Any] {
        let v = try raw(key)
        guard let a = v as? [Any] else {
            throw InputError(field: fieldPath(key), "must be an array, got \(describe(v))")
        }
        return a
    }
}

func fmt(_ d: Double) -> String {
    if d.rounded() == d, abs(d) < 1e15 { return String(Int64(d)) }
    return String(format: "%g", d)
}

func describe(_ v: Any) -> String {
    switch v {
    case let s as String: return "the string \"\(s)\""
    case is [Any]: return "an array"
    case is [String: Any]: return "an object"
    case let n as NSNumber: return JSONFields.isBool(v) ? (n.boolValue ? "true" : "false") : fmt(n.doubleValue)
    default: return "\(v)"
    }
}
