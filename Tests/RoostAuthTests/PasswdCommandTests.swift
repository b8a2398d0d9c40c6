import Foundation
import XCTest

@testable import RoostAuth

/// `roost passwd`, run as a process: the `roost` executable built beside this test bundle.
final class PasswdCommandTests: XCTestCase {
    private func roost() throws -> String {
        let directory = Bundle.main.bundleURL.deletingLastPathComponent().path
        for candidate in ["\(directory)/roost", "\(Bundle.main.bundlePath)/roost"]
        where FileManager.default.isExecutableFile(atPath: candidate) {
            return candidate
        }
        if ProcessInfo.processInfo.environment["CI"] == "true" {
            XCTFail("the roost executable is not beside the tests in \(directory)")
        }
        throw XCTSkip("build the roost executable first (swift build)")
    }

    func testCreateAddChangeAndDelete() throws {
        let roost = try roost()
        let directory = try MosquittoTools.temporaryDirectory(self)
        let path = "\(directory)/passwd"

        var result = try MosquittoTools.run(roost, ["passwd", "-c", "-b", path, "alice", "first pass"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber
        XCTAssertEqual(mode?.intValue, 0o600)

        // A comment survives every later edit.
        try String(contentsOfFile: path, encoding: .utf8).appending("# kept\n")
            .write(toFile: path, atomically: false, encoding: .utf8)
        result = try MosquittoTools.run(roost, ["passwd", path, "bob"], stdin: "piped secret\n")
        XCTAssertEqual(result.status, 0, result.stderr)
        result = try MosquittoTools.run(roost, ["passwd", "--iterations", "7", "-b", path, "alice", "second"])
        XCTAssertEqual(result.status, 0, result.stderr)

        var file = try PasswordFile.load(path: path)
        XCTAssertEqual(file.usernames, ["alice", "bob"])
        XCTAssertEqual(file.verify(username: "alice", password: Array("second".utf8)), .ok)
        XCTAssertEqual(file.verify(username: "alice", password: Array("first pass".utf8)), .wrongPassword)
        XCTAssertEqual(file.verify(username: "bob", password: Array("piped secret".utf8)), .ok)
        guard case .pbkdf2SHA512(7, _, _) = file.hash(for: "alice") else { return XCTFail("--iterations 7") }
        guard case .pbkdf2SHA512(101, _, _) = file.hash(for: "bob") else { return XCTFail("default 101") }

        result = try MosquittoTools.run(roost, ["passwd", "-D", path, "alice"])
        XCTAssertEqual(result.status, 0, result.stderr)
        file = try PasswordFile.load(path: path)
        XCTAssertEqual(file.usernames, ["bob"])
        XCTAssertTrue(try String(contentsOfFile: path, encoding: .utf8).contains("# kept\n"))
    }

    func testErrorsSayWhatIsWrongAndExitWithOne() throws {
        let roost = try roost()
        let directory = try MosquittoTools.temporaryDirectory(self)
        let path = "\(directory)/passwd"

        var result = try MosquittoTools.run(roost, ["passwd", "-b", path, "alice", "x"])
        XCTAssertEqual(result.status, 1)
        XCTAssertEqual(result.stderr, "roost passwd: \(path) does not exist; use -c to create it\n")

        XCTAssertEqual(try MosquittoTools.run(roost, ["passwd", "-c", "-b", path, "alice", "x"]).status, 0)
        result = try MosquittoTools.run(roost, ["passwd", "-D", path, "carol"])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.hasPrefix("roost passwd: user 'carol' is not in \(path)"), result.stderr)

        result = try MosquittoTools.run(roost, ["passwd", path, "bob"], stdin: "")
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.hasPrefix("roost passwd: no password on standard input"), result.stderr)

        try "alice:$7$101$bad\n".write(toFile: path, atomically: false, encoding: .utf8)
        result = try MosquittoTools.run(roost, ["passwd", "-b", path, "bob", "x"])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.hasPrefix("roost passwd: \(path):1: invalid password hash"), result.stderr)
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "alice:$7$101$bad\n", "left untouched")
    }

    func testScramWritesSCRAMEntries() throws {
        let roost = try roost()
        let directory = try MosquittoTools.temporaryDirectory(self)
        let path = "\(directory)/passwd"

        var result = try MosquittoTools.run(roost, ["passwd", "-c", "--scram", "-b", path, "alice", "secret"])
        XCTAssertEqual(result.status, 0, result.stderr)
        result = try MosquittoTools.run(roost, ["passwd", "-b", path, "bob", "bob-pw"])
        XCTAssertEqual(result.status, 0, result.stderr)
        result = try MosquittoTools.run(roost, ["passwd", "--scram", "--iterations", "5", path, "carol"], stdin: "piped\n")
        XCTAssertEqual(result.status, 0, result.stderr)

        var file = try PasswordFile.load(path: path)
        XCTAssertEqual(file.usernames, ["alice", "bob", "carol"])
        guard case .scramSHA256(4096, let salt, _, _)? = file.hash(for: "alice") else { return XCTFail("default 4096") }
        XCTAssertEqual(salt.count, 16)
        guard case .pbkdf2SHA512(101, _, _)? = file.hash(for: "bob") else { return XCTFail("$7$ without --scram") }
        guard case .scramSHA256(5, _, _, _)? = file.hash(for: "carol") else { return XCTFail("--iterations 5") }
        XCTAssertEqual(file.verify(username: "alice", password: Array("secret".utf8)), .ok)
        XCTAssertEqual(file.verify(username: "carol", password: Array("piped".utf8)), .ok)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        XCTAssertTrue(text.hasPrefix("alice:SCRAM-SHA-256$4096:"), text)

        // Changing alice without --scram makes her a $7$ user again.
        result = try MosquittoTools.run(roost, ["passwd", "-b", path, "alice", "other"])
        XCTAssertEqual(result.status, 0, result.stderr)
        file = try PasswordFile.load(path: path)
        guard case .pbkdf2SHA512? = file.hash(for: "alice") else { return XCTFail("$7$ again") }

        result = try MosquittoTools.run(roost, ["passwd", "--scram", "-b", path, "dave", "p\u{E4}ss"])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.hasPrefix("roost passwd: a SCRAM password must be printable ASCII"), result.stderr)
        result = try MosquittoTools.run(roost, ["passwd", "--scram", "-D", path, "bob"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertEqual(try PasswordFile.load(path: path).usernames, ["alice", "bob", "carol"])
    }
}
