import RoostCore
import XCTest

@testable import RoostAuth

/// The `acl` claim's authorizer: pub, sub and all filters, `%u` / `%c`, and subscriptions
/// that a filter covers or only intersects.
final class JWTClaimsAuthorizerTests: XCTestCase {
    private let alice = ClientIdentity(clientID: "dev1", username: "alice")

    func testPubFiltersGovernPublishingOnly() {
        let acl = JWTClaimsAuthorizer(publish: ["sensors/+/temp"], subscribe: [], all: [], identity: alice)
        XCTAssertTrue(acl.mayPublish(alice, topic: "sensors/kitchen/temp"))
        XCTAssertFalse(acl.mayPublish(alice, topic: "sensors/kitchen/humidity"))
        XCTAssertFalse(acl.mayRead(alice, topic: "sensors/kitchen/temp"))
        XCTAssertEqual(acl.subscriptionAccess(alice, filter: "sensors/kitchen/temp"), .denied)
    }

    func testSubFiltersGovernReadingOnly() {
        let acl = JWTClaimsAuthorizer(publish: [], subscribe: ["news/#"], all: [], identity: alice)
        XCTAssertTrue(acl.mayRead(alice, topic: "news/today"))
        XCTAssertTrue(acl.mayRead(alice, topic: "news"))
        XCTAssertFalse(acl.mayRead(alice, topic: "weather"))
        XCTAssertFalse(acl.mayPublish(alice, topic: "news/today"))
    }

    func testAllFiltersGovernBoth() {
        let acl = JWTClaimsAuthorizer(publish: [], subscribe: [], all: ["shared/#"], identity: alice)
        XCTAssertTrue(acl.mayPublish(alice, topic: "shared/x"))
        XCTAssertTrue(acl.mayRead(alice, topic: "shared/x"))
        XCTAssertEqual(acl.subscriptionAccess(alice, filter: "shared/+"), .granted)
        XCTAssertFalse(acl.mayPublish(alice, topic: "private/x"))
    }

    func testSubscriptionsCoveredGrantedIntersectingFilteredOtherwiseDenied() {
        let acl = JWTClaimsAuthorizer(publish: [], subscribe: ["a/+/c", "b/#"], all: [], identity: alice)
        XCTAssertEqual(acl.subscriptionAccess(alice, filter: "a/x/c"), .granted)
        XCTAssertEqual(acl.subscriptionAccess(alice, filter: "b/+/z"), .granted)
        XCTAssertEqual(acl.subscriptionAccess(alice, filter: "b"), .granted, "b/# matches its parent")
        XCTAssertEqual(acl.subscriptionAccess(alice, filter: "a/#"), .filtered)
        XCTAssertEqual(acl.subscriptionAccess(alice, filter: "#"), .filtered)
        XCTAssertEqual(acl.subscriptionAccess(alice, filter: "+/x/c"), .filtered)
        XCTAssertEqual(acl.subscriptionAccess(alice, filter: "c/#"), .denied)
        XCTAssertEqual(acl.subscriptionAccess(alice, filter: "a/x/d"), .denied)
        XCTAssertEqual(acl.subscriptionAccess(alice, filter: "a/#/c"), .denied, "invalid filter")
        XCTAssertEqual(acl.subscriptionAccess(alice, filter: "$SYS/#"), .denied)
    }

    func testUserNameAndClientIDAreSubstituted() {
        let acl = JWTClaimsAuthorizer(
            publish: ["devices/%c/up"], subscribe: ["users/%u/#", "%u-%c/x"], all: ["100%/literal"], identity: alice)
        XCTAssertTrue(acl.mayPublish(alice, topic: "devices/dev1/up"))
        XCTAssertFalse(acl.mayPublish(alice, topic: "devices/%c/up"))
        XCTAssertFalse(acl.mayPublish(alice, topic: "devices/dev2/up"))
        XCTAssertTrue(acl.mayRead(alice, topic: "users/alice/inbox"))
        XCTAssertTrue(acl.mayRead(alice, topic: "alice-dev1/x"))
        XCTAssertFalse(acl.mayRead(alice, topic: "users/bob/inbox"))
        XCTAssertTrue(acl.mayPublish(alice, topic: "100%/literal"), "a % not before u or c is text")
    }

    func testAnotherIdentityIsSubstitutedOnTheFly() {
        let acl = JWTClaimsAuthorizer(publish: ["devices/%c/up"], subscribe: [], all: [], identity: alice)
        let assigned = ClientIdentity(clientID: "auto-42", username: "alice")
        XCTAssertTrue(acl.mayPublish(assigned, topic: "devices/auto-42/up"))
        XCTAssertFalse(acl.mayPublish(assigned, topic: "devices/dev1/up"))
    }

    func testWildcardsInNamesDoNotWidenFilters() {
        let sneaky = ClientIdentity(clientID: "#", username: "+")
        let acl = JWTClaimsAuthorizer(
            publish: ["devices/%c"], subscribe: ["users/%u/inbox"], all: ["open/#"], identity: sneaky)
        XCTAssertFalse(acl.mayPublish(sneaky, topic: "devices/anything"))
        XCTAssertFalse(acl.mayRead(sneaky, topic: "users/bob/inbox"))
        XCTAssertTrue(acl.mayPublish(sneaky, topic: "open/x"), "filters without %u/%c still apply")
        let anonymous = ClientIdentity(clientID: "dev1", username: nil)
        XCTAssertFalse(acl.mayRead(anonymous, topic: "users//inbox"))
    }

    func testTopicNamesWithWildcardsOrEmptyNeverMatch() {
        let acl = JWTClaimsAuthorizer(publish: [], subscribe: [], all: ["#"], identity: alice)
        XCTAssertTrue(acl.mayPublish(alice, topic: "a/b"))
        XCTAssertFalse(acl.mayPublish(alice, topic: "a/+"))
        XCTAssertFalse(acl.mayPublish(alice, topic: "a/#"))
        XCTAssertFalse(acl.mayPublish(alice, topic: ""))
        XCTAssertFalse(acl.mayRead(alice, topic: "$SYS/broker/uptime"), "# does not match $ topics")
    }

    func testNoFiltersDenyEverything() {
        let acl = JWTClaimsAuthorizer(publish: [], subscribe: [], all: [], identity: alice)
        XCTAssertFalse(acl.mayPublish(alice, topic: "a"))
        XCTAssertFalse(acl.mayRead(alice, topic: "a"))
        XCTAssertEqual(acl.subscriptionAccess(alice, filter: "#"), .denied)
        let invalid = JWTClaimsAuthorizer(publish: ["a/#/b", ""], subscribe: ["+a"], all: [], identity: alice)
        XCTAssertFalse(invalid.mayPublish(alice, topic: "a/x/b"))
        XCTAssertEqual(invalid.subscriptionAccess(alice, filter: "+a"), .denied)
    }
}
