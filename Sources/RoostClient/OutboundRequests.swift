import MQTTCodec
import NIOCore

/// The client's outstanding requests: packet identifier allocation, the acknowledgements each
/// request waits for, and the server's Receive Maximum window for QoS 1 and 2 PUBLISH
/// (MQTT 5: 4.9).
///
/// Concurrency: a value owned by one ``MQTTClientChannelHandler``; used only on its channel's
/// EventLoop.
struct OutboundRequests {
    /// What an outstanding packet identifier is waiting for.
    enum Request {
        /// QoS 1 PUBLISH sent, waiting for PUBACK.
        case awaitingPubAck(EventLoopPromise<Ack?>)
        /// QoS 2 PUBLISH sent, waiting for PUBREC.
        case awaitingPubRec(EventLoopPromise<Ack?>)
        /// PUBREL sent, waiting for PUBCOMP.
        case awaitingPubComp(EventLoopPromise<Ack?>)
        case awaitingSubAck(EventLoopPromise<SubAck>)
        case awaitingUnsubAck(EventLoopPromise<UnsubAck>)

        /// True for the PUBLISH stages: they hold a slot of the Receive Maximum window.
        var holdsWindowSlot: Bool {
            switch self {
            case .awaitingPubAck, .awaitingPubRec, .awaitingPubComp: return true
            case .awaitingSubAck, .awaitingUnsubAck: return false
            }
        }

        func fail(_ error: Error) {
            switch self {
            case .awaitingPubAck(let promise), .awaitingPubRec(let promise), .awaitingPubComp(let promise):
                promise.fail(error)
            case .awaitingSubAck(let promise): promise.fail(error)
            case .awaitingUnsubAck(let promise): promise.fail(error)
            }
        }
    }

    /// A QoS 1 or 2 PUBLISH waiting for a free slot in the window.
    struct WaitingPublish {
        var publish: Publish
        var promise: EventLoopPromise<Ack?>
    }

    private struct Entry {
        var request: Request
        var timeout: Scheduled<Void>?
    }

    private var entries: [UInt16: Entry] = [:]
    private var lastPacketID: UInt16 = 0
    /// QoS 1 and 2 PUBLISH sent and not yet completed.
    private(set) var inflightPublishes = 0
    /// The server's Receive Maximum (65,535 when it sent none).
    var windowSize = Int(UInt16.max)
    private var waiting = CircularBuffer<WaitingPublish>()

    var isWindowFull: Bool { inflightPublishes >= windowSize }

    /// The next free packet identifier, cycling through 1...65535; nil when all are in use.
    mutating func allocatePacketID() -> UInt16? {
        guard entries.count < Int(UInt16.max) else { return nil }
        repeat {
            lastPacketID = lastPacketID == UInt16.max ? 1 : lastPacketID + 1
        } while entries[lastPacketID] != nil
        return lastPacketID
    }

    /// Records that `packetID` now waits for `request`; counts a PUBLISH against the window.
    mutating func insert(_ request: Request, for packetID: UInt16, timeout: Scheduled<Void>?) {
        if request.holdsWindowSlot && entries[packetID].map({ !$0.request.holdsWindowSlot }) ?? true {
            inflightPublishes += 1
        }
        entries[packetID] = Entry(request: request, timeout: timeout)
    }

    /// Moves a QoS 2 PUBLISH from PUBREC to PUBCOMP, keeping its slot and its timeout.
    mutating func replace(_ packetID: UInt16, with request: Request) {
        entries[packetID]?.request = request
    }

    func request(for packetID: UInt16) -> Request? {
        entries[packetID]?.request
    }

    /// Removes the request for `packetID`, cancelling its timeout and freeing its window slot.
    mutating func remove(_ packetID: UInt16) -> Request? {
        guard let entry = entries.removeValue(forKey: packetID) else { return nil }
        entry.timeout?.cancel()
        if entry.request.holdsWindowSlot { inflightPublishes -= 1 }
        return entry.request
    }

    mutating func enqueueWaiting(_ publish: Publish, promise: EventLoopPromise<Ack?>) {
        waiting.append(WaitingPublish(publish: publish, promise: promise))
    }

    /// The next waiting PUBLISH, if the window has room for it.
    mutating func dequeueWaiting() -> WaitingPublish? {
        guard !isWindowFull, !waiting.isEmpty else { return nil }
        return waiting.removeFirst()
    }

    /// Fails every outstanding and waiting request with `error` and forgets them.
    mutating func failAll(_ error: Error) {
        let failed = entries
        entries = [:]
        inflightPublishes = 0
        let queued = waiting
        waiting.removeAll()
        for entry in failed.values {
            entry.timeout?.cancel()
            entry.request.fail(error)
        }
        for item in queued { item.promise.fail(error) }
    }
}
