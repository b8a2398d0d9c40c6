import MQTTCodec
import NIOCore

/// An application message as the broker routes it: immutable and shared by every subscriber
/// it goes to (one allocation per published message, none per subscriber).
public final class Message: Sendable {
    public let topic: String
    public let payload: ByteBuffer
    public let qos: QoS
    public let retain: Bool
    /// The PUBLISH properties to forward (topic alias and subscription identifiers removed).
    public let properties: Properties
    /// When the message expires, in milliseconds of the broker's monotonic clock; nil if never.
    public let expiresAt: UInt64?
    /// The session that published it (for No Local), or 0 for the broker itself.
    public let publisherID: Int
    /// Bytes counted against queue limits.
    public var size: Int { topic.utf8.count + payload.readableBytes }

    public init(topic: String, payload: ByteBuffer, qos: QoS, retain: Bool, properties: Properties, expiresAt: UInt64?, publisherID: Int) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.properties = properties
        self.expiresAt = expiresAt
        self.publisherID = publisherID
    }

    /// True if the message has expired at `now` (ms).
    @inlinable
    public func isExpired(at now: UInt64) -> Bool {
        if let expiresAt { return now >= expiresAt }
        return false
    }

    /// The PUBLISH to send to one subscriber: its QoS, retain flag, packet id and subscription
    /// identifiers, and the Message Expiry Interval set to the time left [MQTT-3.3.2-6].
    public func publish(qos: QoS, retain: Bool, packetID: UInt16, dup: Bool, subscriptionIDs: [Int], now: UInt64) -> Publish {
        var properties = self.properties
        if let expiresAt {
            let left = expiresAt > now ? (expiresAt - now + 999) / 1000 : 0
            properties.messageExpiryInterval = UInt32(clamping: left)
        }
        properties.subscriptionIdentifiers = subscriptionIDs
        return Publish(topic: topic, payload: payload, qos: qos, retain: retain, dup: dup, packetID: packetID, properties: properties)
    }
}
