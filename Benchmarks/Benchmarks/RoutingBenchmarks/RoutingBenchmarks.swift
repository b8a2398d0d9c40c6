import Benchmark
import MQTTCodec
import RoostCore

// Topic matching against a 100k-filter index (`TopicTree`, the broker's routing index), and
// fan-out of one QoS 0 PUBLISH through a real broker and real connections (`FanOutFixture`).
// Names have no spaces or slashes (see CodecBenchmarks.swift).

let benchmarks = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        timeUnits: .nanoseconds,
        warmupIterations: 3,
        maxDuration: .milliseconds(500),
        maxIterations: 10_000,
        // Allocation counts are deterministic: checked exactly against Thresholds/.
        thresholds: [.mallocCountTotal: BenchmarkThresholds(absolute: [.p90: 0])]
    )

    // MARK: Topic match

    let index = TopicIndexSample.make()
    for sample in TopicIndexSample.topics {
        var found = 0
        index.forEachMatch(name: sample.topic) { _, _, _ in found += 1 }
        precondition(found == sample.matches, "\(sample.topic) matched \(found) filters, expected \(sample.matches)")
        let topic = sample.topic
        Benchmark(
            "match-100k-filters-\(sample.name)",
            configuration: .init(scalingFactor: .kilo)
        ) { benchmark in
            for _ in benchmark.scaledIterations {
                var hits = 0
                index.forEachMatch(name: topic) { _, key, _ in hits &+= key }
                blackHole(hits)
            }
        }
    }

    // MARK: Fan-out

    // The fixture is made inside the first (warm-up) iteration: an EmbeddedEventLoop belongs to
    // the thread that made it, and setup hooks may run on another thread than the benchmark.
    for (subscribers, version) in [(1000, ProtocolVersion.v3_1_1), (1000, .v5), (1, .v3_1_1)] {
        var fixture: FanOutFixture?
        Benchmark("fanout-QoS0-\(version)-\(subscribers)-subscriber\(subscribers == 1 ? "" : "s")") { benchmark in
            if fixture == nil {
                do {
                    fixture = try FanOutFixture(subscribers: subscribers, version: version)
                } catch {
                    fatalError("fan-out fixture: \(error)")
                }
            }
            guard let fixture else { return }
            let before = fixture.delivered.writes
            for _ in benchmark.scaledIterations {
                fixture.publish()
            }
            // Every subscriber got every message, each in one write: the benchmark measured delivery.
            let delivered = fixture.delivered.writes - before
            guard delivered == subscribers * benchmark.scaledIterations.count else {
                fatalError("\(delivered) deliveries, expected \(subscribers * benchmark.scaledIterations.count)")
            }
        }
    }
}
