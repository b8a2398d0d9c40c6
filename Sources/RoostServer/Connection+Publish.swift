import MQTTCodec
import NIOCore
import RoostCore

extension Connection {
    func handlePublish(_ publish: Publish) {
        broker.stats.publishReceived.add(1, ordering: .relaxed)
        if broker.settings.maxPublishRate > 0 { chargePublishRate(broker.settings.maxPublishRate) }
        var topic = publish.topic
        if version == .v5, let alias = publish.properties.topicAlias {
            guard Int(alias) <= broker.settings.maxTopicAlias else {
                disconnect(.topicAliasInvalid, reasonString: "topic alias \(alias) above the maximum \(broker.settings.maxTopicAlias) [MQTT-3.3.2-9]")
                return
            }
            if topic.isEmpty {
                guard let known = aliases?.inbound[alias] else {
                    disconnect(.protocolError, reasonString: "unknown topic alias \(alias)")
                    return
                }
                topic = known
            } else {
                if aliases == nil { aliases = TopicAliases() }
                aliases!.inbound[alias] = topic
            }
        }
        if version == .v5 && !publish.properties.subscriptionIdentifiers.isEmpty {
            disconnect(.protocolError, reasonString: "a client PUBLISH may not carry a subscription identifier [MQTT-3.3.4-6]")
            return
        }
        if publish.qos.rawValue > broker.settings.maxQoS {
            disconnect(.qosNotSupported, reasonString: "QoS \(publish.qos.rawValue) above the maximum \(broker.settings.maxQoS)")
            return
        }
        if publish.retain && !broker.settings.retainAvailable {
            disconnect(.retainNotSupported, reasonString: "retained messages are not available")
            return
        }
        guard let session else { return }
        // The cached topic passed these checks when it was cached: a steady topic is not scanned again.
        if topic != cachedTopic, let limit = topicLimit(topic) {
            // Not delivered; MQTT 5 publishers learn why (0x90), 3.x ones get a plain ack.
            broker.stats.limitTopic.add(1, ordering: .relaxed)
            broker.logLimit(limit, metadata: ["mqtt.client_id": "\(clientID)", "remote": "\(remoteAddressText ?? "?")"])
            acknowledge(publish, reason: version == .v5 ? .topicNameInvalid : .success)
            return
        }
        // `$SYS` belongs to the broker: a client may not publish there (as in Mosquitto).
        if !mayPublish(topic) {
            // Not delivered; MQTT 5 publishers learn why (0x87), 3.x ones get a plain ack.
            broker.stats.publishDenied.add(1, ordering: .relaxed)
            logDebug("publish not authorized", metadata: ["topic": "\(topic)"])
            acknowledge(publish, reason: version == .v5 ? .notAuthorized : .success)
            return
        }
        let store = broker.store
        if publish.qos != .atMostOnce, let store, store.isFailing {
            // The store cannot commit (disk full, I/O error): nothing new is accepted that it
            // would have to keep. MQTT 5 publishers learn it (0x97); 3.x publishers get no ack
            // and send again after reconnecting.
            broker.stats.storeRefused.add(1, ordering: .relaxed)
            if version == .v5 { acknowledge(publish, reason: .quotaExceeded) }
            return
        }
        var mustHold = false
        if publish.qos == .exactlyOnce {
            let state = session.locked.withLock { inner -> Int in
                if inner.state.inboundQoS2.contains(publish.packetID) {
                    mustHold = inner.persisted
                    return -1
                }
                // MQTT 5 clients were told the limit; 3.x clients were not, so they get the protocol's ceiling.
                let limit = self.version == .v5 ? broker.settings.receiveMaximum : 65_535
                if inner.state.inboundQoS2.count >= limit { return -2 }
                inner.state.inboundQoS2.insert(publish.packetID)
                if inner.persisted, let store {
                    store.submit(.addInbound(sessionID: session.id, packetID: publish.packetID))
                    mustHold = true
                }
                return 0
            }
            if state == -1 {
                // A resend of a message already received: acknowledge again, deliver nothing [MQTT-4.3.3-10].
                if mustHold { holdOutput() }
                send(.pubrec(Ack(packetID: publish.packetID)))
                return
            }
            if state == -2 {
                disconnect(.receiveMaximumExceeded, reasonString: "more than \(broker.settings.receiveMaximum) QoS 2 messages in flight")
                return
            }
        }

        let now = broker.now()
        var properties = publish.properties
        properties.topicAlias = nil
        properties.subscriptionIdentifiers = []
        let expiresAt = broker.expiryDeadline(taking: &properties, now: now)
        // The message copies the payload's bytes into its own allocation (a slice would pin the
        // whole receive buffer while the message is queued).
        if let correlation = properties.correlationData { properties.correlationData = ByteBuffer.owned(correlation) }
        let message = Message(
            topic: topic, payload: publish.payload, qos: publish.qos, retain: publish.retain, properties: properties,
            expiresAt: expiresAt, publisherID: session.id)
        if publish.retain && broker.storeRetained(message) {
            if publish.qos == .atMostOnce { unpacedStoreWrites = true } else { mustHold = true }
        }

        let version = broker.router.version.load(ordering: .acquiring)
        let cache: RouteCache
        if let known = routeCache, known.topic == topic, known.version == version {
            cache = known
        } else if let known = routeCache {
            known.matches = broker.resolveRoutes(topic)
            known.topic = topic
            known.version = version
            cache = known
        } else {
            cache = RouteCache(topic: topic, version: version, matches: broker.resolveRoutes(topic))
            routeCache = cache
        }
        let fanout = broker.deliver(message, matches: cache.matches, wake: &toWake)
        var reason = ReasonCode.success
        if self.version == .v5 {
            if fanout.matched == 0 {
                reason = .noMatchingSubscribers
            } else if fanout.queueFull == fanout.matched {
                // Every subscriber's queue was full: the message went nowhere (MQTT 5: 0x97).
                reason = .quotaExceeded
            }
        }
        if publish.qos == .exactlyOnce && reason.isFailure {
            // A failure PUBREC ends the exchange: the client may reuse the id at once (MQTT 5: 4.3.3).
            session.locked.withLock { inner in
                if inner.state.inboundQoS2.remove(publish.packetID) != nil, inner.persisted {
                    store?.submit(.removeInbound(sessionID: session.id, packetID: publish.packetID))
                }
            }
        }
        // The ack promises the message is kept: it waits until the store has it.
        if fanout.stored > 0 { mustHold = true }
        if mustHold && publish.qos != .atMostOnce { holdOutput() }
        acknowledge(publish, reason: reason)
    }

