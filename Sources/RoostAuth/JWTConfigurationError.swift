/// Why a ``JWTAuthenticator`` could not be configured or reloaded.
///
/// Its description names the setting (`jwt_secret`, `jwt_public_key`), the file where there
/// is one, and what is wrong, in words an operator can act on. It never contains key material.
/// A plain value, `Sendable`.
public struct JWTConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong.
    public enum Reason: Sendable, Equatable {
        /// Neither an HMAC secret nor a public key file was given.
        case noKey
        /// The HMAC secret has fewer than 32 bytes (RFC 7518 section 3.2: at least the hash
        /// output, 32 bytes for HS256).
        case secretTooShort(bytes: Int)
        /// The key file could not be opened or read (`strerror` text).
        case unreadable(String)
        /// The file holds a private key; the broker needs only the public half.
        case privateKey
        /// The file is not a PEM public key (or certificate) of a supported kind.
        case unsupportedKey
    }

    /// The configuration key: ``JWTAuthenticator/secretSetting`` or
    /// ``JWTAuthenticator/publicKeySetting``.
    public var setting: String
    /// The key file's path, when the problem is with a file.
    public var file: String?
    /// What is wrong.
    public var reason: Reason

    public init(setting: String, file: String? = nil, reason: Reason) {
        self.setting = setting
        self.file = file
        self.reason = reason
    }

    public var description: String {
        let place = file.map { "\(setting) \($0)" } ?? setting
        return "\(place): \(Self.describe(reason))"
    }

    private static func describe(_ reason: Reason) -> String {
        switch reason {
        case .noKey:
            return "JWT authentication needs jwt_secret (HS256/384/512) or jwt_public_key (RS*, PS*, ES*)"
        case .secretTooShort(let bytes):
            return "the HMAC secret has \(bytes) bytes; HS256 needs at least 32 (HS384 48, HS512 64), e.g. openssl rand -base64 48"
        case .unreadable(let why):
            return "cannot read the file (\(why))"
        case .privateKey:
            return "the file holds a private key; give the public key (openssl pkey -in KEY -pubout)"
        case .unsupportedKey:
            return "expected a PEM public key or certificate: RSA of 2048 bits or more, or EC P-256, P-384 or P-521"
        }
    }
}
