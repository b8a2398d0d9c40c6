import MQTTCodec

/// The result of one `roost bench` run: printed as text, or as JSON with `--json`
/// (snake_case keys, see ``BenchReport/jsonKeys``).
///
/// Concurrency: a plain value, `Sendable`.
public struct BenchReport: Sendable, Encodable, Equatable {
    /// Connection counts and CONNACK times.
    public struct Connections: Sendable, Codable, Equatable {
        public var attempted = 0
        public var succeeded = 0
        public var failed = 0
        /// Connections that were up, then lost before the run ended.
        public var dropped = 0
        /// Successful connections per second over the connect phase.
        public var ratePerS: Double = 0
        /// From opening the TCP connection to the CONNACK (subscribers: to the SUBACK).
        public var latencyUs = LatencySummary(count: 0, minUs: 0, meanUs: 0, p50Us: 0, p90Us: 0, p99Us: 0, p999Us: 0, maxUs: 0)

        public init() {}
    }

    public var scenario: BenchConfiguration.Scenario
    public var host: String
    public var port: Int
    public var mqttVersion: String
    public var qos: Int
    public var payloadSize: Int
    public var publishers: Int
    public var subscribers: Int
    public var connections: Connections
    /// Messages per second per publisher asked for (0: unpaced).
    public var ratePerPublisher: Double
    /// Seconds of traffic (`pub`, `pubsub`), of listening (`sub`) or holding (`conn`).
    public var durationS: Double
    /// Messages handed to the connections.
    public var sent: UInt64 = 0
    /// Messages completed: written (QoS 0), PUBACK (1) or PUBCOMP (2) received.
    public var acknowledged: UInt64 = 0
    /// Messages refused with a failure reason code or failed with their connection.
    public var publishFailures: UInt64 = 0
    /// Messages still unwritten (QoS 0) or unacknowledged when the drain time ran out; the bench
    /// closed those connections. A failure at QoS 1 and 2.
    public var abandoned: UInt64 = 0
    public var sendRate: Double = 0
    /// Messages received by all subscribers, duplicates included.
    public var received: UInt64 = 0
    /// `pubsub`: messages the subscribers should have received (each message once per matching
    /// subscriber); nil in the other scenarios.
    public var expected: UInt64?
    /// `pubsub`: expected minus the distinct messages received. `sub`: the gaps in the sequence
    /// numbers (messages lost after the last one received cannot be seen).
    public var lost: UInt64 = 0
    public var duplicates: UInt64 = 0
    public var outOfOrder: UInt64 = 0
    /// Messages without a bench header (not from `roost bench pub`).
    public var malformed: UInt64 = 0
    /// `pubsub`: messages of another run on the same topics (another `roost bench`, or what the
    /// broker still forwards from an earlier run), left out of every other count.
    public var foreign: UInt64 = 0
    public var receiveRate: Double = 0
    /// End-to-end latency, from the publisher's send time to the subscriber's receipt.
    public var latencyUs = LatencySummary(count: 0, minUs: 0, meanUs: 0, p50Us: 0, p90Us: 0, p99Us: 0, p999Us: 0, maxUs: 0)
    /// The first distinct errors seen (connections, subscriptions, publishes).
    public var errors: [String] = []
    /// Why the run counts as failed (exit status 1); empty when it passed.
    public var failures: [String] = []
    public var ok: Bool { failures.isEmpty }

    public init(configuration: BenchConfiguration) {
        scenario = configuration.scenario
        host = configuration.host
        port = configuration.port
        mqttVersion = Self.versionName(configuration.version)
        qos = Int(configuration.qos.rawValue)
        payloadSize = configuration.payloadSize
        publishers = configuration.scenario == .pub || configuration.scenario == .pubsub ? configuration.publishers : 0
        subscribers = configuration.scenario == .sub || configuration.scenario == .pubsub ? configuration.subscribers : 0
        connections = Connections()
        ratePerPublisher = configuration.ratePerPublisher
        durationS = 0
    }

