import MQTTCodec
import NIOCore
import RoostCore
import XCTest

@testable import RoostPersistence

final class RoundTripTests: StoreTestCase {
    func testEveryKindOfRowSurvivesCloseAndReopen() throws {
        var willProperties = Properties()
        willProperties.willDelayInterval = 30
        willProperties.contentType = "text/plain"
        willProperties.messageExpiryInterval = 120
        willProperties.userProperties = [UserProperty(name: "k", value: "v")]
        let will = Will(topic: "clients/a/status", payload: bytes("gone"), qos: .exactlyOnce, retain: true, properties: willProperties)
        let plainWill = Will(topic: "clients/c/status", payload: ByteBuffer())
        let sessionA = SessionRecord(
            id: 1, clientID: "a", expiryInterval: 3600, will: will, disconnectedAt: wall.now - 10_000, willDueAt: wall.now + 20_000)
        let sessionB = SessionRecord(id: 2, clientID: "b", expiryInterval: .max)
        let sessionC = SessionRecord(id: 3, clientID: "c", expiryInterval: 60, will: plainWill)

        let subscriptions: [(Subscription, Int?)] = [
            (Subscription(filter: "$share/g/t", qos: .atLeastOnce, retainHandling: .sendIfNew), nil),
            (Subscription(filter: "plain", qos: .atMostOnce), 1),
            (Subscription(filter: "x/+/y", qos: .exactlyOnce, noLocal: true, retainAsPublished: true, retainHandling: .doNotSend), 268_435_455),
        ]

        var rich = Properties()
        rich.payloadFormatIndicator = 1
        rich.contentType = "application/json"
        rich.responseTopic = "reply/here"
        rich.correlationData = bytes("corr")
        rich.messageExpiryInterval = 60
        rich.userProperties = [UserProperty(name: "a", value: "1"), UserProperty(name: "a", value: "2")]
        let first = message("q/1", "{\"n\":1}", qos: .atLeastOnce, retain: true, properties: rich, expiresAt: UInt64(monotonic.now) + 60_000)
        let second = message("q/2", "two", qos: .exactlyOnce)
        let third = message("q/3", "", qos: .atLeastOnce)
        let retainedOne = message("r/1", "one", qos: .atLeastOnce, retain: true, properties: rich, expiresAt: UInt64(monotonic.now) + 90_000)
        let retainedTwo = message("r/2", "two", qos: .atMostOnce, retain: true)

        let store = try open(fsync: .full)
        store.submit(.putSession(sessionA))
        store.submit(.putSession(sessionB))
        store.submit(.putSession(sessionC))
        for (subscription, id) in subscriptions {
            store.submit(.putSubscription(sessionID: 1, subscription: subscription, subscriptionID: id))
        }
        store.submit(.enqueue(sessionID: 1, delivery: delivery(first, seq: 1, subscriptionIDs: [7, 268_435_455], group: "g\u{0}t")))
        store.submit(.enqueue(sessionID: 1, delivery: delivery(second, seq: 2)))
        store.submit(.enqueue(sessionID: 1, delivery: delivery(third, seq: 3, qos: .atLeastOnce)))
        store.submit(.addInbound(sessionID: 1, packetID: 10))
        store.submit(.addInbound(sessionID: 1, packetID: 11))
        store.submit(.addInbound(sessionID: 2, packetID: 65_535))
        store.submit(.putRetained(retainedOne))
        store.submit(.putRetained(retainedTwo))
        store.submit(.putRetained(message("r/3", "gone soon", retain: true)))
        waitDurable(store)
        // Later batches update rows already on disk.
        store.submit(.sent(sessionID: 1, seq: 1, packetID: 5))
        store.submit(.sent(sessionID: 1, seq: 2, packetID: 6))
        waitDurable(store)
        store.submit(.released(sessionID: 1, seq: 2))
        store.submit(.removeInbound(sessionID: 1, packetID: 11))
        store.submit(.deleteRetained(topic: "r/3"))
        store.close()

        // The broker's clock restarts elsewhere; expiry keeps its wall-clock meaning.
        monotonic.now = 5_000
        wall.advance(by: 1_000)
        let reopened = try open()
        defer { reopened.close() }
        let state = try reopened.load()

        XCTAssertEqual(state.sessions, [sessionA, sessionB, sessionC])
        XCTAssertEqual(state.sessions.first?.will?.properties.willDelayInterval, 30)
        XCTAssertEqual(state.subscriptions[1]?.map(\.0), subscriptions.map(\.0))
        XCTAssertEqual(state.subscriptions[1]?.map(\.1), subscriptions.map(\.1))
        XCTAssertNil(state.subscriptions[2])

        let queue = try XCTUnwrap(state.queues[1])
        XCTAssertEqual(queue.map(\.seq), [1, 2, 3])
        XCTAssertEqual(queue.map(\.packetID), [5, 6, 0])
        XCTAssertEqual(queue.map(\.released), [false, true, false])
        XCTAssertEqual(queue.map(\.delivery.seq), [1, 2, 3])
        XCTAssertEqual(queue[0].delivery.subscriptionIDs, [7, 268_435_455])
        XCTAssertEqual(queue[0].delivery.sharedGroup, "g\u{0}t")
        XCTAssertEqual(queue[0].delivery.qos, .atLeastOnce)
        XCTAssertTrue(queue[0].delivery.retain)
        XCTAssertNil(queue[1].delivery.sharedGroup)
        XCTAssertEqual(queue[1].delivery.qos, .exactlyOnce)
        // 60 s after the first clock's "now", 1 s of wall time has passed: 59 s left.
        assertSame(queue[0].delivery.message, first, expiresAt: 5_000 + 59_000)
        assertSame(queue[1].delivery.message, second, expiresAt: nil)
        assertSame(queue[2].delivery.message, third, expiresAt: nil)

        XCTAssertEqual(state.inbound[1], [10])
        XCTAssertEqual(state.inbound[2], [65_535])
        XCTAssertEqual(state.retained.map(\.topic), ["r/1", "r/2"])
        assertSame(state.retained.first, retainedOne, expiresAt: 5_000 + 89_000)
        assertSame(state.retained.last, retainedTwo, expiresAt: nil)
    }

