import MQTTCodec
import NIOCore
import RoostClient
import Synchronization
import XCTest

/// Features that exist only in MQTT 5: expiry intervals, will delay, topic aliases,
/// subscription options and identifiers, assigned client identifiers, reason codes.
final class MQTT5FeatureTests: XCTestCase {
    /// Queued messages whose Message Expiry Interval passes while the subscriber is away are
    /// not delivered; the others carry the remaining interval [MQTT-3.3.2-6].
    func testMessageExpiryWhileQueued() async throws {
        try await withBroker { broker in
            let subscriber = broker.client("expiry-sub", version: .v5, sessionExpiry: 300)
            try await subscriber.connect()
            _ = try await subscriber.subscribe(to: "exp/#", qos: .atLeastOnce)
            try await subscriber.disconnect()

            let (publisher, _) = try await broker.connectedClient("expiry-pub", version: .v5)
            var short = Properties()
            short.messageExpiryInterval = 1
            var long = Properties()
            long.messageExpiryInterval = 60
            _ = try await publisher.publish(to: "exp/short", payload: "gone", qos: .atLeastOnce, properties: short)
            _ = try await publisher.publish(to: "exp/long", payload: "kept", qos: .atLeastOnce, properties: long)
            _ = try await publisher.publish(to: "exp/none", payload: "forever", qos: .atLeastOnce)
            _ = try await publisher.publish(to: "exp/retained", payload: "stale", qos: .atLeastOnce, retain: true, properties: short)
            try await Task.sleep(for: .milliseconds(1300))

            let returning = broker.client("expiry-sub", version: .v5, cleanStart: false, sessionExpiry: 300)
            let inbox = Inbox(returning.messages)
            try await returning.connect()
            let received = try await inbox.take(2)
            XCTAssertEqual(received.map(\.topic), ["exp/long", "exp/none"])
            if let left = received.first?.properties.messageExpiryInterval {
                XCTAssertTrue((58...60).contains(left), "remaining expiry \(left) s")
            } else {
                XCTFail("the remaining Message Expiry Interval is missing")
            }
            XCTAssertNil(received.last?.properties.messageExpiryInterval)

            // The expired retained message is not sent to a new subscription either.
            _ = try await returning.subscribe([Subscription(filter: "exp/retained"), Subscription(filter: "exp/fence")])
            _ = try await publisher.publish(to: "exp/fence", payload: "fence", qos: .atLeastOnce)
            let stale = try await inbox.takeUntil { $0.topic == "exp/fence" }
            XCTAssertEqual(stale.map(\.topic), [], "expired messages are not delivered")
            try await returning.disconnect()
            try await publisher.disconnect()
        }
    }

    /// A will with a Will Delay Interval is cancelled when the client reconnects in time, and
    /// published after the delay when it does not.
    func testWillDelay() async throws {
        try await withBroker { broker in
            let (watcher, inbox) = try await broker.connectedClient("delay-watch", version: .v5)
            _ = try await watcher.subscribe(to: "delayed/#", qos: .atLeastOnce)
            var willProperties = Properties()
            willProperties.willDelayInterval = 1
            let will = Will(topic: "delayed/will", payload: ByteBuffer(string: "late"), properties: willProperties)

            let comesBack = broker.client("delay-1", version: .v5, sessionExpiry: 60, will: will)
            try await comesBack.connect()
            await comesBack.close()
            let back = broker.client("delay-1", version: .v5, cleanStart: false, sessionExpiry: 60)
            let backAck = try await back.connect()
            XCTAssertTrue(backAck.sessionPresent)

            let staysAway = broker.client("delay-2", version: .v5, sessionExpiry: 60, will: will)
            try await staysAway.connect()
            let dropped = ContinuousClock.now
            await staysAway.close()
            let message = try await inbox.next(timeout: 5)
            let delay = ContinuousClock.now - dropped
            XCTAssertEqual(message.text, "late")
            XCTAssertGreaterThanOrEqual(delay, .milliseconds(900), "published after the Will Delay Interval, not before")
            let extra = await inbox.unexpected(within: 0.2)
            XCTAssertEqual(extra.map(\.text), [], "the will of the client that came back is not published")
            try await back.disconnect()
            try await watcher.disconnect()
        }
    }

