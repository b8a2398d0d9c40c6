import MQTTCodec
import NIOCore
import RoostCore
import Synchronization
import XCTest

@testable import RoostServer

/// A store that commits only when the test says so, to check what the broker submits and what
/// it holds back until the commit.
final class ManualStore: DurableStore, @unchecked Sendable {
    private struct State {
        var changes: [StoreChange] = []
        var ticket: UInt64 = 0
        var durable: UInt64 = 0
        var waiting: [(UInt64, @Sendable () -> Void)] = []
        var reads: [@Sendable ([Message]) -> Void] = []
    }
    /// What a `.readRetained` returns when `commit()` runs.
    let retainedOnDisk = Mutex<[Message]>([])
    private let state = Mutex(State())
    let failing = Atomic<Bool>(false)

    func load(memoryQueueLimit: Int, retainedMemoryLimit: Int) throws -> StoredState { StoredState() }

    func readQueue(sessionID: Int, fromSeq: UInt64, limit: Int, _ completion: @escaping @Sendable ([QueuedDelivery]?) -> Void) {
        completion([])
    }

    func submit(_ change: StoreChange) -> UInt64 {
        state.withLock { state in
            state.changes.append(change)
            if case .readRetained(_, _, let deliver) = change { state.reads.append(deliver) }
            state.ticket += 1
            return state.ticket
        }
    }

    var lastTicket: UInt64 { state.withLock { $0.ticket } }

    var backlog: Int { state.withLock { Int($0.ticket - $0.durable) } }

    func whenDurable(_ ticket: UInt64, _ callback: @escaping @Sendable () -> Void) {
        let now = state.withLock { state -> Bool in
            if ticket <= state.durable { return true }
            state.waiting.append((ticket, callback))
            return false
        }
        if now { callback() }
    }

    var isFailing: Bool { failing.load(ordering: .relaxed) }

    func close() {}

    var statistics: StoreStatistics { StoreStatistics() }

    /// Makes everything submitted so far durable and runs the callbacks that waited for it.
    func commit() {
        let (due, reads) = state.withLock { state -> ([@Sendable () -> Void], [@Sendable ([Message]) -> Void]) in
            state.durable = state.ticket
            let due = state.waiting.filter { $0.0 <= state.durable }.map(\.1)
            state.waiting.removeAll { $0.0 <= state.durable }
            defer { state.reads.removeAll() }
            return (due, state.reads)
        }
        let messages = retainedOnDisk.withLock { $0 }
        for read in reads { read(messages) }
        for callback in due { callback() }
    }

    /// The changes submitted since the last call, described briefly.
    func takeChanges() -> [String] {
        state.withLock { state in
            defer { state.changes.removeAll() }
            return state.changes.map { change in
                switch change {
                case .putSession(let record): return "putSession \(record.clientID) online=\(record.disconnectedAt == nil)"
                case .deleteSession: return "deleteSession"
                case .clearSession: return "clearSession"
                case .putSubscription(_, let subscription, _): return "putSubscription \(subscription.filter)"
                case .deleteSubscription(_, let filter): return "deleteSubscription \(filter)"
                case .enqueue(_, let delivery): return "enqueue \(delivery.seq) \(delivery.message.topic)"
                case .sent(_, let seq, let packetID): return "sent \(seq) \(packetID)"
                case .released(_, let seq): return "released \(seq)"
                case .dequeue(_, let seq): return "dequeue \(seq)"
                case .addInbound(_, let packetID): return "addInbound \(packetID)"
                case .removeInbound(_, let packetID): return "removeInbound \(packetID)"
                case .putRetained(let message): return "putRetained \(message.topic)"
                case .deleteRetained(let topic): return "deleteRetained \(topic)"
                case .readRetained(let filter, _, _): return "readRetained \(filter)"
                }
            }
        }
    }
}

/// The order of effects with a durable store: an acknowledgement that promises durability
/// (CONNACK of a stored session, SUBACK, PUBACK, PUBREC, PUBREL, PUBCOMP) and everything after
/// it waits for the commit; what needs nothing stored never waits.
final class DurabilityOrderTests: XCTestCase {
    private func connectHeld(_ harness: Harness, _ store: ManualStore, _ connect: Connect) throws -> TestClient {
        let client = try harness.open(version: connect.version)
        try client.send(.connect(connect))
        harness.loop.run()
        if connect.properties.sessionExpiryInterval ?? 0 > 0 {
            XCTAssertEqual(try client.receive().count, 0, "CONNACK of a stored session waits for the commit")
            store.commit()
            harness.loop.run()
        }
        guard case .connack(let ack)? = try client.receive().first else {
            XCTFail("no CONNACK")
            throw Harness.TestError.noConnAck
        }
        XCTAssertEqual(ack.reasonCode, .success)
        return client
    }

