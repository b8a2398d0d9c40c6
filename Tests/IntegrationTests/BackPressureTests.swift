import MQTTCodec
import NIOCore
import RoostClient
import XCTest

/// A subscriber that stops reading must not hold up the publisher or the other subscribers
/// (ARCHITECTURE.md, "Back-pressure").
final class BackPressureTests: XCTestCase {
    func testStuckSubscriberDoesNotBlockOthers_v311() async throws { try await stuckSubscriber(.v3_1_1) }
    func testStuckSubscriberDoesNotBlockOthers_v5() async throws { try await stuckSubscriber(.v5) }

    /// A raw subscriber stops reading its socket; 1,200 QoS 1 messages of 16 KiB (19 MB, more
    /// than the loopback socket buffers hold) are published. The publisher gets every PUBACK, a
    /// healthy subscriber gets every message in order, and once the stuck one reads again it gets
    /// an ordered subset without duplicates (its bounded queue dropped the rest), then live traffic.
    private func stuckSubscriber(_ version: ProtocolVersion) async throws {
        var settings = integrationSettings()
        settings.maxQueuedMessages = 100
        try await withBroker(settings: settings, timeout: 45) { broker in
            let stuck = try await broker.rawConnection(version: version, autoRead: false)
            try await stuck.send(.connect(Connect(version: version, keepAlive: 0, clientID: "stuck")))
            try await stuck.send(.subscribe(Subscribe(packetID: 1, subscriptions: [Subscription(filter: "bp/t", qos: .atMostOnce)])))
            let (healthy, inbox) = try await broker.connectedClient("healthy", version: version)
            _ = try await healthy.subscribe(to: "bp/t", qos: .atLeastOnce)
            // The stuck connection's SUBACK cannot be read yet; give the broker a moment to handle
            // its SUBSCRIBE before publishing.
            let (publisher, _) = try await broker.connectedClient("bp-pub", version: version)
            try await Task.sleep(for: .milliseconds(100))

            let count = 1200
            let filler = String(repeating: "x", count: 16 * 1024)
            for number in 0..<count {
                _ = try await publisher.publish(to: "bp/t", payload: "\(number) \(filler)", qos: .atLeastOnce)
            }
            let received = try await inbox.take(count, timeout: 30)
            let numbers = received.map { Int($0.text.prefix { $0 != " " }) ?? -1 }
            XCTAssertEqual(numbers, Array(0..<count), "\(version): the healthy subscriber got everything in order")

            try await stuck.resumeReading()
            let stuckFirst = try await stuck.packets.take(2, timeout: 10)
            guard case .connack = stuckFirst[0], case .suback = stuckFirst[1] else {
                return XCTFail("\(version): expected CONNACK and SUBACK, got \(stuckFirst)")
            }
            // Let the backlog (socket buffers, then the bounded queue) drain before live traffic;
            // a message published while the queue is still full is dropped, as designed.
            var seen = -1
            let deadline = ContinuousClock.now + .seconds(10)
            while stuck.packets.all.count != seen && ContinuousClock.now < deadline {
                seen = stuck.packets.all.count
                try await Task.sleep(for: .milliseconds(300))
            }
            _ = try await publisher.publish(to: "bp/t", payload: "\(count) live", qos: .atLeastOnce)
            let backlog = try await stuck.packets.takeUntil(timeout: 15) { packet in
                if case .publish(let publish) = packet { return publish.text.hasPrefix("\(count) ") }
                return false
            }
            let stuckNumbers = backlog.compactMap { packet -> Int? in
                guard case .publish(let publish) = packet else { return nil }
                return Int(publish.text.prefix { $0 != " " })
            }
            XCTAssertEqual(stuckNumbers, stuckNumbers.sorted(), "\(version): what the stuck subscriber got is in order")
            XCTAssertEqual(Set(stuckNumbers).count, stuckNumbers.count, "\(version): no duplicates")
            XCTAssertLessThan(stuckNumbers.count, count, "\(version): the bounded queue dropped messages")
            await stuck.close()
            try await healthy.disconnect()
            try await publisher.disconnect()
        }
    }
}
