import AsyncHTTPClient
import Crypto
import Foundation
import MQTTCodec
import NIOCore
import RoostCore
import Synchronization

/// Settings of the HTTP authentication hook (`auth_http_*` keys).
public struct HTTPAuthHookConfiguration: Sendable, Equatable {
    /// What a CONNECT gets when the service cannot be asked (down, slow, an error status, an
    /// unreadable answer).
    public enum OnError: String, Sendable {
        /// Refused (0x86 / 4): the service is the authority. The default.
        case deny
        /// Decided by the password file / anonymous rules, as if no hook were configured.
        case ignore
    }

    /// `http://` or `https://` URL receiving a POST per CONNECT.
    public var url: String
    /// Longest wait for the answer.
    public var timeout: Duration = .seconds(5)
    /// How long an answer (allow or deny) is reused for the same client id, user name,
    /// password and listener; 0 asks every time.
    public var cacheSeconds: Int = 60
    public var onError: OnError = .deny

    public init(url: String) {
        self.url = url
    }
}

/// Authentication (and per-client topic rules) by an HTTP service, as EMQX's and VerneMQ's
/// webhooks do: one POST per CONNECT (cached), never per message.
///
/// Request: `POST <url>`, `Content-Type: application/json`, body
/// `{"clientid", "username", "password", "remote_address", "listener", "protocol": "mqtt"}`
/// (the password as UTF-8 text; credentials the client did not send are null). Answer: status
/// 200 with `{"result": "allow" | "deny" | "ignore", "acl": {"pub": [...], "sub": [...], "all": [...]}}`;
/// `acl` is optional (filters, `%u` and `%c` substituted) and restricts that client on top of
/// the ACL file. `ignore` leaves the decision to the password file / anonymous rules. Any other
/// status, a timeout or an unreadable body is an error (`on_error`).
///
/// Concurrency: `Sendable`; the cache sits behind a lock; requests run on the HTTP client's own
/// event loop group, and the completion is called from there.
public final class HTTPAuthHook: DeferredAuthenticator, Sendable {
    public let configuration: HTTPAuthHookConfiguration
    private let client: HTTPClient
    private let cache = Mutex<[Data: CachedAnswer]>([:])
    /// Bound on the cache; beyond it, expired answers are purged, then everything.
    static let cacheCapacity = 10_000
    /// Longest answer body read.
    static let maximumBody = 64 * 1024

    struct CachedAnswer: Sendable {
        var answer: Answer
        var expires: ContinuousClock.Instant
    }

    /// What the service said (or what its failure means).
    enum Answer: Sendable, Equatable {
        case allow(acl: ACLClaim?)
        case deny
        case ignore
    }

    struct ACLClaim: Sendable, Equatable {
        var pub: [String]
        var sub: [String]
        var all: [String]
    }

