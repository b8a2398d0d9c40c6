import NIOCore
import NIOSSL

/// The identity of a TLS client: the subject common name (CN) of its verified certificate, as
/// Mosquitto's `use_identity_as_username` takes it.
enum CertificateIdentity {
    /// The CN of the peer certificate on this channel, if the handshake verified one.
    static func commonName(of channel: Channel) -> String? {
        guard let handler = try? channel.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self),
            let certificate = handler.peerCertificate,
            let der = try? certificate.toDERBytes()
        else { return nil }
        return subjectCommonName(der: der)
    }

    /// Reads the first CN attribute of the subject (as Mosquitto does) of a DER X.509 certificate:
    /// Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber,
    /// signature, issuer, validity, subject, ... }, ... }. Returns nil on anything unexpected
    /// (the certificate was already verified by BoringSSL; this only walks it).
    static func subjectCommonName(der: [UInt8]) -> String? {
        var reader = DERReader(bytes: der[...])
        guard var certificate = reader.enter(tag: 0x30), var tbs = certificate.enter(tag: 0x30) else { return nil }
        if tbs.peekTag == 0xA0 { guard tbs.skip() else { return nil } }  // version
        for _ in 0..<4 { guard tbs.skip() else { return nil } }  // serial, signature, issuer, validity
        guard var subject = tbs.enter(tag: 0x30) else { return nil }
        var commonName: String?
        while !subject.isAtEnd {
            guard var set = subject.enter(tag: 0x31) else { return nil }
            while !set.isAtEnd {
                guard var attribute = set.enter(tag: 0x30), let oid = attribute.read(tag: 0x06) else { return nil }
                guard let valueTag = attribute.peekTag, let value = attribute.read(tag: valueTag) else { return nil }
                // 2.5.4.3 (id-at-commonName); UTF8String, PrintableString, IA5String, T61String.
                if commonName == nil, Array(oid) == [0x55, 0x04, 0x03], [0x0C, 0x13, 0x16, 0x14].contains(valueTag) {
                    commonName = String(decoding: value, as: UTF8.self)
                }
            }
        }
        return commonName
    }
}

/// A minimal reader of DER tag-length-value items (definite lengths only).
struct DERReader {
    var bytes: ArraySlice<UInt8>

    var isAtEnd: Bool { bytes.isEmpty }
    var peekTag: UInt8? { bytes.first }

    /// Reads one item with this tag; returns its contents.
    mutating func read(tag: UInt8) -> ArraySlice<UInt8>? {
        guard let first = bytes.first, first == tag else { return nil }
        var index = bytes.startIndex + 1
        guard index < bytes.endIndex else { return nil }
        var length = Int(bytes[index])
        index += 1
        if length & 0x80 != 0 {
            let count = length & 0x7F
            guard count >= 1, count <= 4, index + count <= bytes.endIndex else { return nil }
            length = 0
            for byte in bytes[index..<index + count] { length = length << 8 | Int(byte) }
            index += count
        }
        guard length >= 0, index + length <= bytes.endIndex else { return nil }
        let contents = bytes[index..<index + length]
        bytes = bytes[(index + length)...]
        return contents
    }

    /// Reads a constructed item with this tag and returns a reader over its contents.
    mutating func enter(tag: UInt8) -> DERReader? {
        read(tag: tag).map { DERReader(bytes: $0) }
    }

    /// Skips one item of any tag.
    mutating func skip() -> Bool {
        guard let tag = peekTag else { return false }
        return read(tag: tag) != nil
    }
}
