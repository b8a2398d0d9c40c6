import Foundation
import Histogram
import MQTTCodec
import XCTest

@testable import RoostBench

final class BenchReportTests: XCTestCase {
    func testPercentilesOfAKnownDistribution() {
        var histogram = LatencySummary.makeHistogram()
        for microseconds in 1...1000 as ClosedRange<UInt64> { histogram.record(microseconds * 1000) }
        let summary = LatencySummary(nanoseconds: histogram)
        XCTAssertEqual(summary.count, 1000)
        XCTAssertEqual(summary.minUs, 1, accuracy: 0.01)
        XCTAssertEqual(summary.p50Us, 500, accuracy: 0.5)
        XCTAssertEqual(summary.p90Us, 900, accuracy: 0.9)
        XCTAssertEqual(summary.p99Us, 990, accuracy: 1)
        XCTAssertEqual(summary.p999Us, 999, accuracy: 1)
        XCTAssertEqual(summary.maxUs, 1000, accuracy: 1)
        XCTAssertEqual(summary.meanUs, 500.5, accuracy: 0.5)
    }

    func testEmptyHistogramSummarizesToZeros() {
        let summary = LatencySummary(nanoseconds: LatencySummary.makeHistogram())
        XCTAssertEqual(summary.count, 0)
        XCTAssertEqual(summary.p99Us, 0)
        XCTAssertEqual(summary.text, "no samples")
    }

    func testDurationAndCountFormatting() {
        XCTAssertEqual(LatencySummary.format(412.4), "412 us")
        XCTAssertEqual(LatencySummary.format(2310), "2.31 ms")
        XCTAssertEqual(LatencySummary.format(3_204_000), "3.20 s")
        XCTAssertEqual(LatencySummary.fixed(0.005, digits: 2), "0.01")
        XCTAssertEqual(LatencySummary.fixed(12, digits: 0), "12")
        XCTAssertEqual(BenchReport.count(950), "950")
        XCTAssertEqual(BenchReport.count(199.97), "200")
        XCTAssertEqual(BenchReport.count(45_230), "45.2k")
        XCTAssertEqual(BenchReport.count(1_250_000), "1.25M")
    }

    func testProgressLine() {
        let progress = BenchProgress(
            scenario: .pubsub, elapsed: 3.02, connected: 20, connectFailures: 1, sentPerSecond: 45_200, receivedPerSecond: 45_100,
            p50Us: 410, p99Us: 2310, lost: 2, duplicates: 0, outOfOrder: 5)
        XCTAssertEqual(
            progress.line, "[  3s] conn 20 (1 failed)  sent 45.2k/s  recv 45.1k/s  p50 410 us  p99 2.31 ms  lost 2  dup 0  ooo 5")
        var early = progress
        early.p50Us = nil
        early.connectFailures = 0
        XCTAssertTrue(early.line.contains("conn 20  sent"), early.line)
        XCTAssertTrue(early.line.contains("p50 -  p99 -"), early.line)
        var publishing = progress
        publishing.scenario = .pub
        XCTAssertEqual(publishing.line, "[  3s] conn 20 (1 failed)  sent 45.2k/s")
        var connecting = progress
        connecting.scenario = .conn
        XCTAssertEqual(connecting.line, "[  3s] conn 20 (1 failed)")
    }

