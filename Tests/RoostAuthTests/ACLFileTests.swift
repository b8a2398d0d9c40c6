import XCTest

@testable import RoostAuth

/// ACL files: parsing, which rules apply to whom, deny, patterns and subscriptions.
final class ACLFileTests: XCTestCase {
    private let sample = """
        # Anonymous clients: the topic lines before the first user line.
        topic read public/#
        topic write anon/in

        user alice smith
        topic readwrite alice/#
        topic deny alice/secret/#
        topic read shared/+/status
        topic write  spaced topic/with blanks

        user bob
        topic bob/#
        topic read $SYS/broker/#

        # Patterns apply to everyone, wherever they are.
        pattern write devices/%c/up
        pattern read devices/%c/down
        pattern readwrite users/%u/#
        pattern deny users/%u/locked
        pattern read everyone/news
        pattern deny everyone/news/embargo

        user alice smith
        topic write alice-later/x
        """

    private func acl() throws -> ACLFile { try ACLFile(parsing: sample, source: "/etc/roost/acl") }

    func testAnonymousSectionAppliesOnlyToClientsWithoutAUserName() throws {
        let acl = try acl()
        XCTAssertTrue(acl.mayRead(username: nil, clientID: "c", topic: "public/x/y"))
        XCTAssertFalse(acl.mayPublish(username: nil, clientID: "c", topic: "public/x"), "read only")
        XCTAssertTrue(acl.mayPublish(username: nil, clientID: "c", topic: "anon/in"))
        XCTAssertFalse(acl.mayRead(username: nil, clientID: "c", topic: "anon/in"), "write only")
        // Users get none of the anonymous rules, even users without a section.
        XCTAssertFalse(acl.mayRead(username: "bob", clientID: "c", topic: "public/x"))
        XCTAssertFalse(acl.mayRead(username: "carol", clientID: "c", topic: "public/x"))
        XCTAssertFalse(acl.mayRead(username: "", clientID: "c", topic: "public/x"))
    }

    func testUserSectionsNameTheRestOfTheLineAndAccumulate() throws {
        let acl = try acl()
        XCTAssertTrue(acl.mayPublish(username: "alice smith", clientID: "c", topic: "alice/a/b"))
        XCTAssertTrue(acl.mayRead(username: "alice smith", clientID: "c", topic: "alice"))
        XCTAssertFalse(acl.mayPublish(username: "alice", clientID: "c", topic: "alice/a"), "the name has a space")
        XCTAssertTrue(acl.mayPublish(username: "alice smith", clientID: "c", topic: "alice-later/x"), "second section")
        XCTAssertTrue(acl.mayPublish(username: "alice smith", clientID: "c", topic: "spaced topic/with blanks"))
        XCTAssertTrue(acl.mayRead(username: "alice smith", clientID: "c", topic: "shared/a/status"))
        XCTAssertFalse(acl.mayPublish(username: "alice smith", clientID: "c", topic: "shared/a/status"))
        XCTAssertFalse(acl.mayRead(username: "bob", clientID: "c", topic: "alice/a"))
        // No access word means readwrite.
        XCTAssertTrue(acl.mayPublish(username: "bob", clientID: "c", topic: "bob/1"))
        XCTAssertTrue(acl.mayRead(username: "bob", clientID: "c", topic: "bob/1"))
    }

    func testDenyWinsOverGrants() throws {
        let acl = try acl()
        XCTAssertFalse(acl.mayPublish(username: "alice smith", clientID: "c", topic: "alice/secret"))
        XCTAssertFalse(acl.mayRead(username: "alice smith", clientID: "c", topic: "alice/secret/x"))
        XCTAssertTrue(acl.mayRead(username: "alice smith", clientID: "c", topic: "alice/secretive"))
        // A deny pattern wins over a grant pattern, for everyone.
        XCTAssertTrue(acl.mayRead(username: nil, clientID: "c", topic: "everyone/news"))
        XCTAssertFalse(acl.mayRead(username: "bob", clientID: "c", topic: "everyone/news/embargo"))
    }

    func testDenyPatternWinsOverAUsersTopicGrant() throws {
        // mosquitto 2.0 would allow this (it checks the user's topics before the patterns);
        // Roost lets every applicable deny win.
        let acl = try ACLFile(parsing: "user admin\ntopic readwrite #\npattern deny private/%u/#\n", source: "t")
        XCTAssertTrue(acl.mayPublish(username: "admin", clientID: "c", topic: "anything"))
        XCTAssertFalse(acl.mayPublish(username: "admin", clientID: "c", topic: "private/admin/x"))
        XCTAssertTrue(acl.mayPublish(username: "admin", clientID: "c", topic: "private/other/x"))
    }

