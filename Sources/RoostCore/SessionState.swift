import DequeModule
import MQTTCodec
import NIOCore

/// A message waiting in a session's queue for its turn (and for the in-flight window).
///
/// Copied several times per delivery (queue, in-flight window, drain), so the fields that are
/// almost always empty (subscription identifiers, a shared group) share one optional reference:
/// a copy is then one retain (the message) instead of three.
public struct QueuedDelivery: Sendable {
    public var message: Message
    public var qos: QoS
    public var retain: Bool
    /// The position of this delivery in the durable store's queue of the session; 0 when it is
    /// not stored (QoS 0, no store, or a session that ends with its connection).
    public var seq: UInt64
    private var rare: Rare?

    private final class Rare: Sendable {
        let subscriptionIDs: [Int]
        let sharedGroup: String?
        init(subscriptionIDs: [Int], sharedGroup: String?) {
            self.subscriptionIDs = subscriptionIDs
            self.sharedGroup = sharedGroup
        }
    }

    private static func rare(_ subscriptionIDs: [Int], _ sharedGroup: String?) -> Rare? {
        subscriptionIDs.isEmpty && sharedGroup == nil ? nil : Rare(subscriptionIDs: subscriptionIDs, sharedGroup: sharedGroup)
    }

    public var subscriptionIDs: [Int] {
        get { rare?.subscriptionIDs ?? [] }
        set { rare = Self.rare(newValue, sharedGroup) }
    }

    /// The shared-subscription group ("group\u{0}filter") this copy was chosen for, if any.
    public var sharedGroup: String? {
        get { rare?.sharedGroup }
        set { rare = Self.rare(subscriptionIDs, newValue) }
    }

    public init(message: Message, qos: QoS, retain: Bool, subscriptionIDs: [Int], sharedGroup: String? = nil, seq: UInt64 = 0) {
        self.message = message
        self.qos = qos
        self.retain = retain
        self.seq = seq
        self.rare = Self.rare(subscriptionIDs, sharedGroup)
    }
}

/// An outgoing QoS 1/2 message the client has not finished acknowledging.
public struct InflightDelivery: Sendable {
    public enum Stage: Sendable {
        /// PUBLISH sent, waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
        case published
        /// PUBREC received and PUBREL sent, waiting for PUBCOMP.
        case released
    }
    public var packetID: UInt16
    public var delivery: QueuedDelivery
    public var stage: Stage
}

/// Why a delivery was not queued. Counted by the broker.
public enum DropReason: Sendable {
    case queueFull
    case qos0WhileOffline
    case expired
    case tooLargeForClient
}

/// The outgoing side of one session: queue, in-flight window and packet identifiers, and the
/// inbound QoS 2 identifiers awaiting PUBREL. Pure and synchronous; time is passed in.
///
/// Not thread-safe: the owning `Session` guards it with its lock.
public struct SessionState: Sendable {
    /// The client's Receive Maximum, capped by the broker's limit: QoS 1/2 messages in flight at once.
    public var receiveMaximum: Int
    /// Queue limits (messages waiting beyond the in-flight window). 0 means unlimited.
    public var maxQueuedMessages: Int
    public var maxQueuedBytes: Int

    // Deques allocate nothing while empty: most sessions are idle, and an idle connection's
    // memory is dominated by what it allocates up front (two one-slot ring buffers were 200 bytes).
    public private(set) var queue = Deque<QueuedDelivery>()
    public private(set) var queuedBytes = 0
    public private(set) var inflight = Deque<InflightDelivery>()
    private var usedPacketIDs = Set<UInt16>()
    private var nextPacketID: UInt16 = 1
    /// The id of the last barrier (4 bytes, beside the other small fields).
    private var lastBarrier: UInt32 = 0
    /// Whether QoS 0 messages are queued for a session that is offline (Mosquitto's `queue_qos0_messages`).
    public var queueQoS0WhileOffline: Bool
    /// Inbound QoS 2 packet identifiers that got PUBREC and wait for PUBREL (exactly once).
    public var inboundQoS2 = Set<UInt16>()
    /// The next position in the durable store's queue of this session (never reused, not even
    /// after a clean start: changes of the old session may still be on their way to the disk).
    public private(set) var nextSeq: UInt64 = 1
    /// The `seq` given by the last stored `enqueue`.
    public private(set) var lastSeq: UInt64 = 0

