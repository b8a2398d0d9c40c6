import MQTTCodec
import NIOCore
import XCTest

/// Malformed and protocol-violating input: each entry carries the exact ``DecodeError`` the
/// decoder must throw, and the rule it enforces.
final class MalformedPacketTests: XCTestCase {
    struct Case {
        var name: String
        var version: ProtocolVersion
        var bytes: [UInt8]
        var maximumPacketSize: Int
        var error: DecodeError

        init(_ name: String, _ version: ProtocolVersion, _ bytes: [UInt8], max: Int = 268_435_460, _ error: DecodeError) {
            self.name = name
            self.version = version
            self.bytes = bytes
            self.maximumPacketSize = max
            self.error = error
        }
    }

    func testEveryMalformedInputThrowsItsError() {
        let cases = Self.fixedHeader + Self.truncatedAndTrailing + Self.strings + Self.connect + Self.publish
            + Self.packetIdentifiers + Self.properties + Self.subscriptions
        for entry in cases {
            var buffer = ByteBuffer(bytes: entry.bytes)
            let decoder = MQTTDecoder(version: entry.version, maximumPacketSize: entry.maximumPacketSize)
            XCTAssertThrowsError(try decoder.decode(from: &buffer), "\(entry.version) \(entry.name): no error") { error in
                XCTAssertEqual(error as? DecodeError, entry.error, "\(entry.version) \(entry.name) [\(hex(entry.bytes))]")
            }
        }
    }

    // MARK: - Fixed header (MQTT 5.0 section 2.1, 1.5.5)

    static let fixedHeader: [Case] = [
        Case("remaining length of 5 bytes [MQTT-1.5.5]", .v3_1_1, [0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], .malformedRemainingLength),
        Case("remaining length: 4th byte still continues", .v5, [0x30, 0x80, 0x80, 0x80, 0x80], .malformedRemainingLength),
        Case("remaining length 0 in two bytes [MQTT-1.5.5-1]", .v3_1_1, [0xC0, 0x80, 0x00], .nonMinimalVariableByteInteger),
        Case("property length 0 in two bytes [MQTT-1.5.5-1]", .v5, [0xE0, 0x03, 0x00, 0x80, 0x00], .nonMinimalVariableByteInteger),
        // The limit is checked as soon as the remaining length is known, before the body is buffered.
        Case("packet too large, only the header has arrived", .v5, [0x30, 0x14], max: 10, .packetTooLarge(size: 22, limit: 10)),
        Case("packet too large by one byte", .v3_1_1, [0x30, 0x09], max: 10, .packetTooLarge(size: 11, limit: 10)),
        Case(
            "packet too large, largest remaining length", .v5, [0x30, 0xFF, 0xFF, 0xFF, 0x7F], max: 1000,
            .packetTooLarge(size: 268_435_460, limit: 1000)),
        Case("packet type 0 is reserved", .v3_1_1, [0x00, 0x00], .invalidPacketType(0)),
        Case("packet type 0 is reserved", .v5, [0x00, 0x00], .invalidPacketType(0)),
        Case("AUTH does not exist in 3.1.1", .v3_1_1, [0xF0, 0x00], .invalidPacketType(15)),
        Case("AUTH does not exist in 3.1", .v3_1, [0xF0, 0x00], .invalidPacketType(15)),
        // Reserved flag bits of the fixed header [MQTT-2.1.3-1]; the body is valid or irrelevant.
        Case("CONNECT flags 0010", .v3_1_1, [0x12, 0x00], .invalidFixedHeaderFlags(.connect)),
        Case("CONNACK flags 0001", .v3_1_1, [0x21, 0x02, 0x00, 0x00], .invalidFixedHeaderFlags(.connack)),
        Case("PUBACK flags 0001", .v3_1_1, [0x41, 0x02, 0x00, 0x01], .invalidFixedHeaderFlags(.puback)),
        Case("PUBACK flags 0010", .v5, [0x42, 0x02, 0x00, 0x01], .invalidFixedHeaderFlags(.puback)),
        Case("PUBREC flags 1000", .v3_1_1, [0x58, 0x02, 0x00, 0x01], .invalidFixedHeaderFlags(.pubrec)),
        Case("PUBREL flags 0000 [MQTT-3.6.1-1]", .v3_1_1, [0x60, 0x02, 0x00, 0x01], .invalidFixedHeaderFlags(.pubrel)),
        Case("PUBREL flags 0011", .v5, [0x63, 0x02, 0x00, 0x01], .invalidFixedHeaderFlags(.pubrel)),
        Case("PUBCOMP flags 0010", .v3_1_1, [0x72, 0x02, 0x00, 0x01], .invalidFixedHeaderFlags(.pubcomp)),
        Case(
            "SUBSCRIBE flags 0000 [MQTT-3.8.1-1]", .v3_1_1, [0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 0x74, 0x00],
            .invalidFixedHeaderFlags(.subscribe)),
        Case(
            "SUBSCRIBE flags 0011", .v5, [0x83, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 0x74, 0x00],
            .invalidFixedHeaderFlags(.subscribe)),
        Case("SUBACK flags 0010", .v3_1_1, [0x92, 0x03, 0x00, 0x01, 0x00], .invalidFixedHeaderFlags(.suback)),
        Case(
            "UNSUBSCRIBE flags 0000 [MQTT-3.10.1-1]", .v3_1_1, [0xA0, 0x05, 0x00, 0x01, 0x00, 0x01, 0x74],
            .invalidFixedHeaderFlags(.unsubscribe)),
        Case("UNSUBACK flags 0010", .v3_1_1, [0xB2, 0x02, 0x00, 0x01], .invalidFixedHeaderFlags(.unsuback)),
        Case("PINGREQ flags 0001", .v3_1_1, [0xC1, 0x00], .invalidFixedHeaderFlags(.pingreq)),
        Case("PINGRESP flags 1000", .v5, [0xD8, 0x00], .invalidFixedHeaderFlags(.pingresp)),
        Case("DISCONNECT flags 0010", .v3_1_1, [0xE2, 0x00], .invalidFixedHeaderFlags(.disconnect)),
        Case("AUTH flags 0001", .v5, [0xF1, 0x00], .invalidFixedHeaderFlags(.auth)),
    ]

