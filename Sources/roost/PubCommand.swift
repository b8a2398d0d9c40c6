import ArgumentParser
import Foundation
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

/// `roost pub`: publish one message, a repeated message, or every line of stdin, in the manner
/// of `mosquitto_pub`.
///
/// Exit status: 0 when every message was sent (and acknowledged without a failure reason code
/// for QoS 1 and 2); the CONNACK code when the server refused the connection; 1 for any other
/// error. Messages go to stderr.
struct PubCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pub",
        abstract: "Publish messages (like mosquitto_pub).",
        helpNames: [.long]
    )

    @OptionGroup var connection: ClientOptions

    @Option(name: [.customShort("t"), .long], help: "The topic to publish to.")
    var topic: String

    @Option(name: [.customShort("m"), .long], parsing: .unconditional, help: "The message payload.")
    var message: String?

    @Option(name: [.customShort("f"), .long], help: "Send the contents of a file as the message.")
    var file: String?

    @Flag(name: [.customShort("l"), .customLong("stdin-line")], help: "Send each line read from stdin as a message (blank lines are skipped).")
    var stdinLine = false

    @Flag(name: [.customShort("s"), .customLong("stdin-file")], help: "Send the whole of stdin as one message.")
    var stdinFile = false

    @Flag(name: [.customShort("n"), .customLong("null-message")], help: "Send a zero-length message.")
    var nullMessage = false

    @Flag(name: [.customShort("r"), .long], help: "Set the retain flag on the message.")
    var retain = false

    @Option(name: .customLong("repeat"), help: "Publish the message this many times (with -m, -f, -s or -n).")
    var repeatCount: Int = 1

    @Option(name: .customLong("repeat-delay"), help: "Seconds to wait between repeated messages (may be fractional).")
    var repeatDelay: Double = 0

    @Option(
        name: .customLong("user-property"), parsing: .upToNextOption,
        help: ArgumentHelp("MQTT 5 user property, as NAME VALUE or NAME=VALUE; repeatable.", valueName: "name value"))
    var userProperties: [String] = []

    @Option(name: .customLong("message-expiry"), help: "MQTT 5 Message Expiry Interval, in seconds.")
    var messageExpiry: UInt32?

    private enum Source {
        case payload(ByteBuffer)
        case stdinLines
    }

    func validate() throws {
        let sources = [message != nil, file != nil, stdinLine, stdinFile, nullMessage].filter { $0 }.count
        if sources == 0 { throw ValidationError("Both a topic and a message must be given (-m, -f, -l, -s or -n).") }
        if sources > 1 { throw ValidationError("Only one type of message can be sent at once (-m, -f, -l, -s, -n).") }
        if !Topic.isValidName(topic) { throw ValidationError("Invalid publish topic '\(topic)': wildcards are not allowed.") }
        if repeatCount < 1 { throw ValidationError("--repeat must be at least 1.") }
        if repeatDelay < 0 { throw ValidationError("--repeat-delay must not be negative.") }
        let isV5 = try connection.protocolVersion() == .v5
        if !userProperties.isEmpty {
            if !isV5 { throw ValidationError("--user-property needs MQTT v5 (-V mqttv5).") }
            _ = try parsedUserProperties()
        }
        if messageExpiry != nil && !isV5 { throw ValidationError("--message-expiry needs MQTT v5 (-V mqttv5).") }
    }

    func run() async throws {
        let console = Console(quiet: connection.quiet)
        let source = try loadSource()
        var properties = Properties()
        properties.userProperties = try parsedUserProperties()
        properties.messageExpiryInterval = messageExpiry
        let qos = try connection.qualityOfService()

        let client = MQTTClient(configuration: try connection.clientConfiguration(defaultIDPrefix: "roost-pub", console: console))
        try await connection.connect(client, console: console)

        var failed = false
        func send(_ payload: ByteBuffer) async throws {
            let publish = Publish(topic: topic, payload: payload, qos: qos, retain: retain, properties: properties)
            if let ack = try await client.publish(publish), ack.reasonCode.isFailure {
                console.error("Warning: Publish failed: \(ack.reasonCode.reasonDescription)"
                    + (ack.properties.reasonString.map { " (\($0))" } ?? "") + ".")
                failed = true
            }
        }
        do {
            switch source {
            case .payload(let payload):
                for index in 0..<repeatCount {
                    if index > 0 && repeatDelay > 0 { try await Task.sleep(for: .seconds(repeatDelay)) }
                    try await send(payload)
                }
            case .stdinLines:
                for await line in StandardInput.lines() where !line.isEmpty {
                    try await send(ByteBuffer(bytes: line))
                }
            }
            try await client.disconnect()
        } catch {
            console.error("Error: \(MQTTClient.describe(error)).")
            await client.close()
            throw ExitCode.failure
        }
        if failed { throw ExitCode.failure }
    }

    private func loadSource() throws -> Source {
        if let message { return .payload(ByteBuffer(string: message)) }
        if nullMessage { return .payload(ByteBuffer()) }
        if stdinLine { return .stdinLines }
        if stdinFile { return .payload(ByteBuffer(bytes: StandardInput.readAll())) }
        if let file {
            guard let data = FileManager.default.contents(atPath: file) else {
                Console(quiet: connection.quiet).error("Error: Unable to read file \"\(file)\".")
                throw ExitCode.failure
            }
            return .payload(ByteBuffer(bytes: data))
        }
        return .payload(ByteBuffer())
    }

    /// Accepts `NAME VALUE` pairs and `NAME=VALUE` items, in any mix.
    private func parsedUserProperties() throws -> [UserProperty] {
        var result: [UserProperty] = []
        var index = 0
        while index < userProperties.count {
            let item = userProperties[index]
            if let equals = item.firstIndex(of: "=") {
                result.append(UserProperty(name: String(item[..<equals]), value: String(item[item.index(after: equals)...])))
                index += 1
            } else if index + 1 < userProperties.count {
                result.append(UserProperty(name: item, value: userProperties[index + 1]))
                index += 2
            } else {
                throw ValidationError("--user-property '\(item)' has no value (use NAME VALUE or NAME=VALUE).")
            }
        }
        return result
    }
}

