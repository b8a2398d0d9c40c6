import NIOCore
import NIOHTTP1
import NIOWebSocket

/// MQTT over WebSocket (MQTT 5 section 6): binary frames carry the MQTT byte stream. Sits
/// between the WebSocket frame codec and the ``Connection``, which sees plain bytes: frame
/// boundaries mean nothing (a packet may span frames, a frame may hold several packets).
///
/// Concurrency: only on its channel's event loop.
final class WebSocketMQTTAdapter: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = WebSocketFrame

    private var closing = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .binary, .continuation:
            let bytes = frame.unmaskedData
            if bytes.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(bytes)) }
        case .ping:
            guard !closing else { return }
            var reply = WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)
            reply.rsv1 = false
            context.writeAndFlush(wrapOutboundOut(reply), promise: nil)
        case .pong:
            break
        case .connectionClose:
            // Echo the close (RFC 6455 5.5.1), then close the socket.
            guard !closing else {
                context.close(promise: nil)
                return
            }
            closing = true
            var payload = context.channel.allocator.buffer(capacity: 2)
            payload.write(webSocketErrorCode: .normalClosure)
            let reply = WebSocketFrame(fin: true, opcode: .connectionClose, data: payload)
            context.writeAndFlush(wrapOutboundOut(reply)).whenComplete { _ in context.close(promise: nil) }
        case .text:
            // [MQTT-6.0.0-1]: MQTT control packets must be sent in binary data frames.
            closeWith(context, code: .unacceptableData)
        default:
            closeWith(context, code: .protocolError)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let bytes = unwrapOutboundIn(data)
        context.write(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .binary, data: bytes)), promise: promise)
    }

    private func closeWith(_ context: ChannelHandlerContext, code: WebSocketErrorCode) {
        guard !closing else { return }
        closing = true
        var payload = context.channel.allocator.buffer(capacity: 2)
        payload.write(webSocketErrorCode: code)
        let frame = WebSocketFrame(fin: true, opcode: .connectionClose, data: payload)
        context.writeAndFlush(wrapOutboundOut(frame)).whenComplete { _ in context.close(promise: nil) }
    }
}

/// Answers HTTP requests that are not a WebSocket upgrade at the MQTT path (404, or 400 at the
/// right path without an upgrade), and closes sockets that do not finish the upgrade within the
/// connect timeout. Removed once the upgrade is done.
///
/// Concurrency: only on its channel's event loop.
final class WebSocketUpgradeGate: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let path: String
    let timeout: TimeAmount
    /// Called when `timeout` passes before the upgrade, just before the socket is closed.
    let onTimeout: @Sendable () -> Void
    private var timer: Scheduled<Void>?
    private var responded = false

    init(path: String, timeout: TimeAmount, onTimeout: @escaping @Sendable () -> Void = {}) {
        self.path = path
        self.timeout = timeout
        self.onTimeout = onTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        let onTimeout = self.onTimeout
        timer = context.eventLoop.scheduleTask(in: timeout) {
            onTimeout()
            loopBound.value.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = unwrapInboundIn(data), !responded else { return }
        responded = true
        let requestPath = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        let status: HTTPResponseStatus = requestPath == path ? .badRequest : .notFound
        let body = requestPath == path
            ? "This is an MQTT over WebSocket endpoint: connect with a WebSocket client (subprotocol mqtt).\n"
            : "Not found. The MQTT WebSocket endpoint is \(path).\n"
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        headers.add(name: "Content-Length", value: "\(body.utf8.count)")
        headers.add(name: "Connection", value: "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
    }

    /// The subprotocol to answer with: `mqtt` (MQTT 3.1.1 and 5), or `mqttv3.1` for old MQTT
    /// 3.1 clients; nil when the client offered others only. A client that offers none is
    /// served without one (as Mosquitto does).
    static func chooseSubprotocol(_ headers: HTTPHeaders) -> (ok: Bool, chosen: String?) {
        let offered = headers[canonicalForm: "Sec-WebSocket-Protocol"].map { $0.lowercased() }
        if offered.isEmpty { return (true, nil) }
        if offered.contains("mqtt") { return (true, "mqtt") }
        if offered.contains("mqttv3.1") { return (true, "mqttv3.1") }
        return (false, nil)
    }
}
