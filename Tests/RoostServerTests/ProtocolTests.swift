import MQTTCodec
import NIOCore
import RoostCore
import XCTest

@testable import RoostServer

/// Protocol rules checked on whole connections over `EmbeddedChannel`.
final class ProtocolTests: XCTestCase {
    private func subscribe(_ client: TestClient, _ filter: String, qos: QoS = .atLeastOnce, id: UInt16 = 1, properties: Properties = Properties()) throws -> SubAck? {
        try client.send(.subscribe(Subscribe(packetID: id, subscriptions: [Subscription(filter: filter, qos: qos)], properties: properties)))
        var suback: SubAck?
        for packet in try client.receive() {
            if case .suback(let ack) = packet, suback == nil { suback = ack } else { client.unread.append(packet) }
        }
        return suback
    }

    private func publish(_ client: TestClient, _ topic: String, _ text: String, qos: QoS = .atMostOnce, id: UInt16 = 0, properties: Properties = Properties()) throws {
        try client.send(.publish(Publish(topic: topic, payload: ByteBuffer(string: text), qos: qos, packetID: id, properties: properties)))
    }

    func testOutboundTopicAliases() throws {
        var settings = BrokerSettings()
        settings.topicAliasOut = true
        let harness = Harness(settings: settings)
        var connect = Connect.v5("sub")
        connect.properties.topicAliasMaximum = 1
        let (subscriber, _) = try harness.connect(connect)
        _ = try subscribe(subscriber, "t/#", qos: .atMostOnce)
        let (publisher, _) = try harness.connect(.v5("pub"))
        try publish(publisher, "t/a", "1")
        try publish(publisher, "t/a", "2")
        try publish(publisher, "t/b", "3")
        let received = try subscriber.publishes()
        XCTAssertEqual(received.map(\.topic), ["t/a", "", "t/b"])
        XCTAssertEqual(received.map(\.properties.topicAlias), [1, 1, nil])
    }

    func testResponseInformationWhenRequested() throws {
        let harness = Harness()
        var connect = Connect.v5("asker")
        connect.properties.requestResponseInformation = 1
        let (_, ack) = try harness.connect(connect)
        XCTAssertEqual(ack.properties.responseInformation, "response/asker")
        let (_, plain) = try harness.connect(.v5("plain"))
        XCTAssertNil(plain.properties.responseInformation)
    }

    func testTakeoverSendsSessionTakenOver() throws {
        let harness = Harness()
        let (first, _) = try harness.connect(.v5("same", expiry: 60))
        let (second, ack) = try harness.connect(.v5("same", cleanStart: false, expiry: 60))
        XCTAssertTrue(ack.sessionPresent)
        XCTAssertEqual(try first.receive().last, .disconnect(Disconnect(reasonCode: .sessionTakenOver)))
        XCTAssertFalse(first.isActive)
        XCTAssertTrue(second.isActive)
    }

    func testTopicAliasAboveMaximumIsRefused() throws {
        let harness = Harness()
        let (client, ack) = try harness.connect(.v5("c"))
        XCTAssertEqual(ack.properties.topicAliasMaximum, 10)
        var properties = Properties()
        properties.topicAlias = 11
        try publish(client, "x", "y", properties: properties)
        guard case .disconnect(let disconnect)? = try client.receive().last else { return XCTFail("expected DISCONNECT") }
        XCTAssertEqual(disconnect.reasonCode, .topicAliasInvalid)
        XCTAssertNotNil(disconnect.properties.reasonString)
        XCTAssertFalse(client.isActive)
    }

    func testInboundTopicAlias() throws {
        let harness = Harness()
        let (subscriber, _) = try harness.connect(.v5("sub"))
        _ = try subscribe(subscriber, "long/topic/name")
        let (publisher, _) = try harness.connect(.v5("pub"))
        var properties = Properties()
        properties.topicAlias = 3
        try publish(publisher, "long/topic/name", "first", properties: properties)
        try publish(publisher, "", "second", properties: properties)
        let received = try subscriber.publishes()
        XCTAssertEqual(received.map(\.topic), ["long/topic/name", "long/topic/name"])
        XCTAssertEqual(received.map { String(buffer: $0.payload) }, ["first", "second"])
        XCTAssertEqual(received.map(\.properties.topicAlias), [nil, nil], "inbound aliases are not forwarded")
    }