// MARK: - Shared by `roost pub` and `roost sub`

/// The connection options common to `roost pub` and `roost sub`, named as in mosquitto_pub and
/// mosquitto_sub. (Lives here because this file's owner owns the client tools; it can move to
/// its own file.)
struct ClientOptions: ParsableArguments {
    @Option(name: [.customShort("h"), .long], help: "The broker host.")
    var host = "127.0.0.1"

    @Option(name: [.customShort("p"), .long], help: "The broker port.")
    var port = 1883

    @Option(name: [.customShort("i"), .customLong("id")], help: "The client identifier (default: generated).")
    var id: String?

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

    @Flag(name: [.customShort("c"), .customLong("disable-clean-session")], help: "Keep the session: clean session/clean start off (needs -i).")
    var disableCleanSession = false

    @Option(
        name: [.customShort("x"), .customLong("session-expiry")],
        help: "MQTT 5 Session Expiry Interval in seconds; -1 for never.")
    var sessionExpiry: Int64?

    @Option(name: .customLong("will-topic"), help: "The topic of the will message.")
    var willTopic: String?

    @Option(name: .customLong("will-payload"), parsing: .unconditional, help: "The payload of the will message.")
    var willPayload: String?

    @Option(name: .customLong("will-qos"), help: "The QoS of the will message.")
    var willQoS: Int?

    @Flag(name: .customLong("will-retain"), help: "Make the will message retained.")
    var willRetain = false

    @Option(name: [.customShort("q"), .long], help: "Quality of service: 0, 1 or 2.")
    var qos = 0

    @OptionGroup var tlsOptions: ClientTLSOptions

    @Flag(name: [.customShort("d"), .long], help: "Print the packets sent and received to stderr.")
    var debug = false

    @Flag(name: .long, help: "Do not print errors and warnings.")
    var quiet = false

    func protocolVersion() throws -> ProtocolVersion { try ClientArguments.protocolVersion(protocolVersionName) }

    func qualityOfService() throws -> QoS { try ClientArguments.qos(qos) }

    func validate() throws {
        let version = try protocolVersion()
        _ = try qualityOfService()
        if disableCleanSession && id == nil {
            throw ValidationError("A client id (-i) is needed with -c / --disable-clean-session.")
        }
        if sessionExpiry != nil && version != .v5 {
            throw ValidationError("--session-expiry needs MQTT v5 (-V mqttv5).")
        }
        if let sessionExpiry, sessionExpiry < -1 || sessionExpiry > Int64(UInt32.max) {
            throw ValidationError("--session-expiry must be between -1 and \(UInt32.max).")
        }
        if willTopic == nil && (willPayload != nil || willQoS != nil || willRetain) {
            throw ValidationError("A will topic (--will-topic) is needed with the other will options.")
        }
        if let willTopic, !Topic.isValidName(willTopic) { throw ValidationError("Invalid will topic '\(willTopic)'.") }
        if let willQoS, !(0...2).contains(willQoS) { throw ValidationError("--will-qos must be 0, 1 or 2.") }
        if password != nil && username == nil && version != .v5 {
            throw ValidationError("A password (-P) needs a user name (-u) before MQTT v5.")
        }
    }

