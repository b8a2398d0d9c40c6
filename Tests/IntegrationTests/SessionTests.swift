import MQTTCodec
import NIOCore
import RoostClient
import XCTest

/// Sessions that outlive their connection: messages queued while offline, and unacknowledged
/// messages resent with DUP after a reconnect [MQTT-4.4.0-1].
final class SessionTests: XCTestCase {
    func testOfflineMessagesDeliveredOnReconnect_v311() async throws { try await offlineQueue(.v3_1_1) }
    func testOfflineMessagesDeliveredOnReconnect_v5() async throws { try await offlineQueue(.v5) }

    func testUnacknowledgedQoS1ResentWithDup_v311() async throws { try await resendQoS1(.v3_1_1) }
    func testUnacknowledgedQoS1ResentWithDup_v5() async throws { try await resendQoS1(.v5) }

    func testUnacknowledgedQoS2ResentThenPubRelResent_v311() async throws { try await resendQoS2(.v3_1_1) }
    func testUnacknowledgedQoS2ResentThenPubRelResent_v5() async throws { try await resendQoS2(.v5) }

    func testCleanStartDiscardsTheSession_v311() async throws { try await cleanStartDiscards(.v3_1_1) }
    func testCleanStartDiscardsTheSession_v5() async throws { try await cleanStartDiscards(.v5) }

    /// A persistent subscriber (3.1.1: clean session 0; 5.0: session expiry 300 s) goes away, 50
    /// QoS 1 messages are published, and it comes back to a present session with all 50 in order.
    private func offlineQueue(_ version: ProtocolVersion) async throws {
        try await withBroker { broker in
            let clientID = "persist-\(version)"
            let firstCleanStart = version == .v5   // 5.0 starts clean and keeps the session by its expiry
            let subscriber = broker.client(clientID, version: version, cleanStart: firstCleanStart, sessionExpiry: 300)
            let firstAck = try await subscriber.connect()
            XCTAssertFalse(firstAck.sessionPresent)
            _ = try await subscriber.subscribe(to: "ps/#", qos: .atLeastOnce)
            try await subscriber.disconnect()

            let (publisher, _) = try await broker.connectedClient("persist-pub", version: version)
            for number in 0..<50 {
                _ = try await publisher.publish(to: "ps/t", payload: "\(number)", qos: .atLeastOnce)
            }

            let returning = broker.client(clientID, version: version, cleanStart: false, sessionExpiry: 300)
            let inbox = Inbox(returning.messages)
            let connAck = try await returning.connect()
            XCTAssertTrue(connAck.sessionPresent, "\(version): the session is present")
            let queued = try await inbox.take(50)
            XCTAssertEqual(queued.map(\.text), (0..<50).map { "\($0)" }, "\(version): all 50, in order")
            XCTAssertTrue(queued.allSatisfy { $0.qos == .atLeastOnce && $0.topic == "ps/t" })

            _ = try await publisher.publish(to: "ps/fence", payload: "fence", qos: .atLeastOnce)
            let extra = try await inbox.takeUntil { $0.topic == "ps/fence" }
            XCTAssertEqual(extra.map(\.text), [], "\(version): nothing twice")

            try await returning.disconnect()
            try await publisher.disconnect()
        }
    }

    /// CONNECT for a persistent session over a raw connection (so nothing is acknowledged unless
    /// the test says so).
    private static func persistentConnect(_ clientID: String, _ version: ProtocolVersion, cleanStart: Bool) -> Connect {
        var properties = Properties()
        if version == .v5 { properties.sessionExpiryInterval = 300 }
        return Connect(version: version, cleanStart: cleanStart, keepAlive: 0, clientID: clientID, properties: properties)
    }

    /// A subscriber receives a QoS 1 message, never acknowledges it and drops the connection; on
    /// reconnecting it gets the same message again, with DUP and the same packet identifier.
    private func resendQoS1(_ version: ProtocolVersion) async throws {
        try await withBroker { broker in
            let clientID = "resend1-\(version)"
            let raw = try await broker.rawConnection(version: version)
            _ = try await raw.handshake(Self.persistentConnect(clientID, version, cleanStart: version == .v5))
            _ = try await raw.subscribe("rs/t", qos: .atLeastOnce)

            let (publisher, _) = try await broker.connectedClient("resend1-pub", version: version)
            _ = try await publisher.publish(to: "rs/t", payload: "unacked", qos: .atLeastOnce)
            guard case .publish(let first) = try await raw.receive() else { return XCTFail("expected PUBLISH") }
            XCTAssertEqual(first.qos, .atLeastOnce)
            XCTAssertFalse(first.dup)
            XCTAssertEqual(first.text, "unacked")
            await raw.close()

            let again = try await broker.rawConnection(version: version)
            let connAck = try await again.handshake(Self.persistentConnect(clientID, version, cleanStart: false))
            XCTAssertTrue(connAck.sessionPresent)
            guard case .publish(let resent) = try await again.receive() else { return XCTFail("expected the resent PUBLISH") }
            XCTAssertTrue(resent.dup, "\(version): a resent PUBLISH has DUP set [MQTT-3.3.1-1]")
            XCTAssertEqual(resent.packetID, first.packetID)
            XCTAssertEqual(resent.qos, .atLeastOnce)
            XCTAssertEqual(resent.topic, "rs/t")
            XCTAssertEqual(resent.text, "unacked")

            // Acknowledged now: nothing more comes, and new messages flow.
            try await again.send(.puback(Ack(packetID: resent.packetID)))
            _ = try await publisher.publish(to: "rs/t", payload: "next", qos: .atLeastOnce)
            guard case .publish(let next) = try await again.receive() else { return XCTFail("expected PUBLISH") }
            XCTAssertEqual(next.text, "next")
            XCTAssertFalse(next.dup)
            try await again.send(.puback(Ack(packetID: next.packetID)))
            let extra = await again.packets.unexpected(within: 0.05)
            XCTAssertEqual(extra, [])

            try await again.send(.disconnect(Disconnect()))
            await again.close()
            try await publisher.disconnect()
        }
    }

