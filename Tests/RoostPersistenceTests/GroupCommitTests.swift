import MQTTCodec
import NIOCore
import RoostCore
import Synchronization
import XCTest

@testable import RoostPersistence

final class GroupCommitTests: StoreTestCase {
    func testAMessageAcknowledgedBeforeItsBatchIsTakenNeverReachesTheDisk() throws {
        // A long interval keeps everything pending until close commits it.
        let store = try open(commitInterval: .seconds(30))
        store.submit(.enqueue(sessionID: 1, delivery: delivery(message("a"), seq: 1)))
        store.submit(.sent(sessionID: 1, seq: 1, packetID: 4))
        store.submit(.dequeue(sessionID: 1, seq: 1))
        store.close()
        XCTAssertEqual(store.rowsWritten, 0)
        XCTAssertEqual(store.batchesCommitted, 0, "nothing left to write: no transaction at all")
    }

    /// A topic rewritten many times while changes wait is one row; a read in between still sees
    /// the value before it.
    func testPendingRetainedChangesOfATopicKeepOnlyTheLast() throws {
        let store = try open(commitInterval: .seconds(30))
        for number in 0..<100 { store.submit(.putRetained(message("hot", "\(number)", retain: true))) }
        let seen = Mutex<[String]>([])
        store.submit(.readRetained(filter: "hot", limit: 10) { messages in
            seen.withLock { $0 = messages.map { String(buffer: $0.payload) } }
        })
        store.submit(.putRetained(message("hot", "after the read", retain: true)))
        store.submit(.deleteRetained(topic: "gone"))
        store.submit(.putRetained(message("gone", "x", retain: true)))
        store.close()
        XCTAssertEqual(store.rowsWritten, 3, "99 of 100 writes of the topic replaced; the one after the read kept")
        XCTAssertEqual(seen.withLock { $0 }, ["99"])
        let reopened = try open()
        defer { reopened.close() }
        XCTAssertEqual(Set(try reopened.load().retained.map { String(buffer: $0.payload) }), ["after the read", "x"])
    }

    func testSentAndReleasedMergeIntoAPendingEnqueue() throws {
        let store = try open(commitInterval: .seconds(30))
        store.submit(.putSession(SessionRecord(id: 1, clientID: "a", expiryInterval: 60)))
        store.submit(.enqueue(sessionID: 1, delivery: delivery(message("one", qos: .exactlyOnce), seq: 1)))
        store.submit(.enqueue(sessionID: 1, delivery: delivery(message("two"), seq: 2)))
        store.submit(.sent(sessionID: 1, seq: 1, packetID: 9))
        store.submit(.released(sessionID: 1, seq: 1))
        store.submit(.sent(sessionID: 1, seq: 2, packetID: 10))
        store.submit(.dequeue(sessionID: 1, seq: 2))
        store.close()
        XCTAssertEqual(store.rowsWritten, 2, "the session row and one queue row; no updates, nothing for seq 2")
        XCTAssertEqual(store.batchesCommitted, 1)

        let reopened = try open()
        defer { reopened.close() }
        let queue = try reopened.load().queues[1] ?? []
        XCTAssertEqual(queue.map(\.seq), [1])
        XCTAssertEqual(queue.first?.packetID, 9)
        XCTAssertEqual(queue.first?.released, true)
    }

    func testADequeueOfARowAlreadyTakenStillDeletesIt() throws {
        let store = try open()
        store.submit(.enqueue(sessionID: 1, delivery: delivery(message("a"), seq: 1)))
        waitDurable(store)
        store.submit(.dequeue(sessionID: 1, seq: 1))
        waitDurable(store)
        XCTAssertEqual(store.rowsWritten, 2)
        XCTAssertEqual(try SQLiteStore.inspect(directory: dataDirectory).queued, 0)
        store.close()
    }

    func testWhenDurableFiresOnlyAfterTheCommit() throws {
        let store = try open(commitInterval: .milliseconds(300))
        defer { store.close() }
        let first = store.submit(.putSession(SessionRecord(id: 1, clientID: "a", expiryInterval: 60)))
        let second = store.submit(.addInbound(sessionID: 1, packetID: 1))
        XCTAssertGreaterThan(second, first)
        XCTAssertEqual(store.lastTicket, second)

        let fired = Atomic<Bool>(false)
        let done = expectation(description: "durable")
        store.whenDurable(second) {
            XCTAssertEqual(store.batchesCommitted, 1, "called after the commit")
            fired.store(true, ordering: .relaxed)
            done.fulfill()
        }
        XCTAssertFalse(fired.load(ordering: .relaxed), "the batch waits for its commit interval")
        XCTAssertEqual(store.batchesCommitted, 0)
        wait(for: [done], timeout: 5)

        // An already durable ticket calls back at once, on the caller's thread.
        let immediate = Atomic<Bool>(false)
        store.whenDurable(first) { immediate.store(true, ordering: .relaxed) }
        XCTAssertTrue(immediate.load(ordering: .relaxed))
        XCTAssertGreaterThan(store.submit(.removeInbound(sessionID: 1, packetID: 1)), second)
    }

    func testAFullBatchCommitsWithoutWaitingForTheInterval() throws {
        let store = try open(commitInterval: .seconds(30))
        defer { store.close() }
        for packetID in 1...SQLiteStore.batchLimit {
            store.submit(.addInbound(sessionID: 1, packetID: UInt16(packetID)))
        }
        waitDurable(store, timeout: 5)
        XCTAssertEqual(store.rowsWritten, SQLiteStore.batchLimit)
    }

