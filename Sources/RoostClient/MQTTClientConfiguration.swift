import MQTTCodec
import NIOCore

/// Everything ``MQTTClient`` needs to open a connection and fill in its CONNECT packet.
///
/// Concurrency: a plain value, `Sendable`. A client copies it at initialisation; changing a copy
/// later does not affect the client.
public struct MQTTClientConfiguration: Sendable {
    /// Host name or IP address of the server.
    public var host: String
    /// TCP port of the server.
    public var port: Int
    /// The protocol version spoken on the connection (3.1, 3.1.1 or 5.0).
    public var version: ProtocolVersion
    /// The client identifier sent in CONNECT. May be empty for MQTT 3.1.1 (with a clean session)
    /// and MQTT 5, in which case an MQTT 5 server assigns one (see
    /// ``MQTTClient/assignedClientIdentifier``).
    public var clientID: String
    /// Clean Session (3.1/3.1.1) or Clean Start (5.0).
    public var cleanStart: Bool
    /// Keep Alive in seconds; 0 disables keep-alive. When the server returns a Server Keep Alive
    /// (MQTT 5), the client uses that value instead.
    public var keepAlive: UInt16
    public var username: String?
    /// The password (binary data in MQTT; use ``MQTTClientConfiguration/setPassword(_:)`` for text).
    public var password: ByteBuffer?
    /// The will message, published by the server if the connection is lost without DISCONNECT.
    public var will: Will?
    /// MQTT 5 CONNECT properties (Session Expiry Interval, Receive Maximum, Maximum Packet Size,
    /// Topic Alias Maximum, user properties, ...). Ignored for older versions.
    ///
    /// A Maximum Packet Size set here also limits the inbound decoder; a Topic Alias Maximum set
    /// here makes the client resolve the aliases the server sends.
    public var connectProperties: Properties
    /// How long to wait for the TCP connection, and again for the CONNACK.
    public var connectTimeout: TimeAmount
    /// How long a publish, subscribe, unsubscribe or ping waits for the server's acknowledgement
    /// once its packet is sent; nil waits forever. Time spent waiting for a free slot in the
    /// server's Receive Maximum window does not count.
    public var operationTimeout: TimeAmount?
    /// The most QoS 1 and 2 PUBLISH the client keeps in flight (sent, not yet completed). The
    /// limit in force is the smaller of this and the server's Receive Maximum; further
    /// ``MQTTClient/publish(_:)`` calls wait. Servers of MQTT 3.1.1 advertise no limit, and some
    /// drop messages when flooded, so a small value (libmosquitto uses 20) can help there.
    public var maximumInflight: Int
    /// TLS towards the server; nil: plain TCP.
    public var tls: MQTTClientTLS?
    /// Called on the connection's EventLoop for every packet sent and received, in order (the
    /// `-d` output of `roost pub` / `roost sub`, packet traces in tests). Must not block.
    public var packetObserver: (@Sendable (MQTTPacketDirection, MQTTPacket) -> Void)?
    /// When set, called on the connection's EventLoop with each inbound PUBLISH (already
    /// acknowledged, aliases resolved), instead of yielding it to ``MQTTClient/messages``: the
    /// cheap path for high message rates (`roost bench`), with no task hop per message. Must
    /// not block.
    public var messageHandler: (@Sendable (Publish) -> Void)?

    public init(
        host: String = "127.0.0.1",
        port: Int = 1883,
        version: ProtocolVersion = .v3_1_1,
        clientID: String = "",
        cleanStart: Bool = true,
        keepAlive: UInt16 = 60,
        username: String? = nil,
        password: ByteBuffer? = nil,
        will: Will? = nil,
        connectProperties: Properties = Properties(),
        connectTimeout: TimeAmount = .seconds(10),
        operationTimeout: TimeAmount? = .seconds(30),
        maximumInflight: Int = Int(UInt16.max),
        packetObserver: (@Sendable (MQTTPacketDirection, MQTTPacket) -> Void)? = nil
    ) {
        self.host = host
        self.port = port
        self.version = version
        self.clientID = clientID
        self.cleanStart = cleanStart
        self.keepAlive = keepAlive
        self.username = username
        self.password = password
        self.will = will
        self.connectProperties = connectProperties
        self.connectTimeout = connectTimeout
        self.operationTimeout = operationTimeout
        self.maximumInflight = maximumInflight
        self.packetObserver = packetObserver
    }

    /// Sets ``password`` to the UTF-8 bytes of `text` (nil removes it).
    public mutating func setPassword(_ text: String?) {
        password = text.map { ByteBuffer(string: $0) }
    }

    /// The CONNECT packet this configuration describes.
    public var connectPacket: Connect {
        Connect(
            version: version, cleanStart: cleanStart, keepAlive: keepAlive, clientID: clientID,
            username: username, password: password, will: will,
            properties: version == .v5 ? connectProperties : Properties())
    }
}

/// Which way a packet went, for ``MQTTClientConfiguration/packetObserver``.
///
/// Concurrency: a plain value, `Sendable`.
public enum MQTTPacketDirection: Sendable, Equatable {
    case sent
    case received
}

extension MQTTClient {
    /// The configuration of an ``MQTTClient``.
    public typealias Configuration = MQTTClientConfiguration
}

/// TLS settings of a client connection, named as in mosquitto_pub.
public struct MQTTClientTLS: Sendable, Equatable {
    /// PEM file with the CAs to trust; nil: the system's trust store.
    public var cafile: String?
    /// PEM client certificate and key, for servers that require one (mutual TLS).
    public var certfile: String?
    public var keyfile: String?
    /// Do not check that the server's certificate names the host (it is still verified
    /// against the CAs).
    public var insecure: Bool = false

    public init(cafile: String? = nil, certfile: String? = nil, keyfile: String? = nil, insecure: Bool = false) {
        self.cafile = cafile
        self.certfile = certfile
        self.keyfile = keyfile
        self.insecure = insecure
    }
}
