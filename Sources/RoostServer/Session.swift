import MQTTCodec
import NIOCore
import RoostCore
import Synchronization

/// A subscription as the session remembers it (to re-create routes and to answer UNSUBSCRIBE).
struct SubscriptionRecord: Sendable {
    var filter: String
    var group: String?
    var options: Subscription
    var subscriptionID: Int?
}

/// An MQTT session: it outlives connections. Its queue and in-flight state sit behind one lock,
/// so any event loop may deliver into it; only the owning connection's loop takes messages out
/// and writes them (a mailbox). The lock is held for a few instructions, never across I/O.
final class Session: @unchecked Sendable {
    struct Locked {
        var state: SessionState

        init(state: SessionState) {
            self.state = state
        }

        /// The connection that currently owns the session, nil while offline.
        var owner: Connection?
        var subscriptions: [String: SubscriptionRecord] = [:]
        /// Session Expiry Interval in seconds (0xFFFFFFFF: never).
        var expiryInterval: UInt32 = 0
        /// Set while a drain of the owner is scheduled, so deliveries wake it only once.
        var drainScheduled = false
        /// True while the durable store has rows for this session (expiry > 0 and a store).
        var persisted = false
        /// Bumped on every claim, attach and detach; timers and session ends of an older
        /// generation do nothing.
        var generation: UInt64 = 0
        /// Bumped by every CONNECT that wants this session; the latest claim wins [MQTT-3.1.4-3].
        var latestClaim: UInt64 = 0
        /// The will of the last connection, kept while a delayed will is pending. The message is
        /// built when it is published, so its expiry counts from then (3.1.3.2.4).
        var pendingWill: Will? {
            get { pendingWillBox?.value }
            set { pendingWillBox = newValue.map(Box.init) }
        }
        var pendingWillBox: Box<Will>? {
            get { rare?.pendingWillBox }
            set { if newValue != nil || rare != nil { ensureRare().pendingWillBox = newValue } }
        }
        var pendingWillPublisher: Int {
            get { rare?.pendingWillPublisher ?? 0 }
            set { if newValue != 0 || rare != nil { ensureRare().pendingWillPublisher = newValue } }
        }
        /// Timers of the offline session (will delay, session expiry), cancelled when a client
        /// claims the session, so a client that keeps reconnecting leaves no timers behind.
        var timers: [Scheduled<Void>] {
            get { rare?.timers ?? [] }
            set { if !newValue.isEmpty || rare != nil { ensureRare().timers = newValue } }
        }
        /// Wall-clock ms when the session went offline (stored with it, for expiry across restarts).
        var offlineSince: Int64 {
            get { rare?.offlineSince ?? 0 }
            set { if newValue != 0 || rare != nil { ensureRare().offlineSince = newValue } }
        }
        /// Who the last connection authenticated as, for read access checks; nil for a session
        /// restored from the store until its client connects again.
        var identity: ClientIdentity? = nil
        /// The authorizer that came with that connection's credentials (a token's claims).
        var clientAuthorizer: Box<any Authorizer>? {
            get { rare?.clientAuthorizer }
            set { if newValue != nil || rare != nil { ensureRare().clientAuthorizer = newValue } }
        }

        /// What a session needs only offline or with a token's authorizer, in one box made on
        /// first use (five fields inline cost every connected session 40 bytes).
        private var rare: Rare? = nil
        private final class Rare {
            var pendingWillBox: Box<Will>?
            var pendingWillPublisher = 0
            var timers: [Scheduled<Void>] = []
            var offlineSince: Int64 = 0
            var clientAuthorizer: Box<any Authorizer>?
        }
        private mutating func ensureRare() -> Rare {
            if let rare { return rare }
            let made = Rare()
            rare = made
            return made
        }
    }

    let id: Int
    let clientID: String
    let locked: Mutex<Locked>

    init(id: Int, clientID: String, state: SessionState) {
        self.id = id
        self.clientID = clientID
        self.locked = Mutex(Locked(state: state))
    }

    /// What became of one delivery.
    enum DeliveryResult {
        /// Queued; the owner (if any) already has a drain scheduled or the session is offline.
        /// `stored`: it went to the durable store too, so the publisher's ack must wait for it.
        case queued(stored: Bool)
        /// Queued; this connection must be woken to drain it.
        case wake(Connection, stored: Bool)
        case dropped(DropReason)
    }

    /// Queues a delivery (and submits it to the durable store if this session is stored and the
    /// delivery is QoS 1/2). Callable from any thread.
    func deliver(_ delivery: QueuedDelivery, stats: BrokerStats, store: (any DurableStore)?, bypassLimits: Bool = false) -> DeliveryResult {
        locked.withLock { inner -> DeliveryResult in
            let stored = inner.persisted && delivery.qos != .atMostOnce && store != nil
            if let reason = inner.state.enqueue(delivery, online: inner.owner != nil, bypassLimits: bypassLimits, stored: stored) {
                stats.dropped(reason)
                return .dropped(reason)
            }
            if stored {
                var numbered = delivery
                numbered.seq = inner.state.lastSeq
                store!.submit(.enqueue(sessionID: id, delivery: numbered))
            }
            guard let owner = inner.claimDrain() else { return .queued(stored: stored) }
            return .wake(owner, stored: stored)
        }
    }

    /// The row the store keeps for this session. Call under the lock.
    func record(_ inner: Locked, will: Will?, online: Bool, willDueAt: Int64? = nil) -> SessionRecord {
        SessionRecord(
            id: id, clientID: clientID, expiryInterval: inner.expiryInterval, will: will,
            disconnectedAt: online ? nil : inner.offlineSince, willDueAt: willDueAt)
    }

    var isOnline: Bool { locked.withLock { $0.owner != nil } }
}

extension Session.Locked {
    /// Keeps a timer of the offline session at `generation`; cancels it if that is already past.
    mutating func keep(_ timer: Scheduled<Void>, generation: UInt64) {
        if self.generation == generation { timers.append(timer) } else { timer.cancel() }
    }

    /// The owner, if it must be woken to drain (no drain is scheduled yet); marks one scheduled.
    mutating func claimDrain() -> Connection? {
        guard let owner, !drainScheduled else { return nil }
        drainScheduled = true
        return owner
    }

    mutating func cancelTimers() {
        for timer in timers { timer.cancel() }
        timers.removeAll()
    }
}
