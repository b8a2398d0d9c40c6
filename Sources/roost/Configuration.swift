import Foundation
import RoostCore
import RoostServer

/// An invalid configuration value, reported with the key, the value, where it came from and what is allowed.
struct ConfigurationError: Error, CustomStringConvertible {
    var key: String
    var value: String
    var source: String
    var allowed: String

    var description: String {
        "invalid configuration: \(key) = '\(value)' (from \(source)): expected \(allowed)"
    }
}

/// Everything `roost serve` needs, assembled from defaults, a config file, environment
/// variables (`ROOST_<KEY>`) and flags (`--<key>`), later sources winning.
struct ServeConfiguration {
    var settings = BrokerSettings()
    /// Plain TCP listeners from `listen` (the default one when no listener of any kind is configured).
    var listeners: [(host: String, port: Int)] = [("127.0.0.1", 1883)]
    var listenExplicit = false
    /// `tls_listen`, `ws_listen`, `wss_listen`: listeners from flags, with the global TLS keys.
    var tlsListen: [(host: String, port: Int)] = []
    var wsListen: [(host: String, port: Int)] = []
    var wssListen: [(host: String, port: Int)] = []
    /// Listeners declared in the config file as a list of maps (`listeners:`).
    var listenerMaps: [(map: [String: String], source: String)] = []
    /// Global TLS keys: used by `tls_listen` / `wss_listen` and as defaults of `listeners:` entries.
    var tlsDefaults: [String: String] = [:]
    /// Password file (mosquitto_passwd format) and ACL file (Mosquitto acl_file format).
    var passwordFile: String?
    var aclFile: String?
    /// JWT (`jwt_*`) and HTTP hook (`auth_http_*`) settings, as given.
    var jwt: [String: String] = [:]
    var authHTTP: [String: String] = [:]
    /// `proxy_protocol`: the default of every listener.
    var proxyProtocol = false
    /// `allow_anonymous` as given; nil: true, unless a password file is configured.
    var allowAnonymousSetting: Bool?
    var dataDirectory = "./roost-data"
    /// The embedded durable store (sessions, queues, retained messages) in `dataDirectory`.
    var persistence = true
    var fsync = FsyncMode.full
    /// Longest wait of a change for its group commit, milliseconds.
    var commitInterval = 1
    var logLevel = "info"
    var threads = ProcessInfo.processInfo.activeProcessorCount
    private var listenersFromSource: String?

    /// One entry per configuration key: what it accepts and how it is applied.
    struct Key {
        var name: String
        var allowed: String
        var help: String
        var apply: (inout ServeConfiguration, String) -> Bool
    }

    static func integer(_ name: String, _ range: ClosedRange<Int>, _ help: String, _ path: WritableKeyPath<BrokerSettings, Int>) -> Key {
        Key(name: name, allowed: "an integer in \(range.lowerBound)...\(range.upperBound)", help: help) { config, value in
            guard let number = Int(value), range.contains(number) else { return false }
            config.settings[keyPath: path] = number
            return true
        }
    }

    static func boolean(_ name: String, _ help: String, _ path: WritableKeyPath<BrokerSettings, Bool>) -> Key {
        Key(name: name, allowed: "true or false", help: help) { config, value in
            guard let flag = parseBool(value) else { return false }
            config.settings[keyPath: path] = flag
            return true
        }
    }

    static func seconds32(_ name: String, _ help: String, _ path: WritableKeyPath<BrokerSettings, UInt32>) -> Key {
        Key(name: name, allowed: "an integer in 0...4294967295 (seconds)", help: help) { config, value in
            guard let number = UInt32(value) else { return false }
            config.settings[keyPath: path] = number
            return true
        }
    }

    static func parseBool(_ value: String) -> Bool? {
        switch value.lowercased() {
        case "true", "yes", "on", "1": return true
        case "false", "no", "off", "0": return false
        default: return nil
        }
    }

