import XCTest

@testable import RoostAuth

/// `covers` and `intersects`, by example and against a naive enumeration of topic names.
final class FilterRelationTests: XCTestCase {
    func testMatchesFollowsMQTTRules() {
        let cases: [(String, String, Bool)] = [
            ("a/b", "a/b", true), ("a/b", "a/c", false), ("a/+", "a/b", true), ("a/+", "a/", true),
            ("a/+", "a", false), ("a/+", "a/b/c", false), ("a/#", "a", true), ("a/#", "a/b/c", true),
            ("#", "a/b", true), ("#", "/", true), ("+", "a", true), ("+", "/", false), ("+/+", "/", true),
            ("#", "$SYS/x", false), ("+/x", "$SYS/x", false), ("$SYS/#", "$SYS/x", true), ("$SYS/#", "$SYS", true),
            ("a/+/c", "a//c", true), ("/a", "a", false), ("a/b/#", "a/bc", false),
            // The zero-length name is no topic.
            ("#", "", false), ("+", "", false),
            // Invalid filters match nothing.
            ("a/#/b", "a/x/b", false), ("a+", "a+", false), ("", "a", false),
        ]
        for (filter, topic, expected) in cases {
            XCTAssertEqual(FilterRelation.matches(filter: filter, topic: topic), expected, "\(filter) vs \(topic)")
        }
    }

    func testCoversExamples() {
        let cases: [(String, String, Bool)] = [
            ("#", "a/b", true), ("#", "#", true), ("a/#", "a", true), ("a/#", "a/+/c", true),
            ("a/+", "a/#", false), ("a/+", "a/b", true), ("a/b", "a/+", false), ("+/+", "a/+", true),
            ("a", "a/#", false), ("a/#", "a/#", true), ("a/+/#", "a/#", false), ("a/+/#", "a/b/#", true),
            ("#", "$SYS/#", false), ("+/#", "$SYS/a", false), ("$SYS/#", "$SYS/a/b", true),
            ("#", "+/a", true), ("+", "+", true), ("a/b", "a/b", true), ("a/b", "a/c", false),
            ("$SYS/+", "+/+", false), ("+/b", "a/#", false),
            // "#" has no zero-level parent, and "/#" has only the zero-length one.
            ("+/#", "#", true), ("/+/#", "/#", true), ("+/+/#", "+/#", false), ("+", "#", false),
        ]
        for (a, b, expected) in cases {
            XCTAssertEqual(FilterRelation.covers(a, b), expected, "covers(\(a), \(b))")
        }
    }

    func testIntersectsExamples() {
        let cases: [(String, String, Bool)] = [
            ("a/+", "+/b", true), ("a/b", "a/c", false), ("a/#", "a", true), ("a/+", "a", false),
            ("#", "$SYS/x", false), ("+/#", "$SYS/#", false), ("$SYS/#", "$SYS/+", true),
            ("a/+/c", "a/b/#", true), ("a/+/c", "a/b/d", false), ("+", "a/#", true), ("+/+", "#", true),
            ("a", "a/b", false), ("a//b", "a/+/b", true), ("x/#", "y/#", false),
            // They share only the zero-length name, which is no topic.
            ("+", "/#", false), ("/#", "+/#", true), ("#", "/#", true),
        ]
        for (a, b, expected) in cases {
            XCTAssertEqual(FilterRelation.intersects(a, b), expected, "intersects(\(a), \(b))")
            XCTAssertEqual(FilterRelation.intersects(b, a), expected, "intersects(\(b), \(a))")
        }
    }

    func testInvalidFiltersRelateToNothing() {
        XCTAssertFalse(FilterRelation.covers("#", "a/#/b"))
        XCTAssertFalse(FilterRelation.covers("a/#/b", "a"))
        XCTAssertFalse(FilterRelation.intersects("#", "a+"))
        XCTAssertFalse(FilterRelation.intersects("", "#"))
    }

    // MARK: Against a naive enumerator

