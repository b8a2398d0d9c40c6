#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A password that has the shape of a compact JWS (RFC 7515 section 7.1):
/// `BASE64URL(header) "." BASE64URL(payload) "." BASE64URL(signature)`, whose header is a
/// JSON object with a string `alg`. Nothing here checks a signature or a claim.
///
/// A plain value, `Sendable`; building one is cheap enough for the event loop: one scan of
/// the bytes, and one JSON parse of a header of at most ``maximumHeaderBytes``.
struct JWTCompactToken: Sendable {
    /// The longest encoded header looked at; real headers are well under 200 bytes.
    static let maximumHeaderBytes = 1024

    /// The header fields Roost reads.
    struct Header: Decodable, Sendable {
        var alg: String
        /// RFC 7515 section 4.1.11: extensions the verifier must understand. Roost
        /// understands none, so a token that lists any is refused.
        var crit: [String]?
    }

    /// The token's bytes, as the client sent them.
    let bytes: [UInt8]
    /// The decoded header.
    let header: Header

    /// Parses the shape; nil when `bytes` are not three base64url segments (the signature
    /// may be empty, as in an `alg: none` token) whose first decodes to a JSON header with
    /// `alg`.
    init?(_ bytes: some Collection<UInt8>) {
        var dots: [Int] = []
        var offset = 0
        for byte in bytes {
            if byte == UInt8(ascii: ".") {
                dots.append(offset)
                if dots.count > 2 { return nil }
            } else if !Self.isBase64URL(byte) {
                return nil
            }
            offset += 1
        }
        guard dots.count == 2, dots[0] > 0, dots[0] <= Self.maximumHeaderBytes, dots[1] > dots[0] + 1 else {
            return nil
        }
        let all = Array(bytes)
        guard let headerJSON = Self.decodeBase64URL(all[0..<dots[0]]),
            let header = try? JSONDecoder().decode(Header.self, from: Data(headerJSON))
        else { return nil }
        self.bytes = all
        self.header = header
    }

    static func isBase64URL(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"):
            return true
        default:
            return false
        }
    }

    /// Decodes unpadded base64url (RFC 4648 section 5, as JWS uses it); nil for any other
    /// character, padding, or a length that leaves a dangling sextet.
    static func decodeBase64URL(_ text: some Collection<UInt8>) -> [UInt8]? {
        guard text.count % 4 != 1 else { return nil }
        var output: [UInt8] = []
        output.reserveCapacity(text.count * 3 / 4)
        var accumulator: UInt32 = 0
        var bits = 0
        for byte in text {
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): digit = byte - UInt8(ascii: "A")
            case UInt8(ascii: "a")...UInt8(ascii: "z"): digit = byte - UInt8(ascii: "a") + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0") + 52
            case UInt8(ascii: "-"): digit = 62
            case UInt8(ascii: "_"): digit = 63
            default: return nil
            }
            accumulator = accumulator << 6 | UInt32(digit)
            bits += 6
            if bits >= 8 {
                bits -= 8
                output.append(UInt8((accumulator >> UInt32(bits)) & 0xFF))
                accumulator &= (1 << UInt32(bits)) - 1
            }
        }
        return output
    }
}