    func testPatternsSubstituteUserNameAndClientID() throws {
        let acl = try acl()
        XCTAssertTrue(acl.mayPublish(username: nil, clientID: "dev1", topic: "devices/dev1/up"))
        XCTAssertFalse(acl.mayPublish(username: nil, clientID: "dev1", topic: "devices/dev2/up"))
        XCTAssertFalse(acl.mayRead(username: nil, clientID: "dev1", topic: "devices/dev1/up"), "write only")
        XCTAssertTrue(acl.mayRead(username: "bob", clientID: "dev1", topic: "devices/dev1/down"))
        XCTAssertTrue(acl.mayPublish(username: "carol", clientID: "x", topic: "users/carol/a/b"))
        XCTAssertFalse(acl.mayPublish(username: "carol", clientID: "x", topic: "users/dave/a"))
        XCTAssertFalse(acl.mayPublish(username: "carol", clientID: "x", topic: "users/carol/locked"))
        // A user name is substituted as bytes: slashes add levels.
        XCTAssertTrue(acl.mayPublish(username: "a/b", clientID: "x", topic: "users/a/b/c"))
    }

    func testPatternWithUserNameDoesNotApplyWithoutOne() throws {
        let acl = try ACLFile(parsing: "pattern readwrite users/%u/#\npattern readwrite +/%u\n", source: "t")
        XCTAssertFalse(acl.mayPublish(username: nil, clientID: "c", topic: "users/%u/x"))
        XCTAssertFalse(acl.mayPublish(username: nil, clientID: "c", topic: "users//x"))
        XCTAssertFalse(acl.mayPublish(username: nil, clientID: "c", topic: "a/"))
        XCTAssertTrue(acl.mayPublish(username: "", clientID: "c", topic: "users//x"), "an empty name is a name")
    }

    func testNoPatternAppliesToWildcardNamesOrIDs() throws {
        let acl = try ACLFile(
            parsing: "pattern readwrite devices/%c/#\npattern read fixed/#\nuser a+\ntopic read own\n", source: "t")
        XCTAssertTrue(acl.mayPublish(username: nil, clientID: "ok", topic: "devices/ok/1"))
        XCTAssertFalse(acl.mayPublish(username: nil, clientID: "#", topic: "devices/x/1"))
        XCTAssertFalse(acl.mayRead(username: nil, clientID: "+", topic: "fixed/a"))
        XCTAssertFalse(acl.mayRead(username: "a+", clientID: "ok", topic: "fixed/a"))
        XCTAssertTrue(acl.mayRead(username: "a+", clientID: "ok", topic: "own"), "topic rules still apply")
    }

    func testDollarTopicsNeedDollarRules() throws {
        let acl = try acl()
        XCTAssertTrue(acl.mayRead(username: "bob", clientID: "c", topic: "$SYS/broker/uptime"))
        let everything = try ACLFile(parsing: "topic readwrite #\ntopic read +/broker/#\n", source: "t")
        XCTAssertFalse(everything.mayRead(username: nil, clientID: "c", topic: "$SYS/broker/uptime"))
        XCTAssertTrue(everything.mayRead(username: nil, clientID: "c", topic: "SYS/broker/uptime"))
    }

    func testInvalidTopicNamesAreRefused() throws {
        let acl = try ACLFile(parsing: "topic readwrite #\n", source: "t")
        XCTAssertTrue(acl.mayPublish(username: nil, clientID: "c", topic: "a/b"))
        for topic in ["", "a/+", "a/#", "a\0b"] {
            XCTAssertFalse(acl.mayPublish(username: nil, clientID: "c", topic: topic), topic.debugDescription)
        }
    }

    func testEmptyFileDeniesEverything() throws {
        let acl = try ACLFile(parsing: "# nothing\n\n", source: "t")
        XCTAssertFalse(acl.mayRead(username: nil, clientID: "c", topic: "a"))
        XCTAssertFalse(acl.mayPublish(username: "u", clientID: "c", topic: "a"))
        XCTAssertEqual(acl.subscriptionAccess(username: nil, clientID: "c", filter: "#"), .denied)
    }

    func testParsingDetails() throws {
        // A single word after topic is the filter, even an access word; tabs separate;
        // CRLF line ends and indented comments are fine.
        let acl = try ACLFile(parsing: "topic read\r\n\ttopic\twrite\tx/y  \r\n   # note\n", source: "t")
        XCTAssertTrue(acl.mayPublish(username: nil, clientID: "c", topic: "read"))
        XCTAssertTrue(acl.mayRead(username: nil, clientID: "c", topic: "read"))
        XCTAssertTrue(acl.mayPublish(username: nil, clientID: "c", topic: "x/y"))
        XCTAssertFalse(acl.mayRead(username: nil, clientID: "c", topic: "x/y"))
    }

