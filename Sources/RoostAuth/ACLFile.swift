/// A mosquitto `acl_file`: who may publish and read which topics.
///
/// ```
/// # comments start with '#'
/// topic read public/#            # before any 'user' line: for clients without a user name
/// user alice smith               # the rest of the line is the user name
/// topic readwrite alice/#        # no access word means readwrite
/// topic deny alice/secret
/// pattern write devices/%c/up    # for every client; %c = client id, %u = user name
/// ```
///
/// Which rules apply to a client (as in mosquitto 2.0):
/// - A client without a user name: the `topic` lines before the first `user` line.
/// - A client with a user name: the `topic` lines after every `user` line with exactly that
///   name (byte-wise), and none of the anonymous ones.
/// - Everyone: every `pattern` line, wherever it is. A pattern containing `%u` does not
///   apply to a client without a user name. No pattern applies to a client whose user name or
///   client id contains `+` or `#` (mosquitto refuses such clients any access once patterns
///   exist; they could otherwise widen a pattern).
///
/// A topic is allowed when an applicable rule with the wanted access matches it and no
/// applicable `deny` rule matches it: a `deny` always wins. (mosquitto 2.0 checks a user's
/// `topic` lines before the patterns, so there a user's grant beats a `deny` pattern; here the
/// `deny` pattern wins.) No applicable rule means no access, and an empty file denies
/// everything.
///
/// Parsing follows mosquitto's: a line whose first non-blank character is `#` is a comment;
/// `topic` and `pattern` take an optional access word then the filter, which is the rest of
/// the line (it may contain spaces only when the access word is given). Anything else is an
/// error naming the file and line. Unlike mosquitto, no rule is special for `$SYS`.
///
/// An immutable value, `Sendable`; every check is a pure function of the file and its
/// arguments, safe from any thread. Rules are grouped per user at load, so a check looks at
/// one user's rules and the patterns; patterns with `%u`/`%c` are substituted per call.
public struct ACLFile: Sendable {
    /// What a rule grants.
    enum Access: Sendable, Equatable {
        case read, write, readWrite, deny

        var grantsRead: Bool { self == .read || self == .readWrite }
        var grantsWrite: Bool { self == .write || self == .readWrite }
    }

    /// A rule with its filter parsed.
    struct Rule: Sendable {
        var access: Access
        var filter: CompiledFilter
    }

    /// Rules split by kind once, so a check scans only what it needs.
    struct RuleSet: Sendable {
        var grants: [Rule] = []
        var denies: [CompiledFilter] = []

        var isEmpty: Bool { grants.isEmpty && denies.isEmpty }

        mutating func append(_ rule: Rule) {
            if rule.access == .deny {
                denies.append(rule.filter)
            } else {
                grants.append(rule)
            }
        }
    }

    /// A pattern with `%u` or `%c`, substituted per client.
    struct Template: Sendable {
        enum Piece: Sendable {
            case text([UInt8])
            case username
            case clientID
        }

        var access: Access
        var pieces: [Piece]

        func substituted(username: [UInt8]?, clientID: [UInt8]) -> CompiledFilter? {
            var bytes: [UInt8] = []
            for piece in pieces {
                switch piece {
                case .text(let text): bytes.append(contentsOf: text)
                case .clientID: bytes.append(contentsOf: clientID)
                case .username:
                    guard let username else { return nil }
                    bytes.append(contentsOf: username)
                }
            }
            return CompiledFilter(bytes)
        }
    }

    /// Where the text came from: a path or a caller's label; used in errors.
    public let source: String
    /// `topic` lines before the first `user` line.
    let anonymousRules: RuleSet
    /// `topic` lines per user name (bytes).
    let userRules: [[UInt8]: RuleSet]
    /// `pattern` lines without `%u`/`%c`.
    let fixedPatterns: RuleSet
    /// `pattern` lines with `%u` or `%c`.
    let templates: [Template]

    /// Reads and parses the file at `path`.
    public static func load(path: String) throws(AuthFileError) -> ACLFile {
        try ACLFile(bytes: FileIO.read(path: path), source: path)
    }

    /// Parses the text of an ACL file; `source` names it in errors.
    public init(parsing text: String, source: String) throws(AuthFileError) {
        try self.init(bytes: Array(text.utf8), source: source)
    }

    init(bytes: [UInt8], source: String) throws(AuthFileError) {
        var parser = ACLParser(source: source)
        for line in TextLines.split(bytes) { try parser.parse(line) }
        self.source = source
        self.anonymousRules = parser.anonymousRules
        self.userRules = parser.userRules
        self.fixedPatterns = parser.fixedPatterns
        self.templates = parser.templates
    }

