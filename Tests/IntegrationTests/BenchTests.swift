import MQTTCodec
import RoostBench
import RoostClient
import XCTest

/// `roost bench` (the RoostBench runner) against a real in-process broker: messages flow with
/// exact accounting, and `conn` opens every connection.
final class BenchTests: XCTestCase {
    func testPubSubAtQoS1LosesNothing() async throws {
        for version in [ProtocolVersion.v3_1_1, .v5] {
            try await withBroker { broker in
                var configuration = BenchConfiguration(scenario: .pubsub)
                configuration.port = broker.port
                configuration.version = version
                configuration.publishers = 4
                configuration.subscribers = 2
                configuration.qos = .atLeastOnce
                configuration.ratePerPublisher = 500
                configuration.duration = 1.5
                configuration.threads = 2
                let report = await BenchRunner(configuration: configuration).run()
                XCTAssertTrue(report.ok, "\(version): \(report.failures) \(report.errors)")
                XCTAssertEqual(report.connections.succeeded, 6)
                XCTAssertGreaterThan(report.sent, 1000, "\(version): 4 x 500 msg/s for 1.5 s")
                XCTAssertEqual(report.acknowledged, report.sent)
                XCTAssertEqual(report.expected, report.sent * 2, "every message once per subscriber")
                XCTAssertEqual(report.received, report.sent * 2)
                XCTAssertEqual(report.lost, 0)
                XCTAssertEqual(report.duplicates, 0)
                XCTAssertEqual(report.outOfOrder, 0)
                XCTAssertEqual(report.malformed, 0)
                XCTAssertEqual(report.latencyUs.count, report.received)
                XCTAssertGreaterThan(report.latencyUs.p99Us, 0)
            }
        }
    }

    func testPairsAtQoS2Unpaced() async throws {
        try await withBroker { broker in
            var configuration = BenchConfiguration(scenario: .pubsub)
            configuration.port = broker.port
            configuration.publishers = 3
            configuration.subscribers = 3
            configuration.filterPattern = "roost-bench/%i"
            configuration.qos = .exactlyOnce
            configuration.inflight = 16
            configuration.duration = 1
            let report = await BenchRunner(configuration: configuration).run()
            XCTAssertTrue(report.ok, "\(report.failures) \(report.errors)")
            XCTAssertGreaterThan(report.sent, 0)
            XCTAssertEqual(report.expected, report.sent, "pairs: each message to one subscriber")
            XCTAssertEqual(report.received, report.sent)
            XCTAssertEqual(report.lost + report.duplicates + report.outOfOrder, 0)
        }
    }

    func testExpectedCountsOnlyMatchingPublishers() async throws {
        // The subscriber listens to publisher 0 only: a publisher whose topic matches no filter
        // is expected nowhere, so nothing counts as lost.
        try await withBroker { broker in
            var configuration = BenchConfiguration(scenario: .pubsub)
            configuration.port = broker.port
            configuration.publishers = 2
            configuration.subscribers = 1
            configuration.filterPattern = "roost-bench/0"
            configuration.qos = .atLeastOnce
            configuration.ratePerPublisher = 200
            configuration.duration = 0.5
            let report = await BenchRunner(configuration: configuration).run()
            XCTAssertTrue(report.ok, "\(report.failures)")
            let publisher0 = report.sent / 2
            XCTAssertEqual(report.expected, report.received)
            XCTAssertGreaterThan(report.received, publisher0 / 2)
            XCTAssertLessThan(report.received, report.sent)
        }
    }

    func testConnOpensEveryConnection() async throws {
        try await withBroker { broker in
            var configuration = BenchConfiguration(scenario: .conn)
            configuration.port = broker.port
            configuration.connections = 200
            configuration.connectRate = 1000
            configuration.duration = 0.5
            configuration.threads = 2
            let report = await BenchRunner(configuration: configuration).run()
            XCTAssertTrue(report.ok, "\(report.failures) \(report.errors)")
            XCTAssertEqual(report.connections.attempted, 200)
            XCTAssertEqual(report.connections.succeeded, 200)
            XCTAssertEqual(report.connections.failed, 0)
            XCTAssertEqual(report.connections.dropped, 0)
            XCTAssertEqual(report.connections.latencyUs.count, 200)
            XCTAssertGreaterThan(report.connections.ratePerS, 100)
            XCTAssertLessThan(report.connections.ratePerS, 1500, "paced at 1000/s")
        }
    }

    func testConnReportsRefusedConnections() async throws {
        var settings = integrationSettings()
        settings.maxClientIDLength = 8
        try await withBroker(settings: settings) { broker in
            var configuration = BenchConfiguration(scenario: .conn)
            configuration.port = broker.port
            configuration.connections = 3
            configuration.duration = 0
            configuration.version = .v5
            configuration.clientIDPrefix = "longer-than-eight"
            let report = await BenchRunner(configuration: configuration).run()
            XCTAssertFalse(report.ok)
            XCTAssertEqual(report.connections.attempted, 3)
            XCTAssertEqual(report.connections.failed, 3)
            XCTAssertEqual(report.failures, ["3 connection(s) failed"])
            XCTAssertEqual(report.errors.count, 1, "one distinct error: \(report.errors)")
        }
    }
}
