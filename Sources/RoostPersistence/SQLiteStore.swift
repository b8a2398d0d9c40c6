internal import CSQLite
import Dispatch
import Logging
import MQTTCodec
import RoostCore
import Synchronization

/// The embedded durable store: one SQLite database in WAL mode in the data directory, written
/// in group commits by one dedicated thread.
///
/// `submit` only appends to a pending list under a short lock. The writer thread waits for the
/// first change, then `commitInterval` more (or until 4,096 changes wait), takes the whole list
/// and applies it in one transaction; then every ticket of the batch is durable and the
/// `whenDurable` callbacks run on the writer thread. A failed commit (disk full, I/O error) is
/// rolled back and retried every 250 ms with whatever arrived meanwhile; `isFailing` is true
/// until a retry succeeds, and no ticket of the failed batch is reported durable before that.
///
/// Concurrency: every method may be called from any thread. The pending list, tickets and
/// callbacks are guarded by `state`; the database by `databaseLock` (the writer thread, `load`
/// and `close` use it). The directory's `roost.lock` is held from `open` to `close`.
public final class SQLiteStore: DurableStore, @unchecked Sendable {
    /// The data directory.
    public let directory: String
    /// `<directory>/roost.db`.
    public let databasePath: String

    /// Changes that make the writer commit at once instead of waiting for `commitInterval`.
    static let batchLimit = 4096
    /// Pause between attempts while commits fail.
    static let retryIntervalNanoseconds: UInt64 = 250_000_000
    /// How long `close` keeps retrying a failing commit before giving up on it.
    static let closeGraceNanoseconds: UInt64 = 2_000_000_000

    private let logger: Logger
    private let clock: @Sendable () -> UInt64
    private let wallClock: @Sendable () -> Int64
    private let commitIntervalNanoseconds: UInt64
    private let directoryLock: DirectoryLock

    // Guarded by `state`.
    private let state = ConditionLock()
    private var pending = PendingBatch()
    /// The last ticket handed out.
    private var issued: UInt64 = 0
    /// The last ticket the writer took off the pending list.
    private var taken: UInt64 = 0
    /// Every ticket up to this one is on disk.
    private var durable: UInt64 = 0
    /// When the oldest change of the pending list arrived (monotonic ns).
    private var firstPendingAt: UInt64 = 0
    private var waiters: [(ticket: UInt64, callback: @Sendable () -> Void)] = []
    /// The writer waits for a first change; `submit` wakes it.
    private var writerIdle = false
    /// The writer waits out `commitInterval`; `submit` wakes it when the batch is full.
    private var writerGathering = false
    private var closing = false
    private var closingSince: UInt64 = 0
    private var thread: WriterThread?

    // Guarded by `databaseLock`.
    private let databaseLock = ConditionLock()
    private var writer: BatchWriter?

    private let failing = Atomic<Bool>(false)
    private let rowCount = Atomic<Int>(0)
    private let batchCount = Atomic<Int>(0)
    private let retainedCount = Atomic<Int>(0)

    /// True while commits fail; see the type's documentation.
    public var isFailing: Bool { failing.load(ordering: .relaxed) }
    /// Rows inserted, updated or deleted by committed batches (elided changes write none).
    public var rowsWritten: Int { rowCount.load(ordering: .relaxed) }
    /// Transactions committed by the writer.
    public var batchesCommitted: Int { batchCount.load(ordering: .relaxed) }

    /// After `close`, `UInt64.max`: nothing submitted then is written, so nothing may wait for it.
    public var lastTicket: UInt64 { state.withLock { closing ? UInt64.max : issued } }

    public var backlog: Int { state.withLock { Int(issued - durable) } }

    public var statistics: StoreStatistics {
        StoreStatistics(
            changes: Int(lastTicket), rowsWritten: rowsWritten, commits: batchesCommitted,
            retained: retainedCount.load(ordering: .relaxed))
    }

    /// Opens (creating if needed) the store in `directory`, which is created if missing.
    ///
    /// - Parameters:
    ///   - fsync: `PRAGMA synchronous` for every commit (FULL, NORMAL or OFF).
    ///   - commitInterval: how long the writer gathers changes after the first one.
    ///   - clock: the broker's monotonic clock in milliseconds (the clock of `Message.expiresAt`).
    ///   - wallClock: Unix time in milliseconds; the system's unless a test injects one.
    /// - Throws: `StoreError`: `.locked` if another store holds the directory, `.corrupt` if the
    ///   database cannot be read (the file is left as it is), `.newerSchema`, or what failed.
    public static func open(
        directory: String, fsync: FsyncMode = .full, commitInterval: Duration = .milliseconds(1), logger: Logger,
        clock: @escaping @Sendable () -> UInt64, wallClock: (@Sendable () -> Int64)? = nil
    ) throws(StoreError) -> SQLiteStore {
        try makeDirectories(directory)
        let lock = try DirectoryLock.acquire(directory: directory)
        let path = directory + "/roost.db"
        do throws(StoreError) {
            let database = try openDatabase(path: path, fsync: fsync)
            let writer = try BatchWriter(database: database)
            let store = SQLiteStore(
                directory: directory, path: path, writer: writer, lock: lock, commitInterval: commitInterval, logger: logger,
                clock: clock, wallClock: wallClock ?? systemWallClockMilliseconds)
            try store.startWriter()
            return store
        } catch {
            lock.release()
            throw error
        }
    }