    func testQoS2ResendIsNotDeliveredTwice() throws {
        let harness = Harness()
        let (subscriber, _) = try harness.connect(.v5("sub"))
        _ = try subscribe(subscriber, "q2", qos: .exactlyOnce)
        let (publisher, _) = try harness.connect(.v5("pub"))
        try publish(publisher, "q2", "once", qos: .exactlyOnce, id: 9)
        var resend = Publish(topic: "q2", payload: ByteBuffer(string: "once"), qos: .exactlyOnce, dup: true, packetID: 9)
        try publisher.send(.publish(resend))
        XCTAssertEqual(try publisher.receive().filter { if case .pubrec = $0 { return true } else { return false } }.count, 2)
        try publisher.send(.pubrel(Ack(packetID: 9)))
        XCTAssertEqual(try publisher.receive(), [.pubcomp(Ack(packetID: 9))])
        resend.dup = false
        XCTAssertEqual(try subscriber.publishes().count, 1)
    }

    func testReceiveMaximumExceededByClient() throws {
        var settings = BrokerSettings()
        settings.receiveMaximum = 2
        let harness = Harness(settings: settings)
        let (client, ack) = try harness.connect(.v5("c"))
        XCTAssertEqual(ack.properties.receiveMaximum, 2)
        for id in UInt16(1)...3 { try publish(client, "t", "x", qos: .exactlyOnce, id: id) }
        let last = try client.receive().last
        guard case .disconnect(let disconnect)? = last else { return XCTFail("expected DISCONNECT, got \(String(describing: last))") }
        XCTAssertEqual(disconnect.reasonCode, .receiveMaximumExceeded)
    }

    func testOutboundWindowFollowsClientReceiveMaximum() throws {
        let harness = Harness()
        var connect = Connect.v5("slow")
        connect.properties.receiveMaximum = 2
        let (subscriber, _) = try harness.connect(connect)
        _ = try subscribe(subscriber, "w")
        let (publisher, _) = try harness.connect(.v5("pub"))
        for id in UInt16(1)...5 { try publish(publisher, "w", "\(id)", qos: .atLeastOnce, id: id) }
        var received = try subscriber.publishes()
        XCTAssertEqual(received.count, 2)
        try subscriber.send(.puback(Ack(packetID: received[0].packetID)))
        received = try subscriber.publishes()
        XCTAssertEqual(received.map { String(buffer: $0.payload) }, ["3"])
    }

    func testMessageTooLargeForClientIsSkipped() throws {
        let harness = Harness()
        var connect = Connect.v5("small")
        connect.properties.maximumPacketSize = 64
        let (subscriber, _) = try harness.connect(connect)
        _ = try subscribe(subscriber, "s")
        let (publisher, _) = try harness.connect(.v5("pub"))
        try publish(publisher, "s", String(repeating: "x", count: 200), qos: .atLeastOnce, id: 1)
        try publish(publisher, "s", "small", qos: .atLeastOnce, id: 2)
        XCTAssertEqual(try subscriber.publishes().map { String(buffer: $0.payload) }, ["small"])
    }

    func testSharedSubscriptionRoundRobinAndHandOver() throws {
        let harness = Harness()
        let (a, _) = try harness.connect(.v5("a"))
        let (b, _) = try harness.connect(.v5("b"))
        _ = try subscribe(a, "$share/g/jobs")
        _ = try subscribe(b, "$share/g/jobs")
        let (publisher, _) = try harness.connect(.v5("pub"))
        for id in UInt16(1)...4 { try publish(publisher, "jobs", "\(id)", qos: .atLeastOnce, id: id) }
        let toA = try a.publishes()
        let toB = try b.publishes()
        XCTAssertEqual(toA.count, 2)
        XCTAssertEqual(toB.count, 2)
        // a leaves without acknowledging: its two messages go to b.
        a.drop()
        let handedOver = try b.publishes()
        XCTAssertEqual(Set(handedOver.map { String(buffer: $0.payload) }), Set(toA.map { String(buffer: $0.payload) }))
    }

    func testNoLocalOnSharedSubscriptionIsProtocolError() throws {
        let harness = Harness()
        let (client, _) = try harness.connect(.v5("c"))
        try client.send(.subscribe(Subscribe(packetID: 1, subscriptions: [Subscription(filter: "$share/g/t", noLocal: true)])))
        guard case .disconnect(let disconnect)? = try client.receive().last else { return XCTFail("expected DISCONNECT") }
        XCTAssertEqual(disconnect.reasonCode, .protocolError)
    }