    func testErrorsNameFileLineAndProblem() {
        let cases: [(String, Int, AuthFileError.Reason)] = [
            ("topic read a\ntopci read b\n", 2, .unknownKeyword("topci")),
            ("# c\n\nuser\n", 3, .missingUsername),
            ("user   \n", 1, .missingUsername),
            ("topic\n", 1, .missingFilter(keyword: "topic")),
            ("pattern   \n", 1, .missingFilter(keyword: "pattern")),
            ("topic readonly a/b\n", 1, .invalidAccess("readonly")),
            ("topic a b\n", 1, .invalidAccess("a")),
            ("topic read a/#/b\n", 1, .invalidFilter("a/#/b")),
            ("user x\ntopic write a+\n", 2, .invalidFilter("a+")),
            ("pattern deny %u/#x\n", 1, .invalidFilter("%u/#x")),
        ]
        for (text, line, reason) in cases {
            do {
                _ = try ACLFile(parsing: text, source: "/etc/roost/acl")
                XCTFail("accepted: \(text.debugDescription)")
            } catch {
                XCTAssertEqual(error, AuthFileError(file: "/etc/roost/acl", line: line, reason: reason), text)
                XCTAssertTrue(error.description.hasPrefix("/etc/roost/acl:\(line): "), error.description)
            }
        }
    }

    // MARK: Subscriptions

    func testSubscriptionAccess() throws {
        let acl = try acl()
        func access(_ user: String?, _ filter: String) -> SubscriptionAccess {
            acl.subscriptionAccess(username: user, clientID: "dev1", filter: filter)
        }
        XCTAssertEqual(access(nil, "public/#"), .granted)
        XCTAssertEqual(access(nil, "public/+/x"), .granted)
        XCTAssertEqual(access(nil, "#"), .filtered, "part of everything is readable")
        XCTAssertEqual(access(nil, "anon/in"), .denied, "write only")
        XCTAssertEqual(access(nil, "private/#"), .denied)
        XCTAssertEqual(access("alice smith", "alice/#"), .filtered, "alice/secret is denied inside it")
        XCTAssertEqual(access("alice smith", "alice/public/+"), .granted)
        XCTAssertEqual(access("alice smith", "alice/secret/#"), .denied, "a deny covers it")
        XCTAssertEqual(access("alice smith", "alice/secret/x"), .denied)
        XCTAssertEqual(access("alice smith", "alice/+"), .filtered, "alice/secret is one of its topics")
        XCTAssertEqual(access("bob", "devices/dev1/down"), .granted)
        XCTAssertEqual(access("bob", "devices/+/down"), .filtered)
        XCTAssertEqual(access("bob", "$SYS/#"), .filtered)
        XCTAssertEqual(access("bob", "$SYS/broker/load/#"), .granted)
        XCTAssertEqual(access("bob", "a/#/b"), .denied, "invalid filter")
    }

    func testClientRulesComputedOnceAgreeWithPerCallChecks() throws {
        let acl = try acl()
        let rules = acl.rules(username: "carol", clientID: "dev9")
        for topic in ["users/carol/x", "users/carol/locked", "devices/dev9/up", "devices/dev9/down", "public/a"] {
            XCTAssertEqual(rules.mayPublish(topic: topic), acl.mayPublish(username: "carol", clientID: "dev9", topic: topic))
            XCTAssertEqual(rules.mayRead(topic: topic), acl.mayRead(username: "carol", clientID: "dev9", topic: topic))
        }
    }

    /// `.granted` means every matching topic is readable, `.denied` that none is, checked
    /// against `mayRead` on enumerated topics for random rule sets and filters.
    func testSubscriptionAccessAgreesWithMayReadOnEnumeratedTopics() throws {
        var generator = SplitMix64(seed: 0xAC1)
        let levels = ["a", "b", "$s"]
        func randomFilter() -> String {
            let count = Int.random(in: 1...3, using: &generator)
            return (0..<count).map { index in
                (levels + ["+"] + (index == count - 1 ? ["#"] : [])).randomElement(using: &generator) ?? "a"
            }.joined(separator: "/")
        }
        var topics: [String] = []
        for first in levels + ["c"] {
            topics.append(first)
            for second in levels + ["c"] {
                topics.append("\(first)/\(second)")
                for third in levels + ["c"] { topics.append("\(first)/\(second)/\(third)") }
            }
        }
        var counts: [SubscriptionAccess: Int] = [:]
        for _ in 0..<300 {
            var text = ""
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                let access = ["read", "readwrite", "write", "deny"].randomElement(using: &generator) ?? "read"
                text += "topic \(access) \(randomFilter())\n"
            }
            let acl = try ACLFile(parsing: text, source: "random")
            let filter = randomFilter()
            let result = acl.subscriptionAccess(username: nil, clientID: "c", filter: filter)
            counts[result, default: 0] += 1
            let readable = topics.filter { FilterRelation.matches(filter: filter, topic: $0) }
                .map { acl.mayRead(username: nil, clientID: "c", topic: $0) }
            switch result {
            case .granted: XCTAssertTrue(readable.allSatisfy { $0 }, "\(text)\(filter)")
            case .denied: XCTAssertFalse(readable.contains(true), "\(text)\(filter)")
            case .filtered: break
            }
        }
        XCTAssertGreaterThan(counts[.granted, default: 0], 10)
        XCTAssertGreaterThan(counts[.denied, default: 0], 10)
        XCTAssertGreaterThan(counts[.filtered, default: 0], 10)
    }
}
