import Logging
import MQTTCodec
import NIOCore
import NIOEmbedded
import RoostCore
import XCTest

@_spi(Benchmarks) @testable import RoostServer

/// Drives `Connection` handlers on one `EmbeddedEventLoop` whose virtual time is also the
/// broker's clock, so keepalive, will delay and expiry are tested without sleeping.
final class Harness {
    let loop = EmbeddedEventLoop()
    let broker: Broker

    init(
        settings: BrokerSettings = BrokerSettings(), authenticator: (any Authenticator)? = nil, authorizer: (any Authorizer)? = nil,
        store: (any DurableStore)? = nil, enhancedAuthenticators: [any EnhancedAuthenticator] = [],
        deferredAuthenticators: [any DeferredAuthenticator] = []
    ) {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let loop = self.loop
        broker = Broker(
            settings: settings, logger: logger, clock: { loop.now.uptimeNanoseconds / 1_000_000 }, authenticator: authenticator,
            authorizer: authorizer, store: store, enhancedAuthenticators: enhancedAuthenticators,
            deferredAuthenticators: deferredAuthenticators)
    }

    /// Opens a connection (channelActive fires) without sending anything.
    func open(version: ProtocolVersion = .v5) throws -> TestClient {
        let connection = Connection(broker: broker, eventLoop: loop)
        let channel = EmbeddedChannel(loop: loop)
        do {
            // As the listener does when it accepts a socket.
            try broker.admit(channel, listener: .default, releaseOnClose: false)
            try channel.pipeline.syncOperations.addHandler(connection)
            connection.holdsAdmission = true
        } catch {
            try? channel.close().wait()
            return TestClient(channel: channel, version: version)
        }
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return TestClient(channel: channel, version: version)
    }

    /// Opens a connection and completes CONNECT; returns the client and the CONNACK.
    func connect(_ connect: Connect) throws -> (TestClient, ConnAck) {
        let client = try open(version: connect.version)
        try client.send(.connect(connect))
        loop.run()
        var packets = try client.receive()
        guard case .connack(let ack)? = packets.first else {
            XCTFail("no CONNACK")
            throw TestError.noConnAck
        }
        packets.removeFirst()
        client.unread = packets
        return (client, ack)
    }

    func advance(seconds: Double) {
        loop.advanceTime(by: .milliseconds(Int64(seconds * 1000)))
        loop.run()
    }

    enum TestError: Error { case noConnAck }
}

/// The client side of an `EmbeddedChannel`: encodes what it sends, decodes what the broker wrote.
final class TestClient {
    let channel: EmbeddedChannel
    var decoder: MQTTDecoder
    let encoder: MQTTEncoder
    private var pending = ByteBuffer()
    /// Packets decoded but not yet handed to the test.
    var unread: [MQTTPacket] = []

    init(channel: EmbeddedChannel, version: ProtocolVersion) {
        self.channel = channel
        self.decoder = MQTTDecoder(version: version)
        self.encoder = MQTTEncoder(version: version)
    }

    func send(_ packet: MQTTPacket) throws {
        var buffer = ByteBuffer()
        encoder.encode(packet, into: &buffer)
        try channel.writeInbound(buffer)
        channel.pipeline.fireChannelReadComplete()
        channel.embeddedEventLoop.run()
    }

    /// Every packet the broker has written so far.
    func receive() throws -> [MQTTPacket] {
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
            var copy = buffer
            pending.writeBuffer(&copy)
        }
        var packets = unread
        unread = []
        while let packet = try decoder.decode(from: &pending) { packets.append(packet) }
        return packets
    }

    /// Only the PUBLISH packets received so far.
    func publishes() throws -> [Publish] {
        try receive().compactMap { if case .publish(let publish) = $0 { return publish } else { return nil } }
    }

    var isActive: Bool { channel.isActive }

    /// Drops the connection without DISCONNECT (network loss).
    func drop() {
        // close(), not finish(): finish() would cancel the loop's scheduled tasks (will delay, expiry).
        _ = try? channel.close().wait()
        channel.embeddedEventLoop.run()
    }
}

extension Connect {
    static func v5(_ id: String, cleanStart: Bool = true, keepAlive: UInt16 = 0, expiry: UInt32? = nil, will: Will? = nil) -> Connect {
        var properties = Properties()
        properties.sessionExpiryInterval = expiry
        return Connect(version: .v5, cleanStart: cleanStart, keepAlive: keepAlive, clientID: id, will: will, properties: properties)
    }
}
