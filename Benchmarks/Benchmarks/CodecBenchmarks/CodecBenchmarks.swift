import Benchmark
import MQTTCodec
import NIOCore

// Decode and encode of every packet kind, MQTT 3.1.1 and 5.0, through the entry points a
// connection uses: `MQTTDecoder.decode(from:)` (framing and validation) on a whole packet, and
// `MQTTEncoder.encode(_:into:)` appending to a reused output buffer, as the connection's
// coalescing buffer is. One measured iteration is 1,000 operations; results are per operation.
//
// Benchmark names have no spaces or slashes: package-benchmark 1.38 writes threshold files with
// them replaced by `_` but looks them up by the raw name, so such a benchmark is never checked.

let benchmarks = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        timeUnits: .nanoseconds,
        warmupIterations: 3,
        scalingFactor: .kilo,
        maxDuration: .milliseconds(250),
        maxIterations: 10_000,
        // Allocation counts are deterministic: checked exactly against Thresholds/.
        thresholds: [.mallocCountTotal: BenchmarkThresholds(absolute: [.p90: 0])]
    )

    for version in [ProtocolVersion.v3_1_1, .v5] {
        let encoder = MQTTEncoder(version: version)
        let decoder = MQTTDecoder(version: version)
        for sample in PacketSamples.all(for: version) {
            var wire = ByteBuffer()
            encoder.encode(sample.packet, into: &wire)
            // A benchmark of a packet that does not round-trip would measure an error path.
            var check = wire
            guard let decoded = try? decoder.decode(from: &check), decoded == sample.packet, check.readableBytes == 0 else {
                fatalError("\(sample.name) (\(version)) does not round-trip through the codec")
            }
            let packet = sample.packet

            Benchmark("decode-\(version)-\(sample.name)") { benchmark in
                for _ in benchmark.scaledIterations {
                    var input = wire
                    blackHole(try? decoder.decode(from: &input))
                }
            }

            var output = ByteBufferAllocator().buffer(capacity: 1024)
            Benchmark("encode-\(version)-\(sample.name)") { benchmark in
                for _ in benchmark.scaledIterations {
                    output.clear()
                    encoder.encode(packet, into: &output)
                }
                blackHole(output.readableBytes)
            }
        }
    }
}