    public init(receiveMaximum: Int = 65_535, maxQueuedMessages: Int = 1000, maxQueuedBytes: Int = 0, queueQoS0WhileOffline: Bool = false) {
        self.receiveMaximum = receiveMaximum
        self.maxQueuedMessages = maxQueuedMessages
        self.maxQueuedBytes = maxQueuedBytes
        self.queueQoS0WhileOffline = queueQoS0WhileOffline
    }

    /// Adds a delivery to the back of the queue, or says why it was dropped. The overflow policy
    /// is drop-newest: a full queue refuses the new message, so what was queued stays in order.
    /// `bypassLimits` is for retained messages sent on SUBSCRIBE: the client asked for all of
    /// them, and they are already held in memory by the retained store.
    /// `stored`: the delivery goes to the durable store too; it gets the next `seq` (see `lastSeq`).
    public mutating func enqueue(_ delivery: QueuedDelivery, online: Bool, bypassLimits: Bool = false, stored: Bool = false) -> DropReason? {
        if delivery.qos == .atMostOnce && !online && !queueQoS0WhileOffline { return .qos0WhileOffline }
        let size = delivery.message.size
        // Even retained deliveries stop at a hard ceiling, so that repeated SUBSCRIBEs from a
        // client that does not read cannot grow the queue without bound.
        let count = queue.count + spilledCount
        if bypassLimits && count >= max(maxQueuedMessages, 0) + SessionState.retainedBacklogLimit { return .queueFull }
        if !bypassLimits {
            if maxQueuedMessages > 0 && count >= maxQueuedMessages { return .queueFull }
            if maxQueuedBytes > 0 && queuedBytes + spilledBytes + size > maxQueuedBytes && count > 0 { return .queueFull }
        }
        if stored && delivery.qos != .atMostOnce {
            var numbered = delivery
            numbered.seq = nextSeq
            lastSeq = nextSeq
            nextSeq += 1
            if memoryQueueLimit > 0 && (spilledCount > 0 || queue.count >= memoryQueueLimit) {
                // Paged out: only the store keeps it, until the queue in memory runs low.
                if spilledCount == 0 { spillFromSeq = numbered.seq }
                spilledCount += 1
                spilledBytes += size
                return nil
            }
            queue.append(numbered)
        } else {
            queue.append(delivery)
        }
        queuedBytes += size
        return nil
    }

    // MARK: Barriers (retained messages read from disk)

    /// The stand-in message of a barrier: a place in the queue where retained messages that are
    /// being read from disk will go. Nothing behind it is sent before they are in place, so a
    /// newer message on the same topic can never overtake the retained one.
    public static let barrierMessage = Message(
        topic: "", payload: ByteBuffer(), qos: .atMostOnce, retain: false, properties: Properties(), expiresAt: nil,
        publisherID: -1)

    /// Appends a barrier and returns its id.
    public mutating func addBarrier() -> Int {
        lastBarrier &+= 1
        let id = Int(lastBarrier)
        queue.append(QueuedDelivery(message: Self.barrierMessage, qos: .atMostOnce, retain: false, subscriptionIDs: [id]))
        return id
    }

    /// Replaces barrier `id` with `deliveries` (numbered for the store when `stored`), and
    /// returns what was put in its place; nothing if the barrier is gone (clean start).
    public mutating func fillBarrier(_ id: Int, with deliveries: [QueuedDelivery], stored: Bool) -> [QueuedDelivery] {
        guard let index = queue.firstIndex(where: { $0.message.isSame(as: Self.barrierMessage) && $0.subscriptionIDs.first == id }) else {
            return []
        }
        var placed: [QueuedDelivery] = []
        placed.reserveCapacity(deliveries.count)
        for var delivery in deliveries {
            if stored && delivery.qos != .atMostOnce {
                delivery.seq = nextSeq
                nextSeq += 1
            }
            queuedBytes += delivery.message.size
            placed.append(delivery)
        }
        queue.replaceSubrange(index..<queue.index(after: index), with: placed)
        return placed
    }

    /// True when the next queued message may be sent now (QoS 0 always; QoS 1/2 within the window).
    public var canSendNext: Bool {
        guard let first = queue.first, !first.message.isSame(as: Self.barrierMessage) else { return false }
        return first.qos == .atMostOnce || inflight.count < receiveMaximum
    }

