import Crypto
import CryptoExtras

/// One password hash as it follows `username:` in a password file.
///
/// - `$6$<salt>$<hash>`: mosquitto 1.x, `hash = SHA-512(password ++ salt)`.
/// - `$7$<iterations>$<salt>$<hash>`: mosquitto 2.x,
///   `hash = PBKDF2-HMAC-SHA512(password, salt, iterations, 64 bytes)`.
/// - `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`: Roost only, the RFC 5803
///   form PostgreSQL also uses; the SCRAM-SHA-256 credentials of RFC 5802 / RFC 7677
///   (see ``SCRAMServerExchange``). mosquitto cannot read such a line.
///
/// For `$6$` and `$7$`, salt and hash are standard padded base64 of 12 and 64 bytes; the
/// mosquitto 2.0 broker refuses any other length, and so does ``init(parsing:)``. A SCRAM
/// entry has a salt of 1 to ``maximumSCRAMSaltLength`` bytes and keys of 32 bytes. The
/// password is used as given, all its bytes (mosquitto stops at a zero byte, which
/// `mosquitto_passwd` can never store). The description never shows salt, hash or keys.
/// A plain value, `Sendable`.
public enum PasswordHash: Sendable, Equatable, CustomStringConvertible {
    /// `$6$`: one round of SHA-512 over the password followed by the salt.
    case sha512(salt: [UInt8], hash: [UInt8])
    /// `$7$`: PBKDF2 with HMAC-SHA512.
    case pbkdf2SHA512(iterations: Int, salt: [UInt8], hash: [UInt8])
    /// `SCRAM-SHA-256$`: `StoredKey = SHA-256(ClientKey)` and `ServerKey`, where
    /// `ClientKey = HMAC(SaltedPassword, "Client Key")`,
    /// `ServerKey = HMAC(SaltedPassword, "Server Key")` and
    /// `SaltedPassword = PBKDF2-HMAC-SHA256(password, salt, iterations, 32 bytes)`.
    case scramSHA256(iterations: Int, salt: [UInt8], storedKey: [UInt8], serverKey: [UInt8])

    /// Salt length that `mosquitto_passwd` writes and the mosquitto broker requires.
    public static let saltLength = 12
    /// Hash length (SHA-512).
    public static let hashLength = 64
    /// PBKDF2 iterations that `mosquitto_passwd` 2.0 uses (`PW_DEFAULT_ITERATIONS`).
    public static let defaultIterations = 101
    /// The largest iteration count accepted (mosquitto reads it into a C `int`).
    public static let maximumIterations = Int(Int32.max)

    /// The prefix of a SCRAM-SHA-256 entry.
    static let scramPrefix = "SCRAM-SHA-256$"
    /// Salt length of new SCRAM-SHA-256 entries (RFC 7677 and PostgreSQL use 16).
    public static let scramSaltLength = 16
    /// The longest SCRAM salt accepted.
    public static let maximumSCRAMSaltLength = 1024
    /// Iterations of new SCRAM-SHA-256 entries (RFC 7677's minimum, PostgreSQL's default).
    public static let defaultSCRAMIterations = 4096
    /// Length of StoredKey and ServerKey (SHA-256).
    public static let scramKeyLength = 32

    /// Why a hash could not be made.
    public enum MakeError: Error, Sendable, Equatable {
        /// Iterations outside `1...maximumIterations`.
        case invalidIterations(Int)
        /// A salt that is not ``saltLength`` bytes (`$7$`), or not 1 to
        /// ``maximumSCRAMSaltLength`` bytes (SCRAM).
        case invalidSaltLength(Int)
        /// A SCRAM password with a byte outside printable ASCII (0x20...0x7E): clients apply
        /// SASLprep (RFC 4013) to the password, which Roost does not implement, and SASLprep
        /// is the identity on printable ASCII only.
        case passwordNotPrintableASCII
        /// The crypto library failed (out of memory).
        case derivationFailed
    }

    /// Parses the text after `username:`; throws the reason (never containing the hash).
    public init(parsing text: Substring) throws(AuthFileError.Reason) {
        if text.hasPrefix(Self.scramPrefix) {
            self = try Self.parseSCRAM(text.dropFirst(Self.scramPrefix.count))
            return
        }
        let fields = text.split(separator: "$", omittingEmptySubsequences: false)
        // "$7$101$salt$hash" splits into ["", "7", "101", "salt", "hash"].
        guard fields.count >= 2, fields[0].isEmpty else {
            throw .invalidHash(
                "expected '$7$iterations$salt$hash', '$6$salt$hash' or 'SCRAM-SHA-256$iterations:salt$storedkey:serverkey'")
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
            let iterations = try Self.parseIterations(fields[2])
            let (salt, hash) = try Self.decode(salt: fields[3], hash: fields[4])
            self = .pbkdf2SHA512(iterations: iterations, salt: salt, hash: hash)
        default:
            throw .invalidHash("unknown hash type (Roost reads mosquitto's '$6$' and '$7$', and 'SCRAM-SHA-256$')")
        }
    }

