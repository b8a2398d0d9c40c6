import Foundation
import Logging
import RoostAuth
import RoostCore
import Synchronization

/// The authentication and authorization `roost serve` runs with: the password file and the ACL
/// file when configured (nil ports otherwise: anonymous access as configured, no ACL).
struct AccessControl {
    let passwords: PasswordFileAuthenticator?
    let acl: ACLFileAuthorizer?
    let jwt: JWTAuthenticator?
    let http: HTTPAuthHook?
    /// The files' modification stamps when last read, for reloading them when they change.
    let stamps = FileStamps()

    /// Asked in order before the password file: a JWT password goes to `jwt`, anything else to
    /// the HTTP service (which may answer "ignore").
    var deferredAuthenticators: [any DeferredAuthenticator] { [jwt as (any DeferredAuthenticator)?, http].compactMap { $0 } }

    /// Whether any way of authenticating users is configured (anonymous access then defaults to off).
    var hasUserDatabase: Bool { passwords != nil || jwt != nil || http != nil }

    var authenticator: (any Authenticator)? { passwords }
    var authorizer: (any Authorizer)? { acl }
    /// SCRAM-SHA-256 through MQTT 5 AUTH, against the password file's SCRAM entries.
    var enhancedAuthenticators: [any EnhancedAuthenticator] { passwords.map { [SCRAMAuthenticator(passwords: $0)] } ?? [] }

    /// Reads the files; an unreadable or invalid one is a configuration error naming the key,
    /// the file and the line.
    init(passwordFile: String?, aclFile: String?, jwt jwtSettings: [String: String] = [:], authHTTP: [String: String] = [:]) throws(ConfigurationError) {
        if jwtSettings["jwt_secret"] != nil || jwtSettings["jwt_public_key"] != nil {
            do {
                jwt = try JWTAuthenticator(
                    hmacSecret: jwtSettings["jwt_secret"], publicKeyFile: jwtSettings["jwt_public_key"],
                    issuer: jwtSettings["jwt_issuer"], audience: jwtSettings["jwt_audience"])
            } catch {
                throw ConfigurationError(key: error.setting, value: jwtSettings[error.setting].map { $0 == jwtSettings["jwt_secret"] ? "(hidden)" : $0 } ?? "", source: "\(error)", allowed: "a usable JWT key")
            }
        } else if let key = ["jwt_issuer", "jwt_audience"].first(where: { jwtSettings[$0] != nil }) {
            throw ConfigurationError(key: key, value: jwtSettings[key] ?? "", source: "configuration", allowed: "\(key) together with jwt_secret or jwt_public_key")
        } else {
            jwt = nil
        }
        if let url = authHTTP["auth_http_url"] {
            var configuration = HTTPAuthHookConfiguration(url: url)
            if let timeout = authHTTP["auth_http_timeout"].flatMap(Int.init) { configuration.timeout = .milliseconds(timeout) }
            if let cache = authHTTP["auth_http_cache"].flatMap(Int.init) { configuration.cacheSeconds = cache }
            if let onError = authHTTP["auth_http_on_error"].flatMap(HTTPAuthHookConfiguration.OnError.init(rawValue:)) { configuration.onError = onError }
            do {
                http = try HTTPAuthHook(configuration: configuration)
            } catch {
                throw ConfigurationError(key: error.key, value: error.value, source: "configuration", allowed: error.problem)
            }
        } else if let key = authHTTP.keys.sorted().first {
            throw ConfigurationError(key: key, value: authHTTP[key] ?? "", source: "configuration", allowed: "\(key) together with auth_http_url")
        } else {
            http = nil
        }
        do {
            passwords = try passwordFile.map { path throws(AuthFileError) in try PasswordFileAuthenticator(path: path) }
        } catch {
            throw ConfigurationError(key: "password_file", value: passwordFile ?? "", source: "\(error)", allowed: "a password file in mosquitto_passwd format (make one with roost passwd)")
        }
        do {
            acl = try aclFile.map { path throws(AuthFileError) in try ACLFileAuthorizer(path: path) }
        } catch {
            throw ConfigurationError(key: "acl_file", value: aclFile ?? "", source: "\(error)", allowed: "an ACL file in Mosquitto acl_file format")
        }
    }

    /// SIGHUP: reads both files again. A file that fails keeps its previous contents (logged).
    /// Returns true if the ACL changed (routes must be resolved again).
    /// Records the files' current stamps (at start, so the first check reloads nothing).
    func recordStamps() {
        for path in [passwords?.path, acl?.path, jwt?.publicKeyFile].compactMap({ $0 }) { _ = stamps.changed(path) }
    }

    /// Closes the HTTP hook's client.
    func shutdown() async {
        await http?.shutdown()
    }

    /// Reads the password, ACL and JWT key files again: all of them (SIGHUP), or only those
    /// whose stamp changed since they were last read (`onlyChanged`, the periodic check, so an
    /// edit takes effect without SIGHUP). A file that fails keeps its previous contents (logged).
    /// Returns true if the ACL changed (routes must be resolved again).
    func reload(logger: Logger, onlyChanged: Bool = false) -> Bool {
        func due(_ path: String?) -> Bool {
            guard let path else { return !onlyChanged }
            let changed = stamps.changed(path)
            return !onlyChanged || changed
        }
        func attempt(_ what: String, _ file: String?, _ body: () throws -> Void) -> Bool {
            do {
                try body()
                logger.info("\(what) reloaded", metadata: ["file": "\(file ?? "")"])
                return true
            } catch {
                logger.error("\(what) not reloaded; the previous one stays in force", metadata: ["error": "\(error)"])
                return false
            }
        }
        if let jwt, due(jwt.publicKeyFile) { _ = attempt("JWT key", jwt.publicKeyFile) { try jwt.reload() } }
        if let passwords, due(passwords.path) { _ = attempt("password file", passwords.path) { try passwords.reload() } }
        guard let acl, due(acl.path) else { return false }
        return attempt("ACL file", acl.path) { try acl.reload() }
    }
}

/// Modification time and size of files, to notice edits.
///
/// Concurrency: `Sendable`; behind a lock.
final class FileStamps: Sendable {
    private let known = Mutex<[String: String]>([:])

    /// True if `path`'s stamp differs from the one recorded (and records the new one).
    func changed(_ path: String) -> Bool {
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        let modified = (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? -1
        let size = (attributes?[.size] as? NSNumber)?.intValue ?? -1
        let stamp = "\(modified)/\(size)"
        return known.withLock { known in
            defer { known[path] = stamp }
            return known[path] != nil && known[path] != stamp
        }
    }
}
