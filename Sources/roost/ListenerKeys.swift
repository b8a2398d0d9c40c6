import Foundation
import RoostServer

/// The keys of one listener (an entry of `listeners:` in the config file, or a `--tls-listen`,
/// `--ws-listen`, `--wss-listen` flag with the global TLS keys) and how each is checked.
enum ListenerKeys {
    struct Spec {
        var allowed: String
        var help: String
    }

    static let specs: [(name: String, spec: Spec)] = [
        ("address", Spec(allowed: "HOST:PORT (IPv6 as [::1]:8883)", help: "where to listen (required)")),
        ("transport", Spec(allowed: "tcp, tls, ws or wss", help: "the transport (default tcp)")),
        ("name", Spec(allowed: "a name", help: "the listener's name in logs (default: the transport)")),
        ("certfile", Spec(allowed: "a PEM file path", help: "server certificate and chain (tls, wss)")),
        ("keyfile", Spec(allowed: "a PEM file path", help: "server private key (tls, wss)")),
        ("cafile", Spec(allowed: "a PEM file path", help: "CAs of client certificates")),
        ("require_certificate", Spec(allowed: "true or false", help: "mutual TLS: clients must present a valid certificate")),
        ("use_identity_as_username", Spec(allowed: "true or false", help: "the client certificate's CN is the user name")),
        ("tls_version", Spec(allowed: "tlsv1.2 or tlsv1.3", help: "lowest TLS version accepted (default tlsv1.2)")),
        ("ciphers", Spec(allowed: "an OpenSSL cipher list", help: "TLS 1.2 cipher suites")),
        ("allow_anonymous", Spec(allowed: "true or false", help: "accept clients without credentials here (default: the global allow_anonymous)")),
        ("max_connections", Spec(allowed: "an integer in 0...10000000", help: "simultaneous connections on this listener (0: no own limit)")),
        ("path", Spec(allowed: "an HTTP path starting with /", help: "WebSocket endpoint (ws, wss; default /mqtt)")),
        ("proxy_protocol", Spec(allowed: "true or false", help: "connections start with a PROXY protocol v1/v2 header (default: the global proxy_protocol)")),
    ]

    static func validate(_ name: String, _ value: String) -> Bool {
        switch name {
        case "address": return ServeConfiguration.parseListener(value) != nil
        case "transport": return ListenerConfiguration.Transport(rawValue: value.lowercased()) != nil
        case "name", "certfile", "keyfile", "cafile", "ciphers": return !value.isEmpty
        case "require_certificate", "use_identity_as_username", "allow_anonymous", "proxy_protocol": return ServeConfiguration.parseBool(value) != nil
        case "tls_version": return TLSSettings.Version(rawValue: value.lowercased()) != nil
        case "max_connections": return Int(value).map { (0...10_000_000).contains($0) } ?? false
        case "path": return value.hasPrefix("/") && !value.contains(" ")
        default: return false
        }
    }

    /// Builds one listener from its keys; every error names the key, the value and the source.
    /// `own`: the keys given for this listener; `defaults`: the global TLS keys, used where
    /// `own` has none.
    static func make(_ own: [String: String], defaults: [String: String], source: String, needsTLSKeysFrom: String) throws -> ListenerConfiguration {
        var map = defaults
        map.merge(own) { _, new in new }
        for (key, value) in map {
            guard let spec = specs.first(where: { $0.name == key })?.spec else {
                throw ConfigurationError(
                    key: key, value: value, source: source,
                    allowed: "a listener key: " + specs.map(\.name).joined(separator: ", "))
            }
            guard validate(key, value) else {
                throw ConfigurationError(key: key, value: value, source: source, allowed: spec.allowed)
            }
        }
        guard let addressText = map["address"], let (host, port) = ServeConfiguration.parseListener(addressText) else {
            throw ConfigurationError(key: "address", value: "", source: source, allowed: "HOST:PORT: every listener needs an address")
        }
        let transport = ListenerConfiguration.Transport(rawValue: (map["transport"] ?? "tcp").lowercased()) ?? .tcp
        var listener = ListenerConfiguration(host: host, port: port, transport: transport, name: map["name"])
        if let value = map["allow_anonymous"] { listener.allowAnonymous = ServeConfiguration.parseBool(value) }
        if let value = map["max_connections"], let number = Int(value) { listener.maxConnections = number }
        if let value = map["proxy_protocol"] { listener.proxyProtocol = ServeConfiguration.parseBool(value) ?? false }
        if let path = map["path"] {
            guard transport == .ws || transport == .wss else {
                throw ConfigurationError(key: "path", value: path, source: source, allowed: "path only on ws and wss listeners")
            }
            listener.webSocketPath = path
        }
        let tlsOnly = ["require_certificate", "use_identity_as_username", "tls_version", "ciphers", "cafile"]
        if transport == .tls || transport == .wss {
            guard let certfile = map["certfile"], let keyfile = map["keyfile"] else {
                throw ConfigurationError(
                    key: map["certfile"] == nil ? "certfile" : "keyfile", value: "", source: source,
                    allowed: "a PEM file: a \(transport.rawValue) listener needs certfile and keyfile (\(needsTLSKeysFrom))")
            }
            var tls = TLSSettings(certfile: certfile, keyfile: keyfile, cafile: map["cafile"])
            tls.requireCertificate = map["require_certificate"].flatMap(ServeConfiguration.parseBool) ?? false
            tls.useIdentityAsUsername = map["use_identity_as_username"].flatMap(ServeConfiguration.parseBool) ?? false
            if let version = map["tls_version"].flatMap({ TLSSettings.Version(rawValue: $0.lowercased()) }) { tls.minimumVersion = version }
            tls.ciphers = map["ciphers"]
            if (tls.requireCertificate || tls.useIdentityAsUsername) && tls.cafile == nil {
                throw ConfigurationError(
                    key: "cafile", value: "", source: source,
                    allowed: "a PEM file of the CAs of client certificates: require_certificate and use_identity_as_username need it")
            }
            listener.tls = tls
        } else if let key = (tlsOnly + ["certfile", "keyfile"]).first(where: { own[$0] != nil }) {
            throw ConfigurationError(key: key, value: own[key] ?? "", source: source, allowed: "\(key) only on tls and wss listeners")
        }
        return listener
    }
}
