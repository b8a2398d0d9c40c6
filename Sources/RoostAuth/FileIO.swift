#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Whole-file reads and atomic replacement with plain POSIX calls. Blocking: call from a
/// thread that may block (startup, a command-line tool), never from an event loop.
enum FileIO {
    /// The bytes of the file at `path`.
    static func read(path: String) throws(AuthFileError) -> [UInt8] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw AuthFileError(file: path, reason: .unreadable(errnoText())) }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { systemRead(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw AuthFileError(file: path, reason: .unreadable(errnoText()))
            }
            if count == 0 { return bytes }
            bytes.append(contentsOf: chunk[0..<count])
        }
    }

    /// Replaces the file at `path` with `bytes`: writes a temporary file beside it, flushes
    /// it, renames it over `path`, then flushes the directory. A reader sees the old file or
    /// the new one, never a mix. A new file gets `newFileMode`; an existing one keeps its mode.
    static func writeAtomically(path: String, bytes: [UInt8], newFileMode: mode_t) throws(AuthFileError) {
        var status = stat()
        let mode: mode_t = stat(path, &status) == 0 ? status.st_mode & 0o7777 : newFileMode
        let directory = directoryName(path)
        let temporary = "\(directory)/.\(baseName(path)).tmp-\(getpid())"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard descriptor >= 0 else { throw AuthFileError(file: path, reason: .unwritable(errnoText())) }
        var failure: String?
        // The umask may have cleared bits; set the mode exactly.
        if fchmod(descriptor, mode) != 0 { failure = errnoText() }
        var offset = 0
        while failure == nil && offset < bytes.count {
            let written = bytes.withUnsafeBytes { buffer -> Int in
                guard let base = buffer.baseAddress else { return 0 }
                return systemWrite(descriptor, base + offset, buffer.count - offset)
            }
            if written < 0 {
                if errno == EINTR { continue }
                failure = errnoText()
            } else {
                offset += written
            }
        }
        if failure == nil && fsync(descriptor) != 0 { failure = errnoText() }
        if close(descriptor) != 0 && failure == nil { failure = errnoText() }
        if failure == nil && rename(temporary, path) != 0 { failure = errnoText() }
        if let failure {
            unlink(temporary)
            throw AuthFileError(file: path, reason: .unwritable(failure))
        }
        let directoryDescriptor = open(directory, O_RDONLY | O_CLOEXEC)
        if directoryDescriptor >= 0 {
            _ = fsync(directoryDescriptor)
            close(directoryDescriptor)
        }
    }

    /// Whether something exists at `path`.
    static func exists(path: String) -> Bool {
        var status = stat()
        return stat(path, &status) == 0
    }

    static func directoryName(_ path: String) -> String {
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return "." }
        if slash == path.utf8.startIndex { return "/" }
        return String(decoding: path.utf8[..<slash], as: UTF8.self)
    }

    static func baseName(_ path: String) -> String {
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return path }
        return String(decoding: path.utf8[path.utf8.index(after: slash)...], as: UTF8.self)
    }

    static func errnoText() -> String {
        String(cString: strerror(errno))
    }
}

// Outside `FileIO`, whose `read(path:)` would hide the C function.
private func systemRead(_ descriptor: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    read(descriptor, buffer, count)
}

private func systemWrite(_ descriptor: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    write(descriptor, buffer, count)
}
