/// Reads an ACL file line by line into ``ACLFile``'s groups. Used once per load.
struct ACLParser {
    let source: String
    var anonymousRules = ACLFile.RuleSet()
    var userRules: [[UInt8]: ACLFile.RuleSet] = [:]
    var fixedPatterns = ACLFile.RuleSet()
    var templates: [ACLFile.Template] = []
    /// The name from the last `user` line; nil before the first.
    var currentUser: [UInt8]?

    init(source: String) {
        self.source = source
    }

    mutating func parse(_ line: TextLines.Line) throws(AuthFileError) {
        guard String(validating: line.raw, as: UTF8.self) != nil else { throw error(line, .notUTF8) }
        let content = Self.trimmedSpace(line.raw)
        guard let first = content.first, first != UInt8(ascii: "#") else { return }
        let (keywordBytes, rest) = Self.firstWord(content)
        let keyword = String(decoding: keywordBytes, as: UTF8.self)
        switch keyword {
        case "user":
            guard !rest.isEmpty else { throw error(line, .missingUsername) }
            currentUser = Array(rest)
        case "topic", "pattern":
            guard !rest.isEmpty else { throw error(line, .missingFilter(keyword: keyword)) }
            let (firstWord, remainder) = Self.firstWord(rest)
            let access: ACLFile.Access
            let filterBytes: ArraySlice<UInt8>
            if remainder.isEmpty {
                access = .readWrite
                filterBytes = firstWord
            } else {
                switch String(decoding: firstWord, as: UTF8.self) {
                case "read": access = .read
                case "write": access = .write
                case "readwrite": access = .readWrite
                case "deny": access = .deny
                default: throw error(line, .invalidAccess(String(decoding: firstWord, as: UTF8.self)))
                }
                filterBytes = remainder
            }
            guard let filter = CompiledFilter(filterBytes) else {
                throw error(line, .invalidFilter(String(decoding: filterBytes, as: UTF8.self)))
            }
            let rule = ACLFile.Rule(access: access, filter: filter)
            if keyword == "topic" {
                if let currentUser {
                    userRules[currentUser, default: ACLFile.RuleSet()].append(rule)
                } else {
                    anonymousRules.append(rule)
                }
            } else if let template = Self.template(filterBytes, access: access) {
                templates.append(template)
            } else {
                fixedPatterns.append(rule)
            }
        default:
            throw error(line, .unknownKeyword(keyword))
        }
    }

    private func error(_ line: TextLines.Line, _ reason: AuthFileError.Reason) -> AuthFileError {
        AuthFileError(file: source, line: line.number, reason: reason)
    }

    /// Splits a pattern at each `%u` and `%c`; nil when it has neither.
    static func template(_ bytes: ArraySlice<UInt8>, access: ACLFile.Access) -> ACLFile.Template? {
        var pieces: [ACLFile.Template.Piece] = []
        var text: [UInt8] = []
        var substituted = false
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            let next = index + 1 < bytes.endIndex ? bytes[index + 1] : nil
            if byte == UInt8(ascii: "%"), next == UInt8(ascii: "u") || next == UInt8(ascii: "c") {
                if !text.isEmpty { pieces.append(.text(text)) }
                text = []
                if next == UInt8(ascii: "u") {
                    pieces.append(.username)
                } else {
                    pieces.append(.clientID)
                }
                substituted = true
                index += 2
            } else {
                text.append(byte)
                index += 1
            }
        }
        guard substituted else { return nil }
        if !text.isEmpty { pieces.append(.text(text)) }
        return ACLFile.Template(access: access, pieces: pieces)
    }

    /// The first word (up to a blank or tab) and the rest with blanks trimmed.
    static func firstWord(_ bytes: ArraySlice<UInt8>) -> (ArraySlice<UInt8>, ArraySlice<UInt8>) {
        guard let end = bytes.firstIndex(where: TextLines.isBlank) else { return (bytes, bytes[bytes.endIndex...]) }
        return (bytes[..<end], TextLines.trimmed(bytes[end...]))
    }

    /// `bytes` without blanks and tabs in front and any white space at the end (mosquitto
    /// trims `isspace` at the end).
    static func trimmedSpace(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var result = TextLines.trimmed(bytes)
        while let last = result.last, last == 0x0B || last == 0x0C || last == 0x0D || TextLines.isBlank(last) {
            result.removeLast()
        }
        return result
    }
}
