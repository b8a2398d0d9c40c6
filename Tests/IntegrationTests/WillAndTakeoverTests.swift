import MQTTCodec
import NIOCore
import RoostClient
import XCTest

/// The will message [MQTT-3.1.2-8, -10] and session takeover [MQTT-3.1.4-2].
final class WillAndTakeoverTests: XCTestCase {
    func testWillPublishedWhenTheConnectionDrops_v311() async throws { try await willOnDrop(.v3_1_1) }
    func testWillPublishedWhenTheConnectionDrops_v5() async throws { try await willOnDrop(.v5) }

    func testNoWillAfterDisconnect_v311() async throws { try await noWillAfterDisconnect(.v3_1_1) }
    func testNoWillAfterDisconnect_v5() async throws { try await noWillAfterDisconnect(.v5) }

    /// MQTT 5 only: DISCONNECT with reason code 0x04 asks for the will.
    func testDisconnectWithWillMessage_v5() async throws {
        try await withBroker { broker in
            let (watcher, inbox) = try await broker.connectedClient("will-watch", version: .v5)
            _ = try await watcher.subscribe(to: "will/#", qos: .atLeastOnce)
            let (leaver, _) = try await broker.connectedClient(
                "will-04", version: .v5, will: Will(topic: "will/04", payload: ByteBuffer(string: "asked for"), qos: .atLeastOnce))
            try await leaver.disconnect(Disconnect(reasonCode: .disconnectWithWillMessage))
            let will = try await inbox.next()
            XCTAssertEqual(will.topic, "will/04")
            XCTAssertEqual(will.text, "asked for")
            try await watcher.disconnect()
        }
    }

    func testTakeover_v311() async throws { try await takeover(.v3_1_1) }
    func testTakeover_v5() async throws { try await takeover(.v5) }

    func testTakeoverPublishesTheWillOfTheOldConnection_v311() async throws { try await takeoverWill(.v3_1_1) }
    func testTakeoverPublishesTheWillOfTheOldConnection_v5() async throws { try await takeoverWill(.v5) }

    /// A client with a will drops its TCP connection without DISCONNECT: a watcher gets the will.
    private func willOnDrop(_ version: ProtocolVersion) async throws {
        try await withBroker { broker in
            let (watcher, inbox) = try await broker.connectedClient("will-watch", version: version)
            _ = try await watcher.subscribe(to: "will/#", qos: .atLeastOnce)
            let will = Will(topic: "will/dropped", payload: ByteBuffer(string: "gone"), qos: .atLeastOnce)
            let (dropper, _) = try await broker.connectedClient("will-drop", version: version, will: will)
            await dropper.close()

            let message = try await inbox.next()
            XCTAssertEqual(message.topic, "will/dropped")
            XCTAssertEqual(message.text, "gone")
            XCTAssertEqual(message.qos, .atLeastOnce)
            XCTAssertFalse(message.retain)
            let extra = await inbox.unexpected(within: 0.05)
            XCTAssertEqual(extra.map(\.topic), [], "\(version): the will is published once")
            try await watcher.disconnect()
        }
    }

    /// A client with a will sends DISCONNECT: the will is discarded [MQTT-3.14.4-3].
    private func noWillAfterDisconnect(_ version: ProtocolVersion) async throws {
        try await withBroker { broker in
            let (watcher, inbox) = try await broker.connectedClient("will-watch", version: version)
            _ = try await watcher.subscribe(to: "will/#", qos: .atLeastOnce)
            let will = Will(topic: "will/polite", payload: ByteBuffer(string: "should not appear"), qos: .atLeastOnce)
            let (leaver, _) = try await broker.connectedClient("will-polite", version: version, will: will)
            try await leaver.disconnect()
            // The DISCONNECT is read by the broker on the leaver's loop; give it that moment
            // before the fence, which travels on another connection.
            try await Task.sleep(for: .milliseconds(200))
            _ = try await watcher.publish(to: "will/fence", payload: "fence", qos: .atLeastOnce)
            let before = try await inbox.takeUntil { $0.topic == "will/fence" }
            XCTAssertEqual(before.map(\.topic), [], "\(version): no will after DISCONNECT")
            try await watcher.disconnect()
        }
    }

