import NIOCore

/// The header at the start of every `roost bench` payload: who sent the message, its place in
/// its publisher's stream, and when it was sent.
///
/// Layout (big-endian, 28 bytes), followed by filler up to the payload size:
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 2 | magic `RB` (0x52 0x42) |
/// | 2 | 1 | layout version (1) |
/// | 3 | 1 | the QoS the message was published with (low 2 bits; the rest 0) |
/// | 4 | 4 | run identifier (random per `roost bench` process) |
/// | 8 | 4 | publisher index within the run |
/// | 12 | 8 | sequence number within the publisher's stream, from 0 |
/// | 20 | 8 | send time, nanoseconds since the Unix epoch (`CLOCK_REALTIME`) |
///
/// A wall clock, so that a `roost bench pub` and a `roost bench sub` in separate processes on
/// one host can measure latency.
///
/// Concurrency: a plain value, `Sendable`.
public struct BenchPayloadHeader: Sendable, Equatable {
    /// The smallest payload `roost bench` can send.
    public static let size = 28
    static let magic: UInt16 = 0x5242
    static let layoutVersion: UInt8 = 1

    public var qos: UInt8
    public var runID: UInt32
    public var publisherIndex: UInt32
    public var sequence: UInt64
    public var sentAtNanoseconds: UInt64

    public init(qos: UInt8, runID: UInt32, publisherIndex: UInt32, sequence: UInt64, sentAtNanoseconds: UInt64) {
        self.qos = qos
        self.runID = runID
        self.publisherIndex = publisherIndex
        self.sequence = sequence
        self.sentAtNanoseconds = sentAtNanoseconds
    }

    /// The publisher stream this header belongs to: run and publisher in one key.
    public var streamKey: UInt64 { UInt64(runID) << 32 | UInt64(publisherIndex) }

    /// Writes the header at `buffer`'s writer index.
    public func write(to buffer: inout ByteBuffer) {
        buffer.writeInteger(Self.magic)
        buffer.writeInteger(Self.layoutVersion)
        buffer.writeInteger(qos & 0x03)
        buffer.writeInteger(runID)
        buffer.writeInteger(publisherIndex)
        buffer.writeInteger(sequence)
        buffer.writeInteger(sentAtNanoseconds)
    }

    /// Reads the header at the start of `payload`'s readable bytes without moving its reader
    /// index; nil when the payload is too short or is not a bench payload.
    public init?(payload: ByteBuffer) {
        let start = payload.readerIndex
        guard payload.readableBytes >= Self.size,
            payload.getInteger(at: start, as: UInt16.self) == Self.magic,
            payload.getInteger(at: start + 2, as: UInt8.self) == Self.layoutVersion,
            let flags = payload.getInteger(at: start + 3, as: UInt8.self), flags & ~0x03 == 0,
            let runID = payload.getInteger(at: start + 4, as: UInt32.self),
            let publisherIndex = payload.getInteger(at: start + 8, as: UInt32.self),
            let sequence = payload.getInteger(at: start + 12, as: UInt64.self),
            let sentAt = payload.getInteger(at: start + 20, as: UInt64.self)
        else { return nil }
        self.init(qos: flags, runID: runID, publisherIndex: publisherIndex, sequence: sequence, sentAtNanoseconds: sentAt)
    }
}