    // MARK: - Bodies that end early or carry bytes left over

    static let truncatedAndTrailing: [Case] = [
        Case("PUBACK body of one byte", .v3_1_1, [0x40, 0x01, 0x00], .malformedBody(.puback)),
        Case("PUBACK body empty", .v5, [0x40, 0x00], .malformedBody(.puback)),
        Case("PUBLISH topic longer than the body", .v3_1_1, [0x30, 0x03, 0x00, 0x05, 0x61], .malformedBody(.publish)),
        Case("PUBLISH topic length cut in half", .v3_1_1, [0x30, 0x01, 0x00], .malformedBody(.publish)),
        Case("PUBLISH QoS 1 without packet identifier", .v3_1_1, [0x32, 0x03, 0x00, 0x01, 0x74], .malformedBody(.publish)),
        Case("PUBLISH 5.0 without property length", .v5, [0x30, 0x03, 0x00, 0x01, 0x74], .malformedBody(.publish)),
        Case(
            "PUBLISH property length past the body", .v5, [0x30, 0x05, 0x00, 0x01, 0x74, 0x09, 0x01],
            .malformedBody(.publish)),
        Case(
            "PUBLISH property value cut short (message expiry of 1 byte)", .v5,
            frame(0x30, [0x00, 0x01], utf8("t"), [0x02], [0x02, 0x00]), .malformedBody(.publish)),
        Case(
            "PUBLISH user property without value", .v5,
            frame(0x30, [0x00, 0x01], utf8("t"), [0x04], [0x26, 0x00, 0x01], utf8("a")), .malformedBody(.publish)),
        Case(
            "PUBLISH correlation data longer than the property block", .v5,
            frame(0x30, [0x00, 0x01], utf8("t"), [0x04], [0x09, 0x00, 0x05, 0xAA], [0xBB, 0xCC, 0xDD, 0xEE]),
            .malformedBody(.publish)),
        Case("CONNECT ends in the protocol name", .v3_1_1, [0x10, 0x04, 0x00, 0x04, 0x4D, 0x51], .malformedBody(.connect)),
        Case(
            "CONNECT ends before keep alive", .v3_1_1, frame(0x10, [0x00, 0x04], utf8("MQTT"), [0x04, 0x02]),
            .malformedBody(.connect)),
        Case(
            "CONNECT without client identifier", .v3_1_1, frame(0x10, [0x00, 0x04], utf8("MQTT"), [0x04, 0x02, 0x00, 0x3C]),
            .malformedBody(.connect)),
        Case(
            "CONNECT will flag without will topic", .v3_1_1,
            frame(0x10, [0x00, 0x04], utf8("MQTT"), [0x04, 0x06, 0x00, 0x3C], [0x00, 0x00]), .malformedBody(.connect)),
        Case(
            "CONNECT will topic without will payload", .v3_1_1,
            frame(0x10, [0x00, 0x04], utf8("MQTT"), [0x04, 0x06, 0x00, 0x3C], [0x00, 0x00], [0x00, 0x01], utf8("w")),
            .malformedBody(.connect)),
        Case(
            "CONNECT user name flag without user name", .v3_1_1,
            frame(0x10, [0x00, 0x04], utf8("MQTT"), [0x04, 0x82, 0x00, 0x3C], [0x00, 0x00]), .malformedBody(.connect)),
        Case(
            "CONNECT password flag without password", .v5,
            frame(0x10, [0x00, 0x04], utf8("MQTT"), [0x05, 0x42, 0x00, 0x3C], [0x00], [0x00, 0x00]),
            .malformedBody(.connect)),
        Case(
            "CONNECT property length past the body", .v5, frame(0x10, [0x00, 0x04], utf8("MQTT"), [0x05, 0x02, 0x00, 0x3C, 0x05]),
            .malformedBody(.connect)),
        Case(
            "CONNECT will property length past the body", .v5,
            frame(0x10, [0x00, 0x04], utf8("MQTT"), [0x05, 0x06, 0x00, 0x3C], [0x00], [0x00, 0x00], [0x20]),
            .malformedBody(.connect)),
        Case("CONNACK of one byte", .v3_1_1, [0x20, 0x01, 0x00], .malformedBody(.connack)),
        Case("CONNACK 5.0 without property length", .v5, [0x20, 0x02, 0x00, 0x00], .malformedBody(.connack)),
        Case("CONNACK reserved acknowledge flag bits", .v3_1_1, [0x20, 0x02, 0x02, 0x00], .malformedBody(.connack)),
        Case(
            "SUBSCRIBE filter without options byte", .v3_1_1, [0x82, 0x06, 0x00, 0x01, 0x00, 0x02, 0x61, 0x62],
            .malformedBody(.subscribe)),
        Case("SUBSCRIBE without packet identifier", .v3_1_1, [0x82, 0x01, 0x00], .malformedBody(.subscribe)),
        Case(
            "SUBSCRIBE subscription identifier cut inside the property block", .v5,
            frame(0x82, [0x00, 0x01], [0x02, 0x0B, 0x80], [0x00, 0x01], utf8("t"), [0x00]), .malformedBody(.subscribe)),
        Case("SUBACK without packet identifier", .v3_1_1, [0x90, 0x01, 0x00], .malformedBody(.suback)),
        Case("UNSUBSCRIBE filter cut short", .v3_1_1, [0xA2, 0x04, 0x00, 0x01, 0x00, 0x05], .malformedBody(.unsubscribe)),
        Case("UNSUBACK of one byte", .v5, [0xB0, 0x01, 0x00], .malformedBody(.unsuback)),
        Case("PUBREL property length past the body", .v5, [0x62, 0x04, 0x00, 0x01, 0x00, 0x05], .malformedBody(.pubrel)),
        Case("DISCONNECT property length past the body", .v5, [0xE0, 0x02, 0x00, 0x03], .malformedBody(.disconnect)),
        Case("AUTH property length past the body", .v5, [0xF0, 0x02, 0x18, 0x01], .malformedBody(.auth)),
        // Bytes left over after the last field.
        Case("PUBACK 3.1.1 with a reason code byte", .v3_1_1, [0x40, 0x03, 0x00, 0x01, 0x00], .malformedBody(.puback)),
        Case("PUBACK 5.0 with a byte after the properties", .v5, [0x40, 0x05, 0x00, 0x01, 0x10, 0x00, 0xFF], .malformedBody(.puback)),
        Case("PINGREQ with a body", .v3_1_1, [0xC0, 0x01, 0x00], .malformedBody(.pingreq)),
        Case("PINGRESP with a body", .v5, [0xD0, 0x01, 0x00], .malformedBody(.pingresp)),
        Case("DISCONNECT 3.1.1 with a body", .v3_1_1, [0xE0, 0x01, 0x00], .malformedBody(.disconnect)),
        Case("DISCONNECT 5.0 with a byte after the properties", .v5, [0xE0, 0x03, 0x00, 0x00, 0x00], .malformedBody(.disconnect)),
        Case("CONNACK 3.1.1 with a third byte", .v3_1_1, [0x20, 0x03, 0x00, 0x00, 0x00], .malformedBody(.connack)),
        Case("UNSUBACK 3.1.1 with a reason code", .v3_1_1, [0xB0, 0x03, 0x00, 0x01, 0x00], .malformedBody(.unsuback)),
        Case(
            "CONNECT with a byte after the client identifier", .v3_1_1,
            frame(0x10, [0x00, 0x04], utf8("MQTT"), [0x04, 0x02, 0x00, 0x3C], [0x00, 0x00], [0xFF]), .malformedBody(.connect)),
        Case("AUTH with a byte after the properties", .v5, [0xF0, 0x03, 0x18, 0x00, 0xFF], .malformedBody(.auth)),
    ]