    /// A second connection with the same client id takes the session over: the first is closed,
    /// after DISCONNECT 0x8E in MQTT 5. The new one works.
    private func takeover(_ version: ProtocolVersion) async throws {
        try await withBroker { broker in
            let (first, firstInbox) = try await broker.connectedClient("twin", version: version)
            _ = try await first.subscribe(to: "twin/t", qos: .atLeastOnce)
            let (second, secondInbox) = try await broker.connectedClient("twin", version: version)

            let disconnect = try await withTimeout(seconds: 5) { await first.waitForClose() }
            XCTAssertFalse(first.isConnected)
            if version == .v5 {
                XCTAssertEqual(disconnect?.reasonCode, .sessionTakenOver, "MQTT 5: DISCONNECT 0x8E before the close")
            } else {
                XCTAssertNil(disconnect, "3.1.1: the old connection is just closed")
            }
            let firstStreamEnded = await firstInbox.waitFinished()
            XCTAssertTrue(firstStreamEnded)

            XCTAssertTrue(second.isConnected)
            try await second.ping()
            _ = try await second.subscribe(to: "twin/t", qos: .atLeastOnce)
            let (publisher, _) = try await broker.connectedClient("twin-pub", version: version)
            _ = try await publisher.publish(to: "twin/t", payload: "to the new owner", qos: .atLeastOnce)
            let message = try await secondInbox.next()
            XCTAssertEqual(message.text, "to the new owner")
            try await second.disconnect()
            try await publisher.disconnect()
        }
    }

    /// The taken-over connection did not send DISCONNECT, so its will is published.
    private func takeoverWill(_ version: ProtocolVersion) async throws {
        try await withBroker { broker in
            let (watcher, inbox) = try await broker.connectedClient("will-watch", version: version)
            _ = try await watcher.subscribe(to: "will/#", qos: .atLeastOnce)
            let will = Will(topic: "will/twin", payload: ByteBuffer(string: "replaced"), qos: .atLeastOnce)
            let (first, _) = try await broker.connectedClient("will-twin", version: version, will: will)
            let (second, _) = try await broker.connectedClient("will-twin", version: version)
            await first.waitForClose()
            let message = try await inbox.next()
            XCTAssertEqual(message.topic, "will/twin")
            XCTAssertEqual(message.text, "replaced")
            try await second.disconnect()
            try await watcher.disconnect()
        }
    }
}

extension WillAndTakeoverTests {
    func testRetainedWillAtQoS2_v311() async throws { try await retainedWill(.v3_1_1) }
    func testRetainedWillAtQoS2_v5() async throws { try await retainedWill(.v5) }

    func testWillPublishedWhenTheBrokerClosesForAProtocolError_v311() async throws { try await willOnProtocolError(.v3_1_1) }
    func testWillPublishedWhenTheBrokerClosesForAProtocolError_v5() async throws { try await willOnProtocolError(.v5) }

    /// A will with QoS 2 and retain: live subscribers get it at QoS 2, and it stays retained.
    private func retainedWill(_ version: ProtocolVersion) async throws {
        try await withBroker { broker in
            let (watcher, inbox) = try await broker.connectedClient("rw-watch", version: version)
            _ = try await watcher.subscribe(to: "status/#", qos: .exactlyOnce)
            let will = Will(topic: "status/device", payload: ByteBuffer(string: "offline"), qos: .exactlyOnce, retain: true)
            let (device, _) = try await broker.connectedClient("device", version: version, will: will)
            await device.close()
            let live = try await inbox.next()
            XCTAssertEqual(live.text, "offline")
            XCTAssertEqual(live.qos, .exactlyOnce)

            let (late, lateInbox) = try await broker.connectedClient("rw-late", version: version)
            _ = try await late.subscribe(to: "status/device", qos: .atLeastOnce)
            let retained = try await lateInbox.next()
            XCTAssertEqual(retained.text, "offline", "\(version): the will was retained")
            XCTAssertTrue(retained.retain)
            XCTAssertEqual(retained.qos, .atLeastOnce)
            try await watcher.disconnect()
            try await late.disconnect()
        }
    }

    /// The broker closing a connection because of malformed input is not a normal disconnect:
    /// the will is published [MQTT-3.1.2-8].
    private func willOnProtocolError(_ version: ProtocolVersion) async throws {
        try await withBroker { broker in
            let (watcher, inbox) = try await broker.connectedClient("pe-watch", version: version)
            _ = try await watcher.subscribe(to: "pe/will", qos: .atLeastOnce)
            let raw = try await broker.rawConnection(version: version)
            let will = Will(topic: "pe/will", payload: ByteBuffer(string: "broken"), qos: .atLeastOnce)
            _ = try await raw.handshake(Connect(version: version, clientID: "breaker", will: will))
            try await raw.send(bytes: [0x00, 0x00])
            let closed = await raw.packets.waitFinished()
            XCTAssertTrue(closed)
            let message = try await inbox.next()
            XCTAssertEqual(message.text, "broken")
            try await watcher.disconnect()
        }
    }
}
