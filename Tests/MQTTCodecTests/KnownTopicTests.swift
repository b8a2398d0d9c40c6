import MQTTCodec
import NIOCore
import XCTest

/// `decode(from:knownTopic:)`: a PUBLISH whose topic has the known topic's bytes gets that very
/// string back; anything else decodes (and validates) as usual.
final class KnownTopicTests: XCTestCase {
    private func encoded(_ topic: String, qos: QoS = .atLeastOnce, version: ProtocolVersion = .v3_1_1) -> ByteBuffer {
        var buffer = ByteBuffer()
        let publish = Publish(
            topic: topic, payload: ByteBuffer(string: "payload"), qos: qos, retain: false, dup: false,
            packetID: qos == .atMostOnce ? 0 : 7, properties: Properties())
        MQTTEncoder(version: version).encode(.publish(publish), into: &buffer)
        return buffer
    }

    private func topic(of packet: MQTTPacket?) -> String? {
        if case .publish(let publish) = packet { return publish.topic }
        return nil
    }

    func testSameBytesReturnTheKnownString() throws {
        // A heap string (longer than the small-string form), so identity of storage is visible.
        let known = String(repeating: "sensors/building-7/", count: 3) + "temperature"
        for version in [ProtocolVersion.v3_1_1, .v5] {
            var buffer = encoded(known, version: version)
            let packet = try MQTTDecoder(version: version).decode(from: &buffer, knownTopic: known)
            guard case .publish(let publish) = packet else { return XCTFail("not a publish") }
            XCTAssertEqual(publish.topic, known)
            XCTAssertEqual(publish.packetID, 7)
            XCTAssertEqual(publish.payload, ByteBuffer(string: "payload"))
            XCTAssertEqual(buffer.readableBytes, 0)
            // The very same storage: nothing was allocated for the topic.
            let same = publish.topic.utf8.withContiguousStorageIfAvailable { a in
                known.utf8.withContiguousStorageIfAvailable { b in a.baseAddress == b.baseAddress }
            }
            XCTAssertEqual(same, true)
        }
    }

    func testOtherTopicsDecodeNormally() throws {
        let known = "a/b/c"
        // Same length, different bytes; shorter; longer; QoS 0.
        for other in ["a/b/d", "a/b", "a/b/c/d"] {
            var buffer = encoded(other, qos: .atMostOnce)
            XCTAssertEqual(topic(of: try MQTTDecoder().decode(from: &buffer, knownTopic: known)), other)
        }
    }

    func testInvalidTopicWithSameLengthIsStillRejected() {
        // "a/+/c" is as long as the known topic but is not a valid topic name.
        var buffer = encoded("a/+/c")
        XCTAssertThrowsError(try MQTTDecoder().decode(from: &buffer, knownTopic: "a/b/c")) { error in
            XCTAssertEqual(error as? DecodeError, .invalidTopicName)
        }
    }

    func testIncompletePacketConsumesNothing() throws {
        let full = encoded("a/b/c")
        var partial = full.getSlice(at: 0, length: full.readableBytes - 3)!
        XCTAssertNil(try MQTTDecoder().decode(from: &partial, knownTopic: "a/b/c"))
        XCTAssertEqual(partial.readableBytes, full.readableBytes - 3)
    }
}
