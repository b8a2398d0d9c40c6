import NIOCore

/// Splits a byte stream into MQTT packets and decodes them, enforcing the limits and validity
/// rules of the protocol version in use.
///
/// A value type owned by one connection; not shared between threads. Before CONNECT the version
/// is unknown: `decode` reads the CONNECT and the caller then sets ``version``.
public struct MQTTDecoder: Sendable {
    /// The version agreed in CONNECT; governs properties and reason codes.
    public var version: ProtocolVersion
    /// Largest whole packet (fixed header included) accepted; larger ones throw ``DecodeError/packetTooLarge(size:limit:)``
    /// before their body is buffered.
    public var maximumPacketSize: Int

    public init(version: ProtocolVersion = .v3_1_1, maximumPacketSize: Int = 268_435_460) {
        self.version = version
        self.maximumPacketSize = maximumPacketSize
    }

    /// Decodes one packet from the front of `buffer`. Returns nil, consuming nothing, when the
    /// packet is not complete yet. Throws ``DecodeError`` for malformed input; the connection
    /// should then be closed.
    ///
    /// `knownTopic`: a topic name this connection sent before and that was valid then (a
    /// publisher's last topic). A PUBLISH whose topic has the same bytes gets that string back,
    /// so a publisher that reuses its topic costs no allocation and no validation.
    public func decode(from buffer: inout ByteBuffer, knownTopic: String? = nil) throws(DecodeError) -> MQTTPacket? {
        guard let (first, body) = try nextFrame(from: &buffer) else { return nil }
        return try decodePacket(first: first, body: body, knownTopic: knownTopic)
    }

    /// Reads the fixed header and returns the first byte and the body slice of a complete packet.
    public func nextFrame(from buffer: inout ByteBuffer) throws(DecodeError) -> (UInt8, ByteBuffer)? {
        let start = buffer.readerIndex
        guard let first = buffer.getInteger(at: start, as: UInt8.self) else { return nil }
        // The remaining length, read in place (a copy of the buffer would cost a retain per packet).
        guard let (remaining, lengthSize) = try buffer.getMQTTVariableByteInteger(at: start + 1) else { return nil }
        let headerSize = 1 + lengthSize
        let total = headerSize + remaining
        if total > maximumPacketSize { throw .packetTooLarge(size: total, limit: maximumPacketSize) }
        guard buffer.readableBytes >= total else { return nil }
        buffer.moveReaderIndex(forwardBy: headerSize)
        guard let body = buffer.readSlice(length: remaining) else { return nil }
        return (first, body)
    }

    /// Decodes the body of a packet whose fixed header byte is `first`.
    public func decodePacket(first: UInt8, body: ByteBuffer, knownTopic: String? = nil) throws(DecodeError) -> MQTTPacket {
        var body = body
        let flags = first & 0x0F
        guard let type = PacketType(rawValue: first >> 4) else { throw .invalidPacketType(first >> 4) }
        let packet: MQTTPacket
        switch type {
        case .connect:
            try requireFlags(flags, 0, type)
            packet = .connect(try decodeConnect(&body))
        case .connack:
            try requireFlags(flags, 0, type)
            packet = .connack(try decodeConnAck(&body))
        case .publish:
            packet = .publish(try decodePublish(flags: flags, &body, knownTopic: knownTopic))
        case .puback, .pubrec, .pubcomp:
            try requireFlags(flags, 0, type)
            let ack = try decodeAck(type, &body)
            packet = type == .puback ? .puback(ack) : type == .pubrec ? .pubrec(ack) : .pubcomp(ack)
        case .pubrel:
            try requireFlags(flags, 2, type)
            packet = .pubrel(try decodeAck(type, &body))
        case .subscribe:
            try requireFlags(flags, 2, type)
            packet = .subscribe(try decodeSubscribe(&body))
        case .suback:
            try requireFlags(flags, 0, type)
            packet = .suback(try decodeSubAck(&body))
        case .unsubscribe:
            try requireFlags(flags, 2, type)
            packet = .unsubscribe(try decodeUnsubscribe(&body))
        case .unsuback:
            try requireFlags(flags, 0, type)
            packet = .unsuback(try decodeUnsubAck(&body))
        case .pingreq, .pingresp:
            try requireFlags(flags, 0, type)
            packet = type == .pingreq ? .pingreq : .pingresp
        case .disconnect:
            try requireFlags(flags, 0, type)
            packet = .disconnect(try decodeDisconnect(&body))
        case .auth:
            guard version == .v5 else { throw .invalidPacketType(first >> 4) }
            try requireFlags(flags, 0, type)
            packet = .auth(try decodeAuth(&body))
        }
        guard body.readableBytes == 0 else { throw .malformedBody(type) }
        return packet
    }

