import ArgumentParser
import RoostClient

/// The TLS options of the client tools (`roost pub`, `roost sub`, `roost bench`), named as in
/// mosquitto_pub and mosquitto_sub.
struct ClientTLSOptions: ParsableArguments {
    @Option(name: .customLong("cafile"), help: "TLS: PEM file of the CAs to trust (turns TLS on).")
    var cafile: String?

    @Option(name: .customLong("cert"), help: "TLS: PEM client certificate (mutual TLS; needs --key).")
    var cert: String?

    @Option(name: .customLong("key"), help: "TLS: PEM private key of --cert.")
    var key: String?

    @Flag(name: .customLong("insecure"), help: "TLS: do not check that the server's certificate names the host.")
    var insecure = false

    @Flag(name: .customLong("tls"), help: "TLS with the system's trust store (implied by --cafile, --cert).")
    var tls = false

    func validate() throws {
        if (cert == nil) != (key == nil) { throw ValidationError("--cert and --key go together.") }
    }

    /// The client's TLS settings, or nil for plain TCP.
    var configuration: MQTTClientTLS? {
        guard tls || cafile != nil || cert != nil || insecure else { return nil }
        return MQTTClientTLS(cafile: cafile, certfile: cert, keyfile: key, insecure: insecure)
    }
}
