import MQTTCodec
import NIOCore
import RoostCore
import XCTest

@testable import RoostServer

/// Session and will rules around takeover, reconnect and DISCONNECT (regressions from review).
final class SessionLifecycleTests: XCTestCase {
    private func subscribe(_ client: TestClient, _ filter: String, qos: QoS = .atLeastOnce) throws {
        try client.send(.subscribe(Subscribe(packetID: 1, subscriptions: [Subscription(filter: filter, qos: qos)])))
        client.unread.append(contentsOf: try client.receive().filter { if case .suback = $0 { return false } else { return true } })
    }

    private func willConnect(_ id: String, topic: String = "wills/x", delay: UInt32 = 0, expiry: UInt32 = 0, messageExpiry: UInt32? = nil) -> Connect {
        var properties = Properties()
        properties.willDelayInterval = delay
        properties.messageExpiryInterval = messageExpiry
        return .v5(id, expiry: expiry, will: Will(topic: topic, payload: ByteBuffer(string: "gone"), qos: .atLeastOnce, properties: properties))
    }

    func testPublishRightAfterATakeoverConnectReachesSubscribers() throws {
        let harness = Harness()
        let (subscriber, _) = try harness.connect(.v5("sub"))
        try subscribe(subscriber, "t", qos: .atMostOnce)
        let (_, _) = try harness.connect(.v5("p"))
        let second = try harness.open()
        var bytes = ByteBuffer()
        second.encoder.encode(.connect(.v5("p")), into: &bytes)
        second.encoder.encode(.publish(Publish(topic: "t", payload: ByteBuffer(string: "after takeover"))), into: &bytes)
        try second.channel.writeInbound(bytes)
        harness.loop.run()
        XCTAssertEqual(try subscriber.publishes().map { String(buffer: $0.payload) }, ["after takeover"])
    }

    func testFailedQoS2PacketIdCanBeReused() throws {
        var settings = BrokerSettings()
        settings.maxQueuedMessages = 1
        let harness = Harness(settings: settings)
        let (offline, _) = try harness.connect(.v5("offline", expiry: 100))
        try subscribe(offline, "q", qos: .exactlyOnce)
        offline.drop()
        let (publisher, _) = try harness.connect(.v5("pub"))
        try publisher.send(.publish(Publish(topic: "q", payload: ByteBuffer(string: "1"), qos: .exactlyOnce, packetID: 7)))
        try publisher.send(.pubrel(Ack(packetID: 7)))
        try publisher.send(.publish(Publish(topic: "q", payload: ByteBuffer(string: "2"), qos: .exactlyOnce, packetID: 8)))
        XCTAssertEqual(try publisher.receive().last, .pubrec(Ack(packetID: 8, reasonCode: .quotaExceeded)))
        // Id 8 ended with a failure: reusing it is a new message, not a resend.
        let (back, _) = try harness.connect(.v5("offline", cleanStart: false, expiry: 100))
        let first = try back.publishes()
        XCTAssertEqual(first.map { String(buffer: $0.payload) }, ["1"])
        try back.send(.pubrec(Ack(packetID: first[0].packetID)))
        try back.send(.pubcomp(Ack(packetID: first[0].packetID)))
        try publisher.send(.publish(Publish(topic: "q", payload: ByteBuffer(string: "3"), qos: .exactlyOnce, packetID: 8)))
        XCTAssertEqual(try publisher.receive().last, .pubrec(Ack(packetID: 8)))
        XCTAssertEqual(try back.publishes().map { String(buffer: $0.payload) }, ["3"])
    }

    func testPersistentSharedMemberKeepsItsMessagesAcrossReconnect() throws {
        let harness = Harness()
        let (member, _) = try harness.connect(.v5("w1", expiry: 300))
        try subscribe(member, "$share/g/jobs")
        member.drop()
        let (publisher, _) = try harness.connect(.v5("pub"))
        for id in UInt16(1)...3 {
            try publisher.send(.publish(Publish(topic: "jobs", payload: ByteBuffer(string: "\(id)"), qos: .atLeastOnce, packetID: id)))
        }
        let (back, ack) = try harness.connect(.v5("w1", cleanStart: false, expiry: 300))
        XCTAssertTrue(ack.sessionPresent)
        XCTAssertEqual(try back.publishes().map { String(buffer: $0.payload) }, ["1", "2", "3"])
    }

    func testTakeoverOfACleanSessionDoesNotReuseIt() throws {
        let harness = Harness()
        let (first, _) = try harness.connect(Connect(version: .v3_1_1, cleanStart: true, clientID: "c"))
        try first.send(.subscribe(Subscribe(packetID: 1, subscriptions: [Subscription(filter: "x", qos: .atLeastOnce)])))
        let (_, ack) = try harness.connect(Connect(version: .v3_1_1, cleanStart: false, clientID: "c"))
        XCTAssertFalse(ack.sessionPresent, "a clean session is not reused [MQTT-3.1.2-6]")
        XCTAssertEqual(harness.broker.router.count, 0)
    }

