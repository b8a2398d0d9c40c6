// libFuzzer entry point for the MQTT frame decoder (see ../../README.md).
//
// For every input and every protocol version, the decoder reads packets until it needs more
// bytes or throws. Any other outcome is a bug and traps:
// - a crash, hang or sanitizer report inside the decoder;
// - a decoded packet that does not survive encode -> decode unchanged;
// - an encoder whose `size(of:)` disagrees with the bytes it writes;
// - a strict prefix of a decoded packet that does not decode to "need more bytes".

import MQTTCodec
import NIOCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDecoderTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = ByteBuffer(bytes: UnsafeBufferPointer(start: data, count: size))
    for version in [ProtocolVersion.v3_1, .v3_1_1, .v5] {
        decodeAll(input, version: version)
    }
    return 0
}

private func decodeAll(_ input: ByteBuffer, version: ProtocolVersion) {
    let decoder = MQTTDecoder(version: version)
    var buffer = input
    while buffer.readableBytes > 0 {
        let start = buffer.readerIndex
        let packet: MQTTPacket?
        do {
            packet = try decoder.decode(from: &buffer)
        } catch {
            // Malformed input: the connection would be closed here; nothing more to check.
            return
        }
        guard let packet else {
            check(buffer.readerIndex == start, "nil consumed bytes", version, packet: nil)
            return
        }
        let frameLength = buffer.readerIndex - start
        checkPrefixes(of: input, from: start, length: frameLength, decoder: decoder, version: version)
        checkRoundTrip(packet, version: version)
    }
}

/// Every strict prefix of a complete packet is "need more bytes", never an error.
private func checkPrefixes(of input: ByteBuffer, from start: Int, length: Int, decoder: MQTTDecoder, version: ProtocolVersion) {
    for prefixLength in 0..<length {
        guard var prefix = input.getSlice(at: start, length: prefixLength) else {
            fatalError("prefix slice out of range")
        }
        do {
            let result = try decoder.decode(from: &prefix)
            check(result == nil, "prefix of \(prefixLength) of \(length) bytes decoded", version, packet: result)
            check(prefix.readableBytes == prefixLength, "prefix consumed bytes", version, packet: nil)
        } catch {
            fatalError("\(version): prefix of \(prefixLength) of \(length) bytes threw \(error)")
        }
    }
}

/// encode(decode(x)) decodes to the same value, in exactly `size(of:)` bytes.
private func checkRoundTrip(_ packet: MQTTPacket, version: ProtocolVersion) {
    let encoder = MQTTEncoder(version: version)
    var encoded = ByteBuffer()
    encoder.encode(packet, into: &encoded)
    let encodedSize = encoded.readableBytes
    check(encoder.size(of: packet) == encodedSize, "size(of:) \(encoder.size(of: packet)) != \(encodedSize)", version, packet: packet)
    if case .publish(let publish) = packet {
        check(encoder.size(of: publish) == encodedSize, "size(of: Publish) differs", version, packet: packet)
    }
    let decoder = MQTTDecoder(version: version)
    do {
        let again = try decoder.decode(from: &encoded)
        check(again == packet, "round trip changed the packet to \(String(describing: again))", version, packet: packet)
        check(encoded.readableBytes == 0, "round trip left \(encoded.readableBytes) bytes", version, packet: packet)
    } catch {
        fatalError("\(version): re-encoded packet does not decode: \(error)\npacket: \(packet)")
    }
}

private func check(_ condition: Bool, _ message: @autoclosure () -> String, _ version: ProtocolVersion, packet: MQTTPacket?) {
    if !condition {
        fatalError("\(version): \(message())\npacket: \(packet.map { "\($0)" } ?? "none")")
    }
}
