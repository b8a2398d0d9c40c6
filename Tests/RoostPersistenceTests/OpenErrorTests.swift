import CSQLite
import Foundation
import RoostCore
import XCTest

@testable import RoostPersistence

final class OpenErrorTests: StoreTestCase {
    func testASecondOpenOfTheDirectoryIsRefusedWithTheHoldersPID() throws {
        let store = try open(root + "/nested/dir")
        let error = storeError { _ = try self.open(self.root + "/nested/dir") }
        let lockFile = root + "/nested/dir/roost.lock"
        XCTAssertEqual(error, .locked(directory: root + "/nested/dir", lockFile: lockFile, pid: getpid()))
        let text = error?.description ?? ""
        XCTAssertTrue(text.contains("pid \(getpid())"), text)
        XCTAssertTrue(text.contains(lockFile), text)
        XCTAssertTrue(text.contains("--data-dir"), text)

        store.close()
        let again = try open(root + "/nested/dir")
        again.close()
    }

    func testAFileThatIsNotADatabaseIsReportedAndLeftAlone() throws {
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        let path = dataDirectory + "/roost.db"
        let garbage = Data((0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        try garbage.write(to: URL(fileURLWithPath: path))

        let error = storeError { _ = try self.open() }
        guard case .corrupt(let reported, _) = error else { return XCTFail("expected corrupt, got \(String(describing: error))") }
        XCTAssertEqual(reported, path)
        let text = error?.description ?? ""
        XCTAssertTrue(text.hasPrefix("\(path) is damaged ("), text)
        XCTAssertTrue(text.contains("move it aside"), text)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), garbage, "the file is untouched")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path + "-wal"))

        // The lock was released with the failed open, and the CLI reports the same damage.
        guard case .corrupt = storeError({ _ = try self.open() }) else { return XCTFail("expected corrupt again") }
        guard case .corrupt = storeError({ _ = try SQLiteStore.inspect(directory: self.dataDirectory) }) else {
            return XCTFail("expected inspect to report corrupt")
        }
    }

    func testADatabaseFromANewerRoostIsRefused() throws {
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        let path = dataDirectory + "/roost.db"
        var handle: OpaquePointer?
        XCTAssertEqual(sqlite3_open(path, &handle), SQLITE_OK)
        XCTAssertEqual(sqlite3_exec(handle, "CREATE TABLE future (x); PRAGMA user_version = 99", nil, nil, nil), SQLITE_OK)
        sqlite3_close(handle)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))

        let error = storeError { _ = try self.open() }
        XCTAssertEqual(error, .newerSchema(path: path, found: 99, supported: Schema.version))
        XCTAssertEqual(
            error?.description,
            "\(path) has schema version 99, written by a newer roost; this roost reads up to version \(Schema.version): run the newer roost, or move the file aside")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), before)
        XCTAssertEqual(storeError { _ = try SQLiteStore.dump(directory: self.dataDirectory) }, error)
    }

    func testInspectWithoutADatabaseSaysSo() {
        let error = storeError { _ = try SQLiteStore.inspect(directory: self.root + "/nothing") }
        XCTAssertEqual(error, .noDatabase(path: root + "/nothing/roost.db"))
    }

    func testAnUncreatableDirectoryIsReported() throws {
        let file = root + "/file"
        XCTAssertTrue(FileManager.default.createFile(atPath: file, contents: Data()))
        let error = storeError { _ = try self.open(file + "/sub") }
        guard case .cannotCreateDirectory(let path, _) = error else { return XCTFail("got \(String(describing: error))") }
        XCTAssertEqual(path, file + "/sub")
    }

    func testMigrationSetsTheSchemaVersionAndWAL() throws {
        let store = try open()
        store.close()
        var handle: OpaquePointer?
        XCTAssertEqual(sqlite3_open_v2(dataDirectory + "/roost.db", &handle, SQLITE_OPEN_READONLY, nil), SQLITE_OK)
        defer { sqlite3_close(handle) }
        let database = RawDatabase(handle: handle)
        XCTAssertEqual(database.single("PRAGMA user_version"), "\(Schema.version)")
        XCTAssertEqual(database.single("PRAGMA journal_mode"), "wal")
    }

    /// A version 1 file (queue WITHOUT ROWID) with a queued message is migrated to the current
    /// schema on open, and the message survives.
    func testAVersion1DatabaseIsMigratedWithItsRows() throws {
        let store = try open()
        store.submit(.putSession(SessionRecord(id: 1, clientID: "old", expiryInterval: 60)))
        store.submit(.enqueue(sessionID: 1, delivery: delivery(message("kept/1"), seq: 1)))
        store.close()
        // Put the file back to version 1: the queue as it was then.
        var handle: OpaquePointer?
        XCTAssertEqual(sqlite3_open(dataDirectory + "/roost.db", &handle), SQLITE_OK)
        let downgrade = """
            CREATE TABLE queue_v1 (session_id INTEGER NOT NULL, seq INTEGER NOT NULL, message BLOB NOT NULL,
                expires_at INTEGER, qos INTEGER NOT NULL, retain INTEGER NOT NULL, subscription_ids BLOB,
                shared_group TEXT, packet_id INTEGER NOT NULL DEFAULT 0, released INTEGER NOT NULL DEFAULT 0,
                PRIMARY KEY (session_id, seq)) WITHOUT ROWID;
            INSERT INTO queue_v1 SELECT session_id, seq, message, expires_at, qos, retain, subscription_ids,
                shared_group, packet_id, released FROM queue;
            DROP TABLE queue; ALTER TABLE queue_v1 RENAME TO queue; PRAGMA user_version = 1;
            """
        XCTAssertEqual(sqlite3_exec(handle, downgrade, nil, nil, nil), SQLITE_OK)
        sqlite3_close(handle)

        let migrated = try open()
        defer { migrated.close() }
        XCTAssertEqual(try migrated.load(memoryQueueLimit: 0).queues[1]?.map(\.delivery.message.topic), ["kept/1"])
        XCTAssertEqual(try SQLiteStore.inspect(directory: dataDirectory).schemaVersion, Schema.version)
    }
}

/// A minimal reader for checks on a raw SQLite handle.
private struct RawDatabase {
    let handle: OpaquePointer?

    func single(_ sql: String) -> String? {
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(handle, sql, -1, &statement, nil) == SQLITE_OK else { return nil }
        defer { sqlite3_finalize(statement) }
        guard sqlite3_step(statement) == SQLITE_ROW, let text = sqlite3_column_text(statement, 0) else { return nil }
        return String(cString: text)
    }
}
