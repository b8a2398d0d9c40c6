import MQTTCodec
import NIOCore
import RoostClient
import XCTest

/// Retained messages: kept, sent on SUBSCRIBE with the retain flag, replaced, and deleted by an
/// empty payload [MQTT-3.3.1-5, -6, -10, -11].
final class RetainedTests: XCTestCase {
    func testRetainedLifecycle_v311() async throws { try await retainedLifecycle(.v3_1_1) }
    func testRetainedLifecycle_v5() async throws { try await retainedLifecycle(.v5) }

    func testRetainedDeliveredOnWildcardSubscribe_v311() async throws { try await retainedOnWildcard(.v3_1_1) }
    func testRetainedDeliveredOnWildcardSubscribe_v5() async throws { try await retainedOnWildcard(.v5) }

    private func retainedLifecycle(_ version: ProtocolVersion) async throws {
        try await withBroker { broker in
            let (publisher, _) = try await broker.connectedClient("ret-pub", version: version)
            _ = try await publisher.publish(to: "ret/a", payload: "one", qos: .atLeastOnce, retain: true)

            // Delivered on subscribe, with the retain flag, at the lower QoS.
            let (first, firstInbox) = try await broker.connectedClient("ret-sub-1", version: version)
            _ = try await first.subscribe(to: "ret/a", qos: .exactlyOnce)
            let initial = try await firstInbox.next()
            XCTAssertEqual(initial.text, "one")
            XCTAssertTrue(initial.retain, "\(version): a retained message sent on SUBSCRIBE has the retain flag")
            XCTAssertEqual(initial.qos, .atLeastOnce)

            // Replaced: the live subscriber gets it without the retain flag [MQTT-3.3.1-9].
            _ = try await publisher.publish(to: "ret/a", payload: "two", qos: .atLeastOnce, retain: true)
            let live = try await firstInbox.next()
            XCTAssertEqual(live.text, "two")
            XCTAssertFalse(live.retain, "\(version): a live delivery clears the retain flag")

            // A new subscriber gets only the replacement.
            let (second, secondInbox) = try await broker.connectedClient("ret-sub-2", version: version)
            _ = try await second.subscribe([
                Subscription(filter: "ret/a", qos: .atLeastOnce), Subscription(filter: "ret/fence", qos: .atLeastOnce),
            ])
            _ = try await publisher.publish(to: "ret/fence", payload: "fence", qos: .atLeastOnce)
            let replaced = try await secondInbox.takeUntil { $0.topic == "ret/fence" }
            XCTAssertEqual(replaced.map(\.text), ["two"], "\(version): the retained message was replaced")
            XCTAssertEqual(replaced.map(\.retain), [true])

            // An empty retained payload deletes it; it is still delivered to current subscribers.
            _ = try await publisher.publish(to: "ret/a", payload: "", qos: .atLeastOnce, retain: true)
            let deletion = try await firstInbox.next()
            XCTAssertEqual(deletion.payload.readableBytes, 0)

            let (third, thirdInbox) = try await broker.connectedClient("ret-sub-3", version: version)
            _ = try await third.subscribe([
                Subscription(filter: "ret/#", qos: .atLeastOnce), Subscription(filter: "fence/3", qos: .atLeastOnce),
            ])
            _ = try await publisher.publish(to: "fence/3", payload: "fence", qos: .atLeastOnce)
            let afterDelete = try await thirdInbox.takeUntil { $0.topic == "fence/3" }
            XCTAssertEqual(afterDelete.map(\.topic), [], "\(version): nothing retained after the empty payload")

            for client in [publisher, first, second, third] { try await client.disconnect() }
        }
    }

    /// A wildcard SUBSCRIBE gets every matching retained message (and no other), each once.
    private func retainedOnWildcard(_ version: ProtocolVersion) async throws {
        try await withBroker { broker in
            let (publisher, _) = try await broker.connectedClient("retw-pub", version: version)
            let retainedTopics = ["home/kitchen/temp", "home/hall/temp", "home/kitchen/light", "garden/temp"]
            for topic in retainedTopics {
                _ = try await publisher.publish(to: topic, payload: "v:" + topic, qos: .atLeastOnce, retain: true)
            }
            _ = try await publisher.publish(to: "home/attic/temp", payload: "not retained", qos: .atLeastOnce)

            let (subscriber, inbox) = try await broker.connectedClient("retw-sub", version: version)
            _ = try await subscriber.subscribe([
                Subscription(filter: "home/+/temp", qos: .atLeastOnce), Subscription(filter: "retw/fence", qos: .atLeastOnce),
            ])
            _ = try await publisher.publish(to: "retw/fence", payload: "fence", qos: .atLeastOnce)
            let received = try await inbox.takeUntil { $0.topic == "retw/fence" }
            XCTAssertEqual(received.map(\.topic).sorted(), ["home/hall/temp", "home/kitchen/temp"], "\(version)")
            XCTAssertTrue(received.allSatisfy { $0.retain && $0.text == "v:" + $0.topic })
            try await subscriber.disconnect()
            try await publisher.disconnect()
        }
    }
}
