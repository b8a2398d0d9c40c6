import MQTTCodec
import NIOCore
import RoostCore
import XCTest

@testable import RoostServer

/// MQTT 5 enhanced authentication (AUTH exchanges) and the per-address login back-off, on
/// whole connections.
final class AuthenticationFlowTests: XCTestCase {
    /// A two-step method: the server sends a challenge, the client answers it reversed followed
    /// by "!" and its secret; the server's final data is "ok".
    struct EchoMethod: EnhancedAuthenticator {
        final class Exchange: EnhancedAuthExchange {
            let user: String
            init(user: String) { self.user = user }
            func next(data: [UInt8]) -> EnhancedAuthStep {
                data == Array("egnellahc!sesame".utf8)
                    ? .success(username: user, data: Array("ok".utf8)) : .failure(.badCredentials, reason: "wrong answer")
            }
        }
        var methods: [String] { ["ECHO"] }
        func start(method: String, data: [UInt8], request: AuthenticationRequest) -> EnhancedAuthStep {
            .continue(data: Array("challenge".utf8), exchange: Exchange(user: String(decoding: data, as: UTF8.self)))
        }
    }

    /// Only "alice" / "right" gets in.
    struct OnePassword: Authenticator {
        func authenticate(_ request: AuthenticationRequest) -> AuthenticationResult {
            request.username == "alice" && request.password.map { String(buffer: $0) } == "right" ? .accepted : .badCredentials
        }
    }

    private func connectWith(method: String, data: String) -> Connect {
        var connect = Connect.v5("c")
        connect.properties.authenticationMethod = method
        connect.properties.authenticationData = ByteBuffer(string: data)
        return connect
    }

    private func auth(_ method: String, _ data: String, reason: ReasonCode = .continueAuthentication) -> MQTTPacket {
        var properties = Properties()
        properties.authenticationMethod = method
        properties.authenticationData = ByteBuffer(string: data)
        return .auth(Auth(reasonCode: reason, properties: properties))
    }

    func testEnhancedAuthenticationSucceeds() throws {
        let harness = Harness(authenticator: OnePassword(), enhancedAuthenticators: [EchoMethod()])
        let client = try harness.open()
        try client.send(.connect(connectWith(method: "ECHO", data: "alice")))
        guard case .auth(let challenge)? = try client.receive().first else { return XCTFail("no AUTH") }
        XCTAssertEqual(challenge.reasonCode, .continueAuthentication)
        XCTAssertEqual(challenge.properties.authenticationMethod, "ECHO")
        XCTAssertEqual(challenge.properties.authenticationData.map { String(buffer: $0) }, "challenge")
        // A PUBLISH before the exchange is done would be a protocol error; the answer continues it.
        try client.send(auth("ECHO", "egnellahc!sesame"))
        guard case .connack(let ack)? = try client.receive().first else { return XCTFail("no CONNACK") }
        XCTAssertEqual(ack.reasonCode, .success)
        XCTAssertEqual(ack.properties.authenticationMethod, "ECHO")
        XCTAssertEqual(ack.properties.authenticationData.map { String(buffer: $0) }, "ok")
        XCTAssertEqual(harness.broker.sessionIdentity("c")?.username, "alice", "the exchange's user is the identity")
        XCTAssertTrue(client.isActive)
    }

