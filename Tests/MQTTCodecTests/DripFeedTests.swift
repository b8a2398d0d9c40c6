import MQTTCodec
import NIOCore
import NIOTestUtils
import XCTest

/// Feeds the fixtures to the decoder in pieces, as TCP may deliver them: one byte at a time,
/// all at once, and through NIO's `ByteToMessageDecoderVerifier`.
final class DripFeedTests: XCTestCase {
    /// One byte at a time into a cumulation buffer: nil (nothing consumed) until the last byte.
    func testEveryFixtureByteByByte() throws {
        for fixture in CodecFixture.all {
            let decoder = MQTTDecoder(version: fixture.version)
            var cumulation = ByteBuffer()
            for (index, byte) in fixture.bytes.enumerated() {
                cumulation.writeInteger(byte)
                let readerIndex = cumulation.readerIndex
                let packet = try decoder.decode(from: &cumulation)
                if index < fixture.bytes.count - 1 {
                    guard packet == nil else {
                        XCTFail("\(fixture): packet after \(index + 1) of \(fixture.bytes.count) bytes")
                        break
                    }
                    XCTAssertEqual(cumulation.readerIndex, readerIndex, "\(fixture): consumed bytes while incomplete")
                } else {
                    XCTAssertEqual(packet, fixture.packet, "\(fixture)")
                    XCTAssertEqual(cumulation.readableBytes, 0, "\(fixture)")
                }
            }
        }
    }

    /// All fixtures of one version back to back in one buffer decode in order, then nil.
    func testConcatenatedFixturesDecodeInOrder() throws {
        for version in [ProtocolVersion.v3_1, .v3_1_1, .v5] {
            let fixtures = CodecFixture.all.filter { $0.version == version || (version == .v3_1_1 && $0.version == .v3_1) }
            var buffer = ByteBuffer(bytes: fixtures.flatMap(\.bytes))
            let decoder = MQTTDecoder(version: version)
            for fixture in fixtures {
                XCTAssertEqual(try decoder.decode(from: &buffer), fixture.packet, "\(version): \(fixture)")
            }
            XCTAssertNil(try decoder.decode(from: &buffer))
            XCTAssertEqual(buffer.readableBytes, 0)
        }
    }

    /// The same stream cut at every position into two reads: the packets come out the same.
    func testStreamSplitAtEveryPosition() throws {
        let fixtures = CodecFixture.mqtt5.filter { $0.bytes.count < 200 }
        let stream = fixtures.flatMap(\.bytes)
        let decoder = MQTTDecoder(version: .v5)
        for cut in 0...stream.count {
            var cumulation = ByteBuffer(bytes: stream[..<cut])
            var decoded: [MQTTPacket] = []
            while let packet = try decoder.decode(from: &cumulation) { decoded.append(packet) }
            cumulation.writeBytes(stream[cut...])
            while let packet = try decoder.decode(from: &cumulation) { decoded.append(packet) }
            XCTAssertEqual(decoded, fixtures.map(\.packet), "cut at \(cut)")
            XCTAssertEqual(cumulation.readableBytes, 0, "cut at \(cut)")
        }
    }

    /// NIO's verifier: simple, drip-fed (ten times over, each byte in its own buffer) and many
    /// packets in one buffer, through a real `ByteToMessageHandler`.
    func testByteToMessageDecoderVerifier() throws {
        for version in [ProtocolVersion.v3_1, .v3_1_1, .v5] {
            // The 16 KiB fixture would be drip-fed ten times; the byte-by-byte test above covers it.
            let fixtures = CodecFixture.all.filter { $0.version == version && $0.bytes.count < 1024 }
            let pairs = fixtures.map { ($0.buffer, [$0.packet]) }
            XCTAssertNoThrow(
                try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) {
                    MQTTByteToMessageDecoder(decoder: MQTTDecoder(version: version))
                },
                "\(version)")
        }
    }

    /// A malformed packet after valid ones: the valid ones come out, then the error.
    func testErrorAfterValidPacketsInTheSameBuffer() throws {
        var buffer = ByteBuffer(bytes: [0xC0, 0x00, 0xD0, 0x00, 0x00, 0x00])  // PINGREQ, PINGRESP, type 0
        let decoder = MQTTDecoder(version: .v3_1_1)
        XCTAssertEqual(try decoder.decode(from: &buffer), .pingreq)
        XCTAssertEqual(try decoder.decode(from: &buffer), .pingresp)
        XCTAssertThrowsError(try decoder.decode(from: &buffer)) { error in
            XCTAssertEqual(error as? DecodeError, .invalidPacketType(0))
        }
    }
}

/// Wraps ``MQTTDecoder`` as a NIO `ByteToMessageDecoder`, only for the verifier.
private struct MQTTByteToMessageDecoder: ByteToMessageDecoder {
    typealias InboundOut = MQTTPacket

    var decoder: MQTTDecoder

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let packet = try decoder.decode(from: &buffer) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(packet))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        try decode(context: context, buffer: &buffer)
    }
}