    /// Takes the next message to send, assigning a packet identifier and moving QoS 1/2 into the
    /// in-flight window. Expired messages are skipped and reported through `dropped`.
    public mutating func next(now: UInt64, dropped: (QueuedDelivery, DropReason) -> Void = { _, _ in }) -> (packetID: UInt16, delivery: QueuedDelivery)? {
        // Looks at the head's fields in place and moves it out once: a copy of a delivery is a
        // retain (and later a release) per reference it holds, on the hottest path there is.
        while !queue.isEmpty {
            let message = queue[0].message
            if message.isSame(as: Self.barrierMessage) { return nil }
            if message.isExpired(at: now) {
                let expired = queue.removeFirst()
                queuedBytes -= message.size
                dropped(expired, .expired)
                continue
            }
            if queue[0].qos == .atMostOnce {
                queuedBytes -= message.size
                return (0, queue.removeFirst())
            }
            guard inflight.count < receiveMaximum, let id = allocatePacketID() else { return nil }
            queuedBytes -= message.size
            let delivery = queue.removeFirst()
            inflight.append(InflightDelivery(packetID: id, delivery: delivery, stage: .published))
            return (id, delivery)
        }
        return nil
    }

    private mutating func allocatePacketID() -> UInt16? {
        guard usedPacketIDs.count < 65_535 else { return nil }
        while true {
            let id = nextPacketID
            nextPacketID = nextPacketID == 65_535 ? 1 : nextPacketID + 1
            if usedPacketIDs.insert(id).inserted { return id }
        }
    }

    private func inflightIndex(_ packetID: UInt16) -> Int? {
        if let first = inflight.first, first.packetID == packetID { return inflight.startIndex }
        return inflight.firstIndex { $0.packetID == packetID }
    }

    /// PUBACK from the client. Returns the delivery's `seq` (0 if not stored), or nil if no
    /// QoS 1 message had that id.
    public mutating func acknowledge(packetID: UInt16) -> UInt64? {
        guard let index = inflightIndex(packetID), inflight[index].delivery.qos == .atLeastOnce else { return nil }
        let seq = inflight[index].delivery.seq
        inflight.remove(at: index)
        usedPacketIDs.remove(packetID)
        return seq
    }

    /// PUBREC from the client: the message moves to the PUBREL stage. Returns its `seq` (0 if
    /// not stored), or nil if unknown. A PUBREC with a failure reason ends the exchange instead
    /// (MQTT 5: 4.3.3).
    public mutating func received(packetID: UInt16, failed: Bool) -> UInt64? {
        guard let index = inflightIndex(packetID), inflight[index].delivery.qos == .exactlyOnce else { return nil }
        let seq = inflight[index].delivery.seq
        if failed {
            inflight.remove(at: index)
            usedPacketIDs.remove(packetID)
        } else {
            inflight[index].stage = .released
        }
        return seq
    }

    /// PUBCOMP from the client. Returns the delivery's `seq` (0 if not stored), or nil if no
    /// message was in the PUBREL stage with that id.
    public mutating func completed(packetID: UInt16) -> UInt64? {
        guard let index = inflightIndex(packetID), inflight[index].stage == .released else { return nil }
        let seq = inflight[index].delivery.seq
        inflight.remove(at: index)
        usedPacketIDs.remove(packetID)
        return seq
    }

    /// Puts back what the durable store held for this session: in-flight deliveries (sent with
    /// a packet id; `released` past PUBREC) and queued ones, each in `seq` order, and the inbound
    /// QoS 2 ids. Called once, on a fresh state, before any client attaches.
    public mutating func restore(inflight sent: [(packetID: UInt16, delivery: QueuedDelivery, released: Bool)], queued: [QueuedDelivery], inbound: [UInt16]) {
        for entry in sent where usedPacketIDs.insert(entry.packetID).inserted {
            inflight.append(InflightDelivery(packetID: entry.packetID, delivery: entry.delivery, stage: entry.released ? .released : .published))
            nextSeq = max(nextSeq, entry.delivery.seq + 1)
        }
        for delivery in queued {
            queue.append(delivery)
            queuedBytes += delivery.message.size
            nextSeq = max(nextSeq, delivery.seq + 1)
        }
        inboundQoS2.formUnion(inbound)
    }

    /// The `seq` of every stored delivery, queued or in flight.
    public var storedSeqs: [UInt64] {
        inflight.compactMap { $0.delivery.seq == 0 ? nil : $0.delivery.seq } + queue.compactMap { $0.seq == 0 ? nil : $0.seq }
    }

