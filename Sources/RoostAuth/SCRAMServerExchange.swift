/// The server side of one SCRAM-SHA-256 authentication (RFC 5802, RFC 7677), without
/// channel binding: client-first in, server-first out (``init(clientFirst:lookup:serverNonce:)``),
/// then client-final in, server-final out (``finish(clientFinal:)``).
///
/// Knows nothing of MQTT or NIO: the transport carries the messages (MQTT 5 puts them in
/// the Authentication Data of CONNECT, AUTH and CONNACK) and maps a ``SCRAMError`` to its
/// own reply. Credentials come from a ``PasswordHash/scramSHA256(iterations:salt:storedKey:serverKey:)``
/// entry; the server never sees the password and runs no PBKDF2 (the client does).
///
/// User existence is not revealed: for an unknown user, or a user whose entry is not SCRAM,
/// the server-first message carries a fake salt (HMAC-SHA256 of the user name under a
/// secret made at process start, so the same name gets the same salt until a restart) and
/// 4096 iterations, and ``finish(clientFinal:)`` does the same work and fails with
/// ``SCRAMError/invalidProof``, as for a wrong password.
///
/// User names: printable ASCII only, with `=2C` / `=3D` for `,` / `=`; Roost does not
/// implement SASLprep (RFC 4013), which is the identity on printable ASCII, so anything else
/// is ``SCRAMError/invalidUsernameEncoding``. An authorization identity (`a=`) is accepted
/// only when it equals the user name. GS2 flag `n` and `y` are accepted (Roost offers no
/// `-PLUS` mechanism, so `y` is right), `p=` is refused.
///
/// A plain value, `Sendable`; it holds the state between the two steps. Use each value for
/// one exchange: call ``finish(clientFinal:)`` once, then drop it.
public struct SCRAMServerExchange: Sendable {
    /// The SASL mechanism name (the MQTT 5 Authentication Method).
    public static let mechanism = "SCRAM-SHA-256"
    /// The longest client message accepted, in bytes.
    public static let maximumMessageLength = 4096
    /// Random bytes in a server nonce (base64-encoded on the wire).
    public static let serverNonceByteCount = 18

    /// A successful exchange.
    public struct Success: Sendable, Equatable {
        /// The authenticated user name (decoded, as in the password file).
        public let username: String
        /// The server-final-message, `v=<base64 ServerSignature>`, to send to the client.
        public let serverFinalMessage: [UInt8]
    }

    /// The user name the client claims (decoded). Not yet authenticated.
    public let username: String
    /// The server-first-message, `r=<client nonce><server nonce>,s=<salt>,i=<iterations>`.
    public let serverFirstMessage: [UInt8]

    let gs2Header: [UInt8]
    let clientFirstMessageBare: [UInt8]
    let nonce: [UInt8]
    let storedKey: [UInt8]
    let serverKey: [UInt8]
    /// False for a fake exchange (unknown user, or no SCRAM entry): it must fail.
    let hasCredentials: Bool

    /// Secret for fake credentials, made once per process.
    private static let fakeCredentialSecret = PasswordHash.randomBytes(32)

    /// Parses the client-first-message and makes the server-first-message.
    ///
    /// - Parameters:
    ///   - clientFirst: `gs2-header client-first-message-bare`, e.g. `n,,n=user,r=<nonce>`.
    ///   - lookup: the stored hash of a user name, nil for an unknown user; called once.
    ///   - serverNonce: the server's part of the nonce, for tests; it must be printable
    ///     ASCII without `,`. By default 18 random bytes in base64.
    /// - Throws: what is wrong with the message; the exchange is over (send the failure's
    ///   ``SCRAMError/serverFinalMessage`` or the transport's refusal).
    public init(
        clientFirst: [UInt8], lookup: (String) -> PasswordHash?, serverNonce: String? = nil
    ) throws(SCRAMError) {
        guard clientFirst.count <= Self.maximumMessageLength else { throw .malformed("the message is too long") }
        guard String(validating: clientFirst, as: UTF8.self) != nil else { throw .malformed("not UTF-8") }
        let message = clientFirst[...]
        // gs2-header = gs2-cbind-flag "," [authzid] ","
        guard let firstComma = message.firstIndex(of: UInt8(ascii: ",")),
            let secondComma = message[(firstComma + 1)...].firstIndex(of: UInt8(ascii: ","))
        else { throw .malformed("no GS2 header ('n,,')") }
        let flag = message[..<firstComma]
        if flag.first == UInt8(ascii: "p") { throw .channelBindingNotSupported }
        guard flag.elementsEqual("n".utf8) || flag.elementsEqual("y".utf8) else {
            throw .malformed("the GS2 header must start with 'n', 'y' or 'p='")
        }
        let authorization = message[(firstComma + 1)..<secondComma]
        var authorizationIdentity: String?
        if !authorization.isEmpty {
            guard let value = SCRAM.value(of: authorization, named: "a") else {
                throw .malformed("the GS2 header's second field must be empty or 'a='")
            }
            guard let name = SCRAM.decodeSASLName(value) else { throw .invalidUsernameEncoding }
            authorizationIdentity = name
        }
        let bare = message[(secondComma + 1)...]
        let attributes = SCRAM.attributes(bare)
        if let first = attributes.first, SCRAM.value(of: first, named: "m") != nil { throw .extensionsNotSupported }
        guard attributes.count >= 2, let encodedName = SCRAM.value(of: attributes[0], named: "n") else {
            throw .malformed("expected 'n=<user name>,r=<nonce>' after the GS2 header")
        }
        guard let username = SCRAM.decodeSASLName(encodedName) else { throw .invalidUsernameEncoding }
        guard let clientNonce = SCRAM.value(of: attributes[1], named: "r") else {
            throw .malformed("expected 'r=<nonce>' after the user name")
        }
        guard !clientNonce.isEmpty, clientNonce.allSatisfy(SCRAM.isPrintable) else {
            throw .malformed("the nonce must be printable ASCII without ','")
        }
        for extensionAttribute in attributes.dropFirst(2) where !Self.isAttribute(extensionAttribute) {
            throw .malformed("an extension is not 'x=value'")
        }
        if let authorizationIdentity, authorizationIdentity != username { throw .authorizationIdentityRefused }

        let serverPart = serverNonce.map { Array($0.utf8) } ?? Array(
            Base64.encode(PasswordHash.randomBytes(Self.serverNonceByteCount)).utf8)
        precondition(!serverPart.isEmpty && serverPart.allSatisfy(SCRAM.isPrintable), "invalid server nonce")

        let salt: [UInt8]
        let iterations: Int
        if case .scramSHA256(let count, let realSalt, let stored, let server)? = lookup(username) {
            (salt, iterations, storedKey, serverKey, hasCredentials) = (realSalt, count, stored, server, true)
        } else {
            let name = Array(username.utf8)
            salt = Array(SCRAM.hmac(key: Self.fakeCredentialSecret, Array("salt:".utf8) + name)
                .prefix(PasswordHash.scramSaltLength))
            iterations = PasswordHash.defaultSCRAMIterations
            storedKey = SCRAM.hmac(key: Self.fakeCredentialSecret, Array("stored:".utf8) + name)
            serverKey = SCRAM.hmac(key: Self.fakeCredentialSecret, Array("server:".utf8) + name)
            hasCredentials = false
        }
        self.username = username
        self.gs2Header = Array(message[...secondComma])
        self.clientFirstMessageBare = Array(bare)
        self.nonce = Array(clientNonce) + serverPart
        self.serverFirstMessage = Array("r=".utf8) + nonce + Array(",s=\(Base64.encode(salt)),i=\(iterations)".utf8)
    }

