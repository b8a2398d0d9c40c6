import MQTTCodec
import NIOCore
import XCTest

/// Checks every fixture of `CodecFixture.all` both ways: the encoder writes exactly its bytes,
/// and the decoder reads exactly its value from them, consuming every byte.
final class CodecFixtureTests: XCTestCase {
    func testEncoderWritesExactlyTheFixtureBytes() {
        for fixture in CodecFixture.all {
            var buffer = ByteBuffer()
            MQTTEncoder(version: fixture.version).encode(fixture.packet, into: &buffer)
            XCTAssertEqual(
                Array(buffer.readableBytesView), fixture.bytes,
                "\(fixture): encoded \(hex(buffer.readableBytesView)), expected \(hex(fixture.bytes))")
        }
    }

    func testDecoderReadsExactlyTheFixtureValue() {
        for fixture in CodecFixture.all {
            var buffer = fixture.buffer
            let decoder = MQTTDecoder(version: fixture.version, maximumPacketSize: 268_435_460)
            XCTAssertEqual(try decoder.decode(from: &buffer), fixture.packet, "\(fixture)")
            XCTAssertEqual(buffer.readableBytes, 0, "\(fixture): bytes left over")
        }
    }

    func testSizeOfEqualsEncodedByteCount() {
        for fixture in CodecFixture.all {
            let encoder = MQTTEncoder(version: fixture.version)
            XCTAssertEqual(encoder.size(of: fixture.packet), fixture.bytes.count, "\(fixture)")
            if case .publish(let publish) = fixture.packet {
                XCTAssertEqual(encoder.size(of: publish), fixture.bytes.count, "\(fixture): size(of: Publish)")
            }
        }
    }

    /// The encoder appends: what the buffer held before stays in front (the coalescing output buffer).
    func testEncoderAppendsAfterExistingBytes() {
        for fixture in CodecFixture.all {
            var buffer = ByteBuffer(bytes: [0xEE, 0xEE, 0xEE])
            buffer.moveReaderIndex(forwardBy: 1)
            MQTTEncoder(version: fixture.version).encode(fixture.packet, into: &buffer)
            XCTAssertEqual(Array(buffer.readableBytesView), [0xEE, 0xEE] + fixture.bytes, "\(fixture)")
        }
    }

    /// The decoder reads from the reader index, not from the start of the storage, and leaves
    /// the bytes after the packet alone.
    func testDecoderStartsAtReaderIndexAndStopsAtPacketEnd() throws {
        for fixture in CodecFixture.all {
            var buffer = ByteBuffer(bytes: [0x01, 0x02] + fixture.bytes + [0xC0])
            buffer.moveReaderIndex(forwardBy: 2)
            let decoder = MQTTDecoder(version: fixture.version)
            XCTAssertEqual(try decoder.decode(from: &buffer), fixture.packet, "\(fixture)")
            XCTAssertEqual(Array(buffer.readableBytesView), [0xC0], "\(fixture)")
        }
    }

    func testFixtureNamesAreUnique() {
        let names = CodecFixture.all.map(\.description)
        XCTAssertEqual(Set(names).count, names.count)
    }

    /// Every packet type has at least one fixture in 3.1.1 (AUTH excepted) and in 5.0.
    func testFixturesCoverEveryPacketType() {
        let allTypes: [PacketType] = [
            .connect, .connack, .publish, .puback, .pubrec, .pubrel, .pubcomp, .subscribe, .suback,
            .unsubscribe, .unsuback, .pingreq, .pingresp, .disconnect, .auth,
        ]
        let v3Types = Set(CodecFixture.mqtt3.filter { $0.version == .v3_1_1 }.map(\.packet.type.rawValue))
        let v5Types = Set(CodecFixture.mqtt5.map(\.packet.type.rawValue))
        XCTAssertEqual(v3Types, Set(allTypes.filter { $0 != .auth }.map(\.rawValue)))
        XCTAssertEqual(v5Types, Set(allTypes.map(\.rawValue)))
        XCTAssertTrue(CodecFixture.mqtt3.contains { $0.version == .v3_1 })
    }

    // MARK: - Forms the decoder accepts but the encoder never writes

