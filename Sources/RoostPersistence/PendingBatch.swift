import RoostCore

/// A change as the writer applies it. An enqueue carries the packet id and stage that later
/// changes merged into it while it waited.
enum Operation {
    case enqueue(QueueRecord)
    case change(StoreChange)
}

/// The changes submitted since the writer last took a batch, in submission order, with the
/// elisions that save disk writes:
///
/// - `sent` / `released` for a delivery whose `enqueue` is still here update that enqueue;
/// - `dequeue` of a delivery whose `enqueue` is still here removes both, so a message
///   acknowledged before its batch was taken never reaches the disk.
///
/// Everything else keeps its place: `deleteSession` / `clearSession` apply in order with the row
/// changes around them. Elision never reaches into a batch already taken (it may be on disk).
///
/// Not thread-safe: the store guards it with its lock.
struct PendingBatch {
    private struct QueueKey: Hashable {
        var sessionID: Int
        var seq: UInt64
    }

    private var operations: [Operation?] = []
    /// Where each pending enqueue sits in `operations`.
    private var enqueues: [QueueKey: Int] = [:]
    /// Where the pending retained change of each topic sits: a later one for the same topic
    /// replaces it (a topic rewritten 1000 times while the disk is slow or full is one row).
    private var retainedChanges: [String: Int] = [:]
    /// Operations that will be applied (elided ones excluded).
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    mutating func append(_ change: StoreChange) {
        switch change {
        case .enqueue(let sessionID, let delivery):
            enqueues[QueueKey(sessionID: sessionID, seq: delivery.seq)] = operations.count
            operations.append(.enqueue(QueueRecord(sessionID: sessionID, seq: delivery.seq, delivery: delivery)))
            count += 1
            return
        case .sent(let sessionID, let seq, let packetID):
            if updateEnqueue(QueueKey(sessionID: sessionID, seq: seq), { $0.packetID = packetID }) { return }
        case .released(let sessionID, let seq):
            if updateEnqueue(QueueKey(sessionID: sessionID, seq: seq), { $0.released = true }) { return }
        case .dequeue(let sessionID, let seq):
            if let index = enqueues.removeValue(forKey: QueueKey(sessionID: sessionID, seq: seq)) {
                operations[index] = nil
                count -= 1
                return
            }
        case .putRetained(let message):
            replaceRetained(of: message.topic)
        case .deleteRetained(let topic):
            replaceRetained(of: topic)
        case .readRetained:
            // A read sees every change before it: nothing before it may be replaced any more.
            retainedChanges.removeAll(keepingCapacity: true)
        default:
            break
        }
        switch change {
        case .putRetained(let message): retainedChanges[message.topic] = operations.count
        case .deleteRetained(let topic): retainedChanges[topic] = operations.count
        default: break
        }
        operations.append(.change(change))
        count += 1
    }

    private mutating func replaceRetained(of topic: String) {
        guard let index = retainedChanges.removeValue(forKey: topic), operations[index] != nil else { return }
        operations[index] = nil
        count -= 1
    }

    /// Removes and returns every operation, in order.
    mutating func take() -> [Operation] {
        var taken: [Operation] = []
        taken.reserveCapacity(count)
        for case let operation? in operations { taken.append(operation) }
        operations.removeAll(keepingCapacity: true)
        enqueues.removeAll(keepingCapacity: true)
        retainedChanges.removeAll(keepingCapacity: true)
        count = 0
        return taken
    }

    private mutating func updateEnqueue(_ key: QueueKey, _ update: (inout QueueRecord) -> Void) -> Bool {
        guard let index = enqueues[key], case .enqueue(var record)? = operations[index] else { return false }
        update(&record)
        operations[index] = .enqueue(record)
        return true
    }
}
