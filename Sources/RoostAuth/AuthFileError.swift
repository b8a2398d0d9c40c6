/// Why a password file or ACL file could not be read, parsed or written.
///
/// Its description names the file, the line (1-based) where there is one, and what is wrong,
/// in words an operator can act on. It never contains a password hash. A plain value,
/// `Sendable`.
public struct AuthFileError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong.
    public enum Reason: Error, Sendable, Equatable {
        /// The file could not be opened or read (`strerror` text).
        case unreadable(String)
        /// The file, or its temporary copy, could not be written (`strerror` text).
        case unwritable(String)
        /// The line is not valid UTF-8.
        case notUTF8
        /// A password file line without the `:` between user name and hash.
        case missingColon
        /// A password file line with nothing before the `:`.
        case emptyUsername
        /// A user name that cannot be stored in a password file (the reason says why).
        case invalidUsername(String)
        /// A second line for a user name already given on `firstLine`.
        case duplicateUser(String, firstLine: Int)
        /// The hash after the `:` is not a `$6$` or `$7$` entry (the reason says why).
        case invalidHash(String)
        /// An ACL line whose first word is not `user`, `topic` or `pattern`.
        case unknownKeyword(String)
        /// `user` with no name after it.
        case missingUsername
        /// `topic` or `pattern` with no filter after it.
        case missingFilter(keyword: String)
        /// An access word other than `read`, `write`, `readwrite` or `deny`.
        case invalidAccess(String)
        /// A filter that is not a valid MQTT topic filter.
        case invalidFilter(String)
    }

    /// The file's path, or whatever the caller named the text (`source`).
    public var file: String
    /// The 1-based line, when the problem is on one line.
    public var line: Int?
    /// What is wrong.
    public var reason: Reason

    public init(file: String, line: Int? = nil, reason: Reason) {
        self.file = file
        self.line = line
        self.reason = reason
    }

    public var description: String {
        let place = line.map { "\(file):\($0)" } ?? file
        return "\(place): \(Self.describe(reason))"
    }

    private static func describe(_ reason: Reason) -> String {
        switch reason {
        case .unreadable(let why): return "cannot read the file (\(why))"
        case .unwritable(let why): return "cannot write the file (\(why))"
        case .notUTF8: return "the line is not valid UTF-8"
        case .missingColon: return "expected 'username:hash', found no ':'"
        case .emptyUsername: return "the user name before ':' is empty"
        case .invalidUsername(let why): return "invalid user name: \(why)"
        case .duplicateUser(let name, let first): return "user '\(name)' is already defined on line \(first)"
        case .invalidHash(let why): return "invalid password hash: \(why)"
        case .unknownKeyword(let word):
            return "unknown keyword '\(word)' (expected 'user', 'topic' or 'pattern'; comments start with '#')"
        case .missingUsername: return "'user' needs a user name"
        case .missingFilter(let keyword): return "'\(keyword)' needs a topic filter"
        case .invalidAccess(let word):
            return "invalid access '\(word)' (expected read, write, readwrite or deny; a filter with spaces needs one)"
        case .invalidFilter(let filter): return "'\(filter)' is not a valid MQTT topic filter"
        }
    }
}
