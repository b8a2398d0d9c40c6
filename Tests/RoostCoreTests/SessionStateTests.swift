import MQTTCodec
import NIOCore
import XCTest

@testable import RoostCore

final class SessionStateTests: XCTestCase {
    private func message(_ topic: String = "t", qos: QoS = .atLeastOnce, bytes: Int = 4, expiresAt: UInt64? = nil) -> Message {
        Message(
            topic: topic, payload: ByteBuffer(repeating: 0x61, count: bytes), qos: qos, retain: false,
            properties: Properties(), expiresAt: expiresAt, publisherID: 1)
    }

    private func delivery(_ message: Message, qos: QoS? = nil, group: String? = nil) -> QueuedDelivery {
        QueuedDelivery(message: message, qos: qos ?? message.qos, retain: false, subscriptionIDs: [], sharedGroup: group)
    }

    func testInflightWindowAndPacketIdentifiers() {
        var state = SessionState(receiveMaximum: 2)
        for _ in 0..<3 { XCTAssertNil(state.enqueue(delivery(message()), online: true)) }
        let first = state.next(now: 0)
        let second = state.next(now: 0)
        XCTAssertEqual(first?.packetID, 1)
        XCTAssertEqual(second?.packetID, 2)
        XCTAssertNil(state.next(now: 0), "window of 2 is full")
        XCTAssertFalse(state.canSendNext)
        XCTAssertNotNil(state.acknowledge(packetID: 1))
        XCTAssertNil(state.acknowledge(packetID: 1), "a second PUBACK for the same id is unknown")
        XCTAssertEqual(state.next(now: 0)?.packetID, 3)
    }

    func testQoS0BypassesTheWindowButKeepsOrder() {
        var state = SessionState(receiveMaximum: 1)
        XCTAssertNil(state.enqueue(delivery(message("a")), online: true))
        XCTAssertNil(state.enqueue(delivery(message("b")), online: true))
        XCTAssertNil(state.enqueue(delivery(message("c", qos: .atMostOnce)), online: true))
        XCTAssertEqual(state.next(now: 0)?.delivery.message.topic, "a")
        XCTAssertNil(state.next(now: 0), "b waits for the window, and c waits behind b")
        XCTAssertNotNil(state.acknowledge(packetID: 1))
        XCTAssertEqual(state.next(now: 0)?.delivery.message.topic, "b")
        let c = state.next(now: 0)
        XCTAssertEqual(c?.delivery.message.topic, "c")
        XCTAssertEqual(c?.packetID, 0)
    }

    func testQueueLimitsDropNewest() {
        var state = SessionState(receiveMaximum: 10, maxQueuedMessages: 2)
        XCTAssertNil(state.enqueue(delivery(message("1")), online: false))
        XCTAssertNil(state.enqueue(delivery(message("2")), online: false))
        XCTAssertEqual(state.enqueue(delivery(message("3")), online: false), .queueFull)
        XCTAssertEqual(state.next(now: 0)?.delivery.message.topic, "1")
        XCTAssertEqual(state.next(now: 0)?.delivery.message.topic, "2")

        var bytes = SessionState(receiveMaximum: 10, maxQueuedMessages: 0, maxQueuedBytes: 10)
        XCTAssertNil(bytes.enqueue(delivery(message("a", bytes: 4)), online: false))
        XCTAssertNil(bytes.enqueue(delivery(message("b", bytes: 4)), online: false))
        XCTAssertEqual(bytes.enqueue(delivery(message("c", bytes: 4)), online: false), .queueFull)
        XCTAssertEqual(bytes.queuedBytes, 10)
    }

    func testRetainedOnSubscribeBypassesQueueLimits() {
        var state = SessionState(receiveMaximum: 1, maxQueuedMessages: 1)
        XCTAssertNil(state.enqueue(delivery(message("1")), online: true))
        XCTAssertEqual(state.enqueue(delivery(message("2")), online: true), .queueFull)
        XCTAssertNil(state.enqueue(delivery(message("r")), online: true, bypassLimits: true))
        XCTAssertEqual(state.queuedCount, 2)
    }

