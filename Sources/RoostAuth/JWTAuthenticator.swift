#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import JWTKit
import NIOCore
import RoostCore
import Synchronization

/// RoostCore's ``DeferredAuthenticator`` port for JSON Web Tokens sent as the MQTT password.
///
/// Claims a CONNECT whose password has the shape of a compact JWS (three base64url segments,
/// the first a JSON header with `alg`); any other password goes to the password file or the
/// anonymous rules. A claimed token is accepted only when all of these hold:
///
/// - it is at most ``maximumTokenBytes`` long and its `alg` is one the configured keys allow
///   (``algorithms``): HS256 with `hmacSecret` (HS384, HS512 when it is 48, 64 bytes long); RS256/384/512 and PS256/384/512 with
///   an RSA public key; ES256, ES384 or ES512 with an EC P-256, P-384 or P-521 key. `none`
///   never, and an HMAC token never against a public key (no key confusion). A header with
///   `crit` is refused.
/// - the signature verifies (jwt-kit);
/// - `exp` is present and `now < exp + leeway`; `nbf`, if present, `nbf <= now + leeway`;
///   `iat`, if present, `iat <= now + leeway`;
/// - `iss` equals `issuer` and `aud` (a string or an array) contains `audience`, when
///   configured;
/// - it names a user: the `username` claim if present, else `sub`; and a client that sent a
///   (non-empty) user name sent exactly that one.
///
/// The outcome names that user, and carries a ``JWTClaimsAuthorizer`` when the token has an
/// `acl` claim. Every refusal is `.badCredentials` (CONNACK 0x86 / 4) with a short reason
/// that never contains the token.
///
/// Concurrency: `Sendable`. ``claims(_:)`` runs on the caller's event loop (one scan and
/// one small JSON parse); verification runs in a `Task` (signature work is CPU only: no I/O,
/// so no timeout of its own). The keys sit behind a lock held only to copy them or to swap
/// them on ``reload()``.
public final class JWTAuthenticator: DeferredAuthenticator, Sendable {
    /// The configuration key of the HMAC secret, as errors name it.
    public static let secretSetting = "jwt_secret"
    /// The configuration key of the public key file, as errors name it.
    public static let publicKeySetting = "jwt_public_key"
    /// Longer passwords are refused without any signature work.
    public static let maximumTokenBytes = 8 * 1024

    /// The PEM public key (or certificate) file, re-read by ``reload()``.
    public let publicKeyFile: String?
    /// The `iss` every token must carry, if set.
    public let issuer: String?
    /// The value `aud` must contain, if set.
    public let audience: String?
    /// Clock skew tolerated for `exp`, `nbf` and `iat`.
    public let leeway: Duration

    /// Seconds since 1970; injected by tests.
    private let now: @Sendable () -> Double

    private struct State: Sendable {
        var keys: JWTVerificationKeys
        /// Bumped by every reload, so a collection built from old keys is not cached.
        var generation: UInt64 = 0
        /// One key collection per `alg`, built on first use.
        var collections: [String: JWTKeyCollection] = [:]
    }

    private let state: Mutex<State>

    /// Reads the key file, if any. Blocking: call at startup.
    ///
    /// - Parameters:
    ///   - hmacSecret: the shared secret (its UTF-8 bytes are the key), at least 32 bytes for
    ///     HS256; HS384 is accepted from 48 bytes, HS512 from 64 (RFC 7518 section 3.2).
    ///   - publicKeyFile: a PEM file with an RSA or EC public key, or a certificate holding one.
    ///   - issuer: the required `iss`, or nil to accept any.
    ///   - audience: the value `aud` must contain, or nil to ignore `aud`.
    ///   - leeway: clock skew tolerated for `exp`, `nbf` and `iat`.
    /// - Throws: ``JWTConfigurationError`` naming the setting (and the file) when neither key
    ///   is given, the secret is shorter than 32 bytes, or the file cannot be read or is not a supported key.
    public convenience init(
        hmacSecret: String? = nil,
        publicKeyFile: String? = nil,
        issuer: String? = nil,
        audience: String? = nil,
        leeway: Duration = .seconds(30)
    ) throws(JWTConfigurationError) {
        try self.init(
            hmacSecret: hmacSecret, publicKeyFile: publicKeyFile, issuer: issuer, audience: audience,
            leeway: leeway, now: { Date().timeIntervalSince1970 })
    }

    /// As the public initialiser, with the clock (seconds since 1970) injected.
    init(
        hmacSecret: String?,
        publicKeyFile: String?,
        issuer: String?,
        audience: String?,
        leeway: Duration,
        now: @escaping @Sendable () -> Double
    ) throws(JWTConfigurationError) {
        guard hmacSecret != nil || publicKeyFile != nil else {
            throw JWTConfigurationError(setting: Self.secretSetting, reason: .noKey)
        }
        var keys = JWTVerificationKeys()
        if let hmacSecret {
            let length = hmacSecret.utf8.count
            guard length >= JWTVerificationKeys.minimumSecretBytes else {
                throw JWTConfigurationError(setting: Self.secretSetting, reason: .secretTooShort(bytes: length))
            }
            keys.hmacSecret = HMACKey(from: hmacSecret)
            keys.hmacSecretBytes = length
        }
        if let publicKeyFile {
            keys.publicKey = try JWTVerificationKeys.loadPublicKey(path: publicKeyFile, setting: Self.publicKeySetting)
        }
        self.publicKeyFile = publicKeyFile
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.now = now
        self.state = Mutex(State(keys: keys))
    }

