import Crypto
import CryptoExtras

/// One password hash as mosquitto stores it after `username:` in a password file.
///
/// - `$6$<salt>$<hash>`: mosquitto 1.x, `hash = SHA-512(password ++ salt)`.
/// - `$7$<iterations>$<salt>$<hash>`: mosquitto 2.x,
///   `hash = PBKDF2-HMAC-SHA512(password, salt, iterations, 64 bytes)`.
///
/// Salt and hash are standard padded base64 of 12 and 64 bytes; the mosquitto 2.0 broker
/// refuses any other length, and so does ``init(parsing:)``. The password is used as given,
/// all its bytes (mosquitto stops at a zero byte, which `mosquitto_passwd` can never store).
/// The description never shows salt or hash. A plain value, `Sendable`.
public enum PasswordHash: Sendable, Equatable, CustomStringConvertible {
    /// `$6$`: one round of SHA-512 over the password followed by the salt.
    case sha512(salt: [UInt8], hash: [UInt8])
    /// `$7$`: PBKDF2 with HMAC-SHA512.
    case pbkdf2SHA512(iterations: Int, salt: [UInt8], hash: [UInt8])

    /// Salt length that `mosquitto_passwd` writes and the mosquitto broker requires.
    public static let saltLength = 12
    /// Hash length (SHA-512).
    public static let hashLength = 64
    /// PBKDF2 iterations that `mosquitto_passwd` 2.0 uses (`PW_DEFAULT_ITERATIONS`).
    public static let defaultIterations = 101
    /// The largest iteration count accepted (mosquitto reads it into a C `int`).
    public static let maximumIterations = Int(Int32.max)

    /// Why a hash could not be made.
    public enum MakeError: Error, Sendable, Equatable {
        /// Iterations outside `1...maximumIterations`.
        case invalidIterations(Int)
        /// A salt that is not ``saltLength`` bytes.
        case invalidSaltLength(Int)
        /// The crypto library failed (out of memory).
        case derivationFailed
    }

    /// Parses the text after `username:`; throws the reason (never containing the hash).
    public init(parsing text: Substring) throws(AuthFileError.Reason) {
        let fields = text.split(separator: "$", omittingEmptySubsequences: false)
        // "$7$101$salt$hash" splits into ["", "7", "101", "salt", "hash"].
        guard fields.count >= 2, fields[0].isEmpty else {
            throw .invalidHash("expected '$7$iterations$salt$hash' or '$6$salt$hash'")
        }
        switch fields[1] {
        case "6":
            guard fields.count == 4 else { throw .invalidHash("a '$6$' entry has the form '$6$salt$hash'") }
            let (salt, hash) = try Self.decode(salt: fields[2], hash: fields[3])
            self = .sha512(salt: salt, hash: hash)
        case "7":
            guard fields.count == 5 else {
                throw .invalidHash("a '$7$' entry has the form '$7$iterations$salt$hash'")
            }
            let digits = fields[2]
            guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
                let iterations = Int(digits), iterations >= 1, iterations <= Self.maximumIterations
            else {
                throw .invalidHash("the iteration count must be a whole number from 1 to \(Self.maximumIterations)")
            }
            let (salt, hash) = try Self.decode(salt: fields[3], hash: fields[4])
            self = .pbkdf2SHA512(iterations: iterations, salt: salt, hash: hash)
        default:
            throw .invalidHash("unknown hash type (Roost reads mosquitto's '$6$' and '$7$')")
        }
    }

    private static func decode(salt: Substring, hash: Substring) throws(AuthFileError.Reason) -> ([UInt8], [UInt8]) {
        guard let saltBytes = Base64.decode(salt.utf8) else { throw .invalidHash("the salt is not valid base64") }
        guard saltBytes.count == saltLength else {
            throw .invalidHash("the salt must be \(saltLength) bytes, found \(saltBytes.count)")
        }
        guard let hashBytes = Base64.decode(hash.utf8) else { throw .invalidHash("the hash is not valid base64") }
        guard hashBytes.count == hashLength else {
            throw .invalidHash("the hash must be \(hashLength) bytes, found \(hashBytes.count)")
        }
        return (saltBytes, hashBytes)
    }

    /// Makes a `$7$` hash of `password`, with a random 12-byte salt unless one is given.
    public static func make(
        password: [UInt8], iterations: Int = defaultIterations, salt: [UInt8]? = nil
    ) throws(MakeError) -> PasswordHash {
        guard iterations >= 1, iterations <= maximumIterations else { throw .invalidIterations(iterations) }
        let salt = salt ?? Self.randomSalt()
        guard salt.count == saltLength else { throw .invalidSaltLength(salt.count) }
        guard let hash = pbkdf2(password: password, salt: salt, iterations: iterations) else {
            throw .derivationFailed
        }
        return .pbkdf2SHA512(iterations: iterations, salt: salt, hash: hash)
    }

    /// The text that follows `username:` in a password file.
    public var encoded: String {
        switch self {
        case .sha512(let salt, let hash):
            return "$6$\(Base64.encode(salt))$\(Base64.encode(hash))"
        case .pbkdf2SHA512(let iterations, let salt, let hash):
            return "$7$\(iterations)$\(Base64.encode(salt))$\(Base64.encode(hash))"
        }
    }

    public var description: String {
        switch self {
        case .sha512: return "$6$ (SHA-512, salted)"
        case .pbkdf2SHA512(let iterations, _, _): return "$7$ (PBKDF2-HMAC-SHA512, \(iterations) iterations)"
        }
    }

    /// Whether `password` hashes to this entry; compares the digests in constant time.
    public func matches(_ password: [UInt8]) -> Bool {
        switch self {
        case .sha512(let salt, let expected):
            var hasher = SHA512()
            hasher.update(data: password)
            hasher.update(data: salt)
            return Self.constantTimeEqual(Array(hasher.finalize()), expected)
        case .pbkdf2SHA512(let iterations, let salt, let expected):
            guard let actual = Self.pbkdf2(password: password, salt: salt, iterations: iterations) else { return false }
            return Self.constantTimeEqual(actual, expected)
        }
    }

    static func pbkdf2(password: [UInt8], salt: [UInt8], iterations: Int) -> [UInt8]? {
        // mosquitto's default of 101 rounds is far below the 210,000 that the checked API
        // demands; compatibility needs the unchecked one.
        guard
            let key = try? KDF.Insecure.PBKDF2.deriveKey(
                from: password, salt: salt, using: .sha512, outputByteCount: hashLength,
                unsafeUncheckedRounds: iterations)
        else { return nil }
        return key.withUnsafeBytes { Array($0) }
    }

    /// Compares two byte strings in time that depends only on their lengths.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in 0..<a.count { difference |= a[index] ^ b[index] }
        return difference == 0
    }

    static func randomSalt() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<saltLength).map { _ in UInt8.random(in: 0...UInt8.max, using: &generator) }
    }
}
