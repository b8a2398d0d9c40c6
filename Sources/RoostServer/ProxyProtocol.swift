import NIOCore

/// The PROXY protocol (HAProxy, versions 1 and 2): a load balancer in front of the broker sends
/// one header with the real client's address before the client's bytes. Listeners with
/// `proxy_protocol` require it; the address it names replaces the socket's peer address for
/// logs, authentication and the login back-off.
enum ProxyHeader {
    /// What a complete header says.
    enum Source: Equatable {
        /// The client's address (v1 TCP4/TCP6, v2 PROXY over IPv4/IPv6).
        case client(SocketAddress)
        /// No client address (v1 UNKNOWN, v2 LOCAL or an unspecified family): use the socket's.
        case local
    }

    enum ParseError: Error, Equatable, CustomStringConvertible {
        case notAProxyHeader
        case v1TooLong
        case v1Malformed(String)
        case v2Malformed(String)

        var description: String {
            switch self {
            case .notAProxyHeader: return "the connection does not start with a PROXY protocol header"
            case .v1TooLong: return "PROXY v1 header without CRLF within 107 bytes"
            case .v1Malformed(let why): return "malformed PROXY v1 header: \(why)"
            case .v2Malformed(let why): return "malformed PROXY v2 header: \(why)"
            }
        }
    }

    static let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
    static let v1Prefix = Array("PROXY ".utf8)
    /// The longest v1 header, CRLF included (the specification's bound).
    static let v1MaximumLength = 107

    /// Reads one header from the front of `buffer`: nil while more bytes are needed (nothing is
    /// consumed then), the source once complete (the header is consumed), or an error.
    static func parse(_ buffer: inout ByteBuffer) throws(ParseError) -> Source? {
        let available = buffer.readableBytesView
        guard let first = available.first else { return nil }
        if first == v2Signature[0] {
            return try parseV2(&buffer)
        }
        if first == v1Prefix[0] {
            return try parseV1(&buffer)
        }
        throw .notAProxyHeader
    }

    private static func parseV1(_ buffer: inout ByteBuffer) throws(ParseError) -> Source? {
        let view = buffer.readableBytesView
        let prefixCount = min(view.count, v1Prefix.count)
        guard view.prefix(prefixCount).elementsEqual(v1Prefix.prefix(prefixCount)) else { throw .notAProxyHeader }
        guard let lineFeed = view.firstIndex(of: 0x0A) else {
            if view.count >= v1MaximumLength { throw .v1TooLong }
            return nil
        }
        let length = lineFeed - view.startIndex + 1
        guard length <= v1MaximumLength else { throw .v1TooLong }
        guard length >= 2, view[lineFeed - 1] == 0x0D else { throw .v1Malformed("line does not end with CRLF") }
        let line = String(decoding: view[view.startIndex..<(lineFeed - 1)], as: UTF8.self)
        buffer.moveReaderIndex(forwardBy: length)
        let fields = line.split(separator: " ", omittingEmptySubsequences: false)
        guard fields.count >= 2 else { throw .v1Malformed("no protocol") }
        switch fields[1] {
        case "UNKNOWN":
            return .local
        case "TCP4", "TCP6":
            guard fields.count == 6 else { throw .v1Malformed("expected PROXY TCPx SRC DST SPORT DPORT") }
            guard let port = Int(fields[4]), (0...65_535).contains(port), Int(fields[5]).map({ (0...65_535).contains($0) }) == true else {
                throw .v1Malformed("bad port")
            }
            let host = String(fields[2])
            guard (fields[1] == "TCP4") == !host.contains(":"), let address = try? SocketAddress(ipAddress: host, port: port) else {
                throw .v1Malformed("bad source address '\(host)'")
            }
            return .client(address)
        default:
            throw .v1Malformed("unknown protocol '\(fields[1])'")
        }
    }

