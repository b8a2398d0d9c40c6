import NIOCore

/// Who a connected client is, as far as authentication established it.
public struct ClientIdentity: Sendable, Equatable {
    public var clientID: String
    public var username: String?

    public init(clientID: String, username: String?) {
        self.clientID = clientID
        self.username = username
    }
}

/// Everything the broker knows about a CONNECT when it asks an ``Authenticator``.
public struct AuthenticationRequest: Sendable {
    public var clientID: String
    public var username: String?
    public var password: ByteBuffer?
    /// The peer's address (after the PROXY protocol, if any).
    public var peerAddress: SocketAddress?
    /// The peer's address as text (`1.2.3.4:5678`), for logs and per-address policies. Made
    /// on demand: most authenticators never ask, and formatting costs on every CONNECT.
    public var remoteAddress: String? { peerAddress?.logText }
    /// The name of the listener the client came in on (`tcp`, `tls`, `ws`, `wss` or its configured name).
    public var listener: String
    /// Whether this listener accepts clients that present no credentials.
    public var allowAnonymous: Bool
    /// The verified client certificate's identity (subject CN), on a TLS listener with
    /// `use_identity_as_username`; when set the broker uses it as the user name and the
    /// password is not checked.
    public var certificateIdentity: String?

    public init(
        clientID: String, username: String?, password: ByteBuffer?, peerAddress: SocketAddress? = nil,
        listener: String = "tcp", allowAnonymous: Bool = true, certificateIdentity: String? = nil
    ) {
        self.clientID = clientID
        self.username = username
        self.password = password
        self.peerAddress = peerAddress
        self.listener = listener
        self.allowAnonymous = allowAnonymous
        self.certificateIdentity = certificateIdentity
    }
}

/// The outcome of authenticating a CONNECT.
public enum AuthenticationResult: Sendable, Equatable {
    case accepted
    /// Refused: MQTT 5 CONNACK 0x86 / 3.x 0x04.
    case badCredentials
    /// Refused: MQTT 5 CONNACK 0x87 / 3.x 0x05.
    case notAuthorized
}

/// Port: decides whether a CONNECT may proceed. Called on the connection's event loop, once per
/// CONNECT; an implementation must not block (a password file is read into memory first).
public protocol Authenticator: Sendable {
    func authenticate(_ request: AuthenticationRequest) -> AuthenticationResult
}

/// What a ``DeferredAuthenticator`` decided.
public struct AuthenticationOutcome: Sendable {
    public var result: AuthenticationResult
    /// The user the credential names (a token's subject), used when the client sent no user
    /// name; nil keeps the client's.
    public var username: String?
    /// Access control that comes with the credential (a token's claims): checked in addition
    /// to the broker's authorizer, for this client only.
    public var authorizer: (any Authorizer)?
    /// Why it was refused, for the log and the MQTT 5 reason string.
    public var reason: String?
    /// False when the authenticator leaves the decision to the ``Authenticator`` (an HTTP
    /// service that answered "ignore"); `result` is then unused.
    public var decided: Bool = true

    public init(result: AuthenticationResult, username: String? = nil, authorizer: (any Authorizer)? = nil, reason: String? = nil) {
        self.result = result
        self.username = username
        self.authorizer = authorizer
        self.reason = reason
    }
}

/// Port: authentication that takes time or calls out (a JWT verified through an async API, an
/// HTTP service). The broker asks each configured one, in order, whether the CONNECT's
/// credential is its own; the first that claims it decides, and the CONNECT waits (its socket
/// not read) for the answer. A CONNECT that none claims goes to the ``Authenticator``.
public protocol DeferredAuthenticator: Sendable {
    /// Whether this CONNECT's credential is for this authenticator (e.g. the password is a
    /// JWT). Called on the connection's event loop; must be cheap.
    func claims(_ request: AuthenticationRequest) -> Bool
    /// Decides; calls `completion` exactly once, on any thread, within its own timeout.
    func authenticate(_ request: AuthenticationRequest, completion: @escaping @Sendable (AuthenticationOutcome) -> Void)
}