    // MARK: - UTF-8 strings [MQTT-1.5.4-1], [MQTT-1.5.4-2]

    static let strings: [Case] = [
        Case("topic C3 28 (bad continuation)", .v3_1_1, frame(0x30, [0x00, 0x02, 0xC3, 0x28]), .invalidUTF8),
        Case("topic with a lone continuation byte", .v5, frame(0x30, [0x00, 0x01, 0x80], [0x00]), .invalidUTF8),
        Case("topic with a UTF-16 surrogate U+D800 (ED A0 80)", .v3_1_1, frame(0x30, [0x00, 0x03, 0xED, 0xA0, 0x80]), .invalidUTF8),
        Case("topic with an overlong '/' (C0 AF)", .v3_1_1, frame(0x30, [0x00, 0x02, 0xC0, 0xAF]), .invalidUTF8),
        Case("topic with byte FF", .v3_1_1, frame(0x30, [0x00, 0x01, 0xFF]), .invalidUTF8),
        Case("topic above U+10FFFF (F4 90 80 80)", .v3_1_1, frame(0x30, [0x00, 0x04, 0xF4, 0x90, 0x80, 0x80]), .invalidUTF8),
        Case(
            "topic ends inside a 3-byte sequence (the payload holds the rest)", .v3_1_1,
            frame(0x30, [0x00, 0x02, 0xE2, 0x82], [0xAC]), .invalidUTF8),
        Case(
            "client identifier not UTF-8", .v3_1_1,
            frame(0x10, [0x00, 0x04], utf8("MQTT"), [0x04, 0x02, 0x00, 0x3C], [0x00, 0x01, 0xFE]), .invalidUTF8),
        Case(
            "user property value not UTF-8", .v5,
            frame(0x30, [0x00, 0x01], utf8("t"), [0x07], [0x26, 0x00, 0x01], utf8("k"), [0x00, 0x01, 0xC3]), .invalidUTF8),
        Case("subscription filter not UTF-8", .v3_1_1, frame(0x82, [0x00, 0x01], [0x00, 0x01, 0xC1], [0x00]), .invalidUTF8),
        Case("topic with U+0000", .v3_1_1, frame(0x30, [0x00, 0x03], utf8("a"), [0x00], utf8("b")), .nullCharacterInString),
        Case(
            "client identifier with U+0000", .v5,
            frame(0x10, [0x00, 0x04], utf8("MQTT"), [0x05, 0x02, 0x00, 0x3C, 0x00], [0x00, 0x01, 0x00]),
            .nullCharacterInString),
        Case(
            "user name with U+0000", .v3_1_1,
            frame(0x10, [0x00, 0x04], utf8("MQTT"), [0x04, 0x82, 0x00, 0x3C], [0x00, 0x00], [0x00, 0x02, 0x61, 0x00]),
            .nullCharacterInString),
        Case(
            "subscription filter with U+0000", .v5, frame(0x82, [0x00, 0x01, 0x00], [0x00, 0x02, 0x23, 0x00], [0x00]),
            .nullCharacterInString),
        Case(
            "unsubscribe filter with U+0000", .v3_1_1, frame(0xA2, [0x00, 0x01], [0x00, 0x01, 0x00]), .nullCharacterInString),
        Case(
            "reason string with U+0000", .v5, frame(0x40, [0x00, 0x01, 0x80], [0x04], [0x1F, 0x00, 0x01, 0x00]),
            .nullCharacterInString),
    ]