    func testEnhancedAuthenticationRefusals() throws {
        let harness = Harness(authenticator: OnePassword(), enhancedAuthenticators: [EchoMethod()])
        // A wrong answer: 0x86, closed.
        let wrong = try harness.open()
        try wrong.send(.connect(connectWith(method: "ECHO", data: "alice")))
        _ = try wrong.receive()
        try wrong.send(auth("ECHO", "guess"))
        guard case .connack(let refused)? = try wrong.receive().first else { return XCTFail("no CONNACK") }
        XCTAssertEqual(refused.reasonCode, .badUserNameOrPassword)
        XCTAssertFalse(wrong.isActive)
        // An unknown method: 0x8C.
        let unknown = try harness.open()
        try unknown.send(.connect(connectWith(method: "SCRAM-SHA-1", data: "x")))
        guard case .connack(let badMethod)? = try unknown.receive().first else { return XCTFail("no CONNACK") }
        XCTAssertEqual(badMethod.reasonCode, .badAuthenticationMethod)
        // Another method in the middle of the exchange, or another packet: protocol error.
        let switching = try harness.open()
        try switching.send(.connect(connectWith(method: "ECHO", data: "alice")))
        _ = try switching.receive()
        try switching.send(auth("OTHER", "x"))
        guard case .connack(let switched)? = try switching.receive().first else { return XCTFail("no CONNACK") }
        XCTAssertEqual(switched.reasonCode, .protocolError)
        let publishing = try harness.open()
        try publishing.send(.connect(connectWith(method: "ECHO", data: "alice")))
        _ = try publishing.receive()
        try publishing.send(.publish(Publish(topic: "t", payload: ByteBuffer(string: "early"))))
        guard case .connack(let early)? = try publishing.receive().first else { return XCTFail("no CONNACK") }
        XCTAssertEqual(early.reasonCode, .protocolError)
        // AUTH after CONNACK (re-authentication) is not offered.
        let (connected, _) = try harness.connect(connectWithPassword("alice", "right"))
        try connected.send(auth("ECHO", "again", reason: .reAuthenticate))
        guard case .disconnect(let disconnect)? = try connected.receive().first else { return XCTFail("no DISCONNECT") }
        XCTAssertEqual(disconnect.reasonCode, .protocolError)
    }

    /// The exchange must finish within the connect timeout.
    func testEnhancedAuthenticationTimesOut() throws {
        var settings = BrokerSettings()
        settings.connectTimeout = 5
        let harness = Harness(settings: settings, enhancedAuthenticators: [EchoMethod()])
        let client = try harness.open()
        try client.send(.connect(connectWith(method: "ECHO", data: "alice")))
        _ = try client.receive()
        harness.advance(seconds: 4)
        XCTAssertTrue(client.isActive)
        harness.advance(seconds: 2)
        XCTAssertFalse(client.isActive, "closed: the client never answered the challenge")
    }

    private func connectWithPassword(_ user: String, _ password: String) -> Connect {
        var connect = Connect.v5("p-\(user)-\(password)")
        connect.username = user
        connect.password = ByteBuffer(string: password)
        return connect
    }

    /// After `auth_backoff_after` failures from one address, its next logins wait (doubling),
    /// and are not even looked at meanwhile; another address is not affected.
    func testLoginBackoffAfterRepeatedFailures() throws {
        var settings = BrokerSettings()
        settings.authBackoffAfter = 2
        let harness = Harness(settings: settings, authenticator: OnePassword())
        for attempt in 0..<2 {
            let client = try harness.open()
            try client.send(.connect(connectWithPassword("alice", "wrong\(attempt)")))
            guard case .connack(let ack)? = try client.receive().first else { return XCTFail("no CONNACK") }
            XCTAssertEqual(ack.reasonCode, .badUserNameOrPassword, "refused at once while under the threshold")
        }
        // The third attempt (even with the right password) waits 250 ms.
        let delayed = try harness.open()
        try delayed.send(.connect(connectWithPassword("alice", "right")))
        XCTAssertEqual(try delayed.receive(), [], "held back")
        XCTAssertEqual(harness.broker.stats.authDelayed.load(ordering: .relaxed), 1)
        harness.advance(seconds: 0.3)
        guard case .connack(let late)? = try delayed.receive().first else { return XCTFail("no CONNACK after the delay") }
        XCTAssertEqual(late.reasonCode, .success)
    }
}

/// Deferred authentication (the JWT / HTTP path) and the authorizer a credential carries.
final class DeferredAuthenticationTests: XCTestCase {
    /// Claims passwords "token:<user>"; answers when the test says so.
    final class TokenCheck: DeferredAuthenticator, @unchecked Sendable {
        var waiting: [(AuthenticationRequest, @Sendable (AuthenticationOutcome) -> Void)] = []
        func claims(_ request: AuthenticationRequest) -> Bool {
            request.password.map { String(buffer: $0).hasPrefix("token:") } ?? false
        }
        func authenticate(_ request: AuthenticationRequest, completion: @escaping @Sendable (AuthenticationOutcome) -> Void) {
            waiting.append((request, completion))
        }
        func answerAll() {
            for (request, completion) in waiting {
                let user = String(String(buffer: request.password!).dropFirst("token:".count))
                if user == "forged" {
                    completion(AuthenticationOutcome(result: .badCredentials, reason: "bad signature"))
                } else {
                    completion(AuthenticationOutcome(result: .accepted, username: user, authorizer: OwnTree(user: user)))
                }
            }
            waiting = []
        }
    }