    /// Levels the random filters use; topics also use `fresh`, which no filter names.
    private static let literals = ["a", "b", "", "$s"]
    private static let fresh = "c"

    /// Every topic name of 1...depth levels over the literals plus `fresh` (the zero-length
    /// name is not a topic name).
    private static func topics(depth: Int) -> [String] {
        let alphabet = literals + [fresh]
        var result: [[String]] = alphabet.map { [$0] }
        var frontier = result
        for _ in 1..<depth {
            frontier = frontier.flatMap { prefix in alphabet.map { prefix + [$0] } }
            result += frontier
        }
        return result.map { $0.joined(separator: "/") }.filter { !$0.isEmpty }
    }

    /// A naive matcher written from the specification, independent of `CompiledFilter`.
    private static func naiveMatches(_ filter: String, _ topic: String) -> Bool {
        naiveMatches(levels(filter), levels(topic))
    }

    private static func levels(_ text: String) -> [String] {
        text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
    }

    private static func naiveMatches(_ f: [String], _ t: [String]) -> Bool {
        if t == [""] { return false }
        if t[0].hasPrefix("$"), f[0] == "+" || f[0] == "#" { return false }
        func go(_ i: Int, _ j: Int) -> Bool {
            if i == f.count { return j == t.count }
            if f[i] == "#" { return true }
            if j == t.count { return false }
            if f[i] == "+" || f[i] == t[j] { return go(i + 1, j + 1) }
            return false
        }
        return go(0, 0)
    }

    private static func randomFilter(_ generator: inout some RandomNumberGenerator) -> String {
        let count = Int.random(in: 1...3, using: &generator)
        var levels: [String] = []
        for index in 0..<count {
            let choices = literals + ["+"] + (index == count - 1 ? ["#"] : [])
            levels.append(choices.randomElement(using: &generator) ?? "a")
        }
        let filter = levels.joined(separator: "/")
        return filter.isEmpty ? "+" : filter
    }

    func testRelationsAgreeWithEnumerationOverSmallAlphabet() {
        // Filters have at most 3 levels, so any counterexample to `covers` needs at most 4
        // levels (one past the longer filter) and one fresh literal; any witness of
        // `intersects` needs at most 3.
        let topics = Self.topics(depth: 4)
        let topicLevels = topics.map(Self.levels)
        var generator = SplitMix64(seed: 0x5EED_A11)
        var seenCovers = 0
        var seenIntersects = 0
        for _ in 0..<1500 {
            let a = Self.randomFilter(&generator)
            let b = Self.randomFilter(&generator)
            let levelsA = Self.levels(a)
            let levelsB = Self.levels(b)
            let matchedA = topicLevels.map { Self.naiveMatches(levelsA, $0) }
            let matchedB = topicLevels.map { Self.naiveMatches(levelsB, $0) }
            let naiveCovers = zip(matchedA, matchedB).allSatisfy { !$1 || $0 }
            let naiveIntersects = zip(matchedA, matchedB).contains { $0 && $1 }
            XCTAssertEqual(FilterRelation.covers(a, b), naiveCovers, "covers(\(a), \(b))")
            XCTAssertEqual(FilterRelation.intersects(a, b), naiveIntersects, "intersects(\(a), \(b))")
            for (index, topic) in topics.enumerated() where index % 7 == 0 {
                XCTAssertEqual(FilterRelation.matches(filter: a, topic: topic), matchedA[index], "\(a) vs \(topic)")
            }
            if naiveCovers { seenCovers += 1 }
            if naiveIntersects { seenIntersects += 1 }
        }
        // The generator must exercise both answers of both relations.
        XCTAssertGreaterThan(seenCovers, 50)
        XCTAssertLessThan(seenCovers, 1450)
        XCTAssertGreaterThan(seenIntersects, 50)
        XCTAssertLessThan(seenIntersects, 1450)
    }
}

/// A small seeded generator so that failures reproduce.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
