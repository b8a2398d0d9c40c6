import MQTTCodec
@testable import RoostCore
import XCTest

/// Tests for the subscription index `TopicTree`.
final class TopicTreeTests: XCTestCase {
    /// One reported subscription; compares filters byte-wise like the broker (String `==` would
    /// treat "\u{E9}" and "e\u{301}" as equal).
    private struct Match: Hashable {
        var filter: String
        var key: String
        var value: Int

        static func == (lhs: Match, rhs: Match) -> Bool {
            lhs.filter.utf8.elementsEqual(rhs.filter.utf8) && lhs.key == rhs.key && lhs.value == rhs.value
        }

        func hash(into hasher: inout Hasher) {
            hasher.combine(Array(filter.utf8))
            hasher.combine(key)
            hasher.combine(value)
        }
    }

    private func matches<Key: Hashable>(_ tree: TopicTree<Key, Int>, _ name: String) -> [Match] {
        var result: [Match] = []
        tree.forEachMatch(name: name) { filter, key, value in
            result.append(Match(filter: filter, key: "\(key)", value: value))
        }
        return result
    }

    func testEmptyTree() {
        let tree = TopicTree<String, Int>()
        XCTAssertEqual(tree.count, 0)
        XCTAssertEqual(tree.nodeCount, 0)
        XCTAssertTrue(matches(tree, "a/b").isEmpty)
    }

    func testInsertReplaceAndCounts() {
        var tree = TopicTree<String, Int>()
        XCTAssertTrue(tree.insert(filter: "sport/tennis/+", key: "s1", value: 1))
        XCTAssertTrue(tree.insert(filter: "sport/tennis/+", key: "s2", value: 2))
        XCTAssertTrue(tree.insert(filter: "sport/#", key: "s1", value: 3))
        XCTAssertEqual(tree.count, 3)
        XCTAssertFalse(tree.insert(filter: "sport/tennis/+", key: "s1", value: 10), "same (filter, key) replaces")
        XCTAssertEqual(tree.count, 3)
        XCTAssertEqual(
            Set(matches(tree, "sport/tennis/player1")),
            [
                Match(filter: "sport/tennis/+", key: "s1", value: 10),
                Match(filter: "sport/tennis/+", key: "s2", value: 2),
                Match(filter: "sport/#", key: "s1", value: 3),
            ]
        )
    }

    func testRemoveReturnsValueAndPrunes() {
        var tree = TopicTree<String, Int>()
        tree.insert(filter: "a/b/c/d", key: "k", value: 1)
        tree.insert(filter: "a/+/c/#", key: "k", value: 2)
        tree.insert(filter: "a/b", key: "k", value: 3)
        XCTAssertEqual(tree.nodeCount, 6) // a, b, c, d, +, c (a trailing '#' needs no node)

        XCTAssertNil(tree.remove(filter: "a/b/c/d", key: "other"))
        XCTAssertNil(tree.remove(filter: "a/b/c", key: "k"))
        XCTAssertNil(tree.remove(filter: "x/y", key: "k"))
        XCTAssertNil(tree.remove(filter: "a/+/+", key: "k"))
        XCTAssertEqual(tree.count, 3)
        XCTAssertEqual(tree.nodeCount, 6, "failed removals must not create or drop nodes")

        XCTAssertEqual(tree.remove(filter: "a/b/c/d", key: "k"), 1)
        XCTAssertEqual(tree.nodeCount, 4, "c and d pruned; b still holds a/b")
        XCTAssertEqual(tree.remove(filter: "a/+/c/#", key: "k"), 2)
        XCTAssertEqual(tree.nodeCount, 2, "+ and its c pruned")
        XCTAssertNil(tree.remove(filter: "a/+/c/#", key: "k"), "second removal finds nothing")
        XCTAssertEqual(tree.remove(filter: "a/b", key: "k"), 3)
        XCTAssertEqual(tree.count, 0)
        XCTAssertEqual(tree.nodeCount, 0)
        XCTAssertTrue(matches(tree, "a/b").isEmpty)
    }

    func testFilterStringSurvivesPartialRemoval() {
        var tree = TopicTree<Int, Int>()
        tree.insert(filter: "a/#", key: 1, value: 1)
        tree.insert(filter: "a/#", key: 2, value: 2)
        tree.insert(filter: "a", key: 1, value: 3)
        tree.remove(filter: "a/#", key: 1)
        XCTAssertEqual(Set(matches(tree, "a")), [Match(filter: "a/#", key: "2", value: 2), Match(filter: "a", key: "1", value: 3)])
        tree.remove(filter: "a/#", key: 2)
        tree.insert(filter: "a/#", key: 3, value: 4)
        XCTAssertEqual(Set(matches(tree, "a/x")), [Match(filter: "a/#", key: "3", value: 4)])
    }

