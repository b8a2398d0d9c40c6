import MQTTCodec
import NIOCore
import XCTest

@testable import RoostBench

final class ReceiveShardTests: XCTestCase {
    private func message(run: UInt32, publisher: UInt32, sequence: UInt64, sentAgo nanoseconds: UInt64 = 1_000_000) -> Publish {
        var payload = ByteBuffer()
        BenchPayloadHeader(
            qos: 1, runID: run, publisherIndex: publisher, sequence: sequence,
            sentAtNanoseconds: WallClock.nanoseconds() - nanoseconds
        ).write(to: &payload)
        payload.writeRepeatingByte(0x2E, count: 36)
        return Publish(topic: "roost-bench/\(publisher)", payload: payload, qos: .atLeastOnce)
    }

    func testCountsOwnMessagesPerSubscriberAndLeavesOthersOut() {
        let shard = ReceiveShard(ownRunID: 7)
        let first = shard.addSubscriber(streamsStartAtZero: true)
        let second = shard.addSubscriber(streamsStartAtZero: true)
        for sequence in [0, 1, 3, 2, 2] as [UInt64] { shard.handle(message(run: 7, publisher: 0, sequence: sequence), slot: first) }
        shard.handle(message(run: 7, publisher: 0, sequence: 1), slot: second)
        shard.handle(message(run: 8, publisher: 0, sequence: 0), slot: first)
        shard.handle(Publish(topic: "roost-bench/0", payload: ByteBuffer(string: "not a bench message")), slot: first)

        let counts = shard.counts()
        XCTAssertEqual(counts.received, 7, "6 of this run and 1 without a header")
        XCTAssertEqual(counts.malformed, 1)
        XCTAssertEqual(counts.foreign, 1)
        XCTAssertEqual(counts.duplicates, 1)
        XCTAssertEqual(counts.outOfOrder, 1)
        XCTAssertEqual(counts.missing, 1, "the second subscriber has not seen sequence 0")
        XCTAssertEqual(counts.unique, 5)
        let stream = BenchPayloadHeader(qos: 0, runID: 7, publisherIndex: 0, sequence: 0, sentAtNanoseconds: 0).streamKey
        XCTAssertEqual(shard.received(slot: first, stream: stream), 4)
        XCTAssertEqual(shard.received(slot: second, stream: stream), 1)

        var total = LatencySummary.makeHistogram()
        shard.collectLatencies(into: &total)
        XCTAssertEqual(total.totalCount, 6)
        XCTAssertGreaterThanOrEqual(total.min, 1_000_000 - 1000, "latency is measured from the header's send time")
        shard.collectLatencies(into: &total)
        XCTAssertEqual(total.totalCount, 6, "each latency is collected once")
    }
}
