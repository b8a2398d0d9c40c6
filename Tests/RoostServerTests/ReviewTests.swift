import MQTTCodec
import NIOCore
import NIOEmbedded
import RoostCore
import XCTest

@testable import RoostServer

/// Review of the authentication / access-control change: each test states what the docs
/// promise; a failure is a bug.
final class ReviewTests: XCTestCase {
    /// Read access by user name: a client may read (and subscribe to) only `<username>/...`;
    /// '#' is filtered. Publishing is allowed everywhere (so wills are accepted).
    struct ReadOwnTree: Authorizer {
        func mayPublish(_ identity: ClientIdentity, topic: String) -> Bool { true }
        func subscriptionAccess(_ identity: ClientIdentity, filter: String) -> SubscriptionAccess {
            guard let user = identity.username else { return .denied }
            if filter.hasPrefix(user + "/") { return .granted }
            return filter == "#" ? .filtered : .denied
        }
        func mayRead(_ identity: ClientIdentity, topic: String) -> Bool {
            guard let user = identity.username else { return false }
            return topic.hasPrefix(user + "/")
        }
    }

    /// Claims passwords "token:<user>" and answers only when told to.
    final class Tokens: DeferredAuthenticator, @unchecked Sendable {
        var waiting: [(AuthenticationRequest, @Sendable (AuthenticationOutcome) -> Void)] = []
        let claimAll: Bool
        init(claimAll: Bool = false) { self.claimAll = claimAll }
        func claims(_ request: AuthenticationRequest) -> Bool {
            claimAll || (request.password.map { String(buffer: $0).hasPrefix("token:") } ?? false)
        }
        func authenticate(_ request: AuthenticationRequest, completion: @escaping @Sendable (AuthenticationOutcome) -> Void) {
            waiting.append((request, completion))
        }
        /// Accepts everyone, naming the token's user (as the JWT authenticator does).
        func acceptAll() {
            for (request, completion) in waiting {
                let password = request.password.map { String(buffer: $0) } ?? ""
                let user = password.hasPrefix("token:") ? String(password.dropFirst("token:".count)) : nil
                completion(AuthenticationOutcome(result: .accepted, username: user))
            }
            waiting = []
        }
    }

    private func connect(_ id: String, user: String?, password: String? = nil, cleanStart: Bool = true, expiry: UInt32? = nil, will: Will? = nil)
        -> Connect
    {
        var connect = Connect.v5(id, cleanStart: cleanStart, expiry: expiry, will: will)
        connect.username = user
        connect.password = password.map { ByteBuffer(string: $0) }
        return connect
    }

    private func subscribe(_ client: TestClient, _ filter: String, qos: QoS = .atMostOnce) throws -> [ReasonCode] {
        try client.send(.subscribe(Subscribe(packetID: 1, subscriptions: [Subscription(filter: filter, qos: qos)])))
        var packets = try client.receive()
        guard let index = packets.firstIndex(where: { if case .suback = $0 { return true } else { return false } }),
            case .suback(let ack) = packets.remove(at: index)
        else {
            XCTFail("no SUBACK")
            return []
        }
        client.unread = packets
        return ack.reasonCodes
    }

    // MARK: 1. Wills (and every publishInternally) skip the read check

    /// SECURITY.md: "only readable topics are delivered". A will goes through
    /// `Broker.publishInternally`, which resolves routes without any authorizer.
    func testWillIsNotDeliveredToSubscriberWhoMayNotRead() throws {
        let harness = Harness(authorizer: ReadOwnTree())
        let (bob, _) = try harness.connect(connect("bob", user: "bob"))
        XCTAssertEqual(try subscribe(bob, "#"), [.grantedQoS0], "'#' is granted filtered")

        // Control: an ordinary PUBLISH to alice/status is filtered out for bob.
        let (alice, _) = try harness.connect(
            connect("alice", user: "alice", will: Will(topic: "alice/status", payload: ByteBuffer(string: "alice is gone"))))
        try alice.send(.publish(Publish(topic: "alice/status", payload: ByteBuffer(string: "online"))))
        XCTAssertEqual(try bob.publishes().count, 0, "control: bob may not read alice/status")

        // Alice's connection is lost: her will goes to alice/status.
        alice.drop()
        harness.loop.run()
        let leaked = try bob.publishes().map { String(buffer: $0.payload) }
        XCTAssertEqual(leaked, [], "bob may not read alice/status, yet receives her will")
    }

