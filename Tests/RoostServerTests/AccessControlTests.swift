import MQTTCodec
import NIOCore
import RoostCore
import XCTest

@testable import RoostServer

/// The authentication and authorization ports, with test implementations.
final class AccessControlTests: XCTestCase {
    /// Each client may publish and subscribe only under `clients/<its id>/`.
    struct OwnTreeOnly: Authorizer {
        func mayPublish(_ identity: ClientIdentity, topic: String) -> Bool { topic.hasPrefix("clients/\(identity.clientID)/") }
        func subscriptionAccess(_ identity: ClientIdentity, filter: String) -> SubscriptionAccess {
            filter.hasPrefix("clients/\(identity.clientID)/") ? .granted : .denied
        }
    }

    func testAuthorizerFiltersPublishAndSubscribe() throws {
        let harness = Harness(authorizer: OwnTreeOnly())
        let (alice, _) = try harness.connect(.v5("alice"))
        try alice.send(.subscribe(Subscribe(packetID: 1, subscriptions: [
            Subscription(filter: "clients/alice/#", qos: .atLeastOnce), Subscription(filter: "clients/#", qos: .atLeastOnce),
        ])))
        guard case .suback(let suback)? = try alice.receive().first else { return XCTFail("no SUBACK") }
        XCTAssertEqual(suback.reasonCodes, [.grantedQoS1, .notAuthorized])

        let (mallory, _) = try harness.connect(.v5("mallory"))
        try mallory.send(.publish(Publish(topic: "clients/alice/inbox", payload: ByteBuffer(string: "x"), qos: .atLeastOnce, packetID: 5)))
        XCTAssertEqual(try mallory.receive(), [.puback(Ack(packetID: 5, reasonCode: .notAuthorized))])
        XCTAssertEqual(try alice.publishes().count, 0)

        try alice.send(.publish(Publish(topic: "clients/alice/inbox", payload: ByteBuffer(string: "y"), qos: .atLeastOnce, packetID: 6)))
        XCTAssertEqual(try alice.publishes().map { String(buffer: $0.payload) }, ["y"])
    }

    func testNoAnonymousClients() throws {
        var settings = BrokerSettings()
        settings.allowAnonymous = false
        let harness = Harness(settings: settings)
        let client = try harness.open()
        try client.send(.connect(.v5("anon")))
        guard case .connack(let ack)? = try client.receive().first else { return XCTFail("no CONNACK") }
        XCTAssertEqual(ack.reasonCode, .notAuthorized)
        XCTAssertFalse(client.isActive)

        let old = try harness.open(version: .v3_1_1)
        try old.send(.connect(Connect(version: .v3_1_1, clientID: "anon311", username: "someone")))
        guard case .connack(let oldAck)? = try old.receive().first else { return XCTFail("no CONNACK") }
        XCTAssertEqual(oldAck.reasonCode.rawValue, ConnectReturnCode.badUserNameOrPassword.rawValue)
    }
}
