import MQTTCodec
import NIOCore
import RoostClient
import XCTest

/// The broker's configured limits, seen from the wire: queue bounds, packet size, connection
/// count, keep-alive.
final class LimitsTests: XCTestCase {
    func testFullQueueDropsTheNewest_v311() async throws { try await fullQueue(.v3_1_1) }
    func testFullQueueDropsTheNewest_v5() async throws { try await fullQueue(.v5) }

    /// MQTT 5 PUBACK reason codes: 0x10 with no subscriber.
    func testPubAckNoMatchingSubscribers_v5() async throws {
        try await withBroker { broker in
            let (publisher, _) = try await broker.connectedClient("lonely", version: .v5)
            let ack = try await publisher.publish(to: "nobody/listens", payload: "x", qos: .atLeastOnce)
            XCTAssertEqual(ack?.reasonCode, .noMatchingSubscribers)
            let rec = try await publisher.publish(to: "nobody/listens", payload: "x", qos: .exactlyOnce)
            XCTAssertEqual(rec?.reasonCode, .success, "PUBCOMP after PUBREC 0x10 (not a failure)")
            try await publisher.disconnect()
        }
    }

    func testLargePayloadRoundTrip_v311() async throws { try await largePayload(.v3_1_1) }
    func testLargePayloadRoundTrip_v5() async throws { try await largePayload(.v5) }

    func testPacketAboveMaxPacketSizeClosesTheConnection_v311() async throws { try await tooLarge(.v3_1_1) }
    func testPacketAboveMaxPacketSizeClosesTheConnection_v5() async throws { try await tooLarge(.v5) }

    /// The broker does not send a client a message larger than its Maximum Packet Size
    /// [MQTT-3.1.2-25]; the smaller ones still come, in order.
    func testClientMaximumPacketSizeIsRespected_v5() async throws {
        try await withBroker { broker in
            var configuration = broker.client("small-sub", version: .v5).configuration
            configuration.connectProperties.maximumPacketSize = 200
            let subscriber = MQTTClient(configuration: configuration)
            let inbox = Inbox(subscriber.messages)
            try await subscriber.connect()
            _ = try await subscriber.subscribe(to: "size/#", qos: .atLeastOnce)
            let (publisher, _) = try await broker.connectedClient("size-pub", version: .v5)
            _ = try await publisher.publish(to: "size/a", payload: "small", qos: .atLeastOnce)
            _ = try await publisher.publish(to: "size/b", payload: String(repeating: "L", count: 500), qos: .atLeastOnce)
            _ = try await publisher.publish(to: "size/c", payload: "small again", qos: .atLeastOnce)
            let received = try await inbox.take(2)
            XCTAssertEqual(received.map(\.topic), ["size/a", "size/c"])
            XCTAssertTrue(subscriber.isConnected)
            let extra = await inbox.unexpected(within: 0.05)
            XCTAssertEqual(extra.map(\.topic), [])
            try await subscriber.disconnect()
            try await publisher.disconnect()
        }
    }

    func testMaxConnections_v311() async throws { try await maxConnections(.v3_1_1) }
    func testMaxConnections_v5() async throws { try await maxConnections(.v5) }

    func testKeepAliveTimeoutClosesASilentClient_v311() async throws { try await keepAliveTimeout(.v3_1_1) }
    func testKeepAliveTimeoutClosesASilentClient_v5() async throws { try await keepAliveTimeout(.v5) }

    /// `max_queued_messages` 10: an offline persistent subscriber keeps the first 10 of 15
    /// messages (drop-newest); an MQTT 5 publisher learns of each drop from PUBACK 0x97.
    private func fullQueue(_ version: ProtocolVersion) async throws {
        var settings = integrationSettings()
        settings.maxQueuedMessages = 10
        try await withBroker(settings: settings) { broker in
            let clientID = "queue-\(version)"
            let subscriber = broker.client(clientID, version: version, cleanStart: version == .v5, sessionExpiry: 300)
            try await subscriber.connect()
            _ = try await subscriber.subscribe(to: "queue/t", qos: .atLeastOnce)
            try await subscriber.disconnect()

            let (publisher, _) = try await broker.connectedClient("queue-pub", version: version)
            var codes: [ReasonCode?] = []
            for number in 0..<15 {
                codes.append(try await publisher.publish(to: "queue/t", payload: "\(number)", qos: .atLeastOnce)?.reasonCode)
            }
            if version == .v5 {
                XCTAssertEqual(codes, Array(repeating: .success, count: 10) + Array(repeating: .quotaExceeded, count: 5))
            } else {
                XCTAssertEqual(codes, Array(repeating: .success, count: 15))
            }

            let returning = broker.client(clientID, version: version, cleanStart: false, sessionExpiry: 300)
            let inbox = Inbox(returning.messages)
            let connAck = try await returning.connect()
            XCTAssertTrue(connAck.sessionPresent)
            let received = try await inbox.take(10)
            XCTAssertEqual(received.map(\.text), (0..<10).map { "\($0)" }, "\(version): the oldest 10 are kept")
            _ = try await publisher.publish(to: "queue/t", payload: "fence", qos: .atLeastOnce)
            let rest = try await inbox.takeUntil { $0.text == "fence" }
            XCTAssertEqual(rest.map(\.text), [], "\(version): the newest 5 were dropped")
            try await returning.disconnect()
            try await publisher.disconnect()
        }
    }