    func testQoS0DroppedWhileOfflineUnlessConfigured() {
        var state = SessionState()
        XCTAssertEqual(state.enqueue(delivery(message(qos: .atMostOnce)), online: false), .qos0WhileOffline)
        state.queueQoS0WhileOffline = true
        XCTAssertNil(state.enqueue(delivery(message(qos: .atMostOnce)), online: false))
    }

    func testExpiredMessagesAreSkipped() {
        var state = SessionState()
        XCTAssertNil(state.enqueue(delivery(message("old", expiresAt: 1_000)), online: false))
        XCTAssertNil(state.enqueue(delivery(message("new", expiresAt: 5_000)), online: false))
        var dropped: [String] = []
        let next = state.next(now: 2_000) { delivery, reason in
            XCTAssertEqual(reason, .expired)
            dropped.append(delivery.message.topic)
        }
        XCTAssertEqual(next?.delivery.message.topic, "new")
        XCTAssertEqual(dropped, ["old"])
        XCTAssertEqual(state.queuedBytes, 0)
    }

    func testQoS2Handshake() {
        var state = SessionState()
        XCTAssertNil(state.enqueue(delivery(message(qos: .exactlyOnce)), online: true))
        let id = state.next(now: 0)?.packetID ?? 0
        XCTAssertNil(state.completed(packetID: id), "PUBCOMP before PUBREC is unknown")
        XCTAssertNil(state.acknowledge(packetID: id), "PUBACK is not for QoS 2")
        XCTAssertNotNil(state.received(packetID: id, failed: false))
        XCTAssertEqual(state.inflight.first?.stage, .released)
        XCTAssertNotNil(state.completed(packetID: id))
        XCTAssertTrue(state.inflight.isEmpty)
    }

    func testFailedPubRecEndsTheExchange() {
        var state = SessionState()
        XCTAssertNil(state.enqueue(delivery(message(qos: .exactlyOnce)), online: true))
        let id = state.next(now: 0)?.packetID ?? 0
        XCTAssertNotNil(state.received(packetID: id, failed: true))
        XCTAssertTrue(state.inflight.isEmpty)
    }

    func testPacketIdentifiersWrapAndSkipThoseInUse() {
        var state = SessionState(receiveMaximum: 65_535, maxQueuedMessages: 0)
        XCTAssertNil(state.enqueue(delivery(message()), online: true))
        let held = state.next(now: 0)?.packetID
        XCTAssertEqual(held, 1)
        for _ in 0..<65_534 {
            XCTAssertNil(state.enqueue(delivery(message()), online: true))
            guard let next = state.next(now: 0) else { return XCTFail("no id") }
            XCTAssertNotNil(state.acknowledge(packetID: next.packetID))
        }
        XCTAssertNil(state.enqueue(delivery(message()), online: true))
        XCTAssertEqual(state.next(now: 0)?.packetID, 2, "id 1 is still in flight, so the wrap skips it")
    }

    func testSharedDeliveriesAreTakenBack() {
        var state = SessionState(receiveMaximum: 1)
        XCTAssertNil(state.enqueue(delivery(message("s1"), group: "g\u{0}t"), online: true))
        XCTAssertNil(state.enqueue(delivery(message("own")), online: true))
        XCTAssertNil(state.enqueue(delivery(message("s2"), group: "g\u{0}t"), online: true))
        _ = state.next(now: 0)
        let taken = state.takeSharedDeliveries()
        XCTAssertEqual(taken.map(\.message.topic), ["s1", "s2"])
        XCTAssertTrue(state.inflight.isEmpty)
        XCTAssertEqual(state.next(now: 0)?.delivery.message.topic, "own")
    }

    func testMessageExpiryIntervalCountsDown() {
        let message = message(expiresAt: 10_500)
        let publish = message.publish(qos: .atLeastOnce, retain: false, packetID: 3, dup: false, subscriptionIDs: [7], now: 4_000)
        XCTAssertEqual(publish.properties.messageExpiryInterval, 7)
        XCTAssertEqual(publish.properties.subscriptionIdentifiers, [7])
        XCTAssertEqual(publish.packetID, 3)
    }