    // MARK: 2. Session resumed under another identity

    /// A publisher's cached route keeps delivering to a session whose owner changed identity:
    /// `finishAttach` updates `Session.identity` / `clientAuthorizer` without bumping the
    /// router version, so the read check made for alice is reused for bob.
    func testRouteCacheIsNotReusedAfterSessionChangesIdentity() throws {
        let harness = Harness(authorizer: ReadOwnTree())
        let (alice, _) = try harness.connect(connect("device-7", user: "alice", cleanStart: false, expiry: 3600))
        XCTAssertEqual(try subscribe(alice, "#"), [.grantedQoS0])
        let (publisher, _) = try harness.connect(connect("pub", user: "alice"))
        try publisher.send(.publish(Publish(topic: "alice/secret", payload: ByteBuffer(string: "1"))))
        XCTAssertEqual(try alice.publishes().map { String(buffer: $0.payload) }, ["1"])
        alice.drop()

        // Bob resumes the session of client id device-7 (knowing only his own credentials).
        let (bob, ack) = try harness.connect(connect("device-7", user: "bob", cleanStart: false, expiry: 3600))
        XCTAssertEqual(ack.reasonCode, .success)
        XCTAssertEqual(harness.broker.sessionIdentity("device-7")?.username, "bob")
        try publisher.send(.publish(Publish(topic: "alice/secret", payload: ByteBuffer(string: "2"))))
        XCTAssertEqual(try bob.publishes().map { String(buffer: $0.payload) }, [], "bob may not read alice/secret")
        // Control: a publisher without a cached route is filtered correctly for bob.
        let (fresh, _) = try harness.connect(connect("pub2", user: "alice"))
        try fresh.send(.publish(Publish(topic: "alice/secret", payload: ByteBuffer(string: "3"))))
        XCTAssertFalse(try bob.publishes().map { String(buffer: $0.payload) }.contains("3"), "control")
    }

    /// Messages queued for alice's offline session (authorized for alice) are handed to bob
    /// when he resumes the same client id: the session is not reset on a change of user.
    func testQueuedMessagesOfOneUserAreNotDeliveredToAnother() throws {
        let harness = Harness(authorizer: ReadOwnTree())
        let (alice, _) = try harness.connect(connect("device-8", user: "alice", cleanStart: false, expiry: 3600))
        XCTAssertEqual(try subscribe(alice, "alice/#", qos: .atLeastOnce), [.grantedQoS1])
        alice.drop()
        let (publisher, _) = try harness.connect(connect("pub", user: "alice"))
        try publisher.send(.publish(Publish(topic: "alice/inbox", payload: ByteBuffer(string: "for alice"), qos: .atLeastOnce, packetID: 1)))
        let (bob, ack) = try harness.connect(connect("device-8", user: "bob", cleanStart: false, expiry: 3600))
        XCTAssertFalse(ack.sessionPresent, "another user must not resume alice's session")
        harness.loop.run()
        XCTAssertEqual(try bob.publishes().map { String(buffer: $0.payload) }, [], "alice's queued message reaches bob")
    }

    // MARK: 3. Deferred authentication: identity

    /// AUTH.md: "MQTT 5 clients may send no user name (or an empty one) and get the token's."
    /// `deferredDecided` uses `connect.username ?? outcome.username`, so "" wins over the token.
    func testEmptyUserNameWithTokenGetsTheTokensUser() throws {
        let tokens = Tokens()
        let harness = Harness(deferredAuthenticators: [tokens])
        let client = try harness.open()
        try client.send(.connect(connect("t1", user: "", password: "token:alice")))
        tokens.acceptAll()
        harness.loop.run()
        guard case .connack(let ack)? = try client.receive().first else { return XCTFail("no CONNACK") }
        XCTAssertEqual(ack.reasonCode, .success)
        XCTAssertEqual(harness.broker.sessionIdentity("t1")?.username, "alice")
    }

