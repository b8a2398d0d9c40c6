import Foundation
import Logging
import MQTTCodec
import NIOCore
import RoostCore
import Synchronization
import XCTest

@testable import RoostPersistence

/// A clock a test sets by hand (milliseconds).
final class ManualClock: Sendable {
    private let value: Atomic<Int64>

    init(_ start: Int64) { value = Atomic(start) }

    var now: Int64 {
        get { value.load(ordering: .relaxed) }
        set { value.store(newValue, ordering: .relaxed) }
    }

    func advance(by milliseconds: Int64) { value.add(milliseconds, ordering: .relaxed) }
}

/// Keeps every log line, for checking what the store told the operator.
final class RecordingLogHandler: LogHandler, @unchecked Sendable {
    struct Line { var level: Logger.Level; var message: String }

    private let lines = Mutex<[Line]>([])
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        lines.withLock { $0.append(Line(level: event.level, message: event.message.description)) }
    }

    var recorded: [Line] { lines.withLock { $0 } }
}

/// A fresh directory under the system's temporary directory, removed by `tearDown`.
class StoreTestCase: XCTestCase {
    var root = ""
    /// The broker's monotonic clock and the wall clock the stores of a test see.
    let monotonic = ManualClock(1_000_000)
    let wall = ManualClock(1_750_000_000_000)
    let logs = RecordingLogHandler()

    var dataDirectory: String { root + "/data" }

    override func setUpWithError() throws {
        var template = Array((NSTemporaryDirectory() + "/roost-store-XXXXXX").utf8CString)
        let created = template.withUnsafeMutableBufferPointer { buffer in
            buffer.baseAddress.flatMap { mkdtemp($0) }.map { String(cString: $0) }
        }
        guard let created else { throw XCTSkip("mkdtemp failed") }
        root = created
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: root)
    }

    var logger: Logger {
        let handler = logs
        return Logger(label: "store-test") { _ in handler }
    }

    func open(
        _ directory: String? = nil, fsync: FsyncMode = .normal, commitInterval: Duration = .milliseconds(1)
    ) throws -> SQLiteStore {
        let monotonic = self.monotonic
        let wall = self.wall
        return try SQLiteStore.open(
            directory: directory ?? dataDirectory, fsync: fsync, commitInterval: commitInterval, logger: logger,
            clock: { UInt64(monotonic.now) }, wallClock: { wall.now })
    }

    /// Waits until every change submitted so far is durable.
    func waitDurable(_ store: SQLiteStore, timeout: TimeInterval = 5, file: StaticString = #filePath, line: UInt = #line) {
        let done = expectation(description: "durable")
        store.whenDurable(store.lastTicket) { done.fulfill() }
        wait(for: [done], timeout: timeout)
    }

    /// The error `body` throws, as a `StoreError`.
    func storeError(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) -> StoreError? {
        do {
            try body()
            XCTFail("expected a StoreError", file: file, line: line)
            return nil
        } catch let error as StoreError {
            return error
        } catch {
            XCTFail("expected a StoreError, got \(error)", file: file, line: line)
            return nil
        }
    }
}

func bytes(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

func message(
    _ topic: String, _ payload: String = "p", qos: QoS = .atLeastOnce, retain: Bool = false,
    properties: Properties = Properties(), expiresAt: UInt64? = nil
) -> Message {
    Message(
        topic: topic, payload: bytes(payload), qos: qos, retain: retain, properties: properties, expiresAt: expiresAt,
        publisherID: 42)
}

func delivery(_ message: Message, seq: UInt64, qos: QoS? = nil, subscriptionIDs: [Int] = [], group: String? = nil) -> QueuedDelivery {
    QueuedDelivery(message: message, qos: qos ?? message.qos, retain: message.retain, subscriptionIDs: subscriptionIDs, sharedGroup: group, seq: seq)
}

/// Checks that a loaded message is `expected` as restored: same content, publisher 0.
func assertSame(_ loaded: Message?, _ expected: Message, expiresAt: UInt64?, file: StaticString = #filePath, line: UInt = #line) {
    guard let loaded else { return XCTFail("message \(expected.topic) missing", file: file, line: line) }
    XCTAssertEqual(loaded.topic, expected.topic, file: file, line: line)
    XCTAssertEqual(loaded.payload, expected.payload, file: file, line: line)
    XCTAssertEqual(loaded.qos, expected.qos, file: file, line: line)
    XCTAssertEqual(loaded.retain, expected.retain, file: file, line: line)
    XCTAssertEqual(loaded.properties, expected.properties, file: file, line: line)
    XCTAssertEqual(loaded.expiresAt, expiresAt, file: file, line: line)
    XCTAssertEqual(loaded.publisherID, 0, file: file, line: line)
}