    func testSpecExamplesAndDollarRule() {
        var tree = TopicTree<String, Int>()
        let filters = [
            "sport/tennis/player1/#", "sport/#", "#", "+", "+/+", "/+", "sport/+", "$SYS/#", "+/monitor/Clients",
            "$SYS/monitor/+", "a//b", "a/+/b",
        ]
        for (index, filter) in filters.enumerated() {
            tree.insert(filter: filter, key: "c", value: index)
        }
        func matchedFilters(_ name: String) -> Set<String> {
            Set(matches(tree, name).map(\.filter))
        }
        XCTAssertEqual(matchedFilters("sport/tennis/player1"), ["sport/tennis/player1/#", "sport/#", "#"])
        XCTAssertEqual(matchedFilters("sport/tennis/player1/score/wimbledon"), ["sport/tennis/player1/#", "sport/#", "#"])
        XCTAssertEqual(matchedFilters("sport"), ["sport/#", "#", "+"])
        XCTAssertEqual(matchedFilters("sport/"), ["sport/#", "#", "+/+", "sport/+"])
        XCTAssertEqual(matchedFilters("/finance"), ["#", "+/+", "/+"])
        XCTAssertEqual(matchedFilters("$SYS/monitor/Clients"), ["$SYS/#", "$SYS/monitor/+"])
        XCTAssertEqual(matchedFilters("$SYS"), ["$SYS/#"])
        XCTAssertEqual(matchedFilters("a//b"), ["#", "a//b", "a/+/b"])
        XCTAssertEqual(matchedFilters("a/b"), ["#", "+/+"])
    }

    func testLevelsCompareBytesWithoutNormalisation() {
        var tree = TopicTree<String, Int>()
        tree.insert(filter: "caf\u{E9}/+", key: "precomposed", value: 1)
        tree.insert(filter: "cafe\u{301}/+", key: "decomposed", value: 2)
        XCTAssertEqual(tree.count, 2)
        XCTAssertEqual(matches(tree, "caf\u{E9}/menu").map(\.key), ["precomposed"])
        XCTAssertEqual(matches(tree, "cafe\u{301}/menu").map(\.key), ["decomposed"])
    }

    func testCopiesAreIndependent() {
        var original = TopicTree<String, Int>()
        original.insert(filter: "a/+/c", key: "k", value: 1)
        original.insert(filter: "a/b", key: "k", value: 2)
        var copy = original
        copy.insert(filter: "a/+/c", key: "k", value: 100)
        copy.insert(filter: "a/+/d", key: "k", value: 3)
        copy.remove(filter: "a/b", key: "k")
        XCTAssertEqual(matches(original, "a/x/c").map(\.value), [1])
        XCTAssertEqual(matches(original, "a/b").map(\.value), [2])
        XCTAssertTrue(matches(original, "a/x/d").isEmpty)
        XCTAssertEqual(original.count, 2)
        XCTAssertEqual(matches(copy, "a/x/c").map(\.value), [100])
        XCTAssertEqual(copy.count, 2)
    }

    func testForEachVisitsEverySubscription() {
        var tree = TopicTree<Int, Int>()
        let filters = ["#", "+", "a", "a/#", "a/+/b", "/", "$SYS/#"]
        for (index, filter) in filters.enumerated() {
            tree.insert(filter: filter, key: index, value: index * 10)
            tree.insert(filter: filter, key: 100 + index, value: index)
        }
        var seen: Set<Match> = []
        tree.forEach { filter, key, value in
            XCTAssertTrue(seen.insert(Match(filter: filter, key: "\(key)", value: value)).inserted)
        }
        XCTAssertEqual(seen.count, tree.count)
        XCTAssertEqual(seen.count, filters.count * 2)
        for (index, filter) in filters.enumerated() {
            XCTAssertTrue(seen.contains(Match(filter: filter, key: "\(index)", value: index * 10)), filter)
        }
    }

    /// Topics may have 65,535 levels; every operation must work without deep recursion.
    func testVeryDeepTopicsDoNotOverflowTheStack() {
        let deepName = String(repeating: "/", count: 65_534) + "x"
        let deepFilter = String(repeating: "+/", count: 32_767) + "#"
        XCTAssertTrue(Topic.isValidName(deepName))
        XCTAssertTrue(Topic.isValidFilter(deepFilter))
        var tree = TopicTree<Int, Int>()
        tree.insert(filter: deepName, key: 1, value: 1)
        tree.insert(filter: deepFilter, key: 2, value: 2)
        var copy = tree
        copy.insert(filter: deepName, key: 3, value: 3)
        XCTAssertEqual(Set(matches(tree, deepName).map(\.key)), ["1", "2"])
        XCTAssertEqual(Set(matches(copy, deepName).map(\.key)), ["1", "2", "3"])
        XCTAssertEqual(matches(tree, "/x").map(\.key), [])
        var visited = 0
        tree.forEach { _, _, _ in visited += 1 }
        XCTAssertEqual(visited, 2)
        XCTAssertEqual(tree.remove(filter: deepName, key: 1), 1)
        XCTAssertEqual(tree.nodeCount, 32_767, "only the '+' chain remains")
        // Dropping deep trees (shared and unshared nodes) must not recurse either.
        copy = TopicTree()
        tree = TopicTree()
        XCTAssertEqual(tree.count + copy.count, 0)
    }

