import XCTest

@testable import RoostBench

final class SequenceTrackerTests: XCTestCase {
    func testInOrderStreamHasNothingToReport() {
        var tracker = SequenceTracker(streamsStartAtZero: true)
        for sequence in 0..<100 as Range<UInt64> {
            XCTAssertEqual(tracker.record(stream: 1, sequence: sequence), .inOrder)
        }
        XCTAssertEqual(tracker.received, 100)
        XCTAssertEqual(tracker.received(stream: 1), 100)
        XCTAssertEqual(tracker.missing, 0)
        XCTAssertEqual(tracker.duplicates, 0)
        XCTAssertEqual(tracker.outOfOrder, 0)
    }

    func testGapCountsAsMissingUntilFilled() {
        var tracker = SequenceTracker(streamsStartAtZero: true)
        tracker.record(stream: 1, sequence: 0)
        XCTAssertEqual(tracker.record(stream: 1, sequence: 5), .gap(skipped: 4))
        XCTAssertEqual(tracker.missing, 4)
        // Fill the middle, then both ends of what is left.
        XCTAssertEqual(tracker.record(stream: 1, sequence: 3), .outOfOrder)
        XCTAssertEqual(tracker.record(stream: 1, sequence: 1), .outOfOrder)
        XCTAssertEqual(tracker.record(stream: 1, sequence: 4), .outOfOrder)
        XCTAssertEqual(tracker.missing, 1)
        XCTAssertEqual(tracker.streams[1]?.gaps, [2..<3])
        XCTAssertEqual(tracker.record(stream: 1, sequence: 2), .outOfOrder)
        XCTAssertEqual(tracker.missing, 0)
        XCTAssertEqual(tracker.outOfOrder, 4)
        XCTAssertEqual(tracker.duplicates, 0)
        XCTAssertEqual(tracker.received(stream: 1), 6)
        XCTAssertEqual(tracker.streams[1]?.gaps, [])
    }

    func testDuplicatesOfTheLatestAndOfOlderMessages() {
        var tracker = SequenceTracker(streamsStartAtZero: true)
        tracker.record(stream: 1, sequence: 0)
        tracker.record(stream: 1, sequence: 1)
        XCTAssertEqual(tracker.record(stream: 1, sequence: 1), .duplicate)
        XCTAssertEqual(tracker.record(stream: 1, sequence: 0), .duplicate)
        tracker.record(stream: 1, sequence: 4)
        XCTAssertEqual(tracker.record(stream: 1, sequence: 2), .outOfOrder)
        XCTAssertEqual(tracker.record(stream: 1, sequence: 2), .duplicate, "a filled gap is not filled twice")
        XCTAssertEqual(tracker.duplicates, 3)
        XCTAssertEqual(tracker.outOfOrder, 1)
        XCTAssertEqual(tracker.missing, 1)
        XCTAssertEqual(tracker.received, 7, "every message counts as received")
        XCTAssertEqual(tracker.received(stream: 1), 4, "distinct ones per stream")
    }

    func testStreamsAreIndependent() {
        var tracker = SequenceTracker(streamsStartAtZero: true)
        for sequence in 0..<10 as Range<UInt64> {
            tracker.record(stream: 1, sequence: sequence)
            tracker.record(stream: 2, sequence: 9 - sequence)
        }
        XCTAssertEqual(tracker.streams[1]?.missing, 0)
        XCTAssertEqual(tracker.streams[2]?.missing, 0)
        XCTAssertEqual(tracker.outOfOrder, 9, "stream 2 arrived backwards: 9 opened a gap, the rest filled it")
        XCTAssertEqual(tracker.duplicates, 0)
        XCTAssertEqual(tracker.received(stream: 2), 10)
        XCTAssertEqual(tracker.received(stream: 3), 0)
    }

    func testStreamsStartingAtZeroCountAMissedBeginning() {
        var fromZero = SequenceTracker(streamsStartAtZero: true)
        XCTAssertEqual(fromZero.record(stream: 1, sequence: 3), .gap(skipped: 3))
        XCTAssertEqual(fromZero.missing, 3)

        var joined = SequenceTracker(streamsStartAtZero: false)
        XCTAssertEqual(joined.record(stream: 1, sequence: 1000), .inOrder, "a subscriber may join a running stream")
        XCTAssertEqual(joined.record(stream: 1, sequence: 1001), .inOrder)
        XCTAssertEqual(joined.missing, 0)
    }

    func testRandomReorderingAgainstASet() {
        var generator = SeededGenerator(seed: 42)
        for _ in 0..<50 {
            var tracker = SequenceTracker(streamsStartAtZero: true)
            var seen = Set<UInt64>()
            var duplicates: UInt64 = 0
            var sequences = (0..<200 as Range<UInt64>).filter { _ in Int.random(in: 0..<10, using: &generator) != 0 }
            sequences += sequences.filter { _ in Int.random(in: 0..<20, using: &generator) == 0 }
            for index in sequences.indices where Int.random(in: 0..<5, using: &generator) == 0 {
                sequences.swapAt(index, Int.random(in: sequences.indices, using: &generator))
            }
            for sequence in sequences {
                if !seen.insert(sequence).inserted { duplicates += 1 }
                tracker.record(stream: 9, sequence: sequence)
            }
            let highest = seen.max() ?? 0
            XCTAssertEqual(tracker.duplicates, duplicates)
            XCTAssertEqual(tracker.missing, highest + 1 - UInt64(seen.count))
            XCTAssertEqual(tracker.received(stream: 9), UInt64(seen.count))
            XCTAssertEqual(tracker.received, UInt64(sequences.count))
        }
    }

    func testTheOldestGapIsGivenUpButStillCounted() {
        var tracker = SequenceTracker(streamsStartAtZero: true)
        var sequence: UInt64 = 0
        // 0, 2, 4, ...: one gap more than are kept.
        for _ in 0...(SequenceTracker.maximumGapsPerStream + 1) {
            tracker.record(stream: 1, sequence: sequence)
            sequence += 2
        }
        XCTAssertEqual(tracker.streams[1]?.gaps.count, SequenceTracker.maximumGapsPerStream)
        XCTAssertEqual(tracker.missing, UInt64(SequenceTracker.maximumGapsPerStream) + 1)
        XCTAssertEqual(tracker.record(stream: 1, sequence: 1), .duplicate, "the given-up gap cannot be filled")
        XCTAssertEqual(tracker.record(stream: 1, sequence: 3), .outOfOrder)
        XCTAssertEqual(tracker.missing, UInt64(SequenceTracker.maximumGapsPerStream))
    }
}

/// A small deterministic generator (SplitMix64), so that the random test repeats.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