    func clientConfiguration(defaultIDPrefix: String, console: Console) throws -> MQTTClientConfiguration {
        let version = try protocolVersion()
        let clientID = id ?? "\(defaultIDPrefix)-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
        var configuration = MQTTClientConfiguration(
            host: host, port: port, version: version, clientID: clientID, cleanStart: !disableCleanSession,
            keepAlive: keepalive, username: username)
        configuration.setPassword(password)
        configuration.tls = tlsOptions.configuration
        if let willTopic {
            configuration.will = Will(
                topic: willTopic, payload: ByteBuffer(string: willPayload ?? ""),
                qos: QoS(rawValue: UInt8(willQoS ?? 0)) ?? .atMostOnce, retain: willRetain)
        }
        if version == .v5 {
            if let sessionExpiry {
                configuration.connectProperties.sessionExpiryInterval = sessionExpiry < 0 ? UInt32.max : UInt32(sessionExpiry)
            } else if disableCleanSession {
                configuration.connectProperties.sessionExpiryInterval = UInt32.max
            }
        }
        if debug {
            let name = clientID.isEmpty ? "(null)" : clientID
            configuration.packetObserver = { direction, packet in
                console.debug("Client \(name) \(direction == .sent ? "sending" : "received") \(packet.summary)")
            }
        }
        return configuration
    }

    /// Connects, or reports why not and exits: with the CONNACK code when refused, else 1.
    func connect(_ client: MQTTClient, console: Console) async throws {
        do {
            try await client.connect()
        } catch MQTTClientError.connectionRefused(let connAck) {
            var text = "Connection error: Connection Refused: \(connAck.reasonCode.connectReasonDescription)"
            if let reason = connAck.properties.reasonString { text += " (\(reason))" }
            console.error(text + ".")
            throw ExitCode(Int32(connAck.reasonCode.rawValue))
        } catch let error as MQTTClientError {
            console.error("Connection error: \(error).")
            throw ExitCode.failure
        } catch {
            console.error("Connection error: \(MQTTClient.describe(error)) (\(host):\(port)).")
            throw ExitCode.failure
        }
    }
}

/// Writes to stdout and stderr without buffering, so that a reader sees each line at once.
///
/// Concurrency: stateless apart from its flag; safe from any thread (each call is one
/// `write(2)` loop on the file descriptor).
struct Console: Sendable {
    var quiet: Bool

    /// An error or warning, on stderr unless `--quiet`.
    func error(_ text: String) {
        guard !quiet else { return }
        Self.writeAll(Array((text + "\n").utf8), to: STDERR_FILENO)
    }

    /// A `-d` trace line, on stderr.
    func debug(_ text: String) {
        Self.writeAll(Array((text + "\n").utf8), to: STDERR_FILENO)
    }

    /// Raw bytes on stdout.
    func output(_ bytes: [UInt8]) {
        Self.writeAll(bytes, to: STDOUT_FILENO)
    }

    private static func writeAll(_ bytes: [UInt8], to descriptor: Int32) {
        bytes.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            var offset = 0
            while offset < raw.count {
                let written = write(descriptor, base + offset, raw.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    if errno == EPIPE {
                        // The reader is gone (`roost sub | head -1`): end as a SIGPIPE would.
                        signal(SIGPIPE, SIG_DFL)
                        raise(SIGPIPE)
                    }
                    return
                }
                offset += written
            }
        }
    }
}

/// Reading standard input for `-l` and `-s`.
enum StandardInput {
    /// The whole of stdin (blocking until EOF).
    static func readAll() -> [UInt8] {
        [UInt8](FileHandle.standardInput.readDataToEndOfFile())
    }

    /// The lines of stdin as raw bytes without the trailing `\n`, read on a dedicated thread so
    /// that no task blocks on the terminal.
    static func lines() -> AsyncStream<[UInt8]> {
        AsyncStream { continuation in
            let thread = Thread {
                var pending: [UInt8] = []
                while true {
                    let chunk = FileHandle.standardInput.availableData
                    if chunk.isEmpty { break }
                    for byte in chunk {
                        if byte == UInt8(ascii: "\n") {
                            continuation.yield(pending)
                            pending.removeAll(keepingCapacity: true)
                        } else {
                            pending.append(byte)
                        }
                    }
                }
                if !pending.isEmpty { continuation.yield(pending) }
                continuation.finish()
            }
            thread.start()
        }
    }
}
