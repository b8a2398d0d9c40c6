import NIOCore
import RoostCore
import Synchronization

/// RoostCore's ``Authenticator`` port over a mosquitto password file, reloadable.
///
/// Concurrency: `Sendable`. The parsed file sits behind a lock held only to copy the value
/// (copy-on-write, no copy of the data); the check itself (PBKDF2) runs outside it, on the
/// caller's event loop.
public final class PasswordFileAuthenticator: Authenticator, Sendable {
    public let path: String
    let file: Mutex<PasswordFile>

    public init(path: String) throws(AuthFileError) {
        self.path = path
        self.file = Mutex(try PasswordFile.load(path: path))
    }

    /// Reads the file again; on error the previous contents stay in force.
    public func reload() throws(AuthFileError) {
        let fresh = try PasswordFile.load(path: path)
        file.withLock { $0 = fresh }
    }

    public var userCount: Int { file.withLock { $0.usernames.count } }

    public func authenticate(_ request: AuthenticationRequest) -> AuthenticationResult {
        // A verified client certificate (use_identity_as_username) is the credential.
        if request.certificateIdentity != nil { return .accepted }
        guard let username = request.username else { return request.allowAnonymous ? .accepted : .notAuthorized }
        let password = request.password.map { Array($0.readableBytesView) } ?? []
        let current = file.withLock { $0 }
        return current.verify(username: username, password: password) == .ok ? .accepted : .badCredentials
    }
}

/// RoostCore's ``Authorizer`` port over a Mosquitto ACL file, reloadable.
///
/// Concurrency: `Sendable`; as ``PasswordFileAuthenticator``.
public final class ACLFileAuthorizer: Authorizer, Sendable {
    public let path: String
    private let file: Mutex<ACLFile>

    public init(path: String) throws(AuthFileError) {
        self.path = path
        self.file = Mutex(try ACLFile.load(path: path))
    }

    /// Reads the file again; on error the previous rules stay in force.
    public func reload() throws(AuthFileError) {
        let fresh = try ACLFile.load(path: path)
        file.withLock { $0 = fresh }
    }

    private var current: ACLFile { file.withLock { $0 } }

    public func mayPublish(_ identity: ClientIdentity, topic: String) -> Bool {
        current.mayPublish(username: identity.username, clientID: identity.clientID, topic: topic)
    }

    public func mayRead(_ identity: ClientIdentity, topic: String) -> Bool {
        current.mayRead(username: identity.username, clientID: identity.clientID, topic: topic)
    }

    public func subscriptionAccess(_ identity: ClientIdentity, filter: String) -> RoostCore.SubscriptionAccess {
        switch current.subscriptionAccess(username: identity.username, clientID: identity.clientID, filter: filter) {
        case .granted: return .granted
        case .filtered: return .filtered
        case .denied: return .denied
        }
    }
}

extension PasswordFileAuthenticator {
    /// The hash of `username` in the file as it is now (for SCRAM).
    public func hash(for username: String) -> PasswordHash? {
        file.withLock { $0.hash(for: username) }
    }
}

/// RoostCore's ``EnhancedAuthenticator`` port for SCRAM-SHA-256 (MQTT 5 AUTH), against the
/// password file's `SCRAM-SHA-256$...` entries (`roost passwd --scram`).
///
/// Every SCRAM-level failure (unknown user, user without SCRAM credentials, wrong proof,
/// malformed message) is refused the same way: 0x86.
public struct SCRAMAuthenticator: EnhancedAuthenticator {
    let passwords: PasswordFileAuthenticator

    public init(passwords: PasswordFileAuthenticator) {
        self.passwords = passwords
    }

    public var methods: [String] { [SCRAMServerExchange.mechanism] }

    public func start(method: String, data: [UInt8], request: AuthenticationRequest) -> EnhancedAuthStep {
        do {
            let exchange = try SCRAMServerExchange(clientFirst: data, lookup: { passwords.hash(for: $0) })
            return .continue(data: exchange.serverFirstMessage, exchange: Step(exchange: exchange))
        } catch {
            return .failure(.badCredentials, reason: "SCRAM: \(error)")
        }
    }

    /// The second half of one exchange.
    final class Step: EnhancedAuthExchange {
        let exchange: SCRAMServerExchange

        init(exchange: SCRAMServerExchange) {
            self.exchange = exchange
        }

        func next(data: [UInt8]) -> EnhancedAuthStep {
            switch exchange.finish(clientFinal: data) {
            case .success(let success):
                return .success(username: success.username, data: success.serverFinalMessage)
            case .failure(let error):
                return .failure(.badCredentials, reason: "SCRAM: \(error)")
            }
        }
    }
}
