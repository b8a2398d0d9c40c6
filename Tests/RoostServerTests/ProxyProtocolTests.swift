import NIOCore
import NIOEmbedded
import XCTest

@testable import RoostServer

/// The PROXY protocol header parser (v1 and v2) and its handler.
final class ProxyProtocolTests: XCTestCase {
    private func parse(_ bytes: [UInt8]) throws -> (ProxyHeader.Source?, Int) {
        var buffer = ByteBuffer(bytes: bytes)
        let source = try ProxyHeader.parse(&buffer)
        return (source, buffer.readableBytes)
    }

    private func v2(command: UInt8 = 0x21, family: UInt8, body: [UInt8]) -> [UInt8] {
        ProxyHeader.v2Signature + [command, family, UInt8(body.count >> 8), UInt8(body.count & 0xFF)] + body
    }

    func testVersion1() throws {
        let header = Array("PROXY TCP4 127.0.0.77 127.0.0.1 40000 1883\r\n".utf8)
        let (source, rest) = try parse(header + [0x10, 0x00])
        XCTAssertEqual(source, .client(try SocketAddress(ipAddress: "127.0.0.77", port: 40000)))
        XCTAssertEqual(rest, 2, "what follows the header stays")
        XCTAssertEqual(try parse(Array("PROXY TCP6 ::1 ::1 5 6\r\n".utf8)).0, .client(try SocketAddress(ipAddress: "::1", port: 5)))
        XCTAssertEqual(try parse(Array("PROXY UNKNOWN\r\n".utf8)).0, .local)
        // Byte by byte: nothing until the CRLF, nothing consumed.
        for count in 0..<header.count {
            let (partial, left) = try parse(Array(header.prefix(count)))
            XCTAssertNil(partial)
            XCTAssertEqual(left, count)
        }
    }

    func testVersion2() throws {
        let ipv4 = v2(family: 0x11, body: [127, 0, 0, 5, 127, 0, 0, 1, 0x9C, 0x40, 0x07, 0x5B])
        XCTAssertEqual(try parse(ipv4).0, .client(try SocketAddress(ipAddress: "127.0.0.5", port: 40000)))
        var ipv6Body = [UInt8](repeating: 0, count: 36)
        ipv6Body[15] = 1
        ipv6Body[31] = 1
        ipv6Body[32] = 0x00
        ipv6Body[33] = 0x50
        XCTAssertEqual(try parse(v2(family: 0x21, body: ipv6Body)).0, .client(try SocketAddress(ipAddress: "::1", port: 80)))
        XCTAssertEqual(try parse(v2(command: 0x20, family: 0x00, body: [])).0, .local, "LOCAL")
        // TLVs after the addresses are skipped, and the next bytes stay.
        let withTLV = v2(family: 0x11, body: [127, 0, 0, 5, 127, 0, 0, 1, 0, 1, 0, 2] + [0x04, 0x00, 0x01, 0xAA])
        let (source, rest) = try parse(withTLV + [0x10])
        XCTAssertEqual(source, .client(try SocketAddress(ipAddress: "127.0.0.5", port: 1)))
        XCTAssertEqual(rest, 1)
        for count in 0..<ipv4.count { XCTAssertNil(try parse(Array(ipv4.prefix(count))).0) }
    }

    func testMalformedHeaders() {
        let cases: [(String, [UInt8])] = [
            ("MQTT CONNECT instead", [0x10, 0x0C, 0x00, 0x04]),
            ("v1 without CRLF in 107 bytes", Array("PROXY TCP4 ".utf8) + [UInt8](repeating: 0x31, count: 100)),
            ("v1 bad address", Array("PROXY TCP4 1.2.3 127.0.0.1 1 2\r\n".utf8)),
            ("v1 family mismatch", Array("PROXY TCP4 ::1 ::1 1 2\r\n".utf8)),
            ("v1 bad port", Array("PROXY TCP4 127.0.0.1 127.0.0.1 70000 2\r\n".utf8)),
            ("v1 LF without CR", Array("PROXY UNKNOWN\n".utf8)),
            ("v2 version 1", ProxyHeader.v2Signature + [0x11, 0x11, 0, 12] + [UInt8](repeating: 0, count: 12)),
            ("v2 short IPv4 block", v2(family: 0x11, body: [127, 0, 0, 1])),
            ("v2 datagram", v2(family: 0x12, body: [UInt8](repeating: 0, count: 12))),
            ("v2 bad command", v2(command: 0x2F, family: 0x11, body: [UInt8](repeating: 0, count: 12))),
        ]
        for (name, bytes) in cases {
            XCTAssertThrowsError(try parse(bytes), name)
        }
    }

    /// The handler hands what follows the header on, records the address and leaves the pipeline;
    /// a connection without a header is closed.
    func testHandler() throws {
        let peer = ProxiedPeer()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ProxyProtocolHandler(peer: peer) { _ in })
        try channel.writeInbound(ByteBuffer(string: "PROXY TCP4 127.0.0.9 127.0.0.1 1234 1883\r\nhel"))
        try channel.writeInbound(ByteBuffer(string: "lo"))
        XCTAssertEqual(peer.address, try SocketAddress(ipAddress: "127.0.0.9", port: 1234))
        XCTAssertEqual(try channel.readInbound(as: ByteBuffer.self).map { String(buffer: $0) }, "hel")
        XCTAssertEqual(try channel.readInbound(as: ByteBuffer.self).map { String(buffer: $0) }, "lo")
        XCTAssertThrowsError(try channel.pipeline.syncOperations.handler(type: ProxyProtocolHandler.self), "removed itself")

        var rejected: [ProxyHeader.ParseError] = []
        let plain = EmbeddedChannel()
        try plain.pipeline.syncOperations.addHandler(ProxyProtocolHandler(peer: ProxiedPeer()) { rejected.append($0) })
        try plain.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try plain.writeInbound(ByteBuffer(bytes: [0x10, 0x0C]))
        XCTAssertFalse(plain.isActive)
        XCTAssertEqual(rejected, [.notAProxyHeader])
    }
}
