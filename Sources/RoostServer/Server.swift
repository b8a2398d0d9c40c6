import Logging
import MQTTCodec
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOWebSocket
import RoostCore

/// Binds the listeners and runs the broker on an event loop group (one loop per core).
public final class Server: Sendable {
    public let broker: Broker
    let group: MultiThreadedEventLoopGroup
    let channels: [Channel]
    let listeners: [ListenerContext]
    let logger: Logger

    private init(broker: Broker, group: MultiThreadedEventLoopGroup, channels: [Channel], listeners: [ListenerContext], logger: Logger) {
        self.broker = broker
        self.group = group
        self.channels = channels
        self.listeners = listeners
        self.logger = logger
    }

    /// The addresses actually bound (useful with port 0).
    public var localAddresses: [SocketAddress] { channels.compactMap { $0.localAddress } }

    /// Starts plain TCP listeners on every `host:port` (tests and embedding).
    public static func start(
        settings: BrokerSettings, listeners: [(host: String, port: Int)], threads: Int = System.coreCount, logger: Logger,
        authenticator: (any Authenticator)? = nil, authorizer: (any Authorizer)? = nil, store: (any DurableStore)? = nil
    ) async throws -> Server {
        try await start(
            settings: settings, listeners: listeners.map { ListenerConfiguration(host: $0.host, port: $0.port) }, threads: threads,
            logger: logger, authenticator: authenticator, authorizer: authorizer, store: store)
    }

