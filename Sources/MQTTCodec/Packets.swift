import NIOCore

/// One MQTT control packet, of any version. The protocol version needed to encode or decode it
/// is held by the ``MQTTDecoder`` / ``MQTTEncoder`` of the connection, not by the packet.
public enum MQTTPacket: Sendable, Equatable {
    case connect(Connect)
    case connack(ConnAck)
    case publish(Publish)
    case puback(Ack)
    case pubrec(Ack)
    case pubrel(Ack)
    case pubcomp(Ack)
    case subscribe(Subscribe)
    case suback(SubAck)
    case unsubscribe(Unsubscribe)
    case unsuback(UnsubAck)
    case pingreq
    case pingresp
    case disconnect(Disconnect)
    case auth(Auth)

    public var type: PacketType {
        switch self {
        case .connect: return .connect
        case .connack: return .connack
        case .publish: return .publish
        case .puback: return .puback
        case .pubrec: return .pubrec
        case .pubrel: return .pubrel
        case .pubcomp: return .pubcomp
        case .subscribe: return .subscribe
        case .suback: return .suback
        case .unsubscribe: return .unsubscribe
        case .unsuback: return .unsuback
        case .pingreq: return .pingreq
        case .pingresp: return .pingresp
        case .disconnect: return .disconnect
        case .auth: return .auth
        }
    }
}

/// CONNECT: the first packet from a client.
public struct Connect: Sendable, Equatable {
    public var version: ProtocolVersion
    /// Clean Session (3.1.1) or Clean Start (5.0).
    public var cleanStart: Bool
    public var keepAlive: UInt16
    public var clientID: String
    public var username: String?
    public var password: ByteBuffer?
    public var will: Will?
    public var properties: Properties

    public init(
        version: ProtocolVersion = .v5, cleanStart: Bool = true, keepAlive: UInt16 = 60, clientID: String,
        username: String? = nil, password: ByteBuffer? = nil, will: Will? = nil, properties: Properties = Properties()
    ) {
        self.version = version
        self.cleanStart = cleanStart
        self.keepAlive = keepAlive
        self.clientID = clientID
        self.username = username
        self.password = password
        self.will = will
        self.properties = properties
    }
}

/// The will message of a CONNECT.
public struct Will: Sendable, Equatable {
    public var topic: String
    public var payload: ByteBuffer
    public var qos: QoS
    public var retain: Bool
    public var properties: Properties

    public init(topic: String, payload: ByteBuffer, qos: QoS = .atMostOnce, retain: Bool = false, properties: Properties = Properties()) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.properties = properties
    }
}

/// CONNACK. `reasonCode` carries the 3.1.1 return code for older versions.
public struct ConnAck: Sendable, Equatable {
    public var sessionPresent: Bool
    public var reasonCode: ReasonCode
    public var properties: Properties

    public init(sessionPresent: Bool = false, reasonCode: ReasonCode = .success, properties: Properties = Properties()) {
        self.sessionPresent = sessionPresent
        self.reasonCode = reasonCode
        self.properties = properties
    }
}

/// PUBLISH. `packetID` is 0 for QoS 0. In MQTT 5 the topic may be empty when a topic alias is set.
public struct Publish: Sendable, Equatable {
    public var dup: Bool
    public var qos: QoS
    public var retain: Bool
    public var topic: String
    public var packetID: UInt16
    public var properties: Properties
    public var payload: ByteBuffer

    public init(
        topic: String, payload: ByteBuffer, qos: QoS = .atMostOnce, retain: Bool = false, dup: Bool = false,
        packetID: UInt16 = 0, properties: Properties = Properties()
    ) {
        self.dup = dup
        self.qos = qos
        self.retain = retain
        self.topic = topic
        self.packetID = packetID
        self.properties = properties
        self.payload = payload
    }
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP.
public struct Ack: Sendable, Equatable {
    public var packetID: UInt16
    public var reasonCode: ReasonCode
    public var properties: Properties

    public init(packetID: UInt16, reasonCode: ReasonCode = .success, properties: Properties = Properties()) {
        self.packetID = packetID
        self.reasonCode = reasonCode
        self.properties = properties
    }
}

/// How retained messages are sent when a subscription is made (MQTT 5: 3.8.3.1).
public enum RetainHandling: UInt8, Sendable {
    /// Send retained messages at the time of the subscribe.
    case sendAlways = 0
    /// Send them only if the subscription did not exist.
    case sendIfNew = 1
    /// Do not send them.
    case doNotSend = 2
}

/// One topic filter of a SUBSCRIBE with its options.
public struct Subscription: Sendable, Equatable {
    public var filter: String
    public var qos: QoS
    public var noLocal: Bool
    public var retainAsPublished: Bool
    public var retainHandling: RetainHandling

    public init(filter: String, qos: QoS = .atMostOnce, noLocal: Bool = false, retainAsPublished: Bool = false, retainHandling: RetainHandling = .sendAlways) {
        self.filter = filter
        self.qos = qos
        self.noLocal = noLocal
        self.retainAsPublished = retainAsPublished
        self.retainHandling = retainHandling
    }
}

public struct Subscribe: Sendable, Equatable {
    public var packetID: UInt16
    public var subscriptions: [Subscription]
    public var properties: Properties

    public init(packetID: UInt16, subscriptions: [Subscription], properties: Properties = Properties()) {
        self.packetID = packetID
        self.subscriptions = subscriptions
        self.properties = properties
    }
}

public struct SubAck: Sendable, Equatable {
    public var packetID: UInt16
    public var reasonCodes: [ReasonCode]
    public var properties: Properties

    public init(packetID: UInt16, reasonCodes: [ReasonCode], properties: Properties = Properties()) {
        self.packetID = packetID
        self.reasonCodes = reasonCodes
        self.properties = properties
    }
}

public struct Unsubscribe: Sendable, Equatable {
    public var packetID: UInt16
    public var filters: [String]
    public var properties: Properties

    public init(packetID: UInt16, filters: [String], properties: Properties = Properties()) {
        self.packetID = packetID
        self.filters = filters
        self.properties = properties
    }
}

/// UNSUBACK. Reason codes exist only in MQTT 5; for older versions the array is empty.
public struct UnsubAck: Sendable, Equatable {
    public var packetID: UInt16
    public var reasonCodes: [ReasonCode]
    public var properties: Properties

    public init(packetID: UInt16, reasonCodes: [ReasonCode] = [], properties: Properties = Properties()) {
        self.packetID = packetID
        self.reasonCodes = reasonCodes
        self.properties = properties
    }
}

public struct Disconnect: Sendable, Equatable {
    public var reasonCode: ReasonCode
    public var properties: Properties

    public init(reasonCode: ReasonCode = .normalDisconnection, properties: Properties = Properties()) {
        self.reasonCode = reasonCode
        self.properties = properties
    }
}

public struct Auth: Sendable, Equatable {
    public var reasonCode: ReasonCode
    public var properties: Properties

    public init(reasonCode: ReasonCode = .success, properties: Properties = Properties()) {
        self.reasonCode = reasonCode
        self.properties = properties
    }
}
