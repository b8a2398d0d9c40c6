import Foundation
import Logging
import MQTTCodec
import NIOCore
import RoostClient
import RoostCore
import RoostPersistence
@testable import RoostServer
import XCTest

/// A broker with the SQLite store, stopped and started again on the same data directory
/// (in-process; the SIGKILL variants are in Tests/interop/test_durability.py).
final class RestartTests: XCTestCase {
    private var directory = ""

    override func setUp() {
        directory = NSTemporaryDirectory() + "roost-restart-\(UUID().uuidString)"
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func startBroker(settings: BrokerSettings = integrationSettings()) async throws -> TestBroker {
        var logger = Logger(label: "roost.integration.store")
        logger.logLevel = .critical
        let store = try SQLiteStore.open(directory: directory, fsync: .normal, logger: logger, clock: Broker.systemClock)
        return try await TestBroker.start(settings: settings, store: store)
    }

    /// With `retained_memory_limit` 5, 20 retained messages live on disk only; SUBSCRIBE reads
    /// the matching ones (wildcards, `$` rules, deletions, expiry), before and after a restart.
    func testRetainedBeyondTheMemoryLimitAreReadFromDisk() async throws {
        var settings = integrationSettings()
        settings.retainedMemoryLimit = 5
        let first = try await startBroker(settings: settings)
        let (publisher, _) = try await first.connectedClient("ret-pub", version: .v5)
        for number in 0..<20 {
            _ = try await publisher.publish(to: "disk/\(number % 2 == 0 ? "even" : "odd")/\(number)", payload: "\(number)", qos: .atLeastOnce, retain: true)
        }
        _ = try await publisher.publish(to: "disk/odd/19", payload: "", qos: .atLeastOnce, retain: true)  // deleted
        var expiring = Properties()
        expiring.messageExpiryInterval = 1
        _ = try await publisher.publish(to: "disk/even/short", payload: "short", qos: .atLeastOnce, retain: true, properties: expiring)
        XCTAssertTrue(first.server.broker.retainedOnDisk.load(ordering: .relaxed))

        func retained(_ broker: TestBroker, _ filter: String, expect count: Int, fence: String) async throws -> [String] {
            let (publisherForFence, _) = try await broker.connectedClient("fence-\(UUID().uuidString.prefix(8))", version: .v5)
            defer { Task { try? await publisherForFence.disconnect() } }
            let (client, inbox) = try await broker.connectedClient("ret-sub-\(UUID().uuidString.prefix(8))", version: .v5)
            _ = try await client.subscribe(to: filter, qos: .atLeastOnce)
            let got = try await inbox.take(count)
            // Nothing more: a live message on a fresh topic arrives next, not a stray retained one.
            _ = try await publisherForFence.publish(to: fence, payload: "fence", qos: .atLeastOnce)
            let extra = try await inbox.takeUntil { $0.text == "fence" }
            XCTAssertEqual(extra.map(\.text), [], "no extra retained messages for \(filter)")
            try await client.disconnect()
            XCTAssertTrue(got.allSatisfy(\.retain))
            return got.map(\.text).sorted()
        }
        let odd = try await retained(first, "disk/odd/+", expect: 9, fence: "disk/odd/fence")
        XCTAssertEqual(odd, ["1", "11", "13", "15", "17", "3", "5", "7", "9"])
        let one = try await retained(first, "disk/even/4", expect: 1, fence: "disk/even/4")
        XCTAssertEqual(one, ["4"])
        try await Task.sleep(for: .milliseconds(1200))
        let even = try await retained(first, "disk/even/#", expect: 10, fence: "disk/even/fence")
        XCTAssertFalse(even.contains("short"), "expired while on disk")
        try await publisher.disconnect()
        await first.server.shutdown()

        let second = try await startBroker(settings: settings)
        XCTAssertTrue(second.server.broker.retainedOnDisk.load(ordering: .relaxed), "not read into memory at start")
        let all = try await retained(second, "#", expect: 19, fence: "fence")
        XCTAssertEqual(all.count, 19)
        await second.server.shutdown()
    }

    /// A stored session resumed with Session Expiry 0 still gets its backlog from disk (it is
    /// deleted only when that connection ends). Found in review.
    func testResumingWithExpiryZeroStillDeliversTheBacklogOnDisk() async throws {
        var settings = integrationSettings()
        settings.queueMemoryLimit = 10
        settings.maxQueuedMessages = 0
        let broker = try await startBroker(settings: settings)
        let subscriber = broker.client("resume0", version: .v5, cleanStart: true, sessionExpiry: 600)
        _ = try await subscriber.connect()
        _ = try await subscriber.subscribe(to: "r0/#", qos: .atLeastOnce)
        try await subscriber.disconnect()
        let (publisher, _) = try await broker.connectedClient("r0-pub", version: .v5)
        for number in 0..<50 { _ = try await publisher.publish(to: "r0/t", payload: "\(number)", qos: .atLeastOnce) }
        let back = broker.client("resume0", version: .v5, cleanStart: false, sessionExpiry: 0)
        let inbox = Inbox(back.messages)
        let ack = try await back.connect()
        XCTAssertTrue(ack.sessionPresent)
        let received = try await inbox.take(50)
        XCTAssertEqual(received.map(\.text), (0..<50).map { "\($0)" })
        try await back.disconnect()
        try await publisher.disconnect()
        await broker.server.shutdown()
    }

    /// With `queue_memory_limit` 10, a backlog of 300 lives mostly on disk and comes back in
    /// order, online and after a restart.
    func testAQueueBeyondTheMemoryLimitComesBackFromDiskInOrder() async throws {
        var settings = integrationSettings()
        settings.queueMemoryLimit = 10
        settings.maxQueuedMessages = 0
        let first = try await startBroker(settings: settings)
        let subscriber = first.client("pager", version: .v5, cleanStart: true, sessionExpiry: 600)
        _ = try await subscriber.connect()
        _ = try await subscriber.subscribe(to: "page/#", qos: .atLeastOnce)
        try await subscriber.disconnect()
        let (publisher, _) = try await first.connectedClient("page-pub", version: .v5)
        for number in 0..<300 { _ = try await publisher.publish(to: "page/t", payload: "\(number)", qos: .atLeastOnce) }
        let back = first.client("pager", version: .v5, cleanStart: false, sessionExpiry: 600)
        let inbox = Inbox(back.messages)
        _ = try await back.connect()
        let received = try await inbox.take(300)
        XCTAssertEqual(received.map(\.text), (0..<300).map { "\($0)" })
        try await back.disconnect()
        for number in 300..<600 { _ = try await publisher.publish(to: "page/t", payload: "\(number)", qos: .atLeastOnce) }
        try await publisher.disconnect()
        await first.server.shutdown()

        let second = try await startBroker(settings: settings)
        let again = second.client("pager", version: .v5, cleanStart: false, sessionExpiry: 600)
        let inbox2 = Inbox(again.messages)
        let ack = try await again.connect()
        XCTAssertTrue(ack.sessionPresent)
        let rest = try await inbox2.take(300)
        XCTAssertEqual(rest.map(\.text), (300..<600).map { "\($0)" }, "loaded 10, the rest paged in, in order")
        try await again.disconnect()
        await second.server.shutdown()
    }

    func testSessionQueueAndRetainedSurviveARestart_v311() async throws { try await sessionSurvives(.v3_1_1) }
    func testSessionQueueAndRetainedSurviveARestart_v5() async throws { try await sessionSurvives(.v5) }

    private func sessionSurvives(_ version: ProtocolVersion) async throws {
        let first = try await startBroker()
        let subscriber = first.client("keeper", version: version, cleanStart: version == .v5, sessionExpiry: 600)
        _ = try await subscriber.connect()
        _ = try await subscriber.subscribe(to: "keep/#", qos: .exactlyOnce)
        try await subscriber.disconnect()
        let (publisher, _) = try await first.connectedClient("keep-pub", version: version)
        for number in 0..<20 {
            _ = try await publisher.publish(to: "keep/\(number % 2 == 0 ? "one" : "two")", payload: "\(number)", qos: number % 2 == 0 ? .atLeastOnce : .exactlyOnce)
        }
        _ = try await publisher.publish(to: "config/mode", payload: "eco", qos: .atLeastOnce, retain: true)
        try await publisher.disconnect()
        await first.server.shutdown()

        let second = try await startBroker()
        let returning = second.client("keeper", version: version, cleanStart: false, sessionExpiry: 600)
        let inbox = Inbox(returning.messages)
        let ack = try await returning.connect()
        XCTAssertTrue(ack.sessionPresent, "the session came back from the store")
        let queued = try await inbox.take(20)
        XCTAssertEqual(queued.map(\.text), (0..<20).map { "\($0)" }, "every queued message, in order")
        // The subscription itself came back too: new messages still arrive.
        let (publisher2, _) = try await second.connectedClient("keep-pub2", version: version)
        _ = try await publisher2.publish(to: "keep/after", payload: "after", qos: .atLeastOnce)
        let after = try await inbox.next()
        XCTAssertEqual(after.text, "after")
        let (late, lateInbox) = try await second.connectedClient("late", version: version)
        _ = try await late.subscribe(to: "config/#", qos: .atLeastOnce)
        let retained = try await lateInbox.next()
        XCTAssertEqual(retained.text, "eco")
        XCTAssertTrue(retained.retain)
        try await returning.disconnect()
        try await publisher2.disconnect()
        try await late.disconnect()
        await second.server.shutdown()
    }

    /// Unacknowledged deliveries come back with DUP and their packet ids; a QoS 2 message past
    /// PUBREC gets its PUBREL again; the publisher's QoS 2 id is still known (no second copy).
    func testInFlightStateSurvivesARestart() async throws {
        let first = try await startBroker()
        let subscriber = try await first.rawConnection(version: .v5)
        var properties = Properties()
        properties.sessionExpiryInterval = 600
        _ = try await subscriber.handshake(Connect(version: .v5, cleanStart: true, keepAlive: 0, clientID: "raw-sub", properties: properties))
        _ = try await subscriber.subscribe("inflight/#", qos: .exactlyOnce)
        let publisher = try await first.rawConnection(version: .v5)
        _ = try await publisher.handshake(Connect(version: .v5, cleanStart: true, keepAlive: 0, clientID: "raw-pub", properties: properties))
        try await publisher.send(.publish(Publish(topic: "inflight/1", payload: ByteBuffer(string: "q1"), qos: .atLeastOnce, packetID: 1)))
        try await publisher.send(.publish(Publish(topic: "inflight/2", payload: ByteBuffer(string: "q2"), qos: .exactlyOnce, packetID: 2)))
        var acks: [MQTTPacket] = []
        for _ in 0..<2 { acks.append(try await publisher.receive()) }
        guard case .puback = acks[0], case .pubrec = acks[1] else { return XCTFail("PUBACK and PUBREC, got \(acks)") }
        var sent: [Publish] = []
        for _ in 0..<2 {
            guard case .publish(let publish) = try await subscriber.receive() else { return XCTFail("a PUBLISH") }
            sent.append(publish)
        }
        // QoS 2: PUBREC from the subscriber, so the broker's next step is PUBREL.
        try await subscriber.send(.pubrec(Ack(packetID: sent[1].packetID)))
        guard case .pubrel = try await subscriber.receive() else { return XCTFail("PUBREL") }
        await first.server.shutdown()

        let second = try await startBroker()
        let back = try await second.rawConnection(version: .v5)
        let ack = try await back.handshake(Connect(version: .v5, cleanStart: false, keepAlive: 0, clientID: "raw-sub", properties: properties))
        XCTAssertTrue(ack.sessionPresent)
        guard case .publish(let again) = try await back.receive() else { return XCTFail("the QoS 1 message again") }
        XCTAssertTrue(again.dup)
        XCTAssertEqual(again.packetID, sent[0].packetID)
        XCTAssertEqual(String(buffer: again.payload), "q1")
        guard case .pubrel(let rel) = try await back.receive() else { return XCTFail("PUBREL again") }
        XCTAssertEqual(rel.packetID, sent[1].packetID)

        // The publisher resends its QoS 2 PUBLISH (DUP): acknowledged, not delivered again.
        let pub2 = try await second.rawConnection(version: .v5)
        let pubAck = try await pub2.handshake(Connect(version: .v5, cleanStart: false, keepAlive: 0, clientID: "raw-pub", properties: properties))
        XCTAssertTrue(pubAck.sessionPresent)
        try await pub2.send(.publish(Publish(topic: "inflight/2", payload: ByteBuffer(string: "q2"), qos: .exactlyOnce, dup: true, packetID: 2)))
        guard case .pubrec = try await pub2.receive() else { return XCTFail("PUBREC for the resend") }
        try await pub2.send(.pubrel(Ack(packetID: 2)))
        guard case .pubcomp = try await pub2.receive() else { return XCTFail("PUBCOMP") }
        try await back.send(.puback(Ack(packetID: again.packetID)))
        try await back.send(.pubcomp(Ack(packetID: rel.packetID)))
        try await pub2.send(.publish(Publish(topic: "inflight/fence", payload: ByteBuffer(string: "fence"), qos: .atLeastOnce, packetID: 3)))
        guard case .publish(let next) = try await back.receive() else { return XCTFail("the fence") }
        XCTAssertEqual(String(buffer: next.payload), "fence", "the resent QoS 2 PUBLISH was not delivered twice")
        await second.server.shutdown()
    }

    func testASecondBrokerOnTheSameDirectoryIsRefused() async throws {
        var logger = Logger(label: "roost.integration.store")
        logger.logLevel = .critical
        let store = try SQLiteStore.open(directory: directory, logger: logger, clock: Broker.systemClock)
        defer { store.close() }
        XCTAssertThrowsError(try SQLiteStore.open(directory: directory, logger: logger, clock: Broker.systemClock)) { error in
            XCTAssertTrue("\(error)".contains("in use"), "\(error)")
        }
    }
}