    private enum CodingKeys: String, CodingKey {
        case scenario, host, port, mqttVersion, qos, payloadSize, publishers, subscribers, connections,
            ratePerPublisher, durationS, sent, acknowledged, publishFailures, abandoned, sendRate, received, expected,
            lost, duplicates, outOfOrder, malformed, foreign, receiveRate, latencyUs, errors, failures, ok
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(scenario, forKey: .scenario)
        try container.encode(host, forKey: .host)
        try container.encode(port, forKey: .port)
        try container.encode(mqttVersion, forKey: .mqttVersion)
        try container.encode(qos, forKey: .qos)
        try container.encode(payloadSize, forKey: .payloadSize)
        try container.encode(publishers, forKey: .publishers)
        try container.encode(subscribers, forKey: .subscribers)
        try container.encode(connections, forKey: .connections)
        try container.encode(ratePerPublisher, forKey: .ratePerPublisher)
        try container.encode(durationS, forKey: .durationS)
        try container.encode(sent, forKey: .sent)
        try container.encode(acknowledged, forKey: .acknowledged)
        try container.encode(publishFailures, forKey: .publishFailures)
        try container.encode(abandoned, forKey: .abandoned)
        try container.encode(sendRate, forKey: .sendRate)
        try container.encode(received, forKey: .received)
        try container.encode(expected, forKey: .expected)
        try container.encode(lost, forKey: .lost)
        try container.encode(duplicates, forKey: .duplicates)
        try container.encode(outOfOrder, forKey: .outOfOrder)
        try container.encode(malformed, forKey: .malformed)
        try container.encode(foreign, forKey: .foreign)
        try container.encode(receiveRate, forKey: .receiveRate)
        try container.encode(latencyUs, forKey: .latencyUs)
        try container.encode(errors, forKey: .errors)
        try container.encode(failures, forKey: .failures)
        try container.encode(ok, forKey: .ok)
    }

    static func versionName(_ version: ProtocolVersion) -> String {
        switch version {
        case .v3_1: return "3.1"
        case .v3_1_1: return "3.1.1"
        case .v5: return "5.0"
        }
    }

    /// Decides ``failures`` from the counts: connections that failed or dropped, publishes
    /// refused, QoS 1 / 2 messages still unacknowledged after the drain time, and, in `pubsub`, loss at QoS 1 and 2 and duplicates at QoS 2. Loss at QoS 0,
    /// duplicates at QoS 1 and reordering are reported, not failures; so is the loss `sub` sees
    /// (it does not know what the publishers' QoS was).
    public mutating func judge() {
        var reasons: [String] = []
        if connections.failed > 0 { reasons.append("\(connections.failed) connection(s) failed") }
        if connections.dropped > 0 { reasons.append("\(connections.dropped) connection(s) dropped during the run") }
        if publishFailures > 0 { reasons.append("\(publishFailures) publish(es) failed") }
        if qos >= 1 && abandoned > 0 { reasons.append("\(abandoned) message(s) unacknowledged after the drain time") }
        if scenario == .pubsub {
            if qos >= 1 && lost > 0 { reasons.append("\(lost) message(s) lost at QoS \(qos)") }
            if qos == 2 && duplicates > 0 { reasons.append("\(duplicates) duplicate(s) at QoS 2") }
            if sent == 0 { reasons.append("nothing was sent") }
        }
        failures = reasons
    }
}

