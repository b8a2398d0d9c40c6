import Histogram
import MQTTCodec
import NIOCore
import NIOPosix
import RoostClient
import Synchronization

/// Runs one `roost bench` scenario with RoostClient connections and returns its report.
///
/// The clients are spread round-robin over an event loop group of
/// ``BenchConfiguration/threads`` threads. Publishers hand their messages to their connection
/// in batches (one EventLoop hop and one socket write per batch, one clock read per batch);
/// subscribers account for each message on their EventLoop, without a task hop, into the
/// ``ReceiveShard`` of that loop.
///
/// Concurrency: `Sendable`. ``run(progress:)`` once per runner; ``stop()`` from any thread (a
/// signal handler's task) ends the run early, which still reports.
public final class BenchRunner: Sendable {
    public let configuration: BenchConfiguration
    /// Identifies this process's publishers in the payload headers.
    public let runID: UInt32
    private let stopRequested = Atomic<Bool>(false)

    public init(configuration: BenchConfiguration, runID: UInt32 = UInt32.random(in: 1...UInt32.max)) {
        self.configuration = configuration
        self.runID = runID
    }

    /// Ends the run early: publishers stop, waits end, the report follows.
    public func stop() {
        stopRequested.store(true, ordering: .relaxed)
    }

    var isStopping: Bool { stopRequested.load(ordering: .relaxed) }

    /// Runs the scenario; `progress` is called about once a second while it runs.
    public func run(progress: (@Sendable (BenchProgress) -> Void)? = nil) async -> BenchReport {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: configuration.threads)
        let run = BenchRun(runner: self, loops: Array(group.makeIterator()))
        let reporter = progress.map { callback in Task { await run.reportProgress(to: callback) } }
        let report = await run.execute()
        reporter?.cancel()
        _ = await reporter?.value
        try? await group.shutdownGracefully()
        return report
    }
}

/// The state of one run: its clients, counters and phases.
///
/// Concurrency: `Sendable`; the counters are atomics or behind small locks, the client lists
/// are set once per phase under a lock.
final class BenchRun: Sendable {
    let runner: BenchRunner
    let configuration: BenchConfiguration
    let loops: [any EventLoop]
    let clock = ContinuousClock()
    let started: ContinuousClock.Instant
    let shards: [ReceiveShard]
    let connects = ConnectCounters()
    let publisherCounters: [PublisherCounters]
    /// Every latency collected from the shards so far.
    let latencies = Mutex(LatencySummary.makeHistogram())
    /// Set when the publishers' drain time ran out and the bench closed their connections.
    let drainExpired = Atomic<Bool>(false)

    init(runner: BenchRunner, loops: [any EventLoop]) {
        self.runner = runner
        self.configuration = runner.configuration
        self.loops = loops
        self.started = ContinuousClock.now
        let ownRunID = configuration.scenario == .pubsub ? runner.runID : nil
        self.shards = loops.map { _ in ReceiveShard(ownRunID: ownRunID) }
        let publishers = configuration.scenario == .pub || configuration.scenario == .pubsub ? configuration.publishers : 0
        self.publisherCounters = (0..<publishers).map { _ in PublisherCounters() }
    }

    func execute() async -> BenchReport {
        var report = BenchReport(configuration: configuration)
        switch configuration.scenario {
        case .conn: await runConnections(into: &report)
        case .sub: await runSubscribers(into: &report)
        case .pub, .pubsub: await runPublishers(into: &report)
        }
        let connectState = connects.state.withLock { $0 }
        report.connections.attempted = connectState.attempted
        report.connections.succeeded = connectState.succeeded
        report.connections.failed = connectState.failed
        report.connections.latencyUs = LatencySummary(nanoseconds: connectState.latencies)
        if let first = connectState.firstAttempt, let last = connectState.lastSuccess {
            let seconds = Self.seconds(last - first)
            report.connections.ratePerS = seconds > 0 ? Self.rounded(Double(connectState.succeeded) / seconds) : Double(connectState.succeeded)
        }
        report.errors = connectState.errors
        report.judge()
        return report
    }

    // MARK: Scenarios

    private func runConnections(into report: inout BenchReport) async {
        let clients = await connectAll(count: configuration.connections, role: "conn", loopOffset: 0).map(\.client)
        let holdStart = clock.now
        await waitUntil(holdStart + .seconds(configuration.duration))
        report.durationS = Self.rounded(Self.seconds(clock.now - holdStart))
        report.connections.dropped = clients.filter { !$0.isConnected }.count
        await disconnectAll(clients)
    }

    private func runSubscribers(into report: inout BenchReport) async {
        let subscribers = await connectSubscribers(streamsStartAtZero: false)
        let listenStart = clock.now
        await waitUntil(configuration.duration > 0 ? listenStart + .seconds(configuration.duration) : nil)
        let listened = Self.seconds(clock.now - listenStart)
        report.connections.dropped = subscribers.filter { !$0.client.isConnected }.count
        await disconnectAll(subscribers.map(\.client))
        fillReceiveCounts(into: &report, from: nil)
        report.durationS = Self.rounded(listened)
    }