    func testSmallerWindowAfterReconnectRequeuesQoS1InOrder() {
        var state = SessionState(receiveMaximum: 4)
        for topic in ["1", "2", "3", "4", "5"] { XCTAssertNil(state.enqueue(delivery(message(topic)), online: true)) }
        for _ in 0..<4 { _ = state.next(now: 0) }
        state.receiveMaximum = 2
        state.fitInflight(to: 2)
        XCTAssertEqual(state.inflight.map(\.delivery.message.topic), ["1", "2"])
        XCTAssertNil(state.next(now: 0), "the window of 2 is full")
        XCTAssertNotNil(state.acknowledge(packetID: state.inflight.first?.packetID ?? 0))
        XCTAssertEqual(state.next(now: 0)?.delivery.message.topic, "3")
        XCTAssertEqual(state.queue.map(\.message.topic), ["4", "5"])
    }
}

/// Paging of stored deliveries: beyond `memoryQueueLimit` they live on disk only and come back
/// in order, a page at a time.
final class SessionStatePagingTests: XCTestCase {
    private func delivery(_ text: String) -> QueuedDelivery {
        let message = Message(
            topic: "p", payload: ByteBuffer(string: text), qos: .atLeastOnce, retain: false, properties: Properties(),
            expiresAt: nil, publisherID: 0)
        return QueuedDelivery(message: message, qos: .atLeastOnce, retain: false, subscriptionIDs: [])
    }

    func testDeliveriesBeyondTheMemoryLimitWaitOnDiskAndComeBackInOrder() {
        var state = SessionState(receiveMaximum: 10, maxQueuedMessages: 0)
        state.memoryQueueLimit = 4
        for number in 0..<10 { XCTAssertNil(state.enqueue(delivery("\(number)"), online: false, stored: true)) }
        XCTAssertEqual(state.queuedCount, 4)
        XCTAssertEqual(state.spilledCount, 6)
        XCTAssertEqual(state.spillFromSeq, 5)
        XCTAssertFalse(state.wantsPageIn, "the queue in memory is still full")
        // A QoS 1 message is not stored without the flag: it stays in memory.
        var taken: [String] = []
        while let next = state.next(now: 0) { taken.append(String(buffer: next.delivery.message.payload)) }
        XCTAssertEqual(taken, ["0", "1", "2", "3"])
        XCTAssertTrue(state.wantsPageIn)
        // The store returns seq 5... (the disk rows), in order.
        let page = (5...7).map { seq -> QueuedDelivery in
            var d = delivery("\(seq - 1)")
            d.seq = UInt64(seq)
            return d
        }
        state.pageInPending = true
        state.pageIn(page, epoch: state.spillEpoch)
        XCTAssertEqual(state.spilledCount, 3)
        XCTAssertEqual(state.spillFromSeq, 8)
        XCTAssertEqual(state.queuedCount, 3)
        // New deliveries keep going to disk while some wait there (order).
        XCTAssertNil(state.enqueue(delivery("10"), online: true, stored: true))
        XCTAssertEqual(state.spilledCount, 4)
    }

    func testLimitsCountWhatWaitsOnDisk() {
        var state = SessionState(maxQueuedMessages: 5)
        state.memoryQueueLimit = 2
        for number in 0..<5 { XCTAssertNil(state.enqueue(delivery("\(number)"), online: false, stored: true)) }
        XCTAssertEqual(state.enqueue(delivery("5"), online: false, stored: true), .queueFull)
    }

    func testAPageFromBeforeACleanStartIsThrownAway() {
        var state = SessionState(maxQueuedMessages: 0)
        state.memoryQueueLimit = 1
        for number in 0..<3 { XCTAssertNil(state.enqueue(delivery("\(number)"), online: false, stored: true)) }
        let epoch = state.spillEpoch
        state.reset()
        var stale = delivery("old")
        stale.seq = 2
        state.pageIn([stale], epoch: epoch)
        XCTAssertEqual(state.queuedCount, 0)
        XCTAssertEqual(state.spilledCount, 0)
    }

    func testAnEmptyPageClearsTheCountSoNothingWaitsForever() {
        var state = SessionState(maxQueuedMessages: 0)
        state.memoryQueueLimit = 1
        for number in 0..<3 { XCTAssertNil(state.enqueue(delivery("\(number)"), online: false, stored: true)) }
        state.pageIn([], epoch: state.spillEpoch)
        XCTAssertEqual(state.spilledCount, 0)
    }
}