    func testDeleteAndClearSessionApplyInOrderWithTheRowsAroundThem() throws {
        let store = try open()
        for id in 1...3 {
            store.submit(.putSession(SessionRecord(id: id, clientID: "c\(id)", expiryInterval: 100)))
            store.submit(.putSubscription(sessionID: id, subscription: Subscription(filter: "f/\(id)"), subscriptionID: nil))
            store.submit(.enqueue(sessionID: id, delivery: delivery(message("t/\(id)"), seq: 1)))
            store.submit(.addInbound(sessionID: id, packetID: 9))
        }
        waitDurable(store)
        // In one batch: clean start of 1 followed by new rows; 2 deleted and created again;
        // 3 deleted.
        store.submit(.clearSession(id: 1))
        store.submit(.enqueue(sessionID: 1, delivery: delivery(message("after/clear"), seq: 2)))
        store.submit(.putSubscription(sessionID: 1, subscription: Subscription(filter: "new/1"), subscriptionID: 4))
        store.submit(.deleteSession(id: 2))
        store.submit(.putSession(SessionRecord(id: 2, clientID: "c2", expiryInterval: 5)))
        store.submit(.deleteSession(id: 3))
        // A subscription replaced, deleted and put again keeps its last value.
        store.submit(.putSubscription(sessionID: 2, subscription: Subscription(filter: "x", qos: .atLeastOnce), subscriptionID: 1))
        store.submit(.deleteSubscription(sessionID: 2, filter: "x"))
        store.submit(.putSubscription(sessionID: 2, subscription: Subscription(filter: "x", qos: .exactlyOnce), subscriptionID: 2))
        store.submit(.putRetained(message("r", "1", retain: true)))
        store.submit(.deleteRetained(topic: "r"))
        store.submit(.putRetained(message("r", "3", retain: true)))
        store.close()

        let reopened = try open()
        defer { reopened.close() }
        let state = try reopened.load()
        XCTAssertEqual(state.sessions.map(\.clientID), ["c1", "c2"])
        XCTAssertEqual(state.sessions.last?.expiryInterval, 5)
        XCTAssertEqual(state.subscriptions[1]?.map(\.0.filter), ["new/1"])
        XCTAssertEqual(state.queues[1]?.map(\.seq), [2])
        XCTAssertEqual(state.queues[1]?.first?.delivery.message.topic, "after/clear")
        XCTAssertNil(state.inbound[1])
        XCTAssertEqual(state.subscriptions[2]?.map(\.0.qos), [.exactlyOnce])
        XCTAssertEqual(state.subscriptions[2]?.map(\.1), [2])
        XCTAssertNil(state.queues[2])
        XCTAssertNil(state.inbound[2])
        XCTAssertNil(state.subscriptions[3])
        XCTAssertNil(state.queues[3])
        XCTAssertEqual(state.retained.map { String(buffer: $0.payload) }, ["3"])
    }

