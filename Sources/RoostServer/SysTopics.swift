import MQTTCodec
import NIOCore
import RoostCore

extension Server {
    /// Publishes `$SYS/broker/...` (retained) every `sys_interval` seconds, in Mosquitto's names.
    func startSysTopics() {
        let interval = broker.settings.sysInterval
        guard interval > 0 else { return }
        let broker = self.broker
        let loop = group.next()
        broker.publishSys(name: "version", value: "roost \(Broker.version)")
        loop.scheduleRepeatedTask(initialDelay: .zero, delay: .seconds(Int64(interval))) { _ in
            broker.publishSysStats()
        }
    }

    /// Removes expired retained messages once a minute (they are also skipped on SUBSCRIBE).
    func startRetainedSweep() {
        let broker = self.broker
        group.next().scheduleRepeatedTask(initialDelay: .seconds(60), delay: .seconds(60)) { _ in
            broker.purgeExpiredRetained()
        }
    }
}

extension Broker {
    /// Drops retained messages whose expiry has passed; returns how many.
    @discardableResult
    func purgeExpiredRetained() -> Int {
        let now = self.now()
        return retained.withLock { tree in tree.removeAll { _, message in message.isExpired(at: now) } }
    }

    func publishSys(name: String, value: String) {
        let message = Message(
            topic: "$SYS/broker/" + name, payload: ByteBuffer(string: value), qos: .atMostOnce, retain: true,
            properties: Properties(), expiresAt: nil, publisherID: 0)
        publishInternally(message)
    }

    func publishSysStats() {
        let uptime = (NIODeadline.now() - startTime).nanoseconds / 1_000_000_000
        let connected = stats.clientsConnected.load(ordering: .relaxed)
        let total = sessionCount
        publishSys(name: "uptime", value: "\(uptime) seconds")
        publishSys(name: "clients/connected", value: "\(connected)")
        publishSys(name: "clients/total", value: "\(total)")
        publishSys(name: "clients/disconnected", value: "\(max(0, total - connected))")
        publishSys(name: "clients/maximum", value: "\(settings.maxConnections)")
        publishSys(name: "messages/received", value: "\(stats.publishReceived.load(ordering: .relaxed))")
        publishSys(name: "messages/sent", value: "\(stats.publishSent.load(ordering: .relaxed))")
        publishSys(name: "publish/messages/received", value: "\(stats.publishReceived.load(ordering: .relaxed))")
        publishSys(name: "publish/messages/sent", value: "\(stats.publishSent.load(ordering: .relaxed))")
        publishSys(name: "publish/messages/dropped", value: "\(stats.messagesDropped.load(ordering: .relaxed))")
        publishSys(name: "publish/messages/dropped/queue_full", value: "\(stats.droppedQueueFull.load(ordering: .relaxed))")
        publishSys(name: "publish/messages/dropped/qos0_offline", value: "\(stats.droppedQoS0Offline.load(ordering: .relaxed))")
        publishSys(name: "publish/messages/dropped/expired", value: "\(stats.droppedExpired.load(ordering: .relaxed))")
        publishSys(name: "publish/messages/dropped/too_large", value: "\(stats.droppedTooLarge.load(ordering: .relaxed))")
        publishSys(name: "store/refused", value: "\(stats.storeRefused.load(ordering: .relaxed))")
        if let store {
            let counters = store.statistics
            publishSys(name: "store/changes", value: "\(counters.changes)")
            publishSys(name: "store/rows_written", value: "\(counters.rowsWritten)")
            publishSys(name: "store/commits", value: "\(counters.commits)")
            publishSys(name: "store/failing", value: store.isFailing ? "1" : "0")
        }
        publishSys(name: "load/bytes/received", value: "\(stats.bytesReceived.load(ordering: .relaxed))")
        publishSys(name: "load/bytes/sent", value: "\(stats.bytesSent.load(ordering: .relaxed))")
        publishSys(name: "bytes/received", value: "\(stats.bytesReceived.load(ordering: .relaxed))")
        publishSys(name: "bytes/sent", value: "\(stats.bytesSent.load(ordering: .relaxed))")
        for (name, value) in [
            ("security/auth/bad_credentials", stats.authBadCredentials.load(ordering: .relaxed)),
            ("security/auth/not_authorized", stats.authNotAuthorized.load(ordering: .relaxed)),
            ("security/auth/delayed", stats.authDelayed.load(ordering: .relaxed)),
            ("security/publish/denied", stats.publishDenied.load(ordering: .relaxed)),
            ("security/subscribe/denied", stats.subscribeDenied.load(ordering: .relaxed)),
            ("security/proxy_protocol/rejected", stats.proxyRejected.load(ordering: .relaxed)),
            ("security/tls/handshake_failures", stats.tlsHandshakeFailures.load(ordering: .relaxed)),
            ("limits/max_connections", stats.limitMaxConnections.load(ordering: .relaxed)),
            ("limits/max_connection_rate", stats.limitConnectionRate.load(ordering: .relaxed)),
            ("limits/max_publish_rate", stats.limitPublishRate.load(ordering: .relaxed)),
            ("limits/max_subscriptions", stats.limitSubscriptions.load(ordering: .relaxed)),
            ("limits/topic", stats.limitTopic.load(ordering: .relaxed)),
            ("limits/max_packet_size", stats.limitPacketSize.load(ordering: .relaxed)),
            ("limits/connect_timeout", stats.limitConnectTimeout.load(ordering: .relaxed)),
            ("packets/malformed", stats.malformedPackets.load(ordering: .relaxed)),
        ] {
            publishSys(name: name, value: "\(value)")
        }
        publishSys(name: "subscriptions/count", value: "\(router.count)")
        publishSys(name: "retained messages/count", value: "\(retainedCount)")
    }
}