    /// Whether the client may publish to `topic` (a topic name, not a filter): some
    /// applicable `write` or `readwrite` rule matches it and no applicable `deny` rule does.
    /// `false` for an invalid topic name.
    public func mayPublish(username: String?, clientID: String, topic: String) -> Bool {
        rules(username: username, clientID: clientID).allows(topic: topic, write: true)
    }

    /// Whether the client may receive a message published to `topic`: some applicable `read`
    /// or `readwrite` rule matches it and no applicable `deny` rule does.
    public func mayRead(username: String?, clientID: String, topic: String) -> Bool {
        rules(username: username, clientID: clientID).allows(topic: topic, write: false)
    }

    /// What the client may do with a subscription to `filter`; see ``SubscriptionAccess``.
    ///
    /// `.granted` when a `read`/`readwrite` rule's filter covers `filter` and no `deny` rule
    /// intersects it; `.denied` when no `read`/`readwrite` rule intersects it, or a `deny`
    /// rule covers it (or the filter is invalid); `.filtered` otherwise. Stricter than
    /// mosquitto, which accepts every subscription and checks each message.
    public func subscriptionAccess(username: String?, clientID: String, filter: String) -> SubscriptionAccess {
        rules(username: username, clientID: clientID).subscriptionAccess(filter: filter)
    }

    /// The rules that apply to one client, with its patterns substituted: compute once per
    /// connection and check many topics with it. Shares the file's rule arrays; allocates
    /// only for the patterns that contain `%u` or `%c`.
    public func rules(username: String?, clientID: String) -> ClientRules {
        let usernameBytes = username.map { Array($0.utf8) }
        let own: RuleSet
        if let usernameBytes {
            own = userRules[usernameBytes] ?? RuleSet()
        } else {
            own = anonymousRules
        }
        let clientBytes = Array(clientID.utf8)
        let unsafe = { (bytes: [UInt8]) in bytes.contains(UInt8(ascii: "+")) || bytes.contains(UInt8(ascii: "#")) }
        guard !(usernameBytes.map(unsafe) ?? false), !unsafe(clientBytes) else {
            return ClientRules(sets: [own])
        }
        var substituted = RuleSet()
        for template in templates {
            guard let filter = template.substituted(username: usernameBytes, clientID: clientBytes) else { continue }
            substituted.append(Rule(access: template.access, filter: filter))
        }
        return ClientRules(sets: [own, fixedPatterns, substituted].filter { !$0.isEmpty })
    }

    /// The rules of ``ACLFile`` that apply to one client. An immutable value, `Sendable`.
    public struct ClientRules: Sendable {
        /// The client's `topic` rules, the fixed patterns and its substituted patterns.
        let sets: [RuleSet]

        /// See ``ACLFile/mayPublish(username:clientID:topic:)``.
        public func mayPublish(topic: String) -> Bool { allows(topic: topic, write: true) }

        /// See ``ACLFile/mayRead(username:clientID:topic:)``.
        public func mayRead(topic: String) -> Bool { allows(topic: topic, write: false) }

        func allows(topic: String, write: Bool) -> Bool {
            var topic = topic
            return topic.withUTF8 { bytes in
                guard !bytes.isEmpty, !bytes.contains(UInt8(ascii: "+")), !bytes.contains(UInt8(ascii: "#")),
                    !bytes.contains(0)
                else { return false }
                var granted = false
                search: for set in sets {
                    for rule in set.grants where write ? rule.access.grantsWrite : rule.access.grantsRead {
                        if rule.filter.matches(topic: bytes) {
                            granted = true
                            break search
                        }
                    }
                }
                guard granted else { return false }
                for set in sets {
                    for deny in set.denies where deny.matches(topic: bytes) { return false }
                }
                return true
            }
        }

        /// See ``ACLFile/subscriptionAccess(username:clientID:filter:)``.
        public func subscriptionAccess(filter: String) -> SubscriptionAccess {
            guard let subscription = CompiledFilter(filter) else { return .denied }
            let readable = sets.flatMap { $0.grants.filter { $0.access.grantsRead }.map(\.filter) }
            let denies = sets.flatMap(\.denies)
            if !readable.contains(where: { $0.intersects(subscription) }) { return .denied }
            if denies.contains(where: { $0.covers(subscription) }) { return .denied }
            if readable.contains(where: { $0.covers(subscription) })
                && !denies.contains(where: { $0.intersects(subscription) })
            {
                return .granted
            }
            return .filtered
        }
    }
}
