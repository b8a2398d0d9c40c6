import MQTTCodec
import RoostClient

/// What one `roost bench` run does: the scenario, the clients, the traffic.
///
/// Concurrency: a plain value, `Sendable`.
public struct BenchConfiguration: Sendable {
    public enum Scenario: String, Sendable, Codable {
        /// Publishers only.
        case pub
        /// Subscribers only (the publishers are another process).
        case sub
        /// Publishers and subscribers in one process: exact loss.
        case pubsub
        /// Connections only: connect rate and CONNACK times.
        case conn
    }

    public var scenario: Scenario
    public var host = "127.0.0.1"
    public var port = 1883
    public var version: ProtocolVersion = .v3_1_1
    public var username: String?
    public var password: String?
    public var tls: MQTTClientTLS?
    /// Client identifiers are `<prefix>-<run id>-<role><index>`.
    public var clientIDPrefix = "roost-bench"
    public var keepAlive: UInt16 = 60

    /// Publishing clients (`pub`, `pubsub`).
    public var publishers = 1
    /// Subscribing clients (`sub`, `pubsub`).
    public var subscribers = 1
    /// Connections of `conn`.
    public var connections = 1

    /// The topic of publisher `i`: `%i` is replaced with `i`.
    public var topicPattern = "roost-bench/%i"
    /// The filter of subscriber `i`: `%i` is replaced with `i`.
    public var filterPattern = "roost-bench/#"
    public var qos: QoS = .atMostOnce
    /// Bytes per payload, at least ``BenchPayloadHeader/size``.
    public var payloadSize = 64
    /// Messages per second per publisher; 0: as fast as the in-flight window allows.
    public var ratePerPublisher: Double = 0
    /// Most QoS 1 / 2 messages in flight per publisher (and the batch size of unpaced QoS 0).
    public var inflight = 64
    /// Seconds of traffic (`pub`, `pubsub`), of listening (`sub`; 0: until stopped), or of
    /// holding the connections (`conn`).
    public var duration: Double = 10
    /// New connections per second; 0: unpaced (at most ``maximumConcurrentConnects`` at once).
    public var connectRate: Double = 0
    public var maximumConcurrentConnects = 128
    /// Seconds `pubsub` waits after the publishers stop for the messages still in flight.
    public var drain: Double = 2
    /// Event loop threads.
    public var threads = 1

    public init(scenario: Scenario) {
        self.scenario = scenario
    }

    /// `pattern` with `%i` replaced by `index` (built once per client, never per message).
    public static func expand(_ pattern: String, index: Int) -> String {
        var result = ""
        var rest = Substring(pattern)
        while let percent = rest.firstIndex(of: "%") {
            result += rest[..<percent]
            let after = rest.index(after: percent)
            if after < rest.endIndex && rest[after] == "i" {
                result += String(index)
                rest = rest[rest.index(after: after)...]
            } else {
                result += "%"
                rest = rest[after...]
            }
        }
        return result + rest
    }

    public func topic(ofPublisher index: Int) -> String { Self.expand(topicPattern, index: index) }
    public func filter(ofSubscriber index: Int) -> String { Self.expand(filterPattern, index: index) }

    /// Reasons the configuration cannot run, for the command line to report.
    public func problems() -> [String] {
        var problems: [String] = []
        if host.isEmpty { problems.append("the host is empty") }
        if !(1...65535).contains(port) { problems.append("the port must be 1-65535") }
        if duration < 0 { problems.append("the duration must not be negative") }
        if (scenario == .pub || scenario == .pubsub) && duration == 0 {
            problems.append("the duration must be positive")
        }
        if connectRate < 0 { problems.append("the connect rate must not be negative") }
        if drain < 0 { problems.append("the drain time must not be negative") }
        if threads < 1 { problems.append("at least one thread is needed") }
        switch scenario {
        case .pub, .pubsub:
            if publishers < 1 { problems.append("at least one publisher is needed") }
            if payloadSize < BenchPayloadHeader.size || payloadSize > 268_435_000 {
                problems.append("the payload size must be at least \(BenchPayloadHeader.size) bytes (the bench header)")
            }
            if ratePerPublisher < 0 { problems.append("the rate must not be negative") }
            if inflight < 1 || inflight > 65535 { problems.append("the in-flight window must be 1-65535") }
            if !Topic.isValidName(topic(ofPublisher: 0)) { problems.append("invalid topic pattern '\(topicPattern)'") }
        case .sub, .conn:
            break
        }
        if scenario == .sub || scenario == .pubsub {
            if subscribers < 1 { problems.append("at least one subscriber is needed") }
            if !Topic.isValidFilter(filter(ofSubscriber: 0)) { problems.append("invalid topic filter '\(filterPattern)'") }
        }
        if scenario == .pubsub && filterPattern.hasPrefix("$share/") {
            problems.append("pubsub counts every message for every subscriber: shared subscriptions are not supported")
        }
        if scenario == .conn && connections < 1 { problems.append("at least one connection is needed") }
        return problems
    }
}
