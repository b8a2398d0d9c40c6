import Logging
import NIOSSL
import MQTTCodec
import NIOCore
import RoostCore

/// One client connection: decodes in place, runs the protocol, and writes through one
/// coalescing output buffer flushed once per read batch or drain.
///
/// Concurrency: everything here runs on the channel's event loop, except ``eventLoop`` and
/// ``drain()`` scheduling, which other loops use to wake the connection (`Broker.wakeAll`).
final class Connection: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Phase {
        case awaitingConnect
        /// CONNECT received; authentication is in progress (a back-off delay, or an AUTH
        /// exchange: only then are packets read, and only AUTH and DISCONNECT are allowed).
        case authenticating
        /// CONNECT received; the session is being attached (takeover may be in progress).
        case attaching
        case connected
        case closed
    }

    /// How a connection ended, for the will and the session.
    enum Ending {
        case normal
        case normalWithWill
        case abnormal
        case takeover(newCleanStart: Bool)
    }

    let broker: Broker
    /// The listener this connection came in on (shared by all its connections).
    let listener: ListenerContext
    let eventLoop: EventLoop
    /// The logger with this connection's client id; built only when something is logged (from
    /// the broker's: a stored copy would cost every idle connection its size, 56 bytes).
    var logger: Logger {
        var logger = broker.logger
        if !clientID.isEmpty { logger[metadataKey: "mqtt.client_id"] = .string(clientID) }
        return logger
    }

    /// Logs at debug level through ``logger``, which is built only if debug is on: building it
    /// (a metadata copy) on every CONNECT cost about 4 % of the connect path.
    func logDebug(_ message: @autoclosure () -> Logger.Message, metadata: @autoclosure () -> Logger.Metadata? = nil) {
        guard broker.logger.logLevel <= .debug else { return }
        logger.debug(message(), metadata: metadata())
    }

    var context: ChannelHandlerContext?

    var decoder: MQTTDecoder
    var encoder = MQTTEncoder(version: .v3_1_1)
    private var inbound: ByteBuffer?
    var output: ByteBuffer?

    var session: Session?
    /// The client id (assigned one included); kept in `identity` only, not twice.
    var clientID: String {
        get { identity.clientID }
        set { identity.clientID = newValue }
    }
    var identity = ClientIdentity(clientID: "", username: nil)
    /// The will of this connection. Boxed: a `Will` is a few hundred bytes, and most connections
    /// have none, so an inline optional would cost every idle connection that much.
    var will: Will? {
        get { willBox?.value }
        set { willBox = newValue.map(Box.init) }
    }
    private var willBox: Box<Will>?
    /// What few connections have (MQTT 5 topic aliases, a publish-rate bucket, authentication in
    /// progress, a client certificate or PROXY header, a token's authorizer), in one box made on
    /// first use: six optionals inline cost every idle connection 64 bytes.
    private var rare: Rare?
    private final class Rare {
        var aliases: TopicAliases?
        var publishBucket: PublishBucket?
        var pendingAuthentication: Box<PendingAuthentication>?
        var clientAuthorizer: Box<any Authorizer>?
        var peerCertificateIdentity: String?
        var proxiedPeer: ProxiedPeer?
    }
    private func ensureRare() -> Rare {
        if let rare { return rare }
        let made = Rare()
        rare = made
        return made
    }
    var willDelay: UInt32 = 0
    var sessionExpiry: UInt32 = 0
    var keepAlive: Int64 = 0
    var lastActivity = NIODeadline.uptimeNanoseconds(0)
    /// This loop's state (timing wheel for connect timeout and keepalive, its connections) and
    /// this connection's place in the wheel.
    let loopState: LoopState
    var timerSlot: Int32 = -1
    var timerIndex: Int32 = 0
    /// Index in `loopState.members` while registered, else -1.
    var memberIndex: Int32 = -1
    /// When deliveries were last written (``LoopState/mayFlushDeliveries``; fills padding).
    var lastFlushMillis: UInt32 = 0
    var timerDeadline = NIODeadline.uptimeNanoseconds(0)
    /// Largest packet the client accepts (MQTT 5 Maximum Packet Size); larger messages are not sent.
    var clientMaximumPacketSize = Int.max
    /// MQTT 5 topic aliases, made when a client first uses them (most never do).
    var aliases: TopicAliases? {
        get { rare?.aliases }
        set { if newValue != nil || rare != nil { ensureRare().aliases = newValue } }
    }
    final class TopicAliases {
        /// Aliases the client set for its PUBLISH packets.
        var inbound: [UInt16: String] = [:]
        /// Outbound topic aliases (`topic_alias_out`): topic -> alias, at most `outboundMaximum`.
        var outbound: [String: UInt16] = [:]
        var outboundMaximum = 0
    }
    var outboundAliasMaximum: Int { aliases?.outboundMaximum ?? 0 }
    /// The claim (`Session.Locked.latestClaim`) under which this connection attached.
    var attachClaim: UInt64 = 0

    /// The publisher's route cache: last topic, the routing-table version it was resolved at, the matches.
    /// Made on the first PUBLISH (subscribers and idle clients never need it).
    var routeCache: RouteCache?
    final class RouteCache {
        var topic: String
        var version: UInt64
        var matches: [Router.Match]
        init(topic: String, version: UInt64, matches: [Router.Match]) {
            self.topic = topic
            self.version = version
            self.matches = matches
        }
    }
    var cachedTopic: String? { routeCache?.topic }
    /// Connections (on any loop) that got messages during this read batch.
    var toWake: [Connection] = []
    /// Output that may only go out once the durable store has committed what came before it
    /// (acks that promise durability, and everything after them, in order): each segment waits
    /// for its ticket. Always empty without a store or for sessions that are not stored.
    var held: [(ticket: UInt64, bytes: ByteBuffer)] = []
    /// `max_publish_rate`: made on the first PUBLISH when the limit is on.
    var publishBucket: PublishBucket? {
        get { rare?.publishBucket }
        set { if newValue != nil || rare != nil { ensureRare().publishBucket = newValue } }
    }
    /// Boxed: 33 bytes that only connections under `max_publish_rate` use.
    final class PublishBucket {
        var bucket: TokenBucket
        init(_ bucket: TokenBucket) { self.bucket = bucket }
    }
    /// Above this many changes waiting for the disk, connections that add unpaced writes pause.
    static let storeBacklogLimit = 50_000
    /// While this much output is held for the store, drain moves nothing more out of the
    /// session's queue (where its bounds apply), as if the socket were not writable.
    static let heldOutputLimit = 64 * 1024
    /// Output kept back by `delivery_flush_interval` is written at once from this size on.
    static let coalescedOutputLimit = 64 * 1024
    private var drainBatch: [(packetID: UInt16, delivery: QueuedDelivery)] = []

    /// The CONNECT waiting for authentication (see `Connection+Authenticate.swift`).
    var pendingAuthentication: Box<PendingAuthentication>? {
        get { rare?.pendingAuthentication }
        set { if newValue != nil || rare != nil { ensureRare().pendingAuthentication = newValue } }
    }
    /// Access control that came with this client's credentials (a token's claims), checked in
    /// addition to the broker's authorizer. Boxed: almost every connection has none.
    var clientAuthorizer: Box<any Authorizer>? {
        get { rare?.clientAuthorizer }
        set { if newValue != nil || rare != nil { ensureRare().clientAuthorizer = newValue } }
    }
    /// An AUTH exchange waits for the client's next AUTH packet.
    var awaitingAuth: Bool { pendingAuthentication?.value.exchange != nil }
    /// The verified client certificate's subject CN (TLS listeners with a client certificate).
    var peerCertificateIdentity: String? {
        get { rare?.peerCertificateIdentity }
        set { if newValue != nil || rare != nil { ensureRare().peerCertificateIdentity = newValue } }
    }

    /// The client's address from a PROXY protocol header, on `proxy_protocol` listeners.
    var proxiedPeer: ProxiedPeer? {
        get { rare?.proxiedPeer }
        set { if newValue != nil || rare != nil { ensureRare().proxiedPeer = newValue } }
    }

    // Small fields together (Swift lays stored properties out in declaration order, so a
    // Bool between two 8-byte fields costs 8 bytes in every connection).
    var phase = Phase.awaitingConnect
    var version: ProtocolVersion = .v3_1_1
    /// Set when this batch's output carried message traffic (deliveries, publish acks): the
    /// buffer is then kept for the next batch. Output of control packets only (CONNACK, SUBACK,
    /// PINGRESP) gives it back, so an idle connection holds none.
    var outputHot = false
    /// Waiting in ``LoopState``'s coalesced flush list.
    var flushPending = false
    /// The output holds a packet that must not wait for a coalesced flush (set by `send`).
    var outputUrgent = false
    var requestProblemInformation = true
    var detached = false
    /// Acknowledgements freed in-flight slots during this read batch: drain once at its end.
    var drainAfterRead = false
    /// True once the last held segment has asked the store for its release; later holds start
    /// a new segment then.
    var lastSegmentWaiting = false
    /// This read batch wrote to the store without anything that waits for it (QoS 0 retained).
    var unpacedStoreWrites = false
    /// Reading is paused until the store's backlog is written.
    var pausedForStore = false
    /// Reading (and handling what was read) is paused until the publish-rate bucket refills.
    var pausedForRate = false
    /// Set once the connection is in the broker's table (see `activate`).
    private var registered = false
    /// This connection releases its socket's admission count (`Broker.admit`) when removed.
    var holdsAdmission = false

    /// The peer's address (the PROXY header's client address where there is one), for logs,
    /// authentication and the login back-off.
    var remoteAddress: SocketAddress? { proxiedPeer?.address ?? context?.channel.remoteAddress }

    var remoteAddressText: String? { remoteAddress?.logText }

    init(broker: Broker, eventLoop: EventLoop, listener: ListenerContext = .default) {
        self.broker = broker
        self.listener = listener
        self.eventLoop = eventLoop
        self.loopState = broker.loopState(for: eventLoop)
        // Never written: as if long ago, so the first deliveries go out at once.
        self.lastFlushMillis = loopState.nowMillis &- 0x8000_0000
        self.decoder = MQTTDecoder(version: .v3_1_1, maximumPacketSize: broker.settings.maxPacketSize)
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        // Behind a WebSocket upgrade the channel is active before this handler exists.
        if context.channel.isActive { activate(context: context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        if holdsAdmission {
            holdsAdmission = false
            broker.release(listener)
        }
    }

    func channelActive(context: ChannelHandlerContext) {
        activate(context: context)
        context.fireChannelActive()
    }

    /// The socket is open and admitted (limits are checked when it is accepted, in
    /// `Server.configurePipeline`): register it and start the CONNECT timer.
    private func activate(context: ChannelHandlerContext) {
        guard !registered else { return }
        registered = true
        broker.register(self)
        restartConnectTimeout()
    }

    func channelInactive(context: ChannelHandlerContext) {
        loopState.remove(self)
        if registered { broker.unregister(self) }
        let wasConnected = phase == .connected || phase == .attaching
        phase = .closed
        if wasConnected { connectionEnded(.abnormal) }
        wakeTargets()
        self.context = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        broker.stats.bytesReceived.add(buffer.readableBytes, ordering: .relaxed)
        if keepAlive > 0 { lastActivity = eventLoop.now }
        if inbound == nil || inbound!.readableBytes == 0 {
            inbound = buffer
        } else {
            inbound!.writeBuffer(&buffer)
        }
        // While a CONNECT waits for its authentication nothing is decoded, so the decoder's
        // packet size limit does not apply yet: bound what a read already in flight may add.
        if phase == .authenticating && !awaitingAuth, let held = inbound?.readableBytes, held > broker.settings.maxPacketSize + 5 {
            broker.stats.limitPacketSize.add(1, ordering: .relaxed)
            logDebug("closing: too much sent before the authentication finished")
            close()
            return
        }
        processInbound()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if drainAfterRead {
            drainAfterRead = false
            drain()
        }
        // Deliveries first (same-loop subscribers are drained and written inline), then this
        // connection's own output (its acks): subscribers get their messages one write sooner.
        wakeTargets()
        flushOutput()
        if unpacedStoreWrites {
            unpacedStoreWrites = false
            pauseIfStoreBacklogged(context)
        }
    }

    /// Back-pressure from the disk: a client whose writes nothing acknowledges (QoS 0 retained)
    /// is not read while more than `storeBacklogLimit` changes wait, so the backlog in memory
    /// stays bounded whatever the disk's speed.
    private func pauseIfStoreBacklogged(_ context: ChannelHandlerContext) {
        guard let store = broker.store, !pausedForStore, store.backlog > Self.storeBacklogLimit else { return }
        pausedForStore = true
        context.channel.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in }
        let loop = eventLoop
        store.whenDurable(store.lastTicket) { [weak self] in
            loop.execute {
                guard let self, self.pausedForStore else { return }
                self.pausedForStore = false
                self.updateReading()
            }
        }
    }

    /// Wakes the connections that got messages from this one. Must run before this connection
    /// goes away too: a PUBLISH followed by DISCONNECT in one read gets no channelReadComplete.
    func wakeTargets() {
        guard !toWake.isEmpty else { return }
        // Swapped with the loop's spare list rather than copied: a copy followed by
        // `removeAll(keepingCapacity:)` on the shared storage allocated a new array per batch.
        var targets = loopState.takeSpareList()
        swap(&targets, &toWake)
        Broker.wakeAll(targets)
        targets.removeAll(keepingCapacity: targets.capacity <= 4096)
        loopState.returnSpareList(targets)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        // Read back-pressure: a client that does not read what we send (acks included) is not
        // read from either, until its socket drains.
        let writable = context.channel.isWritable
        updateReading()
        // Not inline: this event can fire inside our own flush.
        if writable { eventLoop.execute { self.drain() } }
        context.fireChannelWritabilityChanged()
    }

    /// Reads from the socket only while nothing holds it back: a full socket towards the client,
    /// the store's backlog, or the client's publish rate.
    func updateReading() {
        guard let channel = context?.channel else { return }
        let waitingForAuthentication = phase == .authenticating && !awaitingAuth
        let read = channel.isWritable && !pausedForStore && !pausedForRate && !waitingForAuthentication
        channel.setOption(ChannelOptions.autoRead, value: read).whenFailure { _ in }
    }

    /// May this client publish to `topic`: not `$SYS`, and every authorizer that applies agrees.
    func mayPublish(_ topic: String) -> Bool {
        if topic.hasPrefix("$SYS") { return false }
        if let authorizer = broker.authorizer, !authorizer.mayPublish(identity, topic: topic) { return false }
        if let own = clientAuthorizer?.value, !own.mayPublish(identity, topic: topic) { return false }
        return true
    }

    /// What this client may receive through `filter`: the stricter of the broker's authorizer
    /// and its own.
    func subscriptionAccess(_ filter: String) -> SubscriptionAccess {
        var access = SubscriptionAccess.granted
        for authorizer in [broker.authorizer, clientAuthorizer?.value] {
            guard let authorizer else { continue }
            switch authorizer.subscriptionAccess(identity, filter: filter) {
            case .denied: return .denied
            case .filtered: access = .filtered
            case .granted: break
            }
        }
        return access
    }

    /// May this client receive a message on `topic`?
    func mayRead(_ topic: String) -> Bool {
        if let authorizer = broker.authorizer, !authorizer.mayRead(identity, topic: topic) { return false }
        if let own = clientAuthorizer?.value, !own.mayRead(identity, topic: topic) { return false }
        return true
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if error is NIOSSLError || error is BoringSSLError {
            broker.stats.tlsHandshakeFailures.add(1, ordering: .relaxed)
            logger.info("TLS error", metadata: ["remote": "\(remoteAddressText ?? "?")", "listener": "\(listener.name)", "error": "\(error)"])
        } else {
            logDebug("connection error", metadata: ["error": "\(error)"])
        }
        close()
    }

    /// Decodes and handles every complete packet in the cumulation buffer. Stops while a
    /// CONNECT is being attached; the rest waits in the buffer.
    func processInbound() {
        guard var buffer = inbound else { return }
        inbound = nil
        defer {
            if phase == .closed { wakeTargets() }
            if phase != .closed && buffer.readableBytes > 0 {
                buffer.discardReadBytes()
                inbound = buffer
            }
        }
        while (phase == .awaitingConnect || phase == .connected || (phase == .authenticating && awaitingAuth)) && !pausedForRate {
            let packet: MQTTPacket?
            do {
                packet = try decoder.decode(from: &buffer, knownTopic: cachedTopic)
            } catch {
                decodeFailed(error)
                return
            }
            guard let packet else { return }
            handle(packet)
        }
    }

    // MARK: Output

    /// Appends an encoded packet to the output buffer (flushed at the end of the batch), or to
    /// the held output while there is some.
    func send(_ packet: MQTTPacket) {
        if !held.isEmpty {
            encoder.encode(packet, into: &held[held.count - 1].bytes)
            return
        }
        outputUrgent = true
        if output == nil { output = context?.channel.allocator.buffer(capacity: 256) }
        encoder.encode(packet, into: &output!)
    }

    /// From here on, output waits until every change submitted to the store so far is durable.
    func holdOutput() {
        guard let store = broker.store else { return }
        let ticket = store.lastTicket
        if let last = held.last, !lastSegmentWaiting {
            // Not yet waited for (same batch): one segment, waiting for the later ticket.
            held[held.count - 1].ticket = max(last.ticket, ticket)
        } else {
            held.append((ticket, context?.channel.allocator.buffer(capacity: 64) ?? ByteBuffer()))
            lastSegmentWaiting = false
        }
    }

    /// Asks the store to call back when the last held segment is durable (once per segment).
    private func requestRelease() {
        guard let store = broker.store, let last = held.last, !lastSegmentWaiting else { return }
        let ticket = last.ticket
        lastSegmentWaiting = true
        let loop = eventLoop
        store.whenDurable(ticket) { [weak self] in
            loop.execute { self?.releaseHeld(upTo: ticket) }
        }
    }

    /// Moves held output whose changes are now durable to the output and flushes it.
    func releaseHeld(upTo ticket: UInt64) {
        guard context != nil else {
            held.removeAll()
            return
        }
        var released = false
        while let first = held.first, first.ticket <= ticket {
            var bytes = held.removeFirst().bytes
            if output == nil { output = bytes } else { output!.writeBuffer(&bytes) }
            released = true
        }
        if released {
            // Acks among it: out now, not after a coalesced flush's wait.
            flushOutput(now: true)
            // Draining stopped while the held output was large: go on.
            drain()
        }
    }

    /// Writes the output, unless it holds deliveries only and `delivery_flush_interval` makes
    /// them wait (``LoopState/mayFlushDeliveries``): a packet that must not wait (an ack, a
    /// control packet; `outputUrgent`) takes waiting deliveries along, and so does `now`.
    func flushOutput(now: Bool = false) {
        if !held.isEmpty { requestRelease() }
        guard let context, var buffer = output, buffer.readableBytes > 0 else { return }
        let interval = broker.settings.deliveryFlushInterval
        if interval > 0, !now, !outputUrgent, buffer.readableBytes < Self.coalescedOutputLimit,
            !loopState.mayFlushDeliveries(self, interval: UInt32(interval))
        {
            return
        }
        outputUrgent = false
        broker.stats.bytesSent.add(buffer.readableBytes, ordering: .relaxed)
        // Take the bytes out before writing: the write can re-enter this handler (writability,
        // errors), and anything appended meanwhile must not be sent twice.
        output = nil
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        // Keep the buffer for the next batch while messages flow, unless a burst grew it large.
        if outputHot && output == nil && buffer.capacity <= 65_536 {
            buffer.clear()
            output = buffer
        }
        outputHot = false
    }

    /// Sends DISCONNECT (MQTT 5 only) with `reason` and closes. The will is published.
    func disconnect(_ reason: ReasonCode, reasonString: String? = nil) {
        guard phase != .closed else { return }
        if version == .v5 && phase == .connected {
            var properties = Properties()
            if requestProblemInformation, let reasonString { properties.reasonString = reasonString }
            var packet = Disconnect(reasonCode: reason, properties: properties)
            // Never exceed the client's Maximum Packet Size: drop the reason string first [MQTT-3.1.2-24].
            if encoder.size(of: .disconnect(packet)) > clientMaximumPacketSize { packet.properties.reasonString = nil }
            send(.disconnect(packet))
        }
        logDebug("server disconnect", metadata: ["reason": "\(reason)", "detail": "\(reasonString ?? "")"])
        close()
    }

    func close() {
        guard let context, phase != .closed else { return }
        flushOutput(now: true)
        let wasConnected = phase == .connected || phase == .attaching
        phase = .closed
        if wasConnected { connectionEnded(.abnormal) }
        context.close(promise: nil)
    }

    /// The one place that maps decode errors to the wire.
    private func decodeFailed(_ error: DecodeError) {
        if case .packetTooLarge = error {
            broker.stats.limitPacketSize.add(1, ordering: .relaxed)
        } else {
            broker.stats.malformedPackets.add(1, ordering: .relaxed)
        }
        logDebug("malformed packet", metadata: ["error": "\(error)", "mqtt.client_id": "\(clientID)"])
        if phase == .awaitingConnect {
            if case .unsupportedProtocolVersion = error {
                var buffer = context?.channel.allocator.buffer(capacity: 4) ?? ByteBuffer()
                buffer.writeBytes([0x20, 0x02, 0x00, ConnectReturnCode.unacceptableProtocolVersion.rawValue])
                if output == nil { output = buffer } else { output!.writeBuffer(&buffer) }
            }
            close()
            return
        }
        disconnect(error.reasonCode, reasonString: error.description)
    }

    /// Closes the socket if the CONNECT (or the authentication exchange it started) has not
    /// finished within `connect_timeout` from now.
    func restartConnectTimeout(after extra: TimeAmount = .zero) {
        let timeout = TimeAmount.seconds(Int64(broker.settings.connectTimeout)) + extra
        loopState.schedule(self, at: eventLoop.now + timeout)
    }

    func cancelConnectTimeout() {
        loopState.remove(self)
    }

    // MARK: Keepalive

    func startKeepAlive() {
        guard keepAlive > 0 else { return }
        lastActivity = eventLoop.now
        loopState.schedule(self, at: lastActivity + .milliseconds(keepAlive * 1500))
    }

    /// The deadline this connection set in `loopState` has passed: before CONNECT, the connect
    /// timeout; once connected, a keepalive check.
    func timerFired(now: NIODeadline) {
        switch phase {
        case .awaitingConnect, .authenticating:
            broker.stats.limitConnectTimeout.add(1, ordering: .relaxed)
            logger.info(
                "connection closed: no CONNECT (or authentication) within connect_timeout",
                metadata: ["remote": "\(remoteAddressText ?? "?")", "listener": "\(listener.name)"])
            close()
        case .connected:
            guard keepAlive > 0 else { return }
            let limit = TimeAmount.milliseconds(keepAlive * 1500)
            let idle = now - lastActivity
            if idle >= limit {
                logDebug("keepalive timeout", metadata: ["mqtt.client_id": "\(clientID)"])
                disconnect(.keepAliveTimeout)
            } else {
                // An idle connection gives its empty output buffer back; the next write makes one.
                if let output, output.readableBytes == 0 { self.output = nil }
                loopState.schedule(self, at: lastActivity + limit)
            }
        case .attaching, .closed:
            break
        }
    }

    // MARK: Delivery

    /// Replaces the topic by an alias the client already knows, or assigns a new alias while
    /// the client's Topic Alias Maximum allows (MQTT 5: 3.3.2.3.4). Aliases are never reassigned.
    private func applyOutboundAlias(_ publish: Publish) -> Publish {
        var aliased = publish
        guard let aliases else { return publish }
        if let alias = aliases.outbound[publish.topic] {
            aliased.topic = ""
            aliased.properties.topicAlias = alias
        } else if aliases.outbound.count < aliases.outboundMaximum {
            let alias = UInt16(aliases.outbound.count + 1)
            aliases.outbound[publish.topic] = alias
            aliased.properties.topicAlias = alias
        }
        return aliased
    }

    /// Moves queued messages of the session into the output buffer, within the client's
    /// in-flight window and while the channel is writable, then flushes. Runs on this loop.
    func drain() {
        guard phase == .connected, let session, let context else { return }
        let now = broker.now()
        let channel = context.channel
        var more = false
        var mustHold = false
        var pageIn: (fromSeq: UInt64, epoch: UInt64, limit: Int)?
        drainBatch.removeAll(keepingCapacity: true)
        let store = broker.store
        // Output held for the store counts like a full socket: the session's queue bounds it.
        var heldBytes = 0
        for segment in held { heldBytes += segment.bytes.readableBytes }
        let holding = !held.isEmpty
        // Read once: nothing is written during the loop below, so it cannot change (per message
        // it was an atomic load behind two protocol calls, about 2 % of fan-out CPU).
        let writable = channel.isWritable
        session.locked.withLock { inner in
            inner.drainScheduled = false
            guard inner.owner === self else { return }
            let stats = broker.stats
            let sessionID = session.id
            while drainBatch.count < 512, writable, heldBytes < Self.heldOutputLimit,
                let next = inner.state.next(now: now, dropped: { delivery, reason in
                    stats.dropped(reason)
                    if delivery.seq != 0 { store?.submit(.dequeue(sessionID: sessionID, seq: delivery.seq)) }
                })
            {
                if holding { heldBytes += next.delivery.message.size + 8 }
                if next.delivery.seq != 0 {
                    // QoS 2: the client must never see a packet id the store would not resend.
                    store?.submit(.sent(sessionID: sessionID, seq: next.delivery.seq, packetID: next.packetID))
                    if next.delivery.qos == .exactlyOnce { mustHold = true }
                }
                drainBatch.append(next)
            }
            more = drainBatch.count == 512 && inner.state.canSendNext
            if more { inner.drainScheduled = true }
            if inner.persisted, store != nil, inner.state.wantsPageIn {
                inner.state.pageInPending = true
                pageIn = (inner.state.spillFromSeq, inner.state.spillEpoch, max(inner.state.memoryQueueLimit, 1))
            }
        }
        if mustHold { holdOutput() }
        if let (fromSeq, epoch, limit) = pageIn, let store {
            requestPage(session, store: store, fromSeq: fromSeq, epoch: epoch, limit: limit)
        }
        // The common case (no expiry to count down, no subscription identifiers, no size limit
        // or topic alias from the client): encode the stored message's parts directly.
        let plain = clientMaximumPacketSize == .max && outboundAliasMaximum == 0 && held.isEmpty
        if plain, output == nil, !drainBatch.isEmpty { output = channel.allocator.buffer(capacity: 512) }
        var sent = 0
        for (packetID, delivery) in drainBatch {
            let message = delivery.message
            if plain && message.expiresAt == nil && (version != .v5 || delivery.subscriptionIDs.isEmpty) {
                message.withPayloadBytes { bytes in
                    encoder.encodePublish(
                        topic: message.topic, payloadBytes: bytes, qos: delivery.qos, retain: delivery.retain, dup: false,
                        packetID: packetID, properties: message.properties, into: &output!)
                }
                sent += 1
                continue
            }
            let publish = delivery.message.publish(
                qos: delivery.qos, retain: delivery.retain, packetID: packetID, dup: false,
                subscriptionIDs: version == .v5 ? delivery.subscriptionIDs : [], now: now)
            if clientMaximumPacketSize != .max && encoder.size(of: publish) > clientMaximumPacketSize {
                // Not sent, and treated as delivered [MQTT-3.1.2-25].
                broker.stats.dropped(.tooLargeForClient)
                if packetID != 0 {
                    session.locked.withLock { inner in
                        let seq: UInt64?
                        if delivery.qos == .atLeastOnce {
                            seq = inner.state.acknowledge(packetID: packetID)
                        } else {
                            seq = inner.state.received(packetID: packetID, failed: true)
                        }
                        if let seq, seq != 0 { store?.submit(.dequeue(sessionID: session.id, seq: seq)) }
                    }
                    more = true
                }
                continue
            }
            let packet = outboundAliasMaximum > 0 ? applyOutboundAlias(publish) : publish
            if held.isEmpty {
                if output == nil { output = channel.allocator.buffer(capacity: 512) }
                encoder.encode(packet, into: &output!)
            } else {
                encoder.encode(packet, into: &held[held.count - 1].bytes)
            }
            sent += 1
        }
        if sent > 0 { broker.stats.publishSent.add(sent, ordering: .relaxed) }
        if !drainBatch.isEmpty { outputHot = true }
        drainBatch.removeAll(keepingCapacity: true)
        flushOutput()
        if more { eventLoop.execute { self.drain() } }
    }
}

extension Connection {
    /// Reads the next page of the session's queue back from the store (off the event loop),
    /// appends it in memory and drains.
    func requestPage(_ session: Session, store: any DurableStore, fromSeq: UInt64, epoch: UInt64, limit: Int) {
        store.readQueue(sessionID: session.id, fromSeq: fromSeq, limit: limit) { page in
            // The session may have a new owner by now (takeover, reconnect): wake that one.
            let owner = session.locked.withLock { inner -> Connection? in
                guard let page else {
                    inner.state.pageFailed()
                    return nil
                }
                inner.state.pageIn(page, epoch: epoch)
                return inner.claimDrain()
            }
            if let owner { Broker.wakeAll([owner]) }
        }
    }
}

/// An immutable heap box, to keep large, rarely present values out of hot inline storage.
final class Box<Value: Sendable>: Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