    func testOverlappingSubscriptionsGiveOneCopyWithEveryIdentifier() throws {
        let harness = Harness()
        let (subscriber, _) = try harness.connect(.v5("sub"))
        var first = Properties()
        first.subscriptionIdentifiers = [1]
        var second = Properties()
        second.subscriptionIdentifiers = [2]
        _ = try subscribe(subscriber, "a/+", qos: .atMostOnce, id: 1, properties: first)
        _ = try subscribe(subscriber, "a/#", qos: .exactlyOnce, id: 2, properties: second)
        let (publisher, _) = try harness.connect(.v5("pub"))
        try publish(publisher, "a/b", "x", qos: .exactlyOnce, id: 1)
        let received = try subscriber.publishes()
        XCTAssertEqual(received.count, 1)
        XCTAssertEqual(received.first?.qos, .exactlyOnce)
        XCTAssertEqual(received.first?.properties.subscriptionIdentifiers.sorted(), [1, 2])
    }

    func testRetainedWithRetainHandling() throws {
        let harness = Harness()
        let (publisher, _) = try harness.connect(.v5("pub"))
        try publisher.send(.publish(Publish(topic: "r/1", payload: ByteBuffer(string: "kept"), qos: .atLeastOnce, retain: true, packetID: 1)))
        let (subscriber, _) = try harness.connect(.v5("sub"))
        for (handling, id, expected) in [(RetainHandling.sendAlways, UInt16(1), 1), (.sendIfNew, 2, 0), (.doNotSend, 3, 0)] {
            try subscriber.send(.subscribe(Subscribe(packetID: id, subscriptions: [Subscription(filter: "r/#", qos: .atLeastOnce, retainHandling: handling)])))
            let received = try subscriber.publishes()
            XCTAssertEqual(received.count, expected, "retain handling \(handling)")
            XCTAssertTrue(received.allSatisfy(\.retain))
            for publish in received { try subscriber.send(.puback(Ack(packetID: publish.packetID))) }
        }
        try publisher.send(.publish(Publish(topic: "r/1", payload: ByteBuffer(), qos: .atMostOnce, retain: true)))
        XCTAssertEqual(harness.broker.retainedCount, 0, "an empty retained payload deletes")
    }

    func testMaxConnectionsRefusesExtraSockets() throws {
        var settings = BrokerSettings()
        settings.maxConnections = 1
        let harness = Harness(settings: settings)
        let first = try harness.open()
        let second = try harness.open()
        XCTAssertTrue(first.isActive)
        XCTAssertFalse(second.isActive)
    }

    /// mosquitto_pub sends PUBLISH and DISCONNECT in one segment: the message must still go out.
    func testPublishThenDisconnectInOneReadIsDelivered() throws {
        let harness = Harness()
        let (subscriber, _) = try harness.connect(.v5("sub"))
        _ = try subscribe(subscriber, "t", qos: .atMostOnce)
        let (publisher, _) = try harness.connect(.v5("pub"))
        var bytes = ByteBuffer()
        publisher.encoder.encode(.publish(Publish(topic: "t", payload: ByteBuffer(string: "last words"))), into: &bytes)
        publisher.encoder.encode(.disconnect(Disconnect()), into: &bytes)
        try publisher.channel.writeInbound(bytes)
        harness.loop.run()
        XCTAssertEqual(try subscriber.publishes().map { String(buffer: $0.payload) }, ["last words"])
        // And the subscriber is not left with a drain that never comes.
        let (second, _) = try harness.connect(.v5("pub2"))
        try publish(second, "t", "next")
        XCTAssertEqual(try subscriber.publishes().map { String(buffer: $0.payload) }, ["next"])
    }

    func testDropsAreCountedByReasonInSys() throws {
        var settings = BrokerSettings()
        settings.maxQueuedMessages = 1
        let harness = Harness(settings: settings)
        let (subscriber, _) = try harness.connect(.v5("offline", expiry: 100))
        _ = try subscribe(subscriber, "d")
        subscriber.drop()
        let (publisher, _) = try harness.connect(.v5("pub"))
        for id in UInt16(1)...3 { try publish(publisher, "d", "\(id)", qos: .atLeastOnce, id: id) }
        try publish(publisher, "d", "qos0")
        let acks = try publisher.receive().compactMap { packet -> ReasonCode? in
            if case .puback(let ack) = packet { return ack.reasonCode } else { return nil }
        }
        XCTAssertEqual(acks, [.success, .quotaExceeded, .quotaExceeded], "MQTT 5 publishers learn that every queue was full")
        harness.broker.publishSysStats()
        let (watcher, _) = try harness.connect(.v5("watcher"))
        _ = try subscribe(watcher, "$SYS/broker/publish/messages/dropped/#", qos: .atMostOnce)
        var counters: [String: String] = [:]
        for publish in try watcher.publishes() { counters[publish.topic] = String(buffer: publish.payload) }
        XCTAssertEqual(counters["$SYS/broker/publish/messages/dropped/queue_full"], "2")
        XCTAssertEqual(counters["$SYS/broker/publish/messages/dropped/qos0_offline"], "1")
    }
}
