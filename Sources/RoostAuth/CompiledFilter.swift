/// One level of a parsed MQTT topic filter.
enum FilterLevel: Sendable, Hashable {
    /// A level that must equal these bytes exactly (it may be empty).
    case literal([UInt8])
    /// `+`: exactly one level, possibly empty.
    case single
    /// `#`: the parent level and any number of levels below it; only ever the last level.
    case multi

    var isWildcard: Bool {
        if case .literal = self { return false }
        return true
    }

    /// Whether this is a literal level whose first byte is `$`.
    var isDollarLiteral: Bool {
        if case .literal(let bytes) = self { return bytes.first == UInt8(ascii: "$") }
        return false
    }
}

/// An MQTT topic filter split into levels once, so that matching scans bytes without
/// allocating. A plain value, `Sendable`.
///
/// Only valid filters can be built: not empty, no U+0000, `+` and `#` alone in their level,
/// `#` last [MQTT-4.7.1-1, MQTT-4.7.1-2].
struct CompiledFilter: Sendable, Hashable {
    /// The levels, never empty; `.multi` only as the last one.
    let levels: [FilterLevel]

    /// Parses and validates a filter's UTF-8 bytes; nil when they are not a valid filter.
    init?(_ bytes: some Collection<UInt8>) {
        guard !bytes.isEmpty else { return nil }
        var levels: [FilterLevel] = []
        var current: [UInt8] = []
        var sawMulti = false
        func finish(_ level: [UInt8]) -> FilterLevel? {
            if level.count == 1 && level[0] == UInt8(ascii: "+") { return .single }
            if level.count == 1 && level[0] == UInt8(ascii: "#") { return .multi }
            if level.contains(UInt8(ascii: "+")) || level.contains(UInt8(ascii: "#")) { return nil }
            return .literal(level)
        }
        for byte in bytes {
            if byte == 0 { return nil }
            if byte == UInt8(ascii: "/") {
                guard !sawMulti, let level = finish(current) else { return nil }
                if level == .multi { sawMulti = true }
                levels.append(level)
                current.removeAll(keepingCapacity: true)
            } else {
                current.append(byte)
            }
        }
        guard !sawMulti, let last = finish(current) else { return nil }
        levels.append(last)
        self.levels = levels
    }

    /// Parses a filter given as a string; nil when it is not a valid filter.
    init?(_ text: String) {
        self.init(text.utf8)
    }

    /// Whether the topic name (UTF-8 bytes, assumed free of wildcards) matches; the
    /// zero-length name is no topic and matches nothing.
    ///
    /// A filter whose first level is a wildcard does not match a topic name that starts with
    /// `$` [MQTT-4.7.2-1].
    func matches(topic: UnsafeBufferPointer<UInt8>) -> Bool {
        let count = topic.count
        guard count > 0 else { return false }
        if levels[0].isWildcard, count > 0, topic[0] == UInt8(ascii: "$") { return false }
        var cursor = 0
        var exhausted = false
        for level in levels {
            if case .multi = level { return true }
            if exhausted { return false }
            var end = cursor
            while end < count && topic[end] != UInt8(ascii: "/") { end += 1 }
            if case .literal(let expected) = level {
                guard expected.count == end - cursor else { return false }
                var offset = 0
                while offset < expected.count {
                    if expected[offset] != topic[cursor + offset] { return false }
                    offset += 1
                }
            }
            if end == count {
                exhausted = true
            } else {
                cursor = end + 1
            }
        }
        return exhausted
    }

    /// Whether the topic name matches; see ``matches(topic:)-(UnsafeBufferPointer<UInt8>)``.
    func matches(topic: String) -> Bool {
        var topic = topic
        return topic.withUTF8 { matches(topic: $0) }
    }

    /// Whether every topic name matched by `other` is also matched by this filter.
    ///
    /// Topic names have at least one character, so the zero-length name (one empty level)
    /// is no topic: `#` and `/#` do not match their "parent" there, and `+/#` covers `#`.
    func covers(_ other: CompiledFilter) -> Bool {
        let a = levels
        let b = other.levels
        // A wildcard first level matches no `$` topic, and `other` matches only `$` topics.
        if a[0].isWildcard && b[0].isDollarLiteral { return false }
        var index = 0
        while true {
            if index == a.count { return index == b.count }
            if case .multi = a[index] { return true }
            if index == b.count { return false }
            switch (a[index], b[index]) {
            case (_, .multi):
                // `other` matches the parent too, which needs no level here; unless that
                // parent is the zero-length name, `a` must be `#` here (handled above).
                let parentIsNoTopic = index == 0 || (index == 1 && b[0] == .literal([]))
                guard parentIsNoTopic, case .single = a[index], index + 1 < a.count, a[index + 1] == .multi else {
                    return false
                }
                return true
            case (.single, _):
                break
            case (.literal(let mine), .literal(let theirs)):
                guard mine == theirs else { return false }
            case (.literal, .single):
                return false
            case (.multi, _):
                return true
            }
            index += 1
        }
    }

    /// Whether some topic name is matched by both filters.
    ///
    /// The zero-length name is no topic: `+` and `/#` share only that, so they do not
    /// intersect.
    func intersects(_ other: CompiledFilter) -> Bool {
        let a = levels
        let b = other.levels
        if a[0].isWildcard && b[0].isDollarLiteral { return false }
        if b[0].isWildcard && a[0].isDollarLiteral { return false }
        // Whether a common topic's first level must be empty (a wildcard facing a wildcard
        // could pick any level).
        let firstLevelEmpty = a[0] == .literal([]) || b[0] == .literal([])
        var index = 0
        while true {
            let aEnded = index == a.count
            let bEnded = index == b.count
            // A common topic ending here is only a topic if it is not the zero-length name.
            let endingHereIsATopic = !(index == 1 && firstLevelEmpty)
            if aEnded && bEnded { return endingHereIsATopic }
            if !aEnded, case .multi = a[index] { return !bEnded || endingHereIsATopic }
            if !bEnded, case .multi = b[index] { return !aEnded || endingHereIsATopic }
            if aEnded || bEnded { return false }
            if case .literal(let mine) = a[index], case .literal(let theirs) = b[index], mine != theirs {
                return false
            }
            index += 1
        }
    }
}
