/// Why a SCRAM-SHA-256 exchange failed: one case per violation, each with the
/// `server-error` value of RFC 5802 section 7 that goes in `e=` on the wire.
///
/// An unknown user, a user without SCRAM credentials and a wrong password are all
/// ``invalidProof``, and only at the final step, so that a client cannot tell them apart.
/// The description never contains a key or a proof. A plain value, `Sendable`.
public enum SCRAMError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Not a SCRAM message: bad UTF-8, attributes missing, out of order or malformed, bad
    /// base64, a nonce with forbidden characters (the text says which). `e=invalid-encoding`.
    case malformed(String)
    /// The client asked for channel binding (`p=`), which Roost does not offer.
    /// `e=channel-binding-not-supported`.
    case channelBindingNotSupported
    /// A user name that is empty, has a bad `=` escape, or contains a byte outside printable
    /// ASCII (Roost does not implement SASLprep). `e=invalid-username-encoding`.
    case invalidUsernameEncoding
    /// An authorization identity (`a=`) other than the user name. `e=other-error`.
    case authorizationIdentityRefused
    /// A mandatory extension (`m=`). `e=extensions-not-supported`.
    case extensionsNotSupported
    /// The client-final `c=` is not the base64 of the client-first GS2 header.
    /// `e=channel-bindings-dont-match`.
    case channelBindingsDontMatch
    /// The client-final `r=` is not the nonce of the server-first message. `e=other-error`.
    case nonceMismatch
    /// The proof does not verify: wrong password, unknown user, or a user without SCRAM
    /// credentials. `e=invalid-proof`.
    case invalidProof

    /// The `server-error-value` of RFC 5802 for this failure.
    public var serverErrorValue: String {
        switch self {
        case .malformed: return "invalid-encoding"
        case .channelBindingNotSupported: return "channel-binding-not-supported"
        case .invalidUsernameEncoding: return "invalid-username-encoding"
        case .authorizationIdentityRefused: return "other-error"
        case .extensionsNotSupported: return "extensions-not-supported"
        case .channelBindingsDontMatch: return "channel-bindings-dont-match"
        case .nonceMismatch: return "other-error"
        case .invalidProof: return "invalid-proof"
        }
    }

    /// The server-final-message that reports this failure: `e=<value>`.
    public var serverFinalMessage: [UInt8] {
        Array("e=\(serverErrorValue)".utf8)
    }

    public var description: String {
        switch self {
        case .malformed(let why): return "malformed SCRAM message: \(why)"
        case .channelBindingNotSupported: return "the client requires channel binding, which is not supported"
        case .invalidUsernameEncoding: return "the user name is empty, badly escaped or not printable ASCII"
        case .authorizationIdentityRefused: return "an authorization identity other than the user name"
        case .extensionsNotSupported: return "a mandatory SCRAM extension (m=) is not supported"
        case .channelBindingsDontMatch: return "the channel binding (c=) does not match the GS2 header"
        case .nonceMismatch: return "the nonce (r=) does not match the server's"
        case .invalidProof: return "the client proof does not verify"
        }
    }
}