    /// SECURITY.md: with `use_identity_as_username` "the certificate's CN is the user name".
    /// A deferred authenticator (the HTTP service claims every CONNECT) makes the client's own
    /// user name the identity instead.
    func testCertificateIdentityWinsOverDeferredAuthenticator() throws {
        let service = Tokens(claimAll: true)
        let harness = Harness(deferredAuthenticators: [service])
        var tls = TLSSettings(certfile: "", keyfile: "")
        tls.useIdentityAsUsername = true
        let listener = try ListenerContext(ListenerConfiguration(host: "127.0.0.1", port: 0, transport: .tcp, tls: tls))
        let connection = Connection(broker: harness.broker, eventLoop: harness.loop, listener: listener)
        connection.peerCertificateIdentity = "device1"
        let channel = EmbeddedChannel(loop: harness.loop)
        try channel.pipeline.syncOperations.addHandler(connection)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        let client = TestClient(channel: channel, version: .v5)
        try client.send(.connect(connect("cert-client", user: "admin", password: "whatever")))
        service.acceptAll()
        harness.loop.run()
        guard case .connack(let ack)? = try client.receive().first else { return XCTFail("no CONNACK") }
        XCTAssertEqual(ack.reasonCode, .success)
        XCTAssertEqual(harness.broker.sessionIdentity("cert-client")?.username, "device1", "the certificate's CN, not the client's choice")
    }

    // MARK: 4. Waiting CONNECTs: timeouts and buffering

    /// A deferred answer that never comes (a stuck service, a body trickled slowly): the
    /// connect timeout was cancelled by `handleConnect` and is not restarted for the deferred
    /// path, so the socket stays open (admitted, counted) for ever.
    func testConnectTimeoutCoversDeferredAuthentication() throws {
        var settings = BrokerSettings()
        settings.connectTimeout = 5
        let tokens = Tokens()
        let harness = Harness(settings: settings, deferredAuthenticators: [tokens])
        let client = try harness.open()
        try client.send(.connect(connect("slow", user: nil, password: "token:alice")))
        harness.advance(seconds: 60)
        XCTAssertFalse(client.isActive, "still open 60 s after CONNECT with connect_timeout 5")
    }

    /// The back-off delay is not covered by the connect timeout and is not bounded by
    /// auth_backoff_max: parallel CONNECTs from one address each reserve a later slot, so the
    /// Nth waits N x step, holding its socket all along.
    func testBackoffWaitIsBounded() throws {
        var settings = BrokerSettings()
        settings.authBackoffAfter = 1
        settings.authBackoffMax = 10
        settings.connectTimeout = 5
        let harness = Harness(settings: settings, authenticator: AuthenticationFlowTests.OnePassword())
        let failing = try harness.open()
        try failing.send(.connect(connect("f", user: "alice", password: "wrong")))
        XCTAssertFalse(failing.isActive)
        var waiting: [TestClient] = []
        for index in 0..<200 {
            let client = try harness.open()
            try client.send(.connect(connect("w\(index)", user: "alice", password: "wrong")))
            waiting.append(client)
        }
        harness.advance(seconds: 20)
        let stillOpen = waiting.filter { $0.isActive }.count
        XCTAssertEqual(stillOpen, 0, "\(stillOpen) sockets still held 20 s after CONNECT (auth_backoff_max 10, connect_timeout 5)")
    }

    /// ARCHITECTURE.md: "the CONNECT's socket is not read while it waits". `autoRead` is never
    /// turned off for `.authenticating`, and `channelRead` appends everything to `inbound`
    /// without the max_packet_size check (the decoder does not run meanwhile): a client in the
    /// back-off (or waiting for the HTTP service) can push any amount into memory.
    func testNothingUnboundedIsBufferedWhileAuthenticationWaits() throws {
        var settings = BrokerSettings()
        settings.maxPacketSize = 1024
        let tokens = Tokens()
        let harness = Harness(settings: settings, deferredAuthenticators: [tokens])
        let client = try harness.open()
        try client.send(.connect(connect("hog", user: nil, password: "token:alice")))
        let chunk = ByteBuffer(repeating: 0x30, count: 64 * 1024)
        for _ in 0..<64 where client.isActive {
            try client.channel.writeInbound(chunk)
        }
        harness.loop.run()
        let received = harness.broker.stats.bytesReceived.load(ordering: .relaxed)
        XCTAssertFalse(
            client.isActive && received > 16 * settings.maxPacketSize,
            "\(received) bytes taken into memory while the CONNECT waits (max_packet_size \(settings.maxPacketSize))")
    }
}
