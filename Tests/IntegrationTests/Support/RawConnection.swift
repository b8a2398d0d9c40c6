import MQTTCodec
import NIOCore
import NIOPosix

/// A bare TCP connection that sends exactly the packets or bytes a test gives it and decodes
/// what the broker sends back, without answering anything: no acknowledgements, no keep-alive.
/// For what ``MQTTClient`` does for you and a test must not do (withhold PUBACK, send garbage).
///
/// Concurrency: `Sendable`. Sends go through the channel; received packets are collected by a
/// handler confined to the channel's EventLoop into an ``Inbox``, which finishes when the
/// connection closes.
final class RawConnection: Sendable {
    let channel: any Channel
    let version: ProtocolVersion
    /// Packets from the broker, in order; finished when the connection is closed.
    let packets: Inbox<MQTTPacket>

    private init(channel: any Channel, version: ProtocolVersion, packets: Inbox<MQTTPacket>) {
        self.channel = channel
        self.version = version
        self.packets = packets
    }

    /// Connects; with `autoRead` false nothing is read from the socket until ``resumeReading()``
    /// (a consumer that has stopped reading, so the broker's writes back up).
    static func connect(port: Int, version: ProtocolVersion, autoRead: Bool = true) async throws -> RawConnection {
        let (stream, continuation) = AsyncStream.makeStream(of: MQTTPacket.self)
        let inbox = Inbox(stream)
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(5))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(.autoRead, value: autoRead)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let decoder = MQTTDecoder(version: version)
                    try channel.pipeline.syncOperations.addHandler(PacketCollector(decoder: decoder, packets: continuation))
                }
            }
            .connect(host: "127.0.0.1", port: port)
            .get()
        return RawConnection(channel: channel, version: version, packets: inbox)
    }

    func send(_ packet: MQTTPacket) async throws {
        var buffer = channel.allocator.buffer(capacity: 64)
        MQTTEncoder(version: version).encode(packet, into: &buffer)
        try await channel.writeAndFlush(buffer).get()
    }

    /// Sends several packets in one write (one TCP segment where it fits).
    func send(_ packets: [MQTTPacket]) async throws {
        var buffer = channel.allocator.buffer(capacity: 64 * packets.count)
        let encoder = MQTTEncoder(version: version)
        for packet in packets { encoder.encode(packet, into: &buffer) }
        try await channel.writeAndFlush(buffer).get()
    }

    func send(bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes)).get()
    }

    /// The next packet from the broker.
    func receive(timeout: Double = 5) async throws -> MQTTPacket {
        try await packets.next(timeout: timeout)
    }

    /// Sends CONNECT and returns the CONNACK.
    func handshake(_ connect: Connect) async throws -> ConnAck {
        try await send(.connect(connect))
        let packet = try await receive()
        guard case .connack(let connAck) = packet else { throw IntegrationError("expected CONNACK, got \(packet)") }
        return connAck
    }

    /// Sends SUBSCRIBE and returns the SUBACK.
    func subscribe(_ filter: String, qos: QoS, packetID: UInt16 = 1) async throws -> SubAck {
        try await send(.subscribe(Subscribe(packetID: packetID, subscriptions: [Subscription(filter: filter, qos: qos)])))
        let packet = try await receive()
        guard case .suback(let subAck) = packet else { throw IntegrationError("expected SUBACK, got \(packet)") }
        return subAck
    }

    /// Starts reading again after `autoRead: false`.
    func resumeReading() async throws {
        try await channel.setOption(.autoRead, value: true).get()
        channel.read()
    }

    /// Drops the TCP connection (no DISCONNECT) and waits until it is closed.
    func close() async {
        try? await channel.close()
        _ = await packets.waitFinished(timeout: 5)
    }
}

/// Decodes the broker's packets and hands them to an `AsyncStream`; finishes it on close.
/// Undecodable input from the broker closes the connection (the test then sees an early end).
///
/// Concurrency: only on its channel's EventLoop.
private final class PacketCollector: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let decoder: MQTTDecoder
    private let packets: AsyncStream<MQTTPacket>.Continuation
    private var pending: ByteBuffer?

    init(decoder: MQTTDecoder, packets: AsyncStream<MQTTPacket>.Continuation) {
        self.decoder = decoder
        self.packets = packets
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        var buffer: ByteBuffer
        if var pending {
            pending.writeBuffer(&bytes)
            buffer = pending
        } else {
            buffer = bytes
        }
        pending = nil
        do {
            while let packet = try decoder.decode(from: &buffer) { packets.yield(packet) }
        } catch {
            packets.finish()
            context.close(promise: nil)
            return
        }
        if buffer.readableBytes > 0 {
            buffer.discardReadBytes()
            pending = buffer
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        packets.finish()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
