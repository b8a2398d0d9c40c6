import Histogram
import MQTTCodec
import NIOCore
import Synchronization

/// The receive accounting of the subscribers on one event loop: their sequence trackers, the
/// message counts and the latencies since the last collection.
///
/// Concurrency: `Sendable`. ``handle(_:slot:)`` runs on the subscribers' EventLoop for every
/// message; the progress reporter and the end of the run read under the same lock. The lock is
/// held for a few counter updates, never across I/O.
final class ReceiveShard: Sendable {
    /// When set (`pubsub`), messages of other runs (another `roost bench` on the same topics, or
    /// the backlog a broker still forwards from an earlier run) are counted apart and otherwise
    /// ignored.
    let ownRunID: UInt32?

    init(ownRunID: UInt32?) {
        self.ownRunID = ownRunID
    }

    struct State: Sendable {
        var trackers: [SequenceTracker] = []
        var received: UInt64 = 0
        var malformed: UInt64 = 0
        /// Messages of another run (see ``ReceiveShard/ownRunID``).
        var foreign: UInt64 = 0
        /// Wall-clock nanoseconds of the first and the latest message (0: none yet).
        var firstReceivedAt: UInt64 = 0
        var lastReceivedAt: UInt64 = 0
        /// Latencies since the last ``ReceiveShard/collectLatencies(into:)``.
        var latencies = LatencySummary.makeHistogram()
    }

    let state = Mutex(State())

    /// A tracker slot for one more subscriber.
    func addSubscriber(streamsStartAtZero: Bool) -> Int {
        state.withLock { state in
            state.trackers.append(SequenceTracker(streamsStartAtZero: streamsStartAtZero))
            return state.trackers.count - 1
        }
    }

    /// Accounts for one message received by the subscriber in `slot`.
    func handle(_ message: Publish, slot: Int) {
        let now = WallClock.nanoseconds()
        guard let header = BenchPayloadHeader(payload: message.payload) else {
            state.withLock { state in
                state.received &+= 1
                state.malformed &+= 1
                state.noteArrival(now)
            }
            return
        }
        if let ownRunID, header.runID != ownRunID {
            state.withLock { $0.foreign &+= 1 }
            return
        }
        // Clocks of one host agree; a negative difference (another host's clock) counts as 0.
        let latency = now >= header.sentAtNanoseconds ? now - header.sentAtNanoseconds : 0
        state.withLock { state in
            state.received &+= 1
            state.noteArrival(now)
            state.latencies.record(latency)
            state.trackers[slot].record(stream: header.streamKey, sequence: header.sequence)
        }
    }

    /// The wall-clock nanoseconds of the first and the latest message, if any arrived.
    func arrivals() -> (first: UInt64, last: UInt64)? {
        state.withLock { state in state.received > 0 ? (state.firstReceivedAt, state.lastReceivedAt) : nil }
    }

    /// Moves the latencies recorded since the last call into `total`.
    func collectLatencies(into total: inout Histogram<UInt64>) {
        state.withLock { state in
            guard state.latencies.totalCount > 0 else { return }
            total.add(state.latencies)
            state.latencies.reset()
        }
    }

    /// Counts over every tracker of the shard.
    func counts() -> (
        received: UInt64, malformed: UInt64, foreign: UInt64, unique: UInt64, missing: UInt64, duplicates: UInt64, outOfOrder: UInt64
    ) {
        state.withLock { state in
            var unique: UInt64 = 0
            var missing: UInt64 = 0
            var duplicates: UInt64 = 0
            var outOfOrder: UInt64 = 0
            for tracker in state.trackers {
                unique &+= tracker.received &- tracker.duplicates
                missing &+= tracker.missing
                duplicates &+= tracker.duplicates
                outOfOrder &+= tracker.outOfOrder
            }
            return (state.received, state.malformed, state.foreign, unique, missing, duplicates, outOfOrder)
        }
    }

    /// Distinct messages of stream `key` the subscriber in `slot` received.
    func received(slot: Int, stream key: UInt64) -> UInt64 {
        state.withLock { $0.trackers[slot].received(stream: key) }
    }
}

extension ReceiveShard.State {
    mutating func noteArrival(_ now: UInt64) {
        if firstReceivedAt == 0 { firstReceivedAt = now }
        lastReceivedAt = now
    }
}

/// What one publisher has done, updated once per batch.
///
/// Concurrency: `Sendable`; atomics, written by the publisher's task and its EventLoop, read by
/// the reporter.
final class PublisherCounters: Sendable {
    let sent = Atomic<UInt64>(0)
    let acknowledged = Atomic<UInt64>(0)
    let failed = Atomic<UInt64>(0)
    /// Still unwritten (QoS 0) or unacknowledged when the drain time ran out and the bench
    /// closed the connection itself.
    let abandoned = Atomic<UInt64>(0)

    /// Accounts for a completed batch of `count` messages; a failure after the bench gave up
    /// waiting (`gaveUp`) is its own doing and counts as abandoned, not failed.
    func complete(_ result: Result<[Ack?], any Error>, count: Int, gaveUp: Bool) -> (any Error)? {
        if case .failure = result, gaveUp {
            abandoned.add(UInt64(count), ordering: .relaxed)
            return nil
        }
        switch result {
        case .success(let acks):
            var refused: UInt64 = 0
            for case let ack? in acks where ack.reasonCode.isFailure { refused += 1 }
            acknowledged.add(UInt64(count) - refused, ordering: .relaxed)
            if refused > 0 { failed.add(refused, ordering: .relaxed) }
            return nil
        case .failure(let error):
            failed.add(UInt64(count), ordering: .relaxed)
            return error
        }
    }
}

/// Connection attempts, their CONNACK times and the first distinct errors of a run.
///
/// Concurrency: `Sendable`; a lock around a few assignments.
final class ConnectCounters: Sendable {
    struct State: Sendable {
        var attempted = 0
        var succeeded = 0
        var failed = 0
        var latencies = LatencySummary.makeHistogram()
        var firstAttempt: ContinuousClock.Instant?
        var lastSuccess: ContinuousClock.Instant?
        var errors: [String] = []
    }

    static let maximumErrors = 8
    let state = Mutex(State())

    func attempt(at instant: ContinuousClock.Instant) {
        state.withLock { state in
            state.attempted += 1
            if state.firstAttempt == nil { state.firstAttempt = instant }
        }
    }

    func succeeded(nanoseconds: UInt64, at instant: ContinuousClock.Instant) {
        state.withLock { state in
            state.succeeded += 1
            state.latencies.record(nanoseconds)
            state.lastSuccess = instant
        }
    }

    func failed(_ description: String) {
        state.withLock { state in
            state.failed += 1
        }
        note(description)
    }

    /// Keeps `description` among the first distinct errors of the run.
    func note(_ description: String) {
        state.withLock { state in
            if state.errors.count < Self.maximumErrors && !state.errors.contains(description) {
                state.errors.append(description)
            }
        }
    }
}