extension BenchReport {
    /// The human summary printed on stdout.
    public var text: String {
        var lines: [String] = []
        var title = "roost bench \(scenario.rawValue): \(host):\(port), MQTT \(mqttVersion)"
        switch scenario {
        case .pub: title += ", \(publishers) publisher(s), QoS \(qos), \(payloadSize)-byte payloads"
        case .sub: title += ", \(subscribers) subscriber(s), QoS \(qos)"
        case .pubsub: title += ", \(publishers) publisher(s), \(subscribers) subscriber(s), QoS \(qos), \(payloadSize)-byte payloads"
        case .conn: title += ", \(connections.attempted) connection(s)"
        }
        if (scenario == .pub || scenario == .pubsub) {
            title += ratePerPublisher > 0 ? ", \(Self.count(ratePerPublisher)) msg/s per publisher" : ", unpaced"
        }
        lines.append(title)
        lines.append(
            "connections  \(connections.succeeded) ok, \(connections.failed) failed, \(connections.dropped) dropped; "
                + "\(Self.count(connections.ratePerS)) conn/s")
        lines.append("connect      \(connections.latencyUs.text)")
        let seconds = LatencySummary.fixed(durationS, digits: 2)
        if scenario == .pub || scenario == .pubsub {
            lines.append(
                "sent         \(sent) in \(seconds) s (\(Self.count(sendRate)) msg/s), \(acknowledged) acknowledged, "
                    + "\(publishFailures) failed" + (abandoned > 0 ? ", \(abandoned) abandoned after the drain time" : ""))
        }
        if scenario == .sub || scenario == .pubsub {
            var line = "received     \(received) (\(Self.count(receiveRate)) msg/s)"
            if let expected { line += ", expected \(expected)" }
            if malformed > 0 { line += ", \(malformed) without a bench header" }
            if foreign > 0 { line += ", \(foreign) of another run left out" }
            lines.append(line)
            lines.append("lost \(lost), duplicates \(duplicates), out of order \(outOfOrder)")
            lines.append("latency      \(latencyUs.text)")
        }
        if scenario == .conn { lines.append("held         \(seconds) s") }
        for error in errors { lines.append("error        \(error)") }
        lines.append(failures.isEmpty ? "result       ok" : "result       FAILED: " + failures.joined(separator: "; "))
        return lines.joined(separator: "\n") + "\n"
    }

    /// `950`, `45.2k`, `1.25M`.
    public static func count(_ value: Double) -> String {
        if value < 1000 { return "\(Int(value.rounded()))" }
        if value < 1_000_000 { return LatencySummary.fixed(value / 1000, digits: 1) + "k" }
        return LatencySummary.fixed(value / 1_000_000, digits: 2) + "M"
    }
}

/// One line of progress, once a second on stderr while a run goes on.
///
/// Concurrency: a plain value, `Sendable`.
public struct BenchProgress: Sendable, Equatable {
    /// Decides which parts the line shows (no receive counts for `pub`, ...).
    public var scenario: BenchConfiguration.Scenario
    public var elapsed: Double
    public var connected: Int
    public var connectFailures: Int
    public var sentPerSecond: Double
    public var receivedPerSecond: Double
    /// Cumulative end-to-end latency so far; nil before the first sample.
    public var p50Us: Double?
    public var p99Us: Double?
    public var lost: UInt64
    public var duplicates: UInt64
    public var outOfOrder: UInt64

    public init(
        scenario: BenchConfiguration.Scenario, elapsed: Double, connected: Int, connectFailures: Int, sentPerSecond: Double, receivedPerSecond: Double,
        p50Us: Double?, p99Us: Double?, lost: UInt64, duplicates: UInt64, outOfOrder: UInt64
    ) {
        self.scenario = scenario
        self.elapsed = elapsed
        self.connected = connected
        self.connectFailures = connectFailures
        self.sentPerSecond = sentPerSecond
        self.receivedPerSecond = receivedPerSecond
        self.p50Us = p50Us
        self.p99Us = p99Us
        self.lost = lost
        self.duplicates = duplicates
        self.outOfOrder = outOfOrder
    }

    /// `[  3s] conn 20 (0 failed)  sent 45.2k/s  recv 45.1k/s  p50 410 us  p99 2.31 ms  lost 0  dup 0  ooo 0`
    public var line: String {
        var seconds = String(Int(elapsed.rounded()))
        while seconds.count < 3 { seconds = " " + seconds }
        var text = "[\(seconds)s] conn \(connected)"
        if connectFailures > 0 { text += " (\(connectFailures) failed)" }
        if scenario == .pub || scenario == .pubsub {
            text += "  sent \(BenchReport.count(sentPerSecond))/s"
        }
        if scenario == .sub || scenario == .pubsub {
            text += "  recv \(BenchReport.count(receivedPerSecond))/s"
            if let p50Us, let p99Us {
                text += "  p50 \(LatencySummary.format(p50Us))  p99 \(LatencySummary.format(p99Us))"
            } else {
                text += "  p50 -  p99 -"
            }
            text += "  lost \(lost)  dup \(duplicates)  ooo \(outOfOrder)"
        }
        return text
    }
}
