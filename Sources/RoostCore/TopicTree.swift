// The broker's subscription index: a trie of topic-filter levels.
//
// Levels are compared byte-wise (no Unicode normalisation, [MQTT-4.7.3-4]); see `TopicLevelKey`.
// Every walk is iterative: a topic may have 65,536 levels, far too many for recursion.

/// A subscription index mapping topic filters to subscribers, matched against topic names.
///
/// `Key` identifies a subscriber (for example a session id) and `Value` is the per-subscription
/// data (for example subscription options). Each (filter, key) pair holds at most one value.
/// Shared subscriptions are the caller's business: store `$share/g/f` under filter `f` with a
/// key that encodes the group.
///
/// The tree is a trie with one node per filter level. Literal levels are children keyed by the
/// level text; `+` has a dedicated child slot and `#` (always the last level) is stored as a
/// dedicated subscriber table on its parent node, so matching a name costs one dictionary probe
/// per level and node visited. Nodes are shared between copies of the tree and copied lazily,
/// node by node, on the first mutation (copy-on-write).
///
/// Concurrency: a value type with copy-on-write storage; not thread-safe, the owner
/// synchronises access to a shared instance.
public struct TopicTree<Key: Hashable, Value> {
    @usableFromInline var root: Node
    @usableFromInline var storedCount = 0

    /// Creates an empty tree.
    @inlinable
    public init() {
        root = Node()
    }

    /// Number of (filter, key) subscriptions stored.
    @inlinable
    public var count: Int { storedCount }

    /// Inserts or replaces the subscription of `key` on `filter` (which must already be valid).
    ///
    /// Returns `true` if the subscription is new and `false` if an existing value was replaced.
    @inlinable @discardableResult
    public mutating func insert(filter: String, key: Key, value: Value) -> Bool {
        var levels = TopicLevelIterator(filter)
        var node = Node.makeUnique(&root)
        var isMultiLevel = false
        while let level = levels.next() {
            let kind = TopicLevelKind(level, isLast: levels.isAtEnd)
            if kind == .multiLevelWildcard {
                isMultiLevel = true
                break
            }
            node = node.uniqueChildCreatingIfNeeded(level, kind)
        }
        let isNew: Bool
        if isMultiLevel {
            if node.multiLevelSubscribers.isEmpty { node.multiLevelFilter = filter }
            isNew = node.multiLevelSubscribers.updateValue(value, forKey: key) == nil
        } else {
            if node.subscribers.isEmpty { node.filter = filter }
            isNew = node.subscribers.updateValue(value, forKey: key) == nil
        }
        if isNew { storedCount += 1 }
        return isNew
    }

    /// Removes the subscription of `key` on `filter`, pruning nodes left empty.
    ///
    /// Returns the removed value, or `nil` if there was no such subscription.
    @inlinable @discardableResult
    public mutating func remove(filter: String, key: Key) -> Value? {
        var levels = TopicLevelIterator(filter)
        var node = Node.makeUnique(&root)
        // The deepest node on the path that keeps other content, and the edge leaving it towards
        // the filter: if the removal empties the last node, cutting that edge prunes every node
        // the removal leaves empty.
        var keeper = node
        var keeperEdge: (level: Substring, kind: TopicLevelKind)?
        var isMultiLevel = false
        while let level = levels.next() {
            let kind = TopicLevelKind(level, isLast: levels.isAtEnd)
            if kind == .multiLevelWildcard {
                isMultiLevel = true
                break
            }
            guard let child = node.existingUniqueChild(level, kind) else { return nil }
            if keeperEdge == nil || node.hasContentBesidesOneChild {
                keeper = node
                keeperEdge = (level, kind)
            }
            node = child
        }
        let removed: Value?
        if isMultiLevel {
            removed = node.multiLevelSubscribers.removeValue(forKey: key)
            if node.multiLevelSubscribers.isEmpty { node.multiLevelFilter = "" }
        } else {
            removed = node.subscribers.removeValue(forKey: key)
            if node.subscribers.isEmpty { node.filter = "" }
        }
        guard removed != nil else { return nil }
        storedCount -= 1
        if node.isEmpty, let edge = keeperEdge {
            keeper.removeChild(edge.level, edge.kind)
        }
        return removed
    }

    /// Calls `body` for every subscription whose filter matches the topic name `name`.
    ///
    /// `+` matches one level, `#` matches its level and all below (`a/#` matches `a`), and
    /// names starting with `$` are not matched by filters whose first level is a wildcard
    /// [MQTT-4.7.2-1]. Each subscription is reported at most once; the order is unspecified.
    /// Levels are substrings of `name`; the walk allocates only when more than one `+` branch
    /// is pending at once.
    @inlinable
    public func forEachMatch(name: String, _ body: (_ filter: String, _ key: Key, _ value: Value) -> Void) {
        var pending = WalkStack<(node: Node, levels: TopicLevelIterator)>()
        var node = root
        var levels = TopicLevelIterator(name)
        var wildcardsAllowed = name.utf8.first != UInt8(ascii: "$")
        while true {
            if let level = levels.next() {
                if wildcardsAllowed {
                    for (key, value) in node.multiLevelSubscribers { body(node.multiLevelFilter, key, value) }
                    if let plusChild = node.plusChild { pending.push((plusChild, levels)) }
                }
                wildcardsAllowed = true
                if !node.children.isEmpty, let child = node.children[TopicLevelKey(level)] {
                    node = child
                    continue
                }
            } else {
                // The name ends here: exact filters match, and so does "<here>/#" (parent rule).
                for (key, value) in node.subscribers { body(node.filter, key, value) }
                for (key, value) in node.multiLevelSubscribers { body(node.multiLevelFilter, key, value) }
            }
            guard let next = pending.pop() else { return }
            (node, levels) = next
        }
    }

