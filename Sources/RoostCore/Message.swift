import MQTTCodec
import NIOCore

/// An application message as the broker routes it: immutable and shared by every subscriber
/// it goes to.
///
/// One allocation per published message, none per subscriber: the fields and the payload's
/// bytes live in one tail-allocated object (a `ByteBuffer` copy would add a storage object and
/// a separate block for the bytes, and freeing those three was 15 % of a fan-in profile). A
/// copy of a `Message` is one retain. Sendable: nothing in the storage changes after `init`. The payload is copied once out of the receive buffer, so a
/// queued message never pins a 64 KiB read buffer.
public struct Message: @unchecked Sendable {
    @usableFromInline
    struct Header {
        @usableFromInline let topic: String
        @usableFromInline let qos: QoS
        @usableFromInline let retain: Bool
        @usableFromInline let properties: Properties
        @usableFromInline let expiresAt: UInt64?
        @usableFromInline let publisherID: Int
        @usableFromInline let payloadCount: Int
    }

    @usableFromInline
    final class Storage: ManagedBuffer<Header, UInt8> {}

    @usableFromInline
    let storage: Storage

    public var topic: String { storage.header.topic }
    public var qos: QoS { storage.header.qos }
    public var retain: Bool { storage.header.retain }
    /// The PUBLISH properties to forward (topic alias and subscription identifiers removed).
    public var properties: Properties { storage.header.properties }
    /// When the message expires, in milliseconds of the broker's monotonic clock; nil if never.
    public var expiresAt: UInt64? { storage.header.expiresAt }
    /// The session that published it (for No Local), or 0 for the broker itself.
    public var publisherID: Int { storage.header.publisherID }
    /// Bytes of the payload.
    public var payloadSize: Int { storage.header.payloadCount }
    /// Bytes counted against queue limits.
    public var size: Int { storage.header.topic.utf8.count + storage.header.payloadCount }

    /// The payload as a new buffer (a copy: the hot path reads it in place with
    /// ``withPayloadBytes(_:)``).
    public var payload: ByteBuffer {
        withPayloadBytes { bytes in
            var buffer = ByteBufferAllocator().buffer(capacity: bytes.count)
            buffer.writeBytes(bytes)
            return buffer
        }
    }

    /// Calls `body` with the payload's bytes, in place.
    @inlinable
    public func withPayloadBytes<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
        let count = storage.header.payloadCount
        return try storage.withUnsafeMutablePointerToElements { elements in
            try body(UnsafeRawBufferPointer(start: elements, count: count))
        }
    }

    public init(topic: String, payload: ByteBuffer, qos: QoS, retain: Bool, properties: Properties, expiresAt: UInt64?, publisherID: Int) {
        let count = payload.readableBytes
        let header = Header(
            topic: topic, qos: qos, retain: retain, properties: properties, expiresAt: expiresAt,
            publisherID: publisherID, payloadCount: count)
        let made = Storage.create(minimumCapacity: count) { _ in header }
        if count > 0 {
            made.withUnsafeMutablePointerToElements { elements in
                payload.withUnsafeReadableBytes { source in
                    UnsafeMutableRawPointer(elements).copyMemory(from: source.baseAddress!, byteCount: count)
                }
            }
        }
        storage = unsafeDowncast(made, to: Storage.self)
    }

    /// True if both are the same message (not merely equal contents).
    @inlinable
    public func isSame(as other: Message) -> Bool { storage === other.storage }

    /// True if the message has expired at `now` (ms).
    @inlinable
    public func isExpired(at now: UInt64) -> Bool {
        if let expiresAt = storage.header.expiresAt { return now >= expiresAt }
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
