// The retained-message index: a trie of topic-name levels searched with topic filters.
//
// Every walk is iterative: a topic may have 65,536 levels, far too many for recursion.

/// An index of retained messages keyed by topic name, searchable with wildcard topic filters.
///
/// The tree is a trie with one node per name level, keyed byte-wise (no Unicode normalisation,
/// [MQTT-4.7.3-4]). Matching walks the trie guided by the filter: literal filter levels cost a
/// single dictionary probe, `+` visits every child and `#` visits the whole subtree. Nodes are
/// shared between copies of the tree and copied lazily on the first mutation (copy-on-write).
///
/// Concurrency: a value type with copy-on-write storage; not thread-safe, the owner
/// synchronises access to a shared instance.
public struct RetainedTree<Value> {
    @usableFromInline var root: Node
    @usableFromInline var storedCount = 0

    /// Creates an empty tree.
    @inlinable
    public init() {
        root = Node()
    }

    /// Number of topic names holding a value.
    @inlinable
    public var count: Int { storedCount }

    /// Stores or replaces the value for topic name `name`; returns the previous value, if any.
    @inlinable @discardableResult
    public mutating func set(name: String, value: Value) -> Value? {
        var levels = TopicLevelIterator(name)
        var node = Node.makeUnique(&root)
        while let level = levels.next() {
            node = node.uniqueChildCreatingIfNeeded(level)
        }
        let previous = node.entry
        node.entry = (name: name, value: value)
        if previous == nil { storedCount += 1 }
        return previous?.value
    }

    /// Removes the value for topic name `name`, pruning nodes left empty; returns it, if any.
    @inlinable @discardableResult
    public mutating func remove(name: String) -> Value? {
        var levels = TopicLevelIterator(name)
        var node = Node.makeUnique(&root)
        // The deepest node on the path that keeps other content, and the level leaving it:
        // cutting there prunes every node that the removal leaves empty.
        var keeper = node
        var keeperLevel: Substring?
        while let level = levels.next() {
            guard let child = Node.makeUnique(&node.children[TopicLevelKey(level)]) else { return nil }
            if keeperLevel == nil || node.entry != nil || node.children.count > 1 {
                keeper = node
                keeperLevel = level
            }
            node = child
        }
        guard let removed = node.entry else { return nil }
        node.entry = nil
        storedCount -= 1
        if node.children.isEmpty, let keeperLevel {
            keeper.children[TopicLevelKey(keeperLevel)] = nil
        }
        return removed.value
    }

    /// Returns the value stored for topic name `name`, if any.
    @inlinable
    public func get(name: String) -> Value? {
        var levels = TopicLevelIterator(name)
        var node = root
        while let level = levels.next() {
            guard let child = node.children[TopicLevelKey(level)] else { return nil }
            node = child
        }
        return node.entry?.value
    }

    /// Calls `body` for every stored (name, value) whose name matches the topic filter `filter`.
    ///
    /// `+` matches one level, `#` matches its level and all below (`a/#` matches `a`), and
    /// names starting with `$` are not matched by filters whose first level is a wildcard
    /// [MQTT-4.7.2-1]. The order is unspecified.
    @inlinable
    public func forEachMatch(filter: String, _ body: (_ name: String, _ value: Value) -> Void) {
        var pending = WalkStack<Walk>()
        pending.push(.match(root, TopicLevelIterator(filter), isRoot: true))
        while let walk = pending.pop() {
            switch walk {
            case .visitAll(let node):
                if let entry = node.entry { body(entry.name, entry.value) }
                for child in node.children.values { pending.push(.visitAll(child)) }
            case .match(let node, var levels, let isRoot):
                guard let level = levels.next() else {
                    if let entry = node.entry { body(entry.name, entry.value) }
                    continue
                }
                switch TopicLevelKind(level, isLast: levels.isAtEnd) {
                case .multiLevelWildcard:
                    // '#' matches the parent level too, then every level below.
                    if let entry = node.entry { body(entry.name, entry.value) }
                    for (childKey, child) in node.children where !(isRoot && childKey.startsWithDollar) {
                        pending.push(.visitAll(child))
                    }
                case .singleLevelWildcard:
                    for (childKey, child) in node.children where !(isRoot && childKey.startsWithDollar) {
                        pending.push(.match(child, levels, isRoot: false))
                    }
                case .literal:
                    if let child = node.children[TopicLevelKey(level)] {
                        pending.push(.match(child, levels, isRoot: false))
                    }
                }
            }
        }
    }

