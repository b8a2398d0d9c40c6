import Crypto
import Foundation
import NIOCore
import RoostCore
import XCTest
import _CryptoExtras

@testable import RoostAuth

/// JWT authentication: signatures per algorithm, the time claims, issuer and audience, key
/// confusion, user names, the cheap shape check, configuration errors and reloads.
final class JWTTests: XCTestCase {
    private typealias T = JWTTestTokens
    /// 64 bytes: long enough for HS512.
    private let secret = String(repeating: "roost-jwt-test-secret-64/", count: 3).prefix(64).description

    private func assertRefused(
        _ outcome: AuthenticationOutcome, _ reason: String, file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertEqual(outcome.result, .badCredentials, file: file, line: line)
        XCTAssertEqual(outcome.reason, reason, file: file, line: line)
        XCTAssertNil(outcome.username, file: file, line: line)
        XCTAssertNil(outcome.authorizer, file: file, line: line)
    }

    private func assertResult(
        _ outcome: AuthenticationOutcome, _ expected: AuthenticationResult, _ message: String = "",
        file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertEqual(outcome.result, expected, "\(message) \(outcome.reason ?? "")", file: file, line: line)
    }

    private func assertUser(
        _ outcome: AuthenticationOutcome, _ expected: String, _ message: String = "",
        file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertEqual(outcome.result, .accepted, message, file: file, line: line)
        XCTAssertEqual(outcome.username, expected, message, file: file, line: line)
    }

    // MARK: HMAC

    func testValidHS256TokenIsAcceptedAsItsSubject() async throws {
        let auth = try JWTAuthenticator.testing(secret: secret)
        let outcome = await auth.outcome(T.request(T.hs256(T.claims(), secret: secret)))
        XCTAssertEqual(outcome.result, .accepted)
        XCTAssertEqual(outcome.username, "alice")
        XCTAssertNil(outcome.authorizer, "no acl claim: only the broker's ACL applies")
        XCTAssertNil(outcome.reason)
        XCTAssertEqual(auth.algorithms, ["HS256", "HS384", "HS512"])
    }

    func testHS384AndHS512AreAccepted() async throws {
        XCTAssertEqual(secret.utf8.count, 64)
        let auth = try JWTAuthenticator.testing(secret: secret)
        for alg in ["HS384", "HS512"] {
            let outcome = await auth.outcome(T.request(T.hs256(T.claims(), secret: secret, alg: alg)))
            XCTAssertEqual(outcome.result, .accepted, alg)
        }
    }

    /// RFC 7518 section 3.2: an HMAC key at least as long as the hash output.
    func testHMACAlgorithmsFollowTheSecretLength() async throws {
        let short = String(repeating: "s", count: 40)
        let auth = try JWTAuthenticator.testing(secret: short)
        XCTAssertEqual(auth.algorithms, ["HS256"])
        assertResult(await auth.outcome(T.request(T.hs256(T.claims(), secret: short))), .accepted)
        for alg in ["HS384", "HS512"] {
            assertRefused(
                await auth.outcome(T.request(T.hs256(T.claims(), secret: short, alg: alg))), "signing algorithm not accepted")
        }
        XCTAssertEqual(try JWTAuthenticator(hmacSecret: String(repeating: "s", count: 48)).algorithms, ["HS256", "HS384"])
        XCTAssertThrowsError(try JWTAuthenticator(hmacSecret: String(repeating: "s", count: 31))) { error in
            XCTAssertEqual(
                error as? JWTConfigurationError, JWTConfigurationError(setting: "jwt_secret", reason: .secretTooShort(bytes: 31)))
        }
    }

