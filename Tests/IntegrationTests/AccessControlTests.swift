import MQTTCodec
import NIOCore
import RoostClient
import RoostCore
import XCTest

/// Authentication and authorization through the broker's ports, over real connections.
final class AccessControlTests: XCTestCase {
    func testAnonymousRefusedWhenNotAllowed_v311() async throws { try await anonymousRefused(.v3_1_1) }
    func testAnonymousRefusedWhenNotAllowed_v5() async throws { try await anonymousRefused(.v5) }

    func testAuthenticatorAndAuthorizer_v311() async throws { try await authorizer(.v3_1_1) }
    func testAuthenticatorAndAuthorizer_v5() async throws { try await authorizer(.v5) }

    func testEmptyClientIDNeedsCleanSession_v311() async throws {
        try await withBroker { broker in
            let client = broker.client("", version: .v3_1_1, cleanStart: false)
            do {
                try await client.connect()
                XCTFail("an empty client id with clean session 0 was accepted")
            } catch MQTTClientError.connectionRefused(let connAck) {
                XCTAssertEqual(connAck.reasonCode.rawValue, ConnectReturnCode.identifierRejected.rawValue)
            }
            let clean = broker.client("", version: .v3_1_1, cleanStart: true)
            try await clean.connect()
            try await clean.disconnect()
        }
    }

    private func anonymousRefused(_ version: ProtocolVersion) async throws {
        var settings = integrationSettings()
        settings.allowAnonymous = false
        try await withBroker(settings: settings) { broker in
            let client = broker.client("nobody", version: version)
            do {
                try await client.connect()
                XCTFail("\(version): an anonymous client was accepted")
            } catch MQTTClientError.connectionRefused(let connAck) {
                let expected = version == .v5 ? ReasonCode.notAuthorized : ReasonCode(ConnectReturnCode.notAuthorized.rawValue)
                XCTAssertEqual(connAck.reasonCode, expected)
            }
            XCTAssertFalse(client.isConnected)
        }
    }

    /// A password check and a topic policy: "alice" may publish only under `alice/` and may not
    /// subscribe to `secret/#`; denied publishes are not delivered (MQTT 5: PUBACK 0x87), denied
    /// subscriptions fail in SUBACK (0x87 / 0x80).
    private func authorizer(_ version: ProtocolVersion) async throws {
        let broker = try await TestBroker.start(
            settings: integrationSettings(), authenticator: PasswordCheck(), authorizer: OwnPrefixPolicy())
        do {
            try await withTimeout(seconds: 30) {
                var wrong = broker.client("alice", version: version).configuration
                wrong.username = "alice"
                wrong.setPassword("guess")
                do {
                    try await MQTTClient(configuration: wrong).connect()
                    XCTFail("\(version): a wrong password was accepted")
                } catch MQTTClientError.connectionRefused(let connAck) {
                    let expected = version == .v5
                        ? ReasonCode.badUserNameOrPassword : ReasonCode(ConnectReturnCode.badUserNameOrPassword.rawValue)
                    XCTAssertEqual(connAck.reasonCode, expected)
                }

                var right = wrong
                right.setPassword("alice-password")
                let alice = MQTTClient(configuration: right)
                let inbox = Inbox(alice.messages)
                try await alice.connect()
                let subAck = try await alice.subscribe([
                    Subscription(filter: "alice/#", qos: .atLeastOnce),
                    Subscription(filter: "secret/#", qos: .atLeastOnce),
                    Subscription(filter: "public/#", qos: .atLeastOnce),
                ])
                let denied = version == .v5 ? ReasonCode.notAuthorized : ReasonCode.unspecifiedError
                XCTAssertEqual(subAck.reasonCodes, [.grantedQoS1, denied, .grantedQoS1])

                let refused = try await alice.publish(to: "public/news", payload: "not allowed", qos: .atLeastOnce)
                XCTAssertEqual(refused?.reasonCode, version == .v5 ? .notAuthorized : .success)
                _ = try await alice.publish(to: "alice/diary", payload: "allowed", qos: .atLeastOnce)
                let message = try await inbox.next()
                XCTAssertEqual(message.topic, "alice/diary", "\(version): only the authorized publish was delivered")
                let extra = await inbox.unexpected(within: 0.05)
                XCTAssertEqual(extra.map(\.topic), [])
                try await alice.disconnect()
            }
        } catch {
            await broker.server.shutdown()
            throw error
        }
        await broker.server.shutdown()
    }
}

/// Accepts user "alice" with password "alice-password" only.
private struct PasswordCheck: Authenticator {
    func authenticate(_ request: AuthenticationRequest) -> AuthenticationResult {
        guard let username = request.username else { return .notAuthorized }
        let text = request.password.map { String(buffer: $0) }
        return username == "alice" && text == "alice-password" ? .accepted : .badCredentials
    }
}

/// Publish only under `<user>/`; subscribe to anything but `secret/...`.
private struct OwnPrefixPolicy: Authorizer {
    func mayPublish(_ identity: ClientIdentity, topic: String) -> Bool {
        guard let username = identity.username else { return false }
        return topic.hasPrefix(username + "/")
    }

    func subscriptionAccess(_ identity: ClientIdentity, filter: String) -> SubscriptionAccess {
        filter.hasPrefix("secret/") ? .denied : .granted
    }
}
