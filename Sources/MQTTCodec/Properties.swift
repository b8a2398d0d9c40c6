import NIOCore

/// The MQTT 5 properties of one packet (or of a will). Every field is optional; absent fields
/// are not encoded. Only ``userProperties`` and (in PUBLISH from server to client)
/// ``subscriptionIdentifiers`` may hold several values.
///
/// Stored copy-on-write behind one reference, and not at all while empty (the common case):
/// packets travel by value through decode, routing and encode, and an inline struct of 27
/// optionals made every one of those copies a few hundred bytes of memmove (measured: 12 % of a
/// QoS 1 broker profile).
public struct Properties: Sendable, Equatable {
    @usableFromInline
    final class Storage: @unchecked Sendable {
        @usableFromInline var payloadFormatIndicator: UInt8? = nil
        @usableFromInline var messageExpiryInterval: UInt32? = nil
        @usableFromInline var contentType: String? = nil
        @usableFromInline var responseTopic: String? = nil
        @usableFromInline var correlationData: ByteBuffer? = nil
        @usableFromInline var subscriptionIdentifiers: [Int] = []
        @usableFromInline var sessionExpiryInterval: UInt32? = nil
        @usableFromInline var assignedClientIdentifier: String? = nil
        @usableFromInline var serverKeepAlive: UInt16? = nil
        @usableFromInline var authenticationMethod: String? = nil
        @usableFromInline var authenticationData: ByteBuffer? = nil
        @usableFromInline var requestProblemInformation: UInt8? = nil
        @usableFromInline var willDelayInterval: UInt32? = nil
        @usableFromInline var requestResponseInformation: UInt8? = nil
        @usableFromInline var responseInformation: String? = nil
        @usableFromInline var serverReference: String? = nil
        @usableFromInline var reasonString: String? = nil
        @usableFromInline var receiveMaximum: UInt16? = nil
        @usableFromInline var topicAliasMaximum: UInt16? = nil
        @usableFromInline var topicAlias: UInt16? = nil
        @usableFromInline var maximumQoS: UInt8? = nil
        @usableFromInline var retainAvailable: UInt8? = nil
        @usableFromInline var userProperties: [UserProperty] = []
        @usableFromInline var maximumPacketSize: UInt32? = nil
        @usableFromInline var wildcardSubscriptionAvailable: UInt8? = nil
        @usableFromInline var subscriptionIdentifierAvailable: UInt8? = nil
        @usableFromInline var sharedSubscriptionAvailable: UInt8? = nil

        @usableFromInline init() {}

        @usableFromInline func copy() -> Storage {
            let copy = Storage()
            copy.payloadFormatIndicator = payloadFormatIndicator
            copy.messageExpiryInterval = messageExpiryInterval
            copy.contentType = contentType
            copy.responseTopic = responseTopic
            copy.correlationData = correlationData
            copy.subscriptionIdentifiers = subscriptionIdentifiers
            copy.sessionExpiryInterval = sessionExpiryInterval
            copy.assignedClientIdentifier = assignedClientIdentifier
            copy.serverKeepAlive = serverKeepAlive
            copy.authenticationMethod = authenticationMethod
            copy.authenticationData = authenticationData
            copy.requestProblemInformation = requestProblemInformation
            copy.willDelayInterval = willDelayInterval
            copy.requestResponseInformation = requestResponseInformation
            copy.responseInformation = responseInformation
            copy.serverReference = serverReference
            copy.reasonString = reasonString
            copy.receiveMaximum = receiveMaximum
            copy.topicAliasMaximum = topicAliasMaximum
            copy.topicAlias = topicAlias
            copy.maximumQoS = maximumQoS
            copy.retainAvailable = retainAvailable
            copy.userProperties = userProperties
            copy.maximumPacketSize = maximumPacketSize
            copy.wildcardSubscriptionAvailable = wildcardSubscriptionAvailable
            copy.subscriptionIdentifierAvailable = subscriptionIdentifierAvailable
            copy.sharedSubscriptionAvailable = sharedSubscriptionAvailable
            return copy
        }

