import Logging
import NIOConcurrencyHelpers
import NIOCore
import RoostCore
import Synchronization

/// A limit that made the broker refuse something; named by its configuration key.
public enum LimitTripped: String, Error, Sendable {
    case maxConnections = "max_connections"
    case listenerMaxConnections = "listener max_connections"
    case maxConnectionRate = "max_connection_rate"
    case maxPublishRate = "max_publish_rate"
    case maxSubscriptions = "max_subscriptions"
    case maxTopicLevels = "max_topic_levels"
    case maxTopicLength = "max_topic_length"
}

/// A token bucket: `rate` tokens per second, holding at most `burst`. Time in nanoseconds of a
/// monotonic clock, passed in (so tests drive it).
///
/// Concurrency: a value; the owner serializes access (a lock, or one event loop).
struct TokenBucket: Sendable {
    let rate: Double
    let burst: Double
    private var tokens: Double
    private var last: UInt64

    init(rate: Int, burst: Int, now: UInt64) {
        self.rate = Double(rate)
        self.burst = Double(max(1, burst))
        self.tokens = self.burst
        self.last = now
    }

    /// Takes one token if there is one.
    mutating func take(now: UInt64) -> Bool {
        refill(now: now)
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }

    /// Takes one token even if that leaves the bucket in debt; returns how long until the
    /// balance is back to zero (zero when it never went negative).
    mutating func takeOwing(now: UInt64) -> TimeAmount {
        refill(now: now)
        tokens -= 1
        guard tokens < 0 else { return .zero }
        return .nanoseconds(Int64((-tokens / rate) * 1e9) + 1)
    }

    private mutating func refill(now: UInt64) {
        guard now > last else { return }
        tokens = min(burst, tokens + Double(now - last) / 1e9 * rate)
        last = now
    }
}

extension Broker {
    /// Decides whether a just-accepted socket may stay (before any byte is read): the broker's
    /// `max_connections`, the listener's `max_connections` and `max_connection_rate`. When it may,
    /// it is counted until ``release(_:)``: on `closeFuture` when `releaseOnClose`, else the
    /// caller's handler calls it once (a `Connection` in `handlerRemoved`: no closure per
    /// connection). Throws the limit that refused it (the caller closes the socket).
    func admit(_ channel: Channel, listener: ListenerContext, releaseOnClose: Bool = true) throws {
        if settings.maxConnectionRate > 0 {
            let now = NIODeadline.now().uptimeNanoseconds
            let allowed = connectionRate.withLockedValue { bucket -> Bool in
                if bucket == nil {
                    bucket = TokenBucket(rate: settings.maxConnectionRate, burst: settings.maxConnectionRate, now: now)
                }
                return bucket!.take(now: now)
            }
            guard allowed else { throw refuse(.maxConnectionRate, channel: channel, listener: listener) }
        }
        let total = openSockets.add(1, ordering: .relaxed).newValue
        if settings.maxConnections > 0 && total > settings.maxConnections {
            openSockets.subtract(1, ordering: .relaxed)
            throw refuse(.maxConnections, channel: channel, listener: listener)
        }
        let onListener = listener.connections.add(1, ordering: .relaxed).newValue
        if listener.configuration.maxConnections > 0 && onListener > listener.configuration.maxConnections {
            listener.connections.subtract(1, ordering: .relaxed)
            openSockets.subtract(1, ordering: .relaxed)
            throw refuse(.listenerMaxConnections, channel: channel, listener: listener)
        }
        if releaseOnClose {
            channel.closeFuture.whenComplete { _ in self.release(listener) }
        }
    }

    /// A socket counted by ``admit(_:listener:releaseOnClose:)`` has closed.
    func release(_ listener: ListenerContext) {
        listener.connections.subtract(1, ordering: .relaxed)
        openSockets.subtract(1, ordering: .relaxed)
    }

    private func refuse(_ limit: LimitTripped, channel: Channel, listener: ListenerContext) -> LimitTripped {
        switch limit {
        case .maxConnections, .listenerMaxConnections: stats.limitMaxConnections.add(1, ordering: .relaxed)
        case .maxConnectionRate: stats.limitConnectionRate.add(1, ordering: .relaxed)
        default: break
        }
        let remote = channel.remoteAddress?.logText ?? "?"
        logLimit(limit, metadata: ["remote": "\(remote)", "listener": "\(listener.name)"])
        return limit
    }