    private func requireFlags(_ flags: UInt8, _ expected: UInt8, _ type: PacketType) throws(DecodeError) {
        if flags != expected { throw .invalidFixedHeaderFlags(type) }
    }

    private func properties(_ body: inout ByteBuffer, _ type: PacketType) throws(DecodeError) -> Properties {
        guard version == .v5 else { return Properties() }
        return try Properties.decode(from: &body, context: .packet(type), type: type)
    }

    private func decodeConnect(_ body: inout ByteBuffer) throws(DecodeError) -> Connect {
        let name = try body.readMQTTString(in: .connect)
        let level = try body.readUInt8(in: .connect)
        let version: ProtocolVersion
        switch (name, level) {
        case ("MQTT", 4): version = .v3_1_1
        case ("MQTT", 5): version = .v5
        case ("MQIsdp", 3): version = .v3_1
        case ("MQTT", _), ("MQIsdp", _): throw .unsupportedProtocolVersion(level)
        default: throw .invalidProtocolName
        }
        let flags = try body.readUInt8(in: .connect)
        if flags & 0x01 != 0 { throw .connectReservedFlagSet }
        let cleanStart = flags & 0x02 != 0
        let willFlag = flags & 0x04 != 0
        let willQoSBits = (flags >> 3) & 0x03
        let willRetain = flags & 0x20 != 0
        let passwordFlag = flags & 0x40 != 0
        let usernameFlag = flags & 0x80 != 0
        if !willFlag && (willQoSBits != 0 || willRetain) { throw .invalidWillFlags }
        guard let willQoS = QoS(rawValue: willQoSBits) else { throw .invalidWillFlags }
        if version == .v3_1_1 && passwordFlag && !usernameFlag { throw .passwordWithoutUserName }
        let keepAlive = try body.readUInt16(in: .connect)
        var properties = Properties()
        if version == .v5 { properties = try Properties.decode(from: &body, context: .packet(.connect), type: .connect) }
        let clientID = try body.readMQTTString(in: .connect)
        var will: Will?
        if willFlag {
            var willProperties = Properties()
            if version == .v5 { willProperties = try Properties.decode(from: &body, context: .will, type: .connect) }
            let topic = try body.readMQTTString(in: .connect)
            guard Topic.isValidName(topic) else { throw .invalidTopicName }
            let payload = try body.readMQTTBinary(in: .connect)
            will = Will(topic: topic, payload: payload, qos: willQoS, retain: willRetain, properties: willProperties)
        }
        let username = usernameFlag ? try body.readMQTTString(in: .connect) : nil
        let password = passwordFlag ? try body.readMQTTBinary(in: .connect) : nil
        return Connect(
            version: version, cleanStart: cleanStart, keepAlive: keepAlive, clientID: clientID,
            username: username, password: password, will: will, properties: properties)
    }

    private func decodeConnAck(_ body: inout ByteBuffer) throws(DecodeError) -> ConnAck {
        let flags = try body.readUInt8(in: .connack)
        if flags & 0xFE != 0 { throw .malformedBody(.connack) }
        let code = try body.readUInt8(in: .connack)
        let properties = try properties(&body, .connack)
        return ConnAck(sessionPresent: flags & 1 == 1, reasonCode: ReasonCode(code), properties: properties)
    }

    private func decodePublish(flags: UInt8, _ body: inout ByteBuffer, knownTopic: String?) throws(DecodeError) -> Publish {
        let dup = flags & 0x08 != 0
        guard let qos = QoS(rawValue: (flags >> 1) & 0x03) else { throw .invalidQoS }
        if dup && qos == .atMostOnce { throw .dupOnQoS0 }
        let retain = flags & 0x01 != 0
        var known: String?
        if let knownTopic { known = body.readMQTTString(equalTo: knownTopic) }
        let topic: String
        if let known { topic = known } else { topic = try body.readMQTTString(in: .publish) }
        var packetID: UInt16 = 0
        if qos != .atMostOnce {
            packetID = try body.readUInt16(in: .publish)
            if packetID == 0 { throw .zeroPacketIdentifier }
        }
        let properties = try properties(&body, .publish)
        if topic.isEmpty {
            if properties.topicAlias == nil { throw .invalidTopicName }
        } else if known == nil && !Topic.isValidName(topic) {
            throw .invalidTopicName
        }
        let payload = body.readSlice(length: body.readableBytes) ?? ByteBuffer()
        return Publish(topic: topic, payload: payload, qos: qos, retain: retain, dup: dup, packetID: packetID, properties: properties)
    }