    static let keys: [Key] = [
        Key(name: "listen", allowed: "HOST:PORT (IPv6 as [::1]:1883), or a comma-separated list", help: "listeners (replaces the default 127.0.0.1:1883)") { config, value in
            var parsed: [(String, Int)] = []
            for part in value.split(separator: ",") {
                guard let listener = parseListener(part.trimmingCharacters(in: .whitespaces)) else { return false }
                parsed.append(listener)
            }
            guard !parsed.isEmpty else { return false }
            config.listeners = parsed
            config.listenExplicit = true
            return true
        },
        listenerList("tls_listen", "TLS listeners (with certfile, keyfile, cafile, ...)", \.tlsListen),
        listenerList("ws_listen", "WebSocket listeners (path /mqtt, subprotocol mqtt)", \.wsListen),
        listenerList("wss_listen", "WebSocket over TLS listeners (with certfile, keyfile, ...)", \.wssListen),
        tlsKey("certfile", "a PEM file path", "server certificate (and chain) of TLS listeners"),
        tlsKey("keyfile", "a PEM file path", "private key of TLS listeners"),
        tlsKey("cafile", "a PEM file path", "CAs that client certificates must chain to"),
        tlsKey("require_certificate", "true or false", "TLS clients must present a valid certificate (mutual TLS)"),
        tlsKey("use_identity_as_username", "true or false", "the client certificate's CN is the user name"),
        tlsKey("tls_version", "tlsv1.2 or tlsv1.3", "lowest TLS version accepted"),
        tlsKey("ciphers", "an OpenSSL cipher list", "TLS 1.2 cipher suites"),
        Key(name: "proxy_protocol", allowed: "true or false", help: "every listener expects a PROXY protocol v1/v2 header (behind HAProxy or a cloud load balancer); listeners may override it") { config, value in
            guard let flag = parseBool(value) else { return false }
            config.proxyProtocol = flag
            return true
        },
        stringKey("jwt_secret", "a secret of at least 32 bytes", "HMAC secret of JWTs sent as the password (HS256/384/512)", \.jwt),
        stringKey("jwt_public_key", "a PEM file path", "RSA or EC public key (or certificate) of JWTs sent as the password (RS*, PS*, ES*)", \.jwt),
        stringKey("jwt_issuer", "a string", "required iss claim of JWTs", \.jwt),
        stringKey("jwt_audience", "a string", "required aud claim of JWTs", \.jwt),
        stringKey("auth_http_url", "an http:// or https:// URL", "authentication service asked (POST, JSON) for each CONNECT that no JWT settles", \.authHTTP),
        Key(name: "auth_http_timeout", allowed: "an integer in 1...60000 (milliseconds)", help: "longest wait for the authentication service") { config, value in
            guard let number = Int(value), (1...60_000).contains(number) else { return false }
            config.authHTTP["auth_http_timeout"] = value
            return true
        },
        Key(name: "auth_http_cache", allowed: "an integer in 0...86400 (seconds)", help: "how long an answer of the authentication service is reused (0: ask every time)") { config, value in
            guard let number = Int(value), (0...86_400).contains(number) else { return false }
            config.authHTTP["auth_http_cache"] = value
            return true
        },
        Key(name: "auth_http_on_error", allowed: "deny or ignore", help: "a CONNECT when the service is down, slow or answers an error: refused (deny) or left to the password file (ignore)") { config, value in
            guard ["deny", "ignore"].contains(value.lowercased()) else { return false }
            config.authHTTP["auth_http_on_error"] = value.lowercased()
            return true
        },
        Key(name: "password_file", allowed: "a file path (mosquitto_passwd format)", help: "user names and password hashes; anonymous clients are then refused unless allow_anonymous is true") { config, value in
            guard !value.isEmpty else { return false }
            config.passwordFile = value
            return true
        },
        Key(name: "acl_file", allowed: "a file path (Mosquitto acl_file format)", help: "per-topic access control") { config, value in
            guard !value.isEmpty else { return false }
            config.aclFile = value
            return true
        },
        Key(name: "data_dir", allowed: "a directory path", help: "where the durable store lives (created if missing)") { config, value in
            guard !value.isEmpty else { return false }
            config.dataDirectory = value
            return true
        },
        Key(name: "persistence", allowed: "true or false", help: "keep sessions, queued messages and retained messages on disk") { config, value in
            guard let flag = parseBool(value) else { return false }
            config.persistence = flag
            return true
        },
        Key(name: "fsync", allowed: "full, normal or off", help: "full: survives power loss; normal: survives a crash of the process; off: no sync") { config, value in
            guard let mode = FsyncMode(rawValue: value.lowercased()) else { return false }
            config.fsync = mode
            return true
        },
        Key(name: "commit_interval", allowed: "an integer in 0...1000 (milliseconds)", help: "longest wait of a change for its group commit") { config, value in
            guard let number = Int(value), (0...1000).contains(number) else { return false }
            config.commitInterval = number
            return true
        },
        Key(name: "log_level", allowed: "trace, debug, info, notice, warning, error or critical", help: "log level") { config, value in
            guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(value.lowercased()) else { return false }
            config.logLevel = value.lowercased()
            return true
        },
        Key(name: "threads", allowed: "an integer in 1...256", help: "event-loop threads (default: one per core)") { config, value in
            guard let number = Int(value), (1...256).contains(number) else { return false }
            config.threads = number
            return true
        },
        Key(name: "allow_anonymous", allowed: "true or false", help: "accept clients without a user name (default: true without a password file, false with one)") { config, value in
            guard let flag = parseBool(value) else { return false }
            config.allowAnonymousSetting = flag
            return true
        },
        integer("auth_backoff_after", 0...1_000_000, "failed logins from one address before its logins are delayed (0: no back-off)", \.authBackoffAfter),
        integer("auth_backoff_max", 1...3_600, "longest delay of a login from an address that keeps failing, seconds", \.authBackoffMax),
        integer("auth_backoff_window", 1...86_400, "seconds after which an address's failed logins are forgotten", \.authBackoffWindow),
        integer("max_connection_rate", 0...10_000_000, "new connections per second, whole broker (0: no limit)", \.maxConnectionRate),
        integer("max_publish_rate", 0...10_000_000, "PUBLISH packets per second per client; over it the client is not read for a while (0: no limit)", \.maxPublishRate),
        integer("max_subscriptions", 0...10_000_000, "subscriptions per client (0: no limit)", \.maxSubscriptions),
        integer("max_topic_levels", 0...65_535, "levels in a topic name or filter (0: no limit)", \.maxTopicLevels),
        integer("max_topic_length", 1...65_535, "bytes in a topic name or filter", \.maxTopicLength),
        integer("max_packet_size", 16...268_435_455, "largest packet accepted, bytes", \.maxPacketSize),
        integer("max_keepalive", 1...65_535, "largest keepalive allowed, seconds", \.maxKeepAlive),
        integer("receive_maximum", 1...65_535, "QoS 1/2 messages in flight per client, each direction", \.receiveMaximum),
        integer("delivery_flush_interval", 0...1_000, "ms: a subscriber written to less than this long ago waits, so its next deliveries go out in one write (0: write at once)", \.deliveryFlushInterval),
        integer("max_queued_messages", 0...100_000_000, "messages queued per session (0: unlimited)", \.maxQueuedMessages),
        integer("max_queued_bytes", 0...Int.max, "bytes queued per session (0: unlimited)", \.maxQueuedBytes),
        integer("retained_memory_limit", 0...100_000_000, "above this many retained messages they stay on disk only (0: all in memory)", \.retainedMemoryLimit),
        integer("queue_memory_limit", 0...100_000_000, "stored messages kept in memory per session; the rest wait on disk (0: all in memory)", \.queueMemoryLimit),
        boolean("queue_qos0_messages", "queue QoS 0 messages for offline sessions", \.queueQoS0Messages),
        integer("max_topic_alias", 0...65_535, "topic aliases a client may use", \.maxTopicAlias),
        boolean("topic_alias_out", "assign topic aliases on messages sent to MQTT 5 clients", \.topicAliasOut),
        Key(name: "response_information", allowed: "a topic prefix without wildcards, or empty", help: "Response Information prefix for MQTT 5 clients that ask (client id appended)") { config, value in
            guard !value.contains("+"), !value.contains("#") else { return false }
            config.settings.responseInformationPrefix = value
            return true
        },
        seconds32("max_session_expiry", "longest session expiry granted, seconds (4294967295: never)", \.maxSessionExpiry),
        seconds32("max_message_expiry", "cap on message expiry, seconds (0: no cap)", \.maxMessageExpiry),
        boolean("retain_available", "accept retained messages", \.retainAvailable),
        boolean("wildcard_subscription_available", "accept wildcard subscriptions", \.wildcardSubscriptionAvailable),
        boolean("shared_subscription_available", "accept $share subscriptions", \.sharedSubscriptionAvailable),
        boolean("subscription_identifier_available", "accept subscription identifiers", \.subscriptionIdentifierAvailable),
        integer("max_qos", 0...2, "highest QoS accepted from publishers", \.maxQoS),
        integer("max_connections", 0...10_000_000, "simultaneous connections (0: unlimited)", \.maxConnections),
        integer("sys_interval", 0...86_400, "seconds between $SYS updates (0: off)", \.sysInterval),
        integer("connect_timeout", 1...3_600, "seconds a socket may stay without CONNECT", \.connectTimeout),
    ]

