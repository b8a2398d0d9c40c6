import Foundation
import XCTest

@testable import RoostAuth

/// Password files: the formulas, mosquitto_passwd's output, parse errors and editing.
final class PasswordFileTests: XCTestCase {
    private let password = Array("correct horse".utf8)

    // Computed independently with Python's hashlib from the formulas in mosquitto 2.0's
    // pw__digest: $6$ = SHA-512(password ++ salt), $7$ = PBKDF2-HMAC-SHA512(password, salt,
    // iterations, 64 bytes); salt = bytes 1...12.
    private let sha512Fixture =
        "$6$AQIDBAUGBwgJCgsM$k4h6DJTPKKgPqwiLW87w0j5t6eo2nkDOCc72xNQ6goxbMrAMEDvsnYteF9SSd1cyXtc8SuF5I0GVPt7YRi6Wdw=="
    private let pbkdf2Fixtures = [
        1: "$7$1$AQIDBAUGBwgJCgsM$DlLh8zlGclul4ZSC7mRWZhcHp+uFHFrSrP4nz6VYpTdkaPOWdNw5XYCgsZovAedMYRc34NGyrPtk/qu3mzNxhw==",
        101: "$7$101$AQIDBAUGBwgJCgsM$mIOMyf0G01/LkKvFuu6raA+sJydkdh2qDZD+cyTDcrMk08Rnc3N+vIiTgRJqnolJL9TU+/R/F+mbz31mQG16jg==",
        1000: "$7$1000$AQIDBAUGBwgJCgsM$tGLKLWHdOOVi5QYCTE/yQauJjKZT84XrUlTHmijBs37klJudr8jcrIxUoQxxYAlNJe7LFgnnMgBruKze4qSrbg==",
    ]
    /// "pässwörd€" with twelve 0xFF salt bytes, same tool.
    private let utf8Fixtures = [
        "$7$101$////////////////$9Xe/qHhTnotQQrUYO+gWPn67ce57sk1+xLietmJnpvjx5Vlgh7iUddtOqjzk8iVIvXq79zP9oRBINcC0AUNYow==",
        "$6$////////////////$bdmWvqmf9SUDFoafCHl/6YdXOd0ZNWggc1TwGnnibm3+GOTvq4BUgFpTYNsDdKAmuFOg2YJ1ONoq+D09HV0OKA==",
    ]
    // Written by mosquitto_passwd 2.0.11 (`-c -b`, and `-H sha512 -c -b`).
    private let recordedMosquittoLines = [
        "dave:$7$101$MEOp18UmhxS8u/bC$BcF9zAmuX3t+vizzpaU7s3KcujIX6Mp3JpXcz2ZYASjvqpQDcrvlvMguF+qqssm39rgaCAo0eEy6rfcSiYEZYg==",
        "carol:$6$rO1TOO0K2H5v6Wg/$4KgHnr7i2YMxLRZ8T6qwpE0oBwoOCSlgQFY8rKaW2dJpaMDhHZhb7wUTQWC0MsZS/Aw0m37MYutYD6e0+wNoGg==",
    ]

    func testFormulaFixturesVerify() throws {
        var text = "sha:\(sha512Fixture)\n"
        for (iterations, entry) in pbkdf2Fixtures { text += "p\(iterations):\(entry)\n" }
        let file = try PasswordFile(parsing: text, source: "fixtures")
        XCTAssertEqual(file.verify(username: "sha", password: password), .ok)
        XCTAssertEqual(file.verify(username: "sha", password: Array("correct horsE".utf8)), .wrongPassword)
        for iterations in pbkdf2Fixtures.keys {
            XCTAssertEqual(file.verify(username: "p\(iterations)", password: password), .ok, "\(iterations)")
            XCTAssertEqual(file.verify(username: "p\(iterations)", password: []), .wrongPassword)
        }
        XCTAssertEqual(file.verify(username: "nobody", password: password), .unknownUser)
        XCTAssertEqual(file.verify(username: "SHA", password: password), .unknownUser)
    }

