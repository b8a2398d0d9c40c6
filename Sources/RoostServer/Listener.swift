import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import Synchronization

/// One listening socket and how its clients are served: the transport (plain TCP, TLS,
/// WebSocket, WebSocket over TLS) and the settings that may differ per listener.
public struct ListenerConfiguration: Sendable, Equatable {
    public enum Transport: String, Sendable, CaseIterable {
        case tcp, tls, ws, wss

        var usesTLS: Bool { self == .tls || self == .wss }
        var usesWebSocket: Bool { self == .ws || self == .wss }
    }

    public var host: String
    public var port: Int
    public var transport: Transport
    /// A name for logs and authentication (`tcp`, `tls`, ... unless configured).
    public var name: String
    /// Certificates and verification; required for `tls` and `wss`.
    public var tls: TLSSettings?
    /// The HTTP path of the WebSocket endpoint (`ws`, `wss`).
    public var webSocketPath: String = "/mqtt"
    /// Whether clients without credentials are accepted here; nil: the broker's `allow_anonymous`.
    public var allowAnonymous: Bool?
    /// Simultaneous connections on this listener; 0: only the broker's `max_connections` applies.
    public var maxConnections: Int = 0
    /// Every connection starts with a PROXY protocol (v1 or v2) header from a load balancer,
    /// whose client address is then used for logs, authentication and the login back-off.
    public var proxyProtocol: Bool = false

    public init(host: String, port: Int, transport: Transport = .tcp, name: String? = nil, tls: TLSSettings? = nil) {
        self.host = host
        self.port = port
        self.transport = transport
        self.name = name ?? transport.rawValue
        self.tls = tls
    }
}

/// TLS settings of a listener, named as in Mosquitto's configuration.
public struct TLSSettings: Sendable, Equatable {
    public enum Version: String, Sendable {
        case tlsv1_2 = "tlsv1.2"
        case tlsv1_3 = "tlsv1.3"
    }

    /// PEM file with the server certificate (and its chain).
    public var certfile: String
    /// PEM file with the server's private key.
    public var keyfile: String
    /// PEM file with the CAs that client certificates must chain to; needed for client certificates.
    public var cafile: String?
    /// Refuse clients that present no valid certificate (mutual TLS). Without it, a client
    /// certificate is still verified when one is presented (and `cafile` is set).
    public var requireCertificate: Bool = false
    /// Use the client certificate's subject CN as the user name (the password is not checked).
    public var useIdentityAsUsername: Bool = false
    /// Lowest protocol version accepted.
    public var minimumVersion: Version = .tlsv1_2
    /// OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are fixed); nil: BoringSSL's defaults.
    public var ciphers: String?

    public init(certfile: String, keyfile: String, cafile: String? = nil) {
        self.certfile = certfile
        self.keyfile = keyfile
        self.cafile = cafile
    }

    /// Reads the files and builds the context. Errors name the setting and the file.
    public func makeContext() throws -> NIOSSLContext {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certfile)
        } catch {
            throw ListenerError(key: "certfile", file: certfile, problem: "cannot read a PEM certificate (\(error))")
        }
        guard !chain.isEmpty else { throw ListenerError(key: "certfile", file: certfile, problem: "no certificate in the file") }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: keyfile, format: .pem)
        } catch {
            throw ListenerError(key: "keyfile", file: keyfile, problem: "cannot read a PEM private key (\(error))")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = minimumVersion == .tlsv1_3 ? .tlsv13 : .tlsv12
        if let ciphers { configuration.cipherSuites = ciphers }
        if let cafile {
            let roots: [NIOSSLCertificate]
            do {
                roots = try NIOSSLCertificate.fromPEMFile(cafile)
            } catch {
                throw ListenerError(key: "cafile", file: cafile, problem: "cannot read PEM CA certificates (\(error))")
            }
            guard !roots.isEmpty else { throw ListenerError(key: "cafile", file: cafile, problem: "no certificate in the file") }
            configuration.trustRoots = .certificates(roots)
            configuration.sendCANameList = true
            configuration.certificateVerification = requireCertificate ? .noHostnameVerification : .optionalVerification
        } else if requireCertificate || useIdentityAsUsername {
            throw ListenerError(
                key: "cafile", file: "", problem: "require_certificate and use_identity_as_username need cafile (the CAs of client certificates)")
        }
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            // BoringSSL checks here that the key belongs to the certificate, and the cipher list.
            throw ListenerError(
                key: "keyfile", file: keyfile,
                problem: "the key, the certificate \(certfile) or the ciphers are not usable together (\(error))")
        }
    }
}

