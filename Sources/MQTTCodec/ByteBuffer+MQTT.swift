import NIOCore

extension ByteBuffer {
    /// Reads a variable byte integer (1-4 bytes). Returns nil when the bytes are not all there yet.
    @inlinable
    mutating func readMQTTVariableByteInteger() throws(DecodeError) -> Int? {
        guard let (value, length) = try getMQTTVariableByteInteger(at: readerIndex) else { return nil }
        moveReaderIndex(forwardBy: length)
        return value
    }

    /// The variable byte integer at `index` and how many bytes it takes, without moving the
    /// reader. Returns nil when the bytes are not all there yet.
    @inlinable
    func getMQTTVariableByteInteger(at start: Int) throws(DecodeError) -> (value: Int, length: Int)? {
        var value = 0
        var multiplier = 1
        var index = start
        for _ in 0..<4 {
            guard let byte = getInteger(at: index, as: UInt8.self) else { return nil }
            index += 1
            value += Int(byte & 0x7F) * multiplier
            if byte & 0x80 == 0 {
                // A trailing zero continuation byte means a longer encoding than needed [MQTT-1.5.5-1].
                if byte == 0 && index - start > 1 { throw .nonMinimalVariableByteInteger }
                return (value, index - start)
            }
            multiplier *= 128
        }
        throw .malformedRemainingLength
    }

    /// Writes a variable byte integer; the value must be < 268,435,456.
    @inlinable
    @discardableResult
    mutating func writeMQTTVariableByteInteger(_ value: Int) -> Int {
        var remaining = value
        var written = 0
        repeat {
            var byte = UInt8(remaining & 0x7F)
            remaining >>= 7
            if remaining > 0 { byte |= 0x80 }
            writeInteger(byte)
            written += 1
        } while remaining > 0
        return written
    }

    /// Writes a 2-byte length followed by the UTF-8 bytes of `string`.
    @inlinable
    mutating func writeMQTTString(_ string: String) {
        let length = string.utf8.count
        writeInteger(UInt16(truncatingIfNeeded: length))
        writeString(string)
    }

    /// Writes a 2-byte length followed by the binary data.
    @inlinable
    mutating func writeMQTTBinary(_ data: ByteBuffer) {
        writeInteger(UInt16(truncatingIfNeeded: data.readableBytes))
        writeImmutableBuffer(data)
    }

    /// Reads a length-prefixed UTF-8 string, validating it [MQTT-1.5.4-1], [MQTT-1.5.4-2].
    mutating func readMQTTString(in type: PacketType) throws(DecodeError) -> String {
        guard let length = readInteger(as: UInt16.self), readableBytes >= Int(length) else {
            throw .malformedBody(type)
        }
        let string: String? = withUnsafeReadableBytes { raw in
            let bytes = UnsafeRawBufferPointer(rebasing: raw.prefix(Int(length)))
            if bytes.contains(0) { return nil }
            return String(validating: bytes, as: UTF8.self)
        }
        guard let string else {
            let hasNull = withUnsafeReadableBytes { UnsafeRawBufferPointer(rebasing: $0.prefix(Int(length))).contains(0) }
            throw hasNull ? .nullCharacterInString : .invalidUTF8
        }
        moveReaderIndex(forwardBy: Int(length))
        return string
    }

    /// Reads a length-prefixed string if its bytes are exactly `known`'s UTF-8, returning `known`
    /// (no allocation); otherwise reads nothing and returns nil.
    mutating func readMQTTString(equalTo known: String) -> String? {
        guard let length = getInteger(at: readerIndex, as: UInt16.self), !known.isEmpty,
            known.utf8.count == Int(length), readableBytes >= 2 + Int(length)
        else { return nil }
        let same = withUnsafeReadableBytes { raw -> Bool in
            let bytes = UnsafeRawBufferPointer(rebasing: raw[2..<(2 + Int(length))])
            return known.utf8.withContiguousStorageIfAvailable { stored in
                bytes.elementsEqual(UnsafeRawBufferPointer(stored))
            } ?? false
        }
        guard same else { return nil }
        moveReaderIndex(forwardBy: 2 + Int(length))
        return known
    }

    /// Reads length-prefixed binary data as a slice (no copy).
    mutating func readMQTTBinary(in type: PacketType) throws(DecodeError) -> ByteBuffer {
        guard let length = readInteger(as: UInt16.self), let data = readSlice(length: Int(length)) else {
            throw .malformedBody(type)
        }
        return data
    }

    mutating func readUInt8(in type: PacketType) throws(DecodeError) -> UInt8 {
        guard let value = readInteger(as: UInt8.self) else { throw .malformedBody(type) }
        return value
    }

    mutating func readUInt16(in type: PacketType) throws(DecodeError) -> UInt16 {
        guard let value = readInteger(as: UInt16.self) else { throw .malformedBody(type) }
        return value
    }

    mutating func readUInt32(in type: PacketType) throws(DecodeError) -> UInt32 {
        guard let value = readInteger(as: UInt32.self) else { throw .malformedBody(type) }
        return value
    }
}

/// The number of bytes a variable byte integer takes.
@inlinable
func variableByteIntegerSize(_ value: Int) -> Int {
    switch value {
    case ..<128: return 1
    case ..<16_384: return 2
    case ..<2_097_152: return 3
    default: return 4
    }
}
