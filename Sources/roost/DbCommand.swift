import ArgumentParser
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import MQTTCodec
import NIOCore
import RoostCore
import RoostPersistence

/// `roost db`: look inside a data directory's store, read-only. Safe beside a running broker
/// (the database is in WAL mode and no lock is taken).
struct DbCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "db",
        abstract: "Inspect the durable store of a data directory (read-only).",
        subcommands: [Stats.self, Dump.self]
    )

    struct Location: ParsableArguments {
        @Option(name: .customLong("data-dir"), help: "The broker's data directory.")
        var dataDir = "./roost-data"
    }

    /// `roost db stats`: counts and sizes, one per line.
    struct Stats: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print counts and file sizes of the store.")

        @OptionGroup var location: Location

        func run() throws {
            let inspection = try DbCommand.reading { () throws(StoreError) in try SQLiteStore.inspect(directory: location.dataDir) }
            let lines = [
                "database: \(inspection.databasePath)",
                "schema version: \(inspection.schemaVersion)",
                "database bytes: \(inspection.databaseBytes)",
                "wal bytes: \(inspection.walBytes)",
                "sessions: \(inspection.sessions)",
                "sessions online at last write: \(inspection.sessionsOnline)",
                "subscriptions: \(inspection.subscriptions)",
                "queued messages: \(inspection.queued)",
                "in-flight messages: \(inspection.inflight)",
                "inbound QoS 2 ids: \(inspection.inboundIDs)",
                "retained messages: \(inspection.retained)",
            ]
            Console(quiet: false).output(Array((lines.joined(separator: "\n") + "\n").utf8))
        }
    }

    /// `roost db dump`: every session with its rows, then the retained messages.
    struct Dump: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print every session, subscription, queued message and retained message in the store.")

        @OptionGroup var location: Location

        @Flag(name: .long, help: "Also print payloads (UTF-8 text when printable, else hex).")
        var payloads = false

        func run() throws {
            let dump = try DbCommand.reading { () throws(StoreError) in try SQLiteStore.dump(directory: location.dataDir) }
            let console = Console(quiet: false)
            for session in dump.sessions {
                var text = describe(session)
                text.append("\n")
                console.output(Array(text.utf8))
            }
            var text = ""
            for retained in dump.retained {
                let message = retained.message
                text += "retained \(quoted(message.topic)) qos \(message.qos.rawValue) size \(message.payload.readableBytes)"
                text += " expires \(DbCommand.time(retained.expiresAt))\n"
                if payloads { text += "  payload: \(DbCommand.payload(message.payload))\n" }
            }
            if dump.sessions.isEmpty && dump.retained.isEmpty { text += "(empty store)\n" }
            console.output(Array(text.utf8))
        }

        private func describe(_ session: StoreDump.Session) -> String {
            let record = session.record
            var lines: [String] = []
            let expiry = record.expiryInterval == .max ? "never" : "\(record.expiryInterval) s"
            let state = record.disconnectedAt.map { "offline since \(DbCommand.time($0))" } ?? "online at last write"
            lines.append("session \(quoted(record.clientID)) (id \(record.id)) expiry \(expiry), \(state)")
            if let will = record.will {
                var line = "  will \(quoted(will.topic)) qos \(will.qos.rawValue)\(will.retain ? " retain" : "") size \(will.payload.readableBytes)"
                if let delay = will.properties.willDelayInterval { line += " delay \(delay) s" }
                if let due = record.willDueAt { line += " due \(DbCommand.time(due))" }
                lines.append(line)
                if payloads { lines.append("    payload: \(DbCommand.payload(will.payload))") }
            }
            for (subscription, id) in session.subscriptions {
                var line = "  subscription \(quoted(subscription.filter)) qos \(subscription.qos.rawValue)"
                if subscription.noLocal { line += " no-local" }
                if subscription.retainAsPublished { line += " retain-as-published" }
                line += " retain-handling \(subscription.retainHandling.rawValue)"
                if let id { line += " id \(id)" }
                lines.append(line)
            }
            for queued in session.queue {
                let record = queued.record
                let delivery = record.delivery
                let stage = record.packetID == 0 ? "queued" : record.released ? "released" : "in-flight"
                var line = "  message seq \(record.seq) \(quoted(delivery.message.topic)) qos \(delivery.qos.rawValue)"
                if delivery.retain { line += " retain" }
                line += " packet-id \(record.packetID) \(stage) size \(delivery.message.payload.readableBytes)"
                line += " expires \(DbCommand.time(queued.expiresAt))"
                if !delivery.subscriptionIDs.isEmpty { line += " subscription-ids \(delivery.subscriptionIDs.map(String.init).joined(separator: ","))" }
                lines.append(line)
                if payloads { lines.append("    payload: \(DbCommand.payload(delivery.message.payload))") }
            }
            if !session.inbound.isEmpty {
                lines.append("  inbound QoS 2 ids: \(session.inbound.map(String.init).joined(separator: " "))")
            }
            return lines.joined(separator: "\n")
        }

        private func quoted(_ text: String) -> String { "\"\(text)\"" }
    }

    /// Runs a read, or prints `roost: <why>` on stderr and exits 1.
    static func reading<T>(_ body: () throws(StoreError) -> T) throws -> T {
        do {
            return try body()
        } catch {
            Console(quiet: false).error("roost: \(error)")
            throw ExitCode.failure
        }
    }

    /// Wall-clock milliseconds as UTC ISO 8601 (`2025-06-01T12:00:00.250Z`), or "never".
    static func time(_ milliseconds: Int64?) -> String {
        guard let milliseconds else { return "never" }
        var seconds = time_t(milliseconds / 1000)
        var parts = tm()
        guard gmtime_r(&seconds, &parts) != nil else { return "\(milliseconds) ms" }
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let fraction = milliseconds % 1000
        let millis = fraction < 10 ? "00\(fraction)" : fraction < 100 ? "0\(fraction)" : "\(fraction)"
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T"
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(millis)Z"
    }

    /// A payload as UTF-8 text when it is valid and has no control characters, else as hex.
    static func payload(_ buffer: ByteBuffer) -> String {
        let bytes = buffer.readableBytesView
        if let text = String(validating: bytes, as: UTF8.self),
            !text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
        {
            return text
        }
        let digits = Array("0123456789abcdef".utf8)
        var hex: [UInt8] = []
        hex.reserveCapacity(bytes.count * 2 + 4)
        hex.append(contentsOf: "hex ".utf8)
        for byte in bytes {
            hex.append(digits[Int(byte >> 4)])
            hex.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: hex, as: UTF8.self)
    }
}