    // MARK: - CONNECT variable header (3.1.2)

    static let connect: [Case] = [
        Case(
            "protocol name MQTX [MQTT-3.1.2-1]", .v3_1_1,
            frame(0x10, [0x00, 0x04], utf8("MQTX"), [0x04, 0x02, 0x00, 0x3C], [0x00, 0x00]), .invalidProtocolName),
        Case(
            "protocol name in lower case", .v3_1_1,
            frame(0x10, [0x00, 0x04], utf8("mqtt"), [0x04, 0x02, 0x00, 0x3C], [0x00, 0x00]), .invalidProtocolName),
        Case(
            "empty protocol name", .v5, frame(0x10, [0x00, 0x00], [0x05, 0x02, 0x00, 0x3C], [0x00], [0x00, 0x00]),
            .invalidProtocolName),
        Case(
            "protocol level 9 with name MQTT [MQTT-3.1.2-2]", .v3_1_1,
            frame(0x10, [0x00, 0x04], utf8("MQTT"), [0x09, 0x02, 0x00, 0x3C], [0x00, 0x00]), .unsupportedProtocolVersion(9)),
        Case(
            "protocol level 3 with name MQTT", .v3_1_1,
            frame(0x10, [0x00, 0x04], utf8("MQTT"), [0x03, 0x02, 0x00, 0x3C], [0x00, 0x00]), .unsupportedProtocolVersion(3)),
        Case(
            "protocol level 4 with name MQIsdp", .v3_1_1,
            frame(0x10, [0x00, 0x06], utf8("MQIsdp"), [0x04, 0x02, 0x00, 0x3C], [0x00, 0x00]), .unsupportedProtocolVersion(4)),
        Case(
            "reserved connect flag [MQTT-3.1.2-3]", .v3_1_1,
            frame(0x10, [0x00, 0x04], utf8("MQTT"), [0x04, 0x03, 0x00, 0x3C], [0x00, 0x00]), .connectReservedFlagSet),
        Case(
            "reserved connect flag in 5.0", .v5,
            frame(0x10, [0x00, 0x04], utf8("MQTT"), [0x05, 0x01, 0x00, 0x3C, 0x00], [0x00, 0x00]), .connectReservedFlagSet),
        Case(
            "will QoS 1 without will flag [MQTT-3.1.2-11]", .v3_1_1,
            frame(0x10, [0x00, 0x04], utf8("MQTT"), [0x04, 0x0A, 0x00, 0x3C], [0x00, 0x00]), .invalidWillFlags),
        Case(
            "will QoS 2 without will flag", .v5,
            frame(0x10, [0x00, 0x04], utf8("MQTT"), [0x05, 0x12, 0x00, 0x3C, 0x00], [0x00, 0x00]), .invalidWillFlags),
        Case(
            "will retain without will flag [MQTT-3.1.2-13]", .v3_1_1,
            frame(0x10, [0x00, 0x04], utf8("MQTT"), [0x04, 0x22, 0x00, 0x3C], [0x00, 0x00]), .invalidWillFlags),
        Case(
            "will QoS 3 [MQTT-3.1.2-14]", .v3_1_1,
            frame(
                0x10, [0x00, 0x04], utf8("MQTT"), [0x04, 0x1E, 0x00, 0x3C], [0x00, 0x00], [0x00, 0x01], utf8("w"),
                [0x00, 0x00]),
            .invalidWillFlags),
        Case(
            "password without user name in 3.1.1 [MQTT-3.1.2-22]", .v3_1_1,
            frame(0x10, [0x00, 0x04], utf8("MQTT"), [0x04, 0x42, 0x00, 0x3C], [0x00, 0x00], [0x00, 0x01, 0x70]),
            .passwordWithoutUserName),
        Case(
            "will topic with a wildcard", .v3_1_1,
            frame(0x10, [0x00, 0x04], utf8("MQTT"), [0x04, 0x06, 0x00, 0x3C], [0x00, 0x00], [0x00, 0x03], utf8("a/#"), [0x00, 0x00]),
            .invalidTopicName),
        Case(
            "empty will topic", .v5,
            frame(0x10, [0x00, 0x04], utf8("MQTT"), [0x05, 0x06, 0x00, 0x3C, 0x00], [0x00, 0x00], [0x00], [0x00, 0x00], [0x00, 0x00]),
            .invalidTopicName),
    ]

    // MARK: - PUBLISH (3.3)

