import MQTTCodec
import NIOCore
import RoostCore
import XCTest

@testable import RoostServer

/// Keepalive, connect timeout, will delay, session expiry and message expiry, on virtual time.
final class TimersTests: XCTestCase {
    func testKeepAliveClosesAfterOneAndAHalfIntervals() throws {
        let harness = Harness()
        let (client, _) = try harness.connect(.v5("k", keepAlive: 2))
        harness.advance(seconds: 2.9)
        XCTAssertTrue(client.isActive)
        harness.advance(seconds: 0.2)
        XCTAssertFalse(client.isActive)
        let packets = try client.receive()
        XCTAssertEqual(packets.last, .disconnect(Disconnect(reasonCode: .keepAliveTimeout)))
    }

    func testKeepAliveIsResetByTraffic() throws {
        let harness = Harness()
        let (client, _) = try harness.connect(.v5("k", keepAlive: 2))
        for _ in 0..<5 {
            harness.advance(seconds: 2)
            try client.send(.pingreq)
        }
        XCTAssertTrue(client.isActive)
        XCTAssertTrue(try client.receive().contains(.pingresp))
    }

    func testServerKeepAliveWhenClientAsksForMore() throws {
        var settings = BrokerSettings()
        settings.maxKeepAlive = 5
        let harness = Harness(settings: settings)
        let (client, ack) = try harness.connect(.v5("k", keepAlive: 100))
        XCTAssertEqual(ack.properties.serverKeepAlive, 5)
        harness.advance(seconds: 7.6)
        XCTAssertFalse(client.isActive)
    }

    func testConnectTimeout() throws {
        let harness = Harness()
        let client = try harness.open()
        harness.advance(seconds: 9)
        XCTAssertTrue(client.isActive)
        harness.advance(seconds: 1.5)
        XCTAssertFalse(client.isActive)
    }

    private func willConnect(_ id: String, delay: UInt32, expiry: UInt32) -> Connect {
        var willProperties = Properties()
        willProperties.willDelayInterval = delay
        let will = Will(topic: "wills/\(id)", payload: ByteBuffer(string: "gone"), qos: .atLeastOnce, properties: willProperties)
        return .v5(id, cleanStart: true, expiry: expiry, will: will)
    }

    private func watcher(_ harness: Harness) throws -> TestClient {
        let (watcher, _) = try harness.connect(.v5("watcher"))
        try watcher.send(.subscribe(Subscribe(packetID: 1, subscriptions: [Subscription(filter: "wills/#", qos: .atLeastOnce)])))
        _ = try watcher.receive()
        return watcher
    }

    func testWillDelay() throws {
        let harness = Harness()
        let watcher = try watcher(harness)
        let (client, _) = try harness.connect(willConnect("a", delay: 5, expiry: 60))
        client.drop()
        harness.advance(seconds: 4)
        XCTAssertEqual(try watcher.publishes().count, 0)
        harness.advance(seconds: 1.5)
        let wills = try watcher.publishes()
        XCTAssertEqual(wills.map(\.topic), ["wills/a"])
    }

    func testWillDelayCancelledByReconnect() throws {
        let harness = Harness()
        let watcher = try watcher(harness)
        let (client, _) = try harness.connect(willConnect("a", delay: 5, expiry: 60))
        client.drop()
        harness.advance(seconds: 2)
        let (_, ack) = try harness.connect(.v5("a", cleanStart: false, expiry: 60))
        XCTAssertTrue(ack.sessionPresent)
        harness.advance(seconds: 10)
        XCTAssertEqual(try watcher.publishes().count, 0)
    }

    func testWillGoesWhenSessionEndsFirst() throws {
        let harness = Harness()
        let watcher = try watcher(harness)
        let (client, _) = try harness.connect(willConnect("a", delay: 30, expiry: 3))
        client.drop()
        harness.advance(seconds: 2)
        XCTAssertEqual(try watcher.publishes().count, 0)
        harness.advance(seconds: 1.5)
        XCTAssertEqual(try watcher.publishes().map(\.topic), ["wills/a"])
    }

    func testNoWillOnNormalDisconnect() throws {
        let harness = Harness()
        let watcher = try watcher(harness)
        let (client, _) = try harness.connect(willConnect("a", delay: 0, expiry: 0))
        try client.send(.disconnect(Disconnect()))
        harness.advance(seconds: 1)
        XCTAssertEqual(try watcher.publishes().count, 0)
    }

