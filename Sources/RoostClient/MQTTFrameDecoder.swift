import MQTTCodec
import NIOCore

/// Adapts ``MQTTDecoder`` to `NIOSingleStepByteToMessageProcessor`, which keeps the cumulation
/// buffer, so packets are decoded inside the client handler instead of travelling the pipeline.
///
/// Concurrency: a value owned by one channel handler; used only on its channel's EventLoop.
struct MQTTFrameDecoder: NIOSingleStepByteToMessageDecoder {
    typealias InboundOut = MQTTPacket

    var decoder: MQTTDecoder

    mutating func decode(buffer: inout ByteBuffer) throws -> MQTTPacket? {
        try decoder.decode(from: &buffer)
    }

    mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> MQTTPacket? {
        try decoder.decode(from: &buffer)
    }
}