    static let publish: [Case] = [
        Case("QoS 3 [MQTT-3.3.1-4]", .v3_1_1, frame(0x36, [0x00, 0x01], utf8("t"), [0x00, 0x01]), .invalidQoS),
        Case("QoS 3 with DUP and RETAIN", .v5, frame(0x3F, [0x00, 0x01], utf8("t"), [0x00, 0x01, 0x00]), .invalidQoS),
        Case("DUP on QoS 0 [MQTT-3.3.1-2]", .v3_1_1, frame(0x38, [0x00, 0x01], utf8("t")), .dupOnQoS0),
        Case("DUP on QoS 0 in 5.0", .v5, frame(0x39, [0x00, 0x01], utf8("t"), [0x00]), .dupOnQoS0),
        Case("topic with '+' [MQTT-3.3.2-2]", .v3_1_1, frame(0x30, [0x00, 0x03], utf8("a/+")), .invalidTopicName),
        Case("topic with '#'", .v3_1_1, frame(0x30, [0x00, 0x03], utf8("a/#")), .invalidTopicName),
        Case("topic '#'", .v5, frame(0x30, [0x00, 0x01], utf8("#"), [0x00]), .invalidTopicName),
        Case("topic with '+' inside a level", .v5, frame(0x32, [0x00, 0x03], utf8("a+b"), [0x00, 0x01], [0x00]), .invalidTopicName),
        Case("empty topic in 3.1.1 [MQTT-4.7.3-1]", .v3_1_1, frame(0x30, [0x00, 0x00], utf8("x")), .invalidTopicName),
        Case("empty topic without topic alias", .v5, frame(0x30, [0x00, 0x00], [0x00], utf8("x")), .invalidTopicName),
        Case(
            "empty topic with properties but no topic alias", .v5,
            frame(0x30, [0x00, 0x00], [0x02], [0x01, 0x01], utf8("x")), .invalidTopicName),
    ]

    // MARK: - Packet identifiers [MQTT-2.2.1-3]

    static let packetIdentifiers: [Case] = [
        Case("PUBLISH QoS 1 packet identifier 0", .v3_1_1, frame(0x32, [0x00, 0x01], utf8("t"), [0x00, 0x00]), .zeroPacketIdentifier),
        Case("PUBLISH QoS 2 packet identifier 0", .v5, frame(0x34, [0x00, 0x01], utf8("t"), [0x00, 0x00], [0x00]), .zeroPacketIdentifier),
        Case("PUBACK packet identifier 0", .v3_1_1, [0x40, 0x02, 0x00, 0x00], .zeroPacketIdentifier),
        Case("PUBREC packet identifier 0", .v5, [0x50, 0x02, 0x00, 0x00], .zeroPacketIdentifier),
        Case("PUBREL packet identifier 0", .v3_1_1, [0x62, 0x02, 0x00, 0x00], .zeroPacketIdentifier),
        Case("PUBCOMP packet identifier 0", .v5, [0x70, 0x03, 0x00, 0x00, 0x92], .zeroPacketIdentifier),
        Case("SUBSCRIBE packet identifier 0", .v3_1_1, frame(0x82, [0x00, 0x00], [0x00, 0x01], utf8("t"), [0x00]), .zeroPacketIdentifier),
        Case("UNSUBSCRIBE packet identifier 0", .v5, frame(0xA2, [0x00, 0x00], [0x00], [0x00, 0x01], utf8("t")), .zeroPacketIdentifier),
    ]

    // MARK: - MQTT 5 properties (2.2.2)

