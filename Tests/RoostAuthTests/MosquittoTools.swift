import Foundation
import XCTest

/// Finds and runs the Debian `mosquitto` tools. Without them a test skips, unless the
/// environment variable CI is "true": there they must exist and the test fails.
enum MosquittoTools {
    static func path(_ name: String) throws -> String {
        for directory in ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"] {
            let candidate = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        if ProcessInfo.processInfo.environment["CI"] == "true" {
            XCTFail("\(name) is missing; CI installs it with 'apt-get install -y mosquitto mosquitto-clients'")
            throw XCTSkip("\(name) is missing (counted as a failure above)")
        }
        throw XCTSkip("\(name) is not installed (apt-get install -y mosquitto mosquitto-clients)")
    }

    /// Runs a program to completion; returns its exit status, standard output and error.
    @discardableResult
    static func run(_ executable: String, _ arguments: [String], stdin: String? = nil) throws -> (
        status: Int32, stdout: String, stderr: String
    ) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = Pipe()
        let error = Pipe()
        process.standardOutput = output
        process.standardError = error
        let input = Pipe()
        process.standardInput = input
        try process.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        let outData = output.fileHandleForReading.readDataToEndOfFile()
        let errData = error.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
    }

    /// A new empty directory, removed when the test ends.
    static func temporaryDirectory(_ test: XCTestCase) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("roost-auth-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        test.addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }
}
