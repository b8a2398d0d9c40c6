import ArgumentParser
import Foundation
import MQTTCodec
import RoostBench
import RoostClient
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `roost bench`: a load generator for sizing a deployment, in the manner of emqtt-bench.
///
/// Exit status: 0 when the run passed; 1 when a connection failed or dropped, a publish was
/// refused, or (in `pubsub`) messages were lost at QoS 1 / 2 or duplicated at QoS 2 (see
/// `BenchReport.judge()`); 64 for bad arguments.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Load generator: publishers, subscribers and connections against any MQTT broker.",
        subcommands: [BenchPubCommand.self, BenchSubCommand.self, BenchPubSubCommand.self, BenchConnCommand.self],
        helpNames: [.long]
    )
}

/// Options shared by every `roost bench` scenario.
struct BenchCommonOptions: ParsableArguments {
    @Option(name: [.customShort("h"), .long], help: "The broker host.")
    var host = "127.0.0.1"

    @Option(name: [.customShort("p"), .long], help: "The broker port.")
    var port = 1883

    @Option(
        name: [.customShort("V"), .customLong("protocol-version")],
        help: "MQTT protocol version: mqttv5, mqttv311 or mqttv31 (also 5, 311, 31).")
    var protocolVersionName = "mqttv311"

    @Option(name: [.customShort("u"), .long], help: "User name.")
    var username: String?

    @Option(name: [.customShort("P"), .customLong("pw")], help: "Password.")
    var password: String?

    @Option(name: [.customShort("k"), .long], help: "Keep alive in seconds (0 disables).")
    var keepalive: UInt16 = 60

    @Option(name: .customLong("connect-rate"), help: "New connections per second (0: as fast as possible, 128 at a time).")
    var connectRate: Double = 0

    @Option(name: .customLong("client-id-prefix"), help: "Client identifiers are PREFIX-<run id>-<role><index>.")
    var clientIDPrefix = "roost-bench"

    @Option(name: .long, help: "Event loop threads (default: the number of cores).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @OptionGroup var tlsOptions: ClientTLSOptions

    @Flag(name: .long, help: "Print the summary as JSON on stdout.")
    var json = false

    @Flag(name: .long, help: "No progress line on stderr.")
    var quiet = false

    func apply(to configuration: inout BenchConfiguration) throws {
        configuration.host = host
        configuration.port = port
        configuration.version = try ClientArguments.protocolVersion(protocolVersionName)
        configuration.username = username
        configuration.password = password
        configuration.keepAlive = keepalive
        configuration.connectRate = connectRate
        configuration.clientIDPrefix = clientIDPrefix
        configuration.threads = threads
        configuration.tls = tlsOptions.configuration
    }

    /// Checks the configuration, runs it with a progress line and SIGINT / SIGTERM handling,
    /// prints the summary and exits 1 when the run failed.
    func run(_ configuration: BenchConfiguration) async throws {
        if let problem = configuration.problems().first { throw ValidationError(problem.prefix(1).uppercased() + problem.dropFirst() + ".") }
        Self.raiseFileLimit()
        let console = Console(quiet: false)
        let runner = BenchRunner(configuration: configuration)
        let signals = TerminationSignals.stream()
        let stopper = Task {
            for await _ in signals {
                runner.stop()
                return
            }
        }
        var progress: (@Sendable (BenchProgress) -> Void)?
        if !quiet {
            progress = { (sample: BenchProgress) in console.error(sample.line) }
        }
        let report = await runner.run(progress: progress)
        stopper.cancel()
        if json {
            let encoder = JSONEncoder()
            encoder.keyEncodingStrategy = .convertToSnakeCase
            encoder.outputFormatting = [.sortedKeys]
            let data = try encoder.encode(report)
            console.output(Array(data) + [UInt8(ascii: "\n")])
        } else {
            console.output(Array(report.text.utf8))
        }
        if !report.ok { throw ExitCode.failure }
    }

    /// Many connections need many descriptors: the soft limit goes up to the hard one.
    static func raiseFileLimit() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }
}

/// Options of the scenarios that publish.
struct BenchPublishOptions: ParsableArguments {
    @Option(name: [.customShort("t"), .long], help: "Topic of each publisher; %i is its index.")
    var topic = "roost-bench/%i"

    @Option(name: [.customShort("q"), .long], help: "Quality of service: 0, 1 or 2.")
    var qos = 0

