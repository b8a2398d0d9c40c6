import MQTTCodec
import NIOCore
import RoostClient
import XCTest

/// Several connections claiming one client identifier at once, and a session handed from
/// connection to connection by takeover while messages flow.
final class TakeoverRaceTests: XCTestCase {
    func testSimultaneousConnectsLeaveExactlyOneOwner_v311() async throws { try await simultaneousConnects(.v3_1_1) }
    func testSimultaneousConnectsLeaveExactlyOneOwner_v5() async throws { try await simultaneousConnects(.v5) }

    func testNoQoS1LossAcrossRepeatedTakeovers_v311() async throws { try await repeatedTakeovers(.v3_1_1) }
    func testNoQoS1LossAcrossRepeatedTakeovers_v5() async throws { try await repeatedTakeovers(.v5) }

    /// Three raw connections send CONNECT with the same client id in the same instant, 20 times.
    /// Afterwards exactly one is open, it has a CONNACK, and the session works through it; a
    /// connection closed after its CONNACK was told why (MQTT 5: 0x8E), one superseded before
    /// its CONNACK got nothing.
    private func simultaneousConnects(_ version: ProtocolVersion) async throws {
        try await withBroker(timeout: 45) { broker in
            for round in 0..<20 {
                let clientID = "race-\(round)"
                var connections: [RawConnection] = []
                for _ in 0..<3 { connections.append(try await broker.rawConnection(version: version)) }
                let connect = MQTTPacket.connect(Connect(version: version, cleanStart: false, keepAlive: 0, clientID: clientID))
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for connection in connections { group.addTask { try await connection.send(connect) } }
                    try await group.waitForAll()
                }
                // Let the broker settle: every takeover done, losers closed.
                let deadline = ContinuousClock.now + .seconds(3)
                while connections.filter({ !$0.packets.isFinished }).count > 1 && ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(5))
                }
                try await Task.sleep(for: .milliseconds(20))

                let open = connections.filter { !$0.packets.isFinished }
                XCTAssertEqual(open.count, 1, "\(version) round \(round): connections left open")
                for connection in connections {
                    let packets = connection.packets.all
                    guard case .connack(let connAck)? = packets.first else {
                        // Superseded before its CONNACK: closed with nothing sent is fine.
                        XCTAssertTrue(connection.packets.isFinished, "\(version) round \(round): open without CONNACK")
                        XCTAssertEqual(packets, [], "\(version) round \(round)")
                        continue
                    }
                    XCTAssertEqual(connAck.reasonCode, .success)
                    if connection.packets.isFinished && version == .v5 {
                        var reason: ReasonCode?
                        if case .disconnect(let disconnect)? = packets.dropFirst().first { reason = disconnect.reasonCode }
                        XCTAssertEqual(reason, .sessionTakenOver, "\(version) round \(round): closed after CONNACK without 0x8E")
                    }
                }
                if let survivor = open.first {
                    try await survivor.send(.pingreq)
                    let answer = try await survivor.packets.takeUntil(timeout: 5) { $0 == .pingresp }
                    XCTAssertEqual(answer.count, 1, "\(version) round \(round): only the CONNACK before PINGRESP")
                }
                for connection in connections { await connection.close() }
            }
        }
    }

    /// A persistent QoS 1 subscriber is taken over by a new connection (same client id, clean
    /// start 0) six times while 300 messages are published. Across all connections every message
    /// arrives, and a repeat only ever comes with DUP.
    private func repeatedTakeovers(_ version: ProtocolVersion) async throws {
        try await withBroker { broker in
            let clientID = "relay-\(version)"
            func makeSubscriber() -> MQTTClient {
                broker.client(clientID, version: version, cleanStart: false, sessionExpiry: 300)
            }
            var current = makeSubscriber()
            var inboxes = [Inbox(current.messages)]
            try await current.connect()
            _ = try await current.subscribe(to: "relay/t", qos: .atLeastOnce)
            let (publisher, _) = try await broker.connectedClient("relay-pub", version: version)

            let count = 300
            let publishing = Task {
                for number in 0..<count {
                    _ = try await publisher.publish(to: "relay/t", payload: "\(number)", qos: .atLeastOnce)
                    if number % 10 == 0 { try await Task.sleep(for: .milliseconds(1)) }
                }
            }
            for _ in 0..<6 {
                try await Task.sleep(for: .milliseconds(15))
                let next = makeSubscriber()
                inboxes.append(Inbox(next.messages))
                let connAck = try await next.connect()
                XCTAssertTrue(connAck.sessionPresent, "\(version): the session survives the takeover")
                await current.waitForClose()
                current = next
            }
            try await publishing.value
            _ = try await publisher.publish(to: "relay/t", payload: "fence", qos: .atLeastOnce)
            _ = try await inboxes[inboxes.count - 1].takeUntil(timeout: 15) { $0.text == "fence" }

            var seen = Set<Int>()
            var firstOrder: [Int] = []
            for inbox in inboxes {
                for message in inbox.all {
                    guard let number = Int(message.text) else { continue }
                    if seen.insert(number).inserted {
                        firstOrder.append(number)
                    } else {
                        XCTAssertTrue(message.dup, "\(version): copy of \(number) without DUP")
                    }
                }
            }
            XCTAssertEqual(seen.count, count, "\(version): missing \(Set(0..<count).subtracting(seen).sorted())")
            XCTAssertEqual(firstOrder, firstOrder.sorted(), "\(version): first copies in publish order")
            try await current.disconnect()
            try await publisher.disconnect()
        }
    }
}