    /// PUBACK for QoS 1, PUBREC for QoS 2, nothing for QoS 0.
    /// `max_topic_length` / `max_topic_levels`: the limit a topic name or filter breaks, if any.
    func topicLimit(_ topic: String) -> LimitTripped? {
        let settings = broker.settings
        if topic.utf8.count > settings.maxTopicLength { return .maxTopicLength }
        if settings.maxTopicLevels > 0 {
            var levels = 1
            for byte in topic.utf8 where byte == UInt8(ascii: "/") {
                levels += 1
                if levels > settings.maxTopicLevels { return .maxTopicLevels }
            }
        }
        return nil
    }

    /// `max_publish_rate`: takes a token for this PUBLISH; when the client is over its rate,
    /// stops reading (and handling what was already read) until the bucket is back in balance.
    /// Nothing is dropped: TCP pushes back on the client.
    private func chargePublishRate(_ rate: Int) {
        let now = eventLoop.now.uptimeNanoseconds
        if publishBucket == nil { publishBucket = PublishBucket(TokenBucket(rate: rate, burst: rate, now: now)) }
        let wait = publishBucket!.bucket.takeOwing(now: now)
        guard wait > .zero, !pausedForRate else { return }
        pausedForRate = true
        broker.stats.limitPublishRate.add(1, ordering: .relaxed)
        broker.logLimit(.maxPublishRate, metadata: ["mqtt.client_id": "\(clientID)", "remote": "\(remoteAddressText ?? "?")"])
        updateReading()
        eventLoop.scheduleTask(in: wait) { [weak self] in
            guard let self, self.pausedForRate else { return }
            self.pausedForRate = false
            guard self.phase != .closed else { return }
            self.updateReading()
            self.processInbound()
            self.flushOutput()
            self.wakeTargets()
        }
    }