    static let properties: [Case] = [
        Case("unknown property 0x04", .v5, publish5(props: [0x04, 0x00]), .unknownProperty(0x04)),
        Case("unknown property 0x00", .v5, publish5(props: [0x00, 0x00]), .unknownProperty(0x00)),
        Case("unknown property 0x2B", .v5, publish5(props: [0x2B, 0x01]), .unknownProperty(0x2B)),
        Case("two-byte property identifier 128", .v5, publish5(props: [0x80, 0x01, 0x00]), .unknownProperty(0x80)),
        Case(
            "message expiry interval twice", .v5,
            publish5(props: [0x02, 0x00, 0x00, 0x00, 0x01], [0x02, 0x00, 0x00, 0x00, 0x02]),
            .duplicateProperty(.messageExpiryInterval)),
        Case("topic alias twice", .v5, publish5(props: [0x23, 0x00, 0x01], [0x23, 0x00, 0x01]), .duplicateProperty(.topicAlias)),
        Case(
            "subscription identifier twice in SUBSCRIBE", .v5,
            frame(0x82, [0x00, 0x01], [0x04, 0x0B, 0x01, 0x0B, 0x02], [0x00, 0x01], utf8("t"), [0x00]),
            .duplicateProperty(.subscriptionIdentifier)),
        Case(
            "session expiry interval twice in CONNECT", .v5,
            connect5(props: [0x11, 0x00, 0x00, 0x00, 0x01], [0x11, 0x00, 0x00, 0x00, 0x01]),
            .duplicateProperty(.sessionExpiryInterval)),
        Case(
            "reason string twice in PUBACK", .v5,
            frame(0x40, [0x00, 0x01, 0x80], [0x08], [0x1F, 0x00, 0x01], utf8("a"), [0x1F, 0x00, 0x01], utf8("b")),
            .duplicateProperty(.reasonString)),
        Case(
            "authentication method twice in AUTH", .v5,
            frame(0xF0, [0x18], [0x08], [0x15, 0x00, 0x01], utf8("a"), [0x15, 0x00, 0x01], utf8("a")),
            .duplicateProperty(.authenticationMethod)),
        Case(
            "payload format indicator twice in will properties", .v5,
            connectWill5(willProps: [0x01, 0x00], [0x01, 0x01]), .duplicateProperty(.payloadFormatIndicator)),
        // Properties in a packet that may not carry them (the table of 2.2.2.2).
        Case("topic alias in CONNECT", .v5, connect5(props: [0x23, 0x00, 0x01]), .propertyNotAllowed(.topicAlias)),
        Case(
            "will delay interval in CONNECT (it belongs in the will)", .v5, connect5(props: [0x18, 0x00, 0x00, 0x00, 0x01]),
            .propertyNotAllowed(.willDelayInterval)),
        Case("server keep alive in CONNECT", .v5, connect5(props: [0x13, 0x00, 0x01]), .propertyNotAllowed(.serverKeepAlive)),
        Case(
            "session expiry interval in will properties", .v5, connectWill5(willProps: [0x11, 0x00, 0x00, 0x00, 0x01]),
            .propertyNotAllowed(.sessionExpiryInterval)),
        Case("topic alias in will properties", .v5, connectWill5(willProps: [0x23, 0x00, 0x01]), .propertyNotAllowed(.topicAlias)),
        Case(
            "reason string in PUBLISH", .v5, publish5(props: [0x1F, 0x00, 0x01], utf8("r")), .propertyNotAllowed(.reasonString)),
        Case(
            "session expiry interval in PUBLISH", .v5, publish5(props: [0x11, 0x00, 0x00, 0x00, 0x01]),
            .propertyNotAllowed(.sessionExpiryInterval)),
        Case(
            "subscription identifier in UNSUBSCRIBE", .v5, frame(0xA2, [0x00, 0x01], [0x02, 0x0B, 0x01], [0x00, 0x01], utf8("t")),
            .propertyNotAllowed(.subscriptionIdentifier)),
        Case(
            "message expiry interval in DISCONNECT", .v5, frame(0xE0, [0x00], [0x05, 0x02, 0x00, 0x00, 0x00, 0x01]),
            .propertyNotAllowed(.messageExpiryInterval)),
        Case("maximum QoS in SUBACK", .v5, frame(0x90, [0x00, 0x01], [0x02, 0x24, 0x01], [0x00]), .propertyNotAllowed(.maximumQoS)),
        // Values out of range.
        Case("receive maximum 0 in CONNECT", .v5, connect5(props: [0x21, 0x00, 0x00]), .invalidPropertyValue(.receiveMaximum)),
        Case("receive maximum 0 in CONNACK", .v5, connack5(props: [0x21, 0x00, 0x00]), .invalidPropertyValue(.receiveMaximum)),
        Case(
            "maximum packet size 0 in CONNECT", .v5, connect5(props: [0x27, 0x00, 0x00, 0x00, 0x00]),
            .invalidPropertyValue(.maximumPacketSize)),
        Case("topic alias 0 [MQTT-3.3.2-8]", .v5, publish5(props: [0x23, 0x00, 0x00]), .invalidPropertyValue(.topicAlias)),
        Case("payload format indicator 2", .v5, publish5(props: [0x01, 0x02]), .invalidPropertyValue(.payloadFormatIndicator)),
        Case(
            "payload format indicator 2 in will properties", .v5, connectWill5(willProps: [0x01, 0x02]),
            .invalidPropertyValue(.payloadFormatIndicator)),
        Case(
            "subscription identifier 0 in SUBSCRIBE", .v5, frame(0x82, [0x00, 0x01], [0x02, 0x0B, 0x00], [0x00, 0x01], utf8("t"), [0x00]),
            .invalidPropertyValue(.subscriptionIdentifier)),
        Case("subscription identifier 0 in PUBLISH", .v5, publish5(props: [0x0B, 0x00]), .invalidPropertyValue(.subscriptionIdentifier)),
        Case(
            "request problem information 2", .v5, connect5(props: [0x17, 0x02]),
            .invalidPropertyValue(.requestProblemInformation)),
        Case(
            "request response information 2", .v5, connect5(props: [0x19, 0x02]),
            .invalidPropertyValue(.requestResponseInformation)),
        Case("maximum QoS 2 in CONNACK", .v5, connack5(props: [0x24, 0x02]), .invalidPropertyValue(.maximumQoS)),
        Case("retain available 2", .v5, connack5(props: [0x25, 0x02]), .invalidPropertyValue(.retainAvailable)),
        Case(
            "wildcard subscription available 2", .v5, connack5(props: [0x28, 0x02]),
            .invalidPropertyValue(.wildcardSubscriptionAvailable)),
        Case(
            "subscription identifiers available 2", .v5, connack5(props: [0x29, 0x02]),
            .invalidPropertyValue(.subscriptionIdentifierAvailable)),
        Case(
            "shared subscription available 2", .v5, connack5(props: [0x2A, 0x02]),
            .invalidPropertyValue(.sharedSubscriptionAvailable)),
        Case(
            "response topic with a wildcard [MQTT-3.3.2-14]", .v5, publish5(props: [0x08, 0x00, 0x03], utf8("r/#")),
            .invalidPropertyValue(.responseTopic)),
        Case(
            "empty response topic", .v5, connectWill5(willProps: [0x08, 0x00, 0x00]), .invalidPropertyValue(.responseTopic)),
    ]

    // MARK: - SUBSCRIBE and UNSUBSCRIBE payloads (3.8.3, 3.10.3)