    /// A session ends when its Session Expiry Interval passes, or at once when DISCONNECT sets
    /// the interval to 0.
    func testSessionExpiry() async throws {
        try await withBroker { broker in
            let short = broker.client("short-lived", version: .v5, sessionExpiry: 1)
            try await short.connect()
            _ = try await short.subscribe(to: "short/t", qos: .atLeastOnce)
            try await short.disconnect()

            let zeroed = broker.client("zeroed", version: .v5, sessionExpiry: 300)
            try await zeroed.connect()
            var ending = Disconnect()
            ending.properties.sessionExpiryInterval = 0
            try await zeroed.disconnect(ending)
            try await Task.sleep(for: .milliseconds(100))
            let zeroedAgain = broker.client("zeroed", version: .v5, cleanStart: false, sessionExpiry: 300)
            let zeroedAck = try await zeroedAgain.connect()
            XCTAssertFalse(zeroedAck.sessionPresent, "DISCONNECT with expiry 0 ends the session")
            try await zeroedAgain.disconnect()

            // Still present before the interval passes ...
            let early = broker.client("short-lived", version: .v5, cleanStart: false, sessionExpiry: 1)
            let earlyAck = try await early.connect()
            XCTAssertTrue(earlyAck.sessionPresent)
            try await early.disconnect()
            // ... gone after it.
            try await Task.sleep(for: .milliseconds(1500))
            let late = broker.client("short-lived", version: .v5, cleanStart: false, sessionExpiry: 1)
            let lateAck = try await late.connect()
            XCTAssertFalse(lateAck.sessionPresent, "the session expired")
            try await late.disconnect()
        }
    }

    /// Topic aliases from the client resolve to their topic; an alias above the maximum is a
    /// protocol violation (DISCONNECT 0x94).
    func testInboundTopicAliases() async throws {
        try await withBroker { broker in
            let (subscriber, inbox) = try await broker.connectedClient("alias-sub", version: .v5)
            _ = try await subscriber.subscribe(to: "alias/#", qos: .atLeastOnce)
            let (publisher, _) = try await broker.connectedClient("alias-pub", version: .v5)
            XCTAssertEqual(publisher.connAck?.properties.topicAliasMaximum, 10)
            var alias = Properties()
            alias.topicAlias = 3
            for (topic, payload) in [("alias/long/topic", "1"), ("", "2"), ("alias/other", "3"), ("", "4")] {
                let publish = Publish(topic: topic, payload: ByteBuffer(string: payload), qos: .atLeastOnce, properties: alias)
                _ = try await publisher.publish(publish)
            }
            let received = try await inbox.take(4)
            XCTAssertEqual(received.map { "\($0.topic)=\($0.text)" }, [
                "alias/long/topic=1", "alias/long/topic=2", "alias/other=3", "alias/other=4",
            ])
            XCTAssertTrue(received.allSatisfy { $0.properties.topicAlias == nil }, "the alias is not forwarded")

            var tooHigh = Properties()
            tooHigh.topicAlias = 11
            try await publisher.send(.publish(Publish(topic: "alias/x", payload: ByteBuffer(string: "5"), properties: tooHigh)))
            let disconnect = try await withTimeout(seconds: 5) { await publisher.waitForClose() }
            XCTAssertEqual(disconnect?.reasonCode, .topicAliasInvalid)
            try await subscriber.disconnect()
        }
    }

    /// No Local, Retain As Published and Retain Handling (MQTT 5: 3.8.3.1).
    func testSubscriptionOptions() async throws {
        try await withBroker { broker in
            let (publisher, _) = try await broker.connectedClient("opt-pub", version: .v5)
            _ = try await publisher.publish(to: "opt/r", payload: "retained", qos: .atLeastOnce, retain: true)

            let (client, inbox) = try await broker.connectedClient("opt-sub", version: .v5)
            _ = try await client.subscribe([
                Subscription(filter: "opt/own", qos: .atLeastOnce, noLocal: true),
                Subscription(filter: "opt/r", qos: .atLeastOnce, retainAsPublished: true, retainHandling: .sendIfNew),
                Subscription(filter: "opt/r/#", qos: .atLeastOnce, retainHandling: .doNotSend),
                Subscription(filter: "opt/fence"),
            ])
            // Subscribed anew with Retain Handling 1: the retained message is not sent again.
            _ = try await client.subscribe([
                Subscription(filter: "opt/r", qos: .atLeastOnce, retainAsPublished: true, retainHandling: .sendIfNew),
            ])
            _ = try await client.publish(to: "opt/own", payload: "mine", qos: .atLeastOnce)
            _ = try await publisher.publish(to: "opt/own", payload: "theirs", qos: .atLeastOnce)
            _ = try await publisher.publish(to: "opt/r", payload: "live", qos: .atLeastOnce, retain: true)
            _ = try await publisher.publish(to: "opt/fence", payload: "fence", qos: .atLeastOnce)
            let received = try await inbox.takeUntil { $0.topic == "opt/fence" }
            XCTAssertEqual(received.map { "\($0.topic)=\($0.text) retain=\($0.retain)" }, [
                "opt/r=retained retain=true",  // new subscription: sent once ("opt/r/#" says doNotSend)
                "opt/own=theirs retain=false",  // not "mine": No Local
                "opt/r=live retain=true",  // Retain As Published
            ])
            try await client.disconnect()
            try await publisher.disconnect()
        }
    }

