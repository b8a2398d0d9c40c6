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
    let malformedPackets = Atomic<Int>(0)
    /// QoS 1/2 publishes refused because the durable store could not commit (disk full).
    let storeRefused = Atomic<Int>(0)
}
