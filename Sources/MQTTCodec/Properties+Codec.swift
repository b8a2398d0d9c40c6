import NIOCore

extension Properties {
    /// Reads a property block (length + properties) and validates it for `context`
    /// (allowed here, no duplicates, values in range) (MQTT 5: 2.2.2).
    static func decode(from buffer: inout ByteBuffer, context: PropertyContext, type: PacketType) throws(DecodeError) -> Properties {
        guard let length = try buffer.readMQTTVariableByteInteger(), var block = buffer.readSlice(length: length) else {
            throw .malformedBody(type)
        }
        var properties = Properties()
        if length == 0 { return properties }
        var seen: UInt64 = 0
        var id = PropertyID.payloadFormatIndicator
        /// A byte property whose only values are 0 and 1.
        func readFlag() throws(DecodeError) -> UInt8 {
            let value = try block.readUInt8(in: type)
            guard value <= 1 else { throw .invalidPropertyValue(id) }
            return value
        }
        while block.readableBytes > 0 {
            guard let rawID = try block.readMQTTVariableByteInteger() else { throw .malformedBody(type) }
            guard rawID <= 0x7F, let knownID = PropertyID(rawValue: UInt8(rawID)) else {
                throw .unknownProperty(UInt8(truncatingIfNeeded: rawID))
            }
            id = knownID
            guard id.allowedIn & context.bit != 0 else { throw .propertyNotAllowed(id) }
            let bit: UInt64 = 1 << UInt64(id.rawValue)
            let repeatable = id == .userProperty || (id == .subscriptionIdentifier && context.bit == 1 << UInt16(PacketType.publish.rawValue))
            if seen & bit != 0 && !repeatable { throw .duplicateProperty(id) }
            seen |= bit
            switch id {
            case .payloadFormatIndicator:
                properties.payloadFormatIndicator = try readFlag()
            case .messageExpiryInterval: properties.messageExpiryInterval = try block.readUInt32(in: type)
            case .contentType: properties.contentType = try block.readMQTTString(in: type)
            case .responseTopic:
                let topic = try block.readMQTTString(in: type)
                guard Topic.isValidName(topic) else { throw .invalidPropertyValue(id) }
                properties.responseTopic = topic
            case .correlationData: properties.correlationData = try block.readMQTTBinary(in: type)
            case .subscriptionIdentifier:
                guard let value = try block.readMQTTVariableByteInteger() else { throw .malformedBody(type) }
                guard value > 0 else { throw .invalidPropertyValue(id) }
                properties.subscriptionIdentifiers.append(value)
            case .sessionExpiryInterval: properties.sessionExpiryInterval = try block.readUInt32(in: type)
            case .assignedClientIdentifier: properties.assignedClientIdentifier = try block.readMQTTString(in: type)
            case .serverKeepAlive: properties.serverKeepAlive = try block.readUInt16(in: type)
            case .authenticationMethod: properties.authenticationMethod = try block.readMQTTString(in: type)
            case .authenticationData: properties.authenticationData = try block.readMQTTBinary(in: type)
            case .requestProblemInformation:
                properties.requestProblemInformation = try readFlag()
            case .willDelayInterval: properties.willDelayInterval = try block.readUInt32(in: type)
            case .requestResponseInformation:
                properties.requestResponseInformation = try readFlag()
            case .responseInformation: properties.responseInformation = try block.readMQTTString(in: type)
            case .serverReference: properties.serverReference = try block.readMQTTString(in: type)
            case .reasonString: properties.reasonString = try block.readMQTTString(in: type)
            case .receiveMaximum:
                let value = try block.readUInt16(in: type)
                guard value > 0 else { throw .invalidPropertyValue(id) }
                properties.receiveMaximum = value
            case .topicAliasMaximum: properties.topicAliasMaximum = try block.readUInt16(in: type)
            case .topicAlias:
                let value = try block.readUInt16(in: type)
                guard value > 0 else { throw .invalidPropertyValue(id) }
                properties.topicAlias = value
            case .maximumQoS:
                properties.maximumQoS = try readFlag()
            case .retainAvailable:
                properties.retainAvailable = try readFlag()
            case .userProperty:
                let name = try block.readMQTTString(in: type)
                let value = try block.readMQTTString(in: type)
                properties.userProperties.append(UserProperty(name: name, value: value))
            case .maximumPacketSize:
                let value = try block.readUInt32(in: type)
                guard value > 0 else { throw .invalidPropertyValue(id) }
                properties.maximumPacketSize = value
            case .wildcardSubscriptionAvailable:
                properties.wildcardSubscriptionAvailable = try readFlag()
            case .subscriptionIdentifierAvailable:
                properties.subscriptionIdentifierAvailable = try readFlag()
            case .sharedSubscriptionAvailable:
                properties.sharedSubscriptionAvailable = try readFlag()
            }
        }
        return properties
    }

