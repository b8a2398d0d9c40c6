import Logging
import MQTTCodec
import NIOConcurrencyHelpers
import NIOCore
import RoostCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The broker's shared state: sessions by client id, the routing table and the retained
/// messages, each behind its own short lock. Connections call into it from their event loops.
public final class Broker: Sendable {
    public let settings: BrokerSettings
    let stats = BrokerStats()
    let router = Router()
    let retained = Mutex(RetainedTree<Message>())
    /// Set once retained messages outnumber `retained_memory_limit` (with a store): from then
    /// on they live on disk only (`$SYS` ones excepted) and SUBSCRIBE reads them from the store.
    let retainedOnDisk = Atomic<Bool>(false)
    let sessions = Mutex([String: Session]())
    /// Sockets accepted and not yet closed, every listener (for `max_connections`).
    let openSockets = Atomic<Int>(0)
    /// `max_connection_rate`'s bucket, made on first use.
    let connectionRate = NIOLockedValueBox<TokenBucket?>(nil)
    /// Recent login failures per client address (`auth_backoff_after`, `auth_backoff_max`).
    let loginFailures = NIOLockedValueBox(LoginFailures())
    /// How many addresses `loginFailures` holds, read without its lock: a CONNECT looks up (and
    /// formats) its address only when some login failed recently.
    let loginFailureRecords = Atomic<Int>(0)
    /// When each limit was last logged at warning level.
    let limitLogTimes = NIOLockedValueBox<[LimitTripped: UInt64]>([:])
    let nextSessionID = Atomic<Int>(1)
    private let nextClientNumber = Atomic<Int>(1)
    let logger: Logger
    let startTime = NIODeadline.now()
    /// Per event loop: the timing wheel of connect timeouts and keepalives, the connections.
    private let loopStates = NIOLockedValueBox<[ObjectIdentifier: LoopState]>([:])
    /// The broker's version string, published in `$SYS/broker/version`.
    public static let version = "0.1.0"

    /// Decides whether a CONNECT may proceed.
    let authenticator: any Authenticator
    /// Per-topic access control; nil allows everything (and costs nothing per message).
    let authorizer: (any Authorizer)?
    /// MQTT 5 enhanced authentication, by Authentication Method.
    let enhancedAuthenticators: [String: any EnhancedAuthenticator]
    /// Authenticators that decide later (JWT, HTTP), asked in order before `authenticator`.
    let deferredAuthenticators: [any DeferredAuthenticator]
    /// Set once a client got its own authorizer from its credentials (a token's claims): route
    /// resolution then checks read access even without a broker-wide authorizer.
    let clientAuthorizersInUse = Atomic<Bool>(false)
    /// The durable store; nil keeps everything in memory only.
    let store: (any DurableStore)?

    public init(
        settings: BrokerSettings, logger: Logger, clock: @escaping @Sendable () -> UInt64 = Broker.systemClock,
        authenticator: (any Authenticator)? = nil, authorizer: (any Authorizer)? = nil, store: (any DurableStore)? = nil,
        wallClock: @escaping @Sendable () -> Int64 = Broker.systemWallClock,
        enhancedAuthenticators: [any EnhancedAuthenticator] = [], deferredAuthenticators: [any DeferredAuthenticator] = []
    ) {
        self.deferredAuthenticators = deferredAuthenticators
        var methods: [String: any EnhancedAuthenticator] = [:]
        for authenticator in enhancedAuthenticators {
            for method in authenticator.methods { methods[method] = authenticator }
        }
        self.enhancedAuthenticators = methods
        self.settings = settings
        self.logger = logger
        self.clock = clock
        self.wallClock = wallClock
        self.authenticator = authenticator ?? AnonymousAuthenticator()
        self.authorizer = authorizer
        self.store = store
    }

    /// Unix time in milliseconds: the time base of what is stored (it survives restarts).
    let wallClock: @Sendable () -> Int64

    public static let systemWallClock: @Sendable () -> Int64 = {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }

    /// The clock of message expiry, in milliseconds of a monotonic clock. Injected in tests.
    let clock: @Sendable () -> UInt64