    /// QoS 2: an unacknowledged PUBLISH comes back with DUP; once PUBREC is sent and the
    /// connection drops before PUBCOMP, the reconnect gets PUBREL, not the PUBLISH.
    private func resendQoS2(_ version: ProtocolVersion) async throws {
        try await withBroker { broker in
            let clientID = "resend2-\(version)"
            let raw = try await broker.rawConnection(version: version)
            _ = try await raw.handshake(Self.persistentConnect(clientID, version, cleanStart: version == .v5))
            _ = try await raw.subscribe("rs2/t", qos: .exactlyOnce)

            let (publisher, _) = try await broker.connectedClient("resend2-pub", version: version)
            _ = try await publisher.publish(to: "rs2/t", payload: "twice?", qos: .exactlyOnce)
            guard case .publish(let first) = try await raw.receive() else { return XCTFail("expected PUBLISH") }
            XCTAssertEqual(first.qos, .exactlyOnce)
            XCTAssertFalse(first.dup)
            await raw.close()

            let second = try await broker.rawConnection(version: version)
            let secondAck = try await second.handshake(Self.persistentConnect(clientID, version, cleanStart: false))
            XCTAssertTrue(secondAck.sessionPresent)
            guard case .publish(let resent) = try await second.receive() else { return XCTFail("expected the resent PUBLISH") }
            XCTAssertTrue(resent.dup, "\(version): resent QoS 2 PUBLISH has DUP")
            XCTAssertEqual(resent.packetID, first.packetID)
            XCTAssertEqual(resent.text, "twice?")
            try await second.send(.pubrec(Ack(packetID: resent.packetID)))
            guard case .pubrel(let release) = try await second.receive() else { return XCTFail("expected PUBREL") }
            XCTAssertEqual(release.packetID, resent.packetID)
            await second.close()

            let third = try await broker.rawConnection(version: version)
            let thirdAck = try await third.handshake(Self.persistentConnect(clientID, version, cleanStart: false))
            XCTAssertTrue(thirdAck.sessionPresent)
            let packet = try await third.receive()
            XCTAssertEqual(packet, .pubrel(Ack(packetID: first.packetID)), "\(version): PUBREL is resent, not the PUBLISH")
            try await third.send(.pubcomp(Ack(packetID: first.packetID)))
            let extra = await third.packets.unexpected(within: 0.05)
            XCTAssertEqual(extra, [])

            try await third.send(.disconnect(Disconnect()))
            await third.close()
            try await publisher.disconnect()
        }
    }

    /// A clean start throws the old session away: no session present, no old subscriptions.
    private func cleanStartDiscards(_ version: ProtocolVersion) async throws {
        try await withBroker { broker in
            let clientID = "clean-\(version)"
            let first = broker.client(clientID, version: version, cleanStart: version == .v5, sessionExpiry: 300)
            try await first.connect()
            _ = try await first.subscribe(to: "clean/old", qos: .atLeastOnce)
            try await first.disconnect()

            let (publisher, _) = try await broker.connectedClient("clean-pub", version: version)
            _ = try await publisher.publish(to: "clean/old", payload: "queued while away", qos: .atLeastOnce)

            let fresh = broker.client(clientID, version: version, cleanStart: true)
            let inbox = Inbox(fresh.messages)
            let connAck = try await fresh.connect()
            XCTAssertFalse(connAck.sessionPresent)
            _ = try await fresh.subscribe(to: "clean/fence", qos: .atLeastOnce)
            _ = try await publisher.publish(to: "clean/old", payload: "after", qos: .atLeastOnce)
            _ = try await publisher.publish(to: "clean/fence", payload: "fence", qos: .atLeastOnce)
            let stale = try await inbox.takeUntil { $0.topic == "clean/fence" }
            XCTAssertEqual(stale.map(\.text), [], "\(version): neither the queue nor the subscription survived")
            try await fresh.disconnect()
            try await publisher.disconnect()
        }
    }
}