    private func runPublishers(into report: inout BenchReport) async {
        let subscribers = configuration.scenario == .pubsub ? await connectSubscribers(streamsStartAtZero: true) : []
        // A publisher that failed to connect publishes nothing (and fails the run).
        let connected = await connectAll(count: configuration.publishers, role: "pub", loopOffset: subscribers.count)
        let publishers = connected.map(\.client)
        let trafficStart = clock.now
        let trafficStartWall = WallClock.nanoseconds()
        let trafficEnd = trafficStart + .seconds(configuration.duration)
        let watchdog = Task { [self] in
            // Acknowledgements (or writes) still missing after the drain time will not come: close.
            try await Task.sleep(until: trafficEnd + .seconds(configuration.drain), clock: clock)
            drainExpired.store(true, ordering: .relaxed)
            for client in publishers { await client.close() }
        }
        await withTaskGroup(of: Void.self) { group in
            for (index, client) in connected {
                group.addTask {
                    await self.publish(from: client, counters: self.publisherCounters[index], index: index, until: trafficEnd)
                }
            }
        }
        let trafficSeconds = Self.seconds(clock.now - trafficStart)
        watchdog.cancel()
        let gaveUp = drainExpired.load(ordering: .relaxed)
        if gaveUp {
            connects.note("publishers still waited for acknowledgements or writes \(configuration.drain) s after the end: closed")
        }
        let sent = publisherCounters.reduce(UInt64(0)) { $0 + $1.sent.load(ordering: .relaxed) }
        report.sent = sent
        report.acknowledged = publisherCounters.reduce(UInt64(0)) { $0 + $1.acknowledged.load(ordering: .relaxed) }
        report.publishFailures = publisherCounters.reduce(UInt64(0)) { $0 + $1.failed.load(ordering: .relaxed) }
        report.abandoned = publisherCounters.reduce(UInt64(0)) { $0 + $1.abandoned.load(ordering: .relaxed) }
        report.sendRate = trafficSeconds > 0 ? Self.rounded(Double(sent) / min(trafficSeconds, max(configuration.duration, 0.001))) : 0
        report.durationS = Self.rounded(min(trafficSeconds, configuration.duration))

        if configuration.scenario == .pubsub {
            let expected = expectedMessages(subscribers: subscribers)
            let drainEnd = clock.now + .seconds(configuration.drain)
            while clock.now < drainEnd && !runner.isStopping {
                let unique = shards.reduce(UInt64(0)) { $0 + $1.counts().unique }
                if unique >= expected { break }
                try? await Task.sleep(for: .milliseconds(10))
            }
            report.expected = expected
        }
        // Publishers the watchdog closed are reported as such, not as dropped.
        let droppedPublishers = gaveUp ? 0 : publishers.filter { !$0.isConnected }.count
        report.connections.dropped = droppedPublishers + subscribers.filter { !$0.client.isConnected }.count
        await disconnectAll(publishers + subscribers.map(\.client))
        if configuration.scenario == .pubsub {
            fillReceiveCounts(into: &report, from: trafficStartWall)
            report.lost = lostMessages(subscribers: subscribers)
        }
    }

    // MARK: Receiving

    struct Subscriber: Sendable {
        var index: Int
        var client: MQTTClient
        var shard: ReceiveShard
        var slot: Int
    }

    private func connectSubscribers(streamsStartAtZero: Bool) async -> [Subscriber] {
        let slots = Mutex<[Int: (ReceiveShard, Int)]>([:])
        let clients = await connectAll(count: configuration.subscribers, role: "sub", loopOffset: 0) { index, loop, configuration in
            let shardIndex = self.loops.firstIndex { $0 === loop } ?? 0
            let shard = self.shards[shardIndex]
            let slot = shard.addSubscriber(streamsStartAtZero: streamsStartAtZero)
            slots.withLock { $0[index] = (shard, slot) }
            configuration.messageHandler = { message in shard.handle(message, slot: slot) }
            configuration.operationTimeout = .seconds(30)
        } afterConnect: { index, client in
            let filter = self.configuration.filter(ofSubscriber: index)
            let subAck = try await client.subscribe([Subscription(filter: filter, qos: self.configuration.qos)])
            if let code = subAck.reasonCodes.first, code.rawValue >= 0x80 {
                throw MQTTClientError.protocolError("subscription to '\(filter)' refused: \(code.reasonDescription)")
            }
        }
        return slots.withLock { slots in
            clients.compactMap { index, client in
                guard let (shard, slot) = slots[index] else { return nil }
                return Subscriber(index: index, client: client, shard: shard, slot: slot)
            }
        }
    }