    /// The encoded size of the properties, without the length prefix.
    public var encodedSize: Int {
        if isEmpty { return 0 }
        var size = 0
        @inline(__always) func string(_ value: String?) { if let value { size += 3 + value.utf8.count } }
        @inline(__always) func binary(_ value: ByteBuffer?) { if let value { size += 3 + value.readableBytes } }
        if payloadFormatIndicator != nil { size += 2 }
        if messageExpiryInterval != nil { size += 5 }
        string(contentType)
        string(responseTopic)
        binary(correlationData)
        for id in subscriptionIdentifiers { size += 1 + variableByteIntegerSize(id) }
        if sessionExpiryInterval != nil { size += 5 }
        string(assignedClientIdentifier)
        if serverKeepAlive != nil { size += 3 }
        string(authenticationMethod)
        binary(authenticationData)
        if requestProblemInformation != nil { size += 2 }
        if willDelayInterval != nil { size += 5 }
        if requestResponseInformation != nil { size += 2 }
        string(responseInformation)
        string(serverReference)
        string(reasonString)
        if receiveMaximum != nil { size += 3 }
        if topicAliasMaximum != nil { size += 3 }
        if topicAlias != nil { size += 3 }
        if maximumQoS != nil { size += 2 }
        if retainAvailable != nil { size += 2 }
        for property in userProperties { size += 5 + property.name.utf8.count + property.value.utf8.count }
        if maximumPacketSize != nil { size += 5 }
        if wildcardSubscriptionAvailable != nil { size += 2 }
        if subscriptionIdentifierAvailable != nil { size += 2 }
        if sharedSubscriptionAvailable != nil { size += 2 }
        return size
    }

    /// Writes the length prefix and the properties.
    func encode(into buffer: inout ByteBuffer, size: Int) {
        buffer.writeMQTTVariableByteInteger(size)
        if size == 0 { return }
        func byte(_ id: PropertyID, _ value: UInt8?) {
            if let value { buffer.writeInteger(id.rawValue); buffer.writeInteger(value) }
        }
        func two(_ id: PropertyID, _ value: UInt16?) {
            if let value { buffer.writeInteger(id.rawValue); buffer.writeInteger(value) }
        }
        func four(_ id: PropertyID, _ value: UInt32?) {
            if let value { buffer.writeInteger(id.rawValue); buffer.writeInteger(value) }
        }
        func string(_ id: PropertyID, _ value: String?) {
            if let value { buffer.writeInteger(id.rawValue); buffer.writeMQTTString(value) }
        }
        func binary(_ id: PropertyID, _ value: ByteBuffer?) {
            if let value { buffer.writeInteger(id.rawValue); buffer.writeMQTTBinary(value) }
        }
        byte(.payloadFormatIndicator, payloadFormatIndicator)
        four(.messageExpiryInterval, messageExpiryInterval)
        string(.contentType, contentType)
        string(.responseTopic, responseTopic)
        binary(.correlationData, correlationData)
        for id in subscriptionIdentifiers {
            buffer.writeInteger(PropertyID.subscriptionIdentifier.rawValue)
            buffer.writeMQTTVariableByteInteger(id)
        }
        four(.sessionExpiryInterval, sessionExpiryInterval)
        string(.assignedClientIdentifier, assignedClientIdentifier)
        two(.serverKeepAlive, serverKeepAlive)
        string(.authenticationMethod, authenticationMethod)
        binary(.authenticationData, authenticationData)
        byte(.requestProblemInformation, requestProblemInformation)
        four(.willDelayInterval, willDelayInterval)
        byte(.requestResponseInformation, requestResponseInformation)
        string(.responseInformation, responseInformation)
        string(.serverReference, serverReference)
        string(.reasonString, reasonString)
        two(.receiveMaximum, receiveMaximum)
        two(.topicAliasMaximum, topicAliasMaximum)
        two(.topicAlias, topicAlias)
        byte(.maximumQoS, maximumQoS)
        byte(.retainAvailable, retainAvailable)
        for property in userProperties {
            buffer.writeInteger(PropertyID.userProperty.rawValue)
            buffer.writeMQTTString(property.name)
            buffer.writeMQTTString(property.value)
        }
        four(.maximumPacketSize, maximumPacketSize)
        byte(.wildcardSubscriptionAvailable, wildcardSubscriptionAvailable)
        byte(.subscriptionIdentifierAvailable, subscriptionIdentifierAvailable)
        byte(.sharedSubscriptionAvailable, sharedSubscriptionAvailable)
    }
}
