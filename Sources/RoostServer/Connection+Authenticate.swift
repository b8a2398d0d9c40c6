import Logging
import MQTTCodec
import NIOCore
import RoostCore

/// A CONNECT waiting for its authentication: a back-off delay, or an enhanced-authentication
/// exchange (AUTH packets). Boxed on the connection: most connections never have one.
struct PendingAuthentication: Sendable {
    var connect: Connect
    var assignedID: String?
    var method: String?
    var exchange: (any EnhancedAuthExchange)?
    /// The request a deferred authenticator is deciding (kept to fall back to the authenticator).
    var request: AuthenticationRequest?
}

extension Connection {
    /// Authenticates a CONNECT: waits out a back-off if the client's address has failed to log in
    /// recently, then runs the client certificate, enhanced authentication (MQTT 5 Authentication
    /// Method) or the authenticator, and continues with ``completeConnect``.
    func beginAuthentication(_ connect: Connect, assignedID: String?) {
        let delay: TimeAmount
        switch broker.authenticationDelay(for: self.remoteHost) {
        case .none:
            delay = .zero
        case .wait(let wait):
            delay = wait
        case .refuse:
            // The address's queue of delayed logins is full: refused at once (server busy), so
            // one address cannot hold sockets for longer than auth_backoff_max.
            broker.stats.authDelayed.add(1, ordering: .relaxed)
            refuse(.serverBusy, .serverUnavailable, "too many failed logins from this address; try again later")
            return
        }
        if delay > .zero {
            // Not read while it waits: later packets (AUTH included) stay in the socket.
            phase = .authenticating
            pendingAuthentication = Box(PendingAuthentication(connect: connect, assignedID: assignedID))
            updateReading()
            restartConnectTimeout(after: delay)
            broker.stats.authDelayed.add(1, ordering: .relaxed)
            logDebug("login delayed after failures from this address", metadata: ["delay_ms": "\(delay.nanoseconds / 1_000_000)"])
            eventLoop.scheduleTask(in: delay) { [weak self] in
                guard let self, self.phase == .authenticating, let pending = self.pendingAuthentication?.value else { return }
                self.pendingAuthentication = nil
                self.authenticate(pending.connect, assignedID: pending.assignedID)
                self.resumeAfterConnectStep()
            }
            return
        }
        authenticate(connect, assignedID: assignedID)
    }

    /// After a CONNECT step that finished outside a read (a delay, an AUTH answer): handle what
    /// was buffered meanwhile and write.
    func resumeAfterConnectStep() {
        guard phase != .closed else { return }
        updateReading()
        processInbound()
        flushOutput()
        wakeTargets()
    }

    private func authenticate(_ connect: Connect, assignedID: String?) {
        let settings = broker.settings
        if listener.useIdentityAsUsername, peerCertificateIdentity == nil, let channel = context?.channel {
            peerCertificateIdentity = CertificateIdentity.commonName(of: channel)
        }
        let certificateIdentity = listener.useIdentityAsUsername ? peerCertificateIdentity : nil
        if listener.useIdentityAsUsername && certificateIdentity == nil {
            authenticationFailed(.notAuthorized, "no client certificate identity (use_identity_as_username)")
            return
        }
        let request = AuthenticationRequest(
            clientID: clientID, username: connect.username, password: connect.password, peerAddress: remoteAddress,
            listener: listener.name, allowAnonymous: listener.allowAnonymous ?? settings.allowAnonymous,
            certificateIdentity: certificateIdentity)
        // A verified client certificate is the identity: nothing the client says overrides it.
        if certificateIdentity != nil {
            authenticateLocally(connect, assignedID: assignedID, request: request)
            return
        }
        if let method = connect.properties.authenticationMethod {
            guard version == .v5, let authenticator = broker.enhancedAuthenticators[method] else {
                broker.stats.authNotAuthorized.add(1, ordering: .relaxed)
                refuse(.badAuthenticationMethod, .notAuthorized, "authentication method '\(method)' is not supported")
                return
            }
            let data = connect.properties.authenticationData.map { Array($0.readableBytesView) } ?? []
            let step = authenticator.start(method: method, data: data, request: request)
            enhancedStep(step, pending: PendingAuthentication(connect: connect, assignedID: assignedID, method: method))
            return
        }
        if let deferred = broker.deferredAuthenticators.first(where: { $0.claims(request) }) {
            // Decided later: nothing more is read until then.
            phase = .authenticating
            pendingAuthentication = Box(PendingAuthentication(connect: connect, assignedID: assignedID, request: request))
            updateReading()
            restartConnectTimeout()
            let loop = eventLoop
            deferred.authenticate(request) { [weak self] outcome in
                loop.execute { self?.deferredDecided(outcome) }
            }
            return
        }
        authenticateLocally(connect, assignedID: assignedID, request: request)
    }

