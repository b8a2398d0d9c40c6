import NIOCore

/// The MQTT 5 properties of one packet (or of a will). Every field is optional; absent fields
/// are not encoded. Only ``userProperties`` and (in PUBLISH from server to client)
/// ``subscriptionIdentifiers`` may hold several values.
public struct Properties: Sendable, Equatable {
    public var payloadFormatIndicator: UInt8?
    public var messageExpiryInterval: UInt32?
    public var contentType: String?
    public var responseTopic: String?
    public var correlationData: ByteBuffer?
    public var subscriptionIdentifiers: [Int] = []
    public var sessionExpiryInterval: UInt32?
    public var assignedClientIdentifier: String?
    public var serverKeepAlive: UInt16?
    public var authenticationMethod: String?
    public var authenticationData: ByteBuffer?
    public var requestProblemInformation: UInt8?
    public var willDelayInterval: UInt32?
    public var requestResponseInformation: UInt8?
    public var responseInformation: String?
    public var serverReference: String?
    public var reasonString: String?
    public var receiveMaximum: UInt16?
    public var topicAliasMaximum: UInt16?
    public var topicAlias: UInt16?
    public var maximumQoS: UInt8?
    public var retainAvailable: UInt8?
    public var userProperties: [UserProperty] = []
    public var maximumPacketSize: UInt32?
    public var wildcardSubscriptionAvailable: UInt8?
    public var subscriptionIdentifierAvailable: UInt8?
    public var sharedSubscriptionAvailable: UInt8?

    public init() {}

    /// True when no property is set (the common case, checked before encoding).
    public var isEmpty: Bool { self == Properties() }
}

/// A user property: a UTF-8 string pair, kept in the order received.
public struct UserProperty: Sendable, Equatable {
    public var name: String
    public var value: String
    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// The property identifiers of MQTT 5 (section 2.2.2.2).
public enum PropertyID: UInt8, Sendable {
    case payloadFormatIndicator = 0x01
    case messageExpiryInterval = 0x02
    case contentType = 0x03
    case responseTopic = 0x08
    case correlationData = 0x09
    case subscriptionIdentifier = 0x0B
    case sessionExpiryInterval = 0x11
    case assignedClientIdentifier = 0x12
    case serverKeepAlive = 0x13
    case authenticationMethod = 0x15
    case authenticationData = 0x16
    case requestProblemInformation = 0x17
    case willDelayInterval = 0x18
    case requestResponseInformation = 0x19
    case responseInformation = 0x1A
    case serverReference = 0x1C
    case reasonString = 0x1F
    case receiveMaximum = 0x21
    case topicAliasMaximum = 0x22
    case topicAlias = 0x23
    case maximumQoS = 0x24
    case retainAvailable = 0x25
    case userProperty = 0x26
    case maximumPacketSize = 0x27
    case wildcardSubscriptionAvailable = 0x28
    case subscriptionIdentifierAvailable = 0x29
    case sharedSubscriptionAvailable = 0x2A

    /// Where a property may appear: a bit per packet type (1 << type), plus bit 0 for a will.
    var allowedIn: UInt16 {
        func bits(_ types: [PacketType], will: Bool = false) -> UInt16 {
            var mask: UInt16 = will ? 1 : 0
            for type in types { mask |= 1 << UInt16(type.rawValue) }
            return mask
        }
        switch self {
        case .payloadFormatIndicator, .messageExpiryInterval, .contentType, .responseTopic, .correlationData:
            return bits([.publish], will: true)
        case .subscriptionIdentifier: return bits([.publish, .subscribe])
        case .sessionExpiryInterval: return bits([.connect, .connack, .disconnect])
        case .assignedClientIdentifier, .serverKeepAlive, .responseInformation, .maximumQoS, .retainAvailable,
            .wildcardSubscriptionAvailable, .subscriptionIdentifierAvailable, .sharedSubscriptionAvailable:
            return bits([.connack])
        case .authenticationMethod, .authenticationData: return bits([.connect, .connack, .auth])
        case .requestProblemInformation, .requestResponseInformation: return bits([.connect])
        case .willDelayInterval: return bits([], will: true)
        case .serverReference: return bits([.connack, .disconnect])
        case .reasonString:
            return bits([.connack, .puback, .pubrec, .pubrel, .pubcomp, .suback, .unsuback, .disconnect, .auth])
        case .receiveMaximum, .topicAliasMaximum, .maximumPacketSize: return bits([.connect, .connack])
        case .topicAlias: return bits([.publish])
        case .userProperty: return 0xFFFF
        }
    }
}

/// Where a property block sits, for the "allowed here" check.
public enum PropertyContext: Sendable {
    case packet(PacketType)
    case will

    var bit: UInt16 {
        switch self {
        case .packet(let type): return 1 << UInt16(type.rawValue)
        case .will: return 1
        }
    }
}