    /// The token's claims: `<user>/#` only.
    struct OwnTree: Authorizer {
        let user: String
        func mayPublish(_ identity: ClientIdentity, topic: String) -> Bool { topic.hasPrefix(user + "/") }
        func subscriptionAccess(_ identity: ClientIdentity, filter: String) -> SubscriptionAccess {
            if filter.hasPrefix(user + "/") { return .granted }
            return filter == "#" ? .filtered : .denied
        }
        func mayRead(_ identity: ClientIdentity, topic: String) -> Bool { topic.hasPrefix(user + "/") }
    }

    private func tokenConnect(_ id: String, _ token: String) -> Connect {
        var connect = Connect.v5(id)
        connect.password = ByteBuffer(string: token)
        connect.username = nil
        return connect
    }

    func testDeferredAuthenticationAndClaimsAuthorizer() throws {
        let tokens = TokenCheck()
        let harness = Harness(authenticator: AuthenticationFlowTests.OnePassword(), deferredAuthenticators: [tokens])
        let alice = try harness.open()
        try alice.send(.connect(tokenConnect("a", "token:alice")))
        try alice.send(.pingreq)
        XCTAssertEqual(try alice.receive(), [], "nothing before the answer, and nothing read meanwhile")
        tokens.answerAll()
        harness.loop.run()
        let packets = try alice.receive()
        guard case .connack(let ack)? = packets.first else { return XCTFail("no CONNACK") }
        XCTAssertEqual(ack.reasonCode, .success)
        XCTAssertEqual(packets.dropFirst().first, .pingresp, "what waited is handled after the CONNACK")
        XCTAssertEqual(harness.broker.sessionIdentity("a")?.username, "alice", "the token's subject")

        try alice.send(.subscribe(Subscribe(packetID: 1, subscriptions: [
            Subscription(filter: "alice/#", qos: .atMostOnce), Subscription(filter: "bob/#", qos: .atMostOnce),
            Subscription(filter: "#", qos: .atMostOnce),
        ])))
        guard case .suback(let suback)? = try alice.receive().first else { return XCTFail("no SUBACK") }
        XCTAssertEqual(suback.reasonCodes, [.grantedQoS0, .notAuthorized, .grantedQoS0])
        try alice.send(.publish(Publish(topic: "bob/x", payload: ByteBuffer(string: "no"), qos: .atLeastOnce, packetID: 2)))
        XCTAssertEqual(try alice.receive(), [.puback(Ack(packetID: 2, reasonCode: .notAuthorized))])

        // Another client publishes where alice's '#' reaches: she reads only her own tree.
        var bobConnect = Connect.v5("b")
        bobConnect.username = "alice"
        bobConnect.password = ByteBuffer(string: "right")
        let (bob, _) = try harness.connect(bobConnect)
        try bob.send(.publish(Publish(topic: "bob/news", payload: ByteBuffer(string: "hidden"))))
        try bob.send(.publish(Publish(topic: "alice/news", payload: ByteBuffer(string: "seen"))))
        XCTAssertEqual(try alice.publishes().map { String(buffer: $0.payload) }, ["seen"], "only her own tree (her overlapping subscriptions give one copy)")

        let forged = try harness.open()
        try forged.send(.connect(tokenConnect("f", "token:forged")))
        tokens.answerAll()
        harness.loop.run()
        guard case .connack(let refused)? = try forged.receive().first else { return XCTFail("no CONNACK") }
        XCTAssertEqual(refused.reasonCode, .badUserNameOrPassword)
        XCTAssertFalse(forged.isActive)
    }
}

extension Broker {
    /// The identity of the session of `clientID` (tests).
    func sessionIdentity(_ clientID: String) -> ClientIdentity? {
        sessions.withLock { $0[clientID] }?.locked.withLock { $0.identity }
    }
}
