import MQTTCodec
import NIOCore
import NIOSSL
import NIOPosix
import Synchronization

/// An MQTT 3.1, 3.1.1 and 5.0 client over TCP, with an async/await API.
///
/// The client runs the protocol itself: it acknowledges inbound QoS 1 and 2 PUBLISH (delivering
/// QoS 2 exactly once), sends PINGREQ when the connection has been idle for the keep-alive
/// interval, allocates packet identifiers, and keeps at most the server's Receive Maximum QoS 1
/// and 2 PUBLISH in flight (further ``publish(_:)`` calls wait for a free slot).
///
/// One client holds at most one connection at a time; after it closes, ``connect()`` may be
/// called again (the inbound QoS 2 state carries over when the session is resumed). Outbound
/// requests pending when a connection closes fail with ``MQTTClientError/closed(_:)``; they are
/// not retransmitted on the next connection.
///
/// Concurrency: `Sendable`; every method may be called from any task, concurrently. Connection
/// state lives in a channel handler confined to the connection's EventLoop; calls reach it with
/// `EventLoop.execute` and return through promises. A `Mutex` guards only the small record of
/// the current connection (held for a few assignments, never across I/O).
public final class MQTTClient: Sendable {
    /// The configuration the client was created with.
    public let configuration: MQTTClientConfiguration
    private let eventLoopGroup: any EventLoopGroup
    private let shared: Mutex<Shared>

    /// One connection: its channel and its handler, reachable only on the channel's EventLoop.
    private struct Connection: Sendable {
        let channel: any Channel
        let handler: NIOLoopBoundBox<MQTTClientChannelHandler?>
    }

    private struct Shared {
        /// The latest connection, open or closed (kept so that ``waitForClose()`` can wait on it).
        var connection: Connection?
        /// Counts connection attempts, so that a late report from an old connection is ignored.
        var generation = 0
        /// True from the start of ``connect()`` until that connection ends.
        var isBusy = false
        /// True between an accepted CONNACK and the end of that connection.
        var isConnected = false
        var connAck: ConnAck?
        var serverDisconnect: Disconnect?
        var session = ClientSessionState()
        var messages: AsyncStream<Publish>
        var messagesContinuation: AsyncStream<Publish>.Continuation

        init() {
            (messages, messagesContinuation) = AsyncStream.makeStream(of: Publish.self)
        }
    }

    /// Creates a client; no connection is made until ``connect()``.
    public init(configuration: MQTTClientConfiguration, eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.configuration = configuration
        self.eventLoopGroup = eventLoopGroup
        self.shared = Mutex(Shared())
    }

    deinit {
        shared.withLock { shared in
            if shared.isBusy { shared.connection?.channel.close(promise: nil) }
        }
    }

    // MARK: State

    /// The CONNACK of the latest connection (also when it refused the connection).
    public var connAck: ConnAck? { shared.withLock { $0.connAck } }

    /// The client identifier the server assigned (MQTT 5, when CONNECT carried an empty one).
    public var assignedClientIdentifier: String? { connAck?.properties.assignedClientIdentifier }

    /// The client identifier in use: the assigned one, else the configured one.
    public var clientIdentifier: String { assignedClientIdentifier ?? configuration.clientID }

    /// The keep-alive interval in force: the Server Keep Alive from CONNACK if the server sent
    /// one (MQTT 5), else the configured one.
    public var keepAlive: UInt16 { connAck?.properties.serverKeepAlive ?? configuration.keepAlive }

    /// True while a connection is established (accepted CONNACK, not yet closed).
    public var isConnected: Bool { shared.withLock { $0.isConnected } }

    /// The DISCONNECT the server sent on the latest connection, if any (MQTT 5).
    public var serverDisconnect: Disconnect? { shared.withLock { $0.serverDisconnect } }