    private init(
        directory: String, path: String, writer: BatchWriter, lock: DirectoryLock, commitInterval: Duration, logger: Logger,
        clock: @escaping @Sendable () -> UInt64, wallClock: @escaping @Sendable () -> Int64
    ) {
        self.directory = directory
        self.databasePath = path
        self.writer = writer
        self.directoryLock = lock
        let (seconds, attoseconds) = commitInterval.components
        self.commitIntervalNanoseconds = UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
        var logger = logger
        logger[metadataKey: "store.file"] = "\(path)"
        self.logger = logger
        self.clock = clock
        self.wallClock = wallClock
    }

    /// Opens the database for writing: refuses damaged and newer files before writing anything,
    /// then sets WAL and the sync level and migrates to the current schema.
    private static func openDatabase(path: String, fsync: FsyncMode) throws(StoreError) -> Database {
        let database = try Database(path: path, flags: SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
        let version = Int(try database.integer("PRAGMA user_version", "reading the schema version") ?? 0)
        if version > Schema.version { throw .newerSchema(path: path, found: version, supported: Schema.version) }
        let check = try database.text("PRAGMA quick_check", "checking the database") ?? "no result"
        if check != "ok" { throw .corrupt(path: path, detail: "quick_check: \(check)") }
        let mode = try database.text("PRAGMA journal_mode = WAL", "switching to WAL")
        if mode?.lowercased() != "wal" {
            throw .sqlite(path: path, action: "switching to WAL", code: 0, message: "journal mode is \(mode ?? "unknown")")
        }
        let synchronous: String
        switch fsync {
        case .full: synchronous = "FULL"
        case .normal: synchronous = "NORMAL"
        case .off: synchronous = "OFF"
        }
        try database.execute("PRAGMA synchronous = \(synchronous)", "setting synchronous")
        // After a checkpoint the log is cut back to 64 MB instead of keeping its largest size.
        try database.execute("PRAGMA journal_size_limit = 67108864", "limiting the log size")
        try Schema.migrate(database, from: version)
        return database
    }

    private func startWriter() throws(StoreError) {
        let thread = WriterThread.start { [self] in runWriter() }
        guard let thread else {
            databaseLock.withLock {
                writer?.close()
                writer = nil
            }
            throw .sqlite(path: databasePath, action: "starting the writer thread", code: 0, message: "pthread_create failed")
        }
        state.withLock { self.thread = thread }
    }

    // MARK: DurableStore

    @discardableResult
    public func submit(_ change: StoreChange) -> UInt64 {
        state.lock()
        defer { state.unlock() }
        if closing { return UInt64.max }
        if issued == taken { firstPendingAt = monotonicNanoseconds() }
        pending.append(change)
        issued += 1
        if writerIdle {
            writerIdle = false
            state.signal()
        } else if writerGathering && pending.count >= Self.batchLimit {
            writerGathering = false
            state.signal()
        }
        return issued
    }

    public func whenDurable(_ ticket: UInt64, _ callback: @escaping @Sendable () -> Void) {
        state.lock()
        if ticket <= durable {
            state.unlock()
            callback()
            return
        }
        waiters.append((ticket, callback))
        state.unlock()
    }

    /// Commits what is pending, then closes the database and releases the directory lock.
    /// Returns when that is done, except when called from a `whenDurable` callback (on the
    /// writer thread): then the writer finishes on its own after the callback returns.
    /// Idempotent; later submits are ignored.
    public func close() {
        state.lock()
        if closing {
            state.unlock()
            return
        }
        closing = true
        closingSince = monotonicNanoseconds()
        state.signal()
        let thread = self.thread
        self.thread = nil
        state.unlock()

        if let thread, !thread.isCurrent { thread.join() }
    }

    // MARK: The writer

    /// The writer thread's loop; once `close` was called and everything is written (or the grace
    /// period for a failing disk ran out), closes the database, releases the lock and returns.
    private func runWriter() {
        // A batch whose commit failed: retried first, with later changes appended.
        var carried: [Operation] = []
        var failedAt: UInt64?
        state.lock()
        while true {
            if issued == durable {
                if closing { break }
                writerIdle = true
                state.wait()
                writerIdle = false
                continue
            }
            let now = monotonicNanoseconds()
            if let failedAt {
                if closing && now - closingSince >= Self.closeGraceNanoseconds {
                    logger.error(
                        "store closed with changes it could not write",
                        metadata: ["store.unwritten_changes": "\(issued - durable)"])
                    break
                }
                let retryAt = failedAt + Self.retryIntervalNanoseconds
                if now < retryAt {
                    state.wait(untilNanoseconds: retryAt)
                    continue
                }
            } else if !closing && issued > taken && pending.count < Self.batchLimit {
                let deadline = firstPendingAt + commitIntervalNanoseconds
                if now < deadline {
                    writerGathering = true
                    state.wait(untilNanoseconds: deadline)
                    writerGathering = false
                    continue
                }
            }

            carried.append(contentsOf: pending.take())
            taken = issued
            let upTo = issued
            state.unlock()

            let result = commit(carried)

            state.lock()
            switch result {
            case .success:
                carried.removeAll(keepingCapacity: true)
                durable = upTo
                var ready: [@Sendable () -> Void] = []
                waiters.removeAll { waiter in
                    guard waiter.ticket <= upTo else { return false }
                    ready.append(waiter.callback)
                    return true
                }
                let recovered = failedAt != nil
                failedAt = nil
                state.unlock()
                if recovered {
                    failing.store(false, ordering: .relaxed)
                    logger.notice("store recovered")
                }
                for callback in ready { callback() }
                state.lock()
            case .failure(let error):
                let firstFailure = failedAt == nil
                failedAt = monotonicNanoseconds()
                if firstFailure {
                    state.unlock()
                    failing.store(true, ordering: .relaxed)
                    logger.error(
                        "store commit failed; changes are kept and retried every 250 ms",
                        metadata: ["store.error": "\(error)", "store.pending_changes": "\(carried.count)"])
                    state.lock()
                }
            }
        }
        let changes = issued
        state.unlock()

        databaseLock.withLock {
            writer?.close()
            writer = nil
        }
        directoryLock.release()
        logger.info(
            "store closed",
            metadata: ["store.changes": "\(changes)", "store.rows_written": "\(rowsWritten)", "store.commits": "\(batchesCommitted)"])
    }

    /// Applies `operations` in one transaction; an empty batch (everything elided) writes nothing.
    private func commit(_ operations: [Operation]) -> Result<Void, StoreError> {
        if operations.isEmpty { return .success(()) }
        let wallNow = wallClock()
        let offset = wallNow - Int64(clamping: clock())
        var reads: [() -> Void] = []
        let result = databaseLock.withLock { () -> Result<Void, StoreError> in
            guard let writer else { return .failure(.closed(path: databasePath)) }
            do throws(StoreError) {
                writer.wallNow = wallNow
                let rows = try writer.apply(operations, wallOffset: offset)
                rowCount.add(rows, ordering: .relaxed)
                batchCount.add(1, ordering: .relaxed)
                retainedCount.store(writer.retainedRows, ordering: .relaxed)
                reads = writer.afterCommit
                writer.afterCommit.removeAll()
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        // Reads made within the batch go out once it is committed, with no lock held.
        for read in reads { read() }
        return result
    }

    // MARK: Load

    /// Removes what expired while the broker was down (sessions with their rows, queued and
    /// retained messages), then reads everything back with expiry in the broker's clock.
    public func load(memoryQueueLimit: Int = 0, retainedMemoryLimit: Int = 0) throws(StoreError) -> StoredState {
        let now = wallClock()
        let clockNow = clock()
        let offset = now - Int64(clamping: clockNow)
        var expiredWills: [(sessionID: Int, will: Will)] = []
        var spilled: [Int: SpilledQueue] = [:]
        var retainedOnDisk = false
        let dump = try databaseLock.withLock { () throws(StoreError) -> StoreDump in
            guard let writer else { throw .closed(path: databasePath) }
            try writer.transaction { () throws(StoreError) in
                let expiredAny = "disconnected_at IS NOT NULL AND expiry != 4294967295 AND disconnected_at + expiry * 1000 <= \(now)"
                // Those with a will stay until the broker has published it and deletes them
                // (`deleteSession`), so a crash right after this start cannot lose the will.
                let expired = expiredAny + " AND will IS NULL"
                let database = writer.database
                // Their wills are due: handed to the broker before the rows go.
                let wills = try database.prepare("SELECT id, client_id, will, will_delay FROM sessions WHERE will IS NOT NULL AND \(expiredAny)")
                defer { wills.finalize() }
                while try wills.step("reading the wills of expired sessions") {
                    guard let blob = wills.blob(2) else { continue }
                    do throws(DecodeFailure) {
                        let will = try RecordCoding.decodeWill(blob, delay: wills.optionalInt64(3).map { UInt32(clamping: $0) })
                        expiredWills.append((Int(wills.int64(0)), will))
                    } catch {
                        throw .corrupt(path: database.path, detail: "the will of session \(wills.text(1)) does not decode: \(error.detail)")
                    }
                }
                for table in ["subscriptions", "queue", "inbound"] {
                    try database.execute(
                        "DELETE FROM \(table) WHERE session_id IN (SELECT id FROM sessions WHERE \(expired))",
                        "removing expired sessions")
                }
                try database.execute("DELETE FROM sessions WHERE \(expired)", "removing expired sessions")
                // Only those never sent: a message already sent must be finished (resent with
                // DUP, or its PUBREL) whatever its expiry [MQTT-4.4.0-1].
                try database.execute("DELETE FROM queue WHERE expires_at <= \(now) AND packet_id = 0", "removing expired queued messages")
                try database.execute("DELETE FROM retained WHERE expires_at <= \(now)", "removing expired retained messages")
            }
            let limit = memoryQueueLimit > 0 ? memoryQueueLimit : nil
            let retainedRows = Int(try writer.database.integer("SELECT COUNT(*) FROM retained", "counting retained messages") ?? 0)
            retainedCount.store(retainedRows, ordering: .relaxed)
            writer.retainedRows = retainedRows
            retainedOnDisk = retainedMemoryLimit > 0 && retainedRows > retainedMemoryLimit
            let dump = try StoreReader.read(
                writer.database, clock: { BatchWriter.deadline(fromWall: $0, offset: offset) }, queueLimit: limit,
                retained: !retainedOnDisk)
            if let limit {
                let summary = try writer.database.prepare(
                    """
                    SELECT session_id, COUNT(*), SUM(length(message)), MIN(seq), MAX(seq) FROM
                    (SELECT session_id, seq, message, packet_id, ROW_NUMBER() OVER (PARTITION BY session_id ORDER BY seq) AS n FROM queue)
                    WHERE n > \(limit) AND packet_id = 0 GROUP BY session_id
                    """)
                defer { summary.finalize() }
                while try summary.step("counting queued messages left on disk") {
                    spilled[Int(summary.int64(0))] = SpilledQueue(
                        count: Int(summary.int64(1)), bytes: Int(summary.int64(2)),
                        fromSeq: UInt64(bitPattern: summary.int64(3)), lastSeq: UInt64(bitPattern: summary.int64(4)))
                }
            }
            return dump
        }
        var stored = StoredState()
        stored.sessions.reserveCapacity(dump.sessions.count)
        let ended = Set(expiredWills.map(\.sessionID))
        for session in dump.sessions {
            let id = session.record.id
            if ended.contains(id) { continue }
            stored.sessions.append(session.record)
            if !session.subscriptions.isEmpty { stored.subscriptions[id] = session.subscriptions }
            if !session.queue.isEmpty { stored.queues[id] = session.queue.map(\.record) }
            if !session.inbound.isEmpty { stored.inbound[id] = session.inbound }
        }
        stored.retained = dump.retained.map(\.message)
        stored.expiredWills = expiredWills
        stored.spilled = spilled
        stored.retainedOnDisk = retainedOnDisk
        return stored
    }

    // MARK: Paging

    public func readQueue(sessionID: Int, fromSeq: UInt64, limit: Int, _ completion: @escaping @Sendable ([QueuedDelivery]?) -> Void) {
        whenDurable(lastTicket) { [self] in
            // Not on the writer thread (it would stall commits) nor on the caller's event loop.
            DispatchQueue.global().async { [self] in
                completion(pageOfQueue(sessionID: sessionID, fromSeq: fromSeq, limit: limit))
            }
        }
    }

    /// nil if the page could not be read (closed, I/O error): the caller keeps its count and tries again later.
    private func pageOfQueue(sessionID: Int, fromSeq: UInt64, limit: Int) -> [QueuedDelivery]? {
        let offset = wallClock() - Int64(clamping: clock())
        return databaseLock.withLock { () -> [QueuedDelivery]? in
            guard let writer else { return nil }
            do throws(StoreError) {
                let statement = try writer.database.prepare(
                    """
                    SELECT \(StoreReader.queueColumns) FROM queue
                    WHERE session_id = \(sessionID) AND seq >= \(Int64(bitPattern: fromSeq)) AND packet_id = 0
                    ORDER BY seq LIMIT \(limit)
                    """)
                defer { statement.finalize() }
                var page: [QueuedDelivery] = []
                while try statement.step("reading queued messages back") {
                    let (record, _) = try StoreReader.queueRow(statement, database: writer.database) {
                        BatchWriter.deadline(fromWall: $0, offset: offset)
                    }
                    page.append(record.delivery)
                }
                return page
            } catch {
                logger.error("could not read queued messages back", metadata: ["store.error": "\(error)", "session_id": "\(sessionID)"])
                return nil
            }
        }
    }
}