    func testWrongSecretOrTamperedPayloadIsRefused() async throws {
        let auth = try JWTAuthenticator.testing(secret: secret)
        assertRefused(await auth.outcome(T.request(T.hs256(T.claims(), secret: "another secret"))), "invalid signature")

        let genuine = T.hs256(T.claims(), secret: secret).split(separator: ".")
        let forgedPayload = T.base64URL(T.json(T.claims(sub: "admin")))
        let forged = "\(genuine[0]).\(forgedPayload).\(genuine[2])"
        assertRefused(await auth.outcome(T.request(forged)), "invalid signature")

        // A header claiming HS512 over an HS256 MAC.
        let relabelled = T.base64URL(T.json(["alg": "HS512", "typ": "JWT"])) + ".\(genuine[1]).\(genuine[2])"
        assertRefused(await auth.outcome(T.request(relabelled)), "invalid signature")
    }

    // MARK: Public keys

    func testValidES256TokenWithAPEMPublicKeyFile() async throws {
        let key = P256.Signing.PrivateKey()
        let path = try T.temporaryFile(key.publicKey.pemRepresentation)
        let auth = try JWTAuthenticator.testing(publicKeyFile: path)
        XCTAssertEqual(auth.algorithms, ["ES256"])
        let outcome = await auth.outcome(T.request(try T.es256(T.claims(), key: key)))
        XCTAssertEqual(outcome.result, .accepted)
        XCTAssertEqual(outcome.username, "alice")

        let stranger = P256.Signing.PrivateKey()
        assertRefused(await auth.outcome(T.request(try T.es256(T.claims(), key: stranger))), "invalid signature")
    }

    func testRS256AndPS256TokensWithAnRSAPublicKeyFile() async throws {
        let key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let path = try T.temporaryFile(key.publicKey.pemRepresentation)
        let auth = try JWTAuthenticator.testing(publicKeyFile: path)
        XCTAssertEqual(auth.algorithms, ["PS256", "PS384", "PS512", "RS256", "RS384", "RS512"])
        for alg in ["RS256", "RS512", "PS256", "PS384"] {
            let outcome = await auth.outcome(T.request(try T.rsa(T.claims(), key: key, alg: alg)))
            XCTAssertEqual(outcome.result, .accepted, alg)
        }
        // An RS256 signature presented as PS256 is not a PSS signature.
        let rs = try T.rsa(T.claims(), key: key, alg: "RS256").split(separator: ".")
        let relabelled = T.base64URL(T.json(["alg": "PS256"])) + ".\(rs[1]).\(rs[2])"
        assertResult(await auth.outcome(T.request(relabelled)), .badCredentials)
    }

