import Logging
import RoostAuth
import RoostCore

/// The authentication and authorization `roost serve` runs with: the password file and the ACL
/// file when configured (nil ports otherwise: anonymous access as configured, no ACL).
struct AccessControl {
    let passwords: PasswordFileAuthenticator?
    let acl: ACLFileAuthorizer?

    var authenticator: (any Authenticator)? { passwords }
    var authorizer: (any Authorizer)? { acl }
    /// SCRAM-SHA-256 through MQTT 5 AUTH, against the password file's SCRAM entries.
    var enhancedAuthenticators: [any EnhancedAuthenticator] { passwords.map { [SCRAMAuthenticator(passwords: $0)] } ?? [] }

    /// Reads the files; an unreadable or invalid one is a configuration error naming the key,
    /// the file and the line.
    init(passwordFile: String?, aclFile: String?) throws(ConfigurationError) {
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
    func reload(logger: Logger) -> Bool {
        if let passwords {
            do {
                try passwords.reload()
                logger.info("password file reloaded", metadata: ["file": "\(passwords.path)", "users": "\(passwords.userCount)"])
            } catch {
                logger.error("password file not reloaded; the previous one stays in force", metadata: ["error": "\(error)"])
            }
        }
        guard let acl else { return false }
        do {
            try acl.reload()
            logger.info("ACL file reloaded", metadata: ["file": "\(acl.path)"])
            return true
        } catch {
            logger.error("ACL file not reloaded; the previous rules stay in force", metadata: ["error": "\(error)"])
            return false
        }
    }
}
