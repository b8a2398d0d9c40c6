import Logging
import MQTTCodec
import NIOCore
import RoostCore

extension Connection {
    /// Dispatches one decoded packet.
    func handle(_ packet: MQTTPacket) {
        if phase == .awaitingConnect {
            guard case .connect(let connect) = packet else {
                logDebug("first packet is not CONNECT [MQTT-3.1.0-1]", metadata: ["packet": "\(packet.type)"])
                close()
                return
            }
            handleConnect(connect)
            return
        }
        if phase == .authenticating {
            switch packet {
            case .auth(let auth): handleAuth(auth)
            case .disconnect:
                logDebug("DISCONNECT during authentication")
                close()
            default:
                pendingAuthentication = nil
                refuse(.protocolError, .notAuthorized, "\(packet.type) before the authentication exchange finished")
            }
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
        case .auth(let auth):
            handleAuth(auth)
        case .connack, .suback, .unsuback, .pingresp:
            disconnect(.protocolError, reasonString: "\(packet.type) may only be sent by a server")
        }
    }

    /// Refuses a CONNECT with the right code for the version and closes.
    func refuse(_ v5Code: ReasonCode, _ v3Code: ConnectReturnCode, _ reason: String) {
        logger.info(
            "connection refused",
            metadata: ["mqtt.client_id": "\(clientID)", "reason": "\(reason)", "remote": "\(remoteAddressText ?? "?")", "listener": "\(listener.name)"])
        if version == .v5 {
            var properties = Properties()
            properties.reasonString = reason
            var connack = ConnAck(reasonCode: v5Code, properties: properties)
            if encoder.size(of: .connack(connack)) > clientMaximumPacketSize { connack.properties.reasonString = nil }
            send(.connack(connack))
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
            if settings.topicAliasOut, let maximum = properties.topicAliasMaximum, maximum > 0 {
                let aliases = TopicAliases()
                aliases.outboundMaximum = Int(maximum)
                self.aliases = aliases
            }
            requestProblemInformation = properties.requestProblemInformation != 0
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
        beginAuthentication(connect, assignedID: assignedID)
    }

    /// The rest of CONNECT once the client is authenticated as `username`: will checks,
    /// keepalive, expiry, CONNACK properties (with the enhanced-authentication method and data,
    /// if any) and the session.
    func completeConnect(_ connect: Connect, assignedID: String?, username: String?, authentication: (method: String, data: [UInt8]?)?) {
        let settings = broker.settings
        let properties = connect.properties
        identity = ClientIdentity(clientID: clientID, username: username)
        logDebug(
            "client connected",
            metadata: ["remote": "\(remoteAddressText ?? "?")", "listener": "\(listener.name)", "username": "\(username ?? "")"])
        if let will = connect.will {
            if !mayPublish(will.topic) {
                broker.stats.publishDenied.add(1, ordering: .relaxed)
                refuse(.notAuthorized, .notAuthorized, "not authorized to publish the will topic")
                return
            }
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
        if var kept = will {
            // Own the bytes: the will may outlive this read buffer by days.
            kept.payload = ByteBuffer.owned(kept.payload)
            if let correlation = kept.properties.correlationData { kept.properties.correlationData = ByteBuffer.owned(correlation) }
            will = kept
        }
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
            if let authentication {
                ackProperties.authenticationMethod = authentication.method
                ackProperties.authenticationData = authentication.data.map { ByteBuffer(bytes: $0) }
            }
            if properties.requestResponseInformation == 1 && !settings.responseInformationPrefix.isEmpty
                && settings.responseInformationPrefix.utf8.count + clientID.utf8.count <= 65_535
            {
                ackProperties.responseInformation = settings.responseInformationPrefix + clientID
            }
        }
        let receiveMaximum = min(Int(properties.receiveMaximum ?? 65_535), settings.receiveMaximum)
        attachSession(cleanStart: connect.cleanStart, receiveMaximum: receiveMaximum, ackProperties: ackProperties)
    }

    /// Finds or creates the session and claims it (under the sessions lock, so a concurrent
    /// session end either happens first or not at all); takes it over from the connection that
    /// owns it first if needed.
    private func attachSession(cleanStart: Bool, receiveMaximum: Int, ackProperties: Properties) {
        let claimed = broker.sessions.withLock { sessions -> (Session, Connection?, Bool, UInt64) in
            if let session = sessions[clientID] {
                let (previous, claim) = session.locked.withLock { inner -> (Connection?, UInt64) in
                    inner.latestClaim &+= 1
                    inner.generation &+= 1
                    inner.cancelTimers()
                    return (inner.owner, inner.latestClaim)
                }
                return (session, previous, true, claim)
            }
            let session = Session(
                id: broker.makeSessionID(), clientID: clientID, state: broker.makeSessionState(receiveMaximum: receiveMaximum))
            let claim = session.locked.withLock { inner -> UInt64 in
                inner.latestClaim = 1
                return 1
            }
            sessions[clientID] = session
            return (session, nil, false, claim)
        }
        let (session, previousOwner, existed, claim) = claimed
        let finish = { [self] in
            self.finishAttach(
                session, claim: claim, existed: existed, cleanStart: cleanStart, receiveMaximum: receiveMaximum,
                ackProperties: ackProperties)
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

    private func finishAttach(
        _ session: Session, claim: UInt64, existed: Bool, cleanStart: Bool, receiveMaximum: Int, ackProperties: Properties
    ) {
        guard phase == .attaching else {
            // This connection died while attaching: unless a newer CONNECT claimed the session,
            // it is offline now and must end or expire like any other.
            let offline = session.locked.withLock { inner -> (UInt32, UInt64)? in
                guard inner.owner == nil, inner.latestClaim == claim else { return nil }
                inner.generation &+= 1
                return (inner.expiryInterval, inner.generation)
            }
            if let (expiry, generation) = offline {
                broker.scheduleEnd(session, expiry: expiry, generation: generation, on: eventLoop)
            }
            return
        }
        var present = false
        let accessControlled = broker.authorizer != nil || clientAuthorizer != nil || broker.clientAuthorizersInUse.load(ordering: .relaxed)
        var staleRecords: [SubscriptionRecord] = []
        var willToSend: Message?
        var stored = false
        let store = broker.store
        let will = self.will
        let taken = session.locked.withLock { inner -> Bool in
            guard inner.latestClaim == claim, inner.owner == nil || inner.owner === self else { return false }
            inner.owner = self
            // Another user resuming this client id's session does not get what was queued for
            // the previous one (it was authorized for them): it starts clean.
            let otherUser = inner.identity.map { $0.username != identity.username } ?? false
            // Routes cached by publishers were checked against the previous identity (or none,
            // for a session restored from the store): resolve them again.
            if accessControlled && (inner.identity != identity || otherUser || inner.clientAuthorizer != nil || clientAuthorizer != nil) {
                broker.router.version.add(1, ordering: .releasing)
            }
            inner.identity = identity
            inner.clientAuthorizer = clientAuthorizer
            self.attachClaim = claim
            inner.generation &+= 1
            inner.drainScheduled = false
            if otherUser { logger.info("session of another user resumed: started clean", metadata: ["mqtt.client_id": "\(clientID)"]) }
            // A session whose expiry was 0 ended with its connection: never reuse it [MQTT-3.1.2-6].
            let reset = cleanStart || inner.expiryInterval == 0 || otherUser
            present = existed && !reset
            if reset {
                if let pending = inner.pendingWill {
                    willToSend = broker.willMessage(pending, publisherID: inner.pendingWillPublisher)
                }
                staleRecords = Array(inner.subscriptions.values)
                inner.subscriptions.removeAll()
                inner.state.reset()
            }
            inner.pendingWill = nil
            inner.expiryInterval = sessionExpiry
            inner.state.receiveMaximum = receiveMaximum
            if present { inner.state.fitInflight(to: receiveMaximum) }
            if let store {
                // A stored session resumed with expiry 0 stays stored while this connection
                // lives (its backlog may be on disk); it is deleted when the session ends.
                if sessionExpiry > 0 || (inner.persisted && !reset) {
                    if reset && inner.persisted { store.submit(.clearSession(id: session.id)) }
                    store.submit(.putSession(session.record(inner, will: will, online: true)))
                    inner.persisted = true
                    stored = true
                } else if inner.persisted {
                    store.submit(.deleteSession(id: session.id))
                    inner.persisted = false
                    stored = true
                }
            }
            return true
        }
        guard taken else {
            // A newer CONNECT for this client id claimed the session meanwhile: it wins.
            logger.info("connection superseded by a newer CONNECT with the same client id")
            close()
            return
        }
        if !staleRecords.isEmpty {
            for record in staleRecords {
                broker.router.unsubscribe(filter: record.filter, group: record.group ?? "", sessionID: session.id)
            }
            // Publishers may have matched the old routes until they were removed: a new session
            // starts empty, so drop what they queued meanwhile (nothing has been sent yet).
            session.locked.withLock { inner in
                inner.state.reset()
                if inner.persisted { store?.submit(.clearSession(id: session.id)) }
            }
        }
        if let willToSend { broker.publishInternally(willToSend) }
        self.session = session
        phase = .connected
        broker.stats.clientsConnected.add(1, ordering: .relaxed)
        broker.stats.clientsTotalConnects.add(1, ordering: .relaxed)
        // CONNACK (session present above all) waits until the store has the session.
        if stored { holdOutput() }
        // MQTT 3.1 has no session-present flag: that bit is reserved.
        send(.connack(ConnAck(sessionPresent: present && version != .v3_1, reasonCode: .success, properties: ackProperties)))
        logDebug("client connected", metadata: ["mqtt.version": "\(version)", "session_present": "\(present)"])
        startKeepAlive()
        if present { resendInflight(session) }
        drain()
        processInbound()
        flushOutput()
        // Packets handled here did not come through channelRead: wake their subscribers now.
        wakeTargets()
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
        // Only reason 0x00 discards the will [MQTT-3.14.4-3]; 0x04 and every error code keep it.
        let ending: Ending = packet.reasonCode == .normalDisconnection ? .normal : .normalWithWill
        flushOutput()
        phase = .closed
        connectionEnded(ending)
        context?.close(promise: nil)
    }

    /// Server shutdown: publishes this connection's will now (delay or not) and forgets it.
    func publishWillForShutdown() {
        guard phase == .connected, let will, let session else { return }
        self.will = nil
        broker.publishInternally(broker.willMessage(will, publisherID: session.id))
    }

    /// Detaches the session: will, then session end or expiry. Runs once.
    func connectionEnded(_ ending: Ending) {
        guard !detached, let session else { return }
        detached = true
        broker.stats.clientsConnected.add(-1, ordering: .relaxed)
        let offlineSince = broker.wallClock()
        let attachClaim = self.attachClaim
        let detachedInfo = session.locked.withLock { inner -> (UInt32, UInt64, Bool)? in
            guard inner.owner === self else { return nil }
            inner.owner = nil
            inner.drainScheduled = false
            inner.generation &+= 1
            inner.offlineSince = offlineSince
            // A newer CONNECT claimed the session and is on its way to take it over.
            return (inner.expiryInterval, inner.generation, inner.latestClaim != attachClaim)
        }
        guard let (expiry, generation, claimedByOther) = detachedInfo else { return }
        logDebug("client disconnected", metadata: ["ending": "\(ending)"])

        var will: Will? = self.will
        if case .normal = ending { will = nil }
        if case .takeover(let newCleanStart) = ending {
            if let will {
                if willDelay == 0 || newCleanStart || expiry == 0 {
                    broker.publishInternally(broker.willMessage(will, publisherID: session.id))
                } else {
                    // Kept until the new connection resumes the session (then dropped) or the
                    // session ends (then published).
                    session.locked.withLock { inner in
                        inner.pendingWill = will
                        inner.pendingWillPublisher = session.id
                    }
                }
            }
            return
        }
        if let will {
            if willDelay == 0 || expiry == 0 {
                broker.publishInternally(broker.willMessage(will, publisherID: session.id))
            } else {
                session.locked.withLock { inner in
                    inner.pendingWill = will
                    inner.pendingWillPublisher = session.id
                }
                broker.scheduleWill(session, generation: generation, in: .seconds(Int64(min(willDelay, expiry))), on: eventLoop)
            }
        }
        // The claiming connection attaches the session next: it must not end (or be stored as
        // offline) under it.
        if claimedByOther { return }
        if expiry > 0, let store = broker.store {
            // The session lives on offline: the store learns since when, and its pending will.
            let delay = Int64(min(willDelay, expiry))
            session.locked.withLock { inner in
                guard inner.persisted, inner.generation == generation else { return }
                let pending = inner.pendingWill
                store.submit(.putSession(session.record(
                    inner, will: pending, online: false, willDueAt: pending == nil ? nil : offlineSince + delay * 1000)))
            }
        }
        broker.scheduleEnd(session, expiry: expiry, generation: generation, on: eventLoop)
    }
}