    func testJudgement() {
        var configuration = BenchConfiguration(scenario: .pubsub)
        configuration.qos = .atLeastOnce
        var report = BenchReport(configuration: configuration)
        report.sent = 100
        report.judge()
        XCTAssertTrue(report.ok)

        report.lost = 3
        report.judge()
        XCTAssertEqual(report.failures, ["3 message(s) lost at QoS 1"])
        report.lost = 0
        report.duplicates = 2
        report.outOfOrder = 7
        report.judge()
        XCTAssertTrue(report.ok, "duplicates at QoS 1 and reordering are reported only")

        configuration.qos = .exactlyOnce
        var exactlyOnce = BenchReport(configuration: configuration)
        exactlyOnce.sent = 100
        exactlyOnce.duplicates = 2
        exactlyOnce.judge()
        XCTAssertEqual(exactlyOnce.failures, ["2 duplicate(s) at QoS 2"])

        configuration.qos = .atMostOnce
        var atMostOnce = BenchReport(configuration: configuration)
        atMostOnce.sent = 100
        atMostOnce.lost = 50
        atMostOnce.abandoned = 10
        atMostOnce.judge()
        XCTAssertTrue(atMostOnce.ok, "QoS 0 may lose messages, also ones a backlogged broker never read")

        var publisher = BenchReport(configuration: { var pub = BenchConfiguration(scenario: .pub); pub.qos = .atLeastOnce; return pub }())
        publisher.sent = 100
        publisher.abandoned = 64
        publisher.publishFailures = 1
        publisher.judge()
        XCTAssertEqual(publisher.failures, ["1 publish(es) failed", "64 message(s) unacknowledged after the drain time"])

        var connections = BenchReport(configuration: BenchConfiguration(scenario: .conn))
        connections.connections.failed = 1
        connections.connections.dropped = 2
        connections.judge()
        XCTAssertEqual(connections.failures, ["1 connection(s) failed", "2 connection(s) dropped during the run"])

        var sub = BenchReport(configuration: BenchConfiguration(scenario: .sub))
        sub.lost = 10
        sub.judge()
        XCTAssertTrue(sub.ok, "sub does not know the publishers' QoS")
    }

    func testJSONKeys() throws {
        var configuration = BenchConfiguration(scenario: .pubsub)
        configuration.version = .v5
        var report = BenchReport(configuration: configuration)
        report.sent = 10
        report.received = 10
        report.expected = 10
        report.judge()
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: encoder.encode(report)) as? [String: Any])
        XCTAssertEqual(object["scenario"] as? String, "pubsub")
        XCTAssertEqual(object["mqtt_version"] as? String, "5.0")
        XCTAssertEqual(object["sent"] as? Int, 10)
        XCTAssertEqual(object["expected"] as? Int, 10)
        XCTAssertEqual(object["lost"] as? Int, 0)
        XCTAssertEqual(object["out_of_order"] as? Int, 0)
        XCTAssertEqual(object["ok"] as? Bool, true)
        let latency = try XCTUnwrap(object["latency_us"] as? [String: Any])
        XCTAssertEqual(Set(latency.keys), ["count", "min_us", "mean_us", "p50_us", "p90_us", "p99_us", "p999_us", "max_us"])
        let connections = try XCTUnwrap(object["connections"] as? [String: Any])
        XCTAssertNotNil(connections["rate_per_s"])
        XCTAssertNotNil(connections["latency_us"])
    }

    func testTopicPatternsAndProblems() {
        XCTAssertEqual(BenchConfiguration.expand("roost-bench/%i", index: 12), "roost-bench/12")
        XCTAssertEqual(BenchConfiguration.expand("a/%i/b/%i", index: 3), "a/3/b/3")
        XCTAssertEqual(BenchConfiguration.expand("100%/x%", index: 3), "100%/x%")
        XCTAssertEqual(BenchConfiguration.expand("plain", index: 3), "plain")

        var configuration = BenchConfiguration(scenario: .pubsub)
        XCTAssertEqual(configuration.problems(), [])
        configuration.payloadSize = BenchPayloadHeader.size - 1
        configuration.topicPattern = "a/+"
        configuration.filterPattern = "$share/g/a/#"
        XCTAssertEqual(configuration.problems().count, 3, "\(configuration.problems())")
        var sub = BenchConfiguration(scenario: .sub)
        sub.duration = 0
        sub.payloadSize = 1
        XCTAssertEqual(sub.problems(), [], "sub listens until stopped and sends nothing")
    }
}
