import MQTTCodec
import NIOCore
import RoostCore

/// Applies batches of operations to the database, each batch in one transaction, with
/// statements prepared once and reused.
///
/// Not thread-safe: the store calls it under its database lock.
final class BatchWriter {
    let database: Database
    private let begin: Statement
    private let commit: Statement
    private let rollback: Statement
    private let putSession: Statement
    private let otherSessionOfClient: Statement
    private let deleteSession: Statement
    private let deleteSubscriptionsOfSession: Statement
    private let deleteQueueOfSession: Statement
    private let deleteInboundOfSession: Statement
    private let putSubscription: Statement
    private let deleteSubscription: Statement
    private let enqueue: Statement
    private let sent: Statement
    private let released: Statement
    private let dequeue: Statement
    private let addInbound: Statement
    private let removeInbound: Statement
    private let putRetained: Statement
    private let deleteRetained: Statement
    private let retainedExists: Statement
    private let retainedInRange: Statement
    private let allRetained: Statement
    /// Rows in `retained` (kept up to date by every batch).
    var retainedRows = 0
    /// Reads done within the batch, handed over once it is committed.
    var afterCommit: [() -> Void] = []
    /// Wall-clock ms of the batch being applied (what "expired" means for reads).
    var wallNow: Int64 = 0
    /// Messages are encoded here before they are bound (SQLite copies them).
    private var scratch = ByteBuffer()

    init(database: Database) throws(StoreError) {
        self.database = database
        begin = try database.prepare("BEGIN IMMEDIATE")
        commit = try database.prepare("COMMIT")
        rollback = try database.prepare("ROLLBACK")
        putSession = try database.prepare(Schema.SQL.putSession)
        otherSessionOfClient = try database.prepare(Schema.SQL.otherSessionOfClient)
        deleteSession = try database.prepare(Schema.SQL.deleteSession)
        deleteSubscriptionsOfSession = try database.prepare(Schema.SQL.deleteSubscriptionsOfSession)
        deleteQueueOfSession = try database.prepare(Schema.SQL.deleteQueueOfSession)
        deleteInboundOfSession = try database.prepare(Schema.SQL.deleteInboundOfSession)
        putSubscription = try database.prepare(Schema.SQL.putSubscription)
        deleteSubscription = try database.prepare(Schema.SQL.deleteSubscription)
        enqueue = try database.prepare(Schema.SQL.enqueue)
        sent = try database.prepare(Schema.SQL.sent)
        released = try database.prepare(Schema.SQL.released)
        dequeue = try database.prepare(Schema.SQL.dequeue)
        addInbound = try database.prepare(Schema.SQL.addInbound)
        removeInbound = try database.prepare(Schema.SQL.removeInbound)
        putRetained = try database.prepare(Schema.SQL.putRetained)
        deleteRetained = try database.prepare(Schema.SQL.deleteRetained)
        retainedExists = try database.prepare(Schema.SQL.retainedExists)
        retainedInRange = try database.prepare(Schema.SQL.retainedInRange)
        allRetained = try database.prepare(Schema.SQL.allRetained)
        retainedRows = Int(try database.integer(Schema.SQL.countRetained, "counting retained messages") ?? 0)
    }

    /// Finalizes the statements and closes the database (checkpointing the WAL).
    func close() {
        for statement in [
            begin, commit, rollback, putSession, otherSessionOfClient, deleteSession, deleteSubscriptionsOfSession,
            deleteQueueOfSession, deleteInboundOfSession, putSubscription, deleteSubscription, enqueue, sent, released,
            dequeue, addInbound, removeInbound, putRetained, deleteRetained, retainedExists, retainedInRange, allRetained,
        ] {
            statement.finalize()
        }
        database.close()
    }

    /// Runs `body` in one `BEGIN IMMEDIATE ... COMMIT`; rolls back if anything fails.
    func transaction<T>(_ body: () throws(StoreError) -> T) throws(StoreError) -> T {
        try begin.run("beginning a transaction")
        do throws(StoreError) {
            let result = try body()
            try commit.run("committing a transaction")
            return result
        } catch {
            // Some errors (SQLITE_FULL, SQLITE_IOERR) may already have rolled back.
            if !database.isAutocommit { _ = try? rollback.run("rolling back a transaction") }
            throw error
        }
    }

