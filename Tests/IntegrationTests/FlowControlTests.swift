import MQTTCodec
import NIOCore
import RoostClient
import Synchronization
import XCTest

/// The in-flight window towards a subscriber, pipelined input, and ordering with several
/// publishers at once.
final class FlowControlTests: XCTestCase {
    func testBrokerKeepsWithinTheInflightWindow_v311() async throws { try await inflightWindow(.v3_1_1) }
    func testBrokerKeepsWithinTheInflightWindow_v5() async throws { try await inflightWindow(.v5) }

    /// MQTT 5 Receive Maximum 1 with QoS 2: one message at a time, each completed by PUBREL and
    /// PUBCOMP before the next; all 100 arrive in order.
    func testReceiveMaximumOneAtQoS2_v5() async throws {
        try await withBroker { broker in
            let window = InflightCounter()
            var configuration = broker.client("one-at-a-time", version: .v5).configuration
            configuration.connectProperties.receiveMaximum = 1
            configuration.packetObserver = { direction, packet in window.observe(direction, packet) }
            let subscriber = MQTTClient(configuration: configuration)
            let inbox = Inbox(subscriber.messages)
            try await subscriber.connect()
            _ = try await subscriber.subscribe(to: "one/t", qos: .exactlyOnce)
            let (publisher, _) = try await broker.connectedClient("one-pub", version: .v5)
            for number in 0..<100 {
                _ = try await publisher.publish(to: "one/t", payload: "\(number)", qos: .exactlyOnce)
            }
            let received = try await inbox.take(100)
            XCTAssertEqual(received.map(\.text), (0..<100).map { "\($0)" })
            XCTAssertEqual(window.maximum, 1, "never more than one QoS 2 message in flight")
            try await subscriber.disconnect()
            try await publisher.disconnect()
        }
    }

    func testPipelinedPublishesInOneWriteArriveInOrder_v311() async throws { try await pipelinedPublishes(.v3_1_1) }
    func testPipelinedPublishesInOneWriteArriveInOrder_v5() async throws { try await pipelinedPublishes(.v5) }

    func testConcurrentPublishersKeepTheirOwnOrder_v311() async throws { try await concurrentPublishers(.v3_1_1) }
    func testConcurrentPublishersKeepTheirOwnOrder_v5() async throws { try await concurrentPublishers(.v5) }

    func testConnectSubscribePublishInOneWrite_v311() async throws { try await everythingInOneWrite(.v3_1_1) }
    func testConnectSubscribePublishInOneWrite_v5() async throws { try await everythingInOneWrite(.v5) }

    func testPublishThenDisconnectInOneWriteIsDelivered_v311() async throws { try await publishThenDisconnect(.v3_1_1) }
    func testPublishThenDisconnectInOneWriteIsDelivered_v5() async throws { try await publishThenDisconnect(.v5) }

    /// With `receive_maximum` 5 (MQTT 5: also the client's Receive Maximum), the broker never
    /// has more than 5 unacknowledged QoS 1 messages out to the subscriber, and all 300 arrive.
    private func inflightWindow(_ version: ProtocolVersion) async throws {
        var settings = integrationSettings()
        settings.receiveMaximum = 5
        try await withBroker(settings: settings) { broker in
            let window = InflightCounter()
            var configuration = broker.client("window-sub", version: version).configuration
            configuration.packetObserver = { direction, packet in window.observe(direction, packet) }
            if version == .v5 { configuration.connectProperties.receiveMaximum = 5 }
            let subscriber = MQTTClient(configuration: configuration)
            let inbox = Inbox(subscriber.messages)
            try await subscriber.connect()
            _ = try await subscriber.subscribe(to: "window/t", qos: .atLeastOnce)

            let (publisher, _) = try await broker.connectedClient("window-pub", version: version)
            let count = 300
            for number in 0..<count {
                _ = try await publisher.publish(to: "window/t", payload: "\(number)", qos: .atLeastOnce)
            }
            let received = try await inbox.take(count, timeout: 15)
            XCTAssertEqual(received.map(\.text), (0..<count).map { "\($0)" }, "\(version)")
            XCTAssertLessThanOrEqual(window.maximum, 5, "\(version): never more than receive_maximum in flight")
            XCTAssertGreaterThan(window.maximum, 0)
            try await subscriber.disconnect()
            try await publisher.disconnect()
        }
    }

    /// A raw publisher writes 100 QoS 1 PUBLISH at once, five times (within the broker's Receive
    /// Maximum of 100): 100 PUBACKs for each batch, and the subscriber gets all 500 in order.
    private func pipelinedPublishes(_ version: ProtocolVersion) async throws {
        try await withBroker { broker in
            let (subscriber, inbox) = try await broker.connectedClient("pipe-sub", version: version)
            _ = try await subscriber.subscribe(to: "pipe/t", qos: .atLeastOnce)
            let raw = try await broker.rawConnection(version: version)
            _ = try await raw.handshake(Connect(version: version, clientID: "pipe-pub"))
            for batch in 0..<5 {
                let packets = (0..<100).map { index -> MQTTPacket in
                    let number = batch * 100 + index
                    return .publish(Publish(
                        topic: "pipe/t", payload: ByteBuffer(string: "\(number)"), qos: .atLeastOnce, packetID: UInt16(index + 1)))
                }
                try await raw.send(packets)
                let acks = try await raw.packets.take(100)
                XCTAssertEqual(acks, (1...100).map { .puback(Ack(packetID: UInt16($0))) }, "\(version) batch \(batch)")
            }
            let received = try await inbox.take(500, timeout: 15)
            XCTAssertEqual(received.map(\.text), (0..<500).map { "\($0)" }, "\(version)")
            try await raw.send(.disconnect(Disconnect()))
            await raw.close()
            try await subscriber.disconnect()
        }
    }

