import Crypto
import Foundation
import NIOCore
import RoostCore
import _CryptoExtras

@testable import RoostAuth

/// Builds compact JWS tokens by hand for the JWT tests, so that every field (including a
/// wrong `alg` or an empty signature) is under the test's control.
enum JWTTestTokens {
    /// A fixed clock: 2023-11-14T22:13:20Z.
    static let now: Double = 1_700_000_000

    static func base64URL(_ bytes: some Sequence<UInt8>) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func json(_ object: [String: Any]) -> [UInt8] {
        // Sorted keys: stable tokens; the content is the test's own, so this cannot fail.
        (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])).map { Array($0) } ?? []
    }

    /// `header.payload.signature`, with `sign` applied to `header.payload`.
    static func token(
        header: [String: Any], claims: [String: Any], sign: (Data) throws -> [UInt8]
    ) rethrows -> String {
        let input = base64URL(json(header)) + "." + base64URL(json(claims))
        return input + "." + base64URL(try sign(Data(input.utf8)))
    }

    /// Typical claims: `sub`, `exp` an hour after ``now``, `iat` = ``now``, plus `extra`.
    static func claims(sub: String = "alice", _ extra: [String: Any] = [:]) -> [String: Any] {
        var claims: [String: Any] = ["sub": sub, "exp": now + 3600, "iat": now]
        for (key, value) in extra { claims[key] = value }
        return claims
    }

    static func hs256(_ claims: [String: Any], secret: String, alg: String = "HS256") -> String {
        token(header: ["alg": alg, "typ": "JWT"], claims: claims) { input in
            let key = SymmetricKey(data: Array(secret.utf8))
            switch alg {
            case "HS384": return Array(HMAC<SHA384>.authenticationCode(for: input, using: key))
            case "HS512": return Array(HMAC<SHA512>.authenticationCode(for: input, using: key))
            default: return Array(HMAC<SHA256>.authenticationCode(for: input, using: key))
            }
        }
    }

    static func es256(_ claims: [String: Any], key: P256.Signing.PrivateKey) throws -> String {
        try token(header: ["alg": "ES256", "typ": "JWT"], claims: claims) { input in
            Array(try key.signature(for: input).rawRepresentation)
        }
    }

    static func rsa(_ claims: [String: Any], key: _RSA.Signing.PrivateKey, alg: String) throws -> String {
        try token(header: ["alg": alg, "typ": "JWT"], claims: claims) { input in
            let padding: _RSA.Signing.Padding = alg.hasPrefix("PS") ? .PSS : .insecurePKCS1v1_5
            let signature: _RSA.Signing.RSASignature
            switch alg {
            case "RS384", "PS384": signature = try key.signature(for: SHA384.hash(data: input), padding: padding)
            case "RS512", "PS512": signature = try key.signature(for: SHA512.hash(data: input), padding: padding)
            default: signature = try key.signature(for: SHA256.hash(data: input), padding: padding)
            }
            return Array(signature.rawRepresentation)
        }
    }

    /// A CONNECT carrying `token` as its password.
    static func request(_ token: String, username: String? = nil, clientID: String = "dev1") -> AuthenticationRequest {
        AuthenticationRequest(
            clientID: clientID, username: username, password: ByteBuffer(string: token), allowAnonymous: false)
    }

    /// Writes `text` to a new file in a fresh temporary directory; returns its path.
    static func temporaryFile(_ text: String, name: String = "key.pem") throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("roost-jwt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let url = directory.appendingPathComponent(name)
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }
}

extension JWTAuthenticator {
    /// Runs ``authenticate(_:completion:)`` and waits for its one completion (a second one
    /// would trap the checked continuation).
    func outcome(_ request: AuthenticationRequest) async -> AuthenticationOutcome {
        await withCheckedContinuation { continuation in
            authenticate(request) { continuation.resume(returning: $0) }
        }
    }

    /// An authenticator on the fixed test clock.
    static func testing(
        secret: String? = nil, publicKeyFile: String? = nil, issuer: String? = nil, audience: String? = nil
    ) throws -> JWTAuthenticator {
        try JWTAuthenticator(
            hmacSecret: secret, publicKeyFile: publicKeyFile, issuer: issuer, audience: audience,
            leeway: .seconds(30), now: { JWTTestTokens.now })
    }
}
