/// Loss, duplicate and order accounting for the message streams one subscriber receives: one
/// stream per publisher (``BenchPayloadHeader/streamKey``), each numbered 0, 1, 2, ...
///
/// A sequence number above the next expected one opens a gap (its missing numbers count as
/// lost until they arrive); one that fills a gap counts as out of order (and no longer as
/// lost); one seen before counts as a duplicate. Gaps are kept as ranges, at most
/// ``maximumGapsPerStream`` per stream: beyond that the oldest gap is given up (still counted
/// as lost; a late arrival from it then counts as a duplicate).
///
/// Concurrency: a value; whoever owns it serializes access (the bench keeps it under the lock
/// of its receive shard).
public struct SequenceTracker: Sendable {
    /// What one received sequence number was.
    public enum Outcome: Sendable, Equatable {
        /// The next expected number (or the first of a stream).
        case inOrder
        /// Above the next expected number; `skipped` numbers are now missing.
        case gap(skipped: UInt64)
        /// A missing number that arrived late.
        case outOfOrder
        case duplicate
    }

    /// One publisher's stream as this subscriber sees it.
    public struct Stream: Sendable, Equatable {
        /// One past the highest sequence number received.
        public internal(set) var next: UInt64
        /// Distinct sequence numbers received.
        public internal(set) var received: UInt64 = 0
        /// Numbers below `next` not (yet) received.
        public internal(set) var missing: UInt64 = 0
        /// The missing numbers, as sorted disjoint ranges (the oldest may have been given up).
        var gaps: [Range<UInt64>] = []
    }

    public static let maximumGapsPerStream = 4096

    /// True when every stream starts at sequence 0, so that numbers before the first one received
    /// are missing (one process that also published); false when the subscriber may have joined
    /// a running stream (`roost bench sub`): the first number received starts the stream.
    public let streamsStartAtZero: Bool

    public private(set) var streams: [UInt64: Stream] = [:]
    public private(set) var received: UInt64 = 0
    public private(set) var duplicates: UInt64 = 0
    public private(set) var outOfOrder: UInt64 = 0
    /// Missing numbers in all streams right now.
    public private(set) var missing: UInt64 = 0

    public init(streamsStartAtZero: Bool) {
        self.streamsStartAtZero = streamsStartAtZero
    }

    /// Accounts for one message of stream `key` with sequence number `sequence`.
    @discardableResult
    public mutating func record(stream key: UInt64, sequence: UInt64) -> Outcome {
        received &+= 1
        let outcome: Outcome
        if let index = streams.index(forKey: key) {
            outcome = streams.values[index].record(sequence)
        } else {
            var stream = Stream(next: streamsStartAtZero ? 0 : sequence)
            outcome = stream.record(sequence)
            streams[key] = stream
        }
        switch outcome {
        case .inOrder: break
        case .gap(let skipped): missing &+= skipped
        case .outOfOrder:
            outOfOrder &+= 1
            missing &-= 1
        case .duplicate: duplicates &+= 1
        }
        return outcome
    }

    /// Distinct messages received from stream `key` (0 for a stream never seen).
    public func received(stream key: UInt64) -> UInt64 {
        streams[key]?.received ?? 0
    }
}

extension SequenceTracker.Stream {
    mutating func record(_ sequence: UInt64) -> SequenceTracker.Outcome {
        if sequence == next {
            next &+= 1
            received &+= 1
            return .inOrder
        }
        if sequence > next {
            let skipped = sequence - next
            gaps.append(next..<sequence)
            if gaps.count > SequenceTracker.maximumGapsPerStream { gaps.removeFirst() }
            missing &+= skipped
            next = sequence &+ 1
            received &+= 1
            return .gap(skipped: skipped)
        }
        // Below `next`: fills a gap, or was seen before.
        guard let index = gapIndex(containing: sequence) else { return .duplicate }
        let gap = gaps[index]
        switch (sequence == gap.lowerBound, sequence == gap.upperBound - 1) {
        case (true, true): gaps.remove(at: index)
        case (true, false): gaps[index] = (sequence + 1)..<gap.upperBound
        case (false, true): gaps[index] = gap.lowerBound..<sequence
        case (false, false):
            gaps[index] = gap.lowerBound..<sequence
            gaps.insert((sequence + 1)..<gap.upperBound, at: index + 1)
        }
        missing &-= 1
        received &+= 1
        return .outOfOrder
    }

    /// Binary search of the sorted gaps.
    private func gapIndex(containing sequence: UInt64) -> Int? {
        var low = 0
        var high = gaps.count
        while low < high {
            let middle = (low + high) / 2
            let gap = gaps[middle]
            if sequence < gap.lowerBound {
                high = middle
            } else if sequence >= gap.upperBound {
                low = middle + 1
            } else {
                return middle
            }
        }
        return nil
    }
}