    func testConnAckSubAckAndPubAckWaitForTheCommit() throws {
        let store = ManualStore()
        let harness = Harness(store: store)
        let subscriber = try connectHeld(harness, store, .v5("sub", expiry: 300))
        XCTAssertEqual(store.takeChanges(), ["putSession sub online=true"])

        try subscriber.send(.subscribe(Subscribe(packetID: 1, subscriptions: [Subscription(filter: "d/#", qos: .exactlyOnce)])))
        XCTAssertEqual(try subscriber.receive().count, 0, "SUBACK waits")
        XCTAssertEqual(store.takeChanges(), ["putSubscription d/#"])
        store.commit()
        harness.loop.run()
        guard case .suback? = try subscriber.receive().first else { return XCTFail("SUBACK after the commit") }
        subscriber.drop()
        XCTAssertEqual(store.takeChanges(), ["putSession sub online=false"])

        let publisher = try connectHeld(harness, store, .v5("pub"))
        XCTAssertEqual(store.takeChanges(), [], "a session that ends with its connection is not stored")
        try publisher.send(.publish(Publish(topic: "d/1", payload: ByteBuffer(string: "one"), qos: .atLeastOnce, packetID: 5)))
        try publisher.send(.pingreq)
        XCTAssertEqual(try publisher.receive().count, 0, "PUBACK waits, and what follows it too")
        XCTAssertEqual(store.takeChanges(), ["enqueue 1 d/1"])
        store.commit()
        harness.loop.run()
        let packets = try publisher.receive()
        guard packets.count == 2, case .puback(let ack) = packets[0], case .pingresp = packets[1] else {
            return XCTFail("PUBACK then PINGRESP after the commit, got \(packets)")
        }
        XCTAssertEqual(ack.packetID, 5)

        // QoS 0 and topics nobody stored subscribes to: nothing stored, nothing waits.
        try publisher.send(.publish(Publish(topic: "d/2", payload: ByteBuffer(string: "zero"))))
        try publisher.send(.publish(Publish(topic: "other", payload: ByteBuffer(string: "x"), qos: .atLeastOnce, packetID: 6)))
        XCTAssertEqual(store.takeChanges(), [])
        guard case .puback(let free)? = try publisher.receive().first else { return XCTFail("PUBACK at once") }
        XCTAssertEqual(free.packetID, 6)
    }

    func testQoS2BothWaysWaitsAtEveryStep() throws {
        let store = ManualStore()
        let harness = Harness(store: store)
        let subscriber = try connectHeld(harness, store, .v5("sub2", expiry: 300))
        try subscriber.send(.subscribe(Subscribe(packetID: 1, subscriptions: [Subscription(filter: "q2", qos: .exactlyOnce)])))
        store.commit()
        harness.loop.run()
        _ = try subscriber.receive()
        let publisher = try connectHeld(harness, store, .v5("pub2", expiry: 300))
        _ = store.takeChanges()

        try publisher.send(.publish(Publish(topic: "q2", payload: ByteBuffer(string: "m"), qos: .exactlyOnce, packetID: 9)))
        XCTAssertEqual(try publisher.receive().count, 0, "PUBREC waits")
        XCTAssertEqual(try subscriber.receive().count, 0, "the QoS 2 PUBLISH waits for its packet id to be stored")
        XCTAssertEqual(store.takeChanges(), ["addInbound 9", "enqueue 1 q2", "sent 1 1"])
        store.commit()
        harness.loop.run()
        guard case .pubrec? = try publisher.receive().first else { return XCTFail("PUBREC after the commit") }
        guard case .publish(let delivered)? = try subscriber.receive().first else { return XCTFail("PUBLISH after the commit") }

        try publisher.send(.pubrel(Ack(packetID: 9)))
        XCTAssertEqual(try publisher.receive().count, 0, "PUBCOMP waits until the id is forgotten on disk")
        try subscriber.send(.pubrec(Ack(packetID: delivered.packetID)))
        XCTAssertEqual(try subscriber.receive().count, 0, "PUBREL waits")
        XCTAssertEqual(store.takeChanges(), ["removeInbound 9", "released 1"])
        store.commit()
        harness.loop.run()
        guard case .pubcomp? = try publisher.receive().first else { return XCTFail("PUBCOMP after the commit") }
        guard case .pubrel? = try subscriber.receive().first else { return XCTFail("PUBREL after the commit") }
        try subscriber.send(.pubcomp(Ack(packetID: delivered.packetID)))
        XCTAssertEqual(store.takeChanges(), ["dequeue 1"])
    }