    /// Removes and returns every in-flight and queued delivery that was sent to a shared
    /// subscription group, so that another member can get them (MQTT 5: 4.8.2).
    public mutating func takeSharedDeliveries() -> [QueuedDelivery] {
        var taken: [QueuedDelivery] = []
        var keptInflight = Deque<InflightDelivery>()
        for entry in inflight {
            if entry.delivery.sharedGroup != nil && entry.stage == .published {
                taken.append(entry.delivery)
                usedPacketIDs.remove(entry.packetID)
            } else {
                keptInflight.append(entry)
            }
        }
        inflight = keptInflight
        var keptQueue = Deque<QueuedDelivery>()
        for entry in queue {
            if entry.sharedGroup != nil {
                taken.append(entry)
                queuedBytes -= entry.message.size
            } else {
                keptQueue.append(entry)
            }
        }
        queue = keptQueue
        return taken
    }

    /// After a reconnect with a smaller Receive Maximum: QoS 1 messages beyond the new window go
    /// back to the front of the queue, in order, and will be sent again with new packet ids as the
    /// window allows [MQTT-3.3.4-9]. QoS 2 messages keep their ids (the client may already hold
    /// them), so they stay in flight.
    public mutating func fitInflight(to maximum: Int) {
        guard inflight.count > maximum else { return }
        var kept = Deque<InflightDelivery>(minimumCapacity: maximum)
        var requeued: [QueuedDelivery] = []
        for entry in inflight {
            if kept.count < maximum || entry.delivery.qos == .exactlyOnce {
                kept.append(entry)
            } else {
                requeued.append(entry.delivery)
                usedPacketIDs.remove(entry.packetID)
            }
        }
        inflight = kept
        for delivery in requeued.reversed() {
            queue.prepend(delivery)
            queuedBytes += delivery.message.size
        }
    }

    // MARK: Paging (stored sessions only)

    /// Stored deliveries kept in memory per session; later ones wait on disk only and are read
    /// back in order as the queue in memory drains. 0: everything stays in memory.
    public var memoryQueueLimit = 0
    /// Stored deliveries that are on disk only (they follow everything in memory, in `seq` order).
    public private(set) var spilledCount = 0
    public private(set) var spilledBytes = 0
    /// The `seq` of the first delivery on disk only.
    public private(set) var spillFromSeq: UInt64 = 0
    /// Bumped by `reset`: a page read before a clean start is thrown away.
    public private(set) var spillEpoch: UInt64 = 0
    /// Set while a page is being read from the store.
    public var pageInPending = false

    /// True when the queue in memory runs low and more waits on disk: time to read a page.
    public var wantsPageIn: Bool {
        spilledCount > 0 && !pageInPending && queue.count <= memoryQueueLimit / 2
    }

    /// Appends deliveries read back from the store (seq >= `spillFromSeq`, in order), if they
    /// belong to the current `epoch`. An empty page while deliveries are counted on disk means
    /// they are gone (expired at start, or removed): the count is cleared so nothing waits forever.
    public mutating func pageIn(_ deliveries: [QueuedDelivery], epoch: UInt64) {
        pageInPending = false
        guard epoch == spillEpoch else { return }
        for delivery in deliveries where delivery.seq >= spillFromSeq && spilledCount > 0 {
            queue.append(delivery)
            queuedBytes += delivery.message.size
            spilledCount -= 1
            spilledBytes = max(0, spilledBytes - delivery.message.size)
            spillFromSeq = delivery.seq + 1
        }
        if deliveries.isEmpty || spilledCount == 0 {
            spilledCount = 0
            spilledBytes = 0
        }
    }

    /// A page could not be read: the count stays, and a later drain asks again.
    public mutating func pageFailed() {
        pageInPending = false
    }

    /// Deliveries the store kept on disk only at start (beyond `memoryQueueLimit`).
    public mutating func restoreSpilled(count: Int, bytes: Int, fromSeq: UInt64, lastSeq: UInt64) {
        spilledCount = count
        spilledBytes = bytes
        spillFromSeq = fromSeq
        nextSeq = max(nextSeq, lastSeq + 1)
    }

    /// Clears everything (clean start).
    public mutating func reset() {
        spilledCount = 0
        spilledBytes = 0
        spillEpoch &+= 1
        pageInPending = false
        queue = Deque()
        queuedBytes = 0
        inflight = Deque()
        usedPacketIDs.removeAll()
        inboundQoS2.removeAll()
        nextPacketID = 1
    }

    public var queuedCount: Int { queue.count }

    /// How many retained messages sent on SUBSCRIBE may wait beyond the normal queue bound.
    public static let retainedBacklogLimit = 100_000
}