    /// Milliseconds of the monotonic clock, the time base of message and session expiry.
    func now() -> UInt64 { clock() }

    /// The real monotonic clock.
    public static let systemClock: @Sendable () -> UInt64 = { NIODeadline.now().uptimeNanoseconds / 1_000_000 }

    /// The state of `loop` (made on first use).
    func loopState(for loop: EventLoop) -> LoopState {
        loopStates.withLockedValue { states in
            if let state = states[ObjectIdentifier(loop)] { return state }
            let state = LoopState(loop: loop)
            states[ObjectIdentifier(loop)] = state
            return state
        }
    }

    func makeSessionID() -> Int { nextSessionID.add(1, ordering: .relaxed).oldValue }

    /// A new session's state with the configured limits. Stored sessions keep at most
    /// `queue_memory_limit` queued deliveries in memory; the rest wait on disk.
    func makeSessionState(receiveMaximum: Int) -> SessionState {
        var state = SessionState(
            receiveMaximum: receiveMaximum, maxQueuedMessages: settings.maxQueuedMessages,
            maxQueuedBytes: settings.maxQueuedBytes, queueQoS0WhileOffline: settings.queueQoS0Messages)
        if store != nil { state.memoryQueueLimit = settings.queueMemoryLimit }
        return state
    }

    func assignClientID() -> String {
        let number = nextClientNumber.add(1, ordering: .relaxed).oldValue
        return "roost-\(UInt32(truncatingIfNeeded: startTime.uptimeNanoseconds))-\(number)"
    }

    var sessionCount: Int { sessions.withLock { $0.count } }
    var retainedCount: Int {
        if retainedOnDisk.load(ordering: .relaxed), let store { return store.statistics.retained }
        return retained.withLock { $0.count }
    }

    // MARK: Routing

    /// Stores or clears a retained message [MQTT-3.3.1-5], [MQTT-3.3.1-6]. Returns true if the
    /// change went to the durable store (`$SYS` topics never do: the broker rewrites them).
    @discardableResult
    func storeRetained(_ message: Message) -> Bool {
        let durable = store != nil && !message.topic.hasPrefix("$SYS")
        let onDisk = durable && retainedOnDisk.load(ordering: .relaxed)
        let spill = retained.withLock { tree -> Bool in
            // Under the tree's lock, so that the store sees changes of one topic in order.
            if message.payloadSize == 0 {
                if !onDisk { tree.remove(name: message.topic) }
                if durable { store!.submit(.deleteRetained(topic: message.topic)) }
            } else {
                if !onDisk { tree.set(name: message.topic, value: message) }
                if durable { store!.submit(.putRetained(message)) }
            }
            guard durable, !onDisk, settings.retainedMemoryLimit > 0, tree.count > settings.retainedMemoryLimit else { return false }
            // Too many to keep in memory: from now on they live on disk only (they are all
            // there already); the tree keeps the broker's own `$SYS` topics.
            var kept = RetainedTree<Message>()
            tree.forEachMatch(filter: "$SYS/#") { name, value in _ = kept.set(name: name, value: value) }
            tree = kept
            retainedOnDisk.store(true, ordering: .relaxed)
            return true
        }
        if spill {
            logger.notice(
                "retained messages exceed retained_memory_limit: they are kept on disk only from now on",
                metadata: ["limit": "\(settings.retainedMemoryLimit)"])
        }
        return durable
    }

    /// How a publish fared: sessions matched, and how many of them had a full queue.
    struct Fanout {
        var matched = 0
        var queueFull = 0
        /// Deliveries that went to the durable store: the publisher's ack waits for them.
        var stored = 0
    }