    func testUTF8PasswordFixturesVerify() throws {
        let file = try PasswordFile(
            parsing: "a:\(utf8Fixtures[0])\nb:\(utf8Fixtures[1])\n", source: "utf8")
        XCTAssertEqual(file.verify(username: "a", password: Array("pässwörd€".utf8)), .ok)
        XCTAssertEqual(file.verify(username: "b", password: Array("pässwörd€".utf8)), .ok)
        // The same text in decomposed form is other bytes, so another password.
        XCTAssertEqual(file.verify(username: "a", password: Array("pa\u{308}sswörd€".utf8)), .wrongPassword)
    }

    func testRecordedMosquittoPasswdLinesVerify() throws {
        let file = try PasswordFile(parsing: recordedMosquittoLines.joined(separator: "\n"), source: "recorded")
        XCTAssertEqual(file.verify(username: "dave", password: Array("hunter2".utf8)), .ok)
        XCTAssertEqual(file.verify(username: "carol", password: Array("secret".utf8)), .ok)
        XCTAssertEqual(file.verify(username: "dave", password: Array("secret".utf8)), .wrongPassword)
    }

    func testMakeHashWithFixedSaltEqualsFormula() throws {
        let salt = Array(1...12 as ClosedRange<UInt8>)
        XCTAssertEqual(try PasswordFile.makeHash(password: password, salt: salt), pbkdf2Fixtures[101])
        XCTAssertEqual(try PasswordFile.makeHash(password: password, iterations: 1000, salt: salt), pbkdf2Fixtures[1000])
    }

    func testMakeHashDefaultsMatchMosquittoPasswd() throws {
        let first = try PasswordHash(parsing: PasswordFile.makeHash(password: password)[...])
        let second = try PasswordHash(parsing: PasswordFile.makeHash(password: password)[...])
        guard case .pbkdf2SHA512(let iterations, let salt, let hash) = first,
            case .pbkdf2SHA512(_, let otherSalt, _) = second
        else { return XCTFail("expected $7$ entries") }
        XCTAssertEqual(iterations, 101)
        XCTAssertEqual(salt.count, 12)
        XCTAssertEqual(hash.count, 64)
        XCTAssertNotEqual(salt, otherSalt, "salts must be random")
        XCTAssertTrue(first.matches(password))
        XCTAssertFalse(first.matches(password + [0x20]))
        // HMAC pads short keys with zero bytes, so trailing zero bytes do not change a $7$
        // hash (mosquitto_passwd cannot store such a password anyway).
        XCTAssertTrue(first.matches(password + [0]))
    }

    func testMakeHashRejectsBadParameters() {
        XCTAssertThrowsError(try PasswordFile.makeHash(password: password, iterations: 0)) {
            XCTAssertEqual($0 as? PasswordHash.MakeError, .invalidIterations(0))
        }
        XCTAssertThrowsError(try PasswordFile.makeHash(password: password, salt: [1, 2, 3])) {
            XCTAssertEqual($0 as? PasswordHash.MakeError, .invalidSaltLength(3))
        }
    }

    func testCommentsBlankLinesAndBlanksAroundFields() throws {
        let text = "# users\n\n  \t\ndave :\t\(recordedMosquittoLines[0].dropFirst(5)) \r\n   # indented comment\n"
        let file = try PasswordFile(parsing: text, source: "mixed")
        XCTAssertEqual(file.usernames, ["dave"])
        XCTAssertEqual(file.verify(username: "dave", password: Array("hunter2".utf8)), .ok)
    }

    func testUnknownUserHashesWithTheFilesIterationCount() throws {
        let file = try PasswordFile(parsing: "x:\(sha512Fixture)\ny:\(pbkdf2Fixtures[1000] ?? "")\n", source: "t")
        guard case .pbkdf2SHA512(let iterations, let salt, _) = file.dummyHash else { return XCTFail("dummy") }
        XCTAssertEqual(iterations, 1000)
        XCTAssertEqual(salt.count, 12)
        XCTAssertEqual(file.verify(username: "z", password: password), .unknownUser)
        let empty = try PasswordFile(parsing: "", source: "empty")
        guard case .pbkdf2SHA512(101, _, _) = empty.dummyHash else { return XCTFail("default dummy") }
        XCTAssertEqual(empty.verify(username: "", password: []), .unknownUser)
    }

