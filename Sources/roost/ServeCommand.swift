import ArgumentParser
import Foundation
import Logging
import RoostCore
import RoostPersistence
import RoostServer
import ServiceLifecycle

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the broker.",
        discussion: """
            Every configuration key can be set in the config file (key: value), as an environment
            variable ROOST_<KEY> and as a flag --<key> VALUE (dashes or underscores); flags win over
            the environment, which wins over the file. Keys:
            \(ServeConfiguration.keys.map { "  \($0.name): \($0.help) (\($0.allowed))" }.joined(separator: "\n"))
            """
    )

    @Option(name: .customLong("listen"), help: "HOST:PORT to listen on (repeatable; replaces the default 127.0.0.1:1883).")
    var listen: [String] = []

    @Option(name: .customLong("config"), help: "Configuration file (YAML key: value).")
    var configFile: String?

    @Option(name: .customLong("data-dir"), help: "Directory of the durable store (default ./roost-data).")
    var dataDir: String?

    @Flag(inversion: .prefixedNo, help: "Accept clients without a user name.")
    var allowAnonymous: Bool?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error, critical.")
    var logLevel: String?

    @Flag(name: .customLong("check-config"), help: "Validate the configuration and exit.")
    var checkConfig = false

    @Argument(parsing: .allUnrecognized, help: .hidden)
    var otherFlags: [String] = []

    func resolveConfiguration() throws -> ServeConfiguration {
        var config = ServeConfiguration()
        if let configFile { try config.load(file: configFile) }
        try config.loadEnvironment()
        var index = 0
        while index < otherFlags.count {
            let flag = otherFlags[index]
            guard flag.hasPrefix("--") else {
                throw ConfigurationError(key: flag, value: "", source: "command line", allowed: "a flag of the form --<key> VALUE")
            }
            var name = String(flag.dropFirst(2))
            var value: String
            if let equals = name.firstIndex(of: "=") {
                value = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            } else {
                guard index + 1 < otherFlags.count else {
                    throw ConfigurationError(key: name, value: "", source: "command line", allowed: "a value after --\(name)")
                }
                index += 1
                value = otherFlags[index]
            }
            try config.set(name, value, source: "flag --\(name)")
            index += 1
        }
        if !listen.isEmpty { try config.set("listen", listen.joined(separator: ","), source: "flag --listen") }
        if let dataDir { try config.set("data_dir", dataDir, source: "flag --data-dir") }
        if let allowAnonymous { config.settings.allowAnonymous = allowAnonymous }
        if let logLevel { try config.set("log_level", logLevel, source: "flag --log-level") }
        return config
    }

    func run() async throws {
        let config: ServeConfiguration
        do {
            config = try resolveConfiguration()
        } catch let error as ConfigurationError {
            FileHandle.standardError.write(Data("roost: \(error)\n".utf8))
            throw ExitCode(2)
        }
        if checkConfig {
            print("configuration OK: listeners \(config.listeners.map { "\($0.host):\($0.port)" }.joined(separator: ", "))")
            return
        }
        let level = Logger.Level(rawValue: config.logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "roost")
        var store: SQLiteStore?
        if config.persistence {
            do {
                store = try SQLiteStore.open(
                    directory: config.dataDirectory, fsync: config.fsync, commitInterval: .milliseconds(config.commitInterval),
                    logger: logger, clock: Broker.systemClock)
                logger.info("durable store open", metadata: ["data_dir": "\(config.dataDirectory)", "fsync": "\(config.fsync.rawValue)"])
            } catch {
                logger.critical("could not open the durable store: \(error)")
                FileHandle.standardError.write(Data("roost: \(error)\n".utf8))
                throw ExitCode(1)
            }
        } else {
            logger.notice("persistence is off: sessions, queued and retained messages live in memory only")
        }
        let server: Server
        do {
            server = try await Server.start(
                settings: config.settings, listeners: config.listeners, threads: config.threads, logger: logger, store: store)
        } catch let error as StoreError {
            logger.critical("could not load the durable store: \(error)")
            FileHandle.standardError.write(Data("roost: \(error)\n".utf8))
            throw ExitCode(1)
        } catch {
            logger.critical("could not start: \(error)")
            FileHandle.standardError.write(Data("roost: could not start listeners: \(error)\n".utf8))
            throw ExitCode(1)
        }
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: BrokerService(server: server), successTerminationBehavior: .gracefullyShutdownGroup)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
    }
}

/// The broker as a swift-service-lifecycle service: runs until SIGTERM/SIGINT, then shuts the
/// server down gracefully (listeners closed, DISCONNECT 0x8B to MQTT 5 clients, wills published).
struct BrokerService: Service {
    let server: Server

    func run() async throws {
        try? await gracefulShutdown()
        await server.shutdown()
    }
}