    /// Calls `body` for every stored subscription (for snapshots, `$SYS` statistics and dumps).
    @inlinable
    public func forEach(_ body: (_ filter: String, _ key: Key, _ value: Value) -> Void) {
        var pending = [root]
        while let node = pending.popLast() {
            for (key, value) in node.subscribers { body(node.filter, key, value) }
            for (key, value) in node.multiLevelSubscribers { body(node.multiLevelFilter, key, value) }
            pending.append(contentsOf: node.children.values)
            if let plusChild = node.plusChild { pending.append(plusChild) }
        }
    }

    /// Number of trie nodes below the root (diagnostics and pruning tests).
    var nodeCount: Int {
        var count = 0
        var pending = [root]
        while let node = pending.popLast() {
            pending.append(contentsOf: node.children.values)
            if let plusChild = node.plusChild { pending.append(plusChild) }
            count += node.children.count + (node.plusChild == nil ? 0 : 1)
        }
        return count
    }
}

extension TopicTree: Sendable where Key: Sendable, Value: Sendable {}

extension TopicTree {
    /// One trie node: the subscriptions of the filter ending here and the next levels.
    ///
    /// Concurrency: a node is mutated only while uniquely referenced by its tree (copy-on-write,
    /// see `makeUnique`), so a shared node is never mutated.
    @usableFromInline
    final class Node {
        /// Children for literal levels.
        @usableFromInline var children: [TopicLevelKey: Node]
        /// The child for a `+` level.
        @usableFromInline var plusChild: Node?
        /// Subscriptions whose filter ends at this node.
        @usableFromInline var subscribers: [Key: Value]
        /// The filter ending at this node; meaningful while `subscribers` is not empty.
        @usableFromInline var filter: String
        /// Subscriptions whose filter is this node's path followed by `#`.
        @usableFromInline var multiLevelSubscribers: [Key: Value]
        /// The filter ending in `#` below this node; meaningful while `multiLevelSubscribers` is not empty.
        @usableFromInline var multiLevelFilter: String

        /// Creates an empty node.
        @inlinable
        init() {
            children = [:]
            plusChild = nil
            subscribers = [:]
            filter = ""
            multiLevelSubscribers = [:]
            multiLevelFilter = ""
        }

        /// Creates a shallow copy that shares its children until they are mutated.
        @inlinable
        init(copying other: Node) {
            children = other.children
            plusChild = other.plusChild
            subscribers = other.subscribers
            filter = other.filter
            multiLevelSubscribers = other.multiLevelSubscribers
            multiLevelFilter = other.multiLevelFilter
        }

        /// Tears the subtree down iteratively; recursive releases could overflow the stack.
        deinit {
            guard !children.isEmpty || plusChild != nil else { return }
            var doomed = Array(children.values)
            if let plusChild { doomed.append(plusChild) }
            children = [:]
            plusChild = nil
            while var node = doomed.popLast() {
                // A node shared with another tree stays alive, so only unique ones are emptied.
                guard isKnownUniquelyReferenced(&node) else { continue }
                doomed.append(contentsOf: node.children.values)
                if let plusChild = node.plusChild { doomed.append(plusChild) }
                node.children = [:]
                node.plusChild = nil
            }
        }

        /// Replaces `node` by a shallow copy if it is shared, and returns the node to mutate.
        @inlinable
        static func makeUnique(_ node: inout Node) -> Node {
            if !isKnownUniquelyReferenced(&node) { node = Node(copying: node) }
            return node
        }

        /// Like `makeUnique(_:)` for an optional slot; returns `nil` for an empty slot.
        @inlinable
        static func makeUnique(_ node: inout Node?) -> Node? {
            if !isKnownUniquelyReferenced(&node), let shared = node { node = Node(copying: shared) }
            return node
        }

        @inlinable
        var isEmpty: Bool {
            subscribers.isEmpty && multiLevelSubscribers.isEmpty && children.isEmpty && plusChild == nil
        }

        /// Whether this node would survive losing one child edge.
        @inlinable
        var hasContentBesidesOneChild: Bool {
            !subscribers.isEmpty || !multiLevelSubscribers.isEmpty || children.count + (plusChild == nil ? 0 : 1) > 1
        }