    /// Checks the client-final-message, `c=<base64 GS2 header>,r=<nonce>[,...],p=<proof>`.
    ///
    /// Returns the authenticated user and the server-final-message (`v=...`), or what is
    /// wrong (send its ``SCRAMError/serverFinalMessage``, `e=...`, or refuse the connection).
    /// The proof is compared in constant time.
    public func finish(clientFinal: [UInt8]) -> Result<Success, SCRAMError> {
        guard clientFinal.count <= Self.maximumMessageLength else { return .failure(.malformed("the message is too long")) }
        guard String(validating: clientFinal, as: UTF8.self) != nil else { return .failure(.malformed("not UTF-8")) }
        let message = clientFinal[...]
        let attributes = SCRAM.attributes(message)
        guard attributes.count >= 3, let binding = SCRAM.value(of: attributes[0], named: "c") else {
            return .failure(.malformed("expected 'c=...,r=...,p=...'"))
        }
        guard let nonceValue = SCRAM.value(of: attributes[1], named: "r") else {
            return .failure(.malformed("expected 'r=<nonce>' after 'c='"))
        }
        guard let last = attributes.last, let proofValue = SCRAM.value(of: last, named: "p") else {
            return .failure(.malformed("the last attribute must be the proof 'p='"))
        }
        for extensionAttribute in attributes.dropFirst(2).dropLast() where !Self.isAttribute(extensionAttribute) {
            return .failure(.malformed("an extension is not 'x=value'"))
        }
        guard let header = Base64.decode(binding) else { return .failure(.malformed("'c=' is not base64")) }
        guard header == gs2Header else { return .failure(.channelBindingsDontMatch) }
        guard nonceValue.elementsEqual(nonce) else { return .failure(.nonceMismatch) }
        guard let proof = Base64.decode(proofValue) else { return .failure(.malformed("'p=' is not base64")) }
        guard proof.count == PasswordHash.scramKeyLength else {
            return .failure(.malformed("the proof must be \(PasswordHash.scramKeyLength) bytes"))
        }
        // The attributes are slices of `message`; the proof attribute ends it, after a ','.
        let withoutProof = message[..<(last.startIndex - 1)]
        let authMessage = clientFirstMessageBare + [UInt8(ascii: ",")] + serverFirstMessage
            + [UInt8(ascii: ",")] + Array(withoutProof)
        let clientSignature = SCRAM.hmac(key: storedKey, authMessage)
        let clientKey = SCRAM.xor(proof, clientSignature)
        let proofMatches = PasswordHash.constantTimeEqual(SCRAM.sha256(clientKey), storedKey)
        let serverSignature = SCRAM.hmac(key: serverKey, authMessage)
        guard proofMatches && hasCredentials else { return .failure(.invalidProof) }
        return .success(
            Success(username: username, serverFinalMessage: Array("v=\(Base64.encode(serverSignature))".utf8)))
    }

    /// `attr-val`: one ASCII letter, `=`, and a value without `,`.
    private static func isAttribute(_ attribute: ArraySlice<UInt8>) -> Bool {
        guard attribute.count >= 2, let letter = attribute.first else { return false }
        let isLetter = (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(letter)
            || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(letter)
        return isLetter && attribute[attribute.startIndex + 1] == UInt8(ascii: "=")
    }
}