    /// Four publishers publish 150 messages each at the same time (on both loops); the
    /// subscriber gets all 600, and each publisher's messages in that publisher's order.
    private func concurrentPublishers(_ version: ProtocolVersion) async throws {
        try await withBroker { broker in
            let (subscriber, inbox) = try await broker.connectedClient("many-sub", version: version)
            _ = try await subscriber.subscribe(to: "many/#", qos: .exactlyOnce)
            var publishers: [MQTTClient] = []
            for index in 0..<4 {
                publishers.append(try await broker.connectedClient("many-pub-\(index)", version: version).0)
            }
            let perPublisher = 150
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (index, publisher) in publishers.enumerated() {
                    group.addTask {
                        let qos: QoS = index % 2 == 0 ? .atLeastOnce : .exactlyOnce
                        for number in 0..<perPublisher {
                            _ = try await publisher.publish(to: "many/\(index)", payload: "\(index):\(number)", qos: qos)
                        }
                    }
                }
                try await group.waitForAll()
            }
            let received = try await inbox.take(4 * perPublisher, timeout: 15)
            for index in 0..<4 {
                let mine = received.filter { $0.topic == "many/\(index)" }.map(\.text)
                XCTAssertEqual(mine, (0..<perPublisher).map { "\(index):\($0)" }, "\(version) publisher \(index)")
            }
            for client in publishers + [subscriber] { try await client.disconnect() }
        }
    }

    /// CONNECT, SUBSCRIBE and PUBLISH written before the CONNACK arrives: handled in order.
    private func everythingInOneWrite(_ version: ProtocolVersion) async throws {
        try await withBroker { broker in
            let raw = try await broker.rawConnection(version: version)
            try await raw.send([
                .connect(Connect(version: version, clientID: "eager")),
                .subscribe(Subscribe(packetID: 1, subscriptions: [Subscription(filter: "eager/t", qos: .atLeastOnce)])),
                .publish(Publish(topic: "eager/t", payload: ByteBuffer(string: "to myself"), qos: .atLeastOnce, packetID: 2)),
            ])
            guard case .connack(let connAck) = try await raw.receive() else { return XCTFail("\(version): expected CONNACK") }
            XCTAssertEqual(connAck.reasonCode, .success)
            guard case .suback(let subAck) = try await raw.receive() else { return XCTFail("\(version): expected SUBACK") }
            XCTAssertEqual(subAck.reasonCodes, [.grantedQoS1])
            // PUBACK for our PUBLISH and the PUBLISH to our subscription, in either order.
            var gotAck = false
            var gotMessage = false
            for _ in 0..<2 {
                switch try await raw.receive() {
                case .puback(let ack): gotAck = ack.packetID == 2
                case .publish(let publish): gotMessage = publish.topic == "eager/t" && String(buffer: publish.payload) == "to myself"
                case let other: XCTFail("\(version): unexpected \(other)")
                }
            }
            XCTAssertTrue(gotAck, "\(version): PUBACK")
            XCTAssertTrue(gotMessage, "\(version): own message delivered")
            await raw.close()
        }
    }

    /// The last PUBLISH before DISCONNECT, in the same TCP segment, is still delivered.
    private func publishThenDisconnect(_ version: ProtocolVersion) async throws {
        try await withBroker { broker in
            let (subscriber, inbox) = try await broker.connectedClient("last-sub", version: version)
            _ = try await subscriber.subscribe(to: "last/#", qos: .atLeastOnce)
            for qos in [QoS.atMostOnce, .atLeastOnce, .exactlyOnce] {
                let raw = try await broker.rawConnection(version: version)
                _ = try await raw.handshake(Connect(version: version, clientID: "last-pub"))
                try await raw.send([
                    .publish(Publish(
                        topic: "last/\(qos.rawValue)", payload: ByteBuffer(string: "final words"), qos: qos,
                        packetID: qos == .atMostOnce ? 0 : 9)),
                    .disconnect(Disconnect()),
                ])
                let message = try await inbox.next()
                XCTAssertEqual(message.topic, "last/\(qos.rawValue)", "\(version)")
                XCTAssertEqual(message.text, "final words")
                await raw.close()
            }
            try await subscriber.disconnect()
        }
    }
}

/// Counts QoS 1 and 2 PUBLISH received and not yet completed (PUBACK / PUBCOMP sent), from a
/// client's packet observer.
///
/// Concurrency: `Sendable`; a `Mutex` guards the counts (the observer runs on the EventLoop).
final class InflightCounter: Sendable {
    private struct Counts {
        var current = 0
        var maximum = 0
    }

    private let counts = Mutex(Counts())

    var maximum: Int { counts.withLock { $0.maximum } }

    func observe(_ direction: MQTTPacketDirection, _ packet: MQTTPacket) {
        counts.withLock { counts in
            switch (direction, packet) {
            case (.received, .publish(let publish)) where publish.qos != .atMostOnce:
                counts.current += 1
                counts.maximum = max(counts.maximum, counts.current)
            case (.sent, .puback), (.sent, .pubcomp):
                counts.current -= 1
            default:
                break
            }
        }
    }
}