    func testWillOnDisconnectWithWillMessage() throws {
        let harness = Harness()
        let watcher = try watcher(harness)
        let (client, _) = try harness.connect(willConnect("a", delay: 0, expiry: 0))
        try client.send(.disconnect(Disconnect(reasonCode: .disconnectWithWillMessage)))
        harness.advance(seconds: 0.1)
        XCTAssertEqual(try watcher.publishes().map(\.topic), ["wills/a"])
    }

    func testSessionExpiry() throws {
        let harness = Harness()
        let (client, _) = try harness.connect(.v5("s", cleanStart: true, expiry: 10))
        try client.send(.subscribe(Subscribe(packetID: 1, subscriptions: [Subscription(filter: "t", qos: .atLeastOnce)])))
        client.drop()
        harness.advance(seconds: 9)
        XCTAssertEqual(harness.broker.sessionCount, 1)
        harness.advance(seconds: 1.5)
        XCTAssertEqual(harness.broker.sessionCount, 0)
        let (_, ack) = try harness.connect(.v5("s", cleanStart: false, expiry: 10))
        XCTAssertFalse(ack.sessionPresent)
    }

    func testSessionExpiryFromDisconnect() throws {
        let harness = Harness()
        let (client, _) = try harness.connect(.v5("s", cleanStart: true, expiry: 100))
        var disconnect = Disconnect()
        disconnect.properties.sessionExpiryInterval = 2
        try client.send(.disconnect(disconnect))
        harness.advance(seconds: 2.5)
        XCTAssertEqual(harness.broker.sessionCount, 0)
    }

    func testMessageExpiryWhileQueued() throws {
        let harness = Harness()
        let (subscriber, _) = try harness.connect(.v5("sub", cleanStart: true, expiry: 100))
        try subscriber.send(.subscribe(Subscribe(packetID: 1, subscriptions: [Subscription(filter: "m/#", qos: .atLeastOnce)])))
        subscriber.drop()
        let (publisher, _) = try harness.connect(.v5("pub"))
        for (topic, expiry) in [("m/short", UInt32(5)), ("m/long", UInt32(10))] {
            var properties = Properties()
            properties.messageExpiryInterval = expiry
            try publisher.send(.publish(Publish(topic: topic, payload: ByteBuffer(string: "x"), qos: .atLeastOnce, packetID: 7, properties: properties)))
        }
        harness.advance(seconds: 6)
        let (back, ack) = try harness.connect(.v5("sub", cleanStart: false, expiry: 100))
        XCTAssertTrue(ack.sessionPresent)
        let received = try back.publishes()
        XCTAssertEqual(received.map(\.topic), ["m/long"])
        XCTAssertEqual(received.first?.properties.messageExpiryInterval, 4)
    }

    func testMaxMessageExpiryCapsPublishesAndWillsAlike() throws {
        var settings = BrokerSettings()
        settings.maxMessageExpiry = 5
        let harness = Harness(settings: settings)
        let (watcher, _) = try harness.connect(.v5("watcher"))
        try watcher.send(.subscribe(Subscribe(packetID: 1, subscriptions: [Subscription(filter: "c/#", qos: .atLeastOnce)])))
        _ = try watcher.receive()
        let (publisher, _) = try harness.connect(.v5("pub"))
        var long = Properties()
        long.messageExpiryInterval = 60
        try publisher.send(.publish(Publish(topic: "c/long", payload: ByteBuffer(string: "x"), qos: .atLeastOnce, packetID: 1, properties: long)))
        try publisher.send(.publish(Publish(topic: "c/none", payload: ByteBuffer(string: "x"), qos: .atLeastOnce, packetID: 2)))
        let (client, _) = try harness.connect(.v5("w", will: Will(topic: "c/will", payload: ByteBuffer(string: "gone"), qos: .atLeastOnce)))
        client.drop()
        let received = try watcher.publishes()
        XCTAssertEqual(received.map(\.topic), ["c/long", "c/none", "c/will"])
        XCTAssertEqual(received.map(\.properties.messageExpiryInterval), [5, 5, 5])
    }
}

