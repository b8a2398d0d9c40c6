import MQTTCodec
import NIOCore
import RoostCore
import XCTest

@testable import RoostServer

/// Limits against hostile or broken clients, and read access checked per topic, on whole
/// connections with virtual time.
final class SecurityLimitsTests: XCTestCase {
    private func subscribe(_ client: TestClient, _ filters: [String], qos: QoS = .atMostOnce, id: UInt16 = 1) throws -> [ReasonCode] {
        try client.send(.subscribe(Subscribe(packetID: id, subscriptions: filters.map { Subscription(filter: $0, qos: qos) })))
        var packets = try client.receive()
        if let index = packets.firstIndex(where: { if case .suback = $0 { return true } else { return false } }),
            case .suback(let ack) = packets.remove(at: index)
        {
            client.unread = packets
            return ack.reasonCodes
        }
        XCTFail("no SUBACK")
        return []
    }

    private func publishAll(_ client: TestClient, topic: String, count: Int, from first: Int = 0) throws {
        var bytes = ByteBuffer()
        for index in first..<(first + count) {
            client.encoder.encode(.publish(Publish(topic: topic, payload: ByteBuffer(string: "\(index)"))), into: &bytes)
        }
        try client.channel.writeInbound(bytes)
        client.channel.pipeline.fireChannelReadComplete()
        client.channel.embeddedEventLoop.run()
    }

    /// `max_publish_rate` 10/s: a burst of 30 is handled 11 at once (the bucket's 10 and the one
    /// that puts it in debt), the rest as time passes: none lost, in order; another client is
    /// not slowed meanwhile.
    func testPublishRateLimitDelaysWithoutDropping() throws {
        var settings = BrokerSettings()
        settings.maxPublishRate = 10
        let harness = Harness(settings: settings)
        let (subscriber, _) = try harness.connect(.v5("sub"))
        XCTAssertEqual(try subscribe(subscriber, ["fast", "other"]), [.grantedQoS0, .grantedQoS0])
        let (fast, _) = try harness.connect(.v5("fast"))
        let (other, _) = try harness.connect(.v5("other"))

        try publishAll(fast, topic: "fast", count: 30)
        var received = try subscriber.publishes().map { String(buffer: $0.payload) }
        XCTAssertEqual(received.count, 11, "the burst beyond the bucket waits")
        XCTAssertEqual(harness.broker.stats.limitPublishRate.load(ordering: .relaxed), 1)

        try publishAll(other, topic: "other", count: 5)
        let others = try subscriber.publishes()
        XCTAssertEqual(others.filter { $0.topic == "other" }.count, 5, "another client is served at once")
        received += others.filter { $0.topic == "fast" }.map { String(buffer: $0.payload) }

        for _ in 0..<40 {
            harness.advance(seconds: 0.1)
            received += try subscriber.publishes().map { String(buffer: $0.payload) }
        }
        XCTAssertEqual(received, (0..<30).map(String.init), "every message, in order")
        XCTAssertTrue(fast.isActive)
    }

    func testMaxSubscriptions_v5() throws { try maxSubscriptions(.v5) }
    func testMaxSubscriptions_v311() throws { try maxSubscriptions(.v3_1_1) }

    private func maxSubscriptions(_ version: ProtocolVersion) throws {
        var settings = BrokerSettings()
        settings.maxSubscriptions = 2
        let harness = Harness(settings: settings)
        let connect = version == .v5 ? Connect.v5("c") : Connect(version: .v3_1_1, clientID: "c")
        let (client, _) = try harness.connect(connect)
        let refused = version == .v5 ? ReasonCode.quotaExceeded : .unspecifiedError
        XCTAssertEqual(try subscribe(client, ["a", "b", "c"]), [.grantedQoS0, .grantedQoS0, refused])
        XCTAssertEqual(try subscribe(client, ["a"], qos: .atLeastOnce, id: 2), [.grantedQoS1], "replacing one is not a new one")
        try client.send(.unsubscribe(Unsubscribe(packetID: 3, filters: ["b"])))
        _ = try client.receive()
        XCTAssertEqual(try subscribe(client, ["c"], id: 4), [.grantedQoS0], "room again after UNSUBSCRIBE")
        XCTAssertEqual(harness.broker.stats.limitSubscriptions.load(ordering: .relaxed), 1)
    }