    func testFailingStoreRefusesNewStoredMessages() throws {
        let store = ManualStore()
        let harness = Harness(store: store)
        let subscriber = try connectHeld(harness, store, .v5("sub3", expiry: 300))
        try subscriber.send(.subscribe(Subscribe(packetID: 1, subscriptions: [Subscription(filter: "f", qos: .atLeastOnce)])))
        store.commit()
        harness.loop.run()
        _ = try subscriber.receive()
        let publisher = try connectHeld(harness, store, .v5("pub3"))
        _ = store.takeChanges()
        store.failing.store(true, ordering: .relaxed)
        try publisher.send(.publish(Publish(topic: "f", payload: ByteBuffer(string: "no room"), qos: .atLeastOnce, packetID: 3)))
        guard case .puback(let ack)? = try publisher.receive().first else { return XCTFail("PUBACK at once") }
        XCTAssertEqual(ack.reasonCode, .quotaExceeded)
        XCTAssertEqual(try subscriber.publishes().count, 0, "not delivered")
        XCTAssertEqual(store.takeChanges(), [])
        try publisher.send(.publish(Publish(topic: "f", payload: ByteBuffer(string: "qos0 still flows"))))
        XCTAssertEqual(try subscriber.publishes().map { String(buffer: $0.payload) }, ["qos0 still flows"])
    }

    /// Retained messages on disk: what is routed to the new subscription while they are read
    /// waits behind them, so the retained (older) value never arrives after a newer one.
    func testRetainedReadFromDiskComesBeforeMessagesRoutedMeanwhile() throws {
        let store = ManualStore()
        let harness = Harness(store: store)
        harness.broker.retainedOnDisk.store(true, ordering: .relaxed)
        store.retainedOnDisk.withLock {
            $0 = [Message(topic: "state/x", payload: ByteBuffer(string: "old"), qos: .atLeastOnce, retain: true, properties: Properties(), expiresAt: nil, publisherID: 0)]
        }
        let subscriber = try connectHeld(harness, store, .v5("reader"))
        let publisher = try connectHeld(harness, store, .v5("writer"))
        try subscriber.send(.subscribe(Subscribe(packetID: 1, subscriptions: [Subscription(filter: "state/#", qos: .atLeastOnce)])))
        XCTAssertEqual(store.takeChanges(), ["readRetained state/#"])
        guard case .suback? = try subscriber.receive().first else { return XCTFail("SUBACK (nothing stored for a clean session)") }
        try publisher.send(.publish(Publish(topic: "state/x", payload: ByteBuffer(string: "new"), qos: .atLeastOnce, packetID: 1)))
        XCTAssertEqual(try subscriber.publishes().count, 0, "the live message waits behind the retained read")
        store.commit()
        harness.loop.run()
        let delivered = try subscriber.publishes()
        XCTAssertEqual(delivered.map { String(buffer: $0.payload) }, ["old", "new"])
        XCTAssertEqual(delivered.map(\.retain), [true, false])
    }

    func testCleanStartClearsAndDisconnectWithExpiryZeroDeletes() throws {
        let store = ManualStore()
        let harness = Harness(store: store)
        let first = try connectHeld(harness, store, .v5("c", expiry: 300))
        first.drop()
        _ = store.takeChanges()
        let second = try connectHeld(harness, store, .v5("c", cleanStart: true, expiry: 300))
        XCTAssertEqual(store.takeChanges(), ["clearSession", "putSession c online=true"])
        try second.send(.disconnect(Disconnect(reasonCode: .normalDisconnection, properties: { var p = Properties(); p.sessionExpiryInterval = 0; return p }())))
        XCTAssertEqual(store.takeChanges(), ["deleteSession"])
    }
}
