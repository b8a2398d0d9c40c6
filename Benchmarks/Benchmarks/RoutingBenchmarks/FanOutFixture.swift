import Logging
import MQTTCodec
import NIOCore
import NIOEmbedded
import RoostCore
@_spi(Benchmarks) import RoostServer

/// Writes seen by every subscriber's socket together.
final class WriteTally {
    var writes = 0
}

/// Stands in for the socket under a connection: takes every write at once (always writable),
/// counts it and lets the bytes go, so the broker's own buffers are all that is measured.
final class DiscardingSink: ChannelOutboundHandler {
    typealias OutboundIn = ByteBuffer

    private(set) var writes = 0
    private let tally: WriteTally?

    init(tally: WriteTally? = nil) {
        self.tally = tally
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        writes += 1
        tally?.writes += 1
        promise?.succeed(())
    }

    func flush(context: ChannelHandlerContext) {}
}

/// A real `Broker` with real connections (the pipeline `Server` gives an accepted TCP socket)
/// on `EmbeddedChannel`s of one `EmbeddedEventLoop`: `subscribers` clients subscribed to one
/// topic at QoS 0 and one publisher. ``publish()`` hands the publisher's connection one read of
/// a QoS 0 PUBLISH, as NIO would after a socket read: decode, route (the publisher's route
/// cache), enqueue into every subscriber's session, wake, drain, encode and one write each.
///
/// Must be made and used on one thread (the embedded loop's).
final class FanOutFixture {
    let loop = EmbeddedEventLoop()
    let broker: Broker
    let logger: Logger
    let subscriberSinks: [DiscardingSink]
    let publisher: EmbeddedChannel
    /// One encoded PUBLISH (topic, 64-byte payload): the bytes of one socket read.
    let publishBytes: ByteBuffer
    let subscriberCount: Int
    /// Writes to all subscribers' sockets so far (one per delivered PUBLISH once set up).
    let delivered = WriteTally()
    private var channels: [EmbeddedChannel] = []

    init(subscribers: Int, version: ProtocolVersion, topic: String = "site/42/device/7/sensor", payloadSize: Int = 64) throws {
        var logger = Logger(label: "roost-bench", factory: { StreamLogHandler.standardError(label: $0) })
        logger.logLevel = .info
        self.logger = logger
        let loop = loop
        broker = Broker(settings: BrokerSettings(), logger: logger, clock: { loop.now.uptimeNanoseconds / 1_000_000 })
        subscriberCount = subscribers
        let encoder = MQTTEncoder(version: version)

        var sinks: [DiscardingSink] = []
        for index in 0..<subscribers {
            let (channel, sink) = try Self.open(loop: loop, broker: broker, logger: logger, tally: delivered)
            Self.read(channel, encoder, .connect(Connect(version: version, keepAlive: 0, clientID: "sub-\(index)")), loop: loop)
            let subscribe = Subscribe(packetID: 1, subscriptions: [Subscription(filter: topic, qos: .atMostOnce)])
            Self.read(channel, encoder, .subscribe(subscribe), loop: loop)
            guard sink.writes == 2 else { throw FixtureError.setup("subscriber \(index) got \(sink.writes) packets, not CONNACK and SUBACK") }
            sinks.append(sink)
            channels.append(channel)
        }
        subscriberSinks = sinks
        let (publisher, publisherSink) = try Self.open(loop: loop, broker: broker, logger: logger)
        Self.read(publisher, encoder, .connect(Connect(version: version, keepAlive: 0, clientID: "publisher")), loop: loop)
        guard publisherSink.writes == 1 else { throw FixtureError.setup("the publisher got no CONNACK") }
        self.publisher = publisher
        channels.append(publisher)

        var bytes = ByteBuffer()
        encoder.encode(.publish(Publish(topic: topic, payload: ByteBuffer(repeating: 0x5A, count: payloadSize))), into: &bytes)
        publishBytes = bytes

        // Every subscriber gets the message (and the route cache is warm from here on).
        publish()
        for (index, sink) in sinks.enumerated() where sink.writes != 3 {
            throw FixtureError.setup("subscriber \(index) did not get the PUBLISH (\(sink.writes) writes)")
        }
    }

    /// One socket read on the publisher's connection holding one QoS 0 PUBLISH, the end of the
    /// read batch (where the connection wakes and drains its subscribers) and the end of the
    /// loop's tick (tasks the connections left for it).
    @inline(__always)
    func publish() {
        let pipeline = publisher.pipeline.syncOperations
        pipeline.fireChannelRead(NIOAny(publishBytes))
        pipeline.fireChannelReadComplete()
        loop.run()
    }

    private static func open(
        loop: EmbeddedEventLoop, broker: Broker, logger: Logger, tally: WriteTally? = nil
    ) throws -> (EmbeddedChannel, DiscardingSink) {
        let channel = EmbeddedChannel(loop: loop)
        let sink = DiscardingSink(tally: tally)
        try channel.pipeline.syncOperations.addHandler(sink)
        // The pipeline the server builds for an accepted plain TCP socket.
        try Server.configurePipeline(channel, listener: .default, broker: broker, logger: logger, admitted: false)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return (channel, sink)
    }

    private static func read(_ channel: EmbeddedChannel, _ encoder: MQTTEncoder, _ packet: MQTTPacket, loop: EmbeddedEventLoop) {
        var bytes = ByteBuffer()
        encoder.encode(packet, into: &bytes)
        let pipeline = channel.pipeline.syncOperations
        pipeline.fireChannelRead(NIOAny(bytes))
        pipeline.fireChannelReadComplete()
        loop.run()
    }

    enum FixtureError: Error {
        case setup(String)
    }
}
