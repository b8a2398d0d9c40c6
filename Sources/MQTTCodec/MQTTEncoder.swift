import NIOCore

/// Encodes packets for one protocol version. A plain value; encoding appends to the caller's
/// buffer (the connection's coalescing output buffer), so it allocates only when that buffer grows.
public struct MQTTEncoder: Sendable {
    public var version: ProtocolVersion

    public init(version: ProtocolVersion) {
        self.version = version
    }

    private var v5: Bool { version == .v5 }

    /// The size of the whole encoded packet (fixed header included).
    public func size(of packet: MQTTPacket) -> Int {
        let body = bodySize(of: packet)
        return 1 + variableByteIntegerSize(body) + body
    }

    /// The size a PUBLISH will take on the wire, for the MQTT 5 maximum-packet-size check.
    public func size(of publish: Publish) -> Int {
        let body = publishBodySize(publish, propertiesSize: v5 ? publish.properties.encodedSize : 0)
        return 1 + variableByteIntegerSize(body) + body
    }

    /// Appends `packet` to `buffer`.
    public func encode(_ packet: MQTTPacket, into buffer: inout ByteBuffer) {
        switch packet {
        case .publish(let publish):
            encode(publish, into: &buffer)
            return
        case .puback(let ack): encodeAck(ack, first: 0x40, into: &buffer); return
        case .pubrec(let ack): encodeAck(ack, first: 0x50, into: &buffer); return
        case .pubrel(let ack): encodeAck(ack, first: 0x62, into: &buffer); return
        case .pubcomp(let ack): encodeAck(ack, first: 0x70, into: &buffer); return
        case .pingreq: buffer.writeInteger(UInt16(0xC000)); return
        case .pingresp: buffer.writeInteger(UInt16(0xD000)); return
        default: break
        }
        let body = bodySize(of: packet)
        buffer.reserveCapacity(minimumWritableBytes: body + 5)
        switch packet {
        case .connect(let connect):
            buffer.writeInteger(UInt8(0x10))
            buffer.writeMQTTVariableByteInteger(body)
            let connectVersion = connect.version
            buffer.writeMQTTString(connectVersion == .v3_1 ? "MQIsdp" : "MQTT")
            buffer.writeInteger(connectVersion.rawValue)
            var flags: UInt8 = 0
            if connect.cleanStart { flags |= 0x02 }
            if let will = connect.will {
                flags |= 0x04 | (will.qos.rawValue << 3)
                if will.retain { flags |= 0x20 }
            }
            if connect.password != nil { flags |= 0x40 }
            if connect.username != nil { flags |= 0x80 }
            buffer.writeInteger(flags)
            buffer.writeInteger(connect.keepAlive)
            if connectVersion == .v5 { connect.properties.encode(into: &buffer, size: connect.properties.encodedSize) }
            buffer.writeMQTTString(connect.clientID)
            if let will = connect.will {
                if connectVersion == .v5 { will.properties.encode(into: &buffer, size: will.properties.encodedSize) }
                buffer.writeMQTTString(will.topic)
                buffer.writeMQTTBinary(will.payload)
            }
            if let username = connect.username { buffer.writeMQTTString(username) }
            if let password = connect.password { buffer.writeMQTTBinary(password) }
        case .connack(let connack):
            buffer.writeInteger(UInt8(0x20))
            buffer.writeMQTTVariableByteInteger(body)
            buffer.writeInteger(UInt8(connack.sessionPresent ? 1 : 0))
            buffer.writeInteger(connack.reasonCode.rawValue)
            if v5 { connack.properties.encode(into: &buffer, size: connack.properties.encodedSize) }
        case .subscribe(let subscribe):
            buffer.writeInteger(UInt8(0x82))
            buffer.writeMQTTVariableByteInteger(body)
            buffer.writeInteger(subscribe.packetID)
            if v5 { subscribe.properties.encode(into: &buffer, size: subscribe.properties.encodedSize) }
            for subscription in subscribe.subscriptions {
                buffer.writeMQTTString(subscription.filter)
                var options = subscription.qos.rawValue
                if v5 {
                    if subscription.noLocal { options |= 0x04 }
                    if subscription.retainAsPublished { options |= 0x08 }
                    options |= subscription.retainHandling.rawValue << 4
                }
                buffer.writeInteger(options)
            }
        case .suback(let suback):
            buffer.writeInteger(UInt8(0x90))
            buffer.writeMQTTVariableByteInteger(body)
            buffer.writeInteger(suback.packetID)
            if v5 { suback.properties.encode(into: &buffer, size: suback.properties.encodedSize) }
            for code in suback.reasonCodes { buffer.writeInteger(code.rawValue) }
        case .unsubscribe(let unsubscribe):
            buffer.writeInteger(UInt8(0xA2))
            buffer.writeMQTTVariableByteInteger(body)
            buffer.writeInteger(unsubscribe.packetID)
            if v5 { unsubscribe.properties.encode(into: &buffer, size: unsubscribe.properties.encodedSize) }
            for filter in unsubscribe.filters { buffer.writeMQTTString(filter) }
        case .unsuback(let unsuback):
            buffer.writeInteger(UInt8(0xB0))
            buffer.writeMQTTVariableByteInteger(body)
            buffer.writeInteger(unsuback.packetID)
            if v5 {
                unsuback.properties.encode(into: &buffer, size: unsuback.properties.encodedSize)
                for code in unsuback.reasonCodes { buffer.writeInteger(code.rawValue) }
            }
        case .disconnect(let disconnect):
            buffer.writeInteger(UInt8(0xE0))
            buffer.writeMQTTVariableByteInteger(body)
            if body > 0 {
                buffer.writeInteger(disconnect.reasonCode.rawValue)
                if body > 1 { disconnect.properties.encode(into: &buffer, size: disconnect.properties.encodedSize) }
            }
        case .auth(let auth):
            buffer.writeInteger(UInt8(0xF0))
            buffer.writeMQTTVariableByteInteger(body)
            if body > 0 {
                buffer.writeInteger(auth.reasonCode.rawValue)
                auth.properties.encode(into: &buffer, size: auth.properties.encodedSize)
            }
        case .publish, .puback, .pubrec, .pubrel, .pubcomp, .pingreq, .pingresp:
            break
        }
    }