    /// Valid encodings that differ from the encoder's (longer forms, other property order):
    /// they decode to the same value as the shorter form.
    private let alternativeForms: [(name: String, version: ProtocolVersion, bytes: [UInt8], packet: MQTTPacket)] = [
        (
            "PUBACK with reason code 0 and property length 0", .v5,
            wire([0x40, 0x04], [0x00, 0x01], [0x00], [0x00]),  // PUBACK, rl 4; id 1; success; property length 0
            .puback(Ack(packetID: 1))
        ),
        (
            "PUBREL with reason code 0 and no property length", .v5,
            wire([0x62, 0x03], [0x00, 0x01], [0x00]),  // PUBREL, rl 3; id 1; success
            .pubrel(Ack(packetID: 1))
        ),
        (
            "DISCONNECT with reason code 0 and property length 0", .v5,
            wire([0xE0, 0x02], [0x00], [0x00]),  // DISCONNECT, rl 2; normal disconnection; property length 0
            .disconnect(Disconnect())
        ),
        (
            "AUTH with reason code 0 and property length 0", .v5,
            wire([0xF0, 0x02], [0x00], [0x00]),  // AUTH, rl 2; success; property length 0
            .auth(Auth())
        ),
        (
            "CONNACK properties in descending identifier order", .v5,
            wire(
                [0x20, 0x0E],  // CONNACK, remaining length 14 = 2 + 1 + 11
                [0x00, 0x00],  // flags, reason code success
                [0x0B],  // property length 11
                [0x27, 0x00, 0x00, 0x04, 0x00],  // maximum packet size 1024
                [0x21, 0x00, 0x08],  // receive maximum 8
                [0x13, 0x00, 0x0F]  // server keep alive 15
            ),
            .connack(
                ConnAck(
                    properties: props {
                        $0.maximumPacketSize = 1024
                        $0.receiveMaximum = 8
                        $0.serverKeepAlive = 15
                    }))
        ),
        (
            "PUBLISH user properties interleaved with others keep their own order", .v5,
            wire(
                [0x30, 0x19],  // PUBLISH QoS 0, remaining length 25 = 3 + 1 + 21
                [0x00, 0x01], utf8("t"),  // topic name
                [0x15],  // property length 21
                [0x26, 0x00, 0x01], utf8("b"), [0x00, 0x01], utf8("1"),  // user property b=1
                [0x02, 0x00, 0x00, 0x00, 0x05],  // message expiry interval 5
                [0x0B, 0x07],  // subscription identifier 7
                [0x26, 0x00, 0x01], utf8("a"), [0x00, 0x01], utf8("2")  // user property a=2
            ),
            .publish(
                Publish(
                    topic: "t", payload: ByteBuffer(),
                    properties: props {
                        $0.messageExpiryInterval = 5
                        $0.subscriptionIdentifiers = [7]
                        $0.userProperties = [UserProperty(name: "b", value: "1"), UserProperty(name: "a", value: "2")]
                    }))
        ),
        (
            "3.1.1 CONNECT from a 5.0 decoder (CONNECT carries its own version)", .v5,
            wire([0x10, 0x0E], [0x00, 0x04], utf8("MQTT"), [0x04], [0x00], [0x00, 0x00], [0x00, 0x02], utf8("id")),
            .connect(Connect(version: .v3_1_1, cleanStart: false, keepAlive: 0, clientID: "id"))
        ),
        (
            "5.0 CONNECT from a 3.1.1 decoder (CONNECT carries its own version)", .v3_1_1,
            wire([0x10, 0x0F], [0x00, 0x04], utf8("MQTT"), [0x05], [0x02], [0x00, 0x05], [0x00], [0x00, 0x02], utf8("id")),
            .connect(Connect(version: .v5, cleanStart: true, keepAlive: 5, clientID: "id"))
        ),
        (
            "UTF-8 byte order mark kept in a string [MQTT-1.5.4-3]", .v3_1_1,
            wire([0x30, 0x06], [0x00, 0x04], [0xEF, 0xBB, 0xBF], utf8("t")),  // topic U+FEFF "t", no payload
            .publish(Publish(topic: "\u{FEFF}t", payload: ByteBuffer()))
        ),
    ]

    func testAlternativeFormsDecodeToTheSameValue() {
        for form in alternativeForms {
            var buffer = ByteBuffer(bytes: form.bytes)
            XCTAssertEqual(try MQTTDecoder(version: form.version).decode(from: &buffer), form.packet, form.name)
            XCTAssertEqual(buffer.readableBytes, 0, form.name)
        }
    }

    /// Encoding for 3.1.1 leaves out what 3.1.1 cannot carry: properties, ack reason codes and
    /// 5.0 subscription options.
    func testEncoderFor311DropsFieldsThatOnlyExistIn5() {
        let encoder = MQTTEncoder(version: .v3_1_1)
        let cases: [(MQTTPacket, [UInt8])] = [
            (
                .puback(Ack(packetID: 1, reasonCode: .notAuthorized, properties: props { $0.reasonString = "x" })),
                [0x40, 0x02, 0x00, 0x01]
            ),
            (
                .publish(Publish(topic: "t", payload: ByteBuffer(), properties: props { $0.topicAlias = 1 })),
                [0x30, 0x03, 0x00, 0x01, 0x74]
            ),
            (
                .subscribe(
                    Subscribe(
                        packetID: 1,
                        subscriptions: [
                            Subscription(
                                filter: "t", qos: .atLeastOnce, noLocal: true, retainAsPublished: true,
                                retainHandling: .doNotSend)
                        ])),
                [0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 0x74, 0x01]
            ),
            (.unsuback(UnsubAck(packetID: 1, reasonCodes: [.success])), [0xB0, 0x02, 0x00, 0x01]),
            (.disconnect(Disconnect(reasonCode: .serverBusy)), [0xE0, 0x00]),
            (.connack(ConnAck(properties: props { $0.receiveMaximum = 5 })), [0x20, 0x02, 0x00, 0x00]),
        ]
        for (packet, bytes) in cases {
            var buffer = ByteBuffer()
            encoder.encode(packet, into: &buffer)
            XCTAssertEqual(Array(buffer.readableBytesView), bytes, "\(packet.type)")
            XCTAssertEqual(encoder.size(of: packet), bytes.count, "\(packet.type)")
        }
    }
}
