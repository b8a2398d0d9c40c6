/// The broker's limits and feature switches. Every field is one configuration key
/// (see docs/CONFIGURATION.md); the defaults are what `roost serve` uses without a config.
public struct BrokerSettings: Sendable, Equatable {
    /// Largest packet accepted from a client, in bytes (MQTT 5 Maximum Packet Size in CONNACK).
    public var maxPacketSize: Int = 1_048_576
    /// Largest keepalive allowed, in seconds; MQTT 5 clients asking for more (or 0) get Server Keep Alive.
    public var maxKeepAlive: Int = 65_535
    /// QoS 1/2 messages the broker has in flight towards one client (also the Receive Maximum
    /// the broker announces for messages from the client). 1000: a window of 100 left a single
    /// subscriber of many publishers waiting for acknowledgements (fan-in ran at 64 % CPU and
    /// half the rate; 300 and more made it CPU-bound).
    public var receiveMaximum: Int = 1000
    /// Milliseconds a subscriber that was written to less than this long ago waits before its
    /// next deliveries are written, so that they go out together: one write (one system call
    /// and one TCP segment) per interval instead of one per message, for up to this much added
    /// latency. A subscriber that receives less often is written at once. 0: every batch of
    /// deliveries is written at once.
    public var deliveryFlushInterval: Int = 0
    /// Messages queued per session beyond the in-flight window; 0 is unlimited.
    public var maxQueuedMessages: Int = 1000
    /// Bytes queued per session; 0 is unlimited.
    public var maxQueuedBytes: Int = 0
    /// Stored (QoS 1/2, persistent) deliveries kept in memory per session; the rest wait on
    /// disk and are read back as the queue drains. 0: keep everything in memory.
    public var queueMemoryLimit: Int = 1000
    /// With the durable store: above this many retained messages, they are kept on disk only
    /// and read back on SUBSCRIBE. 0: always in memory.
    public var retainedMemoryLimit: Int = 100_000
    /// Whether QoS 0 messages are queued for offline persistent sessions.
    public var queueQoS0Messages: Bool = false
    /// Topic aliases a client may use towards the broker (MQTT 5 Topic Alias Maximum).
    public var maxTopicAlias: Int = 10
    /// Whether the broker assigns topic aliases on messages it sends to MQTT 5 clients that
    /// allow them (their Topic Alias Maximum), up to that many topics per connection.
    public var topicAliasOut: Bool = false
    /// Prefix of the Response Information returned to MQTT 5 clients that request it; the
    /// client id is appended. Empty: Response Information is not offered.
    public var responseInformationPrefix: String = "response/"
    /// Longest session expiry granted, in seconds (0xFFFFFFFF: never expires).
    public var maxSessionExpiry: UInt32 = 0xFFFF_FFFF
    /// Cap on the message expiry interval, in seconds; 0 means no cap.
    public var maxMessageExpiry: UInt32 = 0
    public var retainAvailable: Bool = true
    public var wildcardSubscriptionAvailable: Bool = true
    public var sharedSubscriptionAvailable: Bool = true
    public var subscriptionIdentifierAvailable: Bool = true
    /// Largest QoS accepted from publishers (MQTT 5 Maximum QoS).
    public var maxQoS: Int = 2
    /// Simultaneous client connections; 0 is unlimited.
    public var maxConnections: Int = 0
    /// Seconds between `$SYS` updates; 0 turns `$SYS` off.
    public var sysInterval: Int = 10
    /// Seconds a socket may stay open without sending CONNECT.
    public var connectTimeout: Int = 10
    /// Whether clients without a user name are accepted (listeners may override it).
    public var allowAnonymous: Bool = true
    /// Failed logins from one address (within `authBackoffWindow`) before its next logins are
    /// delayed; 0 turns the back-off off.
    public var authBackoffAfter: Int = 5
    /// Longest delay of a login from an address that keeps failing, seconds. The delay starts at
    /// 250 ms and doubles with each further failure.
    public var authBackoffMax: Int = 10
    /// Seconds after which an address's failures are forgotten.
    public var authBackoffWindow: Int = 300
    /// New connections per second, whole broker (a token bucket holding one second's worth);
    /// sockets over it are closed at once. 0: no limit.
    public var maxConnectionRate: Int = 0
    /// PUBLISH packets per second from one client (a token bucket holding one second's worth);
    /// over it the broker stops reading that client's socket until the bucket refills, so
    /// nothing is dropped. 0: no limit.
    public var maxPublishRate: Int = 0
    /// Subscriptions one session may hold; more are refused (SUBACK 0x97 / 0x80). 0: no limit.
    public var maxSubscriptions: Int = 0
    /// Levels in a topic name or filter; more are refused. 0: no limit.
    public var maxTopicLevels: Int = 128
    /// Bytes in a topic name or filter (65535 is MQTT's own limit).
    public var maxTopicLength: Int = 65_535
    /// Longest client identifier accepted.
    public var maxClientIDLength: Int = 65_535

    public init() {}
}
