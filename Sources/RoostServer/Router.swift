import MQTTCodec
import RoostCore
import Synchronization

/// The routing table: every subscription of every session, keyed by topic filter.
///
/// Writes (SUBSCRIBE, UNSUBSCRIBE, session end) take the lock and bump ``version``.
/// Publishers resolve a topic under the lock only on a cache miss: each connection caches its
/// last topic with the version it was resolved at (publishers almost always reuse one topic).
final class Router: Sendable {
    struct Key: Hashable, Sendable {
        var sessionID: Int
        /// The shared-subscription group, or "" for an ordinary subscription.
        var group: String
    }

    struct Entry: Sendable {
        /// The node the subscribing session lives on (always local until clustering).
        var node: NodeID = .local
        var session: Session
        var qos: QoS
        var noLocal: Bool
        var retainAsPublished: Bool
        var subscriptionID: Int?
    }

    /// One matching subscription, as resolved for a topic.
    struct Match: Sendable {
        var entry: Entry
        var group: String
        var filter: String
    }

    private let tree = Mutex(TopicTree<Key, Entry>())
    private let cursors = Mutex([String: Int]())
    let version = Atomic<UInt64>(0)

    /// Adds or replaces a subscription. Returns true if it is new.
    @discardableResult
    func subscribe(filter: String, group: String, entry: Entry) -> Bool {
        let isNew = tree.withLock { $0.insert(filter: filter, key: Key(sessionID: entry.session.id, group: group), value: entry) }
        version.add(1, ordering: .releasing)
        return isNew
    }

    @discardableResult
    func unsubscribe(filter: String, group: String, sessionID: Int) -> Bool {
        let removed = tree.withLock { $0.remove(filter: filter, key: Key(sessionID: sessionID, group: group)) } != nil
        if removed { version.add(1, ordering: .releasing) }
        return removed
    }

    var count: Int { tree.withLock { $0.count } }

    /// Every subscription matching `topic`, ordinary ones sorted by session so that the caller
    /// can merge a session's overlapping subscriptions into one delivery.
    ///
    /// With an authorizer, subscribers that may not read `topic` are left out (checked here, on
    /// the publisher's route-cache miss, so a steady topic costs one check per routing change).
    /// A session restored from the store whose client has not connected since is not checked:
    /// its subscriptions were authorized when they were made.
    func resolve(topic: String, authorizer: (any Authorizer)? = nil, clientAuthorizers: Bool = false) -> [Match] {
        var matches: [Match] = []
        tree.withLock { tree in
            tree.forEachMatch(name: topic) { filter, key, entry in
                matches.append(Match(entry: entry, group: key.group, filter: filter))
            }
        }
        if authorizer != nil || clientAuthorizers, !matches.isEmpty {
            matches.removeAll { match in
                let (identity, own) = match.entry.session.locked.withLock { ($0.identity, $0.clientAuthorizer) }
                guard let identity else { return false }
                if let authorizer, !authorizer.mayRead(identity, topic: topic) { return true }
                if let own = own?.value, !own.mayRead(identity, topic: topic) { return true }
                return false
            }
        }
        matches.sort { lhs, rhs in
            if lhs.group != rhs.group { return lhs.group < rhs.group }
            if lhs.group.isEmpty { return lhs.entry.session.id < rhs.entry.session.id }
            return lhs.filter < rhs.filter
        }
        return matches
    }

    /// Picks the next member of a shared group, round-robin, preferring members that are online.
    func pickSharedMember(group: String, filter: String, members: ArraySlice<Match>, excluding: Int? = nil) -> Match? {
        guard !members.isEmpty else { return nil }
        let start = cursors.withLock { cursors -> Int in
            let key = group + "\u{0}" + filter
            // Bounded: forgetting cursors only moves where round-robin starts.
            if cursors.count > 10_000 && cursors[key] == nil { cursors.removeAll(keepingCapacity: true) }
            let value = cursors[key, default: 0]
            cursors[key] = value &+ 1
            return value
        }
        let count = members.count
        var fallback: Match?
        for offset in 0..<count {
            let member = members[members.startIndex + (start &+ offset) % count]
            if member.entry.session.id == excluding { continue }
            if member.entry.session.isOnline { return member }
            if fallback == nil { fallback = member }
        }
        return fallback
    }
}
