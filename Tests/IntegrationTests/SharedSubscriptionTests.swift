import MQTTCodec
import RoostClient
import XCTest

/// `$share/{group}/{filter}`: each message goes to exactly one member of the group (MQTT 5:
/// 4.8.2; Roost accepts the same syntax from 3.1.1 clients, as Mosquitto does).
final class SharedSubscriptionTests: XCTestCase {
    func testSharedGroupSplitsMessagesExactlyOnce_v311() async throws { try await splitBetweenMembers(.v3_1_1) }
    func testSharedGroupSplitsMessagesExactlyOnce_v5() async throws { try await splitBetweenMembers(.v5) }

    func testSharedAndOrdinarySubscriptionsBothDeliver_v311() async throws { try await sharedBesideOrdinary(.v3_1_1) }
    func testSharedAndOrdinarySubscriptionsBothDeliver_v5() async throws { try await sharedBesideOrdinary(.v5) }

    func testUnacknowledgedSharedMessagesGoToAnotherMember_v311() async throws { try await handOver(.v3_1_1) }
    func testUnacknowledgedSharedMessagesGoToAnotherMember_v5() async throws { try await handOver(.v5) }

    func testUnsubscribeFromSharedGroup_v311() async throws { try await leaveGroup(.v3_1_1) }
    func testUnsubscribeFromSharedGroup_v5() async throws { try await leaveGroup(.v5) }

    /// 100 messages to a group of two: every message reaches exactly one member, both get some.
    private func splitBetweenMembers(_ version: ProtocolVersion) async throws {
        try await withBroker { broker in
            var members: [(MQTTClient, Inbox<Publish>)] = []
            for index in 0..<2 {
                let (member, inbox) = try await broker.connectedClient("member-\(index)", version: version)
                let subAck = try await member.subscribe([
                    Subscription(filter: "$share/g/x", qos: .atLeastOnce),
                    Subscription(filter: "fence", qos: .atLeastOnce),
                ])
                XCTAssertEqual(subAck.reasonCodes, [.grantedQoS1, .grantedQoS1], "\(version)")
                members.append((member, inbox))
            }
            let (publisher, _) = try await broker.connectedClient("shared-pub", version: version)
            let count = 100
            for number in 0..<count {
                _ = try await publisher.publish(to: "x", payload: "\(number)", qos: .atLeastOnce)
            }
            _ = try await publisher.publish(to: "fence", payload: "fence", qos: .atLeastOnce)

            var all: [Int] = []
            for (index, (_, inbox)) in members.enumerated() {
                let received = try await inbox.takeUntil { $0.topic == "fence" }
                XCTAssertFalse(received.isEmpty, "\(version): member \(index) got a share")
                XCTAssertTrue(received.allSatisfy { $0.topic == "x" })
                let numbers = received.compactMap { Int($0.text) }
                XCTAssertEqual(numbers, numbers.sorted(), "\(version): each member's share is in order")
                all += numbers
            }
            XCTAssertEqual(all.sorted(), Array(0..<count), "\(version): every message exactly once in total")

            for (member, _) in members { try await member.disconnect() }
            try await publisher.disconnect()
        }
    }

    /// A client in the group that also has an ordinary subscription to the topic gets its share
    /// through the group and every message through the ordinary one; another client with only the
    /// ordinary subscription gets every message once.
    private func sharedBesideOrdinary(_ version: ProtocolVersion) async throws {
        try await withBroker { broker in
            let (member, memberInbox) = try await broker.connectedClient("sb-member", version: version)
            _ = try await member.subscribe([Subscription(filter: "$share/g/sb/#", qos: .atLeastOnce), Subscription(filter: "fence")])
            let (ordinary, ordinaryInbox) = try await broker.connectedClient("sb-ordinary", version: version)
            _ = try await ordinary.subscribe([Subscription(filter: "sb/#", qos: .atLeastOnce), Subscription(filter: "fence")])

            let (publisher, _) = try await broker.connectedClient("sb-pub", version: version)
            for number in 0..<10 {
                _ = try await publisher.publish(to: "sb/t", payload: "\(number)", qos: .atLeastOnce)
            }
            _ = try await publisher.publish(to: "fence", payload: "fence", qos: .atLeastOnce)
            let memberGot = try await memberInbox.takeUntil { $0.topic == "fence" }
            XCTAssertEqual(memberGot.map(\.text), (0..<10).map { "\($0)" }, "\(version): the only member gets all")
            let ordinaryGot = try await ordinaryInbox.takeUntil { $0.topic == "fence" }
            XCTAssertEqual(ordinaryGot.map(\.text), (0..<10).map { "\($0)" }, "\(version): the ordinary subscriber gets all")
            for client in [member, ordinary, publisher] { try await client.disconnect() }
        }
    }

