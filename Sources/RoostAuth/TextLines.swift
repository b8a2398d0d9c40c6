/// Splitting configuration text into lines, on bytes (a `String` split would treat `\r\n`
/// as one character and merge a `:` with a following combining mark).
enum TextLines {
    /// One line: its 1-based number and its bytes without the `\n` and a `\r` before it.
    struct Line {
        var number: Int
        var raw: ArraySlice<UInt8>
    }

    /// The lines of `bytes`; a final `\n` ends the last line rather than starting one.
    static func split(_ bytes: [UInt8]) -> [Line] {
        var result: [Line] = []
        var start = 0
        var number = 1
        while start < bytes.count {
            var end = start
            while end < bytes.count && bytes[end] != UInt8(ascii: "\n") { end += 1 }
            var lineEnd = end
            if lineEnd > start && bytes[lineEnd - 1] == UInt8(ascii: "\r") { lineEnd -= 1 }
            result.append(Line(number: number, raw: bytes[start..<lineEnd]))
            number += 1
            start = end + 1
        }
        return result
    }

    static func isBlank(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t")
    }

    /// `bytes` without blanks and tabs at either end.
    static func trimmed(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var result = bytes
        while let first = result.first, isBlank(first) { result.removeFirst() }
        while let last = result.last, isBlank(last) { result.removeLast() }
        return result
    }
}