    func testDisconnectWithAnErrorCodeSendsTheWill() throws {
        let harness = Harness()
        let (watcher, _) = try harness.connect(.v5("watcher"))
        try subscribe(watcher, "wills/#")
        let (client, _) = try harness.connect(willConnect("a"))
        try client.send(.disconnect(Disconnect(reasonCode: .implementationSpecificError)))
        XCTAssertEqual(try watcher.publishes().map(\.topic), ["wills/x"])
    }

    func testDelayedWillExpiryCountsFromPublication() throws {
        let harness = Harness()
        let (watcher, _) = try harness.connect(.v5("watcher"))
        try subscribe(watcher, "wills/#")
        let (client, _) = try harness.connect(willConnect("a", delay: 5, expiry: 60, messageExpiry: 3))
        client.drop()
        harness.advance(seconds: 5.5)
        let wills = try watcher.publishes()
        XCTAssertEqual(wills.map(\.topic), ["wills/x"])
        XCTAssertEqual(wills.first?.properties.messageExpiryInterval, 3)
    }

    func testWillOnSysTopicIsRefused() throws {
        let harness = Harness()
        let client = try harness.open()
        try client.send(.connect(willConnect("a", topic: "$SYS/broker/uptime")))
        guard case .connack(let ack)? = try client.receive().first else { return XCTFail("no CONNACK") }
        XCTAssertEqual(ack.reasonCode, .notAuthorized)
    }

    func testClientPublishWithSubscriptionIdentifierIsProtocolError() throws {
        let harness = Harness()
        let (client, _) = try harness.connect(.v5("c"))
        var properties = Properties()
        properties.subscriptionIdentifiers = [3]
        try client.send(.publish(Publish(topic: "t", payload: ByteBuffer(), properties: properties)))
        guard case .disconnect(let disconnect)? = try client.receive().last else { return XCTFail("expected DISCONNECT") }
        XCTAssertEqual(disconnect.reasonCode, .protocolError)
    }

    func testMQTT31ConnAckHasNoSessionPresentBit() throws {
        let harness = Harness()
        let (first, _) = try harness.connect(Connect(version: .v3_1, cleanStart: false, clientID: "old"))
        first.drop()
        let (_, ack) = try harness.connect(Connect(version: .v3_1, cleanStart: false, clientID: "old"))
        XCTAssertFalse(ack.sessionPresent)
    }

    func testCleanSessionEndsWhenItsConnectionDrops() throws {
        let harness = Harness()
        let (client, _) = try harness.connect(Connect(version: .v3_1_1, cleanStart: true, clientID: "gone"))
        try client.send(.subscribe(Subscribe(packetID: 1, subscriptions: [Subscription(filter: "x")])))
        client.drop()
        XCTAssertEqual(harness.broker.sessionCount, 0)
        XCTAssertEqual(harness.broker.router.count, 0)
    }

    func testReconnectCancelsTheOfflineTimers() throws {
        let harness = Harness()
        for _ in 0..<5 {
            let (client, _) = try harness.connect(willConnect("flaky", delay: 600, expiry: 3600))
            client.drop()
        }
        let session = try XCTUnwrap(harness.broker.sessions.withLock { $0["flaky"] })
        XCTAssertEqual(session.locked.withLock { $0.timers.count }, 2, "one will-delay and one expiry timer, not five of each")
        _ = try harness.connect(.v5("flaky", cleanStart: false, expiry: 3600))
        XCTAssertEqual(session.locked.withLock { $0.timers.count }, 0)
    }
}

/// A connection that dies just after a new CONNECT claimed its session (before the takeover
/// reaches it) must not end the session under the new connection's feet. Found in review.
final class ClaimRaceTests: XCTestCase {
    func testAnOwnerDyingDuringATakeoverDoesNotOrphanTheSession() throws {
        let harness = Harness()
        let (old, _) = try harness.connect(.v5("racer"))
        // The new CONNECT claims the session; the takeover hop is queued, not yet run.
        let new = try harness.open()
        var bytes = ByteBuffer()
        new.encoder.encode(.connect(.v5("racer")), into: &bytes)
        try new.channel.writeInbound(bytes)
        // The old connection dies now (expiry 0: its session would end with it).
        _ = old.channel.close()
        harness.loop.run()
        guard case .connack(let ack)? = try new.receive().first else { return XCTFail("no CONNACK") }
        XCTAssertEqual(ack.reasonCode, .success)
        let inMap = harness.broker.sessions.withLock { $0["racer"] }
        XCTAssertNotNil(inMap, "the new connection's session is the one in the map")
        XCTAssertTrue(inMap?.isOnline ?? false, "and it is owned")
    }
}
