import Foundation
import MQTTCodec
import NIOCore
import XCTest

/// Property-style round trips: random valid packets (only the fields their version can carry)
/// encode, then decode to the same value. The generator is seeded, so a failure reproduces;
/// set `CODEC_ROUNDTRIP_SEED` to explore other seeds.
final class CodecRoundTripTests: XCTestCase {
    private static let iterations = 3000

    private var seed: UInt64 {
        ProcessInfo.processInfo.environment["CODEC_ROUNDTRIP_SEED"].flatMap { UInt64($0) } ?? 0x5EED_2026
    }

    func testRandomPacketsRoundTripIn311() throws {
        try roundTrip(version: .v3_1_1)
    }

    func testRandomPacketsRoundTripIn5() throws {
        try roundTrip(version: .v5)
    }

    func testRandomPacketsRoundTripIn31() throws {
        try roundTrip(version: .v3_1)
    }

    private func roundTrip(version: ProtocolVersion) throws {
        var generator = PacketGenerator(version: version, seed: seed)
        let encoder = MQTTEncoder(version: version)
        let decoder = MQTTDecoder(version: version)
        var stream = ByteBuffer()
        var packets: [MQTTPacket] = []
        for iteration in 0..<Self.iterations {
            let packet = generator.packet()
            var buffer = ByteBuffer()
            encoder.encode(packet, into: &buffer)
            let bytes = Array(buffer.readableBytesView)
            let context = "seed \(seed) iteration \(iteration) \(version) \(packet.type): \(hex(bytes.prefix(64)))"
            XCTAssertEqual(encoder.size(of: packet), bytes.count, context)
            let decoded = try decoder.decode(from: &buffer)
            XCTAssertEqual(decoded, packet, context)
            XCTAssertEqual(buffer.readableBytes, 0, context)
            if let decoded {
                var again = ByteBuffer()
                encoder.encode(decoded, into: &again)
                XCTAssertEqual(Array(again.readableBytesView), bytes, "re-encoding differs: \(context)")
            }
            stream.writeBytes(bytes)
            packets.append(packet)
        }
        // The same packets back to back in one stream.
        for (index, packet) in packets.enumerated() {
            XCTAssertEqual(try decoder.decode(from: &stream), packet, "stream position \(index)")
        }
        XCTAssertEqual(stream.readableBytes, 0)
    }

    func testGeneratorIsDeterministic() {
        var first = PacketGenerator(version: .v5, seed: 42)
        var second = PacketGenerator(version: .v5, seed: 42)
        for _ in 0..<50 {
            XCTAssertEqual(first.packet(), second.packet())
        }
    }
}

/// CodecSplitMix64: a small, fast generator with a fixed seed (Steele, Lea, Flood 2014).
struct CodecSplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Builds random packets that are valid for one protocol version.
struct PacketGenerator {
    let version: ProtocolVersion
    var rng: CodecSplitMix64

    init(version: ProtocolVersion, seed: UInt64) {
        self.version = version
        self.rng = CodecSplitMix64(seed: seed)
    }

    private var v5: Bool { version == .v5 }

    // MARK: Primitives

