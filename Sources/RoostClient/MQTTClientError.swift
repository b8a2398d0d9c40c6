#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import MQTTCodec
import NIOCore
import NIOPosix

/// The errors thrown by ``MQTTClient``.
///
/// Failures of the TCP connection itself (refused, unreachable, name resolution) are passed
/// through as the underlying SwiftNIO error; everything that happens once the socket is open is
/// one of these cases.
///
/// Concurrency: a plain value, `Sendable`.
public enum MQTTClientError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The server answered CONNECT with a CONNACK carrying a failure code (MQTT 5: a reason code
    /// >= 0x80; MQTT 3.1/3.1.1: a return code other than 0). The connection has been closed.
    case connectionRefused(ConnAck)
    /// The operation needs a connection and there is none (never connected, or already closed).
    case notConnected
    /// The server did not answer in time: CONNACK within the connect timeout, an acknowledgement
    /// within the operation timeout, or PINGRESP within the keep-alive interval.
    case timeout
    /// The server broke the protocol (unexpected or malformed packet), or the request would break
    /// it (an invalid topic, a packet larger than the server accepts, a connection already open).
    case protocolError(String)
    /// The connection closed while the operation was pending. Carries the server's DISCONNECT
    /// (MQTT 5) when one was received.
    case closed(Disconnect?)

    public var description: String {
        switch self {
        case .connectionRefused(let connAck): return "connection refused: \(connAck.reasonCode.connectReasonDescription)"
        case .notConnected: return "not connected"
        case .timeout: return "timed out waiting for the server"
        case .protocolError(let message): return "protocol error: \(message)"
        case .closed(let disconnect?):
            var text = "connection closed by the server: \(disconnect.reasonCode.reasonDescription)"
            if let reason = disconnect.properties.reasonString { text += " (\(reason))" }
            return text
        case .closed(nil): return "connection closed"
        }
    }
}

extension MQTTClient {
    /// A short human-readable description of an error thrown by the client, for command-line
    /// tools: MQTT errors as described above, a failed TCP connection as its cause ("Connection
    /// refused", "unknown host"), anything else as its own description.
    public static func describe(_ error: any Error) -> String {
        if let error = error as? MQTTClientError { return error.description }
        if let error = error as? NIOConnectionError {
            if let failure = error.connectionErrors.first { return describe(failure.error) }
            if let dnsError = error.dnsAError ?? error.dnsAAAAError { return "cannot resolve \(error.host): \(dnsError)" }
            return "cannot connect to \(error.host):\(error.port)"
        }
        if let error = error as? IOError {
            if let message = strerror(error.errnoCode) { return String(cString: message) }
        }
        if case .connectTimeout? = error as? ChannelError { return "connection timed out" }
        return "\(error)"
    }
}