    /// Appends a PUBLISH. The hot path: one size pass, then straight writes.
    public func encode(_ publish: Publish, into buffer: inout ByteBuffer) {
        encodePublish(
            topic: publish.topic, payload: publish.payload, qos: publish.qos, retain: publish.retain, dup: publish.dup,
            packetID: publish.packetID, properties: publish.properties, into: &buffer)
    }

    /// Appends a PUBLISH whose payload is raw bytes (a broker's stored message, read in place).
    public func encodePublish(
        topic: String, payloadBytes: UnsafeRawBufferPointer, qos: QoS, retain: Bool, dup: Bool, packetID: UInt16,
        properties: Properties, into buffer: inout ByteBuffer
    ) {
        let propertiesSize = v5 ? properties.encodedSize : 0
        var body = 2 + topic.utf8.count + payloadBytes.count
        if qos != .atMostOnce { body += 2 }
        if v5 { body += variableByteIntegerSize(propertiesSize) + propertiesSize }
        buffer.reserveCapacity(minimumWritableBytes: body + 5)
        var first: UInt8 = 0x30 | (qos.rawValue << 1)
        if dup { first |= 0x08 }
        if retain { first |= 0x01 }
        buffer.writeInteger(first)
        buffer.writeMQTTVariableByteInteger(body)
        buffer.writeMQTTString(topic)
        if qos != .atMostOnce { buffer.writeInteger(packetID) }
        if v5 { properties.encode(into: &buffer, size: propertiesSize) }
        buffer.writeBytes(payloadBytes)
    }

    /// Appends a PUBLISH made of these parts, without building a ``Publish`` first.
    public func encodePublish(
        topic: String, payload: ByteBuffer, qos: QoS, retain: Bool, dup: Bool, packetID: UInt16, properties: Properties,
        into buffer: inout ByteBuffer
    ) {
        payload.withUnsafeReadableBytes { bytes in
            encodePublish(
                topic: topic, payloadBytes: bytes, qos: qos, retain: retain, dup: dup, packetID: packetID,
                properties: properties, into: &buffer)
        }
    }

