import RoostCore

/// A subscription index of 100,000 filters shaped like a device fleet's:
///
/// - 90,000 exact filters `site/S/device/D/sensor` (900 sites x 100 devices),
/// - 9,000 `site/S/device/D/+` (every reading of one device, sites 0-89),
/// - 900 `site/S/device/+/sensor` (one reading of every device of a site),
/// - 99 `site/S/#` (everything of a site, sites 0-98),
/// - 1 `site/+/device/+/sensor` (one reading of the whole fleet).
///
/// Keys are subscriber numbers, as the broker keys its index by session.
enum TopicIndexSample {
    static let filterCount = 100_000

    static func make() -> TopicTree<Int, Int> {
        var tree = TopicTree<Int, Int>()
        var key = 0
        func add(_ filter: String) {
            key += 1
            tree.insert(filter: filter, key: key, value: key)
        }
        for site in 0..<900 {
            for device in 0..<100 { add("site/\(site)/device/\(device)/sensor") }
        }
        for site in 0..<90 {
            for device in 0..<100 { add("site/\(site)/device/\(device)/+") }
        }
        for site in 0..<900 { add("site/\(site)/device/+/sensor") }
        for site in 0..<99 { add("site/\(site)/#") }
        add("site/+/device/+/sensor")
        precondition(tree.count == filterCount, "the sample index should hold \(filterCount) filters, not \(tree.count)")
        return tree
    }

    /// Topics to match, with how many filters each matches.
    static let topics: [(name: String, topic: String, matches: Int)] = [
        // exact, `site/42/device/7/+`, `site/42/device/+/sensor`, `site/42/#`, `site/+/device/+/sensor`
        ("5-matches", "site/42/device/7/sensor", 5),
        // only `site/+/device/+/sensor`: a site without its own filters
        ("1-match", "site/950/device/7/sensor", 1),
        // nothing below `fleet`
        ("no-match", "fleet/1/status", 0),
    ]
}