/// A listener setting that cannot be used; names the key and the file.
public struct ListenerError: Error, CustomStringConvertible {
    public var key: String
    public var file: String
    public var problem: String

    public var description: String {
        file.isEmpty ? "\(key): \(problem)" : "\(key) '\(file)': \(problem)"
    }
}

/// What a running listener shares with its connections: its settings, its current TLS context
/// (replaced when the certificate files change) and its connection count.
///
/// Concurrency: `Sendable`; the TLS context is swapped under a lock and read once per accepted
/// connection; the count is atomic.
public final class ListenerContext: Sendable {
    let configuration: ListenerConfiguration
    var name: String { configuration.name }
    var allowAnonymous: Bool? { configuration.allowAnonymous }
    var useIdentityAsUsername: Bool { configuration.tls?.useIdentityAsUsername ?? false }
    let connections = Atomic<Int>(0)
    private let tlsState: NIOLockedValueBox<(context: NIOSSLContext, stamp: [FileStamp])?>

    /// A plain TCP listener for connections made outside a server (tests).
    @_spi(Benchmarks) public static let `default` = ListenerContext(plain: ListenerConfiguration(host: "127.0.0.1", port: 0))

    private init(plain configuration: ListenerConfiguration) {
        self.configuration = configuration
        self.tlsState = NIOLockedValueBox(nil)
    }

    /// Builds the listener's TLS context now, so that a bad certificate stops the start.
    init(_ configuration: ListenerConfiguration) throws {
        self.configuration = configuration
        if configuration.transport.usesTLS {
            guard let tls = configuration.tls else {
                throw ListenerError(key: "certfile", file: "", problem: "a \(configuration.transport.rawValue) listener needs certfile and keyfile")
            }
            let stamp = Self.stamps(tls)
            self.tlsState = NIOLockedValueBox((try tls.makeContext(), stamp))
        } else {
            self.tlsState = NIOLockedValueBox(nil)
        }
    }

    var sslContext: NIOSSLContext? { tlsState.withLockedValue { $0?.context } }

    /// Re-reads the certificate files (SIGHUP, or `force: false` from the periodic check when a
    /// file changed). A failure keeps the current certificate and is logged; connections that
    /// are open stay as they are either way.
    func reloadTLS(force: Bool, logger: Logger) {
        guard let tls = configuration.tls, configuration.transport.usesTLS else { return }
        let stamp = Self.stamps(tls)
        if !force, tlsState.withLockedValue({ $0?.stamp == stamp }) { return }
        do {
            let context = try tls.makeContext()
            tlsState.withLockedValue { $0 = (context, stamp) }
            logger.info("TLS certificate reloaded", metadata: ["listener": "\(name)", "certfile": "\(tls.certfile)"])
        } catch {
            // Remember the stamp: a half-written file is retried when it changes again.
            tlsState.withLockedValue { state in state = state.map { ($0.context, stamp) } }
            logger.error(
                "TLS certificate not reloaded; the previous one stays in use",
                metadata: ["listener": "\(name)", "error": "\(error)"])
        }
    }

    struct FileStamp: Equatable, Sendable {
        var path: String
        var modified: Int
        var size: Int
    }

    static func stamps(_ tls: TLSSettings) -> [FileStamp] {
        [tls.certfile, tls.keyfile, tls.cafile].compactMap { $0 }.map { path in
            var info = stat()
            guard stat(path, &info) == 0 else { return FileStamp(path: path, modified: -1, size: -1) }
            return FileStamp(
                path: path, modified: Int(info.st_mtim.tv_sec) * 1_000_000_000 + Int(info.st_mtim.tv_nsec), size: Int(info.st_size))
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
