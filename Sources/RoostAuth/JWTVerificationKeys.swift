import JWTKit

/// The keys a ``JWTAuthenticator`` verifies with, and which `alg` values each one allows.
///
/// Each algorithm gets its own verifier, chosen by the token's `alg` before any signature
/// work: jwt-kit verifies with whatever key it is given whatever the header says, so this
/// table is what keeps an HS256 token away from an RSA public key (key confusion) and `none`
/// away from everything. A plain value, `Sendable`.
struct JWTVerificationKeys: Sendable {
    /// A parsed public key.
    enum PublicKey: Sendable {
        case rsa(Insecure.RSA.PublicKey)
        case p256(ES256PublicKey)
        case p384(ES384PublicKey)
        case p521(ES512PublicKey)
    }

    /// The shortest HMAC secret accepted: RFC 7518 section 3.2 wants a key at least as long
    /// as the hash output (and jwt-kit asserts it, a precondition in a later release).
    static let minimumSecretBytes = 32

    var hmacSecret: HMACKey?
    /// The secret's length: HS384 needs 48 bytes, HS512 64.
    var hmacSecretBytes = 0
    var publicKey: PublicKey?

    /// The `alg` values these keys verify, sorted.
    var algorithms: [String] {
        var names: [String] = []
        if hmacSecret != nil {
            for (name, bytes) in [("HS256", 32), ("HS384", 48), ("HS512", 64)] where hmacSecretBytes >= bytes {
                names.append(name)
            }
        }
        switch publicKey {
        case .rsa: names += ["PS256", "PS384", "PS512", "RS256", "RS384", "RS512"]
        case .p256: names.append("ES256")
        case .p384: names.append("ES384")
        case .p521: names.append("ES512")
        case nil: break
        }
        return names.sorted()
    }

    /// A key collection holding only the key for `alg`, as its default; nil when `alg` is not
    /// one of ``algorithms``.
    func collection(for alg: String) async -> JWTKeyCollection? {
        guard algorithms.contains(alg) else { return nil }
        let keys = JWTKeyCollection()
        switch (alg, hmacSecret, publicKey) {
        case ("HS256", let secret?, _): await keys.add(hmac: secret, digestAlgorithm: .sha256)
        case ("HS384", let secret?, _): await keys.add(hmac: secret, digestAlgorithm: .sha384)
        case ("HS512", let secret?, _): await keys.add(hmac: secret, digestAlgorithm: .sha512)
        case ("RS256", _, .rsa(let key)?): await keys.add(rsa: key, digestAlgorithm: .sha256)
        case ("RS384", _, .rsa(let key)?): await keys.add(rsa: key, digestAlgorithm: .sha384)
        case ("RS512", _, .rsa(let key)?): await keys.add(rsa: key, digestAlgorithm: .sha512)
        case ("PS256", _, .rsa(let key)?): await keys.add(pss: key, digestAlgorithm: .sha256)
        case ("PS384", _, .rsa(let key)?): await keys.add(pss: key, digestAlgorithm: .sha384)
        case ("PS512", _, .rsa(let key)?): await keys.add(pss: key, digestAlgorithm: .sha512)
        case ("ES256", _, .p256(let key)?): await keys.add(ecdsa: key)
        case ("ES384", _, .p384(let key)?): await keys.add(ecdsa: key)
        case ("ES512", _, .p521(let key)?): await keys.add(ecdsa: key)
        default: return nil
        }
        return keys
    }

    /// Reads and parses a PEM public key (SPKI `PUBLIC KEY`, PKCS #1 `RSA PUBLIC KEY`) or an
    /// X.509 certificate whose key is RSA (2048 bits or more) or EC P-256, P-384 or P-521.
    /// Blocking file I/O: for startup and reloads.
    static func loadPublicKey(path: String, setting: String) throws(JWTConfigurationError) -> PublicKey {
        let bytes: [UInt8]
        do {
            bytes = try FileIO.read(path: path)
        } catch {
            let why: String
            if case .unreadable(let text) = error.reason { why = text } else { why = "\(error.reason)" }
            throw JWTConfigurationError(setting: setting, file: path, reason: .unreadable(why))
        }
        let text = String(decoding: bytes, as: UTF8.self)
        if text.contains("PRIVATE KEY-----") {
            throw JWTConfigurationError(setting: setting, file: path, reason: .privateKey)
        }
        guard let key = parsePublicKey(pem: text) else {
            throw JWTConfigurationError(setting: setting, file: path, reason: .unsupportedKey)
        }
        return key
    }

    /// Tries each supported key kind in turn; nil when none fits.
    static func parsePublicKey(pem text: String) -> PublicKey? {
        if text.contains("BEGIN CERTIFICATE") {
            if let key = try? Insecure.RSA.PublicKey(certificatePEM: text) { return .rsa(key) }
            if let key = try? ES256PublicKey(certificate: text) { return .p256(key) }
            if let key = try? ES384PublicKey(certificate: text) { return .p384(key) }
            if let key = try? ES512PublicKey(certificate: text) { return .p521(key) }
            return nil
        }
        if let key = try? Insecure.RSA.PublicKey(pem: text) { return .rsa(key) }
        if let key = try? ES256PublicKey(pem: text) { return .p256(key) }
        if let key = try? ES384PublicKey(pem: text) { return .p384(key) }
        if let key = try? ES512PublicKey(pem: text) { return .p521(key) }
        return nil
    }
}