    /// Removes every entry for which `shouldRemove` returns `true` (for example expired
    /// messages), pruning nodes left empty; returns how many entries were removed.
    @inlinable @discardableResult
    public mutating func removeAll(where shouldRemove: (_ name: String, _ value: Value) -> Bool) -> Int {
        var doomed: [String] = []
        forEach { name, value in
            if shouldRemove(name, value) { doomed.append(name) }
        }
        for name in doomed { remove(name: name) }
        return doomed.count
    }

    /// Calls `body` for every stored (name, value).
    @inlinable
    public func forEach(_ body: (_ name: String, _ value: Value) -> Void) {
        var pending = [root]
        while let node = pending.popLast() {
            if let entry = node.entry { body(entry.name, entry.value) }
            pending.append(contentsOf: node.children.values)
        }
    }

    /// Number of trie nodes below the root (diagnostics and pruning tests).
    var nodeCount: Int {
        var count = 0
        var pending = [root]
        while let node = pending.popLast() {
            count += node.children.count
            pending.append(contentsOf: node.children.values)
        }
        return count
    }
}

extension RetainedTree: Sendable where Value: Sendable {}

extension RetainedTree {
    /// A pending step of a filter-guided walk.
    @usableFromInline
    enum Walk {
        /// Match the remaining filter levels below the node.
        case match(Node, TopicLevelIterator, isRoot: Bool)
        /// Report the node's entry and every entry below it.
        case visitAll(Node)
    }

    /// One trie node: the entry whose name ends here and the next levels.
    ///
    /// Concurrency: a node is mutated only while uniquely referenced by its tree (copy-on-write,
    /// see `makeUnique`), so a shared node is never mutated.
    @usableFromInline
    final class Node {
        @usableFromInline var children: [TopicLevelKey: Node]
        @usableFromInline var entry: (name: String, value: Value)?

        /// Creates an empty node.
        @inlinable
        init() {
            children = [:]
            entry = nil
        }

        /// Creates a shallow copy that shares its children until they are mutated.
        @inlinable
        init(copying other: Node) {
            children = other.children
            entry = other.entry
        }

        /// Tears the subtree down iteratively; recursive releases could overflow the stack.
        deinit {
            guard !children.isEmpty else { return }
            var doomed = Array(children.values)
            children = [:]
            while var node = doomed.popLast() {
                // A node shared with another tree stays alive, so only unique ones are emptied.
                guard isKnownUniquelyReferenced(&node) else { continue }
                doomed.append(contentsOf: node.children.values)
                node.children = [:]
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

        /// The child for `level`, made unique for mutation and created if absent.
        @inlinable
        func uniqueChildCreatingIfNeeded(_ level: Substring) -> Node {
            if let existing = Node.makeUnique(&children[TopicLevelKey(level)]) { return existing }
            let child = Node()
            // Only a new level pays for copying its text out of the topic.
            children[TopicLevelKey(copying: level)] = child
            return child
        }
    }
}

extension RetainedTree.Node: @unchecked Sendable where Value: Sendable {}

/// A LIFO stack of pending walk steps that keeps its top element inline.
///
/// Walks that never have more than one step pending at a time (the common case) do not allocate.
@usableFromInline
struct WalkStack<Element> {
    @usableFromInline var top: Element?
    @usableFromInline var below: [Element] = []

    @inlinable
    init() {}

    @inlinable
    mutating func push(_ element: Element) {
        if let previous = top {
            // One allocation up front instead of several small regrowths.
            if below.capacity == 0 { below.reserveCapacity(8) }
            below.append(previous)
        }
        top = element
    }

    @inlinable
    mutating func pop() -> Element? {
        let element = top
        top = below.popLast()
        return element
    }
}