    /// Applies `operations` in one transaction and returns the rows written.
    /// `wallOffset` turns the broker's clock into wall-clock milliseconds (`wall = clock + offset`).
    func apply(_ operations: [Operation], wallOffset: Int64) throws(StoreError) -> Int {
        let retainedBefore = retainedRows
        afterCommit.removeAll()
        do throws(StoreError) {
            return try transaction { () throws(StoreError) -> Int in
                var rows = 0
                for operation in operations {
                    rows += try apply(operation, wallOffset: wallOffset)
                }
                return rows
            }
        } catch {
            retainedRows = retainedBefore
            afterCommit.removeAll()
            throw error
        }
    }

    private func apply(_ operation: Operation, wallOffset: Int64) throws(StoreError) -> Int {
        switch operation {
        case .enqueue(let record):
            return try write(record, wallOffset: wallOffset)
        case .change(let change):
            return try apply(change, wallOffset: wallOffset)
        }
    }

    private func apply(_ change: StoreChange, wallOffset: Int64) throws(StoreError) -> Int {
        switch change {
        case .putSession(let record):
            return try write(record)
        case .deleteSession(let id):
            return try removeSession(id)
        case .clearSession(let id):
            return try clearSession(id)
        case .putSubscription(let sessionID, let subscription, let subscriptionID):
            putSubscription.reset()
            putSubscription.bind(1, sessionID)
            putSubscription.bind(2, subscription.filter)
            putSubscription.bind(3, RecordCoding.options(of: subscription))
            putSubscription.bind(4, subscriptionID.map(Int64.init))
            return try putSubscription.run("storing a subscription")
        case .deleteSubscription(let sessionID, let filter):
            deleteSubscription.reset()
            deleteSubscription.bind(1, sessionID)
            deleteSubscription.bind(2, filter)
            return try deleteSubscription.run("deleting a subscription")
        case .enqueue(let sessionID, let delivery):
            return try write(QueueRecord(sessionID: sessionID, seq: delivery.seq, delivery: delivery), wallOffset: wallOffset)
        case .sent(let sessionID, let seq, let packetID):
            sent.reset()
            sent.bind(1, sessionID)
            sent.bind(2, Int64(bitPattern: seq))
            sent.bind(3, Int(packetID))
            return try sent.run("marking a queued message sent")
        case .released(let sessionID, let seq):
            released.reset()
            released.bind(1, sessionID)
            released.bind(2, Int64(bitPattern: seq))
            return try released.run("marking a queued message released")
        case .dequeue(let sessionID, let seq):
            dequeue.reset()
            dequeue.bind(1, sessionID)
            dequeue.bind(2, Int64(bitPattern: seq))
            return try dequeue.run("deleting a queued message")
        case .addInbound(let sessionID, let packetID):
            addInbound.reset()
            addInbound.bind(1, sessionID)
            addInbound.bind(2, Int(packetID))
            return try addInbound.run("storing an inbound QoS 2 id")
        case .removeInbound(let sessionID, let packetID):
            removeInbound.reset()
            removeInbound.bind(1, sessionID)
            removeInbound.bind(2, Int(packetID))
            return try removeInbound.run("deleting an inbound QoS 2 id")
        case .putRetained(let message):
            scratch.clear()
            RecordCoding.encode(message, into: &scratch)
            retainedExists.reset()
            retainedExists.bind(1, message.topic)
            if !(try retainedExists.step("looking up a retained message")) { retainedRows += 1 }
            retainedExists.reset()
            putRetained.reset()
            putRetained.bind(1, message.topic)
            putRetained.bind(2, scratch)
            putRetained.bind(3, Self.wallClock(message.expiresAt, offset: wallOffset))
            return try putRetained.run("storing a retained message")
        case .deleteRetained(let topic):
            deleteRetained.reset()
            deleteRetained.bind(1, topic)
            let rows = try deleteRetained.run("deleting a retained message")
            retainedRows -= rows
            return rows
        case .readRetained(let filter, let limit, let deliver):
            let messages = try readRetained(filter: filter, limit: limit, wallOffset: wallOffset)
            afterCommit.append { deliver(messages) }
            return 0
        }
    }