    private func acknowledge(_ publish: Publish, reason: ReasonCode) {
        outputHot = true
        switch publish.qos {
        case .atMostOnce: break
        case .atLeastOnce: send(.puback(Ack(packetID: publish.packetID, reasonCode: reason)))
        case .exactlyOnce: send(.pubrec(Ack(packetID: publish.packetID, reasonCode: reason)))
        }
    }

    func handlePubAck(_ ack: Ack) {
        guard let session else { return }
        let store = broker.store
        let known = session.locked.withLock { inner -> Bool in
            guard let seq = inner.state.acknowledge(packetID: ack.packetID) else { return false }
            if seq != 0 { store?.submit(.dequeue(sessionID: session.id, seq: seq)) }
            return true
        }
        if known {
            // The freed window is refilled once per read batch, not once per PUBACK.
            drainAfterRead = true
        } else {
            logDebug("PUBACK for an unknown packet id", metadata: ["packet_id": "\(ack.packetID)"])
        }
    }

    func handlePubRec(_ ack: Ack) {
        guard let session else { return }
        let failed = ack.reasonCode.isFailure
        let store = broker.store
        let seq = session.locked.withLock { inner -> UInt64? in
            let seq = inner.state.received(packetID: ack.packetID, failed: failed)
            if let seq, seq != 0 {
                store?.submit(failed ? .dequeue(sessionID: session.id, seq: seq) : .released(sessionID: session.id, seq: seq))
            }
            return seq
        }
        let known = seq != nil
        if failed {
            if known { drainAfterRead = true }
            return
        }
        // After a restart the store must not resend a PUBLISH the client already released.
        if let seq, seq != 0 { holdOutput() }
        send(.pubrel(Ack(packetID: ack.packetID, reasonCode: known ? .success : .packetIdentifierNotFound)))
    }

    func handlePubRel(_ ack: Ack) {
        guard let session else { return }
        let store = broker.store
        var mustHold = false
        let known = session.locked.withLock { inner -> Bool in
            guard inner.state.inboundQoS2.remove(ack.packetID) != nil else { return false }
            if inner.persisted, let store {
                // Once PUBCOMP is out the client may reuse the id: the store must have forgotten it.
                store.submit(.removeInbound(sessionID: session.id, packetID: ack.packetID))
                mustHold = true
            }
            return true
        }
        if mustHold { holdOutput() }
        send(.pubcomp(Ack(packetID: ack.packetID, reasonCode: known ? .success : .packetIdentifierNotFound)))
    }

    func handlePubComp(_ ack: Ack) {
        guard let session else { return }
        let store = broker.store
        let known = session.locked.withLock { inner -> Bool in
            guard let seq = inner.state.completed(packetID: ack.packetID) else { return false }
            if seq != 0 { store?.submit(.dequeue(sessionID: session.id, seq: seq)) }
            return true
        }
        if known {
            drainAfterRead = true
        }
    }
}

extension ByteBuffer {
    /// A copy with storage of its own, so that keeping it does not pin a receive buffer.
    static func owned(_ slice: ByteBuffer) -> ByteBuffer {
        var copy = ByteBufferAllocator().buffer(capacity: slice.readableBytes)
        copy.writeImmutableBuffer(slice)
        return copy
    }
}
