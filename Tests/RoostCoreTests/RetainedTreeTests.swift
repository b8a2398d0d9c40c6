import MQTTCodec
@testable import RoostCore
import XCTest

/// Tests for the retained-message index `RetainedTree`.
final class RetainedTreeTests: XCTestCase {
    /// One reported entry; compares names byte-wise like the broker (String `==` would treat
    /// "\u{E9}" and "e\u{301}" as equal).
    private struct Entry: Hashable {
        var name: String
        var value: Int

        static func == (lhs: Entry, rhs: Entry) -> Bool {
            lhs.name.utf8.elementsEqual(rhs.name.utf8) && lhs.value == rhs.value
        }

        func hash(into hasher: inout Hasher) {
            hasher.combine(Array(name.utf8))
            hasher.combine(value)
        }
    }

    private func matches(_ tree: RetainedTree<Int>, _ filter: String) -> [Entry] {
        var result: [Entry] = []
        tree.forEachMatch(filter: filter) { name, value in result.append(Entry(name: name, value: value)) }
        return result
    }

    private func matchedNames(_ tree: RetainedTree<Int>, _ filter: String) -> Set<String> {
        Set(matches(tree, filter).map(\.name))
    }

    func testSetGetReplaceAndCounts() {
        var tree = RetainedTree<Int>()
        XCTAssertEqual(tree.count, 0)
        XCTAssertNil(tree.set(name: "a/b", value: 1))
        XCTAssertNil(tree.set(name: "a", value: 2))
        XCTAssertEqual(tree.count, 2)
        XCTAssertEqual(tree.set(name: "a/b", value: 3), 1, "replacing returns the previous value")
        XCTAssertEqual(tree.count, 2)
        XCTAssertEqual(tree.get(name: "a/b"), 3)
        XCTAssertEqual(tree.get(name: "a"), 2)
        XCTAssertNil(tree.get(name: "a/b/c"))
        XCTAssertNil(tree.get(name: "b"))
        XCTAssertNil(tree.get(name: "a/"), "a/ is a different topic from a")
    }

    func testRemovePrunes() {
        var tree = RetainedTree<Int>()
        tree.set(name: "a/b/c", value: 1)
        tree.set(name: "a", value: 2)
        XCTAssertEqual(tree.nodeCount, 3)
        XCTAssertNil(tree.remove(name: "a/b"), "intermediate node without a value")
        XCTAssertNil(tree.remove(name: "x"))
        XCTAssertEqual(tree.nodeCount, 3)
        XCTAssertEqual(tree.remove(name: "a/b/c"), 1)
        XCTAssertEqual(tree.nodeCount, 1, "b and c pruned; a still holds a value")
        XCTAssertNil(tree.remove(name: "a/b/c"))
        XCTAssertEqual(tree.remove(name: "a"), 2)
        XCTAssertEqual(tree.count, 0)
        XCTAssertEqual(tree.nodeCount, 0)
    }

