import MQTTCodec
import NIOCore
import RoostClient

extension BenchRun {
    /// Publishes from one client until `end` (or until the run is stopped), then waits for what
    /// is still in flight.
    ///
    /// Messages go out in batches: unpaced, batches of half the in-flight window with two batches
    /// outstanding, so the window never runs dry; paced, every tick the messages that fell due
    /// (message `k` is due `k / rate` seconds after the start), at most one window per batch.
    /// Each batch is one payload allocation, one clock read and one EventLoop hop.
    func publish(from client: MQTTClient, counters: PublisherCounters, index: Int, until end: ContinuousClock.Instant) async {
        let rate = configuration.ratePerPublisher
        let topic = configuration.topic(ofPublisher: index)
        let batchLimit = rate > 0 ? configuration.inflight : max(1, configuration.inflight / 2)
        let outstandingLimit = rate > 0 ? 4 : 2
        // Ticks no shorter than 5 ms, and longer with many publishers, to bound wake-ups.
        let minimumTick = Duration.seconds(max(0.005, Double(configuration.publishers) * 0.00002))
        var header = BenchPayloadHeader(
            qos: configuration.qos.rawValue, runID: runner.runID, publisherIndex: UInt32(index), sequence: 0, sentAtNanoseconds: 0)
        var outstanding: [EventLoopFuture<[Ack?]>] = []
        let start = clock.now
        while !runner.isStopping && client.isConnected {
            let now = clock.now
            if now >= end { break }
            var count = batchLimit
            if rate > 0 {
                let due = UInt64(Self.seconds(now - start) * rate) + 1
                if due <= header.sequence {
                    let next = start + .seconds(Double(header.sequence) / rate)
                    try? await Task.sleep(until: min(max(next, now + minimumTick), end), clock: clock)
                    continue
                }
                count = Int(min(due - header.sequence, UInt64(batchLimit)))
            }
            let batch = makeBatch(count: count, topic: topic, header: &header)
            counters.sent.add(UInt64(batch.count), ordering: .relaxed)
            let future = client.startPublishing(contentsOf: batch)
            future.whenComplete { [self, size = batch.count] result in
                let gaveUp = drainExpired.load(ordering: .relaxed)
                if let error = counters.complete(result, count: size, gaveUp: gaveUp) { connects.note(MQTTClient.describe(error)) }
            }
            outstanding.append(future)
            while outstanding.count >= outstandingLimit {
                _ = try? await outstanding.removeFirst().get()
            }
        }
        for future in outstanding { _ = try? await future.get() }
    }

    /// `count` messages for `topic`, numbered from `header.sequence` on (which moves past them),
    /// their payloads slices of one buffer.
    func makeBatch(count: Int, topic: String, header: inout BenchPayloadHeader) -> [Publish] {
        let size = configuration.payloadSize
        let filler = size - BenchPayloadHeader.size
        var buffer = ByteBufferAllocator().buffer(capacity: count * size)
        header.sentAtNanoseconds = WallClock.nanoseconds()
        var batch: [Publish] = []
        batch.reserveCapacity(count)
        for _ in 0..<count {
            let start = buffer.writerIndex
            header.write(to: &buffer)
            if filler > 0 { buffer.writeRepeatingByte(0x2E, count: filler) }
            header.sequence &+= 1
            let payload = buffer.getSlice(at: start, length: size) ?? ByteBuffer()
            batch.append(Publish(topic: topic, payload: payload, qos: configuration.qos))
        }
        return batch
    }
}
