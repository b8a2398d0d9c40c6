import MQTTCodec
import NIOCore
import RoostCore

extension Connection {
    func handleSubscribe(_ subscribe: Subscribe) {
        guard let session else { return }
        let settings = broker.settings
        let subscriptionID = subscribe.properties.subscriptionIdentifiers.first
        if subscriptionID != nil && !settings.subscriptionIdentifierAvailable {
            disconnect(.subscriptionIdentifiersNotSupported, reasonString: "subscription identifiers are not available")
            return
        }
        var codes: [ReasonCode] = []
        codes.reserveCapacity(subscribe.subscriptions.count)
        var retainedToSend: [QueuedDelivery] = []
        var retainedToRead: [(filter: String, qos: QoS, readable: Bool)] = []
        let retainedOnDisk = broker.retainedOnDisk.load(ordering: .relaxed)
        let now = broker.now()
        let store = broker.store
        var stored = false
        for subscription in subscribe.subscriptions {
            let shared: (group: String, filter: String)?
            do {
                shared = try Topic.parseShared(subscription.filter)
            } catch {
                codes.append(version == .v5 ? .topicFilterInvalid : .unspecifiedError)
                continue
            }
            let filter = shared?.filter ?? subscription.filter
            guard Topic.isValidFilter(filter) else {
                codes.append(version == .v5 ? .topicFilterInvalid : .unspecifiedError)
                continue
            }
            if let limit = topicLimit(filter) {
                broker.stats.limitTopic.add(1, ordering: .relaxed)
                broker.logLimit(limit, metadata: ["mqtt.client_id": "\(clientID)", "remote": "\(remoteAddressText ?? "?")"])
                codes.append(version == .v5 ? .topicFilterInvalid : .unspecifiedError)
                continue
            }
            if shared != nil && !settings.sharedSubscriptionAvailable {
                codes.append(version == .v5 ? .sharedSubscriptionsNotSupported : .unspecifiedError)
                continue
            }
            if shared != nil && subscription.noLocal {
                disconnect(.protocolError, reasonString: "No Local on a shared subscription [MQTT-3.8.3-4]")
                return
            }
            if !settings.wildcardSubscriptionAvailable && (filter.contains("+") || filter.contains("#")) {
                codes.append(version == .v5 ? .wildcardSubscriptionsNotSupported : .unspecifiedError)
                continue
            }
            var access = SubscriptionAccess.granted
            if broker.authorizer != nil || clientAuthorizer != nil {
                access = subscriptionAccess(filter)
                if access == .denied {
                    broker.stats.subscribeDenied.add(1, ordering: .relaxed)
                    logDebug("subscription not authorized", metadata: ["filter": "\(subscription.filter)"])
                    codes.append(version == .v5 ? .notAuthorized : .unspecifiedError)
                    continue
                }
            }
            if settings.maxSubscriptions > 0 {
                let full = session.locked.withLock { inner in
                    inner.subscriptions[subscription.filter] == nil && inner.subscriptions.count >= settings.maxSubscriptions
                }
                if full {
                    broker.stats.limitSubscriptions.add(1, ordering: .relaxed)
                    broker.logLimit(.maxSubscriptions, metadata: ["mqtt.client_id": "\(clientID)", "remote": "\(remoteAddressText ?? "?")"])
                    codes.append(version == .v5 ? .quotaExceeded : .unspecifiedError)
                    continue
                }
            }
            let granted = min(subscription.qos, QoS(rawValue: UInt8(settings.maxQoS)) ?? .exactlyOnce)
            let group = shared?.group ?? ""
            let entry = Router.Entry(
                session: session, qos: granted, noLocal: subscription.noLocal,
                retainAsPublished: subscription.retainAsPublished, subscriptionID: subscriptionID)
            let isNew = broker.router.subscribe(filter: filter, group: group, entry: entry)
            var options = subscription
            options.qos = granted
            session.locked.withLock { inner in
                inner.subscriptions[subscription.filter] = SubscriptionRecord(
                    filter: filter, group: shared?.group, options: options, subscriptionID: subscriptionID)
                if inner.persisted, let store {
                    store.submit(.putSubscription(sessionID: session.id, subscription: options, subscriptionID: subscriptionID))
                    stored = true
                }
            }
            codes.append(ReasonCode(granted.rawValue))
            // Retained messages for the new subscription [MQTT-3.3.1-9], Retain Handling [MQTT-3.3.1-10], [MQTT-3.3.1-11].
            guard shared == nil else { continue }
            let wantsRetained = subscription.retainHandling == .sendAlways || (subscription.retainHandling == .sendIfNew && isNew)
            guard wantsRetained else { continue }
            if retainedOnDisk && !filter.hasPrefix("$") { retainedToRead.append((filter, granted, access == .granted)) }
            let checkRead = access != .granted
            broker.retained.withLock { tree in
                tree.forEachMatch(filter: filter) { _, message in
                    guard !message.isExpired(at: now) else { return }
                    if checkRead, !self.mayRead(message.topic) { return }
                    retainedToSend.append(
                        QueuedDelivery(
                            message: message, qos: min(granted, message.qos), retain: true,
                            subscriptionIDs: subscriptionID.map { [$0] } ?? []))
                }
            }
        }
        // SUBACK promises the subscription is kept: it waits until the store has it.
        if stored { holdOutput() }
        send(.suback(SubAck(packetID: subscribe.packetID, reasonCodes: codes)))
        for (filter, qos, readable) in retainedToRead {
            broker.deliverRetainedFromDisk(
                to: session, filter: filter, qos: qos, subscriptionID: subscriptionID, mayRead: readable ? nil : readCheck())
        }
        guard !retainedToSend.isEmpty else { return }
        for delivery in retainedToSend {
            _ = session.deliver(delivery, stats: broker.stats, store: store, bypassLimits: true)
        }
        drain()
    }

    /// `mayRead` as a value another thread may call (the store's, for retained messages read
    /// from disk): it captures the identity and authorizers as they are now.
    private func readCheck() -> @Sendable (String) -> Bool {
        let identity = self.identity
        let shared = broker.authorizer
        let own = clientAuthorizer?.value
        return { topic in
            if let shared, !shared.mayRead(identity, topic: topic) { return false }
            if let own, !own.mayRead(identity, topic: topic) { return false }
            return true
        }
    }

    func handleUnsubscribe(_ unsubscribe: Unsubscribe) {
        guard let session else { return }
        var codes: [ReasonCode] = []
        let store = broker.store
        var stored = false
        for fullFilter in unsubscribe.filters {
            let shared = try? Topic.parseShared(fullFilter)
            let filter = shared?.filter ?? fullFilter
            let removed = broker.router.unsubscribe(filter: filter, group: shared?.group ?? "", sessionID: session.id)
            session.locked.withLock { inner in
                if inner.subscriptions.removeValue(forKey: fullFilter) != nil, inner.persisted, let store {
                    store.submit(.deleteSubscription(sessionID: session.id, filter: fullFilter))
                    stored = true
                }
            }
            codes.append(removed ? .success : .noSubscriptionExisted)
        }
        if stored { holdOutput() }
        send(.unsuback(UnsubAck(packetID: unsubscribe.packetID, reasonCodes: version == .v5 ? codes : [])))
    }
}