    /// The unexpired retained messages matching `filter`: a range scan over the filter's literal
    /// prefix (everything before its first wildcard), then the full match.
    private func readRetained(filter: String, limit: Int, wallOffset: Int64) throws(StoreError) -> [Message] {
        var prefix = Substring(filter)
        if let wildcard = filter.firstIndex(where: { $0 == "+" || $0 == "#" }) { prefix = filter[..<wildcard] }
        let statement: Statement
        if prefix.isEmpty {
            statement = allRetained
            statement.reset()
            statement.bind(1, wallNow)
        } else {
            statement = retainedInRange
            statement.reset()
            statement.bind(1, String(prefix))
            // The smallest string above every string that starts with the prefix.
            statement.bind(2, String(prefix) + "\u{10FFFF}")
            statement.bind(3, wallNow)
        }
        defer { statement.reset() }
        var messages: [Message] = []
        while messages.count < limit, try statement.step("reading retained messages") {
            let topic = statement.text(0)
            guard Topic.matches(filter: filter, name: topic) else { continue }
            do throws(DecodeFailure) {
                let expiresAt = statement.optionalInt64(2).map { Self.deadline(fromWall: $0, offset: wallOffset) }
                messages.append(try RecordCoding.decodeMessage(statement.blob(1) ?? ByteBuffer(), expiresAt: expiresAt))
            } catch {
                throw .corrupt(path: database.path, detail: "the retained message of \(topic) does not decode: \(error.detail)")
            }
        }
        return messages
    }

    private func write(_ record: SessionRecord) throws(StoreError) -> Int {
        // The client id is unique: a previous session of the same client under another id goes
        // first, with its rows (the broker normally deletes it itself).
        otherSessionOfClient.reset()
        otherSessionOfClient.bind(1, record.clientID)
        otherSessionOfClient.bind(2, record.id)
        var others: [Int] = []
        while try otherSessionOfClient.step("looking up a session by client id") {
            others.append(Int(otherSessionOfClient.int64(0)))
        }
        otherSessionOfClient.reset()
        var rows = 0
        for other in others { rows += try removeSession(other) }

        var delay: UInt32?
        if let will = record.will {
            scratch.clear()
            delay = RecordCoding.encode(will, into: &scratch)
        }
        putSession.reset()
        putSession.bind(1, record.id)
        putSession.bind(2, record.clientID)
        putSession.bind(3, Int64(record.expiryInterval))
        putSession.bind(4, record.will == nil ? nil : scratch)
        putSession.bind(5, delay.map(Int64.init))
        putSession.bind(6, record.disconnectedAt)
        putSession.bind(7, record.willDueAt)
        return rows + (try putSession.run("storing a session"))
    }

    private func clearSession(_ id: Int) throws(StoreError) -> Int {
        var rows = 0
        for statement in [deleteSubscriptionsOfSession, deleteQueueOfSession, deleteInboundOfSession] {
            statement.reset()
            statement.bind(1, id)
            rows += try statement.run("clearing a session")
        }
        return rows
    }

    private func removeSession(_ id: Int) throws(StoreError) -> Int {
        let rows = try clearSession(id)
        deleteSession.reset()
        deleteSession.bind(1, id)
        return rows + (try deleteSession.run("deleting a session"))
    }

    private func write(_ record: QueueRecord, wallOffset: Int64) throws(StoreError) -> Int {
        let delivery = record.delivery
        scratch.clear()
        RecordCoding.encode(delivery.message, into: &scratch)
        enqueue.reset()
        enqueue.bind(1, record.sessionID)
        enqueue.bind(2, Int64(bitPattern: record.seq))
        enqueue.bind(3, scratch)
        enqueue.bind(4, Self.wallClock(delivery.message.expiresAt, offset: wallOffset))
        enqueue.bind(5, Int(delivery.qos.rawValue))
        enqueue.bind(6, delivery.retain ? 1 : 0)
        enqueue.bind(7, RecordCoding.encodeSubscriptionIDs(delivery.subscriptionIDs))
        enqueue.bind(8, delivery.sharedGroup)
        enqueue.bind(9, Int(record.packetID))
        enqueue.bind(10, record.released ? 1 : 0)
        return try enqueue.run("storing a queued message")
    }

    /// The inverse of `wallClock(_:offset:)`: a wall-clock deadline in the broker's clock
    /// (0 if it lies before the clock's start).
    static func deadline(fromWall wall: Int64, offset: Int64) -> UInt64 {
        let deadline = wall - offset
        return deadline <= 0 ? 0 : UInt64(deadline)
    }

    /// A deadline of the broker's clock as wall-clock milliseconds; nil stays nil (never).
    static func wallClock(_ deadline: UInt64?, offset: Int64) -> Int64? {
        guard let deadline else { return nil }
        let (wall, overflow) = Int64(clamping: deadline).addingReportingOverflow(offset)
        return overflow ? Int64.max : wall
    }
}