    private func decodeAck(_ type: PacketType, _ body: inout ByteBuffer) throws(DecodeError) -> Ack {
        let packetID = try body.readUInt16(in: type)
        if packetID == 0 { throw .zeroPacketIdentifier }
        var ack = Ack(packetID: packetID)
        if version == .v5 && body.readableBytes > 0 {
            ack.reasonCode = ReasonCode(try body.readUInt8(in: type))
            if body.readableBytes > 0 { ack.properties = try properties(&body, type) }
        }
        return ack
    }

    private func decodeSubscribe(_ body: inout ByteBuffer) throws(DecodeError) -> Subscribe {
        let packetID = try body.readUInt16(in: .subscribe)
        if packetID == 0 { throw .zeroPacketIdentifier }
        let properties = try properties(&body, .subscribe)
        var subscriptions: [Subscription] = []
        while body.readableBytes > 0 {
            let filter = try body.readMQTTString(in: .subscribe)
            let options = try body.readUInt8(in: .subscribe)
            if version == .v5 {
                if options & 0xC0 != 0 { throw .invalidSubscriptionOptions }
            } else if options & 0xFC != 0 {
                throw .invalidSubscriptionOptions
            }
            guard let qos = QoS(rawValue: options & 0x03),
                let retainHandling = RetainHandling(rawValue: (options >> 4) & 0x03)
            else { throw version == .v5 ? .invalidSubscriptionOptionValue : .invalidSubscriptionOptions }
            subscriptions.append(
                Subscription(
                    filter: filter, qos: qos, noLocal: options & 0x04 != 0, retainAsPublished: options & 0x08 != 0,
                    retainHandling: retainHandling))
        }
        if subscriptions.isEmpty { throw .noTopicFilters }
        return Subscribe(packetID: packetID, subscriptions: subscriptions, properties: properties)
    }

    private func decodeSubAck(_ body: inout ByteBuffer) throws(DecodeError) -> SubAck {
        let packetID = try body.readUInt16(in: .suback)
        let properties = try properties(&body, .suback)
        var codes: [ReasonCode] = []
        while let code = body.readInteger(as: UInt8.self) { codes.append(ReasonCode(code)) }
        return SubAck(packetID: packetID, reasonCodes: codes, properties: properties)
    }

    private func decodeUnsubscribe(_ body: inout ByteBuffer) throws(DecodeError) -> Unsubscribe {
        let packetID = try body.readUInt16(in: .unsubscribe)
        if packetID == 0 { throw .zeroPacketIdentifier }
        let properties = try properties(&body, .unsubscribe)
        var filters: [String] = []
        while body.readableBytes > 0 { filters.append(try body.readMQTTString(in: .unsubscribe)) }
        if filters.isEmpty { throw .noTopicFilters }
        return Unsubscribe(packetID: packetID, filters: filters, properties: properties)
    }

    private func decodeUnsubAck(_ body: inout ByteBuffer) throws(DecodeError) -> UnsubAck {
        let packetID = try body.readUInt16(in: .unsuback)
        var ack = UnsubAck(packetID: packetID)
        if version == .v5 {
            ack.properties = try properties(&body, .unsuback)
            while let code = body.readInteger(as: UInt8.self) { ack.reasonCodes.append(ReasonCode(code)) }
        }
        return ack
    }

    private func decodeDisconnect(_ body: inout ByteBuffer) throws(DecodeError) -> Disconnect {
        var disconnect = Disconnect()
        if version == .v5 && body.readableBytes > 0 {
            disconnect.reasonCode = ReasonCode(try body.readUInt8(in: .disconnect))
            if body.readableBytes > 0 { disconnect.properties = try properties(&body, .disconnect) }
        }
        return disconnect
    }

    private func decodeAuth(_ body: inout ByteBuffer) throws(DecodeError) -> Auth {
        var auth = Auth()
        if body.readableBytes > 0 {
            let code = try body.readUInt8(in: .auth)
            guard code == 0x00 || code == 0x18 || code == 0x19 else { throw .invalidReasonCode(code) }
            auth.reasonCode = ReasonCode(code)
            if body.readableBytes > 0 { auth.properties = try properties(&body, .auth) }
        }
        return auth
    }
}
