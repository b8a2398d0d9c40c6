import Logging
import MQTTCodec
import NIOCore
import NIOPosix
import RoostCore

/// Binds the listeners and runs the broker on an event loop group (one loop per core).
public final class Server: Sendable {
    public let broker: Broker
    let group: MultiThreadedEventLoopGroup
    let channels: [Channel]
    let logger: Logger

    private init(broker: Broker, group: MultiThreadedEventLoopGroup, channels: [Channel], logger: Logger) {
        self.broker = broker
        self.group = group
        self.channels = channels
        self.logger = logger
    }

    /// The addresses actually bound (useful with port 0).
    public var localAddresses: [SocketAddress] { channels.compactMap { $0.localAddress } }

    /// Starts listening on every `host:port`. Throws if one cannot be bound.
    public static func start(
        settings: BrokerSettings, listeners: [(host: String, port: Int)], threads: Int = System.coreCount, logger: Logger,
        authenticator: (any Authenticator)? = nil, authorizer: (any Authorizer)? = nil, store: (any DurableStore)? = nil
    ) async throws -> Server {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, threads))
        let broker = Broker(settings: settings, logger: logger, authenticator: authenticator, authorizer: authorizer, store: store)
        var channels: [Channel] = []
        do {
            // Everything stored comes back before the first client can connect.
            if let store {
                let stored = try store.load(memoryQueueLimit: settings.queueMemoryLimit, retainedMemoryLimit: settings.retainedMemoryLimit)
                broker.restore(stored, group: group)
            }
            for listener in listeners {
                let bootstrap = ServerBootstrap(group: group)
                    .serverChannelOption(.backlog, value: 1024)
                    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                    .childChannelOption(.maxMessagesPerRead, value: 16)
                    .childChannelOption(
                        .recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 256, maximum: 65_536))
                    .childChannelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            let connection = Connection(broker: broker, eventLoop: channel.eventLoop, logger: logger)
                            try channel.pipeline.syncOperations.addHandler(connection)
                        }
                    }
                let channel = try await bootstrap.bind(host: listener.host, port: listener.port).get()
                channels.append(channel)
                let address = channel.localAddress.map { "\($0)" } ?? "\(listener.host):\(listener.port)"
                logger.info("listening", metadata: ["address": "\(address)"])
                if !isLoopback(listener.host) && settings.allowAnonymous {
                    logger.warning(
                        "listener on a non-loopback address accepts anonymous clients; configure authentication or --no-allow-anonymous",
                        metadata: ["address": "\(address)"])
                }
            }
        } catch {
            for channel in channels { try? await channel.close() }
            try? await group.shutdownGracefully()
            store?.close()
            throw error
        }
        let server = Server(broker: broker, group: group, channels: channels, logger: logger)
        server.startSysTopics()
        server.startRetainedSweep()
        return server
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host.hasPrefix("127.") || host == "::1"
    }

    /// Graceful shutdown: stop accepting, tell MQTT 5 clients (DISCONNECT 0x8B), publish wills, close.
    public func shutdown() async {
        logger.info("shutting down")
        for channel in channels { try? await channel.close() }
        let connections = broker.connections.withLock { Array($0.values) }
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
