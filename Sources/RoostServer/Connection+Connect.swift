import Logging
import MQTTCodec
import NIOCore
import RoostCore

extension Connection {
    /// Dispatches one decoded packet.
    func handle(_ packet: MQTTPacket) {
        if phase == .awaitingConnect {
            guard case .connect(let connect) = packet else {
                logger.debug("first packet is not CONNECT [MQTT-3.1.0-1]", metadata: ["packet": "\(packet.type)"])
                close()
                return
            }
            handleConnect(connect)
            return
        }
        switch packet {
        case .connect:
            disconnect(.protocolError, reasonString: "second CONNECT [MQTT-3.1.0-2]")
        case .publish(let publish):
            handlePublish(publish)
        case .puback(let ack):
            handlePubAck(ack)
        case .pubrec(let ack):
            handlePubRec(ack)
        case .pubrel(let ack):
            handlePubRel(ack)
        case .pubcomp(let ack):
            handlePubComp(ack)
        case .subscribe(let subscribe):
            handleSubscribe(subscribe)
        case .unsubscribe(let unsubscribe):
            handleUnsubscribe(unsubscribe)
        case .pingreq:
            send(.pingresp)
        case .disconnect(let packet):
            handleDisconnect(packet)
        case .auth:
            disconnect(.protocolError, reasonString: "AUTH without an authentication method in CONNECT")
        case .connack, .suback, .unsuback, .pingresp:
            disconnect(.protocolError, reasonString: "\(packet.type) may only be sent by a server")
        }
    }

    /// Refuses a CONNECT with the right code for the version and closes.
    private func refuse(_ v5Code: ReasonCode, _ v3Code: ConnectReturnCode, _ reason: String) {
        logger.info("connection refused", metadata: ["mqtt.client_id": "\(clientID)", "reason": "\(reason)"])
        if version == .v5 {
            var properties = Properties()
            properties.reasonString = reason
            send(.connack(ConnAck(reasonCode: v5Code, properties: properties)))
        } else {
            send(.connack(ConnAck(reasonCode: ReasonCode(v3Code.rawValue))))
        }
        close()
    }

    func handleConnect(_ connect: Connect) {
        let settings = broker.settings
        cancelConnectTimeout()
        version = connect.version
        decoder.version = connect.version
        encoder = MQTTEncoder(version: connect.version)
        clientID = connect.clientID
        let properties = connect.properties
        if version == .v5 {
            if let size = properties.maximumPacketSize { clientMaximumPacketSize = Int(size) }
            if settings.topicAliasOut { outboundAliasMaximum = Int(properties.topicAliasMaximum ?? 0) }
            requestProblemInformation = properties.requestProblemInformation != 0
        }
        if properties.authenticationMethod != nil {
            refuse(.badAuthenticationMethod, .notAuthorized, "enhanced authentication is not supported")
            return
        }
        var assignedID: String?
        if clientID.isEmpty {
            if version != .v5 && (!connect.cleanStart || version == .v3_1) {
                refuse(.clientIdentifierNotValid, .identifierRejected, "empty client id needs clean session [MQTT-3.1.3-8]")
                return
            }
            clientID = broker.assignClientID()
            assignedID = clientID
        }
        if clientID.utf8.count > settings.maxClientIDLength {
            refuse(.clientIdentifierNotValid, .identifierRejected, "client id longer than \(settings.maxClientIDLength) bytes")
            return
        }
        logger[metadataKey: "mqtt.client_id"] = "\(clientID)"
        switch broker.authenticator.authenticate(clientID: clientID, username: connect.username, password: connect.password) {
        case .accepted:
            break
        case .notAuthorized:
            refuse(.notAuthorized, .notAuthorized, "not authorized")
            return
        case .badCredentials:
            refuse(.badUserNameOrPassword, .badUserNameOrPassword, "bad user name or password")
            return
        }
        identity = ClientIdentity(clientID: clientID, username: connect.username)
        if let will = connect.will {
            if will.qos.rawValue > settings.maxQoS {
                refuse(.qosNotSupported, .notAuthorized, "will QoS above the maximum QoS \(settings.maxQoS)")
                return
            }
            if will.retain && !settings.retainAvailable {
                refuse(.retainNotSupported, .notAuthorized, "retained wills are not available")
                return
            }
        }
        var serverKeepAlive: UInt16?
        var keepAliveSeconds = Int(connect.keepAlive)
        if settings.maxKeepAlive < 65_535 && (keepAliveSeconds == 0 || keepAliveSeconds > settings.maxKeepAlive) {
            if version == .v5 {
                keepAliveSeconds = settings.maxKeepAlive
                serverKeepAlive = UInt16(settings.maxKeepAlive)
            } else {
                refuse(.clientIdentifierNotValid, .identifierRejected, "keepalive \(keepAliveSeconds) above max_keepalive \(settings.maxKeepAlive)")
                return
            }
        }
        keepAlive = Int64(keepAliveSeconds)
        var grantedExpiry: UInt32
        var requestedExpiry: UInt32
        if version == .v5 {
            requestedExpiry = properties.sessionExpiryInterval ?? 0
        } else {
            requestedExpiry = connect.cleanStart ? 0 : 0xFFFF_FFFF
        }
        grantedExpiry = min(requestedExpiry, settings.maxSessionExpiry)
        sessionExpiry = grantedExpiry
        will = connect.will
        willDelay = connect.will?.properties.willDelayInterval ?? 0

        phase = .attaching
        var ackProperties = Properties()
        if version == .v5 {
            ackProperties.assignedClientIdentifier = assignedID
            ackProperties.serverKeepAlive = serverKeepAlive
            ackProperties.receiveMaximum = UInt16(clamping: settings.receiveMaximum)
            ackProperties.maximumPacketSize = UInt32(clamping: settings.maxPacketSize)
            ackProperties.topicAliasMaximum = settings.maxTopicAlias > 0 ? UInt16(clamping: settings.maxTopicAlias) : nil
            if settings.maxQoS < 2 { ackProperties.maximumQoS = UInt8(settings.maxQoS) }
            if !settings.retainAvailable { ackProperties.retainAvailable = 0 }
            if !settings.wildcardSubscriptionAvailable { ackProperties.wildcardSubscriptionAvailable = 0 }
            if !settings.subscriptionIdentifierAvailable { ackProperties.subscriptionIdentifierAvailable = 0 }
            if !settings.sharedSubscriptionAvailable { ackProperties.sharedSubscriptionAvailable = 0 }
            if grantedExpiry != requestedExpiry { ackProperties.sessionExpiryInterval = grantedExpiry }
            if properties.requestResponseInformation == 1 && !settings.responseInformationPrefix.isEmpty {
                ackProperties.responseInformation = settings.responseInformationPrefix + clientID
            }
        }
        let receiveMaximum = min(Int(properties.receiveMaximum ?? 65_535), settings.receiveMaximum)
        attachSession(cleanStart: connect.cleanStart, receiveMaximum: receiveMaximum, ackProperties: ackProperties)
    }