    func testSpecExamplesAndDollarRule() {
        var tree = RetainedTree<Int>()
        let names = [
            "sport", "sport/", "sport/tennis/player1", "sport/tennis/player1/ranking",
            "sport/tennis/player1/score/wimbledon", "sport/tennis/player2", "/finance", "finance",
            "$SYS/monitor/Clients", "$SYS", "a//b", "a/$b",
        ]
        for (index, name) in names.enumerated() {
            tree.set(name: name, value: index)
        }
        XCTAssertEqual(
            matchedNames(tree, "sport/tennis/player1/#"),
            ["sport/tennis/player1", "sport/tennis/player1/ranking", "sport/tennis/player1/score/wimbledon"]
        )
        XCTAssertEqual(
            matchedNames(tree, "sport/#"),
            [
                "sport", "sport/", "sport/tennis/player1", "sport/tennis/player1/ranking",
                "sport/tennis/player1/score/wimbledon", "sport/tennis/player2",
            ]
        )
        XCTAssertEqual(matchedNames(tree, "sport/tennis/+"), ["sport/tennis/player1", "sport/tennis/player2"])
        XCTAssertEqual(matchedNames(tree, "sport/+"), ["sport/"])
        XCTAssertEqual(matchedNames(tree, "+/+"), ["sport/", "/finance", "a/$b"])
        XCTAssertEqual(matchedNames(tree, "/+"), ["/finance"])
        XCTAssertEqual(matchedNames(tree, "+"), ["sport", "finance"])
        XCTAssertEqual(matchedNames(tree, "#"), Set(names.filter { !$0.hasPrefix("$") }))
        XCTAssertEqual(matchedNames(tree, "+/monitor/Clients"), [])
        XCTAssertEqual(matchedNames(tree, "$SYS/#"), ["$SYS/monitor/Clients", "$SYS"])
        XCTAssertEqual(matchedNames(tree, "$SYS/monitor/+"), ["$SYS/monitor/Clients"])
        XCTAssertEqual(matchedNames(tree, "a/+/b"), ["a//b"])
        XCTAssertEqual(matchedNames(tree, "a/+"), ["a/$b"])
        XCTAssertEqual(matchedNames(tree, "finance"), ["finance"])
        XCTAssertEqual(matchedNames(tree, "nothing/#"), [])
    }

    func testLevelsCompareBytesWithoutNormalisation() {
        var tree = RetainedTree<Int>()
        tree.set(name: "caf\u{E9}", value: 1)
        tree.set(name: "cafe\u{301}", value: 2)
        XCTAssertEqual(tree.count, 2)
        XCTAssertEqual(tree.get(name: "caf\u{E9}"), 1)
        XCTAssertEqual(tree.get(name: "cafe\u{301}"), 2)
        XCTAssertEqual(matches(tree, "cafe\u{301}"), [Entry(name: "cafe\u{301}", value: 2)])
    }

    func testRemoveAllWhere() {
        var tree = RetainedTree<Int>()
        for (index, name) in ["a", "a/b", "a/b/c", "a/d", "e", "$SYS/x"].enumerated() {
            tree.set(name: name, value: index)
        }
        let removed = tree.removeAll { name, value in value.isMultiple(of: 2) && name != "e" }
        XCTAssertEqual(removed, 2) // "a" (0) and "a/b/c" (2); "e" (4) is kept by the name check
        XCTAssertEqual(tree.count, 4)
        XCTAssertNil(tree.get(name: "a"))
        XCTAssertNil(tree.get(name: "a/b/c"))
        XCTAssertEqual(tree.get(name: "a/b"), 1)
        XCTAssertEqual(tree.nodeCount, 6, "c pruned; a kept for its children")
        XCTAssertEqual(tree.removeAll { _, _ in true }, 4)
        XCTAssertEqual(tree.count, 0)
        XCTAssertEqual(tree.nodeCount, 0)
        XCTAssertEqual(tree.removeAll { _, _ in true }, 0)
    }

    func testCopiesAreIndependent() {
        var original = RetainedTree<Int>()
        original.set(name: "a/b", value: 1)
        var copy = original
        copy.set(name: "a/b", value: 2)
        copy.set(name: "a/c", value: 3)
        copy.removeAll { name, _ in name == "a/b" }
        XCTAssertEqual(original.get(name: "a/b"), 1)
        XCTAssertNil(original.get(name: "a/c"))
        XCTAssertEqual(original.count, 1)
        XCTAssertNil(copy.get(name: "a/b"))
        XCTAssertEqual(copy.count, 1)
    }

