import MQTTCodec
import NIOCore
import RoostCore

/// Everything in a database, as `roost db dump` shows it: times stay wall-clock milliseconds
/// (Unix epoch), and nothing expired is removed.
public struct StoreDump: Sendable {
    public struct Session: Sendable {
        public var record: SessionRecord
        /// In filter order: (subscription as the client sent it, subscription identifier).
        public var subscriptions: [(Subscription, Int?)]
        /// In `seq` order.
        public var queue: [QueuedMessage]
        public var inbound: [UInt16]
    }

    public struct QueuedMessage: Sendable {
        /// The row; its message's `expiresAt` is nil: see `expiresAt`.
        public var record: QueueRecord
        /// Wall-clock milliseconds; nil if never.
        public var expiresAt: Int64?
    }

    public struct RetainedMessage: Sendable {
        /// The message; its `expiresAt` is nil: see `expiresAt`.
        public var message: Message
        /// Wall-clock milliseconds; nil if never.
        public var expiresAt: Int64?
    }

    /// In session id order.
    public var sessions: [Session] = []
    /// In topic order.
    public var retained: [RetainedMessage] = []
}

/// Reads a whole database. Used by `SQLiteStore.load()` and by the read-only inspection.
enum StoreReader {
    /// Reads every session with its rows, and every retained message. Rows of sessions that do
    /// not exist are skipped. `clock` turns a wall-clock expiry into the `expiresAt` of the
    /// message (the broker's clock; nil for the dump).
    ///
    /// `queueLimit`: per session, only the first `queueLimit` queued rows (by `seq`) and the rows
    /// that were sent (in flight) are read; the rest stay on disk (paged in later).
    static func read(_ database: Database, clock: (Int64) -> UInt64?, queueLimit: Int? = nil, retained readRetained: Bool = true) throws(StoreError) -> StoreDump {
        var dump = StoreDump()
        var index: [Int: Int] = [:]

        let sessions = try database.prepare(
            "SELECT id, client_id, expiry, will, will_delay, disconnected_at, will_due_at FROM sessions ORDER BY id")
        defer { sessions.finalize() }
        while try sessions.step("reading sessions") {
            let id = Int(sessions.int64(0))
            let clientID = sessions.text(1)
            var will: Will?
            if let blob = sessions.blob(3) {
                let delay = sessions.optionalInt64(4).map { UInt32(clamping: $0) }
                do throws(DecodeFailure) {
                    will = try RecordCoding.decodeWill(blob, delay: delay)
                } catch {
                    throw .corrupt(path: database.path, detail: "the will of session \(clientID) does not decode: \(error.detail)")
                }
            }
            let record = SessionRecord(
                id: id, clientID: clientID, expiryInterval: UInt32(clamping: sessions.int64(2)), will: will,
                disconnectedAt: sessions.optionalInt64(5), willDueAt: sessions.optionalInt64(6))
            index[id] = dump.sessions.count
            dump.sessions.append(StoreDump.Session(record: record, subscriptions: [], queue: [], inbound: []))
        }

        let subscriptions = try database.prepare(
            "SELECT session_id, filter, options, subscription_id FROM subscriptions ORDER BY session_id, filter")
        defer { subscriptions.finalize() }
        while try subscriptions.step("reading subscriptions") {
            guard let position = index[Int(subscriptions.int64(0))] else { continue }
            let filter = subscriptions.text(1)
            let subscription: Subscription
            do throws(DecodeFailure) {
                subscription = try RecordCoding.subscription(filter: filter, options: subscriptions.int64(2))
            } catch {
                throw .corrupt(path: database.path, detail: "invalid \(error.detail)")
            }
            dump.sessions[position].subscriptions.append((subscription, subscriptions.optionalInt64(3).map { Int($0) }))
        }

        let columns = queueColumns
        let queue = try database.prepare(
            queueLimit.map { limit in
                """
                SELECT \(columns) FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY session_id ORDER BY seq) AS n FROM queue)
                WHERE n <= \(limit) OR packet_id != 0 ORDER BY session_id, seq
                """
            } ?? "SELECT \(columns) FROM queue ORDER BY session_id, seq")
        defer { queue.finalize() }
        while try queue.step("reading queued messages") {
            guard let position = index[Int(queue.int64(0))] else { continue }
            let (record, expiresAt) = try queueRow(queue, database: database, clock: clock)
            dump.sessions[position].queue.append(StoreDump.QueuedMessage(record: record, expiresAt: expiresAt))
        }

        let inbound = try database.prepare("SELECT session_id, packet_id FROM inbound ORDER BY session_id, packet_id")
        defer { inbound.finalize() }
        while try inbound.step("reading inbound QoS 2 ids") {
            guard let position = index[Int(inbound.int64(0))] else { continue }
            dump.sessions[position].inbound.append(UInt16(clamping: inbound.int64(1)))
        }

        guard readRetained else { return dump }
        let retained = try database.prepare("SELECT topic, message, expires_at FROM retained ORDER BY topic")
        defer { retained.finalize() }
        while try retained.step("reading retained messages") {
            let expiresAt = retained.optionalInt64(2)
            do throws(DecodeFailure) {
                let message = try RecordCoding.decodeMessage(retained.blob(1) ?? ByteBuffer(), expiresAt: expiresAt.flatMap(clock))
                dump.retained.append(StoreDump.RetainedMessage(message: message, expiresAt: expiresAt))
            } catch {
                throw .corrupt(path: database.path, detail: "the retained message of \(retained.text(0)) does not decode: \(error.detail)")
            }
        }
        return dump
    }

    /// The columns `queueRow` reads, in its order.
    static let queueColumns = "session_id, seq, message, expires_at, qos, retain, subscription_ids, shared_group, packet_id, released"

    /// One row of `SELECT \(queueColumns) FROM queue`.
    static func queueRow(_ queue: Statement, database: Database, clock: (Int64) -> UInt64?) throws(StoreError) -> (QueueRecord, Int64?) {
        let sessionID = Int(queue.int64(0))
        let seq = UInt64(bitPattern: queue.int64(1))
        let expiresAt = queue.optionalInt64(3)
        do throws(DecodeFailure) {
            let message = try RecordCoding.decodeMessage(queue.blob(2) ?? ByteBuffer(), expiresAt: expiresAt.flatMap(clock))
            guard let qos = QoS(rawValue: UInt8(clamping: queue.int64(4))) else {
                throw DecodeFailure(detail: "QoS \(queue.int64(4))")
            }
            let delivery = QueuedDelivery(
                message: message, qos: qos, retain: queue.int64(5) != 0,
                subscriptionIDs: try RecordCoding.decodeSubscriptionIDs(queue.blob(6)),
                sharedGroup: queue.optionalText(7), seq: seq)
            let record = QueueRecord(
                sessionID: sessionID, seq: seq, delivery: delivery, packetID: UInt16(clamping: queue.int64(8)),
                released: queue.int64(9) != 0)
            return (record, expiresAt)
        } catch {
            throw .corrupt(path: database.path, detail: "queued message \(seq) of session \(sessionID) does not decode: \(error.detail)")
        }
    }
}
