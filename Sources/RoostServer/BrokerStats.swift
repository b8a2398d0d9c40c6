import RoostCore
import Synchronization

/// Counters for `$SYS` and metrics. Relaxed atomics: each is exact, the set is not a snapshot.
final class BrokerStats: Sendable {
    /// Counts one message not delivered to one session, in the total and under its reason.
    func dropped(_ reason: DropReason) {
        messagesDropped.add(1, ordering: .relaxed)
        switch reason {
        case .queueFull: droppedQueueFull.add(1, ordering: .relaxed)
        case .qos0WhileOffline: droppedQoS0Offline.add(1, ordering: .relaxed)
        case .expired: droppedExpired.add(1, ordering: .relaxed)
        case .tooLargeForClient: droppedTooLarge.add(1, ordering: .relaxed)
        }
    }

    let clientsConnected = Atomic<Int>(0)
    let clientsTotalConnects = Atomic<Int>(0)
    let publishReceived = Atomic<Int>(0)
    let publishSent = Atomic<Int>(0)
    let bytesReceived = Atomic<Int>(0)
    let bytesSent = Atomic<Int>(0)
    let messagesDropped = Atomic<Int>(0)
    let droppedQueueFull = Atomic<Int>(0)
    let droppedQoS0Offline = Atomic<Int>(0)
    let droppedExpired = Atomic<Int>(0)
    let droppedTooLarge = Atomic<Int>(0)
    /// Packets the decoder refused for breaking the protocol (every `DecodeError` but
    /// `packetTooLarge`, which counts in `limitPacketSize`); each closed its connection.
    let malformedPackets = Atomic<Int>(0)
    /// QoS 1/2 publishes refused because the durable store could not commit (disk full).
    let storeRefused = Atomic<Int>(0)

    // Security and limits: each counts one refusal; `$SYS/broker/security/...` and `.../limits/...`.
    /// CONNECTs refused for a bad user name or password (0x86 / 0x04).
    let authBadCredentials = Atomic<Int>(0)
    /// CONNECTs refused as not authorized (0x87 / 0x05): anonymous where it is off, a missing certificate identity.
    let authNotAuthorized = Atomic<Int>(0)
    /// CONNECTs held back by the login back-off of their address.
    let authDelayed = Atomic<Int>(0)
    /// PUBLISHes (and wills) refused by the authorizer.
    let publishDenied = Atomic<Int>(0)
    /// Subscriptions refused by the authorizer.
    let subscribeDenied = Atomic<Int>(0)
    /// Connections closed at once: `max_connections` (global or the listener's) reached.
    let limitMaxConnections = Atomic<Int>(0)
    /// Connections closed at once: `max_connection_rate` exceeded.
    let limitConnectionRate = Atomic<Int>(0)
    /// Times a client's reading was paused by `max_publish_rate`.
    let limitPublishRate = Atomic<Int>(0)
    /// Subscriptions refused by `max_subscriptions`.
    let limitSubscriptions = Atomic<Int>(0)
    /// Topic names or filters refused by `max_topic_levels` / `max_topic_length`.
    let limitTopic = Atomic<Int>(0)
    /// Connections closed by `max_packet_size`: a packet over it (MQTT 5: DISCONNECT 0x95), or more
    /// than it sent while the CONNECT waits for its authentication.
    let limitPacketSize = Atomic<Int>(0)
    /// Sockets closed by `connect_timeout`: no CONNECT (or TLS handshake, WebSocket upgrade,
    /// authentication) finished in time.
    let limitConnectTimeout = Atomic<Int>(0)
    /// Connections closed on a `proxy_protocol` listener for a missing or malformed PROXY header.
    let proxyRejected = Atomic<Int>(0)
    /// TLS handshakes that failed (bad or missing client certificate, protocol mismatch).
    let tlsHandshakeFailures = Atomic<Int>(0)
}