    func testForEachVisitsEveryEntry() {
        var tree = RetainedTree<Int>()
        let names = ["a", "a/b", "/", "$SYS/x", "a//b"]
        for (index, name) in names.enumerated() {
            tree.set(name: name, value: index)
        }
        var seen: [String: Int] = [:]
        tree.forEach { name, value in
            XCTAssertNil(seen.updateValue(value, forKey: name), "visited twice: \(name)")
        }
        XCTAssertEqual(seen, Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) }))
    }

    /// Topic names may have 65,535 levels; every operation must work without deep recursion.
    func testVeryDeepTopicsDoNotOverflowTheStack() {
        let deepName = String(repeating: "/", count: 65_534) + "x"
        var tree = RetainedTree<Int>()
        tree.set(name: deepName, value: 1)
        tree.set(name: "/", value: 2)
        var copy = tree
        copy.set(name: deepName, value: 3)
        XCTAssertEqual(tree.get(name: deepName), 1)
        XCTAssertEqual(copy.get(name: deepName), 3)
        XCTAssertEqual(matchedNames(tree, "#"), [deepName, "/"])
        XCTAssertEqual(matchedNames(tree, deepName), [deepName])
        XCTAssertEqual(matchedNames(tree, String(repeating: "+/", count: 32_767) + "#"), [deepName])
        var visited = 0
        tree.forEach { _, _ in visited += 1 }
        XCTAssertEqual(visited, 2)
        XCTAssertEqual(tree.removeAll { _, value in value == 1 }, 1)
        XCTAssertEqual(tree.nodeCount, 2, "only the two levels of \"/\" remain")
        XCTAssertEqual(copy.get(name: deepName), 3, "the copy is unaffected")
        // Dropping deep trees (shared and unshared nodes) must not recurse either.
        tree.set(name: deepName + "/y", value: 4)
        copy = RetainedTree()
        tree = RetainedTree()
        XCTAssertEqual(tree.count + copy.count, 0)
    }

    /// Compares `forEachMatch` with a naive scan using `Topic.matches`, through sets, removals,
    /// expiry sweeps and copies. Iteration is sorted, so a seed always replays the same run.
    func testRandomizedAgainstNaiveScan() {
        var rng = SplitMix64(seed: 0x2E7A_1BED)
        var tree = RetainedTree<Int>()
        // UTF-8 bytes of the name -> value (byte keys keep "\u{E9}" and "e\u{301}" apart).
        var reference: [[UInt8]: Int] = [:]

        func setRandom(_ count: Int) {
            for _ in 0..<count {
                let name = RandomTopics.name(using: &rng)
                let value = Int.random(in: 0..<1_000, using: &rng)
                XCTAssertEqual(tree.set(name: name, value: value), reference.updateValue(value, forKey: Array(name.utf8)))
            }
        }
        func check(_ tree: RetainedTree<Int>, against reference: [[UInt8]: Int], filters: Int) {
            XCTAssertEqual(tree.count, reference.count)
            for _ in 0..<filters {
                let filter = RandomTopics.filter(using: &rng)
                let found = matches(tree, filter)
                let expected = Set(
                    reference.map { Entry(name: String(decoding: $0.key, as: UTF8.self), value: $0.value) }
                        .filter { Topic.matches(filter: filter, name: $0.name) }
                )
                XCTAssertEqual(found.count, Set(found).count, "duplicate report for \(filter.debugDescription)")
                XCTAssertEqual(Set(found), expected, "filter \(filter.debugDescription)")
            }
        }

        setRandom(600)
        check(tree, against: reference, filters: 1_500)
        let snapshot = tree
        let snapshotReference = reference

        for nameBytes in reference.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) where Bool.random(using: &rng) {
            let name = String(decoding: nameBytes, as: UTF8.self)
            XCTAssertEqual(tree.remove(name: name), reference.removeValue(forKey: nameBytes))
        }
        check(tree, against: reference, filters: 1_000)

        let expiredCount = reference.values.filter { $0 < 500 }.count
        XCTAssertEqual(tree.removeAll { _, value in value < 500 }, expiredCount)
        reference = reference.filter { $0.value >= 500 }
        check(tree, against: reference, filters: 1_000)

        setRandom(300)
        check(tree, against: reference, filters: 1_000)
        check(snapshot, against: snapshotReference, filters: 500)

        XCTAssertEqual(tree.removeAll { _, _ in true }, reference.count)
        XCTAssertEqual(tree.count, 0)
        XCTAssertEqual(tree.nodeCount, 0, "removing everything prunes every node")
        check(snapshot, against: snapshotReference, filters: 500)
    }
}
