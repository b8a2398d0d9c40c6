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
    func authenticate(clientID: String, username: String?, password: ByteBuffer?) -> AuthenticationResult
}

/// Port: per-topic access control. Called on the connection's event loop for every PUBLISH and
/// every subscription; keep it cheap (the broker calls it only when one is configured).
public protocol Authorizer: Sendable {
    func mayPublish(_ identity: ClientIdentity, topic: String) -> Bool
    func maySubscribe(_ identity: ClientIdentity, filter: String) -> Bool
}

/// The authenticator used until a user database is configured: anonymous clients are accepted
/// when `allowAnonymous` is on; without a user database, a client that sends a user name is
/// treated as anonymous when that is allowed, and refused otherwise.
public struct AnonymousAuthenticator: Authenticator {
    public var allowAnonymous: Bool

    public init(allowAnonymous: Bool) {
        self.allowAnonymous = allowAnonymous
    }

    public func authenticate(clientID: String, username: String?, password: ByteBuffer?) -> AuthenticationResult {
        if allowAnonymous { return .accepted }
        return username == nil ? .notAuthorized : .badCredentials
    }
}

/// Identifies a broker node. A single node is node 0; cluster nodes (a later release) get their
/// own, and route entries carry the node their session lives on.
public struct NodeID: Hashable, Sendable {
    public var rawValue: UInt32
    public init(_ rawValue: UInt32) { self.rawValue = rawValue }
    public static let local = NodeID(0)
}