/// `delivery_flush_interval`: a subscriber written to less than the interval ago gets its next
/// deliveries in one write, at most the interval after the last one; order is kept.
final class DeliveryFlushIntervalTests: XCTestCase {
    /// A broker with `delivery_flush_interval` = `interval` ms, a subscriber of `t` (QoS 0) and
    /// a publisher.
    private func subscribed(interval: Int) throws -> (Harness, TestClient, TestClient) {
        var settings = BrokerSettings()
        settings.deliveryFlushInterval = interval
        let harness = Harness(settings: settings)
        let (subscriber, _) = try harness.connect(.v5("s"))
        try subscriber.send(.subscribe(Subscribe(packetID: 1, subscriptions: [Subscription(filter: "t", qos: .atMostOnce)])))
        _ = try subscriber.receive()
        let (publisher, _) = try harness.connect(.v5("p"))
        return (harness, subscriber, publisher)
    }

    func testDeliveriesWithinTheIntervalGoOutTogether() throws {
        let (harness, subscriber, publisher) = try subscribed(interval: 100)
        func publish(_ text: String) throws { try publisher.send(.publish(Publish(topic: "t", payload: ByteBuffer(string: text)))) }

        try publish("1")
        XCTAssertEqual(try subscriber.publishes().map { String(buffer: $0.payload) }, ["1"], "the first goes out at once")
        harness.advance(seconds: 0.02)
        try publish("2")
        try publish("3")
        XCTAssertEqual(try subscriber.publishes().count, 0, "written 20 ms ago: waits")
        // Something read from the subscriber that needs no answer does not flush them early.
        try subscriber.send(.puback(Ack(packetID: 77)))
        XCTAssertEqual(try subscriber.publishes().count, 0, "a PUBACK from the subscriber flushed the waiting deliveries")
        XCTAssertNil(try subscriber.channel.readOutbound(as: ByteBuffer.self))
        harness.advance(seconds: 0.07)
        XCTAssertEqual(try subscriber.publishes().count, 0)
        harness.advance(seconds: 0.011)
        // One write holds both, 100 ms after the first.
        var writes: [ByteBuffer] = []
        while let buffer = try subscriber.channel.readOutbound(as: ByteBuffer.self) { writes.append(buffer) }
        XCTAssertEqual(writes.count, 1)
        var bytes = writes.first ?? ByteBuffer()
        let decoder = MQTTDecoder(version: .v5)
        var payloads: [String] = []
        while let packet = try decoder.decode(from: &bytes) { if case .publish(let p) = packet { payloads.append(String(buffer: p.payload)) } }
        XCTAssertEqual(payloads, ["2", "3"])

        // Quiet for longer than the interval: written at once again.
        harness.advance(seconds: 0.5)
        try publish("4")
        XCTAssertEqual(try subscriber.publishes().map { String(buffer: $0.payload) }, ["4"])
        // The publisher's own acks are not held back (QoS 1).
        try publisher.send(.publish(Publish(topic: "t", payload: ByteBuffer(string: "5"), qos: .atLeastOnce, packetID: 9)))
        XCTAssertTrue(try publisher.receive().contains { if case .puback = $0 { return true } else { return false } })
        // "5" waits (4 went out just now); a packet the subscriber must get at once takes it along.
        XCTAssertEqual(try subscriber.publishes().count, 0)
        try subscriber.send(.pingreq)
        let packets = try subscriber.receive()
        XCTAssertEqual(packets.count, 2)
        XCTAssertTrue(packets.contains(.pingresp))
    }

    func testWaitingOutputBeyondItsLimitIsWrittenAtOnce() throws {
        let (_, subscriber, publisher) = try subscribed(interval: 100)
        try publisher.send(.publish(Publish(topic: "t", payload: ByteBuffer(string: "1"))))
        XCTAssertEqual(try subscriber.publishes().count, 1)
        try publisher.send(.publish(Publish(topic: "t", payload: ByteBuffer(string: "2"))))
        XCTAssertEqual(try subscriber.publishes().count, 0, "waits")
        let large = ByteBuffer(repeating: 0x61, count: Connection.coalescedOutputLimit)
        try publisher.send(.publish(Publish(topic: "t", payload: large)))
        let received = try subscriber.publishes()
        XCTAssertEqual(received.map(\.payload.readableBytes), [1, Connection.coalescedOutputLimit], "over the limit: written without waiting")
    }

    func testWithoutIntervalEveryBatchIsWrittenAtOnce() throws {
        let (_, subscriber, publisher) = try subscribed(interval: 0)
        for text in ["1", "2", "3"] {
            try publisher.send(.publish(Publish(topic: "t", payload: ByteBuffer(string: text))))
            XCTAssertEqual(try subscriber.publishes().map { String(buffer: $0.payload) }, [text])
        }
    }
}
