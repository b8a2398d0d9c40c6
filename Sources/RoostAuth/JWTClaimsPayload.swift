import JWTKit

/// The claims of a token Roost reads. Every field is optional here; ``JWTAuthenticator``
/// decides which are required and checks them against its clock and configuration after the
/// signature is verified (so that each refusal gets its own reason and the clock can be
/// injected). A claim of the wrong JSON type makes the token malformed.
///
/// A plain value, `Sendable`.
struct JWTClaimsPayload: JWTPayload {
    /// The EMQX-style `acl` claim: topic filters this token allows, with `%u` (the user name)
    /// and `%c` (the client id) substituted per client.
    struct ACLClaim: Codable, Sendable, Equatable {
        /// Filters the client may publish to.
        var pub: [String]?
        /// Filters the client may subscribe to and receive from.
        var sub: [String]?
        /// Filters allowed for both.
        var all: [String]?
    }

    var sub: SubjectClaim?
    var exp: ExpirationClaim?
    var nbf: NotBeforeClaim?
    var iat: IssuedAtClaim?
    var iss: IssuerClaim?
    var aud: AudienceClaim?
    /// A user name that overrides `sub` as the MQTT user name.
    var username: String?
    var acl: ACLClaim?

    /// jwt-kit calls this after the signature checks out; the checks live in
    /// ``JWTAuthenticator`` (they need its clock, leeway, issuer and audience).
    func verify(using algorithm: some JWTAlgorithm) async throws {}
}
