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

extension Broker {
    /// The identity of the session of `clientID` (tests).
    func sessionIdentity(_ clientID: String) -> ClientIdentity? {
        sessions.withLock { $0[clientID] }?.locked.withLock { $0.identity }
    }
}
