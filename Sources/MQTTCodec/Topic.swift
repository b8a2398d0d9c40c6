// Topic names, topic filters and shared-subscription filters (MQTT 5.0 sections 4.7 and 4.8.2).
//
// All checks and matching work on the UTF-8 bytes of the strings. No Unicode normalisation
// takes place: two topics are equal only when their bytes are equal [MQTT-4.7.3-4].

/// Validation and matching of MQTT topic names and topic filters.
///
/// Concurrency: a namespace of pure, stateless functions; safe to call from any thread.
public enum Topic {
    /// The largest number of UTF-8 bytes in an MQTT UTF-8 Encoded String [MQTT-1.5.4].
    static let maximumLength = 65_535

    static let slash = UInt8(ascii: "/")
    static let plus = UInt8(ascii: "+")
    static let hash = UInt8(ascii: "#")
    static let dollar = UInt8(ascii: "$")
    static let nul: UInt8 = 0

    /// The prefix that marks a shared subscription [MQTT-4.8.2].
    static let sharePrefix = "$share/"

    /// Returns whether `name` is a valid topic name for PUBLISH.
    ///
    /// A valid name is 1...65535 UTF-8 bytes long and contains neither wildcard character
    /// (`+`, `#`) nor U+0000 [MQTT-4.7.3-1], [MQTT-4.7.1-1], [MQTT-4.7.3-2].
    public static func isValidName(_ name: String) -> Bool {
        let bytes = name.utf8
        guard (1...maximumLength).contains(bytes.count) else { return false }
        for byte in bytes where byte == plus || byte == hash || byte == nul {
            return false
        }
        return true
    }

    /// Returns whether `filter` is a valid topic filter for SUBSCRIBE and UNSUBSCRIBE.
    ///
    /// A valid filter is 1...65535 UTF-8 bytes long, contains no U+0000, uses `#` only as the
    /// whole last level and `+` only as a whole level [MQTT-4.7.1-2], [MQTT-4.7.1-3].
    public static func isValidFilter(_ filter: String) -> Bool {
        let bytes = filter.utf8
        guard (1...maximumLength).contains(bytes.count) else { return false }
        var atLevelStart = true
        var afterPlus = false
        var afterHash = false
        for byte in bytes {
            // Nothing may follow '#'; only a level separator may follow '+'.
            if afterHash || (afterPlus && byte != slash) { return false }
            switch byte {
            case nul:
                return false
            case slash:
                atLevelStart = true
                afterPlus = false
            case plus:
                guard atLevelStart else { return false }
                atLevelStart = false
                afterPlus = true
            case hash:
                guard atLevelStart else { return false }
                afterHash = true
            default:
                atLevelStart = false
            }
        }
        return true
    }

    /// Returns whether the topic filter `filter` matches the topic name `name`.
    ///
    /// `+` matches exactly one level and `#` matches its own level and every level below it,
    /// so `sport/#` also matches `sport`. Names beginning with `$` are not matched by filters
    /// whose first level is `+` or `#` [MQTT-4.7.2-1]. Empty levels are real levels, so
    /// `a//b` has three levels.
    ///
    /// Inputs are expected to be valid. For invalid filters a wildcard character counts as a
    /// wildcard only when it forms a whole level (and, for `#`, the last level); otherwise it
    /// is compared literally.
    public static func matches(filter: String, name: String) -> Bool {
        // Fast path: native Swift strings expose contiguous UTF-8 storage.
        let contiguous = filter.utf8.withContiguousStorageIfAvailable { filterBytes in
            name.utf8.withContiguousStorageIfAvailable { nameBytes in
                matchBytes(filter: filterBytes, name: nameBytes)
            }
        }
        if case .some(.some(let result)) = contiguous {
            return result
        }
        return matchBytes(filter: filter.utf8, name: name.utf8)
    }

    /// Parses a shared subscription filter of the form `$share/{ShareName}/{filter}`.
    ///
    /// Returns `nil` when `filter` does not start with `$share/` (it is an ordinary filter).
    /// Throws ``SharedSubscriptionError/malformed`` when it does, but the share name is empty
    /// or contains `+`, `#`, `/` or U+0000, or the filter part is missing, empty or not a
    /// valid topic filter [MQTT-4.8.2-1], [MQTT-4.8.2-2].
    public static func parseShared(
        _ filter: String
    ) throws(SharedSubscriptionError) -> (group: String, filter: String)? {
        let bytes = filter.utf8
        guard bytes.starts(with: sharePrefix.utf8) else { return nil }
        let groupStart = bytes.index(bytes.startIndex, offsetBy: sharePrefix.utf8.count)
        // The share name ends at the next '/', so it can never contain one itself.
        guard let groupEnd = bytes[groupStart...].firstIndex(of: slash), groupEnd != groupStart else {
            throw .malformed
        }
        for byte in bytes[groupStart..<groupEnd] where byte == plus || byte == hash || byte == nul {
            throw .malformed
        }
        let innerFilter = String(decoding: bytes[bytes.index(after: groupEnd)...], as: UTF8.self)
        guard isValidFilter(innerFilter) else { throw .malformed }
        let group = String(decoding: bytes[groupStart..<groupEnd], as: UTF8.self)
        return (group: group, filter: innerFilter)
    }

    /// Level-by-level matcher over raw UTF-8 bytes; allocation free.
    ///
    /// Both cursors always sit at the start of the current level. A level ends at `/` or at the
    /// end of the collection, so a trailing `/` introduces a final empty level.
    @inline(__always)
    static func matchBytes<F: Collection, N: Collection>(
        filter: F,
        name: N
    ) -> Bool where F.Element == UInt8, N.Element == UInt8 {
        var f = filter.startIndex
        var n = name.startIndex
        let nameIsSystem = name.first == dollar
        var isFirstLevel = true

        while true {
            // 1. Wildcard levels.
            var isPlusLevel = false
            if f != filter.endIndex {
                let next = filter.index(after: f)
                if next == filter.endIndex && filter[f] == hash {
                    // '#' as the last level matches this level and everything below.
                    return !(isFirstLevel && nameIsSystem)
                }
                if filter[f] == plus && (next == filter.endIndex || filter[next] == slash) {
                    if isFirstLevel && nameIsSystem { return false }
                    isPlusLevel = true
                    f = next
                    while n != name.endIndex && name[n] != slash {
                        name.formIndex(after: &n)
                    }
                }
            }

            // 2. Literal levels: bytes must agree up to the end of the level in both.
            if !isPlusLevel {
                while f != filter.endIndex && filter[f] != slash {
                    guard n != name.endIndex, name[n] == filter[f] else { return false }
                    filter.formIndex(after: &f)
                    name.formIndex(after: &n)
                }
                // The filter level is finished; the name level must be finished too.
                if n != name.endIndex && name[n] != slash { return false }
            }

            // 3. Both cursors now sit at a '/' or at the end.
            let filterDone = f == filter.endIndex
            let nameDone = n == name.endIndex
            if filterDone { return nameDone }
            if nameDone {
                // The name has no more levels; only a trailing "/#" can still match (parent rule).
                let rest = filter.index(after: f)
                return rest != filter.endIndex
                    && filter[rest] == hash
                    && filter.index(after: rest) == filter.endIndex
            }
            filter.formIndex(after: &f)
            name.formIndex(after: &n)
            isFirstLevel = false
        }
    }
}

/// The error thrown by ``Topic/parseShared(_:)`` for a malformed `$share/...` filter.
public enum SharedSubscriptionError: Error, Equatable {
    /// The share name or the filter part of a `$share/{ShareName}/{filter}` string is invalid.
    case malformed
}
