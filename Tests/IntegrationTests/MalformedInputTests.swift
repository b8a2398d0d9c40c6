import MQTTCodec
import NIOCore
import RoostClient
import XCTest

/// Malformed input closes the offending connection (MQTT 5: after a DISCONNECT with a failure
/// reason code) and nothing else: other clients keep their messages flowing.
final class MalformedInputTests: XCTestCase {
    func testGarbageAfterConnectClosesOnlyThatConnection_v311() async throws { try await garbageAfterConnect(.v3_1_1) }
    func testGarbageAfterConnectClosesOnlyThatConnection_v5() async throws { try await garbageAfterConnect(.v5) }

    func testGarbageInsteadOfConnectIsClosed_v311() async throws { try await garbageInsteadOfConnect(.v3_1_1) }
    func testGarbageInsteadOfConnectIsClosed_v5() async throws { try await garbageInsteadOfConnect(.v5) }

    /// One malformed input: its bytes, and the reason code an MQTT 5 client is told.
    private struct Sample {
        var name: String
        var reason: ReasonCode
        var bytes: [UInt8]

        init(_ name: String, _ reason: ReasonCode, _ bytes: [UInt8]) {
            self.name = name
            self.reason = reason
            self.bytes = bytes
        }
    }

    /// Each entry is sent, after a valid CONNECT, on a connection of its own. Bodies carry the
    /// (empty) property length of MQTT 5 where it belongs, so only the named fault is wrong.
    private static func garbage(_ version: ProtocolVersion) -> [Sample] {
        let noProperties: [UInt8] = version == .v5 ? [0x00] : []
        let extra = UInt8(noProperties.count)
        let none = noProperties
        return [
            Sample("reserved packet type 0", .malformedPacket, [0x00, 0x00]),
            Sample("remaining length of 5 bytes", .malformedPacket, [0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]),
            Sample("PUBLISH with QoS 3", .malformedPacket, [0x36, 0x05 + extra, 0x00, 0x01, 0x61, 0x00, 0x01] + none),
            Sample("PUBLISH with DUP at QoS 0", .malformedPacket, [0x38, 0x03 + extra, 0x00, 0x01, 0x61] + none),
            Sample("PUBLISH QoS 1 with packet id 0", .protocolError, [0x32, 0x05 + extra, 0x00, 0x01, 0x61, 0x00, 0x00] + none),
            Sample("PUBLISH topic with a wildcard", .topicNameInvalid, [0x30, 0x04 + extra, 0x00, 0x02, 0x61, 0x23] + none),
            Sample("PUBLISH topic not UTF-8", .malformedPacket, [0x30, 0x04 + extra, 0x00, 0x02, 0xC3, 0x28] + none),
            Sample("PUBLISH topic with U+0000", .malformedPacket, [0x30, 0x04 + extra, 0x00, 0x02, 0x61, 0x00] + none),
            Sample("PUBLISH body shorter than its topic", .malformedPacket, [0x30, 0x03, 0x00, 0x05, 0x61]),
            Sample("SUBSCRIBE with flags 0000", .malformedPacket, [0x80, 0x06 + extra, 0x00, 0x01] + none + [0x00, 0x01, 0x61, 0x00]),
            Sample("SUBSCRIBE without filters", .protocolError, [0x82, 0x02 + extra, 0x00, 0x01] + none),
            Sample("a second CONNECT", .protocolError, [0x10, 0x0C, 0x00, 0x04] + Array("MQTT".utf8) + [0x04, 0x02, 0x00, 0x00, 0x00, 0x00]),
            Sample("PINGRESP with reserved flags set", .malformedPacket, [0xDE, 0x00]),
            Sample("PINGRESP, which only servers send", .protocolError, [0xD0, 0x00]),
            // The length (about 40 MB) is over max_packet_size before anything else is read.
            Sample("random bytes", .packetTooLarge, [0xDE, 0xAD, 0xBE, 0xEF, 0x13, 0x37, 0x00, 0xFF, 0x42]),
        ]
    }

    private func garbageAfterConnect(_ version: ProtocolVersion) async throws {
        try await withBroker { broker in
            let (subscriber, inbox) = try await broker.connectedClient("steady-sub", version: version)
            _ = try await subscriber.subscribe(to: "steady/#", qos: .atLeastOnce)
            let (publisher, _) = try await broker.connectedClient("steady-pub", version: version)
            var sent = 0

            let samples = Self.garbage(version)
            for (index, sample) in samples.enumerated() {
                let raw = try await broker.rawConnection(version: version)
                let connAck = try await raw.handshake(Connect(version: version, clientID: "garbage-\(index)"))
                XCTAssertEqual(connAck.reasonCode, .success)
                try await raw.send(bytes: sample.bytes)

                let closed = await raw.packets.waitFinished(timeout: 5)
                XCTAssertTrue(closed, "\(version) \(sample.name): the connection is closed")
                let replies = raw.packets.all.dropFirst()  // after the CONNACK
                if version == .v5 {
                    guard case .disconnect(let disconnect)? = replies.first, replies.count == 1 else {
                        XCTFail("\(version) \(sample.name): expected one DISCONNECT, got \(Array(replies))")
                        continue
                    }
                    XCTAssertEqual(disconnect.reasonCode, sample.reason, "\(sample.name)")
                } else {
                    XCTAssertEqual(Array(replies), [], "\(version) \(sample.name): 3.1.1 just closes")
                }

                // The subscriber on the other connection still gets everything.
                _ = try await publisher.publish(to: "steady/\(index)", payload: "after \(sample.name)", qos: .atLeastOnce)
                sent += 1
                let message = try await inbox.next()
                XCTAssertEqual(message.text, "after \(sample.name)")
            }
            XCTAssertEqual(sent, samples.count)
            XCTAssertTrue(subscriber.isConnected)
            XCTAssertTrue(publisher.isConnected)
            try await subscriber.disconnect()
            try await publisher.disconnect()
        }
    }

    /// Bytes that are not a CONNECT as the first packet: closed without a reply (a CONNACK may only
    /// answer a CONNECT that could be read) [MQTT-3.1.0-1].
    private func garbageInsteadOfConnect(_ version: ProtocolVersion) async throws {
        try await withBroker { broker in
            let (subscriber, inbox) = try await broker.connectedClient("steady-sub", version: version)
            _ = try await subscriber.subscribe(to: "steady/#", qos: .atMostOnce)
            for (index, sample) in Self.garbage(version).enumerated() where !sample.name.contains("CONNECT") {
                let raw = try await broker.rawConnection(version: version)
                try await raw.send(bytes: sample.bytes)
                let closed = await raw.packets.waitFinished(timeout: 5)
                XCTAssertTrue(closed, "\(sample.name) as the first packet: closed")
                XCTAssertEqual(raw.packets.all, [], "\(sample.name) as the first packet: no reply")
                _ = try await subscriber.publish(to: "steady/\(index)", payload: "still here", qos: .atMostOnce)
                let message = try await inbox.next()
                XCTAssertEqual(message.topic, "steady/\(index)")
            }
            // A PUBLISH (well formed) before CONNECT is refused the same way.
            let early = try await broker.rawConnection(version: version)
            try await early.send(.publish(Publish(topic: "steady/early", payload: ByteBuffer(string: "x"))))
            let closed = await early.packets.waitFinished(timeout: 5)
            XCTAssertTrue(closed)
            let extra = await inbox.unexpected(within: 0.05)
            XCTAssertEqual(extra.map(\.topic), [], "a PUBLISH before CONNECT is not routed")
            try await subscriber.disconnect()
        }
    }
}
