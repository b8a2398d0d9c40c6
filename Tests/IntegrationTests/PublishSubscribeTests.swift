import MQTTCodec
import NIOCore
import RoostClient
import XCTest

/// PUBLISH to SUBSCRIBE end to end at every QoS, and ordering under load, over real sockets.
final class PublishSubscribeTests: XCTestCase {
    func testEachQoSEndToEnd_v311() async throws { try await eachQoSEndToEnd(.v3_1_1) }
    func testEachQoSEndToEnd_v5() async throws { try await eachQoSEndToEnd(.v5) }

    func testFiveHundredInOrderAtQoS1_v311() async throws { try await fiveHundredInOrder(.v3_1_1, qos: .atLeastOnce) }
    func testFiveHundredInOrderAtQoS1_v5() async throws { try await fiveHundredInOrder(.v5, qos: .atLeastOnce) }
    func testFiveHundredInOrderAtQoS2_v311() async throws { try await fiveHundredInOrder(.v3_1_1, qos: .exactlyOnce) }
    func testFiveHundredInOrderAtQoS2_v5() async throws { try await fiveHundredInOrder(.v5, qos: .exactlyOnce) }

    func testDeliveredQoSIsTheLowerOfPublishAndSubscription_v311() async throws { try await qosDowngrade(.v3_1_1) }
    func testDeliveredQoSIsTheLowerOfPublishAndSubscription_v5() async throws { try await qosDowngrade(.v5) }

    func testUnsubscribeStopsDelivery_v311() async throws { try await unsubscribe(.v3_1_1) }
    func testUnsubscribeStopsDelivery_v5() async throws { try await unsubscribe(.v5) }

    /// A binary payload (every byte value, twice) arrives byte for byte at QoS 0, 1 and 2; the
    /// publisher gets PUBACK for QoS 1 and PUBCOMP for QoS 2.
    private func eachQoSEndToEnd(_ version: ProtocolVersion) async throws {
        try await withBroker { broker in
            let (subscriber, inbox) = try await broker.connectedClient("qos-sub", version: version)
            let (publisher, _) = try await broker.connectedClient("qos-pub", version: version)
            let payload = ByteBuffer(bytes: (0..<512).map { UInt8($0 % 256) })
            for qos in [QoS.atMostOnce, .atLeastOnce, .exactlyOnce] {
                let topic = "it/qos/\(qos.rawValue)"
                let subAck = try await subscriber.subscribe(to: topic, qos: qos)
                XCTAssertEqual(subAck.reasonCodes, [ReasonCode(qos.rawValue)], "\(version) SUBACK grants QoS \(qos)")

                let ack = try await publisher.publish(Publish(topic: topic, payload: payload, qos: qos))
                switch qos {
                case .atMostOnce: XCTAssertNil(ack)
                case .atLeastOnce, .exactlyOnce: XCTAssertEqual(ack?.reasonCode, .success, "\(version) QoS \(qos) ack")
                }

                let message = try await inbox.next()
                XCTAssertEqual(message.topic, topic)
                XCTAssertEqual(message.payload, payload, "\(version) QoS \(qos) payload")
                XCTAssertEqual(message.qos, qos)
                XCTAssertFalse(message.retain)
                XCTAssertFalse(message.dup)
            }
            let extra = await inbox.unexpected(within: 0.05)
            XCTAssertEqual(extra.map(\.topic), [], "\(version): one copy of each")
            try await publisher.disconnect()
            try await subscriber.disconnect()
        }
    }