    /// A 300 KiB payload (several reads and a 64 KiB read buffer) arrives intact.
    private func largePayload(_ version: ProtocolVersion) async throws {
        try await withBroker { broker in
            let (subscriber, inbox) = try await broker.connectedClient("big-sub", version: version)
            _ = try await subscriber.subscribe(to: "big/t", qos: .exactlyOnce)
            let (publisher, _) = try await broker.connectedClient("big-pub", version: version)
            var payload = ByteBuffer()
            for index in 0..<(300 * 1024) { payload.writeInteger(UInt8(truncatingIfNeeded: index &* 31 &+ index >> 8)) }
            for qos in [QoS.atMostOnce, .atLeastOnce, .exactlyOnce] {
                _ = try await publisher.publish(Publish(topic: "big/t", payload: payload, qos: qos))
                let message = try await inbox.next(timeout: 10)
                XCTAssertEqual(message.payload.readableBytes, payload.readableBytes)
                XCTAssertTrue(message.payload == payload, "\(version) QoS \(qos): payload intact")
            }
            try await subscriber.disconnect()
            try await publisher.disconnect()
        }
    }

    /// `max_packet_size` 1024: a larger PUBLISH closes the connection (MQTT 5: DISCONNECT 0x95
    /// first) and is not delivered.
    private func tooLarge(_ version: ProtocolVersion) async throws {
        var settings = integrationSettings()
        settings.maxPacketSize = 1024
        try await withBroker(settings: settings) { broker in
            let (subscriber, inbox) = try await broker.connectedClient("large-sub", version: version)
            _ = try await subscriber.subscribe(to: "large/#", qos: .atLeastOnce)
            let raw = try await broker.rawConnection(version: version)
            let connAck = try await raw.handshake(Connect(version: version, clientID: "large-pub"))
            if version == .v5 { XCTAssertEqual(connAck.properties.maximumPacketSize, 1024) }
            try await raw.send(.publish(Publish(
                topic: "large/t", payload: ByteBuffer(repeating: 0x41, count: 2000), qos: .atLeastOnce, packetID: 1)))
            let closed = await raw.packets.waitFinished()
            XCTAssertTrue(closed, "\(version): closed")
            let replies = Array(raw.packets.all.dropFirst())
            if version == .v5 {
                XCTAssertEqual(replies.count, 1)
                if case .disconnect(let disconnect)? = replies.first {
                    XCTAssertEqual(disconnect.reasonCode, .packetTooLarge)
                } else {
                    XCTFail("v5: expected DISCONNECT 0x95, got \(replies)")
                }
            } else {
                XCTAssertEqual(replies, [])
            }
            // Just under the limit is fine.
            let (publisher, _) = try await broker.connectedClient("fits-pub", version: version)
            _ = try await publisher.publish(to: "large/ok", payload: String(repeating: "a", count: 900), qos: .atLeastOnce)
            let message = try await inbox.next()
            XCTAssertEqual(message.topic, "large/ok", "\(version): only the message that fits is delivered")
            try await subscriber.disconnect()
            try await publisher.disconnect()
        }
    }

