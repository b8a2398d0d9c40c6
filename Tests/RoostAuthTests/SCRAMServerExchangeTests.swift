import XCTest

@testable import RoostAuth

/// The SCRAM-SHA-256 server exchange: RFC 7677's test vector, failures, malformed input.
final class SCRAMServerExchangeTests: XCTestCase {
    // RFC 7677 section 3.
    private let rfcClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    private let rfcServerNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    private let rfcServerFirst =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    private let rfcClientFinal =
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    private let rfcServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    private let rfcSalt = Base64.decode("W22ZaJ0SNY7soEsUEjb6gQ==".utf8) ?? []

    private func hash(_ password: String, iterations: Int = 4096) throws -> PasswordHash {
        try PasswordHash.makeSCRAMSHA256(password: Array(password.utf8), iterations: iterations, salt: rfcSalt)
    }

    private func exchange(
        _ clientFirst: String, users: [String: PasswordHash], nonce: String? = nil
    ) throws(SCRAMError) -> SCRAMServerExchange {
        try SCRAMServerExchange(
            clientFirst: Array(clientFirst.utf8), lookup: { users[$0] }, serverNonce: nonce ?? rfcServerNonce)
    }

    private func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    private func failure(_ result: Result<SCRAMServerExchange.Success, SCRAMError>) -> SCRAMError? {
        if case .failure(let error) = result { return error }
        return nil
    }

    /// A client's final message for `exchange`, computed with `password`.
    private func clientFinal(
        for exchange: SCRAMServerExchange, password: String, salt: [UInt8], iterations: Int, binding: String = "biws"
    ) throws -> String {
        let withoutProof = "c=\(binding),r=\(text(exchange.nonce))"
        let authMessage = exchange.clientFirstMessageBare + Array(",".utf8) + exchange.serverFirstMessage
            + Array(",\(withoutProof)".utf8)
        let salted = try XCTUnwrap(SCRAM.saltedPassword(Array(password.utf8), salt: salt, iterations: iterations))
        return "\(withoutProof),p=\(Base64.encode(SCRAM.clientProof(saltedPassword: salted, authMessage: authMessage)))"
    }

    func testRFC7677TestVector() throws {
        let users = ["user": try hash("pencil")]
        let server = try exchange(rfcClientFirst, users: users)
        XCTAssertEqual(server.username, "user")
        XCTAssertEqual(text(server.serverFirstMessage), rfcServerFirst)
        let result = server.finish(clientFinal: Array(rfcClientFinal.utf8))
        guard case .success(let success) = result else { return XCTFail("\(result)") }
        XCTAssertEqual(success.username, "user")
        XCTAssertEqual(text(success.serverFinalMessage), rfcServerFinal)
    }

    func testRFC7677StoredEntryFromAnotherImplementation() throws {
        // The RFC 5803 line for user/pencil with the RFC's salt, computed with Python's
        // hashlib and hmac.
        let line = "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
            + ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
        let parsed = try PasswordHash(parsing: line[...])
        XCTAssertEqual(parsed, try hash("pencil"))
        XCTAssertEqual(parsed.encoded, line)
        let server = try exchange(rfcClientFirst, users: ["user": parsed])
        guard case .success = server.finish(clientFinal: Array(rfcClientFinal.utf8)) else { return XCTFail() }
    }

    func testWrongPasswordIsInvalidProof() throws {
        let server = try exchange(rfcClientFirst, users: ["user": try hash("pencil!")])
        XCTAssertEqual(text(server.serverFirstMessage), rfcServerFirst, "same salt and nonce, other keys")
        XCTAssertEqual(failure(server.finish(clientFinal: Array(rfcClientFinal.utf8))), .invalidProof)
        XCTAssertEqual(text(SCRAMError.invalidProof.serverFinalMessage), "e=invalid-proof")
    }

    func testRoundTripWithRandomNonceAndOtherIterations() throws {
        let salt: [UInt8] = Array(0..<20)
        let stored = try PasswordHash.makeSCRAMSHA256(password: Array("s3cret, with=signs".utf8), iterations: 64, salt: salt)
        let users = ["a,b=c": stored]
        let server = try SCRAMServerExchange(
            clientFirst: Array("y,a=a=2Cb=3Dc,n=a=2Cb=3Dc,r=abc,x=ignored".utf8), lookup: { users[$0] })
        XCTAssertEqual(server.username, "a,b=c")
        let first = text(server.serverFirstMessage)
        XCTAssertTrue(first.hasPrefix("r=abc"), first)
        XCTAssertTrue(first.hasSuffix(",s=\(Base64.encode(salt)),i=64"), first)
        XCTAssertEqual(server.nonce.count, 3 + 24, "18 random bytes in base64")
        let final = try clientFinal(
            for: server, password: "s3cret, with=signs", salt: salt, iterations: 64,
            binding: Base64.encode(Array("y,a=a=2Cb=3Dc,".utf8)))
        guard case .success(let success) = server.finish(clientFinal: Array(final.utf8)) else { return XCTFail() }
        XCTAssertEqual(success.username, "a,b=c")
        let other = try SCRAMServerExchange(clientFirst: Array("n,,n=a=2Cb=3Dc,r=abc".utf8), lookup: { users[$0] })
        XCTAssertNotEqual(other.nonce, server.nonce, "server nonces are random")
    }

