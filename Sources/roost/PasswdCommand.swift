import ArgumentParser
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import RoostAuth

/// `roost passwd`: add, change or delete a user in a mosquitto-format password file, in the
/// manner of `mosquitto_passwd`.
///
/// Without `-b` the password is prompted for twice, without echo, when standard input is a
/// terminal; otherwise one line is read from standard input. Entries are `$7$` (PBKDF2 with
/// HMAC-SHA512, 12-byte salt, 101 iterations) as mosquitto 2.x writes them, or with
/// `--scram` `SCRAM-SHA-256$` (RFC 5803 form, 16-byte salt, 4096 iterations; mosquitto cannot
/// read it; the password must be printable ASCII, as Roost does no SASLprep). Every other
/// line, comments included, is kept; the file is replaced atomically and created with mode
/// 0600.
///
/// Exit status 1 with `roost passwd: <what is wrong and what to do>` on stderr when the file
/// is missing (without `-c`), unreadable or invalid (naming the line), the user is unknown
/// (`-D`), or the password is missing or mistyped.
struct PasswdCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "passwd",
        abstract: "Manage a mosquitto-format password file (like mosquitto_passwd).",
        usage: """
            roost passwd [-c] [--scram] FILE USER
            roost passwd [-c] [--scram] -b FILE USER PASSWORD
            roost passwd -D FILE USER
            """
    )

    @Flag(name: .customShort("c"), help: "Create a new file, replacing any file at that path.")
    var create = false

    @Flag(name: .customShort("b"), help: "Batch mode: take the password from the command line.")
    var batch = false

    @Flag(name: .customShort("D"), help: "Delete the user instead of setting a password.")
    var delete = false

    @Flag(
        name: .customLong("scram"),
        help: "Write a SCRAM-SHA-256 entry (for MQTT 5 enhanced authentication; mosquitto cannot read it).")
    var scram = false

    @Option(
        name: .customLong("iterations"),
        help: "PBKDF2 iterations for the new hash (default 101, as mosquitto_passwd; 4096 with --scram).")
    var iterations: Int?

    @Argument(help: "The password file.")
    var file: String

    @Argument(help: "The user name.")
    var username: String

    @Argument(help: "The password (with -b only).")
    var password: String?

    func validate() throws {
        if create && delete { throw ValidationError("-c and -D cannot be used together.") }
        if batch && delete { throw ValidationError("-b and -D cannot be used together.") }
        if batch && password == nil { throw ValidationError("-b needs the password after the user name.") }
        if !batch && password != nil {
            throw ValidationError("A password on the command line needs -b (or leave it out to be prompted).")
        }
        if scram && delete { throw ValidationError("--scram and -D cannot be used together.") }
        if let iterations, iterations < 1 || iterations > PasswordHash.maximumIterations {
            throw ValidationError("--iterations must be from 1 to \(PasswordHash.maximumIterations).")
        }
    }

    func run() throws {
        var passwords = try create ? PasswordFile(empty: file) : load()
        if delete {
            guard passwords.remove(username: username) else {
                throw fail("user '\(username)' is not in \(file); nothing deleted")
            }
        } else {
            do {
                try PasswordFile.validate(username: username)
            } catch {
                throw fail("\(AuthFileError(file: file, reason: error)); choose another user name")
            }
            let secret = try readPassword()
            let hash: PasswordHash
            do {
                if scram {
                    hash = try PasswordHash.makeSCRAMSHA256(
                        password: secret, iterations: iterations ?? PasswordHash.defaultSCRAMIterations)
                } else {
                    hash = try PasswordHash.make(password: secret, iterations: iterations ?? PasswordHash.defaultIterations)
                }
            } catch .passwordNotPrintableASCII {
                throw fail("a SCRAM password must be printable ASCII (Roost does no SASLprep); choose another password")
            } catch {
                throw fail("could not hash the password (\(error))")
            }
            do {
                try passwords.setPassword(hash, for: username)
            } catch {
                throw fail("\(error)")
            }
        }
        do {
            try passwords.write(to: file)
        } catch {
            throw fail("\(error); check that the directory exists and is writable")
        }
    }

    private func load() throws -> PasswordFile {
        do {
            return try PasswordFile.load(path: file)
        } catch {
            if case .unreadable = error.reason, access(file, F_OK) != 0 {
                throw fail("\(file) does not exist; use -c to create it")
            }
            if case .unreadable = error.reason {
                throw fail("\(error); check the path and its permissions")
            }
            throw fail("\(error); fix or remove that line, or use -c to start a new file")
        }
    }

    private func readPassword() throws -> [UInt8] {
        if let password { return Array(password.utf8) }
        guard isatty(STDIN_FILENO) == 1 else {
            guard let line = Self.readLine(echo: true) else {
                throw fail("no password on standard input; pipe one line, or use -b FILE USER PASSWORD")
            }
            return line
        }
        Self.prompt("Password: ")
        guard let first = Self.readLine(echo: false) else { throw fail("no password entered") }
        Self.prompt("\nReenter password: ")
        let second = Self.readLine(echo: false)
        Self.prompt("\n")
        guard let second, second == first else { throw fail("the passwords do not match; try again") }
        guard !first.isEmpty else { throw fail("the password is empty; type one, or use -b for an empty one") }
        return first
    }

    private func fail(_ message: String) -> ExitCode {
        Console(quiet: false).error("roost passwd: \(message)")
        return ExitCode.failure
    }

    /// Writes a prompt to stderr (stdout may be redirected), without a newline.
    private static func prompt(_ text: String) {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            if written <= 0 { return }
            offset += written
        }
    }

    /// One line from standard input without its line end; nil at end of input before any
    /// byte. With `echo` false, the terminal's echo is off while reading.
    private static func readLine(echo: Bool) -> [UInt8]? {
        var saved = termios()
        let restore = !echo && tcgetattr(STDIN_FILENO, &saved) == 0
        if restore {
            var quiet = saved
            quiet.c_lflag &= ~tcflag_t(ECHO)
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet)
        }
        defer { if restore { tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved) } }
        var line: [UInt8] = []
        var byte: UInt8 = 0
        var sawAny = false
        while true {
            let count = read(STDIN_FILENO, &byte, 1)
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            sawAny = true
            if byte == UInt8(ascii: "\n") { break }
            line.append(byte)
        }
        if line.last == UInt8(ascii: "\r") { line.removeLast() }
        return sawAny ? line : nil
    }
}