    /// Logs a tripped limit at warning level, at most once a minute per limit (a flood must not
    /// flood the log); the `$SYS/broker/limits/...` counters count every one.
    func logLimit(_ limit: LimitTripped, metadata: Logger.Metadata) {
        let now = NIODeadline.now().uptimeNanoseconds
        let due = limitLogTimes.withLockedValue { times -> Bool in
            if let last = times[limit], now - last < 60_000_000_000 { return false }
            times[limit] = now
            return true
        }
        if due {
            logger.warning("limit reached: \(limit.rawValue) (further ones this minute are only counted)", metadata: metadata)
        } else {
            logger.debug("limit reached: \(limit.rawValue)", metadata: metadata)
        }
    }
}

/// Failed logins per client address, for the login back-off: after `authBackoffAfter` failures,
/// each further login from that address waits 250 ms, doubling per failure up to
/// `authBackoffMax`, and logins from one address are spaced by that delay (so parallel
/// connections do not multiply the guesses). Forgotten `authBackoffWindow` after the last
/// failure; a successful login does not reset it (one known account must not unlock guessing
/// at others).
///
/// Concurrency: a value behind the broker's lock.
struct LoginFailures: Sendable {
    struct Record: Sendable {
        var failures: Int
        var lastFailure: UInt64
        /// Earliest time (ns) the next delayed login from this address may proceed.
        var nextSlot: UInt64
    }

    var records: [String: Record] = [:]
    /// Bound on the table: beyond it, records past their window are purged, then the oldest.
    static let capacity = 100_000
}

extension Broker {
    enum LoginDelay: Equatable {
        case none
        case wait(TimeAmount)
        /// The address's delayed logins already reach `auth_backoff_max` ahead: refuse now.
        case refuse
    }

    /// How long a CONNECT from `host` must wait before it is authenticated (none for most).
    func authenticationDelay(for host: @autoclosure () -> String?) -> LoginDelay {
        guard settings.authBackoffAfter > 0, loginFailureRecords.load(ordering: .relaxed) > 0, let host = host() else { return .none }
        let now = NIODeadline.now().uptimeNanoseconds
        let window = UInt64(settings.authBackoffWindow) * 1_000_000_000
        let maximum = UInt64(settings.authBackoffMax) * 1_000_000_000
        return loginFailures.withLockedValue { table -> LoginDelay in
            guard var record = table.records[host] else { return .none }
            if now &- record.lastFailure > window {
                table.records[host] = nil
                loginFailureRecords.store(table.records.count, ordering: .relaxed)
                return .none
            }
            let excess = record.failures - settings.authBackoffAfter
            guard excess >= 0 else { return .none }
            let step = min(maximum, 250_000_000 << UInt64(min(excess, 20)))
            let slot = max(now, record.nextSlot)
            guard slot + step - now <= maximum else { return .refuse }
            record.nextSlot = slot + step
            table.records[host] = record
            return .wait(.nanoseconds(Int64(slot + step - now)))
        }
    }

    func loginFailed(from host: String?) {
        guard settings.authBackoffAfter > 0, let host else { return }
        let now = NIODeadline.now().uptimeNanoseconds
        let window = UInt64(settings.authBackoffWindow) * 1_000_000_000
        loginFailures.withLockedValue { table in
            if table.records.count >= LoginFailures.capacity && table.records[host] == nil {
                table.records = table.records.filter { now &- $0.value.lastFailure <= window }
                if table.records.count >= LoginFailures.capacity {
                    // Forget the tenth that failed longest ago, not everyone (a flood of new
                    // addresses must not wipe the back-off of the others).
                    let oldest = table.records.sorted { $0.value.lastFailure < $1.value.lastFailure }.prefix(LoginFailures.capacity / 10)
                    for (key, _) in oldest { table.records[key] = nil }
                }
            }
            var record = table.records[host] ?? LoginFailures.Record(failures: 0, lastFailure: now, nextSlot: now)
            if now &- record.lastFailure > window { record = LoginFailures.Record(failures: 0, lastFailure: now, nextSlot: now) }
            record.failures += 1
            record.lastFailure = now
            table.records[host] = record
            loginFailureRecords.store(table.records.count, ordering: .relaxed)
        }
    }
}
