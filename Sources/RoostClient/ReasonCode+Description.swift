import MQTTCodec

extension ReasonCode {
    /// A human-readable name for an MQTT 5 reason code, as used in client messages
    /// ("not authorized", "quota exceeded"), followed by the hex value.
    public var reasonDescription: String {
        let name: String
        switch rawValue {
        case 0x00: name = "success"
        case 0x01: name = "granted QoS 1"
        case 0x02: name = "granted QoS 2"
        case 0x04: name = "disconnect with will message"
        case 0x10: name = "no matching subscribers"
        case 0x11: name = "no subscription existed"
        case 0x18: name = "continue authentication"
        case 0x19: name = "re-authenticate"
        case 0x80: name = "unspecified error"
        case 0x81: name = "malformed packet"
        case 0x82: name = "protocol error"
        case 0x83: name = "implementation specific error"
        case 0x84: name = "unsupported protocol version"
        case 0x85: name = "client identifier not valid"
        case 0x86: name = "bad user name or password"
        case 0x87: name = "not authorized"
        case 0x88: name = "server unavailable"
        case 0x89: name = "server busy"
        case 0x8A: name = "banned"
        case 0x8B: name = "server shutting down"
        case 0x8C: name = "bad authentication method"
        case 0x8D: name = "keep alive timeout"
        case 0x8E: name = "session taken over"
        case 0x8F: name = "topic filter invalid"
        case 0x90: name = "topic name invalid"
        case 0x91: name = "packet identifier in use"
        case 0x92: name = "packet identifier not found"
        case 0x93: name = "receive maximum exceeded"
        case 0x94: name = "topic alias invalid"
        case 0x95: name = "packet too large"
        case 0x96: name = "message rate too high"
        case 0x97: name = "quota exceeded"
        case 0x98: name = "administrative action"
        case 0x99: name = "payload format invalid"
        case 0x9A: name = "retain not supported"
        case 0x9B: name = "QoS not supported"
        case 0x9C: name = "use another server"
        case 0x9D: name = "server moved"
        case 0x9E: name = "shared subscriptions not supported"
        case 0x9F: name = "connection rate exceeded"
        case 0xA0: name = "maximum connect time"
        case 0xA1: name = "subscription identifiers not supported"
        case 0xA2: name = "wildcard subscriptions not supported"
        default: name = "unknown reason"
        }
        return "\(name) (\(description))"
    }

    /// Describes a CONNACK code of any protocol version: MQTT 3.1/3.1.1 return codes are 1...5,
    /// MQTT 5 reason codes are >= 0x80.
    public var connectReasonDescription: String {
        guard rawValue < 0x80 else { return reasonDescription }
        switch ConnectReturnCode(rawValue: rawValue) {
        case .accepted: return "accepted (0)"
        case .unacceptableProtocolVersion: return "unacceptable protocol version (1)"
        case .identifierRejected: return "identifier rejected (2)"
        case .serverUnavailable: return "server unavailable (3)"
        case .badUserNameOrPassword: return "bad user name or password (4)"
        case .notAuthorized: return "not authorized (5)"
        case nil: return "unknown return code (\(rawValue))"
        }
    }
}
