import RoostCore
import MQTTCodec
import NIOCore
import RoostClient
import XCTest

/// Exactly once inbound, and at least once through repeated connection loss.
final class DeliveryGuaranteeTests: XCTestCase {
    func testQoS2PublishResentBeforePubRelIsDeliveredOnce_v311() async throws { try await inboundQoS2Duplicate(.v3_1_1) }
    func testQoS2PublishResentBeforePubRelIsDeliveredOnce_v5() async throws { try await inboundQoS2Duplicate(.v5) }

    /// MQTT 5: a client that keeps more unreleased QoS 2 messages than the broker's Receive
    /// Maximum (`receive_maximum`, 1000 by default) is disconnected with 0x93 [MQTT-3.3.4-9].
    func testReceiveMaximumExceeded_v5() async throws {
        try await withBroker { broker in
            let raw = try await broker.rawConnection(version: .v5)
            let connAck = try await raw.handshake(Connect(version: .v5, clientID: "greedy"))
            let limit = BrokerSettings().receiveMaximum
            XCTAssertEqual(connAck.properties.receiveMaximum, UInt16(limit))
            let packets = (1...(limit + 1)).map { id -> MQTTPacket in
                .publish(Publish(topic: "greedy/t", payload: ByteBuffer(string: "\(id)"), qos: .exactlyOnce, packetID: UInt16(id)))
            }
            try await raw.send(packets)
            let closed = await raw.packets.waitFinished()
            XCTAssertTrue(closed)
            let replies = raw.packets.all.dropFirst()
            XCTAssertEqual(replies.count, limit + 1)
            guard case .disconnect(let disconnect)? = replies.last else {
                return XCTFail("expected DISCONNECT, got \(String(describing: replies.last))")
            }
            XCTAssertEqual(disconnect.reasonCode, .receiveMaximumExceeded)
        }
    }

    func testQoS1SurvivesRepeatedConnectionLoss_v311() async throws { try await flappingSubscriber(.v3_1_1) }
    func testQoS1SurvivesRepeatedConnectionLoss_v5() async throws { try await flappingSubscriber(.v5) }

    /// A publisher sends a QoS 2 PUBLISH, gets PUBREC, sends it again with DUP (as after a lost
    /// PUBREC), then PUBREL: the subscriber gets one copy [MQTT-4.3.3-10]. The packet id is free
    /// again after PUBCOMP: the next message with it is a new one.
    private func inboundQoS2Duplicate(_ version: ProtocolVersion) async throws {
        try await withBroker { broker in
            let (subscriber, inbox) = try await broker.connectedClient("once-sub", version: version)
            _ = try await subscriber.subscribe(to: "once/t", qos: .exactlyOnce)
            let raw = try await broker.rawConnection(version: version)
            _ = try await raw.handshake(Connect(version: version, clientID: "once-pub"))

            let first = Publish(topic: "once/t", payload: ByteBuffer(string: "first"), qos: .exactlyOnce, packetID: 7)
            try await raw.send(.publish(first))
            let firstRec = try await raw.receive()
            XCTAssertEqual(firstRec, .pubrec(Ack(packetID: 7)))
            var resent = first
            resent.dup = true
            try await raw.send(.publish(resent))
            let secondRec = try await raw.receive()
            XCTAssertEqual(secondRec, .pubrec(Ack(packetID: 7)), "\(version): a resent PUBLISH gets PUBREC again")
            try await raw.send(.pubrel(Ack(packetID: 7)))
            let comp = try await raw.receive()
            XCTAssertEqual(comp, .pubcomp(Ack(packetID: 7)))

            let second = Publish(topic: "once/t", payload: ByteBuffer(string: "second"), qos: .exactlyOnce, packetID: 7)
            try await raw.send(.publish(second))
            let thirdRec = try await raw.receive()
            XCTAssertEqual(thirdRec, .pubrec(Ack(packetID: 7)))
            try await raw.send(.pubrel(Ack(packetID: 7)))
            _ = try await raw.receive()

            let received = try await inbox.take(2)
            XCTAssertEqual(received.map(\.text), ["first", "second"], "\(version): exactly once each")
            let extra = await inbox.unexpected(within: 0.05)
            XCTAssertEqual(extra.map(\.text), [])

            if version == .v5 {
                // PUBREL for an id the broker does not know: PUBCOMP 0x92.
                try await raw.send(.pubrel(Ack(packetID: 99)))
                let unknown = try await raw.receive()
                XCTAssertEqual(unknown, .pubcomp(Ack(packetID: 99, reasonCode: .packetIdentifierNotFound)))
            }
            try await raw.send(.disconnect(Disconnect()))
            await raw.close()
            try await subscriber.disconnect()
        }
    }

    /// A persistent QoS 1 subscriber drops its connection (no DISCONNECT) several times while
    /// 300 messages are published. Every message arrives at least once; a second copy only ever
    /// comes with DUP set; and the first copies arrive in publish order.
    private func flappingSubscriber(_ version: ProtocolVersion) async throws {
        try await withBroker { broker in
            let clientID = "flapper-\(version)"
            // Clean start 0 on every connection (the same configuration reconnects), expiry 300 s.
            let subscriber = broker.client(clientID, version: version, cleanStart: false, sessionExpiry: 300)
            let (merged, follower) = Self.mergedMessages(of: subscriber)
            defer { follower.cancel() }
            let collected = Inbox(merged)
            try await subscriber.connect()
            _ = try await subscriber.subscribe(to: "flap/t", qos: .atLeastOnce)
            let (publisher, _) = try await broker.connectedClient("flap-pub", version: version)

            let count = 300
            let publishing = Task {
                for number in 0..<count {
                    _ = try await publisher.publish(to: "flap/t", payload: "\(number)", qos: .atLeastOnce)
                    if number % 10 == 0 { try await Task.sleep(for: .milliseconds(1)) }
                }
            }
            for _ in 0..<6 {
                try await Task.sleep(for: .milliseconds(15))
                await subscriber.close()
                try await subscriber.connect()
            }
            try await publishing.value
            _ = try await publisher.publish(to: "flap/t", payload: "fence", qos: .atLeastOnce)

            let received = try await collected.takeUntil(timeout: 15) { $0.text == "fence" }
            var seen = Set<Int>()
            var firstOrder: [Int] = []
            for message in received {
                guard let number = Int(message.text) else { continue }
                if seen.insert(number).inserted {
                    firstOrder.append(number)
                } else {
                    XCTAssertTrue(message.dup, "\(version): copy of \(number) without DUP")
                }
            }
            XCTAssertEqual(seen.count, count, "\(version): missing \(Set(0..<count).subtracting(seen).sorted())")
            XCTAssertEqual(firstOrder, firstOrder.sorted(), "\(version): first copies in publish order")
            try await subscriber.disconnect()
            try await publisher.disconnect()
        }
    }

    /// One stream of a client's messages across reconnects: ``MQTTClient/messages`` is a new
    /// stream per connection, so the returned task follows each in turn; cancel it when done.
    private static func mergedMessages(of client: MQTTClient) -> (AsyncStream<Publish>, Task<Void, Never>) {
        let (stream, continuation) = AsyncStream.makeStream(of: Publish.self)
        let follower = Task {
            while !Task.isCancelled {
                for await message in client.messages { continuation.yield(message) }
                // That connection ended; the client has made the next stream already (or is
                // about to). Don't spin while no connection exists.
                try? await Task.sleep(for: .milliseconds(1))
            }
            continuation.finish()
        }
        return (stream, follower)
    }
}