    func testTopicLimits_v5() throws { try topicLimits(.v5) }
    func testTopicLimits_v311() throws { try topicLimits(.v3_1_1) }

    private func topicLimits(_ version: ProtocolVersion) throws {
        var settings = BrokerSettings()
        settings.maxTopicLevels = 3
        settings.maxTopicLength = 16
        let harness = Harness(settings: settings)
        let (subscriber, _) = try harness.connect(.v5("sub"))
        XCTAssertEqual(try subscribe(subscriber, ["#"]), [.grantedQoS0])
        let connect = version == .v5 ? Connect.v5("pub") : Connect(version: .v3_1_1, clientID: "pub")
        let (client, _) = try harness.connect(connect)
        let invalidFilter = version == .v5 ? ReasonCode.topicFilterInvalid : .unspecifiedError
        XCTAssertEqual(try subscribe(client, ["a/b/c/d", "a/b/+", "a/#", "0123456789abcdefg"]), [invalidFilter, .grantedQoS0, .grantedQoS0, invalidFilter])

        try client.send(.publish(Publish(topic: "a/b/c/d", payload: ByteBuffer(string: "deep"), qos: .atLeastOnce, packetID: 7)))
        try client.send(.publish(Publish(topic: "0123456789abcdefg", payload: ByteBuffer(string: "long"), qos: .atLeastOnce, packetID: 8)))
        try client.send(.publish(Publish(topic: "a/b/c", payload: ByteBuffer(string: "fine"), qos: .atLeastOnce, packetID: 9)))
        let refused = version == .v5 ? ReasonCode.topicNameInvalid : .success
        let acks = try client.receive().compactMap { packet -> Ack? in if case .puback(let ack) = packet { return ack } else { return nil } }
        XCTAssertEqual(acks.map(\.reasonCode), [refused, refused, .success])
        XCTAssertEqual(try subscriber.publishes().map { $0.topic }, ["a/b/c"])
        XCTAssertEqual(harness.broker.stats.limitTopic.load(ordering: .relaxed), 4)
    }

    /// A subscription the authorizer grants in part: only readable topics are delivered, live
    /// and retained; the routing cache does not leak a topic across subscribers.
    func testFilteredSubscriptionDeliversReadableTopicsOnly() throws {
        struct PublicOnly: Authorizer {
            func mayPublish(_ identity: ClientIdentity, topic: String) -> Bool { true }
            func subscriptionAccess(_ identity: ClientIdentity, filter: String) -> SubscriptionAccess {
                if identity.clientID == "admin" { return .granted }
                if filter.hasPrefix("private/") { return .denied }
                return filter.hasPrefix("public/") ? .granted : .filtered
            }
            func mayRead(_ identity: ClientIdentity, topic: String) -> Bool {
                identity.clientID == "admin" || topic.hasPrefix("public/")
            }
        }
        let harness = Harness(authorizer: PublicOnly())
        let (publisher, _) = try harness.connect(.v5("pub"))
        try publisher.send(.publish(Publish(topic: "private/r", payload: ByteBuffer(string: "old secret"), retain: true)))
        try publisher.send(.publish(Publish(topic: "public/r", payload: ByteBuffer(string: "old news"), retain: true)))

        let (reader, _) = try harness.connect(.v5("reader"))
        let (admin, _) = try harness.connect(.v5("admin"))
        XCTAssertEqual(try subscribe(reader, ["#", "private/#"]), [.grantedQoS0, .notAuthorized])
        XCTAssertEqual(try reader.publishes().map { String(buffer: $0.payload) }, ["old news"], "retained: readable ones only")
        XCTAssertEqual(try subscribe(admin, ["#"]), [.grantedQoS0])
        XCTAssertEqual(Set(try admin.publishes().map { String(buffer: $0.payload) }), ["old news", "old secret"])

        for topic in ["private/x", "public/x", "private/x"] {
            try publisher.send(.publish(Publish(topic: topic, payload: ByteBuffer(string: topic))))
        }
        XCTAssertEqual(try reader.publishes().map { $0.topic }, ["public/x"])
        XCTAssertEqual(try admin.publishes().map { $0.topic }, ["private/x", "public/x", "private/x"])
    }
}
