/// The answer to a user name and password checked against a ``PasswordFile``.
public enum PasswordCheck: Sendable, Equatable {
    /// The user is in the file and the password matches.
    case ok
    /// No line has this user name.
    case unknownUser
    /// The user is in the file and the password does not match.
    case wrongPassword
}

/// A mosquitto password file: one `username:hash` line per user, as `mosquitto_passwd`
/// writes it (see ``PasswordHash`` for the `$6$` and `$7$` formats), plus Roost's
/// `SCRAM-SHA-256$` entries (which mosquitto cannot read).
///
/// Lines are split on `\n` (a `\r` before it is ignored); blanks and tabs around the user
/// name and the hash are ignored, as mosquitto does. Blank lines and lines whose first
/// non-blank character is `#` are kept as they are but mean nothing. Unlike the mosquitto
/// broker, which logs and skips a bad line, any bad line is an error that names the file and
/// line, and so is a second line for the same user. User names compare byte-wise (no Unicode
/// normalisation).
///
/// A value type, `Sendable`; checking is read-only and safe from any thread. Editing
/// (``PasswordFile/setPassword(_:for:)`` and friends) keeps every other line as it was.
public struct PasswordFile: Sendable {
    /// One line of the file as read or edited.
    enum Line: Sendable {
        /// A blank or comment line, kept verbatim.
        case other(String)
        /// A user's entry; `text` is the line as read, or nil once edited.
        case entry(username: String, hash: PasswordHash, text: String?)
    }

    /// Where the text came from: a path or a caller's label; used in errors.
    public let source: String
    var lines: [Line]
    /// User name bytes to index in `lines`.
    var index: [[UInt8]: Int]

    /// Parses the text of a password file; `source` names it in errors.
    public init(parsing text: String, source: String) throws(AuthFileError) {
        try self.init(bytes: Array(text.utf8), source: source)
    }

    /// Parses the bytes of a password file; a line that is not UTF-8 is an error.
    init(bytes: [UInt8], source: String) throws(AuthFileError) {
        self.source = source
        self.lines = []
        self.index = [:]
        var lineNumbers: [[UInt8]: Int] = [:]
        for line in TextLines.split(bytes) {
            guard let raw = String(validating: line.raw, as: UTF8.self) else {
                throw AuthFileError(file: source, line: line.number, reason: .notUTF8)
            }
            let content = TextLines.trimmed(line.raw)
            if content.isEmpty || content.first == UInt8(ascii: "#") {
                lines.append(.other(raw))
                continue
            }
            guard let colon = content.firstIndex(of: UInt8(ascii: ":")) else {
                throw AuthFileError(file: source, line: line.number, reason: .missingColon)
            }
            let nameBytes = TextLines.trimmed(content[..<colon])
            guard !nameBytes.isEmpty else {
                throw AuthFileError(file: source, line: line.number, reason: .emptyUsername)
            }
            let username = String(decoding: nameBytes, as: UTF8.self)
            let hashText = String(decoding: TextLines.trimmed(content[(colon + 1)...]), as: UTF8.self)
            let hash: PasswordHash
            do {
                hash = try PasswordHash(parsing: hashText[...])
            } catch {
                throw AuthFileError(file: source, line: line.number, reason: error)
            }
            let key = Array(nameBytes)
            if let first = lineNumbers[key] {
                throw AuthFileError(
                    file: source, line: line.number, reason: .duplicateUser(username, firstLine: first))
            }
            lineNumbers[key] = line.number
            index[key] = lines.count
            lines.append(.entry(username: username, hash: hash, text: raw))
        }
    }

    /// An empty file (what `-c` starts from); `source` names it in errors.
    public init(empty source: String) {
        self.source = source
        self.lines = []
        self.index = [:]
    }

    /// Reads and parses the file at `path`.
    public static func load(path: String) throws(AuthFileError) -> PasswordFile {
        try PasswordFile(bytes: FileIO.read(path: path), source: path)
    }

    /// The user names in file order.
    public var usernames: [String] {
        lines.compactMap {
            if case .entry(let username, _, _) = $0 { return username }
            return nil
        }
    }

    /// The hash stored for `username`, if any.
    public func hash(for username: String) -> PasswordHash? {
        guard let position = index[Array(username.utf8)], case .entry(_, let hash, _) = lines[position] else {
            return nil
        }
        return hash
    }

    /// Checks a user name and password (a plain CONNECT password, also for SCRAM entries).
    ///
    /// Takes about as long for an unknown user as for a known one: it hashes the password
    /// against a dummy entry shaped like the file's first `$7$` or `SCRAM-SHA-256$` entry
    /// (`$7$` with 101 iterations when there is none) and throws the result away. Digests
    /// compare in constant time.
    public func verify(username: String, password: [UInt8]) -> PasswordCheck {
        guard let hash = hash(for: username) else {
            _ = dummyHash.matches(password)
            return .unknownUser
        }
        return hash.matches(password) ? .ok : .wrongPassword
    }

    /// The entry hashed for unknown users, shaped like the real ones.
    var dummyHash: PasswordHash {
        for case .entry(_, let hash, _) in lines {
            switch hash {
            case .pbkdf2SHA512(let iterations, _, _):
                return .pbkdf2SHA512(
                    iterations: iterations, salt: Array(repeating: 0x5A, count: PasswordHash.saltLength),
                    hash: Array(repeating: 0, count: PasswordHash.hashLength))
            case .scramSHA256(let iterations, _, _, _):
                let zero = Array(repeating: UInt8(0), count: PasswordHash.scramKeyLength)
                return .scramSHA256(
                    iterations: iterations, salt: Array(repeating: 0x5A, count: PasswordHash.scramSaltLength),
                    storedKey: zero, serverKey: zero)
            case .sha512:
                continue
            }
        }
        return .pbkdf2SHA512(
            iterations: PasswordHash.defaultIterations, salt: Array(repeating: 0x5A, count: PasswordHash.saltLength),
            hash: Array(repeating: 0, count: PasswordHash.hashLength))
    }

    /// Makes a `$7$` entry (the text after `username:`) that mosquitto 2.x accepts: PBKDF2
    /// with HMAC-SHA512, 64 bytes, `iterations` rounds (mosquitto_passwd's 101 by default)
    /// and a random 12-byte salt unless `salt` (12 bytes) is given.
    public static func makeHash(
        password: [UInt8], iterations: Int = PasswordHash.defaultIterations, salt: [UInt8]? = nil
    ) throws(PasswordHash.MakeError) -> String {
        try PasswordHash.make(password: password, iterations: iterations, salt: salt).encoded
    }
}