    /// Delivers `message` to every matching subscription (as resolved by the router);
    /// connections to wake are appended to `wake`.
    @discardableResult
    func deliver(_ message: Message, matches: [Router.Match], wake: inout [Connection]) -> Fanout {
        var fanout = Fanout()
        func record(_ result: Session.DeliveryResult) {
            fanout.matched += 1
            switch result {
            case .queued(let stored):
                if stored { fanout.stored += 1 }
            case .wake(let connection, let stored):
                wake.append(connection)
                if stored { fanout.stored += 1 }
            case .dropped(let reason): if reason == .queueFull { fanout.queueFull += 1 }
            }
        }
        var index = 0
        let count = matches.count
        while index < count {
            let match = matches[index]
            if match.group.isEmpty {
                // Merge every ordinary subscription of this session: highest QoS, every identifier, one copy.
                let session = match.entry.session
                var qos: QoS? = nil
                var retainAsPublished = false
                var identifiers: [Int] = []
                while index < count, matches[index].group.isEmpty, matches[index].entry.session === session {
                    let entry = matches[index].entry
                    index += 1
                    if entry.noLocal && session.id == message.publisherID { continue }
                    qos = max(qos ?? .atMostOnce, entry.qos)
                    retainAsPublished = retainAsPublished || entry.retainAsPublished
                    if let id = entry.subscriptionID { identifiers.append(id) }
                }
                guard let granted = qos else { continue }
                let delivery = QueuedDelivery(
                    message: message, qos: min(granted, message.qos), retain: retainAsPublished && message.retain,
                    subscriptionIDs: identifiers)
                record(session.deliver(delivery, stats: stats, store: store))
            } else {
                // A shared group on one filter: exactly one member gets the message.
                let start = index
                while index < count, matches[index].group == match.group, matches[index].filter == match.filter { index += 1 }
                let members = matches[start..<index]
                guard let chosen = router.pickSharedMember(group: match.group, filter: match.filter, members: members) else { continue }
                let entry = chosen.entry
                let delivery = QueuedDelivery(
                    message: message, qos: min(entry.qos, message.qos), retain: entry.retainAsPublished && message.retain,
                    subscriptionIDs: entry.subscriptionID.map { [$0] } ?? [], sharedGroup: match.group + "\u{0}" + match.filter)
                record(entry.session.deliver(delivery, stats: stats, store: store))
            }
        }
        return fanout
    }

    /// Publishes a message that does not come from a connection (will, `$SYS`), from any thread.
    func publishInternally(_ message: Message) {
        if message.retain { storeRetained(message) }
        var wake: [Connection] = []
        deliver(message, matches: resolveRoutes(message.topic), wake: &wake)
        Broker.wakeAll(wake)
    }

    /// Gives each connection in `wake` a drain on its own event loop (inline when already there).
    static func wakeAll(_ wake: [Connection]) {
        for connection in wake {
            if connection.eventLoop.inEventLoop {
                connection.drain()
            } else {
                connection.eventLoop.execute { connection.drain() }
            }
        }
    }

    /// Sends the deliveries a departed shared-group member still held to other members.
    func redistributeShared(_ deliveries: [QueuedDelivery], from sessionID: Int) {
        guard !deliveries.isEmpty else { return }
        var wake: [Connection] = []
        for delivery in deliveries {
            guard let groupKey = delivery.sharedGroup, let separator = groupKey.firstIndex(of: "\u{0}") else { continue }
            let group = String(groupKey[..<separator])
            let filter = String(groupKey[groupKey.index(after: separator)...])
            let members = resolveRoutes(delivery.message.topic).filter { $0.group == group && $0.filter == filter }
            guard let chosen = router.pickSharedMember(group: group, filter: filter, members: members[...], excluding: sessionID) else {
                stats.dropped(.queueFull)
                continue
            }
            var moved = delivery
            moved.qos = min(chosen.entry.qos, delivery.message.qos)
            moved.subscriptionIDs = chosen.entry.subscriptionID.map { [$0] } ?? []
            moved.retain = chosen.entry.retainAsPublished && delivery.message.retain
            if case .wake(let owner, _) = chosen.entry.session.deliver(moved, stats: stats, store: store) { wake.append(owner) }
        }
        Broker.wakeAll(wake)
    }

    // MARK: Session lifecycle