    func testAKeyMadeByTheOpenSSLCommandLoads() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("roost-jwt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let privatePath = directory.appendingPathComponent("private.pem").path
        let publicPath = directory.appendingPathComponent("public.pem").path
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl") else {
            throw XCTSkip("no /usr/bin/openssl")
        }
        try run("/usr/bin/openssl", ["genrsa", "-out", privatePath, "2048"])
        try run("/usr/bin/openssl", ["rsa", "-in", privatePath, "-pubout", "-out", publicPath])
        let key = try _RSA.Signing.PrivateKey(pemRepresentation: String(contentsOfFile: privatePath, encoding: .utf8))
        let auth = try JWTAuthenticator.testing(publicKeyFile: publicPath)
        let outcome = await auth.outcome(T.request(try T.rsa(T.claims(), key: key, alg: "RS256")))
        XCTAssertEqual(outcome.result, .accepted)
        // The private key file itself is refused at configuration, with a hint.
        XCTAssertThrowsError(try JWTAuthenticator(publicKeyFile: privatePath)) { error in
            XCTAssertEqual(error as? JWTConfigurationError, JWTConfigurationError(
                setting: "jwt_public_key", file: privatePath, reason: .privateKey))
        }
    }

    private func run(_ tool: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "\(tool) \(arguments)")
    }

    // MARK: Algorithm rules

    func testAlgNoneIsRefused() async throws {
        let auth = try JWTAuthenticator.testing(secret: secret)
        for alg in ["none", "None", "NONE"] {
            let unsigned = T.token(header: ["alg": alg], claims: T.claims()) { _ in [] }
            XCTAssertTrue(unsigned.hasSuffix("."))
            XCTAssertTrue(auth.claims(T.request(unsigned)), "claimed, so that it is refused here")
            assertRefused(await auth.outcome(T.request(unsigned)), "unsigned token (alg none)")
        }
    }

    /// The classic confusion: an HS256 token whose secret is the public key's PEM text.
    func testHMACTokenAgainstAPublicKeyOnlyConfigurationIsRefused() async throws {
        let key = P256.Signing.PrivateKey()
        let pem = key.publicKey.pemRepresentation
        let auth = try JWTAuthenticator.testing(publicKeyFile: try T.temporaryFile(pem))
        let confused = T.hs256(T.claims(), secret: pem)
        assertRefused(await auth.outcome(T.request(confused)), "signing algorithm not accepted")

        let rsaKey = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let rsaPEM = rsaKey.publicKey.pemRepresentation
        let rsaAuth = try JWTAuthenticator.testing(publicKeyFile: try T.temporaryFile(rsaPEM))
        assertRefused(await rsaAuth.outcome(T.request(T.hs256(T.claims(), secret: rsaPEM))), "signing algorithm not accepted")
    }

    func testAnotherCurveThanTheKeysIsRefused() async throws {
        let auth = try JWTAuthenticator.testing(publicKeyFile: try T.temporaryFile(P256.Signing.PrivateKey().publicKey.pemRepresentation))
        let es384 = T.token(header: ["alg": "ES384"], claims: T.claims()) { _ in [UInt8](repeating: 1, count: 96) }
        assertRefused(await auth.outcome(T.request(es384)), "signing algorithm not accepted")
    }

    func testCriticalHeaderParametersAreRefused() async throws {
        let auth = try JWTAuthenticator.testing(secret: secret)
        let token = T.token(header: ["alg": "HS256", "crit": ["exp"], "exp": 1], claims: T.claims()) { input in
            Array(HMAC<SHA256>.authenticationCode(for: input, using: SymmetricKey(data: Array(secret.utf8))))
        }
        assertRefused(await auth.outcome(T.request(token)), "unsupported critical header parameters")
    }

    // MARK: Time claims

    func testExpiredTokenIsRefusedBeyondTheLeewayOnly() async throws {
        let auth = try JWTAuthenticator.testing(secret: secret)
        let expired = T.hs256(T.claims(["exp": T.now - 31]), secret: secret)
        assertRefused(await auth.outcome(T.request(expired)), "token expired")
        let withinLeeway = T.hs256(T.claims(["exp": T.now - 29]), secret: secret)
        assertResult(await auth.outcome(T.request(withinLeeway)), .accepted)
    }

    func testTokenWithoutExpIsRefused() async throws {
        let auth = try JWTAuthenticator.testing(secret: secret)
        let forever = T.hs256(["sub": "alice"], secret: secret)
        assertRefused(await auth.outcome(T.request(forever)), "token has no exp")
    }

    func testNotYetValidTokenIsRefused() async throws {
        let auth = try JWTAuthenticator.testing(secret: secret)
        assertRefused(
            await auth.outcome(T.request(T.hs256(T.claims(["nbf": T.now + 60]), secret: secret))),
            "token not yet valid (nbf)")
        assertResult(await auth.outcome(T.request(T.hs256(T.claims(["nbf": T.now + 20]), secret: secret))), .accepted)
        assertRefused(
            await auth.outcome(T.request(T.hs256(T.claims(["iat": T.now + 60]), secret: secret))),
            "token issued in the future (iat)")
    }

    func testNonNumericExpIsMalformed() async throws {
        let auth = try JWTAuthenticator.testing(secret: secret)
        let token = T.hs256(T.claims(["exp": "tomorrow"]), secret: secret)
        assertRefused(await auth.outcome(T.request(token)), "malformed or unverifiable token")
    }

    // MARK: Issuer and audience

    func testIssuerAndAudienceAreCheckedWhenConfigured() async throws {
        let auth = try JWTAuthenticator.testing(secret: secret, issuer: "https://issuer.example", audience: "roost")
        let good = T.claims(["iss": "https://issuer.example", "aud": "roost"])
        assertResult(await auth.outcome(T.request(T.hs256(good, secret: secret))), .accepted)
        let inArray = T.claims(["iss": "https://issuer.example", "aud": ["other", "roost"]])
        assertResult(await auth.outcome(T.request(T.hs256(inArray, secret: secret))), .accepted)

        let wrongIssuer = T.claims(["iss": "https://evil.example", "aud": "roost"])
        assertRefused(await auth.outcome(T.request(T.hs256(wrongIssuer, secret: secret))), "wrong issuer")
        let noIssuer = T.claims(["aud": "roost"])
        assertRefused(await auth.outcome(T.request(T.hs256(noIssuer, secret: secret))), "wrong issuer")
        let wrongAudience = T.claims(["iss": "https://issuer.example", "aud": ["other"]])
        assertRefused(await auth.outcome(T.request(T.hs256(wrongAudience, secret: secret))), "wrong audience")
        let noAudience = T.claims(["iss": "https://issuer.example"])
        assertRefused(await auth.outcome(T.request(T.hs256(noAudience, secret: secret))), "wrong audience")
    }

    func testIssuerAndAudienceAreIgnoredWhenNotConfigured() async throws {
        let auth = try JWTAuthenticator.testing(secret: secret)
        let token = T.hs256(T.claims(["iss": "anyone", "aud": "anything"]), secret: secret)
        assertResult(await auth.outcome(T.request(token)), .accepted)
    }

    // MARK: User names

    func testClientUserNameMustBeTheSubject() async throws {
        let auth = try JWTAuthenticator.testing(secret: secret)
        let token = T.hs256(T.claims(), secret: secret)
        assertUser(await auth.outcome(T.request(token, username: "alice")), "alice")
        assertUser(await auth.outcome(T.request(token, username: "")), "alice", "empty: none sent")
        assertRefused(await auth.outcome(T.request(token, username: "bob")), "user name does not match the token")
        assertRefused(await auth.outcome(T.request(token, username: "Alice")), "user name does not match the token")
    }

    func testUsernameClaimOverridesTheSubject() async throws {
        let auth = try JWTAuthenticator.testing(secret: secret)
        let token = T.hs256(T.claims(sub: "user-4711", ["username": "alice"]), secret: secret)
        assertUser(await auth.outcome(T.request(token)), "alice")
        assertResult(await auth.outcome(T.request(token, username: "alice")), .accepted)
        assertRefused(await auth.outcome(T.request(token, username: "user-4711")), "user name does not match the token")
    }

    func testTokenWithoutSubjectIsRefused() async throws {
        let auth = try JWTAuthenticator.testing(secret: secret)
        let token = T.hs256(["exp": T.now + 60], secret: secret)
        assertRefused(await auth.outcome(T.request(token)), "token names no user (sub)")
        let empty = T.hs256(T.claims(sub: ""), secret: secret)
        assertRefused(await auth.outcome(T.request(empty)), "token names no user (sub)")
    }

    // MARK: The shape check

    func testClaimsOnlyPasswordsShapedLikeAJWS() throws {
        let auth = try JWTAuthenticator.testing(secret: secret)
        let token = T.hs256(T.claims(), secret: secret)
        XCTAssertTrue(auth.claims(T.request(token)))
        XCTAssertTrue(auth.claims(T.request(T.hs256(T.claims(), secret: "other"))), "forged, but shaped: refused later")

        let header = T.base64URL(T.json(["alg": "HS256"]))
        let noAlg = T.base64URL(T.json(["typ": "JWT"]))
        let notJSON = T.base64URL(Array("not json".utf8))
        let rejected = [
            "", "hunter2", "correct horse battery staple", "a.b.c", "\(header).payload", "\(header)..sig",
            "\(header).cGF5bG9hZA.sig.extra", "\(noAlg).cGF5bG9hZA.c2ln", "\(notJSON).cGF5bG9hZA.c2ln",
            "\(header).cGF5 bG9hZA.c2ln", "\(header).cGF5bG9hZA==.c2ln", ".cGF5bG9hZA.c2ln",
        ]
        for password in rejected {
            XCTAssertFalse(auth.claims(T.request(password)), password)
        }
        XCTAssertFalse(auth.claims(AuthenticationRequest(clientID: "c", username: "alice", password: nil)))
        var bytes = ByteBuffer(string: "xx" + token)
        bytes.moveReaderIndex(forwardBy: 2)
        XCTAssertTrue(auth.claims(AuthenticationRequest(clientID: "c", username: nil, password: bytes)), "readable bytes only")
    }

    func testOversizedTokenIsRefusedWithoutVerification() async throws {
        let auth = try JWTAuthenticator.testing(secret: secret)
        let padding = String(repeating: "x", count: 9000)
        let token = T.hs256(T.claims(["pad": padding]), secret: secret)
        XCTAssertGreaterThan(token.utf8.count, JWTAuthenticator.maximumTokenBytes)
        assertRefused(await auth.outcome(T.request(token)), "token longer than 8192 bytes")
    }

    func testMalformedPasswordIsRefused() async throws {
        let auth = try JWTAuthenticator.testing(secret: secret)
        assertRefused(await auth.outcome(T.request("not-a-token")), "malformed token")
        assertRefused(await auth.outcome(AuthenticationRequest(clientID: "c", username: nil, password: nil)), "no token")
    }

    func testReasonsNeverContainTheToken() async throws {
        let auth = try JWTAuthenticator.testing(secret: secret)
        let token = T.hs256(T.claims(["exp": T.now - 3600]), secret: "wrong")
        let outcome = await auth.outcome(T.request(token))
        let reason = try XCTUnwrap(outcome.reason)
        for part in token.split(separator: ".") { XCTAssertFalse(reason.contains(part)) }
    }

    func testCompletionIsCalledExactlyOnce() async throws {
        let auth = try JWTAuthenticator.testing(secret: secret)
        let calls = Counter()
        let done = expectation(description: "completion")
        done.assertForOverFulfill = true
        auth.authenticate(T.request(T.hs256(T.claims(), secret: secret))) { _ in
            calls.increment()
            done.fulfill()
        }
        await fulfillment(of: [done], timeout: 5)
        try await Task.sleep(for: .milliseconds(50))
        XCTAssertEqual(calls.value, 1)
    }

    // MARK: Configuration

    func testConfigurationErrorsNameTheSettingAndTheFile() throws {
        XCTAssertThrowsError(try JWTAuthenticator()) { error in
            XCTAssertEqual((error as? JWTConfigurationError)?.reason, .noKey)
        }
        XCTAssertThrowsError(try JWTAuthenticator(hmacSecret: "")) { error in
            XCTAssertEqual(
                error as? JWTConfigurationError, JWTConfigurationError(setting: "jwt_secret", reason: .secretTooShort(bytes: 0)))
            XCTAssertEqual("\(error)".contains("jwt_secret: the HMAC secret has 0 bytes"), true)
        }
        let missing = "/nonexistent/roost/jwt.pem"
        XCTAssertThrowsError(try JWTAuthenticator(publicKeyFile: missing)) { error in
            let error = error as? JWTConfigurationError
            XCTAssertEqual(error?.setting, "jwt_public_key")
            XCTAssertEqual(error?.file, missing)
            guard case .unreadable = error?.reason else { return XCTFail("\(String(describing: error))") }
            XCTAssertTrue(error?.description.hasPrefix("jwt_public_key /nonexistent/roost/jwt.pem: cannot read") ?? false)
        }
        let garbage = try T.temporaryFile("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
        XCTAssertThrowsError(try JWTAuthenticator(publicKeyFile: garbage)) { error in
            XCTAssertEqual(error as? JWTConfigurationError, JWTConfigurationError(
                setting: "jwt_public_key", file: garbage, reason: .unsupportedKey))
        }
        let privateKey = try T.temporaryFile(P256.Signing.PrivateKey().pemRepresentation)
        XCTAssertThrowsError(try JWTAuthenticator(publicKeyFile: privateKey)) { error in
            XCTAssertEqual((error as? JWTConfigurationError)?.reason, .privateKey)
        }
    }

    func testSecretAndPublicKeyTogetherAllowBothKinds() async throws {
        let key = P256.Signing.PrivateKey()
        let auth = try JWTAuthenticator.testing(secret: secret, publicKeyFile: try T.temporaryFile(key.publicKey.pemRepresentation))
        XCTAssertEqual(auth.algorithms, ["ES256", "HS256", "HS384", "HS512"])
        assertResult(await auth.outcome(T.request(T.hs256(T.claims(), secret: secret))), .accepted)
        assertResult(await auth.outcome(T.request(try T.es256(T.claims(), key: key))), .accepted)
    }

    func testReloadReadsTheKeyFileAgainAndKeepsTheOldKeyOnError() async throws {
        let first = P256.Signing.PrivateKey()
        let second = P256.Signing.PrivateKey()
        let path = try T.temporaryFile(first.publicKey.pemRepresentation)
        let auth = try JWTAuthenticator.testing(publicKeyFile: path)
        assertResult(await auth.outcome(T.request(try T.es256(T.claims(), key: first))), .accepted)

        try second.publicKey.pemRepresentation.write(toFile: path, atomically: true, encoding: .utf8)
        try auth.reload()
        assertResult(await auth.outcome(T.request(try T.es256(T.claims(), key: first))), .badCredentials)
        assertResult(await auth.outcome(T.request(try T.es256(T.claims(), key: second))), .accepted)

        try "garbage".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try auth.reload())
        assertResult(await auth.outcome(T.request(try T.es256(T.claims(), key: second))), .accepted)
    }

    // MARK: The acl claim

    func testACLClaimComesBackAsAnAuthorizerForThisClient() async throws {
        let auth = try JWTAuthenticator.testing(secret: secret)
        let acl: [String: Any] = ["pub": ["devices/%c/up"], "sub": ["users/%u/#"]]
        let token = T.hs256(T.claims(["acl": acl]), secret: secret)
        let outcome = await auth.outcome(T.request(token, clientID: "dev1"))
        let authorizer = try XCTUnwrap(outcome.authorizer)
        let me = ClientIdentity(clientID: "dev1", username: "alice")
        XCTAssertTrue(authorizer.mayPublish(me, topic: "devices/dev1/up"))
        XCTAssertFalse(authorizer.mayPublish(me, topic: "devices/dev2/up"))
        XCTAssertEqual(authorizer.subscriptionAccess(me, filter: "users/alice/inbox"), .granted)
        XCTAssertEqual(authorizer.subscriptionAccess(me, filter: "users/bob/inbox"), .denied)
    }

    func testMalformedACLClaimRefusesTheToken() async throws {
        let auth = try JWTAuthenticator.testing(secret: secret)
        for acl: Any in [["pub": "a/b"], ["sub": [1, 2]], "everything"] {
            let token = T.hs256(T.claims(["acl": acl]), secret: secret)
            assertRefused(await auth.outcome(T.request(token)), "malformed or unverifiable token")
        }
    }
}

/// A thread-safe call counter.
private final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    var value: Int { lock.withLock { count } }
    func increment() { lock.withLock { count += 1 } }
}
