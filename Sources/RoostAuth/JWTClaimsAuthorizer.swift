import RoostCore

/// Access control carried by a token's `acl` claim (EMQX style), for the one client that
/// presented the token; the broker checks it in addition to its own authorizer.
///
/// ```json
/// "acl": { "pub": ["devices/%c/up"], "sub": ["devices/%c/down", "news/#"], "all": ["users/%u/#"] }
/// ```
///
/// - publish: allowed when some `pub` or `all` filter matches the topic;
/// - subscribe: `.granted` when some `sub` or `all` filter covers the subscription's filter,
///   `.filtered` when one only intersects it (each topic is then checked with `mayRead`),
///   `.denied` otherwise;
/// - read: allowed when some `sub` or `all` filter matches the topic.
///
/// `%u` is the user name (the token's `username` claim, else `sub`), `%c` the client id. A
/// filter with `%u` or `%c` does not apply when the substituted value contains `+` or `#`
/// (it could widen the filter), nor, for `%u`, when there is no user name. A filter that is
/// not a valid MQTT filter matches nothing. There is no deny: whatever no filter allows is
/// refused.
///
/// Filters are substituted and compiled once, for the identity the token was verified for;
/// a call with another identity (the broker assigned a client id later) substitutes on the
/// fly. Immutable, `Sendable`; every check is a pure function, safe from any thread.
public struct JWTClaimsAuthorizer: Authorizer {
    /// A filter from the claim, split around `%u` and `%c`.
    struct Template: Sendable {
        enum Piece: Sendable {
            case text([UInt8])
            case username
            case clientID
        }

        var pieces: [Piece]

        init(_ filter: String) {
            var pieces: [Piece] = []
            var text: [UInt8] = []
            let bytes = Array(filter.utf8)
            var index = 0
            while index < bytes.count {
                if bytes[index] == UInt8(ascii: "%"), index + 1 < bytes.count,
                    bytes[index + 1] == UInt8(ascii: "u") || bytes[index + 1] == UInt8(ascii: "c")
                {
                    if !text.isEmpty { pieces.append(.text(text)) }
                    text.removeAll()
                    pieces.append(bytes[index + 1] == UInt8(ascii: "u") ? .username : .clientID)
                    index += 2
                } else {
                    text.append(bytes[index])
                    index += 1
                }
            }
            if !text.isEmpty || pieces.isEmpty { pieces.append(.text(text)) }
            self.pieces = pieces
        }

        /// The filter for one client; nil when it does not apply to it or is invalid.
        func compiled(username: [UInt8]?, clientID: [UInt8]) -> CompiledFilter? {
            var bytes: [UInt8] = []
            for piece in pieces {
                switch piece {
                case .text(let text):
                    bytes.append(contentsOf: text)
                case .clientID:
                    guard Self.isSafe(clientID) else { return nil }
                    bytes.append(contentsOf: clientID)
                case .username:
                    guard let username, Self.isSafe(username) else { return nil }
                    bytes.append(contentsOf: username)
                }
            }
            return CompiledFilter(bytes)
        }

        private static func isSafe(_ value: [UInt8]) -> Bool {
            !value.contains(UInt8(ascii: "+")) && !value.contains(UInt8(ascii: "#"))
        }
    }

    /// The filters compiled for one identity.
    struct Rules: Sendable {
        var publish: [CompiledFilter]
        var read: [CompiledFilter]
    }

    let publishTemplates: [Template]
    let readTemplates: [Template]
    /// The identity ``rules`` were compiled for.
    let boundIdentity: ClientIdentity
    let rules: Rules

    /// Compiles the claim's filters for the client that presented the token.
    ///
    /// - Parameters:
    ///   - publish: the claim's `pub` filters.
    ///   - subscribe: the claim's `sub` filters.
    ///   - all: the claim's `all` filters (both).
    ///   - identity: the client, with the user name the token established.
    public init(publish: [String], subscribe: [String], all: [String], identity: ClientIdentity) {
        let both = all.map(Template.init)
        self.publishTemplates = publish.map(Template.init) + both
        self.readTemplates = subscribe.map(Template.init) + both
        self.boundIdentity = identity
        self.rules = Self.compile(publishTemplates, readTemplates, for: identity)
    }

    private static func compile(_ publish: [Template], _ read: [Template], for identity: ClientIdentity) -> Rules {
        let username = identity.username.map { Array($0.utf8) }
        let clientID = Array(identity.clientID.utf8)
        return Rules(
            publish: publish.compactMap { $0.compiled(username: username, clientID: clientID) },
            read: read.compactMap { $0.compiled(username: username, clientID: clientID) }
        )
    }

    private func rules(for identity: ClientIdentity) -> Rules {
        identity == boundIdentity ? rules : Self.compile(publishTemplates, readTemplates, for: identity)
    }

    public func mayPublish(_ identity: ClientIdentity, topic: String) -> Bool {
        Self.anyMatches(rules(for: identity).publish, topic: topic)
    }

    public func mayRead(_ identity: ClientIdentity, topic: String) -> Bool {
        Self.anyMatches(rules(for: identity).read, topic: topic)
    }

    public func subscriptionAccess(_ identity: ClientIdentity, filter: String) -> RoostCore.SubscriptionAccess {
        guard let subscription = CompiledFilter(filter) else { return .denied }
        let readable = rules(for: identity).read
        if readable.contains(where: { $0.covers(subscription) }) { return .granted }
        if readable.contains(where: { $0.intersects(subscription) }) { return .filtered }
        return .denied
    }

    /// Whether a filter matches `topic`, a topic name: never for one that is empty or holds
    /// a wildcard or U+0000.
    private static func anyMatches(_ filters: [CompiledFilter], topic: String) -> Bool {
        var topic = topic
        return topic.withUTF8 { bytes in
            guard !bytes.isEmpty, !bytes.contains(UInt8(ascii: "+")), !bytes.contains(UInt8(ascii: "#")),
                !bytes.contains(0)
            else { return false }
            return filters.contains { $0.matches(topic: bytes) }
        }
    }
}