    /// Adds up the shards. The receive rate counts from `start` (wall-clock nanoseconds; nil:
    /// from the first message) to the latest message, so a drain wait does not dilute it.
    private func fillReceiveCounts(into report: inout BenchReport, from start: UInt64?) {
        var histogram = latencies.withLock { $0 }
        var first = UInt64.max
        var last: UInt64 = 0
        for shard in shards {
            shard.collectLatencies(into: &histogram)
            let counts = shard.counts()
            report.received += counts.received
            report.malformed += counts.malformed
            report.foreign += counts.foreign
            report.lost += counts.missing
            report.duplicates += counts.duplicates
            report.outOfOrder += counts.outOfOrder
            if let arrivals = shard.arrivals() {
                first = min(first, arrivals.first)
                last = max(last, arrivals.last)
            }
        }
        latencies.withLock { $0 = histogram }
        report.latencyUs = LatencySummary(nanoseconds: histogram)
        let from = start ?? first
        if last > from {
            report.receiveRate = Self.rounded(Double(report.received) / (Double(last - from) / 1e9))
        }
    }

    /// Each publisher's messages once for every subscriber whose filter matches its topic.
    private func expectedMessages(subscribers: [Subscriber]) -> UInt64 {
        var expected: UInt64 = 0
        for (index, counters) in publisherCounters.enumerated() {
            let topic = configuration.topic(ofPublisher: index)
            let sent = counters.sent.load(ordering: .relaxed)
            for subscriber in subscribers where Topic.matches(filter: configuration.filter(ofSubscriber: subscriber.index), name: topic) {
                expected += sent
            }
        }
        return expected
    }

    /// Exact loss: per subscriber and matching publisher, sent minus the distinct messages received.
    private func lostMessages(subscribers: [Subscriber]) -> UInt64 {
        var lost: UInt64 = 0
        for (index, counters) in publisherCounters.enumerated() {
            let topic = configuration.topic(ofPublisher: index)
            let sent = counters.sent.load(ordering: .relaxed)
            let key = BenchPayloadHeader(qos: 0, runID: runner.runID, publisherIndex: UInt32(index), sequence: 0, sentAtNanoseconds: 0).streamKey
            for subscriber in subscribers where Topic.matches(filter: configuration.filter(ofSubscriber: subscriber.index), name: topic) {
                let received = subscriber.shard.received(slot: subscriber.slot, stream: key)
                if received < sent { lost += sent - received }
            }
        }
        return lost
    }

    // MARK: Progress

    func reportProgress(to callback: @Sendable (BenchProgress) -> Void) async {
        var lastSent: UInt64 = 0
        var lastReceived: UInt64 = 0
        var lastTime = clock.now
        var tick = 1
        while !Task.isCancelled {
            do {
                try await Task.sleep(until: started + .seconds(tick), clock: clock)
            } catch {
                return
            }
            tick += 1
            let now = clock.now
            let interval = max(Self.seconds(now - lastTime), 0.001)
            lastTime = now
            let sent = publisherCounters.reduce(UInt64(0)) { $0 + $1.sent.load(ordering: .relaxed) }
            var received: UInt64 = 0
            var missing: UInt64 = 0
            var duplicates: UInt64 = 0
            var outOfOrder: UInt64 = 0
            var histogram = latencies.withLock { $0 }
            for shard in shards {
                shard.collectLatencies(into: &histogram)
                let counts = shard.counts()
                received += counts.received
                missing += counts.missing
                duplicates += counts.duplicates
                outOfOrder += counts.outOfOrder
            }
            latencies.withLock { $0 = histogram }
            let connectState = connects.state.withLock { (succeeded: $0.succeeded, failed: $0.failed) }
            let hasLatency = histogram.totalCount > 0
            callback(
                BenchProgress(
                    scenario: configuration.scenario, elapsed: Self.seconds(now - started), connected: connectState.succeeded, connectFailures: connectState.failed,
                    sentPerSecond: Double(sent - lastSent) / interval, receivedPerSecond: Double(received - lastReceived) / interval,
                    p50Us: hasLatency ? Double(histogram.valueAtPercentile(50)) / 1000 : nil,
                    p99Us: hasLatency ? Double(histogram.valueAtPercentile(99)) / 1000 : nil,
                    lost: missing, duplicates: duplicates, outOfOrder: outOfOrder))
            lastSent = sent
            lastReceived = received
        }
    }

    // MARK: Helpers

    /// Sleeps until `deadline` (nil: forever) or until the run is stopped.
    func waitUntil(_ deadline: ContinuousClock.Instant?) async {
        while !runner.isStopping {
            let now = clock.now
            if let deadline, now >= deadline { return }
            var next = now + .milliseconds(50)
            if let deadline, deadline < next { next = deadline }
            try? await Task.sleep(until: next, clock: clock)
        }
    }

    static func seconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    static func rounded(_ value: Double) -> Double {
        (value * 100).rounded() / 100
    }
}
