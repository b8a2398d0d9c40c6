import Logging
import MQTTCodec
import NIOCore
import RoostCore

extension Broker {
    /// Publishes the pending will of an offline session after `delay`, unless a client claims
    /// the session first (its generation moves on). The store forgets the will once published.
    func scheduleWill(_ session: Session, generation: UInt64, in delay: TimeAmount, on loop: EventLoop) {
        let timer = loop.scheduleTask(in: delay) { [self] () -> Void in
            let due = session.locked.withLock { inner -> Message? in
                guard inner.generation == generation, let will = inner.pendingWill else { return nil }
                inner.pendingWill = nil
                return self.willMessage(will, publisherID: inner.pendingWillPublisher)
            }
            guard let due else { return }
            // Published (and its deliveries submitted) before the store forgets it: a crash in
            // between may publish it twice, never not at all.
            self.publishInternally(due)
            session.locked.withLock { inner in
                if inner.persisted, inner.generation == generation, inner.pendingWill == nil {
                    self.store?.submit(.putSession(session.record(inner, will: nil, online: false)))
                }
            }
        }
        session.locked.withLock { $0.keep(timer, generation: generation) }
    }

    /// Ends an offline session `delay` from now unless a client claims it first.
    func scheduleEnd(_ session: Session, generation: UInt64, in delay: TimeAmount, on loop: EventLoop) {
        let timer = loop.scheduleTask(in: delay) { [self] () -> Void in
            self.endSession(session, ifGeneration: generation)
        }
        session.locked.withLock { $0.keep(timer, generation: generation) }
    }

    /// Retained messages kept on disk only: reads those matching `filter` into the place of a
    /// barrier in the session's queue (added now, so that nothing routed to the new
    /// subscription from here on overtakes them), then wakes the owner.
    func deliverRetainedFromDisk(
        to session: Session, filter: String, qos: QoS, subscriptionID: Int?, mayRead: (@Sendable (String) -> Bool)? = nil
    ) {
        guard let store else { return }
        let barrier = session.locked.withLock { $0.state.addBarrier() }
        let stats = self.stats
        store.submit(.readRetained(filter: filter, limit: SessionState.retainedBacklogLimit) { messages in
            let now = self.now()
            let readable = mayRead.map { check in messages.filter { check($0.topic) } } ?? messages
            let deliveries = readable.filter { !$0.isExpired(at: now) }.map { message in
                QueuedDelivery(message: message, qos: min(qos, message.qos), retain: true, subscriptionIDs: subscriptionID.map { [$0] } ?? [])
            }
            let owner = session.locked.withLock { inner -> Connection? in
                let placed = inner.state.fillBarrier(barrier, with: deliveries, stored: inner.persisted)
                for delivery in placed where delivery.seq != 0 {
                    store.submit(.enqueue(sessionID: session.id, delivery: delivery))
                }
                if placed.count < deliveries.count { stats.dropped(.queueFull) }
                return inner.claimDrain()
            }
            if let owner { Broker.wakeAll([owner]) }
        })
    }

