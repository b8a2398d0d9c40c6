import MQTTCodec
import XCTest

/// Tests for topic name/filter validation, matching and shared-subscription parsing.
final class TopicTests: XCTestCase {
    // MARK: - Matching

    /// Examples from OASIS MQTT 5.0 section 4.7, plus edge cases: (filter, name, expected).
    private let matchTable: [(String, String, Bool)] = [
        // 4.7.1.2 Multi-level wildcard
        ("sport/tennis/player1/#", "sport/tennis/player1", true),
        ("sport/tennis/player1/#", "sport/tennis/player1/ranking", true),
        ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true),
        ("sport/tennis/player1/#", "sport/tennis/player2", false),
        ("sport/tennis/player1/#", "sport/tennis", false),
        ("sport/#", "sport", true),
        ("sport/#", "sport/", true),
        ("sport/#", "sports", false),
        ("#", "sport", true),
        ("#", "sport/tennis/player1", true),
        ("#", "/", true),
        ("#", "/finance", true),
        // 4.7.1.3 Single-level wildcard
        ("sport/tennis/+", "sport/tennis/player1", true),
        ("sport/tennis/+", "sport/tennis/player2", true),
        ("sport/tennis/+", "sport/tennis/player1/ranking", false),
        ("sport/+", "sport", false),
        ("sport/+", "sport/", true),
        ("+/+", "/finance", true),
        ("/+", "/finance", true),
        ("+", "/finance", false),
        ("+", "finance", true),
        ("+/tennis/#", "sport/tennis/player1", true),
        ("+/tennis/#", "sport/tennis", true),
        ("sport/+/player1", "sport/tennis/player1", true),
        ("sport/+/player1", "sport/tennis/player2", false),
        ("+/+/+", "a/b", false),
        // 4.7.2 Topics beginning with $
        ("#", "$SYS/monitor/Clients", false),
        ("#", "$SYS", false),
        ("+/monitor/Clients", "$SYS/monitor/Clients", false),
        ("+", "$SYS", false),
        ("+/#", "$SYS/x", false),
        ("$SYS/#", "$SYS/monitor/Clients", true),
        ("$SYS/#", "$SYS", true),
        ("$SYS/monitor/+", "$SYS/monitor/Clients", true),
        ("$SYS", "$SYS", true),
        ("a/+", "a/$b", true),
        ("a/#", "a/$b/c", true),
        ("#", "x$SYS", true),
        // 4.7.3 Topic semantic and usage
        ("ACCOUNTS", "Accounts", false),
        ("Accounts payable", "Accounts payable", true),
        ("/finance", "finance", false),
        ("finance", "/finance", false),
        // Empty levels are real levels.
        ("a//b", "a//b", true),
        ("a/+/b", "a//b", true),
        ("a/+/b", "a/b", false),
        ("a//b", "a/b", false),
        ("a/+", "a//", false),
        ("/", "/", true),
        ("+/+", "/", true),
        ("+", "/", false),
        // Literal comparison: prefixes, suffixes, no normalisation [MQTT-4.7.3-4].
        ("sport/tennis", "sport/tennis", true),
        ("sport/tennis", "sport/tenni", false),
        ("sport/tenni", "sport/tennis", false),
        ("sport", "sport/tennis", false),
        ("sport/tennis", "sport", false),
        ("\u{E9}", "e\u{301}", false),
        ("e\u{301}/+", "e\u{301}/x", true),
        ("caf\u{E9}/#", "caf\u{E9}/menu", true),
    ]

    func testSpecMatchingTable() {
        for (filter, name, expected) in matchTable {
            XCTAssertEqual(
                Topic.matches(filter: filter, name: name), expected,
                "filter \(filter.debugDescription) vs name \(name.debugDescription)"
            )
        }
    }

    func testMatchingVeryDeepTopics() {
        let deepName = String(repeating: "/", count: 65_534) + "x"
        XCTAssertTrue(Topic.matches(filter: String(repeating: "+/", count: 32_767) + "#", name: deepName))
        XCTAssertTrue(Topic.matches(filter: deepName, name: deepName))
        XCTAssertFalse(Topic.matches(filter: String(repeating: "/", count: 65_534) + "y", name: deepName))
        XCTAssertTrue(Topic.matches(filter: "#", name: deepName))
    }

    func testMatchingAgreesWithSplitReferenceOnRandomInput() {
        var rng = SplitMix64(seed: 0x5EED_7091)
        let levels = ["", "$SYS", "$", "a", "b", "ab", "+", "#", "\u{E9}", "e\u{301}"]
        func randomTopic() -> String {
            let levelCount = Int.random(in: 1...4, using: &rng)
            return (0..<levelCount).map { _ in levels.randomElement(using: &rng) ?? "" }.joined(separator: "/")
        }
        var matched = 0
        for _ in 0..<5000 {
            let filter = randomTopic()
            let name = randomTopic()
            let expected = referenceMatches(filter: filter, name: name)
            XCTAssertEqual(
                Topic.matches(filter: filter, name: name), expected,
                "filter \(filter.debugDescription) vs name \(name.debugDescription)"
            )
            if expected { matched += 1 }
        }
        XCTAssertGreaterThan(matched, 100, "the generator should produce a useful share of matches")
    }

    // MARK: - Validation

    func testValidNames() {
        for name in ["a", "/", "//", "sport/tennis/player1", "$SYS/monitor/Clients", "Accounts payable", "caf\u{E9}"] {
            XCTAssertTrue(Topic.isValidName(name), name.debugDescription)
        }
        XCTAssertTrue(Topic.isValidName(String(repeating: "a", count: 65_535)))
    }

    func testInvalidNames() {
        for name in ["", "sport/+", "sport/#", "+", "#", "a+b", "a#b", "a\u{0}b"] {
            XCTAssertFalse(Topic.isValidName(name), name.debugDescription)
        }
        XCTAssertFalse(Topic.isValidName(String(repeating: "a", count: 65_536)))
        // 32,768 two-byte characters are 65,536 UTF-8 bytes.
        XCTAssertFalse(Topic.isValidName(String(repeating: "\u{E9}", count: 32_768)))
    }

    func testValidFilters() {
        let filters = [
            "#", "+", "/", "//", "+/+", "/+", "+/#", "sport/tennis/#", "+/tennis/#", "sport/+/player1",
            "sport/tennis/player1/#", "$SYS/#", "a//b", "a/+/+/#", "caf\u{E9}",
        ]
        for filter in filters {
            XCTAssertTrue(Topic.isValidFilter(filter), filter.debugDescription)
        }
        XCTAssertTrue(Topic.isValidFilter(String(repeating: "+/", count: 32_767) + "#"))
    }

    func testInvalidFilters() {
        let filters = [
            "", "sport/tennis#", "sport/tennis/#/ranking", "sport+", "a\u{0}b", "##", "#/", "#/a", "+#", "#+",
            "++", "a+", "+a", "a/b+", "a/+b/c", "a/#b", "\u{0}",
        ]
        for filter in filters {
            XCTAssertFalse(Topic.isValidFilter(filter), filter.debugDescription)
        }
        XCTAssertFalse(Topic.isValidFilter(String(repeating: "a", count: 65_536)))
    }

    // MARK: - Shared subscriptions

    func testParseSharedValid() throws {
        let cases: [(String, String, String)] = [
            ("$share/consumer1/sport/tennis/+", "consumer1", "sport/tennis/+"),
            ("$share/consumer2/sport/tennis/+", "consumer2", "sport/tennis/+"),
            ("$share/g/#", "g", "#"),
            ("$share/g/+", "g", "+"),
            ("$share/g//", "g", "/"),
            ("$share/g///", "g", "//"),
            ("$share/g/$SYS/#", "g", "$SYS/#"),
            ("$share/$g/a", "$g", "a"),
            ("$share/caf\u{E9}/a/b", "caf\u{E9}", "a/b"),
        ]
        for (input, group, filter) in cases {
            let parsed = try Topic.parseShared(input)
            XCTAssertEqual(parsed?.group, group, input)
            XCTAssertEqual(parsed?.filter, filter, input)
        }
    }

    func testParseSharedNotShared() throws {
        for input in ["sport/tennis", "#", "$SYS/#", "$share", "$sharex/g/a", "$SHARE/g/a", "a/$share/g/b"] {
            XCTAssertNil(try Topic.parseShared(input), input)
        }
    }

    func testParseSharedMalformed() {
        let inputs = [
            "$share/", "$share//a", "$share/g", "$share/g/", "$share/g+/a", "$share/g#/a", "$share/+/a",
            "$share/#/a", "$share/#", "$share/+", "$share/g/a#", "$share/g/#/b", "$share/g/a+",
            "$share/g\u{0}/a", "$share/g/a\u{0}",
        ]
        for input in inputs {
            XCTAssertThrowsError(try Topic.parseShared(input), input) { error in
                XCTAssertEqual(error as? SharedSubscriptionError, .malformed, input)
            }
        }
    }

    // MARK: - Helpers

    /// An obviously-correct matcher built on `split`, used as the oracle for random tests.
    private func referenceMatches(filter: String, name: String) -> Bool {
        let slash = UInt8(ascii: "/")
        let filterLevels = filter.utf8.split(separator: slash, omittingEmptySubsequences: false).map(Array.init)
        let nameLevels = name.utf8.split(separator: slash, omittingEmptySubsequences: false).map(Array.init)
        let plus = Array("+".utf8)
        let hash = Array("#".utf8)
        if nameLevels.first?.first == UInt8(ascii: "$"), let first = filterLevels.first, first == plus || first == hash {
            return false
        }
        for (index, level) in filterLevels.enumerated() {
            if level == hash && index == filterLevels.count - 1 { return true }
            guard index < nameLevels.count else { return false }
            if level != plus && level != nameLevels[index] { return false }
        }
        return filterLevels.count == nameLevels.count
    }
}

/// SplitMix64: a tiny deterministic generator so random tests are reproducible.
private struct SplitMix64: RandomNumberGenerator {
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