    /// Finds or creates the session; takes it over from another connection first if needed.
    private func attachSession(cleanStart: Bool, receiveMaximum: Int, ackProperties: Properties) {
        let settings = broker.settings
        let (session, previousOwner, existed) = broker.sessions.withLock { sessions -> (Session, Connection?, Bool) in
            if let session = sessions[clientID] {
                return (session, session.locked.withLock { $0.owner }, true)
            }
            let state = SessionState(
                receiveMaximum: receiveMaximum, maxQueuedMessages: settings.maxQueuedMessages,
                maxQueuedBytes: settings.maxQueuedBytes, queueQoS0WhileOffline: settings.queueQoS0Messages)
            let session = Session(id: broker.makeSessionID(), clientID: clientID, state: state)
            sessions[clientID] = session
            return (session, nil, false)
        }
        let finish = { [self] in
            self.finishAttach(session, existed: existed, cleanStart: cleanStart, receiveMaximum: receiveMaximum, ackProperties: ackProperties)
        }
        guard let previousOwner, previousOwner !== self else {
            finish()
            return
        }
        logger.info("session taken over by a new connection")
        previousOwner.eventLoop.submit {
            previousOwner.takenOver(newCleanStart: cleanStart)
        }.whenComplete { [self] _ in
            self.eventLoop.execute(finish)
        }
    }

    private func finishAttach(_ session: Session, existed: Bool, cleanStart: Bool, receiveMaximum: Int, ackProperties: Properties) {
        guard phase == .attaching else {
            if !existed { broker.endSession(session) }
            return
        }
        var present = existed && !cleanStart
        var staleRecords: [SubscriptionRecord] = []
        var willToSend: Message?
        let taken = session.locked.withLock { inner -> Bool in
            if let owner = inner.owner, owner !== self { return false }
            inner.owner = self
            inner.generation &+= 1
            inner.drainScheduled = false
            inner.expiryInterval = sessionExpiry
            if cleanStart {
                if let pending = inner.pendingWill { willToSend = pending }
                staleRecords = Array(inner.subscriptions.values)
                inner.subscriptions.removeAll()
                inner.state.reset()
            }
            inner.pendingWill = nil
            inner.state.receiveMaximum = receiveMaximum
            return true
        }
        guard taken else {
            // Another connection claimed the session in the meantime: it wins.
            present = false
            disconnect(.sessionTakenOver)
            return
        }
        for record in staleRecords {
            broker.router.unsubscribe(filter: record.filter, group: record.group ?? "", sessionID: session.id)
        }
        if let willToSend { broker.publishInternally(willToSend) }
        self.session = session
        phase = .connected
        broker.stats.clientsConnected.add(1, ordering: .relaxed)
        broker.stats.clientsTotalConnects.add(1, ordering: .relaxed)
        send(.connack(ConnAck(sessionPresent: present, reasonCode: .success, properties: ackProperties)))
        logger.debug("client connected", metadata: ["mqtt.version": "\(version)", "session_present": "\(present)"])
        startKeepAlive()
        if present { resendInflight(session) }
        drain()
        processInbound()
        flushOutput()
    }