    func testUnknownUserAndNonSCRAMUserLookLikeRealUsersThenFail() throws {
        let bob = try PasswordHash.make(password: Array("pencil".utf8), iterations: 1)
        let users = ["user": try hash("pencil"), "bob": bob]
        for name in ["nobody", "bob"] {
            let server = try exchange("n,,n=\(name),r=rOprNGfwEbeRWgbNEkqO", users: users)
            let first = text(server.serverFirstMessage)
            let fields = first.split(separator: ",")
            XCTAssertEqual(fields.count, 3, first)
            XCTAssertEqual(fields.first.map { String($0) }, "r=rOprNGfwEbeRWgbNEkqO\(rfcServerNonce)")
            XCTAssertEqual(fields.last, "i=4096")
            let salt = try XCTUnwrap(Base64.decode(fields[1].dropFirst(2).utf8), first)
            XCTAssertEqual(salt.count, 16, "shaped like a real salt")
            // The same name gets the same salt again, another name another one.
            let again = try exchange("n,,n=\(name),r=x", users: users)
            XCTAssertTrue(text(again.serverFirstMessage).hasSuffix(",\(fields[1]),i=4096"))
            // Even a proof made with the fake salt and the right password fails.
            let final = try clientFinal(for: server, password: "pencil", salt: salt, iterations: 4096)
            XCTAssertEqual(failure(server.finish(clientFinal: Array(final.utf8))), .invalidProof)
        }
        let nobody = try exchange("n,,n=nobody,r=x", users: users)
        let bobFirst = try exchange("n,,n=bob,r=x", users: users)
        XCTAssertNotEqual(nobody.serverFirstMessage, bobFirst.serverFirstMessage)
    }

    func testClientFirstFailures() throws {
        let users = ["user": try hash("pencil", iterations: 1)]
        let cases: [(String, SCRAMError)] = [
            ("p=tls-unique,,n=user,r=abc", .channelBindingNotSupported),
            ("n,a=admin,n=user,r=abc", .authorizationIdentityRefused),
            ("n,,m=ext,n=user,r=abc", .extensionsNotSupported),
            ("n,,n=us=2Xer,r=abc", .invalidUsernameEncoding),
            ("n,,n=user=,r=abc", .invalidUsernameEncoding),
            ("n,,n=,r=abc", .invalidUsernameEncoding),
            ("n,,n=us\u{E9}r,r=abc", .invalidUsernameEncoding),
            ("n,,n=us\ter,r=abc", .invalidUsernameEncoding),
            ("n,a=x=,n=user,r=abc", .invalidUsernameEncoding),
            ("", .malformed("no GS2 header ('n,,')")),
            ("n", .malformed("no GS2 header ('n,,')")),
            ("n,", .malformed("no GS2 header ('n,,')")),
            ("n,,", .malformed("expected 'n=<user name>,r=<nonce>' after the GS2 header")),
            ("x,,n=user,r=abc", .malformed("the GS2 header must start with 'n', 'y' or 'p='")),
            ("nn,,n=user,r=abc", .malformed("the GS2 header must start with 'n', 'y' or 'p='")),
            ("n,b=user,n=user,r=abc", .malformed("the GS2 header's second field must be empty or 'a='")),
            ("n,,r=abc,n=user", .malformed("expected 'n=<user name>,r=<nonce>' after the GS2 header")),
            ("n,,n=user", .malformed("expected 'n=<user name>,r=<nonce>' after the GS2 header")),
            ("n,,n=user,s=abc", .malformed("expected 'r=<nonce>' after the user name")),
            ("n,,n=user,r=", .malformed("the nonce must be printable ASCII without ','")),
            ("n,,n=user,r=a b", .malformed("the nonce must be printable ASCII without ','")),
            ("n,,n=user,r=abc,", .malformed("an extension is not 'x=value'")),
            ("n,,n=user,r=abc,=x", .malformed("an extension is not 'x=value'")),
            ("n,,n=user,r=abc," + String(repeating: "x", count: 5000), .malformed("the message is too long")),
        ]
        for (message, expected) in cases {
            XCTAssertThrowsError(
                try SCRAMServerExchange(clientFirst: Array(message.utf8), lookup: { users[$0] }), message
            ) { XCTAssertEqual($0 as? SCRAMError, expected, message) }
        }
        XCTAssertThrowsError(try SCRAMServerExchange(clientFirst: [0x6E, 0x2C, 0x2C, 0xFF], lookup: { _ in nil })) {
            XCTAssertEqual($0 as? SCRAMError, .malformed("not UTF-8"))
        }
        // Accepted: "y" (client could bind, thinks we cannot) and an authzid equal to the user.
        XCTAssertNoThrow(try SCRAMServerExchange(clientFirst: Array("y,,n=user,r=a".utf8), lookup: { users[$0] }))
        XCTAssertNoThrow(try SCRAMServerExchange(clientFirst: Array("n,a=user,n=user,r=a".utf8), lookup: { _ in nil }))
    }

