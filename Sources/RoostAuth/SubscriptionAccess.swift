/// What an ACL allows a client to do with one subscription filter.
///
/// Decided once at SUBSCRIBE time by ``ACLFile/subscriptionAccess(username:clientID:filter:)``.
/// A plain value, `Sendable`.
public enum SubscriptionAccess: Sendable, Hashable {
    /// Every topic the filter can match is readable: deliver without further checks.
    case granted
    /// Some topics the filter can match are readable and some are not: the broker checks
    /// ``ACLFile/mayRead(username:clientID:topic:)`` for each message it would deliver.
    case filtered
    /// No topic the filter can match is readable: refuse the subscription.
    case denied
}
