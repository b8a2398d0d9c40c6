import MQTTCodec
import NIOCore

/// One packet of a kind, as a client or the broker would send it.
struct PacketSample {
    /// The kind and variant, e.g. `PUBLISH-QoS1`; part of the benchmark's name (no spaces: see CodecBenchmarks).
    var name: String
    var packet: MQTTPacket
}

/// The packets the codec benchmarks encode and decode: every kind, shaped like real traffic
/// (a device topic, a 64-byte payload, the properties an MQTT 5 client typically sends).
enum PacketSamples {
    static let topic = "site/42/device/7/sensor"
    static let filter = "site/42/device/+/sensor"

    static func bytes(_ count: Int, _ value: UInt8) -> ByteBuffer {
        ByteBuffer(repeating: value, count: count)
    }

    /// Every packet kind for `version`; MQTT 5 adds AUTH and a PUBLISH with properties.
    static func all(for version: ProtocolVersion) -> [PacketSample] {
        let v5 = version == .v5
        var samples: [PacketSample] = []

        var connectProperties = Properties()
        if v5 {
            connectProperties.sessionExpiryInterval = 3600
            connectProperties.receiveMaximum = 100
        }
        let connect = Connect(
            version: version, cleanStart: true, keepAlive: 60, clientID: "gateway-0042", username: "gateway",
            password: bytes(16, 0x70), properties: connectProperties)
        samples.append(PacketSample(name: "CONNECT", packet: .connect(connect)))

        var connackProperties = Properties()
        if v5 {
            connackProperties.receiveMaximum = 100
            connackProperties.topicAliasMaximum = 10
        }
        samples.append(PacketSample(name: "CONNACK", packet: .connack(ConnAck(properties: connackProperties))))

        let payload = bytes(64, 0x5A)
        samples.append(PacketSample(name: "PUBLISH-QoS0", packet: .publish(Publish(topic: topic, payload: payload))))
        samples.append(
            PacketSample(
                name: "PUBLISH-QoS1", packet: .publish(Publish(topic: topic, payload: payload, qos: .atLeastOnce, packetID: 1))))
        samples.append(
            PacketSample(
                name: "PUBLISH-QoS2", packet: .publish(Publish(topic: topic, payload: payload, qos: .exactlyOnce, packetID: 2))))
        if v5 {
            var properties = Properties()
            properties.messageExpiryInterval = 60
            properties.contentType = "application/json"
            properties.responseTopic = "site/42/device/7/reply"
            properties.correlationData = bytes(16, 0x63)
            properties.userProperties = [UserProperty(name: "trace", value: "4bf92f3577b34da6")]
            samples.append(
                PacketSample(
                    name: "PUBLISH-QoS1-properties",
                    packet: .publish(Publish(topic: topic, payload: payload, qos: .atLeastOnce, packetID: 3, properties: properties))))
        }

        samples.append(PacketSample(name: "PUBACK", packet: .puback(Ack(packetID: 1))))
        samples.append(PacketSample(name: "PUBREC", packet: .pubrec(Ack(packetID: 2))))
        samples.append(PacketSample(name: "PUBREL", packet: .pubrel(Ack(packetID: 2))))
        samples.append(PacketSample(name: "PUBCOMP", packet: .pubcomp(Ack(packetID: 2))))

        var subscribeProperties = Properties()
        if v5 { subscribeProperties.subscriptionIdentifiers = [7] }
        let subscription = Subscription(filter: filter, qos: .atLeastOnce)
        samples.append(
            PacketSample(
                name: "SUBSCRIBE",
                packet: .subscribe(Subscribe(packetID: 4, subscriptions: [subscription], properties: subscribeProperties))))
        samples.append(PacketSample(name: "SUBACK", packet: .suback(SubAck(packetID: 4, reasonCodes: [.grantedQoS1]))))
        samples.append(PacketSample(name: "UNSUBSCRIBE", packet: .unsubscribe(Unsubscribe(packetID: 5, filters: [filter]))))
        samples.append(
            PacketSample(name: "UNSUBACK", packet: .unsuback(UnsubAck(packetID: 5, reasonCodes: v5 ? [.success] : []))))
        samples.append(PacketSample(name: "PINGREQ", packet: .pingreq))
        samples.append(PacketSample(name: "PINGRESP", packet: .pingresp))
        samples.append(PacketSample(name: "DISCONNECT", packet: .disconnect(Disconnect())))
        if v5 {
            var properties = Properties()
            properties.authenticationMethod = "SCRAM-SHA-256"
            properties.authenticationData = bytes(32, 0x61)
            samples.append(
                PacketSample(name: "AUTH", packet: .auth(Auth(reasonCode: .continueAuthentication, properties: properties))))
        }
        return samples
    }
}