    /// Overlapping subscriptions of one client: one copy at the highest granted QoS, carrying
    /// every matching Subscription Identifier [MQTT-3.3.4-2], [MQTT-3.3.4-3].
    func testOverlappingSubscriptionsAndIdentifiers() async throws {
        try await withBroker { broker in
            let (client, inbox) = try await broker.connectedClient("ids-sub", version: .v5)
            var seven = Properties()
            seven.subscriptionIdentifiers = [7]
            var nine = Properties()
            nine.subscriptionIdentifiers = [9]
            _ = try await client.subscribe([Subscription(filter: "ids/#", qos: .atMostOnce)], properties: seven)
            _ = try await client.subscribe([Subscription(filter: "ids/+", qos: .atLeastOnce)], properties: nine)
            _ = try await client.subscribe([Subscription(filter: "ids/fence")])
            let (publisher, _) = try await broker.connectedClient("ids-pub", version: .v5)
            _ = try await publisher.publish(to: "ids/a", payload: "both", qos: .exactlyOnce)
            _ = try await publisher.publish(to: "ids/a/b", payload: "seven only", qos: .exactlyOnce)
            _ = try await publisher.publish(to: "ids/fence", payload: "fence", qos: .atLeastOnce)
            let received = try await inbox.takeUntil { $0.topic == "ids/fence" }
            XCTAssertEqual(received.map(\.text), ["both", "seven only"], "one copy per message")
            XCTAssertEqual(received.first?.qos, .atLeastOnce)
            XCTAssertEqual(received.first?.properties.subscriptionIdentifiers.sorted(), [7, 9])
            XCTAssertEqual(received.last?.qos, .atMostOnce)
            XCTAssertEqual(received.last?.properties.subscriptionIdentifiers, [7])
            try await client.disconnect()
            try await publisher.disconnect()
        }
    }

    /// An empty client identifier gets one assigned in CONNACK, and it works as the session key.
    func testAssignedClientIdentifier() async throws {
        try await withBroker { broker in
            let anonymous = broker.client("", version: .v5, sessionExpiry: 60)
            try await anonymous.connect()
            let assigned = try XCTUnwrap(anonymous.assignedClientIdentifier)
            XCTAssertFalse(assigned.isEmpty)
            _ = try await anonymous.subscribe(to: "assigned/t", qos: .atLeastOnce)
            try await anonymous.disconnect()
            let again = broker.client(assigned, version: .v5, cleanStart: false, sessionExpiry: 60)
            let connAck = try await again.connect()
            XCTAssertTrue(connAck.sessionPresent)
            XCTAssertNil(connAck.properties.assignedClientIdentifier)
            try await again.disconnect()
        }
    }

    /// A server shutdown tells MQTT 5 clients why (DISCONNECT 0x8B).
    func testShutdownSendsServerShuttingDown() async throws {
        let broker = try await TestBroker.start(settings: integrationSettings())
        let client = broker.client("bye", version: .v5)
        do {
            try await client.connect()
        } catch {
            await broker.server.shutdown()
            throw error
        }
        try await withTimeout(seconds: 10) { await broker.server.shutdown() }
        let disconnect = try await withTimeout(seconds: 5) { await client.waitForClose() }
        XCTAssertEqual(disconnect?.reasonCode, .serverShuttingDown)
    }
}