    private static func parseIterations(_ digits: Substring) throws(AuthFileError.Reason) -> Int {
        guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
            let iterations = Int(digits), iterations >= 1, iterations <= Self.maximumIterations
        else {
            throw .invalidHash("the iteration count must be a whole number from 1 to \(Self.maximumIterations)")
        }
        return iterations
    }

    /// Parses `<iterations>:<salt>$<StoredKey>:<ServerKey>` (after `SCRAM-SHA-256$`).
    private static func parseSCRAM(_ text: Substring) throws(AuthFileError.Reason) -> PasswordHash {
        let halves = text.split(separator: "$", omittingEmptySubsequences: false)
        let form = "a 'SCRAM-SHA-256$' entry has the form 'SCRAM-SHA-256$iterations:salt$storedkey:serverkey'"
        guard halves.count == 2 else { throw .invalidHash(form) }
        let parameters = halves[0].split(separator: ":", omittingEmptySubsequences: false)
        let keys = halves[1].split(separator: ":", omittingEmptySubsequences: false)
        guard parameters.count == 2, keys.count == 2 else { throw .invalidHash(form) }
        let iterations = try parseIterations(parameters[0])
        guard let salt = Base64.decode(parameters[1].utf8) else { throw .invalidHash("the salt is not valid base64") }
        guard (1...maximumSCRAMSaltLength).contains(salt.count) else {
            throw .invalidHash("the salt must be 1 to \(maximumSCRAMSaltLength) bytes, found \(salt.count)")
        }
        guard let storedKey = Base64.decode(keys[0].utf8), let serverKey = Base64.decode(keys[1].utf8) else {
            throw .invalidHash("a key is not valid base64")
        }
        guard storedKey.count == scramKeyLength, serverKey.count == scramKeyLength else {
            throw .invalidHash("the keys must be \(scramKeyLength) bytes")
        }
        return .scramSHA256(iterations: iterations, salt: salt, storedKey: storedKey, serverKey: serverKey)
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
        case .scramSHA256(let iterations, let salt, let storedKey, let serverKey):
            return "\(Self.scramPrefix)\(iterations):\(Base64.encode(salt))$\(Base64.encode(storedKey)):\(Base64.encode(serverKey))"
        }
    }

    public var description: String {
        switch self {
        case .sha512: return "$6$ (SHA-512, salted)"
        case .pbkdf2SHA512(let iterations, _, _): return "$7$ (PBKDF2-HMAC-SHA512, \(iterations) iterations)"
        case .scramSHA256(let iterations, _, _, _): return "SCRAM-SHA-256 (\(iterations) iterations)"
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
        case .scramSHA256(let iterations, let salt, let expected, _):
            guard let salted = SCRAM.saltedPassword(password, salt: salt, iterations: iterations) else { return false }
            return Self.constantTimeEqual(SCRAM.storedKey(saltedPassword: salted), expected)
        }
    }

    /// Makes a `SCRAM-SHA-256$` entry of `password`: `iterations` rounds (4096 by default)
    /// and a random 16-byte salt unless one is given. The password must be printable ASCII
    /// (see ``MakeError/passwordNotPrintableASCII``).
    public static func makeSCRAMSHA256(
        password: [UInt8], iterations: Int = defaultSCRAMIterations, salt: [UInt8]? = nil
    ) throws(MakeError) -> PasswordHash {
        guard iterations >= 1, iterations <= maximumIterations else { throw .invalidIterations(iterations) }
        guard password.allSatisfy({ $0 >= 0x20 && $0 <= 0x7E }) else { throw .passwordNotPrintableASCII }
        let salt = salt ?? Self.randomBytes(scramSaltLength)
        guard (1...maximumSCRAMSaltLength).contains(salt.count) else { throw .invalidSaltLength(salt.count) }
        guard let salted = SCRAM.saltedPassword(password, salt: salt, iterations: iterations) else {
            throw .derivationFailed
        }
        return .scramSHA256(
            iterations: iterations, salt: salt, storedKey: SCRAM.storedKey(saltedPassword: salted),
            serverKey: SCRAM.serverKey(saltedPassword: salted))
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
        randomBytes(saltLength)
    }

    static func randomBytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: 0...UInt8.max, using: &generator) }
    }
}