/// One step of an MQTT 5 enhanced authentication (AUTH packets, section 4.12).
public enum EnhancedAuthStep: Sendable {
    /// Send `data` to the client in an AUTH packet (reason 0x18) and wait for its answer,
    /// which goes to `exchange`.
    case `continue`(data: [UInt8], exchange: any EnhancedAuthExchange)
    /// Authenticated as `username`; `data` (if any) goes to the client in the CONNACK.
    case success(username: String, data: [UInt8]?)
    /// Refused: CONNACK 0x86 (`.badCredentials`) or 0x87 (`.notAuthorized`).
    case failure(AuthenticationResult, reason: String)
}

/// The server side of one enhanced-authentication exchange in progress.
///
/// Concurrency: used by one connection, on its event loop, one step at a time.
public protocol EnhancedAuthExchange: AnyObject, Sendable {
    /// The client's next Authentication Data (from an AUTH packet with reason 0x18).
    func next(data: [UInt8]) -> EnhancedAuthStep
}

/// Port: enhanced authentication methods (MQTT 5 Authentication Method), e.g. SCRAM-SHA-256.
/// Called on the connection's event loop; must not block.
public protocol EnhancedAuthenticator: Sendable {
    /// The Authentication Method names served, exactly as clients send them.
    var methods: [String] { get }
    /// Starts an exchange for a CONNECT with one of ``methods`` and its Authentication Data.
    func start(method: String, data: [UInt8], request: AuthenticationRequest) -> EnhancedAuthStep
}

/// What a subscriber may receive through one subscription.
public enum SubscriptionAccess: Sendable, Equatable {
    /// Every topic the filter matches may be read: delivered without further checks.
    case granted
    /// Some topics the filter matches may be read, some not: granted, and each topic is checked
    /// with ``Authorizer/mayRead(_:topic:)`` when a message is routed to it (the result is cached
    /// with the publisher's route, so a steady topic costs one check per routing change).
    case filtered
    /// Nothing the filter matches may be read: refused (MQTT 5 SUBACK 0x87, 3.x 0x80).
    case denied
}

/// Port: per-topic access control. Called on the connection's event loop for every PUBLISH,
/// every subscription, and on routing cache misses for filtered subscriptions; keep it cheap
/// (the broker calls it only when one is configured).
public protocol Authorizer: Sendable {
    /// May this client publish to `topic` (also checked for its will at CONNECT)?
    func mayPublish(_ identity: ClientIdentity, topic: String) -> Bool
    /// What may this client receive through a subscription to `filter` (without `$share/...`)?
    func subscriptionAccess(_ identity: ClientIdentity, filter: String) -> SubscriptionAccess
    /// May this client receive a message published to `topic`?
    func mayRead(_ identity: ClientIdentity, topic: String) -> Bool
}

extension Authorizer {
    /// Simple authorizers that decide on the filter alone: granted or denied, never filtered.
    public func mayRead(_ identity: ClientIdentity, topic: String) -> Bool { true }
}

/// The authenticator used until a user database is configured: anonymous clients are accepted
/// when the listener allows them; without a user database, a client that sends a user name is
/// treated as anonymous when that is allowed, and refused otherwise.
public struct AnonymousAuthenticator: Authenticator {
    public init() {}

    public func authenticate(_ request: AuthenticationRequest) -> AuthenticationResult {
        if request.allowAnonymous || request.certificateIdentity != nil { return .accepted }
        return request.username == nil ? .notAuthorized : .badCredentials
    }
}

/// Identifies a broker node. A single node is node 0; cluster nodes (a later release) get their
/// own, and route entries carry the node their session lives on.
public struct NodeID: Hashable, Sendable {
    public var rawValue: UInt32
    public init(_ rawValue: UInt32) { self.rawValue = rawValue }
    public static let local = NodeID(0)
}

extension SocketAddress {
    /// `1.2.3.4:5678` / `[::1]:5678`, as logs and authentication show addresses.
    public var logText: String {
        if let ip = ipAddress, let port { return self.protocol == .inet6 ? "[\(ip)]:\(port)" : "\(ip):\(port)" }
        return "\(self)"
    }
}