    public init(configuration: HTTPAuthHookConfiguration) throws(HTTPAuthHookError) {
        guard let url = URL(string: configuration.url), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
            url.host != nil
        else {
            throw HTTPAuthHookError(key: "auth_http_url", value: configuration.url, problem: "expected an http:// or https:// URL")
        }
        self.configuration = configuration
        var clientConfiguration = HTTPClient.Configuration()
        clientConfiguration.redirectConfiguration = .disallow
        clientConfiguration.timeout = .init(connect: .seconds(2))
        self.client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration)
    }

    /// Closes the HTTP client (at shutdown).
    public func shutdown() async {
        try? await client.shutdown()
    }

    /// Every CONNECT that reaches it, except an anonymous one where the listener refuses
    /// anonymous clients (the anonymous rules refuse it without asking).
    public func claims(_ request: AuthenticationRequest) -> Bool {
        request.username != nil || request.allowAnonymous
    }

    public func authenticate(_ request: AuthenticationRequest, completion: @escaping @Sendable (AuthenticationOutcome) -> Void) {
        let key = Self.cacheKey(request)
        let now = ContinuousClock.now
        if let cached = cache.withLock({ $0[key] }), cached.expires > now {
            completion(outcome(cached.answer, request: request))
            return
        }
        let body = Self.requestBody(request)
        Task {
            let answer: Answer
            var cacheable = false
            var failure: String?
            do {
                answer = try await ask(body)
                cacheable = true
            } catch {
                answer = configuration.onError == .deny ? .deny : .ignore
                failure = "authentication service unavailable (\(error))"
            }
            if cacheable && configuration.cacheSeconds > 0 {
                remember(key, answer, until: ContinuousClock.now + .seconds(configuration.cacheSeconds))
            }
            var result = outcome(answer, request: request)
            if let failure { result.reason = failure }
            completion(result)
        }
    }

    private func ask(_ body: Data) async throws -> Answer {
        var request = HTTPClientRequest(url: configuration.url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "roost")
        request.body = .bytes(ByteBuffer(bytes: body))
        let response = try await client.execute(request, timeout: TimeAmount(configuration.timeout))
        guard response.status == .ok else { throw HTTPAuthHookError(key: "auth_http_url", value: configuration.url, problem: "status \(response.status.code)") }
        let bytes = try await response.body.collect(upTo: Self.maximumBody)
        return try Self.parseAnswer(Data(bytes.readableBytesView))
    }

    private func remember(_ key: Data, _ answer: Answer, until expires: ContinuousClock.Instant) {
        cache.withLock { cache in
            if cache.count >= Self.cacheCapacity && cache[key] == nil {
                let now = ContinuousClock.now
                cache = cache.filter { $0.value.expires > now }
                if cache.count >= Self.cacheCapacity { cache.removeAll() }
            }
            cache[key] = CachedAnswer(answer: answer, expires: expires)
        }
    }

    private func outcome(_ answer: Answer, request: AuthenticationRequest) -> AuthenticationOutcome {
        switch answer {
        case .allow(let acl):
            let identity = ClientIdentity(clientID: request.clientID, username: request.username)
            let authorizer = acl.map { JWTClaimsAuthorizer(publish: $0.pub, subscribe: $0.sub, all: $0.all, identity: identity) }
            return AuthenticationOutcome(result: .accepted, authorizer: authorizer)
        case .deny:
            return AuthenticationOutcome(result: .badCredentials, reason: "refused by the authentication service")
        case .ignore:
            var outcome = AuthenticationOutcome(result: .notAuthorized)
            outcome.decided = false
            return outcome
        }
    }

    /// A digest of what the answer depends on (the password is never kept in clear).
    static func cacheKey(_ request: AuthenticationRequest) -> Data {
        var hasher = SHA256()
        for part in [request.listener, request.clientID, request.username ?? "\u{0}"] {
            hasher.update(data: Data(part.utf8))
            hasher.update(data: Data([0]))
        }
        if let password = request.password {
            hasher.update(data: Data([1]))
            hasher.update(data: Data(password.readableBytesView))
        } else {
            hasher.update(data: Data([0]))
        }
        return Data(hasher.finalize())
    }

    static func requestBody(_ request: AuthenticationRequest) -> Data {
        let password: Any = request.password.map { String(decoding: $0.readableBytesView, as: UTF8.self) } ?? NSNull()
        let object: [String: Any] = [
            "clientid": request.clientID,
            "username": request.username ?? NSNull(),
            "password": password,
            "remote_address": request.remoteAddress ?? NSNull(),
            "listener": request.listener,
            "protocol": "mqtt",
        ]
        return (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
    }

    static func parseAnswer(_ body: Data) throws -> Answer {
        guard let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any], let result = object["result"] as? String else {
            throw HTTPAuthHookError(key: "auth_http_url", value: "", problem: "the answer is not {\"result\": ...}")
        }
        switch result.lowercased() {
        case "allow":
            guard let acl = object["acl"] else { return .allow(acl: nil) }
            guard let rules = acl as? [String: Any] else {
                throw HTTPAuthHookError(key: "auth_http_url", value: "", problem: "acl is not an object")
            }
            func list(_ name: String) throws -> [String] {
                guard let value = rules[name] else { return [] }
                guard let strings = value as? [String], strings.allSatisfy(Topic.isValidFilterText) else {
                    throw HTTPAuthHookError(key: "auth_http_url", value: "", problem: "acl.\(name) is not a list of topic filters")
                }
                return strings
            }
            return .allow(acl: ACLClaim(pub: try list("pub"), sub: try list("sub"), all: try list("all")))
        case "deny": return .deny
        case "ignore": return .ignore
        default:
            throw HTTPAuthHookError(key: "auth_http_url", value: "", problem: "result '\(result)' is not allow, deny or ignore")
        }
    }
}

/// A hook setting that cannot be used, or a failed call.
public struct HTTPAuthHookError: Error, CustomStringConvertible {
    public var key: String
    public var value: String
    public var problem: String

    public var description: String { "\(key) '\(value)': \(problem)" }
}

extension Topic {
    /// Whether `text` is a valid topic filter (for filters that come from outside: a hook's answer).
    static func isValidFilterText(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.count <= 65_535 && Topic.isValidFilter(text)
    }
}