    /// Compares `forEachMatch` with a naive scan using `Topic.matches`, through inserts, removals
    /// and copies. Everything iterates in sorted order, so a seed always replays the same run.
    func testRandomizedAgainstNaiveScan() {
        var rng = SplitMix64(seed: 0xC0FF_EE00_1234)
        var tree = TopicTree<Int, Int>()
        // UTF-8 bytes of the filter -> key -> value (byte keys keep "\u{E9}" and "e\u{301}" apart).
        var referenceValues: [[UInt8]: [Int: Int]] = [:]

        func insertRandom(_ count: Int) {
            for _ in 0..<count {
                let filter = RandomTopics.filter(using: &rng)
                let key = Int.random(in: 0..<8, using: &rng)
                let value = Int.random(in: 0..<1_000, using: &rng)
                let expectedNew = referenceValues[Array(filter.utf8)]?[key] == nil
                XCTAssertEqual(tree.insert(filter: filter, key: key, value: value), expectedNew)
                referenceValues[Array(filter.utf8), default: [:]][key] = value
            }
        }
        func check(_ tree: TopicTree<Int, Int>, against referenceValues: [[UInt8]: [Int: Int]], names: Int) {
            var reference = Set<Match>()
            for (filterBytes, subscribers) in referenceValues {
                let filter = String(decoding: filterBytes, as: UTF8.self)
                for (key, value) in subscribers { reference.insert(Match(filter: filter, key: "\(key)", value: value)) }
            }
            XCTAssertEqual(tree.count, reference.count)
            for _ in 0..<names {
                let name = RandomTopics.name(using: &rng)
                let found = matches(tree, name)
                let expected = Set(reference.filter { Topic.matches(filter: $0.filter, name: name) })
                XCTAssertEqual(found.count, Set(found).count, "duplicate report for \(name.debugDescription)")
                XCTAssertEqual(Set(found), expected, "name \(name.debugDescription)")
            }
        }
        func sortedFilters() -> [[UInt8]] {
            referenceValues.keys.sorted { $0.lexicographicallyPrecedes($1) }
        }

        insertRandom(400)
        check(tree, against: referenceValues, names: 1_500)
        let snapshot = tree
        let snapshotReference = referenceValues

        // Remove roughly half of the subscriptions (and try some that do not exist).
        for filterBytes in sortedFilters() {
            let filter = String(decoding: filterBytes, as: UTF8.self)
            for key in (referenceValues[filterBytes] ?? [:]).keys.sorted() where Bool.random(using: &rng) {
                XCTAssertEqual(tree.remove(filter: filter, key: key), referenceValues[filterBytes]?[key])
                referenceValues[filterBytes]?[key] = nil
            }
            XCTAssertNil(tree.remove(filter: filter, key: 99))
            if referenceValues[filterBytes]?.isEmpty == true { referenceValues[filterBytes] = nil }
        }
        check(tree, against: referenceValues, names: 1_500)

        insertRandom(200)
        check(tree, against: referenceValues, names: 1_000)
        check(snapshot, against: snapshotReference, names: 500)

        for filterBytes in sortedFilters() {
            for key in (referenceValues[filterBytes] ?? [:]).keys {
                tree.remove(filter: String(decoding: filterBytes, as: UTF8.self), key: key)
            }
        }
        XCTAssertEqual(tree.count, 0)
        XCTAssertEqual(tree.nodeCount, 0, "removing everything prunes every node")
        check(snapshot, against: snapshotReference, names: 500)
    }
}

/// Random topic names and filters over a small alphabet of levels, for property tests.
enum RandomTopics {
    static let nameLevels = ["", "$SYS", "$", "a", "b", "ab", "\u{E9}", "e\u{301}"]
    static let filterLevels = nameLevels + ["+", "+", "#", "#"]

    /// A valid topic name of 1...4 levels.
    static func name<R: RandomNumberGenerator>(using rng: inout R) -> String {
        while true {
            let name = topic(from: nameLevels, using: &rng)
            if Topic.isValidName(name) { return name }
        }
    }

    /// A valid topic filter of 1...4 levels.
    static func filter<R: RandomNumberGenerator>(using rng: inout R) -> String {
        while true {
            let filter = topic(from: filterLevels, using: &rng)
            if Topic.isValidFilter(filter) { return filter }
        }
    }

    private static func topic<R: RandomNumberGenerator>(from levels: [String], using rng: inout R) -> String {
        let levelCount = Int.random(in: 1...4, using: &rng)
        return (0..<levelCount).map { _ in levels.randomElement(using: &rng) ?? "" }.joined(separator: "/")
    }
}

/// SplitMix64: a tiny deterministic generator so random tests are reproducible.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var mixed = state
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        return mixed ^ (mixed >> 31)
    }
}