    static func stringKey(_ name: String, _ allowed: String, _ help: String, _ path: WritableKeyPath<ServeConfiguration, [String: String]>) -> Key {
        Key(name: name, allowed: allowed, help: help) { config, value in
            guard !value.isEmpty else { return false }
            config[keyPath: path][name] = value
            return true
        }
    }

    static func listenerList(_ name: String, _ help: String, _ path: WritableKeyPath<ServeConfiguration, [(host: String, port: Int)]>) -> Key {
        Key(name: name, allowed: "HOST:PORT (IPv6 as [::1]:8883), or a comma-separated list", help: help) { config, value in
            var parsed: [(host: String, port: Int)] = []
            for part in value.split(separator: ",") {
                guard let listener = parseListener(part.trimmingCharacters(in: .whitespaces)) else { return false }
                parsed.append(listener)
            }
            guard !parsed.isEmpty else { return false }
            config[keyPath: path] = parsed
            return true
        }
    }

    static func tlsKey(_ name: String, _ allowed: String, _ help: String) -> Key {
        Key(name: name, allowed: allowed, help: help) { config, value in
            guard ListenerKeys.validate(name, value) else { return false }
            config.tlsDefaults[name] = value
            return true
        }
    }

    static func key(named name: String) -> Key? {
        let normalized = name.replacingOccurrences(of: "-", with: "_").lowercased()
        return keys.first { $0.name == normalized }
    }