    /// Inbound PUBLISH packets of the current connection (or of the next one, before
    /// ``connect()``), in arrival order, with topic aliases resolved.
    ///
    /// The client has already acknowledged each message when it appears here. The stream buffers
    /// without limit and finishes when the connection closes; read this property again after
    /// reconnecting to get the next connection's stream. Single consumer.
    public var messages: AsyncStream<Publish> { shared.withLock { $0.messages } }

    // MARK: Connecting

    /// Opens the TCP connection, sends CONNECT and waits for CONNACK.
    ///
    /// - Returns: the CONNACK, when it accepts the connection.
    /// - Throws: ``MQTTClientError/connectionRefused(_:)`` for a CONNACK with a failure code,
    ///   ``MQTTClientError/timeout`` when no CONNACK arrives within the connect timeout,
    ///   ``MQTTClientError/protocolError(_:)`` when a connection is already open, or the
    ///   SwiftNIO error of a failed TCP connection.
    @discardableResult
    public func connect() async throws -> ConnAck {
        let (connection, connAck) = try await open(sendsConnect: true)
        do {
            return try await connAck.get()
        } catch {
            // Refused or timed out: the handler has closed the channel; wait until it is gone.
            try? await connection.channel.closeFuture.get()
            throw error
        }
    }

    /// Builds the TLS context of a connection from its files (read on each connect).
    static func makeSSLContext(_ tls: MQTTClientTLS) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let cafile = tls.cafile { configuration.trustRoots = .file(cafile) }
        if let certfile = tls.certfile {
            configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certfile).map { .certificate($0) }
        }
        if let keyfile = tls.keyfile { configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyfile, format: .pem)) }
        if tls.insecure { configuration.certificateVerification = .noHostnameVerification }
        return try NIOSSLContext(configuration: configuration)
    }

    /// Opens the TCP connection without sending CONNECT, for protocol tests that drive the
    /// handshake with ``send(_:)`` (or ``send(bytes:)``). The packets are decoded with the
    /// configured protocol version; an accepting CONNACK establishes the connection as
    /// ``connect()`` would, so the other methods work afterwards.
    public func openConnection() async throws {
        _ = try await open(sendsConnect: false)
    }

    private func open(sendsConnect: Bool) async throws -> (Connection, EventLoopFuture<ConnAck>) {
        let (generation, session, continuation) = try shared.withLock { shared in
            if shared.isBusy { throw MQTTClientError.protocolError("the client is already connected") }
            shared.isBusy = true
            shared.generation += 1
            shared.connAck = nil
            shared.serverDisconnect = nil
            return (shared.generation, shared.session, shared.messagesContinuation)
        }
        let loop = eventLoopGroup.next()
        let connAckPromise = loop.makePromise(of: ConnAck.self)
        let handlerBox = NIOLoopBoundBox.makeEmptyBox(valueType: MQTTClientChannelHandler.self, eventLoop: loop)
        let events = ClientConnectionEvents(
            connAckReceived: { [weak self] connAck in self?.connAckReceived(connAck, generation: generation) },
            ended: { [weak self] session, disconnect in
                self?.connectionEnded(generation: generation, session: session, serverDisconnect: disconnect)
            })
        let configuration = self.configuration
        let sslContext: NIOSSLContext?
        do {
            sslContext = try configuration.tls.map(Self.makeSSLContext)
        } catch {
            shared.withLock { shared in
                if shared.generation == generation { shared.isBusy = false }
            }
            connAckPromise.fail(error)
            throw error
        }
        let serverHostname = configuration.host.first?.isNumber == true || configuration.host.contains(":") ? nil : configuration.host
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(configuration.connectTimeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = MQTTClientChannelHandler(
                        configuration: configuration, session: session, messages: continuation,
                        connAckPromise: connAckPromise, sendsConnect: sendsConnect, events: events)
                    handlerBox.value = handler
                    if let sslContext {
                        try channel.pipeline.syncOperations.addHandler(
                            NIOSSLClientHandler(context: sslContext, serverHostname: serverHostname))
                    }
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: configuration.host, port: configuration.port).get()
        } catch {
            connAckPromise.fail(error)
            shared.withLock { shared in
                if shared.generation == generation { shared.isBusy = false }
            }
            throw error
        }
        let connection = Connection(channel: channel, handler: handlerBox)
        shared.withLock { shared in
            if shared.generation == generation { shared.connection = connection }
        }
        return (connection, connAckPromise.futureResult)
    }

    private func connAckReceived(_ connAck: ConnAck, generation: Int) {
        shared.withLock { shared in
            guard shared.generation == generation else { return }
            shared.connAck = connAck
            let refused = configuration.version == .v5 ? connAck.reasonCode.isFailure : connAck.reasonCode != .success
            shared.isConnected = !refused
        }
    }

    private func connectionEnded(generation: Int, session: ClientSessionState, serverDisconnect: Disconnect?) {
        shared.withLock { shared in
            guard shared.generation == generation else { return }
            shared.isBusy = false
            shared.isConnected = false
            shared.session = session
            shared.serverDisconnect = serverDisconnect
            (shared.messages, shared.messagesContinuation) = AsyncStream.makeStream(of: Publish.self)
        }
    }

    // MARK: Operations

    /// Publishes a message, allocating its packet identifier (`publish.packetID` and `dup` are
    /// ignored).
    ///
    /// - QoS 0: returns nil once the packet is written to the socket.
    /// - QoS 1: returns the PUBACK.
    /// - QoS 2: returns the PUBCOMP, or the PUBREC when it carries a failure reason code (MQTT 5),
    ///   which ends the exchange.
    ///
    /// A QoS 1 or 2 publish first waits for a free slot when the server's Receive Maximum is
    /// reached. A failure reason code in the acknowledgement is returned, not thrown.
    @discardableResult
    public func publish(_ publish: Publish) async throws -> Ack? {
        try await onHandler(of: Ack?.self) { handler, promise in handler.publish(publish, promise: promise) }
    }

    /// Publishes every message of `batch`, in order, with one hop to the connection's EventLoop
    /// and one socket write (the cheap path for many messages, as in `roost bench`); see
    /// ``publish(_:)`` for what each message waits for. Returns one entry per message.
    @discardableResult
    public func publish(contentsOf batch: [Publish]) async throws -> [Ack?] {
        try await startPublishing(contentsOf: batch).get()
    }

    /// Hands `batch` to the connection at once and returns a future of its completion, so that
    /// a caller can keep several batches in flight. Batches handed over from one thread are
    /// sent in the order of the calls. See ``publish(contentsOf:)``.
    public func startPublishing(contentsOf batch: [Publish]) -> EventLoopFuture<[Ack?]> {
        let connection: Connection
        do {
            connection = try currentConnection()
        } catch {
            return eventLoopGroup.any().makeFailedFuture(error)
        }
        let loop = connection.channel.eventLoop
        let promise = loop.makePromise(of: [Ack?].self)
        let box = connection.handler
        loop.execute {
            guard let handler = box.value else { return promise.fail(MQTTClientError.notConnected) }
            handler.publish(batch: batch, promise: promise)
        }
        return promise.futureResult
    }

    /// Publishes the UTF-8 text `payload` to `topic`; see ``publish(_:)``.
    @discardableResult
    public func publish(
        to topic: String, payload: String, qos: QoS = .atMostOnce, retain: Bool = false, properties: Properties = Properties()
    ) async throws -> Ack? {
        try await publish(Publish(topic: topic, payload: ByteBuffer(string: payload), qos: qos, retain: retain, properties: properties))
    }

    /// Sends SUBSCRIBE and returns the SUBACK. Per-filter failures are reason codes in the SUBACK
    /// (>= 0x80), not errors.
    public func subscribe(_ subscriptions: [Subscription], properties: Properties = Properties()) async throws -> SubAck {
        try await onHandler(of: SubAck.self) { handler, promise in
            handler.subscribe(subscriptions, properties: properties, promise: promise)
        }
    }

    /// Subscribes to one filter; see ``subscribe(_:properties:)``.
    public func subscribe(to filter: String, qos: QoS = .atMostOnce) async throws -> SubAck {
        try await subscribe([Subscription(filter: filter, qos: qos)])
    }

    /// Sends UNSUBSCRIBE and returns the UNSUBACK (whose reason codes exist only in MQTT 5).
    public func unsubscribe(_ filters: [String], properties: Properties = Properties()) async throws -> UnsubAck {
        try await onHandler(of: UnsubAck.self) { handler, promise in
            handler.unsubscribe(filters, properties: properties, promise: promise)
        }
    }

    /// Sends PINGREQ and waits for PINGRESP.
    public func ping() async throws {
        try await onHandler(of: Void.self) { handler, promise in handler.ping(promise: promise) }
    }

    /// Sends DISCONNECT and closes the connection. With MQTT 5, `disconnect` may carry a reason
    /// code (0x04 asks the server to publish the will) and a new Session Expiry Interval.
    public func disconnect(_ disconnect: Disconnect = Disconnect()) async throws {
        let connection = try currentConnection()
        try await onHandler(of: Void.self) { handler, promise in handler.disconnect(disconnect, promise: promise) }
        try? await connection.channel.closeFuture.get()
    }

    /// Drops the TCP connection without DISCONNECT (so the server publishes the will). Returns
    /// once the connection is closed; does nothing when there is none.
    public func close() async {
        guard let connection = shared.withLock({ $0.connection }) else { return }
        connection.channel.close(promise: nil)
        try? await connection.channel.closeFuture.get()
    }

    /// Waits until the latest connection closes, and returns the DISCONNECT the server sent
    /// before closing it (MQTT 5), or nil. Returns at once when there is no open connection.
    @discardableResult
    public func waitForClose() async -> Disconnect? {
        guard let connection = shared.withLock({ $0.connection }) else { return nil }
        try? await connection.channel.closeFuture.get()
        return shared.withLock { $0.serverDisconnect }
    }

    // MARK: Raw access (protocol tests)

    /// Writes `packet` exactly as given, outside the client's protocol state: packet identifiers
    /// are not allocated and the acknowledgements it provokes are not matched to anything (watch
    /// them with ``MQTTClientConfiguration/packetObserver``). Returns once it is written.
    public func send(_ packet: MQTTPacket) async throws {
        try await onHandler(of: Void.self) { handler, promise in handler.sendRaw(packet, promise: promise) }
    }

    /// Writes raw bytes to the connection (for malformed-input tests). Returns once written.
    public func send(bytes: ByteBuffer) async throws {
        try await onHandler(of: Void.self) { handler, promise in handler.sendBytes(bytes, promise: promise) }
    }

    // MARK: Plumbing

    private func currentConnection() throws -> Connection {
        try shared.withLock { shared in
            guard shared.isBusy, let connection = shared.connection else {
                if shared.connection == nil { throw MQTTClientError.notConnected }
                throw MQTTClientError.closed(shared.serverDisconnect)
            }
            return connection
        }
    }

    /// Runs `body` on the connection's EventLoop with its handler and waits for the promise.
    private func onHandler<Value: Sendable>(
        of: Value.Type,
        _ body: @escaping @Sendable (MQTTClientChannelHandler, EventLoopPromise<Value>) -> Void
    ) async throws -> Value {
        let connection = try currentConnection()
        let loop = connection.channel.eventLoop
        let promise = loop.makePromise(of: Value.self)
        let box = connection.handler
        loop.execute {
            guard let handler = box.value else { return promise.fail(MQTTClientError.notConnected) }
            body(handler, promise)
        }
        return try await promise.futureResult.get()
    }
}