    func testConstantTimeEqual() {
        XCTAssertTrue(PasswordHash.constantTimeEqual([1, 2, 3], [1, 2, 3]))
        XCTAssertFalse(PasswordHash.constantTimeEqual([1, 2, 3], [1, 2, 4]))
        XCTAssertFalse(PasswordHash.constantTimeEqual([1, 2, 3], [1, 2]))
    }

    // MARK: Errors

    private func parseError(_ text: String) -> AuthFileError? {
        do {
            _ = try PasswordFile(parsing: text, source: "/etc/roost/passwd")
            return nil
        } catch {
            return error
        }
    }

    func testErrorsNameFileLineAndProblemWithoutTheHash() {
        let good = "ok:\(sha512Fixture)\n"
        let secretLookingHash = "$7$101$AQIDBAUGBwgJCgsM$notbase64!!"
        let cases: [(String, Int, AuthFileError.Reason)] = [
            (good + "no colon here\n", 2, .missingColon),
            (good + "# c\n :\(sha512Fixture)\n", 3, .emptyUsername),
            (good + "u:\(secretLookingHash)\n", 2, .invalidHash("the hash is not valid base64")),
            (good + "u:$5$abc$def\n", 2, .invalidHash("unknown hash type (Roost reads mosquitto's '$6$' and '$7$', and 'SCRAM-SHA-256$')")),
            (good + "u:plaintext\n", 2, .invalidHash(
                "expected '$7$iterations$salt$hash', '$6$salt$hash' or 'SCRAM-SHA-256$iterations:salt$storedkey:serverkey'")),
            (good + "u:$7$0$AQIDBAUGBwgJCgsM$AAAA\n", 2,
             .invalidHash("the iteration count must be a whole number from 1 to 2147483647")),
            (good + "u:$7$1x$AQIDBAUGBwgJCgsM$AAAA\n", 2,
             .invalidHash("the iteration count must be a whole number from 1 to 2147483647")),
            (good + "u:$6$AQID$\(sha512Fixture.split(separator: "$")[2])\n", 2,
             .invalidHash("the salt must be 12 bytes, found 3")),
            (good + "u:$6$AQIDBAUGBwgJCgsM$AAAA\n", 2, .invalidHash("the hash must be 64 bytes, found 3")),
            (good + "u:$7$101$AQIDBAUGBwgJCgsM\n", 2, .invalidHash("a '$7$' entry has the form '$7$iterations$salt$hash'")),
            (good + "\n" + good, 3, .duplicateUser("ok", firstLine: 1)),
        ]
        for (text, line, reason) in cases {
            guard let error = parseError(text) else {
                XCTFail("accepted: \(text)")
                continue
            }
            XCTAssertEqual(error.line, line, text)
            XCTAssertEqual(error.reason, reason, text)
            XCTAssertTrue(error.description.hasPrefix("/etc/roost/passwd:\(line): "), error.description)
            XCTAssertFalse(error.description.contains("notbase64"), error.description)
            XCTAssertFalse(error.description.contains("k4h6DJTP"), error.description)
        }
    }

    func testNonUTF8LineIsAnErrorWithItsNumber() throws {
        let directory = try MosquittoTools.temporaryDirectory(self)
        let path = "\(directory)/passwd"
        var bytes = Array("ok:\(sha512Fixture)\n".utf8)
        bytes += [0x62, 0xFF, 0x3A, 0x24, 0x36, 0x0A]
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        XCTAssertThrowsError(try PasswordFile.load(path: path)) {
            XCTAssertEqual($0 as? AuthFileError, AuthFileError(file: path, line: 2, reason: .notUTF8))
        }
    }