    static let subscriptions: [Case] = [
        Case("SUBSCRIBE without filters [MQTT-3.8.3-3]", .v3_1_1, [0x82, 0x02, 0x00, 0x01], .noTopicFilters),
        Case("SUBSCRIBE 5.0 without filters [MQTT-3.8.3-2]", .v5, [0x82, 0x03, 0x00, 0x01, 0x00], .noTopicFilters),
        Case("UNSUBSCRIBE without filters [MQTT-3.10.3-2]", .v3_1_1, [0xA2, 0x02, 0x00, 0x01], .noTopicFilters),
        Case("UNSUBSCRIBE 5.0 without filters", .v5, [0xA2, 0x03, 0x00, 0x01, 0x00], .noTopicFilters),
        Case(
            "options reserved bit 6 set [MQTT-3.8.3-5]", .v5, frame(0x82, [0x00, 0x01, 0x00], [0x00, 0x01], utf8("t"), [0x40]),
            .invalidSubscriptionOptions),
        Case(
            "options reserved bit 7 set", .v5, frame(0x82, [0x00, 0x01, 0x00], [0x00, 0x01], utf8("t"), [0x81]),
            .invalidSubscriptionOptions),
        Case(
            "3.1.1 options with the 5.0 no-local bit (reserved in 3.1.1) [MQTT-3-8.3-4]", .v3_1_1,
            frame(0x82, [0x00, 0x01], [0x00, 0x01], utf8("t"), [0x04]), .invalidSubscriptionOptions),
        Case("requested QoS 3 in 3.1.1", .v3_1_1, frame(0x82, [0x00, 0x01], [0x00, 0x01], utf8("t"), [0x03]), .invalidSubscriptionOptions),
        Case("maximum QoS 3 in 5.0", .v5, frame(0x82, [0x00, 0x01, 0x00], [0x00, 0x01], utf8("t"), [0x03]), .invalidSubscriptionOptionValue),
        Case("retain handling 3", .v5, frame(0x82, [0x00, 0x01, 0x00], [0x00, 0x01], utf8("t"), [0x30]), .invalidSubscriptionOptionValue),
        Case(
            "second subscription invalid after a valid first", .v5,
            frame(0x82, [0x00, 0x01, 0x00], [0x00, 0x01], utf8("t"), [0x01], [0x00, 0x01], utf8("u"), [0x32]),
            .invalidSubscriptionOptionValue),
        Case("AUTH reason code 0x87 [MQTT-3.15.2-1]", .v5, [0xF0, 0x02, 0x87, 0x00], .invalidReasonCode(0x87)),
        Case("AUTH reason code 0x01", .v5, [0xF0, 0x01, 0x01], .invalidReasonCode(0x01)),
    ]

    // MARK: - Around the errors

    /// A packet of exactly the maximum size passes; one byte more does not (see the table).
    func testPacketOfExactlyTheMaximumSizeIsAccepted() throws {
        var buffer = ByteBuffer(bytes: frame(0x30, [0x00, 0x01], utf8("t"), utf8("12345")))
        XCTAssertEqual(buffer.readableBytes, 10)
        let packet = try MQTTDecoder(version: .v3_1_1, maximumPacketSize: 10).decode(from: &buffer)
        XCTAssertEqual(packet, .publish(Publish(topic: "t", payload: buf("12345"))))
    }

    /// Incomplete input is "need more bytes": nil, with nothing consumed.
    func testIncompleteInputReturnsNilWithoutConsuming() throws {
        let prefixes: [[UInt8]] = [
            [],  // nothing yet
            [0x30],  // first byte only
            [0x30, 0x80],  // remaining length continues
            [0x30, 0xFF, 0xFF, 0xFF],  // three continuation bytes: the fourth decides
            [0x30, 0x05, 0x00, 0x01],  // body incomplete
            [0x10, 0xA3, 0x01, 0x00, 0x04],  // two-byte remaining length, body incomplete
        ]
        for prefix in prefixes {
            var buffer = ByteBuffer(bytes: prefix)
            XCTAssertNil(try MQTTDecoder(version: .v5).decode(from: &buffer), hex(prefix))
            XCTAssertEqual(buffer.readableBytes, prefix.count, hex(prefix))
        }
    }

    /// Malformed content in a packet whose body has not fully arrived is not looked at yet.
    func testBodyIsNotValidatedBeforeItIsComplete() throws {
        var buffer = ByteBuffer(bytes: [0x36, 0x05, 0x00])  // PUBLISH QoS 3, but only 1 of 5 body bytes
        XCTAssertNil(try MQTTDecoder(version: .v3_1_1).decode(from: &buffer))
    }

    /// The size limit applies before the body arrives, also for CONNECT.
    func testMaximumPacketSizeAppliesToConnect() {
        var buffer = ByteBuffer(bytes: [0x10, 0xFF, 0x7F])  // CONNECT, remaining length 16383
        XCTAssertThrowsError(try MQTTDecoder(version: .v5, maximumPacketSize: 1024).decode(from: &buffer)) { error in
            XCTAssertEqual(error as? DecodeError, .packetTooLarge(size: 16_386, limit: 1024))
        }
    }

    /// A variable byte integer of more than 4 bytes inside the body (property length, property
    /// identifier, subscription identifier) is a Malformed Packet (1.5.5), whichever case names it.
    func testOverlongVariableByteIntegersInsideTheBodyAreMalformed() {
        let inputs: [[UInt8]] = [
            frame(0x30, [0x00, 0x01], utf8("t"), [0x80, 0x80, 0x80, 0x80, 0x01]),  // property length
            frame(0x30, [0x00, 0x01], utf8("t"), [0x05, 0x80, 0x80, 0x80, 0x80, 0x01]),  // property identifier
            frame(0x30, [0x00, 0x01], utf8("t"), [0x06, 0x0B, 0x80, 0x80, 0x80, 0x80, 0x01]),  // subscription identifier
        ]
        for bytes in inputs {
            var buffer = ByteBuffer(bytes: bytes)
            XCTAssertThrowsError(try MQTTDecoder(version: .v5).decode(from: &buffer), hex(bytes)) { error in
                XCTAssertEqual((error as? DecodeError)?.reasonCode, .malformedPacket, hex(bytes))
            }
        }
    }