    /// `max_connections` 2: a third TCP connection is closed at once; the first two work on.
    private func maxConnections(_ version: ProtocolVersion) async throws {
        var settings = integrationSettings()
        settings.maxConnections = 2
        try await withBroker(settings: settings) { broker in
            let (first, inbox) = try await broker.connectedClient("slot-1", version: version)
            _ = try await first.subscribe(to: "slot/t", qos: .atLeastOnce)
            let (second, _) = try await broker.connectedClient("slot-2", version: version)
            let third = broker.client("slot-3", version: version)
            do {
                try await third.connect()
                XCTFail("\(version): a third connection was accepted")
            } catch {}
            _ = try await second.publish(to: "slot/t", payload: "still fine", qos: .atLeastOnce)
            let stillFine = try await inbox.next()
            XCTAssertEqual(stillFine.text, "still fine")
            // A freed slot can be used again (once the broker has seen the connection go).
            try await second.disconnect()
            let fourth = broker.client("slot-4", version: version)
            var attempts = 0
            while true {
                attempts += 1
                do {
                    try await fourth.connect()
                    break
                } catch {
                    if attempts == 50 { throw error }
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            try await fourth.disconnect()
            try await first.disconnect()
        }
    }

    /// A client that promised a 1 s keep-alive and then goes silent is closed after 1.5 s
    /// [MQTT-3.1.2-24] (MQTT 5: DISCONNECT 0x8D), and its will is published.
    private func keepAliveTimeout(_ version: ProtocolVersion) async throws {
        try await withBroker { broker in
            let (watcher, inbox) = try await broker.connectedClient("ka-watch", version: version)
            _ = try await watcher.subscribe(to: "ka/will", qos: .atLeastOnce)
            let raw = try await broker.rawConnection(version: version)
            let will = Will(topic: "ka/will", payload: ByteBuffer(string: "timed out"))
            let started = ContinuousClock.now
            _ = try await raw.handshake(Connect(version: version, keepAlive: 1, clientID: "silent", will: will))
            let closed = await raw.packets.waitFinished(timeout: 5)
            let elapsed = ContinuousClock.now - started
            XCTAssertTrue(closed, "\(version): closed")
            XCTAssertGreaterThanOrEqual(elapsed, .milliseconds(1400), "\(version): not before 1.5 x keep-alive")
            let replies = Array(raw.packets.all.dropFirst())
            if version == .v5 {
                guard case .disconnect(let disconnect)? = replies.first, replies.count == 1 else {
                    return XCTFail("v5: expected one DISCONNECT, got \(replies)")
                }
                XCTAssertEqual(disconnect.reasonCode, .keepAliveTimeout)
            } else {
                XCTAssertEqual(replies, [])
            }
            let willMessage = try await inbox.next()
            XCTAssertEqual(willMessage.text, "timed out")
            try await watcher.disconnect()
        }
    }
}

extension LimitsTests {
    /// A socket that sends no CONNECT within `connect_timeout` (1 s here) is closed.
    func testConnectTimeout() async throws {
        var settings = integrationSettings()
        settings.connectTimeout = 1
        try await withBroker(settings: settings) { broker in
            let idle = try await broker.rawConnection(version: .v3_1_1)
            let started = ContinuousClock.now
            let closed = await idle.packets.waitFinished(timeout: 5)
            XCTAssertTrue(closed, "closed without CONNECT")
            XCTAssertGreaterThanOrEqual(ContinuousClock.now - started, .milliseconds(900))
            XCTAssertEqual(idle.packets.all, [])
        }
    }

    /// `max_keepalive` 10: an MQTT 5 client asking for 60 s (or 0) is told 10 s in Server Keep
    /// Alive; a 3.1.1 client asking for more is refused (it cannot be told).
    func testMaxKeepAlive() async throws {
        var settings = integrationSettings()
        settings.maxKeepAlive = 10
        try await withBroker(settings: settings) { broker in
            for requested: UInt16 in [60, 0] {
                let client = broker.client("ka-\(requested)", version: .v5, keepAlive: requested)
                let connAck = try await client.connect()
                XCTAssertEqual(connAck.properties.serverKeepAlive, 10, "asked for \(requested)")
                XCTAssertEqual(client.keepAlive, 10)
                try await client.disconnect()
            }
            let within = broker.client("ka-ok", version: .v5, keepAlive: 5)
            let withinAck = try await within.connect()
            XCTAssertNil(withinAck.properties.serverKeepAlive)
            try await within.disconnect()

            let old = broker.client("ka-old", version: .v3_1_1, keepAlive: 60)
            do {
                try await old.connect()
                XCTFail("3.1.1 with keep-alive above max_keepalive was accepted")
            } catch MQTTClientError.connectionRefused(let connAck) {
                XCTAssertEqual(connAck.reasonCode.rawValue, ConnectReturnCode.identifierRejected.rawValue)
            }
        }
    }
}
