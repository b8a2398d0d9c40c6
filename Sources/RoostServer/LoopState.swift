import NIOCore

/// What one event loop keeps for all its connections:
///
/// - The connect timeouts and keepalive checks: a timing wheel of `slots` buckets, `resolution`
///   apart, turned by one repeating task per loop. It replaces one NIO `scheduleTask` per
///   connection (a task, its closure, a promise and a weak-reference side table: about 170
///   bytes per idle connection, and an allocation plus a cancellation on every connect). A
///   connection sits in at most one bucket; moving or removing it is O(1) (swap-remove, the
///   connection keeps its position). A check fires up to `resolution` late, which MQTT's
///   1.5 x keepalive rule easily allows.
/// - A spare list for `Connection.wakeTargets`, so waking subscribers allocates nothing.
///
/// Concurrency: used only on its event loop.
final class LoopState: @unchecked Sendable {
    static let resolution = TimeAmount.milliseconds(100)
    static let slots = 128

    let loop: EventLoop
    private var buckets: [[Connection]]
    /// The last tick whose bucket was processed (ticks count `resolution`s of uptime).
    private var processedTick: Int64
    private var ticker: RepeatedTask?
    /// Spare storage for the bucket being processed, so turning the wheel allocates nothing.
    private var spare: [Connection] = []

    /// Every connection on this loop (for shutdown); each keeps its index (`memberIndex`), so
    /// leaving is a swap-remove. A per-loop array instead of a broker-wide dictionary under a
    /// lock: 8 bytes per connection and no lock shared by the loops on connect.
    private(set) var members: [Connection] = []

    func register(_ connection: Connection) {
        loop.preconditionInEventLoop()
        connection.memberIndex = Int32(members.count)
        members.append(connection)
    }

    func unregister(_ connection: Connection) {
        let index = Int(connection.memberIndex)
        guard index >= 0, index < members.count, members[index] === connection else { return }
        let last = members.removeLast()
        if index < members.count {
            members[index] = last
            last.memberIndex = Int32(index)
        }
        connection.memberIndex = -1
    }

    /// An empty list with capacity, lent to `Connection.wakeTargets` (nil while lent: a nested
    /// call then starts a new one).
    private var spareList: [Connection]? = []

    func takeSpareList() -> [Connection] {
        defer { spareList = nil }
        return spareList ?? []
    }

    func returnSpareList(_ list: [Connection]) {
        spareList = list
    }

    // MARK: Coalesced delivery flushes (`delivery_flush_interval`)

    /// Connections whose deliveries wait for the next coalesced flush, and whether the task
    /// that flushes them is scheduled.
    private var pendingFlush: [Connection] = []
    private var flushScheduled = false

    /// Milliseconds of uptime, wrapping (compared by difference only).
    var nowMillis: UInt32 { UInt32(truncatingIfNeeded: loop.now.uptimeNanoseconds / 1_000_000) }

    /// Whether `connection`'s deliveries can go out now. A connection written to less than
    /// `interval` ms ago waits (at most `interval` ms) and is flushed with whatever else it gets
    /// meanwhile, so a fast stream to one subscriber costs one write per interval instead of
    /// one per message; a subscriber that receives less often is written at once.
    func mayFlushDeliveries(_ connection: Connection, interval: UInt32) -> Bool {
        if connection.flushPending { return false }
        let now = nowMillis
        if now &- connection.lastFlushMillis >= interval {
            connection.lastFlushMillis = now
            return true
        }
        connection.flushPending = true
        pendingFlush.append(connection)
        if !flushScheduled {
            // Due when the first one waiting is: the ones that join later go out with it,
            // a little early rather than late.
            flushScheduled = true
            let wait = Int64(connection.lastFlushMillis &+ interval &- now)
            loop.scheduleTask(in: .milliseconds(max(1, wait))) { [weak self] in self?.flushPending() }
        }
        return false
    }

    private func flushPending() {
        flushScheduled = false
        var due = pendingFlush
        pendingFlush = []
        let now = nowMillis
        for connection in due {
            connection.flushPending = false
            connection.lastFlushMillis = now
            connection.flushOutput(now: true)
        }
        due.removeAll(keepingCapacity: true)
        if pendingFlush.isEmpty { pendingFlush = due }
    }

    init(loop: EventLoop) {
        self.loop = loop
        self.buckets = Array(repeating: [], count: Self.slots)
        self.processedTick = Self.tick(of: loop.now)
    }

    private static func tick(of deadline: NIODeadline) -> Int64 {
        Int64(deadline.uptimeNanoseconds / UInt64(resolution.nanoseconds))
    }

    /// Calls `connection.timerFired(now:)` once `deadline` has passed (replacing any earlier
    /// deadline of that connection).
    func schedule(_ connection: Connection, at deadline: NIODeadline) {
        loop.preconditionInEventLoop()
        remove(connection)
        // A deadline in the current or a past tick is checked on the next turn.
        let tick = max(Self.tick(of: deadline), processedTick + 1)
        let slot = Int(tick % Int64(Self.slots))
        connection.timerSlot = Int32(slot)
        connection.timerIndex = Int32(buckets[slot].count)
        connection.timerDeadline = deadline
        buckets[slot].append(connection)
        if ticker == nil {
            ticker = loop.scheduleRepeatedTask(initialDelay: Self.resolution, delay: Self.resolution) { [weak self] _ in
                self?.turn()
            }
        }
    }

    /// Forgets the connection's deadline, if it has one.
    func remove(_ connection: Connection) {
        let slot = Int(connection.timerSlot)
        guard slot >= 0 else { return }
        let index = Int(connection.timerIndex)
        let last = buckets[slot].removeLast()
        if index < buckets[slot].count {
            buckets[slot][index] = last
            last.timerIndex = Int32(index)
        }
        connection.timerSlot = -1
    }

    /// Processes every bucket whose tick has passed.
    private func turn() {
        let now = loop.now
        let nowTick = Self.tick(of: now)
        while processedTick < nowTick {
            processedTick += 1
            let slot = Int(processedTick % Int64(Self.slots))
            guard !buckets[slot].isEmpty else { continue }
            var due = spare
            swap(&due, &buckets[slot])
            for connection in due { connection.timerSlot = -1 }
            for connection in due {
                if connection.timerDeadline > now {
                    // A later turn of the wheel (deadline more than `slots` ticks ahead).
                    schedule(connection, at: connection.timerDeadline)
                } else {
                    connection.timerFired(now: now)
                }
            }
            due.removeAll(keepingCapacity: due.capacity <= 4096)
            spare = due
        }
    }
}
