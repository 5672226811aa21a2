import Foundation
import GRDB

/// A SQLite store of imported profiles (GRDB).
///
/// Importing a folder replaces any profile of the same name inside one transaction, so importing
/// the same folder twice leaves the same rows, and a malformed folder (rejected while reading,
/// before the transaction starts) leaves the store untouched.
///
///     let store = try ProfileStore(path: ".hybridplanner/profiles.sqlite")
///     try store.importProfile(from: URL(fileURLWithPath: "profiles/reference-h100"))
///     try store.summaries().first?.gemmRows   // 260
public final class ProfileStore {
    let db: DatabaseQueue

    public struct Summary: Sendable, Equatable {
        public var name: String
        public var device: String
        public var hardware: String
        public var dtype: String
        public var capturedAt: String
        public var versions: String
        public var source: String
        public var licence: String?
        public var linkRows: Int
        public var copyRows: Int
        public var gemmRows: Int
        public var attentionRows: Int
        public var e2eRuns: Int
        public var timelineRows: Int
        public var importedAt: String
    }

    public init(path: String) throws {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        do {
            db = try DatabaseQueue(path: path)
            try Self.migrator.migrate(db)
            try Self.checkShape(db, path: path)
        } catch let e as DatabaseError {
            throw InputError(field: path, "cannot open the profile store: \(e.message ?? "\(e)")")
        }
    }