    /// A group member that never acknowledges (a raw connection) drops its connection: the
    /// messages it held go to the other member, so the group gets every message.
    private func handOver(_ version: ProtocolVersion) async throws {
        try await withBroker { broker in
            let raw = try await broker.rawConnection(version: version)
            _ = try await raw.handshake(Connect(version: version, clientID: "holder"))
            _ = try await raw.subscribe("$share/g/ho/#", qos: .atLeastOnce)
            let (member, inbox) = try await broker.connectedClient("taker", version: version)
            _ = try await member.subscribe(to: "$share/g/ho/#", qos: .atLeastOnce)

            let (publisher, _) = try await broker.connectedClient("ho-pub", version: version)
            let count = 20
            for number in 0..<count {
                _ = try await publisher.publish(to: "ho/t", payload: "\(number)", qos: .atLeastOnce)
            }
            // Wait until the holder has its share (unacknowledged), then drop it.
            func held() -> [Int] {
                raw.packets.all.compactMap { packet in
                    guard case .publish(let publish) = packet else { return nil }
                    return Int(publish.text)
                }
            }
            let deadline = ContinuousClock.now + .seconds(5)
            while held().count + inbox.all.count < count {
                guard ContinuousClock.now < deadline else {
                    throw IntegrationError("\(version): holder \(held()), taker \(inbox.all.map(\.text)) of \(count)")
                }
                try await Task.sleep(for: .milliseconds(2))
            }
            XCTAssertFalse(held().isEmpty, "\(version): the holder got a share")
            await raw.close()

            let received = try await inbox.take(count, timeout: 10)
            XCTAssertEqual(received.compactMap { Int($0.text) }.sorted(), Array(0..<count), "\(version): the group got every message")
            try await member.disconnect()
            try await publisher.disconnect()
        }
    }

    /// A member that unsubscribes from `$share/g/...` gets nothing more; the other gets it all.
    private func leaveGroup(_ version: ProtocolVersion) async throws {
        try await withBroker { broker in
            let (leaver, leaverInbox) = try await broker.connectedClient("leaver", version: version)
            _ = try await leaver.subscribe([Subscription(filter: "$share/g/lg", qos: .atLeastOnce), Subscription(filter: "lg-fence")])
            let (stayer, stayerInbox) = try await broker.connectedClient("stayer", version: version)
            _ = try await stayer.subscribe([Subscription(filter: "$share/g/lg", qos: .atLeastOnce), Subscription(filter: "lg-fence")])
            let unsubAck = try await leaver.unsubscribe(["$share/g/lg"])
            if version == .v5 { XCTAssertEqual(unsubAck.reasonCodes, [.success]) }

            let (publisher, _) = try await broker.connectedClient("lg-pub", version: version)
            for number in 0..<10 {
                _ = try await publisher.publish(to: "lg", payload: "\(number)", qos: .atLeastOnce)
            }
            _ = try await publisher.publish(to: "lg-fence", payload: "fence", qos: .atLeastOnce)
            let left = try await leaverInbox.takeUntil { $0.topic == "lg-fence" }
            XCTAssertEqual(left.map(\.text), [], "\(version): nothing after leaving the group")
            let stayed = try await stayerInbox.takeUntil { $0.topic == "lg-fence" }
            XCTAssertEqual(stayed.map(\.text), (0..<10).map { "\($0)" })
            for client in [leaver, stayer, publisher] { try await client.disconnect() }
        }
    }
}