        @usableFromInline var isEmpty: Bool {
            payloadFormatIndicator == nil
                && messageExpiryInterval == nil
                && contentType == nil
                && responseTopic == nil
                && correlationData == nil
                && subscriptionIdentifiers.isEmpty
                && sessionExpiryInterval == nil
                && assignedClientIdentifier == nil
                && serverKeepAlive == nil
                && authenticationMethod == nil
                && authenticationData == nil
                && requestProblemInformation == nil
                && willDelayInterval == nil
                && requestResponseInformation == nil
                && responseInformation == nil
                && serverReference == nil
                && reasonString == nil
                && receiveMaximum == nil
                && topicAliasMaximum == nil
                && topicAlias == nil
                && maximumQoS == nil
                && retainAvailable == nil
                && userProperties.isEmpty
                && maximumPacketSize == nil
                && wildcardSubscriptionAvailable == nil
                && subscriptionIdentifierAvailable == nil
                && sharedSubscriptionAvailable == nil
        }
    }

    @usableFromInline var storage: Storage?

    public init() {}

    /// True when no property is set (checked before encoding; no allocation involved).
    @inlinable
    public var isEmpty: Bool { storage?.isEmpty ?? true }

    @inlinable
    mutating func writable() -> Storage {
        guard storage != nil else {
            let fresh = Storage()
            storage = fresh
            return fresh
        }
        // Check uniqueness before taking any other reference to the storage.
        if !isKnownUniquelyReferenced(&storage!) { storage = storage!.copy() }
        return storage!
    }

    @inlinable
    public var payloadFormatIndicator: UInt8? {
        get { storage?.payloadFormatIndicator }
        set {
            if storage == nil && newValue == nil { return }
            writable().payloadFormatIndicator = newValue
        }
    }

    @inlinable
    public var messageExpiryInterval: UInt32? {
        get { storage?.messageExpiryInterval }
        set {
            if storage == nil && newValue == nil { return }
            writable().messageExpiryInterval = newValue
        }
    }

    @inlinable
    public var contentType: String? {
        get { storage?.contentType }
        set {
            if storage == nil && newValue == nil { return }
            writable().contentType = newValue
        }
    }

    @inlinable
    public var responseTopic: String? {
        get { storage?.responseTopic }
        set {
            if storage == nil && newValue == nil { return }
            writable().responseTopic = newValue
        }
    }

    @inlinable
    public var correlationData: ByteBuffer? {
        get { storage?.correlationData }
        set {
            if storage == nil && newValue == nil { return }
            writable().correlationData = newValue
        }
    }

    @inlinable
    public var subscriptionIdentifiers: [Int] {
        get { storage?.subscriptionIdentifiers ?? [] }
        set {
            if storage == nil && newValue.isEmpty { return }
            writable().subscriptionIdentifiers = newValue
        }
    }

    @inlinable
    public var sessionExpiryInterval: UInt32? {
        get { storage?.sessionExpiryInterval }
        set {
            if storage == nil && newValue == nil { return }
            writable().sessionExpiryInterval = newValue
        }
    }

    @inlinable
    public var assignedClientIdentifier: String? {
        get { storage?.assignedClientIdentifier }
        set {
            if storage == nil && newValue == nil { return }
            writable().assignedClientIdentifier = newValue
        }
    }

    @inlinable
    public var serverKeepAlive: UInt16? {
        get { storage?.serverKeepAlive }
        set {
            if storage == nil && newValue == nil { return }
            writable().serverKeepAlive = newValue
        }
    }

    @inlinable
    public var authenticationMethod: String? {
        get { storage?.authenticationMethod }
        set {
            if storage == nil && newValue == nil { return }
            writable().authenticationMethod = newValue
        }
    }

    @inlinable
    public var authenticationData: ByteBuffer? {
        get { storage?.authenticationData }
        set {
            if storage == nil && newValue == nil { return }
            writable().authenticationData = newValue
        }
    }

    @inlinable
    public var requestProblemInformation: UInt8? {
        get { storage?.requestProblemInformation }
        set {
            if storage == nil && newValue == nil { return }
            writable().requestProblemInformation = newValue
        }
    }

    @inlinable
    public var willDelayInterval: UInt32? {
        get { storage?.willDelayInterval }
        set {
            if storage == nil && newValue == nil { return }
            writable().willDelayInterval = newValue
        }
    }

    @inlinable
    public var requestResponseInformation: UInt8? {
        get { storage?.requestResponseInformation }
        set {
            if storage == nil && newValue == nil { return }
            writable().requestResponseInformation = newValue
        }
    }

    @inlinable
    public var responseInformation: String? {
        get { storage?.responseInformation }
        set {
            if storage == nil && newValue == nil { return }
            writable().responseInformation = newValue
        }
    }

    @inlinable
    public var serverReference: String? {
        get { storage?.serverReference }
        set {
            if storage == nil && newValue == nil { return }
            writable().serverReference = newValue
        }
    }

