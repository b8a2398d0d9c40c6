import Logging
import MQTTCodec
import NIOCore
import RoostClient
import RoostCore
import RoostServer
import XCTest

/// A real broker on `127.0.0.1:0` (two event loops), for one test.
///
/// Concurrency: `Sendable`; the server is shut down by ``withBroker(_:settings:_:)``, which owns it.
final class TestBroker: Sendable {
    let server: Server
    let port: Int

    private init(server: Server, port: Int) {
        self.server = server
        self.port = port
    }

    static func start(
        settings: BrokerSettings, authenticator: (any Authenticator)? = nil, authorizer: (any Authorizer)? = nil,
        store: (any DurableStore)? = nil
    ) async throws -> TestBroker {
        var logger = Logger(label: "roost.integration")
        logger.logLevel = .critical
        let server = try await Server.start(
            settings: settings, listeners: [("127.0.0.1", 0)], threads: 2, logger: logger,
            authenticator: authenticator, authorizer: authorizer, store: store)
        guard let port = server.localAddresses.first?.port else {
            await server.shutdown()
            throw IntegrationError("the server bound no address")
        }
        return TestBroker(server: server, port: port)
    }

    /// A client for this broker with short timeouts, so a broken broker fails the test quickly.
    func client(
        _ clientID: String, version: ProtocolVersion, cleanStart: Bool = true, sessionExpiry: UInt32? = nil,
        will: Will? = nil, keepAlive: UInt16 = 60
    ) -> MQTTClient {
        var properties = Properties()
        if version == .v5 { properties.sessionExpiryInterval = sessionExpiry }
        let configuration = MQTTClientConfiguration(
            port: port, version: version, clientID: clientID, cleanStart: cleanStart, keepAlive: keepAlive, will: will,
            connectProperties: properties, connectTimeout: .seconds(5), operationTimeout: .seconds(10))
        return MQTTClient(configuration: configuration)
    }

    /// Creates a client, starts collecting its messages and connects it.
    func connectedClient(
        _ clientID: String, version: ProtocolVersion, cleanStart: Bool = true, sessionExpiry: UInt32? = nil,
        will: Will? = nil
    ) async throws -> (MQTTClient, Inbox<Publish>) {
        let client = client(clientID, version: version, cleanStart: cleanStart, sessionExpiry: sessionExpiry, will: will)
        let inbox = Inbox(client.messages)
        try await client.connect()
        return (client, inbox)
    }

    /// A raw TCP connection to this broker that speaks only what the test writes.
    func rawConnection(version: ProtocolVersion, autoRead: Bool = true) async throws -> RawConnection {
        try await RawConnection.connect(port: port, version: version, autoRead: autoRead)
    }
}

/// Starts a broker, runs `body` against it under a deadline, and always shuts the broker down.
func withBroker(
    settings: BrokerSettings = integrationSettings(),
    timeout seconds: Double = 30,
    _ body: @escaping @Sendable (TestBroker) async throws -> Void
) async throws {
    let broker = try await TestBroker.start(settings: settings)
    do {
        try await withTimeout(seconds: seconds) { try await body(broker) }
    } catch {
        await broker.server.shutdown()
        throw error
    }
    await broker.server.shutdown()
}

/// Broker settings for the tests: the defaults, with `$SYS` updates every 10 s (so they don't
/// interleave with the scenarios unless a test asks for them).
func integrationSettings(sysInterval: Int = 10) -> BrokerSettings {
    var settings = BrokerSettings()
    settings.sysInterval = sysInterval
    return settings
}

/// A test failure with a message, thrown out of helpers that cannot call XCTFail usefully.
struct IntegrationError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension Publish {
    /// The payload as UTF-8 text (tests publish text unless they say otherwise).
    var text: String { String(buffer: payload) }
}

extension ByteBuffer {
    init(bytes: [UInt8]) {
        self.init()
        writeBytes(bytes)
    }
}
