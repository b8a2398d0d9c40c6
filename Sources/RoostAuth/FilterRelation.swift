/// Relations between MQTT topic filters, as sets of the topic names they match.
///
/// Pure functions, safe from any thread. Levels compare byte-wise (no Unicode
/// normalisation), `+` matches exactly one level (possibly empty), `#` matches its parent and
/// any number of levels below, and a filter whose first level is a wildcard matches no topic
/// name starting with `$` [MQTT-4.7.2-1]. An invalid filter matches nothing, so every
/// relation involving one is `false`.
public enum FilterRelation {
    /// Whether `filter` matches the topic name `topic`; `false` when the filter is invalid.
    public static func matches(filter: String, topic: String) -> Bool {
        guard let compiled = CompiledFilter(filter) else { return false }
        return compiled.matches(topic: topic)
    }

    /// Whether every topic name matched by `b` is also matched by `a`.
    ///
    /// `covers("a/#", "a/+/c")` is true; `covers("a/+", "a/#")` is false (`a/#` matches `a`).
    public static func covers(_ a: String, _ b: String) -> Bool {
        guard let a = CompiledFilter(a), let b = CompiledFilter(b) else { return false }
        return a.covers(b)
    }

    /// Whether some topic name is matched by both `a` and `b`.
    ///
    /// `intersects("a/+", "+/b")` is true (`a/b`); `intersects("#", "$SYS/x")` is false.
    public static func intersects(_ a: String, _ b: String) -> Bool {
        guard let a = CompiledFilter(a), let b = CompiledFilter(b) else { return false }
        return a.intersects(b)
    }
}
