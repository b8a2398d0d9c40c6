import XCTest

@testable import RoostAuth

/// `SCRAM-SHA-256$` lines in a password file: parse, render, verify, edit, errors.
final class PasswordFileSCRAMTests: XCTestCase {
    // user/pencil with RFC 7677's salt, computed with Python's hashlib and hmac.
    private let pencilEntry =
        "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
        + ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
    private let dollarSevenEntry =
        "$7$101$AQIDBAUGBwgJCgsM$mIOMyf0G01/LkKvFuu6raA+sJydkdh2qDZD+cyTDcrMk08Rnc3N+vIiTgRJqnolJL9TU+/R/F+mbz31mQG16jg=="

    func testParseRenderAndVerifyAPlainPassword() throws {
        let text = "# users\nuser:\(pencilEntry)\n  other :\t\(dollarSevenEntry) \n"
        let file = try PasswordFile(parsing: text, source: "mixed")
        XCTAssertEqual(file.usernames, ["user", "other"])
        XCTAssertEqual(file.rendered(), text, "unedited lines are kept verbatim")
        XCTAssertEqual(file.verify(username: "user", password: Array("pencil".utf8)), .ok)
        XCTAssertEqual(file.verify(username: "user", password: Array("pencil ".utf8)), .wrongPassword)
        XCTAssertEqual(file.verify(username: "other", password: Array("correct horse".utf8)), .ok)
        guard case .scramSHA256(4096, let salt, let stored, let server)? = file.hash(for: "user") else {
            return XCTFail("expected a SCRAM entry")
        }
        XCTAssertEqual(salt.count, 16)
        XCTAssertEqual(stored.count, 32)
        XCTAssertEqual(server.count, 32)
        XCTAssertEqual(file.hash(for: "user")?.encoded, pencilEntry)
    }

    func testDescriptionShowsNoKeys() throws {
        let hash = try PasswordHash(parsing: pencilEntry[...])
        XCTAssertEqual(hash.description, "SCRAM-SHA-256 (4096 iterations)")
        for secret in ["W22ZaJ0S", "WG5d8oPm", "wfPLwcE6"] {
            XCTAssertFalse(hash.description.contains(secret))
            XCTAssertFalse("\(hash)".contains(secret))
        }
    }

    func testMakeDefaultsAndParameters() throws {
        let first = try PasswordHash.makeSCRAMSHA256(password: Array("pencil".utf8))
        let second = try PasswordHash.makeSCRAMSHA256(password: Array("pencil".utf8))
        guard case .scramSHA256(let iterations, let salt, _, _) = first,
            case .scramSHA256(_, let otherSalt, _, _) = second
        else { return XCTFail("expected SCRAM entries") }
        XCTAssertEqual(iterations, 4096)
        XCTAssertEqual(salt.count, 16)
        XCTAssertNotEqual(salt, otherSalt, "salts must be random")
        XCTAssertTrue(first.matches(Array("pencil".utf8)))
        XCTAssertFalse(first.matches(Array("Pencil".utf8)))
        XCTAssertEqual(try PasswordHash(parsing: first.encoded[...]), first)

        let salt3 = try PasswordHash.makeSCRAMSHA256(password: [0x61], iterations: 1, salt: [1, 2, 3])
        XCTAssertTrue(salt3.encoded.hasPrefix("SCRAM-SHA-256$1:AQID$"), salt3.encoded)
        XCTAssertThrowsError(try PasswordHash.makeSCRAMSHA256(password: [0x61], iterations: 0)) {
            XCTAssertEqual($0 as? PasswordHash.MakeError, .invalidIterations(0))
        }
        XCTAssertThrowsError(try PasswordHash.makeSCRAMSHA256(password: [0x61], salt: [])) {
            XCTAssertEqual($0 as? PasswordHash.MakeError, .invalidSaltLength(0))
        }
        for password in ["pässwörd", "tab\there", "nul\u{0}"] {
            XCTAssertThrowsError(try PasswordHash.makeSCRAMSHA256(password: Array(password.utf8)), password) {
                XCTAssertEqual($0 as? PasswordHash.MakeError, .passwordNotPrintableASCII)
            }
        }
        XCTAssertNoThrow(try PasswordHash.makeSCRAMSHA256(password: [], iterations: 1))
    }

