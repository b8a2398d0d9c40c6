import ArgumentParser
import MQTTCodec
import RoostClient

/// Parsing shared by the client tools' options (`roost pub`, `roost sub`, `roost bench`).
enum ClientArguments {
    /// `-V`: mqttv5, mqttv311 or mqttv31 (also 5, 311, 31, v5, 5.0, ...), as mosquitto_pub takes it.
    static func protocolVersion(_ name: String) throws -> ProtocolVersion {
        switch name.lowercased() {
        case "mqttv5", "5", "v5", "5.0": return .v5
        case "mqttv311", "311", "v311", "3.1.1": return .v3_1_1
        case "mqttv31", "31", "v31", "3.1": return .v3_1
        default: throw ValidationError("Unknown protocol version '\(name)': use mqttv5, mqttv311 or mqttv31.")
        }
    }

    static func qos(_ value: Int) throws -> QoS {
        guard (0...2).contains(value), let qos = QoS(rawValue: UInt8(value)) else { throw ValidationError("QoS must be 0, 1 or 2.") }
        return qos
    }
}

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
