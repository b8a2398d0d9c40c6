/// Editing, for `roost passwd`: every line not edited is written back exactly as read.
extension PasswordFile {
    /// Checks that `username` can be stored and read back as the same name.
    ///
    /// Refused: empty names, `:` (it ends the name), line breaks, U+0000, blanks or tabs at
    /// either end (mosquitto trims them), and a leading `#` (the line would be a comment).
    public static func validate(username: String) throws(AuthFileError.Reason) {
        guard !username.isEmpty else { throw .invalidUsername("it is empty") }
        if username.contains(":") { throw .invalidUsername("it contains ':'") }
        if username.unicodeScalars.contains(where: { $0 == "\n" || $0 == "\r" || $0 == "\0" }) {
            throw .invalidUsername("it contains a line break or U+0000")
        }
        let bytes = Array(username.utf8)
        if TextLines.trimmed(bytes[...]).count != bytes.count {
            throw .invalidUsername("it starts or ends with a blank or tab")
        }
        if username.first == "#" { throw .invalidUsername("it starts with '#', which marks a comment") }
    }

    /// Sets `username`'s hash: replaces its line in place, or appends a line for a new user.
    public mutating func setPassword(_ hash: PasswordHash, for username: String) throws(AuthFileError) {
        do {
            try Self.validate(username: username)
        } catch {
            throw AuthFileError(file: source, reason: error)
        }
        let key = Array(username.utf8)
        if let position = index[key] {
            lines[position] = .entry(username: username, hash: hash, text: nil)
        } else {
            index[key] = lines.count
            lines.append(.entry(username: username, hash: hash, text: nil))
        }
    }

    /// Removes `username`'s line; returns whether there was one.
    @discardableResult
    public mutating func remove(username: String) -> Bool {
        let key = Array(username.utf8)
        guard let position = index[key] else { return false }
        lines.remove(at: position)
        index = [:]
        for (offset, line) in lines.enumerated() {
            if case .entry(let name, _, _) = line { index[Array(name.utf8)] = offset }
        }
        return true
    }

    /// The file's text: unedited lines as read, edited ones as `username:hash`, each ending
    /// with `\n`.
    public func rendered() -> String {
        var text = ""
        for line in lines {
            switch line {
            case .other(let raw):
                text += raw
            case .entry(_, _, let raw?):
                text += raw
            case .entry(let username, let hash, nil):
                text += "\(username):\(hash.encoded)"
            }
            text += "\n"
        }
        return text
    }

    /// Writes ``rendered()`` to `path` atomically: a temporary file in the same directory,
    /// flushed, then renamed over `path`. A new file gets mode 0600; an existing one keeps
    /// its mode.
    public func write(to path: String) throws(AuthFileError) {
        try FileIO.writeAtomically(path: path, bytes: Array(rendered().utf8), newFileMode: 0o600)
    }
}