    func testEditingReplacesAndAppendsSCRAMLines() throws {
        var file = try PasswordFile(parsing: "# keep\nuser:\(dollarSevenEntry)\n", source: "edit")
        let scram = try PasswordHash.makeSCRAMSHA256(password: Array("pencil".utf8), iterations: 16)
        try file.setPassword(scram, for: "user")
        try file.setPassword(try PasswordHash(parsing: pencilEntry[...]), for: "added")
        XCTAssertEqual(file.rendered(), "# keep\nuser:\(scram.encoded)\nadded:\(pencilEntry)\n")
        let reread = try PasswordFile(parsing: file.rendered(), source: "reread")
        XCTAssertEqual(reread.verify(username: "user", password: Array("pencil".utf8)), .ok)
        XCTAssertEqual(reread.verify(username: "added", password: Array("pencil".utf8)), .ok)
        XCTAssertTrue(file.remove(username: "user"))
        XCTAssertEqual(file.rendered(), "# keep\nadded:\(pencilEntry)\n")
    }

    func testUnknownUserHashesLikeTheFirstSCRAMEntry() throws {
        let file = try PasswordFile(parsing: "user:\(pencilEntry)\nother:\(dollarSevenEntry)\n", source: "t")
        guard case .scramSHA256(4096, let salt, _, _) = file.dummyHash else { return XCTFail("\(file.dummyHash)") }
        XCTAssertEqual(salt.count, 16)
        XCTAssertEqual(file.verify(username: "nobody", password: Array("pencil".utf8)), .unknownUser)
    }

    func testMalformedSCRAMLinesNameTheProblem() {
        let form = AuthFileError.Reason.invalidHash(
            "a 'SCRAM-SHA-256$' entry has the form 'SCRAM-SHA-256$iterations:salt$storedkey:serverkey'")
        let key = "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
        let cases: [(String, AuthFileError.Reason)] = [
            ("SCRAM-SHA-256$", form),
            ("SCRAM-SHA-256$4096:AQID", form),
            ("SCRAM-SHA-256$4096:AQID$\(key)", form),
            ("SCRAM-SHA-256$4096$AQID$\(key):\(key)", form),
            ("SCRAM-SHA-256$4096:AQID:x$\(key):\(key)", form),
            ("SCRAM-SHA-256$4096:AQID$\(key):\(key):\(key)", form),
            ("SCRAM-SHA-256$0:AQID$\(key):\(key)",
             .invalidHash("the iteration count must be a whole number from 1 to 2147483647")),
            ("SCRAM-SHA-256$-1:AQID$\(key):\(key)",
             .invalidHash("the iteration count must be a whole number from 1 to 2147483647")),
            ("SCRAM-SHA-256$99999999999:AQID$\(key):\(key)",
             .invalidHash("the iteration count must be a whole number from 1 to 2147483647")),
            ("SCRAM-SHA-256$4096:AQI$\(key):\(key)", .invalidHash("the salt is not valid base64")),
            ("SCRAM-SHA-256$4096:$\(key):\(key)", .invalidHash("the salt must be 1 to 1024 bytes, found 0")),
            ("SCRAM-SHA-256$4096:AQID$\(key):\(key.dropLast())", .invalidHash("a key is not valid base64")),
            ("SCRAM-SHA-256$4096:AQID$AQID:\(key)", .invalidHash("the keys must be 32 bytes")),
            ("SCRAM-SHA-1$4096:AQID$\(key):\(key)",
             .invalidHash(
                "expected '$7$iterations$salt$hash', '$6$salt$hash' or 'SCRAM-SHA-256$iterations:salt$storedkey:serverkey'")),
            ("scram-sha-256$4096:AQID$\(key):\(key)",
             .invalidHash(
                "expected '$7$iterations$salt$hash', '$6$salt$hash' or 'SCRAM-SHA-256$iterations:salt$storedkey:serverkey'")),
        ]
        for (entry, reason) in cases {
            do {
                _ = try PasswordFile(parsing: "ok:\(pencilEntry)\nu:\(entry)\n", source: "f")
                XCTFail("accepted: \(entry)")
            } catch {
                XCTAssertEqual(error.line, 2, entry)
                XCTAssertEqual(error.reason, reason, entry)
                XCTAssertFalse(error.description.contains("WG5d8oPm"), error.description)
            }
        }
    }
}