    /// Puts back what the store held, before any listener opens: sessions (offline, with their
    /// subscriptions, queues, in-flight messages and inbound QoS 2 ids), expiry and will timers,
    /// and retained messages. A session whose client was connected when the broker stopped
    /// counts as disconnected now: its will (if any) follows its delay from now.
    func restore(_ stored: StoredState, group: EventLoopGroup) {
        let wall = wallClock()
        var maxID = 0
        var dueWills: [Message] = []
        var forgetWills: [Session] = []
        var restoredMessages = 0
        for record in stored.sessions {
            maxID = max(maxID, record.id)
            let session = Session(
                id: record.id, clientID: record.clientID, state: makeSessionState(receiveMaximum: settings.receiveMaximum))
            var subscriptions: [String: SubscriptionRecord] = [:]
            for (subscription, subscriptionID) in stored.subscriptions[record.id] ?? [] {
                let shared: (group: String, filter: String)?
                do { shared = try Topic.parseShared(subscription.filter) } catch { continue }
                let filter = shared?.filter ?? subscription.filter
                let entry = Router.Entry(
                    session: session, qos: subscription.qos, noLocal: subscription.noLocal,
                    retainAsPublished: subscription.retainAsPublished, subscriptionID: subscriptionID)
                router.subscribe(filter: filter, group: shared?.group ?? "", entry: entry)
                subscriptions[subscription.filter] = SubscriptionRecord(
                    filter: filter, group: shared?.group, options: subscription, subscriptionID: subscriptionID)
            }
            var sent: [(packetID: UInt16, delivery: QueuedDelivery, released: Bool)] = []
            var queued: [QueuedDelivery] = []
            for row in stored.queues[record.id] ?? [] {
                var delivery = row.delivery
                delivery.seq = row.seq
                if row.packetID != 0 {
                    sent.append((row.packetID, delivery, row.released))
                } else {
                    queued.append(delivery)
                }
                restoredMessages += 1
            }
            let offlineSince = record.disconnectedAt ?? wall
            var willDue: Int64?
            if let will = record.will {
                if record.disconnectedAt == nil {
                    willDue = wall + Int64(min(will.properties.willDelayInterval ?? 0, record.expiryInterval)) * 1000
                } else {
                    willDue = record.willDueAt ?? wall
                }
            }
            let loop = group.next()
            let generation = session.locked.withLock { inner -> UInt64 in
                inner.state.restore(inflight: sent, queued: queued, inbound: stored.inbound[record.id] ?? [])
                if let spilled = stored.spilled[record.id] {
                    inner.state.restoreSpilled(count: spilled.count, bytes: spilled.bytes, fromSeq: spilled.fromSeq, lastSeq: spilled.lastSeq)
                    restoredMessages += spilled.count
                }
                inner.subscriptions = subscriptions
                inner.expiryInterval = record.expiryInterval
                inner.offlineSince = offlineSince
                inner.persisted = true
                inner.pendingWillPublisher = session.id
                if let will = record.will, let due = willDue, due > wall {
                    inner.pendingWill = will
                } else if let will = record.will {
                    dueWills.append(willMessage(will, publisherID: session.id))
                    // The store forgets the will only once it is published (below).
                    forgetWills.append(session)
                }
                if record.disconnectedAt == nil && !(record.will != nil && inner.pendingWill == nil) {
                    store?.submit(.putSession(session.record(
                        inner, will: inner.pendingWill, online: false, willDueAt: inner.pendingWill == nil ? nil : willDue)))
                }
                return inner.generation
            }
            sessions.withLock { $0[record.clientID] = session }
            if let due = willDue, due > wall, record.will != nil {
                scheduleWill(session, generation: generation, in: .milliseconds(due - wall), on: loop)
            }
            if record.expiryInterval != 0xFFFF_FFFF {
                let left = Int64(record.expiryInterval) * 1000 - (wall - offlineSince)
                scheduleEnd(session, generation: generation, in: .milliseconds(max(left, 0)), on: loop)
            }
        }
        // Sessions that ended while the broker was down keep their rows (and ids) until their
        // wills are out: no new session may take one of those ids.
        for (sessionID, _) in stored.expiredWills { maxID = max(maxID, sessionID) }
        if maxID >= nextSessionID.load(ordering: .relaxed) {
            nextSessionID.store(maxID + 1, ordering: .relaxed)
        }
        retained.withLock { tree in
            for message in stored.retained { tree.set(name: message.topic, value: message) }
        }
        if stored.retainedOnDisk {
            retainedOnDisk.store(true, ordering: .relaxed)
            logger.info("retained messages exceed retained_memory_limit: kept on disk only", metadata: ["limit": "\(settings.retainedMemoryLimit)"])
        }
        if !stored.sessions.isEmpty || !stored.retained.isEmpty || stored.retainedOnDisk {
            logger.info(
                "restored from the store",
                metadata: [
                    "sessions": "\(stored.sessions.count)", "queued_messages": "\(restoredMessages)",
                    "retained": "\(stored.retainedOnDisk ? "on disk" : "\(stored.retained.count)")",
                ])
        }
        for (sessionID, will) in stored.expiredWills {
            dueWills.append(willMessage(will, publisherID: sessionID))
        }
        if !dueWills.isEmpty { logger.info("publishing wills that fell due while the broker was down", metadata: ["wills": "\(dueWills.count)"]) }
        for will in dueWills { publishInternally(will) }
        for session in forgetWills {
            session.locked.withLock { inner in
                store?.submit(.putSession(session.record(inner, will: nil, online: false)))
            }
        }
        // The sessions that ended while the broker was down go only now, after their wills.
        for (sessionID, _) in stored.expiredWills { store?.submit(.deleteSession(id: sessionID)) }
    }
}
