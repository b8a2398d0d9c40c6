/// Why a packet could not be decoded. Each case names the rule of the MQTT standard it enforces;
/// ``reasonCode`` is what an MQTT 5 peer is told in DISCONNECT (or CONNACK).
public enum DecodeError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The remaining length used more than 4 bytes [MQTT-1.5.5-1] (MQTT 5: 1.5.5).
    case malformedRemainingLength
    /// The packet is larger than the maximum packet size accepted (MQTT 5: 3.1.2.11.4).
    case packetTooLarge(size: Int, limit: Int)
    /// Packet type 0 is reserved; AUTH (15) exists only in MQTT 5 [MQTT-2.1.2].
    case invalidPacketType(UInt8)
    /// The flag bits of the fixed header are reserved for this type [MQTT-2.1.3-1].
    case invalidFixedHeaderFlags(PacketType)
    /// The body ended before a field did, or bytes were left over.
    case malformedBody(PacketType)
    /// A string is not well-formed UTF-8 [MQTT-1.5.4-1].
    case invalidUTF8
    /// A string contains U+0000 [MQTT-1.5.4-2].
    case nullCharacterInString
    /// The protocol name is not `MQTT` (or `MQIsdp` for 3.1) [MQTT-3.1.2-1].
    case invalidProtocolName
    /// The protocol level is not 3, 4 or 5 [MQTT-3.1.2-2]. The server answers with CONNACK.
    case unsupportedProtocolVersion(UInt8)
    /// The reserved bit of the CONNECT flags is set [MQTT-3.1.2-3].
    case connectReservedFlagSet
    /// Will QoS or Will Retain set without the Will Flag, or Will QoS 3 [MQTT-3.1.2-11], [MQTT-3.1.2-13], [MQTT-3.1.2-14].
    case invalidWillFlags
    /// Password flag without user name flag in 3.1.1 [MQTT-3.1.2-22].
    case passwordWithoutUserName
    /// PUBLISH with both QoS bits set [MQTT-3.3.1-4].
    case invalidQoS
    /// DUP set on a QoS 0 PUBLISH [MQTT-3.3.1-2].
    case dupOnQoS0
    /// The topic name is empty or contains a wildcard [MQTT-3.3.2-2], [MQTT-4.7.3-1].
    case invalidTopicName
    /// A packet identifier of 0 [MQTT-2.2.1-3].
    case zeroPacketIdentifier
    /// An unknown property identifier (MQTT 5: 2.2.2.2).
    case unknownProperty(UInt8)
    /// A property appeared twice where only one is allowed (MQTT 5: 2.2.2.2).
    case duplicateProperty(PropertyID)
    /// A property that this packet may not carry (MQTT 5: 2.2.2.2).
    case propertyNotAllowed(PropertyID)
    /// A property value out of its range (e.g. Receive Maximum 0 [MQTT-3.1.2-?], a topic alias of 0 [MQTT-3.3.2-8]).
    case invalidPropertyValue(PropertyID)
    /// SUBSCRIBE or UNSUBSCRIBE without any topic filter [MQTT-3.8.3-3], [MQTT-3.10.3-2].
    case noTopicFilters
    /// Reserved bits of the subscription options set, QoS 3 or Retain Handling 3 [MQTT-3.8.3-5].
    case invalidSubscriptionOptions
    /// MQTT 5 subscription options with QoS 3 or Retain Handling 3: a protocol error (MQTT 5: 3.8.3.1).
    case invalidSubscriptionOptionValue
    /// A variable byte integer not in its shortest form [MQTT-1.5.5-1].
    case nonMinimalVariableByteInteger
    /// A reason code this packet may not carry.
    case invalidReasonCode(UInt8)

    /// The reason code an MQTT 5 peer gets for this error.
    public var reasonCode: ReasonCode {
        switch self {
        case .packetTooLarge: return .packetTooLarge
        case .unsupportedProtocolVersion: return .unsupportedProtocolVersion
        case .invalidTopicName: return .topicNameInvalid
        // MQTT 5 2.2.2.2: an identifier not valid for the packet is malformed; a repeated
        // property or a value out of range is a protocol error; so is a (UN)SUBSCRIBE without
        // filters [MQTT-3.8.3-2], [MQTT-3.10.3-2].
        case .duplicateProperty, .invalidPropertyValue, .zeroPacketIdentifier, .noTopicFilters,
            .invalidSubscriptionOptionValue:
            return .protocolError
        default: return .malformedPacket
        }
    }

    public var description: String {
        switch self {
        case .malformedRemainingLength: return "remaining length longer than 4 bytes [MQTT-1.5.5-1]"
        case .packetTooLarge(let size, let limit): return "packet of \(size) bytes exceeds the maximum of \(limit)"
        case .invalidPacketType(let type): return "invalid packet type \(type) [MQTT-2.1.2]"
        case .invalidFixedHeaderFlags(let type): return "reserved fixed-header flags set on \(type) [MQTT-2.1.3-1]"
        case .malformedBody(let type): return "malformed \(type) body (truncated or trailing bytes)"
        case .invalidUTF8: return "string is not well-formed UTF-8 [MQTT-1.5.4-1]"
        case .nullCharacterInString: return "string contains U+0000 [MQTT-1.5.4-2]"
        case .invalidProtocolName: return "protocol name is not MQTT [MQTT-3.1.2-1]"
        case .unsupportedProtocolVersion(let level): return "unsupported protocol level \(level) [MQTT-3.1.2-2]"
        case .connectReservedFlagSet: return "CONNECT reserved flag set [MQTT-3.1.2-3]"
        case .invalidWillFlags: return "will QoS/retain without will flag, or will QoS 3 [MQTT-3.1.2-11]"
        case .passwordWithoutUserName: return "password flag without user name flag [MQTT-3.1.2-22]"
        case .invalidQoS: return "PUBLISH QoS 3 [MQTT-3.3.1-4]"
        case .dupOnQoS0: return "DUP flag on a QoS 0 PUBLISH [MQTT-3.3.1-2]"
        case .invalidTopicName: return "topic name empty or containing wildcards [MQTT-3.3.2-2]"
        case .zeroPacketIdentifier: return "packet identifier 0 [MQTT-2.2.1-3]"
        case .unknownProperty(let id): return "unknown property 0x\(String(id, radix: 16))"
        case .duplicateProperty(let id): return "property \(id) included more than once"
        case .propertyNotAllowed(let id): return "property \(id) not allowed in this packet"
        case .invalidPropertyValue(let id): return "property \(id) has an invalid value"
        case .noTopicFilters: return "no topic filter in (UN)SUBSCRIBE [MQTT-3.8.3-3]"
        case .invalidSubscriptionOptions: return "reserved bits set in subscription options [MQTT-3.8.3-5]"
        case .invalidSubscriptionOptionValue: return "subscription options with QoS 3 or Retain Handling 3 (3.8.3.1)"
        case .nonMinimalVariableByteInteger: return "variable byte integer not in its shortest form [MQTT-1.5.5-1]"
        case .invalidReasonCode(let code): return "invalid reason code 0x\(String(code, radix: 16))"
        }
    }
}
