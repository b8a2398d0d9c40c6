import MQTTCodec
import NIOCore
import XCTest

/// Inputs from fuzzing the decoder (`Fuzz/`), kept as regression tests with the same checks the
/// fuzz target makes: for every protocol version, decoding packet after packet until "need more
/// bytes" or an error must not crash, and every decoded packet must survive encode -> decode
/// unchanged, in exactly `size(of:)` bytes.
///
/// Add every crasher the fuzzer finds to `crashers`, bytes inline, with the date and what it
/// broke. The first campaign (about 32 minutes, 19 million executions; see Fuzz/README.md)
/// found none; `edgeInputs` hold kinds of input it explores that the fixture tables do not.
final class CodecCrasherTests: XCTestCase {
    /// Inputs that once crashed the decoder or broke a round trip.
    static let crashers: [(name: String, bytes: [UInt8])] = []

    /// Legal-but-unusual and broken encodings around the variable byte integers and the
    /// boundaries of property blocks.
    static let edgeInputs: [(name: String, bytes: [UInt8])] = [
        // Remaining length 3 written in two bytes (83 00): not minimal [MQTT-1.5.5-1] (5.0).
        ("non-minimal remaining length", [0x30, 0x83, 0x00, 0x00, 0x01, 0x74]),
        // 5.0 PUBLISH "t" whose property length 0 is written in two bytes (80 00).
        ("non-minimal property length", [0x30, 0x05, 0x00, 0x01, 0x74, 0x80, 0x00]),
        // 5.0 PUBLISH "t" with subscription identifier 5 written in two bytes (85 00).
        ("non-minimal subscription identifier", [0x30, 0x06, 0x00, 0x01, 0x74, 0x03, 0x0B, 0x85, 0x00]),
        // 5.0 PUBLISH "t" with property identifier 1 written in two bytes (81 00).
        ("non-minimal property identifier", [0x30, 0x06, 0x00, 0x01, 0x74, 0x03, 0x81, 0x00, 0x01]),
        // 5.0 PUBLISH "t" with a subscription identifier of five bytes.
        ("five-byte subscription identifier", [0x30, 0x0A, 0x00, 0x01, 0x74, 0x06, 0x0B, 0x80, 0x80, 0x80, 0x80, 0x01]),
        // 5.0 PUBLISH "t" whose property length takes five bytes.
        ("five-byte property length", [0x30, 0x08, 0x00, 0x01, 0x74, 0x80, 0x80, 0x80, 0x80, 0x01]),
        // PINGREQ, PUBACK, then a PUBLISH cut short: two packets, then "need more bytes".
        ("two packets and a partial one", [0xC0, 0x00, 0x40, 0x02, 0x00, 0x01, 0x30, 0x05, 0x00, 0x01]),
        // A remaining length whose 4th byte is missing: "need more bytes", not an error.
        ("remaining length cut after three bytes", [0x30, 0xFF, 0xFF, 0xFF]),
        // CONNECT 5.0 whose will property block runs to the end of the packet: no will topic.
        (
            "will properties up to the end of the packet",
            [0x10, 0x10, 0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x05, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x01, 0x01]
        ),
        // Each packet type with an empty body (reserved flags right), the valid ones first.
        (
            "empty bodies",
            [
                0xC0, 0x00, 0xD0, 0x00, 0xE0, 0x00, 0xF0, 0x00, 0x10, 0x00, 0x20, 0x00, 0x30, 0x00, 0x40, 0x00,
                0x50, 0x00, 0x62, 0x00, 0x70, 0x00, 0x82, 0x00, 0x90, 0x00, 0xA2, 0x00, 0xB0, 0x00, 0x00, 0x00,
            ]
        ),
    ]

    func testCrashersNoLongerCrash() {
        for input in Self.crashers {
            for version in [ProtocolVersion.v3_1, .v3_1_1, .v5] {
                checkFuzzInvariants(input.bytes, version: version, name: input.name)
            }
        }
    }

    func testEdgeInputsKeepTheFuzzInvariants() {
        for input in Self.edgeInputs {
            for version in [ProtocolVersion.v3_1, .v3_1_1, .v5] {
                checkFuzzInvariants(input.bytes, version: version, name: input.name)
            }
        }
    }

    /// The checks of Fuzz/Sources/FuzzDecoder/FuzzDecoder.swift, as test assertions.
    private func checkFuzzInvariants(_ bytes: [UInt8], version: ProtocolVersion, name: String) {
        let decoder = MQTTDecoder(version: version)
        let encoder = MQTTEncoder(version: version)
        var buffer = ByteBuffer(bytes: bytes)
        while buffer.readableBytes > 0 {
            let start = buffer.readerIndex
            let packet: MQTTPacket?
            do {
                packet = try decoder.decode(from: &buffer)
            } catch {
                return
            }
            guard let packet else {
                XCTAssertEqual(buffer.readerIndex, start, "\(version) \(name): nil consumed bytes")
                return
            }
            let length = buffer.readerIndex - start
            for prefixLength in 0..<length {
                guard var prefix = ByteBuffer(bytes: bytes).getSlice(at: start, length: prefixLength) else { continue }
                XCTAssertNil(try decoder.decode(from: &prefix), "\(version) \(name): prefix of \(prefixLength)")
            }
            var encoded = ByteBuffer()
            encoder.encode(packet, into: &encoded)
            XCTAssertEqual(encoder.size(of: packet), encoded.readableBytes, "\(version) \(name)")
            XCTAssertEqual(try decoder.decode(from: &encoded), packet, "\(version) \(name): round trip")
            XCTAssertEqual(encoded.readableBytes, 0, "\(version) \(name)")
        }
    }
}