        /// The child for a `+` or literal `level`, made unique for mutation; `nil` if absent.
        @inlinable
        func existingUniqueChild(_ level: Substring, _ kind: TopicLevelKind) -> Node? {
            kind == .singleLevelWildcard
                ? Node.makeUnique(&plusChild)
                : Node.makeUnique(&children[TopicLevelKey(level)])
        }

        /// The child for a `+` or literal `level`, made unique for mutation and created if absent.
        @inlinable
        func uniqueChildCreatingIfNeeded(_ level: Substring, _ kind: TopicLevelKind) -> Node {
            if let existing = existingUniqueChild(level, kind) { return existing }
            let child = Node()
            if kind == .singleLevelWildcard {
                plusChild = child
            } else {
                // Only a new level pays for copying its text out of the topic.
                children[TopicLevelKey(copying: level)] = child
            }
            return child
        }

        /// Detaches the child for a `+` or literal `level` with its whole subtree.
        @inlinable
        func removeChild(_ level: Substring, _ kind: TopicLevelKind) {
            if kind == .singleLevelWildcard {
                plusChild = nil
            } else {
                children[TopicLevelKey(level)] = nil
            }
        }
    }
}

extension TopicTree.Node: @unchecked Sendable where Key: Sendable, Value: Sendable {}

// MARK: - Shared trie helpers (also used by RetainedTree)

/// A dictionary key for one topic level that compares and hashes the raw UTF-8 bytes.
///
/// `String` equality uses Unicode canonical equivalence, but MQTT forbids normalising topics
/// [MQTT-4.7.3-4], so `"\u{E9}"` and `"e\u{301}"` must be different levels. Wrapping a
/// `Substring` also lets lookups use a slice of the topic without allocating.
///
/// Concurrency: an immutable value; `Sendable`.
@usableFromInline
struct TopicLevelKey: Hashable, Sendable {
    @usableFromInline let text: Substring

    /// Wraps `text` without copying; for transient lookups.
    @inlinable
    init(_ text: Substring) {
        self.text = text
    }

    /// Copies `text` into compact storage so the key does not keep the whole topic alive.
    @inlinable
    init(copying text: Substring) {
        self.text = Substring(String(decoding: text.utf8, as: UTF8.self))
    }

    /// Whether the level starts with `$` (such levels are hidden from leading wildcards).
    @inlinable
    var startsWithDollar: Bool { text.utf8.first == UInt8(ascii: "$") }

    @inlinable
    static func == (lhs: TopicLevelKey, rhs: TopicLevelKey) -> Bool {
        let left = lhs.text.utf8
        let right = rhs.text.utf8
        guard left.count == right.count else { return false }
        let compared = left.withContiguousStorageIfAvailable { leftBytes in
            right.withContiguousStorageIfAvailable { rightBytes in leftBytes.elementsEqual(rightBytes) }
        }
        if case .some(.some(let equal)) = compared { return equal }
        return left.elementsEqual(right)
    }

    @inlinable
    func hash(into hasher: inout Hasher) {
        let hashedContiguously: Void? = text.utf8.withContiguousStorageIfAvailable { bytes in
            hasher.combine(bytes: UnsafeRawBufferPointer(bytes))
        }
        if hashedContiguously == nil {
            // Rare (bridged strings): copy so the bytes are fed exactly as on the fast path.
            Array(text.utf8).withUnsafeBytes { hasher.combine(bytes: $0) }
        }
    }
}

/// How a filter level is interpreted.
@usableFromInline
enum TopicLevelKind {
    case literal
    case singleLevelWildcard
    case multiLevelWildcard

    /// Classifies `level`; `#` only counts as a wildcard as the last level.
    @inlinable
    init(_ level: Substring, isLast: Bool) {
        let bytes = level.utf8
        guard bytes.count == 1, let byte = bytes.first else {
            self = .literal
            return
        }
        if byte == UInt8(ascii: "+") {
            self = .singleLevelWildcard
        } else if byte == UInt8(ascii: "#") && isLast {
            self = .multiLevelWildcard
        } else {
            self = .literal
        }
    }
}

/// Iterates the `/`-separated levels of a topic as substrings, without allocating.
///
/// A topic with `n` separators has `n + 1` levels, so `""` has one empty level and `a//b` has
/// three. Copies iterate independently, which lets a trie walk branch cheaply.
@usableFromInline
struct TopicLevelIterator: IteratorProtocol {
    @usableFromInline let topic: String
    @usableFromInline var position: String.Index
    /// Whether every level has been returned.
    @usableFromInline var isAtEnd = false

    @inlinable
    init(_ topic: String) {
        self.topic = topic
        self.position = topic.utf8.startIndex
    }

    @inlinable
    mutating func next() -> Substring? {
        guard !isAtEnd else { return nil }
        let bytes = topic.utf8
        let levelEnd = bytes[position...].firstIndex(of: UInt8(ascii: "/")) ?? bytes.endIndex
        let level = Substring(bytes[position..<levelEnd])
        if levelEnd == bytes.endIndex {
            isAtEnd = true
        } else {
            position = bytes.index(after: levelEnd)
        }
        return level
    }
}
