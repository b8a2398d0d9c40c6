import NIOCore
import XCTest

@testable import RoostBench

final class BenchPayloadHeaderTests: XCTestCase {
    private let header = BenchPayloadHeader(
        qos: 2, runID: 0x0102_0304, publisherIndex: 7, sequence: 0x1122_3344_5566_7788, sentAtNanoseconds: 1_765_000_000_123_456_789)

    func testWritesTheDocumentedLayout() {
        var buffer = ByteBuffer()
        header.write(to: &buffer)
        XCTAssertEqual(buffer.readableBytes, BenchPayloadHeader.size)
        let expected: [UInt8] =
            [0x52, 0x42, 0x01, 0x02]  // magic, layout version, QoS
            + [0x01, 0x02, 0x03, 0x04]  // run id
            + [0x00, 0x00, 0x00, 0x07]  // publisher index
            + [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]  // sequence
            + [0x18, 0x7E, 0x8A, 0x26, 0x13, 0xEC, 0x4D, 0x15]  // send time
        XCTAssertEqual(Array(buffer.readableBytesView), expected)
    }

    func testRoundTripsWithFillerAndAnOffsetReaderIndex() throws {
        var buffer = ByteBuffer(bytes: [0xFF, 0xFF, 0xFF])
        buffer.moveReaderIndex(forwardBy: 3)
        header.write(to: &buffer)
        buffer.writeRepeatingByte(0x2E, count: 100)
        let decoded = try XCTUnwrap(BenchPayloadHeader(payload: buffer))
        XCTAssertEqual(decoded, header)
        XCTAssertEqual(buffer.readerIndex, 3, "decoding does not consume")
    }

    func testStreamKeyCombinesRunAndPublisher() {
        XCTAssertEqual(header.streamKey, 0x0102_0304_0000_0007)
        var other = header
        other.runID = 0x0102_0305
        XCTAssertNotEqual(other.streamKey, header.streamKey)
    }

    func testRejectsWhatIsNotABenchPayload() {
        var valid = ByteBuffer()
        header.write(to: &valid)
        XCTAssertNil(BenchPayloadHeader(payload: ByteBuffer(string: "hello")), "too short")
        XCTAssertNil(BenchPayloadHeader(payload: valid.getSlice(at: 0, length: BenchPayloadHeader.size - 1) ?? ByteBuffer()))
        var badMagic = valid
        badMagic.setInteger(UInt8(0x53), at: 0)
        XCTAssertNil(BenchPayloadHeader(payload: badMagic))
        var badVersion = valid
        badVersion.setInteger(UInt8(2), at: 2)
        XCTAssertNil(BenchPayloadHeader(payload: badVersion))
        var badFlags = valid
        badFlags.setInteger(UInt8(0x04), at: 3)
        XCTAssertNil(BenchPayloadHeader(payload: badFlags))
        XCTAssertNil(BenchPayloadHeader(payload: ByteBuffer(string: String(repeating: "x", count: 64))))
    }

    func testWallClockIsTheUnixEpochInNanoseconds() {
        let now = WallClock.nanoseconds()
        // After 2024-01-01 and before 2100-01-01.
        XCTAssertGreaterThan(now, 1_704_067_200 * 1_000_000_000)
        XCTAssertLessThan(now, 4_102_444_800 * 1_000_000_000)
    }
}