    func testErrorsDescribeThemselves() {
        let errors: [DecodeError] = [
            .malformedRemainingLength, .packetTooLarge(size: 11, limit: 10), .invalidPacketType(0),
            .invalidFixedHeaderFlags(.subscribe), .malformedBody(.publish), .invalidUTF8, .nullCharacterInString,
            .invalidProtocolName, .unsupportedProtocolVersion(9), .connectReservedFlagSet, .invalidWillFlags,
            .passwordWithoutUserName, .invalidQoS, .dupOnQoS0, .invalidTopicName, .zeroPacketIdentifier,
            .unknownProperty(4), .duplicateProperty(.topicAlias), .propertyNotAllowed(.topicAlias),
            .invalidPropertyValue(.receiveMaximum), .noTopicFilters, .invalidSubscriptionOptions, .invalidReasonCode(1),
            .invalidSubscriptionOptionValue, .nonMinimalVariableByteInteger,
        ]
        XCTAssertEqual(Set(errors.map(\.description)).count, errors.count)
    }

    // MARK: - Reason codes for an MQTT 5 peer (4.13)

    func testReasonCodeMapping() {
        let expectations: [(DecodeError, ReasonCode)] = [
            (.packetTooLarge(size: 11, limit: 10), .packetTooLarge),  // 0x95
            (.invalidTopicName, .topicNameInvalid),  // 0x90
            (.duplicateProperty(.topicAlias), .protocolError),  // 0x82, 2.2.2.2
            (.invalidPropertyValue(.receiveMaximum), .protocolError),  // 0x82, 3.1.2.11.3
            (.unsupportedProtocolVersion(9), .unsupportedProtocolVersion),  // 0x84 [MQTT-3.1.2-2]
            (.malformedRemainingLength, .malformedPacket),
            (.invalidPacketType(0), .malformedPacket),
            (.invalidFixedHeaderFlags(.pubrel), .malformedPacket),
            (.malformedBody(.connect), .malformedPacket),
            (.invalidUTF8, .malformedPacket),  // 1.5.4
            (.nullCharacterInString, .malformedPacket),
            (.invalidProtocolName, .malformedPacket),
            (.connectReservedFlagSet, .malformedPacket),  // [MQTT-3.1.2-3]
            (.invalidWillFlags, .malformedPacket),  // 3.1.2.6: will QoS 3 is a Malformed Packet
            (.invalidQoS, .malformedPacket),  // 3.3.1.2: QoS 3 is a Malformed Packet
            (.dupOnQoS0, .malformedPacket),
        ]
        for (error, code) in expectations {
            XCTAssertEqual(error.reasonCode, code, "\(error)")
        }
    }

    /// MQTT 5.0 section 2.2.2.2: "A Control Packet which contains an Identifier which is not valid
    /// for its packet type, or contains a value not of the specified data type, is a Malformed
    /// Packet. If received, use a CONNACK or DISCONNECT packet with Reason Code 0x81".
    func testPropertyIdentifierNotValidForThePacketIsMalformedPacket() {
        XCTAssertEqual(DecodeError.unknownProperty(0x04).reasonCode, .malformedPacket)
        XCTAssertEqual(DecodeError.propertyNotAllowed(.topicAlias).reasonCode, .malformedPacket)
    }

    /// MQTT 5.0 sections 3.8.3 and 3.10.3: "A SUBSCRIBE packet with no Payload is a Protocol
    /// Error", "An UNSUBSCRIBE packet with no Payload is a Protocol Error".
    func testSubscribeWithoutFiltersIsProtocolError() {
        XCTAssertEqual(DecodeError.noTopicFilters.reasonCode, .protocolError)
    }
}

// MARK: - Builders for malformed input

/// A packet with first byte `first` and the given body; the remaining length is computed.
func frame(_ first: UInt8, _ body: [UInt8]...) -> [UInt8] {
    let bytes = body.flatMap { $0 }
    return [first] + variableByteInteger(bytes.count) + bytes
}

/// The MQTT variable byte integer encoding (1.5.5), written here independently of the codec.
func variableByteInteger(_ value: Int) -> [UInt8] {
    var bytes: [UInt8] = []
    var rest = value
    repeat {
        var byte = UInt8(rest % 128)
        rest /= 128
        if rest > 0 { byte |= 0x80 }
        bytes.append(byte)
    } while rest > 0
    return bytes
}

/// A 5.0 QoS 0 PUBLISH to "t" whose property block holds `props`.
private func publish5(props: [UInt8]...) -> [UInt8] {
    let block = props.flatMap { $0 }
    return frame(0x30, [0x00, 0x01], utf8("t"), variableByteInteger(block.count), block)
}

/// A 5.0 CONNECT with client identifier "c" whose property block holds `props`.
private func connect5(props: [UInt8]...) -> [UInt8] {
    let block = props.flatMap { $0 }
    return frame(
        0x10, [0x00, 0x04], utf8("MQTT"), [0x05, 0x02, 0x00, 0x3C], variableByteInteger(block.count), block,
        [0x00, 0x01], utf8("c"))
}

/// A 5.0 CONNECT with a will on "w" whose will property block holds `willProps`.
private func connectWill5(willProps: [UInt8]...) -> [UInt8] {
    let block = willProps.flatMap { $0 }
    return frame(
        0x10, [0x00, 0x04], utf8("MQTT"), [0x05, 0x06, 0x00, 0x3C], [0x00], [0x00, 0x01], utf8("c"),
        variableByteInteger(block.count), block, [0x00, 0x01], utf8("w"), [0x00, 0x00])
}

/// A 5.0 CONNACK whose property block holds `props`.
private func connack5(props: [UInt8]...) -> [UInt8] {
    let block = props.flatMap { $0 }
    return frame(0x20, [0x00, 0x00], variableByteInteger(block.count), block)
}