    func testMissingFileIsUnreadable() {
        XCTAssertThrowsError(try PasswordFile.load(path: "/nonexistent/roost/passwd")) {
            let error = $0 as? AuthFileError
            XCTAssertEqual(error?.file, "/nonexistent/roost/passwd")
            XCTAssertEqual(error?.reason, .unreadable("No such file or directory"))
        }
    }

    // MARK: Editing

    func testEditingKeepsOtherLinesAndComments() throws {
        let original = "# team\n\(recordedMosquittoLines[0])\n\n  # keep me \ncarol:\(sha512Fixture)\n"
        var file = try PasswordFile(parsing: original, source: "edit")
        XCTAssertEqual(file.rendered(), original)

        let newHash = try PasswordHash.make(password: Array("new".utf8))
        try file.setPassword(newHash, for: "carol")
        try file.setPassword(newHash, for: "erin")
        let lines = file.rendered().split(separator: "\n", omittingEmptySubsequences: false)
        XCTAssertEqual(lines[0], "# team")
        XCTAssertEqual(String(lines[1]), recordedMosquittoLines[0])
        XCTAssertEqual(lines[2], "")
        XCTAssertEqual(lines[3], "  # keep me ")
        XCTAssertEqual(String(lines[4]), "carol:\(newHash.encoded)")
        XCTAssertEqual(String(lines[5]), "erin:\(newHash.encoded)")

        XCTAssertTrue(file.remove(username: "dave"))
        XCTAssertFalse(file.remove(username: "dave"))
        let reparsed = try PasswordFile(parsing: file.rendered(), source: "edit")
        XCTAssertEqual(reparsed.usernames, ["carol", "erin"])
        XCTAssertEqual(reparsed.verify(username: "carol", password: Array("new".utf8)), .ok)
        XCTAssertEqual(reparsed.verify(username: "dave", password: Array("hunter2".utf8)), .unknownUser)
    }

    func testUsernamesThatCannotBeStoredAreRefused() throws {
        var file = PasswordFile(empty: "new")
        let hash = try PasswordHash.make(password: password, iterations: 1)
        for name in ["", "a:b", "a\nb", " lead", "trail\t", "#hash", "nul\0"] {
            XCTAssertThrowsError(try file.setPassword(hash, for: name), name.debugDescription)
        }
        try file.setPassword(hash, for: "with space")
        XCTAssertEqual(try PasswordFile(parsing: file.rendered(), source: "x").usernames, ["with space"])
    }

    func testWriteIsAtomicWithMode0600ForNewFilesAndKeepsAnExistingMode() throws {
        let directory = try MosquittoTools.temporaryDirectory(self)
        let path = "\(directory)/passwd"
        var file = PasswordFile(empty: path)
        try file.setPassword(PasswordHash.make(password: password), for: "alice")
        try file.write(to: path)
        var attributes = try FileManager.default.attributesOfItem(atPath: path)
        XCTAssertEqual((attributes[.posixPermissions] as? NSNumber)?.intValue, 0o600)
        XCTAssertEqual(try PasswordFile.load(path: path).verify(username: "alice", password: password), .ok)

        try FileManager.default.setAttributes([.posixPermissions: 0o640], ofItemAtPath: path)
        try file.setPassword(PasswordHash.make(password: password), for: "bob")
        try file.write(to: path)
        attributes = try FileManager.default.attributesOfItem(atPath: path)
        XCTAssertEqual((attributes[.posixPermissions] as? NSNumber)?.intValue, 0o640)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory), ["passwd"], "no temporary left")
        XCTAssertEqual(try PasswordFile.load(path: path).usernames, ["alice", "bob"])
    }

    func testWriteIntoMissingDirectoryFails() throws {
        let file = PasswordFile(empty: "x")
        XCTAssertThrowsError(try file.write(to: "/nonexistent/roost/passwd")) {
            XCTAssertEqual(($0 as? AuthFileError)?.reason, .unwritable("No such file or directory"))
        }
    }
}