    /// Starts every listener. Throws if a certificate cannot be used (``ListenerError``) or an
    /// address cannot be bound.
    public static func start(
        settings: BrokerSettings, listeners: [ListenerConfiguration], threads: Int = System.coreCount, logger: Logger,
        authenticator: (any Authenticator)? = nil, authorizer: (any Authorizer)? = nil, store: (any DurableStore)? = nil,
        enhancedAuthenticators: [any EnhancedAuthenticator] = [], deferredAuthenticators: [any DeferredAuthenticator] = []
    ) async throws -> Server {
        // Certificates first: a bad file stops the start before anything is bound or loaded.
        let contexts = try listeners.map { try ListenerContext($0) }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, threads))
        let broker = Broker(
            settings: settings, logger: logger, authenticator: authenticator, authorizer: authorizer, store: store,
            enhancedAuthenticators: enhancedAuthenticators, deferredAuthenticators: deferredAuthenticators)
        var channels: [Channel] = []
        do {
            // Everything stored comes back before the first client can connect.
            if let store {
                let stored = try store.load(memoryQueueLimit: settings.queueMemoryLimit, retainedMemoryLimit: settings.retainedMemoryLimit)
                broker.restore(stored, group: group)
            }
            for listener in contexts {
                let configuration = listener.configuration
                let bootstrap = listenerBootstrap(group: group)
                    .childChannelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            // Set here, synchronously: as bootstrap child options each one costs
                            // a promise and a future chain on every accept.
                            try Self.configureSocket(channel)
                            // A refused socket is closed here, before anything is read from it.
                            // TCP and TLS connections release their count in `Connection.handlerRemoved`;
                            // WebSocket ones exist only after the upgrade, so the close releases it.
                            let viaConnection = !listener.configuration.transport.usesWebSocket
                            try broker.admit(channel, listener: listener, releaseOnClose: !viaConnection)
                            do {
                                try Self.configurePipeline(
                                    channel, listener: listener, broker: broker, logger: logger, admitted: viaConnection)
                            } catch {
                                if viaConnection { broker.release(listener) }
                                throw error
                            }
                        }
                    }
                let channel = try await bootstrap.bind(host: configuration.host, port: configuration.port).get()
                channels.append(channel)
                let address = channel.localAddress.map { "\($0)" } ?? "\(configuration.host):\(configuration.port)"
                logger.info("listening", metadata: ["address": "\(address)", "transport": "\(configuration.transport.rawValue)"])
                if !isLoopback(configuration.host) && (configuration.allowAnonymous ?? settings.allowAnonymous) {
                    logger.warning(
                        "listener on a non-loopback address accepts anonymous clients; configure a password file or allow_anonymous: false",
                        metadata: ["address": "\(address)"])
                }
            }
        } catch {
            for channel in channels { try? await channel.close() }
            try? await group.shutdownGracefully()
            store?.close()
            throw error
        }
        let server = Server(broker: broker, group: group, channels: channels, listeners: contexts, logger: logger)
        server.startSysTopics()
        server.startRetainedSweep()
        server.startCertificateWatch()
        return server
    }

    /// A listening socket's bootstrap, before its child initializer. ServerBootstrap also sets
    /// TCP_NODELAY on the listening socket, which Linux copies to every accepted one.
    @_spi(Benchmarks) public static func listenerBootstrap(group: EventLoopGroup) -> ServerBootstrap {
        ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // Up to 16 accepts per wake-up (NIO's default is 4): measured +25 % connections/s
            // in scenario e, where 64 handshakes are always pending.
            .serverChannelOption(.maxMessagesPerRead, value: 16)
    }

    /// Options of every accepted socket. The receive buffer starts at 64 bytes (a CONNECT fits)
    /// and grows with the traffic: a channel keeps its receive buffer between reads, so its
    /// first size is paid by every idle connection.
    @_spi(Benchmarks) public static func configureSocket(_ channel: Channel) throws {
        guard let options = channel.syncOptions else { return }
        #if !os(Linux)
        // Linux copies TCP_NODELAY from the listening socket (ServerBootstrap sets it there),
        // which saves a setsockopt per accept; elsewhere it is set on each socket.
        try options.setOption(.tcpOption(.tcp_nodelay), value: 1)
        #endif
        try options.setOption(.maxMessagesPerRead, value: 16)
        try options.setOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 64, maximum: 65_536))
    }

    /// The handlers of one accepted connection, by transport: [TLS] [HTTP + WebSocket upgrade] Connection.
    @_spi(Benchmarks) public static func configurePipeline(_ channel: Channel, listener: ListenerContext, broker: Broker, logger: Logger, admitted: Bool) throws {
        let pipeline = channel.pipeline.syncOperations
        let configuration = listener.configuration
        var peer: ProxiedPeer?
        if configuration.proxyProtocol {
            let proxied = ProxiedPeer()
            peer = proxied
            try pipeline.addHandler(
                ProxyProtocolHandler(peer: proxied) { error in
                    broker.stats.proxyRejected.add(1, ordering: .relaxed)
                    logger.info(
                        "connection closed: \(error)",
                        metadata: ["remote": "\(channel.remoteAddress?.logText ?? "?")", "listener": "\(listener.name)"])
                })
        }
        if configuration.transport.usesTLS, let sslContext = listener.sslContext {
            try pipeline.addHandler(NIOSSLServerHandler(context: sslContext))
        }
        guard configuration.transport.usesWebSocket else {
            let connection = Connection(broker: broker, eventLoop: channel.eventLoop, listener: listener)
            connection.proxiedPeer = peer
            try pipeline.addHandler(connection)
            connection.holdsAdmission = admitted
            return
        }
        let path = configuration.webSocketPath
        let gate = WebSocketUpgradeGate(path: path, timeout: .seconds(Int64(broker.settings.connectTimeout))) { [peer] in
            broker.stats.limitConnectTimeout.add(1, ordering: .relaxed)
            logger.info(
                "connection closed: no WebSocket upgrade within connect_timeout",
                metadata: ["remote": "\((peer?.address ?? channel.remoteAddress)?.logText ?? "?")", "listener": "\(listener.name)"])
        }
        let maxFrame = min(Int(UInt32.max), broker.settings.maxPacketSize + 1024)
        let upgrader = NIOWebSocketServerUpgrader(
            maxFrameSize: maxFrame, automaticErrorHandling: true,
            shouldUpgrade: { channel, head in
                let requestPath = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
                let (ok, chosen) = WebSocketUpgradeGate.chooseSubprotocol(head.headers)
                guard requestPath == path, ok else { return channel.eventLoop.makeSucceededFuture(nil) }
                var headers = HTTPHeaders()
                if let chosen { headers.add(name: "Sec-WebSocket-Protocol", value: chosen) }
                return channel.eventLoop.makeSucceededFuture(headers)
            },
            upgradePipelineHandler: { channel, _ in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.addHandler(WebSocketMQTTAdapter())
                    let connection = Connection(broker: broker, eventLoop: channel.eventLoop, listener: listener)
                    connection.proxiedPeer = peer
                    try pipeline.addHandler(connection)
                }
            })
        try pipeline.configureHTTPServerPipeline(
            withServerUpgrade: (
                upgraders: [upgrader],
                completionHandler: { context in
                    context.pipeline.syncOperations.removeHandler(gate, promise: nil)
                }
            ))
        try pipeline.addHandler(gate)
    }

    /// Re-reads every TLS listener's certificate files (SIGHUP). New connections get the new
    /// certificate; open ones keep theirs.
    public func reloadCertificates() {
        for listener in listeners { listener.reloadTLS(force: true, logger: logger) }
    }

    /// Call after the authorizer's rules changed (a reloaded ACL file): routes are resolved
    /// again, so read access follows the new rules from the next message on.
    public func accessRulesChanged() {
        broker.router.version.add(1, ordering: .releasing)
    }

    /// Checks the certificate files every `certificateCheckInterval` and reloads those that changed.
    func startCertificateWatch() {
        let tlsListeners = listeners.filter { $0.configuration.transport.usesTLS }
        guard !tlsListeners.isEmpty else { return }
        let logger = self.logger
        group.next().scheduleRepeatedTask(initialDelay: Self.certificateCheckInterval, delay: Self.certificateCheckInterval) { _ in
            for listener in tlsListeners { listener.reloadTLS(force: false, logger: logger) }
        }
    }

    /// How often certificate files are checked for changes.
    static let certificateCheckInterval = TimeAmount.seconds(5)

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host.hasPrefix("127.") || host == "::1"
    }

    /// Graceful shutdown: stop accepting, tell MQTT 5 clients (DISCONNECT 0x8B), publish wills, close.
    public func shutdown() async {
        logger.info("shutting down")
        for channel in channels { try? await channel.close() }
        let connections = await broker.allConnections()
        // First every will, while every client is still connected to receive them (a delayed
        // will could never go out later: this process's sessions end with it) ...
        var wills: [EventLoopFuture<Void>] = []
        for connection in connections {
            wills.append(connection.eventLoop.submit { connection.publishWillForShutdown() })
        }
        for future in wills { try? await future.get() }
        try? await Task.sleep(for: .milliseconds(100))
        // ... then DISCONNECT 0x8B to MQTT 5 clients, and close.
        var closing: [EventLoopFuture<Void>] = []
        for connection in connections {
            closing.append(connection.eventLoop.submit { connection.disconnect(.serverShuttingDown) })
        }
        for future in closing { try? await future.get() }
        try? await Task.sleep(for: .milliseconds(100))
        // What the closing connections changed (sessions now offline) is committed, while the
        // event loops still run the store's callbacks.
        broker.store?.close()
        try? await group.shutdownGracefully()
    }
}
