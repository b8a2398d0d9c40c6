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
    /// it is counted until its channel closes. Throws the limit that refused it (the caller
    /// closes the socket).
    func admit(_ channel: Channel, listener: ListenerContext) throws {
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
        channel.closeFuture.whenComplete { _ in
            listener.connections.subtract(1, ordering: .relaxed)
            self.openSockets.subtract(1, ordering: .relaxed)
        }
    }

    private func refuse(_ limit: LimitTripped, channel: Channel, listener: ListenerContext) -> LimitTripped {
        switch limit {
        case .maxConnections, .listenerMaxConnections: stats.limitMaxConnections.add(1, ordering: .relaxed)
        case .maxConnectionRate: stats.limitConnectionRate.add(1, ordering: .relaxed)
        default: break
        }
        let remote = channel.remoteAddress.map { "\($0)" } ?? "?"
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