    func testClientFinalFailures() throws {
        let server = try exchange(rfcClientFirst, users: ["user": try hash("pencil")])
        let nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
        let proof = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        let cases: [(String, SCRAMError)] = [
            ("", .malformed("expected 'c=...,r=...,p=...'")),
            ("c=biws,r=\(nonce)", .malformed("expected 'c=...,r=...,p=...'")),
            ("r=\(nonce),c=biws,p=\(proof)", .malformed("expected 'c=...,r=...,p=...'")),
            ("c=biws,x=\(nonce),p=\(proof)", .malformed("expected 'r=<nonce>' after 'c='")),
            ("c=biws,r=\(nonce),p=\(proof),x=y", .malformed("the last attribute must be the proof 'p='")),
            ("c=biws,r=\(nonce),,p=\(proof)", .malformed("an extension is not 'x=value'")),
            ("c=biws!,r=\(nonce),p=\(proof)", .malformed("'c=' is not base64")),
            ("c=eSws,r=\(nonce),p=\(proof)", .channelBindingsDontMatch),
            ("c=biws,r=\(nonce)x,p=\(proof)", .nonceMismatch),
            ("c=biws,r=rOprNGfwEbeRWgbNEkqO,p=\(proof)", .nonceMismatch),
            ("c=biws,r=\(nonce),p=\(proof.dropLast(1))", .malformed("'p=' is not base64")),
            ("c=biws,r=\(nonce),p=AAAA", .malformed("the proof must be 32 bytes")),
            ("c=biws,r=\(nonce),p=", .malformed("the proof must be 32 bytes")),
            ("c=biws,r=\(nonce),p=\(Base64.encode(Array(repeating: 0, count: 32)))", .invalidProof),
            ("c=biws,r=\(nonce),x=extension,p=\(proof)", .invalidProof),
        ]
        for (message, expected) in cases {
            XCTAssertEqual(failure(server.finish(clientFinal: Array(message.utf8))), expected, message)
        }
        XCTAssertEqual(failure(server.finish(clientFinal: [0x63, 0x3D, 0xC3])), .malformed("not UTF-8"))
        // The exchange value is unchanged by failures.
        guard case .success = server.finish(clientFinal: Array(rfcClientFinal.utf8)) else { return XCTFail() }
    }

    func testErrorValuesOnTheWire() {
        let expected: [(SCRAMError, String)] = [
            (.malformed("x"), "e=invalid-encoding"),
            (.channelBindingNotSupported, "e=channel-binding-not-supported"),
            (.invalidUsernameEncoding, "e=invalid-username-encoding"),
            (.authorizationIdentityRefused, "e=other-error"),
            (.extensionsNotSupported, "e=extensions-not-supported"),
            (.channelBindingsDontMatch, "e=channel-bindings-dont-match"),
            (.nonceMismatch, "e=other-error"),
            (.invalidProof, "e=invalid-proof"),
        ]
        for (error, wire) in expected {
            XCTAssertEqual(text(error.serverFinalMessage), wire)
            XCTAssertFalse(error.description.isEmpty)
        }
    }

    func testSASLNameEscapingRoundTrips() {
        for name in ["plain", "a,b", "=", "x=2C", ",=,="] {
            let encoded = SCRAM.encodeSASLName(name)
            XCTAssertFalse(encoded.contains(","), encoded)
            XCTAssertEqual(SCRAM.decodeSASLName(Array(encoded.utf8)[...]), name)
        }
    }
}