    /// Reads the public key file again (SIGHUP). On error the previous key stays in force.
    /// Without a key file there is nothing to reload. Blocking file I/O.
    public func reload() throws(JWTConfigurationError) {
        guard let publicKeyFile else { return }
        let fresh = try JWTVerificationKeys.loadPublicKey(path: publicKeyFile, setting: Self.publicKeySetting)
        state.withLock { state in
            state.keys.publicKey = fresh
            state.generation &+= 1
            state.collections = [:]
        }
    }

    /// The `alg` values accepted with the current keys, sorted (for the startup log).
    public var algorithms: [String] { state.withLock { $0.keys.algorithms } }

    public func claims(_ request: AuthenticationRequest) -> Bool {
        guard let password = request.password else { return false }
        return JWTCompactToken(password.readableBytesView) != nil
    }

    public func authenticate(
        _ request: AuthenticationRequest, completion: @escaping @Sendable (AuthenticationOutcome) -> Void
    ) {
        guard let password = request.password, password.readableBytes > 0 else {
            completion(Self.refusal("no token"))
            return
        }
        guard password.readableBytes <= Self.maximumTokenBytes else {
            completion(Self.refusal("token longer than \(Self.maximumTokenBytes) bytes"))
            return
        }
        guard let token = JWTCompactToken(password.readableBytesView) else {
            completion(Self.refusal("malformed token"))
            return
        }
        let clientID = request.clientID
        let username = request.username
        Task {
            completion(await self.verify(token, clientID: clientID, username: username))
        }
    }

    /// Checks one token completely; never throws, every failure is an outcome.
    func verify(_ token: JWTCompactToken, clientID: String, username clientUsername: String?) async -> AuthenticationOutcome {
        let alg = token.header.alg
        if alg.lowercased() == "none" { return Self.refusal("unsigned token (alg none)") }
        if token.header.crit != nil { return Self.refusal("unsupported critical header parameters") }
        guard let collection = await collection(for: alg) else {
            return Self.refusal("signing algorithm not accepted")
        }
        let payload: JWTClaimsPayload
        do {
            payload = try await collection.verify(token.bytes, as: JWTClaimsPayload.self)
        } catch let error as JWTError where error.errorType == .signatureVerificationFailed {
            return Self.refusal("invalid signature")
        } catch {
            return Self.refusal("malformed or unverifiable token")
        }
        return check(payload, clientID: clientID, clientUsername: clientUsername)
    }

    /// The claim checks, after the signature has been verified.
    func check(_ payload: JWTClaimsPayload, clientID: String, clientUsername: String?) -> AuthenticationOutcome {
        let current = now()
        let slack = Self.seconds(leeway)
        guard let exp = payload.exp else { return Self.refusal("token has no exp") }
        guard current < exp.value.timeIntervalSince1970 + slack else { return Self.refusal("token expired") }
        if let nbf = payload.nbf, nbf.value.timeIntervalSince1970 > current + slack {
            return Self.refusal("token not yet valid (nbf)")
        }
        if let iat = payload.iat, iat.value.timeIntervalSince1970 > current + slack {
            return Self.refusal("token issued in the future (iat)")
        }
        if let issuer, payload.iss?.value != issuer { return Self.refusal("wrong issuer") }
        if let audience, !(payload.aud?.value.contains(audience) ?? false) { return Self.refusal("wrong audience") }
        guard let name = payload.username ?? payload.sub?.value, !name.isEmpty else {
            return Self.refusal("token names no user (sub)")
        }
        if let clientUsername, !clientUsername.isEmpty, clientUsername != name {
            return Self.refusal("user name does not match the token")
        }
        let authorizer = payload.acl.map { acl in
            JWTClaimsAuthorizer(
                publish: acl.pub ?? [], subscribe: acl.sub ?? [], all: acl.all ?? [],
                identity: ClientIdentity(clientID: clientID, username: name))
        }
        return AuthenticationOutcome(result: .accepted, username: name, authorizer: authorizer)
    }

    /// The cached key collection for `alg`, built on first use; nil when no configured key
    /// allows `alg`.
    private func collection(for alg: String) async -> JWTKeyCollection? {
        let (keys, generation, cached) = state.withLock { ($0.keys, $0.generation, $0.collections[alg]) }
        if let cached { return cached }
        guard let built = await keys.collection(for: alg) else { return nil }
        state.withLock { state in
            if state.generation == generation { state.collections[alg] = built }
        }
        return built
    }

    private static func refusal(_ reason: String) -> AuthenticationOutcome {
        AuthenticationOutcome(result: .badCredentials, reason: reason)
    }

    private static func seconds(_ duration: Duration) -> Double {
        let parts = duration.components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}