    /// Resends unacknowledged messages with DUP, and PUBREL for those past PUBREC [MQTT-4.4.0-1].
    private func resendInflight(_ session: Session) {
        let now = broker.now()
        let inflight = session.locked.withLock { Array($0.state.inflight) }
        for entry in inflight {
            switch entry.stage {
            case .published:
                let delivery = entry.delivery
                let publish = delivery.message.publish(
                    qos: delivery.qos, retain: delivery.retain, packetID: entry.packetID, dup: true,
                    subscriptionIDs: version == .v5 ? delivery.subscriptionIDs : [], now: now)
                send(.publish(publish))
            case .released:
                send(.pubrel(Ack(packetID: entry.packetID)))
            }
        }
    }

    /// Called on this loop when another connection takes the session over.
    func takenOver(newCleanStart: Bool) {
        guard phase == .connected || phase == .attaching else { return }
        if version == .v5 && phase == .connected {
            send(.disconnect(Disconnect(reasonCode: .sessionTakenOver)))
        }
        flushOutput()
        phase = .closed
        connectionEnded(.takeover(newCleanStart: newCleanStart))
        context?.close(promise: nil)
    }

    func handleDisconnect(_ packet: Disconnect) {
        if version == .v5, let expiry = packet.properties.sessionExpiryInterval {
            if sessionExpiry == 0 && expiry != 0 {
                disconnect(.protocolError, reasonString: "session expiry changed from 0 in DISCONNECT [MQTT-3.14.2-2]")
                return
            }
            sessionExpiry = min(expiry, broker.settings.maxSessionExpiry)
            session?.locked.withLock { $0.expiryInterval = sessionExpiry }
        }
        let ending: Ending = packet.reasonCode == .disconnectWithWillMessage ? .normalWithWill : .normal
        flushOutput()
        phase = .closed
        connectionEnded(ending)
        context?.close(promise: nil)
    }

    /// Detaches the session: will, shared-group hand-over, session expiry. Runs once.
    func connectionEnded(_ ending: Ending) {
        guard !detached, let session else { return }
        detached = true
        broker.stats.clientsConnected.add(-1, ordering: .relaxed)
        let detachedInfo = session.locked.withLock { inner -> (UInt32, UInt64)? in
            guard inner.owner === self else { return nil }
            inner.owner = nil
            inner.drainScheduled = false
            inner.generation &+= 1
            return (inner.expiryInterval, inner.generation)
        }
        guard let (expiry, generation) = detachedInfo else { return }
        logger.debug("client disconnected", metadata: ["ending": "\(ending)"])

        var willMessage: Message?
        if let will {
            switch ending {
            case .normal: break
            default: willMessage = makeWillMessage(will, publisherID: session.id)
            }
        }
        if case .takeover(let newCleanStart) = ending {
            if let willMessage, willDelay == 0 || newCleanStart || expiry == 0 {
                broker.publishInternally(willMessage)
            }
            return
        }
        let shared = session.locked.withLock { $0.state.takeSharedDeliveries() }
        broker.redistributeShared(shared, from: session.id)

        if let willMessage {
            if willDelay == 0 || expiry == 0 {
                broker.publishInternally(willMessage)
            } else {
                session.locked.withLock { $0.pendingWill = willMessage }
                let delay = min(willDelay, expiry)
                let broker = self.broker
                eventLoop.scheduleTask(in: .seconds(Int64(delay))) {
                    let due = session.locked.withLock { inner -> Message? in
                        guard inner.generation == generation, let will = inner.pendingWill else { return nil }
                        inner.pendingWill = nil
                        return will
                    }
                    if let due { broker.publishInternally(due) }
                }
            }
        }
        if expiry == 0 {
            broker.endSession(session)
        } else if expiry != 0xFFFF_FFFF {
            let broker = self.broker
            eventLoop.scheduleTask(in: .seconds(Int64(expiry))) {
                let due = session.locked.withLock { inner -> (Bool, Message?) in
                    guard inner.generation == generation, inner.owner == nil else { return (false, nil) }
                    let will = inner.pendingWill
                    inner.pendingWill = nil
                    return (true, will)
                }
                guard due.0 else { return }
                if let will = due.1 { broker.publishInternally(will) }
                broker.endSession(session)
            }
        }
    }

    private func makeWillMessage(_ will: Will, publisherID: Int) -> Message {
        var properties = will.properties
        properties.willDelayInterval = nil
        var expiresAt: UInt64?
        if var interval = properties.messageExpiryInterval {
            let cap = broker.settings.maxMessageExpiry
            if cap > 0 { interval = min(interval, cap) }
            expiresAt = broker.now() + UInt64(interval) * 1000
            properties.messageExpiryInterval = nil
        }
        return Message(
            topic: will.topic, payload: will.payload, qos: will.qos, retain: will.retain, properties: properties,
            expiresAt: expiresAt, publisherID: publisherID)
    }
}