    /// Refuses a store whose tables lack a column the migrations create (a store edited by hand,
    /// or written by another program), naming the table and the column, so that no read of it can
    /// fail half-way.
    static func checkShape(_ db: DatabaseQueue, path: String) throws {
        let reference = try DatabaseQueue()
        try migrator.migrate(reference)
        func columns(_ q: DatabaseQueue) throws -> [String: Set<String>] {
            try q.read { db in
                var out: [String: Set<String>] = [:]
                for table in try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'grdb_%'") {
                    out[table] = Set(try db.columns(in: table).map(\.name))
                }
                return out
            }
        }
        let want = try columns(reference), have = try columns(db)
        for table in want.keys.sorted() {
            guard let got = have[table] else {
                throw InputError(field: path, "is not a profile store this planner can read: it has no table \(table); move it aside and import the profiles again")
            }
            if let missing = want[table]!.subtracting(got).sorted().first {
                throw InputError(field: path, "is not a profile store this planner can read: table \(table) has no column \(missing); move it aside and import the profiles again")
            }
        }
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.create(table: "profile") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("name", .text).notNull().unique()
                t.column("device", .text).notNull()
                t.column("hardware", .text).notNull()
                t.column("dtype", .text).notNull()
                t.column("capturedAt", .text).notNull()
                t.column("driver", .text).notNull()
                t.column("cuda", .text).notNull()
                t.column("libraries", .text).notNull()
                t.column("repeats", .integer).notNull()
                t.column("warmup", .integer).notNull()
                t.column("source", .text).notNull()
                t.column("licence", .text)
                t.column("importedAt", .text).notNull()
            }
            try db.create(table: "link") { t in
                t.column("profileId", .integer).notNull().references("profile", onDelete: .cascade)
                t.column("direction", .text).notNull()
                t.column("memory", .text).notNull()
                t.column("bytes", .double).notNull()
                t.column("seconds", .double).notNull()
                t.uniqueKey(["profileId", "direction", "memory", "bytes"])
            }
            try db.create(table: "gemm") { t in
                t.column("profileId", .integer).notNull().references("profile", onDelete: .cascade)
                t.column("m", .integer).notNull()
                t.column("n", .integer).notNull()
                t.column("k", .integer).notNull()
                t.column("seconds", .double).notNull()
                t.uniqueKey(["profileId", "m", "n", "k"])
            }
            try db.create(table: "attention") { t in
                t.column("profileId", .integer).notNull().references("profile", onDelete: .cascade)
                t.column("kind", .text).notNull()
                t.column("batch", .integer).notNull()
                t.column("heads", .integer).notNull()
                t.column("kvHeads", .integer).notNull()
                t.column("headDim", .integer).notNull()
                t.column("queries", .integer).notNull()
                t.column("context", .integer).notNull()
                t.column("seconds", .double).notNull()
                t.uniqueKey(["profileId", "kind", "batch", "heads", "kvHeads", "headDim", "queries", "context"])
            }
            try db.create(table: "e2e") { t in
                t.column("profileId", .integer).notNull().references("profile", onDelete: .cascade)
                t.column("run", .text).notNull()
                t.column("grp", .text).notNull()
                t.column("model", .text).notNull()
                t.column("layers", .integer).notNull()
                t.column("batch", .integer).notNull()
                t.column("context", .integer).notNull()
                t.column("weightsGpuFraction", .double).notNull()
                t.column("gpuKV", .integer).notNull()
                t.column("gpuAct", .integer).notNull()
                t.column("hostKV", .integer).notNull()
                t.column("hostAct", .integer).notNull()
                t.column("recompute", .integer).notNull()
                t.column("hostMemory", .text).notNull()
                t.column("stepSeconds", .double).notNull()
                t.uniqueKey(["profileId", "run"])
            }
            try db.create(table: "timeline") { t in
                t.column("profileId", .integer).notNull().references("profile", onDelete: .cascade)
                t.column("run", .text).notNull()
                t.column("step", .integer).notNull()
                t.column("layer", .integer).notNull()
                t.column("stream", .text).notNull()
                t.column("op", .text).notNull()
                t.column("start", .double).notNull()
                t.column("end", .double).notNull()
            }
        }
        m.registerMigration("v2: device copies") { db in
            try db.create(table: "copy") { t in
                t.column("profileId", .integer).notNull().references("profile", onDelete: .cascade)
                t.column("bytes", .double).notNull()
                t.column("seconds", .double).notNull()
                t.uniqueKey(["profileId", "bytes"])
            }
        }
        return m
    }

    /// Reads the folder (rejecting it whole if any file is malformed), then replaces the profile of
    /// the same name in one transaction. Returns what was stored.
    @discardableResult
    public func importProfile(from folder: URL) throws -> Profile {
        let p = try ProfileReader.read(folder)
        try save(p)
        return p
    }

    /// Rows of one table with repeated keys merged into one whose time is their mean, as the
    /// profile-backed cost model merges them when it reads a folder (first appearance kept in order).
    static func averaged<Row, Key: Hashable>(_ rows: [Row], key: (Row) -> Key, seconds: WritableKeyPath<Row, Double>) -> [Row] {
        var order: [Key] = [], sums: [Key: (row: Row, total: Double, count: Int)] = [:]
        for r in rows {
            let k = key(r)
            if let s = sums[k] { sums[k] = (s.row, s.total + r[keyPath: seconds], s.count + 1) } else { order.append(k); sums[k] = (r, r[keyPath: seconds], 1) }
        }
        return order.map { k in
            var (row, total, count) = sums[k]!
            row[keyPath: seconds] = total / Double(count)
            return row
        }
    }

    public func save(_ p: Profile) throws {
        let link = Self.averaged(p.link, key: { "\($0.direction.rawValue) \($0.memory.rawValue) \($0.bytes)" }, seconds: \.seconds)
        let copy = Self.averaged(p.copy, key: { $0.bytes }, seconds: \.seconds)
        let gemm = Self.averaged(p.gemm, key: { [$0.m, $0.n, $0.k] }, seconds: \.seconds)
        let attention = Self.averaged(p.attention, key: { "\($0.kind.rawValue) \($0.batch) \($0.heads) \($0.kvHeads) \($0.headDim) \($0.queries) \($0.context)" },
                                      seconds: \.seconds)
        let libraries = String(data: try JSONSerialization.data(withJSONObject: p.meta.libraries, options: [.sortedKeys]), encoding: .utf8) ?? "{}"
        let now = ISO8601DateFormatter().string(from: Date())
        try db.write { db in
            try db.execute(sql: "DELETE FROM profile WHERE name = ?", arguments: [p.name])
            try db.execute(sql: """
                INSERT INTO profile (name, device, hardware, dtype, capturedAt, driver, cuda, libraries, repeats, warmup, source, licence, importedAt)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [p.name, p.meta.device, p.meta.hardware, p.meta.dtype.rawValue, p.meta.capturedAt, p.meta.driver, p.meta.cuda,
                                 libraries, p.meta.repeats, p.meta.warmup, p.meta.source, p.meta.licence, now])
            let id = db.lastInsertedRowID
            for r in link {
                try db.execute(sql: "INSERT INTO link VALUES (?, ?, ?, ?, ?)",
                               arguments: [id, r.direction.rawValue, r.memory.rawValue, r.bytes, r.seconds])
            }
            for r in copy {
                try db.execute(sql: "INSERT INTO copy VALUES (?, ?, ?)", arguments: [id, r.bytes, r.seconds])
            }
            for r in gemm {
                try db.execute(sql: "INSERT INTO gemm VALUES (?, ?, ?, ?, ?)", arguments: [id, r.m, r.n, r.k, r.seconds])
            }
            for r in attention {
                try db.execute(sql: "INSERT INTO attention VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                               arguments: [id, r.kind.rawValue, r.batch, r.heads, r.kvHeads, r.headDim, r.queries, r.context, r.seconds])
            }
            for r in p.e2e {
                try db.execute(sql: "INSERT INTO e2e VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                               arguments: [id, r.run, r.group, r.model, r.layers, r.batch, r.context, r.weightsGPUFraction,
                                           r.placement.gpuKV, r.placement.gpuAct, r.placement.hostKV, r.placement.hostAct,
                                           r.placement.recompute, r.hostMemory.rawValue, r.stepSeconds])
            }
            for r in p.timeline {
                try db.execute(sql: "INSERT INTO timeline VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                               arguments: [id, r.run, r.step, r.layer, r.stream, r.op, r.start, r.end])
            }
        }
    }

    public func summaries() throws -> [Summary] {
        try db.read { db in
            let rows = try Row.fetchAll(db, sql: """
                SELECT p.*,
                  (SELECT COUNT(*) FROM link WHERE profileId = p.id) AS linkRows,
                  (SELECT COUNT(*) FROM copy WHERE profileId = p.id) AS copyRows,
                  (SELECT COUNT(*) FROM gemm WHERE profileId = p.id) AS gemmRows,
                  (SELECT COUNT(*) FROM attention WHERE profileId = p.id) AS attentionRows,
                  (SELECT COUNT(*) FROM e2e WHERE profileId = p.id) AS e2eRuns,
                  (SELECT COUNT(*) FROM timeline WHERE profileId = p.id) AS timelineRows
                FROM profile p ORDER BY p.name
                """)
            return rows.map { r in
                Summary(name: r["name"], device: r["device"], hardware: r["hardware"], dtype: r["dtype"], capturedAt: r["capturedAt"],
                        versions: "driver \(r["driver"] as String), CUDA \(r["cuda"] as String), \(r["libraries"] as String)",
                        source: r["source"], licence: r["licence"], linkRows: r["linkRows"], copyRows: r["copyRows"], gemmRows: r["gemmRows"],
                        attentionRows: r["attentionRows"], e2eRuns: r["e2eRuns"], timelineRows: r["timelineRows"], importedAt: r["importedAt"])
            }
        }
    }

    /// A stored profile, back in memory.
    public func load(name: String) throws -> Profile {
        try db.read { db in
            guard let r = try Row.fetchOne(db, sql: "SELECT * FROM profile WHERE name = ?", arguments: [name]) else {
                let names = try String.fetchAll(db, sql: "SELECT name FROM profile ORDER BY name")
                throw InputError(field: "profile", "no profile named \"\(name)\" in the store; it holds \(names.isEmpty ? "none" : names.joined(separator: ", "))")
            }
            let id: Int64 = r["id"]
            let libs = (try? JSONSerialization.jsonObject(with: Data((r["libraries"] as String).utf8)) as? [String: String]) ?? [:]
            var p = Profile(name: name, meta: Profile.Meta(
                format: ProfileReader.format, device: r["device"], hardware: r["hardware"], dtype: DType(rawValue: r["dtype"]) ?? .fp16,
                capturedAt: r["capturedAt"], driver: r["driver"], cuda: r["cuda"], libraries: libs, repeats: r["repeats"],
                warmup: r["warmup"], source: r["source"], licence: r["licence"]))
            p.link = try Row.fetchAll(db, sql: "SELECT * FROM link WHERE profileId = ? ORDER BY direction, memory, bytes", arguments: [id]).map {
                Profile.LinkPoint(direction: LinkDirection(rawValue: $0["direction"]) ?? .hostToDevice,
                                  memory: HostMemoryKind(rawValue: $0["memory"]) ?? .pinned, bytes: $0["bytes"], seconds: $0["seconds"])
            }
            p.copy = try Row.fetchAll(db, sql: "SELECT * FROM copy WHERE profileId = ? ORDER BY bytes", arguments: [id]).map {
                Profile.CopyPoint(bytes: $0["bytes"], seconds: $0["seconds"])
            }
            p.gemm = try Row.fetchAll(db, sql: "SELECT * FROM gemm WHERE profileId = ? ORDER BY n, k, m", arguments: [id]).map {
                Profile.GemmPoint(m: $0["m"], n: $0["n"], k: $0["k"], seconds: $0["seconds"])
            }
            p.attention = try Row.fetchAll(db, sql: "SELECT * FROM attention WHERE profileId = ? ORDER BY kind, heads, kvHeads, headDim, batch, queries, context", arguments: [id]).map {
                Profile.AttentionPoint(kind: Profile.AttentionKind(rawValue: $0["kind"]) ?? .decode, batch: $0["batch"], heads: $0["heads"],
                                       kvHeads: $0["kvHeads"], headDim: $0["headDim"], queries: $0["queries"], context: $0["context"],
                                       seconds: $0["seconds"])
            }
            p.e2e = try Row.fetchAll(db, sql: "SELECT * FROM e2e WHERE profileId = ? ORDER BY run", arguments: [id]).map {
                Profile.E2ERun(run: $0["run"], group: $0["grp"], model: $0["model"], layers: $0["layers"], batch: $0["batch"],
                               context: $0["context"], weightsGPUFraction: $0["weightsGpuFraction"],
                               placement: TokenPlacement(gpuKV: $0["gpuKV"], gpuAct: $0["gpuAct"], hostKV: $0["hostKV"],
                                                         hostAct: $0["hostAct"], recompute: $0["recompute"]),
                               hostMemory: HostMemoryKind(rawValue: $0["hostMemory"]) ?? .pinned, stepSeconds: $0["stepSeconds"])
            }
            return p
        }
    }
}
