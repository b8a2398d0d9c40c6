#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Why the durable store could not open, read or write. Each message names the file and says
/// what an operator can do about it.
public enum StoreError: Error, CustomStringConvertible, Equatable {
    /// Another process (or another open in this one) holds the directory's lock.
    case locked(directory: String, lockFile: String, pid: Int32?)
    /// SQLite cannot read the database: not a database, failed integrity check, undecodable row.
    case corrupt(path: String, detail: String)
    /// The database was written by a newer roost.
    case newerSchema(path: String, found: Int, supported: Int)
    /// The data directory does not exist and could not be created.
    case cannotCreateDirectory(path: String, errno: Int32)
    /// A file in the data directory could not be opened for writing.
    case notWritable(path: String, errno: Int32)
    /// `roost db` on a directory without a database.
    case noDatabase(path: String)
    /// The store was closed.
    case closed(path: String)
    /// Any other SQLite failure: what was being done, the result code and SQLite's message.
    case sqlite(path: String, action: String, code: Int32, message: String)

    public var description: String {
        switch self {
        case .locked(let directory, let lockFile, let pid):
            let holder = pid.map { "pid \($0); " } ?? ""
            return "data directory \(directory) is in use by another roost (\(holder)lock file \(lockFile)): stop that broker or use another --data-dir"
        case .corrupt(let path, let detail):
            return "\(path) is damaged (\(detail)). Roost will not delete it: move it aside to start with an empty store, or restore a backup"
        case .newerSchema(let path, let found, let supported):
            return "\(path) has schema version \(found), written by a newer roost; this roost reads up to version \(supported): run the newer roost, or move the file aside"
        case .cannotCreateDirectory(let path, let code):
            return "cannot create data directory \(path) (\(errorText(code))): create it, or use another --data-dir"
        case .notWritable(let path, let code):
            return "cannot open \(path) for writing (\(errorText(code))): fix its permissions or the disk, or use another --data-dir"
        case .noDatabase(let path):
            return "no database at \(path): check --data-dir (the broker creates the database when it first starts)"
        case .closed(let path):
            return "the store \(path) is closed"
        case .sqlite(let path, let action, let code, let message):
            return "\(path): \(action) failed: SQLite error \(code) (\(message)); check the disk and the file's permissions"
        }
    }
}

/// `strerror` text for an errno value.
func errorText(_ code: Int32) -> String {
    guard let text = strerror(code) else { return "errno \(code)" }
    return String(cString: text)
}
