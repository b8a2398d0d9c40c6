import MQTTCodec

// The durable-store port. The broker (RoostServer) submits changes as they happen in memory;
// an implementation (RoostPersistence: SQLite) writes them in group commits on its own thread
// and reports when a ticket is durable. The broker holds the acknowledgements that promise
// durability (PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, CONNACK) until then.

/// A session as stored. `id` is the broker's session id, stable across restarts.
public struct SessionRecord: Sendable, Equatable {
    public var id: Int
    public var clientID: String
    /// Session Expiry Interval in seconds (0xFFFFFFFF: never).
    public var expiryInterval: UInt32
    /// The will of the connected client, or the pending (delayed) will of an offline session.
    public var will: Will?
    /// Wall-clock milliseconds (Unix epoch) when the session went offline; nil while a client is
    /// connected (after a crash: the session counts as offline from the restart).
    public var disconnectedAt: Int64?
    /// Wall-clock milliseconds when the pending will of an offline session is due; nil when no
    /// will is pending.
    public var willDueAt: Int64?

    public init(id: Int, clientID: String, expiryInterval: UInt32, will: Will? = nil, disconnectedAt: Int64? = nil, willDueAt: Int64? = nil) {
        self.id = id
        self.clientID = clientID
        self.expiryInterval = expiryInterval
        self.will = will
        self.disconnectedAt = disconnectedAt
        self.willDueAt = willDueAt
    }
}

/// One outgoing QoS 1/2 message of a session, queued or in flight.
public struct QueueRecord: Sendable {
    public var sessionID: Int
    /// Position in the session's queue; increases with every stored delivery, never reused.
    public var seq: UInt64
    /// The message and how it goes to this session (`delivery.seq == seq`).
    public var delivery: QueuedDelivery
    /// The packet id it was last sent with; 0 if it was never sent.
    public var packetID: UInt16
    /// QoS 2 only: PUBREC received and PUBREL sent; waiting for PUBCOMP.
    public var released: Bool

    public init(sessionID: Int, seq: UInt64, delivery: QueuedDelivery, packetID: UInt16 = 0, released: Bool = false) {
        self.sessionID = sessionID
        self.seq = seq
        self.delivery = delivery
        self.packetID = packetID
        self.released = released
    }
}

/// One change to the durable state. Changes of one session are submitted in the order they
/// happen (under the session's lock); the store applies them in submission order.
public enum StoreChange: Sendable {
    /// Inserts or replaces the session row (matched by `id`; `clientID` is unique).
    case putSession(SessionRecord)
    /// Removes the session with its subscriptions, queue and inbound QoS 2 ids.
    case deleteSession(id: Int)
    /// Clean start on a kept session: removes its subscriptions, queue and inbound ids.
    case clearSession(id: Int)
    /// Inserts or replaces a subscription; the key is `subscription.filter` as the client sent
    /// it (with `$share/group/` for shared subscriptions).
    case putSubscription(sessionID: Int, subscription: Subscription, subscriptionID: Int?)
    case deleteSubscription(sessionID: Int, filter: String)
    /// A QoS 1/2 delivery queued for a session (`delivery.seq` is its position).
    case enqueue(sessionID: Int, delivery: QueuedDelivery)
    /// The delivery at `seq` was sent with `packetID`.
    case sent(sessionID: Int, seq: UInt64, packetID: UInt16)
    /// QoS 2: the client sent PUBREC for the delivery at `seq`.
    case released(sessionID: Int, seq: UInt64)
    /// The delivery at `seq` is finished (acknowledged, expired, dropped or handed over).
    case dequeue(sessionID: Int, seq: UInt64)
    /// Inbound QoS 2: PUBLISH received, the id waits for PUBREL.
    case addInbound(sessionID: Int, packetID: UInt16)
    case removeInbound(sessionID: Int, packetID: UInt16)
    /// Sets the retained message of `message.topic`.
    case putRetained(Message)
    case deleteRetained(topic: String)
    /// Writes nothing: reads the unexpired retained messages matching `filter` (at most
    /// `limit`) as of this point in the order of changes, and hands them to `deliver` (on the
    /// store's thread) once the batch is committed. For retained messages kept on disk only.
    case readRetained(filter: String, limit: Int, deliver: @Sendable ([Message]) -> Void)
}

