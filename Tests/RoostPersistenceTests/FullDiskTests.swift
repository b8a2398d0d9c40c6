import Foundation
import MQTTCodec
import NIOCore
import RoostCore
import Synchronization
import XCTest

@testable import RoostPersistence

/// A real full disk: a 1 MiB tmpfs (needs root). Skipped without root, unless CI=true, where a
/// missing mount fails the run.
final class FullDiskTests: StoreTestCase {
    private var mountPoint: String?

    override func tearDownWithError() throws {
        if let mountPoint { _ = try? run("/bin/umount", [mountPoint]) }
        try super.tearDownWithError()
    }

    private func mountSmallDisk() throws -> String {
        let onCI = ProcessInfo.processInfo.environment["CI"] == "true"
        guard getuid() == 0 else {
            if onCI { XCTFail("the full-disk test needs root to mount a tmpfs, and CI=true") }
            throw XCTSkip("the full-disk test needs root to mount a tmpfs")
        }
        let point = root + "/disk"
        try FileManager.default.createDirectory(atPath: point, withIntermediateDirectories: true)
        let status = try run("/bin/mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", point])
        guard status == 0 else {
            if onCI { XCTFail("mount -t tmpfs failed with status \(status), and CI=true") }
            throw XCTSkip("mount -t tmpfs failed with status \(status) (no CAP_SYS_ADMIN in this container?)")
        }
        mountPoint = point
        return point
    }

    private func run(_ tool: String, _ arguments: [String]) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Writes `path` until the disk is full; returns the bytes written.
    private func fill(_ path: String) -> Int {
        let descriptor = Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        defer { close(descriptor) }
        let chunk = [UInt8](repeating: 0x55, count: 4096)
        var total = 0
        while true {
            let written = chunk.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            if written <= 0 { return total }
            total += written
        }
    }

    private func waitUntil(_ timeout: TimeInterval, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return true }
            usleep(10_000)
        }
        return condition()
    }

    func testAFullDiskHoldsTheAcknowledgementsAndTheStoreRecoversByItself() throws {
        let disk = try mountSmallDisk()
        let directory = disk + "/data"
        let store = try open(directory)
        store.submit(.putSession(SessionRecord(id: 1, clientID: "a", expiryInterval: 600)))
        waitDurable(store)

        let filler = disk + "/filler"
        XCTAssertGreaterThan(fill(filler), 0)

        let big = Message(
            topic: "big", payload: ByteBuffer(repeating: 0xA5, count: 256 * 1024), qos: .atLeastOnce, retain: false,
            properties: Properties(), expiresAt: nil, publisherID: 1)
        let ticket = store.submit(.enqueue(sessionID: 1, delivery: delivery(big, seq: 1)))
        let fired = Atomic<Bool>(false)
        let durable = expectation(description: "durable after recovery")
        store.whenDurable(ticket) {
            fired.store(true, ordering: .relaxed)
            durable.fulfill()
        }
        XCTAssertTrue(waitUntil(5) { store.isFailing }, "the commit fails on a full disk")
        // Changes submitted while failing join the retry.
        let later = store.submit(.addInbound(sessionID: 1, packetID: 7))
        usleep(600_000)  // two retry periods
        XCTAssertTrue(store.isFailing)
        XCTAssertFalse(fired.load(ordering: .relaxed), "nothing of the failed batch is reported durable")

        XCTAssertEqual(unlink(filler), 0)
        wait(for: [durable], timeout: 5)
        XCTAssertFalse(store.isFailing)
        let laterDone = expectation(description: "later change durable")
        store.whenDurable(later) { laterDone.fulfill() }
        wait(for: [laterDone], timeout: 5)
        store.close()

        let errors = logs.recorded.filter { $0.level == .error }
        XCTAssertEqual(errors.count, 1, "one error per episode: \(errors.map(\.message))")
        XCTAssertEqual(logs.recorded.filter { $0.message == "store recovered" }.count, 1)

        let reopened = try open(directory)
        defer { reopened.close() }
        let state = try reopened.load()
        XCTAssertEqual(state.queues[1]?.first?.delivery.message.payload.readableBytes, 256 * 1024)
        XCTAssertEqual(state.inbound[1], [7])
    }
}