    func testSubmitsAfterCloseAreIgnored() throws {
        let store = try open()
        store.submit(.putSession(SessionRecord(id: 1, clientID: "a", expiryInterval: 60)))
        store.submit(.addInbound(sessionID: 1, packetID: 1))
        store.close()
        store.close()
        let ticket = store.submit(.addInbound(sessionID: 1, packetID: 2))
        XCTAssertEqual(ticket, .max, "a change dropped after close is never durable")
        XCTAssertEqual(store.lastTicket, .max)
        let called = Atomic<Bool>(false)
        store.whenDurable(ticket) { called.store(true, ordering: .relaxed) }
        XCTAssertFalse(called.load(ordering: .relaxed), "nothing may wait for it and go ahead")
        XCTAssertThrowsError(try store.load())

        let reopened = try open()
        defer { reopened.close() }
        XCTAssertEqual(try reopened.load().inbound[1], [1])
    }

    /// A message already sent is finished after a restart whatever its expiry: only unsent
    /// expired rows go at load (found in review).
    func testExpiredMessagesInFlightAreKeptAtLoad() throws {
        let store = try open()
        let clock = UInt64(monotonic.now)
        store.submit(.putSession(SessionRecord(id: 1, clientID: "s", expiryInterval: 3600)))
        store.submit(.enqueue(sessionID: 1, delivery: delivery(message("sent", expiresAt: clock + 1_000), seq: 1, qos: .exactlyOnce)))
        store.submit(.enqueue(sessionID: 1, delivery: delivery(message("unsent", expiresAt: clock + 1_000), seq: 2)))
        store.submit(.sent(sessionID: 1, seq: 1, packetID: 7))
        store.submit(.released(sessionID: 1, seq: 1))
        store.close()
        wall.advance(by: 5_000)
        let reopened = try open()
        defer { reopened.close() }
        let queue = try reopened.load().queues[1] ?? []
        XCTAssertEqual(queue.map(\.delivery.message.topic), ["sent"])
        XCTAssertEqual(queue.first?.packetID, 7)
        XCTAssertEqual(queue.first?.released, true)
    }

    func testExpiredStateIsRemovedAtLoad() throws {
        let store = try open()
        let now = wall.now
        let clock = UInt64(monotonic.now)
        let will = Will(topic: "wills/expires", payload: ByteBuffer(string: "gone"), qos: .atLeastOnce)
        store.submit(.putSession(SessionRecord(id: 1, clientID: "expires", expiryInterval: 5, will: will, disconnectedAt: now - 1_000, willDueAt: now + 1_000)))
        store.submit(.putSession(SessionRecord(id: 2, clientID: "stays", expiryInterval: 3600, disconnectedAt: now - 1_000)))
        store.submit(.putSession(SessionRecord(id: 3, clientID: "was-online", expiryInterval: 1)))
        store.submit(.putSession(SessionRecord(id: 4, clientID: "never-expires", expiryInterval: .max, disconnectedAt: 0)))
        store.submit(.putSubscription(sessionID: 1, subscription: Subscription(filter: "f"), subscriptionID: nil))
        store.submit(.addInbound(sessionID: 1, packetID: 1))
        store.submit(.enqueue(sessionID: 1, delivery: delivery(message("of/expired/session"), seq: 1)))
        store.submit(.enqueue(sessionID: 2, delivery: delivery(message("short", expiresAt: clock + 3_000), seq: 1)))
        store.submit(.enqueue(sessionID: 2, delivery: delivery(message("long", expiresAt: clock + 100_000), seq: 2)))
        store.submit(.enqueue(sessionID: 2, delivery: delivery(message("forever"), seq: 3)))
        store.submit(.putRetained(message("r/short", retain: true, expiresAt: clock + 3_000)))
        store.submit(.putRetained(message("r/forever", retain: true)))
        store.close()

        wall.advance(by: 5_000)  // session 1 is 6 s offline with a 5 s expiry
        let reopened = try open()
        let state = try reopened.load()
        XCTAssertEqual(state.sessions.map(\.clientID), ["stays", "was-online", "never-expires"])
        XCTAssertEqual(state.queues[2]?.map(\.delivery.message.topic), ["long", "forever"])
        XCTAssertEqual(state.queues[2]?.first?.delivery.message.expiresAt, clock + 95_000)
        XCTAssertEqual(state.retained.map(\.topic), ["r/forever"])
        XCTAssertEqual(state.expiredWills.map(\.sessionID), [1], "the will of the expired session is handed over")
        XCTAssertEqual(state.expiredWills.first?.will, will)
        reopened.close()

        // Removed from the file, not only from what was returned; the expired session with a
        // will (1) stays until the broker has published the will and deletes it.
        XCTAssertFalse(state.sessions.contains { $0.id == 1 })
        XCTAssertNil(state.queues[1])
        let dump = try SQLiteStore.dump(directory: dataDirectory)
        XCTAssertEqual(dump.sessions.map(\.record.id), [1, 2, 3, 4])
        let inspection = try SQLiteStore.inspect(directory: dataDirectory)
        XCTAssertEqual(inspection.subscriptions, 1)
        XCTAssertEqual(inspection.inboundIDs, 1)
        XCTAssertEqual(inspection.queued, 3)
        XCTAssertEqual(inspection.retained, 1)
    }
}