    /// 500 numbered messages from one publisher reach a subscriber on another connection in the
    /// order sent, each once. With two event loops the two connections usually sit on different
    /// loops; either way the order must hold.
    private func fiveHundredInOrder(_ version: ProtocolVersion, qos: QoS) async throws {
        try await withBroker { broker in
            let (subscriber, inbox) = try await broker.connectedClient("order-sub", version: version)
            _ = try await subscriber.subscribe(to: "it/order", qos: qos)
            let (publisher, _) = try await broker.connectedClient("order-pub", version: version)

            let count = 500
            for number in 0..<count {
                let ack = try await publisher.publish(to: "it/order", payload: "\(number)", qos: qos)
                XCTAssertEqual(ack?.reasonCode, .success)
            }
            let received = try await inbox.take(count, timeout: 15)
            let numbers = received.map(\.text)
            XCTAssertEqual(numbers, (0..<count).map { "\($0)" }, "\(version) QoS \(qos): in order, no gaps")
            XCTAssertTrue(received.allSatisfy { $0.qos == qos && !$0.dup })
            // Nothing after the 500th (a duplicate would show up here).
            _ = try await publisher.publish(to: "it/order", payload: "fence", qos: qos)
            let rest = try await inbox.takeUntil { $0.text == "fence" }
            XCTAssertEqual(rest.map(\.text), [], "\(version) QoS \(qos): no duplicates")

            try await publisher.disconnect()
            try await subscriber.disconnect()
        }
    }

    /// A message is delivered at the lower of its publish QoS and the subscription QoS.
    private func qosDowngrade(_ version: ProtocolVersion) async throws {
        try await withBroker { broker in
            let (subscriber, inbox) = try await broker.connectedClient("down-sub", version: version)
            _ = try await subscriber.subscribe([
                Subscription(filter: "down/0", qos: .atMostOnce),
                Subscription(filter: "down/1", qos: .atLeastOnce),
                Subscription(filter: "down/2", qos: .exactlyOnce),
            ])
            let (publisher, _) = try await broker.connectedClient("down-pub", version: version)
            let levels: [QoS] = [.atMostOnce, .atLeastOnce, .exactlyOnce]
            var expected: [String] = []
            for subscribed in levels {
                for published in levels {
                    let name = "\(subscribed.rawValue)/\(published.rawValue)"
                    _ = try await publisher.publish(to: "down/\(subscribed.rawValue)", payload: name, qos: published)
                    expected.append("\(name)=\(min(subscribed, published).rawValue)")
                }
            }
            // Sorted: this is about QoS; order across topics is tested elsewhere.
            let received = try await inbox.take(9)
            XCTAssertEqual(received.map { "\($0.text)=\($0.qos.rawValue)" }.sorted(), expected.sorted(), "\(version)")
            try await publisher.disconnect()
            try await subscriber.disconnect()
        }
    }

    /// After UNSUBACK nothing more comes for the filter; the other subscription stays.
    /// MQTT 5 UNSUBACK says 0x11 for a filter that was not subscribed.
    private func unsubscribe(_ version: ProtocolVersion) async throws {
        try await withBroker { broker in
            let (subscriber, inbox) = try await broker.connectedClient("unsub", version: version)
            _ = try await subscriber.subscribe([
                Subscription(filter: "un/a", qos: .atLeastOnce), Subscription(filter: "un/b", qos: .atLeastOnce),
            ])
            let (publisher, _) = try await broker.connectedClient("unsub-pub", version: version)
            _ = try await publisher.publish(to: "un/a", payload: "a1", qos: .atLeastOnce)
            let before = try await inbox.next()
            XCTAssertEqual(before.text, "a1")

            let unsubAck = try await subscriber.unsubscribe(["un/a", "un/never"])
            if version == .v5 {
                XCTAssertEqual(unsubAck.reasonCodes, [.success, .noSubscriptionExisted])
            } else {
                XCTAssertEqual(unsubAck.reasonCodes, [])
            }
            _ = try await publisher.publish(to: "un/a", payload: "a2", qos: .atLeastOnce)
            _ = try await publisher.publish(to: "un/b", payload: "b1", qos: .atLeastOnce)
            let after = try await inbox.next()
            XCTAssertEqual(after.text, "b1", "\(version): nothing for the removed filter")
            try await subscriber.disconnect()
            try await publisher.disconnect()
        }
    }
}
