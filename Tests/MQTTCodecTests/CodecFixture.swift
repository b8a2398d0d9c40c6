import MQTTCodec
import NIOCore

/// One valid packet, written out byte by byte from the OASIS specification, and the value it
/// stands for. The codec must turn each into the other exactly (see `CodecFixtureTests`).
struct CodecFixture: CustomStringConvertible {
    /// What the fixture shows, e.g. "5.0 PUBLISH QoS 1 with properties".
    var name: String
    /// The protocol version of the connection the packet travels on.
    var version: ProtocolVersion
    /// The whole packet, fixed header included, in the form the encoder writes.
    var bytes: [UInt8]
    /// The decoded value.
    var packet: MQTTPacket

    init(_ name: String, _ version: ProtocolVersion, bytes: [UInt8], packet: MQTTPacket) {
        self.name = name
        self.version = version
        self.bytes = bytes
        self.packet = packet
    }

    var description: String { "\(version) \(name)" }

    var buffer: ByteBuffer { ByteBuffer(bytes: bytes) }

    /// Every fixture, all versions.
    static let all: [CodecFixture] = mqtt3 + mqtt5
}

/// Concatenates the annotated lines of a fixture into one packet.
func wire(_ lines: [UInt8]...) -> [UInt8] {
    lines.flatMap { $0 }
}

/// The UTF-8 bytes of `text`, without a length prefix (the prefix is written out by hand).
func utf8(_ text: String) -> [UInt8] {
    Array(text.utf8)
}

/// A buffer holding the UTF-8 bytes of `text`.
func buf(_ text: String) -> ByteBuffer {
    ByteBuffer(string: text)
}

/// A buffer holding `bytes`.
func buf(_ bytes: [UInt8]) -> ByteBuffer {
    ByteBuffer(bytes: bytes)
}

/// Properties built with a closure, to keep fixture values compact.
func props(_ build: (inout Properties) -> Void) -> Properties {
    var properties = Properties()
    build(&properties)
    return properties
}

/// Formats bytes as hex for failure messages.
func hex<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
    bytes.map { byte in
        let digits = String(byte, radix: 16, uppercase: true)
        return byte < 0x10 ? "0" + digits : digits
    }.joined(separator: " ")
}
