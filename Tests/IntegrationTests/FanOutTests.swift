import MQTTCodec
import RoostClient
import XCTest

/// One publisher, many subscribers spread over both event loops: every subscriber gets every
/// message, in order, once.
final class FanOutTests: XCTestCase {
    func testFanOutToTwentySubscribers_v311() async throws { try await fanOut(.v3_1_1) }
    func testFanOutToTwentySubscribers_v5() async throws { try await fanOut(.v5) }

    private func fanOut(_ version: ProtocolVersion) async throws {
        let subscriberCount = 20
        let messageCount = 200
        try await withBroker { broker in
            var subscribers: [(MQTTClient, Inbox<Publish>)] = []
            for index in 0..<subscriberCount {
                let (client, inbox) = try await broker.connectedClient("fan-\(index)", version: version)
                _ = try await client.subscribe(to: "fan/#", qos: .atLeastOnce)
                subscribers.append((client, inbox))
            }
            let (publisher, _) = try await broker.connectedClient("fan-pub", version: version)
            for number in 0..<messageCount {
                let ack = try await publisher.publish(to: "fan/load", payload: "\(number)", qos: .atLeastOnce)
                XCTAssertEqual(ack?.reasonCode, .success)
            }
            _ = try await publisher.publish(to: "fan/fence", payload: "fence", qos: .atLeastOnce)

            let expected = (0..<messageCount).map { "\($0)" }
            for (index, (_, inbox)) in subscribers.enumerated() {
                let received = try await inbox.takeUntil(timeout: 15) { $0.topic == "fan/fence" }
                XCTAssertEqual(received.map(\.text), expected, "\(version): subscriber \(index) got all \(messageCount) in order")
                XCTAssertTrue(received.allSatisfy { $0.qos == .atLeastOnce && !$0.dup })
            }
            for (client, _) in subscribers { try await client.disconnect() }
            try await publisher.disconnect()
        }
    }
}
