import ArgumentParser
import Dispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import MQTTCodec
import NIOCore
import RoostClient

/// `roost sub`: subscribe and print the messages received, in the manner of `mosquitto_sub`.
///
/// Each message is written to stdout as soon as it arrives (payload bytes as they are, then a
/// newline unless `-N`), so a reader can consume the output line by line.
///
/// Exit status: 0 after `-C` messages, `--retained-only` reaching a live message, or `-E`;
/// 27 when `-W` expires first (as mosquitto_sub); the CONNACK code when the server refused the
/// connection; 1 when the subscription is denied or the connection is lost.
struct SubCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sub",
        abstract: "Subscribe and print messages (like mosquitto_sub).",
        helpNames: [.long]
    )

    /// mosquitto_sub's exit status when `-W` expires.
    static let timeoutExitCode: Int32 = 27

    @OptionGroup var connection: ClientOptions

    @Option(name: [.customShort("t"), .long], help: "A topic filter to subscribe to; repeatable.")
    var topic: [String] = []

    @Option(name: [.customShort("T"), .customLong("filter-out")], help: "Do not print messages whose topic matches this filter; repeatable.")
    var filterOut: [String] = []

    @Option(name: [.customShort("C"), .customLong("count")], help: "Exit after this many messages have been printed.")
    var count: Int?

    @Option(name: [.customShort("W"), .customLong("timeout")], help: "Exit with status 27 after this many seconds (may be fractional).")
    var timeout: Double?

    @Flag(name: [.customShort("v"), .long], help: "Print the topic before the payload: 'topic payload'.")
    var verbose = false

    @Flag(name: .customShort("N"), help: "Do not print a newline after each payload.")
    var noNewline = false

    @Flag(name: .customShort("R"), help: "Do not print stale (retained) messages.")
    var skipRetained = false

    @Flag(name: .customLong("retained-only"), help: "Print only retained messages; exit at the first live one.")
    var retainedOnly = false

    @Flag(name: .customShort("E"), help: "Exit once the subscription is acknowledged (to set up a persistent session).")
    var exitAfterSubscribe = false

    @Flag(name: .customLong("nl"), help: "MQTT 5 No Local: do not receive own messages.")
    var noLocal = false

    @Flag(name: .customLong("rap"), help: "MQTT 5 Retain As Published.")
    var retainAsPublished = false

    @Option(name: .customLong("retain-handling"), help: "MQTT 5 Retain Handling: 0 always, 1 if new, 2 never.")
    var retainHandling: UInt8 = 0

    func validate() throws {
        if topic.isEmpty { throw ValidationError("At least one topic filter (-t) is needed.") }
        for filter in topic + filterOut where !Topic.isValidFilter(filter) {
            throw ValidationError("Invalid topic filter '\(filter)'.")
        }
        if let count, count < 1 { throw ValidationError("-C must be at least 1.") }
        if let timeout, timeout <= 0 { throw ValidationError("-W must be positive.") }
        if RetainHandling(rawValue: retainHandling) == nil { throw ValidationError("--retain-handling must be 0, 1 or 2.") }
        let isV5 = try connection.protocolVersion() == .v5
        if !isV5 && (noLocal || retainAsPublished || retainHandling != 0) {
            throw ValidationError("--nl, --rap and --retain-handling need MQTT v5 (-V mqttv5).")
        }
    }

    private enum Outcome: Sendable {
        case countReached
        case liveMessageWithRetainedOnly
        case connectionLost(Disconnect?)
        case timedOut
        case interrupted
    }

    func run() async throws {
        let console = Console(quiet: connection.quiet)
        let qos = try connection.qualityOfService()
        let client = MQTTClient(configuration: try connection.clientConfiguration(defaultIDPrefix: "roost-sub", console: console))
        // Taken before connecting: the stream then holds everything this connection delivers.
        let messages = client.messages
        try await connection.connect(client, console: console)

        let subscriptions = topic.map {
            Subscription(
                filter: $0, qos: qos, noLocal: noLocal, retainAsPublished: retainAsPublished,
                retainHandling: RetainHandling(rawValue: retainHandling) ?? .sendAlways)
        }
        do {
            let subAck = try await client.subscribe(subscriptions)
            var denied = 0
            for (filter, code) in zip(topic, subAck.reasonCodes) where code.rawValue >= 0x80 {
                console.error("Warning: Subscription to '\(filter)' denied: \(code.reasonDescription).")
                denied += 1
            }
            if denied == subscriptions.count {
                console.error("All subscription requests were denied.")
                try? await client.disconnect()
                throw ExitCode.failure
            }
        } catch let exit as ExitCode {
            throw exit
        } catch {
            console.error("Error: subscribe failed: \(MQTTClient.describe(error)).")
            await client.close()
            throw ExitCode.failure
        }
        if exitAfterSubscribe {
            try? await client.disconnect()
            return
        }

        let signals = TerminationSignals.stream()
        let outcome = await withTaskGroup(of: Outcome.self) { group in
            group.addTask { await self.printMessages(messages, client: client, console: console) }
            group.addTask {
                for await _ in signals { return .interrupted }
                return .timedOut
            }
            if let timeout {
                group.addTask {
                    try? await Task.sleep(for: .seconds(timeout))
                    return .timedOut
                }
            }
            let first = await group.next() ?? .connectionLost(nil)
            group.cancelAll()
            return first
        }

        switch outcome {
        case .countReached, .liveMessageWithRetainedOnly, .interrupted:
            // SIGINT/SIGTERM end the session cleanly, as in mosquitto_sub: DISCONNECT, no will.
            try? await client.disconnect()
        case .timedOut:
            try? await client.disconnect()
            console.error("Timed out")
            throw ExitCode(Self.timeoutExitCode)
        case .connectionLost(let disconnect):
            if let disconnect {
                var text = "Disconnected by the server: \(disconnect.reasonCode.reasonDescription)"
                if let reason = disconnect.properties.reasonString { text += " (\(reason))" }
                console.error(text + ".")
            } else {
                console.error("Connection lost.")
            }
            throw ExitCode.failure
        }
    }

    /// Prints messages until the count is reached, a live message ends `--retained-only`, or the
    /// connection closes.
    private func printMessages(_ messages: AsyncStream<Publish>, client: MQTTClient, console: Console) async -> Outcome {
        var printed = 0
        for await message in messages {
            if retainedOnly && !message.retain { return .liveMessageWithRetainedOnly }
            if skipRetained && message.retain { continue }
            if filterOut.contains(where: { Topic.matches(filter: $0, name: message.topic) }) { continue }
            console.output(format(message))
            printed += 1
            if let count, printed >= count { return .countReached }
        }
        if Task.isCancelled { return .timedOut }
        return .connectionLost(await client.waitForClose())
    }

    private func format(_ message: Publish) -> [UInt8] {
        var line: [UInt8] = []
        line.reserveCapacity(message.topic.utf8.count + message.payload.readableBytes + 2)
        if verbose {
            line.append(contentsOf: message.topic.utf8)
            line.append(UInt8(ascii: " "))
            if message.payload.readableBytes == 0 {
                line.append(contentsOf: "(null)".utf8)
            }
        }
        line.append(contentsOf: message.payload.readableBytesView)
        if !noNewline { line.append(UInt8(ascii: "\n")) }
        return line
    }
}

/// SIGINT and SIGTERM as an async sequence, so that `roost sub` can disconnect cleanly.
enum TerminationSignals {
    static func stream() -> AsyncStream<Int32> {
        AsyncStream { continuation in
            let sources = [SIGINT, SIGTERM].map { number in
                signal(number, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
                source.setEventHandler { continuation.yield(number) }
                source.resume()
                return source
            }
            continuation.onTermination = { _ in
                for source in sources { source.cancel() }
            }
        }
    }
}