extension MQTT5FeatureTests {
    /// PUBLISH properties meant for the receiver travel unchanged [MQTT-3.3.2-4], [MQTT-3.3.2-15],
    /// [MQTT-3.3.2-16], [MQTT-3.3.2-17], [MQTT-3.3.2-20], also on a retained copy.
    func testApplicationPropertiesAreForwarded() async throws {
        try await withBroker { broker in
            let (subscriber, inbox) = try await broker.connectedClient("props-sub", version: .v5)
            _ = try await subscriber.subscribe(to: "props/t", qos: .atLeastOnce)
            let (publisher, _) = try await broker.connectedClient("props-pub", version: .v5)
            var properties = Properties()
            properties.payloadFormatIndicator = 1
            properties.contentType = "application/json"
            properties.responseTopic = "props/reply"
            properties.correlationData = ByteBuffer(bytes: [0x00, 0x01, 0xFE, 0xFF])
            properties.userProperties = [
                UserProperty(name: "k", value: "v1"), UserProperty(name: "k", value: "v2"), UserProperty(name: "ü", value: ""),
            ]
            _ = try await publisher.publish(to: "props/t", payload: "{}", qos: .atLeastOnce, retain: true, properties: properties)
            let live = try await inbox.next()
            XCTAssertEqual(live.properties, properties, "forwarded as sent, user properties in order")

            let (late, lateInbox) = try await broker.connectedClient("props-late", version: .v5)
            _ = try await late.subscribe(to: "props/t", qos: .atLeastOnce)
            let retained = try await lateInbox.next()
            XCTAssertTrue(retained.retain)
            XCTAssertEqual(retained.properties, properties, "the retained copy keeps its properties")
            for client in [subscriber, publisher, late] { try await client.disconnect() }
        }
    }

    /// Response Information is returned when requested (`response_information_prefix` + id).
    func testResponseInformation() async throws {
        try await withBroker { broker in
            var configuration = broker.client("asker", version: .v5).configuration
            configuration.connectProperties.requestResponseInformation = 1
            let asker = MQTTClient(configuration: configuration)
            let connAck = try await asker.connect()
            XCTAssertEqual(connAck.properties.responseInformation, "response/asker")
            try await asker.disconnect()
            let (plain, _) = try await broker.connectedClient("plain", version: .v5)
            XCTAssertNil(plain.connAck?.properties.responseInformation)
            try await plain.disconnect()
        }
    }

    /// With `topic_alias_out`, the broker replaces repeated topics by aliases within the client's
    /// Topic Alias Maximum; the client resolves them, so every message arrives with its topic.
    func testOutboundTopicAliases() async throws {
        var settings = integrationSettings()
        settings.topicAliasOut = true
        try await withBroker(settings: settings) { broker in
            let aliasesSeen = AliasRecorder()
            var configuration = broker.client("alias-out", version: .v5).configuration
            configuration.connectProperties.topicAliasMaximum = 2
            configuration.packetObserver = { direction, packet in
                if direction == .received, case .publish(let publish) = packet { aliasesSeen.record(publish) }
            }
            let subscriber = MQTTClient(configuration: configuration)
            let inbox = Inbox(subscriber.messages)
            try await subscriber.connect()
            _ = try await subscriber.subscribe(to: "ao/#", qos: .atLeastOnce)
            let (publisher, _) = try await broker.connectedClient("alias-out-pub", version: .v5)
            let topics = (0..<12).map { "ao/topic-\($0 % 3)" }
            for (index, topic) in topics.enumerated() {
                _ = try await publisher.publish(to: topic, payload: "\(index)", qos: .atLeastOnce)
            }
            let received = try await inbox.take(topics.count)
            XCTAssertEqual(received.map(\.topic), topics, "every alias resolved to its topic")
            XCTAssertEqual(received.map(\.text), (0..<topics.count).map { "\($0)" })
            let wire = aliasesSeen.all
            XCTAssertTrue(wire.allSatisfy { ($0.alias ?? 0) <= 2 }, "aliases within the client's maximum: \(wire)")
            XCTAssertTrue(wire.contains { $0.topic.isEmpty && $0.alias != nil }, "aliases were used")
            try await subscriber.disconnect()
            try await publisher.disconnect()
        }
    }
}

/// The topic and alias of every PUBLISH as it came off the wire.
///
/// Concurrency: `Sendable`; a `Mutex` guards the list (the observer runs on the EventLoop).
final class AliasRecorder: Sendable {
    private let entries = Mutex<[(topic: String, alias: UInt16?)]>([])

    var all: [(topic: String, alias: UInt16?)] { entries.withLock { $0 } }

    func record(_ publish: Publish) {
        entries.withLock { $0.append((publish.topic, publish.properties.topicAlias)) }
    }
}