    private static func parseV2(_ buffer: inout ByteBuffer) throws(ParseError) -> Source? {
        let view = buffer.readableBytesView
        let signatureCount = min(view.count, v2Signature.count)
        guard view.prefix(signatureCount).elementsEqual(v2Signature.prefix(signatureCount)) else { throw .notAProxyHeader }
        guard view.count >= 16 else { return nil }
        let start = view.startIndex
        let versionCommand = view[start + 12]
        let familyProtocol = view[start + 13]
        let length = Int(view[start + 14]) << 8 | Int(view[start + 15])
        guard versionCommand >> 4 == 2 else { throw .v2Malformed("version \(versionCommand >> 4)") }
        guard view.count >= 16 + length else { return nil }
        let body = view[(start + 16)..<(start + 16 + length)]
        buffer.moveReaderIndex(forwardBy: 16 + length)
        switch versionCommand & 0x0F {
        case 0x0: return .local  // LOCAL: a health check from the proxy itself
        case 0x1: break
        default: throw .v2Malformed("command \(versionCommand & 0x0F)")
        }
        let family = familyProtocol >> 4
        let transport = familyProtocol & 0x0F
        if family == 0 { return .local }  // UNSPEC
        guard transport == 1 else { throw .v2Malformed("transport \(transport) (only STREAM)") }
        switch family {
        case 1:
            guard body.count >= 12 else { throw .v2Malformed("IPv4 address block of \(body.count) bytes") }
            let b = body.startIndex
            let host = "\(body[b]).\(body[b + 1]).\(body[b + 2]).\(body[b + 3])"
            let port = Int(body[b + 8]) << 8 | Int(body[b + 9])
            guard let address = try? SocketAddress(ipAddress: host, port: port) else { throw .v2Malformed("bad IPv4 address") }
            return .client(address)
        case 2:
            guard body.count >= 36 else { throw .v2Malformed("IPv6 address block of \(body.count) bytes") }
            let b = body.startIndex
            var groups: [String] = []
            for index in stride(from: 0, to: 16, by: 2) {
                groups.append(String(Int(body[b + index]) << 8 | Int(body[b + index + 1]), radix: 16))
            }
            let port = Int(body[b + 32]) << 8 | Int(body[b + 33])
            guard let address = try? SocketAddress(ipAddress: groups.joined(separator: ":"), port: port) else {
                throw .v2Malformed("bad IPv6 address")
            }
            return .client(address)
        case 3:
            return .local  // UNIX sockets: no network address to report
        default:
            throw .v2Malformed("address family \(family)")
        }
    }
}

/// The real client address of one connection, learned from its PROXY header. Shared by the
/// channel's ``ProxyProtocolHandler`` and ``Connection``.
///
/// Concurrency: only on the channel's event loop.
final class ProxiedPeer: @unchecked Sendable {
    var address: SocketAddress?
}

/// First handler on a `proxy_protocol` listener: reads the PROXY header, records the client's
/// address, passes on whatever followed it and removes itself. A connection without a valid
/// header is closed (the connect timeout covers one that never completes it).
///
/// Concurrency: only on its channel's event loop.
final class ProxyProtocolHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    let peer: ProxiedPeer
    let onReject: (ProxyHeader.ParseError) -> Void
    private var buffered: ByteBuffer?
    private var done = false

    init(peer: ProxiedPeer, onReject: @escaping (ProxyHeader.ParseError) -> Void) {
        self.peer = peer
        self.onReject = onReject
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else {
            context.fireChannelRead(data)
            return
        }
        var incoming = unwrapInboundIn(data)
        if buffered == nil {
            buffered = incoming
        } else {
            buffered!.writeBuffer(&incoming)
        }
        do {
            guard let source = try ProxyHeader.parse(&buffered!) else { return }
            done = true
            if case .client(let address) = source { peer.address = address }
            let rest = buffered!
            buffered = nil
            // Pass on what followed the header first (later reads pass through while `done`),
            // then leave the pipeline.
            if rest.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(rest)) }
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        } catch {
            done = true
            buffered = nil
            onReject(error)
            context.close(promise: nil)
        }
    }
}
