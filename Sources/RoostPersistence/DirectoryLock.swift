#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The exclusive lock on a data directory: `flock` on `<dir>/roost.lock`, which holds the pid of
/// the holder for the error message of the next one.
///
/// `flock` belongs to the open file description, so two opens in one process conflict too, and
/// the kernel drops the lock when the process dies: a killed broker never leaves a stale lock.
/// The file itself stays; its presence means nothing.
struct DirectoryLock: Sendable {
    let path: String
    private let descriptor: Int32

    static func acquire(directory: String) throws(StoreError) -> DirectoryLock {
        let path = directory + "/roost.lock"
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw .notWritable(path: path, errno: errno) }
        if flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            let holder = readPID(descriptor)
            close(descriptor)
            if code == EWOULDBLOCK || code == EAGAIN {
                throw .locked(directory: directory, lockFile: path, pid: holder)
            }
            throw .notWritable(path: path, errno: code)
        }
        let text = Array("\(getpid())\n".utf8)
        let written = text.withUnsafeBytes { bytes in
            ftruncate(descriptor, 0) == 0 ? pwrite(descriptor, bytes.baseAddress, bytes.count, 0) : -1
        }
        guard written == text.count else {
            let code = errno
            close(descriptor)
            throw .notWritable(path: path, errno: code)
        }
        return DirectoryLock(path: path, descriptor: descriptor)
    }

    /// Releases the lock (closing the descriptor drops the `flock`).
    func release() {
        close(descriptor)
    }

    private static func readPID(_ descriptor: Int32) -> Int32? {
        var bytes = [UInt8](repeating: 0, count: 32)
        let count = bytes.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return nil }
        let text = String(decoding: bytes[0..<count], as: UTF8.self)
        return Int32(text.trimmingSuffix(while: { $0 == "\n" || $0 == " " }))
    }
}

extension String {
    fileprivate func trimmingSuffix(while predicate: (Character) -> Bool) -> Substring {
        var end = endIndex
        while end > startIndex, predicate(self[index(before: end)]) { end = index(before: end) }
        return self[startIndex..<end]
    }
}

/// `mkdir -p`: creates `path` and its missing parents.
func makeDirectories(_ path: String) throws(StoreError) {
    var current = path.hasPrefix("/") ? "" : "."
    for component in path.split(separator: "/", omittingEmptySubsequences: true) {
        current += "/" + component
        if mkdir(current, 0o755) != 0 && errno != EEXIST {
            throw .cannotCreateDirectory(path: path, errno: errno)
        }
    }
    var status = stat()
    guard stat(path, &status) == 0 else { throw .cannotCreateDirectory(path: path, errno: errno) }
    guard status.st_mode & S_IFMT == S_IFDIR else { throw .cannotCreateDirectory(path: path, errno: ENOTDIR) }
}
