internal import CSQLite
import NIOCore

/// SQLite's SQLITE_TRANSIENT: SQLite copies a bound value before `bind` returns.
private let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// One SQLite connection, used through the C API directly.
///
/// Not thread-safe: its owner serialises every use (the store's database lock, or one CLI call).
final class Database {
    let path: String
    private var handle: OpaquePointer?

    /// Opens `path` with `flags` (`SQLITE_OPEN_*`). Opening is lazy in SQLite: a file that is not
    /// a database is only detected by the first statement.
    init(path: String, flags: Int32) throws(StoreError) {
        self.path = path
        var handle: OpaquePointer?
        let code = sqlite3_open_v2(path, &handle, flags | SQLITE_OPEN_NOMUTEX, nil)
        self.handle = handle
        if code != SQLITE_OK {
            let error = self.error(code, "opening the database")
            close()
            throw error
        }
        sqlite3_extended_result_codes(handle, 1)
        sqlite3_busy_timeout(handle, 5000)
    }

    deinit { close() }

    var isOpen: Bool { handle != nil }

    /// Rows changed by the last INSERT, UPDATE or DELETE.
    var changes: Int { Int(sqlite3_changes(handle)) }

    /// False while a transaction is open.
    var isAutocommit: Bool { sqlite3_get_autocommit(handle) != 0 }

    /// Runs one or more statements that return no rows we need.
    func execute(_ sql: String, _ action: String) throws(StoreError) {
        let code = sqlite3_exec(handle, sql, nil, nil, nil)
        if code != SQLITE_OK { throw error(code, action) }
    }

    /// Runs a statement and returns the first column of its first row as an integer.
    func integer(_ sql: String, _ action: String) throws(StoreError) -> Int64? {
        let statement = try prepare(sql)
        defer { statement.finalize() }
        guard try statement.step(action) else { return nil }
        return statement.optionalInt64(0)
    }

    /// Runs a statement and returns the first column of its first row as text.
    func text(_ sql: String, _ action: String) throws(StoreError) -> String? {
        let statement = try prepare(sql)
        defer { statement.finalize() }
        guard try statement.step(action) else { return nil }
        return statement.optionalText(0)
    }

    func prepare(_ sql: String) throws(StoreError) -> Statement {
        var statement: OpaquePointer?
        let code = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard code == SQLITE_OK, let statement else { throw error(code, "preparing \(sql.prefix(60))") }
        return Statement(handle: statement, database: self)
    }

    /// The error for result `code`: damage (SQLITE_CORRUPT, SQLITE_NOTADB) becomes `.corrupt`.
    func error(_ code: Int32, _ action: String) -> StoreError {
        let message = handle.flatMap { sqlite3_errmsg($0) }.map { String(cString: $0) } ?? String(cString: sqlite3_errstr(code))
        switch code & 0xFF {
        case SQLITE_CORRUPT, SQLITE_NOTADB:
            return .corrupt(path: path, detail: "\(message), while \(action)")
        default:
            return .sqlite(path: path, action: action, code: code, message: message)
        }
    }

    func close() {
        guard let handle else { return }
        // Statements are finalized by their owners first; v2 defers the close until they are.
        sqlite3_close_v2(handle)
        self.handle = nil
    }
}

/// One prepared statement, reset and reused.
///
/// Not thread-safe: used under its database's serialisation.
final class Statement {
    private var handle: OpaquePointer?
    private unowned let database: Database

    init(handle: OpaquePointer, database: Database) {
        self.handle = handle
        self.database = database
    }

    deinit { finalize() }

    func finalize() {
        if let handle { sqlite3_finalize(handle) }
        handle = nil
    }

    /// Clears the bindings and the previous run; call before binding a new row.
    func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    func bind(_ index: Int32, _ value: Int64?) {
        if let value { sqlite3_bind_int64(handle, index, value) } else { sqlite3_bind_null(handle, index) }
    }

    func bind(_ index: Int32, _ value: Int) { sqlite3_bind_int64(handle, index, Int64(value)) }

    func bind(_ index: Int32, _ value: String?) {
        guard var value else { sqlite3_bind_null(handle, index); return }
        value.withUTF8 { bytes in
            _ = sqlite3_bind_text(handle, index, bytes.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) }, Int32(bytes.count), transient)
        }
    }

    /// Binds the readable bytes of `value` (copied), or NULL.
    func bind(_ index: Int32, _ value: ByteBuffer?) {
        guard let value else { sqlite3_bind_null(handle, index); return }
        value.withUnsafeReadableBytes { bytes in
            // A zero-length blob must not be NULL: SQLite binds a NULL pointer as NULL.
            _ = sqlite3_bind_blob(handle, index, bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32(bytes.count), transient)
        }
    }

    /// Steps once: true if a row is ready, false when done. Resets the statement on error.
    @discardableResult
    func step(_ action: String) throws(StoreError) -> Bool {
        let code = sqlite3_step(handle)
        switch code {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default:
            let error = database.error(code, action)
            sqlite3_reset(handle)
            throw error
        }
    }

    /// Runs a statement that returns no rows and resets it; returns the rows it changed.
    @discardableResult
    func run(_ action: String) throws(StoreError) -> Int {
        defer { sqlite3_reset(handle) }
        try step(action)
        return database.changes
    }

    func isNull(_ column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }

    func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }

    func optionalInt64(_ column: Int32) -> Int64? { isNull(column) ? nil : int64(column) }

    func text(_ column: Int32) -> String { optionalText(column) ?? "" }

    func optionalText(_ column: Int32) -> String? {
        guard let text = sqlite3_column_text(handle, column) else { return nil }
        let count = Int(sqlite3_column_bytes(handle, column))
        return String(decoding: UnsafeBufferPointer(start: text, count: count), as: UTF8.self)
    }

    /// A column as bytes (a BLOB, or the bytes of any other value); nil for NULL.
    func blob(_ column: Int32) -> ByteBuffer? {
        if isNull(column) { return nil }
        // SQLite's rule: ask for the pointer first, then the size.
        let bytes = sqlite3_column_blob(handle, column)
        let count = Int(sqlite3_column_bytes(handle, column))
        guard count > 0, let bytes else { return ByteBuffer() }
        return ByteBuffer(bytes: UnsafeRawBufferPointer(start: bytes, count: count))
    }
}
