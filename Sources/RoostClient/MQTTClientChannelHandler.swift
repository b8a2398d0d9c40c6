import MQTTCodec
import NIOCore

/// Session state the client keeps from one connection to the next (MQTT 5: 4.1): the inbound
/// QoS 2 messages already delivered to the application and waiting for PUBREL, so that a
/// redelivery after a reconnect is not delivered twice.
///
/// Concurrency: a plain value; handed between ``MQTTClient`` (under its lock) and the handler of
/// each new connection.
struct ClientSessionState: Sendable {
    var awaitingRelease: Set<UInt16> = []
}

/// How the handler reports to its ``MQTTClient``. The closures run on the channel's EventLoop
/// and must only take the client's lock briefly.
struct ClientConnectionEvents: Sendable {
    /// A CONNACK arrived (accepted or refused).
    var connAckReceived: @Sendable (ConnAck) -> Void
    /// The connection ended; carries the session state to keep and the server's DISCONNECT, if any.
    var ended: @Sendable (ClientSessionState, Disconnect?) -> Void
}

/// The client side of one MQTT connection: decodes inbound packets, answers the protocol (acks,
/// PINGREQ, QoS 2 flows), and completes the promises of the ``MQTTClient`` requests.
///
/// Concurrency: confined to its channel's EventLoop. ``MQTTClient`` reaches it only through
/// `NIOLoopBound` and `EventLoop.execute`; every method here must be called on that loop. Work
/// for the application leaves the loop through promises and the message stream's continuation.
final class MQTTClientChannelHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum State: Equatable {
        /// Waiting for CONNACK (after our CONNECT, or after a raw one in ``sendsConnect`` false mode).
        case connecting
        case connected
        /// DISCONNECT sent (or being sent) by us; closing.
        case disconnecting
        case closed
    }

    private let configuration: MQTTClientConfiguration
    private let encoder: MQTTEncoder
    private var processor: NIOSingleStepByteToMessageProcessor<MQTTFrameDecoder>
    private let events: ClientConnectionEvents
    private let messages: AsyncStream<Publish>.Continuation
    private let connAckPromise: EventLoopPromise<ConnAck>
    /// False when the application drives the handshake itself with raw packets.
    private let sendsConnect: Bool

    private var context: ChannelHandlerContext?
    private var state = State.connecting
    private var session: ClientSessionState
    private var requests = OutboundRequests()
    private var serverDisconnect: Disconnect?
    /// Why we closed the connection, when it was an error (protocol violation, timeout).
    private var closeReason: MQTTClientError?
    private var serverMaximumPacketSize: Int?
    private var topicAliases: [UInt16: String] = [:]

    private var connectTimeoutTask: Scheduled<Void>?
    private var keepAliveInterval: TimeAmount?
    private var keepAliveTask: Scheduled<Void>?
    private var lastSent = NIODeadline.now()
    private var pingSentAt: NIODeadline?
    private var pingWaiters: [(promise: EventLoopPromise<Void>, timeout: Scheduled<Void>?)] = []

    /// Packets encoded while a read batch is processed; written once in `channelReadComplete`.
    private var pendingOutput: ByteBuffer?
    private var pendingWritePromises: [EventLoopPromise<Void>] = []
    private var isReading = false
    /// True while ``publish(batch:promise:)`` encodes its messages (one write at its end).
    private var isBatching = false

    init(
        configuration: MQTTClientConfiguration,
        session: ClientSessionState,
        messages: AsyncStream<Publish>.Continuation,
        connAckPromise: EventLoopPromise<ConnAck>,
        sendsConnect: Bool,
        events: ClientConnectionEvents
    ) {
        self.configuration = configuration
        self.encoder = MQTTEncoder(version: configuration.version)
        var decoder = MQTTDecoder(version: configuration.version)
        if configuration.version == .v5, let limit = configuration.connectProperties.maximumPacketSize {
            decoder.maximumPacketSize = Int(limit)
        }
        self.processor = NIOSingleStepByteToMessageProcessor(MQTTFrameDecoder(decoder: decoder))
        self.session = configuration.cleanStart ? ClientSessionState() : session
        self.messages = messages
        self.connAckPromise = connAckPromise
        self.sendsConnect = sendsConnect
        self.events = events
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { start(context: context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        tearDown()
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        tearDown()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        isReading = true
        do {
            try processor.process(buffer: buffer) { packet in self.received(packet) }
        } catch let error as DecodeError {
            failConnection(error.reasonCode, "malformed packet from the server: \(error)")
        } catch {
            failConnection(.malformedPacket, "undecodable input from the server: \(error)")
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        isReading = false
        flushOutput()
        context.fireChannelReadComplete()
    }

    private func start(context: ChannelHandlerContext) {
        guard sendsConnect, connectTimeoutTask == nil, state == .connecting else { return }
        send(.connect(configuration.connectPacket))
        connectTimeoutTask = context.eventLoop.assumeIsolated().scheduleTask(in: configuration.connectTimeout) {
            guard self.state == .connecting else { return }
            self.closeReason = .timeout
            self.context?.close(promise: nil)
        }
    }

    // MARK: Requests from MQTTClient (on the EventLoop)

    func publish(_ message: Publish, promise: EventLoopPromise<Ack?>) {
        guard state == .connected else { return promise.fail(unavailableError) }
        if let error = problem(with: message) { return promise.fail(error) }
        var message = message
        message.dup = false
        if message.qos == .atMostOnce {
            message.packetID = 0
            let written = promise.futureResult.eventLoop.makePromise(of: Void.self)
            send(.publish(message), promise: written)
            promise.completeWith(written.futureResult.map { nil })
        } else if requests.isWindowFull {
            requests.enqueueWaiting(message, promise: promise)
        } else {
            startPublish(message, promise: promise)
        }
    }

    /// Publishes every message of `batch` in order, encoded into one write. QoS 0 messages get no
    /// promise of their own: the batch's write stands for them. `promise` gets one entry per
    /// message (nil for QoS 0) once all are complete; an invalid message fails the whole batch
    /// before anything is sent.
    func publish(batch: [Publish], promise: EventLoopPromise<[Ack?]>) {
        guard state == .connected, let context else { return promise.fail(unavailableError) }
        for message in batch {
            if let error = problem(with: message) { return promise.fail(error) }
        }
        let loop = context.eventLoop
        var acknowledgements: [EventLoopFuture<Ack?>] = []
        var acknowledged: [Int] = []
        isBatching = true
        for (index, message) in batch.enumerated() {
            var message = message
            message.dup = false
            if message.qos == .atMostOnce {
                message.packetID = 0
                send(.publish(message))
            } else {
                let one = loop.makePromise(of: Ack?.self)
                if requests.isWindowFull {
                    requests.enqueueWaiting(message, promise: one)
                } else {
                    startPublish(message, promise: one)
                }
                acknowledgements.append(one.futureResult)
                acknowledged.append(index)
            }
        }
        isBatching = false
        let written = loop.makePromise(of: Void.self)
        if pendingOutput == nil {
            written.succeed(())
        } else {
            pendingWritePromises.append(written)
            if !isReading { flushOutput() }
        }
        let count = batch.count
        EventLoopFuture.whenAllSucceed(acknowledgements, on: loop)
            .and(written.futureResult)
            .map { acks, _ in
                var results = [Ack?](repeating: nil, count: count)
                for (index, ack) in zip(acknowledged, acks) { results[index] = ack }
                return results
            }
            .cascade(to: promise)
    }

    /// Why `message` cannot be sent on this connection, if it cannot.
    private func problem(with message: Publish) -> MQTTClientError? {
        if message.topic.isEmpty ? message.properties.topicAlias == nil : !Topic.isValidName(message.topic) {
            return MQTTClientError.protocolError("invalid topic name '\(message.topic)'")
        }
        if let limit = serverMaximumPacketSize, encoder.size(of: message) > limit {
            return MQTTClientError.protocolError("PUBLISH exceeds the server's maximum packet size of \(limit) bytes")
        }
        return nil
    }

    private func startPublish(_ message: Publish, promise: EventLoopPromise<Ack?>) {
        guard let packetID = requests.allocatePacketID() else {
            return promise.fail(MQTTClientError.protocolError("all packet identifiers are in use"))
        }
        var message = message
        message.packetID = packetID
        let request: OutboundRequests.Request =
            message.qos == .atLeastOnce ? .awaitingPubAck(promise) : .awaitingPubRec(promise)
        requests.insert(request, for: packetID, timeout: scheduleTimeout(for: packetID))
        send(.publish(message))
    }

    func subscribe(_ subscriptions: [Subscription], properties: Properties, promise: EventLoopPromise<SubAck>) {
        guard state == .connected else { return promise.fail(unavailableError) }
        guard !subscriptions.isEmpty else {
            return promise.fail(MQTTClientError.protocolError("SUBSCRIBE needs at least one topic filter"))
        }
        guard let packetID = requests.allocatePacketID() else {
            return promise.fail(MQTTClientError.protocolError("all packet identifiers are in use"))
        }
        requests.insert(.awaitingSubAck(promise), for: packetID, timeout: scheduleTimeout(for: packetID))
        send(.subscribe(Subscribe(packetID: packetID, subscriptions: subscriptions, properties: properties)))
    }

    func unsubscribe(_ filters: [String], properties: Properties, promise: EventLoopPromise<UnsubAck>) {
        guard state == .connected else { return promise.fail(unavailableError) }
        guard !filters.isEmpty else {
            return promise.fail(MQTTClientError.protocolError("UNSUBSCRIBE needs at least one topic filter"))
        }
        guard let packetID = requests.allocatePacketID() else {
            return promise.fail(MQTTClientError.protocolError("all packet identifiers are in use"))
        }
        requests.insert(.awaitingUnsubAck(promise), for: packetID, timeout: scheduleTimeout(for: packetID))
        send(.unsubscribe(Unsubscribe(packetID: packetID, filters: filters, properties: properties)))
    }

    func ping(promise: EventLoopPromise<Void>) {
        guard state == .connected, let context else { return promise.fail(unavailableError) }
        let timeout = configuration.operationTimeout.map { timeout in
            context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
                guard let index = self.pingWaiters.firstIndex(where: { $0.promise == promise }) else { return }
                self.pingWaiters.remove(at: index)
                promise.fail(MQTTClientError.timeout)
            }
        }
        pingWaiters.append((promise, timeout))
        sendPingRequest()
    }

    /// Sends DISCONNECT, then closes the connection once it is written.
    func disconnect(_ packet: Disconnect, promise: EventLoopPromise<Void>) {
        guard state == .connected || state == .connecting, let context else { return promise.fail(unavailableError) }
        state = .disconnecting
        let written = context.eventLoop.makePromise(of: Void.self)
        send(.disconnect(packet), promise: written)
        written.futureResult.assumeIsolated().whenComplete { result in
            self.context?.close(promise: nil)
            promise.completeWith(result)
        }
    }

    /// Writes `packet` as it is, bypassing all protocol state (for protocol tests).
    func sendRaw(_ packet: MQTTPacket, promise: EventLoopPromise<Void>) {
        guard state != .closed else { return promise.fail(unavailableError) }
        if case .disconnect = packet { state = .disconnecting }
        send(packet, promise: promise)
    }

    /// Writes `bytes` as they are (for malformed-input tests).
    func sendBytes(_ bytes: ByteBuffer, promise: EventLoopPromise<Void>) {
        guard state != .closed, let context else { return promise.fail(unavailableError) }
        flushOutput()
        lastSent = .now()
        context.writeAndFlush(wrapOutboundOut(bytes), promise: promise)
    }

    private var unavailableError: MQTTClientError {
        switch state {
        case .connecting: return .notConnected
        case .connected: return .notConnected
        case .disconnecting: return .closed(nil)
        case .closed: return closeReason ?? .closed(serverDisconnect)
        }
    }

    private func scheduleTimeout(for packetID: UInt16) -> Scheduled<Void>? {
        guard let timeout = configuration.operationTimeout, let context else { return nil }
        return context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            guard let request = self.requests.remove(packetID) else { return }
            request.fail(MQTTClientError.timeout)
            self.sendWaitingPublishes()
        }
    }

    private func sendWaitingPublishes() {
        while state == .connected, let next = requests.dequeueWaiting() {
            startPublish(next.publish, promise: next.promise)
        }
    }

    // MARK: Inbound packets

    private func received(_ packet: MQTTPacket) {
        guard state != .closed else { return }
        configuration.packetObserver?(.received, packet)
        switch packet {
        case .connack(let connAck): receivedConnAck(connAck)
        case .publish(let message): receivedPublish(message)
        case .puback(let ack):
            switch requests.request(for: ack.packetID) {
            case .awaitingPubAck(let promise)?:
                _ = requests.remove(ack.packetID)
                promise.succeed(ack)
                sendWaitingPublishes()
            case nil: break
            case let other?: mismatchedAck(ack.packetID, other, "PUBACK")
            }
        case .pubrec(let ack):
            switch requests.request(for: ack.packetID) {
            case .awaitingPubRec(let promise)?:
                if ack.reasonCode.isFailure {
                    _ = requests.remove(ack.packetID)
                    promise.succeed(ack)
                    sendWaitingPublishes()
                } else {
                    requests.replace(ack.packetID, with: .awaitingPubComp(promise))
                    send(.pubrel(Ack(packetID: ack.packetID)))
                }
            case nil:
                let code: ReasonCode = configuration.version == .v5 ? .packetIdentifierNotFound : .success
                send(.pubrel(Ack(packetID: ack.packetID, reasonCode: code)))
            case let other?: mismatchedAck(ack.packetID, other, "PUBREC")
            }
        case .pubcomp(let ack):
            switch requests.request(for: ack.packetID) {
            case .awaitingPubComp(let promise)?:
                _ = requests.remove(ack.packetID)
                promise.succeed(ack)
                sendWaitingPublishes()
            case nil: break
            case let other?: mismatchedAck(ack.packetID, other, "PUBCOMP")
            }
        case .pubrel(let ack):
            let known = session.awaitingRelease.remove(ack.packetID) != nil
            let code: ReasonCode = known || configuration.version != .v5 ? .success : .packetIdentifierNotFound
            send(.pubcomp(Ack(packetID: ack.packetID, reasonCode: code)))
        case .suback(let subAck):
            switch requests.request(for: subAck.packetID) {
            case .awaitingSubAck(let promise)?:
                _ = requests.remove(subAck.packetID)
                promise.succeed(subAck)
            case nil: break
            case let other?: mismatchedAck(subAck.packetID, other, "SUBACK")
            }
        case .unsuback(let unsubAck):
            switch requests.request(for: unsubAck.packetID) {
            case .awaitingUnsubAck(let promise)?:
                _ = requests.remove(unsubAck.packetID)
                promise.succeed(unsubAck)
            case nil: break
            case let other?: mismatchedAck(unsubAck.packetID, other, "UNSUBACK")
            }
        case .pingresp:
            pingSentAt = nil
            let waiters = pingWaiters
            pingWaiters = []
            for waiter in waiters {
                waiter.timeout?.cancel()
                waiter.promise.succeed(())
            }
        case .disconnect(let disconnect):
            serverDisconnect = disconnect
            context?.close(promise: nil)
        case .auth:
            failConnection(.protocolError, "AUTH received, but enhanced authentication is not supported by this client")
        case .connect, .subscribe, .unsubscribe, .pingreq:
            failConnection(.protocolError, "the server sent \(packet.type), which only clients send")
        }
    }

    private func receivedConnAck(_ connAck: ConnAck) {
        guard state == .connecting else {
            if state == .connected { failConnection(.protocolError, "second CONNACK") }
            return
        }
        connectTimeoutTask?.cancel()
        events.connAckReceived(connAck)
        let refused = configuration.version == .v5 ? connAck.reasonCode.isFailure : connAck.reasonCode != .success
        if refused {
            closeReason = .connectionRefused(connAck)
            connAckPromise.fail(MQTTClientError.connectionRefused(connAck))
            context?.close(promise: nil)
            return
        }
        state = .connected
        if !connAck.sessionPresent { session = ClientSessionState() }
        let properties = connAck.properties
        requests.windowSize = max(1, min(configuration.maximumInflight, Int(properties.receiveMaximum ?? UInt16.max)))
        serverMaximumPacketSize = properties.maximumPacketSize.map { Int($0) }
        let keepAlive = properties.serverKeepAlive ?? configuration.keepAlive
        if keepAlive > 0 {
            keepAliveInterval = .seconds(Int64(keepAlive))
            scheduleKeepAlive()
        }
        connAckPromise.succeed(connAck)
    }

    private func receivedPublish(_ message: Publish) {
        guard state == .connected || state == .disconnecting else {
            return failConnection(.protocolError, "PUBLISH before CONNACK")
        }
        var message = message
        if let alias = message.properties.topicAlias {
            let maximum = configuration.version == .v5 ? configuration.connectProperties.topicAliasMaximum ?? 0 : 0
            guard alias <= maximum else {
                return failConnection(.topicAliasInvalid, "topic alias \(alias) above the maximum of \(maximum)")
            }
            if message.topic.isEmpty {
                guard let topic = topicAliases[alias] else {
                    return failConnection(.protocolError, "unknown topic alias \(alias)")
                }
                message.topic = topic
            } else {
                topicAliases[alias] = message.topic
            }
        }
        switch message.qos {
        case .atMostOnce:
            deliver(message)
        case .atLeastOnce:
            deliver(message)
            send(.puback(Ack(packetID: message.packetID)))
        case .exactlyOnce:
            // Deliver once: a redelivery before PUBREL is answered but not delivered again [MQTT-4.3.3-9].
            if session.awaitingRelease.insert(message.packetID).inserted {
                deliver(message)
            }
            send(.pubrec(Ack(packetID: message.packetID)))
        }
    }

    /// Hands an inbound message to the application: the configured handler, else the stream.
    private func deliver(_ message: Publish) {
        if let handler = configuration.messageHandler {
            handler(message)
        } else {
            messages.yield(message)
        }
    }

    private func mismatchedAck(_ packetID: UInt16, _ request: OutboundRequests.Request, _ name: String) {
        _ = requests.remove(packetID)
        request.fail(MQTTClientError.protocolError("\(name) for packet identifier \(packetID), which waits for another acknowledgement"))
        sendWaitingPublishes()
    }

    // MARK: Keep alive

    private func scheduleKeepAlive() {
        guard let interval = keepAliveInterval, let context else { return }
        var deadline = lastSent + interval
        if let pingSentAt { deadline = min(deadline, pingSentAt + interval) }
        keepAliveTask = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
            self.keepAliveFired()
        }
    }

    private func keepAliveFired() {
        guard state == .connected, let interval = keepAliveInterval else { return }
        let now = NIODeadline.now()
        if let pingSentAt, now >= pingSentAt + interval {
            // No PINGRESP within a keep-alive interval: the server or the network is gone.
            closeReason = .timeout
            context?.close(promise: nil)
            return
        }
        if now >= lastSent + interval { sendPingRequest() }
        scheduleKeepAlive()
    }

    private func sendPingRequest() {
        if pingSentAt == nil { pingSentAt = .now() }
        send(.pingreq)
    }

    // MARK: Output

    /// Encodes `packet` into the pending output; writes it now unless a read batch is in progress.
    private func send(_ packet: MQTTPacket, promise: EventLoopPromise<Void>? = nil) {
        guard state != .closed, let context else {
            promise?.fail(unavailableError)
            return
        }
        configuration.packetObserver?(.sent, packet)
        var buffer = pendingOutput ?? context.channel.allocator.buffer(capacity: 128)
        pendingOutput = nil
        encoder.encode(packet, into: &buffer)
        pendingOutput = buffer
        if let promise { pendingWritePromises.append(promise) }
        if !isReading && !isBatching { flushOutput() }
    }

    private func flushOutput() {
        guard let context, let buffer = pendingOutput else { return }
        pendingOutput = nil
        lastSent = .now()
        let promises = pendingWritePromises
        pendingWritePromises = []
        switch promises.count {
        case 0:
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        case 1:
            context.writeAndFlush(wrapOutboundOut(buffer), promise: promises[0])
        default:
            let written = context.eventLoop.makePromise(of: Void.self)
            written.futureResult.whenComplete { result in
                for promise in promises { promise.completeWith(result) }
            }
            context.writeAndFlush(wrapOutboundOut(buffer), promise: written)
        }
    }

    // MARK: Closing

    /// Closes the connection because the server broke the protocol; MQTT 5 servers are told why
    /// with DISCONNECT first.
    private func failConnection(_ reasonCode: ReasonCode, _ message: String) {
        guard state != .closed, let context else { return }
        if closeReason == nil { closeReason = .protocolError(message) }
        if configuration.version == .v5 && state == .connected {
            send(.disconnect(Disconnect(reasonCode: reasonCode)))
            flushOutput()
        }
        state = .disconnecting
        context.close(promise: nil)
    }

    /// Fails everything outstanding and reports the end of the connection, once.
    private func tearDown() {
        guard state != .closed else { return }
        state = .closed
        connectTimeoutTask?.cancel()
        keepAliveTask?.cancel()
        let error = closeReason ?? .closed(serverDisconnect)
        connAckPromise.fail(error)
        requests.failAll(error)
        let waiters = pingWaiters
        pingWaiters = []
        for waiter in waiters {
            waiter.timeout?.cancel()
            waiter.promise.fail(error)
        }
        for promise in pendingWritePromises { promise.fail(error) }
        pendingWritePromises = []
        pendingOutput = nil
        messages.finish()
        events.ended(session, serverDisconnect)
    }
}
