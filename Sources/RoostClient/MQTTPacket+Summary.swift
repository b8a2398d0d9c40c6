import MQTTCodec

extension MQTTPacket {
    /// A one-line description of the packet for traces, in the spirit of mosquitto's `-d`
    /// output: `PUBLISH (d0, q1, r0, m7, 'a/b', ... (5 bytes))`. Payloads are not printed.
    public var summary: String {
        switch self {
        case .connect(let connect):
            var text = "CONNECT (v\(connect.version.rawValue), c\(connect.cleanStart ? 1 : 0), k\(connect.keepAlive), id '\(connect.clientID)'"
            if connect.username != nil { text += ", u1" }
            if connect.password != nil { text += ", p1" }
            if let will = connect.will { text += ", will '\(will.topic)' q\(will.qos.rawValue) r\(will.retain ? 1 : 0)" }
            return text + propertiesSuffix(connect.properties) + ")"
        case .connack(let connAck):
            return "CONNACK (sp\(connAck.sessionPresent ? 1 : 0), rc \(connAck.reasonCode)" + propertiesSuffix(connAck.properties) + ")"
        case .publish(let publish):
            return "PUBLISH (d\(publish.dup ? 1 : 0), q\(publish.qos.rawValue), r\(publish.retain ? 1 : 0), m\(publish.packetID), "
                + "'\(publish.topic)'" + propertiesSuffix(publish.properties) + ", ... (\(publish.payload.readableBytes) bytes))"
        case .puback(let ack): return "PUBACK" + ackSuffix(ack)
        case .pubrec(let ack): return "PUBREC" + ackSuffix(ack)
        case .pubrel(let ack): return "PUBREL" + ackSuffix(ack)
        case .pubcomp(let ack): return "PUBCOMP" + ackSuffix(ack)
        case .subscribe(let subscribe):
            let filters = subscribe.subscriptions.map { subscription in
                var text = "'\(subscription.filter)' q\(subscription.qos.rawValue)"
                if subscription.noLocal { text += " nl1" }
                if subscription.retainAsPublished { text += " rap1" }
                if subscription.retainHandling != .sendAlways { text += " rh\(subscription.retainHandling.rawValue)" }
                return text
            }.joined(separator: ", ")
            return "SUBSCRIBE (m\(subscribe.packetID), \(filters)" + propertiesSuffix(subscribe.properties) + ")"
        case .suback(let subAck):
            let codes = subAck.reasonCodes.map(\.description).joined(separator: ", ")
            return "SUBACK (m\(subAck.packetID), [\(codes)]" + propertiesSuffix(subAck.properties) + ")"
        case .unsubscribe(let unsubscribe):
            let filters = unsubscribe.filters.map { "'\($0)'" }.joined(separator: ", ")
            return "UNSUBSCRIBE (m\(unsubscribe.packetID), \(filters))"
        case .unsuback(let unsubAck):
            let codes = unsubAck.reasonCodes.map(\.description).joined(separator: ", ")
            return "UNSUBACK (m\(unsubAck.packetID)" + (codes.isEmpty ? "" : ", [\(codes)]") + ")"
        case .pingreq: return "PINGREQ"
        case .pingresp: return "PINGRESP"
        case .disconnect(let disconnect):
            return "DISCONNECT (rc \(disconnect.reasonCode)" + propertiesSuffix(disconnect.properties) + ")"
        case .auth(let auth):
            return "AUTH (rc \(auth.reasonCode)" + propertiesSuffix(auth.properties) + ")"
        }
    }

    private func ackSuffix(_ ack: Ack) -> String {
        " (m\(ack.packetID), rc \(ack.reasonCode)" + propertiesSuffix(ack.properties) + ")"
    }

    private func propertiesSuffix(_ properties: Properties) -> String {
        if properties.isEmpty { return "" }
        var parts: [String] = []
        if let value = properties.sessionExpiryInterval { parts.append("session-expiry \(value)") }
        if let value = properties.receiveMaximum { parts.append("receive-maximum \(value)") }
        if let value = properties.maximumPacketSize { parts.append("maximum-packet-size \(value)") }
        if let value = properties.topicAliasMaximum { parts.append("topic-alias-maximum \(value)") }
        if let value = properties.topicAlias { parts.append("topic-alias \(value)") }
        if let value = properties.assignedClientIdentifier { parts.append("assigned-id '\(value)'") }
        if let value = properties.serverKeepAlive { parts.append("server-keep-alive \(value)") }
        if let value = properties.maximumQoS { parts.append("maximum-qos \(value)") }
        if let value = properties.retainAvailable { parts.append("retain-available \(value)") }
        if let value = properties.messageExpiryInterval { parts.append("message-expiry \(value)") }
        if let value = properties.reasonString { parts.append("reason '\(value)'") }
        if !properties.subscriptionIdentifiers.isEmpty {
            parts.append("subscription-ids \(properties.subscriptionIdentifiers.map(String.init).joined(separator: ","))")
        }
        for property in properties.userProperties { parts.append("user '\(property.name)'='\(property.value)'") }
        return parts.isEmpty ? ", props" : ", " + parts.joined(separator: ", ")
    }
}