    @Option(name: [.customShort("s"), .long], help: "Payload size in bytes (at least \(BenchPayloadHeader.size), the bench header).")
    var size = 64

    @Option(name: [.customShort("r"), .long], help: "Messages per second per publisher (0: as fast as the in-flight window allows).")
    var rate: Double = 0

    @Option(name: .long, help: "Most QoS 1 / 2 messages in flight per publisher (also the batch size of unpaced QoS 0).")
    var inflight = 64

    func apply(to configuration: inout BenchConfiguration) throws {
        configuration.topicPattern = topic
        configuration.qos = try ClientArguments.qos(qos)
        configuration.payloadSize = size
        configuration.ratePerPublisher = rate
        configuration.inflight = inflight
    }
}

struct BenchPubCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pub", abstract: "Publishers only: -c clients publish to -t for -d seconds.", helpNames: [.long])

    @OptionGroup var common: BenchCommonOptions
    @OptionGroup var publishing: BenchPublishOptions

    @Option(name: [.customShort("c"), .long], help: "Number of publishers.")
    var clients = 1

    @Option(name: [.customShort("d"), .long], help: "Seconds of publishing.")
    var duration: Double = 10

    @Option(name: .long, help: "Seconds to wait for the last acknowledgements.")
    var drain: Double = 2

    func run() async throws {
        var configuration = BenchConfiguration(scenario: .pub)
        try common.apply(to: &configuration)
        try publishing.apply(to: &configuration)
        configuration.publishers = clients
        configuration.duration = duration
        configuration.drain = drain
        try await common.run(configuration)
    }
}

struct BenchSubCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sub",
        abstract: "Subscribers only: count, time and check the messages of `roost bench pub` (another process).",
        helpNames: [.long])

    @OptionGroup var common: BenchCommonOptions

    @Option(name: [.customShort("t"), .long], help: "Topic filter of each subscriber; %i is its index.")
    var topic = "roost-bench/#"

    @Option(name: [.customShort("q"), .long], help: "Quality of service of the subscriptions: 0, 1 or 2.")
    var qos = 0

    @Option(name: [.customShort("c"), .long], help: "Number of subscribers.")
    var clients = 1

    @Option(name: [.customShort("d"), .long], help: "Seconds of listening (0: until SIGINT / SIGTERM).")
    var duration: Double = 0

    func run() async throws {
        var configuration = BenchConfiguration(scenario: .sub)
        try common.apply(to: &configuration)
        configuration.filterPattern = topic
        configuration.qos = try ClientArguments.qos(qos)
        configuration.subscribers = clients
        configuration.duration = duration
        try await common.run(configuration)
    }
}

struct BenchPubSubCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pubsub",
        abstract: "Publishers and subscribers in one process: throughput, latency and exact loss.",
        helpNames: [.long])

    @OptionGroup var common: BenchCommonOptions
    @OptionGroup var publishing: BenchPublishOptions

    @Option(name: [.customShort("c"), .long], help: "Number of publishers.")
    var clients = 1

    @Option(name: [.customShort("n"), .long], help: "Number of subscribers.")
    var subscribers = 1

    @Option(name: [.customShort("f"), .long], help: "Topic filter of each subscriber; %i is its index (roost-bench/%i with -n = -c: pairs).")
    var filter = "roost-bench/#"

    @Option(name: [.customShort("d"), .long], help: "Seconds of publishing.")
    var duration: Double = 10

    @Option(name: .long, help: "Seconds to wait after publishing for the messages still in flight.")
    var drain: Double = 2

    func run() async throws {
        var configuration = BenchConfiguration(scenario: .pubsub)
        try common.apply(to: &configuration)
        try publishing.apply(to: &configuration)
        configuration.publishers = clients
        configuration.subscribers = subscribers
        configuration.filterPattern = filter
        configuration.duration = duration
        configuration.drain = drain
        try await common.run(configuration)
    }
}

struct BenchConnCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conn", abstract: "Connections only: open -c connections, hold them -d seconds.", helpNames: [.long])

    @OptionGroup var common: BenchCommonOptions

    @Option(name: [.customShort("c"), .long], help: "Number of connections.")
    var clients = 100

    @Option(name: [.customShort("d"), .long], help: "Seconds to hold the connections once all are open.")
    var duration: Double = 10

    func run() async throws {
        var configuration = BenchConfiguration(scenario: .conn)
        try common.apply(to: &configuration)
        configuration.connections = clients
        configuration.duration = duration
        try await common.run(configuration)
    }
}
