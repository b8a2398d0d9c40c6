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

    @Option(name: .customLong("tls-listen"), help: "HOST:PORT of a TLS listener (repeatable; needs --certfile and --keyfile).")
    var tlsListen: [String] = []

    @Option(name: .customLong("ws-listen"), help: "HOST:PORT of a WebSocket listener, path /mqtt (repeatable).")
    var wsListen: [String] = []

    @Option(name: .customLong("wss-listen"), help: "HOST:PORT of a WebSocket-over-TLS listener (repeatable; needs --certfile and --keyfile).")
    var wssListen: [String] = []

    @Option(name: .customLong("certfile"), help: "PEM server certificate (and chain) of the TLS listeners.")
    var certfile: String?

    @Option(name: .customLong("keyfile"), help: "PEM private key of the TLS listeners.")
    var keyfile: String?

    @Option(name: .customLong("cafile"), help: "PEM CA certificates that client certificates must chain to.")
    var cafile: String?

    @Flag(name: .customLong("require-certificate"), help: "TLS clients must present a certificate signed by --cafile (mutual TLS).")
    var requireCertificate = false

    @Flag(name: .customLong("use-identity-as-username"), help: "The client certificate's subject CN is the user name.")
    var useIdentityAsUsername = false

    @Option(name: .customLong("password-file"), help: "Password file (mosquitto_passwd format; make one with roost passwd).")
    var passwordFile: String?

    @Option(name: .customLong("acl-file"), help: "ACL file (Mosquitto acl_file format).")
    var aclFile: String?

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
        if let allowAnonymous { config.allowAnonymousSetting = allowAnonymous }
        if !tlsListen.isEmpty { try config.set("tls_listen", tlsListen.joined(separator: ","), source: "flag --tls-listen") }
        if !wsListen.isEmpty { try config.set("ws_listen", wsListen.joined(separator: ","), source: "flag --ws-listen") }
        if !wssListen.isEmpty { try config.set("wss_listen", wssListen.joined(separator: ","), source: "flag --wss-listen") }
        if let certfile { try config.set("certfile", certfile, source: "flag --certfile") }
        if let keyfile { try config.set("keyfile", keyfile, source: "flag --keyfile") }
        if let cafile { try config.set("cafile", cafile, source: "flag --cafile") }
        if requireCertificate { try config.set("require_certificate", "true", source: "flag --require-certificate") }
        if useIdentityAsUsername { try config.set("use_identity_as_username", "true", source: "flag --use-identity-as-username") }
        if let passwordFile { try config.set("password_file", passwordFile, source: "flag --password-file") }
        if let aclFile { try config.set("acl_file", aclFile, source: "flag --acl-file") }
        config.settings.allowAnonymous = config.effectiveAllowAnonymous
        if let logLevel { try config.set("log_level", logLevel, source: "flag --log-level") }
        return config
    }

    func run() async throws {
        Self.useOneMallocArena()
        let config: ServeConfiguration
        let listeners: [ListenerConfiguration]
        let access: AccessControl
        do {
            config = try resolveConfiguration()
            listeners = try config.listenerConfigurations()
            access = try AccessControl(passwordFile: config.passwordFile, aclFile: config.aclFile, jwt: config.jwt, authHTTP: config.authHTTP)
        } catch let error as ConfigurationError {
            FileHandle.standardError.write(Data("roost: \(error)\n".utf8))
            throw ExitCode(2)
        }
        if checkConfig {
            do {
                for listener in listeners where listener.tls != nil { _ = try listener.tls?.makeContext() }
            } catch {
                FileHandle.standardError.write(Data("roost: \(error)\n".utf8))
                throw ExitCode(2)
            }
            let described = listeners.map { "\($0.transport.rawValue)://\($0.host):\($0.port)" }.joined(separator: ", ")
            print("configuration OK: listeners \(described)")
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
                settings: config.settings, listeners: listeners, threads: config.threads, logger: logger,
                authenticator: access.authenticator, authorizer: access.authorizer, store: store,
                enhancedAuthenticators: access.enhancedAuthenticators, deferredAuthenticators: access.deferredAuthenticators)
        } catch let error as ListenerError {
            logger.critical("could not start: \(error)")
            FileHandle.standardError.write(Data("roost: \(error)\n".utf8))
            throw ExitCode(2)
        } catch let error as StoreError {
            logger.critical("could not load the durable store: \(error)")
            FileHandle.standardError.write(Data("roost: \(error)\n".utf8))
            throw ExitCode(1)
        } catch {
            logger.critical("could not start: \(error)")
            FileHandle.standardError.write(Data("roost: could not start listeners: \(error)\n".utf8))
            throw ExitCode(1)
        }
        // SIGHUP: certificates, the password file and the ACL file are read again; connections stay.
        signal(SIGHUP, SIG_IGN)
        let hangup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        hangup.setEventHandler {
            logger.info("SIGHUP: reloading certificates, password and ACL files")
            server.reloadCertificates()
            if access.reload(logger: logger) { server.accessRulesChanged() }
        }
        hangup.resume()
        defer { hangup.cancel() }
        // Edits to the password, ACL and JWT key files take effect within 5 s without SIGHUP.
        access.recordStamps()
        let watch = DispatchSource.makeTimerSource(queue: .global())
        watch.schedule(deadline: .now() + 5, repeating: 5)
        watch.setEventHandler {
            if access.reload(logger: logger, onlyChanged: true) { server.accessRulesChanged() }
        }
        watch.resume()
        defer { watch.cancel() }
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: BrokerService(server: server), successTerminationBehavior: .gracefullyShutdownGroup)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
        await access.shutdown()
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

extension ServeCommand {
    /// glibc gives each thread that allocates its own malloc arena, and grows such an arena by
    /// `mprotect` a few pages at a time: 6 % of the broker's CPU while 10,000 clients connected.
    /// One arena grows by `brk` in 128 kB steps; the threads' caches (tcache) keep most small
    /// allocations off its lock. Measured +10 to 20 % connections/s (scenario e, 3 runs each),
    /// no loss of throughput with two event loops (docs/BENCHMARKS.md). Must run before the
    /// event-loop threads first allocate. `GLIBC_TUNABLES=glibc.malloc.arena_max=N` overrides.
    static func useOneMallocArena() {
        #if canImport(Glibc)
        // mallopt is in <malloc.h>, which the Glibc module does not export: looked up instead.
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        let arenaMax: Int32 = -8  // M_ARENA_MAX
        guard ProcessInfo.processInfo.environment["GLIBC_TUNABLES"]?.contains("arena_max") != true,
            let symbol = dlsym(nil, "mallopt")  // nil: RTLD_DEFAULT
        else { return }
        _ = unsafeBitCast(symbol, to: Mallopt.self)(arenaMax, 1)
        #endif
    }
}