    static func parseListener(_ text: String) -> (String, Int)? {
        var host: Substring
        var portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portText = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard !host.isEmpty, let port = Int(portText), (0...65_535).contains(port) else { return nil }
        return (String(host), port)
    }

    /// Applies one key; throws a ``ConfigurationError`` naming it when the key or value is wrong.
    mutating func set(_ name: String, _ value: String, source: String) throws {
        guard let key = ServeConfiguration.key(named: name) else {
            let normalized = name.replacingOccurrences(of: "-", with: "_").lowercased()
            let names = ServeConfiguration.keys.map(\.name)
            let closest = names.min { editDistance($0, normalized) < editDistance($1, normalized) }
            var allowed = "a known key"
            if let closest, editDistance(closest, normalized) <= 3 { allowed += " (did you mean \(closest)?)" }
            throw ConfigurationError(
                key: normalized, value: value, source: source,
                allowed: allowed + "; known keys: " + names.joined(separator: ", "))
        }
        guard key.apply(&self, value) else {
            throw ConfigurationError(key: key.name, value: value, source: source, allowed: key.allowed)
        }
    }

    /// Reads a config file: `key: value` lines (a YAML subset), `#` comments, and lists written
    /// as `key:` followed by `- item` lines (used for `listen`).
    mutating func load(file path: String) throws {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ConfigurationError(key: "config", value: path, source: "--config", allowed: "a readable UTF-8 file")
        }
        var listKey: String?
        var listItems: [String] = []
        var listLine = 0
        /// `- key: value` items: a list of maps (`listeners:`), one map per item.
        var mapItems: [(map: [String: String], source: String)] = []
        func finishList() throws {
            if let key = listKey {
                if !mapItems.isEmpty {
                    guard key == "listeners" else {
                        throw ConfigurationError(key: key, value: "a list of maps", source: "\(path):\(listLine)", allowed: "maps only under 'listeners:'")
                    }
                    guard listItems.isEmpty else {
                        throw ConfigurationError(key: key, value: listItems[0], source: "\(path):\(listLine)", allowed: "every item a map ('- address: HOST:PORT' and its keys)")
                    }
                    listenerMaps.append(contentsOf: mapItems)
                } else if key == "listeners" {
                    throw ConfigurationError(key: key, value: listItems.first ?? "", source: "\(path):\(listLine)", allowed: "a list of maps ('- address: HOST:PORT' and its keys)")
                } else {
                    try set(key, listItems.joined(separator: ","), source: "\(path):\(listLine)")
                }
            }
            listKey = nil
            listItems = []
            mapItems = []
        }
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = String(rawLine)
            if let hash = line.firstIndex(of: "#"), !line[..<hash].contains("\"") { line = String(line[..<hash]) }
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            if trimmed.hasPrefix("- ") || trimmed == "-" {
                guard listKey != nil else {
                    throw ConfigurationError(key: "?", value: trimmed, source: "\(path):\(index + 1)", allowed: "a list item under a key such as 'listen:'")
                }
                let item = String(trimmed.dropFirst(1)).trimmingCharacters(in: .whitespaces)
                if let (key, value) = Self.mapEntry(item) {
                    mapItems.append(([key: unquote(value)], "\(path):\(index + 1)"))
                } else {
                    listItems.append(unquote(item))
                }
                continue
            }
            if line.first == " " || line.first == "\t", listKey != nil, !mapItems.isEmpty, let (key, value) = Self.mapEntry(trimmed) {
                // A further key of the current map item (indented under its '- ').
                guard mapItems[mapItems.count - 1].map[key] == nil else {
                    throw ConfigurationError(key: key, value: value, source: "\(path):\(index + 1)", allowed: "each key once per listener")
                }
                mapItems[mapItems.count - 1].map[key] = unquote(value)
                continue
            }
            try finishList()
            guard let colon = trimmed.firstIndex(of: ":") else {
                throw ConfigurationError(key: trimmed, value: "", source: "\(path):\(index + 1)", allowed: "a 'key: value' line")
            }
            let key = String(trimmed[..<colon]).trimmingCharacters(in: .whitespaces)
            let value = unquote(String(trimmed[trimmed.index(after: colon)...]).trimmingCharacters(in: .whitespaces))
            if value.isEmpty {
                listKey = key
                listLine = index + 1
                continue
            }
            if value.hasPrefix("[") && value.hasSuffix("]") {
                let items = value.dropFirst().dropLast().split(separator: ",").map { unquote($0.trimmingCharacters(in: .whitespaces)) }
                try set(key, items.joined(separator: ","), source: "\(path):\(index + 1)")
            } else {
                try set(key, value, source: "\(path):\(index + 1)")
            }
        }
        try finishList()
    }

    /// `key: value` (a space after the colon, as in YAML, so `localhost:1883` is no map) with
    /// a non-empty key made of letters, digits and underscores.
    static func mapEntry(_ text: String) -> (String, String)? {
        guard let colon = text.firstIndex(of: ":") else { return nil }
        let after = text.index(after: colon)
        guard after == text.endIndex || text[after] == " " || text[after] == "\t" else { return nil }
        let key = text[..<colon].trimmingCharacters(in: .whitespaces)
        guard !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else { return nil }
        return (key, text[text.index(after: colon)...].trimmingCharacters(in: .whitespaces))
    }

    private func unquote(_ value: String) -> String {
        if value.count >= 2, let first = value.first, let last = value.last, first == last, first == "\"" || first == "'" {
            return String(value.dropFirst().dropLast())
        }
        return value
    }

    /// The broker-wide `allow_anonymous`: as configured, else off once a password file is set.
    var effectiveAllowAnonymous: Bool {
        allowAnonymousSetting ?? (passwordFile == nil && jwt["jwt_secret"] == nil && jwt["jwt_public_key"] == nil && authHTTP["auth_http_url"] == nil)
    }

    /// Every listener, in order: `listen`, `tls_listen`, `ws_listen`, `wss_listen`, then the
    /// config file's `listeners:` maps. The default `127.0.0.1:1883` only when none is configured.
    func listenerConfigurations() throws -> [ListenerConfiguration] {
        var result: [ListenerConfiguration] = []
        let anyOther = !tlsListen.isEmpty || !wsListen.isEmpty || !wssListen.isEmpty || !listenerMaps.isEmpty
        if listenExplicit || !anyOther {
            result += listeners.map { address in
                var listener = ListenerConfiguration(host: address.host, port: address.port)
                listener.proxyProtocol = proxyProtocol
                return listener
            }
        }
        for (transport, addresses) in [(ListenerConfiguration.Transport.tls, tlsListen), (.ws, wsListen), (.wss, wssListen)] {
            for address in addresses {
                let own = [
                    "address": "\(address.host.contains(":") ? "[\(address.host)]" : address.host):\(address.port)",
                    "transport": transport.rawValue,
                ]
                var listener = try ListenerKeys.make(
                    own, defaults: transport == .ws ? [:] : tlsDefaults, source: "flag --\(transport.rawValue)-listen",
                    needsTLSKeysFrom: "--certfile/--keyfile")
                listener.proxyProtocol = proxyProtocol
                result.append(listener)
            }
        }
        for (map, source) in listenerMaps {
            let transport = map["transport"]?.lowercased() ?? "tcp"
            let defaults = transport == "tls" || transport == "wss" ? tlsDefaults : [:]
            var listener = try ListenerKeys.make(
                map, defaults: defaults, source: source, needsTLSKeysFrom: "certfile/keyfile in the listener or at the top level")
            if map["proxy_protocol"] == nil { listener.proxyProtocol = proxyProtocol }
            result.append(listener)
        }
        return result
    }

    /// Applies `ROOST_<KEY>` environment variables.
    mutating func loadEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        for key in ServeConfiguration.keys {
            let variable = "ROOST_" + key.name.uppercased()
            if let value = environment[variable] {
                try set(key.name, value, source: "environment variable \(variable)")
            }
        }
    }
}

/// Levenshtein distance, for "did you mean" hints on unknown keys.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a.utf8), b = Array(b.utf8)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    var current = Array(repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        current[0] = i
        for j in 1...b.count {
            let cost = a[i - 1] == b[j - 1] ? 0 : 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
        }
        swap(&previous, &current)
    }
    return previous[b.count]
}