/// Everything a store holds, as loaded at start.
public struct StoredState: Sendable {
    public var sessions: [SessionRecord] = []
    /// Per session id: (subscription as the client sent it, subscription identifier).
    public var subscriptions: [Int: [(Subscription, Int?)]] = [:]
    /// Per session id, in `seq` order.
    public var queues: [Int: [QueueRecord]] = [:]
    /// Per session id: inbound QoS 2 packet ids awaiting PUBREL.
    public var inbound: [Int: [UInt16]] = [:]
    public var retained: [Message] = []
    /// Wills of sessions that ended while the broker was down: they are due (a will goes out
    /// at the latest when its session ends), so the broker publishes them at start, then
    /// submits `deleteSession` for each (their rows stay until then; they are not in `sessions`).
    public var expiredWills: [(sessionID: Int, will: Will)] = []
    /// Per session id: queued deliveries left on disk by `load(memoryQueueLimit:)`.
    public var spilled: [Int: SpilledQueue] = [:]
    /// More retained messages than `retainedMemoryLimit`: none were read (`retained` is empty);
    /// they stay on disk and are read with `.readRetained`.
    public var retainedOnDisk = false

    public init() {}
}

/// Queued deliveries of a session that stay on disk until the queue in memory runs low.
public struct SpilledQueue: Sendable, Equatable {
    public var count: Int
    /// Approximate (stored size of the messages).
    public var bytes: Int
    public var fromSeq: UInt64
    public var lastSeq: UInt64

    public init(count: Int, bytes: Int, fromSeq: UInt64, lastSeq: UInt64) {
        self.count = count
        self.bytes = bytes
        self.fromSeq = fromSeq
        self.lastSeq = lastSeq
    }
}

/// How hard the store pushes each commit to the disk.
public enum FsyncMode: String, Sendable, CaseIterable {
    /// Every commit is synced: survives power loss and OS crashes.
    case full
    /// Synced at checkpoints only: survives a crash of the process (kill -9), not of the machine.
    case normal
    /// Never synced: the OS writes when it likes. Survives a process crash (the data is in the
    /// page cache), but a power loss can lose recent commits or the whole database.
    case off
}

/// Counters of a store, for `$SYS` and logs.
public struct StoreStatistics: Sendable, Equatable {
    /// Changes submitted.
    public var changes: Int
    /// Rows inserted, updated or deleted on disk (changes cancelled within a batch write none).
    public var rowsWritten: Int
    /// Transactions committed.
    public var commits: Int
    /// Retained messages on disk.
    public var retained: Int

    public init(changes: Int = 0, rowsWritten: Int = 0, commits: Int = 0, retained: Int = 0) {
        self.changes = changes
        self.rowsWritten = rowsWritten
        self.commits = commits
        self.retained = retained
    }
}

/// A durable store. Every method is callable from any thread.
public protocol DurableStore: AnyObject, Sendable {
    /// Reads everything back. Sessions, queued messages and retained messages that expired
    /// while the broker was down are removed (and not returned). Message expiry deadlines come
    /// back in the broker's monotonic clock. Called once, before the broker serves.
    /// `memoryQueueLimit` > 0: per session, only that many queued deliveries (plus those in
    /// flight) are read; the rest are counted in `spilled` and read later with `readQueue`.
    /// `retainedMemoryLimit` > 0: with more retained messages than that, none are read
    /// (`retainedOnDisk`).
    func load(memoryQueueLimit: Int, retainedMemoryLimit: Int) throws -> StoredState

    /// Reads up to `limit` queued deliveries of a session that were never sent, with
    /// `seq >= fromSeq`, in order, once everything submitted so far is durable; calls
    /// `completion` on some thread (not an event loop's); nil if the page could not be read.
    func readQueue(sessionID: Int, fromSeq: UInt64, limit: Int, _ completion: @escaping @Sendable ([QueuedDelivery]?) -> Void)

    /// Queues a change for the next group commit and returns its ticket. Never blocks on I/O;
    /// cheap enough to call under a session lock.
    @discardableResult
    func submit(_ change: StoreChange) -> UInt64

    /// The ticket of the most recent `submit`.
    var lastTicket: UInt64 { get }

    /// Changes submitted and not yet durable: connections that keep adding to a large backlog
    /// without waiting for acks (QoS 0 retained floods) stop being read until it shrinks.
    var backlog: Int { get }

    /// Calls `callback` (on the store's own thread) once every change up to `ticket` is durable.
    /// At once if it already is.
    func whenDurable(_ ticket: UInt64, _ callback: @escaping @Sendable () -> Void)

    /// True while commits fail (disk full, I/O error). Submitted changes are kept and retried;
    /// the broker stops accepting new messages that would need storing until it clears.
    var isFailing: Bool { get }

    /// Commits what is pending and closes. Later submits are ignored.
    func close()

    var statistics: StoreStatistics { get }
}
