import MQTTCodec
import NIOCore
import RoostCore
import XCTest

@testable import RoostServer

/// Output held for the store is bounded like a socket that does not drain: while an ack waits
/// for a commit that does not come (a full disk), deliveries stay in the session's queue, where
/// its bounds apply, instead of piling up in the held output. (Found in review.)
final class HeldOutputTests: XCTestCase {
    func testHeldOutputStopsTheDrainAndTheQueueBoundApplies() throws {
        let store = ManualStore()
        var settings = BrokerSettings()
        settings.maxQueuedMessages = 100
        let harness = Harness(settings: settings, store: store)
        let subscriber = try harness.open(version: .v5)
        try subscriber.send(.connect(.v5("sub", expiry: 300)))
        store.commit()
        harness.loop.run()
        try subscriber.send(.subscribe(Subscribe(packetID: 1, subscriptions: [Subscription(filter: "g", qos: .atMostOnce)])))
        store.commit()
        harness.loop.run()
        _ = try subscriber.receive()
        // A second SUBSCRIBE whose SUBACK waits for a commit that does not come yet.
        try subscriber.send(.subscribe(Subscribe(packetID: 2, subscriptions: [Subscription(filter: "h", qos: .atLeastOnce)])))
        let (publisher, _) = try harness.connect(.v5("pub"))
        let payload = String(repeating: "x", count: 1000)
        for _ in 0..<5000 {
            try publisher.send(.publish(Publish(topic: "g", payload: ByteBuffer(string: payload))))
        }
        XCTAssertEqual(try subscriber.receive().count, 0, "everything waits behind the SUBACK")
        store.commit()
        harness.loop.run()
        let delivered = try subscriber.publishes().count
        // 64 kB of held output (about 64 messages) plus the queue bound (100), not 5000.
        XCTAssertLessThanOrEqual(delivered, 64 + 100 + 2, "QoS 0 deliveries piled up in the held output")
        XCTAssertGreaterThan(delivered, 100, "the held ones and the queued ones went out after the commit")
    }
}