    /// The ``Authenticator`` decides (password file, anonymous rules), at once.
    private func authenticateLocally(_ connect: Connect, assignedID: String?, request: AuthenticationRequest) {
        switch broker.authenticator.authenticate(request) {
        case .accepted:
            completeConnect(connect, assignedID: assignedID, username: request.certificateIdentity ?? connect.username, authentication: nil)
        case .notAuthorized:
            authenticationFailed(.notAuthorized, "not authorized")
        case .badCredentials:
            authenticationFailed(.badCredentials, "bad user name or password")
        }
    }

    /// A ``DeferredAuthenticator`` answered (on this event loop).
    private func deferredDecided(_ outcome: AuthenticationOutcome) {
        guard phase == .authenticating, let pending = pendingAuthentication?.value, pending.method == nil else { return }
        pendingAuthentication = nil
        if !outcome.decided, let request = pending.request {
            authenticateLocally(pending.connect, assignedID: pending.assignedID, request: request)
            resumeAfterConnectStep()
            return
        }
        switch outcome.result {
        case .accepted:
            if let own = outcome.authorizer {
                clientAuthorizer = Box(own)
                if !broker.clientAuthorizersInUse.exchange(true, ordering: .relaxed) {
                    // Routes cached before any client had its own rules were never checked.
                    broker.router.version.add(1, ordering: .releasing)
                }
            }
            // The credential's user (a token's subject) wins; the authenticator has already
            // refused a different non-empty user name.
            let sent = pending.connect.username.flatMap { $0.isEmpty ? nil : $0 }
            completeConnect(pending.connect, assignedID: pending.assignedID, username: outcome.username ?? sent, authentication: nil)
        case .badCredentials, .notAuthorized:
            authenticationFailed(outcome.result, outcome.reason ?? (outcome.result == .badCredentials ? "bad user name or password" : "not authorized"))
        }
        resumeAfterConnectStep()
    }

    /// Acts on one step of an enhanced-authentication exchange.
    private func enhancedStep(_ step: EnhancedAuthStep, pending: PendingAuthentication) {
        guard let method = pending.method else { return }
        switch step {
        case .continue(let data, let exchange):
            var next = pending
            next.exchange = exchange
            pendingAuthentication = Box(next)
            phase = .authenticating
            var properties = Properties()
            properties.authenticationMethod = method
            properties.authenticationData = ByteBuffer(bytes: data)
            send(.auth(Auth(reasonCode: .continueAuthentication, properties: properties)))
            restartConnectTimeout()
        case .success(let username, let data):
            pendingAuthentication = nil
            completeConnect(pending.connect, assignedID: pending.assignedID, username: username, authentication: (method, data))
        case .failure(let result, let reason):
            pendingAuthentication = nil
            authenticationFailed(result, reason)
        }
    }

    /// An AUTH packet: the client's next step of the exchange in progress; anything else is a
    /// protocol error (re-authentication after CONNACK is not offered).
    func handleAuth(_ auth: Auth) {
        guard phase == .authenticating, let pending = pendingAuthentication?.value, let exchange = pending.exchange else {
            disconnect(.protocolError, reasonString: "AUTH outside an authentication exchange (re-authentication is not supported)")
            return
        }
        guard auth.reasonCode == .continueAuthentication, auth.properties.authenticationMethod == pending.method else {
            pendingAuthentication = nil
            // Before CONNACK (MQTT 5 only reaches here): CONNACK 0x82, close.
            refuse(.protocolError, .notAuthorized, "AUTH must continue (0x18) with the CONNECT's authentication method")
            return
        }
        let data = auth.properties.authenticationData.map { Array($0.readableBytesView) } ?? []
        var waiting = pending
        waiting.exchange = nil
        pendingAuthentication = Box(waiting)
        enhancedStep(exchange.next(data: data), pending: waiting)
    }

    /// Refuses the CONNECT (0x86 / 4 or 0x87 / 5), counts it and remembers the failure for the
    /// address's back-off.
    private func authenticationFailed(_ result: AuthenticationResult, _ reason: String) {
        broker.loginFailed(from: remoteHost)
        switch result {
        case .badCredentials:
            broker.stats.authBadCredentials.add(1, ordering: .relaxed)
            refuse(.badUserNameOrPassword, .badUserNameOrPassword, reason)
        case .notAuthorized, .accepted:
            broker.stats.authNotAuthorized.add(1, ordering: .relaxed)
            refuse(.notAuthorized, .notAuthorized, reason)
        }
    }

    /// The client's IP address without the port (the key of the login back-off).
    var remoteHost: String? {
        remoteAddress?.ipAddress
    }
}
