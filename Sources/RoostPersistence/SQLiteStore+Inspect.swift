internal import CSQLite
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// What `roost db stats` prints: counts and file sizes of a data directory's database.
public struct StoreInspection: Sendable, Equatable {
    public var databasePath: String
    public var schemaVersion: Int
    /// Size of `roost.db` in bytes.
    public var databaseBytes: Int64
    /// Size of `roost.db-wal` in bytes (0 when there is none).
    public var walBytes: Int64
    public var sessions = 0
    /// Sessions whose client was connected at the last write (no `disconnected_at`).
    public var sessionsOnline = 0
    public var subscriptions = 0
    /// Queued messages not sent yet.
    public var queued = 0
    /// Messages sent and not fully acknowledged (they have a packet id).
    public var inflight = 0
    /// Inbound QoS 2 packet ids waiting for PUBREL.
    public var inboundIDs = 0
    public var retained = 0
}

extension SQLiteStore {
    /// Counts and sizes of the database in `directory`, read-only and without the directory lock
    /// (WAL lets a reader look beside a running broker).
    public static func inspect(directory: String) throws(StoreError) -> StoreInspection {
        let (database, version) = try openReadOnly(directory: directory)
        defer { database.close() }
        var inspection = StoreInspection(
            databasePath: database.path, schemaVersion: version, databaseBytes: fileSize(database.path),
            walBytes: fileSize(database.path + "-wal"))
        guard version > 0 else { return inspection }
        try database.execute("BEGIN", "starting a read")
        defer { try? database.execute("COMMIT", "ending a read") }
        func count(_ sql: String) throws(StoreError) -> Int {
            Int(try database.integer(sql, "counting") ?? 0)
        }
        inspection.sessions = try count("SELECT COUNT(*) FROM sessions")
        inspection.sessionsOnline = try count("SELECT COUNT(*) FROM sessions WHERE disconnected_at IS NULL")
        inspection.subscriptions = try count("SELECT COUNT(*) FROM subscriptions")
        inspection.queued = try count("SELECT COUNT(*) FROM queue WHERE packet_id = 0")
        inspection.inflight = try count("SELECT COUNT(*) FROM queue WHERE packet_id != 0")
        inspection.inboundIDs = try count("SELECT COUNT(*) FROM inbound")
        inspection.retained = try count("SELECT COUNT(*) FROM retained")
        return inspection
    }

    /// Every session with its rows, and every retained message, of the database in `directory`;
    /// read-only, without the lock, nothing removed. Times are wall-clock milliseconds.
    public static func dump(directory: String) throws(StoreError) -> StoreDump {
        let (database, version) = try openReadOnly(directory: directory)
        defer { database.close() }
        guard version > 0 else { return StoreDump() }
        try database.execute("BEGIN", "starting a read")
        defer { try? database.execute("COMMIT", "ending a read") }
        return try StoreReader.read(database) { _ in nil }
    }

    private static func openReadOnly(directory: String) throws(StoreError) -> (Database, Int) {
        let path = directory + "/roost.db"
        guard access(path, F_OK) == 0 else { throw .noDatabase(path: path) }
        let database = try Database(path: path, flags: SQLITE_OPEN_READONLY)
        let version = Int(try database.integer("PRAGMA user_version", "reading the schema version") ?? 0)
        if version > Schema.version { throw .newerSchema(path: path, found: version, supported: Schema.version) }
        let check = try database.text("PRAGMA quick_check", "checking the database") ?? "no result"
        if check != "ok" { throw .corrupt(path: path, detail: "quick_check: \(check)") }
        return (database, version)
    }

    private static func fileSize(_ path: String) -> Int64 {
        var status = stat()
        guard stat(path, &status) == 0 else { return 0 }
        return Int64(status.st_size)
    }
}