    mutating func bool() -> Bool { Bool.random(using: &rng) }

    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &rng) }

    mutating func chance(_ percent: Int) -> Bool { int(1...100) <= percent }

    mutating func maybe<T>(_ make: (inout PacketGenerator) -> T) -> T? {
        bool() ? make(&self) : nil
    }

    mutating func pick<T>(_ values: [T]) -> T { values[int(0...values.count - 1)] }

    /// Text from a pool with 1-, 2-, 3- and 4-byte UTF-8 characters; never U+0000.
    mutating func text(_ lengths: ClosedRange<Int>, wildcards: Bool = false) -> String {
        var pool: [Character] = ["a", "b", "z", "0", "9", "/", " ", "-", "$", "\u{E9}", "\u{65E5}", "\u{1F642}", "\u{7F}", "\u{FEFF}"]
        if wildcards { pool += ["+", "#"] }
        var result = ""
        for _ in 0..<int(lengths) { result.append(pick(pool)) }
        return result
    }

    mutating func topicName() -> String { text(1...24) }

    mutating func bytes(_ lengths: ClosedRange<Int>) -> ByteBuffer {
        var buffer = ByteBuffer()
        for _ in 0..<int(lengths) { buffer.writeInteger(UInt8.random(in: 0...255, using: &rng)) }
        return buffer
    }

    mutating func packetID() -> UInt16 { UInt16(int(1...65_535)) }

    mutating func uint32() -> UInt32 { UInt32.random(in: 0...UInt32.max, using: &rng) }

    mutating func uint16(from lower: UInt16 = 0) -> UInt16 { UInt16.random(in: lower...UInt16.max, using: &rng) }

    mutating func flag() -> UInt8 { UInt8(int(0...1)) }

    mutating func subscriptionIdentifier() -> Int {
        // Spread over the 1-, 2-, 3- and 4-byte encodings.
        pick([int(1...127), int(128...16_383), int(16_384...2_097_151), int(2_097_152...268_435_455)])
    }

    mutating func userProperties() -> [UserProperty] {
        (0..<pick([0, 0, 1, 3])).map { _ in UserProperty(name: text(0...8), value: text(0...8)) }
    }

    // MARK: Properties, by where they may appear (MQTT 5.0 table 2-4)

    mutating func publishProperties() -> Properties {
        guard v5 else { return Properties() }
        var properties = Properties()
        properties.payloadFormatIndicator = maybe { $0.flag() }
        properties.messageExpiryInterval = maybe { $0.uint32() }
        properties.contentType = maybe { $0.text(0...12) }
        properties.responseTopic = maybe { $0.topicName() }
        properties.correlationData = maybe { $0.bytes(0...16) }
        properties.subscriptionIdentifiers = (0..<pick([0, 0, 1, 2])).map { _ in subscriptionIdentifier() }
        properties.topicAlias = maybe { $0.uint16(from: 1) }
        properties.userProperties = userProperties()
        return properties
    }

    mutating func willProperties() -> Properties {
        guard v5 else { return Properties() }
        var properties = publishProperties()
        properties.subscriptionIdentifiers = []
        properties.topicAlias = nil
        properties.willDelayInterval = maybe { $0.uint32() }
        return properties
    }

    mutating func connectProperties() -> Properties {
        guard v5 else { return Properties() }
        var properties = Properties()
        properties.sessionExpiryInterval = maybe { $0.uint32() }
        properties.receiveMaximum = maybe { $0.uint16(from: 1) }
        properties.maximumPacketSize = maybe { UInt32.random(in: 1...UInt32.max, using: &$0.rng) }
        properties.topicAliasMaximum = maybe { $0.uint16() }
        properties.requestResponseInformation = maybe { $0.flag() }
        properties.requestProblemInformation = maybe { $0.flag() }
        properties.authenticationMethod = maybe { $0.text(1...10) }
        properties.authenticationData = maybe { $0.bytes(0...10) }
        properties.userProperties = userProperties()
        return properties
    }

    mutating func connAckProperties() -> Properties {
        guard v5 else { return Properties() }
        var properties = Properties()
        properties.sessionExpiryInterval = maybe { $0.uint32() }
        properties.receiveMaximum = maybe { $0.uint16(from: 1) }
        properties.maximumQoS = maybe { $0.flag() }
        properties.retainAvailable = maybe { $0.flag() }
        properties.maximumPacketSize = maybe { UInt32.random(in: 1...UInt32.max, using: &$0.rng) }
        properties.assignedClientIdentifier = maybe { $0.text(1...23) }
        properties.topicAliasMaximum = maybe { $0.uint16() }
        properties.reasonString = maybe { $0.text(0...20) }
        properties.wildcardSubscriptionAvailable = maybe { $0.flag() }
        properties.subscriptionIdentifierAvailable = maybe { $0.flag() }
        properties.sharedSubscriptionAvailable = maybe { $0.flag() }
        properties.serverKeepAlive = maybe { $0.uint16() }
        properties.responseInformation = maybe { $0.text(0...10) }
        properties.serverReference = maybe { $0.text(0...10) }
        properties.authenticationMethod = maybe { $0.text(1...10) }
        properties.authenticationData = maybe { $0.bytes(0...10) }
        properties.userProperties = userProperties()
        return properties
    }

    /// Reason string and user properties: what acks, SUBACK and UNSUBACK may carry.
    mutating func ackProperties() -> Properties {
        guard v5 else { return Properties() }
        var properties = Properties()
        properties.reasonString = maybe { $0.text(0...20) }
        properties.userProperties = userProperties()
        return properties
    }

    // MARK: Packets

    mutating func packet() -> MQTTPacket {
        switch int(0...(v5 ? 14 : 13)) {
        case 0: return .connect(connect())
        case 1: return .connack(connAck())
        case 2, 3, 4: return .publish(publish())  // the common case, three times as often
        case 5: return .puback(ack(codes: [0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99]))
        case 6: return .pubrec(ack(codes: [0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99]))
        case 7: return .pubrel(ack(codes: [0x00, 0x92]))
        case 8: return .pubcomp(ack(codes: [0x00, 0x92]))
        case 9: return .subscribe(subscribe())
        case 10: return .suback(subAck())
        case 11: return bool() ? .unsubscribe(unsubscribe()) : .unsuback(unsubAck())
        case 12: return bool() ? .pingreq : .pingresp
        case 13: return .disconnect(disconnect())
        default: return .auth(auth())
        }
    }

    mutating func connect() -> Connect {
        let username = maybe { $0.text(0...10) }
        // 3.1.1 forbids a password without a user name [MQTT-3.1.2-22].
        let password = username != nil || v5 ? maybe { $0.bytes(0...10) } : nil
        let will: Will? = maybe {
            Will(
                topic: $0.topicName(), payload: $0.bytes(0...20), qos: $0.pick([.atMostOnce, .atLeastOnce, .exactlyOnce]),
                retain: $0.bool(), properties: $0.willProperties())
        }
        return Connect(
            version: version, cleanStart: bool(), keepAlive: uint16(), clientID: text(0...23), username: username,
            password: password, will: will, properties: connectProperties())
    }

    mutating func connAck() -> ConnAck {
        let code = v5 ? pick([0x00, 0x80, 0x84, 0x85, 0x86, 0x87, 0x88, 0x8A, 0x9C]) : int(0...5)
        return ConnAck(sessionPresent: bool(), reasonCode: ReasonCode(UInt8(code)), properties: connAckProperties())
    }

    mutating func publish() -> Publish {
        let qos = pick([QoS.atMostOnce, .atLeastOnce, .exactlyOnce])
        let properties = publishProperties()
        // With a topic alias the topic name may be empty (5.0 section 3.3.2.3.4).
        let topic = properties.topicAlias != nil && bool() ? "" : topicName()
        return Publish(
            topic: topic, payload: bytes(0...pick([0, 8, 64, 300])), qos: qos, retain: bool(),
            dup: qos != .atMostOnce && bool(), packetID: qos == .atMostOnce ? 0 : packetID(), properties: properties)
    }

    mutating func ack(codes: [UInt8]) -> Ack {
        guard v5 else { return Ack(packetID: packetID()) }
        return Ack(packetID: packetID(), reasonCode: ReasonCode(pick(codes)), properties: chance(50) ? ackProperties() : Properties())
    }

    mutating func subscribe() -> Subscribe {
        let subscriptions = (0..<int(1...4)).map { _ in
            Subscription(
                filter: text(1...16, wildcards: true), qos: pick([.atMostOnce, .atLeastOnce, .exactlyOnce]),
                noLocal: v5 && bool(), retainAsPublished: v5 && bool(),
                retainHandling: v5 ? pick([.sendAlways, .sendIfNew, .doNotSend]) : .sendAlways)
        }
        var properties = Properties()
        if v5 {
            properties.subscriptionIdentifiers = chance(50) ? [subscriptionIdentifier()] : []
            properties.userProperties = userProperties()
        }
        return Subscribe(packetID: packetID(), subscriptions: subscriptions, properties: properties)
    }

    mutating func subAck() -> SubAck {
        let codes: [UInt8] = v5 ? [0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2] : [0x00, 0x01, 0x02, 0x80]
        let reasonCodes = (0..<int(1...5)).map { _ in ReasonCode(pick(codes)) }
        return SubAck(packetID: packetID(), reasonCodes: reasonCodes, properties: ackProperties())
    }

    mutating func unsubscribe() -> Unsubscribe {
        var properties = Properties()
        if v5 { properties.userProperties = userProperties() }
        let filters = (0..<int(1...4)).map { _ in text(1...16, wildcards: true) }
        return Unsubscribe(packetID: packetID(), filters: filters, properties: properties)
    }

    mutating func unsubAck() -> UnsubAck {
        guard v5 else { return UnsubAck(packetID: packetID()) }
        let reasonCodes = (0..<int(1...5)).map { _ in ReasonCode(pick([0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91])) }
        return UnsubAck(packetID: packetID(), reasonCodes: reasonCodes, properties: ackProperties())
    }

    mutating func disconnect() -> Disconnect {
        guard v5 else { return Disconnect() }
        var properties = Properties()
        if chance(50) {
            properties.sessionExpiryInterval = maybe { $0.uint32() }
            properties.reasonString = maybe { $0.text(0...20) }
            properties.serverReference = maybe { $0.text(0...10) }
            properties.userProperties = userProperties()
        }
        let code = pick([0x00, 0x04, 0x80, 0x81, 0x82, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x93, 0x94, 0x95, 0x98, 0x9C])
        return Disconnect(reasonCode: ReasonCode(UInt8(code)), properties: properties)
    }

    mutating func auth() -> Auth {
        var properties = Properties()
        if chance(70) {
            properties.authenticationMethod = maybe { $0.text(1...10) }
            properties.authenticationData = maybe { $0.bytes(0...10) }
            properties.reasonString = maybe { $0.text(0...10) }
            properties.userProperties = userProperties()
        }
        return Auth(reasonCode: ReasonCode(pick([0x00, 0x18, 0x19])), properties: properties)
    }
}

/// Properties are copy-on-write: a copy never sees the original's later changes.
final class CodecPropertiesValueSemanticsTests: XCTestCase {
    func testCopiesAreIndependent() {
        var original = Properties()
        XCTAssertTrue(original.isEmpty)
        original.contentType = "text/plain"
        original.userProperties = [UserProperty(name: "a", value: "1")]
        var copy = original
        copy.contentType = "application/json"
        copy.userProperties.append(UserProperty(name: "b", value: "2"))
        XCTAssertEqual(original.contentType, "text/plain")
        XCTAssertEqual(original.userProperties.count, 1)
        XCTAssertEqual(copy.userProperties.count, 2)
        XCTAssertNotEqual(original, copy)
        copy.contentType = "text/plain"
        copy.userProperties.removeLast()
        XCTAssertEqual(original, copy, "equality compares values, not storage")
        copy.contentType = nil
        copy.userProperties = []
        XCTAssertTrue(copy.isEmpty)
        XCTAssertEqual(copy, Properties())
    }
}