    /// Appends a PUBACK/PUBREC/PUBREL/PUBCOMP; the short form when the reason is success and there are no properties.
    public func encodeAck(_ ack: Ack, first: UInt8, into buffer: inout ByteBuffer) {
        if !v5 || (ack.reasonCode == .success && ack.properties.isEmpty) {
            buffer.writeInteger(first)
            buffer.writeInteger(UInt8(2))
            buffer.writeInteger(ack.packetID)
            return
        }
        let propertiesSize = ack.properties.encodedSize
        let body = propertiesSize == 0 ? 3 : 3 + variableByteIntegerSize(propertiesSize) + propertiesSize
        buffer.writeInteger(first)
        buffer.writeMQTTVariableByteInteger(body)
        buffer.writeInteger(ack.packetID)
        buffer.writeInteger(ack.reasonCode.rawValue)
        if propertiesSize > 0 { ack.properties.encode(into: &buffer, size: propertiesSize) }
    }

    private func propertyBlockSize(_ properties: Properties) -> Int {
        guard v5 else { return 0 }
        let size = properties.encodedSize
        return variableByteIntegerSize(size) + size
    }

    private func publishBodySize(_ publish: Publish, propertiesSize: Int) -> Int {
        var size = 2 + publish.topic.utf8.count + publish.payload.readableBytes
        if publish.qos != .atMostOnce { size += 2 }
        if v5 { size += variableByteIntegerSize(propertiesSize) + propertiesSize }
        return size
    }

    private func bodySize(of packet: MQTTPacket) -> Int {
        switch packet {
        case .connect(let connect):
            let v5Connect = connect.version == .v5
            var size = (connect.version == .v3_1 ? 8 : 6) + 1 + 1 + 2
            if v5Connect { size += variableByteIntegerSize(connect.properties.encodedSize) + connect.properties.encodedSize }
            size += 2 + connect.clientID.utf8.count
            if let will = connect.will {
                if v5Connect { size += variableByteIntegerSize(will.properties.encodedSize) + will.properties.encodedSize }
                size += 2 + will.topic.utf8.count + 2 + will.payload.readableBytes
            }
            if let username = connect.username { size += 2 + username.utf8.count }
            if let password = connect.password { size += 2 + password.readableBytes }
            return size
        case .connack(let connack): return 2 + propertyBlockSize(connack.properties)
        case .publish(let publish): return publishBodySize(publish, propertiesSize: v5 ? publish.properties.encodedSize : 0)
        case .puback(let ack), .pubrec(let ack), .pubrel(let ack), .pubcomp(let ack):
            if !v5 || (ack.reasonCode == .success && ack.properties.isEmpty) { return 2 }
            return ack.properties.isEmpty ? 3 : 3 + propertyBlockSize(ack.properties)
        case .subscribe(let subscribe):
            return 2 + propertyBlockSize(subscribe.properties)
                + subscribe.subscriptions.reduce(0) { $0 + 3 + $1.filter.utf8.count }
        case .suback(let suback): return 2 + propertyBlockSize(suback.properties) + suback.reasonCodes.count
        case .unsubscribe(let unsubscribe):
            return 2 + propertyBlockSize(unsubscribe.properties) + unsubscribe.filters.reduce(0) { $0 + 2 + $1.utf8.count }
        case .unsuback(let unsuback):
            return v5 ? 2 + propertyBlockSize(unsuback.properties) + unsuback.reasonCodes.count : 2
        case .pingreq, .pingresp: return 0
        case .disconnect(let disconnect):
            guard v5 else { return 0 }
            if disconnect.properties.isEmpty { return disconnect.reasonCode == .normalDisconnection ? 0 : 1 }
            return 1 + propertyBlockSize(disconnect.properties)
        case .auth(let auth):
            if auth.reasonCode == .success && auth.properties.isEmpty { return 0 }
            return 1 + propertyBlockSize(auth.properties)
        }
    }
}