    /// Ends a session: its routes, its queue (shared-group deliveries go to other members
    /// [MQTT-4.8.2]), its pending will, and its map entry. With a generation, only if the session
    /// is still offline and nothing claimed or attached it since; checked and done under the
    /// sessions lock, so a concurrent CONNECT either finds the session alive or not at all.
    @discardableResult
    func endSession(_ session: Session, ifGeneration generation: UInt64?) -> Bool {
        var deleteStored = false
        let ended = sessions.withLock { sessions -> ([SubscriptionRecord], Message?, [QueuedDelivery])? in
            session.locked.withLock { inner -> ([SubscriptionRecord], Message?, [QueuedDelivery])? in
                if let generation {
                    guard inner.owner == nil, inner.generation == generation else { return nil }
                }
                if sessions[session.clientID] === session { sessions[session.clientID] = nil }
                let records = Array(inner.subscriptions.values)
                inner.subscriptions.removeAll()
                var shared = inner.state.takeSharedDeliveries()
                for index in shared.indices { shared[index].seq = 0 }
                if inner.state.spilledCount > 0 {
                    // Paged out to disk: they end with the session (shared ones are not handed over).
                    for _ in 0..<inner.state.spilledCount { stats.dropped(.queueFull) }
                }
                inner.state.reset()
                deleteStored = inner.persisted
                inner.persisted = false
                let will = inner.pendingWill.map { willMessage($0, publisherID: inner.pendingWillPublisher) }
                inner.pendingWill = nil
                inner.generation &+= 1
                return (records, will, shared)
            }
        }
        guard let (records, will, shared) = ended else { return false }
        for record in records {
            router.unsubscribe(filter: record.filter, group: record.group ?? "", sessionID: session.id)
        }
        if let will { publishInternally(will) }
        redistributeShared(shared, from: session.id)
        // Last: its will and its shared deliveries are with the store (in other sessions) first,
        // so a crash in between cannot lose them. (A new session of the same client id has a
        // new id; the store replaces rows by client id, so the order with it does not matter.)
        if deleteStored { store?.submit(.deleteSession(id: session.id)) }
        return true
    }

    /// A session just went offline at `generation` with `expiry` seconds to live: end it now
    /// (expiry 0), or when it expires unless a client comes back first.
    func scheduleEnd(_ session: Session, expiry: UInt32, generation: UInt64, on loop: EventLoop) {
        if expiry == 0 {
            endSession(session, ifGeneration: generation)
        } else if expiry != 0xFFFF_FFFF {
            scheduleEnd(session, generation: generation, in: .seconds(Int64(expiry)), on: loop)
        }
    }

    /// When a message published at `now` expires: its Message Expiry Interval, capped by
    /// `max_message_expiry`, which also applies to messages without one. The interval is taken
    /// out of `properties`; it is written back, counted down, when the message is sent.
    func expiryDeadline(taking properties: inout Properties, now: UInt64) -> UInt64? {
        let cap = settings.maxMessageExpiry
        var interval = properties.messageExpiryInterval
        properties.messageExpiryInterval = nil
        if cap > 0 { interval = min(interval ?? cap, cap) }
        return interval.map { now + UInt64($0) * 1000 }
    }

    /// The message a will becomes when it is published now.
    func willMessage(_ will: Will, publisherID: Int) -> Message {
        var properties = will.properties
        properties.willDelayInterval = nil
        let expiresAt = expiryDeadline(taking: &properties, now: now())
        return Message(
            topic: will.topic, payload: will.payload, qos: will.qos, retain: will.retain, properties: properties,
            expiresAt: expiresAt, publisherID: publisherID)
    }

    /// Every connection, for shutdown and `$SYS`.
    func register(_ connection: Connection) {
        connection.loopState.register(connection)
    }

    func unregister(_ connection: Connection) {
        connection.loopState.unregister(connection)
    }

    /// Every open connection, gathered from each loop on that loop.
    func allConnections() async -> [Connection] {
        let states = loopStates.withLockedValue { Array($0.values) }
        var all: [Connection] = []
        for state in states {
            if let members = try? await state.loop.submit({ state.members }).get() { all += members }
        }
        return all
    }

    /// Every subscription matching `topic` that may read it (wills, `$SYS`, shared hand-over and
    /// publishers' cache misses all resolve through here).
    func resolveRoutes(_ topic: String) -> [Router.Match] {
        router.resolve(topic: topic, authorizer: authorizer, clientAuthorizers: clientAuthorizersInUse.load(ordering: .relaxed))
    }
}
