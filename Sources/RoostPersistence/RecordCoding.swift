import MQTTCodec
import NIOCore
import RoostCore

/// How messages, wills, subscription options and subscription identifiers become column values.
///
/// A message (or will) is stored as the MQTT 5 PUBLISH that carries it, written and read by the
/// codec, so every property survives without a column per property and without a second format.
enum RecordCoding {
    static let encoder = MQTTEncoder(version: .v5)
    static let decoder = MQTTDecoder(version: .v5, maximumPacketSize: Int.max)

    /// Appends `message` as a PUBLISH (packet id 1 when QoS > 0: the decoder requires one).
    static func encode(_ message: Message, into buffer: inout ByteBuffer) {
        message.withPayloadBytes { bytes in
            encoder.encodePublish(
                topic: message.topic, payloadBytes: bytes, qos: message.qos, retain: message.retain, dup: false,
                packetID: message.qos == .atMostOnce ? 0 : 1, properties: message.properties, into: &buffer)
        }
    }

    /// Reads a message back. `expiresAt` is in the broker's clock; the publisher is the broker (0).
    static func decodeMessage(_ blob: ByteBuffer, expiresAt: UInt64?) throws(DecodeFailure) -> Message {
        let publish = try decodePublish(blob)
        return Message(
            topic: publish.topic, payload: publish.payload, qos: publish.qos, retain: publish.retain,
            properties: publish.properties, expiresAt: expiresAt, publisherID: 0)
    }

    /// Appends a will as a PUBLISH; its Will Delay Interval (not a PUBLISH property) is returned
    /// for its own column.
    static func encode(_ will: Will, into buffer: inout ByteBuffer) -> UInt32? {
        var properties = will.properties
        let delay = properties.willDelayInterval
        properties.willDelayInterval = nil
        let publish = Publish(
            topic: will.topic, payload: will.payload, qos: will.qos, retain: will.retain,
            packetID: will.qos == .atMostOnce ? 0 : 1, properties: properties)
        encoder.encode(publish, into: &buffer)
        return delay
    }

    static func decodeWill(_ blob: ByteBuffer, delay: UInt32?) throws(DecodeFailure) -> Will {
        let publish = try decodePublish(blob)
        var properties = publish.properties
        if let delay { properties.willDelayInterval = delay }
        return Will(topic: publish.topic, payload: publish.payload, qos: publish.qos, retain: publish.retain, properties: properties)
    }

    private static func decodePublish(_ blob: ByteBuffer) throws(DecodeFailure) -> Publish {
        var buffer = blob
        let packet: MQTTPacket?
        do throws(DecodeError) {
            packet = try decoder.decode(from: &buffer)
        } catch {
            throw DecodeFailure(detail: "\(error)")
        }
        guard case .publish(let publish) = packet else { throw DecodeFailure(detail: "not a PUBLISH") }
        guard buffer.readableBytes == 0 else { throw DecodeFailure(detail: "\(buffer.readableBytes) bytes after the PUBLISH") }
        return publish
    }

    /// The SUBSCRIBE options byte: QoS in bits 0-1, No Local bit 2, Retain As Published bit 3,
    /// Retain Handling bits 4-5.
    static func options(of subscription: Subscription) -> Int {
        var options = Int(subscription.qos.rawValue)
        if subscription.noLocal { options |= 0x04 }
        if subscription.retainAsPublished { options |= 0x08 }
        options |= Int(subscription.retainHandling.rawValue) << 4
        return options
    }

    static func subscription(filter: String, options: Int64) throws(DecodeFailure) -> Subscription {
        guard options >= 0 && options <= 0x3F,
            let qos = QoS(rawValue: UInt8(options & 0x03)),
            let retainHandling = RetainHandling(rawValue: UInt8((options >> 4) & 0x03))
        else { throw DecodeFailure(detail: "subscription options \(options) of \(filter)") }
        return Subscription(
            filter: filter, qos: qos, noLocal: options & 0x04 != 0, retainAsPublished: options & 0x08 != 0,
            retainHandling: retainHandling)
    }

    /// Subscription identifiers as 4-byte big-endian integers; nil (NULL) when there are none.
    static func encodeSubscriptionIDs(_ ids: [Int]) -> ByteBuffer? {
        if ids.isEmpty { return nil }
        var buffer = ByteBuffer()
        buffer.reserveCapacity(ids.count * 4)
        for id in ids { buffer.writeInteger(UInt32(truncatingIfNeeded: id)) }
        return buffer
    }

    static func decodeSubscriptionIDs(_ blob: ByteBuffer?) throws(DecodeFailure) -> [Int] {
        guard var blob else { return [] }
        guard blob.readableBytes % 4 == 0 else { throw DecodeFailure(detail: "subscription identifiers of \(blob.readableBytes) bytes") }
        var ids: [Int] = []
        ids.reserveCapacity(blob.readableBytes / 4)
        while let id = blob.readInteger(as: UInt32.self) { ids.append(Int(id)) }
        return ids
    }
}

/// A stored value that does not decode: the database is damaged (or was written by a bug).
struct DecodeFailure: Error {
    var detail: String
}
