import Synchronization

/// Counters for `$SYS` and metrics. Relaxed atomics: each is exact, the set is not a snapshot.
final class BrokerStats: Sendable {
    let clientsConnected = Atomic<Int>(0)
    let clientsTotalConnects = Atomic<Int>(0)
    let messagesReceived = Atomic<Int>(0)
    let messagesSent = Atomic<Int>(0)
    let publishReceived = Atomic<Int>(0)
    let publishSent = Atomic<Int>(0)
    let bytesReceived = Atomic<Int>(0)
    let bytesSent = Atomic<Int>(0)
    let messagesDropped = Atomic<Int>(0)
    let malformedPackets = Atomic<Int>(0)
}
