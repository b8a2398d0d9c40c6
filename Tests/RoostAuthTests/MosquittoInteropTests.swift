import Foundation
import XCTest

@testable import RoostAuth

#if canImport(Glibc)
import Glibc
#endif

/// Password files exchanged with the real mosquitto tools, both ways.
final class MosquittoInteropTests: XCTestCase {
    func testFilesWrittenByMosquittoPasswdVerify() throws {
        let tool = try MosquittoTools.path("mosquitto_passwd")
        let directory = try MosquittoTools.temporaryDirectory(self)
        let path = "\(directory)/passwd"
        try expectSuccess(MosquittoTools.run(tool, ["-c", "-b", path, "alice", "s3cret pass"]))
        try expectSuccess(MosquittoTools.run(tool, ["-b", path, "bob", "pässwörd"]))
        try expectSuccess(MosquittoTools.run(tool, ["-H", "sha512", "-b", path, "carol", "old-style"]))

        let file = try PasswordFile.load(path: path)
        XCTAssertEqual(file.usernames, ["alice", "bob", "carol"])
        guard case .pbkdf2SHA512(101, let salt, _) = file.hash(for: "alice") else {
            return XCTFail("mosquitto_passwd 2.x writes $7$ with 101 iterations by default")
        }
        XCTAssertEqual(salt.count, 12)
        guard case .sha512 = file.hash(for: "carol") else { return XCTFail("-H sha512 writes $6$") }
        XCTAssertEqual(file.verify(username: "alice", password: Array("s3cret pass".utf8)), .ok)
        XCTAssertEqual(file.verify(username: "alice", password: Array("s3cret".utf8)), .wrongPassword)
        XCTAssertEqual(file.verify(username: "bob", password: Array("pässwörd".utf8)), .ok)
        XCTAssertEqual(file.verify(username: "carol", password: Array("old-style".utf8)), .ok)
        XCTAssertEqual(file.verify(username: "carol", password: Array("old-stylE".utf8)), .wrongPassword)
        XCTAssertEqual(file.verify(username: "dave", password: Array("old-style".utf8)), .unknownUser)
    }

    func testMosquittoPasswdReadsAFileWeWrote() throws {
        let tool = try MosquittoTools.path("mosquitto_passwd")
        let directory = try MosquittoTools.temporaryDirectory(self)
        let path = "\(directory)/passwd"
        var file = PasswordFile(empty: path)
        try file.setPassword(PasswordHash.make(password: Array("ours".utf8)), for: "roost")
        try file.write(to: path)
        let ourLine = try String(contentsOfFile: path, encoding: .utf8)

        // mosquitto_passwd parses every line when it updates a file ("Corrupt password file"
        // otherwise), then keeps the lines it does not touch.
        try expectSuccess(MosquittoTools.run(tool, ["-b", path, "theirs", "x"]))
        let after = try String(contentsOfFile: path, encoding: .utf8)
        XCTAssertTrue(after.hasPrefix(ourLine), after)
        let reloaded = try PasswordFile.load(path: path)
        XCTAssertEqual(reloaded.verify(username: "roost", password: Array("ours".utf8)), .ok)
        XCTAssertEqual(reloaded.verify(username: "theirs", password: Array("x".utf8)), .ok)
    }

    func testMosquittoBrokerAcceptsOurHash() throws {
        let broker = try MosquittoTools.path("mosquitto")
        let publisher = try MosquittoTools.path("mosquitto_pub")
        let directory = try MosquittoTools.temporaryDirectory(self)
        var file = PasswordFile(empty: "\(directory)/passwd")
        try file.setPassword(PasswordHash.make(password: Array("broker pass".utf8)), for: "roost")
        try file.setPassword(PasswordHash.make(password: Array("more rounds".utf8), iterations: 5000), for: "slow")
        try file.write(to: "\(directory)/passwd")

        let port = try Self.freePort()
        let config = """
            listener \(port) 127.0.0.1
            allow_anonymous false
            password_file \(directory)/passwd
            user root
            persistence false

            """
        try config.write(toFile: "\(directory)/mosquitto.conf", atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: broker)
        process.arguments = ["-c", "\(directory)/mosquitto.conf"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer {
            process.terminate()
            process.waitUntilExit()
        }
        try Self.waitForListener(port: port)

        func publish(_ user: String, _ password: String) throws -> Int32 {
            try MosquittoTools.run(
                publisher, ["-h", "127.0.0.1", "-p", "\(port)", "-u", user, "-P", password, "-t", "t", "-m", "x"]
            ).status
        }
        XCTAssertEqual(try publish("roost", "broker pass"), 0)
        XCTAssertEqual(try publish("slow", "more rounds"), 0)
        XCTAssertNotEqual(try publish("roost", "broker pasS"), 0, "a wrong password must be refused")
        XCTAssertNotEqual(try publish("nobody", "broker pass"), 0)
    }

    private func expectSuccess(_ result: (status: Int32, stdout: String, stderr: String), line: UInt = #line) {
        XCTAssertEqual(result.status, 0, "\(result.stdout)\(result.stderr)", line: line)
    }

    /// A TCP port on 127.0.0.1 that was free a moment ago.
    private static func freePort() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw XCTSkip("no socket") }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw -> Int32 in
                guard bind(descriptor, raw, length) == 0 else { return -1 }
                return getsockname(descriptor, raw, &length)
            }
        }
        guard bound == 0 else { throw XCTSkip("cannot bind a loopback port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Waits until something accepts TCP connections on 127.0.0.1:`port` (5 s at most).
    private static func waitForListener(port: Int) throws {
        for _ in 0..<100 {
            let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = UInt16(port).bigEndian
            let connected = withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            close(descriptor)
            if connected == 0 { return }
            usleep(50_000)
        }
        XCTFail("mosquitto did not listen on port \(port) within 5 s")
    }
}