    func testANewSessionIDForAClientIDReplacesTheOldSessionAndItsRows() throws {
        let store = try open()
        store.submit(.putSession(SessionRecord(id: 1, clientID: "same", expiryInterval: 100)))
        store.submit(.enqueue(sessionID: 1, delivery: delivery(message("old"), seq: 1)))
        store.submit(.putSession(SessionRecord(id: 7, clientID: "same", expiryInterval: 100)))
        store.close()

        let reopened = try open()
        defer { reopened.close() }
        let state = try reopened.load()
        XCTAssertEqual(state.sessions.map(\.id), [7])
        XCTAssertTrue(state.queues.isEmpty)
        XCTAssertEqual(try SQLiteStore.inspect(directory: dataDirectory).queued, 0, "the old session's rows are gone, not orphaned")
    }

    func testInspectAndDumpReadBesideAnOpenStore() throws {
        let store = try open()
        defer { store.close() }
        store.submit(.putSession(SessionRecord(id: 1, clientID: "a", expiryInterval: 100, disconnectedAt: wall.now)))
        store.submit(.putSession(SessionRecord(id: 2, clientID: "b", expiryInterval: 100)))
        store.submit(.putSubscription(sessionID: 1, subscription: Subscription(filter: "f"), subscriptionID: nil))
        store.submit(.enqueue(sessionID: 1, delivery: delivery(message("t", expiresAt: UInt64(monotonic.now) + 5_000), seq: 1)))
        store.submit(.enqueue(sessionID: 1, delivery: delivery(message("t"), seq: 2)))
        store.submit(.addInbound(sessionID: 2, packetID: 3))
        store.submit(.putRetained(message("r", retain: true)))
        waitDurable(store)
        store.submit(.sent(sessionID: 1, seq: 1, packetID: 1))
        waitDurable(store)

        let inspection = try SQLiteStore.inspect(directory: dataDirectory)
        XCTAssertEqual(inspection.schemaVersion, Schema.version)
        XCTAssertEqual(inspection.sessions, 2)
        XCTAssertEqual(inspection.sessionsOnline, 1)
        XCTAssertEqual(inspection.subscriptions, 1)
        XCTAssertEqual(inspection.queued, 1)
        XCTAssertEqual(inspection.inflight, 1)
        XCTAssertEqual(inspection.inboundIDs, 1)
        XCTAssertEqual(inspection.retained, 1)
        XCTAssertGreaterThan(inspection.databaseBytes + inspection.walBytes, 0)

        let dump = try SQLiteStore.dump(directory: dataDirectory)
        XCTAssertEqual(dump.sessions.map(\.record.clientID), ["a", "b"])
        XCTAssertEqual(dump.sessions.first?.queue.map(\.expiresAt), [wall.now + 5_000, nil])
        XCTAssertEqual(dump.sessions.last?.inbound, [3])
        XCTAssertEqual(dump.retained.map(\.message.topic), ["r"])
    }
}