    @inlinable
    public var reasonString: String? {
        get { storage?.reasonString }
        set {
            if storage == nil && newValue == nil { return }
            writable().reasonString = newValue
        }
    }

    @inlinable
    public var receiveMaximum: UInt16? {
        get { storage?.receiveMaximum }
        set {
            if storage == nil && newValue == nil { return }
            writable().receiveMaximum = newValue
        }
    }

    @inlinable
    public var topicAliasMaximum: UInt16? {
        get { storage?.topicAliasMaximum }
        set {
            if storage == nil && newValue == nil { return }
            writable().topicAliasMaximum = newValue
        }
    }

    @inlinable
    public var topicAlias: UInt16? {
        get { storage?.topicAlias }
        set {
            if storage == nil && newValue == nil { return }
            writable().topicAlias = newValue
        }
    }

    @inlinable
    public var maximumQoS: UInt8? {
        get { storage?.maximumQoS }
        set {
            if storage == nil && newValue == nil { return }
            writable().maximumQoS = newValue
        }
    }

    @inlinable
    public var retainAvailable: UInt8? {
        get { storage?.retainAvailable }
        set {
            if storage == nil && newValue == nil { return }
            writable().retainAvailable = newValue
        }
    }

    @inlinable
    public var userProperties: [UserProperty] {
        get { storage?.userProperties ?? [] }
        set {
            if storage == nil && newValue.isEmpty { return }
            writable().userProperties = newValue
        }
    }

    @inlinable
    public var maximumPacketSize: UInt32? {
        get { storage?.maximumPacketSize }
        set {
            if storage == nil && newValue == nil { return }
            writable().maximumPacketSize = newValue
        }
    }

    @inlinable
    public var wildcardSubscriptionAvailable: UInt8? {
        get { storage?.wildcardSubscriptionAvailable }
        set {
            if storage == nil && newValue == nil { return }
            writable().wildcardSubscriptionAvailable = newValue
        }
    }

    @inlinable
    public var subscriptionIdentifierAvailable: UInt8? {
        get { storage?.subscriptionIdentifierAvailable }
        set {
            if storage == nil && newValue == nil { return }
            writable().subscriptionIdentifierAvailable = newValue
        }
    }

    @inlinable
    public var sharedSubscriptionAvailable: UInt8? {
        get { storage?.sharedSubscriptionAvailable }
        set {
            if storage == nil && newValue == nil { return }
            writable().sharedSubscriptionAvailable = newValue
        }
    }

    public static func == (lhs: Properties, rhs: Properties) -> Bool {
        if lhs.storage === rhs.storage { return true }
        return lhs.payloadFormatIndicator == rhs.payloadFormatIndicator
            && lhs.messageExpiryInterval == rhs.messageExpiryInterval
            && lhs.contentType == rhs.contentType
            && lhs.responseTopic == rhs.responseTopic
            && lhs.correlationData == rhs.correlationData
            && lhs.subscriptionIdentifiers == rhs.subscriptionIdentifiers
            && lhs.sessionExpiryInterval == rhs.sessionExpiryInterval
            && lhs.assignedClientIdentifier == rhs.assignedClientIdentifier
            && lhs.serverKeepAlive == rhs.serverKeepAlive
            && lhs.authenticationMethod == rhs.authenticationMethod
            && lhs.authenticationData == rhs.authenticationData
            && lhs.requestProblemInformation == rhs.requestProblemInformation
            && lhs.willDelayInterval == rhs.willDelayInterval
            && lhs.requestResponseInformation == rhs.requestResponseInformation
            && lhs.responseInformation == rhs.responseInformation
            && lhs.serverReference == rhs.serverReference
            && lhs.reasonString == rhs.reasonString
            && lhs.receiveMaximum == rhs.receiveMaximum
            && lhs.topicAliasMaximum == rhs.topicAliasMaximum
            && lhs.topicAlias == rhs.topicAlias
            && lhs.maximumQoS == rhs.maximumQoS
            && lhs.retainAvailable == rhs.retainAvailable
            && lhs.userProperties == rhs.userProperties
            && lhs.maximumPacketSize == rhs.maximumPacketSize
            && lhs.wildcardSubscriptionAvailable == rhs.wildcardSubscriptionAvailable
            && lhs.subscriptionIdentifierAvailable == rhs.subscriptionIdentifierAvailable
            && lhs.sharedSubscriptionAvailable == rhs.sharedSubscriptionAvailable
    }
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
